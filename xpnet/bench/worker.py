"""One benchmark job in a fresh process: ``python -m xpnet.bench.worker '{json job}'``.

Jobs (the ``"job"`` key):

- ``probe``: which backends are usable here, and the library versions;
- ``device``: one side's GEMM ceiling and its host-to-device copies;
- ``row``: one row of the main table: a workload, a mode, a batch, on one side, with the
  peak host and device memory of its steps;
- ``sweep``: one side over the points of a scaling curve (throughput only).

A side is ``{"side": "xpnet", "backend": "numpy" | "torch" | "torch:cuda" | "cupy"}`` or
``{"side": "pytorch", "backend": "cpu" | "cuda"}``. The driver (:mod:`xpnet.bench.run`)
starts workers through :func:`xpnet.bench.processes.run_worker`, which sets the thread
variables before this process imports anything.
"""

from __future__ import annotations

import gc
import importlib
import json
import sys

from . import memory
from .gemm import gemm_ceiling
from .processes import check_thread_env, emit
from .timing import Timing, time_step
from .transfer import copy_time
from .workloads import Workload, host_batches, init_state

LIBRARIES = ("numpy", "torch", "cupy", "array_api_strict")


def _loaded():
    return sorted(m for m in LIBRARIES if m in sys.modules)


def make_side(job):
    """The side a job runs on, with torch's intra-op threads pinned where torch is loaded."""
    if job["side"] == "xpnet":
        from .xpnet_side import XpnetSide

        side = XpnetSide(job["backend"])
    elif job["side"] == "pytorch":
        from .peer import PeerSide

        side = PeerSide(job["backend"])
    else:
        raise ValueError(f"unknown side {job['side']!r}")
    if "torch" in sys.modules:  # the env variables cover OpenMP; torch's own pool is set explicitly
        importlib.import_module("torch").set_num_threads(job["threads"])
    return side


def data_seed(seed: int, batch: int) -> int:
    """The seed of a row's data: the same on every side, different from batch to batch."""
    return seed * 1_000_003 + batch


def job_probe(job):
    """Only the backends the run may use are started (starting torch alone takes seconds)."""
    from xpnet import backends

    from .machine import library_versions

    avail = {}
    for spec in job["specs"]:
        try:
            avail[spec] = {"usable": True, "detail": backends.get(spec).describe()}
        except (backends.BackendUnavailable, ValueError) as e:
            avail[spec] = {"usable": False, "detail": str(e)}
    return {"available": avail, "versions": library_versions()}


def job_device(job):
    side = make_side(job)
    timing = Timing.from_json(job["timing"]).for_device(side.gpu)
    out = {"describe": side.describe(), "gemm": gemm_ceiling(side, timing, job["seed"]), "copies": []}
    for wl, batch in job.get("copies", ()):
        out["copies"].append(copy_time(side, Workload.from_json(wl), batch, timing, data_seed(job["seed"], batch)))
    return out


def job_row(job):
    side = make_side(job)
    after_import = memory.peak_host_mb()
    wl, mode, batch = Workload.from_json(job["workload"]), job["mode"], job["batch"]
    timing = Timing.from_json(job["timing"]).for_device(side.gpu)
    side.memory.reset()
    init = init_state(wl, job["seed"])
    pool = host_batches(wl, batch, data_seed(job["seed"], batch))
    step, checks = side.make_step(wl, mode, init, pool)
    del init, pool  # on the host they are harness copies; on numpy the device data keep their own references
    gc.collect()
    setup = memory.current_host_mb()
    scoped = memory.reset_host_peak()
    res = time_step(step, side.sync, timing)
    return {
        "describe": side.describe(), **res, "checks": checks,
        "host_after_import_mb": after_import, "host_after_setup_mb": setup,
        "peak_host_mb": memory.peak_host_mb(), "peak_host_scope": "steps" if scoped else "process",
        "peak_device_mb": side.memory.peak_mb(),
    }


def job_sweep(job):
    side = make_side(job)
    timing = Timing.from_json(job["timing"]).for_device(side.gpu)
    points = []
    for wl, batch in job["points"]:
        wl = Workload.from_json(wl)
        step, _ = side.make_step(wl, job["mode"], init_state(wl, job["seed"]),
                                 host_batches(wl, batch, data_seed(job["seed"], batch)))
        points.append({"workload": wl.key, "batch": batch, **time_step(step, side.sync, timing)})
        del step
        gc.collect()
    return {"describe": side.describe(), "points": points}


JOBS = {"probe": job_probe, "device": job_device, "row": job_row, "sweep": job_sweep}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(argv[0])
    check_thread_env(job["threads"])
    out = JOBS[job["job"]](job)
    out["libraries_loaded"] = _loaded()
    if job.get("side") == "xpnet" and job.get("backend") == "numpy" and "torch" in out["libraries_loaded"]:
        raise RuntimeError("the xpnet-numpy worker imported torch: its threads and memory would not be its own")
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
