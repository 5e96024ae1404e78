"""The lazy convolutions (LazyConv1d/2d/3d, LazyConvTranspose1d/2d/3d): before the first forward,
no arrays (parameters, state dict) and ``to()`` records the place; the first forward (or
``initialize_parameters``, or a state dict) materializes them as the eager constructor draws
them, and the layer becomes the eager class; parity with torch's lazy modules after both ran;
spec, interop and training; the errors."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.layers.conv_lazy import UninitializedParameter
from tests.conftest import host

LAZY = [
    # (lazy class name, args, kwargs, input shape, the eager twin's args)
    ("LazyConv1d", (3, 2), dict(stride=2), (2, 4, 7), (4, 3, 2)),
    ("LazyConv2d", (4, 3), dict(padding="same", groups=2, padding_mode="reflect"), (2, 6, 4, 5), (6, 4, 3)),
    ("LazyConv3d", (2, 2), dict(bias=False), (3, 2, 3, 3), (3, 2, 2)),
    ("LazyConvTranspose1d", (3, 3), dict(stride=2, output_padding=1), (2, 2, 4), (2, 3, 3)),
    ("LazyConvTranspose2d", (4, 2), dict(groups=2, dilation=2), (2, 2, 3, 3), (2, 4, 2)),
    ("LazyConvTranspose3d", (2, 2), {}, (1, 3, 2, 2, 2), (3, 2, 2)),
]
IDS = [c[0] for c in LAZY]


@pytest.mark.parametrize("case", LAZY, ids=IDS)
def test_first_forward_materializes_as_the_eager_constructor(backend, case):
    name, args, kwargs, shape, eager_args = case
    layer = getattr(xn, name)(*args, **kwargs)
    assert layer.has_uninitialized_params() and layer.in_channels == 0
    assert layer.parameters() == [] and layer.state_dict() == {}
    assert isinstance(layer.weight, UninitializedParameter)
    with pytest.raises(RuntimeError, match="uninitialized"):
        layer.weight.shape
    x = backend.rng.normal(shape)
    backend.manual_seed(5)
    y = layer(x)
    eager_cls = getattr(xn, name.removeprefix("Lazy"))
    assert type(layer) is eager_cls and layer.in_channels == eager_args[0]
    backend.manual_seed(5)
    eager = eager_cls(*eager_args, **kwargs)  # the same draws from the same generator
    assert repr(layer) == repr(eager)
    for (n, p), (n2, p2) in zip(layer.named_parameters(), eager.named_parameters()):
        assert n == n2 and backends.backend_of(p.data) is backend
        np.testing.assert_array_equal(host(p.data), host(p2.data))
    np.testing.assert_array_equal(host(y), host(eager(x)))
    dy = backend.rng.normal(tuple(y.shape))
    np.testing.assert_array_equal(host(layer.backward(dy)), host(eager.backward(dy)))


@pytest.mark.parametrize("case", LAZY, ids=IDS)
def test_matches_torch_after_both_ran(torch, case):
    """torch's lazy module and xpnet's, both materialized by the same input, then given the same
    weights: outputs and every gradient equal (module_db checks these types too)."""
    name, args, kwargs, shape, _ = case
    ours = getattr(xn, name)(*args, **kwargs).to(dtype="float64")
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    ours(backends.get("numpy").asarray(x))
    ours.clear_saved()
    with torch.no_grad():
        theirs(torch.from_numpy(x))
    theirs.load_state_dict({k: torch.from_numpy(host(v)) for k, v in ours.state_dict().items()})
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(dy))
    be = backends.get("numpy")
    np.testing.assert_allclose(host(ours(be.asarray(x))), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(ours.backward(be.asarray(dy))), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    for n, p in ours.named_parameters():
        np.testing.assert_allclose(host(p.grad), getattr(theirs, n).grad.numpy(), rtol=1e-12, atol=1e-12)


def test_to_before_the_first_forward_sets_where_the_parameters_are_made():
    layer = xn.LazyConv2d(3, 3).to("array_api_strict:device1", "float64")
    be = backends.get("array_api_strict:device1")
    layer(be.rng.normal((1, 2, 4, 4), dtype=be.dtype("float64")))
    assert backends.backend_of(layer.weight.data) is be and layer.weight.dtype == be.dtype("float64")
    net = xn.Sequential(xn.LazyConvTranspose1d(2, 3), xn.ReLU()).to(dtype="float64")
    net(backends.get("numpy").rng.normal((2, 4, 3), dtype=backends.get("numpy").dtype("float64")))
    assert net.layers[0].weight.dtype == backends.get("numpy").dtype("float64")


def test_initialize_parameters_and_load_state_dict_materialize(backend):
    layer = xn.LazyConv1d(4, 3, groups=2)
    layer.initialize_parameters(backend.rng.normal((6, 5)))  # unbatched: C = 6
    assert type(layer) is xn.Conv1d and tuple(layer.weight.shape) == (4, 3, 3)
    eager = xn.ConvTranspose2d(6, 4, 2, groups=2)
    lazy = xn.LazyConvTranspose2d(4, 2, groups=2)
    lazy.load_state_dict(eager.state_dict())
    assert type(lazy) is xn.ConvTranspose2d and lazy.in_channels == 6
    for k, v in eager.state_dict().items():
        np.testing.assert_array_equal(host(lazy.state_dict()[k]), host(v))
    with pytest.raises(ValueError, match=r"^LazyConv2d\.load_state_dict: 'weight' expected shape \(4, 'in_channels / 2', "
                                         r"3, 3\), got \(4, 3, 3\)$"):
        xn.LazyConv2d(4, 3, groups=2).load_state_dict({"weight": backend.rng.normal((4, 3, 3))})
    with pytest.raises(ValueError, match=r"expected shape \('in_channels', 2, 2, 2\), got \(3, 4, 2, 2\)"):
        xn.LazyConvTranspose2d(4, 2, groups=2).load_state_dict({"weight": backend.rng.normal((3, 4, 2, 2))})
    still = xn.LazyConv3d(2, 1)
    still.load_state_dict({})
    assert still.has_uninitialized_params()


def test_a_net_with_an_unrun_lazy_layer_loads_a_saved_state(backend):
    """A saved net loads into a fresh one with lazy layers before any dry run (torch's lazy load)."""
    with backends.use(backend):
        trained = xn.Sequential(xn.LazyConv1d(4, 3), xn.ReLU(), xn.Residual(xn.LazyConv1d(4, 1)))
        x = backend.rng.normal((2, 5, 7))
        y = trained(x)
        fresh = xn.Sequential(xn.LazyConv1d(4, 3), xn.ReLU(), xn.Residual(xn.LazyConv1d(4, 1)))
        fresh.load_state_dict(trained.state_dict())
    assert [type(m).__name__ for _, m in fresh.named_modules()][1:] == ["Conv1d", "ReLU", "Residual", "Conv1d"]
    np.testing.assert_array_equal(host(fresh(x)), host(y))
    with pytest.raises(KeyError, match=r"missing keys \['0.weight', '0.bias'\]"):
        xn.Sequential(xn.Conv1d(5, 4, 3)).load_state_dict({})


def test_interop_before_and_after_the_first_forward(torch):
    net = xn.Sequential(xn.LazyConv1d(3, 2), xn.ReLU(), xn.LazyConvTranspose1d(2, 3, stride=2))
    t = xn.to_torch(net)
    assert [type(m).__name__ for m in t] == ["LazyConv1d", "ReLU", "LazyConvTranspose1d"]
    back = xn.from_torch(t)
    assert type(back.layers[0]) is xn.LazyConv1d and back.state_dict() == {}
    x = np.random.default_rng(1).standard_normal((2, 4, 5)).astype(np.float32)
    y = net(backends.get("numpy").asarray(x))
    t2 = xn.to_torch(net)
    assert [type(m).__name__ for m in t2] == ["Conv1d", "ReLU", "ConvTranspose1d"]
    np.testing.assert_allclose(t2(torch.from_numpy(x)).detach().numpy(), host(y), rtol=1e-5, atol=1e-6)


def test_trains_after_a_dry_run(backend):
    """Place, dry-run, then make the optimizer: the loss falls."""
    net = xn.Sequential(xn.LazyConv1d(4, 3, padding=1), xn.ReLU(), xn.Flatten(), xn.Linear(4 * 6, 2))
    x = backend.rng.normal((8, 3, 6))
    y = backend.asarray(np.arange(8) % 2, dtype="int64")
    with xn.no_grad():
        net(x)
    opt = xn.SGD(net.parameters(), lr=0.1)
    assert len(opt.params) == 4
    crit = xn.CrossEntropyLoss()
    losses = []
    for _ in range(5):
        opt.zero_grad()
        losses.append(float(host(crit(net(x), y))))
        net.backward(crit.backward(), input_grad=False)
        opt.step()
    assert losses[-1] < losses[0]


def test_errors(backend):
    with pytest.raises(ValueError, match=r"^LazyConv2d: out_channels must be a positive int, got 0$"):
        xn.LazyConv2d(0, 3)
    with pytest.raises(ValueError, match=r"^LazyConvTranspose1d: output_padding must be smaller than either stride"):
        xn.LazyConvTranspose1d(2, 3, output_padding=1)
    layer = xn.LazyConv3d(4, 2, groups=4)
    with pytest.raises(ValueError, match=r"^LazyConv3d\(\? -> 4\) expected input \(N, C, D, H, W\) or \(C, D, H, W\), "
                                         r"got \(2, 3, 3\)$"):
        layer(backend.rng.normal((2, 3, 3)))
    with pytest.raises(ValueError, match=r"^LazyConv3d: in_channels \(6, from the input\) must be a positive multiple "
                                         r"of groups \(4\)$"):
        layer(backend.rng.normal((1, 6, 2, 2, 2)))
    with pytest.raises(TypeError, match=r"LazyConv3d\(\? -> 4\) expected its input to be an array"):
        layer([[1.0]])
    assert layer.has_uninitialized_params()
