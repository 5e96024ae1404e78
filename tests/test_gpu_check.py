"""The GPU check (benchmarks/gpu/check.sh): its dry mode end to end, which is how CI keeps the
script from rotting on machines without a GPU, and the parts the dry mode cannot reach (the
GPU plan, the time limits, the junit counts)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

GPU_DIR = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "gpu"


@pytest.fixture(scope="module")
def gpu_check():
    sys.path.insert(0, str(GPU_DIR))
    try:
        import check
        import check_phases
        import check_report
    finally:
        sys.path.remove(str(GPU_DIR))
    return check, check_phases, check_report


def test_dry_run_writes_every_file_and_says_what_it_skipped(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(GPU_DIR / "check.sh"), str(out), "--dry", "--budget", "120",
                           "--tests", "tests/test_losses.py -k mse"],
                          env=env, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["bench-cpu.json", "bench.log", "check.log", "machine.txt",
                                                     "summary.md", "tests.log"]
    summary = (out / "summary.md").read_text()
    assert "(DRY RUN)" in summary and "the GPU parts were skipped: --dry was given" in summary
    for part in ("tests cupy", "tests torch:cuda", "bench gpu"):
        assert f"- {part}: dry run: --dry was given" in summary
    row = next(l for l in summary.splitlines() if l.startswith("| tests numpy (dry) | `tests/test_losses.py -k mse`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    passed, failed, errors = map(int, cells[2:5])
    assert passed > 0 and failed == errors == 0 and cells[-1] == "all passed"
    assert "| tiny MLP 2-16-2 | train | 32 | xpnet numpy |" in summary
    doc = json.loads((out / "bench-cpu.json").read_text())
    assert doc["schema"] == "xpnet-bench/1" and [r["label"] for r in doc["rows"]] == ["xpnet numpy"]
    machine = (out / "machine.txt").read_text()
    for needle in ("== nvidia-smi ==", "array-api-strict", "== xpnet backends ==", "xpnet imported from"):
        assert needle in machine
    assert f"{passed} passed" in (out / "tests.log").read_text()
    assert "DRY RUN: --dry was given" in (out / "check.log").read_text()


def test_bad_arguments_stop_with_status_2():
    proc = subprocess.run([sys.executable, str(GPU_DIR / "check.py"), "somewhere", "--budget", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--budget must be positive, got 0" in proc.stderr


def test_gpu_plan_says_why_it_runs_dry(gpu_check):
    check = gpu_check[0]
    smi = {"name": "NVIDIA H200", "memory": "143771 MiB", "driver": "580"}
    both = {"backends": {"cupy": {"usable": True, "detail": ""}, "torch:cuda": {"usable": True, "detail": ""}}}
    one = {"backends": {"cupy": {"usable": False, "detail": "no device"}, "torch:cuda": {"usable": True, "detail": ""}}}
    assert check.gpu_plan(False, smi, both) == (["cupy", "torch:cuda"], None, {})
    assert check.gpu_plan(False, smi, one) == (["torch:cuda"], None, {"cupy": "no device"})
    assert check.gpu_plan(True, smi, both)[1] == "--dry was given"
    assert check.gpu_plan(False, None, both)[1].startswith("nvidia-smi found no GPU")
    none = {"backends": {s: {"usable": False, "detail": "gone"} for s in ("cupy", "torch:cuda")}}
    assert check.gpu_plan(False, smi, none)[1] == "no GPU backend is usable: cupy: gone; torch:cuda: gone"


def test_the_whole_suite_runs_on_the_first_usable_gpu_backend_only(gpu_check):
    check = gpu_check[0]
    args = check.parse_args(["out"])
    phases = check.plan(args, ["cupy", "torch:cuda"], None, {})
    tests = {p["name"]: p for p in phases if p["kind"] == "tests"}
    assert tests["tests cupy"]["args"] == [] and tests["tests torch:cuda"]["args"] == ["-k", "torch:cuda"]
    bench = {p["name"]: p["selection"] for p in phases if p["kind"] == "bench"}
    assert bench["bench gpu"].endswith("--backends cupy,torch:cuda") and bench["bench cpu"].endswith("numpy,torch")
    phases = check.plan(check.parse_args(["out", "--tests", "tests/test_conv.py -k float32"]), ["torch:cuda"], None,
                        {"cupy": "no device"})
    assert phases[0]["skipped"] == "backend unusable: no device"
    assert phases[1]["args"] == ["tests/test_conv.py", "-k", "float32"]  # the first usable one: no -k added
    assert check.with_keyword(["a.py", "-kfast"], "cupy") == ["a.py", "-k", "(fast) and cupy"]


def test_junit_counts_split_the_backend_tests_from_the_others(gpu_check, tmp_path):
    report = gpu_check[2]
    path = tmp_path / "junit.xml"
    path.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_a" name="test_x[cupy]"/>'
        '<testcase classname="tests.test_a" name="test_y[float32-cupy-2]"><failure message="m">tb</failure>'
        '<error message="teardown">tb</error></testcase>'
        '<testcase classname="tests.test_a" name="test_cupy_words"><skipped message="s"/></testcase>'
        '<testcase classname="tests.test_b" name="test_z[torch:cuda]"><error message="e">tb</error></testcase>'
        '</testsuite></testsuites>')
    c = report.junit_counts(path, "cupy")
    assert {k: c[k] for k in (*report.OUTCOMES, "total")} == {"passed": 1, "failed": 1, "errors": 1, "skipped": 1,
                                                              "total": 4}
    assert c["on_backend"] == {"passed": 1, "failed": 1, "errors": 0, "skipped": 0}
    assert c["failures"] == ["tests.test_a::test_y[float32-cupy-2]", "tests.test_b::test_z[torch:cuda]"]
    last = report.log_counts("collected\n..F\n=== 1 failed, 12 passed, 3 skipped, 2 errors in 4.10s ===\n")
    assert {k: last[k] for k in report.OUTCOMES} == {"passed": 12, "failed": 1, "errors": 2, "skipped": 3}
    assert report.log_counts("KeyboardInterrupt\n") is None


def test_a_phase_past_its_limit_is_stopped_with_its_whole_group(gpu_check, tmp_path):
    phases = gpu_check[1]
    log_path, pid_file = tmp_path / "log", tmp_path / "pid"
    code = ("import subprocess, sys, time\n"
            f"p = subprocess.Popen(['sleep', '60']); open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
            "try:\n    time.sleep(60)\n"
            "except KeyboardInterrupt:\n    print('interrupted, writing my report', flush=True); sys.exit(3)\n")
    t0 = time.monotonic()
    with open(log_path, "a") as log:
        res = phases.run_limited([sys.executable, "-c", code], log=log, limit_s=4.0, interrupt_s=2.0)
    assert res.timed_out and res.rc == 3 and time.monotonic() - t0 < 30
    assert "interrupted, writing my report" in log_path.read_text()
    status = pathlib.Path(f"/proc/{pid_file.read_text()}/status")
    for _ in range(50):  # the orphaned sleep was killed with the group (gone, or a zombie awaiting its reaper)
        if not status.exists() or "\nState:\tZ" in status.read_text():
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the phase's child process outlived the phase")
    with open(log_path, "a") as log:
        res = phases.run_limited([sys.executable, "-c", "import time; time.sleep(60)"], log=log, limit_s=1.0)
    assert res.timed_out and res.rc is not None and res.rc < 0


def test_the_budget_keeps_the_floors_of_later_phases(gpu_check):
    budget = gpu_check[1].Budget(100, reserve_s=10)
    assert 29 < budget.share(50, later_floors_s=60) <= 30
    assert budget.share(20, later_floors_s=0) == 20
    assert budget.share(50, later_floors_s=95) == 0
