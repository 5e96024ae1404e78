"""Under ``mpiexec -n 2`` (plain ``python``, so that fit's own handling is what ends the job):
one rank fails in epoch 2 of 3, while rank 0 writes ``DIR/last.xpnet`` after each epoch.

argv: MODE DIR [ENGINE] (default mpi; ``auto`` under torchrun: gloo over numpy). MODE: ``raise`` (rank 1 raises in a batch hook), ``kill`` (rank 1 kills itself
with SIGKILL), ``kill-writing`` (rank 0 is killed while it writes epoch 2's checkpoint, after
the data and before the rename). Rank 0 prints each rank's PID first (``pids 101 102``).
"""

from __future__ import annotations

import os
import pathlib
import signal
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import xpnet as xn  # noqa: E402
from xpnet import backends, distributed  # noqa: E402

from common import digits, mlp  # noqa: E402

mode, out = sys.argv[1], pathlib.Path(sys.argv[2])
be = backends.get("numpy")
comm = distributed.init(sys.argv[3] if len(sys.argv) > 3 else "mpi", be)
pids = comm.allgather_object(os.getpid())
if comm.rank == 0:
    print("pids " + " ".join(map(str, pids)), flush=True)


class Fail(xn.Callback):
    writing = False

    def on_epoch_begin(self, state):
        Fail.writing = state.epoch == 1  # epoch 2 has begun: its checkpoint is the one to break

    def on_batch_end(self, state, logs):
        if state.epoch == 1 and logs["batch"] == 5 and comm.rank == 1:
            if mode == "raise":
                raise ValueError("boom from rank 1")
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)


if mode == "kill-writing" and comm.rank == 0:
    real_fsync = os.fsync

    def fsync(fd):
        if Fail.writing:
            os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is written, not yet renamed
        real_fsync(fd)

    os.fsync = fsync

net = mlp(be)
X, y = digits(be)
xn.fit(net, xn.CrossEntropyLoss(), xn.Adam(net), (X, y), epochs=3, batch_size=32, progress=False, distributed=comm,
       callbacks=[Fail(), xn.ModelCheckpoint(out / "last.xpnet")])
print("finished, which it should not have", flush=True)
