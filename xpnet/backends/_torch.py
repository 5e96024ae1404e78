"""The PyTorch backend: torch tensors on the CPU or on CUDA, without autograd."""

from __future__ import annotations

import numpy as np
import torch
import array_api_compat.torch as xp_torch

from ._backend import Backend, Generator

#: the environment variable that sets xpnet's CPU thread count for torch
THREADS_VAR = "XPNET_THREADS"
#: torch's own intra-op thread count when xpnet first imported torch (one per core)
_TORCH_DEFAULT_THREADS = torch.get_num_threads()
_threads_defaulted = False


def default_threads(environ):
    """The thread count xpnet gives torch on the CPU: ``$XPNET_THREADS`` if set, else 1.

    Measured on the 2-core CI machine (digits MLP, 5 epochs, batch 32): 0.31 s on one thread
    and 0.32 s on two when idle, but 0.40 s against 1.04-1.59 s when another process held the
    second core (the second thread spins waiting for a busy core; earlier runs saw 3-10x).
    Small nets never gain from a second thread; a large convnet gains up to ~1.3x when idle:
    set ``XPNET_THREADS`` or call ``backend.set_threads(n)`` for those.
    """
    raw = environ.get(THREADS_VAR)
    if raw is None or raw.strip() == "":
        return 1
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"${THREADS_VAR}={raw!r}: expected a positive number of CPU threads")
    return n


def _apply_default_threads():
    """Once per process, when the first torch CPU backend is made: set torch's thread count to
    :func:`default_threads`, unless the program already changed it from torch's own default
    (then the program's choice stands)."""
    global _threads_defaulted
    if _threads_defaulted:
        return
    import os

    n = default_threads(os.environ)
    _threads_defaulted = True
    if torch.get_num_threads() == _TORCH_DEFAULT_THREADS:
        torch.set_num_threads(n)


class TorchGenerator(Generator):
    """A ``torch.Generator`` on the backend's device, so masks never cross the bus."""

    def _reseed(self, seed):
        self._gens = {}
        self._seed = seed

    def _gen(self, device):
        dev = self._backend.device if device is None else torch.device(device)
        g = self._gens.get(dev)
        if g is None:
            g = torch.Generator(device=dev)
            g.manual_seed(self._seed)
            self._gens[dev] = g
        return g, dev

    def get_state(self):
        g, _ = self._gen(None)
        return g.get_state().numpy().copy()

    def set_state(self, state):
        g, _ = self._gen(None)
        g.set_state(torch.as_tensor(np.asarray(state, dtype=np.uint8)))

    def _dtype(self, dtype):
        return torch.float32 if dtype is None else dtype

    def normal(self, shape, mean=0.0, std=1.0, *, dtype=None, device=None):
        g, dev = self._gen(device)
        z = torch.randn(tuple(shape), generator=g, dtype=self._dtype(dtype), device=dev)
        if std != 1.0:
            z.mul_(std)
        if mean != 0.0:
            z.add_(mean)
        return z

    def uniform(self, shape, low=0.0, high=1.0, *, dtype=None, device=None):
        g, dev = self._gen(device)
        u = torch.rand(tuple(shape), generator=g, dtype=self._dtype(dtype), device=dev)
        if (low, high) != (0.0, 1.0):
            u.mul_(high - low).add_(low)
        return u

    def bernoulli(self, shape, p, *, dtype=None, device=None):
        g, dev = self._gen(device)
        hit = torch.rand(tuple(shape), generator=g, device=dev) < p
        return hit if dtype is torch.bool else hit.to(self._dtype(dtype))

    def permutation(self, n, *, device=None):
        g, dev = self._gen(device)
        return torch.randperm(n, generator=g, device=dev, dtype=torch.int64)


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, device=None):
        dev = torch.device("cpu" if device is None else device)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError(
                    f"CUDA is not available to torch {torch.__version__} (torch.cuda.is_available() is False); "
                    "use device 'cpu', or install a CUDA build of torch on a machine with an NVIDIA GPU"
                )
            if dev.index is None:
                dev = torch.device("cuda", torch.cuda.current_device())
        elif dev.type != "cpu":
            raise ValueError(f"the torch backend supports 'cpu' and 'cuda' devices, got {device!r}")
        else:
            _apply_default_threads()
        super().__init__(xp_torch, dev, f"torch:{dev}")
        self.asynchronous = dev.type == "cuda"

    def owns(self, x):
        return isinstance(x, torch.Tensor)

    def _from_host(self, obj, dtype):
        if isinstance(obj, np.ndarray) and not obj.flags.writeable:
            obj = obj.copy()  # torch warns on read-only buffers
        return torch.as_tensor(obj, dtype=dtype, device=self.device)

    def to_numpy(self, x):
        x = x.detach()
        if x.dtype == torch.bfloat16:
            x = x.to(torch.float32)
        if x.device.type == "cpu":
            return x.numpy().copy()
        return x.cpu().numpy()

    def scatter_add(self, target, index, values):
        return target.index_add(0, index, values)

    def synchronize(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _make_generator(self, seed):
        return TorchGenerator(self, seed)

    def set_threads(self, n):
        if self.device.type == "cpu":
            torch.set_num_threads(int(n))

    def describe(self):
        if self.device.type == "cuda":
            return f"torch {torch.__version__} on {self.device} ({torch.cuda.get_device_name(self.device)})"
        n = torch.get_num_threads()
        return f"torch {torch.__version__} on cpu ({n} thread{'' if n == 1 else 's'})"


def make(device=None):
    return TorchBackend(device)


def to_host(x):
    return TorchBackend.to_numpy(None, x)


def is_array(x):
    return isinstance(x, torch.Tensor)
