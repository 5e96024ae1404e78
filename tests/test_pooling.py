"""MaxPool2d, AvgPool2d and AdaptiveAvgPool2d: float64 gradient checks on random geometries (every
option: dilation, ceil mode, count_include_pad, divisor_override, return_indices), parity with
torch.nn (outputs, indices and input gradients, float64 and float32), max-pool tie-breaking exactly as PyTorch's CPU kernel, the saved-value stack (a pool
applied twice, dy=None, input_grad=False, no_grad), and every error a user may meet. Every test
runs on every backend."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet
from xpnet.layers.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from xpnet.layers.pooling._windows import axis_windows
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
OURS = {"MaxPool2d": MaxPool2d, "AvgPool2d": AvgPool2d, "AdaptiveAvgPool2d": AdaptiveAvgPool2d}
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


def routed(idx, dy, x_shape):
    """The input gradient of sending each dy element to the input element its index names."""
    n_planes = int(np.prod(x_shape[:-2]))
    plane = x_shape[-2] * x_shape[-1]
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

@pytest.mark.parametrize("make", [lambda: MaxPool2d(1), lambda: AvgPool2d(1), lambda: AdaptiveAvgPool2d((None, None))],
                         ids=["MaxPool2d(1)", "AvgPool2d(1)", "AdaptiveAvgPool2d((None, None))"])
def test_outputs_and_gradients_are_fresh_arrays(backend, make):
    """Even when pooling is the identity, y and dx never alias the caller's x and dy."""
    layer = make()
    x = backend.rng.normal((2, 3, 4, 4), dtype=backend.dtype(f64))
    dy = backend.rng.normal((2, 3, 4, 4), dtype=backend.dtype(f64))
    x0, dy0 = host(x), host(dy)
    y = layer(x)
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
