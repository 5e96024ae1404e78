"""ConvTranspose1d/2d/3d: gradients (float64 finite differences), parity with torch.nn (outputs and
every gradient, float64 and float32), ``output_size``, initialisation, the layer contract (a layer
applied twice before its backwards, work buffers, input_grad=False, frozen parameters) and the
errors, on every backend present. Both im2col methods are covered (the shift one only at stride 1,
forced off by ``_shift_max_waste = -1``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnet as xn
from tests.conftest import host
from tests.test_conv import SETTINGS, _applied_twice, _check_against_torch, _gradcheck_config, _never_leaks, _pair_of, _windowed

@st.composite
def configs(draw):
    """A random valid transposed convolution (1-3 axes) and an input shape."""
    d = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(d))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(d))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(d))
    output_padding = tuple(draw(st.integers(0, max(s, dl) - 1)) for s, dl in zip(stride, dilation))
    padding = tuple(draw(st.integers(0, 1)) for _ in range(d))
    # every output size positive: (S - 1) s + d (k - 1) + op + 1 > 2 p
    size = tuple(1 + draw(st.integers(0, 2)) + p for p in padding)
    return (f"ConvTranspose{d}d", dict(in_channels=cin, out_channels=cout, kernel_size=kernel, stride=stride,
                                       padding=padding, output_padding=output_padding, groups=groups,
                                       bias=draw(st.booleans()), dilation=dilation),
            (draw(st.integers(1, 2)), cin) + size)


@settings(SETTINGS, max_examples=16)
@given(cfg=configs(), seed=st.integers(0, 2**16), windowed=st.booleans())
def test_gradients(backend, cfg, seed, windowed):
    _gradcheck_config(backend, cfg, seed, windowed)


@pytest.mark.parametrize("output_size, shape", [
    ((9, 12), (2, 3, 4, 5)), ((10, 11), (2, 3, 4, 5)), ([2, 2, 10, 12], (2, 3, 4, 5)), ((2, 10, 11), (3, 4, 5)),
])
def test_output_size_matches_torch(backend, torch, output_size, shape):
    """``output_size`` picks the output padding (with or without the leading N, C or C), as torch."""
    layer, tlayer = _pair_of(torch, "ConvTranspose2d", dict(in_channels=3, out_channels=2, kernel_size=3, stride=2),
                             "float64")
    _check_against_torch(backend, torch, layer, tlayer, shape, "float64", output_size=output_size)


def test_output_size_errors(backend):
    layer = xn.ConvTranspose2d(3, 2, 3, stride=2)
    x = backend.rng.normal((2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"^ConvTranspose2d: requested an output size of \[11, 11\], but valid sizes "
                                         r"range from \[9, 11\] to \[10, 12\] \(for an input of \[4, 5\]\)$"):
        layer(x, output_size=(11, 11))
    with pytest.raises(ValueError, match=r"^ConvTranspose2d: for 4-D input, output_size must have 2 or 4 elements "
                                         r"\(got 3\)$"):
        layer(x, output_size=(2, 9, 11))
    with pytest.raises(ValueError, match=r"^ConvTranspose2d: for 3-D input, output_size must have 2 or 3 elements"):
        layer(x[0, ...], output_size=(2, 2, 9, 11))
    with pytest.raises(TypeError, match=r"^ConvTranspose2d: output_size must be a tuple or list of ints, got 9"):
        layer(x, output_size=9)
    assert layer.pending == 0


@pytest.mark.parametrize("windowed", [False, True], ids=["auto", "windowed"])
@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=2, stride=2, groups=3, bias=False)],
                         ids=["stride1", "stride2-groups"])
def test_applied_twice_matches_torch(backend, torch, kwargs, windowed):
    """up(up(x)) with one layer: two forwards, then two backwards, as torch's module applied twice."""
    layer, tlayer = _pair_of(torch, "ConvTranspose2d", dict(in_channels=3, out_channels=3, **kwargs), "float64")
    _applied_twice(backend, torch, _windowed(layer, windowed), tlayer, (2, 3, 3, 4))


def test_work_buffers_never_leak(backend):
    """Stride 1 with a wide kernel: the rows of x's matrix layout are wider than x (a work buffer)."""
    _never_leaks(backend, xn.ConvTranspose1d(2, 3, 5, dtype="float64"), [(n, 2, 4) for n in (3, 3, 2)])


@pytest.mark.parametrize("frozen", ["weight", "bias", "both"])
def test_frozen_parameters_get_no_gradient(backend, torch, frozen):
    layer, tlayer = _pair_of(torch, "ConvTranspose2d", dict(in_channels=2, out_channels=4, kernel_size=3, stride=2,
                                                            groups=2), "float64")
    names = ("weight", "bias") if frozen == "both" else (frozen,)
    for name in names:
        getattr(layer, name).requires_grad_(False)
        getattr(tlayer, name).requires_grad_(False)
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((2, 2, 3, 4))
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt = tlayer(xt)
    dy_np = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(dy_np))
    x, dy = backend.asarray(x_np, dtype="float64"), backend.asarray(dy_np, dtype="float64")
    layer(x)
    np.testing.assert_allclose(host(layer.backward(dy)), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in layer.named_parameters():
        assert (p.grad is None) == (name in names), name
    layer.zero_grad()
    layer(x)
    assert layer.backward(dy, input_grad=False) is None
    assert all(p.grad is None for n, p in layer.named_parameters() if n in names)


def test_init_like_torch(backend):
    """torch's fan_in of the (in, out / groups, *k) layout: out / groups * prod(k)."""
    layer = xn.ConvTranspose2d(4, 6, (3, 2), groups=2)
    bound = 1.0 / math.sqrt(3 * 3 * 2)
    w, b = host(layer.weight.data), host(layer.bias.data)
    assert w.shape == (4, 3, 3, 2) and b.shape == (6,) and w.dtype == np.float32
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    assert np.abs(w).max() > 0.8 * bound
    assert xn.ConvTranspose3d(1, 2, 1, bias=False).bias is None


def test_errors(backend):
    layer = xn.ConvTranspose1d(2, 3, 3, padding=3)
    with pytest.raises(ValueError, match=r"^ConvTranspose1d\(2 -> 3\): an input of size \(2,\) gives an output of size "
                                         r"\(-2,\): padding \(3,\) is too large for it$"):
        layer(backend.rng.normal((1, 2, 2)))
    with pytest.raises(TypeError, match=r"ConvTranspose1d\(2 -> 3\) expected a float32 input to match its parameters"):
        layer(backend.rng.normal((1, 2, 5), dtype=backend.dtype("float64")))
    layer(backend.rng.normal((1, 2, 5)))
    with pytest.raises(ValueError, match=r"^ConvTranspose1d\(2 -> 3\)\.backward expected dy of shape \(1, 3, 1\) "
                                         r"\(its output's\), got \(1, 3, 2\)$"):
        layer.backward(backend.rng.normal((1, 3, 2)))
