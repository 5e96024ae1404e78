"""The host-to-device copy of one batch, measured apart from the step.

Rows time a step on data already on the device; this measures what putting a batch there
costs: ``side.to_device(x)`` and ``side.to_device(y)`` for one batch (inputs float32, labels
int64 or a layer workload's float32 targets) from ordinary (pageable) host numpy arrays, then
a synchronize, per repeat::

    GB/s = (bytes of x + bytes of y) / (median seconds per copy) / 1e9

On the CPU the backends share the host array (numpy returns it as it is, torch wraps its
buffer), so the figure there is the cost of the call, not of a copy: reported as zero-copy.
"""

from __future__ import annotations

from .timing import summarize, time_step
from .workloads import host_batches


def copy_time(side, workload, batch: int, timing, seed: int = 0) -> dict:
    """``{"workload", "batch", "bytes", "median_s", "gb_per_s", "zero_copy", "per_repeat_s"}``."""
    (x, y), = host_batches(workload, batch, seed, pool=1)
    nbytes = x.nbytes + y.nbytes

    def step():
        side.to_device(x)
        side.to_device(y)

    s = summarize(time_step(step, side.sync, timing)["per_repeat_s"], 1)
    return {"workload": workload.key, "batch": batch, "bytes": nbytes, "median_s": s["median_s"],
            "gb_per_s": nbytes / s["median_s"] / 1e9, "zero_copy": not side.gpu, "per_repeat_s": s["per_repeat_s"]}
