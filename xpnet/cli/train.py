"""``xpnet train``: train a model on a data set, with a progress bar; write the checkpoints,
``history.json``, ``metrics.json`` and the plots (``curves.png``, and ``misclassified.png`` or
``decision_boundary.png``) into ``--out``."""

from __future__ import annotations

import json
import pathlib
import sys
import time

from . import UsageError
from ._args import backend_arg, nonneg_int, positive_float, positive_int

HELP = "train a model (default: an MLP on the embedded 8x8 digits) and report its test accuracy"
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("cosine", "step", "onecycle", "none")


def add_arguments(p):
    from .recipes import DATASETS

    p.add_argument("--model", default="mlp", help="mlp, cnn, or the path of a JSON model spec (default: mlp)")
    p.add_argument("--data", default="digits", choices=DATASETS, help="the data set (default: digits, embedded)")
    p.add_argument("--backend", type=backend_arg, default=None, help="numpy, torch, torch:cuda, cupy, array_api_strict, "
                   "auto (default: $XPNET_BACKEND, else numpy)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--epochs", type=nonneg_int, default=None, help="total epochs (default: per data set; digits 40)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="default: per data set; digits 32")
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    p.add_argument("--lr", type=positive_float, default=None, help="peak learning rate (default: per data set)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="cosine", choices=SCHEDULES, help="learning-rate schedule (default: cosine)")
    p.add_argument("--patience", type=positive_int, default=None, help="early stopping on validation loss")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for the matrix products (default: 1 for digits and the 2-D sets, else all)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--out", default=None, help="output directory (default: runs/<data>-<model>)")
    p.add_argument("--resume", default=None, metavar="CKPT", help="continue from a checkpoint (last.xpnet) to --epochs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is off anyway when not a terminal)")
    p.add_argument("--no-plots", action="store_true", help="do not draw PNGs (they need matplotlib)")


def run(args) -> int:
    import warnings

    import xpnet as xn

    # a diverging run overflows inside numpy; the NaN guard reports it once, with the epoch and step
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    from xpnet import backends

    from xpnet.nets.evaluate import net_backend

    from .recipes import RECIPES, cnn, load, mlp

    chosen = None if args.backend is None else _backend(args.backend)
    ck = None
    if args.resume is not None:
        ck = _load_checkpoint(args.resume, chosen)
        saved = ck.extra.get("cli")
        if not saved:
            raise UsageError(f"--resume {args.resume}: this checkpoint was not written by xpnet train")
        for k, v in saved.items():  # the run's own settings, except the outputs
            if k not in ("epochs", "out", "resume", "no_progress", "no_plots", "backend", "threads"):
                setattr(args, k, v)
        if args.epochs is None:
            args.epochs = saved["epochs"]
        elif args.epochs != saved["epochs"] and args.schedule in ("cosine", "onecycle"):
            raise UsageError(
                f"--resume: this run's {args.schedule} schedule was planned for {saved['epochs']} epochs; "
                f"resume with --epochs {saved['epochs']} (or train anew)"
            )
    recipe = RECIPES[args.data]
    args.epochs = recipe.epochs if args.epochs is None else args.epochs
    args.batch_size = args.batch_size or recipe.batch_size
    args.lr = args.lr or recipe.lr
    out = pathlib.Path(args.out or f"runs/{args.data}-{pathlib.Path(args.model).stem}")
    be = (chosen or _backend(None)) if ck is None else net_backend(ck.net)
    backends.manual_seed(args.seed)
    threads = args.threads or recipe.threads
    if threads:
        be.set_threads(threads)
    with backends.use(be):
        if ck is not None:
            net, opt = ck.net, ck.optimizer
        else:
            net = _model(args.model, recipe, mlp, cnn, be, args.dtype)
            opt = _optimizer(xn, args, net)
        flatten = not _wants_images(net)
        train, val, test = _data(load, args.data, be, args.dtype, args.seed, flatten)
        steps = -(-int(train[0].shape[0]) // args.batch_size)
        callbacks = _callbacks(xn, args, opt, out, steps)
        print(f"xpnet train: {args.data} ({int(train[0].shape[0])} train, {int(val[0].shape[0])} validation, "
              f"{int(test[0].shape[0])} test) on {be.describe()}, {args.dtype}")
        print(f"model: {net.__class__.__name__} of {len(list(net.named_children()))} layers, "
              f"{sum(_numel(p.shape) for p in net.parameters()):,} parameters; {opt!r}")
        loss = xn.CrossEntropyLoss()
        t0 = time.perf_counter()
        try:
            history = xn.fit(net, loss, opt, train, epochs=args.epochs, batch_size=args.batch_size, val=val,
                             callbacks=callbacks, progress=not args.no_progress, resume=ck)
        except xn.TrainingDiverged as e:
            print(f"xpnet train: {e}", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - t0
        result = xn.evaluate(net, loss, test)
    print(f"test accuracy {result['accuracy']:.2%} (loss {result['loss']:.4f}) after {len(history.get('epoch', []))} "
          f"epochs in {seconds:.1f} s; checkpoints in {out}/")
    _write_outputs(xn, out, args, history, result, seconds, net, test, be)
    return 0


def _load_checkpoint(path, backend):
    import xpnet as xn

    try:
        ck = xn.load(path, backend=backend)
    except (FileNotFoundError, xn.CheckpointError) as e:
        raise UsageError(f"--resume: {e}") from None
    return ck


def _backend(name):
    from xpnet import backends

    try:
        return backends.get(name)
    except (backends.BackendUnavailable, ValueError) as e:
        raise UsageError(f"--backend: {e}") from None


def _model(spec, recipe, mlp, cnn, be, dtype):
    from xpnet.nets import spec as S

    if spec == "mlp":
        net = mlp(recipe)
    elif spec == "cnn":
        try:
            net = cnn(recipe)
        except ValueError as e:
            raise UsageError(str(e)) from None
    else:
        try:
            net = S.build(S.load_spec(spec), backend=be)
        except (OSError, ValueError) as e:
            raise UsageError(f"--model: {e}") from None
    return net.to(be, dtype)


def _wants_images(net):
    from xpnet import layers as L

    first = next(iter(net.named_children()), (None, net))[1]
    return isinstance(first, (L.Conv2d, L.Flatten, L.MaxPool2d, L.AvgPool2d, L.BatchNorm2d))


def _data(load, name, be, dtype, seed, flatten):
    from xpnet.data import DatasetUnavailable

    try:
        return load(name, be, dtype, seed, flatten)
    except (DatasetUnavailable, ValueError) as e:  # offline, or a damaged file in the cache
        raise UsageError(f"--data {name}: {e}") from None


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


def _write_outputs(xn, out, args, history, result, seconds, net, test, be):
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(json.dumps(history, indent=1))
    metrics = {"test_loss": result["loss"], "test_accuracy": result["accuracy"], "seconds": seconds,
               "epochs": len(history.get("epoch", [])), "backend": be.label, "data": args.data, "model": args.model}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if args.no_plots:
        return
    try:
        plot = xn.plot
        if history.get("epoch"):
            plot.curves(history, out / "curves.png", title=f"{args.model} on {args.data}")
        if int(test[0].ndim) == 2 and int(test[0].shape[1]) == 2:
            plot.decision_boundary(net, *test, out / "decision_boundary.png")
        else:
            plot.misclassified(net, *test, out / "misclassified.png")
    except ImportError as e:
        print(f"xpnet train: no plots: {e}", file=sys.stderr)


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n
