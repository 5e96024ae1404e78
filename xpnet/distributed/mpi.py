"""MPI through mpi4py: host buffers, no pickling on the hot path.

The collectives use mpi4py's upper-case methods (``Allreduce``, ``Bcast``) on contiguous host
buffers (:mod:`xpnet.backends._buffers`): numpy arrays and CPU tensors in place, other arrays
staged through the host. ``pip install 'xpnet[mpi]'`` brings mpi4py and MPICH from the package
index, so no system MPI is needed; launch with ``mpiexec -n N``.
"""

from __future__ import annotations

import os

from .. import backends
from ..backends import _buffers
from .base import Communicator

INSTALL_HINT = "pip install 'xpnet[mpi]' (mpi4py and MPICH from the package index)"


def mpi_module():
    """``mpi4py.MPI`` (initialising MPI on first use), or ImportError with the install hint."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"xpnet.distributed: the MPI engine needs mpi4py: {INSTALL_HINT} ({e})") from None
    return MPI


class MPICommunicator(Communicator):
    """The ranks of an MPI communicator (default ``MPI.COMM_WORLD``)."""

    engine = "mpi"

    def __init__(self, comm=None):
        MPI = mpi_module()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED) if self.size > 1 else None
        self.local_rank = 0 if local is None else local.Get_rank()
        self._local_size = 1 if local is None else local.Get_size()

    def local_size(self) -> int:
        """How many of the ranks run on this machine."""
        return self._local_size

    def _allreduce_flat(self, flat):
        buf, back = _buffers.host_buffer(backends.backend_of(flat), flat)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return back(buf)

    def _broadcast_flat(self, flat, root):
        buf, back = _buffers.host_buffer(backends.backend_of(flat), flat)
        self.comm.Bcast(buf, root=root)
        return back(buf)

    def allgather_object(self, obj):
        return self.comm.allgather(obj) if self.size > 1 else [obj]

    def broadcast_object(self, obj, root=0):
        self._check_root(root)
        return self.comm.bcast(obj, root=root) if self.size > 1 else obj

    def barrier(self):
        if self.size > 1:
            self.comm.Barrier()

    def _abort(self, status):
        self.comm.Abort(status)
        os._exit(status)  # Abort does not return; should it, this process still ends

    def describe(self):
        version = " ".join(self.MPI.Get_library_version().splitlines()[0].split())
        return f"{super().describe()} ({version})"


def initialized() -> bool:
    """True when this process has started MPI (mpi4py imported and MPI initialised)."""
    import sys

    mod = sys.modules.get("mpi4py.MPI")
    return mod is not None and mod.Is_initialized() and not mod.Is_finalized()


def abort_world(status: int):
    """End every rank of ``MPI.COMM_WORLD`` (when this process started MPI); else only this one."""
    if initialized():
        import sys

        sys.modules["mpi4py.MPI"].COMM_WORLD.Abort(status)
    os._exit(status)
