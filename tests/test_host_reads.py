"""A training step never waits for the host: no device-to-host read in the forward, loss,
backward and optimizer step of any layer, loss, optimizer, clip_grad_norm or schedule, inside
``deferred_checks()``; the checks that used to read (Embedding's index range,
CrossEntropyLoss's labels) raise later, after one read, naming the step; and
DivergenceGuard reads once every ``every`` steps, puts the last good state back and raises.

The reads are counted on array-api-strict (tests/host_reads.py patches its Array), on its
simulated ``device1``; the deferred results are compared with the eager ones on every backend.
"""

from __future__ import annotations

import contextlib
import math
import pathlib
import re

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends, data
from xpnet.cli import recipes
from xpnet.layers import deferred
from xpnet.layers.deferred import DeferredChecks, deferred_checks, raise_deferred
from xpnet.nets.evaluate import Tally
from xpnet.nets.fit import TrainingDiverged
from xpnet.nets.guard import DEFAULT_EVERY, DivergenceGuard
from tests.conftest import host
from tests.host_reads import count_host_reads
from tests.layer_cases import CASES, build, inputs_to

STRICT = "array_api_strict:device1"
CASE_PARAMS = [pytest.param(c, id=c.id) for c in CASES]
# the cases whose bad input fails a check of values (not of shapes or dtypes): those are deferred
RANGE_CASES = [pytest.param(c, id=c.id) for c in CASES
               if c.bad is not None and ("expected indices in" in c.error[1] or "expected class labels in" in c.error[1])]


@pytest.fixture
def strict():
    be = backends.get(STRICT)
    be.manual_seed(7)
    with backends.use(be):
        yield be


def _cotangents(be, outs, is_loss):
    if is_loss:
        (y,) = outs
        return [1.0 if y.ndim == 0 else be.xp.ones_like(y)]
    def one(y):
        if isinstance(y, tuple):  # LSTM's (h_n, c_n)
            return tuple(one(e) for e in y)
        return be.xp.ones_like(y) if y is not None and be.is_float(y.dtype) else None
    return [one(y) for y in outs]


# -- every layer and loss -----------------------------------------------------------------------

@pytest.mark.parametrize("case", CASE_PARAMS)
def test_layer_forward_backward_reads_nothing(strict, case):
    layer = build(case, strict, "float32")
    inputs = inputs_to(strict, case.inputs(np.random.default_rng(case.seed())), "float32")
    is_loss = isinstance(layer, xn.Loss)
    with deferred_checks():
        with count_host_reads() as reads:
            out = layer(*inputs)
            outs = out if isinstance(out, tuple) else (out,)
            layer.backward(*_cotangents(strict, outs, is_loss))
    assert reads.count == 0, reads


@pytest.mark.parametrize("case", RANGE_CASES)
def test_deferred_range_check_raises_the_eager_message_later(backend, case):
    layer = build(case, backend, "float64")
    bad = inputs_to(backend, case.bad(np.random.default_rng(case.seed())), "float64")
    kind, pattern = case.error
    with pytest.raises(kind, match=pattern + r".*; first at epoch 3, step 5$"):
        with deferred_checks() as checks:
            checks.epoch, checks.step = 3, 5
            out = layer(*bad)  # no error yet: the output is NaN instead
            assert np.isnan(host(out)).all()
    with pytest.raises(kind, match=pattern):  # and outside the block, at once, as always
        layer(*bad)


# -- whole training steps ----------------------------------------------------------------------

def _optimizers(net):
    return {
        "SGD-momentum": xn.SGD(net, lr=0.01, momentum=0.9, weight_decay=1e-4),
        "SGD-nesterov": xn.SGD(net, lr=0.01, momentum=0.9, nesterov=True),
        "Adam-amsgrad": xn.Adam(net, lr=1e-3, weight_decay=1e-4, amsgrad=True),
        "AdamW": xn.AdamW(net, lr=1e-3),
        "RMSprop-centered": xn.RMSprop(net, lr=1e-3, momentum=0.5, centered=True, weight_decay=1e-4),
    }


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_training_step_reads_nothing(strict, model):
    r = recipes.RECIPES["digits"]
    net = recipes.mlp(r) if model == "mlp" else recipes.cnn(r)
    X, y = data.load_digits("train", flatten=model == "mlp", backend=strict)
    xb, yb = X[:16, ...], y[:16]
    loss = xn.CrossEntropyLoss(label_smoothing=0.1)
    for name, opt in _optimizers(net).items():
        with deferred_checks():
            with count_host_reads() as reads:
                for _ in range(2):  # the first step creates the optimizer's state, the second uses it
                    opt.zero_grad()
                    loss(net(xb), yb)
                    net.backward(loss.backward(), input_grad=False)
                    xn.clip_grad_norm(net, 1.0)
                    opt.step()
        assert reads.count == 0, f"{model}, {name}: {reads}"


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
def test_clip_grad_norm_reads_nothing(strict, norm_type):
    net = xn.Sequential(xn.Linear(3, 4), xn.ReLU(), xn.Linear(4, 2))
    for p in net.parameters():
        p.grad = strict.xp.ones_like(p.data) * 3.0
    with count_host_reads() as reads:
        total = xn.clip_grad_norm(net, 0.5, norm_type)
    assert reads.count == 0, reads
    assert float(total) > 0.5


def test_schedule_steps_read_nothing(strict):
    net = xn.Linear(2, 2)
    schedules = [
        lambda o: xn.StepLR(o, step_size=2), lambda o: xn.CosineAnnealingLR(o, T_max=5),
        lambda o: xn.LinearWarmup(o, warmup_steps=3), lambda o: xn.OneCycleLR(o, max_lr=0.1, total_steps=10),
    ]
    for make in schedules:
        opt = xn.SGD(net, lr=0.1)
        sched = make(opt)
        with count_host_reads() as reads:
            for _ in range(4):
                opt.step()
                sched.step()
        assert reads.count == 0, f"{type(sched).__name__}: {reads}"


def test_the_counter_sees_reads(strict):
    # the counting itself must be able to fail: each kind of read is seen
    x = strict.xp.asarray([1.0, 2.0], device=strict.device)
    with count_host_reads() as reads:
        bool(x[0] > 0)
        float(x[1])
        backends.to_numpy(x)
        x.to_device(backends.get("array_api_strict").device)
    assert [what for what, _ in reads.calls] == [
        "strict __bool__", "strict __float__", "StrictBackend.to_numpy", "strict to_device (another device)"]
    assert reads.calls[0][1].startswith("outside xpnet")


# -- deferred checks, in detail ----------------------------------------------------------------------

def test_deferred_cross_entropy_equals_eager(backend):
    # the deferred common case (no branch on the data) against the eager paths, ignored targets too
    rng = np.random.default_rng(3)
    z = backend.asarray(rng.standard_normal((6, 4)))
    dy = backend.asarray(np.asarray(0.7))
    targets = {"in range": [0, 3, 1, 2, 2, 0], "some ignored": [0, -100, 1, 2, -100, 3],
               "all ignored": [-100] * 6}
    for reduction in ("mean", "sum"):
        for eps in (0.0, 0.2):
            for what, t in targets.items():
                t = backend.asarray(np.asarray(t, dtype=np.int64))
                ce = xn.CrossEntropyLoss(reduction=reduction, label_smoothing=eps)
                with deferred_checks():
                    got = [ce(z, t), ce.backward(), ce(z, t), ce.backward(dy)]
                want = [ce(z, t), ce.backward(), ce(z, t), ce.backward(dy)]
                for g, w in zip(got, want):
                    np.testing.assert_allclose(host(g), host(w), rtol=1e-12, atol=1e-12,
                                               err_msg=f"{reduction}, eps={eps}, {what}")


def test_deferred_cross_entropy_cases_equal_eager(backend):
    # the other paths (weights, k-d targets, "none", unbatched, probabilities) with deferred checks
    for case in [c for c in CASES if c.cls is xn.CrossEntropyLoss]:
        ce = build(case, backend, "float64")
        inputs = inputs_to(backend, case.inputs(np.random.default_rng(case.seed())), "float64")
        results = []
        for ctx in (deferred_checks, contextlib.nullcontext):
            with ctx():
                out = ce(*inputs)
                results.append((out, ce.backward(*_cotangents(backend, (out,), True))))
        for g, w in zip(*results):
            np.testing.assert_allclose(host(g), host(w), rtol=1e-12, atol=1e-12, err_msg=case.id)


def test_deferred_cross_entropy_in_low_precision(backend):
    if "float16" not in backend.low_precision_dtypes():
        pytest.skip(f"{backend.label} has no float16")
    rng = np.random.default_rng(4)
    z = backend.asarray(rng.standard_normal((8, 5)).astype(np.float16))
    t = backend.asarray(np.array([0, 4, -100, 2, 1, 3, 3, 0]))
    ce = xn.CrossEntropyLoss()
    with deferred_checks():
        got = [ce(z, t), ce.backward()]
    want = [ce(z, t), ce.backward()]
    assert got[1].dtype == want[1].dtype == z.dtype
    for g, w in zip(got, want):
        np.testing.assert_allclose(host(g).astype(np.float64), host(w).astype(np.float64), rtol=2e-3, atol=1e-4)


def test_deferred_checks_name_the_first_bad_step():
    be = backends.get("numpy")
    emb = xn.Embedding(4, 2, backend=be)
    good, bad = be.asarray(np.array([0, 3])), be.asarray(np.array([1, 9]))
    with pytest.raises(ValueError, match=r"got 9 \(indices range over \[1, 9\]\); first at step 4$"):
        with deferred_checks() as checks:
            for step, idx in enumerate([good, good, good, bad, good, be.asarray(np.array([-2, 0]))], 1):
                checks.step = step
                emb(idx)
            assert checks.pending == 6


def test_deferred_records_fold_into_few_arrays(monkeypatch):
    monkeypatch.setattr(deferred, "FOLD", 4)
    be = backends.get(STRICT)
    ce = xn.CrossEntropyLoss(backend=be)
    z = be.asarray(np.zeros((2, 3), dtype=np.float32))
    checks = DeferredChecks()
    with deferred_checks(checks):
        for step in range(1, 12):
            checks.step = step
            ce(z, be.asarray(np.array([0, 5 if step == 6 else 2])))
        (log,) = checks._logs.values()
        assert len(log.chunks) == 2 and len(log.tail) == 3  # 8 records stacked in two arrays, 3 left
        with count_host_reads() as reads:
            error = checks.failure()
        assert reads.count == 1 + 3, reads  # the one read for all flags; the error path reads 3 columns
    assert str(error) == "CrossEntropyLoss expected class labels in [0, 3), got labels from 0 to 5; first at step 6"
    assert checks.pending == 0


def test_leaving_the_block_reads_once_and_forgets():
    be = backends.get(STRICT)
    emb = xn.Embedding(4, 2, backend=be)
    idx = be.asarray(np.array([0, 3]))
    with count_host_reads() as reads:
        with deferred_checks() as checks:
            for _ in range(5):
                emb(idx)
    assert reads.count == 1 and checks.pending == 0
    raise_deferred(checks)  # nothing left: no error, no read
    raise_deferred()  # no block active: a no-op


# -- DivergenceGuard ---------------------------------------------------------------------------------

def _setup(be, n=96, batch=16, lr=0.05):
    be.manual_seed(0)
    with backends.use(be):
        net = xn.Sequential(xn.Linear(4, 8), xn.BatchNorm1d(8), xn.ReLU(), xn.Linear(8, 3))
    rng = np.random.default_rng(0)
    X = be.asarray(rng.standard_normal((n, 4)).astype(np.float32))
    y = be.asarray(rng.integers(0, 3, size=n))
    batches = [(X[i:i + batch, ...], y[i:i + batch]) for i in range(0, n, batch)]
    return net, xn.CrossEntropyLoss(), xn.Adam(net, lr=lr), batches


def _epoch(net, loss, opt, batches, guard, epoch, tally=None, poison=None):
    guard.begin_epoch(epoch, len(batches))
    for i, (xb, yb) in enumerate(batches, 1):
        if poison is not None and i == poison:
            xb = xb * math.nan  # NaN, not inf: inf - inf in a matmul makes numpy warn
        opt.zero_grad()
        out = net(xb)
        value = loss(out, yb)
        guard.observe(value)
        net.backward(loss.backward(), input_grad=False)
        opt.step()
        if tally is not None:
            tally.add(value, out, yb)
    guard.end_epoch()


def _state(net, opt):
    return ({k: host(v).copy() for k, v in net.state_dict().items()},
            [{k: host(v).copy() if hasattr(v, "shape") else v for k, v in st.items()} for st in opt.state])


def _assert_same(a, b):
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=k)
    assert len(a[1]) == len(b[1])
    for sa, sb in zip(a[1], b[1]):
        assert sa.keys() == sb.keys()
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


class _Spy(DivergenceGuard):
    """A guard that keeps a host copy of every state it keeps, by (epoch, step)."""

    def __init__(self, net, opt, every):
        self.kept = {(0, 0): _state(net, opt)}
        super().__init__(net, opt, every=every)

    def _kept(self, snapshot=True):
        super()._kept(snapshot)
        if snapshot:
            self.kept[(self.epoch, self.step)] = _state(self.net, self.optimizer)


@pytest.mark.parametrize("every", [1, 2, 4, None])
def test_guard_puts_back_the_last_checked_state(backend, every):
    net, loss, opt, batches = _setup(backend)  # 6 steps an epoch
    guard = _Spy(net, opt, every)
    _epoch(net, loss, opt, batches, guard, 1)
    with pytest.raises(TrainingDiverged) as info:
        _epoch(net, loss, opt, batches, guard, 2, poison=5)
    e = info.value
    assert (e.epoch, e.step) == (2, 5)
    last = max(k for k in guard.kept if k < (2, 5))
    assert last == ((1, 6) if every is None else (2, 4))
    where = "at the end of epoch 1" if every is None else "at epoch 2, step 4"
    assert str(e) == (f"fit: the loss became nan at epoch 2, step 5 of 6; training stopped, with the weights, "
                      f"buffers and optimizer state put back as they were {where}")
    _assert_same(_state(net, opt), guard.kept[last])
    assert all(np.isfinite(v).all() for v in _state(net, opt)[0].values())


def test_guard_reads_once_per_every_steps_and_per_epoch():
    be = backends.get(STRICT)
    net, loss, opt, batches = _setup(be, n=112)  # 7 steps an epoch
    every = 3
    guard = DivergenceGuard(net, opt, every=every)
    for epoch in (1, 2):
        tally = Tally(loss, be.xp)
        with deferred_checks():
            with count_host_reads() as reads:
                _epoch(net, loss, opt, batches, guard, epoch, tally)
                tally.result()
        # a guard read at steps 3 and 6, one at the end of the epoch, and the tally's two
        assert reads.count == len(batches) // every + 1 + 2 <= 3 + math.ceil(len(batches) / every), reads
    assert guard.reads == 2 * 3


def test_guard_names_the_deferred_cause_and_puts_the_state_back(backend):
    net, loss, opt, batches = _setup(backend)
    guard = DivergenceGuard(net, opt, every=4)
    before = _state(net, opt)
    labels = host(batches[1][1]) + 7  # labels from 7 in step 2, for 3 classes
    batches[1] = (batches[1][0], backend.asarray(labels))
    with pytest.raises(ValueError, match=fr"expected class labels in \[0, 3\), got labels from {labels.min()} to "
                                         fr"{labels.max()}; first at epoch 1, step 2$"):
        with deferred_checks():
            _epoch(net, loss, opt, batches, guard, 1)
    _assert_same(_state(net, opt), before)  # the guard's first check came at step 4: back to the start


def test_guard_checks_the_weights_at_the_end_of_an_epoch(backend):
    net, loss, opt, batches = _setup(backend)
    guard = DivergenceGuard(net, opt, every=None)
    _epoch(net, loss, opt, batches[:2], guard, 1)
    kept = _state(net, opt)
    guard.begin_epoch(2)
    w = net.get_parameter("3.bias")
    w.data = w.data * math.inf  # as if the epoch's last update had overflowed
    with pytest.raises(TrainingDiverged, match=r"^fit: a weight became NaN or infinite in epoch 2; .* "
                                               r"as they were at the end of epoch 1$"):
        guard.end_epoch()
    _assert_same(_state(net, opt), kept)


def test_guard_without_restore_keeps_nothing():
    be = backends.get("numpy")
    net, loss, opt, batches = _setup(be)
    guard = DivergenceGuard(net, opt, every=2, restore=False)
    with pytest.raises(TrainingDiverged, match=r"step 3 of 6; training stopped, with the weights as they were then$"):
        _epoch(net, loss, opt, batches, guard, 1, poison=3)
    assert guard._saved is None
    assert any(np.isnan(v).any() for v in _state(net, opt)[0].values())  # BatchNorm's running mean, not put back


def test_guard_hook_and_arguments():
    be = backends.get("numpy")
    net, loss, opt, batches = _setup(be)
    seen = []

    def on_diverged(error):
        seen.append((error.epoch, error.step, error.value, error.restored))
        return RuntimeError("stop")

    guard = DivergenceGuard(net, opt, every=2, on_diverged=on_diverged)
    with pytest.raises(RuntimeError, match="stop"):
        _epoch(net, loss, opt, batches, guard, 1, poison=3)
    ((epoch, step, value, restored),) = seen
    assert (epoch, step, restored) == (1, 3, "at epoch 1, step 2") and math.isnan(value)
    assert DEFAULT_EVERY == 50
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(ValueError, match=r"DivergenceGuard: every must be a positive int or None, got "):
            DivergenceGuard(net, opt, every=bad)


def test_readme_block_runs(capsys):
    """The README's "A training step that never waits" example, as printed."""
    readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme.read_text(), re.S) if "DivergenceGuard(net, opt" in b]
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md (A training step that never waits)", "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "30 host reads in 300 steps",
        "CrossEntropyLoss expected class labels in [0, 2), got labels from 0 to 5; first at step 7"]


@pytest.mark.parametrize("every", [3, None])
def test_fit_reads_a_fixed_few_times_an_epoch(strict, every):
    """fit on a device backend: the guard's reads (every ``every`` steps and one at each epoch's
    end) and the epoch's figures; nothing per step (CrossEntropyLoss's label check deferred)."""
    X, y = data.load_digits("train", flatten=True, backend=strict)
    n = 16 * 7  # 7 steps an epoch
    net = recipes.mlp(recipes.RECIPES["digits"])
    with count_host_reads() as reads:
        xn.fit(net, xn.CrossEntropyLoss(), xn.Adam(net), (X[:n, ...], y[:n]), epochs=2, batch_size=16,
               progress=False, guard_every=every)
    guard = 2 * (1 + (7 // every if every else 0))
    figures = 2 * 2  # an epoch's loss and accuracy
    assert reads.count == guard + figures <= 2 * (3 + math.ceil(7 / (every or 7))), reads


def test_fit_names_a_bad_label_found_on_the_device(strict):
    X, y = data.load_digits("train", flatten=True, backend=strict)
    xp = strict.xp
    y = xp.where(xp.arange(y.shape[0], device=strict.device) == 37, xp.asarray(12, dtype=y.dtype, device=strict.device), y)
    net = recipes.mlp(recipes.RECIPES["digits"])
    with pytest.raises(ValueError, match=r"CrossEntropyLoss.*expected class labels in \[0, 10\).*first at epoch 1, step 3"):
        xn.fit(net, xn.CrossEntropyLoss(), xn.Adam(net), (X[:64, ...], y[:64]), epochs=1, batch_size=16,
               progress=False, shuffle=False)
    assert all(np.all(np.isfinite(host(p.data))) for p in net.parameters())  # the NaN step was not kept
