"""docs/tutorial.md runs as printed: every python block, in order, in a scratch directory."""

from __future__ import annotations

import pathlib
import re

import pytest

from tests.conftest import run_markdown

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"


def test_tutorial_runs_and_reaches_its_accuracies(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib", reason="the tutorial's plots need matplotlib (pip install 'xpnet[plot]')")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XPNET_BACKEND", raising=False)
    run_markdown(DOC, 5)  # its asserts check the accuracies
    out = capsys.readouterr().out
    assert "MLP test accuracy" in out and "CNN test accuracy" in out
    for name in ("mlp-curves.png", "cnn-curves.png", "cnn-misclassified.png", "moons-boundary.png"):
        assert (tmp_path / "tutorial" / name).read_bytes()[:4] == b"\x89PNG"


def test_tutorial_images_exist():
    for ref in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", DOC.read_text()):
        assert (DOC.parent / ref).is_file(), ref


def test_sequences_doc_runs(tmp_path, monkeypatch):
    """docs/sequences.md runs as printed: every python block, in order (its asserts check the
    LSTM's backward through time by hand against xpnet's, and the attention section's claims)."""
    monkeypatch.chdir(tmp_path)
    run_markdown(DOC.parent / "sequences.md", 4)
