"""Each backend's own GEMM ceiling, measured in the same run as the rows it judges.

The ceiling is the float32 rate of one square product ``a @ b`` with ``a, b`` of shape
``(n, n)`` drawn from N(0, 1) and already on the device: ``2 n**3`` FLOPs per product, so::

    ceiling GFLOP/s = 2 n**3 / (seconds per product in the fastest repeat) / 1e9

The fastest repeat, not the median: a ceiling is what the library can reach, and noise
(another process, a frequency dip) only ever slows a repeat down.

``n`` is 1024 on the CPU (the size the step's products approach; larger ones run no
faster on a few cores) and 4096 on a GPU (1024 is too small to fill one). A row's
"% of ceiling" is its achieved GFLOP/s (FLOPs counted from the model, see
:mod:`xpnet.bench.flops`) over this figure, for the library and device it ran on.
"""

from __future__ import annotations

from .timing import summarize, time_step
from .workloads import host_normal

CPU_N, GPU_N = 1024, 4096


def gemm_ceiling(side, timing, seed: int = 0) -> dict:
    """``{"n", "gflops", "min_s", "median_s", "per_repeat_s"}`` of ``side``'s own float32 GEMM
    (``side``: an xpnet or peer side of :mod:`xpnet.bench.worker`)."""
    n = GPU_N if side.gpu else CPU_N
    a, b = side.to_device(host_normal((n, n), seed)), side.to_device(host_normal((n, n), seed + 1))

    def step():
        a @ b

    s = summarize(time_step(step, side.sync, timing)["per_repeat_s"], 1)
    return {"n": n, "gflops": 2 * n**3 / s["min_s"] / 1e9, "min_s": s["min_s"], "median_s": s["median_s"],
            "per_repeat_s": s["per_repeat_s"]}
