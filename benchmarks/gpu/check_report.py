"""What the GPU check writes: test counts (from pytest's junit file, else its last line), the
machine report and ``summary.md``. Pure functions of what the phases left; nothing here runs
a test, times anything or imports xpnet, so a broken tree still gets its report.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

OUTCOMES = ("passed", "failed", "errors", "skipped")
MAX_FAILURES_LISTED = 25


def on_backend(test_name: str, spec: str) -> bool:
    """Whether a test id carries the backend ``spec`` as one of its parameters
    (``test_x[cupy]``, ``test_y[torch:cuda-float32]``; not ``test_cupy_only``)."""
    return re.search(r"[\[-]" + re.escape(spec) + r"[\]-]", test_name) is not None


def _zero():
    return dict.fromkeys(OUTCOMES, 0)


def junit_counts(path, spec=None) -> dict:
    """``{passed, failed, errors, skipped, total, on_backend: {...}, failures: [ids]}`` from a
    pytest junit file. A test that failed and also errored in teardown counts as failed; an
    xfail counts as skipped. ``on_backend``: the same counts for the tests parametrized with ``spec``."""
    root = ET.parse(path).getroot()
    counts, mine, failures = _zero(), _zero(), []
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        outcome = ("failed" if "failure" in kinds else "errors" if "error" in kinds
                   else "skipped" if "skipped" in kinds else "passed")
        name = case.get("name", "?")
        counts[outcome] += 1
        if spec and on_backend(name, spec):
            mine[outcome] += 1
        if outcome in ("failed", "errors"):
            failures.append(f"{case.get('classname', '')}::{name}".lstrip(":"))
    return {**counts, "total": sum(counts.values()), "on_backend": mine if spec else None, "failures": failures}


_WORDS = {"passed": "passed", "failed": "failed", "error": "errors", "errors": "errors", "skipped": "skipped"}


def log_counts(text: str) -> dict | None:
    """The counts of pytest's final line (``3 failed, 10 passed, 2 skipped in 4.1s``) in ``text``,
    the last such line; None if there is none. For a phase whose junit file is missing."""
    for line in reversed(text.splitlines()):
        found = re.findall(r"(\d+) (passed|failed|errors?|skipped)\b", line)
        if found and re.search(r"\bin [\d.]+s", line):
            counts = _zero()
            for n, word in found:
                counts[_WORDS[word]] += int(n)
            return {**counts, "total": sum(counts.values()), "on_backend": None, "failures": []}
    return None


# -- the machine report -------------------------------------------------------------------------

def machine_text(ctx) -> str:
    """``machine.txt``: nvidia-smi, versions, the backends xpnet sees, and where things came from."""
    out = [f"xpnet GPU check: machine report, {ctx['date']}", ""]
    for title, text in ctx["commands"]:
        out += [f"== {title} ==", text.rstrip(), ""]
    probe = ctx.get("probe")
    if not probe:
        out += ["== xpnet probe ==", f"failed: {ctx.get('probe_error')}", ""]
        return "\n".join(out)
    out += ["== Python ==", probe["python"], probe["executable"], probe["platform"], "",
            "== packages (None: not installed) ==",
            *(f"{k:18s} {v}" for k, v in probe["versions"].items()), "",
            "== CUDA, as the libraries report it ==",
            *([f"{k:18s} {v}" for k, v in probe["cuda"].items()] or ["(no CUDA library loaded)"]), "",
            "== xpnet backends ==",
            *(f"{k:26s} {'yes' if a['usable'] else 'no '} {a['detail']}" for k, a in probe["backends"].items()), "",
            "== how the check set up Python ==", f"xpnet imported from {probe['xpnet_file']}",
            *ctx["setup_notes"], ""]
    return "\n".join(out)


def machine_line(ctx) -> str:
    """One sentence for the summary: GPU, driver, CUDA, Python and the main versions."""
    probe, smi = ctx.get("probe") or {}, ctx.get("smi")
    parts = []
    if smi:
        parts.append(f"{smi['name']} ({smi['memory']}), driver {smi['driver']}")
    else:
        parts.append(f"no GPU ({ctx.get('smi_error', 'nvidia-smi: not run')})")
    cuda = probe.get("cuda", {})
    if cuda.get("torch.version.cuda"):
        parts.append(f"CUDA {cuda['torch.version.cuda']} (torch)")
    if isinstance(cuda.get("cupy runtime"), int):
        parts.append(f"CuPy's CUDA runtime {cuda['cupy runtime']}")
    if probe:
        parts.append("Python " + probe["python"].split()[0])
        v = probe["versions"]
        cupy = v.get("cupy-cuda13x") or v.get("cupy-cuda12x")
        libs = [("torch", v.get("torch")), ("cupy", cupy), ("numpy", v.get("numpy")),
                ("array-api-compat", v.get("array-api-compat")), ("array-api-strict", v.get("array-api-strict")),
                ("xpnet", v.get("xpnet"))]
        parts.append(", ".join(f"{k} {val}" for k, val in libs if val))
    return "; ".join(parts)


# -- summary.md ---------------------------------------------------------------------------------

def _counts_cells(c) -> list:
    if c is None:
        return ["-"] * 5
    mine = c.get("on_backend")
    own = "/".join(str(mine[k]) for k in OUTCOMES) if mine else "-"
    return [str(c[k]) for k in OUTCOMES] + [own]


def _result(p) -> str:
    if p.get("skipped"):
        return "skipped"
    if p.get("rc") is None:
        return f"did not start ({p.get('error')})"
    if p.get("timed_out"):
        return f"stopped at its {p['limit']:.0f} s limit" + (": counts of what ran before" * (p["kind"] == "tests"))
    c = p.get("counts")
    if p["kind"] == "tests" and c:
        return "all passed" if c["failed"] == c["errors"] == 0 and p["rc"] == 0 else f"exit {p['rc']}"
    return "ok" if p["rc"] == 0 else f"exit {p['rc']}"


def _md_table(head, lines) -> list:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(l) + " |" for l in lines)]


def _tests_section(phases) -> list:
    tests = [p for p in phases if p["kind"] == "tests"]
    head = ("phase", "selection", *OUTCOMES, "on the backend (p/f/e/s)", "time", "result")
    lines = [(p["name"], f"`{p['selection']}`", *_counts_cells(p.get("counts")),
              "-" if p.get("skipped") else f"{p['seconds']:.0f} s", _result(p)) for p in tests]
    out = ["### Tests", "", "`pytest -q -rfE --tb=short`, `XPNET_TEST_BACKENDS` set to the phase's backend; "
           "\"on the backend\": the tests parametrized with it; the rest are backend-independent tests, "
           "which run in the first phase only. Tracebacks: `tests.log`.", "", *_md_table(head, lines)]
    for p in tests:
        fails = (p.get("counts") or {}).get("failures") or []
        if fails:
            out += ["", f"Failed or errored in {p['name']} ({len(fails)}):",
                    *(f"- `{f}`" for f in fails[:MAX_FAILURES_LISTED])]
            if len(fails) > MAX_FAILURES_LISTED:
                out.append(f"- ... and {len(fails) - MAX_FAILURES_LISTED} more (tests.log)")
    return out


def _num(v) -> str:
    return f"{v:.3g}" if v < 100 else f"{v:,.0f}"


def _bench_rows(doc) -> list:
    lines = []
    for r in doc["rows"]:
        ratio = "peer" if r["side"] == "pytorch" else "-"
        if r.get("ratio_to_peer") is not None:
            lo, hi = r.get("ratio_range") or (r["ratio_to_peer"],) * 2
            ratio = f"{r['ratio_to_peer']:.2f} ({lo:.2f}-{hi:.2f})"
        frac = r.get("ceiling_fraction")
        dev = r.get("peak_device_mb")
        lines.append((r["title"], r["mode"], str(r["batch"]), r["label"], f"{r['samples_per_s']:,.0f}",
                      _num(r["ms_per_step"]), _num(r["gflops"]), "-" if frac is None else f"{100 * frac:.0f}%",
                      ratio, "-" if dev is None else f"{dev:,.0f}"))
    return lines


def _bench_section(phases) -> list:
    out = ["### Bench", ""]
    for p in (p for p in phases if p["kind"] == "bench"):
        if p.get("skipped"):
            out += [f"**{p['name']}**: skipped ({p['skipped']}).", ""]
            continue
        out.append(f"**{p['name']}**: `python -m xpnet bench {p['selection']}`: {_result(p)}, {p['seconds']:.0f} s.")
        doc = p.get("bench")
        if not doc:
            out += ["", "(no bench.json: see bench.log)", ""]
            continue
        t = doc["config"]["timing"]
        how = f"{t['steps']} steps" if t.get("steps") else f"~{t['repeat_s']} s"
        out += [f"float32, data on the device; {doc['config']['rounds']} round(s) x {t['repeats']} repeat(s) "
                f"of {how}, "
                f"{doc['machine']['threads']} thread(s) for CPU rows; vs PyTorch: xpnet samples/s / the peer's "
                "(min-max over paired repeats).", ""]
        out += _md_table(("workload", "mode", "batch", "side", "samples/s", "ms/step", "GFLOP/s", "% ceiling",
                          "vs PyTorch", "device MB"), _bench_rows(doc)) if doc["rows"] else ["(no rows)"]
        ceil = ", ".join(f"{c['ceiling']} {c['gflops']:,.0f} GFLOP/s (n={c['n']})" for c in doc["ceilings"])
        out += ["", f"GEMM ceilings (float32): {ceil or 'none measured'}."]
        for what, why in doc.get("skipped", {}).items():
            out.append(f"- skipped {what}: {why}")
        for f in doc.get("failures", []):
            out.append(f"- FAILED {f['job']}: {f['error']}")
        noise = (doc.get("noise") or {}).get("max_foreign_cpu")
        if noise is not None and noise > 0.05:
            out.append(f"- other processes used up to {noise:.0%} of the CPUs: the figures are unreliable.")
        out.append("")
    return out


def summary_markdown(ctx) -> str:
    """``summary.md``, ready to paste into benchmarks/RESULTS.md."""
    device = ctx["smi"]["name"] if ctx.get("smi") else "no GPU"
    out = [f"## GPU check: {device}, {ctx['date']}" + (" (DRY RUN)" if ctx["dry"] else ""), ""]
    if ctx["dry"]:
        out += [f"**DRY RUN, the GPU parts were skipped: {ctx['dry_reason']}.** What ran stands in for "
                "them, so that the check cannot rot unnoticed; these are not GPU results.", ""]
    out += [f"Machine: {machine_line(ctx)}.", "",
            f"Code: {ctx['commit']}. Command: `{ctx['command']}` (budget {ctx['budget']:.0f} s, "
            f"took {ctx['elapsed']:.0f} s). Files: `machine.txt`, `tests.log`, `bench.log`, "
            "`bench-*.json`, `check.log`.", ""]
    out += _tests_section(ctx["phases"]) + [""] + _bench_section(ctx["phases"])
    skipped = [(p["name"], p["skipped"]) for p in ctx["phases"] if p.get("skipped")]
    if skipped:
        out += ["### Skipped", "", *(f"- {name}: {why}" for name, why in skipped), ""]
    out += ["### Phases", ""]
    out += _md_table(("phase", "limit", "took", "result"),
                     [(p["name"], "-" if p.get("limit") is None else f"{p['limit']:.0f} s",
                       "-" if p.get("skipped") else f"{p['seconds']:.0f} s", _result(p)) for p in ctx["phases"]])
    return "\n".join(out) + "\n"
