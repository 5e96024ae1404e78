"""Peak memory: host resident set size, and device memory on a GPU.

Host: ``ru_maxrss`` of the worker process, the largest resident set it had. Every row of
the main table runs in its own fresh process, so the peak is that row's alone: the libraries
it imported, its net and optimizer state, its data and its steps' temporaries. Once the row
is set up (the initial weights copied into the net and dropped), the worker resets the
kernel's high-water mark (``/proc/self/clear_refs``, Linux), so that the harness's own
transient copies do not count; where that is impossible the peak covers the whole process,
and the row says so.

Device, where the row runs on a GPU:

- torch (xpnet's ``torch:cuda`` backend and the PyTorch peer): ``torch.cuda.max_memory_allocated``
  after ``torch.cuda.reset_peak_memory_stats`` at the start of the row: the most bytes that
  tensors held at once;
- CuPy: the bytes held by CuPy's default memory pool at the end of the row, after emptying
  the pool at its start. The pool keeps every block it ever allocated and reuses freed ones,
  so this is the row's peak in use, rounded up to the pool's block sizes (an upper bound).

All figures are reported in MB (10**6 bytes).
"""

from __future__ import annotations

import importlib
import resource
import sys

MB = 1e6


def current_host_mb():
    """Resident set size now, MB (``/proc/self/statm``); None where unreadable."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * resource.getpagesize() / MB


def reset_host_peak() -> bool:
    """Make the peak resident set size start again from the current one; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5: reset the peak RSS (VmHWM, and so ru_maxrss) to the current RSS
        return True
    except OSError:
        return False


def peak_host_mb() -> float:
    """Peak resident set size of this process so far, MB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / MB if sys.platform == "darwin" else r * 1024 / MB


class _NoDevice:
    """The CPU: no device memory to report."""

    def reset(self) -> None:
        pass

    def peak_mb(self):
        return None


class _TorchCuda:
    def __init__(self, device):
        # the torch module of the process (already imported by the side being measured)
        self._cuda = importlib.import_module("torch").cuda
        self._device = device

    def reset(self) -> None:
        self._cuda.synchronize(self._device)
        self._cuda.reset_peak_memory_stats(self._device)

    def peak_mb(self) -> float:
        self._cuda.synchronize(self._device)
        return self._cuda.max_memory_allocated(self._device) / MB


class _CupyPool:
    def __init__(self):
        # CuPy is imported by xpnet's cupy backend in this process; only its pool is read here
        self._cupy = importlib.import_module("cupy")
        self._pool = self._cupy.get_default_memory_pool()

    def reset(self) -> None:
        self._cupy.cuda.Stream.null.synchronize()
        self._pool.free_all_blocks()

    def peak_mb(self) -> float:
        self._cupy.cuda.Stream.null.synchronize()
        return self._pool.total_bytes() / MB


def device_tracker(kind: str, device=None):
    """A tracker with ``reset()`` and ``peak_mb()`` (``None`` on the CPU) for ``kind``:
    ``"cpu"``, ``"torch:cuda"`` (with ``device`` a torch device) or ``"cupy"``."""
    if kind == "torch:cuda":
        return _TorchCuda(device)
    if kind == "cupy":
        return _CupyPool()
    return _NoDevice()
