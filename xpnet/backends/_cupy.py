"""The CuPy backend: NVIDIA GPUs. Imported only when asked for, so a CPU machine never pays for it."""

from __future__ import annotations

import cupy
import cupyx
import array_api_compat.cupy as xp_cupy

from ._backend import Backend, Generator


def _usable_count():
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver, no device, or a broken runtime all mean "not usable"
        return 0


class CupyGenerator(Generator):
    """CuPy's device-side ``RandomState`` (XORWOW); draws never leave the GPU."""

    def _reseed(self, seed):
        with self._backend._ctx():
            self._g = cupy.random.RandomState(seed)

    def get_state(self):
        raise NotImplementedError("CuPy's RandomState cannot export its state; reseed with manual_seed instead")

    def set_state(self, state):
        raise NotImplementedError("CuPy's RandomState cannot import a state; reseed with manual_seed instead")

    def _dtype(self, dtype):
        return cupy.float32 if dtype is None else cupy.dtype(dtype)

    def _floats(self, draw, shape, dtype):
        dt = self._dtype(dtype)
        with self._backend._ctx():
            if dt in (cupy.float32, cupy.float64):
                return draw(shape, dtype=dt)
            return draw(shape, dtype=cupy.float32).astype(dt)

    def normal(self, shape, mean=0.0, std=1.0, *, dtype=None, device=None):
        z = self._floats(self._g.standard_normal, tuple(shape), dtype)
        return z * std + mean if (mean, std) != (0.0, 1.0) else z

    def uniform(self, shape, low=0.0, high=1.0, *, dtype=None, device=None):
        u = self._floats(self._g.random_sample, tuple(shape), dtype)
        return u * (high - low) + low if (low, high) != (0.0, 1.0) else u

    def bernoulli(self, shape, p, *, dtype=None, device=None):
        with self._backend._ctx():
            hit = self._g.random_sample(tuple(shape), dtype=cupy.float32) < p
            return hit if dtype is not None and cupy.dtype(dtype) == cupy.bool_ else hit.astype(self._dtype(dtype))

    def permutation(self, n, *, device=None):
        with self._backend._ctx():
            return self._g.permutation(n).astype(cupy.int64)


class CupyBackend(Backend):
    name = "cupy"
    asynchronous = True

    def __init__(self, device=None):
        n = _usable_count()
        if n == 0:
            raise RuntimeError(unusable_reason())
        if device is None:
            index = cupy.cuda.runtime.getDevice()
        elif isinstance(device, cupy.cuda.Device):  # what cupy arrays carry in .device
            index = device.id
        else:
            try:
                index = int(str(device).removeprefix("cuda:"))
            except ValueError:
                raise ValueError(f"cupy backend: a device is an index or 'cuda:N', got {device!r}") from None
        if not 0 <= index < n:
            raise ValueError(f"cupy backend: device {device!r} does not exist; this machine has {n} CUDA device(s)")
        self._device_obj = cupy.cuda.Device(index)
        super().__init__(xp_cupy, self._device_obj, f"cupy:{index}")

    def _ctx(self):
        # device= is ignored by CuPy for placement; its device context is what counts
        return self._device_obj

    def owns(self, x):
        return isinstance(x, cupy.ndarray)

    def _from_host(self, obj, dtype):
        with self._ctx():
            return cupy.asarray(obj, dtype=dtype)

    def _to_device(self, x):
        if x.device == self._device_obj:
            return x
        with self._ctx():
            return cupy.asarray(x)

    def to_numpy(self, x):
        return x.get()

    def scatter_add(self, target, index, values):
        with self._ctx():
            out = target.copy()
            cupyx.scatter_add(out, index, values)
            return out

    def synchronize(self):
        with self._ctx():
            cupy.cuda.Stream.null.synchronize()

    def _make_generator(self, seed):
        return CupyGenerator(self, seed)

    def describe(self):
        props = cupy.cuda.runtime.getDeviceProperties(self._device_obj.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"cupy {cupy.__version__} on cuda:{self._device_obj.id} ({name})"


def make(device=None):
    return CupyBackend(device)


def unusable_reason():
    if _usable_count() == 0:
        return "cupy is installed but no CUDA device is usable here (cupy.cuda.runtime.getDeviceCount() is 0 or the driver is missing)"
    return None


def to_host(x):
    return x.get()


def is_array(x):
    return isinstance(x, cupy.ndarray)
