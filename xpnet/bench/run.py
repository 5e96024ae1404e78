"""The driver of ``xpnet bench``: plan the worker jobs, run them, combine, report.

Order of work:

1. a probe worker says which backends are usable and which library versions are here;
2. per round: each side's GEMM ceiling and host-to-device copies (a ``device`` job per
   side), then every row of the main table, each in a fresh worker; within a group (a
   workload, a mode, a batch) the sides run back to back, in reversed order every other
   round, so slow drift of the machine reaches xpnet and its peer alike;
3. per sweep round: each side's scaling curves (batch, then width) in one worker;
4. the report (:func:`xpnet.bench.table.report`) on stdout; with ``out_dir``, ``bench.json``
   and the PNG charts there.

Progress goes to stderr, so stdout holds only the report.
"""

from __future__ import annotations

import json
import os
import sys
import time

from . import combine, document, table
from .charts import write_charts
from .machine import describe
from .processes import WorkerFailed, run_worker
from .sides import Side, peer
from .workloads import WORKLOADS, width_workload

BATCH_SWEEP_WORKLOAD = "mlp"
PEER_SPECS = (("cpu", "torch"), ("cuda", "torch:cuda"))  # the peer's device, and the backend that tells if torch runs there


class NothingToRun(ValueError):
    """None of the requested backends is usable here."""


def _say(msg):
    print(msg, file=sys.stderr, flush=True)


def choose_sides(settings, available, skipped):
    """The xpnet sides that can run here, then the peers they need; reasons for the rest go in ``skipped``."""
    chosen = []
    for b in settings.backends:
        a = available.get(b)
        if a and a["usable"]:
            chosen.append(Side("xpnet", b))
        else:
            skipped[f"xpnet {b}"] = a["detail"] if a else "not a backend this machine reported"
    if not chosen:
        raise NothingToRun("no requested backend is usable here: "
                           + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    peers = []
    if settings.peer:
        for dev, spec in PEER_SPECS:
            if any(s.peer_device == dev for s in chosen):
                a = available.get(spec, {})
                if a.get("usable"):
                    peers.append(peer(dev))
                else:
                    skipped[f"PyTorch {dev} peer"] = a.get("detail", "torch is not usable")
    return chosen, peers


class _Jobs:
    """Runs worker jobs with a progress line each; a failed job is recorded, not fatal."""

    def __init__(self, settings, total):
        self.threads, self.total, self.done, self.t0 = settings.threads, total, 0, time.perf_counter()
        self.failures, self.foreign = [], []

    def __call__(self, what, job):
        self.done += 1
        _say(f"[{self.done:>3}/{self.total}  {time.perf_counter() - self.t0:5.0f} s] {what}")
        try:
            res = run_worker(job, self.threads)
        except WorkerFailed as e:
            self.failures.append({"job": what, "error": str(e)})
            _say(f"    FAILED: {e}")
            return None
        if res["foreign_cpu"] is not None:
            self.foreign.append(res["foreign_cpu"])
        return res


def _probe(settings):
    """The probe worker's answer, for the backends asked for and the peers they need."""
    specs = list(settings.backends)
    if settings.peer:
        devices = {Side("xpnet", b).peer_device for b in settings.backends}
        specs += [spec for dev, spec in PEER_SPECS if dev in devices and spec not in specs]
    return run_worker({"job": "probe", "threads": settings.threads, "specs": specs}, settings.threads)


def _sweeps(settings) -> dict:
    """``{name: (title, [(workload, batch, swept value)])}`` for the scaling curves."""
    if not settings.scaling:
        return {}
    mlp, b = WORKLOADS[BATCH_SWEEP_WORKLOAD], settings.width_batch
    return {
        "batch": (f"{mlp.title}, training step, against the batch size",
                  [(mlp, n, n) for n in settings.batch_sweep]),
        "width": (f"MLP 784-W-W-10, training step at batch {b}, against the width W",
                  [(width_workload(w, b), b, w) for w in settings.width_sweep]),
    }


def _rounds(jobs, settings, sides, device_sides, groups):
    """The device jobs and the main table's rows, round by round; ``(device_runs, row_runs)``."""
    device_runs, row_runs = {}, {}
    timing, dtiming, threads = settings.timing.to_json(), settings.device_timing.to_json(), settings.threads
    copies = list(dict.fromkeys((wl, batch) for wl, _, batch in groups))
    for rnd in range(settings.rounds):
        flip = rnd % 2 == 1
        tag = f"round {rnd + 1}/{settings.rounds}"
        for s in (device_sides[::-1] if flip else device_sides):
            mine = [[wl.to_json(), b] for wl, b in copies] if s.side == "xpnet" else []
            res = jobs(f"{tag}: GEMM ceiling{' and copies' if mine else ''}, {s.label}",
                       s.job("device", threads, timing=dtiming, seed=settings.seed, copies=mine))
            if res:
                device_runs.setdefault(s.key, []).append(res)
        for wl, mode, batch in groups:
            for s in (sides[::-1] if flip else sides):
                res = jobs(f"{tag}: {wl.key} {mode} batch {batch}, {s.label}",
                           s.job("row", threads, timing=timing, workload=wl.to_json(), mode=mode, batch=batch,
                                 seed=settings.seed))
                if res:
                    row_runs.setdefault((wl.key, mode, batch, s.key), []).append(res)
    return device_runs, row_runs


def _scaling(jobs, settings, sides, sweeps) -> dict:
    """Every side's curves, one worker per side and sweep round, then combined per curve."""
    points = [p for _, pts in sweeps.values() for p in pts]
    runs = {}
    for rnd in range(settings.sweep_rounds if sweeps else 0):
        for s in (sides[::-1] if rnd % 2 else sides):
            res = jobs(f"sweep round {rnd + 1}/{settings.sweep_rounds}: {len(points)} points, {s.label}",
                       s.job("sweep", settings.threads, timing=settings.sweep_timing.to_json(), mode="train",
                             seed=settings.seed, points=[[wl.to_json(), b] for wl, b, _ in points]))
            if res:
                runs.setdefault(s.key, []).append(res)
    out, start = {}, 0
    for name, (title, pts) in sweeps.items():
        part = {k: [{"points": r["points"][start:start + len(pts)]} for r in rs] for k, rs in runs.items()}
        out[name] = combine.sweep(name, title, pts, part, sides)
        start += len(pts)
    return out


def run(settings, out_dir=None) -> int:
    """Run the plan in ``settings``; print the report; write ``bench.json`` and charts to
    ``out_dir`` when given. Returns 0, or 1 when some worker failed (its rows are missing).
    Raises :class:`NothingToRun` when no requested backend is usable."""
    t_start = time.perf_counter()
    _say(f"xpnet bench: probing backends ({settings.threads} thread(s) per worker)...")
    probe = _probe(settings)
    skipped = {}
    chosen, peers = choose_sides(settings, probe["available"], skipped)
    for what, why in skipped.items():
        _say(f"skipped {what}: {why}")
    sides = chosen + peers  # table order: xpnet rows first, then the peer beside them
    # one ceiling per library and device: the peer's is measured only if no xpnet side shares it
    device_sides = chosen + [p for p in peers if p.ceiling not in {s.ceiling for s in chosen}]
    groups = [(WORKLOADS[k], mode, WORKLOADS[k].batch) for k in settings.workloads for mode in settings.modes]
    sweeps = _sweeps(settings)
    jobs = _Jobs(settings, settings.rounds * (len(device_sides) + len(groups) * len(sides))
                 + (settings.sweep_rounds * len(sides) if sweeps else 0))

    device_runs, row_runs = _rounds(jobs, settings, sides, device_sides, groups)
    scaling = _scaling(jobs, settings, sides, sweeps)
    ceils = combine.ceilings(device_runs, sides)
    doc = document.build(describe(settings.threads, probe["versions"]), settings, ceils,
                         combine.copies(device_runs, sides), combine.rows(row_runs, sides, groups, ceils),
                         scaling, skipped, jobs.failures, jobs.foreign)
    doc["machine"]["duration_s"] = time.perf_counter() - t_start
    print(table.report(doc))
    if out_dir:
        _write(doc, out_dir)
    else:
        _say("(give --out DIR to save bench.json, with the machine description, and the PNG charts)")
    _say(f"xpnet bench: done in {time.perf_counter() - t_start:.0f} s")
    return 1 if jobs.failures else 0


def _write(doc, out_dir):
    bad = document.problems(doc)
    if bad:  # a harness bug: say so, but keep what was measured
        _say("bench.json does not match its schema: " + "; ".join(bad))
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "bench.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    written, note = write_charts(doc, out_dir)
    print(f"\nwrote {', '.join([path, *written])}")
    if note:
        print(note)
