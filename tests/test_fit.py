"""The training loop (xpnet.fit), evaluate/predict, and the callbacks: LRScheduler, EarlyStopping,
ModelCheckpoint, EpochLogger; the NaN guard and the progress bar."""

from __future__ import annotations

import io
import json
import math
import sys
import types

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.data import DataLoader
from tests.conftest import host

KEYS = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time", "samples_per_s"}


def _mlp(hidden=16, out=2, dropout=0.0):
    layers = [xn.Linear(2, hidden), xn.Tanh()]
    if dropout:
        layers.append(xn.Dropout(dropout))
    return xn.Sequential(*layers, xn.Linear(hidden, out))


def _params(net):
    return {k: host(v) for k, v in net.state_dict().items()}


def _assert_same(a, b):
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


class Feed(xn.Callback):
    """Puts ``values[i]`` into this epoch's logs as ``name`` (before the standard callbacks look at them)."""

    order = -1

    def __init__(self, name, values):
        self.name, self.values = name, list(values)

    def on_epoch_end(self, state, logs):
        logs[self.name] = self.values[state.epoch - 1]


class Spy(xn.Callback):
    """Records what the hooks see."""

    def __init__(self, order=25, on_batch=None, on_epoch=None):
        self.order, self.on_batch, self.on_epoch = order, on_batch, on_epoch
        self.calls = []

    def on_train_begin(self, state):
        self.calls.append("train_begin")

    def on_epoch_begin(self, state):
        self.calls.append(f"epoch_begin {state.epoch + 1}")

    def on_batch_end(self, state, logs):
        self.calls.append("batch")
        if self.on_batch:
            self.on_batch(state)

    def on_epoch_end(self, state, logs):
        self.calls.append(f"epoch_end {state.epoch}")
        if self.on_epoch:
            self.on_epoch(state, logs)

    def on_train_end(self, state):
        self.calls.append("train_end")


# -- History and end-to-end training ---------------------------------------------------------------------------


def test_history_keys_and_lengths(backend):
    X, y = xn.data.moons(60, seed=0)
    net = _mlp()
    spy = Spy()
    h = xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=3, batch_size=16, val=(X, y),
               callbacks=[spy], progress=False)
    assert isinstance(h, xn.History) and isinstance(h, dict)
    assert set(h) == KEYS
    assert all(len(v) == 3 for v in h.values())
    assert h["epoch"] == [1, 2, 3]
    assert h["lr"] == [0.1, 0.1, 0.1]
    assert all(type(v) is float for k in KEYS - {"epoch"} for v in h[k])
    assert all(0.0 <= a <= 1.0 for a in h["accuracy"] + h["val_accuracy"])
    assert all(t > 0 for t in h["time"]) and all(s > 0 for s in h["samples_per_s"])
    json.dumps(h)  # plain data
    # 60 samples in batches of 16: 4 steps an epoch, hooks in order
    per_epoch = lambda e: [f"epoch_begin {e}", *["batch"] * 4, f"epoch_end {e}"]  # noqa: E731
    assert spy.calls == ["train_begin", *per_epoch(1), *per_epoch(2), *per_epoch(3), "train_end"]


def test_zero_epochs(backend):
    X, y = xn.data.moons(20, seed=0)
    net = _mlp()
    before = _params(net)
    spy = Spy()
    h = xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=0, callbacks=[spy], progress=False)
    assert h == {} and spy.calls == ["train_begin", "train_end"]
    _assert_same(before, _params(net))


def test_moons_reaches_95_percent(backend):
    X, y = xn.data.moons(200, noise=0.1, seed=0)
    Xt, yt = xn.data.moons(200, noise=0.1, seed=1)
    net = _mlp(32)
    h = xn.fit(net, xn.CrossEntropyLoss(), xn.Adam(net, lr=0.05), (X, y), epochs=20, batch_size=32,
               val=(Xt, yt), progress=False)
    assert h["val_accuracy"][-1] >= 0.95, h["val_accuracy"]
    assert h["loss"][-1] < h["loss"][0]
    res = xn.evaluate(net, xn.CrossEntropyLoss(), (Xt, yt))
    assert res["accuracy"] == h["val_accuracy"][-1] and res["loss"] == pytest.approx(h["val_loss"][-1], rel=1e-6)
    for p in net.parameters():
        assert backends.backend_of(p.data) is backend


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
def test_dataloader_equals_pair(backend, shuffle):
    X, y = xn.data.moons(50, seed=2)
    runs = []
    for use_loader in (False, True):
        backend.manual_seed(3)
        net = _mlp()
        train = DataLoader(X, y, batch_size=16, shuffle=shuffle) if use_loader else (X, y)
        h = xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.2, momentum=0.9), train, epochs=2, batch_size=16,
                   shuffle=shuffle, progress=False)
        runs.append((h, _params(net)))
    (h1, p1), (h2, p2) = runs
    assert h1["loss"] == h2["loss"] and h1["accuracy"] == h2["accuracy"]
    _assert_same(p1, p2)


def test_data_errors(backend):
    X, y = xn.data.moons(20, seed=0)
    net = _mlp()
    opt = xn.SGD(net, lr=0.1)
    with pytest.raises(TypeError, match=r"^fit: expected an \(X, y\) pair or a DataLoader, got str$"):
        xn.fit(net, xn.CrossEntropyLoss(), opt, "moons", progress=False)
    with pytest.raises(TypeError, match=r"^fit: expected an \(X, y\) pair or a DataLoader, got tuple$"):
        xn.fit(net, xn.CrossEntropyLoss(), opt, (X, y, y), progress=False)
    other = "torch" if backend.name != "torch" else "numpy"
    try:
        loader = DataLoader(X, y, backend=other)
    except backends.BackendUnavailable:
        pytest.skip(f"{other} is absent")
    with pytest.raises(ValueError, match=rf"^fit: the data are on {loader.backend.label} but the net is on {backend.label}$"):
        xn.fit(net, xn.CrossEntropyLoss(), opt, loader, progress=False)
    with pytest.raises(ValueError, match=rf"^fit \(val\): the data are on {loader.backend.label} but the net is on"):
        xn.fit(net, xn.CrossEntropyLoss(), opt, (X, y), val=loader, progress=False)


# -- what fit computes, against a hand-written loop (numpy) ----------------------------------------------------


def _targets(kind, y):
    xp = backends.get("numpy").xp
    if kind == "ce":
        return y
    if kind == "bce":
        return xp.astype(y, xp.float32)[:, None]
    return xp.astype(xp.stack([y, 1 - y], axis=1), xp.float32)


@pytest.mark.parametrize("kind,clip", [("ce", None), ("ce", 0.1), ("bce", None), ("mse", None)])
def test_history_equals_a_hand_written_loop(kind, clip):
    be = backends.get("numpy")
    X, y = xn.data.moons(50, seed=4, backend="numpy")
    t = _targets(kind, y)
    out = 1 if kind == "bce" else 2
    crit = {"ce": xn.CrossEntropyLoss, "bce": xn.BCEWithLogitsLoss, "mse": xn.MSELoss}[kind]()

    be.manual_seed(5)
    net = _mlp(out=out)
    h = xn.fit(net, crit, xn.SGD(net, lr=0.3), (X, t), epochs=2, batch_size=16, shuffle=False, clip_norm=clip,
               progress=False)

    be.manual_seed(5)
    ref = _mlp(out=out)
    opt = xn.SGD(ref, lr=0.3)
    losses, accs = [], []
    for _ in range(2):
        total = correct = count = 0.0
        for a in range(0, 50, 16):
            xb, tb = X[a:a + 16], t[a:a + 16]
            opt.zero_grad()
            o = ref(xb)
            v = crit(o, tb)
            ref.backward(crit.backward(), input_grad=False)
            if clip is not None:
                xn.clip_grad_norm(ref.parameters(), clip)
            opt.step()
            total += float(v) * xb.shape[0]
            if kind == "ce":
                correct += float(np.sum(np.argmax(o, axis=1) == tb))
                count += xb.shape[0]
            elif kind == "bce":
                correct += float(np.sum((o > 0) == (tb >= 0.5)))
                count += o.size
        losses.append(total / 50)
        accs.append(correct / count if count else None)
    assert h["loss"] == pytest.approx(losses, rel=1e-6)
    if kind == "mse":
        assert "accuracy" not in h
    else:
        assert h["accuracy"] == accs
    _assert_same(_params(ref), _params(net))  # the same steps, bit for bit


def test_mse_has_no_accuracy(backend):
    X, y = xn.data.moons(30, seed=0)
    xp = backend.xp
    t = xp.astype(xp.stack([y, 1 - y], axis=1), X.dtype)
    net = _mlp()
    h = xn.fit(net, xn.MSELoss(), xn.SGD(net, lr=0.1), (X, t), epochs=2, val=(X, t), progress=False)
    assert set(h) == KEYS - {"accuracy", "val_accuracy"}
    res = xn.evaluate(net, xn.MSELoss(), (X, t))
    assert set(res) == {"loss"}
    want = float(xp.mean((xn.predict(net, X) - t) ** 2))
    assert res["loss"] == pytest.approx(want, rel=1e-5)


def test_bce_accuracy(backend):
    X, y = xn.data.moons(80, seed=3)
    xp = backend.xp
    t = xp.astype(y, X.dtype)[:, None]
    net = _mlp(out=1)
    h = xn.fit(net, xn.BCEWithLogitsLoss(), xn.Adam(net, lr=0.05), (X, t), epochs=10, batch_size=16, val=(X, t),
               progress=False)
    assert "accuracy" in h and "val_accuracy" in h
    logits = host(xn.predict(net, X))
    want = float(np.mean((logits > 0) == (host(t) >= 0.5)))
    assert h["val_accuracy"][-1] == want
    assert want > 0.8


# -- evaluate and predict --------------------------------------------------------------------------------------


def _stochastic_net():
    return xn.Sequential(xn.Linear(2, 16), xn.BatchNorm1d(16), xn.ReLU(), xn.Dropout(0.5), xn.Linear(16, 3))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_evaluate_and_predict_run_in_eval_mode(backend, mode):
    X, _ = xn.data.moons(30, seed=0)
    y = backend.asarray(np.arange(30) % 3, dtype="int64")
    net = _stochastic_net()
    # give BatchNorm running statistics that differ from the batch statistics
    for _ in range(3):
        net(X * 3.0 + 1.0)
    getattr(net, mode)()
    before = _params(net)
    p1, p2 = host(xn.predict(net, X)), host(xn.predict(net, X, batch_size=7))
    r1, r2 = xn.evaluate(net, xn.CrossEntropyLoss(), (X, y)), xn.evaluate(net, xn.CrossEntropyLoss(), (X, y), 8)
    assert net.training is (mode == "train")  # the mode is given back
    assert all(layer.training is (mode == "train") for layer in net)
    _assert_same(before, _params(net))  # running statistics untouched
    net.eval()
    want = host(net(X))
    np.testing.assert_allclose(p1, want, rtol=1e-6, atol=1e-6)  # dropout off, running statistics used
    np.testing.assert_allclose(p2, want, rtol=1e-6, atol=1e-6)
    assert r1["accuracy"] == r2["accuracy"] == float(np.mean(np.argmax(want, axis=1) == host(y)))
    assert r1["loss"] == pytest.approx(r2["loss"], rel=1e-6)


def test_predict_concatenates_batches(backend):
    rng = np.random.default_rng(0)
    X = backend.asarray(rng.standard_normal((30, 2)), dtype="float32")
    net = _mlp(out=3)
    whole = net(X)
    for bs in (1, 7, 30, 100):
        got = xn.predict(net, X, batch_size=bs)
        assert backends.backend_of(got) is backend
        assert tuple(got.shape) == (30, 3)
        np.testing.assert_allclose(host(got), host(whole), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(host(xn.predict(net, X, batch_size=100)), host(whole))
    # host data are moved to the net's backend
    got = xn.predict(net, rng.standard_normal((4, 2)).astype(np.float32))
    assert backends.backend_of(got) is backend


def test_evaluate_and_predict_errors(backend):
    X, y = xn.data.moons(10, seed=0)
    with pytest.raises(TypeError, match=r"^evaluate: loss must be an xpnet Loss, got str$"):
        xn.evaluate(_mlp(), "ce", (X, y))
    with pytest.raises(ValueError, match=r"^predict: the net has no parameters or buffers to say which backend it runs on$"):
        xn.predict(xn.Sequential(xn.ReLU()), X)
    with pytest.raises(ValueError, match=r"^evaluate: the net has no parameters or buffers"):
        xn.evaluate(xn.Sequential(xn.ReLU()), xn.MSELoss(), (X, X))
    with pytest.raises(ValueError, match=r"^fit: the net has no parameters or buffers"):
        xn.fit(xn.Sequential(xn.ReLU()), xn.MSELoss(), xn.SGD(_mlp(), lr=0.1), (X, X), progress=False)


# -- EarlyStopping ---------------------------------------------------------------------------------------------


def _fit_scores(backend, scores, callbacks, epochs=None, name="score"):
    X, y = xn.data.moons(20, seed=0)
    net = _mlp()
    snaps = {}
    snap = Spy(order=100, on_epoch=lambda s, logs: snaps.__setitem__(s.epoch, _params(s.net)))
    h = xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.5), (X, y), epochs=epochs or len(scores),
               callbacks=[Feed(name, scores), *callbacks, snap], progress=False)
    return net, h, snaps


def test_early_stopping_after_patience(backend):
    es = xn.EarlyStopping(monitor="score", patience=3, mode="min")
    _, h, _ = _fit_scores(backend, [5, 4, 4.5, 4.2, 4.1, 3, 2, 1], [es])
    assert h["epoch"] == [1, 2, 3, 4, 5]  # epochs 3, 4 and 5 did not improve on epoch 2
    assert (es.best_epoch, es.stopped_epoch, es.best.value, es.wait) == (2, 5, 4, 3)


def test_early_stopping_min_delta_and_max_mode(backend):
    es = xn.EarlyStopping(monitor="score", patience=2, mode="min", min_delta=0.5)
    _, h, _ = _fit_scores(backend, [5, 4.6, 4.2, 3, 2.9, 2.8, 1], [es])
    assert h["epoch"] == [1, 2, 3, 4, 5, 6] and es.best_epoch == 4  # 4.6 and 2.9 are within min_delta
    es = xn.EarlyStopping(monitor="score", patience=1)  # "auto": a name without "loss" is maximised
    _, h, _ = _fit_scores(backend, [0.5, 0.6, 0.55, 0.9], [es])
    assert h["epoch"] == [1, 2, 3] and es.best_epoch == 2


def test_early_stopping_restores_best_weights(backend):
    es = xn.EarlyStopping(monitor="score", patience=2, mode="min", restore_best_weights=True)
    net, h, snaps = _fit_scores(backend, [3, 1, 2, 2, 0], [es])
    assert h["epoch"] == [1, 2, 3, 4]
    _assert_same(snaps[2], _params(net))
    assert any(not np.array_equal(snaps[4][k], snaps[2][k]) for k in snaps[2])  # training did move them
    # also when training ends without stopping
    es = xn.EarlyStopping(monitor="score", patience=5, mode="min", restore_best_weights=True)
    net, h, snaps = _fit_scores(backend, [3, 1, 2], [es])
    assert len(h["epoch"]) == 3
    _assert_same(snaps[2], _params(net))


def test_early_stopping_on_val_loss(backend):
    X, y = xn.data.moons(40, seed=0)
    net = _mlp()
    es = xn.EarlyStopping(patience=1)
    xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=2, val=(X, y), callbacks=[es],
           progress=False)
    assert es.best.mode == "min" and es.best.value is not None


def test_early_stopping_unit():
    es = xn.EarlyStopping(monitor="val_accuracy", patience=2)
    state = types.SimpleNamespace(epoch=0, stop=False, net=None)
    for v in (0.5, 0.7, 0.7, 0.6):
        state.epoch += 1
        es.on_epoch_end(state, {"val_accuracy": v})
    assert state.stop and es.stopped_epoch == 4 and es.best_epoch == 2
    # a non-finite first value is not a best value
    es = xn.EarlyStopping(monitor="loss", patience=5)
    state = types.SimpleNamespace(epoch=1, stop=False, net=None)
    es.on_epoch_end(state, {"loss": math.nan})
    assert es.best.value is None and es.wait == 1
    sd = es.state_dict()
    es2 = xn.EarlyStopping(monitor="loss", patience=5)
    es2.load_state_dict(json.loads(json.dumps(sd)))
    assert es2.state_dict() == sd


def test_early_stopping_errors(backend):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=rf"^EarlyStopping: patience must be an int >= 1, got {bad!r}$"):
            xn.EarlyStopping(patience=bad)
    with pytest.raises(ValueError, match=r"^EarlyStopping: mode must be 'min', 'max' or 'auto', got 'up'$"):
        xn.EarlyStopping(mode="up")
    X, y = xn.data.moons(20, seed=0)
    net = _mlp()
    with pytest.raises(ValueError, match=r"^EarlyStopping: monitor 'val_loss' is not among this epoch's figures "
                                         r"\['accuracy', 'loss', 'lr', 'samples_per_s', 'time'\]; pass val= to fit$"):
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), callbacks=[xn.EarlyStopping()], progress=False)
    with pytest.raises(ValueError, match=r"^ModelCheckpoint: monitor 'acc' is not among this epoch's figures \[.*\]$"):
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), callbacks=[xn.ModelCheckpoint("x", monitor="acc")],
               progress=False)


# -- ModelCheckpoint -------------------------------------------------------------------------------------------


def test_model_checkpoint_saves_on_improvement(backend, tmp_path):
    path = tmp_path / "best.xpnet"
    mc = xn.ModelCheckpoint(path, monitor="score", mode="min", extra={"run": "a"})
    seen = []
    spy = Spy(order=25, on_epoch=lambda s, logs: seen.append((mc.last_epoch, xn.load(path).epoch if path.exists() else None)))
    _, h, snaps = _fit_scores(backend, [3, 2, 2.5, 1, 1], [mc, spy])
    assert seen == [(1, 1), (2, 2), (2, 2), (4, 4), (4, 4)]
    ck = xn.load(path)
    _assert_same(snaps[4], _params(ck.net))
    assert ck.extra == {"run": "a", "step": 4 * 1}  # 20 samples, batch 32: one step an epoch
    assert ck.history["epoch"] == [1, 2, 3, 4]
    assert ck.callbacks["1:ModelCheckpoint"] == {"best": 1, "last_epoch": 4}
    assert mc.last_path == path


def test_model_checkpoint_every_epoch(backend, tmp_path):
    path = tmp_path / "sub" / "last.xpnet"
    mc = xn.ModelCheckpoint(path)
    seen = []
    spy = Spy(order=25, on_epoch=lambda s, logs: seen.append(xn.load(path).epoch))
    _, h, snaps = _fit_scores(backend, [3, 2, 2.5], [mc, spy])
    assert seen == [1, 2, 3] and mc.last_epoch == 3
    ck = xn.load(path)
    _assert_same(snaps[3], _params(ck.net))
    assert type(ck.optimizer) is xn.SGD and type(ck.loss) is xn.CrossEntropyLoss
    assert ck.history == {k: v for k, v in h.items()}


# -- LRScheduler -----------------------------------------------------------------------------------------------


def _lrs(make_schedule, n):
    """The lr of an independent optimizer and schedule over ``n`` steps: the lr before each step."""
    opt = xn.SGD(xn.Linear(1, 1).parameters(), lr=0.1)
    sched = make_schedule(opt)
    out = []
    for _ in range(n):
        out.append(opt.lr)
        sched.step()
    return out, opt.lr


def test_lr_scheduler_per_epoch(backend):
    X, y = xn.data.moons(40, seed=0)
    net = _mlp()
    opt = xn.SGD(net, lr=0.1)
    used = []
    spy = Spy(order=-1, on_batch=lambda s: used.append(s.optimizer.lr))
    make = lambda o: xn.StepLR(o, step_size=2, gamma=0.5)  # noqa: E731
    h = xn.fit(net, xn.CrossEntropyLoss(), opt, (X, y), epochs=5, batch_size=20,
               callbacks=[xn.LRScheduler(make(opt)), spy], progress=False)
    want, _ = _lrs(make, 5)
    assert want == [0.1, 0.1, 0.05, 0.05, 0.025]
    assert h["lr"] == want
    assert used == [lr for lr in want for _ in range(2)]  # two steps an epoch, each at its epoch's lr


def test_lr_scheduler_per_step(backend):
    X, y = xn.data.moons(40, seed=0)
    net = _mlp()
    opt = xn.SGD(net, lr=0.1)
    used = []
    spy = Spy(order=-1, on_batch=lambda s: used.append(s.optimizer.lr))
    make = lambda o: xn.OneCycleLR(o, max_lr=1.0, total_steps=12)  # noqa: E731
    h = xn.fit(net, xn.CrossEntropyLoss(), opt, (X, y), epochs=3, batch_size=10,
               callbacks=[xn.LRScheduler(make(opt), interval="step"), spy], progress=False)
    want, _ = _lrs(make, 12)
    assert used == pytest.approx(want, rel=1e-12) and len(set(used)) > 6
    # the history holds the lr the optimizer has at the end of each epoch
    assert h["lr"] == pytest.approx([_lrs(make, n)[1] for n in (4, 8, 12)], rel=1e-12)


def test_lr_scheduler_errors():
    with pytest.raises(TypeError, match=r"^LRScheduler expected an xpnet schedule, got float$"):
        xn.LRScheduler(0.1)
    opt = xn.SGD(xn.Linear(1, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"^LRScheduler: interval must be 'epoch' or 'step', got 'batch'$"):
        xn.LRScheduler(xn.StepLR(opt, 1), interval="batch")


# -- EpochLogger and the progress bar ---------------------------------------------------------------------------


def test_epoch_logger(backend, capsys):
    X, y = xn.data.moons(40, seed=0)
    net = _mlp()
    xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=3, val=(X, y), callbacks=[xn.EpochLogger()],
           progress=False)
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 3 and out.err == ""
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {i}/3  loss ")
        for part in ("  accuracy ", "%  val_loss ", "  val_accuracy ", "  lr 0.1  ", " samples/s"):
            assert part in line, (part, line)
    buf = io.StringIO()
    xn.fit(net, xn.MSELoss(), xn.SGD(net, lr=0.1), (X, xn.predict(net, X)), epochs=2, callbacks=[xn.EpochLogger(buf)],
           progress=False)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and all("accuracy" not in line and " loss " in line for line in lines)
    assert capsys.readouterr().out == ""


def test_progress_bar_only_on_a_terminal(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    with backends.use("numpy"):
        X, y = xn.data.moons(40, seed=0)
        net = _mlp()
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=2, batch_size=10)
        assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=2, batch_size=10)
        err = capsys.readouterr().err
        assert "epoch 1/2" in err and "epoch 2/2" in err and "4/4" in err
        assert "loss=" in err and "accuracy=" in err and "samples/s=" in err
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=1, progress=False)
        assert capsys.readouterr().err == ""


# -- the NaN guard ---------------------------------------------------------------------------------------------


def _poisoning_loader(backend, epoch, batch, n=40, bs=10):
    """A DataLoader whose batch ``batch`` (1-based) holds a NaN from epoch ``epoch`` on."""
    X, y = xn.data.moons(n, seed=0)
    loader = DataLoader(X, y, batch_size=bs)
    bad = host(X).copy()
    bad[(batch - 1) * bs + 1, 0] = np.nan

    class Poison(xn.Callback):
        order = 50

        def on_epoch_end(self, state, logs):
            if state.epoch == epoch - 1:
                loader.X = backend.asarray(bad)

    if epoch == 1:
        loader.X = backend.asarray(bad)
    return loader, Poison()


@pytest.mark.parametrize("every", [50, 1])
def test_nan_guard_puts_back_the_last_good_state(backend, tmp_path, every):
    """The guard reads the losses every ``every`` steps and at each epoch's end; on a NaN the
    weights, running statistics and optimizer state come back as they were at its last good
    check: the end of epoch 2 (every=50), or the state step 2 of epoch 3 ran with (every=1)."""
    loader, poison = _poisoning_loader(backend, epoch=3, batch=3)
    net = xn.Sequential(xn.Linear(2, 16), xn.BatchNorm1d(16), xn.Tanh(), xn.Linear(16, 2))
    path = tmp_path / "last.xpnet"
    snaps, moments = [], []
    opt = xn.Adam(net, lr=0.01)

    def note(s):
        snaps.append(_params(s.net))
        moments.append([host(st["exp_avg"]).copy() for st in opt.state])

    spy = Spy(on_batch=note)
    with pytest.raises(xn.TrainingDiverged) as info:
        xn.fit(net, xn.CrossEntropyLoss(), opt, loader, epochs=5, guard_every=every,
               callbacks=[xn.ModelCheckpoint(path), poison, spy, xn.EpochLogger(io.StringIO())], progress=False)
    e = info.value
    assert isinstance(e, FloatingPointError)
    when = "at the end of epoch 2" if every == 50 else "at epoch 3, step 2"
    assert str(e) == (f"fit: the loss became nan at epoch 3, step 3 of 4; training stopped, with the weights, buffers "
                      f"and optimizer state put back as they were {when}; the last good checkpoint is {path} (epoch 2)")
    assert (e.epoch, e.step, e.checkpoint) == (3, 3, path)
    assert e.history["epoch"] == [1, 2]
    good = 7 if every == 50 else 8  # the batch hook of epoch 2's last step, or of epoch 3's first
    params = _params(net)
    for k in params:  # the running statistics of step 2's forward stay when that check kept them
        if every == 50 or "running" not in k and "num_batches" not in k:
            np.testing.assert_array_equal(params[k], snaps[good][k], err_msg=k)
    assert int(net[1].num_batches_tracked) == (8 if every == 50 else 10)
    for m, kept in zip(opt.state, moments[good]):
        np.testing.assert_array_equal(host(m["exp_avg"]), kept)
    assert all(np.all(np.isfinite(v)) for v in params.values())
    ck = xn.load(path)
    assert ck.epoch == 2 and ck.history["epoch"] == [1, 2]
    _assert_same(snaps[7], _params(ck.net))


def test_nan_guard_without_checkpoint_and_off(backend):
    loader, poison = _poisoning_loader(backend, epoch=1, batch=2)
    net = _mlp()
    spy = Spy()
    with pytest.raises(xn.TrainingDiverged, match=r"^fit: the loss became nan at epoch 1, step 2 of 4; training stopped, "
                                                  r"with the weights, buffers and optimizer state put back as they were "
                                                  r"before the first step; no checkpoint had been saved$") as info:
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), loader, epochs=2, callbacks=[spy], progress=False)
    assert info.value.checkpoint is None and info.value.history == {}
    assert spy.calls[-1] == "train_end"  # callbacks are told that training ended
    # without the guard the NaN goes through
    h = xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), loader, epochs=1, guard=False, progress=False)
    assert math.isnan(h["loss"][0])
    assert any(np.isnan(v).any() for v in _params(net).values())


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the NaN reaches the backward
def test_nan_guard_on_overflow(backend):
    X, y = xn.data.moons(40, seed=0)
    xp = backend.xp
    t = xp.astype(xp.stack([y, 1 - y], axis=1), X.dtype)
    net = _mlp()
    with pytest.raises(xn.TrainingDiverged, match=r"^fit: the loss became (inf|nan) at epoch \d+, step \d+ of 4;"):
        xn.fit(net, xn.MSELoss(), xn.SGD(net, lr=1e6), (X * 100.0, t * 1e10), epochs=20, batch_size=10, progress=False)
    assert all(np.all(np.isfinite(v)) for v in _params(net).values())


def test_nan_guard_after_resume_names_the_resumed_checkpoint(tmp_path):
    with backends.use("numpy"):
        be = backends.get("numpy")
        loader, _ = _poisoning_loader(be, epoch=3, batch=1)
        net = _mlp()
        path = tmp_path / "last.xpnet"
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), loader, epochs=2, callbacks=[xn.ModelCheckpoint(path)],
               progress=False)
        ck = xn.load(path)
        loader.X = be.asarray(np.full((40, 2), np.nan, np.float32))
        with pytest.raises(xn.TrainingDiverged, match=r"epoch 3, step 1 of 4; .*the last good checkpoint is .*last\.xpnet \(epoch 2\)$"):
            xn.fit(ck.net, ck.loss, ck.optimizer, loader, epochs=4, callbacks=[xn.ModelCheckpoint(path)], progress=False,
                   resume=ck)
        assert xn.load(path).epoch == 2


# -- resume and argument errors --------------------------------------------------------------------------------


def test_resume(backend, tmp_path):
    X, y = xn.data.moons(20, seed=0)
    net = _mlp()
    path = tmp_path / "r.xpnet"
    xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=2, callbacks=[xn.ModelCheckpoint(path)],
           progress=False)
    ck = xn.load(path)
    with pytest.raises(TypeError, match=r"^fit: resume must be a Checkpoint from xpnet\.load, got str$"):
        xn.fit(ck.net, ck.loss, ck.optimizer, (X, y), epochs=3, resume=str(path), progress=False)
    with pytest.raises(ValueError, match=r"^fit: the checkpoint is at epoch 2, past epochs=1$"):
        xn.fit(ck.net, ck.loss, ck.optimizer, (X, y), epochs=1, resume=ck, progress=False)
    before = _params(ck.net)
    h = xn.fit(ck.net, ck.loss, ck.optimizer, (X, y), epochs=2, resume=ck, progress=False)
    assert h["epoch"] == [1, 2] and h == ck.history
    _assert_same(before, _params(ck.net))  # nothing left to do
    h = xn.fit(ck.net, ck.loss, ck.optimizer, (X, y), epochs=3, resume=ck, progress=False)
    assert h["epoch"] == [1, 2, 3] and h["loss"][:2] == ck.history["loss"]


def test_argument_errors(backend):
    X, y = xn.data.moons(20, seed=0)
    net = _mlp()
    ce, opt = xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1)
    cases = [
        ((["net"], ce, opt), {}, TypeError, r"^fit: net must be an xpnet Layer, got list$"),
        ((net, xn.ReLU(), opt), {}, TypeError, r"^fit: loss must be an xpnet Loss, got ReLU$"),
        ((net, ce, object()), {}, TypeError, r"^fit: optimizer must be an xpnet Optimizer, got object$"),
        ((net, ce, opt), {"callbacks": [xn.EpochLogger(), print]}, TypeError,
         r"^fit: callbacks must be xpnet Callback instances, got builtin_function_or_method at position 1$"),
        ((net, ce, opt), {"epochs": -1}, ValueError, r"^fit: epochs must be an int >= 0, got -1$"),
        ((net, ce, opt), {"epochs": 2.0}, ValueError, r"^fit: epochs must be an int >= 0, got 2\.0$"),
        ((net, ce, opt), {"epochs": True}, ValueError, r"^fit: epochs must be an int >= 0, got True$"),
    ]
    before = _params(net)
    for args, kw, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            xn.fit(*args, (X, y), progress=False, **kw)
    _assert_same(before, _params(net))


def test_empty_data_is_an_error_that_names_the_function():
    import xpnet as xn_

    be = backends.get("numpy")
    net = xn_.Sequential(xn_.Linear(2, 2, backend=be))
    X = be.xp.zeros((0, 2), dtype=be.xp.float32)
    y = be.xp.zeros((0,), dtype=be.xp.int64)
    with pytest.raises(ValueError, match=r"^predict: no batches: the data have 0 samples$"):
        xn_.predict(net, X)
    with pytest.raises(ValueError, match=r"^fit: no batches: the data have 0 samples$"):
        xn_.fit(net, xn_.CrossEntropyLoss(), xn_.SGD(net, lr=0.1), (X, y))
    with pytest.raises(ValueError, match=r"^evaluate: no batches"):
        xn_.evaluate(net, xn_.CrossEntropyLoss(), (X, y))


def test_fit_refuses_a_loss_that_does_not_reduce_and_evaluate_sums_it():
    be = backends.get("numpy")
    X, y = xn.data.load_digits("train", backend=be, flatten=True)
    with backends.use(be):
        net = xn.Sequential(xn.Linear(64, 10))
    with pytest.raises(ValueError, match=r"^fit: the loss must reduce to one number to train on, got "
                                         r"CrossEntropyLoss\(reduction='none'\); use reduction='mean' or 'sum'"):
        xn.fit(net, xn.CrossEntropyLoss(reduction="none"), xn.SGD(net, lr=0.1), (X, y), epochs=1, progress=False)
    per = xn.evaluate(net, xn.CrossEntropyLoss(reduction="none"), (X, y))
    mean = xn.evaluate(net, xn.CrossEntropyLoss(), (X, y))
    assert per["accuracy"] == mean["accuracy"] and abs(per["loss"] - mean["loss"]) < 1e-5


def test_fit_and_evaluate_refuse_a_loss_of_more_than_two_inputs():
    net = _mlp()
    X, y = xn.data.moons(20, seed=0)
    for call in (lambda: xn.fit(net, xn.MarginRankingLoss(), xn.SGD(net, lr=0.1), (X, y), progress=False),
                 lambda: xn.evaluate(net, xn.CTCLoss(), (X, y))):
        with pytest.raises(TypeError, match=r"^(fit|evaluate): (MarginRankingLoss|CTCLoss) takes more inputs than "
                                            r"\(outputs, targets\); train with it in a hand-written loop"):
            call()
