"""docs/tutorial.md runs as printed: every python block, in order, in a scratch directory."""

from __future__ import annotations

import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"


def test_tutorial_runs_and_reaches_its_accuracies(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib", reason="the tutorial's plots need matplotlib (pip install 'xpnet[plot]')")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XPNET_BACKEND", raising=False)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 5
    scope = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name}, block {i + 1}", "exec"), scope)  # its asserts check the accuracies
    out = capsys.readouterr().out
    assert "MLP test accuracy" in out and "CNN test accuracy" in out
    for name in ("mlp-curves.png", "cnn-curves.png", "cnn-misclassified.png", "moons-boundary.png"):
        assert (tmp_path / "tutorial" / name).read_bytes()[:4] == b"\x89PNG"


def test_tutorial_images_exist():
    for ref in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", DOC.read_text()):
        assert (DOC.parent / ref).is_file(), ref
