"""``xpnet evaluate CKPT``: the test loss, accuracy and confusion matrix of a checkpoint."""

from __future__ import annotations

import json

from . import UsageError
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

    from .recipes import load
    from .train import _wants_images

    if args.backend is not None:
        try:
            backends.get(args.backend)
        except (backends.BackendUnavailable, ValueError) as e:
            raise UsageError(f"--backend: {e}") from None
    try:
        ck = xn.load(args.checkpoint, backend=args.backend)
    except (FileNotFoundError, xn.CheckpointError) as e:
        raise UsageError(str(e)) from None
    cli = ck.extra.get("cli") or {}
    name = args.data or cli.get("data")
    if name is None:
        raise UsageError(f"{args.checkpoint} does not say which data set it was trained on: pass --data")
    net = ck.net
    be = net_backend(net)

    try:
        _, _, (X, y) = load(name, be, ck.dtype, int(cli.get("seed", 0)), not _wants_images(net))
    except (DatasetUnavailable, ValueError) as e:  # offline, or a damaged file in the cache
        raise UsageError(f"--data {name}: {e}") from None
    loss = ck.loss or xn.CrossEntropyLoss()
    try:
        result = xn.evaluate(net, loss, (X, y), batch_size=args.batch_size)
    except ValueError as e:
        raise UsageError(f"the model does not fit the {name} data: {e}") from None
    pred = xn.predict(net, X, batch_size=args.batch_size)
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
