"""The convolutions: Conv1d/2d/3d, ConvTranspose1d/2d/3d and the lazy ones. Gradients (float64
finite differences), parity with torch.nn (outputs and every gradient, float64 and float32, alone
and inside a trained Sequential), the padding modes, ``output_size``, initialisation, printing,
the layer contract (unbatched input, one layer applied several times before its backwards,
input_grad=False, frozen parameters, no_grad), the lazy layers' materialization, and every error
a user may meet, on every backend present.

Both im2col methods are covered: the "shift" one (stride 1) and the windowed one (any stride;
forced on stride 1 by setting ``_shift_max_waste = -1`` on the instance).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet as xn
from xpnet import backends
from xpnet.layers.conv import Conv2d
from xpnet.testing import gradcheck
from tests.conftest import host

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")

SETTINGS = settings(
    max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-5)}


def _windowed(layer, force):
    """Make ``layer`` use the windowed im2col even at stride 1."""
    if force:
        layer._shift_max_waste = -1.0
    return layer


# ----------------------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------------------

@st.composite
def conv_configs(draw):
    """A random valid Conv2d configuration and an input shape it fits (small: strict is slow)."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = draw(st.sampled_from([(1, 1), (1, 1), (2, 1), (1, 3), (2, 2)]))
    choices = ["valid", (0, 0), (1, 2), (2, 1)] + (["same", "same"] if stride == (1, 1) else [])
    padding = draw(st.sampled_from(choices))
    pads = (0, 0) if padding in ("valid", "same") else padding
    # the dilated kernel must fit the padded input
    h = max(1, dilation[0] * (kernel[0] - 1) + 1 - 2 * pads[0]) + draw(st.integers(0, 3))
    w = max(1, dilation[1] * (kernel[1] - 1) + 1 - 2 * pads[1]) + draw(st.integers(0, 3))
    return dict(in_channels=cin, out_channels=cout, kernel_size=kernel, stride=stride, padding=padding,
                dilation=dilation, groups=groups, bias=draw(st.booleans())), (draw(st.integers(1, 3)), cin, h, w)


@settings(SETTINGS, max_examples=24)
@given(cfg=conv_configs(), seed=st.integers(0, 2**16), windowed=st.booleans())
def test_gradients(backend, cfg, seed, windowed):
    kwargs, shape = cfg
    backend.manual_seed(seed)
    layer = _windowed(Conv2d(**kwargs, dtype="float64"), windowed)
    x = backend.rng.normal(shape, dtype=backend.dtype("float64"))
    assert gradcheck(layer, x)


def test_gradients_same_padding_even_kernels(backend):
    """padding='same' with even kernels pads one more at the bottom/right, as torch does."""
    backend.manual_seed(3)
    for kernel, dilation in (((2, 4), (1, 1)), ((4, 2), (1, 3)), ((2, 2), (2, 2))):
        layer = Conv2d(2, 3, kernel, padding="same", dilation=dilation, dtype="float64")
        x = backend.rng.normal((2, 2, 5, 6), dtype=backend.dtype("float64"))
        assert tuple(layer(x).shape) == (2, 3, 5, 6)
        assert gradcheck(layer, x)


# ----------------------------------------------------------------------------------------
# parity with torch.nn.Conv2d
# ----------------------------------------------------------------------------------------

PARITY = [
    # (id, Conv2d kwargs, input shape)
    ("3x3-pad1", dict(in_channels=3, out_channels=4, kernel_size=3, padding=1), (3, 3, 7, 6)),
    ("1-channel", dict(in_channels=1, out_channels=5, kernel_size=3, padding=1), (4, 1, 6, 6)),
    ("pad0-nonsquare", dict(in_channels=2, out_channels=3, kernel_size=(2, 3)), (2, 2, 6, 8)),
    ("stride2", dict(in_channels=3, out_channels=2, kernel_size=3, stride=2, padding=1), (2, 3, 9, 7)),
    ("stride-2x1-dilation", dict(in_channels=2, out_channels=4, kernel_size=(3, 2), stride=(2, 1),
                                 padding=(2, 1), dilation=(2, 3)), (2, 2, 8, 9)),
    ("groups", dict(in_channels=4, out_channels=6, kernel_size=3, padding=1, groups=2), (2, 4, 5, 6)),
    ("depthwise-stride", dict(in_channels=3, out_channels=3, kernel_size=3, stride=2, groups=3, bias=False),
     (3, 3, 7, 7)),
    ("same-even", dict(in_channels=2, out_channels=3, kernel_size=(4, 2), padding="same"), (2, 2, 6, 5)),
    ("same-dilated", dict(in_channels=2, out_channels=2, kernel_size=3, padding="same", dilation=2), (2, 2, 7, 6)),
    ("valid-1x1", dict(in_channels=3, out_channels=4, kernel_size=1, padding="valid"), (2, 3, 4, 5)),
    ("kernel-fills-input", dict(in_channels=2, out_channels=3, kernel_size=(3, 4)), (2, 2, 3, 4)),
    # output wider than the input, and left padding wider than a buffer row (shift method's slack rows)
    ("padding-wider-than-input", dict(in_channels=2, out_channels=2, kernel_size=(2, 4), padding=(1, 3),
                                      dilation=(1, 2)), (2, 2, 3, 1)),
    ("big-padding", dict(in_channels=1, out_channels=2, kernel_size=2, padding=3), (2, 1, 2, 3)),
]


def _pair(torch, kwargs, dtype):
    """xpnet Conv2d (default backend) and torch.nn.Conv2d with the same weights."""
    ours = Conv2d(**kwargs, dtype=dtype)
    theirs = torch.nn.Conv2d(**kwargs).to(getattr(torch, dtype))
    sd = {k: torch.from_numpy(host(v)) for k, v in ours.state_dict().items()}
    assert set(sd) == set(theirs.state_dict())
    theirs.load_state_dict(sd)
    return ours, theirs


def _close(ours, theirs, dtype, what):
    a, b = host(ours), theirs.detach().numpy()
    assert a.shape == b.shape, f"{what}: shape {a.shape} != torch {b.shape}"
    assert a.dtype == np.dtype(dtype), f"{what}: dtype {a.dtype}"
    np.testing.assert_allclose(a, b, err_msg=what, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("windowed", [False, True], ids=["auto", "windowed"])
@pytest.mark.parametrize("case", PARITY, ids=[c[0] for c in PARITY])
def test_matches_torch(backend, torch, case, windowed, dtype):
    _, kwargs, shape = case
    layer, tlayer = _pair(torch, kwargs, dtype)
    _windowed(layer, windowed)
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(shape).astype(dtype)
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt = tlayer(xt)
    dy_np = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.from_numpy(dy_np))

    x = backend.asarray(x_np, dtype=dtype)
    y = layer(x)
    assert backends.backend_of(y) is backend
    dx = layer.backward(backend.asarray(dy_np, dtype=dtype))
    assert backends.backend_of(dx) is backend and dx.device == x.device
    _close(y, yt, dtype, "output")
    _close(dx, xt.grad, dtype, "dx")
    _close(layer.weight.grad, tlayer.weight.grad, dtype, "weight grad")
    if layer.bias is not None:
        _close(layer.bias.grad, tlayer.bias.grad, dtype, "bias grad")

    # input_grad=False: no dx, and the same parameter gradients
    grads = [p.grad for p in layer.parameters()]
    layer.zero_grad()
    layer(x)
    assert layer.backward(backend.asarray(dy_np, dtype=dtype), input_grad=False) is None
    for p, g in zip(layer.parameters(), grads):
        np.testing.assert_array_equal(host(p.grad), host(g))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sequential_training_matches_torch(backend, torch, dtype):
    """Conv-ReLU-Conv(stride 2)-Flatten-Linear, cross-entropy, SGD with momentum: 4 steps in lockstep."""
    nn = torch.nn
    net = xn.Sequential(
        Conv2d(2, 4, 3, padding=1, dtype=dtype), xn.ReLU(),
        Conv2d(4, 6, 3, stride=2, groups=2, dtype=dtype), xn.Tanh(),
        xn.Flatten(), xn.Linear(6 * 3 * 2, 3, dtype=dtype),
    )
    tnet = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, groups=2), nn.Tanh(),
        nn.Flatten(), nn.Linear(6 * 3 * 2, 3),
    ).to(getattr(torch, dtype))
    tnet.load_state_dict({k: torch.from_numpy(host(v)) for k, v in net.state_dict().items()})
    crit, tcrit = xn.CrossEntropyLoss(), nn.CrossEntropyLoss()
    opt = xn.SGD(net.parameters(), lr=0.05, momentum=0.9)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(5)
    for step in range(4):
        x_np = rng.standard_normal((5, 2, 7, 6)).astype(dtype)
        t_np = rng.integers(0, 3, size=5)
        opt.zero_grad()
        loss = crit(net(backend.asarray(x_np, dtype=dtype)), backend.asarray(t_np, dtype="int64"))
        assert net.backward(crit.backward(), input_grad=False) is None
        opt.step()
        topt.zero_grad()
        lt = tcrit(tnet(torch.from_numpy(x_np)), torch.from_numpy(t_np))
        lt.backward()
        topt.step()
        np.testing.assert_allclose(float(host(loss)), lt.item(), err_msg=f"loss at step {step}", **TOL[dtype])
        for (name, p), tp in zip(net.named_parameters(), tnet.parameters()):
            _close(p.data, tp, dtype, f"{name} after step {step + 1}")


# ----------------------------------------------------------------------------------------
# 1-D and 3-D, and the border padding modes
# ----------------------------------------------------------------------------------------

PARITY_ND = [
    # (id, class name, kwargs, input shape)
    ("1d", "Conv1d", dict(in_channels=3, out_channels=4, kernel_size=3, padding=1), (3, 3, 9)),
    ("1d-stride-dilation-groups", "Conv1d",
     dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=2, dilation=2, groups=2), (2, 4, 11)),
    ("1d-same-even-dilated", "Conv1d", dict(in_channels=2, out_channels=3, kernel_size=4, padding="same", dilation=3),
     (2, 2, 10)),
    ("1d-padding-wider-than-input", "Conv1d", dict(in_channels=2, out_channels=2, kernel_size=3, padding=4), (2, 2, 2)),
    ("3d", "Conv3d", dict(in_channels=2, out_channels=3, kernel_size=(2, 3, 2), padding=(1, 1, 0)), (2, 2, 4, 5, 4)),
    ("3d-stride-dilation-groups", "Conv3d",
     dict(in_channels=4, out_channels=2, kernel_size=2, stride=(2, 1, 2), dilation=(1, 2, 1), padding=1, groups=2,
          bias=False), (2, 4, 5, 5, 4)),
    ("3d-same", "Conv3d", dict(in_channels=2, out_channels=2, kernel_size=(3, 2, 3), padding="same"), (1, 2, 3, 4, 5)),
    ("2d-reflect", "Conv2d", dict(in_channels=2, out_channels=3, kernel_size=3, padding=(2, 1), padding_mode="reflect"),
     (2, 2, 5, 4)),
    ("2d-replicate-stride", "Conv2d",
     dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=2, padding_mode="replicate"), (2, 2, 5, 6)),
    ("2d-circular-same-even", "Conv2d",
     dict(in_channels=2, out_channels=2, kernel_size=(2, 4), padding="same", padding_mode="circular"), (2, 2, 4, 5)),
    ("1d-reflect-same", "Conv1d", dict(in_channels=2, out_channels=2, kernel_size=5, padding="same",
                                       padding_mode="reflect"), (2, 2, 6)),
    ("3d-circular-groups", "Conv3d", dict(in_channels=2, out_channels=4, kernel_size=2, padding=(1, 0, 1), groups=2,
                                          padding_mode="circular"), (1, 2, 3, 3, 3)),
]


def _pair_of(torch, name, kwargs, dtype):
    """xpnet's layer ``name`` (default backend) and torch.nn's, with the same weights."""
    ours = getattr(xn, name)(**kwargs, dtype=dtype)
    theirs = getattr(torch.nn, name)(**kwargs).to(getattr(torch, dtype))
    sd = {k: torch.from_numpy(host(v)) for k, v in ours.state_dict().items()}
    assert set(sd) == set(theirs.state_dict())
    theirs.load_state_dict(sd)
    return ours, theirs


def _check_against_torch(backend, torch, layer, tlayer, shape, dtype, seed=0, **forward_kwargs):
    """One forward and backward of both on the same random input and cotangent: output, input
    gradient, every parameter gradient; returns the input and the cotangent (on ``backend``)."""
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal(shape).astype(dtype)
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt = tlayer(xt, **forward_kwargs)
    dy_np = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.from_numpy(dy_np))
    x, dy = backend.asarray(x_np, dtype=dtype), backend.asarray(dy_np, dtype=dtype)
    y = layer(x, **forward_kwargs)
    assert backends.backend_of(y) is backend
    dx = layer.backward(dy)
    assert backends.backend_of(dx) is backend and dx.device == x.device
    _close(y, yt, dtype, "output")
    _close(dx, xt.grad, dtype, "dx")
    for name, p in layer.named_parameters():
        _close(p.grad, getattr(tlayer, name).grad, dtype, f"{name} grad")
    return x, dy


PARITY_TRANSPOSED = [
    ("T1d", "ConvTranspose1d", dict(in_channels=3, out_channels=2, kernel_size=3), (2, 3, 5)),
    ("T1d-stride-padding-output-padding", "ConvTranspose1d",
     dict(in_channels=2, out_channels=4, kernel_size=4, stride=3, padding=2, output_padding=2, groups=2), (3, 2, 4)),
    ("T1d-dilation-over-stride", "ConvTranspose1d",
     dict(in_channels=2, out_channels=2, kernel_size=3, dilation=3, output_padding=2, padding=4), (2, 2, 6)),
    ("T2d-upsample", "ConvTranspose2d", dict(in_channels=3, out_channels=2, kernel_size=4, stride=2, padding=1),
     (2, 3, 4, 5)),
    ("T2d-stride1-padding", "ConvTranspose2d", dict(in_channels=2, out_channels=3, kernel_size=(3, 2), padding=(1, 0)),
     (2, 2, 4, 5)),
    ("T2d-groups-no-bias", "ConvTranspose2d",
     dict(in_channels=4, out_channels=6, kernel_size=3, stride=(2, 1), groups=2, bias=False, output_padding=(1, 0)),
     (2, 4, 3, 4)),
    ("T2d-kernel-below-stride", "ConvTranspose2d", dict(in_channels=2, out_channels=2, kernel_size=2, stride=3),
     (1, 2, 3, 3)),
    ("T2d-padding-eats-output", "ConvTranspose2d", dict(in_channels=2, out_channels=2, kernel_size=3, padding=2),
     (2, 2, 4, 3)),
    ("T3d", "ConvTranspose3d", dict(in_channels=2, out_channels=3, kernel_size=(2, 3, 2), stride=(2, 1, 2), padding=1),
     (2, 2, 3, 3, 2)),
    ("T3d-dilation-output-padding-groups", "ConvTranspose3d",
     dict(in_channels=4, out_channels=2, kernel_size=2, dilation=(1, 2, 3), output_padding=(0, 1, 2), groups=2),
     (1, 4, 2, 3, 2)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("windowed", [False, True], ids=["auto", "windowed"])
@pytest.mark.parametrize("case", PARITY_ND + PARITY_TRANSPOSED, ids=[c[0] for c in PARITY_ND + PARITY_TRANSPOSED])
def test_nd_padding_modes_and_transposed_match_torch(backend, torch, case, windowed, dtype):
    _, name, kwargs, shape = case
    layer, tlayer = _pair_of(torch, name, kwargs, dtype)
    x, dy = _check_against_torch(backend, torch, _windowed(layer, windowed), tlayer, shape, dtype)

    # input_grad=False: no dx, and the same parameter gradients
    grads = [p.grad for p in layer.parameters()]
    layer.zero_grad()
    layer(x)
    assert layer.backward(dy, input_grad=False) is None and layer.pending == 0
    for p, g in zip(layer.parameters(), grads):
        np.testing.assert_array_equal(host(p.grad), host(g))


@st.composite
def nd_configs(draw):
    """A random valid Conv1d or Conv3d configuration (any padding mode) and an input shape it fits."""
    d = draw(st.sampled_from([1, 3]))
    groups = draw(st.sampled_from([1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(d))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(d))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(d))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(d))
    if all(s == 1 for s in stride) and draw(st.booleans()):
        padding = "same"
    pads = [(dl * (k - 1)) // 2 + 1 for dl, k in zip(dilation, kernel)] if padding == "same" else padding
    # the dilated kernel must fit the padded input, and reflect padding must be below the size
    size = tuple(max(dl * (k - 1) + 1, p + 1) + draw(st.integers(0, 2)) for dl, k, p in zip(dilation, kernel, pads))
    return (f"Conv{d}d", dict(in_channels=cin, out_channels=cout, kernel_size=kernel, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=draw(st.booleans()), padding_mode=mode),
            (draw(st.integers(1, 2)), cin) + size)


def _gradcheck_config(backend, cfg, seed, windowed):
    """gradcheck of ``(class name, kwargs, input shape)`` in float64."""
    name, kwargs, shape = cfg
    backend.manual_seed(seed)
    layer = _windowed(getattr(xn, name)(**kwargs, dtype="float64"), windowed)
    assert gradcheck(layer, backend.rng.normal(shape, dtype=backend.dtype("float64")))


@settings(SETTINGS, max_examples=16)
@given(cfg=nd_configs(), seed=st.integers(0, 2**16), windowed=st.booleans())
def test_nd_gradients(backend, cfg, seed, windowed):
    _gradcheck_config(backend, cfg, seed, windowed)


UNBATCHED = [
    ("Conv1d", dict(in_channels=2, out_channels=3, kernel_size=3, padding=1, padding_mode="reflect"), (2, 2, 6)),
    ("Conv3d", dict(in_channels=2, out_channels=2, kernel_size=2, stride=(1, 2, 1), padding="valid"), (2, 2, 3, 4, 3)),
    ("ConvTranspose1d", dict(in_channels=2, out_channels=4, kernel_size=3, stride=2, groups=2), (2, 2, 4)),
    ("ConvTranspose2d", dict(in_channels=2, out_channels=3, kernel_size=2, padding=1), (2, 2, 4, 5)),
    ("ConvTranspose3d", dict(in_channels=2, out_channels=2, kernel_size=2, output_padding=1, stride=2), (2, 2, 2, 3, 2)),
]


@pytest.mark.parametrize("case", UNBATCHED, ids=[c[0] for c in UNBATCHED])
def test_unbatched_is_one_sample_of_a_batch(backend, case):
    """An input without the batch axis gives what the same sample in a batch gives (output, dx, dW, db)."""
    name, kwargs, shape = case
    f64 = backend.dtype("float64")
    layer = getattr(xn, name)(**kwargs, dtype="float64")
    x = backend.rng.normal(shape, dtype=f64)
    y = layer(x)
    dy = backend.xp.concat([backend.rng.normal((1,) + tuple(y.shape[1:]), dtype=f64),
                            backend.xp.zeros((shape[0] - 1,) + tuple(y.shape[1:]), dtype=f64, device=backend.device)])
    dx = layer.backward(dy)
    grads = [host(p.grad) for p in layer.parameters()]
    layer.zero_grad()
    y1 = layer(x[0, ...])
    assert y1.ndim == len(shape) - 1
    dx1 = layer.backward(dy[0, ...])
    np.testing.assert_allclose(host(y1), host(y)[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(dx1), host(dx)[0], rtol=1e-12, atol=1e-12)
    for p, g in zip(layer.parameters(), grads):
        np.testing.assert_allclose(host(p.grad), g, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------
# the contract: unbatched input, a layer applied twice, input_grad=False, frozen parameters
# ----------------------------------------------------------------------------------------

def _torch_grads(torch, tlayer, x_np, dy_np):
    """torch's output, input gradient and parameter gradients (None for a frozen one)."""
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt = tlayer(xt)
    yt.backward(torch.from_numpy(dy_np))
    return yt, xt.grad, {n: p.grad for n, p in tlayer.named_parameters()}


@pytest.mark.parametrize("windowed", [False, True], ids=["auto", "windowed"])
@pytest.mark.parametrize("case", [c for c in PARITY if c[0] in ("3x3-pad1", "stride-2x1-dilation", "groups",
                                                                  "same-even", "padding-wider-than-input")],
                         ids=lambda c: c[0])
def test_unbatched_input_matches_torch(backend, torch, case, windowed):
    """(C, H, W) -> (O, OH, OW), as torch."""
    _, kwargs, shape = case
    layer, tlayer = _pair(torch, kwargs, "float64")
    _windowed(layer, windowed)
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal(shape[1:])
    yt = tlayer(torch.from_numpy(x_np))
    dy_np = rng.standard_normal(tuple(yt.shape))
    yt, dxt, tgrads = _torch_grads(torch, tlayer, x_np, dy_np)
    x = backend.asarray(x_np, dtype="float64")
    y = layer(x)
    assert y.ndim == 3
    dx = layer.backward(backend.asarray(dy_np, dtype="float64"))
    _close(y, yt, "float64", "output")
    _close(dx, dxt, "float64", "dx")
    for name, p in layer.named_parameters():
        _close(p.grad, tgrads[name], "float64", f"{name} grad")
    layer.zero_grad()
    assert gradcheck(layer, x)


@pytest.mark.parametrize("windowed", [False, True], ids=["auto", "windowed"])
@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, padding=1),  # the same shape twice: the same column buffer would be reused
    dict(kernel_size=(2, 3), padding=(1, 0), groups=3),
    dict(kernel_size=3, stride=2, padding=1, bias=False),
], ids=["same-shape", "groups", "stride2"])
def test_applied_twice_matches_torch(backend, torch, kwargs, windowed):
    """conv(conv(x)) with one Conv2d: two forwards, then two backwards, as torch's module applied twice."""
    layer, tlayer = _pair(torch, dict(in_channels=3, out_channels=3, **kwargs), "float64")
    _applied_twice(backend, torch, _windowed(layer, windowed), tlayer, (2, 3, 9, 8))


def _applied_twice(backend, torch, layer, tlayer, shape):
    """``layer(layer(x))``, then two backwards, against torch's module applied twice."""
    rng = np.random.default_rng(2)
    x_np = rng.standard_normal(shape)
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt = tlayer(tlayer(xt))
    dy_np = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(dy_np))

    y = layer(layer(backend.asarray(x_np, dtype="float64")))
    assert layer.pending == 2
    dx = layer.backward(layer.backward(backend.asarray(dy_np, dtype="float64")))
    assert layer.pending == 0
    _close(y, yt, "float64", "output")
    _close(dx, xt.grad, "float64", "dx")
    for (name, p), tp in zip(layer.named_parameters(), tlayer.parameters()):
        _close(p.grad, tp.grad, "float64", f"{name} grad")


def test_interleaved_uses_keep_their_own_columns(backend):
    """Forwards and backwards of one layer interleaved (x1, x2, back 2, x3, back 3, back 1): each
    backward gives what a backward right after its own forward gives."""
    f64 = backend.dtype("float64")
    layer = Conv2d(2, 3, 3, padding=1, dtype="float64")
    xs = [backend.rng.normal((2, 2, 5, 6), dtype=f64) for _ in range(3)]
    dys = [backend.rng.normal((2, 3, 5, 6), dtype=f64) for _ in range(3)]
    want = []
    for x, dy in zip(xs, dys):
        layer(x)
        want.append((host(layer.backward(dy)), host(layer.weight.grad), host(layer.bias.grad)))
        layer.zero_grad()
    got = [None] * 3
    layer(xs[0])
    layer(xs[1])
    got[1] = layer.backward(dys[1])
    layer(xs[2])
    got[2] = layer.backward(dys[2])
    got[0] = layer.backward(dys[0])
    for i in range(3):
        np.testing.assert_allclose(host(got[i]), want[i][0], rtol=1e-13, atol=1e-13, err_msg=f"dx of use {i}")
    np.testing.assert_allclose(host(layer.weight.grad), sum(w[1] for w in want), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(layer.bias.grad), sum(w[2] for w in want), rtol=1e-12, atol=1e-12)


def test_columns_are_kept_without_a_copy(backend):
    """Step after step, forward saves the layer's one column buffer itself (no new array, no copy)."""
    layer = Conv2d(2, 3, 3, padding=1)
    x = backend.rng.normal((2, 2, 5, 6))
    dy = backend.rng.normal((2, 3, 5, 6))
    first = None
    for _ in range(3):
        layer(x)
        cols, *rest = layer.saved()
        buf = layer._work._bufs["cols"]
        first = buf if first is None else first
        assert buf is first
        if backend.label == "numpy":
            assert np.shares_memory(cols, buf)
        layer.save_for_backward(cols, *rest)
        layer.backward(dy)


@pytest.mark.parametrize("stride", [1, 2])
def test_input_grad_false_skips_col2im(backend, monkeypatch, stride):
    """input_grad=False returns None without running col2im, and gives the same parameter gradients."""
    import xpnet.layers.conv as conv_module

    f64 = backend.dtype("float64")
    layer = Conv2d(2, 4, 3, stride=stride, padding=1, groups=2, dtype="float64")
    x = backend.rng.normal((3, 2, 6, 5), dtype=f64)
    y = layer(x)
    dy = backend.rng.normal(tuple(y.shape), dtype=f64)
    layer.backward(dy)
    want = [host(p.grad) for p in layer.parameters()]
    layer.zero_grad()

    def no_col2im(*args, **kwargs):
        raise AssertionError("col2im ran for input_grad=False")

    monkeypatch.setattr(conv_module, "col2im", no_col2im)
    layer(x)
    assert layer.backward(dy, input_grad=False) is None
    assert layer.pending == 0
    for p, g in zip(layer.parameters(), want):
        np.testing.assert_array_equal(host(p.grad), g)


@pytest.mark.parametrize("frozen", ["weight", "bias", "both"])
def test_frozen_parameters_get_no_gradient(backend, torch, frozen):
    kwargs = dict(in_channels=2, out_channels=4, kernel_size=3, padding=1, groups=2)
    layer, tlayer = _pair(torch, kwargs, "float64")
    names = ("weight", "bias") if frozen == "both" else (frozen,)
    for name in names:
        getattr(layer, name).requires_grad_(False)
        getattr(tlayer, name).requires_grad_(False)
    rng = np.random.default_rng(3)
    x_np, dy_np = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((2, 4, 5, 4))
    _, dxt, tgrads = _torch_grads(torch, tlayer, x_np, dy_np)
    x, dy = backend.asarray(x_np, dtype="float64"), backend.asarray(dy_np, dtype="float64")
    layer(x)
    _close(layer.backward(dy), dxt, "float64", "dx")
    for name, p in layer.named_parameters():
        if name in names:
            assert p.grad is None, name
        else:
            _close(p.grad, tgrads[name], "float64", f"{name} grad")
    layer.zero_grad()
    assert gradcheck(layer, x)
    layer(x)
    assert layer.backward(dy, input_grad=False) is None
    assert all(p.grad is None for n, p in layer.named_parameters() if n in names)


def test_no_grad_keeps_nothing(backend):
    layer = Conv2d(2, 3, 3, padding=1)
    with xn.no_grad():
        y = layer(backend.rng.normal((2, 2, 5, 5)))
    assert tuple(y.shape) == (2, 3, 5, 5) and layer.pending == 0
    with pytest.raises(RuntimeError, match=r"Conv2d\(2 -> 3\)\.backward was called before forward"):
        layer.backward(y)


def test_none_gradient_pops_and_returns_none(backend):
    layer = Conv2d(2, 3, 3)
    layer(backend.rng.normal((1, 2, 4, 4)))
    assert layer.backward(None) is None
    assert layer.pending == 0 and layer.weight.grad is None


# ----------------------------------------------------------------------------------------
# construction, initialisation, printing
# ----------------------------------------------------------------------------------------

def test_init_like_torch(backend):
    layer = Conv2d(6, 8, (3, 2), groups=2)
    bound = 1.0 / math.sqrt(3 * 3 * 2)
    w, b = host(layer.weight.data), host(layer.bias.data)
    assert w.shape == (8, 3, 3, 2) and b.shape == (8,)
    assert w.dtype == np.float32 and b.dtype == np.float32
    assert backends.backend_of(layer.weight.data) is backend
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    assert np.abs(w).max() > 0.8 * bound  # spread over the whole interval, not a narrower one
    assert Conv2d(1, 2, 3, bias=False).bias is None
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    backend.manual_seed(7)
    first = host(Conv2d(2, 3, 3).weight.data)
    backend.manual_seed(7)
    np.testing.assert_array_equal(first, host(Conv2d(2, 3, 3).weight.data))
    assert Conv2d(1, 1, 1, dtype="float64").weight.dtype == backend.dtype("float64")


@pytest.mark.parametrize("kwargs", [
    dict(in_channels=3, out_channels=16, kernel_size=3, padding=1),
    dict(in_channels=3, out_channels=16, kernel_size=(3, 5), padding="same", bias=False),
    dict(in_channels=6, out_channels=3, kernel_size=3, stride=2, padding="valid", dilation=2, groups=3),
    dict(in_channels=2, out_channels=4, kernel_size=(1, 2), stride=(2, 1), padding=(0, 1)),
])
def test_repr_like_torch(backend, torch, kwargs):
    assert repr(Conv2d(**kwargs)) == repr(torch.nn.Conv2d(**kwargs))


def test_extra_repr_example(backend):
    assert Conv2d(3, 16, 3, padding=1).extra_repr() == "3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)"


def test_method_choice(backend):
    """stride 1 takes the shift im2col, unless its wasted columns would exceed the limit; other strides window."""
    x = backend.rng.normal((2, 3, 8, 8))

    def shift_used(layer):
        layer(x)
        geo = layer.saved()[1]  # the geometry forward used
        return geo.shift

    assert shift_used(Conv2d(3, 2, 3, padding=1))
    assert shift_used(Conv2d(3, 2, (1, 5), padding="same"))
    assert not shift_used(Conv2d(3, 2, 3, padding=1, stride=2))
    assert not shift_used(Conv2d(3, 2, 3, padding=1, dilation=(1, 3)))  # 6 wasted columns for 4 outputs
    assert not shift_used(_windowed(Conv2d(3, 2, 3, padding=1), True))


def test_strided_input_and_dy(backend):
    """Views (a transposed input, a sliced cotangent) give the same results as fresh arrays."""
    xp = backend.xp
    layer = Conv2d(3, 2, 3, padding=1, dtype="float64")
    f64 = backend.dtype("float64")
    xt = backend.rng.normal((2, 3, 6, 5), dtype=f64)
    big_dy = backend.rng.normal((2, 2, 10, 6), dtype=f64)
    x_view, dy_view = xp.permute_dims(xt, (0, 1, 3, 2)), big_dy[:, :, ::2, :]
    x_copy, dy_copy = xp.asarray(x_view, copy=True), xp.asarray(dy_view, copy=True)
    y1 = layer(x_view)
    dx1 = layer.backward(dy_view)
    g1 = layer.weight.grad
    layer.zero_grad()
    y2 = layer(x_copy)
    dx2 = layer.backward(dy_copy)
    np.testing.assert_allclose(host(y1), host(y2), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(host(dx1), host(dx2), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(host(g1), host(layer.weight.grad), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("stride", [1, 2])
def test_work_buffers_never_leak(backend, stride):
    _never_leaks(backend, Conv2d(2, 3, 3, stride=stride, padding=1, dtype="float64"), [(n, 2, 6, 5) for n in (3, 3, 2, 3)])


def _never_leaks(backend, layer, shapes):
    """Outputs, input gradients and parameter gradients of one call are not changed by the next
    (the layer reuses its work buffers), across input shapes (batch sizes), forward-only calls
    under no_grad and two calls stacked before their backwards."""
    f64 = backend.dtype("float64")
    kept = []
    for shape in shapes:
        x = backend.rng.normal(shape, dtype=f64)
        y = layer(x)
        with xn.no_grad():  # a forward-only call between a forward and its backward
            layer(backend.rng.normal(shape, dtype=f64))
        y_again = layer(x)  # stacked: its backward runs first
        dy = backend.rng.normal(tuple(y.shape), dtype=f64)
        dx_again = layer.backward(dy)
        dx = layer.backward(dy)
        assert layer.pending == 0
        kept.append((y, host(y), dx, host(dx), layer.weight.grad, host(layer.weight.grad)))
        np.testing.assert_array_equal(host(y_again), host(y))
        np.testing.assert_array_equal(host(dx_again), host(dx))
        layer.zero_grad()
    for y, y0, dx, dx0, g, g0 in kept:
        np.testing.assert_array_equal(host(y), y0)
        np.testing.assert_array_equal(host(dx), dx0)
        np.testing.assert_array_equal(host(g), g0)


def test_forward_does_not_touch_input(backend):
    x = backend.rng.normal((2, 3, 5, 5))
    before = host(x)
    layer = Conv2d(3, 2, 3, padding=1)
    layer.backward(layer(x) * 1.0)
    np.testing.assert_array_equal(host(x), before)


# ----------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_size=0), r"Conv2d: kernel_size must be an int >= 1 or a pair of them, got 0"),
    (dict(kernel_size=(3, -1)), r"Conv2d: kernel_size must be an int >= 1 .* got \(3, -1\)"),
    (dict(kernel_size=3, stride=0), r"Conv2d: stride must be an int >= 1 .* got 0"),
    (dict(kernel_size=3, dilation=(1, 0)), r"Conv2d: dilation must be an int >= 1 .* got \(1, 0\)"),
    (dict(kernel_size=3, padding=-1), r"Conv2d: padding must be an int >= 0 .* got -1"),
    (dict(kernel_size=3, padding="full"), r"Conv2d: padding must be an int, a pair, 'same' or 'valid', got 'full'"),
    (dict(kernel_size=3, padding="same", stride=2), r"Conv2d: padding='same' needs stride 1 .* got stride=\(2, 2\)"),
    (dict(kernel_size=3, groups=2), r"Conv2d: in_channels \(3\) and out_channels \(4\) must both be divisible by groups \(2\)"),
    (dict(kernel_size=3, groups=0), r"Conv2d: groups must be a positive int, got 0"),
    (dict(kernel_size=3, bias=1), r"Conv2d: bias must be True or False, got 1"),
])
def test_construction_errors(backend, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv2d(3, 4, **kwargs)


def test_channel_count_errors(backend):
    with pytest.raises(ValueError, match=r"Conv2d: in_channels must be a positive int, got 0"):
        Conv2d(0, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d: out_channels must be a positive int, got 2.5"):
        Conv2d(3, 2.5, 3)
    with pytest.raises(ValueError, match=r"Conv2d: in_channels \(4\) and out_channels \(3\) must both be divisible"):
        Conv2d(4, 3, 3, groups=2)


def test_wrong_input_shape(backend):
    layer = Conv2d(3, 16, 3)
    with pytest.raises(ValueError) as e:
        layer(backend.rng.normal((8, 1, 28, 28)))
    assert str(e.value) == "Conv2d(3 -> 16) expected input (N, 3, H, W) or (3, H, W), got (8, 1, 28, 28)"
    for shape in ((1, 28, 28), (28, 28), (2, 8, 3, 28, 28)):
        with pytest.raises(ValueError, match=rf"^Conv2d\(3 -> 16\) expected input \(N, 3, H, W\) or \(3, H, W\), "
                                             rf"got {re.escape(str(shape))}$"):
            layer(backend.rng.normal(shape))


def test_kernel_larger_than_padded_input(backend):
    layer = Conv2d(2, 3, (5, 3), padding=(1, 0))
    with pytest.raises(ValueError) as e:
        layer(backend.rng.normal((1, 2, 2, 4)))
    assert str(e.value) == (
        "Conv2d(2 -> 3): kernel_size (5, 3) with dilation (1, 1) spans 5x3, larger than the padded input 4x4 "
        "(input 2x4 plus padding 1+1, 0+0)"
    )
    with pytest.raises(ValueError, match=r"kernel_size \(2, 2\) with dilation \(3, 3\) spans 4x4, larger than the padded input 3x3"):
        Conv2d(2, 3, 2, dilation=3)(backend.rng.normal((1, 2, 3, 3)))


def test_dtype_errors(backend):
    layer = Conv2d(1, 2, 3)
    ints = backend.xp.zeros((1, 1, 4, 4), dtype=backend.dtype("int64"), device=backend.device)
    with pytest.raises(TypeError, match=r"Conv2d\(1 -> 2\) expected a floating-point \(float32\) input, got int64"):
        layer(ints)
    with pytest.raises(TypeError, match=r"Conv2d\(1 -> 2\) expected a float32 input to match its parameters, got float64"):
        layer(backend.rng.normal((1, 1, 4, 4), dtype=backend.dtype("float64")))
    with pytest.raises(TypeError, match=r"Conv2d\(1 -> 2\) expected its input to be an array .* got list"):
        layer([[[[0.0] * 4] * 4]])


def test_place_errors(backend):
    layer = Conv2d(1, 2, 3)
    other = "array_api_strict:device1" if backend.label != "array_api_strict:device1" else "array_api_strict"
    x = backends.get(other).rng.normal((1, 1, 4, 4))
    with pytest.raises(ValueError, match=rf"Conv2d\(1 -> 2\) got its input on {other}(:CPU_DEVICE)? but its parameters are on "
                                         rf"{backend.label}; move the input"):
        layer(x)


def test_backward_errors(backend):
    layer = Conv2d(2, 3, 3, stride=2)
    with pytest.raises(RuntimeError, match=r"Conv2d\(2 -> 3\)\.backward was called before forward"):
        layer.backward(backend.rng.normal((1, 3, 2, 2)))
    layer(backend.rng.normal((4, 2, 7, 6)))
    with pytest.raises(ValueError, match=r"Conv2d\(2 -> 3\)\.backward expected dy of shape \(4, 3, 3, 2\) \(its output's\), got \(4, 3, 2, 2\)"):
        layer.backward(backend.rng.normal((4, 3, 2, 2)))
    with pytest.raises(RuntimeError, match="before forward"):  # the failed backward consumed the cache
        layer.backward(backend.rng.normal((4, 3, 3, 2)))
    layer(backend.rng.normal((2, 7, 6)))
    with pytest.raises(ValueError,
                       match=r"^Conv2d\(2 -> 3\)\.backward expected dy of shape \(3, 3, 2\) \(its output's\), got \(1, 3, 3, 2\)$"):
        layer.backward(backend.rng.normal((1, 3, 3, 2)))


def test_unbatched_kernel_larger_than_padded_input(backend):
    with pytest.raises(ValueError, match=r"^Conv2d\(2 -> 3\): kernel_size \(3, 3\) with dilation \(1, 1\) spans 3x3, "
                                         r"larger than the padded input 2x5 \(input 2x5 plus padding 0\+0, 0\+0\)$"):
        Conv2d(2, 3, 3)(backend.rng.normal((2, 2, 5)))


# ----------------------------------------------------------------------------------------
# 1-D and 3-D: printing, errors; every convolution: specs, checkpoint rules, checkpoints
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs", [
    ("Conv1d", dict(in_channels=3, out_channels=6, kernel_size=3, padding=1, padding_mode="reflect")),
    ("Conv1d", dict(in_channels=4, out_channels=2, kernel_size=2, stride=2, dilation=3, groups=2, bias=False)),
    ("Conv2d", dict(in_channels=2, out_channels=2, kernel_size=3, padding="same", padding_mode="circular")),
    ("Conv3d", dict(in_channels=2, out_channels=4, kernel_size=(1, 2, 3), stride=(2, 1, 1), padding="valid")),
    ("Conv3d", dict(in_channels=2, out_channels=2, kernel_size=3, padding=(0, 1, 2), padding_mode="replicate")),
    ("ConvTranspose1d", dict(in_channels=2, out_channels=4, kernel_size=3, stride=2, output_padding=1, groups=2)),
    ("ConvTranspose2d", dict(in_channels=3, out_channels=2, kernel_size=(2, 3), padding=1, dilation=2, bias=False)),
    ("ConvTranspose3d", dict(in_channels=2, out_channels=3, kernel_size=2)),
    ("LazyConv2d", dict(out_channels=3, kernel_size=3, padding="same", padding_mode="reflect")),
    ("LazyConvTranspose3d", dict(out_channels=4, kernel_size=2, stride=2, output_padding=1, groups=2)),
])
def test_nd_repr_like_torch(torch, name, kwargs):
    assert repr(getattr(xn, name)(**kwargs)) == repr(getattr(torch.nn, name)(**kwargs))


@pytest.mark.parametrize("name, kwargs, match", [
    ("Conv1d", dict(kernel_size=(3, 3)), r"^Conv1d: kernel_size must be an int >= 1 or a tuple of 1 of them, got \(3, 3\)$"),
    ("Conv3d", dict(kernel_size=3, stride=(1, 2)), r"^Conv3d: stride must be an int >= 1 or a tuple of 3 of them, got \(1, 2\)$"),
    ("Conv3d", dict(kernel_size=3, padding=(1, 1)), r"^Conv3d: padding must be an int >= 0 or a tuple of them, or 'same' "
                                                    r"or 'valid', got \(1, 1\)$"),
    ("Conv1d", dict(kernel_size=3, padding="same", stride=2), r"^Conv1d: padding='same' needs stride 1 .* got stride=\(2,\)"),
    ("Conv2d", dict(kernel_size=3, padding_mode="mirror"),
     r"^Conv2d: padding_mode must be one of \('zeros', 'reflect', 'replicate', 'circular'\), got 'mirror'$"),
    ("ConvTranspose2d", dict(kernel_size=3, padding="same"),
     r"^ConvTranspose2d: padding must be an int >= 0 or a pair of them \(a transposed convolution has no 'same' "
     r"padding\), got 'same'$"),
    ("ConvTranspose1d", dict(kernel_size=3, padding_mode="reflect"),
     r"^ConvTranspose1d: padding_mode must be 'zeros' \(the only one torch's transposed convolutions take\), got 'reflect'$"),
    ("ConvTranspose2d", dict(kernel_size=3, stride=2, output_padding=(1, 2)),
     r"^ConvTranspose2d: output_padding must be smaller than either stride or dilation on every axis, got "
     r"output_padding=\(1, 2\) with stride=\(2, 2\) and dilation=\(1, 1\)$"),
    ("ConvTranspose3d", dict(kernel_size=3, output_padding=-1), r"^ConvTranspose3d: output_padding must be an int >= 0"),
    ("ConvTranspose1d", dict(kernel_size=3, groups=3), r"^ConvTranspose1d: in_channels \(4\) and out_channels \(6\) must "
                                                       r"both be divisible by groups \(3\)$"),
])
def test_nd_construction_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(xn, name)(4, 6, **kwargs)


@pytest.mark.parametrize("name, shape, form", [
    ("Conv1d", (2, 3, 5, 5), "(N, 4, L) or (4, L)"),
    ("Conv1d", (2, 3, 5), "(N, 4, L) or (4, L)"),
    ("Conv3d", (2, 4, 5, 5), "(N, 4, D, H, W) or (4, D, H, W)"),
    ("ConvTranspose3d", (4, 5, 5), "(N, 4, D, H, W) or (4, D, H, W)"),
    ("ConvTranspose1d", (4,), "(N, 4, L) or (4, L)"),
])
def test_nd_wrong_input_shape(backend, name, shape, form):
    layer = getattr(xn, name)(4, 2, 1)
    with pytest.raises(ValueError) as e:
        layer(backend.rng.normal(shape))
    assert str(e.value) == f"{name}(4 -> 2) expected input {form}, got {shape}"


def test_nd_kernel_larger_than_padded_input(backend):
    with pytest.raises(ValueError, match=r"^Conv1d\(2 -> 3\): kernel_size \(5,\) with dilation \(1,\) spans 5, larger "
                                         r"than the padded input 4 \(input 2 plus padding 1\+1\)$"):
        xn.Conv1d(2, 3, 5, padding=1)(backend.rng.normal((1, 2, 2)))
    with pytest.raises(ValueError, match=r"spans 3x1x3, larger than the padded input 4x4x2 \(input 2x4x2 plus padding "
                                         r"1\+1, 0\+0, 0\+0\)$"):
        xn.Conv3d(2, 3, (3, 1, 3), padding=(1, 0, 0))(backend.rng.normal((2, 2, 4, 2)))


ALL = [  # one configuration of each convolution, and where the arrays must come from
    ("Conv1d", dict(in_channels=4, out_channels=6, kernel_size=[2], groups=2, bias=False, padding="same",
                    padding_mode="reflect"), (2, 4, 5)),
    ("Conv2d", dict(in_channels=2, out_channels=4, kernel_size=3, stride=2), (2, 2, 5, 5)),
    ("Conv3d", dict(in_channels=2, out_channels=4, kernel_size=[1, 2, 3], padding_mode="circular", padding=1),
     (1, 2, 3, 3, 4)),
    ("ConvTranspose1d", dict(in_channels=2, out_channels=4, kernel_size=3, stride=2, output_padding=1), (2, 2, 4)),
    ("ConvTranspose2d", dict(in_channels=4, out_channels=6, kernel_size=[3, 2], groups=2, bias=False), (2, 4, 3, 3)),
    ("ConvTranspose3d", dict(in_channels=2, out_channels=3, kernel_size=2, dilation=2), (1, 2, 2, 2, 2)),
    ("LazyConv1d", dict(out_channels=3, kernel_size=3), (2, 4, 5)),
    ("LazyConv2d", dict(out_channels=3, kernel_size=3, groups=3, padding="same"), (2, 6, 4, 4)),
    ("LazyConv3d", dict(out_channels=2, kernel_size=1), (1, 2, 2, 2, 2)),
    ("LazyConvTranspose1d", dict(out_channels=3, kernel_size=3), (2, 2, 4)),
    ("LazyConvTranspose2d", dict(out_channels=4, kernel_size=2, stride=2, groups=2), (1, 2, 3, 3)),
    ("LazyConvTranspose3d", dict(out_channels=2, kernel_size=3, padding=1), (1, 3, 2, 2, 2)),
]


@pytest.mark.parametrize("name, kwargs, shape", ALL, ids=[a[0] for a in ALL])
def test_spec_and_checkpoint_rules(name, kwargs, shape):
    """The spec rebuilds the layer (a lazy one that has run: as its eager class), and the
    checkpoint schema predicts its arrays from the spec alone, before and after a forward."""
    import json

    from xpnet.nets import checkpoint_arch as arch
    from xpnet.nets import spec as S

    def model(node):
        return [e[:4] for e in arch.entries(node)]

    with backends.use("numpy"):
        layer = S.build({"type": name, **kwargs})
        for _ in range(2):
            spec = S.layer_spec(layer)
            back = S.build(json.loads(json.dumps(spec)))
            assert type(back) is type(layer) and repr(back) == repr(layer) and S.layer_spec(back) == spec
            assert model(arch.from_spec(spec).root) == model(arch.from_net(layer)), spec
            layer(backends.get("numpy").rng.normal(shape))
    assert type(layer).__name__ == name.removeprefix("Lazy")
    assert [n for n, _ in layer.named_parameters()] == ["weight"] + (["bias"] if kwargs.get("bias", True) else [])


def test_checkpoint_round_trip(backend, tmp_path):
    """A net of 1-D, 2-D, transposed and lazy convolutions (one run, one not) saves and loads."""
    net = xn.Sequential(xn.Conv1d(2, 4, 3, padding=1, padding_mode="circular"), xn.ReLU(), xn.LazyConv1d(3, 2),
                        xn.ConvTranspose1d(3, 2, 4, stride=2, padding=1), xn.Unflatten(1, (1, 2)),
                        xn.LazyConv2d(2, 1))
    x = backend.rng.normal((2, 2, 5))
    for layer in net.layers[:3]:  # the lazy Conv2d stays lazy
        x = layer(x)
    lazy = net.layers[2]
    assert type(lazy) is xn.Conv1d and lazy.in_channels == 4
    xn.nets.save(tmp_path / "ck", net)
    back = xn.nets.load(tmp_path / "ck", backend=backend.label).net
    assert [type(m).__name__ for m in back.layers] == [type(m).__name__ for m in net.layers]
    assert type(back.layers[5]) is xn.LazyConv2d and back.layers[5].has_uninitialized_params()
    for (k, v), (k2, v2) in zip(net.state_dict().items(), back.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(host(v), host(v2))
