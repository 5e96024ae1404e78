"""From the workers' results to the rows of the tables and the JSON file.

Per row (a workload, a mode, a batch, a side), the per-repeat seconds per step of every
round are pooled, and:

- ``samples_per_s = batch / median_s``; ``ms_per_step = 1000 * median_s``;
- ``gflops = flops_per_step / median_s / 1e9`` (FLOPs counted from the model,
  :mod:`xpnet.bench.flops`), and ``ceiling_fraction = gflops / ceiling_gflops``, the ceiling
  being the median over rounds of the side's own GEMM rate (:mod:`xpnet.bench.gemm`);
- for an xpnet row, ``ratio_to_peer = samples_per_s / peer's samples_per_s`` (above 1:
  xpnet is faster), and ``ratio_range``, the min and max of ``peer time / xpnet time`` over
  paired repeats (repeat j of round r on both sides: they ran back to back);
- ``check_rel_diff``: the largest relative difference between the first results (losses, or
  sums of squared outputs) of the xpnet row and its peer: both must compute the same thing.
"""

from __future__ import annotations

import statistics

from .flops import workload_flops
from .timing import summarize


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def ceilings(device_runs, sides) -> dict:
    """``{ceiling name: {"ceiling", "describe", "n", "gflops", "per_round"}}`` (median over rounds)."""
    out = {}
    for s in sides:
        runs = device_runs.get(s.key)
        if not runs or s.ceiling in out:
            continue
        per_round = [r["gemm"]["gflops"] for r in runs]
        out[s.ceiling] = {"ceiling": s.ceiling, "describe": runs[0]["describe"], "n": runs[0]["gemm"]["n"],
                          "gflops": statistics.median(per_round), "per_round": per_round}
    return out


def copies(device_runs, sides) -> list:
    """One entry per (xpnet side, workload batch): the host-to-device copy, median over rounds."""
    out = []
    for s in sides:
        runs = device_runs.get(s.key) or []
        if s.side != "xpnet" or not runs:
            continue
        for i, first in enumerate(runs[0]["copies"]):
            times = [t for r in runs for t in r["copies"][i]["per_repeat_s"]]
            med = statistics.median(times)
            out.append({"backend": s.backend, "label": s.label, "workload": first["workload"], "batch": first["batch"],
                        "bytes": first["bytes"], "median_s": med, "gb_per_s": first["bytes"] / med / 1e9,
                        "zero_copy": first["zero_copy"], "per_repeat_s": times})
    return out


def _row(wl, mode, batch, side, runs, flops, ceiling):
    stats = summarize([t for r in runs for t in r["per_repeat_s"]], batch)
    gflops = flops / stats["median_s"] / 1e9
    cg = ceiling["gflops"] if ceiling else None
    return {
        "workload": wl.key, "title": wl.title, "mode": mode, "batch": batch,
        "side": side.side, "backend": side.backend, "label": side.label, "device": "gpu" if side.gpu else "cpu",
        "describe": runs[0]["describe"], **stats, "rounds": len(runs),
        "flops_per_step": flops, "gflops": gflops, "ceiling_gflops": cg,
        "ceiling_fraction": gflops / cg if cg else None,
        "ratio_to_peer": None, "ratio_range": None, "peer": None, "check_rel_diff": None,
        "checks": runs[0]["checks"],
        "peak_host_mb": _max(r["peak_host_mb"] for r in runs),
        "peak_host_scope": runs[0]["peak_host_scope"],
        "host_after_import_mb": _median(r["host_after_import_mb"] for r in runs),
        "peak_device_mb": _max(r["peak_device_mb"] for r in runs),
        "foreign_cpu": _max(r.get("foreign_cpu") for r in runs),
    }


def _compare(row, xruns, peer_row, pruns):
    row["peer"] = peer_row["label"]
    row["ratio_to_peer"] = row["samples_per_s"] / peer_row["samples_per_s"]
    paired = [pt / xt for xr, pr in zip(xruns, pruns) for xt, pt in zip(xr["per_repeat_s"], pr["per_repeat_s"])]
    row["ratio_range"] = [min(paired), max(paired)] if paired else None
    row["check_rel_diff"] = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(row["checks"], peer_row["checks"]))


def rows(row_runs, sides, groups, ceils) -> list:
    """The main table: for each group ``(workload, mode, batch)``, the peers' rows and the xpnet rows
    (in ``sides`` order), skipping sides whose every round failed."""
    out = []
    for wl, mode, batch in groups:
        flops = workload_flops(wl, batch, mode)
        made = {}
        for s in sides:
            runs = row_runs.get((wl.key, mode, batch, s.key))
            if runs:
                made[s] = (_row(wl, mode, batch, s, runs, flops, ceils.get(s.ceiling)), runs)
        for s, (row, runs) in made.items():
            if s.side == "xpnet":
                peer = next(((pr, prun) for ps, (pr, prun) in made.items()
                             if ps.side == "pytorch" and ps.backend == s.peer_device), None)
                if peer:
                    _compare(row, runs, *peer)
        out += [made[s][0] for s in sides if s in made]
    return out


def sweep(name, title, points, sweep_runs, sides, mode="train") -> dict:
    """One scaling curve: ``points`` are ``(workload, batch, x)`` with ``x`` the swept value;
    per side, the throughput at each point (per-repeat times pooled over rounds)."""
    curves = []
    for s in sides:
        runs = sweep_runs.get(s.key)
        if not runs:
            continue
        pts = []
        for i, (wl, batch, x) in enumerate(points):
            times = [t for r in runs for t in r["points"][i]["per_repeat_s"]]
            st = summarize(times, batch)
            flops = workload_flops(wl, batch, mode)
            pts.append({"x": x, "workload": wl.key, "batch": batch, "median_s": st["median_s"],
                        "min_s": st["min_s"], "max_s": st["max_s"], "samples_per_s": st["samples_per_s"],
                        "ms_per_step": st["ms_per_step"], "flops_per_step": flops,
                        "gflops": flops / st["median_s"] / 1e9})
        curves.append({"side": s.side, "backend": s.backend, "label": s.label, "device": "gpu" if s.gpu else "cpu",
                       "points": pts})
    return {"name": name, "title": title, "mode": mode, "x": [p[2] for p in points], "curves": curves,
            "gpu_overtakes": overtakes(curves)}


def overtakes(curves) -> dict:
    """Where a GPU overtakes the CPU along a curve, for xpnet and for PyTorch separately:
    ``{"xpnet": x or None, "pytorch": ...}``, the smallest swept value from which the fastest GPU
    side beats the fastest CPU side at every larger value too (None: it never does, or one of
    the two is absent; the key is missing when there is nothing to compare)."""
    out = {}
    for who in ("xpnet", "pytorch"):
        cpu = [c for c in curves if c["side"] == who and c["device"] == "cpu"]
        gpu = [c for c in curves if c["side"] == who and c["device"] == "gpu"]
        if not cpu or not gpu:
            continue
        xs = [p["x"] for p in cpu[0]["points"]]
        best = [(max(c["points"][i]["samples_per_s"] for c in cpu), max(c["points"][i]["samples_per_s"] for c in gpu))
                for i in range(len(xs))]
        at = None
        for i in range(len(xs) - 1, -1, -1):
            if best[i][1] > best[i][0]:
                at = xs[i]
            else:
                break
        out[who] = at
    return out
