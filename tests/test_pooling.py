"""MaxPool2d, AvgPool2d and AdaptiveAvgPool2d: float64 gradient checks on random geometries,
parity with torch.nn (outputs and input gradients, float64 and float32), max-pool tie-breaking
exactly as PyTorch's CPU kernel, and every error a user may meet. Every test runs on every backend."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnet.layers.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from xpnet.testing import gradcheck
from tests.conftest import host

SETTINGS = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
f64 = "float64"
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}


@st.composite
def geometries(draw):
    """(kernel, stride, padding, input shape) with the kernel fitting the padded input;
    strides below, at and above the kernel (overlapping windows, tiling, gaps)."""
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    h = draw(st.integers(max(1, k[0] - 2 * p[0]), k[0] + 4))
    w = draw(st.integers(max(1, k[1] - 2 * p[1]), k[1] + 4))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w)
    if draw(st.booleans()):
        shape = shape[1:]  # unbatched (C, H, W), as torch accepts
    return k, s, p, shape


def distinct(be, shape):
    """float64 values that are all distinct, at least 1 apart: no near-ties for max-pool gradchecks."""
    xp = be.xp
    n = int(np.prod(shape))
    return xp.reshape(xp.astype(be.rng.permutation(n), be.dtype(f64)), shape) - n / 2


# ----------------------------------------------------------------------------------------
# gradient checks
# ----------------------------------------------------------------------------------------

@SETTINGS
@given(geo=geometries(), seed=st.integers(0, 2**16))
def test_maxpool_gradients(backend, geo, seed):
    k, s, p, shape = geo
    backend.manual_seed(seed)
    assert gradcheck(MaxPool2d(k, s, p), distinct(backend, shape))


@SETTINGS
@given(geo=geometries(), seed=st.integers(0, 2**16))
def test_avgpool_gradients(backend, geo, seed):
    k, s, p, shape = geo
    backend.manual_seed(seed)
    assert gradcheck(AvgPool2d(k, s, p), backend.rng.normal(shape, dtype=backend.dtype(f64)))


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

# (torch.nn class name, constructor args, input shape)
PARITY = [
    ("MaxPool2d", (2,), (4, 3, 8, 8)),
    ("MaxPool2d", (2,), (3, 7, 9)),  # unbatched, odd size: the last row/column is dropped
    ("MaxPool2d", (3, 2, 1), (2, 3, 9, 8)),  # overlapping windows, padding
    ("MaxPool2d", (3, 1, 1), (2, 2, 6, 7)),  # stride 1: each element in up to 9 windows
    ("MaxPool2d", ((2, 3), (3, 1), (1, 0)), (2, 3, 7, 8)),  # rectangular everything
    ("MaxPool2d", (2, 3), (2, 2, 8, 9)),  # gaps between windows
    ("AvgPool2d", (2,), (4, 3, 8, 8)),
    ("AvgPool2d", (3, 2, 1), (2, 3, 9, 8)),
    ("AvgPool2d", ((3, 2), (1, 2), (1, 1)), (3, 5, 7)),
    ("AvgPool2d", (2, 3), (2, 2, 8, 9)),
    ("AdaptiveAvgPool2d", (1,), (4, 5, 7, 6)),  # global average pooling
    ("AdaptiveAvgPool2d", ((3, 4),), (2, 3, 7, 10)),  # uneven, overlapping windows
    ("AdaptiveAvgPool2d", ((None, 2),), (3, 5, 6)),
    ("AdaptiveAvgPool2d", (9,), (2, 2, 4, 5)),  # output larger than the input
    ("AdaptiveAvgPool2d", ((4, 5),), (2, 2, 4, 5)),  # same size: identity
]
OURS = {"MaxPool2d": MaxPool2d, "AvgPool2d": AvgPool2d, "AdaptiveAvgPool2d": AdaptiveAvgPool2d}


def run_both(backend, torch, name, args, x_np, dy_np=None):
    """(y, dx) from xpnet on ``backend`` and from torch.nn autograd on the CPU; dy random if not given."""
    ours, theirs = OURS[name](*args), getattr(torch.nn, name)(*args)
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt = theirs(xt)
    if dy_np is None:
        dy_np = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(x_np.dtype)
    yt.backward(torch.from_numpy(dy_np))
    dt = str(x_np.dtype)
    y = ours(backend.asarray(x_np, dtype=dt))
    dx = ours.backward(backend.asarray(dy_np, dtype=dt))
    for a in (y, dx):
        assert a.dtype == backend.dtype(dt) and a.device == backend.device
    return (host(y), host(dx)), (yt.detach().numpy(), xt.grad.numpy()), dy_np


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("relu", [False, True], ids=["normal", "relu"])
@pytest.mark.parametrize("name,args,shape", PARITY, ids=[f"{n}{a}-{s}" for n, a, s in PARITY])
def test_parity_with_torch(backend, torch, name, args, shape, relu, dtype):
    x_np = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    if relu:
        x_np = np.maximum(x_np, 0)  # half the inputs tie at zero
    (y, dx), (yt, dxt), _ = run_both(backend, torch, name, args, x_np)
    assert y.shape == yt.shape and dx.shape == dxt.shape
    np.testing.assert_allclose(y, yt, err_msg="output", **TOL[dtype])
    np.testing.assert_allclose(dx, dxt, err_msg="dx", **TOL[dtype])


def test_repr_matches_torch(backend, torch):
    for name, args, _ in PARITY:
        assert repr(OURS[name](*args)) == repr(getattr(torch.nn, name)(*args))


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
    (y, dx), (yt, dxt), _ = run_both(backend, torch, "MaxPool2d", args, x_np, dy_np)
    np.testing.assert_array_equal(y, yt)
    np.testing.assert_array_equal(dx, dxt)
    assert dx.sum() == dy_np.sum()  # no gradient duplicated on ties, none lost
    if args == (2,):  # non-overlapping windows: exactly one element per window receives gradient
        assert np.count_nonzero(dx) == dy_np.size


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
        (dict(kernel_size=2, ceil_mode=True), f"{name}: ceil_mode=True is not supported; xpnet implements ceil_mode=False (torch's default)"),
    ]:
        with pytest.raises(ValueError, match=re.escape(msg)):
            cls(**kw)


def test_unsupported_torch_options(backend):
    with pytest.raises(ValueError, match=re.escape("MaxPool2d: dilation=2 is not supported; xpnet implements dilation=1")):
        MaxPool2d(2, dilation=2)
    with pytest.raises(ValueError, match=re.escape("MaxPool2d: return_indices=True is not supported")):
        MaxPool2d(2, return_indices=True)
    with pytest.raises(ValueError, match=re.escape("AvgPool2d: count_include_pad=False is not supported")):
        AvgPool2d(2, count_include_pad=False)
    with pytest.raises(ValueError, match=re.escape("AvgPool2d: divisor_override=3 is not supported")):
        AvgPool2d(2, divisor_override=3)
    assert repr(MaxPool2d(2, dilation=(1, 1), return_indices=False, ceil_mode=False)).startswith("MaxPool2d(kernel_size=2")
    for bad in (0, -1, (2, 0), (2, 2, 2), 1.5, True):
        with pytest.raises(ValueError, match=re.escape(
            f"AdaptiveAvgPool2d: output_size must be an int >= 1 or a pair of ints >= 1 (or None), got {bad!r}"
        )):
            AdaptiveAvgPool2d(bad)


@pytest.mark.parametrize("make", TWO, ids=TWO_IDS)
def test_backward_before_forward_and_wrong_dy(backend, make):
    layer = make()
    with pytest.raises(RuntimeError, match=re.escape(f"{layer!r}.backward was called before forward")):
        layer.backward(floats(backend, 2, 3, 2, 2))
    layer(floats(backend, 2, 3, 4, 5))
    with pytest.raises(ValueError, match=re.escape(f"{layer!r}.backward expected dy of shape (2, 3, 2, 2), got (2, 3, 2, 3)")):
        layer.backward(floats(backend, 2, 3, 2, 3))
    layer.backward(floats(backend, 2, 3, 2, 2))  # the failed call left the forward's state intact
    with pytest.raises(RuntimeError, match=re.escape(f"{layer!r}.backward was called before forward (or twice")):
        layer.backward(floats(backend, 2, 3, 2, 2))
    layer(floats(backend, 3, 4, 5))
    with pytest.raises(ValueError, match=re.escape(f"{layer!r}.backward expected dy of shape (3, 2, 2), got (1, 3, 2, 2)")):
        layer.backward(floats(backend, 1, 3, 2, 2))
