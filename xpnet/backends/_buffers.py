"""Host (numpy) buffers for :mod:`xpnet.distributed`: what MPI sends and receives.

MPI (mpi4py's upper-case ``Allreduce``/``Bcast``) moves host memory through the buffer
protocol, with no pickling. Where the array library shares host memory, the buffer is a view
of the array itself (numpy; torch on the CPU, through ``Tensor.numpy()``), so the collective
writes the result in place, into an array the caller made for it; elsewhere (CuPy,
array-api-strict) the array is staged through a host copy. The PyPI MPI wheels are not
CUDA-aware, so a GPU array always goes through the host here: ``.get()`` waits for the
device, which is the synchronisation MPI needs before it reads the memory.
"""

from __future__ import annotations

import hashlib

import numpy as np


def host_buffer(be, flat):
    """``(buf, back)`` for the 1-D array ``flat`` of backend ``be``, made by the caller for
    the collective: ``buf`` a writable C-contiguous numpy array with its values (a view where
    the library shares host memory), ``back(buf)`` the array of ``be``, of ``flat``'s dtype, that
    holds ``buf``'s values afterwards (``flat`` itself when ``buf`` is its view)."""
    if isinstance(flat, np.ndarray):
        if flat.flags.c_contiguous and flat.flags.writeable:
            return flat, _same
        buf = np.ascontiguousarray(flat).copy()
        return buf, _same
    if be.name == "torch" and flat.device.type == "cpu" and be.dtype_name(flat.dtype) != "bfloat16" \
            and flat.is_contiguous():
        return flat.numpy(), lambda buf: flat  # the view: the collective wrote into flat
    dtype = be.dtype_name(flat.dtype)
    return np.ascontiguousarray(be.to_numpy(flat)), lambda buf: be.asarray(buf, dtype=dtype)


def _same(buf):
    return buf


def floats(values):
    """A new float64 host vector of ``values`` (the epoch's figures, summed across ranks)."""
    return np.array([float(v) for v in values], dtype=np.float64)


def to_list(buf):
    """A host vector's values as Python floats."""
    return [float(v) for v in buf]


def permutation(n: int, seed: int, epoch: int):
    """The shuffled order of ``range(n)`` for ``epoch``: a host int64 array drawn from a numpy
    generator seeded with ``(seed, epoch)`` alone, so every rank draws the same one, whatever
    the number of ranks and the array library (the ranks need no message to agree on it)."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n)).astype(np.int64)


def digest(arrays) -> str:
    """The SHA-256 of the bytes, dtypes and shapes of host-convertible ``arrays``: equal
    digests mean bit-identical arrays (the ranks compare their parameters so)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
