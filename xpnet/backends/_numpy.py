"""The numpy backend: the CPU reference, and the fastest path for small nets."""

from __future__ import annotations

import array_api_compat
import numpy as np
import array_api_compat.numpy as xp_compat_numpy


def _namespace():
    """numpy itself where it implements the standard we target (numpy >= 2.2 declares 2024.12):
    its functions are the C ufuncs, without the compat wrappers' 1-3 us a call. Older numpy
    gets array-api-compat's wrapped namespace."""
    if getattr(np, "__array_api_version__", "") >= "2024.12":
        return array_api_compat.array_namespace(np.empty(0), use_compat=False)
    return xp_compat_numpy


xp_numpy = _namespace()

from ._backend import Backend, Generator


class NumpyGenerator(Generator):
    """numpy's PCG64 ``Generator``; float32 draws are made in float32, never via float64."""

    def _reseed(self, seed):
        self._g = np.random.default_rng(seed)

    def get_state(self):
        return self._g.bit_generator.state

    def set_state(self, state):
        self._g.bit_generator.state = state

    def _dtype(self, dtype):
        return np.float32 if dtype is None else np.dtype(dtype)

    def _floats(self, draw, shape, dtype):
        dt = self._dtype(dtype)
        if dt in (np.float32, np.float64):
            return draw(shape, dtype=dt)
        return draw(shape, dtype=np.float32).astype(dt)

    def normal(self, shape, mean=0.0, std=1.0, *, dtype=None, device=None):
        z = self._floats(self._g.standard_normal, shape, dtype)
        if std != 1.0:
            z *= std
        if mean != 0.0:
            z += mean
        return z

    def uniform(self, shape, low=0.0, high=1.0, *, dtype=None, device=None):
        u = self._floats(self._g.random, shape, dtype)
        if (low, high) != (0.0, 1.0):
            u *= high - low
            u += low
        return u

    def bernoulli(self, shape, p, *, dtype=None, device=None):
        hit = self._g.random(shape, dtype=np.float32) < p
        return hit if dtype is not None and np.dtype(dtype) == np.bool_ else hit.astype(self._dtype(dtype))

    def permutation(self, n, *, device=None):
        return self._g.permutation(n).astype(np.int64)


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self, device=None):
        if device not in (None, "cpu"):
            raise ValueError(f"the numpy backend has only the 'cpu' device, got {device!r}")
        super().__init__(xp_numpy, "cpu", "numpy")

    def owns(self, x):
        return isinstance(x, np.ndarray)

    def _to_device(self, x):
        return x

    def to_numpy(self, x):
        return np.array(x, copy=True)

    def scatter_add(self, target, index, values):
        out = np.array(target, copy=True)
        np.add.at(out, index, values)
        return out

    def _make_generator(self, seed):
        return NumpyGenerator(self, seed)

    def ignore_overflow(self):
        return np.errstate(over="ignore", invalid="ignore")

    def set_threads(self, n):
        try:
            import threadpoolctl
        except ImportError:
            raise RuntimeError("setting numpy's BLAS threads needs threadpoolctl: pip install threadpoolctl") from None
        self._limits = threadpoolctl.threadpool_limits(limits=int(n), user_api="blas")  # kept: limits last

    def describe(self):
        return f"numpy {np.__version__} on cpu"


def host_array(obj, copy=False):
    """Python data or a host array as a numpy array (no copy when it already is one, unless ``copy``)."""
    return np.array(obj, copy=True) if copy else np.asarray(obj)


def make(device=None):
    return NumpyBackend(device)


def unusable_reason():
    return None


def is_array(x):
    return isinstance(x, np.ndarray)
