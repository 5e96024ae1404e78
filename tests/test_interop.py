"""PyTorch interop: to_torch / from_torch give the same model (architecture, weights, buffers, dtype, mode)."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.nets import spec as S
from tests.conftest import Pair, host

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
        (nn.Sequential(nn.Linear(2, 2), nn.Unfold(2)),
         r"^from_torch: module\[1\] is a torch\.nn\.modules\.fold\.Unfold, which xpnet has no layer for$"),
        (nn.Sequential(nn.Embedding(5, 2, sparse=True)),
         r"^model\.layers\[0\]: Embedding: sparse=True \(sparse gradient tensors\) is not available: the array API has "
         r"no sparse arrays"),
        (nn.ChannelShuffle(2), r"^from_torch: module is a torch\.nn\.modules\.channelshuffle\.ChannelShuffle, which xpnet "
                               r"has no layer for$"),
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
    class Unregistered(xn.Layer):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match=r"cannot describe .*Unregistered: it is not a registered layer"):
        xn.to_torch(xn.Sequential(xn.Linear(4, 4), Unregistered()))
    # torch.nn has no Reshape: interop's own twin stands in
    m = xn.to_torch(xn.Sequential(xn.Linear(4, 4), xn.Sequential(xn.Reshape(2, 2))))
    assert type(m[1][0]) is xn.nets.interop.torch_twin("Reshape") and m(torch.zeros(3, 4)).shape == (3, 2, 2)

    # a net without any state converts too (there is nothing to copy)
    m = xn.to_torch(xn.Sequential(xn.ReLU(), xn.Concat(xn.Identity(), xn.Tanh(), dim=-1)))
    assert type(m[0]) is torch.nn.ReLU and type(m[1]) is xn.nets.interop.torch_twin("Concat") and m[1].dim == -1
    torch.testing.assert_close(m(torch.tensor([[-1.0, 2.0]])), torch.tensor([[0.0, 2.0, 0.0, 0.9640276]]))


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


# -- composites: Residual, Concat, a composite of one's own ------------------------------------------------------


def _resnet():
    """A stem, two residual blocks (one with a strided 1x1-conv shortcut), an Inception-style Concat."""
    def block(c_in, c_out, stride):
        body = xn.Sequential(xn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), xn.BatchNorm2d(c_out),
                             xn.ReLU(), xn.Conv2d(c_out, c_out, 3, padding=1, bias=False), xn.BatchNorm2d(c_out))
        shortcut = None
        if stride != 1 or c_in != c_out:
            shortcut = xn.Sequential(xn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), xn.BatchNorm2d(c_out))
        return xn.Residual(body, shortcut)

    return xn.Sequential(
        xn.Conv2d(3, 6, 3, padding=1, bias=False), xn.BatchNorm2d(6), xn.ReLU(),
        block(6, 6, 1), xn.ReLU(),
        block(6, 8, 2), xn.ReLU(),
        xn.Concat(xn.Conv2d(8, 4, 1), xn.Sequential(xn.Conv2d(8, 4, 3, padding=1), xn.ReLU()), xn.Identity(), dim=1),
        xn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        xn.AdaptiveAvgPool2d(1), xn.Flatten(), xn.Linear(16, 5),
    )


def _grads_match(torch, net, module, xs, **tol):
    """Forward and backward on both with the same cotangent: outputs, input and parameter gradients agree."""
    ys = net(*[x for x, _ in xs])
    ts = [torch.from_numpy(a).requires_grad_(True) for _, a in xs]
    ty = module(*ts)
    np.testing.assert_allclose(host(ys), ty.detach().numpy(), **tol)
    dy = np.random.default_rng(5).standard_normal(tuple(ty.shape))
    be = backends.backend_of(ys)
    dxs = net.backward(be.asarray(dy, dtype="float64"))
    dxs = dxs if isinstance(dxs, tuple) else (dxs,)
    ty.backward(torch.from_numpy(dy))
    for dx, t in zip(dxs, ts):
        np.testing.assert_allclose(host(dx), t.grad.numpy(), **tol)
    tgrads = dict(module.named_parameters())
    for name, p in net.named_parameters():
        np.testing.assert_allclose(host(p.grad), tgrads[name].grad.numpy(), err_msg=name, **tol)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_resnet_to_torch_and_back(backend, torch, mode):
    net = _resnet().to(backend, "float64")
    x, a = _input("cnn", backend, "float64", n=4)
    _warm(net, x)
    net.train(mode == "train")
    module = xn.to_torch(net)
    Residual, Concat = xn.nets.interop.torch_twin("Residual"), xn.nets.interop.torch_twin("Concat")
    assert type(module[3]) is Residual and type(module[5]) is Residual and type(module[7]) is Concat
    assert module[3].shortcut is None and isinstance(module[5].shortcut, torch.nn.Sequential) and module[7].dim == 1
    assert list(module.state_dict()) == list(net.state_dict())
    assert {"3.body.0.weight", "5.shortcut.1.running_mean", "7.0.weight", "7.1.0.bias"} <= set(module.state_dict())
    _assert_state_equal(module.state_dict(), net.state_dict(), rtol=0, atol=0)
    assert all(m.training is (mode == "train") for m in module.modules())
    _grads_match(torch, net, module, [(x, a)], rtol=1e-10, atol=1e-12)
    if mode == "train":  # the running statistics moved the same way
        _assert_state_equal(module.state_dict(), net.state_dict(), rtol=1e-12, atol=1e-12)
    back = xn.from_torch(module, backend=backend)
    assert S.layer_spec(back) == S.layer_spec(net) and repr(back) == repr(net)
    assert back.training is (mode == "train")
    _assert_state_equal(module.state_dict(), back.state_dict(), rtol=0, atol=0)
    back.eval()
    module.eval()
    with torch.no_grad():
        want = module(torch.from_numpy(a)).numpy()
    np.testing.assert_allclose(host(back(x)), want, rtol=1e-12, atol=1e-12)


def _torch_pair(torch):
    class TorchPair(torch.nn.Module):
        def __init__(self, first, second, scale=1.0):
            super().__init__()
            self.first, self.second, self.scale = first, second, scale

        def forward(self, a, b):
            return self.first(a) + self.second(b) * self.scale

    return TorchPair


def test_user_composite_with_a_registered_twin(backend, torch, registry):
    TorchPair = _torch_pair(torch)
    xn.register(Pair, torch=TorchPair)
    net = Pair(xn.Sequential(xn.Linear(3, 4), xn.Tanh()),
               xn.Residual(xn.Linear(4, 4), xn.Sequential(xn.BatchNorm1d(4), xn.Sigmoid())), scale=0.5)
    net.to(backend, "float64")
    module = xn.to_torch(net)
    assert type(module) is TorchPair and module.scale == 0.5
    assert type(module.second) is xn.nets.interop.torch_twin("Residual")
    assert list(module.state_dict()) == list(net.state_dict())
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 3)), rng.standard_normal((6, 4))
    xs = [(backend.asarray(a, dtype="float64"), a), (backend.asarray(b, dtype="float64"), b)]
    _grads_match(torch, net, module, xs, rtol=1e-10, atol=1e-12)
    back = xn.from_torch(module, backend=backend)
    assert type(back) is Pair and type(back.second.shortcut[0]) is xn.BatchNorm1d
    assert S.layer_spec(back) == S.layer_spec(net)
    _assert_state_equal(module.state_dict(), back.state_dict(), rtol=0, atol=0)
    with torch.no_grad():
        want = module(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(host(back(xs[0][0], xs[1][0])), want, rtol=1e-12, atol=1e-12)


def test_user_composite_conversion_errors(torch, registry):
    with backends.use("numpy"):
        net = xn.Sequential(xn.Linear(2, 2), Pair(xn.ReLU(), xn.ReLU()))
    xn.register(Pair)
    with pytest.raises(ValueError, match=r"^to_torch: net\.layers\[1\] is xpnet's Pair, which has no torch twin; "
                                         r"register it with xpnet\.register\(Pair, torch=\.\.\.\)$"):
        xn.to_torch(net)

    class NoFields(torch.nn.Module):  # a twin that keeps its children under other names
        def __init__(self, first, second, scale=1.0):
            super().__init__()
            self.a, self.b = first, second

    xn.register(Pair, torch=NoFields)
    module = xn.to_torch(net)
    assert type(module[1]) is NoFields
    with pytest.raises(ValueError, match=r"^from_torch: module\[1\] \(NoFields, the torch twin of Pair\) has no attribute "
                                         r"'first'; a twin must expose each config field as an attribute$"):
        xn.from_torch(module)

    made = []

    def factory(first, second, scale=1.0):  # a factory twin converts one way only
        made.append(_torch_pair(torch)(first, second, scale))
        return made[-1]

    xn.register(Pair, torch=factory)
    module = xn.to_torch(net)
    assert module[1] is made[0]
    with pytest.raises(ValueError, match=r"^from_torch: module\[1\] is a .*TorchPair, which xpnet has no layer for$"):
        xn.from_torch(module)


def test_tied_parameters_stay_tied(backend, torch):
    net = xn.Sequential(xn.Linear(4, 4), xn.Tanh(), xn.Residual(xn.Linear(4, 4)), xn.Linear(4, 4)).to(backend, "float64")
    net.tie("0.weight", "2.body.weight", "3.weight")
    module = xn.to_torch(net)
    assert module[0].weight is module[2].body.weight is module[3].weight
    assert len(list(module.parameters())) == len(net.parameters()) == 4
    x = np.random.default_rng(0).standard_normal((5, 4))
    _grads_match(torch, net, module, [(backend.asarray(x, dtype="float64"), x)], rtol=1e-10, atol=1e-12)
    back = xn.from_torch(module, backend=backend)
    assert back[0].weight is back[2].body.weight is back[3].weight
    assert back.tied_parameters() == net.tied_parameters()
    # a torch model tied by hand
    m = torch.nn.Sequential(torch.nn.Embedding(6, 3), torch.nn.Linear(3, 6, bias=False))
    m[1].weight = m[0].weight
    got = xn.from_torch(m, backend=backend)
    assert got[0].weight is got[1].weight and got.tied_parameters() == [["0.weight", "1.weight"]]


def test_every_module_keeps_its_mode(backend, torch):
    net = _resnet().to(backend)
    net.train()
    net[1].eval()
    net[3].body[1].eval()
    net[7].branches[1].eval()
    module = xn.to_torch(net)
    want = {name: layer.training for name, layer in net.named_modules()}
    assert {name: m.training for name, m in module.named_modules()} == want
    assert want["1"] is False and want["3.body.1"] is False and want["7.1.0"] is False and want["7.0"] is True
    module[5].shortcut.eval()
    back = xn.from_torch(module, backend=backend)
    assert {name: layer.training for name, layer in back.named_modules()} == {
        name: m.training for name, m in module.named_modules()}
    assert back[5].shortcut[1].training is False and back[5].body[1].training is True


def test_pooling_options_convert(backend, torch):
    nn = torch.nn
    m = nn.Sequential(nn.Conv2d(2, 3, 3),
                      nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
                      nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False, divisor_override=4),
                      ).double()
    net = xn.from_torch(m, backend=backend)
    spec = S.layer_spec(net)
    assert {k: spec["layers"][1][k] for k in ("dilation", "ceil_mode", "return_indices")} == {
        "dilation": 2, "ceil_mode": True, "return_indices": False}
    assert {k: spec["layers"][2][k] for k in ("ceil_mode", "count_include_pad", "divisor_override")} == {
        "ceil_mode": True, "count_include_pad": False, "divisor_override": 4}
    x = np.random.default_rng(0).standard_normal((2, 2, 11, 11))
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(host(net(backend.asarray(x, dtype="float64"))), want, rtol=1e-12, atol=1e-12)
    again = xn.to_torch(net)
    assert repr(again) == repr(m)
    idx = xn.to_torch(xn.from_torch(nn.Sequential(nn.Conv2d(1, 1, 1), nn.MaxPool2d(2, return_indices=True))))
    assert idx[1].return_indices is True


def test_losses_with_class_weights_convert(backend, torch):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 3))
    labels = rng.integers(0, 3, 6)
    bits = rng.integers(0, 2, (6, 3)).astype(np.float64)
    cases = [(xn.CrossEntropyLoss(weight=[1.0, 3.0, 0.5], ignore_index=1, label_smoothing=0.1, dtype="float64"),
              backend.asarray(labels, dtype="int64"), torch.from_numpy(labels)),
             (xn.BCEWithLogitsLoss(weight=[0.5, 2.0, 1.0], pos_weight=[3.0, 1.0, 2.0], dtype="float64"),
              backend.asarray(bits, dtype="float64"), torch.from_numpy(bits))]
    for loss, target, ttarget in cases:
        loss.to(backend)
        m = xn.to_torch(loss)
        assert type(m) is getattr(torch.nn, type(loss).__name__)
        _assert_state_equal(m.state_dict(), loss.state_dict(), rtol=0, atol=0)
        want = m(torch.from_numpy(z), ttarget).item()
        np.testing.assert_allclose(float(host(loss(backend.asarray(z, dtype="float64"), target))), want, rtol=1e-12)
        back = xn.from_torch(m, backend=backend)
        assert type(back) is type(loss) and back.config() == loss.config()


def test_twins_pickle(torch, tmp_path):
    """torch.save of a whole model holding the twins, loaded in a fresh process."""
    import subprocess
    import sys

    with backends.use("numpy"):
        net = xn.Sequential(xn.Linear(3, 4), xn.Residual(xn.Linear(4, 4)), xn.Concat(xn.Identity(), xn.Tanh()))
    module = xn.to_torch(net)
    assert xn.nets.interop.TorchResidual is type(module[1]) and xn.nets.interop.TorchConcat is type(module[2])
    assert repr(module[2]).startswith("Concat(")
    torch.save(module, tmp_path / "m.pt")
    code = ("import torch; m = torch.load(r'%s', weights_only=False); "
            "print(type(m[1]).__name__, type(m[2]).__name__, m(torch.ones(2, 3)).shape)" % (tmp_path / "m.pt"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["Residual", "Concat", "torch.Size([2,", "8])"]
