"""xpnet.plot: PNGs of the expected size, one batched forward on the net's backend, training modes
restored, the misclassified samples against a numpy reference, atomic writes, and every error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install 'xpnet[plot]')")

import matplotlib.figure  # noqa: E402
import matplotlib.image  # noqa: E402

import xpnet as xn  # noqa: E402
from xpnet import backends, metrics, plot  # noqa: E402
from xpnet.plot import _classify  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """``(width, height)`` of a PNG, after checking its signature."""
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[2] == 4
    return img.shape[1], img.shape[0]


def history(n=5, **extra):
    h = {
        "epoch": list(range(1, n + 1)),
        "loss": [1.0 / (i + 1) for i in range(n)],
        "accuracy": [0.5 + 0.08 * i for i in range(n)],
        "val_loss": [1.2 / (i + 1) for i in range(n)],
        "val_accuracy": [0.45 + 0.08 * i for i in range(n)],
        "lr": [0.1] * n,
        "time": [0.5 * (i + 1) for i in range(n)],
    }
    h.update(extra)
    return h


# -- curves -----------------------------------------------------------------------------------------
def test_curves_two_panels(tmp_path):
    out = plot.curves(history(), tmp_path / "sub" / "dir" / "curves.png", title="run 1")
    assert out == tmp_path / "sub" / "dir" / "curves.png"
    assert png_size(out) == (1000, 400)


def test_curves_loss_only_and_gaps(tmp_path):
    h = {"epoch": [1, 2, 3], "loss": [0.9, 0.5, 0.4], "val_loss": [None, 0.7, 0.6]}
    assert png_size(plot.curves(h, tmp_path / "loss.png")) == (550, 400)
    # epoch is optional: 1..N
    assert png_size(plot.curves({"loss": [3.0, 2.0]}, str(tmp_path / "noepoch.png"))) == (550, 400)


def test_curves_from_json_file(tmp_path):
    p = tmp_path / "history.json"
    p.write_text(json.dumps(history(40)))
    assert png_size(plot.curves(p, tmp_path / "a.png")) == (1000, 400)
    assert png_size(plot.curves(str(p), tmp_path / "b.png")) == (1000, 400)


def test_curves_reads_0d_arrays_of_any_backend(tmp_path, backend):
    xp = backend.xp
    h = {"loss": [xp.asarray(0.5, device=backend.device), xp.asarray(0.25, device=backend.device)]}
    assert png_size(plot.curves(h, tmp_path / "c.png")) == (550, 400)


def test_curves_accuracy_in_percent_only_when_fractions(tmp_path):
    h = history(4)
    h["accuracy"] = [50.0, 60.0, 70.0, 80.0]
    h["val_accuracy"] = [45.0, 55.0, 65.0, 75.0]
    assert png_size(plot.curves(h, tmp_path / "pct.png")) == (1000, 400)


@pytest.fixture
def drawn(monkeypatch):
    """The Figures the plot functions save, in order (the PNGs are still written)."""
    from xpnet.plot import _common

    figs, real = [], _common.save
    monkeypatch.setattr(_common, "save", lambda m, fig, path: figs.append(fig) or real(m, fig, path))
    return figs


@pytest.mark.parametrize("losses, scale", [
    ([2.3, 0.5, 0.05, 0.01], "log"),      # 230x: more than two decades
    ([2.3, 0.5, 0.1, 0.05], "linear"),    # 46x
    ([1.0, 0.0, 0.0001, 0.0], "linear"),  # a zero loss has no place on a log axis
])
def test_curves_loss_axis_turns_logarithmic_beyond_two_decades(tmp_path, drawn, losses, scale):
    plot.curves({"loss": losses, "val_loss": [v * 1.1 for v in losses], "accuracy": [0.5] * 4}, tmp_path / "c.png")
    loss_axis, acc_axis = drawn[0].axes
    assert loss_axis.get_yscale() == scale and acc_axis.get_yscale() == "linear"
    assert loss_axis.get_title() == ("loss (log scale)" if scale == "log" else "loss")


@pytest.mark.parametrize(
    "h, words",
    [
        ({}, ["curves: history is empty", "epoch, loss, accuracy"]),
        ({"epoch": [], "loss": []}, ["curves: history is empty (no epochs)", "epoch: 0", "loss: 0"]),
        ({"epoch": [1, 2, 3], "loss": [1.0, 0.5], "val_loss": [1.0, 0.9, 0.8]},
         ["equal lengths", "epoch: 3", "loss: 2", "val_loss: 3"]),
        ({"epoch": [1, 2], "accuracy": [0.5, 0.6]}, ["history needs a 'loss' list", "'epoch', 'accuracy'"]),
        ({"loss": [1.0, "x"]}, ["history['loss'][1] must be a number, got 'x'"]),
        ({"loss": 3.0}, ["history['loss'] must be a list of numbers, got float"]),
    ],
)
def test_curves_errors(tmp_path, h, words):
    with pytest.raises(ValueError) as e:
        plot.curves(h, tmp_path / "x.png")
    for w in words:
        assert w in str(e.value)
    assert not (tmp_path / "x.png").exists()


def test_curves_not_a_mapping(tmp_path):
    with pytest.raises(TypeError, match=r"curves: history must be a mapping of per-epoch lists .* got list"):
        plot.curves([{"loss": 1.0}], tmp_path / "x.png")


# -- decision_boundary -------------------------------------------------------------------------------
def points(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    return X, y


def fixed_net(backend, dtype="float32", outputs=2):
    """Linear(2, outputs) whose argmax (or, for one output, sign) is "x_1 > 0"."""
    net = xn.Sequential(xn.Linear(2, outputs, backend=backend), xn.Dropout(0.5))
    w = np.array([[-1.0, 0.0], [1.0, 0.0]]) if outputs == 2 else np.array([[1.0, 0.0]])
    net.load_state_dict({"0.weight": w, "0.bias": np.zeros(outputs)})
    return net.to(backend, dtype)


class CountingForward:
    """Replaces ``net.forward`` (found by ``net(x)`` on the instance) and records each input."""

    def __init__(self, net):
        self.inner, self.inputs = net.forward, []
        self.modes = []
        self.net = net
        net.forward = self

    def __call__(self, x):
        self.inputs.append(x)
        self.modes.append([layer.training for layer in self.net])
        return self.inner(x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_decision_boundary_one_forward_on_the_nets_backend(tmp_path, backend, dtype):
    X, y = points()
    net = fixed_net(backend, dtype)
    net.train()
    net[1].eval()  # a mixed state: each layer must get its own mode back
    calls = CountingForward(net)
    Xb, yb = backend.asarray(X), backend.asarray(y)
    out = plot.decision_boundary(net, Xb, yb, tmp_path / "db.png", resolution=30, padding=0.25)
    assert png_size(out) == (600, 500)
    assert len(calls.inputs) == 1, "the grid must be evaluated in one batched forward"
    (x,) = calls.inputs
    assert backends.backend_of(x) is backend and x.device == backend.device
    assert backend.dtype_name(x.dtype) == dtype
    assert tuple(x.shape) == (30 * 30 + len(X), 2)
    assert calls.modes == [[False, False]], "the forward must run in eval mode"
    assert [net.training, net[0].training, net[1].training] == [True, True, False]
    # the grid spans the data's bounding box widened by the padding; X follows it
    g = backends.to_numpy(x).astype(np.float64)
    assert g[: 900, 0].min() == pytest.approx(X[:, 0].min() - 0.25, abs=1e-6)
    assert g[: 900, 1].max() == pytest.approx(X[:, 1].max() + 0.25, abs=1e-6)
    np.testing.assert_allclose(g[900:], X, atol=1e-6)


def test_decision_boundary_names_the_split_it_shows(tmp_path, drawn):
    X, y = points()
    net = fixed_net(backends.get("numpy"))
    plot.decision_boundary(net, X, y, tmp_path / "a.png", resolution=5, split="test")
    plot.decision_boundary(net, X, y, tmp_path / "b.png", resolution=5, split="test", title="mine")
    plot.decision_boundary(net, X, y, tmp_path / "c.png", resolution=5)
    titles = [f.axes[0].get_title() for f in drawn]
    legends = [f.axes[0].get_legend().get_title().get_text() for f in drawn]
    assert titles == ["decision regions, test split", "mine", "decision regions"]
    assert legends == ["test split accuracy 100.0%"] * 2 + ["accuracy 100.0%"]


def test_decision_boundary_one_logit_float_labels_and_host_data(tmp_path):
    X, y = points()
    net = fixed_net(backends.get("numpy"), outputs=1)
    calls = CountingForward(net)
    out = plot.decision_boundary(net, X.tolist(), y.astype(np.float32)[:, None], tmp_path / "one.png",
                                 resolution=20, title="one logit", class_names=["left", "right"])
    assert png_size(out) == (600, 500) and len(calls.inputs) == 1


def test_decision_boundary_restores_mode_after_an_error(tmp_path):
    X, y = points()
    net = xn.Sequential(xn.Linear(2, 3), xn.Flatten(), xn.Reshape((3, 1, 1)))  # not (N, C) logits
    net.train()
    with pytest.raises(ValueError, match=r"decision_boundary: the net must output logits of shape \(N, C\), "
                                         r"got \(440, 3, 1, 1\)"):
        plot.decision_boundary(net, X, y, tmp_path / "x.png", resolution=20)
    assert all(layer.training for layer in net) and net.training
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("shape", [(10, 3), (10,), (10, 2, 1), (0, 2)])
def test_decision_boundary_rejects_non_2d_points(tmp_path, shape):
    net = fixed_net(backends.get("numpy"))
    X = np.zeros(shape, dtype=np.float32)
    with pytest.raises(ValueError) as e:
        plot.decision_boundary(net, X, np.zeros(shape[:1], dtype=np.int64), tmp_path / "x.png")
    assert str(e.value) == f"decision_boundary: expected points X of shape (N, 2) with N >= 1, got shape {shape}"


def test_decision_boundary_argument_errors(tmp_path):
    X, y = points(10)
    net = fixed_net(backends.get("numpy"))
    with pytest.raises(ValueError, match=r"decision_boundary: expected labels y of shape \(10,\) to match X, got \(9,\)"):
        plot.decision_boundary(net, X, y[:9], tmp_path / "x.png")
    with pytest.raises(ValueError, match="decision_boundary: labels y must be whole numbers"):
        plot.decision_boundary(net, X, y + 0.5, tmp_path / "x.png")
    with pytest.raises(ValueError, match="decision_boundary: resolution must be an int >= 2, got 1"):
        plot.decision_boundary(net, X, y, tmp_path / "x.png", resolution=1)
    with pytest.raises(ValueError, match="decision_boundary: padding must be a real number >= 0, got -1"):
        plot.decision_boundary(net, X, y, tmp_path / "x.png", padding=-1)
    with pytest.raises(ValueError, match="decision_boundary: class_names has 1 names but the labels need 2"):
        plot.decision_boundary(net, X, y, tmp_path / "x.png", class_names=["a"])
    with pytest.raises(TypeError, match=r"decision_boundary: net must be an xpnet Layer \(e.g. xpnet.Sequential\), "
                                        r"got function"):
        plot.decision_boundary(lambda x: x, X, y, tmp_path / "x.png")


# -- misclassified -----------------------------------------------------------------------------------
def image_net(backend, in_features=64, classes=4, seed=0):
    """A fixed random Linear(in_features, classes) and its weights as numpy arrays."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(classes, in_features))
    b = rng.normal(size=(classes,))
    net = xn.Sequential(xn.Flatten(), xn.Linear(in_features, classes, backend=backend))
    net.load_state_dict({"1.weight": w, "1.bias": b})
    return net, w, b


def images(n=50, in_features=64, classes=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, in_features)).astype(np.float32), rng.integers(0, classes, n)


def test_misclassified_indices_match_numpy(backend):
    X, y = images()
    net, w, b = image_net(backend)
    pred = np.argmax(X.astype(np.float64) @ w.T + b, axis=1)
    wrong = np.nonzero(pred != y)[0]
    assert 0 < len(wrong) < len(X)
    calls = CountingForward(net)
    net.train()
    idx, got = plot.misclassified_indices(net, backend.asarray(X), backend.asarray(y), batch_size=16)
    assert idx == wrong.tolist() and got == pred[wrong].tolist()
    assert [tuple(x.shape) for x in calls.inputs] == [(16, 64), (16, 64), (16, 64), (2, 64)]
    assert all(backends.backend_of(x) is backend for x in calls.inputs)
    assert net.training and net[1].training


@pytest.mark.parametrize("max_images", [100, 5])
def test_misclassified_draws_one_image_per_mistake(tmp_path, backend, max_images):
    X, y = images(24)
    net, w, b = image_net(backend)
    pred = np.argmax(X.astype(np.float64) @ w.T + b, axis=1)
    wrong = np.nonzero(pred != y)[0]
    shown = min(len(wrong), max_images)
    Xb = backend.asarray(X.reshape(-1, 1, 8, 8))  # NCHW goes to the net as it is
    fig = _classify._draw_misclassified(net, Xb, backend.asarray(y), image_shape=None, max_images=max_images,
                                        class_names=None, batch_size=1024, title=None)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == shown
    assert [ax.get_title() for ax in axes] == [f"{y[i]} → {pred[i]}\n#{i}" for i in wrong[:shown]]
    np.testing.assert_allclose(axes[0].images[0].get_array(), X[wrong[0]].reshape(8, 8))
    head = fig.get_suptitle()
    assert f"{len(wrong)} of 24 misclassified" in head
    assert (f"the first {shown} shown" in head) == (shown < len(wrong))
    out = plot.misclassified(net, Xb, backend.asarray(y), tmp_path / "wrong.png", max_images=max_images)
    (rows, cols), size = _classify.grid_shape(shown)
    assert rows * cols >= shown > (rows - 1) * cols
    assert png_size(out) == size == (max(400, 125 * cols), 150 * rows + 75)


def test_misclassified_class_names_and_image_shape(tmp_path):
    X, y = images(30, in_features=60, classes=3)
    net, w, b = image_net("numpy", in_features=60, classes=3)
    names = ["cat", "dog", "eel"]
    fig = _classify._draw_misclassified(net, X, y, image_shape=(6, 10), max_images=4, class_names=names,
                                        batch_size=7, title="pets")
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 4 and axes[0].images[0].get_array().shape == (6, 10)
    assert all(" → " in ax.get_title() and ax.get_title().split(" → ")[0] in names for ax in axes)
    assert fig.get_suptitle().startswith("pets\n")
    assert png_size(plot.misclassified(net, X, y, tmp_path / "p.png", image_shape=(6, 10), class_names=names,
                                       max_images=4)) == (400, 375)


def test_misclassified_colour_images(tmp_path):
    X, y = images(20, in_features=48)
    net, _, _ = image_net("numpy", in_features=48)
    fig = _classify._draw_misclassified(net, X.reshape(20, 3, 4, 4), y, image_shape=None, max_images=36,
                                        class_names=None, batch_size=1024, title=None)
    arr = [ax for ax in fig.axes if ax.images][0].images[0].get_array()
    assert arr.shape == (4, 4, 3) and arr.min() >= 0.0 and arr.max() <= 1.0


def test_misclassified_nothing_wrong(tmp_path, backend):
    X, _ = images(12)
    net, w, b = image_net(backend)
    y = np.argmax(X.astype(np.float64) @ w.T + b, axis=1)
    out = plot.misclassified(net, backend.asarray(X), backend.asarray(y), tmp_path / "none.png")
    assert png_size(out) == (400, 150)
    fig = _classify._draw_misclassified(net, X, y, image_shape=None, max_images=36, class_names=None,
                                        batch_size=1024, title=None)
    assert "nothing misclassified" in fig.texts[0].get_text() and "all 12 samples" in fig.texts[0].get_text()


def test_misclassified_errors(tmp_path):
    X, y = images(10, in_features=60)
    net, _, _ = image_net("numpy", in_features=60)
    with pytest.raises(ValueError) as e:
        plot.misclassified(net, X, y, tmp_path / "x.png")
    assert str(e.value) == ("misclassified: cannot infer a square image from 60 features per sample "
                            "(X shape (10, 60)); pass image_shape=(H, W)")
    with pytest.raises(ValueError, match=r"misclassified: image_shape \(7, 7\) does not fit samples of shape "
                                         r"\(60,\) \(60 values\)"):
        plot.misclassified(net, X, y, tmp_path / "x.png", image_shape=(7, 7))
    with pytest.raises(ValueError, match=r"misclassified: cannot draw samples of shape \(2, 5, 6\) as images"):
        plot.misclassified(net, X.reshape(10, 2, 5, 6), y, tmp_path / "x.png")
    with pytest.raises(ValueError, match="misclassified: max_images must be an int >= 1, got 0"):
        plot.misclassified(net, X, y, tmp_path / "x.png", image_shape=(6, 10), max_images=0)
    with pytest.raises(ValueError, match="misclassified_indices: batch_size must be an int >= 1, got 0"):
        plot.misclassified_indices(net, X, y, batch_size=0)
    with pytest.raises(TypeError, match="misclassified_indices: labels y must be integer class indices"):
        plot.misclassified_indices(net, X, np.array(["a"] * 10))
    assert not (tmp_path / "x.png").exists()


# -- confusion ---------------------------------------------------------------------------------------
def test_confusion(tmp_path, backend):
    xp = backend.xp
    pred = xp.asarray([0, 1, 2, 2, 1, 0, 2], device=backend.device)
    target = xp.asarray([0, 1, 2, 1, 1, 2, 2], device=backend.device)
    cm = metrics.confusion_matrix(pred, target, 3)
    assert png_size(plot.confusion(cm, tmp_path / "cm.png")) == (500, 400)


def test_confusion_normalized_and_large(tmp_path):
    cm = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 5]])
    assert png_size(plot.confusion(cm, tmp_path / "cmn.png", ["a", "b", "c"], normalize=True)) == (500, 400)
    big = np.eye(10, dtype=np.int64) * 5
    assert png_size(plot.confusion(big, tmp_path / "big.png")) == (800, 700)


def test_confusion_colours_by_row_and_writes_counts(tmp_path, drawn):
    cm = np.array([[90, 10], [1, 1]])  # the rare class's half wrong shows as strongly as it is
    plot.confusion(cm, tmp_path / "c.png", ["common", "rare"], normalize="color")
    ax = drawn[0].axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.9, 0.1], [0.5, 0.5]])
    assert [t.get_text() for t in ax.texts] == ["90", "10", "1", "1"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["common", "rare"]
    plot.confusion(cm, tmp_path / "n.png", normalize=True)
    assert [t.get_text() for t in drawn[1].axes[0].texts] == ["90%", "10%", "50%", "50%"]
    with pytest.raises(ValueError, match="confusion: normalize must be False, True or 'color', got 'rows'"):
        plot.confusion(cm, tmp_path / "x.png", normalize="rows")


def test_confusion_errors(tmp_path):
    with pytest.raises(ValueError, match=r"confusion: expected a square matrix \(C, C\), got shape \(2, 3\)"):
        plot.confusion(np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="confusion: class_names has 2 names but the labels need 3"):
        plot.confusion(np.eye(3), tmp_path / "x.png", ["a", "b"])
    with pytest.raises(TypeError, match="confusion: class_names must be a sequence of names, got the string 'abc'"):
        plot.confusion(np.eye(3), tmp_path / "x.png", "abc")


# -- writing and the optional dependency ---------------------------------------------------------------
def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "curves.png"
    plot.curves(history(), target)
    before = target.read_bytes()
    plot.curves(history(8), target)  # overwriting works
    assert target.read_bytes() != before and os.listdir(tmp_path) == ["curves.png"]
    before = target.read_bytes()

    def broken(self, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        plot.curves(history(3), target)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["curves.png"]


def test_missing_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" now raises ImportError
    X, y = points(10)
    net = fixed_net(backends.get("numpy"))
    calls = [
        lambda: plot.curves(history(), tmp_path / "c.png"),
        lambda: plot.decision_boundary(net, X, y, tmp_path / "d.png", resolution=5),
        lambda: plot.misclassified(net, X, 1 - y, tmp_path / "m.png", image_shape=(1, 2)),
        lambda: plot.confusion(np.eye(2), tmp_path / "cm.png"),
    ]
    for call in calls:
        with pytest.raises(ImportError) as e:
            call()
        assert str(e.value) == "xpnet.plot needs matplotlib: pip install 'xpnet[plot]'"
    assert os.listdir(tmp_path) == []


def test_import_needs_no_matplotlib():
    code = ("import sys; sys.modules['matplotlib'] = None; import xpnet.plot; "
            "assert not any(m.startswith('matplotlib') for m in sys.modules if sys.modules[m] is not None)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
