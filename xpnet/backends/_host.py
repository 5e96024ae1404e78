"""Host (numpy) byte conversions for file formats: checkpoints, IDX files, plots.

xpnet's file readers and writers never import numpy themselves (this package is the only
place that does); they turn host arrays into bytes and back through these functions.
"""

from __future__ import annotations

import numpy as np

from . import _numpy


def host_namespace():
    """The numpy namespace, for host-side work that is not a backend computation (plot grids)."""
    return _numpy.xp_numpy


def generator(seed: int):
    """A private numpy Generator seeded with ``seed`` (host draws that must not disturb, nor be
    disturbed by, any backend's own generator: gradcheck's directions)."""
    return np.random.default_rng(seed)


def abs_max(x) -> float:
    """``max |x|`` of a host array as a float (0.0 when empty)."""
    return float(np.max(np.abs(x), initial=0.0))


def to_bytes(x, byteorder: str = "<") -> bytes:
    """The raw C-order bytes of host array ``x`` with the given byte order (``"<"`` little, ``">"`` big)."""
    a = np.asarray(x)
    dt = a.dtype.newbyteorder(byteorder) if a.dtype.itemsize > 1 else a.dtype
    return np.ascontiguousarray(a, dtype=dt).tobytes()


def from_bytes(buf, dtype: str, shape, byteorder: str = "<"):
    """A new writable host array of ``shape`` and dtype name ``dtype`` (native byte order) read
    from the raw C-order bytes ``buf`` (``byteorder`` as in :func:`to_bytes`).

    Raises ValueError when ``len(buf)`` does not equal ``prod(shape) * itemsize``.
    """
    dt = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    n = 1
    for s in shape:
        n *= s
    if len(buf) != n * dt.itemsize:
        raise ValueError(f"expected {n * dt.itemsize} bytes for {dtype} {shape}, got {len(buf)}")
    src = np.frombuffer(buf, dtype=dt.newbyteorder(byteorder) if dt.itemsize > 1 else dt, count=n)
    return src.astype(dt, copy=True).reshape(shape)


def host_dtype_name(x) -> str:
    """The dtype name (``"float32"``) of a host array."""
    return np.asarray(x).dtype.name


def is_host_array(x) -> bool:
    """True for a numpy array."""
    return isinstance(x, np.ndarray)
