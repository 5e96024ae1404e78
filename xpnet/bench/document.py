"""The JSON file of a run (``bench.json``): its layout, and a check of it.

Top level (``schema`` is ``SCHEMA``; times in seconds, memory in MB = 10**6 bytes, rates in
GFLOP/s = 10**9 FLOP/s or GB/s = 10**9 bytes/s):

- ``machine``: date, CPU model, usable CPUs, threads, GPU name (or null), platform, Python,
  load average at start, ``versions`` (xpnet, numpy and its BLAS, torch, cupy, ...);
- ``config``: the plan (:class:`xpnet.bench.settings.Settings`), timings included;
- ``ceilings``: per library and device, the float32 GEMM ceiling (``n``, ``gflops`` median over
  rounds, ``per_round``);
- ``copies``: the host-to-device copy of one batch, per xpnet side;
- ``rows``: the main table, one object per (workload, mode, batch, side): see ``ROW``;
- ``scaling``: ``{"batch": curve, "width": curve}`` (each ``{"name", "title", "mode", "x", "curves",
  "gpu_overtakes"}``; a curve per side, with points ``{"x", "batch", "samples_per_s",
  "ms_per_step", "gflops", ...}``); empty with ``--no-scaling``;
- ``skipped``: ``{what: why}`` for backends and peers that could not run here;
- ``failures``: ``[{"job", "error"}]`` for workers that failed (their rows are missing);
- ``noise``: the largest share of all CPUs other processes used during any worker.
"""

from __future__ import annotations

SCHEMA = "xpnet-bench/1"

_num = (int, float)
_opt_num = (int, float, type(None))

TOP = {"schema": str, "machine": dict, "config": dict, "ceilings": list, "copies": list, "rows": list,
       "scaling": dict, "skipped": dict, "failures": list, "noise": dict}
MACHINE = {"date": str, "cpu_model": str, "cpus_usable": int, "threads": int, "gpu": (str, type(None)),
           "platform": str, "python": str, "versions": dict}
ROW = {
    "workload": str, "title": str, "mode": str, "batch": int, "side": str, "backend": str, "label": str,
    "device": str, "describe": str, "median_s": _num, "min_s": _num, "max_s": _num, "q1_s": _num, "q3_s": _num,
    "per_repeat_s": list, "samples_per_s": _num, "ms_per_step": _num, "rounds": int, "flops_per_step": int,
    "gflops": _num, "ceiling_gflops": _opt_num, "ceiling_fraction": _opt_num, "ratio_to_peer": _opt_num,
    "ratio_range": (list, type(None)), "peer": (str, type(None)), "check_rel_diff": _opt_num, "checks": list,
    "peak_host_mb": _num, "peak_host_scope": str, "host_after_import_mb": _num, "peak_device_mb": _opt_num,
    "foreign_cpu": _opt_num,
}
CEILING = {"ceiling": str, "describe": str, "n": int, "gflops": _num, "per_round": list}
COPY = {"backend": str, "label": str, "workload": str, "batch": int, "bytes": int, "median_s": _num,
        "gb_per_s": _num, "zero_copy": bool}


def build(machine, settings, ceils, copies, rows, scaling, skipped, failures, foreign) -> dict:
    """The document; ``ceils`` is the dict of :func:`xpnet.bench.combine.ceilings`, ``foreign``
    every worker's share of the CPUs used by other processes."""
    foreign = [f for f in foreign if f is not None]
    return {
        "schema": SCHEMA, "machine": machine, "config": settings.to_json(),
        "ceilings": list(ceils.values()), "copies": copies, "rows": rows, "scaling": scaling,
        "skipped": skipped, "failures": failures,
        "noise": {"max_foreign_cpu": max(foreign) if foreign else None,
                  "note": "share of all CPUs used by other processes while a worker ran; above 0.05 rerun"},
    }


def _check(obj, spec, where, problems):
    if not isinstance(obj, dict):
        problems.append(f"{where}: expected an object, got {type(obj).__name__}")
        return
    for key, types in spec.items():
        if key not in obj:
            problems.append(f"{where}: missing {key!r}")
        elif isinstance(obj[key], bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            problems.append(f"{where}.{key}: expected {types}, got bool")
        elif not isinstance(obj[key], types):
            problems.append(f"{where}.{key}: expected {types}, got {type(obj[key]).__name__}")


def problems(doc) -> list[str]:
    """What is wrong with ``doc`` against the layout above (empty when nothing is)."""
    out = []
    _check(doc, TOP, "doc", out)
    if out:
        return out
    if doc["schema"] != SCHEMA:
        out.append(f"doc.schema: expected {SCHEMA!r}, got {doc['schema']!r}")
    _check(doc["machine"], MACHINE, "machine", out)
    for i, r in enumerate(doc["rows"]):
        _check(r, ROW, f"rows[{i}]", out)
        if isinstance(r, dict) and r.get("mode") not in ("train", "infer"):
            out.append(f"rows[{i}].mode: expected 'train' or 'infer', got {r.get('mode')!r}")
    for i, c in enumerate(doc["ceilings"]):
        _check(c, CEILING, f"ceilings[{i}]", out)
    for i, c in enumerate(doc["copies"]):
        _check(c, COPY, f"copies[{i}]", out)
    for name, sw in doc["scaling"].items():
        _check(sw, {"name": str, "title": str, "mode": str, "x": list, "curves": list, "gpu_overtakes": dict}, f"scaling.{name}", out)
    return out
