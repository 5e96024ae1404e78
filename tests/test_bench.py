"""The benchmark harness (``xpnet bench``): FLOP counts, the JSON layout, the tables, the
combining of worker results, the timing loop, the command's errors, and short smoke runs.

No measured number is ever asserted: only that it is there, with the right type.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from xpnet.bench import combine, document, table
from xpnet.bench.flops import layer_flops, step_flops, workload_flops
from xpnet.bench.settings import preset
from xpnet.bench.sides import Side, peer
from xpnet.bench.timing import Timing, summarize, time_step
from xpnet.bench.workloads import (DEFAULT_WORKLOADS, WORKLOADS, Workload, build_xpnet, host_batches, init_state,
                                   mlp_layers, output_of, width_workload)
from xpnet.cli import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- FLOP counts, against hand computation --------------------------------------------------
def _mlp_fwd(sizes):
    return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


@pytest.mark.parametrize("key, sizes", [("mlp", (784, 512, 256, 10)), ("wide", (784, 4096, 4096, 10)),
                                        ("tiny", (2, 16, 2))])
def test_mlp_flops_by_hand(key, sizes):
    wl, b = WORKLOADS[key], 32
    fwd = _mlp_fwd(sizes)
    first = 2 * sizes[0] * sizes[1]  # the first layer needs no dx
    assert workload_flops(wl, b, "infer") == b * fwd
    assert workload_flops(wl, b, "train") == b * (3 * fwd - first)


def test_mlp_flops_literal():
    # 784-512-256-10 at batch 256: forward 2*256*(784*512 + 512*256 + 256*10) = 273,940,480
    assert workload_flops(WORKLOADS["mlp"], 256, "infer") == 273_940_480
    assert workload_flops(WORKLOADS["mlp"], 256, "train") == 3 * 273_940_480 - 2 * 256 * 784 * 512


def test_cnn_flops_by_hand():
    conv1 = 2 * 32 * 1 * 3 * 3 * 28 * 28  # padding 1 keeps 28x28
    conv2 = 2 * 64 * 32 * 3 * 3 * 14 * 14  # after the first 2x2 pool
    fc = 2 * (64 * 7 * 7) * 10
    b = 64
    assert workload_flops(WORKLOADS["cnn"], b, "infer") == b * (conv1 + conv2 + fc)
    assert workload_flops(WORKLOADS["cnn"], b, "train") == b * (3 * (conv1 + conv2 + fc) - conv1)


def test_width_workload_flops():
    wl = width_workload(128, 64)
    assert wl.layers == mlp_layers((784, 128, 128, 10)) and wl.sample_shape == (784,) and wl.batch == 64
    assert workload_flops(wl, 64, "infer") == 64 * _mlp_fwd((784, 128, 128, 10))


def test_conv_flops_strided_grouped():
    import xpnet as xn

    net = xn.Sequential(xn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2, backend="numpy"), xn.ReLU(),
                        xn.Flatten(), xn.Linear(8 * 5 * 5, 3, backend="numpy"))
    per = layer_flops(net, (4, 9, 9))
    # Hout = Wout = (9 + 2 - 3) // 2 + 1 = 5; forward 2 * Cout * Cin/groups * KH * KW * Hout * Wout
    assert [p["forward_per_sample"] for p in per] == [2 * 8 * 2 * 9 * 25, 2 * 200 * 3]
    assert step_flops(per, 2, "train") == 2 * (3 * (7200 + 1200) - 7200)


@pytest.mark.parametrize("key, forward, spared", [
    ("conv1d", 2 * 64 * 64 * 5 * 252, 2 * 64 * 64 * 5 * 252),  # Lout = 256 - 5 + 1
    ("convt2d", 2 * 64 * 32 * 4 * 4 * 16 * 16, 2 * 64 * 32 * 4 * 4 * 16 * 16),  # weight x input positions
    ("gru32", 2 * 40 * 3 * (32 * 32 + 32 * 32), 2 * 40 * 3 * 32 * 32),  # 3 gates; the input's share spared
    ("lstm256", 2 * 40 * 4 * (256 * 256 + 256 * 256), 2 * 40 * 4 * 256 * 256),
    # projections 2T(3d^2 + d^2 + 2 d ff), attention 2 x 2 T^2 d; the in-projection's input gradient spared
    ("encoder", 2 * 64 * (4 * 128 * 128 + 2 * 128 * 512) + 4 * 64 * 64 * 128, 2 * 64 * 3 * 128 * 128),
])
def test_layer_workload_flops_by_hand(key, forward, spared):
    wl = WORKLOADS[key]
    assert workload_flops(wl, 2, "infer") == 2 * forward
    assert workload_flops(wl, 2, "train") == 2 * (3 * forward - spared)


def test_layer_workloads_data_and_defaults():
    assert preset(False, 1).workloads == DEFAULT_WORKLOADS == ("mlp", "cnn", "wide", "tiny")
    for key in ("conv1d", "convt2d", "gru32", "lstm32", "encoder"):
        wl = WORKLOADS[key]
        (x, y), = host_batches(wl, 2, seed=1, pool=1)
        assert wl.loss == "mse" and str(y.dtype) == "float32" and y.shape == (2, *wl.out_shape)
        assert output_of(build_xpnet(wl, "numpy")(x)).shape == y.shape  # the target fits the net's output


@pytest.mark.parametrize("key", ["conv1d", "convt2d", "gru32", "lstm32", "encoder"])
def test_layer_workload_matches_its_peer(torch, key):
    """The xpnet step and the PyTorch peer's, from the same weights on the same data, give the
    same losses (two training steps: the second after one SGD update), and the same outputs."""
    from xpnet.bench.peer import PeerSide
    from xpnet.bench.xpnet_side import XpnetSide

    wl = WORKLOADS[key]
    init, pool = init_state(wl, 0), host_batches(wl, 2, seed=2, pool=2)
    for mode in ("train", "infer"):
        _, ours = XpnetSide("numpy").make_step(wl, mode, init, pool)
        _, theirs = PeerSide("cpu").make_step(wl, mode, init, pool)
        assert ours == pytest.approx(theirs, rel=1e-4), mode


def test_step_flops_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode must be"):
        step_flops([], 1, "backward")


# -- workloads and data ------------------------------------------------------------------------
def test_host_batches_random_and_reproducible():
    wl = WORKLOADS["cnn"]
    a, b = host_batches(wl, 8, seed=3, pool=2), host_batches(wl, 8, seed=3, pool=2)
    (x, y), (x2, _) = a
    assert x.shape == (8, 1, 28, 28) and str(x.dtype) == "float32" and str(y.dtype) == "int64"
    assert (x != 0).all() and not (x == x2).all()  # never zeros, and the pool's batches differ
    assert y.min() >= 0 and y.max() < wl.classes
    assert (a[0][0] == b[0][0]).all()  # the same seed gives the same data on every side


def test_workload_json_round_trip():
    for wl in WORKLOADS.values():
        assert Workload.from_json(json.loads(json.dumps(wl.to_json()))) == wl


# -- timing --------------------------------------------------------------------------------
def test_time_step_counts_steps_and_syncs():
    calls = {"step": 0, "sync": 0}

    def step():
        calls["step"] += 1

    def sync():
        calls["sync"] += 1

    res = time_step(step, sync, Timing(repeats=3, steps=4))
    assert calls["step"] == 4 + 3 * 4  # warm-up, then one block of 4 per repeat
    assert calls["sync"] >= 1 + 3 * 2  # a synchronize before every clock read
    assert len(res["per_repeat_s"]) == 3 and res["block"] == 4


def test_summarize_keys():
    s = summarize([3.0, 1.0, 2.0, 4.0], batch=10)
    assert s["median_s"] == 2.5 and s["min_s"] == 1.0 and s["max_s"] == 4.0
    assert s["q1_s"] <= s["median_s"] <= s["q3_s"]
    assert s["samples_per_s"] == 10 / 2.5 and s["ms_per_step"] == 2500.0


# -- combining worker results ---------------------------------------------------------------------
def _row_run(times, checks=(2.3, 2.29)):
    return {"describe": "d", "per_repeat_s": list(times), "block": 1, "checks": list(checks),
            "host_after_import_mb": 40.0, "host_after_setup_mb": 50.0, "peak_host_mb": 60.0,
            "peak_host_scope": "steps", "peak_device_mb": None, "foreign_cpu": 0.0}


def _combined():
    wl = WORKLOADS["tiny"]
    x, p = Side("xpnet", "numpy"), peer("cpu")
    runs = {(wl.key, "train", 32, x.key): [_row_run([1.0, 2.0]), _row_run([1.0, 1.0])],
            (wl.key, "train", 32, p.key): [_row_run([2.0, 2.0]), _row_run([3.0, 4.0])]}
    ceils = {"numpy": {"ceiling": "numpy", "describe": "d", "n": 1024, "gflops": 100.0, "per_round": [100.0]}}
    return combine.rows(runs, [x, p], [(wl, "train", 32)], ceils)


def test_combine_rows_ratio_and_ceiling():
    xr, pr = _combined()
    assert (xr["side"], pr["side"]) == ("xpnet", "pytorch")
    assert xr["median_s"] == 1.0 and pr["median_s"] == 2.5
    assert xr["ratio_to_peer"] == pytest.approx(2.5)
    assert xr["ratio_range"] == [pytest.approx(1.0), pytest.approx(4.0)]  # peer/xpnet over paired repeats
    assert xr["ceiling_fraction"] == pytest.approx(xr["gflops"] / 100.0)
    assert pr["ceiling_gflops"] is None and pr["ratio_to_peer"] is None
    assert xr["check_rel_diff"] == 0.0


def test_overtakes():
    def curve(side, device, values):
        return {"side": side, "device": device, "points": [{"x": x, "samples_per_s": v} for x, v in values]}

    curves = [curve("xpnet", "cpu", [(32, 10), (64, 10), (128, 10), (256, 10)]),
              curve("xpnet", "gpu", [(32, 20), (64, 5), (128, 11), (256, 30)]),
              curve("pytorch", "cpu", [(32, 10), (64, 10), (128, 10), (256, 10)]),
              curve("pytorch", "gpu", [(32, 1), (64, 1), (128, 1), (256, 1)])]
    assert combine.overtakes(curves) == {"xpnet": 128, "pytorch": None}
    assert combine.overtakes(curves[:1]) == {}


# -- tables ---------------------------------------------------------------------------------
def test_main_table_layout():
    text = table.main_table(_combined())
    head, rule, first, second = text.splitlines()
    for col in table.MAIN_HEAD:
        assert col in head
    assert set(rule.replace(" ", "")) == {"-"}
    assert first.startswith("tiny MLP 2-16-2") and "xpnet numpy" in first and "2.50 (1.00-4.00)" in first
    assert second.startswith(" ") and "PyTorch cpu" in second and "peer" in second  # group written once


@pytest.mark.parametrize("seconds, text", [(0.1234, "123"), (0.01234, "12.3"), (0.001234, "1.23"),
                                           (0.0001234, "0.123"), (0.00001234, "0.012")])
def test_ms_format(seconds, text):
    assert table.ms(seconds) == text


# -- the JSON layout ----------------------------------------------------------------------------
def _doc():
    rows = _combined()
    machine = {"date": "2026-01-01T00:00:00+00:00", "cpu_model": "cpu", "cpus_usable": 2, "threads": 2, "gpu": None,
               "platform": "linux", "python": "3.11", "versions": {"xpnet": "0.1.0"}}
    ceils = {"numpy": {"ceiling": "numpy", "describe": "d", "n": 1024, "gflops": 100.0, "per_round": [100.0]}}
    return document.build(machine, preset(True, 2), ceils, [], rows, {}, {}, [], [0.01])


def test_document_schema_accepts_a_built_document():
    doc = _doc()
    assert document.problems(json.loads(json.dumps(doc))) == []
    assert doc["schema"] == document.SCHEMA and doc["noise"]["max_foreign_cpu"] == 0.01


def test_report_renders_a_document():
    text = table.report(json.loads(json.dumps(_doc())))
    assert "Main table:" in text and "GEMM ceiling" in text and "tiny MLP 2-16-2" in text
    assert "Other processes used at most 1% of all CPUs while a worker ran (quiet)." in text


def test_document_schema_reports_problems():
    doc = _doc()
    del doc["rows"][0]["samples_per_s"]
    doc["rows"][1]["batch"] = "32"
    doc["machine"]["threads"] = True
    got = document.problems(doc)
    assert "rows[0]: missing 'samples_per_s'" in got
    assert any(p.startswith("rows[1].batch: expected") for p in got)
    assert any(p.startswith("machine.threads: expected") for p in got)
    assert document.problems({"schema": document.SCHEMA}) and document.problems([]) != []


# -- the command's errors --------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--backends", "numpy,tpu"], "unknown backends tpu; choose among numpy, torch, torch:cuda, cupy"),
    (["--workloads", "resnet"], "unknown workloads resnet; choose among mlp, cnn, wide, tiny, conv1d, convt2d, "
                                "gru32, gru256, lstm32, lstm256, encoder"),
    (["--modes", ","], "--modes needs at least one name among train, infer"),
    (["--steps", "0"], "--steps must be at least 1, got 0"),
    (["--threads", "-1"], "--threads must be at least 1, got -1"),
])
def test_bench_usage_errors(capsys, argv, message):
    assert cli_main(["bench", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"xpnet bench: error: {message}"


# -- smoke runs (real workers; the figures are never checked) ----------------------------------------
def _run_cli(args, tmp_path):
    out = tmp_path / "out"
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); from xpnet.cli import main; "
            f"sys.exit(main({['bench', *args, '--out', str(out)]!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "bench.json").read_text())
    assert document.problems(doc) == []
    return proc, doc, out


def test_smoke_quick_numpy(tmp_path):
    proc, doc, out = _run_cli(["--quick", "--steps", "2", "--repeats", "1", "--backends", "numpy", "--no-peer",
                               "--workloads", "tiny,cnn"], tmp_path)
    got = {(r["workload"], r["mode"], r["label"]) for r in doc["rows"]}
    assert got == {(w, m, "xpnet numpy") for w in ("tiny", "cnn") for m in ("train", "infer")}
    assert doc["machine"]["threads"] >= 1 and doc["config"]["timing"]["steps"] == 2
    assert all(len(r["per_repeat_s"]) == 1 for r in doc["rows"])
    assert [c["ceiling"] for c in doc["ceilings"]] == ["numpy"]
    assert set(doc["scaling"]) == {"batch", "width"}
    assert all(len(c["points"]) == len(sw["x"]) for sw in doc["scaling"].values() for c in sw["curves"])
    assert "xpnet numpy" in proc.stdout and "GEMM ceiling" in proc.stdout
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: no charts to check")
    for png in ("throughput.png", "scaling.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_smoke_with_peer(tmp_path, torch):
    _, doc, _ = _run_cli(["--quick", "--steps", "2", "--repeats", "1", "--backends", "numpy", "--workloads", "tiny",
                          "--modes", "train", "--no-scaling"], tmp_path)
    xr, pr = doc["rows"]
    assert (xr["label"], pr["label"]) == ("xpnet numpy", "PyTorch cpu")
    assert isinstance(xr["ratio_to_peer"], float) and xr["peer"] == "PyTorch cpu"
    assert xr["check_rel_diff"] < 1e-4  # the same net from the same weights on the same data
    assert {c["ceiling"] for c in doc["ceilings"]} == {"numpy", "torch:cpu"}
    assert doc["scaling"] == {}
