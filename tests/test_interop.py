"""PyTorch interop: to_torch / from_torch give the same model (architecture, weights, buffers, dtype, mode)."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.nets import spec as S
from tests.conftest import host

TOL = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-5)}


def _cnn(dropout=0.3):
    """Every image layer torch.nn has under the same name, with non-default options."""
    return xn.Sequential(
        xn.Conv2d(3, 8, 3, padding=1, bias=False),
        xn.BatchNorm2d(8, momentum=0.2),
        xn.ReLU(),
        xn.MaxPool2d(2),
        xn.Sequential(xn.Conv2d(8, 8, 3, padding="same", dilation=2, groups=2), xn.LeakyReLU(0.1)),
        xn.AvgPool2d(2, stride=1, padding=1),
        xn.AdaptiveAvgPool2d((2, 2)),
        xn.Flatten(),
        xn.Dropout(dropout),
        xn.Linear(32, 10),
        xn.LayerNorm(10),
        xn.Tanh(),
        xn.Linear(10, 4, bias=False),
        xn.Softmax(dim=1),
    )


def _token_net():
    """The rest: Embedding, BatchNorm1d (no momentum), Sigmoid, Identity, Unflatten, LayerNorm over two axes."""
    return xn.Sequential(
        xn.Embedding(20, 6, padding_idx=0),
        xn.Flatten(),
        xn.Linear(30, 12),
        xn.BatchNorm1d(12, momentum=None, eps=1e-3),
        xn.Sigmoid(),
        xn.Identity(),
        xn.Unflatten(1, (3, 4)),
        xn.LayerNorm((3, 4), bias=False),
        xn.Flatten(),
        xn.Linear(12, 2),
    )


def _input(kind, backend, dtype, n=6, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "cnn":
        a = rng.standard_normal((n, 3, 9, 9))
        return backend.asarray(a, dtype=dtype), a
    a = rng.integers(0, 20, (n, 5))
    a[0, :2] = 0  # the padding index
    return backend.asarray(a, dtype="int64"), a


def _torch_input(torch, a, dtype):
    t = torch.from_numpy(a)
    return t.to(getattr(torch, dtype)) if t.is_floating_point() else t


def _make(kind, dtype):
    net = _cnn() if kind == "cnn" else _token_net()
    return net.to(dtype=dtype)


def _warm(net, x):
    """A few training forwards, so that the running statistics are not their initial values."""
    net.train()
    for _ in range(2):
        net(x)


def _assert_state_equal(torch_state, xp_state, **tol):
    assert list(torch_state) == list(xp_state)
    for k, v in torch_state.items():
        got = host(xp_state[k])
        assert got.shape == tuple(v.shape), k
        np.testing.assert_allclose(v.detach().numpy(), got, err_msg=k, **tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["cnn", "tokens"])
def test_to_torch_same_outputs(backend, torch, kind, dtype):
    net = _make(kind, dtype)
    x, a = _input(kind, backend, dtype)
    _warm(net, x)
    net.eval()
    module = xn.to_torch(net)
    assert isinstance(module, torch.nn.Sequential)
    assert module.training is False and not any(m.training for m in module.modules())
    assert all(p.dtype == getattr(torch, dtype) for p in module.parameters())
    assert module.state_dict().keys() == net.state_dict().keys()
    _assert_state_equal(module.state_dict(), net.state_dict(), rtol=0, atol=0)  # copies of the same numbers
    with torch.no_grad():
        want = module(_torch_input(torch, a, dtype)).numpy()
    np.testing.assert_allclose(host(net(x)), want, **TOL[dtype])
    # the weights are copies: changing the torch model leaves the net alone
    with torch.no_grad():
        next(module.parameters()).add_(1.0)
    assert not np.array_equal(next(module.parameters()).detach().numpy(), host(net.parameters()[0].data))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_to_torch_training_mode(backend, torch, dtype):
    """In training mode: batch statistics, and the running statistics move the same way."""
    net = _make("cnn", dtype)
    net[8].p = 0.0  # dropout off: the outputs are then comparable in training mode
    x, a = _input("cnn", backend, dtype)
    _warm(net, x)
    module = xn.to_torch(net)
    assert module.training is True and all(m.training for m in module.modules())
    out = net(x)
    want = module(_torch_input(torch, a, dtype)).detach().numpy()
    np.testing.assert_allclose(host(out), want, **TOL[dtype])
    _assert_state_equal(module.state_dict(), net.state_dict(), **TOL[dtype])
    assert int(module[1].num_batches_tracked) == int(net[1].num_batches_tracked) == 3


def test_to_torch_single_layer(torch):
    lin = xn.Linear(3, 2, dtype="float64")
    m = xn.to_torch(lin)
    assert type(m) is torch.nn.Linear and m.weight.dtype == torch.float64
    np.testing.assert_array_equal(m.weight.detach().numpy(), host(lin.weight.data))


def _torch_nested(torch, dtype):
    nn = torch.nn
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=1),
        nn.BatchNorm2d(4),
        nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, stride=1), nn.Sequential(nn.Identity())),
        nn.AdaptiveAvgPool2d(3),
        nn.Flatten(),
        nn.Linear(36, 8),
        nn.LayerNorm(8, elementwise_affine=False),
        nn.LeakyReLU(),
        nn.Dropout(0.1),
        nn.Linear(8, 3),
    )
    m.to(getattr(torch, dtype))
    # non-trivial running statistics and weights
    with torch.no_grad():
        m.train()
        m(torch.randn(5, 3, 9, 9, dtype=getattr(torch, dtype)))
        m[1].weight.uniform_(0.5, 1.5)
    return m


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_from_torch(backend, torch, dtype):
    m = _torch_nested(torch, dtype)
    m.eval()
    net = xn.from_torch(m, backend=backend)
    assert net.training is False and not any(layer.training for layer in net)
    assert type(net[2]) is xn.Sequential and type(net[2][2]) is xn.Sequential
    for k, v in net.state_dict().items():
        assert backends.backend_of(v) is backend
        assert backend.dtype_name(v.dtype) == ("int64" if "num_batches" in k else dtype), k
    _assert_state_equal(m.state_dict(), net.state_dict(), rtol=0, atol=0)
    x = np.random.default_rng(1).standard_normal((4, 3, 9, 9))
    with torch.no_grad():
        want = m(_torch_input(torch, x, dtype)).numpy()
    np.testing.assert_allclose(host(net(backend.asarray(x, dtype=dtype))), want, **TOL[dtype])
    # the dtype can be chosen; training mode is carried
    m.train()
    net32 = xn.from_torch(m, backend=backend, dtype="float32")
    assert net32.training is True and backend.dtype_name(net32[0].weight.data.dtype) == "float32"


def test_from_torch_default_backend_and_buffer_only_dtype(backend, torch):
    m = torch.nn.Sequential(torch.nn.BatchNorm1d(3, affine=False)).double()
    with torch.no_grad():
        m(torch.randn(8, 3, dtype=torch.float64))
    net = xn.from_torch(m)
    assert backends.backend_of(net[0].running_mean) is backend  # the current backend
    assert backend.dtype_name(net[0].running_mean.dtype) == "float64"  # from the buffers: no parameters here
    _assert_state_equal(m.state_dict(), net.state_dict(), rtol=0, atol=0)


def test_round_trip(backend, torch):
    net = _token_net()
    x, _ = _input("tokens", backend, "float32")
    _warm(net, x)
    back = xn.from_torch(xn.to_torch(net))
    assert S.layer_spec(back) == S.layer_spec(net)
    assert repr(back) == repr(net)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(host(back.state_dict()[k]), host(v), err_msg=k)
    m = _torch_nested(torch, "float64")
    again = xn.to_torch(xn.from_torch(m))
    assert repr(again) == repr(m)
    for k, v in m.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


# -- what cannot be converted ----------------------------------------------------------------------------------


def test_from_torch_unsupported(torch):
    nn = torch.nn
    cases = [
        (nn.Sequential(nn.Linear(2, 2), nn.GELU()),
         r"^from_torch: module\[1\] is a torch\.nn\.modules\.activation\.GELU, which xpnet has no layer for$"),
        (nn.Sequential(nn.Sequential(nn.ReLU(), nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))),
         r"^from_torch: module\[0\]\[1\] \(Conv2d\) has padding_mode='reflect'; xpnet implements only padding_mode='zeros'$"),
        (nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)),
         r"^from_torch: module\[0\] \(MaxPool2d\) has ceil_mode=True; xpnet implements only ceil_mode=False$"),
        (nn.Sequential(nn.MaxPool2d(3, dilation=2)),
         r"^from_torch: module\[0\] \(MaxPool2d\) has dilation=2; xpnet implements only dilation=1$"),
        (nn.Sequential(nn.AvgPool2d(2, padding=1, count_include_pad=False)),
         r"\(AvgPool2d\) has count_include_pad=False; xpnet implements only count_include_pad=True$"),
        (nn.Sequential(nn.Embedding(5, 2, max_norm=1.0)),
         r"\(Embedding\) has max_norm=1\.0; xpnet implements only max_norm=None$"),
        (nn.GRU(2, 2), r"^from_torch: module is a torch\.nn\.modules\.rnn\.GRU, which xpnet has no layer for$"),
        (nn.ModuleList([nn.ReLU()]), r"^from_torch: module is a torch\.nn\.modules\.container\.ModuleList"),
    ]
    for module, msg in cases:
        with pytest.raises(ValueError, match=msg):
            xn.from_torch(module)

    class MyLinear(nn.Linear):  # a subclass may compute something else: refused
        pass

    with pytest.raises(ValueError, match=r"^from_torch: module\[0\] is a .*MyLinear, which xpnet has no layer for$"):
        xn.from_torch(nn.Sequential(MyLinear(2, 2)))


def test_from_torch_not_a_module(torch):
    for bad in (xn.Sequential(xn.Linear(2, 2)), torch.zeros(3), "Linear"):
        with pytest.raises(TypeError, match=rf"^from_torch expected a torch\.nn\.Module, got {type(bad).__name__}$"):
            xn.from_torch(bad)


def test_to_torch_unsupported(torch):
    with pytest.raises(ValueError, match=r"^to_torch: torch\.nn has no layer equal to xpnet's Reshape$"):
        xn.to_torch(xn.Sequential(xn.Linear(4, 4), xn.Sequential(xn.Reshape(2, 2))))
    with pytest.raises(ValueError, match=r"^to_torch: the net has no parameters or buffers"):
        xn.to_torch(xn.Sequential(xn.ReLU()))


def test_to_torch_batchnorm_on_a_torch_without_its_bias_option(torch, monkeypatch):
    """torch.nn.BatchNorm* took ``bias=`` only recently (xpnet supports torch >= 2.4): without it, a BatchNorm
    converts when its bias follows ``affine``, and a clear error says when it cannot."""
    nn = torch.nn

    class OldBatchNorm1d(nn.BatchNorm1d):  # the signature before the bias option
        def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                     device=None, dtype=None):
            super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    monkeypatch.setattr(nn, "BatchNorm1d", OldBatchNorm1d)
    for affine in (True, False):
        with backends.use("numpy"):
            net = xn.Sequential(xn.Linear(3, 4), xn.BatchNorm1d(4, affine=affine, momentum=None))
        m = xn.to_torch(net)
        assert type(m[1]) is OldBatchNorm1d and m[1].affine is affine and m[1].momentum is None
        assert (m[1].bias is not None) is affine
        _assert_state_equal(m.state_dict(), net.state_dict(), rtol=0, atol=0)
    with backends.use("numpy"):
        net = xn.Sequential(xn.Linear(3, 4), xn.BatchNorm1d(4, bias=False))
    with pytest.raises(ValueError, match=r"^to_torch: this torch's BatchNorm1d has no bias option; "
                                         r"xpnet's has affine=True, bias=False$"):
        xn.to_torch(net)
