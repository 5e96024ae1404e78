"""On a machine with a GPU, under ``mpiexec -n 1`` (one GPU takes one rank: NCCL refuses two
ranks on one device): the NCCL engine's calls (all-reduce, broadcast of flat CuPy buffers
of every dtype fit uses) and a CuPy fit with ``distributed="nccl"`` against the world of one."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import xpnet as xn  # noqa: E402
from xpnet import backends, distributed  # noqa: E402

from common import RTOL, digits, done, mlp, relative_gap  # noqa: E402

be = backends.get("cupy")
comm = distributed.init("nccl", be)
assert comm.engine == "nccl" and comm.size == 1, comm
xp = be.xp
for dtype in ("float32", "float64", "int64"):
    a = xp.reshape(xp.arange(12, dtype=be.dtype(dtype)), (3, 4))
    b = xp.arange(5, dtype=be.dtype(dtype))
    # a world of one through NCCL itself (Communicator skips the engine for size 1: call it directly)
    flat = distributed.base.flatten(xp, [a, b])
    out = comm._allreduce_flat(flat)
    comm.nccl.synchronize()
    assert backends.to_numpy(out).tolist() == backends.to_numpy(flat).tolist()
    comm._broadcast_flat(flat, 0)
    comm.nccl.synchronize()
assert comm.allreduce_host([1.5, 2]) == [1.5, 2.0]

X, y = digits(be, 512)
nets = []
for dist in (comm, "single"):
    net = mlp(be)
    xn.fit(net, xn.CrossEntropyLoss(), xn.Adam(net, lr=2e-3), (X, y), epochs=2, batch_size=64, progress=False,
           distributed=dist)
    nets.append(net)
gap = relative_gap(*nets)
assert gap < RTOL, gap
print(f"NCCL on one GPU: the calls return what they were given; fit through it: relative gap {gap:.2e}", flush=True)
done(comm, "nccl_gpu")
