"""The ``xpnet`` command end to end, in subprocesses: train, evaluate, info, resume, bad arguments."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def xpnet(*args, cwd=None, env=None, timeout=300, **kw):
    """Run the console script when it is installed (CI installs it), else ``python -m xpnet``;
    ``kw`` goes to ``subprocess.run`` (e.g. ``preexec_fn`` to set resource limits)."""
    script = shutil.which("xpnet", path=os.path.dirname(sys.executable))
    cmd = [script] if script else [sys.executable, "-m", "xpnet"]
    inherited = {k: v for k, v in os.environ.items() if k not in ("XPNET_BACKEND", "XPNET_TRACEBACK")}
    full_env = {**inherited, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout,
                          **kw)


def one_line_error(out, *needles):
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """``xpnet train`` with no options (run in an empty directory), once for the module."""
    cwd = tmp_path_factory.mktemp("default")
    out = xpnet("train", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return cwd, out


def test_train_with_no_options_reaches_97_percent_and_writes_everything(default_run):
    cwd, out = default_run
    run = cwd / "runs" / "digits-mlp-numpy"
    assert "test accuracy: last epoch (40) " in out.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97 and metrics["data"] == "digits" and metrics["epochs"] == 40
    assert f"last epoch (40) {metrics['test_accuracy']:.2%}" in out.stdout
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == list(range(1, 41))
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(history)
    for name in ("last.xpnet", "best.xpnet"):
        assert (run / name).stat().st_size > 0
    if pytest.importorskip("matplotlib"):
        for name in ("curves.png", "misclassified.png", "confusion.png"):
            assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # not a terminal: no progress bar, one line per epoch instead
    assert "\r" not in out.stderr and out.stdout.count("epoch ") >= 40


def test_evaluate_reports_the_final_accuracy_of_the_last_checkpoint(default_run):
    cwd, _ = default_run
    run = cwd / "runs" / "digits-mlp-numpy"
    metrics = json.loads((run / "metrics.json").read_text())
    out = xpnet("evaluate", str(run / "last.xpnet"), "--json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-12)
    assert res["epoch"] == 40 and res["data"] == "digits"
    cm = res["confusion_matrix"]
    assert len(cm) == 10 and sum(map(sum, cm)) == 359
    assert sum(cm[i][i] for i in range(10)) == round(res["accuracy"] * 359)
    text = xpnet("evaluate", str(run / "best.xpnet"), cwd=cwd)
    assert text.returncode == 0 and "confusion matrix" in text.stdout and "test accuracy" in text.stdout


def test_info_lists_backends_and_why_others_are_unavailable():
    out = xpnet("info")
    assert out.returncode == 0, out.stderr
    assert "numpy" in out.stdout and "default backend" in out.stdout
    data = json.loads(xpnet("info", "--json").stdout)
    assert data["backends"]["numpy"]["usable"] is True
    for name, a in data["backends"].items():
        assert a["detail"], name  # a version and device, or the reason it is unusable


def test_resume_continues_bit_identically(tmp_path):
    common = ("--schedule", "none", "--data", "digits", "--no-plots")
    full = xpnet("train", *common, "--epochs", "4", "--out", str(tmp_path / "full"))
    half = xpnet("train", *common, "--epochs", "2", "--out", str(tmp_path / "half"))
    assert full.returncode == 0 and half.returncode == 0, full.stderr + half.stderr
    resumed = xpnet("train", "--resume", str(tmp_path / "half" / "last.xpnet"), "--epochs", "4",
                    "--out", str(tmp_path / "half"), "--no-plots")
    assert resumed.returncode == 0, resumed.stderr
    h_full = json.loads((tmp_path / "full" / "history.json").read_text())
    h_res = json.loads((tmp_path / "half" / "history.json").read_text())
    for key in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert h_res[key] == h_full[key], key
    m_full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    m_res = json.loads((tmp_path / "half" / "metrics.json").read_text())
    assert m_res["test_loss"] == m_full["test_loss"]


def test_resume_refuses_to_stretch_a_cosine_schedule(tmp_path):
    xpnet("train", "--epochs", "1", "--out", str(tmp_path), "--no-plots")
    out = xpnet("train", "--resume", str(tmp_path / "last.xpnet"), "--epochs", "3")
    one_line_error(out, "cosine schedule was planned for 1 epochs", "--epochs 1")


def test_cnn_and_a_json_model_spec(tmp_path):
    out = xpnet("train", "--model", "cnn", "--epochs", "3", "--out", str(tmp_path / "cnn"), "--no-plots")
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "cnn" / "metrics.json").read_text())["test_accuracy"] > 0.8
    spec = {"type": "Sequential", "layers": [
        {"type": "Linear", "in_features": 2, "out_features": 8}, {"type": "Tanh"},
        {"type": "Linear", "in_features": 8, "out_features": 2}]}
    path = tmp_path / "net.json"
    path.write_text(json.dumps(spec))
    out = xpnet("train", "--model", str(path), "--data", "moons", "--out", str(tmp_path / "spec"))
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "spec" / "metrics.json").read_text())["test_accuracy"] > 0.85
    if pytest.importorskip("matplotlib"):
        assert (tmp_path / "spec" / "decision_boundary.png").exists()


def test_a_diverging_run_stops_with_the_epoch_and_step(tmp_path):
    out = xpnet("train", "--optimizer", "sgd", "--lr", "1e8", "--epochs", "2", "--out", str(tmp_path), "--no-plots")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "the loss became" in out.stderr and "at epoch 1, step" in out.stderr


@pytest.mark.parametrize("args, needles", [
    (("train", "--backend", "nope"), ("unknown backend 'nope'",)),
    (("train", "--epochs", "-3"), ("--epochs", "must be an integer >= 0, got '-3'")),
    (("train", "--batch-size", "0"), ("--batch-size", "must be a positive integer")),
    (("train", "--lr", "-1"), ("--lr", "must be a positive number")),
    (("train", "--data", "cifar"), ("--data", "invalid choice: 'cifar'")),
    (("train", "--model", "missing.json"), ("model spec missing.json: no such file",)),
    (("train", "--resume", "missing.xpnet"), ("--resume", "missing.xpnet: no such file")),
    (("train", "--model", "cnn", "--data", "moons"), ("--model cnn needs image data",)),
    (("evaluate", "missing.xpnet"), ("missing.xpnet: no such file",)),
    (("train", "--precision", "bf16"), ("--precision bf16: backend numpy has no bfloat16",)),
    (("train", "--precision", "fp16", "--backend", "array_api_strict"), ("--precision fp16: backend array_api_strict",)),
    (("train", "--precision", "fp16", "--dtype", "float64"), ("the master weights are float32",)),
    (("bogus",), ("invalid choice: 'bogus'",)),
])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, args, needles):
    one_line_error(xpnet(*args, cwd=tmp_path), *needles)


def test_train_in_float16_mixed_precision(tmp_path):
    out = xpnet("train", "--precision", "fp16", "--epochs", "2", "--no-plots", "--out", "r", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "float32 with fp16 mixed precision" in out.stdout
    ck_settings = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert ck_settings["test_accuracy"] > 0.5
    from xpnet import load

    ck = load(tmp_path / "r" / "last.xpnet")
    assert ck.scaler is not None and ck.extra["cli"]["precision"] == "fp16"


def test_an_unusable_backend_is_a_usage_error(tmp_path):
    from xpnet import backends

    unusable = [k for k, a in backends.available().items() if not a.usable]
    if not unusable:
        pytest.skip("every backend is usable here")
    one_line_error(xpnet("train", "--backend", unusable[0], cwd=tmp_path), "--backend", "unusable")


def test_a_damaged_checkpoint_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.xpnet"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    one_line_error(xpnet("evaluate", str(bad)), "truncated")


def test_resume_without_out_writes_beside_the_checkpoint(tmp_path):
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = xpnet("train", "--schedule", "none", "--epochs", "1", "--no-plots", "--out", str(run))
    assert first.returncode == 0, first.stderr
    resumed = xpnet("train", "--resume", str(run / "last.xpnet"), "--epochs", "2", "--no-plots", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert f"checkpoints in {run}/" in resumed.stdout
    assert json.loads((run / "history.json").read_text())["epoch"] == [1, 2]
    assert list(elsewhere.iterdir()) == []  # no runs/digits-mlp-numpy in the working directory
    # a bare file name: its directory is the working directory
    again = xpnet("train", "--resume", "last.xpnet", "--epochs", "3", "--no-plots", cwd=run)
    assert again.returncode == 0, again.stderr
    assert json.loads((run / "history.json").read_text())["epoch"] == [1, 2, 3]
    assert not (run / "runs").exists()


def test_the_checkpoint_check_before_training_leaves_the_generator_as_it_was():
    import numpy as np

    import xpnet as xn
    from xpnet import backends
    from xpnet.cli.checks import round_trip

    be = backends.get("numpy")
    net = xn.Sequential(xn.Linear(4, 3))
    be.manual_seed(7)
    round_trip(xn, be, net, xn.Adam(net), xn.CrossEntropyLoss(), "net")
    after = be.to_numpy(be.rng.uniform((5,), dtype=be.dtype("float64")))
    be.manual_seed(7)
    fresh = be.to_numpy(be.rng.uniform((5,), dtype=be.dtype("float64")))
    np.testing.assert_array_equal(after, fresh)


def test_xpnet_traceback_shows_the_traceback_of_a_user_error(tmp_path):
    (tmp_path / "net.json").write_text("[]]")
    quiet = xpnet("train", "--model", "net.json", cwd=tmp_path)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XPNET_TRACEBACK": "1"}
    env.pop("XPNET_BACKEND", None)
    loud = subprocess.run([sys.executable, "-m", "xpnet", "train", "--model", "net.json"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=300)
    assert loud.returncode == 1 and "Traceback" in loud.stderr and "UsageError" in loud.stderr
