"""``xpnet evaluate CKPT``: the test loss, accuracy (and ``--metrics``) and confusion matrix of a
checkpoint, saying which model it is ("last epoch (40)", "best.xpnet (epoch 35, val 98.61%)").

The data: by default the test split of the data set (or data file) the checkpoint was trained
on, drawn with its run's seed. ``--data`` another data set gives that set's test split;
``--data`` another file (in the layout of the training file: its feature columns, its classes)
evaluates all of that file's samples, standardised as in training.
"""

from __future__ import annotations

import json
import pathlib

from . import UsageError, report
from ._args import backend_arg, data_arg, metrics_arg, positive_int

HELP = "evaluate a checkpoint on the test split of its data set (or on a data file)"


def add_arguments(p):
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by xpnet train or xpnet.save")
    p.add_argument("--data", default=None, type=data_arg, help="default: the data set (or file) it was trained on")
    p.add_argument("--label", default=None, metavar="NAME", help="the label column of a --data CSV file "
                   "(default: the training file's)")
    p.add_argument("--backend", type=backend_arg, default=None, help="default: the one it was saved from, if usable")
    p.add_argument("--batch-size", type=positive_int, default=1024)
    p.add_argument("--metrics", type=metrics_arg, default=None, metavar="NAMES",
                   help="more figures, comma-separated: top5 (top_k:K), precision, recall, f1")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args) -> int:
    import xpnet as xn
    from xpnet import backends, metrics

    from xpnet.nets.evaluate import net_backend

    from .checks import load_checkpoint, usable_backend, metric_scores

    usable_backend(args.backend)
    ck = load_checkpoint("", args.checkpoint, args.backend)
    cli = ck.extra.get("cli") if isinstance(ck.extra, dict) else None
    cli = cli if isinstance(cli, dict) else {}
    net = ck.net
    be = net_backend(net)
    (X, y), data, split, classes = _data(args, ck, cli, be)
    what = f"{data} test split" if split == "test" else f"all of {data}"
    names = report.metric_names(args.metrics)
    loss = ck.loss if isinstance(ck.loss, xn.Loss) else xn.CrossEntropyLoss()
    try:
        pred = xn.predict(net, X, batch_size=args.batch_size)
    except (ValueError, TypeError) as e:
        raise UsageError(f"the model does not fit the {data} data: {e}") from None
    if int(pred.ndim) != 2:
        raise UsageError(f"the model gives outputs of shape {tuple(pred.shape)}, not class scores (N, classes)")
    metric_scores(xn, names, pred[:2, ...], y[:2])
    result = xn.evaluate(net, loss, (X, y), batch_size=args.batch_size, metrics=names or None)
    C = int(pred.shape[1])
    try:
        cm = backends.to_numpy(metrics.confusion_matrix(pred, y, C)).tolist()
    except ValueError as e:  # labels beyond the model's classes
        raise UsageError(f"the {data} data have labels the model has no class for: {e}") from None
    label = report.model_label(report.role_of(ck.extra), ck.epoch, ck.history, pathlib.Path(args.checkpoint).name)
    if args.json:
        print(json.dumps({"data": data, "split": split, "model": label, "role": report.role_of(ck.extra), "epoch": ck.epoch,
                          "samples": int(X.shape[0]), "backend": be.label, **result, "confusion_matrix": cm,
                          "classes": classes}))
        return 0
    print(f"{args.checkpoint}: {label}, on {'the ' if split == 'test' else ''}{what} ({int(X.shape[0])} samples), "
          f"{be.describe()}")
    for line in report.lines([(label, result)]):
        print(line)
    print("confusion matrix (rows: true class, columns: predicted):")
    width = max(3, len(str(max(max(r) for r in cm))))
    print("     " + " ".join(f"{j:>{width}}" for j in range(C)))
    for i, row in enumerate(cm):
        print(f"{i:>4} " + " ".join(f"{v:>{width}}" for v in row))
    if classes:
        print("classes: " + ", ".join(f"{i} {n}" for i, n in enumerate(classes)))
    return 0


def _data(args, ck, cli, be):
    """``((X, y), data, split, class names)``: the samples to evaluate on, the data set's name (a
    file's name), ``"test"`` (its test split) or ``"all"`` (all of a file's samples), and the
    class names (None when the classes are numbers)."""
    from . import datafile
    from .checks import saved_seed
    from .recipes import DATASETS

    trained = cli.get("data")
    name = args.data or trained
    if name is None:
        raise UsageError(f"{args.checkpoint} does not say which data set it was trained on: pass --data")
    if not isinstance(name, str) or (name not in DATASETS and not datafile.is_file(name)):
        raise UsageError(f"{args.checkpoint} says it was trained on {str(name)[:60]!r}, not a data set of xpnet "
                         f"train ({', '.join(DATASETS)}) nor a data file: pass --data")
    wants_images = _wants_images(ck.net)
    if name in DATASETS:
        if args.label is not None:
            raise UsageError(f"--label {args.label}: names the label column of a --data CSV file")
        return _named(name, be, ck.dtype, saved_seed(args.checkpoint, cli), not wants_images), name, "test", None
    saved = datafile.saved_info(args.checkpoint, ck.extra)
    option = "--data" if args.data is not None else f"{args.checkpoint}: its --data"
    if saved is not None and _same_file(name, saved):
        prepared = datafile.prepare(option, name, args.label or saved.get("label"), saved_seed(args.checkpoint, cli),
                                    saved)
        return prepared.on(be, ck.dtype, not wants_images)[2], pathlib.Path(name).name, "test", saved["classes"]
    # another file: all of its samples, in the training file's layout and standardisation
    t = datafile.read(option, name, args.label, saved)
    if saved is None and t.classes is not None:
        raise UsageError(f"{option} {name}: its labels are names, but {args.checkpoint} was not trained on a "
                         "file with named classes (its classes are numbers)")
    X = t.X
    if saved is not None:
        X = datafile.standardize(datafile.sample_shape(f"{option} {name}", X, saved["shape"]), saved["mean"],
                                 saved["std"])
    return (datafile.to_backend(X, be, ck.dtype, not wants_images), be.asarray(t.y, dtype="int64")), \
        pathlib.Path(name).name, "all", None if saved is None else saved["classes"]


def _same_file(name, saved):
    p = pathlib.Path(name)
    return p.resolve() == pathlib.Path(saved["path"]) if p.exists() else name == saved["path"]


def _named(name, be, dtype, seed, flatten):
    from .recipes import load_named

    return load_named(name, be, dtype, seed, flatten)[2]


def _wants_images(net):
    from .train import _wants_images

    return _wants_images(net)
