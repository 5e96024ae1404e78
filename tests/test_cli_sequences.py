"""``xpnet train --model gpt|lstm``: short runs on a generated task and on a text file, resuming,
what the run directory holds, and every mistake one line with exit status 2 (in-process)."""

from __future__ import annotations

import json

import pytest

import xpnet as xn
from xpnet import data
from xpnet.examples.tokens import SequenceAccuracy, TokenCrossEntropyLoss
from tests.test_cli_data import cli, usage

POEM = ("Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
        "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date;\n") * 12


@pytest.fixture(scope="module")
def sort_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sort") / "run"
    result = cli("train", "--model", "gpt", "--data", "sort", "--epochs", "2", "--no-progress", "--out", out)
    assert result[0] == 0, result
    return out, result[1]


def test_gpt_on_sort_writes_a_run_directory(sort_run):
    out, stdout = sort_run
    assert "xpnet train: sort (492 train, 54 validation, 183 test problems" in stdout
    assert "model: GPT(vocab_size=3, block_size=11, n_layer=3, n_head=3, n_embd=48)" in stdout
    assert "test exact-sequence accuracy (greedy decoding): last epoch (2) " in stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"] == "sort" and m["model"] == "gpt" and m["epochs"] == 2 and m["test_samples"] == 183
    assert 0 <= m["test_accuracy"] <= 1 and m["test_loss"] > 0
    h = json.loads((out / "history.json").read_text())
    assert h["epoch"] == [1, 2] and {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(h)
    for name in ("last.xpnet", "best.xpnet"):
        assert (out / name).stat().st_size > 0
    if pytest.importorskip("matplotlib"):
        assert (out / "curves.png").stat().st_size > 0


def test_greedy_decoding_scores_what_teacher_forcing_scores(sort_run):
    """The exact-sequence accuracy of greedy decoding (metrics.json) equals the teacher-forced
    one that fit reports per epoch: each answer token right given the right ones before it."""
    out, _ = sort_run
    ck = xn.load(out / "last.xpnet")
    task = data.sort_digits(seed=0)
    forced = xn.evaluate(ck.net, TokenCrossEntropyLoss(), task.test, metrics=[SequenceAccuracy()])
    m = json.loads((out / "metrics.json").read_text())
    assert forced["accuracy"] == pytest.approx(m["test_accuracy"]) and forced["loss"] == pytest.approx(m["test_loss"])
    assert ck.extra["cli"]["model"] == "gpt" and ck.extra["vocabulary"] is None


def test_resume_evaluates_anew(sort_run, tmp_path):
    out, _ = sort_run
    status, stdout, err = cli("train", "--resume", out / "last.xpnet", "--no-progress", "--no-plots",
                              "--out", tmp_path)
    assert status == 0 and "last epoch (2)" in stdout and "epoch 3" not in stdout, err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["test_accuracy"] == json.loads((out / "metrics.json").read_text())["test_accuracy"]


def test_lstm_on_sort_and_resume(tmp_path):
    status, stdout, err = cli("train", "--model", "lstm", "--data", "sort", "--epochs", "1", "--schedule", "none",
                              "--no-progress", "--no-plots", "--out", tmp_path)
    assert status == 0, err
    assert "model: SeqLSTM(vocab_size=3, embedding_dim=32, hidden_size=128, num_layers=1)" in stdout
    assert json.loads((tmp_path / "metrics.json").read_text())["model"] == "lstm"
    status, stdout, err = cli("train", "--resume", tmp_path / "last.xpnet", "--epochs", "2", "--no-progress")
    assert status == 0 and "epoch 2/2" in stdout and "epoch 1/2" not in stdout, err
    assert json.loads((tmp_path / "history.json").read_text())["epoch"] == [1, 2]


@pytest.mark.parametrize("model", ["gpt", "lstm"])
def test_a_text_file_trains_a_character_model_and_samples(model, tmp_path):
    text = tmp_path / "sonnet.txt"
    text.write_text(POEM, encoding="utf-8")
    status, stdout, err = cli("train", "--model", model, "--data", text, "--epochs", "1", "--batch-size", "8",
                              "--no-progress", "--no-plots", "--out", tmp_path / "run")
    assert status == 0, err
    assert "xpnet train: sonnet.txt (" in stdout and f"vocabulary {len(set(POEM))})" in stdout
    assert "validation loss: last epoch (1) " in stdout and "perplexity" in stdout
    assert "sample of the last epoch (1) (temperature 0.8, from the validation text's first 32 characters):" in stdout
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["val_perplexity"] > 1 and len(m["val_sample"]) == 32 + 300 and set(m["val_sample"]) <= set(POEM)
    assert m["data"] == str(text.resolve())
    ck = xn.load(tmp_path / "run" / "last.xpnet")
    assert ck.extra["vocabulary"] == "".join(sorted(set(POEM)))


def test_evaluate_and_predict_refuse_sequence_models_in_one_line(sort_run, tmp_path):
    out, _ = sort_run
    usage(cli("evaluate", out / "last.xpnet"), "--data sort: a sequence task, whose models xpnet evaluate and "
                                               "xpnet predict do not score")
    samples = tmp_path / "x.csv"
    samples.write_text("a,b\n1,2\n")
    assert cli("predict", out / "last.xpnet", samples)[0] == 2


@pytest.mark.parametrize("argv, needle", [
    (("--data", "sort"), "--data sort: a sequence task; train it with --model gpt or --model lstm"),
    (("--model", "gpt", "--data", "digits"), "--model gpt trains on a sequence task (sort, reverse, addition) or a "
                                             "text file; --data digits is a classification data set"),
    (("--model", "gpt", "--data", "sort", "--metrics", "f1"), "--metrics f1: classifier figures"),
    (("--model", "lstm", "--data", "sort", "--label", "y"), "--label y: names the label column"),
    (("--model", "gpt", "--data", "sort", "--precision", "bf16"), "--precision bf16: mixed precision is not offered"),
    (("--model", "gpt", "--data", "sort", "--epochs", "0"), "--epochs 0: nothing to train"),
    (("--model", "gpt", "--data", "nowhere.txt"), "'nowhere.txt': no such file"),
])
def test_mistakes_are_one_line(argv, needle, tmp_path):
    usage(cli("train", *argv, "--out", tmp_path / "run"), needle)


@pytest.mark.parametrize("content, needle", [
    (b"caf\xe9 au lait " * 40, "not UTF-8 text: byte 0xe9 at offset 3 (line 1)"),
    (b"too short", "9 characters are too few for block_size 64"),
])
def test_bad_text_files_are_one_line(content, needle, tmp_path):
    f = tmp_path / "bad.txt"
    f.write_bytes(content)
    line = usage(cli("train", "--model", "gpt", "--data", f, "--out", tmp_path / "run"), needle)
    assert f"--data {f}:" in line
