"""Under ``mpiexec -n 2``: the MLP on the torch backend, torch.distributed's gloo group started
from the MPI ranks, 2 ranks against one process (float64)."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import xpnet as xn  # noqa: E402
from xpnet import backends, distributed  # noqa: E402

from common import AgreeEveryStep, RTOL, digits, done, mlp, relative_gap  # noqa: E402

be = backends.get("torch")
comm = distributed.init("auto", be)
assert comm.engine == "torch" and comm.size == 2, comm
X, y = digits(be)
loss = xn.CrossEntropyLoss()


def train(dist, **kw):
    net = mlp(be)
    h = xn.fit(net, loss, xn.Adam(net, lr=2e-3), (X, y), epochs=2, batch_size=45, progress=False, distributed=dist,
               val=(X[:200, ...], y[:200, ...]), **kw)
    return net, h


net, h = train(comm, callbacks=[AgreeEveryStep(comm)])
if comm.rank == 0:
    ref, hr = train("single")
    gap = relative_gap(net, ref)
    assert gap < RTOL, f"torch, gloo: relative gap {gap:.3g}"
    assert abs(h["val_loss"][-1] - hr["val_loss"][-1]) < 1e-10 * hr["val_loss"][-1]
    print(f"torch gloo: relative gap {gap:.2e}", flush=True)
done(comm, "torch_gloo")
