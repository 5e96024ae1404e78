"""Sequential and the Layer tree: names, state dicts, moves between backends and dtypes, modes, repr."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from tests.conftest import host


def mlp():
    return xn.Sequential(xn.Linear(4, 8), xn.ReLU(), xn.Dropout(0.5), xn.Linear(8, 3, bias=False), xn.Tanh())


def test_names_follow_torch(backend):
    net = mlp()
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "3.weight"]
    assert list(net.state_dict()) == ["0.weight", "0.bias", "3.weight"]
    assert net[0].weight.shape == (8, 4) and net[3].weight.shape == (3, 8)
    nested = xn.Sequential(xn.Sequential(xn.Linear(2, 2)), xn.ReLU(), xn.Linear(2, 1))
    assert list(nested.state_dict()) == ["0.0.weight", "0.0.bias", "2.weight", "2.bias"]


def test_parameters_created_in_float32_on_the_default_backend(backend):
    net = mlp()
    for p in net.parameters():
        assert backends.backend_of(p.data) is backend
        assert backend.dtype_name(p.data.dtype) == "float32"


def test_default_init_matches_pytorch_bounds(backend):
    layer = xn.Linear(400, 300)
    w, b = host(layer.weight.data), host(layer.bias.data)
    bound = 1 / np.sqrt(400)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound
    assert np.abs(b).max() <= bound


def test_state_dict_round_trip_through_numpy(backend):
    net = mlp()
    other = mlp()
    other.load_state_dict({k: backend.to_numpy(v) for k, v in net.state_dict().items()})
    x = backend.rng.normal((5, 4))
    net.eval(), other.eval()
    np.testing.assert_array_equal(host(net(x)), host(other(x)))
    # loaded arrays are copies, not the caller's
    sd = {k: backend.to_numpy(v) for k, v in net.state_dict().items()}
    other.load_state_dict(sd)
    sd["0.bias"][:] = 42
    assert not np.any(host(other[0].bias.data) == 42)


def test_state_dict_from_any_backend(backend):
    src = backends.get("array_api_strict:device1")
    with backends.use(src):
        a = mlp()
    b = mlp()
    b.load_state_dict(a.state_dict())
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert backends.backend_of(vb) is backend
        np.testing.assert_array_equal(src.to_numpy(va), host(vb), err_msg=k)


def test_state_dict_is_a_snapshot_because_updates_rebind(backend):
    net = mlp()
    before = net.state_dict()
    saved = {k: host(v) for k, v in before.items()}
    opt = xn.SGD(net.parameters(), lr=0.1)
    loss = xn.MSELoss()
    net.train()
    out = net(backend.rng.normal((6, 4)))
    loss(out, out * 0.0)
    net.backward(loss.backward())
    opt.step()
    for k, v in before.items():
        np.testing.assert_array_equal(host(v), saved[k])
    assert not np.array_equal(host(net.state_dict()["0.weight"]), saved["0.weight"])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_to_dtype_and_backend(backend, dtype):
    net = mlp().to(backends.get("numpy"), dtype="float64")
    ref = {k: host(v) for k, v in net.state_dict().items()}
    net[0].weight.grad = net[0].weight.data * 0.0 + 1.0
    net.to(backend, dtype=dtype)
    for k, v in net.state_dict().items():
        assert backends.backend_of(v) is backend
        assert backend.dtype_name(v.dtype) == dtype
        np.testing.assert_allclose(host(v), ref[k], rtol=1e-7 if dtype == "float32" else 0)
    g = net[0].weight.grad
    assert backends.backend_of(g) is backend and backend.dtype_name(g.dtype) == dtype
    # a namespace dtype works too
    net.to(dtype=backend.xp.float64)
    assert backend.dtype_name(net[0].weight.data.dtype) == "float64"


def test_to_returns_self_and_keeps_identity(backend):
    net = mlp()
    p = net[0].weight
    assert net.to(dtype="float64") is net
    assert net[0].weight is p  # the optimizer's references stay valid


def test_train_eval_switch_dropout(backend):
    net = mlp()
    x = backend.rng.normal((64, 4))
    assert net.training and net[2].training
    net.eval()
    assert not net.training and not net[2].training
    np.testing.assert_array_equal(host(net(x)), host(net(x)))
    net.train()
    assert not np.array_equal(host(net(x)), host(net(x)))


def test_zero_grad_and_accumulation(backend):
    net = mlp().eval()
    x = backend.rng.normal((3, 4))
    y = net(x)
    net.backward(y * 0.0 + 1.0)
    g1 = host(net[0].weight.grad)
    net(x)
    net.backward(y * 0.0 + 1.0)
    np.testing.assert_allclose(host(net[0].weight.grad), 2 * g1, rtol=1e-6)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_backward_without_input_grad_gives_the_same_parameter_grads(backend):
    net = xn.Sequential(xn.Flatten(), xn.Linear(6, 5), xn.ReLU(), xn.Linear(5, 2))
    x = backend.rng.normal((4, 2, 3))
    y = net(x)
    dx = net.backward(y * 0.0 + 1.0)
    assert tuple(dx.shape) == (4, 2, 3)
    full = {k: host(p.grad) for k, p in net.named_parameters()}
    net.zero_grad()
    net(x)
    assert net.backward(y * 0.0 + 1.0, input_grad=False) is None
    for k, p in net.named_parameters():
        np.testing.assert_array_equal(host(p.grad), full[k])
    # nothing trainable: nothing to compute, but the layers still pop what their forward saved
    plain = xn.Sequential(xn.ReLU())
    plain(y)
    assert plain.backward(y, input_grad=False) is None and plain[0].pending == 0


def test_indexing_len_iter_slice_append(backend):
    net = mlp()
    assert len(net) == 5 and isinstance(net[1], xn.ReLU) and list(net)[0] is net[0]
    head = net[:2]
    assert isinstance(head, xn.Sequential) and len(head) == 2 and head[0] is net[0]
    net.append(xn.Linear(3, 1))
    assert list(net.state_dict())[-1] == "5.bias"


def test_repr_is_readable():
    net = xn.Sequential(xn.Linear(784, 256), xn.ReLU(), xn.Dropout(0.2), xn.Sequential(xn.Linear(256, 10), xn.Softmax()))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=784, out_features=256, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Dropout(p=0.2)\n"
        "  (3): Sequential(\n"
        "    (0): Linear(in_features=256, out_features=10, bias=True)\n"
        "    (1): Softmax(dim=-1)\n"
        "  )\n"
        ")"
    )
    assert repr(xn.CrossEntropyLoss(label_smoothing=0.1)) == "CrossEntropyLoss(label_smoothing=0.1)"
    assert repr(xn.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"
    assert repr(net[0].weight).startswith("Parameter(shape=(256, 784), dtype=float32, backend=")


def test_layer_init_functions(backend):
    layer = xn.Linear(300, 200)
    xn.layers.init.xavier_uniform(layer.weight)
    a = np.sqrt(6 / 500)
    w = host(layer.weight.data)
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.95 * a
    xn.layers.init.kaiming_normal(layer.weight, nonlinearity="relu")
    assert abs(host(layer.weight.data).std() - np.sqrt(2 / 300)) < 0.03 * np.sqrt(2 / 300)
    xn.layers.init.zeros(layer.bias)
    assert not np.any(host(layer.bias.data))
    xn.layers.init.constant(layer.bias, 0.5)
    assert np.all(host(layer.bias.data) == 0.5)
    assert backends.backend_of(layer.bias.data) is backend and backend.dtype_name(layer.bias.data.dtype) == "float32"
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        xn.layers.init.xavier_uniform(layer.bias)
