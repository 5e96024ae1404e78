"""Mixed precision: GradScaler (torch's rules, state dict and scale sequence), the layers' float32
reductions under float16/bfloat16 inputs, MixedPrecision's master weights, parity of a step with
torch.autocast + torch.amp.GradScaler, trainings that match float32 accuracy, the capability
errors, and an exact checkpoint resume with a scaler.

Where float16 or bfloat16 exists: numpy has float16, torch both, array-api-strict neither.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.data import load_digits
from tests.conftest import host
from tests.test_checkpoint import _rewrite

# (backend, low-precision dtype) pairs that exist here
LOW = [pytest.param("numpy", "float16", id="numpy-float16"),
       pytest.param("torch", "float16", id="torch-float16"),
       pytest.param("torch", "bfloat16", id="torch-bfloat16")]
# the gap between 1 and the next number: float16 has 10 fraction bits, bfloat16 7
EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


def _get(spec):
    try:
        return backends.get(spec)
    except backends.BackendUnavailable as e:
        pytest.skip(str(e))


def _low_input(be, dtype, shape, seed=0, scale=1.0):
    """A random low-precision array and the same values widened to float32."""
    rng = np.random.default_rng(seed)
    x = be.asarray(rng.standard_normal(shape) * scale, dtype=dtype)
    return x, be.asarray(x, dtype="float32")


def _same(a, b):
    """Equal in dtype and in every bit of value (compared as float32 on the host)."""
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(host(a), host(b))


# -- capability ---------------------------------------------------------------------------------------

def test_low_precision_dtypes_per_backend():
    assert backends.get("numpy").low_precision_dtypes() == ("float16",)
    assert backends.get("array_api_strict").low_precision_dtypes() == ()
    t = _get("torch")
    assert t.low_precision_dtypes() == ("float16", "bfloat16")
    assert t.low_precision_dtype("bfloat16") is t.xp.bfloat16


def _mlp(be, d_in=8, hidden=16, d_out=4):
    with backends.use(be):
        return xn.Sequential(xn.Linear(d_in, hidden), xn.ReLU(), xn.Linear(hidden, d_out))


def test_clear_errors_where_the_dtype_is_missing():
    strict = backends.get("array_api_strict:device1")
    net = _mlp(strict)
    with pytest.raises(ValueError, match=r"^MixedPrecision: backend array_api_strict:device1 has no float16 \(the array "
                                         r"API standard defines no dtype narrower than float32\); its dtypes narrower "
                                         r"than float32: none; use the torch backend, which has float16 and bfloat16$"):
        xn.MixedPrecision(net, xn.SGD(net, lr=0.1), "fp16")
    net = _mlp(backends.get("numpy"))
    with pytest.raises(ValueError, match=r"^MixedPrecision: backend numpy has no bfloat16 \(the ml_dtypes package adds "
                                         r"one to numpy, which xpnet does not use\); its dtypes narrower than float32: "
                                         r"float16; use precision 'fp16' here, or the torch backend"):
        xn.MixedPrecision(net, xn.SGD(net, lr=0.1), "bf16")
    with pytest.raises(ValueError, match=r"^MixedPrecision: precision must be 'bf16', 'fp16' or None, got 'fp8'$"):
        xn.MixedPrecision(net, xn.SGD(net, lr=0.1), "fp8")
    with pytest.raises(TypeError, match=r"^MixedPrecision: scaler must be a GradScaler or None, got dict$"):
        xn.MixedPrecision(net, xn.SGD(net, lr=0.1), "fp16", scaler={})
    other = _mlp(backends.get("numpy"))
    with pytest.raises(ValueError, match=r"^MixedPrecision: the optimizer holds parameters that are not the net's$"):
        xn.MixedPrecision(net, xn.SGD(other, lr=0.1), "fp16")
    net.to(dtype="float16")
    with pytest.raises(ValueError, match=r"^MixedPrecision: the net's parameters are the float32 master weights, but "
                                         r"'0.weight' is float16; build the net in float32"):
        xn.MixedPrecision(net, xn.SGD(net, lr=0.1), "fp16")


# -- GradScaler ---------------------------------------------------------------------------------------

def _one_param(values):
    be = backends.get("numpy")
    p = xn.Parameter(be.asarray(np.zeros(len(values)), dtype="float32"))
    return be, p, xn.SGD([p], lr=1.0)


def test_overflow_skips_the_step_and_backs_off():
    be, p, opt = _one_param([0, 0, 0])
    s = xn.GradScaler(init_scale=1024.0)
    p.grad = be.asarray([1.0, math.inf, 2.0], dtype="float32")
    assert s.step(opt) is None
    s.update()
    np.testing.assert_array_equal(host(p.data), [0, 0, 0])  # not stepped
    assert s.get_scale() == 512.0 and s.state_dict()["_growth_tracker"] == 0 and s.skipped == 1
    p.grad = be.asarray([math.nan, 0.0, 0.0], dtype="float32")
    s.step(opt)
    s.update()
    assert s.get_scale() == 256.0 and s.skipped == 2


def test_a_clean_step_unscales_then_steps():
    be, p, opt = _one_param([0, 0])
    s = xn.GradScaler(init_scale=8.0)
    p.grad = be.asarray([8.0, -16.0], dtype="float32")  # the scaled gradients
    s.unscale_(opt)
    np.testing.assert_array_equal(host(p.grad), [1.0, -2.0])
    s.step(opt)  # already unscaled: not again
    s.update()
    np.testing.assert_array_equal(host(p.data), [-1.0, 2.0])
    assert s.get_scale() == 8.0 and s.state_dict()["_growth_tracker"] == 1 and s.skipped == 0


def test_growth_after_the_interval():
    be, p, opt = _one_param([0])
    s = xn.GradScaler(init_scale=4.0, growth_factor=2.0, growth_interval=3)
    scales = []
    for _ in range(7):
        p.grad = be.asarray([1.0], dtype="float32")
        s.step(opt)
        s.update()
        scales.append(s.get_scale())
    assert scales == [4.0, 4.0, 8.0, 8.0, 8.0, 16.0, 16.0]
    assert s.state_dict()["_growth_tracker"] == 1


def test_scale_sequence_matches_torch(torch):
    """The same overflow pattern through torch.amp.GradScaler("cpu") and xpnet's: the same scales
    (float32-rounded: growth 1.5 and backoff 0.3 are not powers of two), trackers and steps; and a
    scale whose growth would overflow float32 stays, as in torch."""
    for kw, pattern in [
        (dict(init_scale=1000.0, growth_factor=1.5, backoff_factor=0.3, growth_interval=3),
         [0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]),
        (dict(init_scale=2.0**126, growth_factor=2.0, backoff_factor=0.5, growth_interval=1), [0, 0, 0, 1, 0, 0]),
    ]:
        ts = torch.amp.GradScaler("cpu", **kw)
        tp = torch.nn.Parameter(torch.zeros(3))
        topt = torch.optim.SGD([tp], lr=1.0)
        s = xn.GradScaler(**kw)
        be, p, opt = _one_param([0, 0, 0])
        for bad in pattern:
            assert ts.scale(torch.ones(())).item() == s.scale()  # torch's scale() also starts its state
            g = np.array([0.5, math.inf if bad else -0.25, 1.0], dtype=np.float32) * np.float32(s.get_scale())
            tp.grad = torch.tensor(g)
            ts.step(topt)
            ts.update()
            p.grad = be.asarray(g)
            s.step(opt)
            s.update()
            assert s.state_dict() == ts.state_dict()
            np.testing.assert_array_equal(host(p.data), tp.detach().numpy())
    assert s.get_scale() == 2.0**127  # not grown to inf


def test_state_dict_round_trip_and_refusals():
    s = xn.GradScaler(init_scale=256.0, growth_factor=3.0, backoff_factor=0.25, growth_interval=5)
    be, p, opt = _one_param([0])
    for _ in range(2):
        p.grad = be.asarray([1.0], dtype="float32")
        s.step(opt)
        s.update()
    sd = s.state_dict()
    assert sd == {"scale": 256.0, "growth_factor": 3.0, "backoff_factor": 0.25, "growth_interval": 5,
                  "_growth_tracker": 2}
    t = xn.GradScaler()
    t.load_state_dict(sd)
    assert t.state_dict() == sd
    with pytest.raises(ValueError, match=r"^GradScaler.load_state_dict: 'scale' must be a finite number > 0, got -1.0$"):
        t.load_state_dict({**sd, "scale": -1.0})
    with pytest.raises(ValueError, match=r"_growth_tracker' must be an int in \[0, growth_interval=5\), got 5$"):
        t.load_state_dict({**sd, "_growth_tracker": 5})
    with pytest.raises(ValueError, match=r"the state dict must be a state saved from an enabled GradScaler"):
        t.load_state_dict({})
    assert t.state_dict() == sd  # unchanged by the refusals
    off = xn.GradScaler(enabled=False)
    assert off.state_dict() == {} and off.scale(3.0) == 3.0 and off.get_scale() == 1.0
    off.load_state_dict(sd)  # ignored, as in torch
    assert off.state_dict() == {}
    with pytest.raises(ValueError, match=r"^GradScaler: growth_factor must be a finite number > 1, got 1.0$"):
        xn.GradScaler(growth_factor=1.0)
    with pytest.raises(ValueError, match=r"^GradScaler: init_scale must be a finite number > 0, got 0$"):
        xn.GradScaler(init_scale=0)
    t.set_growth_interval(7)
    t.set_backoff_factor(0.125)
    assert t.get_growth_interval() == 7 and t.get_backoff_factor() == 0.125
    with pytest.raises(ValueError, match=r"^GradScaler.set_backoff_factor: backoff_factor must be a number in \(0, 1\), got 1$"):
        t.set_backoff_factor(1)


def test_scaler_misuse():
    be, p, opt = _one_param([0])
    s = xn.GradScaler()
    assert s.scale() == 65536.0 and s.scale(0.5) == 32768.0
    x = be.asarray([1.0, 2.0], dtype="float32")
    np.testing.assert_array_equal(host(s.scale(x)), [65536.0, 131072.0])
    p.grad = be.asarray([1.0], dtype="float32")
    s.unscale_(opt)
    with pytest.raises(RuntimeError, match=r"unscale_ has already been called on this optimizer since the last update"):
        s.unscale_(opt)
    s.step(opt)
    with pytest.raises(RuntimeError, match=r"GradScaler.step has already been called since the last update"):
        s.step(opt)
    s.update()
    with pytest.raises(RuntimeError, match=r"no inf checks were recorded before update"):
        s.update()
    p.grad = be.asarray([1.0], dtype="float16")
    with pytest.raises(ValueError, match=r"parameter 0 of the optimizer has a float16 gradient; keep float32 master "
                                         r"weights \(xpnet.MixedPrecision does\)"):
        s.unscale_(opt)


# -- the layers in low precision: float32 inside, the input's dtype outside ----------------------------------

@pytest.mark.parametrize("spec,dtype", LOW)
def test_losses_compute_in_float32(spec, dtype):
    """A loss of low-precision predictions equals, bit for bit, the float32 loss of the same values;
    its value is float32, and the gradient is the float32 gradient rounded once to the input's dtype."""
    be = _get(spec)
    xp = be.xp
    z, z32 = _low_input(be, dtype, (6, 5), scale=3.0)
    y = be.asarray([0, 1, 4, 2, 3, 1], dtype="int64")
    t, t32 = _low_input(be, dtype, (6, 5), seed=1)
    cases = [(xn.CrossEntropyLoss(), y, y), (xn.CrossEntropyLoss(label_smoothing=0.1, reduction="sum"), y, y),
             (xn.CrossEntropyLoss(weight=[1, 2, 1, 1, 3]), y, y), (xn.MSELoss(), t32, t32), (xn.MSELoss(), t, t32),
             (xn.BCEWithLogitsLoss(pos_weight=[1, 2, 3, 1, 1]), t, t32)]
    for loss, target, target32 in cases:
        loss.to(be)
        low = loss(z, target)
        dz = loss.backward()
        ref = loss(z32, target32)
        _same(low, ref)  # float32
        _same(dz, xp.astype(loss.backward(), z.dtype))
    # a target gradient comes back in the target's dtype
    mse = xn.MSELoss()
    mse(z, t)
    dz, dt = mse.backward(target_grad=True)
    assert dz.dtype == z.dtype and dt.dtype == t.dtype
    # dy is in the output's dtype (float32)
    ce = xn.CrossEntropyLoss(reduction="none")
    ce(z, y)
    with pytest.raises(TypeError, match=r"expected dy of dtype float32 \(its output's\), got " + dtype):
        ce.backward(xp.astype(xp.ones((6,), dtype=xp.float32), z.dtype))


@pytest.mark.parametrize("spec,dtype", LOW)
def test_cross_entropy_of_huge_low_precision_logits_is_finite(spec, dtype):
    be = _get(spec)
    z = be.asarray([[60000.0, -60000.0, 0.0], [1.0, 2.0, 60000.0]], dtype=dtype)
    loss = xn.CrossEntropyLoss()
    value = float(loss(z, be.asarray([0, 1], dtype="int64")))
    assert math.isfinite(value) and value > 1000.0
    assert np.all(np.isfinite(host(loss.backward())))


@pytest.mark.parametrize("spec,dtype", LOW)
def test_softmax_computes_in_float32(spec, dtype):
    be = _get(spec)
    xp = be.xp
    x, x32 = _low_input(be, dtype, (4, 7), scale=4.0)
    dy, dy32 = _low_input(be, dtype, (4, 7), seed=2)
    sm = xn.Softmax(dim=1)
    y, y32 = sm(x), sm(x32)
    _same(y, xp.astype(y32, x.dtype))
    sm.backward(dy32)
    dx = sm.backward(dy)
    yw = be.asarray(y, dtype="float32")  # backward keeps the low-precision y and widens it
    _same(dx, xp.astype(yw * (dy32 - xp.sum(dy32 * yw, axis=1, keepdims=True)), x.dtype))


def _low_copy(layer, be, dtype):
    """The layer's parameters as low-precision copies (what MixedPrecision.autocast does); buffers kept."""
    for p in layer.parameters():
        p.data = be.asarray(p.data, dtype=dtype)
    return layer


@pytest.mark.parametrize("spec,dtype", LOW)
@pytest.mark.parametrize("kind", ["bn", "bn-no-affine", "ln"])
def test_normalization_computes_in_float32(spec, dtype, kind):
    """Statistics, y, dx and the parameter gradients as float32 computes them on the same values,
    each rounded once to its own dtype; BatchNorm's float32 running statistics stay float32 and equal."""
    be = _get(spec)
    xp = be.xp
    make = {"bn": lambda: xn.BatchNorm2d(3), "bn-no-affine": lambda: xn.BatchNorm2d(3, affine=False),
            "ln": lambda: xn.LayerNorm((3, 4, 4))}[kind]
    with backends.use(be):
        ref, low = make(), make()
    rng = np.random.default_rng(5)
    for a, b in zip(ref.parameters(), low.parameters()):  # the same (low-precision) values in both
        a.data = b.data = be.asarray(rng.standard_normal(a.shape) * 0.5 + 1.0, dtype=dtype)
        a.data = be.asarray(a.data, dtype="float32")
    x, x32 = _low_input(be, dtype, (5, 3, 4, 4), scale=2.0)
    dy, dy32 = _low_input(be, dtype, (5, 3, 4, 4), seed=3)
    for mode in ("train", "eval"):
        getattr(ref, mode)()
        getattr(low, mode)()
        y, y32 = low(x), ref(x32)
        _same(y, xp.astype(y32, x.dtype))
        _same(low.backward(dy), xp.astype(ref.backward(dy32), x.dtype))
        for a, b in zip(ref.parameters(), low.parameters()):
            _same(b.grad, xp.astype(a.grad, b.dtype))
            a.grad = b.grad = None
        for (name, a), (_, b) in zip(ref.named_buffers(), low.named_buffers()):
            _same(b, a)  # float32 (num_batches_tracked: int64)
    with pytest.raises(TypeError, match=r"expected dy of dtype " + dtype):
        low(x)
        low.backward(dy32)


@pytest.mark.parametrize("spec,dtype", LOW[:1])
def test_a_whole_net_in_float16_keeps_its_buffers_dtype(spec, dtype):
    be = _get(spec)
    with backends.use(be):
        net = xn.Sequential(xn.Conv2d(1, 4, 3, padding=1), xn.BatchNorm2d(4), xn.ReLU(), xn.Flatten(), xn.Linear(64, 3))
    net.to(dtype=dtype)
    x, _ = _low_input(be, dtype, (6, 1, 4, 4))
    loss = xn.CrossEntropyLoss()
    loss(net(x), be.asarray([0, 1, 2, 0, 1, 2], dtype="int64"))
    net.backward(loss.backward(), input_grad=False)
    assert all(p.grad.dtype == p.data.dtype == x.dtype for p in net.parameters())
    assert net[1].running_mean.dtype == x.dtype and net[1].running_var.dtype == x.dtype


# -- MixedPrecision --------------------------------------------------------------------------------------

def _batch(be, n=16, d=8, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return (be.asarray(rng.standard_normal((n, d)), dtype="float32"),
            be.asarray(rng.integers(0, classes, n), dtype="int64"))


def test_master_weights_and_buffers_stay_float32():
    be = backends.get("numpy")
    with backends.use(be):
        net = xn.Sequential(xn.Linear(8, 6), xn.BatchNorm1d(6), xn.ReLU(), xn.Linear(6, 4))
    opt = xn.SGD(net, lr=0.1)
    amp = xn.MixedPrecision(net, opt, "fp16")
    assert amp.scaler.is_enabled() and amp.precision == "fp16"
    masters = [p.data for p in net.parameters()]
    x, y = _batch(be)
    loss = xn.CrossEntropyLoss()
    with amp.autocast():
        assert all(p.data.dtype == be.xp.float16 and p.grad is None for p in net.parameters())
        out = net(amp.cast(x))
        assert out.dtype == be.xp.float16 and amp.cast(y) is y
        value = loss(out, y)
        assert value.dtype == be.xp.float32
        amp.backward(loss)
        with pytest.raises(RuntimeError, match=r"MixedPrecision.step must run after the autocast\(\) block"):
            amp.step()
        with pytest.raises(RuntimeError, match=r"autocast\(\) is already active; it does not nest"):
            with amp.autocast():
                pass
    assert all(p.data is m for p, m in zip(net.parameters(), masters))  # the very master arrays
    assert all(p.grad.dtype == be.xp.float32 for p in net.parameters())
    assert net[1].running_mean.dtype == be.xp.float32
    # scaled: a master gradient is S times the unscaled one until step() unscales it
    g_scaled = host(net[0].weight.grad)
    assert amp.step()
    assert all(p.data.dtype == be.xp.float32 for p in net.parameters())
    with pytest.raises(RuntimeError, match=r"MixedPrecision.backward must run inside the autocast\(\) block"):
        loss(net(x), y)
        amp.backward(loss)
    assert np.abs(g_scaled).max() > 100  # S = 65536 times gradients of order 1e-2


def test_gradients_accumulate_across_blocks():
    be = backends.get("numpy")
    net = _mlp(be)
    opt = xn.SGD(net, lr=0.1)
    amp = xn.MixedPrecision(net, opt, "fp16", scaler=xn.GradScaler(enabled=False))
    loss = xn.CrossEntropyLoss()
    grads = []
    for seed in (0, 1):
        net.zero_grad()
        x, y = _batch(be, seed=seed)
        with amp.autocast():
            loss(net(amp.cast(x)), y)
            amp.backward(loss)
        grads.append([host(p.grad) for p in net.parameters()])
    net.zero_grad()
    for seed in (0, 1):
        x, y = _batch(be, seed=seed)
        with amp.autocast():
            loss(net(amp.cast(x)), y)
            amp.backward(loss)
    for p, a, b in zip(net.parameters(), *grads):
        np.testing.assert_array_equal(host(p.grad), a + b)


def test_precision_none_is_the_plain_loop():
    be = backends.get("numpy")
    nets = []
    for use_policy in (False, True):
        backends.get("numpy").manual_seed(0)
        net = _mlp(be)
        opt = xn.SGD(net, lr=0.1, momentum=0.9)
        amp = xn.MixedPrecision(net, opt, None)
        loss = xn.CrossEntropyLoss()
        for seed in range(3):
            x, y = _batch(be, seed=seed)
            opt.zero_grad()
            if use_policy:
                with amp.autocast():
                    loss(net(amp.cast(x)), y)
                    amp.backward(loss)
                amp.step()
            else:
                loss(net(x), y)
                net.backward(loss.backward(), input_grad=False)
                opt.step()
        nets.append(net)
    for a, b in zip(*[n.parameters() for n in nets]):
        np.testing.assert_array_equal(host(a.data), host(b.data))


def test_an_overflowing_scale_backs_off_and_leaves_the_weights():
    be = backends.get("numpy")
    net = _mlp(be)
    opt = xn.SGD(net, lr=0.1)
    amp = xn.MixedPrecision(net, opt, "fp16", scaler=xn.GradScaler(init_scale=2.0**40))
    loss = xn.CrossEntropyLoss()
    x, y = _batch(be)
    taken = []
    for _ in range(30):
        before = [host(p.data) for p in net.parameters()]
        opt.zero_grad()
        with amp.autocast():
            loss(net(amp.cast(x)), y)
            amp.backward(loss)
        stepped = amp.step()
        if not stepped:
            assert all(np.array_equal(host(p.data), b) for p, b in zip(net.parameters(), before))
        taken.append(stepped)
    assert not taken[0] and taken[-1]  # 2^40 overflows float16 at once; halving finds a scale that fits
    assert amp.scaler.get_scale() == 2.0**40 * 0.5**amp.scaler.skipped
    assert all(np.isfinite(host(p.data)).all() for p in net.parameters())


# -- parity with torch.autocast + torch.amp.GradScaler ------------------------------------------------------

@pytest.mark.parametrize("spec,precision", [("torch", "bf16"), ("numpy", "fp16"), ("torch", "fp16")])
def test_three_steps_match_torch_autocast(spec, precision, torch):
    """An MLP with the same weights, three SGD steps (momentum) on one batch, against
    ``torch.autocast("cpu", dtype)`` and ``torch.amp.GradScaler("cpu")``. Tolerance, with ``eps``
    the low-precision dtype's gap at 1: the outputs within ``2 eps`` of the largest (torch adds the
    bias inside the low-precision matmul, xpnet after it: one extra rounding); the loss within
    ``4 eps`` relative; each unscaled master gradient within ``8 eps`` of its largest entry (measured:
    up to 1 eps for bfloat16, 2.6 eps for float16 on numpy); the weights within ``eps / 4``."""
    be = _get(spec)
    dtype = {"bf16": "bfloat16", "fp16": "float16"}[precision]
    eps = EPS[dtype]
    backends.get("numpy").manual_seed(0)
    net = _mlp(backends.get("numpy"), 16, 32, 5)
    tnet = xn.to_torch(net)
    net.to(be)
    opt, topt = xn.SGD(net, lr=0.1, momentum=0.9), torch.optim.SGD(tnet.parameters(), lr=0.1, momentum=0.9)
    fp16 = precision == "fp16"
    amp = xn.MixedPrecision(net, opt, precision, scaler=xn.GradScaler(init_scale=2.0**10, enabled=fp16))
    tscaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, enabled=fp16)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((32, 16)).astype(np.float32), rng.integers(0, 5, 32)
    x, y, tx, ty = be.asarray(X), be.asarray(Y, dtype="int64"), torch.tensor(X), torch.tensor(Y)
    loss = xn.CrossEntropyLoss()
    for _ in range(3):
        opt.zero_grad()
        with amp.autocast():
            out = net(amp.cast(x))
            value = loss(out, y)
            amp.backward(loss)
        amp.unscale_()
        topt.zero_grad()
        with torch.autocast("cpu", dtype=getattr(torch, dtype)):
            tout = tnet(tx)
            tvalue = torch.nn.functional.cross_entropy(tout, ty)
        tscaler.scale(tvalue).backward()
        tscaler.unscale_(topt)
        assert out.dtype == be.low_precision_dtype(dtype) and tout.dtype == getattr(torch, dtype)
        t_out = tout.detach().float().numpy()
        assert np.abs(host(out).astype(np.float32) - t_out).max() <= 2 * eps * max(1.0, np.abs(t_out).max())
        assert abs(float(value) - tvalue.item()) <= 4 * eps * tvalue.item()
        for p, tp in zip(net.parameters(), tnet.parameters()):
            g = tp.grad.numpy()
            assert np.abs(host(p.grad) - g).max() <= 8 * eps * np.abs(g).max()
        assert amp.step()
        tscaler.step(topt)
        tscaler.update()
        assert amp.scaler.get_scale() == tscaler.get_scale()
    for p, tp in zip(net.parameters(), tnet.parameters()):
        assert np.abs(host(p.data) - tp.detach().numpy()).max() <= eps / 4


# -- end to end: low precision trains to float32's accuracy ------------------------------------------------

def _digits_mlp():
    return xn.Sequential(xn.Linear(64, 64), xn.ReLU(), xn.Linear(64, 10))


def _digits_cnn():
    return xn.Sequential(xn.Conv2d(1, 8, 3, padding=1), xn.BatchNorm2d(8), xn.ReLU(), xn.MaxPool2d(2),
                         xn.Flatten(), xn.Linear(128, 10))


def train_digits(be, precision, make, epochs, flatten, seed=0, batch=64):
    """The hand loop: SGD with momentum on the 1,438 training digits; returns the test accuracy
    (359 images) and the number of skipped steps. The same initial weights and shuffles for every
    precision (numpy's generator for the weights, the backend's for the shuffles)."""
    xp = be.xp
    X, y = load_digits("train", backend=be, flatten=flatten)
    Xt, yt = load_digits("test", backend=be, flatten=flatten)
    backends.get("numpy").manual_seed(seed)
    with backends.use("numpy"):
        net = make()
    net.to(be)
    be.manual_seed(seed)
    loss, opt = xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1, momentum=0.9)
    amp = xn.MixedPrecision(net, opt, precision)
    n, skipped = X.shape[0], 0
    for _ in range(epochs):
        order = be.rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            with amp.autocast():
                loss(net(amp.cast(xp.take(X, idx, axis=0))), xp.take(y, idx, axis=0))
                amp.backward(loss)
            skipped += not amp.step()
    net.eval()
    with xn.no_grad():
        hits = xp.sum(xp.astype(xp.argmax(net(Xt), axis=1) == yt, xp.int64))
    return int(hits) / Xt.shape[0], skipped


@pytest.mark.parametrize("spec,precision", [("torch", "bf16"), ("numpy", "fp16")])
@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_low_precision_reaches_float32_accuracy(spec, precision, net):
    """Within 0.5 points (one of the 359 test images) of the same run in float32, both above 95%.

    Evidence (this machine, 2026-12-02, seeds 0-5 on torch and 0-2 on numpy): the differences
    were 0 or 1 image in 17 of 18 runs, 2 images once (the CNN in bfloat16, seed 1); seed 0, used
    here, gives 0 (MLP) and -1 (CNN) on torch and 0 and 0 on numpy. Times here: about 1 s each on
    torch, 6 s (MLP, 20 epochs) and 5 s (CNN, 10 epochs) in numpy's float16, whose matmul has no BLAS.
    """
    be = _get(spec)
    make, epochs, flatten = {"mlp": (_digits_mlp, 20, True), "cnn": (_digits_cnn, 10, False)}[net]
    full, _ = train_digits(be, None, make, epochs, flatten)
    low, _ = train_digits(be, precision, make, epochs, flatten)
    assert full > 0.95 and low > 0.95, (full, low)
    assert abs(low - full) <= 0.005, f"{precision} {low:.4f} vs float32 {full:.4f} on {be.label}"


# -- checkpoints -------------------------------------------------------------------------------------------

def _amp_steps(amp, net, loss, batches):
    for x, y in batches:
        amp.optimizer.zero_grad()
        with amp.autocast():
            loss(net(amp.cast(x)), y)
            amp.backward(loss)
        amp.step()


def test_resume_with_a_scaler_is_exact(tmp_path):
    """Six float16 steps (an initial scale that overflows, then backs off and grows), a checkpoint,
    four more: a run resumed from the file ends with the same bits and the same scaler state."""
    be = backends.get("numpy")
    with backends.use(be):
        net = xn.Sequential(xn.Linear(8, 16), xn.BatchNorm1d(16), xn.ReLU(), xn.Linear(16, 4))
    opt = xn.Adam(net, lr=0.01)
    amp = xn.MixedPrecision(net, opt, "fp16", scaler=xn.GradScaler(init_scale=2.0**24, growth_interval=2))
    loss = xn.CrossEntropyLoss()
    batches = [_batch(be, seed=s) for s in range(10)]
    _amp_steps(amp, net, loss, batches[:6])
    assert amp.scaler.skipped > 0
    path = xn.save(tmp_path / "amp.xpnet", net, opt, loss=loss, scaler=amp.scaler)
    saved_state = amp.scaler.state_dict()
    _amp_steps(amp, net, loss, batches[6:])
    ck = xn.load(path)
    assert ck.dtype == "float32" and ck.scaler.state_dict() == saved_state
    amp2 = xn.MixedPrecision(ck.net, ck.optimizer, "fp16", scaler=ck.scaler)
    _amp_steps(amp2, ck.net, ck.loss, batches[6:])
    assert amp2.scaler.state_dict() == amp.scaler.state_dict()
    for (k, a), (_, b) in zip(net.state_dict().items(), ck.net.state_dict().items()):
        np.testing.assert_array_equal(host(a), host(b), err_msg=k)
    # without a scaler the file has none; a disabled scaler's empty state comes back disabled
    assert xn.load(xn.save(tmp_path / "plain.xpnet", net)).scaler is None
    off = xn.load(xn.save(tmp_path / "off.xpnet", net, scaler=xn.GradScaler(enabled=False))).scaler
    assert not off.is_enabled()
    with pytest.raises(TypeError, match=r"^save: scaler must be an xpnet GradScaler \(MixedPrecision's .scaler\), got dict$"):
        xn.save(tmp_path / "bad.xpnet", net, scaler={})


@pytest.mark.parametrize("edit,msg", [
    (lambda s: s.update(scale=-1.0), r"scaler\.scale: expected a finite number > 0, got -1\.0"),
    (lambda s: s.update(scale=10**400), r"scaler\.scale: expected a finite number > 0"),
    (lambda s: s.update(growth_interval=True), r"scaler\.growth_interval: expected an int >= 1, got True"),
    (lambda s: s.update(_growth_tracker=7), r"scaler\._growth_tracker: expected an int in \[0, growth_interval=2\), got 7"),
    (lambda s: s.pop("backoff_factor"), r"scaler: expected the keys scale, growth_factor, backoff_factor"),
], ids=["negative-scale", "huge-int", "bool-interval", "tracker", "missing-key"])
def test_a_bad_scaler_state_is_refused(tmp_path, edit, msg):
    net = _mlp(backends.get("numpy"))
    path = xn.save(tmp_path / "s.xpnet", net, scaler=xn.GradScaler(growth_interval=2))
    _rewrite(path, lambda m: edit(m["scaler"]))
    with pytest.raises(xn.CheckpointError, match=r"^checkpoint .*s\.xpnet: " + msg):
        xn.load(path)
    _rewrite(path, lambda m: m.update(scaler=[1]))
    with pytest.raises(xn.CheckpointError, match=r"scaler: expected an object \(a GradScaler state dict\), got \[1\]"):
        xn.load(path)


def test_readme_mixed_precision_block_runs(tmp_path, monkeypatch):
    """The README's "Mixed precision" example, as printed (its asserts check the accuracy and
    that float16 never overflowed at the initial scale)."""
    import pathlib
    import re

    readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme.read_text(), re.S) if "MixedPrecision(net, opt" in b]
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md (Mixed precision)", "exec"), {})


# -- fit(precision=) ------------------------------------------------------------------------------

def _fit_digits(be, precision, epochs, path=None, resume=None, seed=0):
    be.manual_seed(seed)
    with backends.use(be):
        net = xn.Sequential(xn.Linear(64, 32), xn.BatchNorm1d(32), xn.ReLU(), xn.Linear(32, 10))
        opt = xn.Adam(net, lr=3e-3)
    X, y = load_digits("train", flatten=True, backend=be)
    cbs = [] if path is None else [xn.ModelCheckpoint(path)]
    if resume is not None:
        net, opt = resume.net, resume.optimizer
    h = xn.fit(net, xn.CrossEntropyLoss(), opt, (X, y), epochs=epochs, batch_size=64, precision=precision,
               callbacks=cbs, resume=resume, progress=False, clip_norm=5.0)
    return net, h


def test_fit_in_float16_keeps_float32_weights_and_resumes_exactly(tmp_path):
    """fit(precision="fp16") on numpy: the net keeps float32 weights; the checkpoint carries the
    scaler, and 2 epochs + resume + 1 give the bits of 3 epochs."""
    be = backends.get("numpy")
    net, h = _fit_digits(be, "fp16", 3)
    assert all(p.data.dtype == be.xp.float32 for p in net.parameters())
    assert all(math.isfinite(v) for v in h["loss"]) and h["loss"][-1] < h["loss"][0]
    path = tmp_path / "last.xpnet"
    _fit_digits(be, "fp16", 2, path=path)
    ck = xn.load(path)
    assert ck.scaler is not None and ck.scaler.is_enabled()
    resumed, h2 = _fit_digits(be, "fp16", 3, path=path, resume=ck)
    assert h2["epoch"] == [1, 2, 3]
    for (k, a), (_, b) in zip(net.state_dict().items(), resumed.state_dict().items()):
        np.testing.assert_array_equal(host(a), host(b), err_msg=k)


def test_fit_in_bfloat16_on_torch_learns_as_float32(torch):
    be = backends.get("torch")
    _, h32 = _fit_digits(be, None, 4)
    _, h16 = _fit_digits(be, "bf16", 4)
    assert abs(h16["accuracy"][-1] - h32["accuracy"][-1]) < 0.03, (h16["accuracy"], h32["accuracy"])


def test_fit_refuses_a_precision_the_backend_lacks():
    for spec, precision in (("numpy", "bf16"), ("array_api_strict", "fp16")):
        be = backends.get(spec)
        with pytest.raises(ValueError, match=r"^fit: MixedPrecision: .*" + spec):
            _fit_digits(be, precision, 1)
    with pytest.raises(ValueError, match=r"^fit: MixedPrecision: precision must be 'bf16', 'fp16' or None, got 'fp8'"):
        _fit_digits(backends.get("numpy"), "fp8", 1)
