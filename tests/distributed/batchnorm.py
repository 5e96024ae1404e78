"""Under ``mpiexec -n 2``: a CNN with BatchNorm on the digits images (float64).

Each rank normalises with the statistics of its own share of the batch, so 2 ranks compute
what one process computes with "ghost" batches of those shares: the reference below trains
alone on the two shares of every global batch in turn, their gradients added. The running
statistics are averaged over the ranks after each epoch.
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import xpnet as xn  # noqa: E402
from xpnet import backends, distributed  # noqa: E402
from xpnet.data import DataLoader  # noqa: E402
from xpnet.data.loader import ShardedLoader  # noqa: E402

from common import AgreeEveryStep, RTOL, cnn_bn, digits, done, relative_gap  # noqa: E402

be = backends.get("numpy")
comm = distributed.init("mpi")
X, y = digits(be, 400, flatten=False)
loss = xn.CrossEntropyLoss()
EPOCHS, BATCH = 2, 64

net = cnn_bn(be)
opt = xn.SGD(net, lr=0.05, momentum=0.9)
h = xn.fit(net, loss, opt, (X, y), epochs=EPOCHS, batch_size=BATCH, progress=False, distributed=comm,
           callbacks=[AgreeEveryStep(comm)])
assert distributed.parameters_agree(net, comm), "parameters or averaged running statistics differ"

if comm.rank == 0:
    ref = cnn_bn(be)
    ropt = xn.SGD(ref, lr=0.05, momentum=0.9)
    base = DataLoader(X, y, batch_size=BATCH, shuffle=True, backend=be)
    shards = [ShardedLoader(base, r, 2, seed=0) for r in range(2)]
    ref.train()
    for epoch in range(EPOCHS):
        for s in shards:
            s.set_epoch(epoch)
        for i, parts in enumerate(zip(*shards), 1):
            ropt.zero_grad()
            for xb, yb in parts:
                loss(ref(xb), yb)
                ref.backward(loss.backward(int(xb.shape[0]) / shards[0].global_size(i)), input_grad=False)
            ropt.step()
    gap = relative_gap(net, ref)
    assert gap < RTOL, f"2 ranks vs ghost batches alone: relative gap {gap:.3g}"
    alone = cnn_bn(be)
    xn.fit(alone, loss, xn.SGD(alone, lr=0.05, momentum=0.9), (X, y), epochs=EPOCHS, batch_size=BATCH,
           progress=False, distributed="single")
    print(f"BatchNorm: 2 ranks vs ghost batches alone {gap:.2e}; vs whole batches alone "
          f"{relative_gap(net, alone):.2e} (expected: statistics of half batches)", flush=True)

done(comm, "batchnorm")
