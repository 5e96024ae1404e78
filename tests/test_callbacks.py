"""fit's batch hooks and gradient accumulation, the LR range test, ReduceLROnPlateau (against
torch), CSVLogger, TensorBoard (its event file read back) and the progress bar's end-of-epoch
figures."""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import pathlib
import re
import struct
import sys
import types

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.data import DataLoader
from xpnet.nets.lr_finder import steepest
from tests.conftest import host
from tests.test_fit import Feed, _params

fit_module = importlib.import_module("xpnet.nets.fit")  # xpnet.nets.fit is also the function


def _mlp(hidden=8, out=2, dtype=None):
    return xn.Sequential(xn.Linear(2, hidden, dtype=dtype), xn.Tanh(), xn.Linear(hidden, out, dtype=dtype))


class Batches(xn.Callback):
    """Records every batch hook call: (hook, epoch, batch, size, loss array or None, state.step, lr)."""

    def __init__(self, halt_at=None):
        self.seen, self.halt_at, self.epoch_ends = [], halt_at, []

    def on_batch_begin(self, state, logs):
        self.seen.append(("begin", state.epoch + 1, logs["batch"], logs["size"], None, state.step, state.optimizer.lr))

    def on_batch_end(self, state, logs):
        self.seen.append(("end", state.epoch + 1, logs["batch"], logs["size"], logs["loss"], state.step,
                          state.optimizer.lr))
        if self.halt_at == (state.epoch + 1, logs["batch"]):
            state.halt = True

    def on_epoch_end(self, state, logs):
        self.epoch_ends.append(state.epoch)

    def ends(self):
        return [s for s in self.seen if s[0] == "end"]


# -- batch hooks -----------------------------------------------------------------------------------------------


def test_batch_hooks_get_the_batch_and_its_loss_on_the_device(backend):
    X, y = xn.data.moons(50, seed=0)
    net = _mlp()
    rec = Batches()
    h = xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=2, batch_size=16, callbacks=[rec],
               progress=False)
    # 50 samples in batches of 16: 16, 16, 16, 2; begin then end for each
    assert [(s[0], s[1], s[2], s[3]) for s in rec.seen] == [
        (hook, e, i, n) for e in (1, 2) for i, n in enumerate((16, 16, 16, 2), 1) for hook in ("begin", "end")]
    ends = rec.ends()
    for _, _, _, _, loss, step, _ in ends:
        assert backends.backend_of(loss) is backend and tuple(loss.shape) == ()
    assert [s[5] for s in ends] == list(range(1, 9))  # one optimizer step per batch
    for e in (1, 2):
        per = [float(host(s[4])) * s[3] for s in ends if s[1] == e]
        assert sum(per) / 50 == pytest.approx(h["loss"][e - 1], rel=1e-5)


def test_halt_ends_training_after_the_batch(backend):
    X, y = xn.data.moons(40, seed=0)
    net = _mlp()
    rec = Batches(halt_at=(2, 2))
    spy = types.SimpleNamespace(ended=False)

    class End(xn.Callback):
        def on_train_end(self, state):
            spy.ended = (state.epoch, state.step, state.halt)

    h = xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=3, batch_size=10, val=(X, y),
               callbacks=[rec, End()], progress=False)
    assert h["epoch"] == [1] and rec.epoch_ends == [1]  # the halted epoch is not recorded
    assert len(rec.ends()) == 4 + 2 and spy.ended == (1, 6, True)


# -- gradient accumulation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,n,clip,shuffle", [("ce", 64, None, False), ("mse", 64, 0.05, True),
                                                 ("ce", 48, None, True), ("mse", 40, None, False)],
                         ids=["ce-64", "mse-64-clip-shuffled", "ce-48-partial-group", "mse-40-partial-group"])
def test_accumulate_4_at_batch_8_equals_batch_32(kind, n, clip, shuffle):
    """Groups of 4 batches of 8 step as batches of 32; the last group (48 and 40 samples: 2
    batches, 1 batch) is scaled by its own size, so it steps as the last batch of 32 does."""
    be = backends.get("numpy")
    X, y = xn.data.moons(n, seed=4, backend="numpy", dtype="float64")
    t = y if kind == "ce" else np.stack([y, 1 - y], axis=1).astype(np.float64)
    crit = xn.CrossEntropyLoss() if kind == "ce" else xn.MSELoss()
    runs = []
    for bs, k in ((32, 1), (8, 4)):
        be.manual_seed(7)
        net = _mlp(16, dtype="float64").to("numpy")
        rec = Batches()
        opt = xn.SGD(net, lr=0.3, momentum=0.9)
        h = xn.fit(net, crit, opt, (X, t), epochs=3, batch_size=bs, accumulate=k, clip_norm=clip, shuffle=shuffle,
                   callbacks=[rec], progress=False)
        runs.append((_params(net), h, rec))
    (p32, h32, r32), (p8, h8, r8) = runs
    for key in p32:
        np.testing.assert_allclose(p8[key], p32[key], rtol=1e-12, atol=1e-14, err_msg=key)
    assert h8["loss"] == pytest.approx(h32["loss"], rel=1e-12)
    batches = -(-n // 8)
    assert len(r8.ends()) == 3 * batches  # the hook fires per batch
    assert r8.ends()[-1][5] == r32.ends()[-1][5] == 3 * -(-n // 32)  # state.step counts optimizer steps


def test_accumulate_steps_the_schedule_once_per_group(backend):
    X, y = xn.data.moons(40, seed=0)
    net = _mlp()
    opt = xn.SGD(net, lr=0.1)
    rec = Batches()
    sched = xn.StepLR(opt, step_size=1, gamma=0.5)
    xn.fit(net, xn.CrossEntropyLoss(), opt, (X, y), epochs=2, batch_size=10, accumulate=3,
           callbacks=[xn.LRScheduler(sched, interval="step"), rec], progress=False)
    # 4 batches an epoch in groups of 3 and 1: two steps an epoch, the lr halving after each
    begins = [s for s in rec.seen if s[0] == "begin"]
    assert [s[5] for s in begins] == [0, 0, 0, 1, 2, 2, 2, 3]
    assert [s[6] for s in begins] == [0.1 * 0.5 ** s[5] for s in begins]
    assert sched.last_epoch == 4


def test_accumulate_errors(backend):
    X, y = xn.data.moons(20, seed=0)
    net = _mlp()
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=rf"^fit: accumulate must be an int >= 1, got {bad!r}$"):
            xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), accumulate=bad, progress=False)


# -- the LR range test -----------------------------------------------------------------------------------------


def test_lr_find_ramps_smooths_and_restores(backend):
    X, y = xn.data.moons(40, seed=1)
    net = xn.Sequential(xn.Linear(2, 8), xn.BatchNorm1d(8), xn.Dropout(0.2), xn.Tanh(), xn.Linear(8, 2))
    opt = xn.Adam([{"params": net[0].parameters(), "lr": 0.01}, {"params": net[4].parameters()}], lr=0.002)
    xn.fit(net, xn.CrossEntropyLoss(), opt, (X, y), epochs=1, batch_size=10, progress=False)  # Adam state, BN statistics
    net[2].eval()  # a layer mode of the user's own, to be given back
    before, groups = _params(net), [dict(g) for g in opt.param_groups]
    adam = {i: {k: host(v) if k != "step" else v for k, v in st.items()} for i, st in opt.state_dict()["state"].items()}
    res = xn.lr_find(net, xn.CrossEntropyLoss(), opt, (X, y), start_lr=1e-5, end_lr=1e-2, num_steps=10, batch_size=8)
    # 5 batches an epoch: two epochs, no divergence at these rates
    assert not res.diverged and len(res.lrs) == len(res.losses) == len(res.raw_losses) == 10
    assert res.lrs == pytest.approx([1e-5 * 1000 ** (i / 9) for i in range(10)], rel=1e-12)
    avg, want = 0.0, []
    for i, v in enumerate(res.raw_losses):
        avg = 0.98 * avg + 0.02 * v
        want.append(avg / (1 - 0.98 ** (i + 1)))
    assert res.losses == pytest.approx(want, rel=1e-12) and res.losses[0] == pytest.approx(res.raw_losses[0])
    assert res.suggestion in res.lrs
    # all put back: weights, running statistics, Adam's moments and steps, each group's lr, layer modes
    after = _params(net)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    assert [dict(g) for g in opt.param_groups] == groups
    now = opt.state_dict()["state"]
    for i, st in adam.items():
        for k, v in st.items():
            np.testing.assert_array_equal(host(now[i][k]) if k != "step" else now[i][k], v)
    assert net.training and [layer.training for layer in net] == [True, True, False, True, True]


def test_lr_find_stops_when_the_loss_diverges(backend):
    X, y = xn.data.moons(64, seed=2)
    xp = backend.xp
    t = xp.astype(xp.stack([y, 1 - y], axis=1), X.dtype) * 10.0
    net = _mlp()
    before = _params(net)
    with np.errstate(all="ignore"):
        res = xn.lr_find(net, xn.MSELoss(), xn.SGD(net, lr=0.1), (X, t), start_lr=1e-4, end_lr=1e3, num_steps=60,
                         batch_size=16)
    assert res.diverged and 3 < len(res.lrs) < 60
    last = res.losses[-1]
    assert not math.isfinite(last) or last > 4.0 * min(v for v in res.losses[:-1])
    assert all(v <= 4.0 * min(res.losses[:i + 1]) for i, v in enumerate(res.losses[:-1]))
    after = _params(net)
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_steepest_is_the_minimum_of_the_gradient_against_log_lr():
    lrs = [1e-6 * 10 ** (i / 10) for i in range(61)]
    x = np.log(lrs)
    losses = list(2.0 - np.tanh(2.0 * (x - np.log(1e-3))))  # falls fastest at lr = 1e-3
    assert steepest(lrs, losses) == pytest.approx(1e-3, rel=1e-9)
    rng = np.random.default_rng(0)
    noisy = list(np.asarray(losses) + rng.normal(0, 0.05, len(losses)))
    assert steepest(lrs, noisy, 0, 0) == lrs[int(np.argmin(np.gradient(noisy, x)))]  # numpy's gradient
    assert steepest(lrs[:1], losses[:1]) is None
    assert steepest(lrs, [math.nan] * 60 + [1.0]) is None


def test_lr_finder_plot(tmp_path):
    pytest.importorskip("matplotlib")
    res = xn.LRFinderResult(lrs=[1e-4, 1e-3, 1e-2, 1e-1], losses=[1.0, 0.9, 0.5, 0.7], raw_losses=[1.0] * 4,
                            diverged=False, suggestion=1e-2)
    path = res.plot(tmp_path / "lr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lr_finder_errors():
    cases = [({"start_lr": 0}, r"start_lr must be"), ({"end_lr": 1e-8}, r"end_lr must be"),
             ({"end_lr": math.inf}, r"^LRFinder: end_lr must be finite, got inf$"),
             ({"num_steps": 1}, r"^LRFinder: num_steps must be an int >= 2, got 1$"),
             ({"smooth": 1.0}, r"smooth must be"), ({"diverge": 1.0}, r"diverge must be")]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            xn.LRFinder(**kw)
    with pytest.raises(ValueError, match=r"^lr_find: the net has no parameters or buffers"):
        xn.lr_find(xn.Sequential(xn.ReLU()), xn.MSELoss(), xn.SGD(_mlp(), lr=0.1), (np.zeros((4, 2)),) * 2)


# -- ReduceLROnPlateau -----------------------------------------------------------------------------------------


PLATEAU_CASES = [
    ({}, [1.0, 0.9, 0.95, 0.9, 0.91, 0.92] * 5),
    ({"patience": 2, "factor": 0.5}, [1.0, 1.0, 1.0, 1.0, 0.99995, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8, 0.4, 0.4, 0.4, 0.4]),
    ({"patience": 1, "cooldown": 2, "threshold_mode": "abs", "threshold": 0.05},
     [1.0, 0.97, 0.96, 0.9, 0.89, 0.88, 0.8, 0.8, 0.8, 0.8, 0.79, 0.7, 0.7, 0.7, 0.7]),
    ({"mode": "max", "patience": 1, "factor": 0.3, "min_lr": [0.004, 0.0]},
     [0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.65, 0.71, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]),
    ({"mode": "max", "patience": 0, "threshold_mode": "abs", "threshold": 0.01, "eps": 1e-3, "min_lr": 0.0005},
     [0.1, 0.105, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
    ({"patience": 0, "factor": 0.5}, [1.0, math.nan, 2.0, 0.5, math.inf, 0.4]),
]


@pytest.mark.parametrize("kw,metrics", PLATEAU_CASES, ids=[f"case{i}" for i in range(len(PLATEAU_CASES))])
def test_reduce_lr_on_plateau_equals_torch(torch, kw, metrics):
    tp = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    t_opt = torch.optim.SGD([{"params": tp[:1], "lr": 0.1}, {"params": tp[1:], "lr": 0.02}], lr=0.1)
    t_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, **kw)
    lin = xn.Linear(1, 2)
    opt = xn.SGD([{"params": [lin.weight], "lr": 0.1}, {"params": [lin.bias], "lr": 0.02}], lr=0.1)
    sched = xn.ReduceLROnPlateau(opt, **kw)
    for m in metrics:
        t_sched.step(m)
        sched.step(m)
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in t_opt.param_groups], m
        assert sched.get_last_lr() == t_sched.get_last_lr()
        assert (sched.num_bad_epochs, sched.cooldown_counter, sched.last_epoch) == (
            t_sched.num_bad_epochs, t_sched.cooldown_counter, t_sched.last_epoch)
    assert opt.param_groups[0]["lr"] < 0.1  # every case reduces at least once


def test_reduce_lr_on_plateau_as_a_callback(backend):
    scores = [1.0, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7]
    X, y = xn.data.moons(20, seed=0)
    net = _mlp()
    opt = xn.SGD(net, lr=0.1)
    plateau = xn.ReduceLROnPlateau(opt, monitor="score", patience=2, factor=0.5)
    h = xn.fit(net, xn.CrossEntropyLoss(), opt, (X, y), epochs=len(scores), callbacks=[Feed("score", scores), plateau],
               progress=False)
    ref = xn.ReduceLROnPlateau(xn.SGD(_mlp(), lr=0.1), patience=2, factor=0.5)
    want = []
    for s in scores:  # the history holds each epoch's lr, before that epoch's step
        want.append(ref.get_last_lr())
        ref.step(s)
    assert h["lr"] == want == [0.1] * 5 + [0.05] * 4
    assert plateau.state_dict() == ref.state_dict() | {"monitor": "score"}


def test_reduce_lr_on_plateau_checkpoint_resume(tmp_path):
    scores = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.85, 0.85]
    with backends.use("numpy"):
        X, y = xn.data.moons(20, seed=0)
        runs = []
        for split in (None, 3):
            backends.get("numpy").manual_seed(3)
            net = _mlp()
            opt = xn.SGD(net, lr=0.1)
            path = tmp_path / f"run{split}.xpnet"

            def cbs(o):
                return [Feed("score", scores), xn.ReduceLROnPlateau(o, monitor="score", patience=1, factor=0.5,
                                                                       cooldown=1), xn.ModelCheckpoint(path)]

            if split is None:
                h = xn.fit(net, xn.CrossEntropyLoss(), opt, (X, y), epochs=8, callbacks=cbs(opt), progress=False)
            else:
                xn.fit(net, xn.CrossEntropyLoss(), opt, (X, y), epochs=split, callbacks=cbs(opt), progress=False)
                ck = xn.load(path)
                assert ck.callbacks["1:ReduceLROnPlateau"]["num_bad_epochs"] == 1
                json.dumps(ck.callbacks)  # plain JSON (no Infinity)
                net, opt = ck.net, ck.optimizer
                h = xn.fit(net, ck.loss, opt, (X, y), epochs=8, callbacks=cbs(opt), progress=False, resume=ck)
            runs.append((h, _params(net), xn.load(path).callbacks))
        (h1, p1, c1), (h2, p2, c2) = runs
        timing = {"time", "samples_per_s"}
        assert {k: v for k, v in h1.items() if k not in timing} == {k: v for k, v in h2.items() if k not in timing}
        assert c1 == c2
        assert h1["lr"] == [0.1] * 4 + [0.05] * 4  # the cut after epoch 4, then a cooldown epoch
        for k in p1:
            np.testing.assert_array_equal(p1[k], p2[k])


def test_reduce_lr_on_plateau_state_and_errors():
    opt = xn.SGD(xn.Linear(1, 1).parameters(), lr=0.1)
    sched = xn.ReduceLROnPlateau(opt, patience=0)
    sd = sched.state_dict()
    assert sd["best"] is None and sd["_last_lr"] == [0.1]  # no best yet: null, not Infinity
    sched.step(1.0)
    sched.step(2.0)
    assert opt.lr == pytest.approx(0.01)
    opt2 = xn.SGD(xn.Linear(1, 1).parameters(), lr=0.1)
    other = xn.ReduceLROnPlateau(opt2, patience=0)
    other.load_state_dict(json.loads(json.dumps(sched.state_dict())))
    assert opt2.lr == opt.lr and other.best == 1.0 and other.last_epoch == 2  # the lr it had set is put back
    mx = xn.ReduceLROnPlateau(opt, monitor="val_accuracy", mode="auto")
    assert mx.mode == "max" and mx.best == -math.inf
    with pytest.raises(ValueError, match=r"^ReduceLROnPlateau: factor must be"):
        xn.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match=r"^ReduceLROnPlateau: min_lr must be one number or a list of one per "
                                         r"parameter group \(1\), got \[0\.0, 0\.0\]$"):
        xn.ReduceLROnPlateau(opt, min_lr=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"^ReduceLROnPlateau: mode must be 'min', 'max' or 'auto', got 'up'$"):
        xn.ReduceLROnPlateau(opt, mode="up")
    with pytest.raises(ValueError, match=r"^ReduceLROnPlateau: threshold_mode must be one of \('rel', 'abs'\)"):
        xn.ReduceLROnPlateau(opt, threshold_mode="relative")
    with pytest.raises(TypeError, match=r"^ReduceLROnPlateau\.step: metric must be a number, got str$"):
        sched.step("0.5")
    with pytest.raises(ValueError, match=r"^ReduceLROnPlateau\.load_state_dict: the state lacks 'best'"):
        other.load_state_dict({"num_bad_epochs": 0})
    with pytest.raises(TypeError, match=r"^LRScheduler: ReduceLROnPlateau is a callback itself"):
        xn.LRScheduler(sched)
    with pytest.raises(ValueError, match=r"^ReduceLROnPlateau: monitor 'val_loss' is not among this epoch's figures "
                                         r"\['loss'\]; pass val= to fit$"):
        sched.on_epoch_end(None, {"loss": 1.0})


# -- CSVLogger -------------------------------------------------------------------------------------------------


def _rows(path, sep=","):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger_rows_equal_the_history(backend, tmp_path):
    X, y = xn.data.moons(30, seed=0)
    net = _mlp()
    path = tmp_path / "logs" / "train.csv"
    h = xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=3, val=(X, y),
               callbacks=[xn.CSVLogger(path, separator=";")], progress=False)
    rows = _rows(path, ";")
    header, body = rows[0], rows[1:]
    assert header[0] == "epoch" and set(header) == set(h) and len(body) == 3
    for r in body:
        i = int(r[0]) - 1
        for k, cell in zip(header[1:], r[1:]):
            assert float(cell) == h[k][i], k  # the exact floats


def test_csv_logger_appends_on_resume(tmp_path):
    with backends.use("numpy"):
        X, y = xn.data.moons(20, seed=0)
        net = _mlp()
        ck_path, path = tmp_path / "ck.xpnet", tmp_path / "log.csv"
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=2,
               callbacks=[xn.ModelCheckpoint(ck_path), xn.CSVLogger(path)], progress=False)
        ck = xn.load(ck_path)
        h = xn.fit(ck.net, ck.loss, ck.optimizer, (X, y), epochs=4, callbacks=[xn.CSVLogger(path, append=True)],
                   progress=False, resume=ck)
        rows = _rows(path)
        assert rows[0] == ["epoch", "loss", "accuracy", "lr", "time", "samples_per_s"]
        assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
        assert [float(r[1]) for r in rows[1:]] == h["loss"]
        # without append the file starts afresh
        xn.fit(ck.net, ck.loss, ck.optimizer, (X, y), epochs=1, callbacks=[xn.CSVLogger(path)], progress=False)
        assert len(_rows(path)) == 2


def test_csv_logger_columns_are_the_first_epochs(tmp_path):
    path = tmp_path / "log.csv"
    log = xn.CSVLogger(path)
    state = types.SimpleNamespace(epoch=0)
    log.on_train_begin(state)
    for logs in ({"loss": 0.5, "lr": 0.1, "confusion": [[1, 0], [0, 1]]}, {"lr": 0.1}, {"loss": 0.25, "lr": 0.1, "f1": 0.9}):
        state.epoch += 1
        if "f1" in logs:
            with pytest.warns(UserWarning, match=r"^CSVLogger: f1 first appeared at epoch 3, after .*log\.csv's header "
                                                 r"was written; left out$"):
                log.on_epoch_end(state, logs)
        else:
            log.on_epoch_end(state, logs)
        assert len(_rows(path)) == state.epoch + 1  # flushed row by row
    log.on_train_end(state)
    assert _rows(path) == [["epoch", "loss", "lr"], ["1", "0.5", "0.1"], ["2", "", "0.1"], ["3", "0.25", "0.1"]]
    with pytest.raises(ValueError, match=r"^CSVLogger: separator must be one character, got ', '$"):
        xn.CSVLogger(path, separator=", ")


# -- TensorBoard -----------------------------------------------------------------------------------------------


def _scalars(log_dir):
    """Every scalar in the event files under ``log_dir``: [(tag, step, value)], read as TFRecords
    (u64 length, masked crc32c, data, masked crc32c) of tensorboardX's Event protos."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    out = []
    files = sorted(log_dir.glob("events.out.tfevents.*"))
    assert files
    for f in files:
        data, pos = f.read_bytes(), 0
        while pos < len(data):
            header = data[pos:pos + 8]
            (n,) = struct.unpack("Q", header)
            assert struct.unpack("I", data[pos + 8:pos + 12])[0] == masked_crc32c(header)
            body = data[pos + 12:pos + 12 + n]
            assert struct.unpack("I", data[pos + 12 + n:pos + 16 + n])[0] == masked_crc32c(body)
            pos += 16 + n
            ev = Event.FromString(body)
            out += [(v.tag, ev.step, v.simple_value) for v in ev.summary.value]
    return out


def test_tensorboard_writes_the_epoch_and_batch_scalars(backend, tmp_path):
    pytest.importorskip("tensorboardX")
    X, y = xn.data.moons(30, seed=0)
    net = _mlp()
    rec = Batches()
    tb = xn.TensorBoard(tmp_path / "tb", update_freq=2)
    h = xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=2, batch_size=10, val=(X, y),
               callbacks=[rec, tb], progress=False)
    got = _scalars(tmp_path / "tb")
    epoch = {(tag, step): v for tag, step, v in got if tag != "batch_loss"}
    assert set(epoch) == {(k, e) for k in h if k != "epoch" for e in (1, 2)}
    for (tag, step), v in epoch.items():
        assert v == np.float32(h[tag][step - 1]), tag  # simple_value is a float32
    batch = [(step, v) for tag, step, v in got if tag == "batch_loss"]
    losses = [float(host(s[4])) for s in rec.ends()]  # 3 batches an epoch, every second one written
    assert batch == [(i, np.float32(losses[i - 1])) for i in (2, 4, 6)]
    assert tb.state_dict() == {"batches": 6}


def test_tensorboard_needs_tensorboardx(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"^TensorBoard needs tensorboardX: pip install 'xpnet\[tensorboard\]'$"):
        xn.TensorBoard(tmp_path)
    with pytest.raises(ValueError, match=r"^TensorBoard: update_freq must be 'epoch', 'batch' or an int >= 1, got 0$"):
        xn.TensorBoard(tmp_path, update_freq=0)


# -- the progress bar ------------------------------------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def _last_bar_text(text, desc):
    """The bar's last rendering for the epoch ``desc`` (tqdm redraws with carriage returns)."""
    parts = [p for line in text.split("\n") for p in line.split("\r") if p.startswith(desc)]
    assert parts, text
    return parts[-1]


def test_progress_bar_ends_with_the_validation_figures_and_lr(monkeypatch):
    pytest.importorskip("tqdm")
    with backends.use("numpy"):
        X, y = xn.data.moons(40, seed=0)
        net = _mlp()
        err = FakeTTY()
        monkeypatch.setattr(sys, "stderr", err)
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), epochs=2, batch_size=10, val=(X, y))
        for e in (1, 2):
            last = _last_bar_text(err.getvalue(), f"epoch {e}/2")
            assert "4/4" in last
            for part in ("loss=", "accuracy=", "val_loss=", "val_accuracy=", "lr=0.1", "samples/s="):
                assert part in last, (part, last)
            assert last.index("val_loss=") < last.index("lr=")


def test_progress_bar_in_a_jupyter_kernel(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not fit_module._in_kernel()
    terminal = types.SimpleNamespace()  # IPython in a terminal: a shell without a kernel
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: terminal))
    assert not fit_module._in_kernel()
    kernel = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: kernel))
    assert fit_module._in_kernel()
    with backends.use("numpy"):
        X, y = xn.data.moons(20, seed=0)
        net = _mlp()
        err = io.StringIO()  # not a terminal: the bar shows because of the kernel
        monkeypatch.setattr(sys, "stderr", err)
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), DataLoader(X, y, batch_size=10), epochs=1)
        assert "lr=0.1" in _last_bar_text(err.getvalue(), "epoch 1/1")


# -- the README's section ----------------------------------------------------------------------------------------


def test_readme_callbacks_block_runs(tmp_path, monkeypatch, capsys):
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Callbacks: batch hooks, LR finder, accumulation, plateau, CSV and TensorBoard\n", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "README.md (callbacks)", "exec"), scope)
    h, found = scope["history"], scope["found"]
    assert found.suggestion in found.lrs and h["lr"][0] == found.suggestion
    assert h["lr"][-1] < h["lr"][0]  # the plateau cut it
    assert h["val_accuracy"][-1] > 0.9
    assert len(scope["seen"].losses) == 8 * 90  # 1438 samples in batches of 16, every batch
    assert len(_rows(tmp_path / "runs" / "log.csv")) == 9
    assert "val accuracy" in capsys.readouterr().out


def test_a_batch_hook_without_logs_is_refused(backend):
    class Old(xn.Callback):
        def on_batch_end(self, state):
            pass

    X, y = xn.data.moons(20, seed=0)
    net = _mlp()
    with pytest.raises(TypeError, match=r"^fit: Old\.on_batch_end must take \(state, logs\): the batch hooks are "
                                        r"given the batch's logs \(batch, size, loss\)$"):
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), (X, y), callbacks=[Old()], progress=False)


def test_fit_reads_no_batch_loss():
    """Without the guard, an epoch's host reads do not grow with its batches: the batch hooks'
    loss stays on the device (array-api-strict counts every read)."""
    from tests.host_reads import count_host_reads

    with backends.use("array_api_strict"):
        X, y = xn.data.moons(64, seed=0)
        t = X * 0.5  # MSE: a loss that reads nothing itself
        counts = []
        for bs in (32, 8):
            net = _mlp()
            rec = Batches()
            with count_host_reads() as reads:
                xn.fit(net, xn.MSELoss(), xn.SGD(net, lr=0.1), (X, t), epochs=1, batch_size=bs,
                       accumulate=2, guard=False, callbacks=[rec], progress=False)
            counts.append(reads.count)
            assert len(rec.ends()) == 64 // bs
    assert counts[0] == counts[1], counts
