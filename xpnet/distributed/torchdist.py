"""``torch.distributed`` for the torch backend: gloo on the CPU, NCCL on CUDA.

Started from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``: ``init_method="env://"``), or from MPI ranks (``mpiexec -n N``): rank 0
then picks a free TCP port on its machine and broadcasts its address over MPI. numpy arrays
go through gloo too (wrapped by ``torch.from_numpy``, no copy), so a numpy run under torchrun
works. A collective that waits longer than ``$XPNET_DIST_TIMEOUT`` seconds (default 300) fails.
"""

from __future__ import annotations

import os
import socket

from .. import backends
from .base import Communicator
from .launch import env_int, timeout


def _lib():
    try:
        from ..backends import _torch_dist
    except ImportError as e:
        raise ImportError(f"xpnet.distributed: the torch engine needs PyTorch: pip install 'xpnet[torch]' ({e})") from None
    why = _torch_dist.available()
    if why:
        raise RuntimeError(f"xpnet.distributed: {why}")
    return _torch_dist


class TorchCommunicator(Communicator):
    """The default torch.distributed process group (started here unless it already is).

    ``backend``: the xpnet Backend trained on (CUDA tensors take NCCL, everything else gloo).
    ``mpi``: an :class:`~xpnet.distributed.mpi.MPICommunicator` to start from, when not under torchrun.
    """

    engine = "torch"

    def __init__(self, backend=None, mpi=None):
        lib = self.lib = _lib()
        be = backends.get(backend)
        self.device = lib.device_of(be)
        self.group = lib.group_backend("cuda" if self.device is not None else "cpu")
        if mpi is None and "RANK" in os.environ:
            rank, size = env_int("RANK"), env_int("WORLD_SIZE")
            self.local_rank = env_int("LOCAL_RANK", 0)
            method = "env://"
        else:
            if mpi is None:
                from .mpi import MPICommunicator

                mpi = MPICommunicator()
            rank, size, self.local_rank = mpi.rank, mpi.size, mpi.local_rank
            method = mpi.broadcast_object(_rendezvous(mpi) if rank == 0 else None)
        index = None if self.device is None else self.device.index
        lib.init(self.group, rank, size, method, timeout(), index)
        self.rank, self.size = lib.rank_and_size()

    def _allreduce_flat(self, flat):
        return self.lib.allreduce_(flat, self.device)

    def _broadcast_flat(self, flat, root):
        return self.lib.broadcast_(flat, root, self.device)

    def allgather_object(self, obj):
        return self.lib.allgather_object(obj) if self.size > 1 else [obj]

    def broadcast_object(self, obj, root=0):
        self._check_root(root)
        return self.lib.broadcast_object(obj, root) if self.size > 1 else obj

    def barrier(self):
        if self.size > 1:
            self.lib.barrier()

    def _abort(self, status):
        from .mpi import abort_world

        abort_world(status)  # MPI's abort when MPI started the ranks; else this process ends, and torchrun ends the rest

    def close(self):
        self.lib.close()

    def describe(self):
        return f"{super().describe()} ({self.group})"


def _rendezvous(mpi):
    """``tcp://address:port`` of rank 0 for the process group: ``$MASTER_ADDR`` if set, else
    127.0.0.1 when every rank is on this machine, else this machine's address; a free port."""
    addr = os.environ.get("MASTER_ADDR")
    if not addr:
        addr = "127.0.0.1" if mpi.local_size() == mpi.size else socket.gethostbyname(socket.gethostname())
    port = os.environ.get("MASTER_PORT")
    if not port:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
    return f"tcp://{addr}:{port}"

