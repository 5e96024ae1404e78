"""``xpnet train --data FILE``, ``xpnet evaluate`` and ``xpnet predict`` on users' own files, and
what a run directory holds: each run in-process through ``xpnet.cli.main`` (fast), each mistake
one line and exit status 2."""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile

import numpy as np
import pytest

import xpnet as xn
from xpnet.backends import files
from xpnet.cli import datafile, main, paths

SPECIES = ("setosa", "versicolor", "virginica")
QUICK = ("--epochs", "3", "--no-plots")


def cli(*argv):
    """``(status, stdout, stderr)`` of ``xpnet ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as e:  # argparse's errors
            status = e.code
    return status, out.getvalue(), err.getvalue()


def usage(result, *needles):
    status, out, err = result
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, (status, out, err)
    assert "epoch 1/" not in out, "found only after training had started"
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def table(n=40, features=4, seed=0):
    """``n`` samples of each of three well-separated classes: ``X (3n, features)`` and the names."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(3.0 * c, 0.5, size=(n, features)) * 10 + 100 for c in range(3)])
    names = np.repeat(np.array(SPECIES), n)
    order = rng.permutation(3 * n)
    return X[order], names[order]


def write_csv(path, X, labels, label="species", columns=None):
    columns = columns or [f"f{j}" for j in range(X.shape[1])]
    with open(path, "w") as f:
        f.write(",".join(columns + ([label] if labels is not None else [])) + "\n")
        for i, row in enumerate(X):
            cells = [f"{v:.4f}" for v in row] + ([str(labels[i])] if labels is not None else [])
            f.write(",".join(cells) + "\n")
    return path


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """One run on a CSV file with named classes."""
    d = tmp_path_factory.mktemp("csv")
    X, names = table()
    src = write_csv(d / "flowers.csv", X, names)
    status, out, err = cli("train", "--data", src, "--label", "species", "--epochs", "8", "--lr", "0.02", "--out", d / "run",
                           "--metrics", "f1", "--no-plots")
    assert status == 0, err
    return d, src, out


# -- training on a CSV file ------------------------------------------------------------------------------
def test_a_csv_file_trains_and_says_which_model_each_figure_describes(csv_run):
    d, src, out = csv_run
    m = json.loads((d / "run" / "metrics.json").read_text())
    assert m["test_accuracy"] > 0.9 and m["test_samples"] == 18 and m["last_epoch"] == 8
    assert m["data"] == str(src.resolve()) and "test_f1" in m and "best_test_f1" in m
    assert m["model_best"].startswith(f"best.xpnet (epoch {m['best_epoch']}, val ")
    assert (f"test accuracy: last epoch (8) {m['test_accuracy']:.2%} (loss {m['test_loss']:.4g}); "
            f"{m['model_best']} {m['best_test_accuracy']:.2%}") in out
    assert "test f1: last epoch " in out and "flowers.csv (84 train, 18 validation, 18 test)" in out
    h = json.loads((d / "run" / "history.json").read_text())
    assert len(h["val_f1"]) == 8


def test_the_checkpoint_keeps_the_classes_and_the_train_statistics(csv_run):
    d, src, _ = csv_run
    ck = xn.load(d / "run" / "last.xpnet")
    info = ck.extra["data_file"]
    assert info["classes"] == list(SPECIES) and info["label"] == "species" and info["features"] == ["f0", "f1", "f2", "f3"]
    X, names = table()
    X = np.round(X, 4)  # as written
    y, _ = files.class_labels(names)
    train, _, _ = datafile.split("x", y, 0)
    np.testing.assert_allclose(info["mean"], X[train].mean(axis=0))
    np.testing.assert_allclose(info["std"], X[train].std(axis=0))
    assert info["mean"] != pytest.approx(list(X.mean(axis=0)))  # the train split's, not all samples'


def test_evaluate_reports_the_test_split_and_names_the_model(csv_run):
    d, _, _ = csv_run
    m = json.loads((d / "run" / "metrics.json").read_text())
    for name, key, role in (("last.xpnet", "test_accuracy", "last"), ("best.xpnet", "best_test_accuracy", "best")):
        status, out, err = cli("evaluate", d / "run" / name, "--json", "--metrics", "f1")
        assert status == 0, err
        res = json.loads(out)
        assert res["accuracy"] == pytest.approx(m[key], abs=1e-12) and res["split"] == "test"
        assert res["role"] == role and res["classes"] == list(SPECIES) and "f1" in res
    status, out, _ = cli("evaluate", d / "run" / "best.xpnet")
    assert f"best.xpnet: {m['model_best']}, on the flowers.csv test split (18 samples)" in out
    assert "classes: 0 setosa, 1 versicolor, 2 virginica" in out


def test_evaluate_on_another_file_uses_all_its_rows_and_the_training_classes(csv_run, tmp_path):
    d, _, _ = csv_run
    X, names = table(n=5, seed=3)
    keep = names != "setosa"  # a file without one class: the model's classes still number three
    other = write_csv(tmp_path / "more.csv", X[keep][:, [2, 0, 1, 3]], names[keep], columns=["f2", "f0", "f1", "f3"])
    status, out, err = cli("evaluate", d / "run" / "last.xpnet", "--data", other, "--json")
    assert status == 0, err
    res = json.loads(out)
    assert res["split"] == "all" and res["samples"] == 10 and res["accuracy"] == 1.0
    assert res["confusion_matrix"][0] == [0, 0, 0]
    bad = write_csv(tmp_path / "bad.csv", X[:2], np.array(["setosa", "lily"]))
    usage(cli("evaluate", d / "run" / "last.xpnet", "--data", bad), "bad.csv: the label 'lily' is not one of the model's classes")


def test_predict_writes_class_names_and_probabilities(csv_run, tmp_path):
    d, src, _ = csv_run
    X, names = table(n=4, seed=5)
    inp = write_csv(tmp_path / "new.csv", X[:, ::-1], names, columns=["f3", "f2", "f1", "f0"])  # any column order
    status, out, err = cli("predict", d / "run" / "best.xpnet", inp)
    assert status == 0, err
    assert "12 samples of" in out and "best.xpnet (epoch" in out
    lines = (tmp_path / "new.predictions.csv").read_text().splitlines()
    assert lines[0] == "predicted,prob_setosa,prob_versicolor,prob_virginica" and len(lines) == 13
    rows = [r.split(",") for r in lines[1:]]
    assert [r[0] for r in rows] == list(names)  # the label column of the input was ignored, and they are right
    assert all(abs(sum(map(float, r[1:])) - 1) < 1e-4 for r in rows)
    status, _, err = cli("predict", d / "run" / "best.xpnet", inp, "-o", tmp_path / "p.npz")
    assert status == 0, err
    with np.load(tmp_path / "p.npz") as z:
        assert list(z["classes"]) == list(SPECIES) and z["probabilities"].shape == (12, 3)
        assert [SPECIES[i] for i in z["predicted"]] == list(names)


@pytest.mark.parametrize("columns, needles", [
    (["f0", "f1", "f2"], ("no column 'f3'; the model was trained on the feature columns 'f0', 'f1', 'f2', 'f3'",)),
    (["f0", "f1", "f2", "f3", "id"], ("the column 'id' is not among the model's features",)),
])
def test_predict_checks_the_columns(csv_run, tmp_path, columns, needles):
    d, _, _ = csv_run
    inp = write_csv(tmp_path / "in.csv", np.ones((3, len(columns))), None, columns=columns)
    usage(cli("predict", d / "run" / "last.xpnet", inp), *needles)


def test_predict_checks_the_sample_shape_and_the_output_name(csv_run, tmp_path):
    d, _, _ = csv_run
    np.save(tmp_path / "x.npy", np.ones((3, 5)))
    usage(cli("predict", d / "run" / "last.xpnet", tmp_path / "x.npy"),
          "samples of shape (5,) (5 values); the model was trained on samples of shape (4,)")
    usage(cli("predict", d / "run" / "last.xpnet", tmp_path / "x.npy", "-o", tmp_path / "p.txt"),
          "-o", "written as .csv or .npz")


def test_resuming_after_the_file_changed_is_refused(csv_run, tmp_path):
    d, src, _ = csv_run
    X, names = table()
    changed = write_csv(tmp_path / "flowers.csv", X + 1, names)
    ck = xn.load(d / "run" / "last.xpnet")
    extra = json.loads(json.dumps(ck.extra))
    extra["cli"]["data"] = str(changed)
    moved = xn.save(tmp_path / "last.xpnet", ck.net, ck.optimizer, loss=ck.loss, epoch=ck.epoch, history=ck.history,
                    extra=extra)
    usage(cli("train", "--resume", moved), "the file has changed since the run began")


def test_default_label_column():
    assert datafile._label_column("w", ["a", "Target", "b"], None) == "Target"
    assert datafile._label_column("w", ["y", "label", "b"], None) == "label"
    assert datafile._label_column("w", ["a", "b", "c"], None) == "c"
    assert datafile._label_column("w", ["a", "b", "c"], "a") == "a"


# -- images in a .npz file -------------------------------------------------------------------------------
def test_npz_images_train_a_cnn_and_predict_from_npy(tmp_path):
    rng = np.random.default_rng(1)
    y = np.arange(60) % 2
    X = rng.normal(0, 0.3, size=(60, 8, 8)).astype(np.float32)
    X[y == 1, :4, :] += 2.0  # class 1: a bright upper half
    np.savez(tmp_path / "img.npz", X=X, y=y)
    status, out, err = cli("train", "--data", tmp_path / "img.npz", "--model", "cnn", "--epochs", "4",
                           "--out", tmp_path / "run", "--no-plots")
    assert status == 0, err
    ck = xn.load(tmp_path / "run" / "last.xpnet")
    assert ck.extra["data_file"]["shape"] == [1, 8, 8] and ck.extra["data_file"]["classes"] is None
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_accuracy"] > 0.9
    np.save(tmp_path / "x.npy", X[:6].reshape(6, 64))  # rows of pixels: reshaped to the training images
    status, _, err = cli("predict", tmp_path / "run" / "last.xpnet", tmp_path / "x.npy")
    assert status == 0, err
    rows = (tmp_path / "x.predictions.csv").read_text().splitlines()
    assert rows[0] == "predicted,prob_0,prob_1" and [int(r.split(",")[0]) for r in rows[1:]] == y[:6].tolist()


# -- the split -------------------------------------------------------------------------------------------
def test_the_split_is_70_15_15_per_class_disjoint_and_seeded():
    y = np.repeat(np.arange(3), [100, 40, 20])
    tr, va, te = datafile.split("w", y, 7)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(160))
    for part, share in ((va, 0.15), (te, 0.15)):
        assert np.bincount(y[part]).tolist() == [round(share * n) for n in (100, 40, 20)]
    again = datafile.split("w", y, 7)
    other = datafile.split("w", y, 8)
    assert all((a == b).all() for a, b in zip((tr, va, te), again))
    assert not (np.sort(other[1]) == np.sort(va)).all()
    with pytest.raises(Exception, match=r"12 samples are too few: the 70/15/15 split gives 8 train, 2 validation "
                                         r"and 2 test samples; each needs at least 3"):
        datafile.split("w", np.arange(12) % 2, 0)


# -- what a data file may not be ----------------------------------------------------------------------------
def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _text(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)
    return path


GOOD_X = np.arange(80, dtype=np.float64).reshape(40, 2)
GOOD_Y = np.arange(40) % 2

BAD_FILES = {
    "NaN": (lambda p: _npz(p / "d.npz", X=np.where(GOOD_X == 5, np.nan, GOOD_X), y=GOOD_Y),
            "X holds 1 values that are NaN or infinite (the first at sample 2, feature 1)"),
    "fractional labels": (lambda p: _npz(p / "d.npz", X=GOOD_X, y=GOOD_Y + 0.5), "y holds 0.5: class labels must be whole"),
    "negative label": (lambda p: _npz(p / "d.npz", X=GOOD_X, y=GOOD_Y - 1), "y holds the label -1"),
    "one class": (lambda p: _npz(p / "d.npz", X=GOOD_X, y=GOOD_Y * 0), "y holds 1 class: a classifier needs at least 2"),
    "huge label": (lambda p: _npz(p / "d.npz", X=GOOD_X, y=GOOD_Y * 10**9), "at most 10,000 classes"),
    "lengths": (lambda p: _npz(p / "d.npz", X=GOOD_X, y=GOOD_Y[:-1]), "X has shape (40, 2) and y (39,): expected"),
    "no y": (lambda p: _npz(p / "d.npz", X=GOOD_X, labels=GOOD_Y), "expected arrays named X and y, found 'X', 'labels'"),
    "objects": (lambda p: _npz(p / "d.npz", X=np.array([{"a": 1}] * 40, dtype=object), y=GOOD_Y),
                "X: arrays of dtype object are not data xpnet reads"),
    "not a zip": (lambda p: _text(p / "d.npz", "hello"), "not a .npz file (a zip archive of .npy arrays)"),
    "too few": (lambda p: _npz(p / "d.npz", X=GOOD_X[:10], y=GOOD_Y[:10]), "10 samples are too few"),
    "no header": (lambda p: _text(p / "d.csv", "1,2,0\n3,4,1\n"), "the first line must be a header"),
    "ragged": (lambda p: _text(p / "d.csv", "a,b,label\n1,2,0\n3,1\n"), "data row 2 has 2 fields where the header has 3"),
    "empty": (lambda p: _text(p / "d.csv", ""), "d.csv: empty"),
    "header only": (lambda p: _text(p / "d.csv", "a,b\n"), "no data: only a header line"),
    "text feature": (lambda p: _text(p / "d.csv", "a,b,label\n1,x,0\n3,4,1\n"),
                     "the feature column 'b' holds 'x' (data row 1): features must be numbers"),
    "repeated name": (lambda p: _text(p / "d.csv", "a,a,label\n1,2,0\n"), "the header names two columns 'a'"),
    "not UTF-8": (lambda p: _text(p / "d.csv", b"a,\xff,label\n1,2,0\n", "wb"), "not UTF-8 text"),
    "unknown kind": (lambda p: _text(p / "d.txt", "a,b\n"), "d.txt: not a data file xpnet reads"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_data_file_is_one_line_naming_it(tmp_path, case):
    make, needle = BAD_FILES[case]
    path = make(tmp_path)
    line = usage(cli("train", "--data", path, *QUICK, "--out", tmp_path / "run"), f"--data {path}: ", needle)
    assert not (tmp_path / "run").exists(), line


def test_data_option_errors(tmp_path):
    usage(cli("train", "--data", "cifar"), "argument --data: invalid choice: 'cifar' (choose from 'digits'",
          "or the path of a .npz or .csv file")
    usage(cli("train", "--data", tmp_path / "missing.csv"), "missing.csv: No such file or directory")
    path = _npz(tmp_path / "d.npz", X=GOOD_X, y=GOOD_Y)
    usage(cli("train", "--data", path, "--label", "y"), "--label y: names a column of a CSV file")
    usage(cli("train", "--label", "y"), "--label y: names the label column of a --data CSV file")


def test_sizes_are_bounded_before_anything_is_allocated(tmp_path):
    # a compressed archive of zeros: 8 MB of declared array, a few KB on disk
    np.savez_compressed(tmp_path / "bomb.npz", X=np.zeros((1_000_000,)), y=np.zeros(2))
    assert os.path.getsize(tmp_path / "bomb.npz") < 100_000
    with pytest.raises(ValueError, match="its arrays declare more than 1,000,000 bytes"):
        files.read_npz(tmp_path / "bomb.npz", max_bytes=1_000_000)
    with zipfile.ZipFile(tmp_path / "odd.npz", "w") as z:
        z.writestr("X.txt", "1")
    with pytest.raises(ValueError, match="it holds 'X.txt', which is not a .npy array"):
        files.read_npz(tmp_path / "odd.npz")
    _text(tmp_path / "big.csv", "a,label\n" + "1,0\n" * 100)
    with pytest.raises(ValueError, match="more than the 100 a CSV data file may have"):
        files.read_csv(tmp_path / "big.csv", max_bytes=100)


# -- run directories -------------------------------------------------------------------------------------
def test_a_new_run_removes_every_output_of_an_earlier_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in paths.RUN_OUTPUTS + paths.RUN_PLOTS + ("notes.txt",):
        (run / name).write_text("stale")
    (run / ".curves.png.0123456789ab.xpnet-tmp").write_text("an interrupted write")
    status, out, err = cli("train", "--data", "ring", *QUICK, "--out", run)
    assert status == 0, err
    assert "removed the earlier run's last.xpnet, best.xpnet, history.json, metrics.json, curves.png" in out
    assert sorted(p.name for p in run.iterdir()) == sorted(paths.RUN_OUTPUTS + ("notes.txt",))
    assert all((run / n).read_bytes() != b"stale" for n in paths.RUN_OUTPUTS)
    assert (run / "notes.txt").read_text() == "stale"  # not an output of xpnet: left alone
    pytest.importorskip("matplotlib")
    status, _, err = cli("train", "--data", "ring", "--epochs", "2", "--out", run)  # 2-D points: no misclassified.png
    assert status == 0, err
    assert {"curves.png", "confusion.png", "decision_boundary.png"} <= {p.name for p in run.iterdir()}
    # resumed in place without plots: the earlier plots no longer describe the run, and go
    status, _, err = cli("train", "--resume", run / "last.xpnet", "--no-plots")
    assert status == 0, err
    assert not any(p.suffix == ".png" for p in run.iterdir())
    assert json.loads((run / "metrics.json").read_text())["last_epoch"] == 2  # evaluated anew, nothing trained


def test_epochs_0_is_refused_for_a_new_run(tmp_path):
    usage(cli("train", "--epochs", "0", "--out", tmp_path / "run"), "--epochs 0: nothing to train")
    assert not (tmp_path / "run").exists()


def test_the_default_directory_names_the_backend(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = cli("train", "--data", "ring", *QUICK, "--backend", "array_api_strict:device1")
    assert status == 0, err
    assert (tmp_path / "runs" / "ring-mlp-array_api_strict-device1" / "last.xpnet").is_file()
    assert "checkpoints in runs/ring-mlp-array_api_strict-device1/" in out


def test_early_stopping_keeps_the_last_epoch_and_says_so(tmp_path):
    status, out, err = cli("train", "--data", "ring", "--epochs", "60", "--patience", "1", "--lr", "0.5",
                           "--no-plots", "--out", tmp_path)
    assert status == 0, err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["epochs"] < 60 and f"last epoch ({m['last_epoch']}, stopped early)" in out
    ck = xn.load(tmp_path / "last.xpnet")
    assert ck.epoch == m["last_epoch"]
    status, res, _ = cli("evaluate", tmp_path / "last.xpnet", "--json")
    assert json.loads(res)["accuracy"] == m["test_accuracy"]  # the printed "last epoch" is last.xpnet's net


def test_metrics_are_checked_before_training(tmp_path):
    usage(cli("train", "--metrics", "f1,bogus", "--out", tmp_path), "--metrics", "unknown metric 'bogus'")
    usage(cli("train", "--metrics", "mae", "--out", tmp_path), "--metrics mae: cannot score this model's outputs")
    usage(cli("train", "--data", "ring", "--metrics", "top5", "--out", tmp_path), "--metrics top5")
