"""xpnet.layers._pad.pad and pad_backward against torch.nn.functional.pad: every mode, 1-D to
3-D padding, negative pads (cropping), torch's limits, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet.layers._pad import pad, pad_backward
from tests.conftest import host

MODES = ("constant", "reflect", "replicate", "circular")

# (input shape, pads): last axis first, negatives crop; every one of them torch accepts in every mode
SHAPES = [
    ((2, 3, 5), (2, 1)),
    ((2, 3, 5), (-1, 2)),
    ((2, 3, 5), (3, -2)),
    ((2, 3, 5), (4, 4)),          # reflect up to n - 1 on each side, circular up to n
    ((3, 6), (-2, 3)),            # unbatched 1-D
    ((2, 4, 5), (1, 2, 3, -1)),
    ((1, 2, 4, 5), (-2, 3, 2, -1)),
    ((2, 3, 4, 5), (2, 2, -1, -1)),
    ((1, 2, 4, 3, 5), (1, 2, -1, 2, 2, 1)),
    ((2, 3, 4), (0, 0)),
]


def _torch_pad(torch, x, pads, mode, value):
    import torch.nn.functional as F

    return F.pad(x, pads, mode=mode, value=value) if mode == "constant" else F.pad(x, pads, mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_pad_and_backward_match_torch(backend, torch, mode):
    rng = np.random.default_rng(7)
    for shape, pads in SHAPES:
        x = rng.standard_normal(shape)
        tx = torch.tensor(x, requires_grad=True)
        ty = _torch_pad(torch, tx, pads, mode, 0.25)
        y = pad(backend.asarray(x, dtype="float64"), pads, mode, 0.25)
        np.testing.assert_allclose(host(y), ty.detach().numpy(), rtol=0, atol=0, err_msg=f"{shape} {pads}")
        dy = rng.standard_normal(tuple(ty.shape))
        (g,) = torch.autograd.grad(ty, tx, torch.tensor(dy))
        dx = pad_backward(backend.asarray(dy, dtype="float64"), pads, mode, shape)
        assert tuple(dx.shape) == shape
        np.testing.assert_allclose(host(dx), g.numpy(), rtol=1e-12, atol=1e-12, err_msg=f"{shape} {pads}")


def test_constant_pad_any_rank_and_dtype(backend, torch):
    """Constant padding works on any rank (torch's too), float32 stays float32, and padding
    fewer axes than the input has leaves the leading ones alone."""
    x = np.arange(24.0).reshape(2, 3, 4)
    y = pad(backend.asarray(x, dtype="float32"), (1, 0, 0, 2, 1, 1), value=-1.0)
    assert backend.dtype_name(y.dtype) == "float32"
    np.testing.assert_array_equal(host(y), _torch_pad(torch, torch.tensor(x), (1, 0, 0, 2, 1, 1), "constant", -1.0).numpy())
    z = pad(backend.asarray(x[0, 0], dtype="float32"), (2, 1))
    np.testing.assert_array_equal(host(z), [0, 0, 0, 1, 2, 3, 0])


def test_nothing_to_pad_returns_the_input(backend):
    x = backend.asarray(np.ones((2, 3)), dtype="float64")
    for mode in MODES:
        assert pad(x, (0, 0), mode) is x


@pytest.mark.parametrize("mode, pads, message", [
    ("reflect", (5, 0), r"pad: reflect padding must be less than the input size along the axis, got padding \(5, 0\) for axis 2 of size 5"),
    ("reflect", (-3, 5), r"reflect padding must be less than the input size"),
    ("circular", (6, 0), r"pad: circular padding \(6, 0\) for axis 2 of size 5 wraps around more than once; it must be at most the \(cropped\) size 5"),
    ("circular", (-3, 3), r"circular padding \(-3, 3\) .* at most the \(cropped\) size 2"),
    ("replicate", (-3, -2), r"pad: padding \(-3, -2\) leaves 0 entries along axis 2 of size 5 .*; the output needs at least 1"),
    ("constant", (-4, -2), r"pad: padding \(-4, -2\) leaves -1 entries"),
    ("edge", (1, 1), r"pad: mode must be one of \('constant', 'reflect', 'replicate', 'circular'\), got 'edge'"),
    ("constant", (1, 1, 1), r"pad: pads must be a tuple of ints of even length"),
    ("constant", (1.0, 1), r"pad: pads must be a tuple of ints"),
    ("constant", (1,) * 8, r"pad: 8 padding values pad 4 axes, but the input has only 3"),
])
def test_pad_refuses_what_torch_refuses(torch, mode, pads, message):
    """Each of these pads torch refuses too (checked below), with the reason."""
    from xpnet import backends

    x = np.zeros((1, 1, 5))
    with pytest.raises(ValueError, match=message):
        pad(backends.get("numpy").asarray(x), pads, mode)
    with pytest.raises((RuntimeError, ValueError, NotImplementedError, TypeError)):
        _torch_pad(torch, torch.tensor(x), pads, mode, 0.0)


def test_circular_empty_axis_is_allowed(backend, torch):
    """Cropping an axis to nothing is fine in constant and circular modes (as in torch)."""
    x = np.ones((1, 1, 5))
    for mode in ("constant", "circular"):
        y = pad(backend.asarray(x, dtype="float64"), (-3, -2), mode)
        assert tuple(y.shape) == (1, 1, 0) == tuple(_torch_pad(torch, torch.tensor(x), (-3, -2), mode, 0.0).shape)
        dx = pad_backward(y, (-3, -2), mode, (1, 1, 5))
        np.testing.assert_array_equal(host(dx), np.zeros((1, 1, 5)))


# -- the layers built on it, and the others of this family: what the case table does not check ------------------
import xpnet as xn  # noqa: E402


@pytest.mark.parametrize("make, message", [
    (lambda: xn.ZeroPad2d((1, 2)), r"ZeroPad2d: padding must be an int or a tuple of 4 ints \(left, right, top, bottom\), got \(1, 2\)"),
    (lambda: xn.ReflectionPad1d(1.5), r"ReflectionPad1d: padding must be an int or a tuple of 2 ints"),
    (lambda: xn.ConstantPad3d(1, "0"), r"ConstantPad3d: value must be a real number, got '0'"),
    (lambda: xn.Upsample(), r"Upsample: give exactly one of size and scale_factor, got size=None, scale_factor=None"),
    (lambda: xn.Upsample(size=2, scale_factor=2), r"Upsample: give exactly one of size and scale_factor"),
    (lambda: xn.Upsample(scale_factor=2, align_corners=True), r"Upsample: align_corners can only be set with the "
                                                              r"interpolating modes .*, got mode='nearest'"),
    (lambda: xn.Upsample(scale_factor=2, mode="bicubic"), r"Upsample: mode must be one of \('nearest', 'nearest-exact', "
                                                          r"'linear', 'bilinear', 'trilinear'\), got 'bicubic'"),
    (lambda: xn.Upsample(size=(2, 0)), r"Upsample: size must be None, a positive int or a tuple of them, got \(2, 0\)"),
    (lambda: xn.Upsample(scale_factor=-1.0), r"Upsample: scale_factor must be None, a positive number"),
    (lambda: xn.PixelShuffle(0), r"PixelShuffle: upscale_factor must be a positive int, got 0"),
    (lambda: xn.Dropout2d(1.5), r"Dropout2d: p must be a probability in \[0, 1\], got 1\.5"),
    (lambda: xn.CosineSimilarity(eps=0.0), r"CosineSimilarity: eps must be a positive real number, got 0\.0"),
    (lambda: xn.PairwiseDistance(keepdim=1), r"PairwiseDistance: keepdim must be True or False, got 1"),
    (lambda: xn.Bilinear(2, 0, 3), r"Bilinear: in2_features must be a positive int, got 0"),
    (lambda: xn.Embedding(4, 2, sparse=True), r"Embedding: sparse=True \(sparse gradient tensors\) is not available: "
                                              r"the array API has no sparse arrays"),
    (lambda: xn.Embedding(4, 2, max_norm="1"), r"Embedding: max_norm must be a real number, got '1'"),
])
def test_bad_constructor_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_channel_dropout_zeroes_whole_channels(backend):
    x = backend.asarray(np.ones((8, 6, 3, 2)), dtype="float64")
    y = host(xn.Dropout2d(0.5)(x))
    per_channel = y.reshape(8, 6, -1)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert np.all(per_channel.min(axis=2) == per_channel.max(axis=2))  # one draw per sample and channel
    assert 0 < np.sum(per_channel[:, :, 0] == 0) < 48
    d3 = xn.Dropout3d(0.5)
    y3 = host(d3(backend.asarray(np.ones((6, 2, 2, 3)), dtype="float64")))  # unbatched (C, D, H, W)
    assert np.all(y3.reshape(6, -1).min(axis=1) == y3.reshape(6, -1).max(axis=1))
    np.testing.assert_array_equal(host(d3.backward(backend.asarray(np.ones((6, 2, 2, 3)), dtype="float64"))), y3)


def test_alpha_dropout_keeps_mean_and_variance():
    """A standard-normal input keeps (about) mean 0 and variance 1: the point of alpha dropout."""
    be = xn.backends.get("numpy").manual_seed(5)
    x = be.asarray(np.random.default_rng(0).standard_normal((400, 500)))
    y = xn.AlphaDropout(0.3)(x)
    assert abs(float(np.mean(y))) < 0.02 and abs(float(np.var(y)) - 1.0) < 0.03
    assert np.mean(np.isclose(y, -1.7580993408473766 * (1 / np.sqrt((1.758 ** 2 * 0.3 + 1) * 0.7)) * 0.7, atol=1e-3)) > 0.25
    yf = host(xn.FeatureAlphaDropout(0.3)(be.asarray(np.zeros((50, 40, 3)))))
    assert np.all(yf.min(axis=2) == yf.max(axis=2))


def test_embedding_max_norm_rebinds_only_the_rows_looked_up(backend):
    emb = xn.Embedding(5, 3, max_norm=1.0, backend=backend, dtype="float64")
    w0 = np.arange(15.0).reshape(5, 3) / 4
    emb.load_state_dict({"weight": w0})
    before = emb.weight.data
    y = emb(backend.asarray(np.array([[1, 3], [1, 0]])))
    w = host(emb.weight.data)
    assert emb.weight.data is not before  # rebound, never written in place
    np.testing.assert_array_equal(host(before), w0)
    np.testing.assert_allclose(np.linalg.norm(w[[1, 3]], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(w[[2, 4]], w0[[2, 4]])
    np.testing.assert_allclose(w[0], w0[0])  # norm 0.56 < max_norm: untouched
    np.testing.assert_allclose(host(y), w[[[1, 3], [1, 0]]])


def test_interop_round_trip(torch):
    nn = torch.nn
    module = nn.Sequential(nn.ReflectionPad2d((1, 0, 2, 1)), nn.ConstantPad2d(1, 0.5), nn.Upsample(scale_factor=(2, 2.0), mode="bilinear"),
                           nn.PixelUnshuffle(2), nn.PixelShuffle(2), nn.Dropout2d(0.3), nn.CircularPad2d(1)).double().eval()
    net = xn.from_torch(module)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(host(net(xn.backends.get("numpy").asarray(x))), module(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    back = xn.to_torch(net)
    assert repr(back) == repr(module)
    dist = xn.from_torch(nn.PairwiseDistance(3.0, eps=0.1, keepdim=True))  # torch keeps p as .norm
    assert (dist.p, dist.eps, dist.keepdim) == (3.0, 0.1, True)
    assert xn.to_torch(dist).norm == 3.0
    emb = xn.from_torch(nn.Embedding(4, 2, max_norm=1.5, norm_type=1.0, scale_grad_by_freq=True))
    assert (emb.max_norm, emb.norm_type, emb.scale_grad_by_freq) == (1.5, 1.0, True)


def test_two_input_layers_are_refused_by_onnx(tmp_path):
    pytest.importorskip("onnx")
    for layer in (xn.CosineSimilarity(), xn.PairwiseDistance(), xn.Bilinear(2, 2, 2)):
        with pytest.raises(ValueError, match=rf"to_onnx: the net \({type(layer).__name__}\) cannot be exported: it takes two inputs"):
            xn.to_onnx(layer, tmp_path / "m.onnx", (1, 2))
