"""Plain-text tables for the terminal.

Every function takes the combined results (:mod:`xpnet.bench.combine`) or the whole JSON
document (:func:`report`) and returns a string; nothing here prints or measures.
"""

from __future__ import annotations

import textwrap


def ms(seconds) -> str:
    """Milliseconds with about 3 significant digits: ``123``, ``12.3``, ``1.23``, ``0.123``."""
    v = seconds * 1e3
    for bound, digits in ((100, 0), (10, 1), (1, 2), (0.1, 3)):
        if v >= bound:
            return f"{v:,.{digits}f}"
    return f"{v:.2g}"


def grid(head, lines, right=()) -> str:
    """Columns padded to their widest cell; columns in ``right`` are right-aligned."""
    widths = [max([len(h)] + [len(l[i]) for l in lines]) for i, h in enumerate(head)]

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _pct(v, med) -> str:
    return f"{100 * (v / med - 1):+.0f}%"


def _opt(v, fmt) -> str:
    return "-" if v is None else fmt(v)


MAIN_HEAD = ("workload", "mode", "batch", "side", "samples/s", "ms/step", "spread", "GFLOP/s", "% ceiling",
             "vs PyTorch", "host MB", "device MB")


def main_table(rows) -> str:
    """One line per row; a group's workload, mode and batch are written on its first line only.
    Spread: fastest and slowest repeat against the median step time. vs PyTorch: the ratio of
    samples/s to the peer's, with its min-max over paired repeats."""
    lines, last = [], None
    for r in rows:
        group = (r["title"], r["mode"], r["batch"])
        first = group != last
        last = group
        ratio = "peer" if r["side"] == "pytorch" else "-"
        if r["ratio_to_peer"] is not None:
            lo, hi = r["ratio_range"] or (r["ratio_to_peer"],) * 2
            ratio = f"{r['ratio_to_peer']:.2f} ({lo:.2f}-{hi:.2f})"
        lines.append((
            r["title"] if first else "", r["mode"] if first else "", str(r["batch"]) if first else "",
            r["label"], f"{r['samples_per_s']:,.0f}", ms(r["median_s"]),
            f"{_pct(r['min_s'], r['median_s'])} {_pct(r['max_s'], r['median_s'])}",
            f"{r['gflops']:.2g}" if r["gflops"] < 10 else f"{r['gflops']:,.0f}",
            _opt(r["ceiling_fraction"], lambda v: f"{100 * v:.0f}%"), ratio,
            _opt(r["peak_host_mb"], lambda v: f"{v:,.0f}"), _opt(r["peak_device_mb"], lambda v: f"{v:,.0f}"),
        ))
    return grid(MAIN_HEAD, lines, right={2, 4, 5, 8, 10, 11})


def ceiling_table(ceils) -> str:
    lines = [(c["ceiling"], str(c["n"]), f"{c['gflops']:,.0f}", ", ".join(f"{g:,.0f}" for g in c["per_round"]),
              c["describe"]) for c in ceils.values()]
    return grid(("library", "n", "GFLOP/s", "per round", "process"), lines, right={1, 2})


def copy_table(copies) -> str:
    lines = []
    for c in copies:
        note = "zero-copy: the backend shares host memory" if c["zero_copy"] else ""
        lines.append((c["label"], c["workload"], str(c["batch"]), f"{c['bytes'] / 1e6:,.2f}", ms(c["median_s"]),
                      f"{c['gb_per_s']:,.1f}", note))
    return grid(("side", "workload", "batch", "MB", "ms", "GB/s", ""), lines, right={2, 3, 4, 5})


def sweep_table(sw, x_name) -> str:
    """Per swept value: GFLOP per step, then each side's samples/s and ms per step."""
    curves = sw["curves"]
    if not curves:
        return "(no results)"
    head = (x_name, "GFLOP/step", *(c["label"] for c in curves))
    lines = []
    for i, x in enumerate(sw["x"]):
        cells = [str(x), f"{curves[0]['points'][i]['flops_per_step'] / 1e9:,.3g}"]
        for c in curves:
            p = c["points"][i]
            cells.append(f"{p['samples_per_s']:,.0f}/s {ms(p['median_s'])} ms")
        lines.append(tuple(cells))
    return grid(head, lines, right=set(range(len(head))))


def overtake_line(sw, x_name) -> str:
    """Where a GPU overtakes the CPU along the curve, in words."""
    found = sw["gpu_overtakes"]
    if not found:
        return f"GPU against CPU along {x_name}: not measured (no GPU side ran)."
    parts = []
    for who, at in found.items():
        name = "xpnet" if who == "xpnet" else "PyTorch"
        parts.append(f"{name}: the GPU is faster from {x_name} {at} on" if at is not None
                     else f"{name}: the GPU never overtakes the CPU here")
    return "; ".join(parts) + "."


def report(doc) -> str:
    """The whole terminal report of a run, from its JSON document (a saved one too)."""
    m, v, cfg = doc["machine"], doc["machine"]["versions"], doc["config"]
    t = cfg["timing"]
    how = (f"repeats of {t['steps']} steps after {t['steps']} warm-up steps" if t["steps"]
           else f"repeats of ~{t['repeat_s']} s after {t['warmup_s']} s of warm-up")
    legend = (
        f"Main table: float32, data already on the device; {cfg['rounds']} round(s) x {t['repeats']} {how}, "
        "each row in a fresh process. samples/s and ms/step from the median step time; spread: fastest and "
        "slowest repeat against it; GFLOP/s counted from the model (train = forward + dW + dx, no dx for the "
        "first layer); % ceiling: of the side's own GEMM rate below; vs PyTorch: xpnet samples/s / the peer's "
        "(above 1: xpnet faster), min-max over paired repeats; host MB: peak resident set during the steps; "
        "device MB: peak device memory.")
    out = [
        f"xpnet bench, {m['date']}{' (--quick: a first look, not figures to publish)' if cfg['quick'] else ''}",
        f"CPU: {m['cpu_model']} ({m['cpus_usable']} usable), {m['threads']} thread(s) for every CPU row; "
        f"GPU: {m['gpu'] or 'none usable'}",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        *(f"skipped {what}: {why}" for what, why in doc["skipped"].items()),
        "",
        textwrap.fill(legend, 110),
        main_table(doc["rows"]) if doc["rows"] else "(no rows)",
    ]
    for r in doc["rows"]:
        if r["check_rel_diff"] is not None and r["check_rel_diff"] > 1e-3:
            out.append(f"WARNING: {r['title']} {r['mode']} on {r['label']}: first results {r['checks']} differ "
                       f"from the peer's by {r['check_rel_diff']:.1e} (relative): not the same computation?")
    out += ["", "GEMM ceiling: float32 (n x n) @ (n x n), fastest repeat, each library in its own process; "
            "median over rounds:",
            ceiling_table({c["ceiling"]: c for c in doc["ceilings"]})]
    if doc["copies"]:
        out += ["", "Host-to-device copy of one batch (inputs float32 + labels int64 or float32 targets, from pageable host memory):",
                copy_table(doc["copies"])]
    for name, sw in doc["scaling"].items():
        x_name = "batch" if name == "batch" else "width"
        out += ["", f"Scaling: {sw['title']} (samples/s and ms per step; median of repeats):",
                sweep_table(sw, x_name), overtake_line(sw, x_name)]
    noise = doc["noise"]["max_foreign_cpu"]
    if noise is not None:
        out += ["", f"Other processes used at most {noise:.0%} of all CPUs while a worker ran"
                + (": WARNING, the machine was busy; these figures are unreliable, rerun when it is quiet."
                   if noise > 0.05 else " (quiet).")]
    for f in doc["failures"]:
        out.append(f"FAILED {f['job']}: {f['error']}")
    return "\n".join(out)
