"""Timing one step: warm-up, repeats of blocks between clock reads, medians and spread.

A *step* is a callable that queues one unit of work (a training step, a forward pass, a
GEMM). On a GPU the work is asynchronous, so ``sync()`` (the device's synchronize) runs
before every clock read; on the CPU it is a no-op. All times are seconds (``time.perf_counter``).

Two ways to size the work:

- by time (the default): warm up for ``warmup_s`` seconds (at least ``min_warmup`` steps),
  then choose a block size ``k`` so that one block of ``k`` steps lasts at least
  ``min_block_s`` (clock resolution and sync cost stay well under 1% of a block); each repeat
  runs blocks for about ``repeat_s`` seconds, and its value is the median over its blocks of
  ``block time / k``;
- by count (``steps=N``): warm up with ``N`` steps, then each repeat is one block of exactly
  ``N`` steps (``--steps`` on the command line; used by the smoke test).

The garbage collector runs before each repeat and is paused during it, so a collection
never lands inside a timed block (the same on both sides of a comparison).
"""

from __future__ import annotations

import dataclasses
import gc
import math
import statistics
import time


def no_sync() -> None:
    """The CPU's synchronize: nothing is queued, so there is nothing to wait for."""


@dataclasses.dataclass(frozen=True)
class Timing:
    """How long to warm up and how much to time; see the module docstring."""

    repeats: int = 5
    repeat_s: float = 0.3
    warmup_s: float = 0.5
    min_warmup: int = 3
    min_blocks: int = 3  # per repeat, when timing by time
    steps: int | None = None
    min_block_s: float = 2e-3  # 10 ms on a GPU (see for_device): a sync costs tens of microseconds

    def for_device(self, gpu: bool) -> "Timing":
        """The same plan with blocks long enough for a GPU's synchronize when ``gpu``."""
        return dataclasses.replace(self, min_block_s=max(self.min_block_s, 1e-2)) if gpu else self

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d) -> "Timing":
        return cls(**d)


def warm_up(step, sync, timing: Timing) -> int:
    """Run ``step`` until warm; return the block size ``k`` (steps between two clock reads)."""
    if timing.steps is not None:
        for _ in range(timing.steps):
            step()
        sync()
        return timing.steps
    n = 0
    sync()
    t0 = time.perf_counter()
    while True:
        step()
        n += 1
        if n >= timing.min_warmup:
            sync()
            if time.perf_counter() - t0 >= timing.warmup_s:
                break
    per_step = (time.perf_counter() - t0) / n
    return max(1, math.ceil(timing.min_block_s / per_step))


def time_repeat(step, sync, k: int, timing: Timing) -> float:
    """One repeat: blocks of ``k`` steps between clock reads; the median seconds per step over blocks.

    With ``timing.steps`` set, exactly one block; otherwise at least ``timing.min_blocks``
    blocks and about ``timing.repeat_s`` seconds.
    """
    gc.collect()
    gc.disable()
    try:
        per_step = []
        start = time.perf_counter()
        while True:
            sync()  # the previous block's queued work must not land in this block
            t0 = time.perf_counter()
            for _ in range(k):
                step()
            sync()
            t1 = time.perf_counter()
            per_step.append((t1 - t0) / k)
            if timing.steps is not None:
                break
            if len(per_step) >= timing.min_blocks and t1 - start >= timing.repeat_s:
                break
    finally:
        gc.enable()
    return statistics.median(per_step)


def time_step(step, sync, timing: Timing) -> dict:
    """Warm ``step`` up, then time ``timing.repeats`` repeats.

    Returns ``{"per_repeat_s": [seconds per step, one per repeat], "block": k}``.
    """
    k = warm_up(step, sync, timing)
    return {"per_repeat_s": [time_repeat(step, sync, k, timing) for _ in range(timing.repeats)], "block": k}


def quartiles(values) -> tuple[float, float]:
    """The first and third quartiles (``statistics.quantiles``, inclusive method); for one value, itself."""
    values = list(values)
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def summarize(per_repeat_s, batch: int) -> dict:
    """Statistics of per-repeat seconds per step.

    ``median_s``, ``min_s``, ``max_s``, ``q1_s``, ``q3_s`` (seconds per step), ``samples_per_s``
    (``batch / median_s``), ``ms_per_step`` (``1000 * median_s``) and ``per_repeat_s``.
    """
    values = [float(v) for v in per_repeat_s]
    med = statistics.median(values)
    q1, q3 = quartiles(values)
    return {
        "median_s": med, "min_s": min(values), "max_s": max(values), "q1_s": q1, "q3_s": q3,
        "samples_per_s": batch / med, "ms_per_step": med * 1e3, "per_repeat_s": values,
    }
