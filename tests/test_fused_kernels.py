"""The fused float32 CPU kernels (numba; ``xpnet/backends/_fused.py``) against the array-API code
they replace: GELU, SiLU, LayerNorm and GroupNorm give the same outputs and gradients, to float32
rounding, on the shapes and corners each kernel has a branch for (long rows summed in blocks,
many rows flushed in groups, 2-D GroupNorm, no affine, no bias, frozen weights, no input
gradient, strided and float16 inputs, NaN and infinities), and both paths stay close to the
float64 truth where the mean is large. Where numba is absent, only the dispatch tests run.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.backends import _fused

NP = backends.get("numpy")


@pytest.fixture
def kernels():
    pytest.importorskip("numba", reason="numba is not installed (pip install 'xpnet[fast]'): no fused kernels")
    k = NP.fused()
    assert k is not None, _fused.available()
    return k


def _array_api(monkeypatch):
    """From now on (in this test), layers take the array-API path."""
    monkeypatch.setattr(_fused, "_kernels", False)
    assert NP.fused() is None


def _step(layer, x, dy, input_grad=True):
    """``(y, dx, {name: grad})`` of one forward and backward, gradients zeroed first."""
    layer.zero_grad()
    y = layer(x)
    dx = layer.backward(dy, input_grad=input_grad)
    return y, dx, {n: p.grad for n, p in layer.named_parameters() if p.grad is not None}


def _both(monkeypatch, make, x, dy, input_grad=True):
    """The step on the fused path and on the array-API path, from the same layer's weights."""
    layer = make()
    fused = _step(layer, x, dy, input_grad)
    _array_api(monkeypatch)
    plain = _step(layer, x, dy, input_grad)
    monkeypatch.undo()
    return fused, plain


def _close(a, b, rtol, atol=0.0):
    if a is None or b is None:
        assert a is None and b is None
        return
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


def _same_steps(fused, plain, rtol, atol=0.0):
    for a, b in zip(fused[:2], plain[:2]):
        _close(a, b, rtol, atol)
    assert fused[2].keys() == plain[2].keys()
    for name in plain[2]:
        _close(fused[2][name], plain[2][name], rtol, atol)


# -- dispatch ---------------------------------------------------------------------------------------
def test_only_numpy_has_fused_kernels(kernels):
    assert NP.fused() is kernels and kernels.takes(np.ones(3, np.float32), None)
    assert not kernels.takes(np.ones(3)) and not kernels.takes(np.ones(3, np.float16))
    assert backends.get("array_api_strict").fused() is None
    pytest.importorskip("torch", reason="PyTorch is not installed")
    assert backends.get("torch").fused() is None


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(_fused.ENV_VAR, "0")
    monkeypatch.setattr(_fused, "_kernels", None)
    assert NP.fused() is None
    assert _fused.available() == (False, "switched off by $XPNET_FUSED=0")


def test_without_numba_says_what_to_install(monkeypatch):
    monkeypatch.delenv(_fused.ENV_VAR, raising=False)
    monkeypatch.setattr(_fused, "_kernels", None)
    monkeypatch.setitem(sys.modules, "xpnet.backends._numba_kernels", None)  # the import fails
    monkeypatch.delattr(backends, "_numba_kernels", raising=False)
    ok, why = _fused.available()
    assert not ok and "numba is not usable" in why and "pip install 'xpnet[fast]'" in why
    assert NP.fused() is None
    y = xn.GELU()(np.linspace(-3, 3, 7, dtype=np.float32))  # the array-API path then
    assert y.dtype == np.float32 and abs(float(y[-1]) - 3 * 0.99865) < 1e-4


# -- the exponential ---------------------------------------------------------------------------------
def test_exp_within_float32_rounding(kernels):
    from xpnet.backends._numba_kernels import _exp

    v = np.concatenate([np.linspace(-87, 88, 301), [-1e-3, 0.0, 1e-3, 20.5, -20.5]]).astype(np.float32)
    got = np.array([_exp(np.float32(t)) for t in v])
    np.testing.assert_allclose(got, np.exp(v.astype(np.float64)), rtol=2.5e-7)
    edges = np.array([_exp(np.float32(t)) for t in (-88.0, -200.0, -np.inf, 89.0, np.inf, np.nan)])
    assert (edges[:3] == 0).all() and (edges[3:5] == np.inf).all() and np.isnan(edges[5])


# -- GELU and SiLU -------------------------------------------------------------------------------------
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 88.0, -88.0, 13.0, -13.0, 20.0, -20.0, 1e-30]


@pytest.mark.parametrize("make", [xn.GELU, xn.SiLU], ids=["GELU", "SiLU"])
def test_activations_equal_the_array_api_path(monkeypatch, kernels, make):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(3000) * 4, SPECIAL]).astype(np.float32).reshape(-1, 2)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    with np.errstate(invalid="ignore"):  # the array-API path's -inf * 0 = NaN (torch's value too)
        fused, plain = _both(monkeypatch, make, x, dy)
    # atol: the slope's cancellation near its zero (x = -0.75 for GELU, -1.28 for SiLU), and where
    # exp underflows (the kernel flushes to 0 below 1e-37, numpy keeps subnormals)
    _same_steps(fused, plain, rtol=2e-6, atol=1e-7)
    assert np.array_equal(np.isnan(fused[0]), np.isnan(plain[0]))
    assert np.array_equal(np.isnan(fused[1]), np.isnan(plain[1]))


@pytest.mark.parametrize("make", [xn.GELU, xn.SiLU], ids=["GELU", "SiLU"])
def test_activations_strided_and_0d(monkeypatch, kernels, make):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 10)).astype(np.float32)
    for x in (base[:, ::3], base.T, np.full((), 0.7, np.float32)):
        dy = np.ones(x.shape, np.float32)
        fused, plain = _both(monkeypatch, make, x, dy)
        _same_steps(fused, plain, rtol=2e-6, atol=1e-7)
        assert fused[0].shape == x.shape and fused[1].shape == x.shape


# -- LayerNorm ------------------------------------------------------------------------------------
def _affine(layer, rng):
    """Random weights and biases (rebound, as users do), so that their gradients are not trivial."""
    for p in layer.parameters():
        p.data = (rng.standard_normal(p.data.shape) + 1.0).astype(p.data.dtype)
    return layer


LN_CASES = [  # (input shape, normalized_shape, keyword arguments)
    ((3, 5, 40), 40, {}),
    ((40, 3000), 3000, {}),  # rows longer than a summing block, more rows than a flush
    ((2, 3, 4, 8), (4, 8), {}),
    ((7, 33), 33, {"elementwise_affine": False}),
    ((7, 33), 33, {"bias": False}),
    ((0, 9), 9, {}),
]


@pytest.mark.parametrize("shape, normalized, kw", LN_CASES, ids=lambda v: str(v))
def test_layer_norm_equals_the_array_api_path(monkeypatch, kernels, shape, normalized, kw):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    fused, plain = _both(monkeypatch, lambda: _affine(xn.LayerNorm(normalized, **kw), rng), x, dy)
    _same_steps(fused, plain, rtol=2e-5, atol=2e-6)


def test_layer_norm_frozen_weight_and_no_input_grad(monkeypatch, kernels):
    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((2, 8, 24)).astype(np.float32), rng.standard_normal((2, 8, 24)).astype(np.float32)

    def make():
        layer = _affine(xn.LayerNorm(24), np.random.default_rng(4))
        layer.weight.requires_grad = False
        return layer

    for input_grad in (True, False):
        fused, plain = _both(monkeypatch, make, x, dy, input_grad)
        assert set(fused[2]) == {"bias"} and (fused[1] is None) == (not input_grad)
        _same_steps(fused, plain, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("make, shape", [(lambda: xn.LayerNorm(64), (16, 64)), (lambda: xn.GroupNorm(4, 8), (4, 8, 64))],
                         ids=["LayerNorm", "GroupNorm"])
def test_norms_near_the_float64_truth_with_a_large_mean(monkeypatch, kernels, make, shape):
    """A mean 1000 standard deviations away: the two-pass statistics keep float32's accuracy (the
    two paths' means differ by an ulp of 1000, 6e-5, which moves every xhat alike: the weight's
    gradient by 6e-5 rstd sum(dy), some 1e-3 here; both stay as near the float64 truth)."""
    rng = np.random.default_rng(5)
    x64 = rng.standard_normal(shape) + 1000.0
    dy64 = rng.standard_normal(shape)
    truth = _step(make().to(NP, "float64"), x64, dy64)
    x, dy = x64.astype(np.float32), dy64.astype(np.float32)
    fused, plain = _both(monkeypatch, make, x, dy)
    for got in (fused, plain):
        _same_steps(got, truth, rtol=0, atol=3e-3)  # float32 x itself is only 6e-5 from x64 here


# -- GroupNorm -------------------------------------------------------------------------------------
GN_CASES = [  # (input shape, num_groups, num_channels, keyword arguments)
    ((2, 6, 5, 7), 3, 6, {}),
    ((3, 8, 2000), 2, 8, {}),  # groups longer than a summing block
    ((5, 6), 3, 6, {}),  # 2-D: one value per channel
    ((2, 4, 9), 2, 4, {"affine": False}),
    ((2, 4, 9), 4, 4, {"bias": False}),
]


@pytest.mark.parametrize("shape, groups, channels, kw", GN_CASES, ids=lambda v: str(v))
def test_group_norm_equals_the_array_api_path(monkeypatch, kernels, shape, groups, channels, kw):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal(shape) * 2 - 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    for input_grad in (True, False):
        fused, plain = _both(monkeypatch, lambda: _affine(xn.GroupNorm(groups, channels, **kw), rng), x, dy,
                             input_grad)
        _same_steps(fused, plain, rtol=2e-5, atol=2e-6)


def test_group_norm_backward_pairs_each_forward_with_its_path(monkeypatch, kernels):
    """Two forwards, one fused and one array-API, then two backwards (newest first): each
    backward takes the path its own forward took."""
    rng = np.random.default_rng(7)
    layer = _affine(xn.GroupNorm(2, 4), rng)
    x1, x2 = (rng.standard_normal((2, 4, 6)).astype(np.float32) for _ in range(2))
    dy1, dy2 = (rng.standard_normal((2, 4, 6)).astype(np.float32) for _ in range(2))
    layer(x1)  # fused
    _array_api(monkeypatch)
    layer(x2)  # array-API
    dx2 = layer.backward(dy2)
    monkeypatch.undo()
    dx1 = layer.backward(dy1)
    _array_api(monkeypatch)
    for x, dy, got in ((x1, dy1, dx1), (x2, dy2, dx2)):
        _close(got, _step(layer, x, dy)[1], rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("make, shape", [(lambda: xn.LayerNorm(32), (4, 32)), (lambda: xn.GroupNorm(2, 4), (3, 4, 10))],
                         ids=["LayerNorm", "GroupNorm"])
def test_norms_float16_input_through_the_kernels(monkeypatch, kernels, make, shape):
    """Mixed precision: a float16 input with float16 weights is normalized in float32 (widened,
    then the kernels), and comes back in float16, as on the array-API path."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(np.float16)
    dy = rng.standard_normal(shape).astype(np.float16)

    def make16():
        return _affine(make(), np.random.default_rng(9)).to(NP, "float16")

    fused, plain = _both(monkeypatch, make16, x, dy)
    assert fused[0].dtype == fused[1].dtype == np.float16
    _same_steps(fused, plain, rtol=2e-3, atol=2e-3)


def test_kernel_statistics_are_torchs(kernels):
    """The forward kernels' statistics: the mean and 1 / sqrt(biased variance + eps) per row."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5, 300)).astype(np.float32)
    _, mean, rstd = kernels.layer_norm(x, None, None, 1e-5)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(x64.var(axis=1) + 1e-5), rtol=1e-6)
    _, gmean, grstd = kernels.group_norm(x.reshape(1, 5, 300), 5, None, None, 1e-5)
    np.testing.assert_allclose(gmean, mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grstd, rstd, rtol=1e-6)
    assert math.isclose(float(rstd[0]), float(grstd[0]), rel_tol=1e-6)


# -- recurrent layers (issue 12) ------------------------------------------------------------------
def _tanh_reference(kernels):
    from xpnet.backends._numba_kernels import _tanh

    return _tanh


def test_tanh_within_float32_rounding(kernels):
    tanh = _tanh_reference(kernels)
    v = np.concatenate([np.linspace(-12, 12, 2401), [-0.625, 0.625, -0.6249, 0.6251, 1e-30, -1e-30, 1e-5, 0.0, -0.0],
                        [44.0, -44.0, 50.0, 1e30, -1e30]]).astype(np.float32)
    got = np.array([tanh(np.float32(t)) for t in v])
    truth = np.tanh(v.astype(np.float64))
    np.testing.assert_allclose(got, truth, rtol=2e-7, atol=0)
    edges = np.array([tanh(np.float32(t)) for t in (np.inf, -np.inf, np.nan)])
    assert edges[0] == 1.0 and edges[1] == -1.0 and np.isnan(edges[2])


def _recurrent_weights(layer, rng):
    """Random weights of about the scale training gives (N(0, 1/2)), rebound."""
    for p in layer.parameters():
        p.data = (rng.standard_normal(p.data.shape) * 0.5).astype(p.data.dtype)
    return layer


class _Spy:
    """Counts the calls of the recurrent step kernels (fused forward and backward steps)."""

    NAMES = ("lstm_step", "lstm_back_step", "gru_step", "gru_back_step")

    def __init__(self, monkeypatch):
        self.calls = dict.fromkeys(self.NAMES, 0)
        for name in self.NAMES:
            monkeypatch.setattr(_fused.Kernels, name, staticmethod(self._wrap(name, getattr(_fused.Kernels, name))))

    def _wrap(self, name, f):
        def counted(*args):
            self.calls[name] += 1
            return f(*args)
        return counted


def _hx(layer, rng, n, unbatched=False, strided=False):
    """Random initial states for ``layer`` (a tuple for LSTM), optionally as strided views."""
    lead = (layer.num_layers * (2 if layer.bidirectional else 1),)
    shapes = [lead + ((n,) if not unbatched else ()) + ((layer.proj_size or layer.hidden_size)
                                                        if isinstance(layer, xn.LSTM) else layer.hidden_size,)]
    if isinstance(layer, xn.LSTM):
        shapes.append(lead + ((n,) if not unbatched else ()) + (layer.hidden_size,))
    out = []
    for s in shapes:
        a = rng.standard_normal(s[:-1] + (2 * s[-1],)).astype(np.float32)
        out.append(a[..., ::2] if strided else np.ascontiguousarray(a[..., ::2]))
    return tuple(out) if len(out) == 2 else out[0]


def _rnn_step(layer, x, hx, cot):
    """``[out, states..., dx, dhx..., grads...]`` of one forward and backward of a sequence layer or
    cell, gradients zeroed first; ``cot(outputs)`` gives the backward's arguments."""
    layer.zero_grad()
    out = layer(x, hx)
    grads = layer.backward(*cot(out))
    flat = []

    def walk(v):
        if isinstance(v, (tuple, list)):
            for e in v:
                walk(e)
        else:
            flat.append(v)
    walk((out, grads))
    return flat + [p.grad for _, p in layer.named_parameters()]


def _both_rnn(monkeypatch, layer, x, hx, cot, kernel):
    """``(spy, fused, plain)``: the step on the fused path (``kernel`` called) and on the array-API
    path (no kernel called), from the same weights."""
    spy = _Spy(monkeypatch)
    with np.errstate(all="ignore"):  # the array-API path's exp overflows where gates saturate
        fused = _rnn_step(layer, x, hx, cot)
        assert spy.calls[kernel] > 0, spy.calls
        _array_api(monkeypatch)
        before = dict(spy.calls)
        plain = _rnn_step(layer, x, hx, cot)
    assert spy.calls == before
    monkeypatch.undo()
    assert len(fused) == len(plain)
    return spy, fused, plain


def _compare_paths(monkeypatch, layer, x, hx, cot, kernel, rtol=2e-5, atol=2e-6):
    """The two paths of :func:`_both_rnn` give the same values, to float32 rounding."""
    spy, fused, plain = _both_rnn(monkeypatch, layer, x, hx, cot, kernel)
    for a, b in zip(fused, plain):
        _close(a, b, rtol, atol)
    return spy, fused


def _cot(seed, grads_of_states=True, d_output=True, only=None):
    """The backward's arguments for a sequence layer's outputs, the same on every call: dy (or
    None), and the final states' gradients (``only``: just that one of LSTM's pair)."""
    def cot(out):
        rng = np.random.default_rng(seed)
        y, st = out
        dy = rng.standard_normal(y.shape).astype(np.float32) if d_output else None
        if not grads_of_states:
            return (dy,)
        if not isinstance(st, tuple):
            return dy, rng.standard_normal(st.shape).astype(np.float32)
        d = [rng.standard_normal(s.shape).astype(np.float32) for s in st]
        if only is not None:
            d[1 - only] = None
        return dy, tuple(d)
    return cot


RNN_FUSED = [  # (id, layer factory, input shape)
    ("LSTM", lambda: xn.LSTM(5, 7), (6, 4, 5)),
    ("LSTM-2-layers-bidirectional-proj", lambda: xn.LSTM(5, 7, num_layers=2, bidirectional=True, proj_size=3),
     (6, 4, 5)),
    ("LSTM-no-bias-batch-first", lambda: xn.LSTM(5, 7, bias=False, batch_first=True), (4, 6, 5)),
    ("LSTM-one-step", lambda: xn.LSTM(5, 7, bidirectional=True), (1, 3, 5)),
    ("GRU", lambda: xn.GRU(5, 7), (6, 4, 5)),
    ("GRU-2-layers-bidirectional-no-bias", lambda: xn.GRU(5, 7, num_layers=2, bidirectional=True, bias=False),
     (6, 4, 5)),
    ("GRU-batch-first", lambda: xn.GRU(5, 7, batch_first=True, bidirectional=True), (4, 6, 5)),
]


@pytest.mark.parametrize("make, shape", [c[1:] for c in RNN_FUSED], ids=[c[0] for c in RNN_FUSED])
def test_recurrent_layers_equal_the_array_api_path(monkeypatch, kernels, make, shape):
    """Outputs, final states, dx, dh0 (and dc0), every parameter's gradient; the states given as
    strided views, and dy of a bidirectional or batch-first layer strided too."""
    rng = np.random.default_rng(11)
    layer = _recurrent_weights(make(), rng)
    x = rng.standard_normal(shape).astype(np.float32)
    n = shape[0] if layer.batch_first else shape[1]
    hx = _hx(layer, rng, n, strided=True)
    kernel = "lstm_step" if isinstance(layer, xn.LSTM) else "gru_step"
    spy, _ = _compare_paths(monkeypatch, layer, x, hx, _cot(0), kernel)
    steps = shape[1] if layer.batch_first else shape[0]
    dirs = layer.num_layers * (2 if layer.bidirectional else 1)
    assert spy.calls[kernel] == spy.calls[kernel.replace("_step", "_back_step")] == steps * dirs


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_recurrent_unbatched_no_state_and_only_some_gradients(monkeypatch, kernels, name):
    """Unbatched input, no hx (zeros), and backwards that get only dy, only the final states'
    gradients (no dy in the reversed loop), or only part of them; frozen weights, no dx."""
    rng = np.random.default_rng(12)
    layer = _recurrent_weights(getattr(xn, name)(4, 6, bidirectional=True), rng)
    kernel = name.lower() + "_back_step"
    x = rng.standard_normal((5, 4)).astype(np.float32)
    _compare_paths(monkeypatch, layer, x, None, _cot(1, grads_of_states=False), kernel)
    _compare_paths(monkeypatch, layer, x, None, _cot(2, d_output=False), kernel)
    x3 = rng.standard_normal((5, 3, 4)).astype(np.float32)
    if name == "LSTM":  # d_h_n alone, then d_c_n alone
        _compare_paths(monkeypatch, layer, x3, None, _cot(3, d_output=False, only=0), kernel)
        _compare_paths(monkeypatch, layer, x3, None, _cot(4, d_output=False, only=1), kernel)
    layer.weight_hh_l0.requires_grad = False
    layer.bias_ih_l0_reverse.requires_grad = False
    _compare_paths(monkeypatch, layer, x3, None, _cot(5), kernel)
    layer(x3)
    assert layer.backward(*_cot(5)(layer(x3)), input_grad=False) is None  # the newer forward's
    layer.saved()  # drop the first forward's values


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell"])
def test_recurrent_cells_equal_the_array_api_path(monkeypatch, kernels, name):
    rng = np.random.default_rng(13)
    layer = _recurrent_weights(getattr(xn, name)(5, 6), rng)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    h = rng.standard_normal((4, 6)).astype(np.float32)
    hx = (h, rng.standard_normal((4, 6)).astype(np.float32)) if name == "LSTMCell" else h

    def cot(out):
        g = np.random.default_rng(6)
        return tuple(g.standard_normal(o.shape).astype(np.float32) for o in (out if isinstance(out, tuple) else (out,)))

    spy, _ = _compare_paths(monkeypatch, layer, x, hx, cot, name[:-4].lower() + "_step")
    assert spy.calls[name[:-4].lower() + "_back_step"] == 1


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_recurrent_forward_without_grad_equals_the_array_api_path(monkeypatch, kernels, name):
    """Under no_grad the kernels keep nothing (their other branch): same outputs and states."""
    rng = np.random.default_rng(15)
    layer = _recurrent_weights(getattr(xn, name)(3, 5, num_layers=2), rng)
    x = rng.standard_normal((7, 2, 3)).astype(np.float32)
    spy = _Spy(monkeypatch)
    with xn.no_grad():
        fused = layer(x)
    assert spy.calls[name.lower() + "_step"] == 14
    _array_api(monkeypatch)
    with xn.no_grad():
        plain = layer(x)
    monkeypatch.undo()
    for a, b in zip(_rnn_flat(fused), _rnn_flat(plain), strict=True):
        _close(a, b, rtol=2e-5, atol=2e-6)


def _rnn_flat(out):
    y, st = out
    return [y] + (list(st) if isinstance(st, tuple) else [st])


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_recurrent_saturated_gates_and_nan(monkeypatch, kernels, name):
    """Pre-activations far beyond exp's range (sigmoids at 0 and 1, tanh at +-1: a third of
    the bias entries +-200) give the array-API path's values; a NaN in the input comes out as
    NaN where it does there."""
    rng = np.random.default_rng(16)
    layer = _recurrent_weights(getattr(xn, name)(3, 4), rng)
    b = layer.bias_ih_l0.data
    far = rng.choice([-200.0, 200.0], b.shape)
    layer.bias_ih_l0.data = np.where(rng.random(b.shape) < 1 / 3, far, b).astype(b.dtype)
    x = (rng.standard_normal((5, 2, 3)) * 3).astype(np.float32)
    kernel = name.lower() + "_step"
    _, fused, plain = _both_rnn(monkeypatch, layer, x, None, _cot(7), kernel)
    for a, b in zip(fused, plain):
        _close(a, b, rtol=2e-5, atol=2e-6)
    x[2, 1, 0] = np.nan
    _, fused, plain = _both_rnn(monkeypatch, layer, x, None, _cot(8), kernel)
    for a, b in zip(fused, plain, strict=True):
        if a is not None:
            assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.isnan(fused[0][2:, 1]).all() and not np.isnan(fused[0][:2]).any()


def test_recurrent_backward_pairs_each_forward_with_its_path(monkeypatch, kernels):
    """Two forwards, one fused and one array-API, then two backwards (newest first): each
    backward takes the path its own forward took (kept with the forward's values)."""
    rng = np.random.default_rng(18)
    layer = _recurrent_weights(xn.LSTM(3, 4), rng)
    x1, x2 = (rng.standard_normal((5, 2, 3)).astype(np.float32) for _ in range(2))
    dy1, dy2 = (rng.standard_normal((5, 2, 4)).astype(np.float32) for _ in range(2))
    spy = _Spy(monkeypatch)
    layer(x1)  # fused
    loaded = _fused._kernels
    _array_api(monkeypatch)
    layer(x2)  # array-API
    monkeypatch.setattr(_fused, "_kernels", loaded)  # kernels available again for the backwards
    dx2 = layer.backward(dy2)
    assert spy.calls["lstm_back_step"] == 0
    dx1 = layer.backward(dy1)
    assert spy.calls["lstm_back_step"] == 5
    monkeypatch.undo()
    _array_api(monkeypatch)
    for x, dy, got in ((x1, dy1, dx1), (x2, dy2, dx2)):
        layer(x)
        _close(got, layer.backward(dy), rtol=2e-5, atol=2e-6)


def test_recurrent_float64_and_other_backends_take_the_array_api_path(monkeypatch, kernels):
    rng = np.random.default_rng(19)
    spy = _Spy(monkeypatch)
    x = rng.standard_normal((3, 2, 3))
    layer = xn.GRU(3, 4).to(NP, "float64")
    layer(x)
    layer.backward(rng.standard_normal((3, 2, 4)))
    strict = backends.get("array_api_strict")
    lstm = xn.LSTM(3, 4, backend=strict)
    lstm(strict.asarray(x.astype(np.float32)))
    assert set(spy.calls.values()) == {0}
