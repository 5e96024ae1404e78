"""The array-api-strict backend: the compliance referee, pinned to API 2024.12.

It is not fast and is not meant to be: it rejects every non-standard call, and its
simulated devices ``device1``/``device2`` reject any mixing, which catches a forgotten
``device=``. Random numbers are drawn on the host with numpy and placed on the device.
"""

from __future__ import annotations

import numpy as np
import array_api_strict as xps
from array_api_strict._array_object import Array as _StrictArray

from ._backend import Backend
from ._numpy import NumpyGenerator

API_VERSION = "2024.12"
xps.set_array_api_strict_flags(api_version=API_VERSION)


class StrictGenerator(NumpyGenerator):
    """numpy's generator on the host; each draw becomes one array on the target device."""

    def _place(self, arr, device):
        dev = self._backend.device if device is None else device
        return xps.asarray(arr, device=dev)

    def _np_dtype(self, dtype):
        return None if dtype is None else np.dtype(self._backend.dtype_name(dtype))

    def normal(self, shape, mean=0.0, std=1.0, *, dtype=None, device=None):
        return self._place(super().normal(shape, mean, std, dtype=self._np_dtype(dtype)), device)

    def uniform(self, shape, low=0.0, high=1.0, *, dtype=None, device=None):
        return self._place(super().uniform(shape, low, high, dtype=self._np_dtype(dtype)), device)

    def bernoulli(self, shape, p, *, dtype=None, device=None):
        return self._place(super().bernoulli(shape, p, dtype=self._np_dtype(dtype)), device)

    def permutation(self, n, *, device=None):
        return self._place(super().permutation(n), device)


class StrictBackend(Backend):
    name = "array_api_strict"
    #: the compliance referee plays a device: loops defer their checks on it as on a GPU, so the
    #: host-read tests (tests/test_host_reads.py) see what a GPU would
    asynchronous = True

    def __init__(self, device=None):
        known = {_short(d): d for d in xps.__array_namespace_info__().devices()}
        if device is None:
            dev = xps.__array_namespace_info__().default_device()
        elif isinstance(device, xps.Device):
            dev = device
        elif device in known:
            dev = known[device]
        else:
            raise ValueError(f"array_api_strict has devices {sorted(known)}, got {device!r}")
        super().__init__(xps, dev, f"array_api_strict:{_short(dev)}")

    def owns(self, x):
        return isinstance(x, _StrictArray)

    def to_numpy(self, x):
        return np.array(np.from_dlpack(x), copy=True)

    def scatter_add(self, target, index, values):
        # The standard has no scatter; do it on the host exactly as numpy does, then place it back.
        out = self.to_numpy(target)
        np.add.at(out, np.from_dlpack(index), np.from_dlpack(values))
        return xps.asarray(out, device=target.device)

    def _make_generator(self, seed):
        return StrictGenerator(self, seed)

    def describe(self):
        return f"array_api_strict {xps.__version__} (API {API_VERSION}) on {_short(self.device)}"


def _short(device):
    """'CPU_DEVICE' from array_api_strict.Device('CPU_DEVICE')."""
    s = str(device)
    return s.split("'")[1] if "'" in s else s


def make(device=None):
    return StrictBackend(device)


def to_host(x):
    return np.array(np.from_dlpack(x), copy=True)


def is_array(x):
    return isinstance(x, _StrictArray)
