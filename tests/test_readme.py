"""The README's code runs as printed, and the example command works."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import xpnet as xn
from xpnet import backends
from xpnet.testing import gradcheck

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_fit_example_trains_saves_and_loads(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = _python_blocks()[0]
    assert len(block.strip().splitlines()) <= 14  # "a dozen lines" of training, plus the imports
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["accuracy"] >= 0.95
    assert "test accuracy" in capsys.readouterr().out
    ck = xn.load(tmp_path / "digits.xpnet")
    assert ck.history["loss"] == scope["history"]["loss"]


def test_readme_loop_example_trains(capsys):
    block = _python_blocks()[1]
    assert len(block.strip().splitlines()) <= 16
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["accuracy"] >= 0.99
    assert "training accuracy" in capsys.readouterr().out


def test_readme_custom_layer_and_composite_pass_gradcheck():
    scope = {"xn": xn}
    exec(compile(_python_blocks()[2], "README.md", "exec"), scope)
    exec(compile(_python_blocks()[3], "README.md", "exec"), scope)
    x = backends.get("numpy").rng.normal((3, 4), dtype=backends.get("numpy").dtype("float64"))
    assert gradcheck(scope["Square"](), x)
    body = xn.Sequential(xn.Linear(4, 6, dtype="float64"), xn.Tanh(), xn.Linear(6, 4, dtype="float64"))
    assert gradcheck(scope["MyResidual"](body), x)


def test_readme_commands_are_present():
    text = README.read_text()
    assert "pip install '.[plot]' && xpnet train\n" in text and "bash .ci/run" in text
    assert "TBD" not in text


def test_example_command_runs_and_reaches_full_accuracy():
    out = subprocess.run([sys.executable, "-m", "xpnet.examples.ring"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "training accuracy 100.0%" in out.stdout


def test_example_command_rejects_bad_arguments():
    out = subprocess.run([sys.executable, "-m", "xpnet.examples.ring", "--backend", "nope"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown backend 'nope'" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "xpnet.examples.ring", "--epochs", "-3"], capture_output=True, text=True)
    assert out.returncode == 2 and "--epochs must be positive" in out.stderr
