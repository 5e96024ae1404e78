"""Parity with PyTorch autograd: outputs, losses, every gradient and SGD steps.

Each test builds an xpnet net on the ``backend`` fixture and the same ``torch.nn``
net on the CPU, in the same dtype, with xpnet's state dict loaded into torch (through
numpy). Inputs are drawn once with numpy and given to both sides bit-identically.

Tolerances: float64 to about 1e-10 relative, float32 to about 1e-5 relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet import backends
from tests.conftest import host, step_both

pytestmark = pytest.mark.torch

DTYPES = ("float64", "float32")
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}
N = 7  # batch size: odd, so that nothing lines up by accident


# ----------------------------------------------------------------------------------------
# building the same net on both sides
# ----------------------------------------------------------------------------------------

def _layer_pair(torch, kind, args, dtype):
    """(xpnet layer, torch.nn layer) for one spec entry."""
    nn = torch.nn
    if kind == "Linear":
        return xpnet.Linear(*args, dtype=dtype), nn.Linear(*args)
    table = {
        "ReLU": (xpnet.ReLU, nn.ReLU),
        "LeakyReLU": (xpnet.LeakyReLU, nn.LeakyReLU),
        "Sigmoid": (xpnet.Sigmoid, nn.Sigmoid),
        "Tanh": (xpnet.Tanh, nn.Tanh),
        "Softmax": (xpnet.Softmax, nn.Softmax),
        "Identity": (xpnet.Identity, nn.Identity),
        "Dropout": (xpnet.Dropout, nn.Dropout),
        "Flatten": (xpnet.Flatten, nn.Flatten),
    }
    ours, theirs = table[kind]
    return ours(*args), theirs(*args)


def build(torch, spec, dtype):
    """xpnet Sequential (on the current default backend) and torch Sequential with the same weights."""
    pairs = [_layer_pair(torch, kind, args, dtype) for kind, *args in spec]
    net = xpnet.Sequential(*(p[0] for p in pairs))
    tnet = torch.nn.Sequential(*(p[1] for p in pairs)).to(getattr(torch, dtype))
    sd = {k: torch.from_numpy(host(v)) for k, v in net.state_dict().items()}
    assert set(sd) == set(tnet.state_dict())
    tnet.load_state_dict(sd)
    return net, tnet


def loss_pair(torch, kind, **kw):
    return getattr(xpnet, kind)(**kw), getattr(torch.nn, kind)(**kw)


def make_target(rng, loss_kind, out_shape, dtype):
    """A numpy target for ``loss_kind``: int64 labels, or floats in ``dtype``."""
    if loss_kind == "CrossEntropyLoss":
        return rng.integers(0, out_shape[1], size=out_shape[0]).astype(np.int64)
    if loss_kind == "BCEWithLogitsLoss":
        t = rng.uniform(0.0, 1.0, size=out_shape)  # soft targets: torch accepts any t in [0, 1]
        t[: out_shape[0] // 2] = np.round(t[: out_shape[0] // 2])  # and some hard ones
        return t.astype(dtype)
    return rng.standard_normal(out_shape).astype(dtype)


def to_backend(backend, arr):
    """A numpy array onto the backend, keeping its dtype (float or int64)."""
    return backend.asarray(arr, dtype=str(arr.dtype))


def close(ours, theirs, dtype, what):
    """Compare an xpnet array (any backend) with a torch tensor or number."""
    a = host(ours) if not isinstance(ours, (float, np.ndarray)) else np.asarray(ours)
    b = theirs.detach().cpu().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != torch {b.shape}"
    assert a.dtype == np.dtype(dtype), f"{what}: dtype {a.dtype}, expected {dtype}"
    assert np.all(np.isfinite(a)), f"{what}: not finite"
    np.testing.assert_allclose(a, b, err_msg=what, **TOL[dtype])


# ----------------------------------------------------------------------------------------
# 1. forward, loss and every gradient
# ----------------------------------------------------------------------------------------

# (id, layer spec, input shape without batch, loss kind, loss kwargs)
ARCHS = [
    ("relu-ce", [("Linear", 6, 10), ("ReLU",), ("Linear", 10, 4)], (6,),
     "CrossEntropyLoss", {}),
    ("relu-ce-smooth", [("Linear", 6, 10), ("ReLU",), ("Linear", 10, 4)], (6,),
     "CrossEntropyLoss", {"label_smoothing": 0.1}),
    ("relu-ce-smooth-sum", [("Linear", 6, 10), ("ReLU",), ("Linear", 10, 4)], (6,),
     "CrossEntropyLoss", {"label_smoothing": 0.25, "reduction": "sum"}),
    ("tanh-sigmoid-mse", [("Linear", 6, 9), ("Tanh",), ("Linear", 9, 3), ("Sigmoid",)], (6,),
     "MSELoss", {}),
    ("tanh-sigmoid-mse-sum", [("Linear", 6, 9), ("Tanh",), ("Linear", 9, 3), ("Sigmoid",)], (6,),
     "MSELoss", {"reduction": "sum"}),
    ("leaky-bce", [("Linear", 6, 8), ("LeakyReLU", 0.2), ("Linear", 8, 3)], (6,),
     "BCEWithLogitsLoss", {}),
    ("leaky-bce-sum", [("Linear", 6, 8), ("LeakyReLU", 0.2), ("Linear", 8, 3)], (6,),
     "BCEWithLogitsLoss", {"reduction": "sum"}),
    ("flatten-softmax-mse", [("Flatten",), ("Linear", 12, 5), ("Softmax", -1)], (3, 4),
     "MSELoss", {}),
    ("flatten-softmax-mse-sum", [("Flatten", 1, -1), ("Linear", 24, 5), ("Softmax", 1)], (2, 3, 4),
     "MSELoss", {"reduction": "sum"}),
    ("identity-nobias-dropout-eval",
     [("Linear", 6, 8), ("Identity",), ("ReLU",), ("Dropout", 0.5), ("Linear", 8, 5, False), ("Identity",)],
     (6,), "CrossEntropyLoss", {"reduction": "sum"}),
    ("deep-mixed",
     [("Identity",), ("Linear", 6, 12), ("Tanh",), ("Linear", 12, 12), ("LeakyReLU",), ("Linear", 12, 12),
      ("Sigmoid",), ("Linear", 12, 4)],
     (6,), "BCEWithLogitsLoss", {}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("arch", ARCHS, ids=[a[0] for a in ARCHS])
def test_forward_loss_and_gradients_match_torch(backend, torch, arch, dtype):
    _, spec, in_shape, loss_kind, loss_kw = arch
    net, tnet = build(torch, spec, dtype)
    net.eval()  # only matters for the Dropout arch: eval must be the identity
    tnet.eval()
    crit, tcrit = loss_pair(torch, loss_kind, **loss_kw)

    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((N, *in_shape)).astype(dtype)
    out_shape = tuple(tnet(torch.from_numpy(x_np)).shape)
    t_np = make_target(rng, loss_kind, out_shape, dtype)

    # xpnet
    x = backend.asarray(x_np, dtype=dtype)
    t = to_backend(backend, t_np)
    y = net(x)
    loss = crit(y, t)
    dy = crit.backward()
    dx = net.backward(dy)

    # torch
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt = tnet(xt)
    yt.retain_grad()
    lt = tcrit(yt, torch.from_numpy(t_np))
    lt.backward()

    assert tuple(loss.shape) == ()
    for arr in (y, loss, dy, dx):
        assert backends.backend_of(arr) is backend
    close(y, yt, dtype, "output")
    close(loss, lt, dtype, "loss")
    close(dy, yt.grad, dtype, "dloss/doutput")
    close(dx, xt.grad, dtype, "dloss/dinput")
    tparams = dict(tnet.named_parameters())
    ours = dict(net.named_parameters())
    assert set(ours) == set(tparams)
    for name, p in ours.items():
        assert backends.backend_of(p.grad) is backend
        close(p.grad, tparams[name].grad, dtype, f"grad of {name}")

    # input_grad=False skips dx but must give the same parameter gradients
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    crit(net(x), t)
    assert net.backward(crit.backward(), input_grad=False) is None
    for name, p in ours.items():
        close(p.grad, tparams[name].grad, dtype, f"grad of {name} (input_grad=False)")


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_accumulate_like_torch(backend, torch, dtype):
    """Two backward passes without zero_grad add up, as in torch."""
    net, tnet = build(torch, [("Linear", 5, 6), ("Tanh",), ("Linear", 6, 3)], dtype)
    crit, tcrit = loss_pair(torch, "CrossEntropyLoss")
    rng = np.random.default_rng(1)
    for _ in range(2):
        x_np = rng.standard_normal((N, 5)).astype(dtype)
        t_np = rng.integers(0, 3, size=N)
        crit(net(backend.asarray(x_np, dtype=dtype)), to_backend(backend, t_np))
        net.backward(crit.backward())
        tcrit(tnet(torch.from_numpy(x_np)), torch.from_numpy(t_np)).backward()
    tparams = dict(tnet.named_parameters())
    for name, p in net.named_parameters():
        close(p.grad, tparams[name].grad, dtype, f"accumulated grad of {name}")


# ----------------------------------------------------------------------------------------
# 2. SGD steps
# ----------------------------------------------------------------------------------------

SGD_CONFIGS = [
    pytest.param(dict(momentum=0.9, weight_decay=1e-2), id="momentum-wd"),
    pytest.param(dict(momentum=0.9, weight_decay=1e-2, nesterov=True), id="nesterov"),
    pytest.param(dict(momentum=0.9, weight_decay=1e-2, dampening=0.1), id="dampening"),
    pytest.param(dict(), id="plain"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", SGD_CONFIGS)
def test_sgd_steps_match_torch(backend, torch, cfg, dtype):
    spec = [("Linear", 6, 10), ("ReLU",), ("Linear", 10, 8), ("Tanh",), ("Linear", 8, 4)]
    net, tnet = build(torch, spec, dtype)
    crit, tcrit = loss_pair(torch, "CrossEntropyLoss", label_smoothing=0.05)
    opt = xpnet.SGD(net.parameters(), lr=0.1, **cfg)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.1, **cfg)
    names = [n for n, _ in net.named_parameters()]
    assert names == [n for n, _ in tnet.named_parameters()]

    rng = np.random.default_rng(2)
    for step in range(5):
        x_np = rng.standard_normal((N, 6)).astype(dtype)
        t_np = rng.integers(0, 4, size=N)

        loss, lt = step_both(net, crit, opt, tnet, tcrit, topt, backend.asarray(x_np, dtype=dtype),
                             to_backend(backend, t_np), torch.from_numpy(x_np), torch.from_numpy(t_np))

        close(loss, lt, dtype, f"loss before step {step}")
        for (name, p), tp in zip(net.named_parameters(), tnet.parameters()):
            assert backends.backend_of(p.data) is backend
            close(p.data, tp, dtype, f"{name} after step {step + 1}")


# ----------------------------------------------------------------------------------------
# 3. Dropout
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_eval_is_exactly_torch(backend, torch, dtype):
    spec = [("Linear", 6, 16), ("ReLU",), ("Dropout", 0.6), ("Linear", 16, 3), ("Dropout", 0.3)]
    net, tnet = build(torch, spec, dtype)
    net.eval()
    tnet.eval()
    assert not any(layer.training for layer in net)
    x_np = np.random.default_rng(3).standard_normal((N, 6)).astype(dtype)
    y = net(backend.asarray(x_np, dtype=dtype))
    g_np = np.random.default_rng(4).standard_normal((N, 3)).astype(dtype)
    dx = net.backward(backend.asarray(g_np, dtype=dtype))
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt = tnet(xt)
    yt.backward(torch.from_numpy(g_np))
    close(y, yt, dtype, "eval output")
    close(dx, xt.grad, dtype, "eval dx")
    # and eval is deterministic
    np.testing.assert_array_equal(host(net(backend.asarray(x_np, dtype=dtype))), host(y))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.25, 0.5])
def test_dropout_train_matches_torch_with_the_same_mask(backend, torch, dtype, p):
    """Training mode: recover xpnet's mask from the Dropout layer's output/input, apply it in torch."""
    spec = [("Linear", 6, 40), ("Tanh",), ("Dropout", p), ("Linear", 40, 3)]
    net, tnet = build(torch, spec, dtype)
    net.train()
    crit, tcrit = loss_pair(torch, "MSELoss")
    rng = np.random.default_rng(5)
    x_np = rng.standard_normal((N, 6)).astype(dtype)
    t_np = rng.standard_normal((N, 3)).astype(dtype)

    # the same computation as net(x), one layer at a time, to see the Dropout's input and output
    h = backend.asarray(x_np, dtype=dtype)
    seen = []
    for layer in net:
        seen.append(h)
        h = layer(h)
    y = h
    before, after = host(seen[2]), host(seen[3])
    assert np.all(before != 0)  # tanh of a random affine map: zero has probability 0
    ratio = after / before
    scale = 1.0 / (1.0 - p)
    mask = np.where(np.abs(ratio) < 0.5 * scale, 0.0, scale)
    np.testing.assert_allclose(ratio, mask, rtol=1e-6 if dtype == "float32" else 1e-14, atol=0)
    kept = float(np.mean(mask != 0))
    assert 0.0 < kept < 1.0
    assert abs(kept - (1.0 - p)) < 0.2  # 280 draws: a loose, deterministic sanity bound
    mask = mask.astype(dtype)

    loss = crit(y, backend.asarray(t_np, dtype=dtype))
    dx = net.backward(crit.backward())

    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt = tnet[3](tnet[1](tnet[0](xt)) * torch.from_numpy(mask))  # Dropout with xpnet's mask
    lt = tcrit(yt, torch.from_numpy(t_np))
    lt.backward()

    close(y, yt, dtype, "train output")
    close(loss, lt, dtype, "train loss")
    close(dx, xt.grad, dtype, "train dx")
    tparams = dict(tnet.named_parameters())
    for name, prm in net.named_parameters():
        close(prm.grad, tparams[name].grad, dtype, f"train grad of {name}")

    # a second training forward draws a fresh mask
    net(backend.asarray(x_np, dtype=dtype))
    net.backward(backend.asarray(np.zeros((N, 3), dtype=dtype), dtype=dtype))


def test_dropout_zero_p_in_training_is_identity(backend, torch):
    net, tnet = build(torch, [("Linear", 4, 5), ("Dropout", 0.0), ("Linear", 5, 2)], "float64")
    net.train()
    tnet.train()
    x_np = np.random.default_rng(6).standard_normal((N, 4))
    close(net(backend.asarray(x_np, dtype="float64")), tnet(torch.from_numpy(x_np)), "float64", "p=0 output")


# ----------------------------------------------------------------------------------------
# 4. huge logits
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_huge_logits(backend, torch, dtype, reduction, smoothing):
    rng = np.random.default_rng(7)
    z_np = (rng.choice([-1.0, 1.0], size=(N, 5)) * 1e4 * rng.uniform(0.5, 1.0, size=(N, 5))).astype(dtype)
    z_np[0] = [1e4, -1e4, 1e4, -1e4, 1e4]  # ties at the top
    z_np[1] = -1e4  # a whole row at -1e4
    t_np = rng.integers(0, 5, size=N)
    crit, tcrit = loss_pair(torch, "CrossEntropyLoss", reduction=reduction, label_smoothing=smoothing)
    _compare_loss_at_huge_logits(torch, backend, crit, tcrit, z_np, to_backend(backend, t_np), torch.from_numpy(t_np), dtype)


def _compare_loss_at_huge_logits(torch, backend, crit, tcrit, z_np, target, target_torch, dtype):
    """The loss and its gradient at logits of order 1e4: finite, and equal to torch's."""
    loss = crit(backend.asarray(z_np, dtype=dtype), target)
    g = crit.backward()
    zt = torch.from_numpy(z_np).requires_grad_(True)
    lt = tcrit(zt, target_torch)
    lt.backward()
    name = type(crit).__name__
    assert math.isfinite(float(host(loss)))
    close(loss, lt, dtype, f"{name} loss at |z| = 1e4")
    close(g, zt.grad, dtype, f"{name} grad at |z| = 1e4")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_with_logits_huge_logits(backend, torch, dtype, reduction):
    rng = np.random.default_rng(8)
    z_np = (rng.choice([-1.0, 1.0], size=(N, 4)) * 1e4).astype(dtype)
    z_np[0] = [1e4, -1e4, 3e4, -3e4]
    t_np = rng.uniform(0.0, 1.0, size=(N, 4)).astype(dtype)
    t_np[:4] = np.round(t_np[:4])  # hard targets too: the loss is exactly 0 or 1e4-ish
    t_np[0] = [1.0, 0.0, 0.0, 1.0]
    crit, tcrit = loss_pair(torch, "BCEWithLogitsLoss", reduction=reduction)
    _compare_loss_at_huge_logits(torch, backend, crit, tcrit, z_np, backend.asarray(t_np, dtype=dtype), torch.from_numpy(t_np), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_logits_through_a_net(backend, torch, dtype):
    """Large weights make the net itself produce logits of order 1e4; gradients stay finite and equal."""
    net, tnet = build(torch, [("Linear", 4, 6), ("ReLU",), ("Linear", 6, 3)], dtype)
    sd = {k: torch.from_numpy(host(v)) * 300.0 for k, v in net.state_dict().items()}
    net.load_state_dict(sd)
    tnet.load_state_dict(sd)
    rng = np.random.default_rng(9)
    x_np = rng.standard_normal((N, 4)).astype(dtype)
    t_np = rng.integers(0, 3, size=N)
    crit, tcrit = loss_pair(torch, "CrossEntropyLoss")
    y = net(backend.asarray(x_np, dtype=dtype))
    assert float(np.max(np.abs(host(y)))) > 1e3
    loss = crit(y, to_backend(backend, t_np))
    dx = net.backward(crit.backward())
    xt = torch.from_numpy(x_np).requires_grad_(True)
    lt = tcrit(tnet(xt), torch.from_numpy(t_np))
    lt.backward()
    close(loss, lt, dtype, "loss")
    close(dx, xt.grad, dtype, "dx")
    tparams = dict(tnet.named_parameters())
    for name, p in net.named_parameters():
        close(p.grad, tparams[name].grad, dtype, f"grad of {name}")


# ----------------------------------------------------------------------------------------
# 5. state dicts both ways
# ----------------------------------------------------------------------------------------

SD_SPEC = [("Flatten",), ("Linear", 12, 7), ("LeakyReLU", 0.1), ("Linear", 7, 7, False), ("Sigmoid",),
           ("Linear", 7, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_state_dict_loads_into_xpnet(backend, torch, dtype):
    tdt = getattr(torch, dtype)
    torch.manual_seed(0)
    pairs = [_layer_pair(torch, kind, args, dtype) for kind, *args in SD_SPEC]
    tnet = torch.nn.Sequential(*(p[1] for p in pairs)).to(tdt)
    net = xpnet.Sequential(*(p[0] for p in pairs))

    tsd = tnet.state_dict()
    net.load_state_dict(tsd)  # torch tensors, accepted as they are

    sd = net.state_dict()
    assert list(sd) == list(tsd)
    for k, v in sd.items():
        assert backends.backend_of(v) is backend, k
        np.testing.assert_array_equal(host(v), tsd[k].numpy(), err_msg=k)
        assert host(v).dtype == np.dtype(dtype)

    # no aliasing: changing torch's tensors afterwards does not reach xpnet
    with torch.no_grad():
        for v in tnet.parameters():
            v.add_(1.0)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(host(v) + 1.0, tnet.state_dict()[k].numpy(), err_msg=k)
    tnet.load_state_dict({k: torch.from_numpy(host(v)) for k, v in net.state_dict().items()})

    x_np = np.random.default_rng(10).standard_normal((N, 3, 4)).astype(dtype)
    close(net(backend.asarray(x_np, dtype=dtype)), tnet(torch.from_numpy(x_np)), dtype, "output after load")


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_round_trip_xpnet_torch_xpnet(backend, torch, dtype):
    """xpnet -> torch (as numpy) -> a fresh xpnet (as torch tensors): same weights, same outputs."""
    net, tnet = build(torch, SD_SPEC, dtype)
    fresh = xpnet.Sequential(*(_layer_pair(torch, kind, args, dtype)[0] for kind, *args in SD_SPEC))
    fresh.load_state_dict(tnet.state_dict())
    for (k, a), (k2, b) in zip(net.state_dict().items(), fresh.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(host(a), host(b), err_msg=k)
    x_np = np.random.default_rng(11).standard_normal((N, 3, 4)).astype(dtype)
    x = backend.asarray(x_np, dtype=dtype)
    np.testing.assert_array_equal(host(net(x)), host(fresh(x)))
    close(fresh(x), tnet(torch.from_numpy(x_np)), dtype, "output")


def test_state_dict_of_other_precision_is_converted(backend, torch):
    """A float64 torch state dict loads into a float32 xpnet net as float32, and vice versa."""
    spec = [("Linear", 5, 4), ("Tanh",), ("Linear", 4, 2)]
    for ours, theirs in (("float32", "float64"), ("float64", "float32")):
        net, _ = build(torch, spec, ours)
        _, tnet = build(torch, spec, theirs)
        net.load_state_dict(tnet.state_dict())
        for k, v in net.state_dict().items():
            assert host(v).dtype == np.dtype(ours), k
            np.testing.assert_array_equal(host(v), tnet.state_dict()[k].numpy().astype(ours), err_msg=k)
