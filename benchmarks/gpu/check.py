"""The GPU check: one command on the lent GPU machine, results in one folder.

    bash benchmarks/gpu/check.sh OUT [--dry] [--tests "PYTEST ARGS"] [--budget S] [--workers N]

Phases, each under its own time limit inside one budget (``check_phases.py``):

1. setup: the wheels of ``benchmarks/gpu/wheels/`` (``prepare.sh``) for whatever the machine
   lacks, into a ``--target`` folder on PYTHONPATH (the image's torch and cupy stay in use);
   xpnet from this tree through PYTHONPATH, with a ``.dist-info`` naming its version when no
   installed xpnet is there (``importlib.metadata.version("xpnet")`` is tested);
2. machine: ``nvidia-smi``, and a probe process (``check_probe.py``): versions, CUDA, xpnet's backends;
3. tests on each usable GPU backend: ``XPNET_TEST_BACKENDS=<spec> pytest -q -rfE --tb=short``,
   the whole suite on the first, only the tests parametrized with the backend on the next
   (the backend-independent ones would only repeat), in parallel with pytest-xdist where present;
4. ``xpnet bench --quick --modes train --no-scaling`` on the GPU backends with the PyTorch
   cuda peer, then on numpy and torch:cpu with the PyTorch cpu peer;
5. ``summary.md``.

Dry mode (``--dry``, or by itself where ``nvidia-smi`` or every GPU backend is missing): the
same phases and files, with a small numpy test selection and one tiny numpy bench row in
place of the GPU parts, whose absence the summary states with the reason. CI runs it
(tests/test_gpu_check.py), so the check cannot rot unnoticed.

Files in OUT (at most 8 come back from the machine): machine.txt, tests.log, bench.log,
bench-gpu.json and bench-cpu.json (``xpnet bench`` documents), check.log (this driver's
progress), summary.md. Exit status: 0 when every phase ran and passed, 1 otherwise, 2 for a
bad argument.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import traceback

import check_report as report
from check_phases import Budget, run_limited

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
GPU_SPECS = ("cupy", "torch:cuda")
NEEDED = ("array_api_compat", "array_api_strict", "expecttest")  # what prepare.sh brings, as modules
OPTIONAL = ("xdist", "pytest_timeout")
DEFAULT_BUDGET_S = 500  # the run call's timeout_s is 540: 40 s for the transfers back
DRY_TESTS = "tests/test_gradcheck.py"
BENCH_ARGS = "--quick --modes train --no-scaling"
DRY_BENCH_ARGS = "--quick --steps 2 --repeats 1 --workloads tiny --modes train --no-peer --no-scaling"
PER_TEST_TIMEOUT_S = 120  # pytest-timeout, where present: a hung test fails alone
GRACE_S = 20  # pytest's time between SIGINT and the limit: its summary and junit file
# (cap, floor) in seconds; a phase gets min(cap, what the later phases' floors leave), and is
# skipped below its floor
LIMITS = {"tests": (160, 60), "tests-next": (110, 45), "bench-gpu": (150, 60), "bench-cpu": (60, 30),
          "dry-tests": (120, 10), "dry-bench": (60, 10)}
OUT_FILES = ("machine.txt", "tests.log", "bench.log", "bench-gpu.json", "bench-cpu.json", "check.log", "summary.md")


class Log:
    """check.log and stdout: one line per event, with the seconds since the start."""

    def __init__(self, path, budget):
        self.f, self.budget = open(path, "a"), budget

    def __call__(self, msg):
        line = f"[{self.budget.elapsed():6.1f} s] {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


def parse_args(argv):
    p = argparse.ArgumentParser(prog="benchmarks/gpu/check.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="folder for the results (created; the run tool's $OUT)")
    p.add_argument("--dry", action="store_true", help="skip the GPU parts even where a GPU is usable")
    p.add_argument("--tests", metavar="ARGS",
                   help=f"pytest arguments choosing the tests (default: the whole suite; dry: {DRY_TESTS})")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="S",
                   help=f"seconds for the whole check (default {DEFAULT_BUDGET_S})")
    p.add_argument("--workers", type=int, metavar="N",
                   help="pytest-xdist workers per test phase; 0: none (default: CPUs - 4, at most 12; dry: 0)")
    args = p.parse_args(argv)
    if args.budget <= 0:
        p.error(f"--budget must be positive, got {args.budget:g}")
    if args.workers is not None and args.workers < 0:
        p.error(f"--workers must be 0 or more, got {args.workers}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error(f"{args.out} is a file, not a folder")
    try:
        args.test_args = shlex.split(args.tests or "")
    except ValueError as e:
        p.error(f"--tests: {e}")
    return args


# -- setup --------------------------------------------------------------------------------------

def _python_facts(env) -> dict:
    """Which of NEEDED + OPTIONAL the Python of the phases finds, and whether it finds an xpnet distribution."""
    code = ("import importlib.util as u, importlib.metadata as m, json, sys\n"
            "d = {n: u.find_spec(n) is not None for n in sys.argv[1:]}\n"
            "try: d['xpnet-dist'] = m.version('xpnet')\n"
            "except m.PackageNotFoundError: d['xpnet-dist'] = None\n"
            "print(json.dumps(d))")
    try:
        proc = subprocess.run([sys.executable, "-c", code, *NEEDED, *OPTIONAL], env=env, capture_output=True,
                              text=True, timeout=60)
        return json.loads(proc.stdout)
    except (subprocess.TimeoutExpired, ValueError):  # as if nothing were there: the phases will say what fails
        return {**dict.fromkeys(NEEDED + OPTIONAL, False), "xpnet-dist": None}


def _xpnet_version() -> str:
    text = (REPO / "xpnet" / "__init__.py").read_text()
    m = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
    return m.group(1) if m else "0+unknown"


def setup(work, log) -> tuple[dict, dict, list]:
    """The environment of every phase, what its Python has, and notes for machine.txt."""
    site = work / "site"
    site.mkdir()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.pop("XPNET_BACKEND", None)  # the phases choose their backends
    notes = [f"PYTHONPATH={env['PYTHONPATH']}"]
    facts = _python_facts(env)
    missing = [n for n in NEEDED if not facts[n]]
    if missing:
        wheels = {w.name.split("-")[0].lower(): w for w in sorted((HERE / "wheels").glob("*.whl"))}
        chosen = [wheels[n] for n in missing if n in wheels]
        absent = [n for n in missing if n not in wheels]
        if chosen:
            cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                   "--disable-pip-version-check", "--target", str(site), *map(str, chosen)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            log(f"setup: installed {', '.join(w.name for w in chosen)} into {site}: exit {proc.returncode}"
                + (f"\n{proc.stdout}{proc.stderr}" if proc.returncode else ""))
            notes.append(f"installed from benchmarks/gpu/wheels: {', '.join(w.name for w in chosen)} "
                         f"(exit {proc.returncode})")
        if absent:
            msg = f"missing and not in benchmarks/gpu/wheels (run benchmarks/gpu/prepare.sh): {', '.join(absent)}"
            log("setup: " + msg)
            notes.append(msg)
        facts = _python_facts(env)
    if facts["xpnet-dist"] is None:  # an editable install cannot go into a --target folder
        dist = site / f"xpnet-{_xpnet_version()}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: xpnet\nVersion: {_xpnet_version()}\n")
        (dist / "entry_points.txt").write_text("[console_scripts]\nxpnet = xpnet.cli:main\n")
        notes.append(f"no installed xpnet: {dist.name} written beside the wheels "
                     "(the version from xpnet/__init__.py)")
        facts = _python_facts(env)
    notes.append("modules found: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in facts.items()))
    log("setup: " + notes[-1])
    return env, facts, notes


# -- machine ------------------------------------------------------------------------------------

def _command(cmd, timeout=30) -> tuple[bool, str]:
    if shutil.which(cmd[0]) is None:
        return False, f"{cmd[0]}: not found on PATH"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"{' '.join(cmd)}: no answer in {timeout} s"
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip() or f"(exit {proc.returncode}, no output)"


def _commit() -> str:
    ok, text = _command(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], timeout=10)
    if not ok:
        return "commit unknown (no git repository travelled with the tree)"
    _, dirty = _command(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], timeout=20)
    return f"commit {text}" + (" with uncommitted changes" if dirty.strip() else "")


def machine(ctx, env, budget, log):
    ok, smi_text = _command(["nvidia-smi"])
    ctx["commands"] = [("nvidia-smi", smi_text)]
    if ok:
        q_ok, q = _command(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])
        ctx["commands"].append(("nvidia-smi --query-gpu=name,memory.total,driver_version", q))
        if q_ok and q.strip():
            name, mem, driver = (s.strip() for s in q.splitlines()[0].split(",")[:3])
            ctx["smi"] = {"name": name, "memory": mem, "driver": driver}
    if not ctx.get("smi"):
        ctx["smi_error"] = smi_text.splitlines()[0] if smi_text else "nvidia-smi: no answer"
    ctx["commands"].append(("uname -a; CPUs", f"{os.uname().sysname} {os.uname().release} {os.uname().machine}; "
                                              f"{len(os.sched_getaffinity(0))} usable CPUs"))
    try:
        proc = subprocess.run([sys.executable, str(HERE / "check_probe.py")], env=env, capture_output=True, text=True,
                              timeout=max(10.0, min(90.0, budget.left() / 3)), cwd=REPO)
        ctx["probe"] = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
        if ctx["probe"] is None:
            ctx["probe_error"] = f"exit {proc.returncode}: " + "\n".join(proc.stderr.strip().splitlines()[-8:])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        ctx["probe"], ctx["probe_error"] = None, f"{type(e).__name__}: {e}"
    log("machine: " + report.machine_line(ctx))


def gpu_plan(dry_flag: bool, smi: dict | None, probe: dict | None) -> tuple[list, str | None, dict]:
    """``(usable GPU specs, why dry or None, {spec: why unusable})`` from nvidia-smi and the probe."""
    backends = (probe or {}).get("backends", {})
    why_not = {s: (backends[s]["detail"] if s in backends else "the probe did not run")
               for s in GPU_SPECS if not backends.get(s, {}).get("usable")}
    usable = [s for s in GPU_SPECS if s not in why_not]
    if dry_flag:
        return [], "--dry was given", why_not
    if smi is None:
        return [], "nvidia-smi found no GPU (not on PATH, or no answer)", why_not
    if not usable:
        return [], "no GPU backend is usable: " + "; ".join(f"{k}: {v}" for k, v in why_not.items()), why_not
    return usable, None, why_not


# -- phases -------------------------------------------------------------------------------------

def with_keyword(args, kw):
    """pytest ``args`` with ``-k kw`` added, and-ed into a ``-k`` already there."""
    out, i, found = [], 0, False
    while i < len(args):
        a = args[i]
        if a == "-k" and i + 1 < len(args):
            out += ["-k", f"({args[i + 1]}) and {kw}"]
            found, i = True, i + 2
            continue
        if a.startswith("-k") and len(a) > 2:
            out += ["-k", f"({a[2:]}) and {kw}"]
            found = True
        else:
            out.append(a)
        i += 1
    return out if found else out + ["-k", kw]


def _phase(name, kind, limits, selection, **more):
    return {"name": name, "kind": kind, "limits": LIMITS[limits], "selection": selection, "limit": None,
            "seconds": 0.0, "rc": None, "timed_out": False, "skipped": None, "counts": None, **more}


def plan(args, usable, dry_reason, why_not) -> list:
    if dry_reason:
        sel = args.test_args or shlex.split(DRY_TESTS)
        phases = [_phase("tests numpy (dry)", "tests", "dry-tests", shlex.join(sel), spec="numpy", args=sel)]
        phases += [_phase(f"tests {s}", "tests", "tests", "-", spec=s, skipped=f"dry run: {dry_reason}")
                   for s in GPU_SPECS]
        phases += [_phase("bench gpu", "bench", "bench-gpu", "-", out="bench-gpu", skipped=f"dry run: {dry_reason}"),
                   _phase("bench cpu", "bench", "dry-bench", f"{DRY_BENCH_ARGS} --backends numpy", out="bench-cpu")]
        return phases
    phases, first = [], True
    for s in GPU_SPECS:
        if s not in usable:
            phases.append(_phase(f"tests {s}", "tests", "tests", "-", spec=s,
                                 skipped=f"backend unusable: {why_not[s]}"))
            continue
        sel = args.test_args if first else with_keyword(args.test_args, s)
        phases.append(_phase(f"tests {s}", "tests", "tests" if first else "tests-next",
                             shlex.join(sel) or "(the whole suite)", spec=s, args=sel))
        first = False
    phases.append(_phase("bench gpu", "bench", "bench-gpu", f"{BENCH_ARGS} --backends {','.join(usable)}",
                         out="bench-gpu"))
    phases.append(_phase("bench cpu", "bench", "bench-cpu", f"{BENCH_ARGS} --backends numpy,torch", out="bench-cpu"))
    return phases


def _workers(args, dry, facts) -> int:
    if args.workers is not None:
        return args.workers if facts.get("xdist") else 0
    if dry or not facts.get("xdist"):
        return 0
    return max(1, min(12, len(os.sched_getaffinity(0)) - 4))


def run_tests(p, out, work, env, limit, workers, facts, dry, log):
    junit = work / f"junit-{p['spec'].replace(':', '-')}.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "--tb=short", "-p", "no:cacheprovider",
           f"--junitxml={junit}"]
    if workers:
        cmd += ["-n", str(workers)]
    if facts.get("pytest_timeout") and not dry:
        cmd += [f"--timeout={PER_TEST_TIMEOUT_S}"]
    cmd += p["args"]
    penv = dict(env, XPNET_TEST_BACKENDS=p["spec"])
    if workers:  # xdist needs every worker to collect the same tests in the same order
        penv.setdefault("PYTHONHASHSEED", "0")
    with open(out / "tests.log", "a") as f:
        f.write(f"\n===== {p['name']}: XPNET_TEST_BACKENDS={p['spec']} python {shlex.join(cmd[1:])} "
                f"(limit {limit:.0f} s) =====\n")
        start = f.tell()
        res = run_limited(cmd, log=f, limit_s=limit, env=penv, cwd=REPO, interrupt_s=GRACE_S)
        f.write(f"\n===== {p['name']}: exit {res.rc}, {res.seconds:.0f} s"
                f"{', stopped at its limit' if res.timed_out else ''} =====\n")
    if junit.exists():
        try:
            p["counts"] = report.junit_counts(junit, p["spec"])
        except Exception as e:  # a junit file cut short: fall back to the log's last line
            log(f"{p['name']}: junit file unreadable ({type(e).__name__}: {e})")
    if p["counts"] is None:
        with open(out / "tests.log", "rb") as f:
            f.seek(start)
            p["counts"] = report.log_counts(f.read().decode(errors="replace"))
    return res


def run_bench(p, out, work, env, limit, log):
    dest = work / p["out"]
    cmd = [sys.executable, "-m", "xpnet", "bench", *shlex.split(p["selection"]), "--out", str(dest)]
    with open(out / "bench.log", "a") as f:
        f.write(f"\n===== {p['name']}: python {shlex.join(cmd[1:])} (limit {limit:.0f} s) =====\n")
        res = run_limited(cmd, log=f, limit_s=limit, env=env, cwd=REPO)
        f.write(f"\n===== {p['name']}: exit {res.rc}, {res.seconds:.0f} s"
                f"{', stopped at its limit' if res.timed_out else ''} =====\n")
    doc_path = dest / "bench.json"
    if doc_path.exists():
        shutil.copyfile(doc_path, out / f"{p['out']}.json")
        try:
            p["bench"] = json.loads(doc_path.read_text())
        except ValueError as e:  # cut short when the phase was stopped
            log(f"{p['name']}: bench.json unreadable ({e})")
    return res


def run_phases(phases, ctx, out, work, env, facts, budget, log, dry):
    workers = _workers(ctx["args"], dry, facts)
    for i, p in enumerate(phases):
        if p["skipped"]:
            log(f"{p['name']}: skipped ({p['skipped']})")
            continue
        later = sum(q["limits"][1] for q in phases[i + 1:] if not q["skipped"])
        limit = budget.share(p["limits"][0], later)
        if limit < p["limits"][1]:
            p["skipped"] = (f"no time left in the {budget.total_s:.0f} s budget "
                            f"({limit:.0f} s < its floor {p['limits'][1]} s)")
            log(f"{p['name']}: skipped ({p['skipped']})")
            continue
        p["limit"] = limit
        xdist = f", {workers} xdist workers" if p["kind"] == "tests" and workers else ""
        log(f"{p['name']}: start, limit {limit:.0f} s{xdist}")
        try:
            if p["kind"] == "tests":
                res = run_tests(p, out, work, env, limit, workers, facts, dry, log)
            else:
                res = run_bench(p, out, work, env, limit, log)
        except Exception:  # a driver bug must not cost the other phases and the summary
            log(f"{p['name']}: the driver failed:\n{traceback.format_exc()}")
            p.update(error="the driver failed (check.log)")
            continue
        p.update(rc=res.rc, seconds=res.seconds, timed_out=res.timed_out, error=res.error)
        c = p.get("counts")
        log(f"{p['name']}: exit {res.rc} in {res.seconds:.0f} s" + (" (stopped at its limit)" * res.timed_out)
            + (f": {', '.join(f'{c[k]} {k}' for k in report.OUTCOMES)}" if c else ""))


def passed(phases) -> bool:
    ran = [p for p in phases if not p["skipped"]]
    return bool(ran) and all(p["rc"] == 0 and not p["timed_out"] for p in ran)


def main(argv=None) -> int:
    args = parse_args(argv)
    budget = Budget(args.budget)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in OUT_FILES:  # a folder used before: no stale file may pass for this run's
        (out / name).unlink(missing_ok=True)
    log = Log(out / "check.log", budget)
    log(f"xpnet GPU check in {REPO}, results in {out}, budget {args.budget:.0f} s")
    ctx = {"args": args, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "budget": args.budget, "commit": _commit(),
           "command": "bash benchmarks/gpu/check.sh " + shlex.join([str(a) for a in (argv or sys.argv[1:])])}
    with tempfile.TemporaryDirectory(prefix="xpnet-gpu-check-") as tmp:
        work = pathlib.Path(tmp)
        env, facts, ctx["setup_notes"] = setup(work, log)
        machine(ctx, env, budget, log)
        (out / "machine.txt").write_text(report.machine_text(ctx))
        usable, ctx["dry_reason"], why_not = gpu_plan(args.dry, ctx.get("smi"), ctx.get("probe"))
        ctx["dry"] = ctx["dry_reason"] is not None
        if ctx["dry"]:
            log(f"DRY RUN: {ctx['dry_reason']}; the GPU phases are skipped")
        ctx["phases"] = plan(args, usable, ctx["dry_reason"], why_not)
        run_phases(ctx["phases"], ctx, out, work, env, facts, budget, log, ctx["dry"])
    ctx["elapsed"] = budget.elapsed()
    text = report.summary_markdown(ctx)
    (out / "summary.md").write_text(text)
    print("\n" + text, flush=True)
    ok = passed(ctx["phases"])
    log(f"done in {ctx['elapsed']:.0f} s: {'every phase ran and passed' if ok else 'NOT every phase passed'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
