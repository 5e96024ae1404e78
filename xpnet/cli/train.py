"""``xpnet train``: train a model on a data set or a data file, with a progress bar; write the
checkpoints, ``history.json``, ``metrics.json`` and the plots (``curves.png``, ``confusion.png``,
and ``misclassified.png`` for images or ``decision_boundary.png`` for 2-D points) into ``--out``.

A run directory describes one run: a new run (not ``--resume``) first removes every output an
earlier run left there (:func:`~xpnet.cli.paths.clear`; other files are left alone). A run
resumed in its own directory keeps the checkpoints and ``history.json`` and removes
``metrics.json`` and the plots, which it writes anew when it ends.

After training, the test split is evaluated twice, and each figure says which model it is:
the last epoch's net (``last.xpnet``: ``test_*`` in ``metrics.json``) and ``best.xpnet``, the
epoch of the best validation accuracy (``best_test_*``). ``--patience`` stops early on the
validation loss without putting earlier weights back: the last epoch stays the last one
trained, and the best one is ``best.xpnet``.

Started by a launcher (``mpiexec -n 2 xpnet train``, ``torchrun --nproc-per-node 2 -m xpnet
train --backend torch``), every rank trains its share of each global batch of ``--batch-size``
(:mod:`xpnet.distributed`); rank 0 alone prints, writes the run directory and evaluates the
test split. An error on any rank ends every rank, with a message naming it (rank 0 speaks
first when every rank has the same error). Each rank's GPU is its index on its machine.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

from . import USER_ERRORS, RunFailure, UsageError, checks, describe
from . import paths, report
from . import sequences  # --model gpt|lstm (importing it registers their classes: every command loads them)
from ._args import (backend_arg, data_arg, metrics_arg, nonneg_float, nonneg_int, positive_float, positive_int,
                    seed_arg)

HELP = "train a model (default: an MLP on the embedded 8x8 digits) and report its test accuracy"
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("cosine", "step", "onecycle", "none")


def add_arguments(parser):
    def add(*names, **kw):  # each option's Action, kept to check the settings a resume restores
        action = parser.add_argument(*names, **kw)
        ACTIONS[action.dest] = action

    add("--model", default="mlp", help="mlp, cnn, or the path of a JSON model spec (default: mlp); gpt or lstm: "
        "a sequence model, for --data sort, reverse, addition or a text file (a character corpus)")
    add("--data", default="digits", type=data_arg, help="digits (embedded, the default), mnist, fashion-mnist, "
        "spirals, moons, ring, or your own file: a .npz (arrays X and y) or a .csv with a header line "
        "(split 70/15/15 per class by --seed, standardised with the train split's statistics); for --model gpt "
        "or lstm: sort, reverse, addition (generated tasks) or a UTF-8 text file")
    add("--label", default=None, metavar="NAME", help="the label column of a --data CSV file (default: the column "
        "named label, target, class or y, else the last)")
    add("--backend", type=backend_arg, default=None, help="numpy, torch, torch:cuda, cupy, array_api_strict, "
        "auto (default: $XPNET_BACKEND, else numpy)")
    add("--dtype", default="float32", choices=("float32", "float64"))
    add("--precision", default=None, choices=("bf16", "fp16"), help="mixed precision: forward and backward in "
        "bfloat16 or float16 over float32 weights (torch has both, numpy float16 only; default: off)")
    add("--epochs", type=nonneg_int, default=None, help="total epochs (default: per data set; digits 40, a file "
        "50); with --resume, an --epochs equal to the checkpoint's epoch trains nothing and evaluates it anew")
    add("--batch-size", type=positive_int, default=None, help="default: per data set; digits 32")
    add("--optimizer", default="adam", choices=OPTIMIZERS)
    add("--lr", type=positive_float, default=None, help="peak learning rate (default: per data set)")
    add("--weight-decay", type=nonneg_float, default=0.0)
    add("--schedule", default="cosine", choices=SCHEDULES, help="learning-rate schedule (default: cosine)")
    add("--patience", type=positive_int, default=None, help="early stopping on validation loss")
    add("--threads", type=positive_int, default=None,
        help="CPU threads for the matrix products (default: 1 for digits and the 2-D sets, else all)")
    add("--metrics", type=metrics_arg, default=None, metavar="NAMES", help="more figures, comma-separated: "
        "top5 (top_k:K), precision, recall, f1; per epoch on the validation split, and at the end on the test split")
    add("--seed", type=seed_arg, default=0)
    add("--out", default=None, help="output directory (default: runs/<data>-<model>-<backend>; with --resume, the "
        "directory of the checkpoint). A new run first removes the outputs an earlier run left there "
        "(checkpoints, JSON files, plots); other files stay")
    add("--resume", default=None, metavar="CKPT", help="continue from a checkpoint (last.xpnet) to --epochs")
    add("--no-progress", action="store_true", help="no progress bar (it is off anyway when not a terminal)")
    add("--no-plots", action="store_true", help="do not draw PNGs (they need matplotlib)")


#: dest -> the argparse Action of each option (filled by add_arguments)
ACTIONS: dict = {}


#: the communicator of a run started by a launcher, once made (for the error path)
_RUN = {}


def run(args) -> int:
    """``xpnet train``; under a launcher, an error on any rank ends every rank (see :func:`_ranks_fail`)."""
    from xpnet import distributed

    launch = distributed.detect()
    if launch is None:
        return _run(args, None)
    if launch.launcher == "mpi":
        try:  # MPI first: a rank failing from here on can end them all
            _RUN["comm"] = distributed.init("mpi")
        except ImportError as e:
            raise UsageError(f"started by mpiexec, but {e}") from None
    try:
        return _run(args, launch)
    except BaseException as e:
        _ranks_fail(args, e, launch)
        raise


def _ranks_fail(args, e, launch):
    """End every rank for the error ``e`` of this one: the one-line message (with the traceback
    for a bug), naming the rank, then MPI's abort, or this process's exit under torchrun (which
    then ends the others). Ranks above 0 wait a second first, so that when every rank fails
    alike, rank 0's message is the one printed."""
    import time
    import traceback

    from . import USER_ERRORS, one_line
    from xpnet.distributed import mpi
    from xpnet.nets.fit import TrainingDiverged

    if launch.size == 1 or isinstance(e, SystemExit):
        return
    if isinstance(e, KeyboardInterrupt):
        status, bug = 130, False
    else:
        status = 2 if isinstance(e, UsageError) or (isinstance(e, USER_ERRORS) and not isinstance(e, RunFailure)) else 1
        bug = not isinstance(e, (UsageError, RunFailure, TrainingDiverged) + USER_ERRORS)
    if launch.rank > 0:
        time.sleep(1.0)
    if bug:
        traceback.print_exc()
    what = "interrupted" if isinstance(e, KeyboardInterrupt) else one_line(describe(e))
    print(f"{args._prog}: error: rank {launch.rank} of {launch.size}: {what}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    mpi.abort_world(status)


def _run(args, launch) -> int:
    import warnings

    import xpnet as xn

    # a diverging run overflows inside numpy; the NaN guard reports it once, with the epoch and step
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    from xpnet import backends

    from xpnet.nets.evaluate import net_backend

    from . import datafile
    from .recipes import RECIPES, cnn, load_named, mlp

    # everything a user can get wrong is checked before the first epoch, and raises UsageError
    chosen = None if args.backend is None else _backend(_rank_device(args.backend, launch))
    ck = None
    if args.resume is not None:
        ck = checks.load_checkpoint("--resume", args.resume, chosen)
        _restore_settings(args, ck)
    if sequences.wanted(args):  # --model gpt|lstm: next-token training (xpnet.cli.sequences)
        return sequences.run(args, launch, chosen, ck)
    source = _source(args, ck)
    recipe = RECIPES[args.data] if source is None else datafile.recipe(source.info)
    if ck is None and args.epochs == 0:
        raise UsageError("--epochs 0: nothing to train; a new run needs --epochs 1 or more "
                         "(to evaluate a finished run anew: --resume its last.xpnet)")
    args.epochs = recipe.epochs if args.epochs is None else args.epochs
    args.batch_size = args.batch_size or recipe.batch_size
    args.lr = args.lr or recipe.lr
    be = (chosen or _backend(None)) if ck is None else net_backend(ck.net)
    comm = None if launch is None else _communicator(be)
    out, where = _out_dir(args, be)
    plots = () if args.no_plots else _plots(recipe)
    paths.check(where, out, paths.RUN_OUTPUTS + plots)
    backends.manual_seed(args.seed)
    # None: every core (the library's own torch default is one thread, right for small nets
    # only), shared among the ranks of this machine
    be.set_threads(args.threads or recipe.threads or _cores(launch))
    names = report.metric_names(args.metrics)
    if args.precision is not None:
        if args.dtype != "float32":
            raise UsageError(f"--precision {args.precision}: the master weights are float32; drop --dtype {args.dtype}")
        try:
            be.low_precision_dtype({"bf16": "bfloat16", "fp16": "float16"}[args.precision], f"--precision {args.precision}")
        except ValueError as e:
            raise UsageError(str(e)) from None
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
        if source is None:
            train, val, test = load_named(args.data, be, args.dtype, args.seed, flatten)
        else:
            train, val, test = source.on(be, args.dtype, flatten)
        label = _data_label(args, source)
        checks.fits(xn, net, train, recipe, label, what, names)
        steps = -(-int(train[0].shape[0]) // args.batch_size)
        callbacks = _callbacks(xn, args, opt, out, steps, None if source is None else source.info)
        if comm is None or comm.rank == 0:
            paths.prepare(where, out)
            _clear(args, out)
        if comm is not None:
            _ranks_line(comm, args.batch_size)
        print(f"xpnet train: {label} ({int(train[0].shape[0])} train, {int(val[0].shape[0])} validation, "
              f"{int(test[0].shape[0])} test) on {be.describe()}, {args.dtype}"
              + ("" if args.precision is None else f" with {args.precision} mixed precision"))
        print(f"model: {net.__class__.__name__} of {len(list(net.named_children()))} layers, "
              f"{sum(_numel(p.shape) for p in net.parameters()):,} parameters; {opt!r}")
        t0 = time.perf_counter()
        # from here on a failure is the run's (exit status 1), not the command line's
        try:
            history = xn.fit(net, loss, opt, train, epochs=args.epochs, batch_size=args.batch_size, val=val,
                             callbacks=callbacks, progress=not args.no_progress, resume=ck, metrics=names or None,
                             precision=args.precision, distributed=comm)
            seconds = time.perf_counter() - t0
            if comm is not None and comm.rank > 0:
                return 0  # rank 0 evaluates and writes the outputs
            models = _evaluate_models(xn, net, loss, test, out, history, callbacks, names, be)
        except xn.TrainingDiverged as e:
            raise RunFailure(str(e)) from None
        except OSError as e:  # a checkpoint that could not be written: disk full, file too large, ...
            raise RunFailure(f"training stopped: a checkpoint could not be written: {describe(e)}") from None
        except MemoryError as e:
            raise RunFailure(f"training stopped: {describe(e)}") from None
    for line in report.lines([(m["label"], m["result"]) for m in models]):
        print(line)
    print(f"{len(history.get('epoch', []))} epochs in {seconds:.1f} s; checkpoints in {out}/")
    classes = None if source is None else source.info["classes"]
    try:
        _write_outputs(xn, out, args, recipe, history, models, seconds, net, test, be, plots, classes, label)
    except (OSError, MemoryError) as e:
        raise RunFailure(f"trained, but the outputs could not be written: {describe(e)}") from None
    return 0


def _communicator(be):
    """The run's communicator (:func:`xpnet.distributed.init` for backend ``be``); ranks above 0
    print nothing on stdout from here on."""
    from xpnet import distributed

    try:
        comm = _RUN["comm"] = distributed.init("auto", be)
    except (ImportError, RuntimeError, ValueError) as e:
        raise UsageError(f"started by a launcher, but its engine cannot start: {e}") from None
    if comm.rank > 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the rest of this process)
    return comm


def _ranks_line(comm, batch_size):
    """Rank 0 prints the ranks and each one's PID and machine (a launcher that reports a dead
    process by its PID, as MPICH's mpiexec does, then names the rank) and the batch split."""
    import socket

    who = comm.allgather_object((os.getpid(), socket.gethostname()))
    pids = ", ".join(f"rank {r} pid {pid} on {host}" for r, (pid, host) in enumerate(who))
    share = f"{batch_size // comm.size}-{-(-batch_size // comm.size)}" if batch_size % comm.size else batch_size // comm.size
    print(f"xpnet train: {comm.describe()}: {pids}; global batch {batch_size}, {share} per rank")


def _rank_device(spec, launch):
    from xpnet.distributed.launch import rank_device

    return rank_device(spec, launch)


def _cores(launch):
    """CPU threads for each rank: the machine's cores shared among its ranks."""
    n = os.cpu_count() or 1
    return n if launch is None else max(1, n // launch.local_size)


def _source(args, ck):
    """The data file of this run, prepared on the host (None for one of xpnet's data sets);
    a resumed run's file must be the one it began with."""
    from . import datafile
    from .recipes import DATASETS

    if args.data in DATASETS:
        if args.label is not None:
            raise UsageError(f"--label {args.label}: names the label column of a --data CSV file; "
                             f"--data {args.data} is one of xpnet's data sets")
        return None
    option = f"--resume {args.resume}: its --data" if ck is not None else "--data"
    saved = None if ck is None else datafile.saved_info(f"--resume {args.resume}", ck.extra)
    if ck is not None and saved is None:
        raise UsageError(f"--resume {args.resume}: the checkpoint was trained on the file {args.data} "
                         "but does not describe it (no data_file in its extra)")
    source = datafile.prepare(option, args.data, args.label, args.seed, saved)
    args.data = source.info["path"]  # saved absolute: evaluate and resume find it from anywhere
    return source


def _data_label(args, source):
    return args.data if source is None else pathlib.Path(args.data).name


def _evaluate_models(xn, net, loss, test, out, history, callbacks, names, be):
    """The test figures of the last epoch's net and of ``best.xpnet``: ``[{"label", "role",
    "epoch", "result"}, ...]`` (best.xpnet only when it exists; when it is the last epoch's
    net, the same figures)."""
    epochs = history.get("epoch") or [0]
    last_epoch = epochs[-1]
    stopped = any(isinstance(cb, xn.EarlyStopping) and cb.stopped_epoch is not None for cb in callbacks)
    metrics = names or None
    last = xn.evaluate(net, loss, test, metrics=metrics)
    models = [{"role": "last", "epoch": last_epoch, "result": last,
               "label": report.model_label("last", last_epoch, stopped=stopped)}]
    best_path = out / "best.xpnet"
    if best_path.is_file():
        best = xn.load(best_path, backend=be)
        result = last if best.epoch == last_epoch else xn.evaluate(best.net, loss, test, metrics=metrics)
        models.append({"role": "best", "epoch": best.epoch, "result": result,
                       "label": report.model_label("best", best.epoch, history)})
    return models


def _clear(args, out):
    """A new run, or one resumed into another directory, removes every earlier output there; a
    run resumed in its own directory removes only what it will write anew at the end."""
    own = args.resume is not None and pathlib.Path(args.resume).resolve().parent == out.resolve()
    removed = paths.clear(out, ("metrics.json",) + paths.RUN_PLOTS if own else paths.RUN_OUTPUTS + paths.RUN_PLOTS)
    if removed and not own:
        print(f"xpnet train: removed the earlier run's {', '.join(removed)} from {out}/")


def _out_dir(args, be):
    """The output directory and how to name it in messages: ``--out``; when resuming, the
    directory holding the checkpoint (the run continues where it was written); else
    ``runs/<data>-<model>-<backend>``, the backend's label made safe for a path (``torch-cuda-0``)."""
    if args.out is not None:
        if not args.out:
            raise UsageError("--out: an empty path; give a directory (--out . for the working directory)")
        return pathlib.Path(args.out), "--out"
    if args.resume is not None:
        return pathlib.Path(args.resume).parent, "the output directory (that of --resume; change it with --out)"
    name = f"{pathlib.Path(args.data).stem}-{pathlib.Path(args.model).stem}-{safe_label(be.label)}"
    return pathlib.Path("runs") / name, "the output directory (the default; change it with --out)"


def safe_label(label):
    """A backend label as part of a file name: ``torch:cuda:0`` -> ``torch-cuda-0``."""
    return "".join(c if c.isalnum() or c in "._" else "-" for c in label)


def _plots(recipe):
    """The PNGs of a run: the curves, the confusion matrix, and the decision regions for 2-D
    points or a grid of misclassified samples for images of 1, 3 or 4 channels (other
    samples get neither)."""
    if recipe.image is None and recipe.features == 2:
        sample = ("decision_boundary.png",)
    else:
        drawable = recipe.image is not None and recipe.image[0] in (1, 3, 4)  # grey, RGB or RGBA
        sample = ("misclassified.png",) if drawable else ()
    return ("curves.png", "confusion.png") + sample


#: saved settings that a resumed run takes from its checkpoint (the others: from this command line)
_RESTORED = ("model", "data", "label", "dtype", "precision", "batch_size", "optimizer", "lr", "weight_decay", "schedule", "patience",
             "metrics", "seed")


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


def _optimizer(xn, args, net):
    kinds = {"adam": xn.Adam, "adamw": xn.AdamW, "sgd": xn.SGD, "rmsprop": xn.RMSprop}
    kw = {"weight_decay": args.weight_decay}
    if args.optimizer == "sgd":
        kw["momentum"] = 0.9
    try:
        return kinds[args.optimizer](net, lr=args.lr, **kw)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _callbacks(xn, args, opt, out, steps, data_file):
    cli = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}
    extra = {"cli": cli} if data_file is None else {"cli": cli, "data_file": data_file}
    cbs = [
        xn.ModelCheckpoint(out / "last.xpnet", extra={**extra, "role": "last"}),
        xn.ModelCheckpoint(out / "best.xpnet", monitor="val_accuracy", extra={**extra, "role": "best"}),
    ]
    if args.schedule == "cosine":
        cbs.append(xn.LRScheduler(xn.CosineAnnealingLR(opt, T_max=max(args.epochs, 1))))
    elif args.schedule == "step":
        cbs.append(xn.LRScheduler(xn.StepLR(opt, step_size=max(args.epochs // 3, 1), gamma=0.1)))
    elif args.schedule == "onecycle":
        cbs.append(xn.LRScheduler(xn.OneCycleLR(opt, max_lr=args.lr, total_steps=max(args.epochs * steps, 2)), "step"))
    if args.patience:
        # the weights stay the last epoch's (best.xpnet holds the best): "last epoch" then means
        # the net last.xpnet holds, and the figures printed for it are that net's
        cbs.append(xn.EarlyStopping("val_loss", patience=args.patience))
    if args.no_progress or not sys.stderr.isatty():
        cbs.append(xn.EpochLogger())
    return cbs


def _write_outputs(xn, out, args, recipe, history, models, seconds, net, test, be, plots, classes, label):
    from xpnet import backends, metrics
    from xpnet.io.atomic import atomic_write

    last = models[0]
    doc = {f"test_{k}": v for k, v in last["result"].items()}
    doc.update({"test_samples": int(test[0].shape[0]), "last_epoch": last["epoch"], "model_last": last["label"]})
    if len(models) > 1:
        best = models[1]
        doc.update({"best_epoch": best["epoch"], "model_best": best["label"],
                    "best_val_accuracy": _history_value(history, "val_accuracy", best["epoch"])})
        doc.update({f"best_test_{k}": v for k, v in best["result"].items()})
    doc.update({"seconds": seconds, "epochs": len(history.get("epoch", [])), "backend": be.label, "data": args.data,
                "model": args.model})
    for name, content in (("history.json", history), ("metrics.json", doc)):
        with atomic_write(out / name, "w") as f:  # a crash mid-write leaves the previous file whole
            f.write(json.dumps(content, indent=1))
    if not plots:
        return
    which = f"{last['label']}, test split"
    try:
        plot = xn.plot
        if history.get("epoch"):
            plot.curves(history, out / "curves.png", title=f"{args.model} on {label}")
        pred = xn.predict(net, test[0])
        cm = metrics.confusion_matrix(pred, test[1], max(recipe.classes, int(pred.shape[1])))
        names = classes if classes is None or len(classes) == int(cm.shape[0]) else None
        plot.confusion(backends.to_numpy(cm), out / "confusion.png", names, normalize="color",
                       title=f"confusion matrix: {last['label']}\ntest split ({int(test[0].shape[0])} samples)")
        if "decision_boundary.png" in plots:
            plot.decision_boundary(net, *test, out / "decision_boundary.png", class_names=names, split="test",
                                   title=f"decision regions: {which}")
        elif "misclassified.png" in plots:
            plot.misclassified(net, *test, out / "misclassified.png", class_names=names,
                               title=f"{args.model} on {label}: {which}")
    except ImportError as e:
        print(f"xpnet train: no plots: {e}", file=sys.stderr)


def _history_value(history, key, epoch):
    epochs, values = history.get("epoch", []), history.get(key, [])
    return values[epochs.index(epoch)] if epoch in epochs and len(values) == len(epochs) else None


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n
