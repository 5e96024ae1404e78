"""Time limits for the GPU check: one budget for the whole command, one limit per phase.

A phase is a child process run in its own process group with its output appended to a log.
At its limit it is stopped, so one hung phase cannot eat the device time of the others:

- a pytest phase first gets SIGINT ``grace_s`` seconds before the limit: pytest then stops,
  prints its summary of what ran and writes its junit file, so the counts survive;
- then (any phase) SIGTERM, and SIGKILL to the whole group (xdist and bench workers too).

The budget gives each phase ``min(cap, time left - floors of the phases still to come - reserve)``,
so a slow early phase shortens the later ones but cannot starve them below their floor; a
phase whose share falls under its own floor is skipped, and the report says so.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time


class Budget:
    """Seconds left of ``total_s`` since construction, shared out among phases."""

    def __init__(self, total_s: float, reserve_s: float = 10.0):
        self.t0, self.total_s, self.reserve_s = time.monotonic(), float(total_s), reserve_s

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.total_s - self.elapsed()

    def share(self, cap_s: float, later_floors_s: float = 0.0) -> float:
        """The limit of the next phase: its cap, or what is left after keeping the later
        phases' floors and the final reserve (the summary), whichever is smaller."""
        return max(0.0, min(cap_s, self.left() - later_floors_s - self.reserve_s))


@dataclasses.dataclass
class Outcome:
    rc: int | None  # None: never started
    seconds: float
    timed_out: bool = False
    error: str | None = None  # why it could not start


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_limited(cmd, *, log, limit_s: float, env=None, cwd=None, interrupt_s: float = 0.0) -> Outcome:
    """Run ``cmd`` with stdout and stderr appended to the open file ``log``; stop it at ``limit_s``.

    ``interrupt_s`` > 0: send SIGINT to the main process that many seconds before the limit
    (pytest's clean stop). Whatever the child leaves running in its group is killed at the end."""
    t0 = time.monotonic()
    log.flush()
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    except OSError as e:
        return Outcome(None, 0.0, error=f"{type(e).__name__}: {e}")
    timed_out = False
    soft = max(0.0, limit_s - interrupt_s) if interrupt_s > 0 else limit_s
    try:
        proc.wait(timeout=soft)
    except subprocess.TimeoutExpired:
        timed_out = True
        if interrupt_s > 0:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=interrupt_s)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
    _signal_group(proc.pid, signal.SIGKILL)  # stragglers: workers the child started and left behind
    return Outcome(proc.returncode, time.monotonic() - t0, timed_out)
