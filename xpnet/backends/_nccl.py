"""NCCL through ``cupy.cuda.nccl``, for :class:`xpnet.distributed.NCCLCommunicator`.

UNVERIFIED: written against CuPy's documented ``NcclCommunicator`` (``allReduce``, ``bcast``,
``abort``) but not run: no GPU was available when it was written. Each collective is
enqueued on the current CuPy stream of the buffer's device, in place, so the kernels that
follow on that stream see the result without a host synchronisation.
"""

from __future__ import annotations

import cupy
from cupy.cuda import nccl

_DTYPES = {
    "float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64,
    "int32": nccl.NCCL_INT32, "int64": nccl.NCCL_INT64, "uint8": nccl.NCCL_UINT8, "int8": nccl.NCCL_INT8,
}


def unique_id():
    """A new NCCL unique id (a tuple of 128 ints: picklable, for MPI to broadcast)."""
    return nccl.get_unique_id()


class Comm:
    """One rank's NCCL communicator over ``size`` ranks, on CuPy device ``device`` (an index)."""

    def __init__(self, size: int, uid, rank: int, device: int):
        self.device = int(device)
        with cupy.cuda.Device(self.device):
            self._comm = nccl.NcclCommunicator(int(size), tuple(uid), int(rank))

    def _args(self, flat):
        try:
            dtype = _DTYPES[flat.dtype.name]
        except KeyError:
            raise TypeError(f"NCCL: no NCCL type for {flat.dtype.name}; it has {', '.join(_DTYPES)}") from None
        return flat.data.ptr, int(flat.size), dtype, cupy.cuda.get_current_stream().ptr

    def allreduce_(self, flat):
        """Sum the contiguous CuPy array ``flat`` over the ranks, in place (enqueued); returns it."""
        with cupy.cuda.Device(self.device):
            ptr, n, dtype, stream = self._args(flat)
            self._comm.allReduce(ptr, ptr, n, dtype, nccl.NCCL_SUM, stream)
        return flat

    def broadcast_(self, flat, root: int):
        with cupy.cuda.Device(self.device):
            ptr, n, dtype, stream = self._args(flat)
            self._comm.bcast(ptr, n, dtype, int(root), stream)
        return flat

    def synchronize(self):
        """Wait for the enqueued collectives (before MPI or the host touch their memory)."""
        with cupy.cuda.Device(self.device):
            cupy.cuda.get_current_stream().synchronize()

    def abort(self):
        self._comm.abort()


def device_count() -> int:
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver or no device: none usable
        return 0
