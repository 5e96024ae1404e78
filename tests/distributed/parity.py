"""Under ``mpiexec -n 2``: the numpy MLP on the digits, 2 ranks against one process (float64).

argv: a directory both ranks can write (rank 0's checkpoint for the resume case).
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import xpnet as xn  # noqa: E402
from xpnet import backends, distributed  # noqa: E402

from common import AgreeEveryStep, RTOL, close, digits, done, mlp, relative_gap  # noqa: E402

be = backends.get("numpy")
comm = distributed.init("mpi")
assert comm.size == 2, comm
tmp = pathlib.Path(sys.argv[1])
loss = xn.CrossEntropyLoss()
X, y = digits(be)
val = (X[:300, ...], y[:300, ...])


def train(dist, epochs, batch_size, *, opt="adam", callbacks=(), data=(X, y), **kw):
    net = mlp(be)
    o = xn.Adam(net, lr=2e-3) if opt == "adam" else xn.SGD(net, lr=0.05, momentum=0.9)
    h = xn.fit(net, loss, o, data, epochs=epochs, batch_size=batch_size, progress=False, distributed=dist,
               callbacks=callbacks, **kw)
    return net, h


def same_history(h, ref, keys):
    for k in keys:
        assert all(close(a, b) for a, b in zip(h[k], ref[k])), (k, h[k], ref[k])


# A: Adam, a global batch of 45 (1438 samples: shares of 22 and 23; the last batch of 43, of 21 and 22)
check = AgreeEveryStep(comm)
net, h = train(comm, 3, 45, callbacks=[check], val=val, metrics=["f1", "top5"])
assert check.checked == 3 * 32, check.checked
assert distributed.parameters_agree(net, comm)
histories = comm.allgather_object(dict(h))
assert all(other == histories[0] for other in histories), "the ranks' histories differ"
if comm.rank == 0:
    ref, hr = train("single", 3, 45, val=val, metrics=["f1", "top5"])
    gap = relative_gap(net, ref)
    assert gap < RTOL, f"2 ranks vs one process: relative gap {gap:.3g}"
    same_history(h, hr, ["loss", "accuracy", "f1", "top5_accuracy", "val_loss", "val_accuracy", "val_f1"])
    print(f"A: Adam, 3 epochs, 96 steps: relative gap {gap:.2e}", flush=True)

# B: accumulate 2 and clipping, SGD with momentum: one all-reduce per optimizer step
net, h = train(comm, 2, 40, opt="sgd", accumulate=2, clip_norm=0.5, callbacks=[AgreeEveryStep(comm)])
if comm.rank == 0:
    ref, hr = train("single", 2, 40, opt="sgd", accumulate=2, clip_norm=0.5)
    gap = relative_gap(net, ref)
    assert gap < RTOL, f"accumulate=2, clip_norm: relative gap {gap:.3g}"
    same_history(h, hr, ["loss", "accuracy"])
    print(f"B: SGD, accumulate 2, clip 0.5: relative gap {gap:.2e}", flush=True)

# C: a last batch of one sample: rank 0 has none of it, trains on nothing and sends zeros
net, h = train(comm, 2, 1437, callbacks=[AgreeEveryStep(comm)])
if comm.rank == 0:
    ref, hr = train("single", 2, 1437)
    gap = relative_gap(net, ref)
    assert gap < RTOL, f"a last batch of one sample: relative gap {gap:.3g}"
    same_history(h, hr, ["loss"])

# D: resume on another number of ranks: 2 epochs on 2 ranks, then 1 more alone = 3 alone
path = tmp / "resume.xpnet"
net, h = train(comm, 2, 64, callbacks=[xn.ModelCheckpoint(path)])
comm.barrier()
if comm.rank == 0:
    ck = xn.load(path)
    assert ck.epoch == 2
    xn.fit(ck.net, loss, ck.optimizer, (X, y), epochs=3, batch_size=64, progress=False, distributed="single", resume=ck)
    ref, _ = train("single", 3, 64)
    gap = relative_gap(ck.net, ref)
    assert gap < RTOL, f"2 ranks then resumed alone: relative gap {gap:.3g}"
    print(f"D: 2 epochs on 2 ranks + 1 resumed alone = 3 alone: relative gap {gap:.2e}", flush=True)

# E: mixed precision (float16 over float32 weights): still one step on identical weights everywhere
small = digits(be, 512, dtype="float32")
net32 = mlp(be, dtype="float32")
xn.fit(net32, loss, xn.Adam(net32, lr=1e-3), small, epochs=1, batch_size=64, progress=False, distributed=comm,
       precision="fp16", callbacks=[AgreeEveryStep(comm)])

# F: the start makes the ranks agree; dropout streams then differ, rank by rank
net = mlp(be, seed=comm.rank)  # different initial weights on each rank
dp = distributed.DataParallel(net, xn.SGD(net, lr=0.1), comm)
assert not distributed.parameters_agree(net, comm)
dp.start(be)
assert distributed.parameters_agree(net, comm)
dp.begin_epoch(0)
draws = comm.allgather_object(backends.to_numpy(be.rng.uniform((4,))).tolist())
assert draws[0] != draws[1], "the ranks' dropout streams are the same"

done(comm, "parity")
