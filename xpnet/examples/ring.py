"""Train the ring-vs-blob classifier of the classic tutorials, from scratch, and report accuracy.

    python -m xpnet.examples.ring [--backend numpy|torch|cupy|array_api_strict|auto] [--epochs 1000]

A noisy ring of 100 points around a blob of 100 points; Linear(2,4)-ReLU-Linear(4,2),
softmax cross-entropy, full-batch SGD at lr 0.1. Prints the loss as it trains and the
final training accuracy. With the defaults (weights seeded with 3, data with 0) it reaches
100% at epoch 455 on every backend, from the same initial weights.
"""

from __future__ import annotations

import argparse
import sys
import time

import xpnet as xn
from xpnet import backends
from xpnet.data import ring_vs_blob


def train(backend=None, epochs=1000, lr=0.1, seed=3, data_seed=0, log_every=100, out=None):
    """Train and return the final training accuracy (a float in [0, 1])."""
    out = sys.stdout if out is None else out  # looked up at the call, not at import
    be = backends.get(backend)
    xp = be.xp
    backends.get("numpy").manual_seed(seed)
    # built on numpy and moved: the same initial weights on every backend
    net = xn.Sequential(xn.Linear(2, 4, backend="numpy"), xn.ReLU(), xn.Linear(4, 2, backend="numpy")).to(be)
    x, y = ring_vs_blob(n_per_class=100, seed=data_seed, backend=be)
    loss_fn = xn.CrossEntropyLoss()
    opt = xn.SGD(net.parameters(), lr=lr)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        net.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        if epoch % log_every == 0 or epoch == epochs:
            print(f"epoch {epoch:5d}  loss {float(loss):.4f}", file=out)  # read back only when logged
    net.eval()
    acc = float(xp.mean(xp.astype(xp.argmax(net(x), axis=1) == y, xp.float32)))
    print(f"{be.describe()}: training accuracy {acc:.1%} after {epochs} epochs "
          f"in {time.perf_counter() - start:.2f} s", file=out)
    return acc


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m xpnet.examples.ring", description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default=None, help="backend name (default: $XPNET_BACKEND or numpy)")
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=3, help="seed of the initial weights")
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the data")
    args = ap.parse_args(argv)
    if args.epochs <= 0:
        ap.error(f"--epochs must be positive, got {args.epochs}")
    try:
        train(args.backend, args.epochs, args.lr, args.seed, args.data_seed)
    except (ValueError, backends.BackendUnavailable) as e:
        ap.exit(2, f"error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
