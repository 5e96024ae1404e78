"""Shared helpers for the benchmarks: thread environment, subprocess workers,
interleaved timing with medians and spreads, peak memory, machine description.

This module imports only the standard library at import time, so a benchmark
can load it before it has pinned the thread count of numpy and torch.
"""

from __future__ import annotations

import datetime
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
RESULT_TAG = "@@RESULT@@ "


# -- processes -------------------------------------------------------------------------
def thread_env(threads: int, base=None) -> dict:
    """A copy of the environment with every BLAS/OpenMP thread-count variable set to ``threads``."""
    env = dict(os.environ if base is None else base)
    for v in THREAD_VARS:
        env[v] = str(threads)
    # the worker imports xpnet from this checkout, not from whatever is installed
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("XPNET_BACKEND", None)
    return env


def _cpu_jiffies():
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat; None where unreadable."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / hz, steal / hz


def _own_cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def run_worker(script: str, args, threads: int, timeout: float = 600.0):
    """Run ``python script *args`` in a fresh process with ``threads`` threads; return its result object.

    The worker reports by printing one line ``@@RESULT@@ {json}`` (see :func:`emit`);
    everything else it prints goes through to our stderr. The result gains ``_foreign_cpu``:
    the CPU time other processes on the machine used while the worker ran, as a fraction of
    all CPUs (a busy machine makes every figure unreliable), and ``_steal`` (time the
    hypervisor took away).
    """
    cmd = [sys.executable, script, *map(str, args)]
    j0, own0, t0 = _cpu_jiffies(), _own_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True, timeout=timeout)
    j1, own1, wall = _cpu_jiffies(), _own_cpu(), time.perf_counter() - t0
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
        else:
            print(line, file=sys.stderr)
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"worker {' '.join(map(str, args))} failed with exit code {proc.returncode}")
    if j0 and j1 and isinstance(result, dict):
        ncpu = os.cpu_count() or 1
        result["_foreign_cpu"] = max(0.0, (j1[0] - j0[0]) - (own1 - own0)) / (wall * ncpu)
        result["_steal"] = (j1[1] - j0[1]) / (wall * ncpu)
    return result


def emit(obj) -> None:
    """Hand a result object back to :func:`run_worker` (the worker's last act)."""
    sys.stdout.write(RESULT_TAG + json.dumps(obj) + "\n")
    sys.stdout.flush()


def check_thread_env(threads: int) -> None:
    """Refuse to time in a process whose BLAS/OpenMP thread variables were not set before import."""
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(v) != str(threads):
            raise RuntimeError(f"{v} is {os.environ.get(v)!r}, expected {threads}: run workers through run_worker()")


# -- timing ----------------------------------------------------------------------------
def _nosync():
    pass


def warm_up(step, sync=_nosync, seconds: float = 0.3, min_steps: int = 5, min_block_s: float = 2e-3) -> int:
    """Run ``step`` for about ``seconds`` (and at least ``min_steps`` times); return the block size
    ``k`` (steps between two clock reads) that makes one timed block last at least ``min_block_s``."""
    n = 0
    sync()
    t0 = time.perf_counter()
    while True:
        step()
        n += 1
        if n >= min_steps:
            sync()
            if time.perf_counter() - t0 >= seconds:
                break
    per_step = (time.perf_counter() - t0) / n
    return max(1, math.ceil(min_block_s / per_step))


def time_repeat(step, k: int, target_s: float, sync=_nosync, min_blocks: int = 3):
    """One repeat: blocks of ``k`` steps, each between two clock reads (after ``sync()``), until
    ``target_s`` has passed. Returns (median seconds per step over the blocks, steps run).
    The garbage collector runs before the repeat and is paused during it, on both sides alike."""
    gc.collect()
    gc.disable()
    try:
        per_step = []
        start = time.perf_counter()
        while True:
            sync()
            t0 = time.perf_counter()
            for _ in range(k):
                step()
            sync()
            t1 = time.perf_counter()
            per_step.append((t1 - t0) / k)
            if len(per_step) >= min_blocks and t1 - start >= target_s:
                break
    finally:
        gc.enable()
    return statistics.median(per_step), len(per_step) * k


def time_steps(step, sync=_nosync, *, repeats: int, target_s: float, warmup_s: float, min_block_s: float = 2e-3):
    """Warm ``step`` up, then time ``repeats`` repeats of it (see :func:`time_repeat`).
    Returns ``{"per_repeat_s": [...], "steps": n, "block": k, "minor_faults_per_step": f}``."""
    k = warm_up(step, sync, seconds=warmup_s, min_block_s=min_block_s)
    per_repeat, steps = [], 0
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        t, n = time_repeat(step, k, target_s, sync)
        per_repeat.append(t)
        steps += n
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    # minor page faults: memory the step touched fresh (large temporaries returned to the OS and re-mapped)
    return {"per_repeat_s": per_repeat, "steps": steps, "block": k, "minor_faults_per_step": faults / max(steps, 1)}


def summarize(per_repeat_s, batch: int) -> dict:
    """Median and min/max of per-repeat seconds per step, and the median throughput."""
    med = statistics.median(per_repeat_s)
    return {
        "median_s": med,
        "min_s": min(per_repeat_s),
        "max_s": max(per_repeat_s),
        "samples_per_s": batch / med,
        "per_repeat_s": list(per_repeat_s),
    }


# -- memory ----------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1e6 if sys.platform == "darwin" else r * 1024 / 1e6


# -- machine ---------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(threads: int, versions: dict | None = None) -> dict:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpus_usable": cores,
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        **({"versions": versions} if versions else {}),
    }
