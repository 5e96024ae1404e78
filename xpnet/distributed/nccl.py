"""NCCL for CuPy arrays, started over MPI (UNVERIFIED: written without a GPU to run it on).

As ChainerMN's ``pure_nccl`` communicator: MPI gives the ranks and broadcasts rank 0's NCCL
unique id; the arrays then move GPU to GPU through NCCL (``cupy.cuda.nccl``), enqueued on
the current CuPy stream. MPI keeps the host work: the epoch's figures, small objects and
barriers; before MPI runs, the stream is synchronised, so no NCCL transfer is still in flight
when a rank moves on. Each rank takes the GPU ``local_rank % device count``.
"""

from __future__ import annotations

from .. import backends
from .base import Communicator
from .mpi import MPICommunicator


def _nccl():
    try:
        from ..backends import _nccl
    except ImportError as e:
        raise ImportError(f"xpnet.distributed: the NCCL engine needs CuPy with NCCL: pip install "
                          f"'xpnet[cuda13]' on a machine with NVIDIA GPUs ({e})") from None
    return _nccl


class NCCLCommunicator(Communicator):
    """NCCL over the ranks of ``mpi`` (an :class:`MPICommunicator`; default COMM_WORLD), on the
    GPU ``device`` (default: ``local_rank`` modulo the GPUs of the machine)."""

    engine = "nccl"

    def __init__(self, mpi=None, device=None):
        lib = _nccl()
        self.mpi = MPICommunicator() if mpi is None else mpi
        self.rank, self.size, self.local_rank = self.mpi.rank, self.mpi.size, self.mpi.local_rank
        count = lib.device_count()
        if count == 0:
            raise RuntimeError("xpnet.distributed: the NCCL engine found no usable GPU")
        self.device = self.local_rank % count if device is None else int(device)
        uid = self.mpi.broadcast_object(lib.unique_id() if self.rank == 0 else None)
        self.nccl = lib.Comm(self.size, uid, self.rank, self.device)

    def _allreduce_flat(self, flat):
        if not backends.backend_of(flat).name == "cupy":
            return self.mpi._allreduce_flat(flat)  # host arrays go through MPI
        return self.nccl.allreduce_(flat)

    def _broadcast_flat(self, flat, root):
        if not backends.backend_of(flat).name == "cupy":
            return self.mpi._broadcast_flat(flat, root)
        return self.nccl.broadcast_(flat, root)

    def _allreduce_host_buffer(self, buf):
        self.nccl.synchronize()
        return self.mpi._allreduce_flat(buf)

    def allgather_object(self, obj):
        self.nccl.synchronize()
        return self.mpi.allgather_object(obj)

    def broadcast_object(self, obj, root=0):
        self.nccl.synchronize()
        return self.mpi.broadcast_object(obj, root)

    def barrier(self):
        self.nccl.synchronize()
        self.mpi.barrier()

    def _abort(self, status):
        try:
            self.nccl.abort()
        finally:
            self.mpi._abort(status)

    def describe(self):
        return f"{self.size} rank{'s' if self.size != 1 else ''} over nccl (GPU {self.device}; MPI to start)"
