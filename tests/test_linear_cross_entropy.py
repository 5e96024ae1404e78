"""LinearCrossEntropyLoss: gradients (float64, every backend) over targets, out_features, class
weights, ignore_index, smoothing and reductions; float32 parity with torch; its errors; its
state and interop with torch; and training it with fit. (tests/cases/losses_linear_ce.py puts
it through the generic table too; tests/test_module_db.py runs torch's own samples.)"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.testing import gradcheck
from tests.conftest import host

W4 = np.array([0.5, 2.0, 1.0, 1.5])


def _target(rng, kind, lead, out_features, c=4):
    if kind == "indices":
        return rng.integers(0, c, size=lead + out_features).astype(np.int64)
    p = rng.uniform(0.05, 1.0, size=lead + (c,) + out_features)
    return p / p.sum(axis=len(lead), keepdims=True)


def _kwargs(kind, reduction, out_features):
    kw = dict(out_features=out_features, bias=True, reduction=reduction, weight=W4, label_smoothing=0.1)
    if kind == "indices":
        kw["ignore_index"] = 1
    return kw


# -- gradients ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("out_features", [(), (3, 2)], ids=["flat", "kdim"])
@pytest.mark.parametrize("kind", ["indices", "probs"])
def test_gradcheck(backend, kind, out_features, reduction):
    rng = np.random.default_rng(7)
    loss = xn.LinearCrossEntropyLoss(5, 4, **_kwargs(kind, reduction, out_features), backend=backend, dtype="float64")
    x = backend.asarray(rng.standard_normal((6, 5)))
    t = backend.asarray(_target(rng, kind, (6,), out_features))
    assert gradcheck(loss, x, t, seed=3)


@pytest.mark.parametrize("kind", ["indices", "probs"])
def test_gradcheck_unbatched_without_weights(backend, kind):
    rng = np.random.default_rng(8)
    loss = xn.LinearCrossEntropyLoss(5, 4, backend=backend, dtype="float64")
    x = backend.asarray(rng.standard_normal(5))
    t = backend.asarray(_target(rng, kind, (), ()))
    assert gradcheck(loss, x, t, seed=4)


def test_input_grad_false_still_trains_the_linear():
    rng = np.random.default_rng(1)
    loss = xn.LinearCrossEntropyLoss(5, 4, bias=True, dtype="float64")
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 4, 6)
    loss(x, y)
    dx = loss.backward()
    w, b = loss.linear.weight.grad, loss.linear.bias.grad
    loss.zero_grad()
    loss(x, y)
    assert loss.backward(input_grad=False) is None
    np.testing.assert_allclose(loss.linear.weight.grad, w, rtol=1e-12)
    np.testing.assert_allclose(loss.linear.bias.grad, b, rtol=1e-12)
    assert dx.shape == (6, 5)
    # nothing to compute (all frozen, no input gradient): the entries are popped all the same
    loss.requires_grad_(False)
    loss(x, y)
    assert loss.backward(input_grad=False) is None
    assert loss.pending == loss.linear.pending == 0


def test_no_grad_keeps_nothing_and_a_bad_label_leaves_nothing_behind():
    loss = xn.LinearCrossEntropyLoss(5, 4, dtype="float64")
    x = np.random.default_rng(2).standard_normal((3, 5))
    with xn.no_grad():
        loss(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"LinearCrossEntropyLoss expected class labels in \[0, 4\), got labels from 0 to 7"):
        loss(x, np.array([0, 7, 2]))
    assert loss.pending == loss.linear.pending == 0
    loss(x, np.array([0, 1, 2]))  # the next step pairs its forward with its backward
    assert loss.backward().shape == (3, 5)


# -- parity with torch, float32 -----------------------------------------------------------------------

PARITY = [
    ("indices", (), "mean", dict(bias=True, weight=W4, ignore_index=2, label_smoothing=0.1)),
    ("indices", (3, 2), "none", dict(weight=W4, label_smoothing=0.2)),
    ("probs", (), "sum", dict(bias=True, weight=W4, label_smoothing=0.3)),
    ("probs", (2,), "mean", dict(bias=True)),
]


@pytest.mark.parametrize("kind,out_features,reduction,kw", PARITY, ids=[f"{p[0]}-{len(p[1])}d-{p[2]}" for p in PARITY])
@pytest.mark.parametrize("place", ["numpy", "torch"])
def test_torch_parity_float32(torch, place, kind, out_features, reduction, kw):
    be = backends.get(place)
    rng = np.random.default_rng(5)
    tw = None if "weight" not in kw else torch.tensor(kw["weight"], dtype=torch.float32)
    module = torch.nn.LinearCrossEntropyLoss(7, 4, out_features=out_features, reduction=reduction,
                                             **{**kw, "weight": tw})
    loss = xn.LinearCrossEntropyLoss(7, 4, out_features=out_features, reduction=reduction, **kw, backend=be)
    loss.load_state_dict({k: v.detach() for k, v in module.state_dict().items()})
    x = rng.standard_normal((9, 7)).astype(np.float32)
    t = _target(rng, kind, (9,), out_features)
    t = t.astype(np.float32) if kind == "probs" else t
    tx = torch.from_numpy(x).requires_grad_(True)
    tt = torch.from_numpy(t).requires_grad_(kind == "probs")
    ty = module(tx, tt)
    y = loss(be.asarray(x), be.asarray(t))
    w = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    wrt = [tx, module.linear.weight] + ([module.linear.bias] if kw.get("bias") else []) + ([tt] if kind == "probs" else [])
    tgrads = torch.autograd.grad(ty, wrt, torch.from_numpy(w))
    dx, dt = loss.backward(float(w) if w.ndim == 0 else be.asarray(w), target_grad=True)
    ours = [dx, loss.linear.weight.grad] + ([loss.linear.bias.grad] if kw.get("bias") else []) + ([dt] if kind == "probs" else [])
    assert (dt is None) == (kind == "indices")
    for what, a, b in [("loss", y, ty)] + [(f"gradient {i}", g, tg) for i, (g, tg) in enumerate(zip(ours, tgrads))]:
        b = b.detach().numpy()
        a = host(a)
        assert a.dtype == b.dtype == np.float32, what
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * max(np.abs(b).max(), 1e-3), err_msg=what)


# -- the constructor: torch's arguments ---------------------------------------------------------------

def test_state_dict_and_torchs_placement_arguments(torch):
    module = torch.nn.LinearCrossEntropyLoss(5, 4, out_features=(3, 2), bias=True, weight=torch.ones(4))
    loss = xn.LinearCrossEntropyLoss(5, 4, out_features=(3, 2), bias=True, weight=[1.0] * 4, device="cpu",
                                     dtype=torch.float64)  # as torch's module test samples pass them
    assert list(loss.state_dict()) == list(module.state_dict())
    assert {k: tuple(v.shape) for k, v in loss.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert all(str(v.dtype) == "float64" for v in loss.state_dict().values())
    assert loss.in_features == 5 and loss.linear.out_features == 24
    assert loss.ignore_index is None and loss.options is None
    assert [n for n, _ in loss.named_children()] == ["linear"]  # the cross-entropy's maths are no child


@pytest.mark.parametrize("kwargs,kind,pattern", [
    (dict(options=object()), ValueError, r"LinearCrossEntropyLoss: options must be None or torch's LinearCrossEntropyOptions"),
    (dict(device="cuda"), ValueError, r"LinearCrossEntropyLoss: device must be None or 'cpu' .*backend="),
    (dict(weight=[1.0, 2.0, 3.0]), ValueError, r"LinearCrossEntropyLoss: weight must have shape \(4,\), one value per "
                                               r"class, got \(3,\)"),
    (dict(out_features=3), ValueError, r"LinearCrossEntropyLoss: out_features must be a tuple of positive ints"),
    (dict(out_features=(2, 0)), ValueError, r"out_features must be a tuple of positive ints .* got \(2, 0\)"),
    (dict(label_smoothing=1.5), ValueError, r"LinearCrossEntropyLoss: label_smoothing"),
    (dict(ignore_index=1.5), ValueError, r"LinearCrossEntropyLoss: ignore_index must be an int"),
    (dict(reduction="avg"), ValueError, r"LinearCrossEntropyLoss.*reduction"),
])
def test_constructor_errors(kwargs, kind, pattern):
    with pytest.raises(kind, match=pattern):
        xn.LinearCrossEntropyLoss(5, 4, **kwargs)


def test_torch_options_change_nothing(torch):
    """torch's chunking options save memory and give the same loss: xpnet takes them, keeps none."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 4, size=6)
    chunked = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=2)
    module = torch.nn.LinearCrossEntropyLoss(5, 4, dtype=torch.float64, options=chunked)
    loss = xn.LinearCrossEntropyLoss(5, 4, dtype="float64", options=chunked)
    assert loss.options is None and loss.config()["options"] is None
    loss.load_state_dict({k: v.numpy() for k, v in module.state_dict().items()})
    np.testing.assert_allclose(host(loss(backends.get("numpy").asarray(x), backends.get("numpy").asarray(y))),
                               module(torch.from_numpy(x), torch.from_numpy(y)).item(), rtol=1e-12)


def test_sizes_must_be_positive():
    with pytest.raises(ValueError, match=r"LinearCrossEntropyLoss: in_features must be a positive int, got 0"):
        xn.LinearCrossEntropyLoss(0, 4)
    with pytest.raises(ValueError, match=r"LinearCrossEntropyLoss: num_classes must be a positive int, got -1"):
        xn.LinearCrossEntropyLoss(5, -1)


# -- the forward's errors -----------------------------------------------------------------------------

def test_forward_errors(backend):
    loss = xn.LinearCrossEntropyLoss(5, 4, dtype="float64", backend=backend)
    kdim = xn.LinearCrossEntropyLoss(5, 4, out_features=(2,), ignore_index=0, dtype="float64", backend=backend)
    rng = np.random.default_rng(3)
    x = backend.asarray(rng.standard_normal((3, 5)))
    y = backend.asarray(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"LinearCrossEntropyLoss expected input of shape \(N, 5\) or \(5,\), got \(3, 6\)"):
        loss(backend.asarray(rng.standard_normal((3, 6))), y)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 5\) or \(5,\), got \(2, 3, 5\)"):
        loss(backend.asarray(rng.standard_normal((2, 3, 5))), y)
    with pytest.raises(ValueError, match=r"expected integer class labels of shape \(3,\) or float class probabilities of "
                                         r"shape \(3, 4\) \(the logits'\) for input \(3, 5\), got integer labels of shape \(3, 1\)"):
        loss(x, backend.asarray(np.zeros((3, 1), dtype=np.int64)))
    with pytest.raises(TypeError, match=r"got a bool target of shape \(3,\); labels must be integers"):
        loss(x, backend.asarray(np.array([True, False, True])))
    with pytest.raises(TypeError, match=r"LinearCrossEntropyLoss expected class probabilities as a float64 target"):
        loss(x, backend.asarray(np.full((3, 4), 0.25, dtype=np.float32)))
    with pytest.raises(TypeError, match=r"LinearCrossEntropyLoss expected a float32 input to match its parameters, got float64"):
        xn.LinearCrossEntropyLoss(5, 4, backend=backend)(x, y)
    with pytest.raises(ValueError, match=r"with out_features=\(2,\) \(a K-dimensional loss\) expected batched input"):
        kdim(backend.asarray(rng.standard_normal(5)), backend.asarray(np.zeros((2,), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"got class probabilities as target .* \(3, 4, 2\)\), to which ignore_index=0 does "
                                         r"not apply; use ignore_index=None"):
        kdim(x, backend.asarray(np.full((3, 4, 2), 0.25)))
    none = xn.LinearCrossEntropyLoss(5, 4, reduction="none", dtype="float64", backend=backend)
    none(x, y)
    with pytest.raises(ValueError, match=r"LinearCrossEntropyLoss.backward expected dy of shape \(3,\)"):
        none.backward(backend.asarray(np.ones(4)))
    assert loss.pending == kdim.pending == 0


def test_default_ignore_index_ignores_minus_100_labels():
    """torch maps ignore_index=None to -100 for class indices (and allows probabilities)."""
    rng = np.random.default_rng(4)
    loss = xn.LinearCrossEntropyLoss(5, 4, dtype="float64")
    x = rng.standard_normal((3, 5))
    full = loss(x[[0, 2]], np.array([1, 3]))
    loss.backward()
    assert np.isclose(loss(x, np.array([1, -100, 3])), full)
    assert np.all(loss.backward()[1] == 0)


# -- spec and interop -----------------------------------------------------------------------------------

def test_spec_round_trip_keeps_every_argument():
    from xpnet.nets import spec

    loss = xn.LinearCrossEntropyLoss(5, 4, out_features=(3, 2), bias=True, reduction="sum", weight=W4,
                                     ignore_index=2, label_smoothing=0.25)
    s = spec.layer_spec(loss)
    assert s == {"type": "LinearCrossEntropyLoss", "in_features": 5, "num_classes": 4, "out_features": [3, 2],
                 "bias": True, "reduction": "sum", "weight": W4.tolist(), "ignore_index": 2, "label_smoothing": 0.25,
                 "options": None}
    back = spec.build(s)
    assert repr(back) == repr(loss) and back.out_features == (3, 2)


def test_from_torch_and_to_torch(torch):
    module = torch.nn.LinearCrossEntropyLoss(5, 4, out_features=(2,), bias=True, weight=torch.tensor(W4),
                                             ignore_index=1, label_smoothing=0.1, reduction="sum").double()
    loss = xn.from_torch(module)
    assert type(loss) is xn.LinearCrossEntropyLoss and loss.ignore_index == 1 and loss.linear.bias is not None
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((4, 5)), rng.integers(0, 4, (4, 2))
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = module(tx, torch.from_numpy(y))
    (tdx,) = torch.autograd.grad(ty, [tx])
    np.testing.assert_allclose(host(loss(x, y)), ty.item(), rtol=1e-12)
    np.testing.assert_allclose(host(loss.backward()), tdx.numpy(), rtol=1e-10, atol=1e-12)
    back = xn.to_torch(loss)
    assert type(back) is torch.nn.LinearCrossEntropyLoss
    assert (back.out_features, back.ignore_index, back.label_smoothing, back.reduction, back.options) == \
        ((2,), 1, 0.1, "sum", None)
    for k, v in module.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    plain = xn.from_torch(torch.nn.LinearCrossEntropyLoss(3, 2))
    assert plain.ignore_index is None and plain.linear.bias is None and plain.weight is None
    assert xn.from_torch(torch.nn.LinearCrossEntropyLoss(3, 2, options=torch.nn.LinearCrossEntropyOptions())).options is None


def test_checkpoint_rule_predicts_the_arrays():
    from xpnet.nets import checkpoint_arch as arch, spec

    loss = xn.LinearCrossEntropyLoss(5, 4, out_features=(3, 2), bias=True, weight=W4)
    walk = arch.from_spec(spec.layer_spec(loss), loss=True)
    assert sorted((n, s) for n, s, *_ in arch.entries(walk.root)) == \
        sorted((k, tuple(v.shape)) for k, v in loss.state_dict().items())
    assert walk.floats == sum(v.size for v in loss.state_dict().values())
    with pytest.raises(arch.Invalid, match=r"loss: LinearCrossEntropyLoss: num_classes must be a positive int"):
        arch.from_spec({**spec.layer_spec(loss), "num_classes": 0}, "loss", loss=True)


def test_onnx_refuses_it_naming_the_linear():
    from xpnet.onnx import REFUSED

    assert "loss.linear" in REFUSED[xn.LinearCrossEntropyLoss]


# -- training -------------------------------------------------------------------------------------------

def test_fit_trains_the_net_and_the_loss_linear(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((128, 6)).astype(np.float32)
    y = ((X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] > 0)).astype(np.int64)
    net = xn.Sequential(xn.Linear(6, 12), xn.Tanh())
    loss = xn.LinearCrossEntropyLoss(12, 4, bias=True)
    opt = xn.SGD(net.parameters() + loss.parameters(), lr=0.5)
    w0 = host(loss.linear.weight.data).copy()
    history = xn.fit(net, loss, opt, (backend.asarray(X), backend.asarray(y)), epochs=8, batch_size=32, progress=False)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert not np.allclose(host(loss.linear.weight.data), w0)
    figures = xn.evaluate(net, loss, (backend.asarray(X), backend.asarray(y)))
    assert set(figures) == {"loss"}  # the net's outputs are features, not logits: no accuracy
    assert figures["loss"] < history["loss"][0]
