"""``xpnet train``: train a model on a data set, with a progress bar; write the checkpoints,
``history.json``, ``metrics.json`` and the plots (``curves.png``, and ``misclassified.png`` or
``decision_boundary.png``) into ``--out``."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

from . import USER_ERRORS, RunFailure, UsageError, checks, describe
from ._args import backend_arg, nonneg_float, nonneg_int, positive_float, positive_int, seed_arg

HELP = "train a model (default: an MLP on the embedded 8x8 digits) and report its test accuracy"
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("cosine", "step", "onecycle", "none")


def add_arguments(parser):
    from .recipes import DATASETS

    def add(*names, **kw):  # each option's Action, kept to check the settings a resume restores
        action = parser.add_argument(*names, **kw)
        ACTIONS[action.dest] = action

    add("--model", default="mlp", help="mlp, cnn, or the path of a JSON model spec (default: mlp)")
    add("--data", default="digits", choices=DATASETS, help="the data set (default: digits, embedded)")
    add("--backend", type=backend_arg, default=None, help="numpy, torch, torch:cuda, cupy, array_api_strict, "
        "auto (default: $XPNET_BACKEND, else numpy)")
    add("--dtype", default="float32", choices=("float32", "float64"))
    add("--epochs", type=nonneg_int, default=None, help="total epochs (default: per data set; digits 40)")
    add("--batch-size", type=positive_int, default=None, help="default: per data set; digits 32")
    add("--optimizer", default="adam", choices=OPTIMIZERS)
    add("--lr", type=positive_float, default=None, help="peak learning rate (default: per data set)")
    add("--weight-decay", type=nonneg_float, default=0.0)
    add("--schedule", default="cosine", choices=SCHEDULES, help="learning-rate schedule (default: cosine)")
    add("--patience", type=positive_int, default=None, help="early stopping on validation loss")
    add("--threads", type=positive_int, default=None,
        help="CPU threads for the matrix products (default: 1 for digits and the 2-D sets, else all)")
    add("--seed", type=seed_arg, default=0)
    add("--out", default=None, help="output directory (default: runs/<data>-<model>; "
        "with --resume, the directory of the checkpoint)")
    add("--resume", default=None, metavar="CKPT", help="continue from a checkpoint (last.xpnet) to --epochs")
    add("--no-progress", action="store_true", help="no progress bar (it is off anyway when not a terminal)")
    add("--no-plots", action="store_true", help="do not draw PNGs (they need matplotlib)")


#: dest -> the argparse Action of each option (filled by add_arguments)
ACTIONS: dict = {}


def run(args) -> int:
    import warnings

    import xpnet as xn

    # a diverging run overflows inside numpy; the NaN guard reports it once, with the epoch and step
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    from xpnet import backends

    from xpnet.nets.evaluate import net_backend

    from . import paths
    from .recipes import RECIPES, cnn, load, mlp

    # everything a user can get wrong is checked before the first epoch, and raises UsageError
    chosen = None if args.backend is None else _backend(args.backend)
    ck = None
    if args.resume is not None:
        ck = checks.load_checkpoint("--resume", args.resume, chosen)
        _restore_settings(args, ck)
    recipe = RECIPES[args.data]
    args.epochs = recipe.epochs if args.epochs is None else args.epochs
    args.batch_size = args.batch_size or recipe.batch_size
    args.lr = args.lr or recipe.lr
    out, where = _out_dir(args)
    paths.check(where, out, OUTPUTS + (() if args.no_plots else ("curves.png", _sample_plot(recipe))))
    be = (chosen or _backend(None)) if ck is None else net_backend(ck.net)
    backends.manual_seed(args.seed)
    threads = args.threads or recipe.threads
    if threads:
        be.set_threads(threads)
    with backends.use(be):
        if ck is not None:
            net, opt = ck.net, ck.optimizer
            what = f"the model of --resume {args.resume}"
            if opt is None:
                raise UsageError(f"--resume {args.resume}: the checkpoint holds no optimizer state to resume from")
            if ck.epoch > args.epochs:
                raise UsageError(f"--resume {args.resume}: the checkpoint is at epoch {ck.epoch}, "
                                 f"past --epochs {args.epochs}")
        else:
            net = _model(args.model, recipe, mlp, cnn, be, args.dtype)
            opt = _optimizer(xn, args, net)
            what = f"--model {args.model}"
        loss = xn.CrossEntropyLoss()
        if ck is None:  # a resumed net came from a checkpoint: it can make one
            checks.round_trip(xn, be, net, opt, loss, what)
        flatten = not _wants_images(net)
        train, val, test = _data(load, args.data, be, args.dtype, args.seed, flatten)
        checks.fits(xn, net, train, recipe, args.data, what)
        steps = -(-int(train[0].shape[0]) // args.batch_size)
        callbacks = _callbacks(xn, args, opt, out, steps)
        paths.prepare(where, out)
        print(f"xpnet train: {args.data} ({int(train[0].shape[0])} train, {int(val[0].shape[0])} validation, "
              f"{int(test[0].shape[0])} test) on {be.describe()}, {args.dtype}")
        print(f"model: {net.__class__.__name__} of {len(list(net.named_children()))} layers, "
              f"{sum(_numel(p.shape) for p in net.parameters()):,} parameters; {opt!r}")
        t0 = time.perf_counter()
        # from here on a failure is the run's (exit status 1), not the command line's
        try:
            history = xn.fit(net, loss, opt, train, epochs=args.epochs, batch_size=args.batch_size, val=val,
                             callbacks=callbacks, progress=not args.no_progress, resume=ck)
            seconds = time.perf_counter() - t0
            result = xn.evaluate(net, loss, test)
        except xn.TrainingDiverged as e:
            raise RunFailure(str(e)) from None
        except OSError as e:  # a checkpoint that could not be written: disk full, file too large, ...
            raise RunFailure(f"training stopped: a checkpoint could not be written: {describe(e)}") from None
        except MemoryError as e:
            raise RunFailure(f"training stopped: {describe(e)}") from None
    print(f"test accuracy {result['accuracy']:.2%} (loss {result['loss']:.4f}) after {len(history.get('epoch', []))} "
          f"epochs in {seconds:.1f} s; checkpoints in {out}/")
    try:
        _write_outputs(xn, out, args, recipe, history, result, seconds, net, test, be)
    except (OSError, MemoryError) as e:
        raise RunFailure(f"trained, but the outputs could not be written: {describe(e)}") from None
    return 0


#: what every run writes into its output directory (besides the plots)
OUTPUTS = ("last.xpnet", "best.xpnet", "history.json", "metrics.json")


def _out_dir(args):
    """The output directory and how to name it in messages: ``--out``; when resuming, the
    directory holding the checkpoint (the run continues where it was written); else
    ``runs/<data>-<model>``."""
    if args.out is not None:
        if not args.out:
            raise UsageError("--out: an empty path; give a directory (--out . for the working directory)")
        return pathlib.Path(args.out), "--out"
    if args.resume is not None:
        return pathlib.Path(args.resume).parent, "the output directory (that of --resume; change it with --out)"
    return pathlib.Path(f"runs/{args.data}-{pathlib.Path(args.model).stem}"), \
        "the output directory (the default; change it with --out)"


def _sample_plot(recipe):
    """The second plot: the decision regions for 2-D points, else a grid of misclassified samples."""
    return "decision_boundary.png" if recipe.image is None and recipe.features == 2 else "misclassified.png"


#: saved settings that a resumed run takes from its checkpoint (the others: from this command line)
_RESTORED = ("model", "data", "dtype", "batch_size", "optimizer", "lr", "weight_decay", "schedule", "patience", "seed")


def _restore_settings(args, ck):
    """Take the run's own settings from the checkpoint, each checked as the command line's would be."""
    extra = ck.extra if isinstance(ck.extra, dict) else {}
    saved = extra.get("cli")
    if not saved or not isinstance(saved, dict):
        raise UsageError(f"--resume {args.resume}: this checkpoint was not written by xpnet train")
    for k in _RESTORED:
        if k in saved:
            setattr(args, k, _saved_value(args, k, saved[k]))
    if "epochs" not in saved:
        raise UsageError(f"--resume {args.resume}: the checkpoint's settings lack the planned number of epochs")
    planned = _saved_value(args, "epochs", saved["epochs"], required=True)
    if args.epochs is None:
        args.epochs = planned
    elif args.epochs != planned and args.schedule in ("cosine", "onecycle"):
        raise UsageError(
            f"--resume: this run's {args.schedule} schedule was planned for {planned} epochs; "
            f"resume with --epochs {planned} (or train anew)"
        )


def _saved_value(args, dest, v, required=False):
    """The saved setting ``dest``, validated by its option's own type and choices."""
    import argparse

    action = ACTIONS[dest]
    option = action.option_strings[0]

    def bad(why):
        return UsageError(f"--resume {args.resume}: the checkpoint's saved {option} is {checks.short(v)}: {why}")

    if v is None:
        if action.default is None and not required:
            return None
        raise bad("a value is needed")
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise bad(f"expected {'a number' if action.type else 'a string'}")
    if action.type is not None:
        try:
            v = action.type(str(v))
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            raise bad(str(e)) from None
    elif not isinstance(v, str):
        raise bad("expected a string")
    if action.choices is not None and v not in action.choices:
        raise bad(f"expected one of {', '.join(map(str, action.choices))}")
    return v


def _backend(name):
    from xpnet import backends

    try:
        return backends.get(name)
    except (backends.BackendUnavailable, ValueError) as e:
        source = "--backend" if name is not None else f"${backends.ENV_VAR}={os.environ.get(backends.ENV_VAR, '')!r}"
        raise UsageError(f"{source}: {e}") from None


def _model(spec, recipe, mlp, cnn, be, dtype):
    from xpnet.nets import spec as S

    if spec in ("mlp", "cnn"):
        try:
            net = mlp(recipe) if spec == "mlp" else cnn(recipe)
        except ValueError as e:
            raise UsageError(str(e)) from None
        return net.to(be, dtype)
    checks.regular_file("--model", spec, checks.MAX_SPEC_BYTES)
    try:
        return S.build(S.load_spec(spec), backend=be).to(be, dtype)
    except FileNotFoundError as e:  # its message names the file
        raise UsageError(f"--model: {e}") from None
    except MemoryError as e:
        raise UsageError(f"--model {spec}: the model is too large to allocate: {describe(e)}") from None
    except OSError as e:  # a directory, an unreadable file
        raise UsageError(f"--model {spec}: {e.strerror or describe(e)}") from None
    except USER_ERRORS as e:  # a bad spec file: unreadable, not JSON, nested too deeply, bad arguments
        raise UsageError(f"--model {spec}: {describe(e)}") from None


def _wants_images(net):
    from xpnet import layers as L

    first = next(iter(net.named_children()), (None, net))[1]
    return isinstance(first, (L.Conv2d, L.Flatten, L.MaxPool2d, L.AvgPool2d, L.BatchNorm2d))


def _data(load, name, be, dtype, seed, flatten):
    from xpnet.data import DatasetUnavailable

    try:
        return load(name, be, dtype, seed, flatten)
    except (DatasetUnavailable, ValueError) as e:  # offline, an unusable cache directory, a damaged file in it
        raise UsageError(f"--data {name}: {e}") from None
    except (OSError, MemoryError) as e:
        raise UsageError(f"--data {name}: {describe(e)}") from None


def _optimizer(xn, args, net):
    kinds = {"adam": xn.Adam, "adamw": xn.AdamW, "sgd": xn.SGD, "rmsprop": xn.RMSprop}
    kw = {"weight_decay": args.weight_decay}
    if args.optimizer == "sgd":
        kw["momentum"] = 0.9
    try:
        return kinds[args.optimizer](net, lr=args.lr, **kw)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _callbacks(xn, args, opt, out, steps):
    cli = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}
    cbs = [
        xn.ModelCheckpoint(out / "last.xpnet", extra={"cli": cli}),
        xn.ModelCheckpoint(out / "best.xpnet", monitor="val_accuracy", extra={"cli": cli}),
    ]
    if args.schedule == "cosine":
        cbs.append(xn.LRScheduler(xn.CosineAnnealingLR(opt, T_max=max(args.epochs, 1))))
    elif args.schedule == "step":
        cbs.append(xn.LRScheduler(xn.StepLR(opt, step_size=max(args.epochs // 3, 1), gamma=0.1)))
    elif args.schedule == "onecycle":
        cbs.append(xn.LRScheduler(xn.OneCycleLR(opt, max_lr=args.lr, total_steps=max(args.epochs * steps, 2)), "step"))
    if args.patience:
        cbs.append(xn.EarlyStopping("val_loss", patience=args.patience, restore_best_weights=True))
    if args.no_progress or not sys.stderr.isatty():
        cbs.append(xn.EpochLogger())
    return cbs


def _write_outputs(xn, out, args, recipe, history, result, seconds, net, test, be):
    from xpnet.io.atomic import atomic_write

    metrics = {"test_loss": result["loss"], "test_accuracy": result["accuracy"], "seconds": seconds,
               "epochs": len(history.get("epoch", [])), "backend": be.label, "data": args.data, "model": args.model}
    for name, doc in (("history.json", history), ("metrics.json", metrics)):
        with atomic_write(out / name, "w") as f:  # a crash mid-write leaves the previous file whole
            f.write(json.dumps(doc, indent=1))
    if args.no_plots:
        return
    try:
        plot = xn.plot
        if history.get("epoch"):
            plot.curves(history, out / "curves.png", title=f"{args.model} on {args.data}")
        sample = _sample_plot(recipe)
        if sample == "decision_boundary.png":
            plot.decision_boundary(net, *test, out / sample)
        else:
            plot.misclassified(net, *test, out / sample)
    except ImportError as e:
        print(f"xpnet train: no plots: {e}", file=sys.stderr)


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n
