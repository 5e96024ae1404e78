"""Shared by the scripts that run under ``mpiexec -n 2`` (tests/test_distributed.py starts them).

Each script runs on every rank; an assertion that fails on any rank ends the job (the scripts
run as ``python -m mpi4py script.py``, which aborts every rank on an uncaught exception).
"""

from __future__ import annotations

import xpnet as xn
from xpnet import backends, distributed
from xpnet.data import load_digits

#: the parity bound of the issue: float64, relative to the largest entry
RTOL = 1e-10


def digits(be, n=None, flatten=True, dtype="float64"):
    X, y = load_digits("train", backend=be, dtype=dtype, flatten=flatten)
    return (X, y) if n is None else (X[:n, ...], y[:n, ...])


def mlp(be, seed=0, dtype="float64"):
    backends.manual_seed(seed)
    with backends.use(be):
        return xn.Sequential(xn.Linear(64, 48), xn.ReLU(), xn.Linear(48, 10)).to(be, dtype)


def cnn_bn(be, seed=0):
    backends.manual_seed(seed)
    with backends.use(be):
        net = xn.Sequential(xn.Conv2d(1, 8, 3, padding=1), xn.BatchNorm2d(8), xn.ReLU(), xn.MaxPool2d(2),
                            xn.Flatten(), xn.Linear(8 * 4 * 4, 10))
    return net.to(be, "float64")


def relative_gap(net, ref):
    """max |a - b| / max |b| over every parameter."""
    worst = 0.0
    for (_, p), (_, q) in zip(net.named_parameters(), ref.named_parameters()):
        a, b = backends.to_numpy(p.data), backends.to_numpy(q.data)
        scale = float(abs(b).max()) or 1.0
        worst = max(worst, float(abs(a - b).max()) / scale)
    return worst


class AgreeEveryStep(xn.Callback):
    """Checks after every batch that every rank holds bit-identical parameters."""

    def __init__(self, comm):
        self.comm, self.checked = comm, 0

    def on_batch_end(self, state, logs):
        assert distributed.parameters_agree(state.net, self.comm, buffers=False), \
            f"the ranks' parameters differ after step {state.step}"
        self.checked += 1


def close(a, b, rtol=RTOL):
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300)


def done(comm, name):
    comm.barrier()
    if comm.rank == 0:
        print(f"OK {name}", flush=True)
