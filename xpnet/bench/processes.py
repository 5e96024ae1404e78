"""Worker processes: each measurement runs in a fresh ``python -m xpnet.bench.worker``.

Why fresh processes:

- thread counts: OpenBLAS, MKL and OpenMP read ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``
  and ``OMP_NUM_THREADS`` once, when numpy or torch is imported; the child gets them in its
  environment, so they hold from its first import (torch also gets ``torch.set_num_threads``);
- one library per process: the xpnet-numpy worker never imports torch (two thread pools in
  one process can spin against each other on a few cores);
- memory: ``ru_maxrss`` cannot be reset, so a row's peak is only its own in its own process.

The worker reads its job as JSON from ``argv[1]`` and answers with one stdout line
``@@XPNET-BENCH@@ {json}``; anything else it prints passes through to our stderr.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")
RESULT_TAG = "@@XPNET-BENCH@@ "
# the directory holding the xpnet package: the worker imports this very xpnet, installed or not
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class WorkerFailed(RuntimeError):
    """A worker process exited with an error; the message ends with its last stderr lines."""


def thread_env(threads: int, base=None) -> dict:
    """A copy of the environment with every BLAS/OpenMP thread variable set to ``threads``."""
    env = dict(os.environ if base is None else base)
    for v in THREAD_VARS:
        env[v] = str(threads)
    if os.path.basename(_PACKAGE_ROOT) not in ("site-packages", "dist-packages"):  # a checkout, not installed
        env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("XPNET_BACKEND", None)  # the job names its backend; a default from outside must not leak in
    return env


def check_thread_env(threads: int) -> None:
    """In a worker: refuse to time unless the thread variables were set before any import."""
    for v in THREAD_VARS[:3]:
        if os.environ.get(v) != str(threads):
            raise RuntimeError(f"{v} is {os.environ.get(v)!r}, expected {threads}: start workers with run_worker()")


def _machine_cpu_s():
    """Busy CPU seconds of the whole machine since boot (``/proc/stat``); None where unreadable."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (v + [0] * 7)[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def run_worker(job: dict, threads: int, timeout: float = 600.0) -> dict:
    """Run ``job`` in a fresh worker with ``threads`` threads; return its result object.

    The result gains ``foreign_cpu``: the CPU time other processes used while the worker ran,
    as a fraction of all CPUs (``None`` where ``/proc/stat`` is unreadable). Above a few
    percent the machine was busy and the figures are unreliable.
    """
    cmd = [sys.executable, "-m", "xpnet.bench.worker", json.dumps(job)]
    m0, own0, t0 = _machine_cpu_s(), _own_cpu_s(), time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WorkerFailed(f"worker {job.get('job')} ran past {timeout:.0f} s") from None
    m1, own1, wall = _machine_cpu_s(), _own_cpu_s(), time.perf_counter() - t0
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
        elif line.strip():
            print(line, file=sys.stderr)
    if proc.returncode != 0 or result is None:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise WorkerFailed(f"worker {job.get('job')} exited with status {proc.returncode}: {tail}")
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    foreign = None
    if m0 is not None and m1 is not None and wall > 0:
        foreign = max(0.0, (m1 - m0) - (own1 - own0)) / (wall * (os.cpu_count() or 1))
    result["foreign_cpu"] = foreign
    return result


def emit(obj) -> None:
    """In a worker: hand the result back to :func:`run_worker` (the worker's last act)."""
    sys.stdout.write(RESULT_TAG + json.dumps(obj) + "\n")
    sys.stdout.flush()
