"""``xpnet predict CKPT INPUT [-o OUT]``: the class a checkpoint predicts for each sample of a file.

``INPUT``: a ``.npz`` file (array ``X``; ``y``, if there, is ignored), a ``.npy`` file (the
samples), or a ``.csv`` file with a header line (the feature columns of training, in any
order; the training label column, if present, is ignored). For a model trained on a data file,
the samples are standardised as in training (the checkpoint keeps the train split's mean and
standard deviation) and each must have the training samples' shape (rows of features are
reshaped to images of that size).

``OUT`` (default: ``INPUT``'s name with ``.predictions.csv`` in place of its suffix, beside it):
a CSV with one row per sample, ``predicted`` (the class name, when the training labels were
names, else the class number) and ``prob_<class>``, the softmax probability of each class; or,
for an ``OUT`` ending in ``.npz``, the arrays ``predicted`` (class numbers), ``probabilities``
``(N, C)`` and ``classes`` (their names).
"""

from __future__ import annotations

import pathlib

from . import UsageError, report
from ._args import backend_arg, positive_int

HELP = "predict the class of each sample of a .csv, .npz or .npy file with a checkpoint"
SUFFIXES = (".csv", ".npz")


def add_arguments(p):
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by xpnet train")
    p.add_argument("input", metavar="INPUT", help="the samples: .csv (feature columns), .npz (X) or .npy")
    p.add_argument("-o", "--out", default=None, metavar="OUT",
                   help="the predictions, .csv or .npz (default: INPUT's name ending .predictions.csv, beside it)")
    p.add_argument("--backend", type=backend_arg, default=None, help="default: the one it was saved from, if usable")
    p.add_argument("--batch-size", type=positive_int, default=1024)


def run(args) -> int:
    import xpnet as xn
    from xpnet import backends

    from xpnet.nets.evaluate import net_backend

    from . import datafile, paths
    from .checks import load_checkpoint, usable_backend

    usable_backend(args.backend)
    out = _out_path(args)
    paths.check("-o", out.parent, (out.name,))
    ck = load_checkpoint("", args.checkpoint, args.backend)
    saved = datafile.saved_info(args.checkpoint, ck.extra)
    t = datafile.read("", args.input, None, saved, labels=False)
    X = t.X
    shape = _trained_shape(ck, saved)
    if shape is not None:
        X = datafile.sample_shape(args.input, X, shape)
    if saved is not None:
        X = datafile.standardize(X, saved["mean"], saved["std"])
    net = ck.net
    be = net_backend(net)
    from .train import _wants_images

    X = datafile.to_backend(X, be, ck.dtype, not _wants_images(net))
    try:
        logits = xn.predict(net, X, batch_size=args.batch_size)
    except (ValueError, TypeError) as e:
        raise UsageError(f"{args.input}: the model does not take its samples (shape {tuple(t.X.shape[1:])}): {e}") \
            from None
    if int(logits.ndim) != 2 or int(logits.shape[1]) < 2:
        raise UsageError(f"the model gives outputs of shape {tuple(logits.shape)}, not class scores (N, classes)")
    with xn.no_grad():
        probs = xn.Softmax(dim=1)(logits)
    xp = be.xp
    pred = backends.to_numpy(xp.argmax(logits, axis=1)).tolist()
    probs = backends.to_numpy(probs)
    C = int(logits.shape[1])
    names = saved["classes"] if saved is not None and saved["classes"] and len(saved["classes"]) == C else None
    classes = names or [str(i) for i in range(C)]
    paths.prepare("-o", out.parent)
    _write(out, pred, probs, classes, names is not None)
    label = report.model_label(report.role_of(ck.extra), ck.epoch, ck.history, pathlib.Path(args.checkpoint).name)
    print(f"xpnet predict: {len(pred)} samples of {args.input} by {label}: the predicted class and the "
          f"probabilities of its {C} classes in {out}")
    return 0


def _out_path(args):
    src = pathlib.Path(args.input)
    if args.out is None:
        return src.with_name(f"{src.stem}.predictions.csv")
    if not args.out:
        raise UsageError("-o: an empty path")
    out = pathlib.Path(args.out)
    if out.suffix.lower() not in SUFFIXES:
        raise UsageError(f"-o {args.out}: the predictions are written as .csv or .npz; name the file so")
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise UsageError(f"-o {args.out}: that is INPUT itself; name another file")
    return out


def _trained_shape(ck, saved):
    """The shape of one training sample: the data file's, or the named data set's (None when
    the checkpoint does not say)."""
    from .recipes import RECIPES

    if saved is not None:
        return saved["shape"]
    cli = ck.extra.get("cli") if isinstance(ck.extra, dict) else None
    r = RECIPES.get(cli.get("data")) if isinstance(cli, dict) and isinstance(cli.get("data"), str) else None
    if r is None:
        return None
    return list(r.image) if r.image else [r.features]


def _write(out, pred, probs, classes, named):
    from xpnet import backends
    from xpnet.io.atomic import atomic_write

    if out.suffix.lower() == ".npz":
        with atomic_write(out, "wb") as f:
            backends.files.write_npz(f, predicted=pred, probabilities=probs, classes=classes)
        return
    header = ["predicted"] + [f"prob_{c}" for c in classes]
    column = [classes[i] for i in pred] if named else pred
    with atomic_write(out, "w") as f:
        backends.files.write_csv(f, header, [column] + [probs[:, j] for j in range(len(classes))])
