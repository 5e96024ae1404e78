"""The pools: float64 gradient checks on random geometries (every option: dilation, ceil mode,
count_include_pad, divisor_override, return_indices), parity with torch.nn (outputs, indices and
input gradients, float64 and float32) over 1, 2 and 3 spatial axes, max-pool tie-breaking (and,
for the adaptive and fractional max pools, NaN handling) exactly as PyTorch's CPU kernels, the
power-average pools' signs, infinite norms and zero sums, the fractional pools' samples (given,
drawn, checked), the saved-value stack (a pool applied twice, dy=None, input_grad=False,
no_grad), checkpoint rules, interop and ONNX forms, and every error a user may meet. Every test
runs on every backend. (PyTorch's own module_db samples run in tests/test_module_db.py.)"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet
from xpnet.layers.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from xpnet.layers.pooling._windows import axis_windows
from xpnet.nets.evaluate import eval_mode
from xpnet.testing import gradcheck
from tests.conftest import host

SETTINGS = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
f64 = "float64"
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}


@st.composite
def geometries(draw, dilation=False, ceil=False):
    """(kernel, stride, padding, dilation, ceil_mode, input shape) with at least one window;
    strides below, at and above the kernel (overlapping windows, tiling, gaps)."""
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    ceil_mode = draw(st.booleans()) if ceil else False
    size = []
    for a in range(2):
        span = d[a] * (k[a] - 1) + 1
        least = span - 2 * p[a] - ((s[a] - 1) if ceil_mode else 0)  # ceil mode keeps a partial window
        size.append(draw(st.integers(max(1, least), span + 4)))
    if not all(_every_window_real(size[a], k[a], s[a], p[a], d[a], ceil_mode) for a in range(2)):
        d = (1, 1)  # a dilated window holding padding only outputs -inf; torch's index for it is out of range
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size)
    if draw(st.booleans()):
        shape = shape[1:]  # unbatched (C, H, W), as torch accepts
    return k, s, p, d, ceil_mode, shape


def _every_window_real(size, k, s, p, d, ceil_mode):
    out, _ = axis_windows(size, k, s, p, d, ceil_mode)
    return all(any(0 <= a * s - p + i * d < size for i in range(k)) for a in range(out))


def distinct(be, shape):
    """float64 values that are all distinct, at least 1 apart: no near-ties for max-pool gradchecks."""
    xp = be.xp
    n = int(np.prod(shape))
    return xp.reshape(xp.astype(be.rng.permutation(n), be.dtype(f64)), shape) - n / 2


# ----------------------------------------------------------------------------------------
# gradient checks
# ----------------------------------------------------------------------------------------

@SETTINGS
@given(geo=geometries(dilation=True, ceil=True), indices=st.booleans(), seed=st.integers(0, 2**16))
def test_maxpool_gradients(backend, geo, indices, seed):
    k, s, p, d, ceil_mode, shape = geo
    backend.manual_seed(seed)
    layer = MaxPool2d(k, s, p, dilation=d, ceil_mode=ceil_mode, return_indices=indices)
    assert gradcheck(layer, distinct(backend, shape))


@SETTINGS
@given(geo=geometries(ceil=True), include_pad=st.booleans(), divisor=st.sampled_from([None, 1, 3, -2]),
       seed=st.integers(0, 2**16))
def test_avgpool_gradients(backend, geo, include_pad, divisor, seed):
    k, s, p, _, ceil_mode, shape = geo
    backend.manual_seed(seed)
    layer = AvgPool2d(k, s, p, ceil_mode=ceil_mode, count_include_pad=include_pad, divisor_override=divisor)
    assert gradcheck(layer, backend.rng.normal(shape, dtype=backend.dtype(f64)))


@SETTINGS
@given(h=st.integers(1, 7), w=st.integers(1, 7), seed=st.integers(0, 2**16),
       out=st.one_of(st.integers(1, 5), st.tuples(st.one_of(st.none(), st.integers(1, 9)), st.integers(1, 4))))
def test_adaptive_avgpool_gradients(backend, h, w, out, seed):
    backend.manual_seed(seed)
    x = backend.rng.normal((2, 3, h, w), dtype=backend.dtype(f64))
    assert gradcheck(AdaptiveAvgPool2d(out), x)


# ----------------------------------------------------------------------------------------
# parity with torch.nn
# ----------------------------------------------------------------------------------------

# (torch.nn class name, constructor args, constructor kwargs, input shape)
PARITY = [
    ("MaxPool2d", (2,), {}, (4, 3, 8, 8)),
    ("MaxPool2d", (2,), {}, (3, 7, 9)),  # unbatched, odd size: the last row/column is dropped
    ("MaxPool2d", (3, 2, 1), {}, (2, 3, 9, 8)),  # overlapping windows, padding
    ("MaxPool2d", (3, 1, 1), {}, (2, 2, 6, 7)),  # stride 1: each element in up to 9 windows
    ("MaxPool2d", ((2, 3), (3, 1), (1, 0)), {}, (2, 3, 7, 8)),  # rectangular everything
    ("MaxPool2d", (2, 3), {}, (2, 2, 8, 9)),  # gaps between windows
    ("MaxPool2d", (2,), dict(ceil_mode=True), (2, 3, 7, 9)),  # a last partial window
    ("MaxPool2d", (3, 2, 1), dict(ceil_mode=True), (2, 3, 8, 6)),  # partial window reaching past the padding
    ("MaxPool2d", (3, 2, 1), dict(ceil_mode=True), (2, 2, 9, 7)),  # the last window would start in the padding
    ("MaxPool2d", (3, 1, 1), dict(dilation=2), (2, 2, 7, 8)),
    ("MaxPool2d", ((2, 3), (2, 1), (1, 1)), dict(dilation=(3, 1), ceil_mode=True), (2, 2, 9, 6)),
    ("MaxPool2d", (3, 2, 1), dict(return_indices=True), (2, 3, 9, 8)),
    ("MaxPool2d", (2,), dict(return_indices=True, ceil_mode=True), (3, 7, 5)),
    ("MaxPool2d", (3, 2, 1), dict(return_indices=True, dilation=2), (2, 2, 9, 9)),
    ("AvgPool2d", (2,), {}, (4, 3, 8, 8)),
    ("AvgPool2d", (3, 2, 1), {}, (2, 3, 9, 8)),
    ("AvgPool2d", ((3, 2), (1, 2), (1, 1)), {}, (3, 5, 7)),
    ("AvgPool2d", (2, 3), {}, (2, 2, 8, 9)),
    ("AvgPool2d", (3, 2, 1), dict(count_include_pad=False), (2, 3, 9, 8)),
    ("AvgPool2d", (3, 2, 1), dict(ceil_mode=True), (2, 3, 8, 6)),
    ("AvgPool2d", (3, 2, 1), dict(ceil_mode=True, count_include_pad=False), (2, 3, 8, 6)),
    ("AvgPool2d", ((2, 3), (3, 2), (1, 0)), dict(ceil_mode=True), (2, 2, 7, 8)),
    ("AvgPool2d", (2,), dict(divisor_override=3), (2, 3, 8, 8)),
    ("AvgPool2d", (3, 2, 1), dict(divisor_override=-2, ceil_mode=True), (2, 3, 8, 6)),
    ("AvgPool2d", (1,), dict(divisor_override=4), (2, 2, 3, 3)),  # a 1x1 kernel still divides
    ("AdaptiveAvgPool2d", (1,), {}, (4, 5, 7, 6)),  # global average pooling
    ("AdaptiveAvgPool2d", ((3, 4),), {}, (2, 3, 7, 10)),  # uneven, overlapping windows
    ("AdaptiveAvgPool2d", ((None, 2),), {}, (3, 5, 6)),
    ("AdaptiveAvgPool2d", (9,), {}, (2, 2, 4, 5)),  # output larger than the input
    ("AdaptiveAvgPool2d", ((4, 5),), {}, (2, 2, 4, 5)),  # same size: identity
]
OURS = {name: getattr(xpnet.layers, name) for name in xpnet.layers.pooling.__all__}
PARITY_IDS = [f"{n}{a}{''.join(f'-{k}={v}' for k, v in kw.items())}-{s}" for n, a, kw, s in PARITY]


def run_both(backend, torch, name, args, kwargs, x_np, dy_np=None):
    """``(y, indices or None, dx)`` from xpnet on ``backend`` and the same from torch.nn autograd on
    the CPU (as numpy arrays), and ``dy`` (random if not given)."""
    ours, theirs = OURS[name](*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt, it = (theirs(xt), None) if not kwargs.get("return_indices") else theirs(xt)
    if dy_np is None:
        dy_np = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(x_np.dtype)
    yt.backward(torch.from_numpy(dy_np))
    dt = str(x_np.dtype)
    out = ours(backend.asarray(x_np, dtype=dt))
    y, idx = out if kwargs.get("return_indices") else (out, None)
    dx = ours.backward(backend.asarray(dy_np, dtype=dt))
    for a in (y, dx):
        assert a.dtype == backend.dtype(dt) and a.device == backend.device
    if idx is not None:
        assert idx.dtype == backend.dtype("int64") and idx.device == backend.device
    assert ours.pending == 0
    mine = (host(y), None if idx is None else host(idx), host(dx))
    return mine, (yt.detach().numpy(), None if it is None else it.numpy(), xt.grad.numpy()), dy_np


def routed(idx, dy, x_shape, nd=2):
    """The input gradient of sending each dy element to the input element its index names."""
    n_planes = int(np.prod(x_shape[:-nd]))
    plane = int(np.prod(x_shape[-nd:]))
    flat = np.zeros((n_planes, plane))
    np.add.at(flat, (np.arange(n_planes)[:, None], idx.reshape(n_planes, -1)), dy.reshape(n_planes, -1))
    return flat.reshape(x_shape)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("relu", [False, True], ids=["normal", "relu"])
@pytest.mark.parametrize("name,args,kwargs,shape", PARITY, ids=PARITY_IDS)
def test_parity_with_torch(backend, torch, name, args, kwargs, shape, relu, dtype):
    x_np = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    if relu:
        x_np = np.maximum(x_np, 0)  # half the inputs tie at zero
    (y, idx, dx), (yt, it, dxt), dy = run_both(backend, torch, name, args, kwargs, x_np)
    assert y.shape == yt.shape and dx.shape == dxt.shape
    np.testing.assert_allclose(y, yt, err_msg="output", **TOL[dtype])
    np.testing.assert_allclose(dx, dxt, err_msg="dx", **TOL[dtype])
    if it is not None:
        np.testing.assert_array_equal(idx, it, err_msg="indices")
        # backward routes each window's gradient to the element its index names
        np.testing.assert_allclose(dx, routed(idx, dy.astype(np.float64), shape), **TOL[dtype])


@SETTINGS
@given(geo=geometries(dilation=True, ceil=True), relu=st.booleans(), seed=st.integers(0, 2**16))
def test_maxpool_options_match_torch(backend, torch, geo, relu, seed):
    """Random geometries with every option: outputs, indices and gradients equal torch's in float64."""
    k, s, p, d, ceil_mode, shape = geo
    x_np = np.random.default_rng(seed).standard_normal(shape)
    if relu:
        x_np = np.maximum(x_np, 0)
    kw = dict(dilation=d, ceil_mode=ceil_mode, return_indices=True)
    (y, idx, dx), (yt, it, dxt), _ = run_both(backend, torch, "MaxPool2d", (k, s, p), kw, x_np)
    np.testing.assert_array_equal(y, yt)
    np.testing.assert_array_equal(idx, it)
    np.testing.assert_allclose(dx, dxt, **TOL[f64])


@SETTINGS
@given(geo=geometries(ceil=True), include_pad=st.booleans(), divisor=st.sampled_from([None, 1, 3, -2]),
       seed=st.integers(0, 2**16))
def test_avgpool_options_match_torch(backend, torch, geo, include_pad, divisor, seed):
    """Random geometries with every option: outputs and gradients equal torch's in float64."""
    k, s, p, _, ceil_mode, shape = geo
    x_np = np.random.default_rng(seed).standard_normal(shape)
    kw = dict(ceil_mode=ceil_mode, count_include_pad=include_pad, divisor_override=divisor)
    (y, _, dx), (yt, _, dxt), _ = run_both(backend, torch, "AvgPool2d", (k, s, p), kw, x_np)
    np.testing.assert_allclose(y, yt, **TOL[f64])
    np.testing.assert_allclose(dx, dxt, **TOL[f64])


def test_repr_matches_torch(backend, torch):
    for name, args, kwargs, _ in PARITY:
        assert repr(OURS[name](*args, **kwargs)) == repr(getattr(torch.nn, name)(*args, **kwargs))


# ----------------------------------------------------------------------------------------
# max-pool ties: one winner per window, the first in scan order, exactly as PyTorch
# ----------------------------------------------------------------------------------------

def tied_inputs():
    rng = np.random.default_rng(3)
    blocks = np.kron(rng.integers(-2, 3, size=(2, 3, 4, 5)), np.ones((2, 2)))  # 2x2 blocks of equal values
    return {
        "zeros": np.zeros((2, 3, 8, 10)),  # everything after a ReLU of negatives
        "relu": np.maximum(rng.integers(-3, 3, size=(2, 3, 8, 10)), 0).astype(np.float64),
        "blocks": blocks,
        "blocks-shifted": blocks[:, :, 1:, 1:],
    }


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("args", [(2,), (3, 2, 1), (2, 1), (3, 1, 1), ((2, 3), (1, 2), (1, 1))], ids=str)
@pytest.mark.parametrize("kind", list(tied_inputs()))
def test_maxpool_ties_route_like_torch(backend, torch, kind, args, dtype):
    x_np = tied_inputs()[kind].astype(dtype)
    out_shape = tuple(torch.nn.MaxPool2d(*args)(torch.from_numpy(x_np)).shape)
    dy_np = np.random.default_rng(4).integers(1, 9, size=out_shape).astype(dtype)  # sums stay exact
    kw = dict(return_indices=True)
    (y, idx, dx), (yt, it, dxt), _ = run_both(backend, torch, "MaxPool2d", args, kw, x_np, dy_np)
    np.testing.assert_array_equal(y, yt)
    np.testing.assert_array_equal(idx, it)  # torch's tie rule: the first maximum in scan order
    np.testing.assert_array_equal(dx, dxt)
    np.testing.assert_array_equal(dx, routed(idx, dy_np.astype(np.float64), x_np.shape))
    assert dx.sum() == dy_np.sum()  # no gradient duplicated on ties, none lost
    if args == (2,):  # non-overlapping windows: exactly one element per window receives gradient
        assert np.count_nonzero(dx) == dy_np.size


def test_return_indices_leaves_the_plain_output_unchanged(backend):
    x = backend.rng.normal((2, 3, 7, 6), dtype=backend.dtype(f64))
    dy = backend.rng.normal((2, 3, 4, 3), dtype=backend.dtype(f64))
    plain, with_idx = MaxPool2d(3, 2, 1), MaxPool2d(3, 2, 1, return_indices=True)
    y = plain(x)
    y2, idx = with_idx(x)
    np.testing.assert_array_equal(host(y), host(y2))
    assert tuple(idx.shape) == tuple(y.shape)
    np.testing.assert_array_equal(host(plain.backward(dy)), host(with_idx.backward(dy, None)))


# ----------------------------------------------------------------------------------------
# small contracts
# ----------------------------------------------------------------------------------------

IDENTITIES = {  # pools that, for these sizes, are the identity
    "MaxPool2d(1)": lambda: MaxPool2d(1), "AvgPool2d(1)": lambda: AvgPool2d(1),
    "AdaptiveAvgPool2d((None, None))": lambda: AdaptiveAvgPool2d((None, None)),
    "MaxPool1d(1)": lambda: xpnet.MaxPool1d(1), "MaxPool3d(1)": lambda: xpnet.MaxPool3d(1),
    "AvgPool3d(1)": lambda: xpnet.AvgPool3d(1), "LPPool1d(1, 1)": lambda: xpnet.LPPool1d(1, 1),
    "AdaptiveMaxPool3d(None)": lambda: xpnet.AdaptiveMaxPool3d((None, None, None)),
    "AdaptiveAvgPool1d(5)": lambda: xpnet.AdaptiveAvgPool1d(5),
    "FractionalMaxPool2d(1)": lambda: xpnet.FractionalMaxPool2d(1, output_size=(5, 4)),
}


@pytest.mark.parametrize("make", list(IDENTITIES.values()), ids=list(IDENTITIES))
def test_outputs_and_gradients_are_fresh_arrays(backend, make):
    """Even when pooling is the identity, y and dx never alias the caller's x and dy."""
    layer = make()
    x = backend.rng.normal((2, 3, 5, 4, 3)[:2 + layer.nd], dtype=backend.dtype(f64))
    dy = backend.rng.normal(tuple(x.shape), dtype=backend.dtype(f64))
    x0, dy0 = host(x), host(dy)
    y = layer(x)
    np.testing.assert_allclose(host(y), x0, rtol=1e-15)
    y += 1.0
    dx = layer.backward(dy)
    dx += 1.0
    np.testing.assert_array_equal(host(x), x0)
    np.testing.assert_array_equal(host(dy), dy0)


def test_global_average_pool_is_the_mean(backend):
    x = backend.rng.normal((3, 4, 5, 6), dtype=backend.dtype(f64))
    y = AdaptiveAvgPool2d(1)(x)
    assert tuple(y.shape) == (3, 4, 1, 1)
    np.testing.assert_allclose(host(y)[:, :, 0, 0], host(x).mean(axis=(2, 3)), rtol=1e-12)


# every kind of pool, with options that change what forward keeps
POOLS = [
    lambda: MaxPool2d(2), lambda: MaxPool2d(3, 2, 1, return_indices=True), lambda: MaxPool2d(2, ceil_mode=True, dilation=(1, 2)),
    lambda: AvgPool2d(2), lambda: AvgPool2d(3, 2, 1, count_include_pad=False), lambda: AvgPool2d(2, divisor_override=3),
    lambda: AdaptiveAvgPool2d((2, 3)),
]
POOL_IDS = ["max", "max-indices", "max-ceil-dilated", "avg", "avg-exclude-pad", "avg-divisor", "adaptive"]


def grads_of(layer, out):
    """The gradients ``backward`` takes for ``out``: one per output, None for the indices."""
    return (out[0], None) if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("make", POOLS, ids=POOL_IDS)
def test_pool_applied_twice_gets_two_backwards_in_reverse_order(backend, make):
    """One layer used twice in a forward (different shapes, even batched and not): each backward
    pops its own forward's values, newest first, and equals the gradient of a lone use."""
    x1 = backend.rng.normal((2, 3, 8, 7), dtype=backend.dtype(f64))
    x2 = backend.rng.normal((3, 9, 6), dtype=backend.dtype(f64))
    lone = []
    for x in (x1, x2):
        layer = make()
        out = layer(x)
        dy = host(grads_of(layer, out)[0]) * 0.5 + 1.0  # a fixed non-trivial cotangent per use
        lone.append((dy, host(layer.backward(backend.asarray(dy), *grads_of(layer, out)[1:]))))
    layer = make()
    out1, out2 = layer(x1), layer(x2)
    assert layer.pending == 2
    dx2 = layer.backward(backend.asarray(lone[1][0]), *grads_of(layer, out2)[1:])
    dx1 = layer.backward(backend.asarray(lone[0][0]), *grads_of(layer, out1)[1:])
    assert layer.pending == 0
    np.testing.assert_array_equal(host(dx2), lone[1][1])
    np.testing.assert_array_equal(host(dx1), lone[0][1])


@pytest.mark.parametrize("make", POOLS, ids=POOL_IDS)
def test_backward_without_a_gradient_pops_and_returns_none(backend, make):
    layer = make()
    x = backend.rng.normal((2, 3, 6, 6), dtype=backend.dtype(f64))
    out = layer(x)
    dy = grads_of(layer, out)
    layer(x)
    assert layer.backward(None, *dy[1:]) is None  # dy=None: nobody used the output
    assert layer.pending == 1
    assert layer.backward(*dy, input_grad=False) is None
    assert layer.pending == 0
    with pytest.raises(RuntimeError, match=re.escape(f"{layer!r}.backward was called before forward")):
        layer.backward(*dy)


@pytest.mark.parametrize("make", POOLS, ids=POOL_IDS)
def test_no_grad_keeps_nothing(backend, make):
    layer = make()
    x = backend.rng.normal((2, 3, 6, 6), dtype=backend.dtype(f64))
    with xpnet.no_grad():
        out = layer(x)
    assert layer.pending == 0
    with pytest.raises(RuntimeError, match=re.escape(f"{layer!r}.backward was called before forward")):
        layer.backward(*grads_of(layer, out))


def test_indices_name_the_input_plane_and_follow_unbatched_input(backend):
    """Indices are flat positions h * W + w of the unpadded input plane, int64, on x's device."""
    x_np = np.arange(2 * 5 * 6, dtype=np.float64).reshape(2, 5, 6)  # increasing: each window's max is its last real element
    y, idx = MaxPool2d(2, 2, 1, return_indices=True)(backend.asarray(x_np))
    assert tuple(idx.shape) == (2, 3, 4) and idx.dtype == backend.xp.int64 and idx.device == backend.device
    want = np.array([[0, 2, 4, 5], [12, 14, 16, 17], [24, 26, 28, 29]])
    np.testing.assert_array_equal(host(idx)[0], want)
    np.testing.assert_array_equal(host(idx)[1], want)
    np.testing.assert_array_equal(host(y), np.take_along_axis(x_np.reshape(2, -1), host(idx).reshape(2, -1), 1).reshape(2, 3, 4))


# ----------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------

def floats(be, *shape):
    return be.rng.normal(shape, dtype=be.dtype("float32"))


# each test builds its own layer: a layer shared between parametrizations would carry state across them
TWO = [lambda: MaxPool2d(2), lambda: AvgPool2d(2), lambda: AdaptiveAvgPool2d(2)]
TWO_IDS = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


@pytest.mark.parametrize("make", TWO, ids=TWO_IDS)
def test_input_rank_error(backend, make):
    layer = make()
    for shape in [(32, 784), (2, 3, 4, 4, 4)]:
        msg = f"{layer!r} expected a 4-D (N, C, H, W) or 3-D (C, H, W) input, got shape {shape}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            layer(floats(backend, *shape))


@pytest.mark.parametrize("make", TWO, ids=TWO_IDS)
def test_integer_and_bool_input_errors(backend, make):
    layer = make()
    xp = backend.xp
    ints = xp.ones((1, 1, 4, 4), dtype=xp.int64, device=backend.device)
    with pytest.raises(TypeError, match=re.escape(f"{layer!r} expected a floating-point input, got int64")):
        layer(ints)
    with pytest.raises(TypeError, match=re.escape(f"{layer!r} expected a floating-point input, got bool")):
        layer(ints > 0)
    with pytest.raises(TypeError, match=re.escape(f"{layer!r} expected its input to be an array")):
        layer([[1.0, 2.0]])


def test_kernel_larger_than_padded_input(backend):
    with pytest.raises(ValueError, match=re.escape(
        "MaxPool2d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=False) expected a padded input of "
        "at least 3x3 (the kernel), got 2x5 (input (1, 3, 2, 5) with padding (0, 0))"
    )):
        MaxPool2d(3)(floats(backend, 1, 3, 2, 5))
    with pytest.raises(ValueError, match=re.escape(
        "AvgPool2d(kernel_size=(5, 2), stride=1, padding=(2, 0)) expected a padded input of at least 5x2 "
        "(the kernel), got 4x1 (input (3, 0, 1) with padding (2, 0))"
    )):
        AvgPool2d((5, 2), 1, (2, 0))(floats(backend, 3, 0, 1))
    with pytest.raises(ValueError, match=re.escape(
        "MaxPool2d(kernel_size=2, stride=1, padding=0, dilation=3, ceil_mode=False) expected a padded input of "
        "at least 4x4 (the dilated kernel), got 3x6 (input (1, 2, 3, 6) with padding (0, 0))"
    )):
        MaxPool2d(2, 1, dilation=3)(floats(backend, 1, 2, 3, 6))
    with pytest.raises(ValueError, match=re.escape(
        "MaxPool2d(kernel_size=3, stride=(2, 1), padding=0, dilation=1, ceil_mode=True) expected a padded input of "
        "at least 2x3 (the kernel, less stride - 1 with ceil_mode=True), got 2x2 (input (1, 2, 2, 2) with padding (0, 0))"
    )):
        MaxPool2d(3, (2, 1), ceil_mode=True)(floats(backend, 1, 2, 2, 2))
    # ceil mode keeps a window smaller than the kernel, as torch does
    assert tuple(MaxPool2d(3, 2, ceil_mode=True)(floats(backend, 1, 2, 2, 2)).shape) == (1, 2, 1, 1)


@pytest.mark.parametrize("make", [lambda: MaxPool2d(2, padding=1), lambda: AvgPool2d(2, padding=1)], ids=["max", "avg"])
def test_empty_input_planes(backend, make):
    layer = make()
    for shape in [(1, 3, 0, 2), (1, 0, 2, 2), (2, 1, 0)]:
        with pytest.raises(ValueError, match=re.escape(f"{layer!r} expected an input with C, H, W >= 1, got shape {shape}")):
            layer(floats(backend, *shape))
    assert tuple(layer(floats(backend, 0, 3, 2, 2)).shape) == (0, 3, 2, 2)  # an empty batch is fine


@pytest.mark.parametrize("cls", [MaxPool2d, AvgPool2d])
def test_bad_constructor_arguments(backend, cls):
    name = cls.__name__
    for kw, msg in [
        (dict(kernel_size=0), f"{name}: kernel_size must be an int >= 1 or a pair of them, got 0"),
        (dict(kernel_size=(2, -1)), f"{name}: kernel_size must be an int >= 1 or a pair of them, got (2, -1)"),
        (dict(kernel_size=2.0), f"{name}: kernel_size must be an int >= 1 or a pair of them, got 2.0"),
        (dict(kernel_size=2, stride=0), f"{name}: stride must be an int >= 1 or a pair of them, got 0"),
        (dict(kernel_size=2, padding=-1), f"{name}: padding must be an int >= 0 or a pair of them, got -1"),
        (dict(kernel_size=3, padding=2), f"{name}: padding must be at most half of kernel_size, got padding=2 for kernel_size=3"),
        (dict(kernel_size=(4, 2), padding=(2, 2)),
         f"{name}: padding must be at most half of kernel_size, got padding=(2, 2) for kernel_size=(4, 2)"),
        (dict(kernel_size=2, ceil_mode=1), f"{name}: ceil_mode must be True or False, got 1"),
    ]:
        with pytest.raises(ValueError, match=re.escape(msg)):
            cls(**kw)


def test_bad_option_arguments(backend):
    for kw, msg in [
        (dict(dilation=0), "MaxPool2d: dilation must be an int >= 1 or a pair of them, got 0"),
        (dict(dilation=(1, 2, 3)), "MaxPool2d: dilation must be an int >= 1 or a pair of them, got (1, 2, 3)"),
        (dict(return_indices="yes"), "MaxPool2d: return_indices must be True or False, got 'yes'"),
    ]:
        with pytest.raises(ValueError, match=re.escape(msg)):
            MaxPool2d(2, **kw)
    for kw, msg in [
        (dict(count_include_pad=None), "AvgPool2d: count_include_pad must be True or False, got None"),
        (dict(divisor_override=0), "AvgPool2d: divisor_override must be a nonzero int or None, got 0"),
        (dict(divisor_override=2.5), "AvgPool2d: divisor_override must be a nonzero int or None, got 2.5"),
        (dict(divisor_override=True), "AvgPool2d: divisor_override must be a nonzero int or None, got True"),
    ]:
        with pytest.raises(ValueError, match=re.escape(msg)):
            AvgPool2d(2, **kw)
    for bad in (0, -1, (2, 0), (2, 2, 2), 1.5, True):
        with pytest.raises(ValueError, match=re.escape(
            f"AdaptiveAvgPool2d: output_size must be an int >= 1 or a pair of ints >= 1 (or None), got {bad!r}"
        )):
            AdaptiveAvgPool2d(bad)


def test_options_are_stored_and_configured_as_torch(backend, torch):
    """Attributes as torch stores them; config rebuilds the same layer (checkpoints, interop)."""
    m = MaxPool2d((2, 3), 1, (1, 0), dilation=(1, 2), return_indices=True, ceil_mode=True)
    t = torch.nn.MaxPool2d((2, 3), 1, (1, 0), dilation=(1, 2), return_indices=True, ceil_mode=True)
    for f in MaxPool2d._config_fields:
        assert getattr(m, f) == getattr(t, f), f
    assert MaxPool2d(**m.config()).config() == m.config()
    a = AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=5)
    t = torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=5)
    for f in AvgPool2d._config_fields:
        assert getattr(a, f) == getattr(t, f), f
    assert AvgPool2d(**a.config()).config() == a.config()


@pytest.mark.parametrize("make", TWO, ids=TWO_IDS)
def test_backward_before_forward_and_wrong_dy(backend, make):
    layer = make()
    with pytest.raises(RuntimeError, match=re.escape(f"{layer!r}.backward was called before forward")):
        layer.backward(floats(backend, 2, 3, 2, 2))
    layer(floats(backend, 2, 3, 4, 5))
    with pytest.raises(ValueError, match=re.escape(f"{layer!r}.backward expected dy of shape (2, 3, 2, 2) (its output's), got (2, 3, 2, 3)")):
        layer.backward(floats(backend, 2, 3, 2, 3))
    # the failed backward consumed its forward, as every layer's does
    with pytest.raises(RuntimeError, match=re.escape(f"{layer!r}.backward was called before forward (or more often")):
        layer.backward(floats(backend, 2, 3, 2, 2))
    layer(floats(backend, 3, 4, 5))
    with pytest.raises(ValueError, match=re.escape(f"{layer!r}.backward expected dy of shape (3, 2, 2) (its output's), got (1, 3, 2, 2)")):
        layer.backward(floats(backend, 1, 3, 2, 2))
    layer(floats(backend, 3, 4, 5))
    with pytest.raises(TypeError, match=re.escape(f"{layer!r}.backward expected dy of dtype float32 (its output's), got int64")):
        layer.backward(backend.xp.ones((3, 2, 2), dtype=backend.xp.int64, device=backend.device))


# ========================================================================================
# 1-D and 3-D windowed pools: random geometries against torch
# ========================================================================================

SMALL = settings(
    max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def geometries_nd(draw, nd, dilation=False, ceil=False):
    """(kernel, stride, padding, dilation, ceil_mode, input shape) over ``nd`` spatial axes, as
    :func:`geometries` draws them in 2-D (3-D inputs stay small)."""
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd)) if dilation else (1,) * nd
    ceil_mode = draw(st.booleans()) if ceil else False
    size = []
    for a in range(nd):
        span = d[a] * (k[a] - 1) + 1
        least = max(1, span - 2 * p[a] - ((s[a] - 1) if ceil_mode else 0))
        size.append(draw(st.integers(least, least + (2 if nd == 3 else 5))))
    if not all(_every_window_real(size[a], k[a], s[a], p[a], d[a], ceil_mode) for a in range(nd)):
        d = (1,) * nd
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size)
    if draw(st.booleans()):
        shape = shape[1:]
    return k, s, p, d, ceil_mode, shape


@pytest.mark.parametrize("nd", [1, 3])
@SMALL
@given(data=st.data(), relu=st.booleans(), seed=st.integers(0, 2**16))
def test_maxpool_nd_matches_torch(backend, torch, nd, data, relu, seed):
    k, s, p, d, ceil_mode, shape = data.draw(geometries_nd(nd, dilation=True, ceil=True))
    x_np = np.random.default_rng(seed).standard_normal(shape)
    if relu:
        x_np = np.maximum(x_np, 0)  # ties at zero
    kw = dict(dilation=d, ceil_mode=ceil_mode, return_indices=True)
    (y, idx, dx), (yt, it, dxt), dy = run_both(backend, torch, f"MaxPool{nd}d", (k, s, p), kw, x_np)
    np.testing.assert_array_equal(y, yt)
    np.testing.assert_array_equal(idx, it)
    np.testing.assert_allclose(dx, dxt, **TOL[f64])
    np.testing.assert_allclose(dx, routed(idx, dy, shape, nd), **TOL[f64])


@pytest.mark.parametrize("nd", [1, 3])
@SMALL
@given(data=st.data(), include_pad=st.booleans(), seed=st.integers(0, 2**16))
def test_avgpool_nd_matches_torch(backend, torch, nd, data, include_pad, seed):
    k, s, p, _, ceil_mode, shape = data.draw(geometries_nd(nd, ceil=True))
    kw = dict(ceil_mode=ceil_mode, count_include_pad=include_pad)
    if nd == 3:  # torch's AvgPool1d has no divisor_override
        kw["divisor_override"] = data.draw(st.sampled_from([None, 1, 3, -2]))
        # torch's AvgPool3d (alone) refuses an input smaller than the kernel, padding or not; xpnet takes it
        shape = shape[:-3] + tuple(max(n, ki) for n, ki in zip(shape[-3:], k))
    x_np = np.random.default_rng(seed).standard_normal(shape)
    (y, _, dx), (yt, _, dxt), _ = run_both(backend, torch, f"AvgPool{nd}d", (k, s, p), kw, x_np)
    np.testing.assert_allclose(y, yt, **TOL[f64])
    np.testing.assert_allclose(dx, dxt, **TOL[f64])


@pytest.mark.parametrize("nd", [1, 3])
@SMALL
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_pool_nd_gradients(backend, nd, data, seed):
    k, s, p, d, ceil_mode, shape = data.draw(geometries_nd(nd, dilation=True, ceil=True))
    backend.manual_seed(seed)
    cls = {1: (xpnet.MaxPool1d, xpnet.AvgPool1d), 3: (xpnet.MaxPool3d, xpnet.AvgPool3d)}[nd]
    assert gradcheck(cls[0](k, s, p, dilation=d, ceil_mode=ceil_mode), distinct(backend, shape))
    assert gradcheck(cls[1](k, s, p, ceil_mode=ceil_mode, count_include_pad=False),
                     backend.rng.normal(shape, dtype=backend.dtype(f64)))


# ----------------------------------------------------------------------------------------
# power-average pools: torch's formula, its signs, infinite norms and zero sums
# ----------------------------------------------------------------------------------------

def lp_input(kind, shape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    if kind == "positive":
        return np.abs(x) + 0.1
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "zeros":
        return np.zeros(shape)
    if kind == "zero-sums":  # neighbours cancel: windows of 2 summing to exactly 0
        return np.repeat(x[..., ::2], 2, axis=-1) * np.resize([1.0, -1.0], shape[-1])
    return x


LP_PARITY = [
    ("LPPool1d", (2, 3), {}, (2, 3, 8), "normal"),
    ("LPPool1d", (1, 2), {}, (1, 2, 6), "zero-sums"),  # y = 0 and, as torch, no gradient there
    ("LPPool2d", (2, 2), {}, (2, 2, 4, 4), "zeros"),  # the root's slope is infinite at 0: torch gives 0
    ("LPPool2d", (1.5, (2, 3), 1), dict(ceil_mode=True), (2, 2, 5, 7), "positive"),  # partial windows scaled by K / size
    ("LPPool2d", (1.5, 2), {}, (2, 2, 4, 4), "normal"),  # x^1.5 of a negative x: NaN, as torch
    ("LPPool2d", (3, 2), {}, (2, 2, 6, 6), "normal"),  # odd p: a negative sum has no real cube root here either
    ("LPPool2d", (-2, 2, 1), {}, (1, 2, 5, 5), "positive"),
    ("LPPool3d", (math.inf, 2), {}, (1, 2, 4, 4, 4), "normal"),  # max |x|
    ("LPPool3d", (-math.inf, (2, 1, 2), 2), dict(ceil_mode=True), (2, 5, 3, 5), "normal"),  # min |x|
    ("LPPool2d", (math.inf, 3, 2), dict(ceil_mode=True), (2, 6, 7), "relu"),  # |x| ties at 0, sign(0) = 0
    ("LPPool3d", (2, 3, 2), dict(ceil_mode=True), (1, 1, 5, 6, 4), "normal"),
]


@pytest.mark.parametrize("name,args,kwargs,shape,kind", LP_PARITY,
                         ids=[f"{n}{a}{''.join(f'-{k}' for k in kw)}-{kind}" for n, a, kw, _, kind in LP_PARITY])
def test_lppool_matches_torch(backend, torch, name, args, kwargs, shape, kind):
    x_np = lp_input(kind, shape)
    (y, _, dx), (yt, _, dxt), _ = run_both(backend, torch, name, args, kwargs, x_np)
    np.testing.assert_allclose(y, yt, equal_nan=True, **TOL[f64])
    np.testing.assert_allclose(dx, dxt, equal_nan=True, **TOL[f64])
    if kind in ("zeros", "zero-sums"):
        assert not np.any(y) and not np.any(dx)


def test_lppool_is_the_p_norm_of_each_window(backend):
    x_np = lp_input("normal", (2, 3, 4, 6))
    y = host(xpnet.LPPool2d(2, (2, 3))(backend.asarray(x_np)))
    want = np.sqrt((x_np.reshape(2, 3, 2, 2, 2, 3) ** 2).sum(axis=(3, 5)))
    np.testing.assert_allclose(y, want, rtol=1e-12)


# ----------------------------------------------------------------------------------------
# adaptive pools: random sizes, ties and NaN as torch
# ----------------------------------------------------------------------------------------

def tie_prone(kind, shape, seed):
    rng = np.random.default_rng(seed)
    if kind == "ints":
        return rng.integers(-2, 3, size=shape).astype(np.float64)  # many ties
    x = rng.standard_normal(shape)
    return np.maximum(x, 0) if kind == "relu" else x


@pytest.mark.parametrize("nd", [1, 2, 3])
@SMALL
@given(data=st.data(), kind=st.sampled_from(["normal", "relu", "ints"]), seed=st.integers(0, 2**16))
def test_adaptive_pools_match_torch(backend, torch, nd, data, kind, seed):
    hi = 7 if nd < 3 else 5
    size = tuple(data.draw(st.integers(1, hi)) for _ in range(nd))
    some = st.integers(1, hi + 1) if nd == 1 else st.one_of(st.none(), st.integers(1, hi + 1))  # None: 2-D and 3-D
    out = tuple(data.draw(some) for _ in range(nd))  # larger than the input too
    shape = (data.draw(st.integers(1, 2)), 2, *size)
    if data.draw(st.booleans()):
        shape = shape[1:]
    x_np = tie_prone(kind, shape, seed)
    (y, idx, dx), (yt, it, dxt), dy = run_both(backend, torch, f"AdaptiveMaxPool{nd}d", (out,), dict(return_indices=True), x_np)
    np.testing.assert_array_equal(y, yt)
    np.testing.assert_array_equal(idx, it)  # torch's tie rule: the first maximum in scan order
    np.testing.assert_allclose(dx, dxt, **TOL[f64])
    np.testing.assert_allclose(dx, routed(idx, dy, shape, nd), **TOL[f64])
    (y, _, dx), (yt, _, dxt), _ = run_both(backend, torch, f"AdaptiveAvgPool{nd}d", (out,), {}, x_np)
    np.testing.assert_allclose(y, yt, **TOL[f64])
    np.testing.assert_allclose(dx, dxt, **TOL[f64])


def with_nans(shape):
    x = np.random.default_rng(2).standard_normal(shape)
    x.reshape(-1)[[1, 4, 5, 17, 30]] = np.nan  # some windows with one NaN, some with two
    return x


@pytest.mark.parametrize("name,args,kwargs", [
    ("AdaptiveMaxPool2d", ((3, 2),), dict(return_indices=True)),
    ("AdaptiveMaxPool1d", (4,), dict(return_indices=True)),
    ("MaxPool2d", (2,), {}),  # the windowed max pools: NaN outputs as torch (the gradient's place differs)
])
def test_max_pools_propagate_nan_as_torch(backend, torch, name, args, kwargs):
    shape = (1, 2, 6, 5) if name.endswith("2d") else (2, 3, 9)
    (y, idx, dx), (yt, it, dxt), _ = run_both(backend, torch, name, args, kwargs, with_nans(shape))
    np.testing.assert_array_equal(y, yt)
    if idx is not None:  # the gathered pools pick torch's winner: the window's last NaN
        np.testing.assert_array_equal(idx, it)
        np.testing.assert_array_equal(dx, dxt)


# ----------------------------------------------------------------------------------------
# fractional max pools
# ----------------------------------------------------------------------------------------

def fractional_both(backend, torch, nd, k, out, samples, x_np, ratio=None):
    """``((y, idx, dx), (yt, it, dxt))`` of xpnet's and torch's fractional pools with ``samples``."""
    name = f"FractionalMaxPool{nd}d"
    size = dict(output_ratio=ratio) if ratio is not None else dict(output_size=out)
    ours = OURS[name](k, **size, return_indices=True, _random_samples=backend.asarray(samples))
    theirs = getattr(torch.nn, name)(k, **size, return_indices=True, _random_samples=torch.from_numpy(samples))
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt, it = theirs(xt)
    dy = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(x_np.dtype)
    yt.backward(torch.from_numpy(dy))
    y, idx = ours(backend.asarray(x_np, dtype=str(x_np.dtype)))
    dx = ours.backward(backend.asarray(dy, dtype=str(x_np.dtype)))
    assert idx.dtype == backend.dtype("int64") and dx.device == backend.device and ours.pending == 0
    return (host(y), host(idx), host(dx)), (yt.detach().numpy(), it.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("nd", [2, 3])
@SMALL
@given(data=st.data(), kind=st.sampled_from(["normal", "ints"]), dtype=st.sampled_from(["float64", "float32"]),
       seed=st.integers(0, 2**16))
def test_fractional_matches_torch(backend, torch, nd, data, kind, dtype, seed):
    """Given samples: windows, outputs, indices (ties and all) and gradients equal torch's, in
    float32 too (the window starts are computed in the input's dtype, as torch computes them)."""
    k = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    out = tuple(data.draw(st.integers(1, 4)) for _ in range(nd))
    size = tuple(o + ki - (0 if nd == 3 else 1) + data.draw(st.integers(0, 3)) for o, ki in zip(out, k))
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    shape = (n, c, *size)
    if data.draw(st.booleans()):
        shape = shape[1:]  # unbatched: the samples' first row
    rng = np.random.default_rng(seed)
    samples = rng.uniform(size=(n + data.draw(st.integers(0, 1)), c, nd)).astype(dtype)  # more rows than needed: fine
    x_np = tie_prone(kind, shape, seed).astype(dtype)
    (y, idx, dx), (yt, it, dxt) = fractional_both(backend, torch, nd, k, out, samples, x_np)
    np.testing.assert_array_equal(idx, it)
    np.testing.assert_array_equal(y, yt)
    np.testing.assert_allclose(dx, dxt, **TOL[dtype])


def test_fractional_ratio_and_nan_as_torch(backend, torch):
    x_np = with_nans((2, 3, 9, 7))
    samples = np.random.default_rng(3).uniform(size=(2, 3, 2))
    (y, idx, dx), (yt, it, dxt) = fractional_both(backend, torch, 2, (2, 3), None, samples, x_np, ratio=(0.5, 0.6))
    assert y.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(y, yt)
    np.testing.assert_array_equal(idx, it)
    np.testing.assert_array_equal(dx, dxt)


def test_fractional_draws_its_samples_from_the_backend_generator(backend, torch):
    """Without samples each forward draws ``(N, C, nd)`` uniforms from the input backend's
    generator (``(1, C, nd)`` for an unbatched input), as torch draws them."""
    layer = xpnet.FractionalMaxPool2d(2, output_size=(3, 4), return_indices=True)
    for shape in [(2, 3, 7, 9), (3, 7, 9)]:
        x = backend.rng.normal(shape, dtype=backend.dtype(f64))
        backend.manual_seed(7)
        y1, i1 = layer(x)
        backend.manual_seed(7)
        u = backend.rng.uniform((shape[0] if len(shape) == 4 else 1, 3, 2), dtype=backend.dtype(f64))
        t = torch.nn.FractionalMaxPool2d(2, output_size=(3, 4), return_indices=True, _random_samples=torch.from_numpy(host(u)))
        yt, it = t(torch.from_numpy(host(x)))
        np.testing.assert_array_equal(host(y1), yt.numpy())
        np.testing.assert_array_equal(host(i1), it.numpy())
        _, i2 = layer(x)  # fresh samples: other windows (for these sizes, all but surely)
        assert not np.array_equal(host(i1), host(i2))
        dy = backend.rng.normal(tuple(y1.shape), dtype=backend.dtype(f64))
        dx2, dx1 = layer.backward(dy), layer.backward(dy)  # each backward routes through its own forward's windows
        np.testing.assert_allclose(host(dx1), routed(host(i1), host(dy), shape))
        np.testing.assert_allclose(host(dx2), routed(host(i2), host(dy), shape))


def test_fractional_samples_are_a_buffer(backend):
    s = np.random.default_rng(0).uniform(size=(2, 3, 2))
    layer = xpnet.FractionalMaxPool2d(2, output_ratio=0.5, _random_samples=backend.asarray(s))
    assert list(layer.state_dict()) == ["_random_samples"]
    assert layer._random_samples.device == backend.device and layer._random_samples.dtype == backend.dtype(f64)
    layer.to(dtype="float32")
    assert layer._random_samples.dtype == backend.dtype("float32")
    again = xpnet.FractionalMaxPool2d(**layer.config(), backend=backend)
    np.testing.assert_array_equal(host(again._random_samples), host(layer._random_samples))
    assert xpnet.FractionalMaxPool2d(2, output_ratio=0.5).state_dict() == {}
    listed = xpnet.FractionalMaxPool3d(2, output_size=2, _random_samples=[[[0.5, 0.25, 0.0]]])
    assert tuple(listed._random_samples.shape) == (1, 1, 3) and listed._random_samples.dtype == backend.dtype("float32")


def test_fractional_errors(backend):
    f2, f3 = xpnet.FractionalMaxPool2d, xpnet.FractionalMaxPool3d
    for make, msg in [
        (lambda: f2(2), "FractionalMaxPool2d: give exactly one of output_size and output_ratio, got output_size=None, "
                        "output_ratio=None"),
        (lambda: f2(2, 3, 0.5), "FractionalMaxPool2d: give exactly one of output_size and output_ratio, got "
                                "output_size=3, output_ratio=0.5"),
        (lambda: f2(2, output_ratio=1.0), "FractionalMaxPool2d: output_ratio must be a real number in (0.0, 1.0), got 1.0"),
        (lambda: f3(2, output_ratio=(0.5, 0.5)), "FractionalMaxPool3d: output_ratio must be a number in (0, 1) or 3 of "
                                                 "them, got (0.5, 0.5)"),
        (lambda: f3((2, 2), output_size=2), "FractionalMaxPool3d: kernel_size must be an int >= 1 or a tuple of 3 of "
                                            "them, got (2, 2)"),
        (lambda: f2(2, output_size=0), "FractionalMaxPool2d: output_size must be an int >= 1 or a pair of them, got 0"),
        (lambda: f2(2, output_size=2, return_indices=None), "FractionalMaxPool2d: return_indices must be True or False"),
        (lambda: f2(2, output_size=2, _random_samples=[[0.5, 0.5]]),
         "FractionalMaxPool2d: _random_samples must be of shape (N, C, 2) with values in [0, 1), got shape (1, 2)"),
        (lambda: f2(2, output_size=2, _random_samples=[[[0.5, 1.0]]]),
         "FractionalMaxPool2d: _random_samples must be of shape (N, C, 2) with values in [0, 1), got shape (1, 1, 2)"),
    ]:
        with pytest.raises(ValueError, match=re.escape(msg)):
            make()
    with pytest.raises(TypeError, match=r"FractionalMaxPool2d: _random_samples must be None, an array or nested lists"):
        f2(2, output_size=2, _random_samples=[["a", "b"]])
    x = backend.rng.normal((2, 3, 6, 6), dtype=backend.dtype(f64))
    tag = "FractionalMaxPool2d(kernel_size=(2, 2), output_size=(3, 3))"
    layer = f2(2, output_size=3, _random_samples=backend.asarray(np.full((1, 3, 2), 0.5)))
    with pytest.raises(ValueError, match=re.escape(
            f"{tag} has _random_samples of shape (1, 3, 2), which needs a batch of at most 1 and 3 channels, got an "
            "input of shape (2, 3, 6, 6)")):
        layer(x)
    x32 = backend.rng.normal((3, 6, 6), dtype=backend.dtype("float32"))  # float64 samples, rounded to float32
    rounded = f2(2, output_size=3, _random_samples=backend.asarray(np.full((1, 3, 2), 0.5), dtype="float32"))
    np.testing.assert_array_equal(host(layer(x32)), host(rounded(x32)))
    if backend.label != "numpy":
        on_host = f2(2, output_size=3, _random_samples=np.full((2, 3, 2), 0.5))
        with pytest.raises(ValueError, match=re.escape(f"{tag} has its _random_samples on numpy but the input on "
                                                       f"{backend.label}; move the layer with .to({backend.label!r})")):
            on_host(x)
    with pytest.raises(ValueError, match=re.escape(
            f"{tag} expected an input of at least 4x4 (output_size + kernel_size - 1, output size 3x3), got (2, 3, 6, 3)")):
        f2(2, output_size=3)(backend.rng.normal((2, 3, 6, 3), dtype=backend.dtype(f64)))
    with pytest.raises(ValueError, match=re.escape(
            "FractionalMaxPool3d(kernel_size=(2, 2, 2), output_size=(3, 3, 3)) expected an input of at least 5x5x5 "
            "(output_size + kernel_size, output size 3x3x3), got (1, 4, 5, 5)")):
        f3(2, output_size=3)(backend.rng.normal((1, 4, 5, 5), dtype=backend.dtype(f64)))
    with pytest.raises(ValueError, match=re.escape(
            "FractionalMaxPool2d(kernel_size=(2, 2), output_ratio=(0.1, 0.5)) expected an input of at least 1x4 "
            "(output_size + kernel_size - 1, output size 0x3), got (2, 3, 6, 6)")):
        f2(2, output_ratio=(0.1, 0.5))(x)
    with pytest.raises(ValueError, match=re.escape(f"{tag} expected a non-empty input (N, C, H, W >= 1), got shape (0, 3, 6, 6)")):
        f2(2, output_size=3)(backend.rng.normal((0, 3, 6, 6), dtype=backend.dtype(f64)))


# ----------------------------------------------------------------------------------------
# the contracts, over every new pool
# ----------------------------------------------------------------------------------------

SAMPLES = np.random.default_rng(9).uniform(size=(3, 3, 3))
ND_POOLS = [  # (make, a batched input shape, an unbatched one), three channels
    (lambda: xpnet.MaxPool1d(3, 2, 1, return_indices=True), (2, 3, 9), (3, 7)),
    (lambda: xpnet.MaxPool3d(2, ceil_mode=True), (2, 3, 5, 4, 3), (3, 3, 5, 4)),
    (lambda: xpnet.AvgPool1d(2), (2, 3, 6), (3, 5)),
    (lambda: xpnet.AvgPool3d(3, 2, 1, count_include_pad=False), (2, 3, 4, 5, 4), (3, 3, 3, 3)),
    (lambda: xpnet.LPPool1d(1.5, 3), (2, 3, 7), (3, 6)),
    (lambda: xpnet.LPPool3d(math.inf, 2), (2, 3, 4, 4, 2), (3, 2, 3, 2)),
    (lambda: xpnet.AdaptiveAvgPool1d(3), (2, 3, 7), (3, 5)),
    (lambda: xpnet.AdaptiveAvgPool3d((2, None, 3)), (2, 3, 5, 2, 4), (3, 3, 3, 3)),
    (lambda: xpnet.AdaptiveMaxPool1d(2, return_indices=True), (2, 3, 7), (3, 5)),
    (lambda: xpnet.AdaptiveMaxPool3d((1, 2, 3)), (2, 3, 3, 4, 5), (3, 2, 2, 4)),
    (lambda: xpnet.FractionalMaxPool2d(2, output_size=(2, 3), _random_samples=SAMPLES[..., :2].tolist(),
                                       return_indices=True, dtype=f64), (2, 3, 5, 6), (3, 4, 4)),
    (lambda: xpnet.FractionalMaxPool3d(2, output_size=2, _random_samples=SAMPLES.tolist(), dtype=f64),
     (2, 3, 5, 4, 4), (3, 4, 4, 4)),
]
ND_IDS = ["max1d", "max3d", "avg1d", "avg3d", "lp1d", "lp3d-inf", "adaptive-avg1d", "adaptive-avg3d", "adaptive-max1d",
          "adaptive-max3d", "fractional2d", "fractional3d"]


def positive_input(be, shape):
    return be.asarray(np.abs(np.random.default_rng(len(shape)).standard_normal(shape)) + 0.1, dtype=f64)


@pytest.mark.parametrize("make,batched,unbatched", ND_POOLS, ids=ND_IDS)
def test_new_pools_keep_the_saved_value_contract(backend, make, batched, unbatched):
    """A layer used twice (batched, then not) gets two backwards, newest first, each equal to a
    lone use's; dy=None and input_grad=False pop and return None; no_grad keeps nothing."""
    xs = [positive_input(backend, s) for s in (batched, unbatched)]
    lone = []
    for x in xs:
        layer = make()
        out = layer(x)
        dy = host(grads_of(layer, out)[0]) * 0.5 + 1.0
        lone.append((dy, host(layer.backward(backend.asarray(dy), *grads_of(layer, out)[1:]))))
    layer = make()
    out1, out2 = layer(xs[0]), layer(xs[1])
    assert layer.pending == 2
    np.testing.assert_array_equal(host(layer.backward(backend.asarray(lone[1][0]), *grads_of(layer, out2)[1:])), lone[1][1])
    np.testing.assert_array_equal(host(layer.backward(backend.asarray(lone[0][0]), *grads_of(layer, out1)[1:])), lone[0][1])
    layer(xs[0])
    layer(xs[0])
    assert layer.backward(None, *grads_of(layer, out1)[1:]) is None
    assert layer.backward(*grads_of(layer, out1), input_grad=False) is None
    assert layer.pending == 0
    with xpnet.no_grad():
        layer(xs[1])
    assert layer.pending == 0
    with pytest.raises(RuntimeError, match=re.escape(f"{layer!r}.backward was called before forward")):
        layer.backward(*grads_of(layer, out2))


# ----------------------------------------------------------------------------------------
# errors, reprs and attributes of the new pools
# ----------------------------------------------------------------------------------------

RANKS = [
    (lambda: xpnet.MaxPool1d(2), (2, 3, 4, 5), "3-D (N, C, L) or 2-D (C, L)"),
    (lambda: xpnet.AvgPool1d(2), (4,), "3-D (N, C, L) or 2-D (C, L)"),
    (lambda: xpnet.AvgPool3d(2), (3, 4, 4), "5-D (N, C, D, H, W) or 4-D (C, D, H, W)"),
    (lambda: xpnet.LPPool2d(2, 2), (1, 1, 1, 4, 4), "4-D (N, C, H, W) or 3-D (C, H, W)"),
    (lambda: xpnet.AdaptiveMaxPool3d(2), (2, 2, 2), "5-D (N, C, D, H, W) or 4-D (C, D, H, W)"),
    (lambda: xpnet.AdaptiveAvgPool1d(2), (2, 2, 2, 2), "3-D (N, C, L) or 2-D (C, L)"),
    (lambda: xpnet.FractionalMaxPool3d(2, output_size=2), (5, 5), "5-D (N, C, D, H, W) or 4-D (C, D, H, W)"),
]


@pytest.mark.parametrize("make,shape,layout", RANKS, ids=[f"{r[0]().__class__.__name__}-{len(r[1])}d" for r in RANKS])
def test_new_pools_rank_errors(backend, make, shape, layout):
    layer = make()
    with pytest.raises(ValueError, match=re.escape(f"{layer!r} expected a {layout} input, got shape {shape}")):
        layer(floats(backend, *shape))
    with pytest.raises(TypeError, match=re.escape(f"{layer!r} expected a floating-point input, got int64")):
        layer(backend.xp.ones(shape[:-1] if len(shape) > 3 else (1, 3, 8, 8, 8)[:layer.nd + 2],
                              dtype=backend.xp.int64, device=backend.device))


@pytest.mark.parametrize("make,msg", [
    (lambda: xpnet.MaxPool3d((2, 2)), "MaxPool3d: kernel_size must be an int >= 1 or a tuple of 3 of them, got (2, 2)"),
    (lambda: xpnet.MaxPool1d(2, dilation=0), "MaxPool1d: dilation must be an int >= 1 or a tuple of 1 of them, got 0"),
    (lambda: xpnet.MaxPool1d(2, return_indices=0), "MaxPool1d: return_indices must be True or False, got 0"),
    (lambda: xpnet.AvgPool1d(3, padding=2), "AvgPool1d: padding must be at most half of kernel_size, got padding=2 "
                                            "for kernel_size=3"),
    (lambda: xpnet.AvgPool3d(2, divisor_override=0), "AvgPool3d: divisor_override must be a nonzero int or None, got 0"),
    (lambda: xpnet.AvgPool3d(2, count_include_pad=1), "AvgPool3d: count_include_pad must be True or False, got 1"),
    (lambda: xpnet.LPPool2d(0, 2), "LPPool2d: norm_type must be a nonzero real number, got 0"),
    (lambda: xpnet.LPPool2d("2", 2), "LPPool2d: norm_type must be a real number, got '2'"),
    (lambda: xpnet.LPPool1d(float("nan"), 2), "LPPool1d: norm_type must be a real number, got nan"),
    (lambda: xpnet.LPPool3d(2, 2, ceil_mode=None), "LPPool3d: ceil_mode must be True or False, got None"),
    (lambda: xpnet.LPPool3d(2, 2, stride=(1, 1)), "LPPool3d: stride must be an int >= 1 or a tuple of 3 of them, got (1, 1)"),
    (lambda: xpnet.AdaptiveMaxPool3d((2, 2)), "AdaptiveMaxPool3d: output_size must be an int >= 1 or a tuple of 3 ints "
                                              ">= 1 (or None), got (2, 2)"),
    (lambda: xpnet.AdaptiveAvgPool1d(0), "AdaptiveAvgPool1d: output_size must be an int >= 1 or a 1-tuple of an int "
                                         ">= 1, got 0"),
    (lambda: xpnet.AdaptiveMaxPool1d((None,)), "AdaptiveMaxPool1d: output_size must be an int >= 1 or a 1-tuple of an "
                                               "int >= 1, got (None,)"),
    (lambda: xpnet.AdaptiveMaxPool2d(2, return_indices="no"), "AdaptiveMaxPool2d: return_indices must be True or False"),
], ids=str)
def test_new_pools_bad_constructor_arguments(make, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        make()


def test_new_pools_geometry_errors(backend):
    with pytest.raises(ValueError, match=re.escape(
            "MaxPool3d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=False) expected a padded input of at "
            "least 3x3x3 (the kernel), got 3x2x4 (input (1, 3, 2, 4) with padding (0, 0, 0))")):
        xpnet.MaxPool3d(3)(floats(backend, 1, 3, 2, 4))
    with pytest.raises(ValueError, match=re.escape(
            "AvgPool1d(kernel_size=(2,), stride=(2,), padding=(1,)) expected an input with C, L >= 1, got shape (2, 0, 3)")):
        xpnet.AvgPool1d(2, padding=1)(floats(backend, 2, 0, 3))
    with pytest.raises(ValueError, match=re.escape(
            "AdaptiveMaxPool1d(output_size=2) expected an input with L >= 1, got shape (3, 0)")):
        xpnet.AdaptiveMaxPool1d(2)(floats(backend, 3, 0))
    layer = xpnet.AdaptiveMaxPool2d(2)
    layer(floats(backend, 3, 4, 5))
    with pytest.raises(ValueError, match=re.escape(f"{layer!r}.backward expected dy of shape (3, 2, 2) (its output's), "
                                                   "got (1, 3, 2, 2)")):
        layer.backward(floats(backend, 1, 3, 2, 2))


REPRS = [
    ("MaxPool1d", (3, 2, 1), dict(dilation=2, ceil_mode=True, return_indices=True)), ("MaxPool3d", ((2, 1, 2),), {}),
    ("AvgPool1d", (3,), dict(count_include_pad=False, ceil_mode=True)), ("AvgPool3d", (2, 1, (1, 0, 1)), dict(divisor_override=3)),
    ("LPPool1d", (1.5, 3), {}), ("LPPool2d", (2, (2, 3), 1, True), {}), ("LPPool3d", (math.inf, 2), {}),
    ("AdaptiveAvgPool1d", (3,), {}), ("AdaptiveAvgPool3d", ((2, None, 1),), {}), ("AdaptiveMaxPool1d", (2,), {}),
    ("AdaptiveMaxPool2d", ((2, None), True), {}), ("AdaptiveMaxPool3d", (3,), {}),
]


@pytest.mark.parametrize("name,args,kwargs", REPRS, ids=[f"{n}{a}" for n, a, _ in REPRS])
def test_new_pools_repr_attributes_and_config_as_torch(torch, name, args, kwargs):
    ours, theirs = OURS[name](*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    for f in type(ours)._config_fields:
        assert getattr(ours, f) == getattr(theirs, f), f
    assert type(ours)(**ours.config()).config() == ours.config()


def test_fractional_attributes_as_torch(torch):
    for args, kw in [((2,), dict(output_ratio=0.5)), (((2, 3),), dict(output_size=(4, 3), return_indices=True))]:
        ours, theirs = xpnet.FractionalMaxPool2d(*args, **kw), torch.nn.FractionalMaxPool2d(*args, **kw)
        for f in ("kernel_size", "output_size", "output_ratio", "return_indices"):
            assert getattr(ours, f) == getattr(theirs, f), f
    assert repr(xpnet.FractionalMaxPool3d(2, output_ratio=(0.5, 0.25, 0.5))) == \
        "FractionalMaxPool3d(kernel_size=(2, 2, 2), output_ratio=(0.5, 0.25, 0.5))"


# ----------------------------------------------------------------------------------------
# checkpoints, interop, ONNX
# ----------------------------------------------------------------------------------------

def test_checkpoint_rules_predict_the_pools_arrays():
    from xpnet.nets import checkpoint_arch as arch
    from xpnet.nets import spec as spec_mod

    with xpnet.backends.use("numpy"):
        layers = [xpnet.FractionalMaxPool3d(2, output_size=3, _random_samples=SAMPLES),
                  xpnet.FractionalMaxPool2d(2, output_ratio=0.5), xpnet.MaxPool3d(2), xpnet.LPPool1d(2, 3),
                  xpnet.AdaptiveMaxPool2d(2), xpnet.AvgPool1d(3)]
    for layer in layers:
        walk = arch.from_spec(spec_mod.layer_spec(layer))
        assert [e[:4] for e in arch.entries(walk.root)] == [e[:4] for e in arch.entries(arch.from_net(layer))]
    assert walk.floats == 0 and arch.from_spec(spec_mod.layer_spec(layers[0])).floats == SAMPLES.size


@pytest.mark.parametrize("spec,msg", [
    ({"type": "MaxPool3d", "kernel_size": 41}, "MaxPool3d: a 41x41x41 window has more than 65536 positions"),
    ({"type": "LPPool1d", "norm_type": 2, "kernel_size": [70000]}, "LPPool1d: a 70000 window has more than 65536 positions"),
    ({"type": "AvgPool3d", "kernel_size": [2, 2]}, "AvgPool3d: kernel_size must be an int >= 1 or a tuple of 3 of them"),
    ({"type": "FractionalMaxPool2d", "kernel_size": 2, "output_size": 2, "_random_samples": [[0.5, 0.5]]},
     "FractionalMaxPool2d: _random_samples must be None or nested lists of shape (N, C, 2)"),
], ids=["max3d", "lp1d", "avg3d", "fractional"])
def test_checkpoint_schema_bounds_the_pools(spec, msg):
    from xpnet.nets import checkpoint_arch as arch

    with pytest.raises(arch.Invalid, match=re.escape(msg)):
        arch.from_spec(spec)


def test_new_pools_convert_to_and_from_torch(torch):
    with xpnet.backends.use("numpy"):
        net = xpnet.Sequential(xpnet.MaxPool3d(3, 1, 1),
                               xpnet.FractionalMaxPool3d(2, output_size=5, _random_samples=SAMPLES[:2], dtype="float64"),
                               xpnet.LPPool3d(1.5, 2), xpnet.AdaptiveMaxPool3d((2, None, 1)), xpnet.Flatten(),
                               xpnet.Unflatten(1, (3, 4)), xpnet.AvgPool1d(2), xpnet.AdaptiveAvgPool1d(3))
    x = np.abs(np.random.default_rng(0).standard_normal((2, 3, 8, 8, 8))) + 0.1
    module = xpnet.to_torch(net)
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), host(net(xpnet.backends.get().asarray(x))),
                               rtol=1e-12)
    back = xpnet.from_torch(module)
    assert xpnet.nets.spec.layer_spec(back) == xpnet.nets.spec.layer_spec(net)


def _onnx_session(model):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("opset", [13, 18])
def test_uneven_adaptive_max_pool_exports_at_both_reduce_max_forms(opset, tmp_path):
    pytest.importorskip("onnx", reason="the onnx package is not installed")
    net = xpnet.Sequential(xpnet.AdaptiveMaxPool3d((2, 3, None)), xpnet.LPPool3d(-math.inf, (1, 2, 2), ceil_mode=True))
    x = np.random.default_rng(4).standard_normal((2, 2, 5, 4, 3)).astype(np.float32)
    model = xpnet.to_onnx(net, tmp_path / "m.onnx", x.shape, opset=opset)
    assert "ReduceMax" in {n.op_type for n in model.graph.node}
    with eval_mode(net):
        want = host(net(x))
    np.testing.assert_allclose(_onnx_session(model).run(None, {"input": x})[0], want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layer,why", [
    (xpnet.AdaptiveMaxPool3d(2, return_indices=True), "return_indices=True gives a pair"),
    (xpnet.MaxPool1d(2, return_indices=True), "return_indices=True gives a pair"),
    (xpnet.FractionalMaxPool2d(2, output_ratio=0.5), "its windows are placed at random"),
], ids=["adaptive-max", "max1d", "fractional"])
def test_onnx_refuses_what_it_cannot_express(layer, why, tmp_path):
    pytest.importorskip("onnx", reason="the onnx package is not installed")
    shape = (1, 2) + (6,) * layer.nd
    with pytest.raises(ValueError, match=rf"^to_onnx: layer '0' \({type(layer).__name__}\) cannot be exported: {why}"):
        xpnet.to_onnx(xpnet.Sequential(layer), tmp_path / "m.onnx", shape)
