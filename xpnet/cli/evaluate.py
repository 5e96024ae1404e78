"""``xpnet evaluate CKPT``: the test loss, accuracy and confusion matrix of a checkpoint."""

from __future__ import annotations

import json

from . import UsageError, describe
from ._args import backend_arg, positive_int

HELP = "evaluate a checkpoint on the test split of its data set"


def add_arguments(p):
    from .recipes import DATASETS

    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by xpnet train or xpnet.save")
    p.add_argument("--data", default=None, choices=DATASETS, help="default: the data set it was trained on")
    p.add_argument("--backend", type=backend_arg, default=None, help="default: the one it was saved from, if usable")
    p.add_argument("--batch-size", type=positive_int, default=1024)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args) -> int:
    import xpnet as xn
    from xpnet import backends, metrics

    from xpnet.data import DatasetUnavailable
    from xpnet.nets.evaluate import net_backend

    from .recipes import DATASETS, load
    from .checks import load_checkpoint, saved_seed
    from .train import _wants_images

    if args.backend is not None:
        try:
            backends.get(args.backend)
        except (backends.BackendUnavailable, ValueError) as e:
            raise UsageError(f"--backend: {e}") from None
    ck = load_checkpoint("", args.checkpoint, args.backend)
    cli = ck.extra.get("cli") if isinstance(ck.extra, dict) else None
    cli = cli if isinstance(cli, dict) else {}
    name = args.data or cli.get("data")
    if name is None:
        raise UsageError(f"{args.checkpoint} does not say which data set it was trained on: pass --data")
    if name not in DATASETS:
        raise UsageError(f"{args.checkpoint} says it was trained on {str(name)[:60]!r}, not a data set of xpnet "
                         f"train ({', '.join(DATASETS)}): pass --data")
    net = ck.net
    be = net_backend(net)

    try:
        _, _, (X, y) = load(name, be, ck.dtype, saved_seed(args.checkpoint, cli), not _wants_images(net))
    except (DatasetUnavailable, ValueError) as e:  # offline, or a damaged file in the cache
        raise UsageError(f"--data {name}: {e}") from None
    except (OSError, MemoryError) as e:
        raise UsageError(f"--data {name}: {describe(e)}") from None
    loss = ck.loss if isinstance(ck.loss, xn.Loss) else xn.CrossEntropyLoss()
    try:
        result = xn.evaluate(net, loss, (X, y), batch_size=args.batch_size)
        pred = xn.predict(net, X, batch_size=args.batch_size)
    except (ValueError, TypeError) as e:
        raise UsageError(f"the model does not fit the {name} data: {e}") from None
    if int(pred.ndim) != 2:
        raise UsageError(f"the model gives outputs of shape {tuple(pred.shape)}, not class scores (N, classes)")
    classes = int(pred.shape[1])
    cm = backends.to_numpy(metrics.confusion_matrix(pred, y, classes)).tolist()
    if args.json:
        print(json.dumps({"data": name, "epoch": ck.epoch, "backend": be.label, **result, "confusion_matrix": cm}))
        return 0
    print(f"{args.checkpoint}: epoch {ck.epoch}, {name} test split ({int(X.shape[0])} samples) on {be.describe()}")
    print(f"test accuracy {result['accuracy']:.2%}  loss {result['loss']:.4f}")
    print("confusion matrix (rows: true class, columns: predicted):")
    width = max(3, len(str(max(max(r) for r in cm))))
    print("     " + " ".join(f"{j:>{width}}" for j in range(classes)))
    for i, row in enumerate(cm):
        print(f"{i:>4} " + " ".join(f"{v:>{width}}" for v in row))
    return 0
