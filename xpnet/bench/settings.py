"""The plan of a run: what to time, on what, how long, and the ``--quick`` and full presets.

Full run: 3 rounds of fresh processes per row (alternating order), 5 repeats of ~0.3 s after
0.5 s of warm-up, scaling curves over 8 batch sizes and 6 widths in 2 rounds.
``--quick``: 1 round of 3 repeats of ~0.1 s, and 3 points per scaling curve; it is a first
look (rows move by more than on a full run), not the figures to publish.
"""

from __future__ import annotations

import dataclasses

from .sides import BACKENDS
from .timing import Timing
from .workloads import DEFAULT_WORKLOADS, MODES

FULL_TIMING = Timing(repeats=5, repeat_s=0.3, warmup_s=0.5, min_warmup=3, min_blocks=3)
QUICK_TIMING = Timing(repeats=3, repeat_s=0.1, warmup_s=0.1, min_warmup=2, min_blocks=1)
FULL_SWEEP_TIMING = Timing(repeats=3, repeat_s=0.2, warmup_s=0.3, min_warmup=2, min_blocks=2)
QUICK_SWEEP_TIMING = Timing(repeats=2, repeat_s=0.05, warmup_s=0.05, min_warmup=1, min_blocks=1)
# GEMM ceilings and host-to-device copies: short, steady operations
FULL_DEVICE_TIMING = Timing(repeats=3, repeat_s=0.15, warmup_s=0.2, min_warmup=2, min_blocks=3)
QUICK_DEVICE_TIMING = Timing(repeats=2, repeat_s=0.05, warmup_s=0.05, min_warmup=1, min_blocks=1)

FULL_BATCHES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
QUICK_BATCHES = (32, 512, 4096)
FULL_WIDTHS = (128, 256, 512, 1024, 2048, 4096)
QUICK_WIDTHS = (128, 512, 2048)


@dataclasses.dataclass(frozen=True)
class Settings:
    threads: int
    quick: bool = False
    backends: tuple = BACKENDS
    workloads: tuple = DEFAULT_WORKLOADS
    modes: tuple = MODES
    peer: bool = True
    scaling: bool = True
    rounds: int = 3
    timing: Timing = FULL_TIMING
    sweep_rounds: int = 2
    sweep_timing: Timing = FULL_SWEEP_TIMING
    device_timing: Timing = FULL_DEVICE_TIMING
    batch_sweep: tuple = FULL_BATCHES  # the MLP's training step against the batch size
    width_sweep: tuple = FULL_WIDTHS  # 784-W-W-10 training step against W
    width_batch: int = 256
    seed: int = 0

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("timing", "sweep_timing", "device_timing"):
            d[k] = getattr(self, k).to_json()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def preset(quick: bool, threads: int, *, steps=None, repeats=None, **choices) -> Settings:
    """The full or quick plan, with ``steps`` (exact steps per repeat) and ``repeats`` overriding
    the timing, and ``choices`` (backends, workloads, modes, peer, scaling) the selection."""
    if quick:
        base = dict(rounds=1, timing=QUICK_TIMING, sweep_rounds=1, sweep_timing=QUICK_SWEEP_TIMING,
                    device_timing=QUICK_DEVICE_TIMING, batch_sweep=QUICK_BATCHES, width_sweep=QUICK_WIDTHS)
    else:
        base = {}
    s = Settings(threads=threads, quick=quick, **{**base, **choices})
    over = {k: v for k, v in (("steps", steps), ("repeats", repeats)) if v is not None}
    if over:
        s = dataclasses.replace(s, **{k: dataclasses.replace(getattr(s, k), **over)
                                      for k in ("timing", "sweep_timing", "device_timing")})
    return s
