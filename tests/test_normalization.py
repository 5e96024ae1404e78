"""The normalization layers (BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, GroupNorm, LayerNorm, RMSNorm,
LocalResponseNorm): gradient checks, parity with torch.nn, running statistics, state dicts,
mixed precision, ONNX forms, errors. (Every layer also has cases in tests/cases/normalization.py,
and torch's own samples run in tests/test_module_db.py.)

Gradient checks in training mode: gradcheck runs several forwards, and each one updates the
running statistics of a BatchNorm (and num_batches_tracked). The output in training mode only
depends on the batch statistics, never on the running ones, so the check stays valid; the
running statistics are checked on their own against torch below.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet
from xpnet import backends
from xpnet.layers.normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm1d,
                                        InstanceNorm2d, InstanceNorm3d, LayerNorm, LocalResponseNorm, RMSNorm)
from xpnet.testing import gradcheck
from tests.conftest import host, step_both

SETTINGS = settings(
    max_examples=3, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DTYPES = ("float64", "float32")
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}
f64 = "float64"


def randn(be, shape, dtype=f64):
    return be.rng.normal(tuple(shape), dtype=be.dtype(dtype))


def randomize(layer, seed, torch_layer=None):
    """Give ``layer`` (and ``torch_layer``) the same random non-trivial parameters and running statistics."""
    rng = np.random.default_rng(seed)
    sd = {}
    for k, v in layer.state_dict().items():
        shape = tuple(v.shape)
        if k.endswith("num_batches_tracked"):
            sd[k] = np.asarray(3, dtype=np.int64)
        elif k.endswith("running_var") or k.endswith("weight"):
            sd[k] = rng.uniform(0.5, 2.0, size=shape)
        else:
            sd[k] = rng.standard_normal(shape)
    layer.load_state_dict(sd)
    if torch_layer is not None:
        import torch

        torch_layer.load_state_dict({k: torch.from_numpy(host(v)) for k, v in layer.state_dict().items()})
    return layer


def same_state(layer, tlayer):
    """Every buffer and parameter equal to torch's (float64), the batch counter exactly."""
    tsd = tlayer.state_dict()
    for k, v in layer.state_dict().items():
        if k.endswith("num_batches_tracked"):
            assert int(host(v)) == int(tsd[k]), k
        else:
            close(v, tsd[k], f64, k)


def close(ours, theirs, dtype, what):
    a = host(ours)
    b = theirs.detach().cpu().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != torch {b.shape}"
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != torch {b.dtype}"
    tol = dict(TOL[dtype])
    if dtype == "float32":  # sums of many terms: their rounding is relative to the largest value
        tol["atol"] = 1e-5 * max(1.0, float(np.max(np.abs(b), initial=0.0)))
    np.testing.assert_allclose(a, b, err_msg=what, **tol)


# ----------------------------------------------------------------------------------------
# gradient checks (float64, random shapes and seeds)
# ----------------------------------------------------------------------------------------

BN_CASES = {
    # id: (class, input rank, kwargs)
    "1d": (BatchNorm1d, 2, {}),
    "1d-L": (BatchNorm1d, 3, {}),
    "1d-noaffine-cma": (BatchNorm1d, 3, dict(affine=False, momentum=None)),
    "2d": (BatchNorm2d, 4, {}),
    "2d-nobias-untracked": (BatchNorm2d, 4, dict(bias=False, track_running_stats=False)),
}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", list(BN_CASES))
@SETTINGS
@given(n=st.integers(2, 4), c=st.integers(1, 3), spatial=st.lists(st.integers(1, 3), min_size=2, max_size=2),
       seed=st.integers(0, 2**16))
def test_batchnorm_gradients(backend, case, mode, n, c, spatial, seed):
    cls, rank, kw = BN_CASES[case]
    backend.manual_seed(seed)
    layer = randomize(cls(c, dtype=f64, **kw), seed)
    layer.train(mode == "train")
    x = randn(backend, (n, c, *spatial[: rank - 2]))
    assert gradcheck(layer, x)  # training mode: every forward also updates the running stats (harmless)


@pytest.mark.parametrize("kw", [{}, dict(bias=False), dict(elementwise_affine=False)], ids=["affine", "nobias", "plain"])
@SETTINGS
@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=2), norm=st.lists(st.integers(2, 4), min_size=1, max_size=2),
       seed=st.integers(0, 2**16))
def test_layernorm_gradients(backend, kw, lead, norm, seed):
    backend.manual_seed(seed)
    layer = randomize(LayerNorm(tuple(norm), dtype=f64, **kw), seed)
    assert gradcheck(layer, randn(backend, (*lead, *norm)))


# ----------------------------------------------------------------------------------------
# parity with torch.nn
# ----------------------------------------------------------------------------------------

PARITY = [
    # id, xpnet class name, input shape, kwargs
    ("1d", "BatchNorm1d", (7, 4), {}),
    ("1d-L", "BatchNorm1d", (5, 3, 6), dict(momentum=0.3)),
    ("1d-cma", "BatchNorm1d", (7, 4), dict(momentum=None)),
    ("1d-noaffine", "BatchNorm1d", (6, 3, 2), dict(affine=False, eps=1e-3)),
    ("2d", "BatchNorm2d", (3, 4, 5, 3), {}),
    ("2d-cma-nobias", "BatchNorm2d", (2, 3, 4, 4), dict(momentum=None, bias=False)),
    ("2d-untracked", "BatchNorm2d", (3, 2, 3, 3), dict(track_running_stats=False)),
]
CLASSES = {"BatchNorm1d": BatchNorm1d, "BatchNorm2d": BatchNorm2d}


def _bn_pair(torch, name, kw, c, dtype):
    ours = CLASSES[name](c, dtype=dtype, **kw)
    theirs = getattr(torch.nn, name)(c, **kw).to(getattr(torch, dtype))
    return randomize(ours, 0, theirs), theirs


def _step(torch, backend, layer, tlayer, x_np, g_np, dtype, what):
    """One forward and backward on both sides; compares y, dx and the parameter gradients."""
    layer.zero_grad()
    y = layer(backend.asarray(x_np, dtype=dtype))
    dx = layer.backward(backend.asarray(g_np, dtype=dtype))
    xt = torch.from_numpy(x_np).requires_grad_(True)
    tlayer.zero_grad()
    yt = tlayer(xt)
    yt.backward(torch.from_numpy(g_np))
    for arr in (y, dx):
        assert backends.backend_of(arr) is backend
    close(y, yt, dtype, f"{what}: output")
    close(dx, xt.grad, dtype, f"{what}: dx")
    tparams = dict(tlayer.named_parameters())
    assert set(tparams) == {n for n, _ in layer.named_parameters()}
    for n, p in layer.named_parameters():
        close(p.grad, tparams[n].grad, dtype, f"{what}: grad of {n}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", PARITY, ids=[c[0] for c in PARITY])
def test_batchnorm_matches_torch(backend, torch, case, dtype):
    """Training steps (outputs, dx, dweight, dbias, running statistics), then eval outputs and gradients."""
    _, name, shape, kw = case
    layer, tlayer = _bn_pair(torch, name, kw, shape[1], dtype)
    rng = np.random.default_rng(1)
    for step in range(3):
        x_np = (rng.standard_normal(shape) * 2.0 + 0.5).astype(dtype)
        g_np = rng.standard_normal(shape).astype(dtype)
        _step(torch, backend, layer.train(), tlayer.train(), x_np, g_np, dtype, f"train step {step}")
        tsd = tlayer.state_dict()
        sd = layer.state_dict()
        assert list(sd) == list(tsd)
        for k, v in sd.items():
            if k.endswith("num_batches_tracked"):
                assert host(v).dtype == np.int64 and host(v).shape == ()
                assert int(host(v)) == int(tsd[k]) == 3 + step + 1
            else:
                close(v, tsd[k], dtype, f"{k} after step {step}")
    x_np = rng.standard_normal(shape).astype(dtype)
    g_np = rng.standard_normal(shape).astype(dtype)
    before = {k: host(v) for k, v in layer.state_dict().items()}
    _step(torch, backend, layer.eval(), tlayer.eval(), x_np, g_np, dtype, "eval")
    for k, v in layer.state_dict().items():  # eval never touches the running statistics
        np.testing.assert_array_equal(host(v), before[k], err_msg=k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [{}, dict(bias=False), dict(elementwise_affine=False, eps=1e-3)], ids=["affine", "nobias", "plain"])
@pytest.mark.parametrize("shape,norm", [((6, 5), 5), ((3, 4, 2, 3), (2, 3)), ((4,), (4,))], ids=["2d", "4d", "no-batch"])
def test_layernorm_matches_torch(backend, torch, dtype, kw, shape, norm):
    layer = LayerNorm(norm, dtype=dtype, **kw)
    tlayer = torch.nn.LayerNorm(norm, **kw).to(getattr(torch, dtype))
    randomize(layer, 2, tlayer)
    assert list(layer.state_dict()) == list(tlayer.state_dict())
    assert repr(layer) == repr(tlayer)
    rng = np.random.default_rng(3)
    x_np = (rng.standard_normal(shape) * 3.0 - 1.0).astype(dtype)
    _step(torch, backend, layer, tlayer, x_np, rng.standard_normal(shape).astype(dtype), dtype, "LayerNorm")


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_layout_matches_torch(backend, torch, dtype):
    """Keys, order, shapes and dtypes as torch; torch's state dict loads into xpnet and back."""
    configs = [dict(), dict(affine=False), dict(track_running_stats=False), dict(bias=False, momentum=None)]
    for name in CLASSES:
        for kw in configs:
            net = xpnet.Sequential(CLASSES[name](5, dtype=dtype, **kw))
            tnet = torch.nn.Sequential(getattr(torch.nn, name)(5, **kw)).to(getattr(torch, dtype))
            sd, tsd = net.state_dict(), tnet.state_dict()
            assert list(sd) == list(tsd), (name, kw)
            for k, v in sd.items():
                assert backends.backend_of(v) is backend
                assert host(v).dtype == tsd[k].numpy().dtype, k
                assert tuple(v.shape) == tuple(tsd[k].shape), k
                np.testing.assert_array_equal(host(v), tsd[k].numpy(), err_msg=k)
            assert repr(net[0]) == repr(tnet[0])
    # torch -> xpnet, after torch trained a little (num_batches_tracked 4, nontrivial statistics)
    tbn = torch.nn.BatchNorm2d(3).to(getattr(torch, dtype))
    for _ in range(4):
        tbn(torch.randn(2, 3, 2, 2, dtype=getattr(torch, dtype)) * 3 + 1)
    bn = BatchNorm2d(3, dtype=dtype).load_state_dict(tbn.state_dict())
    nbt = bn.state_dict()["num_batches_tracked"]
    assert backends.backend_of(nbt) is backend and host(nbt).dtype == np.int64 and int(host(nbt)) == 4
    x_np = np.random.default_rng(4).standard_normal((2, 3, 2, 2)).astype(dtype)
    close(bn.eval()(backend.asarray(x_np, dtype=dtype)), tbn.eval()(torch.from_numpy(x_np)), dtype, "eval after load")


def test_to_moves_buffers_and_keeps_int64(backend):
    bn = BatchNorm1d(3)
    bn(randn(backend, (4, 3), "float32"))
    bn.to(dtype="float64")
    sd = bn.state_dict()
    assert {k: host(v).dtype.name for k, v in sd.items()} == {
        "weight": "float64", "bias": "float64", "running_mean": "float64", "running_var": "float64",
        "num_batches_tracked": "int64",
    }
    assert int(host(sd["num_batches_tracked"])) == 1
    other = "numpy" if backend.name != "numpy" else "array_api_strict:device1"
    bn.to(other)
    for k, v in bn.state_dict().items():
        assert backends.backend_of(v) is backends.get(other), k
    y = bn(randn(backends.get(other), (4, 3)))
    assert backends.backend_of(y) is backends.get(other)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_with_batchnorm_trains_like_torch(backend, torch, dtype):
    """Sequential(Linear, BatchNorm1d, ReLU, Linear): 5 SGD steps, then an eval forward."""
    net = xpnet.Sequential(xpnet.Linear(6, 8, dtype=dtype), BatchNorm1d(8, dtype=dtype), xpnet.ReLU(),
                           xpnet.Linear(8, 3, dtype=dtype))
    tnet = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                               torch.nn.Linear(8, 3)).to(getattr(torch, dtype))
    tnet.load_state_dict({k: torch.from_numpy(host(v)) for k, v in net.state_dict().items()})
    crit, tcrit = xpnet.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    opt = xpnet.SGD(net.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(5)
    for step in range(5):
        x_np = rng.standard_normal((9, 6)).astype(dtype)
        t_np = rng.integers(0, 3, size=9)
        loss, lt = step_both(net, crit, opt, tnet, tcrit, topt, backend.asarray(x_np, dtype=dtype),
                             backend.asarray(t_np, dtype="int64"), torch.from_numpy(x_np), torch.from_numpy(t_np))
        close(loss, lt, dtype, f"loss at step {step}")
        tsd = tnet.state_dict()
        for k, v in net.state_dict().items():
            if k.endswith("num_batches_tracked"):
                assert int(host(v)) == int(tsd[k]) == step + 1
            else:
                close(v, tsd[k], dtype, f"{k} after step {step + 1}")
    net.eval()
    tnet.eval()
    x_np = rng.standard_normal((4, 6)).astype(dtype)
    close(net(backend.asarray(x_np, dtype=dtype)), tnet(torch.from_numpy(x_np)), dtype, "eval output after training")


def test_forward_keeps_no_alias_and_state_dict_snapshots(backend):
    """Running statistics are rebound, never mutated: a state dict taken earlier is a snapshot."""
    bn = BatchNorm1d(2)
    before = bn.state_dict()
    rm = host(before["running_mean"])
    bn(randn(backend, (5, 2), "float32") + 3.0)
    np.testing.assert_array_equal(host(before["running_mean"]), rm)
    assert int(host(before["num_batches_tracked"])) == 0
    assert int(host(bn.num_batches_tracked)) == 1
    assert not np.array_equal(host(bn.running_mean), rm)


# ----------------------------------------------------------------------------------------
# torch's own samples, empty batches, the saved-values stack, input_grad=False, frozen parameters
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("kw", [{}, dict(momentum=None), dict(affine=False), dict(track_running_stats=False)],
                         ids=["default", "cma", "noaffine", "untracked"])
@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4), (2, 3, 0)], ids=str)
def test_batchnorm_empty_batch_like_torch(backend, torch, shape, kw, mode):
    """torch: an empty output; training advances num_batches_tracked and keeps the statistics;
    the parameter gradients are zeros."""
    layer, tlayer = _bn_pair(torch, "BatchNorm1d", kw, 3, f64)
    layer.train(mode == "train")
    tlayer.train(mode == "train")
    _step(torch, backend, layer, tlayer, np.zeros(shape), np.zeros(shape), f64, "empty batch")
    same_state(layer, tlayer)


def test_layernorm_empty_batch(backend, torch):
    layer, tlayer = LayerNorm(5, dtype=f64), torch.nn.LayerNorm(5).double()
    randomize(layer, 1, tlayer)
    _step(torch, backend, layer, tlayer, np.zeros((0, 5)), np.zeros((0, 5)), f64, "empty LayerNorm")
    np.testing.assert_array_equal(host(layer.weight.grad), np.zeros(5))


TWICE = {  # id: (xpnet layer, torch module, input shape)
    "layernorm": (lambda: LayerNorm(4, dtype=f64), lambda nn: nn.LayerNorm(4), (5, 4)),
    "rmsnorm": (lambda: RMSNorm(4, dtype=f64), lambda nn: nn.RMSNorm(4), (5, 4)),
    "groupnorm": (lambda: GroupNorm(2, 4, dtype=f64), lambda nn: nn.GroupNorm(2, 4), (3, 4, 3)),
    "instancenorm-tracked": (lambda: InstanceNorm1d(3, affine=True, track_running_stats=True, dtype=f64),
                             lambda nn: nn.InstanceNorm1d(3, affine=True, track_running_stats=True), (2, 3, 4)),
    "lrn": (lambda: LocalResponseNorm(3, 0.5), lambda nn: nn.LocalResponseNorm(3, 0.5), (2, 5, 3)),
}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", ["1d", "2d-cma-nobias", *TWICE])
def test_applied_twice_in_one_forward_matches_torch(backend, torch, case, mode):
    """``y = f(f(x))``: two stack entries, two backwards in reverse; gradients and running
    statistics as torch applying the module twice."""
    if case in TWICE:
        make, tmake, shape = TWICE[case]
        layer, tlayer = make(), tmake(torch.nn).double()
        randomize(layer, 3, tlayer)
    else:
        _, name, shape, kw = next(c for c in PARITY if c[0] == case)
        layer, tlayer = _bn_pair(torch, name, kw, shape[1], f64)
    layer.train(mode == "train")
    tlayer.train(mode == "train")
    rng = np.random.default_rng(8)
    x_np, g_np = rng.standard_normal(shape) * 2.0 + 1.0, rng.standard_normal(shape)
    y = layer(layer(backend.asarray(x_np, dtype=f64)))
    assert layer.pending == 2
    dx = layer.backward(layer.backward(backend.asarray(g_np, dtype=f64)))
    assert layer.pending == 0
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt = tlayer(tlayer(xt))
    yt.backward(torch.from_numpy(g_np))
    close(y, yt, f64, "output")
    close(dx, xt.grad, f64, "dx")
    tparams = dict(tlayer.named_parameters())
    for n, p in layer.named_parameters():
        close(p.grad, tparams[n].grad, f64, f"grad of {n}")
    same_state(layer, tlayer)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", ["1d", "1d-noaffine", "2d-cma-nobias", "2d-untracked"])
def test_batchnorm_under_no_grad_matches_torch_and_keeps_nothing(backend, torch, case, mode):
    """Inference (eval under no_grad) takes the one-pass affine map y = x * scale + shift."""
    _, name, shape, kw = next(c for c in PARITY if c[0] == case)
    layer, tlayer = _bn_pair(torch, name, kw, shape[1], f64)
    layer.train(mode == "train")
    tlayer.train(mode == "train")
    x_np = np.random.default_rng(9).standard_normal(shape) * 3.0 - 1.0
    with xpnet.no_grad():
        y = layer(backend.asarray(x_np, dtype=f64))
    assert layer.pending == 0
    with torch.no_grad():
        yt = tlayer(torch.from_numpy(x_np))
    close(y, yt, f64, "output")
    tsd = tlayer.state_dict()
    for k, v in layer.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            close(v, tsd[k], f64, k)


NORM_CASES = {  # id: (xpnet layer, torch module, input shape); every layer has a weight and a bias
    "bn1d": (lambda: BatchNorm1d(3, dtype=f64), lambda nn: nn.BatchNorm1d(3), (6, 3)),
    "bn2d": (lambda: BatchNorm2d(3, dtype=f64), lambda nn: nn.BatchNorm2d(3), (2, 3, 2, 2)),
    "bn1d-eval": (lambda: BatchNorm1d(3, dtype=f64).eval(), lambda nn: nn.BatchNorm1d(3), (6, 3, 2)),
    "bn3d": (lambda: BatchNorm3d(2, dtype=f64), lambda nn: nn.BatchNorm3d(2), (2, 2, 2, 1, 2)),
    "layernorm": (lambda: LayerNorm((2, 3), dtype=f64), lambda nn: nn.LayerNorm((2, 3)), (4, 2, 3)),
    "groupnorm": (lambda: GroupNorm(2, 4, dtype=f64), lambda nn: nn.GroupNorm(2, 4), (3, 4, 2)),
    "instancenorm": (lambda: InstanceNorm2d(3, affine=True, dtype=f64), lambda nn: nn.InstanceNorm2d(3, affine=True),
                     (2, 3, 2, 3)),
    "instancenorm-tracked-unbatched": (
        lambda: InstanceNorm1d(3, affine=True, track_running_stats=True, dtype=f64),
        lambda nn: nn.InstanceNorm1d(3, affine=True, track_running_stats=True), (3, 5)),
}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", list(NORM_CASES))
def test_input_grad_false_and_dy_none(backend, case, mode):
    make, _, shape = NORM_CASES[case]
    layer = randomize(make(), 4).train(mode == "train")
    x, dy = randn(backend, shape), randn(backend, shape)
    layer(x)
    assert layer.backward(dy) is not None
    full = {n: host(p.grad) for n, p in layer.named_parameters()}
    layer.zero_grad()
    layer(x)
    assert layer.backward(dy, input_grad=False) is None
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(host(p.grad), full[n], rtol=1e-13, atol=1e-14, err_msg=n)
    layer(x)
    assert layer.backward(None) is None and layer.pending == 0
    for n, p in layer.named_parameters():  # no gradient in: nothing added
        np.testing.assert_allclose(host(p.grad), full[n], rtol=1e-13, atol=1e-14, err_msg=n)


@pytest.mark.parametrize("frozen", ["weight", "bias", "both"])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", list(NORM_CASES))
def test_frozen_parameters_like_torch(backend, torch, case, mode, frozen):
    """A frozen weight or bias gets no gradient; dx and the other gradient are unchanged (torch)."""
    make, tmake, shape = NORM_CASES[case]
    layer = make().train(mode == "train")
    tlayer = tmake(torch.nn).double().train(mode == "train")
    randomize(layer, 5, tlayer)
    names = ("weight", "bias") if frozen == "both" else (frozen,)
    for n in names:
        getattr(layer, n).requires_grad_(False)
        getattr(tlayer, n).requires_grad_(False)
    rng = np.random.default_rng(6)
    x_np, g_np = rng.standard_normal(shape), rng.standard_normal(shape)
    dx = layer.backward(layer(backend.asarray(x_np, dtype=f64)) * 0.0 + backend.asarray(g_np, dtype=f64))
    xt = torch.from_numpy(x_np).requires_grad_(True)
    tlayer(xt).backward(torch.from_numpy(g_np))
    close(dx, xt.grad, f64, "dx")
    for n in ("weight", "bias"):
        if n in names:
            assert getattr(layer, n).grad is None, n
        else:
            close(getattr(layer, n).grad, getattr(tlayer, n).grad, f64, f"grad of {n}")
    assert gradcheck(layer, backend.asarray(x_np, dtype=f64))


# ----------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------

def test_wrong_shapes_name_layer_expected_and_got(backend):
    x = randn(backend, (8, 3, 32, 32), "float32")
    with pytest.raises(ValueError, match=re.escape("BatchNorm2d(16) expected input (N, 16, H, W), got (8, 3, 32, 32)")):
        BatchNorm2d(16)(x)
    with pytest.raises(ValueError, match=re.escape("BatchNorm1d(3) expected input (N, 3) or (N, 3, L), got (8, 3, 32, 32)")):
        BatchNorm1d(3)(x)
    with pytest.raises(ValueError, match=re.escape("BatchNorm1d(4) expected input (N, 4) or (N, 4, L), got (8, 3)")):
        BatchNorm1d(4)(randn(backend, (8, 3), "float32"))
    with pytest.raises(ValueError, match=re.escape("LayerNorm((32, 16)) expected input (*, 32, 16), got (8, 3, 32, 32)")):
        LayerNorm((32, 16))(x)
    bn = BatchNorm1d(3)
    bn(randn(backend, (4, 3), "float32"))
    with pytest.raises(ValueError, match=re.escape("BatchNorm1d(3).backward expected dy of shape (4, 3) (its output's), got (3, 4)")):
        bn.backward(randn(backend, (3, 4), "float32"))
    ln = LayerNorm(3)
    ln(randn(backend, (4, 3), "float32"))
    with pytest.raises(ValueError, match=re.escape("LayerNorm((3,)).backward expected dy of shape (4, 3) (its output's), got (4, 1)")):
        ln.backward(randn(backend, (4, 1), "float32"))


def test_single_value_per_channel_in_training(backend):
    msg = "BatchNorm1d(3): expected more than 1 value per channel when training, got input of shape (1, 3) (1 value per channel)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        BatchNorm1d(3)(randn(backend, (1, 3), "float32"))
    with pytest.raises(ValueError, match=re.escape("got input of shape (1, 2, 1, 1)")):
        BatchNorm2d(2)(randn(backend, (1, 2, 1, 1), "float32"))
    with pytest.raises(ValueError, match="more than 1 value per channel"):  # batch statistics also in eval
        BatchNorm1d(3, track_running_stats=False).eval()(randn(backend, (1, 3), "float32"))
    assert BatchNorm1d(3).eval()(randn(backend, (1, 3), "float32")).shape == (1, 3)  # running stats: fine
    assert BatchNorm1d(3)(randn(backend, (1, 3, 2), "float32")).shape == (1, 3, 2)  # 2 values per channel


def test_dtype_and_place_errors(backend):
    ints = backend.asarray(np.ones((4, 3), dtype=np.int64), dtype="int64")
    with pytest.raises(TypeError, match=re.escape("BatchNorm1d(3) expected a floating-point (float32) input, got int64")):
        BatchNorm1d(3)(ints)
    with pytest.raises(TypeError, match=re.escape("LayerNorm((3,)) expected a floating-point (float32) input, got int64")):
        LayerNorm(3)(ints)
    with pytest.raises(TypeError, match=re.escape("BatchNorm1d(3) expected a floating-point input, got int64")):
        BatchNorm1d(3, affine=False, track_running_stats=False)(ints)
    with pytest.raises(TypeError, match=re.escape("BatchNorm1d(3) expected a float32 input to match its parameters, got float64")):
        BatchNorm1d(3)(randn(backend, (4, 3)))
    with pytest.raises(TypeError, match="expected its input to be an array"):
        LayerNorm(3)([[1.0, 2.0, 3.0]])
    other = backends.get("numpy" if backend.name != "numpy" else "array_api_strict:device1")
    with pytest.raises(ValueError, match=re.escape(f"BatchNorm2d(2) got its input on {other.label} but its parameters are on {backend.label}")):
        BatchNorm2d(2)(randn(other, (2, 2, 2, 2), "float32"))


def test_backward_before_forward(backend):
    for layer in (BatchNorm1d(3), BatchNorm2d(3), LayerNorm(3)):
        with pytest.raises(RuntimeError, match=re.escape(f"{layer._tag()}.backward was called before forward")):
            layer.backward(randn(backend, (2, 3), "float32"))
    bn = BatchNorm1d(3)
    bn(randn(backend, (2, 3), "float32"))
    bn.backward(randn(backend, (2, 3), "float32"))
    with pytest.raises(RuntimeError, match="before forward"):  # twice after one forward
        bn.backward(randn(backend, (2, 3), "float32"))


@pytest.mark.parametrize("args,kw,msg", [
    ((0,), {}, "BatchNorm1d: num_features must be a positive int, got 0"),
    ((3.0,), {}, "BatchNorm1d: num_features must be a positive int, got 3.0"),
    ((3,), dict(eps=0.0), "BatchNorm1d: eps must be a positive real number, got 0.0"),
    ((3,), dict(eps=-1e-5), "BatchNorm1d: eps must be a positive real number, got -1e-05"),
    ((3,), dict(momentum=1.5), "BatchNorm1d: momentum must be a real number in [0, 1] or None, got 1.5"),
    ((3,), dict(momentum=-0.1), "BatchNorm1d: momentum must be a real number in [0, 1] or None, got -0.1"),
    ((3,), dict(affine=1), "BatchNorm1d: affine must be True or False, got 1"),
    ((3,), dict(track_running_stats="yes"), "BatchNorm1d: track_running_stats must be True or False, got 'yes'"),
    ((3,), dict(dtype="int32"), "BatchNorm1d: dtype must be a floating-point dtype, got int32"),
])
def test_batchnorm_rejects_bad_hyperparameters(backend, args, kw, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        BatchNorm1d(*args, **kw)


@pytest.mark.parametrize("args,kw,msg", [
    ((0,), {}, "LayerNorm: normalized_shape must be a positive int or a non-empty sequence of them, got 0"),
    (((),), {}, "got ()"),
    (((3, -1),), {}, "got (3, -1)"),
    ((True,), {}, "got True"),
    ((3,), dict(eps=0), "LayerNorm: eps must be a positive real number, got 0"),
    ((3,), dict(elementwise_affine=None), "LayerNorm: elementwise_affine must be True or False, got None"),
])
def test_layernorm_rejects_bad_hyperparameters(backend, args, kw, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        LayerNorm(*args, **kw)


def test_repr_like_torch(torch):
    assert repr(BatchNorm1d(16)) == repr(torch.nn.BatchNorm1d(16))
    assert repr(BatchNorm2d(3, momentum=None, affine=False)) == repr(torch.nn.BatchNorm2d(3, momentum=None, affine=False))
    assert repr(LayerNorm([2, 3], bias=False)) == repr(torch.nn.LayerNorm([2, 3], bias=False))
    assert repr(BatchNorm3d(4, bias=False)) == repr(torch.nn.BatchNorm3d(4, bias=False))
    assert repr(InstanceNorm1d(3)) == repr(torch.nn.InstanceNorm1d(3))
    assert repr(InstanceNorm3d(2, 1e-3, None, True, True)) == repr(torch.nn.InstanceNorm3d(2, 1e-3, None, True, True))
    assert repr(GroupNorm(2, 4, affine=False)) == repr(torch.nn.GroupNorm(2, 4, affine=False))
    assert repr(RMSNorm([2, 3])) == repr(torch.nn.RMSNorm([2, 3]))
    assert repr(RMSNorm(3, 1e-3, False)) == repr(torch.nn.RMSNorm(3, 1e-3, False))
    assert repr(LocalResponseNorm(2, 1e-3, 0.5, 2)) == repr(torch.nn.LocalResponseNorm(2, 1e-3, 0.5, 2))


# ----------------------------------------------------------------------------------------
# BatchNorm3d, InstanceNorm, GroupNorm, RMSNorm, LocalResponseNorm
# ----------------------------------------------------------------------------------------

MORE = {  # id: (make(c), input shape from (n, c, spatial))
    "bn3d": (lambda c: BatchNorm3d(c, dtype=f64), lambda n, c, sp: (n, c, *sp)),
    "in1d": (lambda c: InstanceNorm1d(c, dtype=f64), lambda n, c, sp: (n, c, sp[0])),
    "in1d-unbatched-tracked": (lambda c: InstanceNorm1d(c, affine=True, track_running_stats=True, dtype=f64),
                               lambda n, c, sp: (c, sp[0])),
    "in2d-affine-nobias": (lambda c: InstanceNorm2d(c, affine=True, bias=False, dtype=f64), lambda n, c, sp: (n, c, *sp[:2])),
    "in3d-tracked": (lambda c: InstanceNorm3d(c, track_running_stats=True, dtype=f64), lambda n, c, sp: (n, c, *sp)),
    "gn-one-group": (lambda c: GroupNorm(1, c, dtype=f64), lambda n, c, sp: (n, c, sp[0])),
    "gn-per-channel": (lambda c: GroupNorm(c, c, dtype=f64), lambda n, c, sp: (n, c, *sp[:2])),
    "rms": (lambda c: RMSNorm(c, dtype=f64), lambda n, c, sp: (n, sp[0], c)),
    "rms-plain": (lambda c: RMSNorm(c, 1e-3, False, dtype=f64), lambda n, c, sp: (n, c)),
    "lrn-even": (lambda c: LocalResponseNorm(2, 0.3, 0.8, 1.5), lambda n, c, sp: (n, c, sp[0])),
    "lrn-wide": (lambda c: LocalResponseNorm(5, 1.0, 0.5, 2.0), lambda n, c, sp: (n, c, *sp[:2])),
}


# eval mode differs from training only with running statistics
MODED = [pytest.param(case, mode, id=f"{case}-{mode}") for case in MORE
         for mode in (("train", "eval") if case.startswith("bn") or "tracked" in case else ("train",))]


@pytest.mark.parametrize("case,mode", MODED)
@SETTINGS
@given(n=st.integers(2, 3), c=st.integers(1, 4), spatial=st.lists(st.integers(2, 3), min_size=3, max_size=3),
       seed=st.integers(0, 2**16))
def test_more_norm_gradients(backend, case, mode, n, c, spatial, seed):
    make, shape = MORE[case]
    layer = randomize(make(c), seed).train(mode == "train")
    assert gradcheck(layer, randn(backend, shape(n, c, spatial)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
@pytest.mark.parametrize("kw", [dict(momentum=0.3), dict(momentum=None, affine=True)], ids=["momentum", "momentum-none"])
def test_instance_norm_running_statistics_like_torch(backend, torch, kw, unbatched, dtype):
    """Three training steps (outputs, gradients, running statistics averaged over the batch,
    num_batches_tracked never counted), then eval mode with the running statistics."""
    layer = InstanceNorm2d(3, track_running_stats=True, dtype=dtype, **kw)
    tlayer = torch.nn.InstanceNorm2d(3, track_running_stats=True, **kw).to(getattr(torch, dtype))
    randomize(layer, 7, tlayer)
    shape = (3, 4, 5) if unbatched else (4, 3, 4, 5)
    rng = np.random.default_rng(2)
    for step in range(3):
        x_np = (rng.standard_normal(shape) * 2.0 + 1.0).astype(dtype)
        _step(torch, backend, layer.train(), tlayer.train(), x_np, rng.standard_normal(shape).astype(dtype), dtype,
              f"train step {step}")
        tsd = tlayer.state_dict()
        for k, v in layer.state_dict().items():
            if k.endswith("num_batches_tracked"):
                assert int(host(v)) == int(tsd[k]) == 3
            else:
                close(v, tsd[k], dtype, f"{k} after step {step}")
    x_np = rng.standard_normal(shape).astype(dtype)
    _step(torch, backend, layer.eval(), tlayer.eval(), x_np, rng.standard_normal(shape).astype(dtype), dtype, "eval")


def test_instance_norm_other_channel_count_warns_like_torch(backend, torch):
    """affine=False without running statistics: num_features is not used; torch warns and normalizes."""
    layer, tlayer = InstanceNorm1d(3, dtype=f64), torch.nn.InstanceNorm1d(3).double()
    x_np = np.random.default_rng(3).standard_normal((2, 5, 4))
    with pytest.warns(UserWarning, match=re.escape("InstanceNorm1d(3): the input's size at dim=1 (5) does not match "
                                                   "num_features (3); num_features is not used because affine=False")):
        y = layer(backend.asarray(x_np, dtype=f64))
    with pytest.warns(UserWarning):
        close(y, tlayer(torch.from_numpy(x_np)), f64, "output")
    for bad in (InstanceNorm1d(3, affine=True), InstanceNorm1d(3, track_running_stats=True)):
        with pytest.raises(ValueError, match=re.escape("InstanceNorm1d(3) expected input with 3 channels at axis 1")):
            bad(randn(backend, (2, 5, 4), "float32"))


def test_instance_norm_empty_batch_like_torch(backend, torch):
    """An empty batch: an empty output; torch's running statistics become NaN (the mean over no
    sample), and so do xpnet's."""
    layer = InstanceNorm1d(3, track_running_stats=True, dtype=f64)
    tlayer = torch.nn.InstanceNorm1d(3, track_running_stats=True).double()
    y = layer(randn(backend, (0, 3, 4)))
    yt = tlayer(torch.zeros(0, 3, 4, dtype=torch.float64))
    assert tuple(y.shape) == tuple(yt.shape) == (0, 3, 4)
    for k, v in tlayer.state_dict().items():
        np.testing.assert_array_equal(host(layer.state_dict()[k]), v.numpy(), err_msg=k)
    assert np.isnan(host(layer.running_mean)).all()


def test_group_norm_without_parameters_takes_other_channel_counts(backend, torch):
    layer, tlayer = GroupNorm(2, 4, affine=False, dtype=f64), torch.nn.GroupNorm(2, 4, affine=False).double()
    rng = np.random.default_rng(4)
    x_np, g_np = rng.standard_normal((3, 6, 5)) * 3.0, rng.standard_normal((3, 6, 5))
    _step(torch, backend, layer, tlayer, x_np, g_np, f64, "GroupNorm(2, 4) on 6 channels")
    with pytest.raises(ValueError, match=re.escape("GroupNorm(2, 4) expected input (N, 4, *), got (3, 5, 5)")):
        layer(randn(backend, (3, 5, 5)))
    with pytest.raises(ValueError, match=re.escape("GroupNorm(2, 4) expected input (N, 4, *), got (3, 6)")):
        GroupNorm(2, 4, dtype=f64)(randn(backend, (3, 6)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_default_eps_is_the_dtypes_like_torch(backend, torch, dtype):
    """eps=None: finfo(dtype).eps, which matters for rows near zero."""
    layer, tlayer = RMSNorm((2, 3), dtype=dtype), torch.nn.RMSNorm((2, 3)).to(getattr(torch, dtype))
    randomize(layer, 5, tlayer)
    rng = np.random.default_rng(5)
    x_np = (rng.standard_normal((4, 2, 3)) * 1e-4).astype(dtype)
    x_np[0] = 0.0  # a row of zeros: y 0, finite gradients
    _step(torch, backend, layer, tlayer, x_np, rng.standard_normal((4, 2, 3)).astype(dtype), dtype, "RMSNorm")
    assert np.isfinite(host(layer.weight.grad)).all()


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
def test_local_response_norm_windows_like_torch(backend, torch, size):
    """Every window size, one wider than the channels; 3-D and 5-D inputs (torch pools differently)."""
    rng = np.random.default_rng(size)
    for shape in ((2, 5, 3), (1, 5, 2, 2, 3)):
        layer, tlayer = LocalResponseNorm(size, 0.7, 0.6, 1.2), torch.nn.LocalResponseNorm(size, 0.7, 0.6, 1.2)
        x_np = rng.standard_normal(shape) * 2.0
        _step(torch, backend, layer, tlayer, x_np, rng.standard_normal(shape), f64, f"size {size}, input {shape}")
        assert gradcheck(layer, backend.asarray(x_np, dtype=f64))


LOW_CASES = {
    "groupnorm": lambda: GroupNorm(2, 4),
    "instancenorm-affine": lambda: InstanceNorm2d(4, affine=True),
    "instancenorm-tracked": lambda: InstanceNorm2d(4, track_running_stats=True),
    "rmsnorm": lambda: RMSNorm((4, 3)),
    "lrn": lambda: LocalResponseNorm(3),
}


@pytest.mark.parametrize("kind", list(LOW_CASES))
def test_low_precision_computes_in_float32(kind):
    """float16 (numpy; torch's float16 is tested in tests/test_amp.py's way for BatchNorm and
    LayerNorm): y, dx and the gradients as float32 computes them on the same values, rounded once."""
    be = backends.get("numpy")
    with backends.use(be):
        ref, low = LOW_CASES[kind](), LOW_CASES[kind]()
    rng = np.random.default_rng(6)
    for a, b in zip(ref.parameters(), low.parameters()):
        b.data = be.asarray(rng.standard_normal(a.shape) * 0.5 + 1.0, dtype="float16")
        a.data = be.asarray(b.data, dtype="float32")
    x16 = be.asarray(rng.standard_normal((3, 4, 4, 3)) * 2.0, dtype="float16")
    dy16 = be.asarray(rng.standard_normal((3, 4, 4, 3)), dtype="float16")
    x32, dy32 = be.asarray(x16, dtype="float32"), be.asarray(dy16, dtype="float32")
    for mode in ("train", "eval"):
        ref.train(mode == "train")
        low.train(mode == "train")
        y, y32 = low(x16), ref(x32)
        assert y.dtype == np.float16
        np.testing.assert_array_equal(host(y), host(y32).astype(np.float16))
        np.testing.assert_array_equal(host(low.backward(dy16)), host(ref.backward(dy32)).astype(np.float16))
        for a, b in zip(ref.parameters(), low.parameters()):
            np.testing.assert_array_equal(host(b.grad), host(a.grad).astype(np.float16))
            a.grad = b.grad = None
        for (name, a), (_, b) in zip(ref.named_buffers(), low.named_buffers()):
            np.testing.assert_array_equal(host(b), host(a), err_msg=name)


@pytest.mark.parametrize("case", ["bn2d", "groupnorm", "instancenorm", "layernorm"])
def test_float32_gradients_hold_far_from_zero_mean(backend, case):
    """Inputs around 100 (std 1): the statistics and sums are taken from x - mean, as torch's
    two-pass kernels take them, so float32 stays within 3e-5 of float64 (measured ~5e-6;
    E[x^2] - mean^2 would lose about 1e-3)."""
    make, _, shape = NORM_CASES[case]
    rng = np.random.default_rng(8)
    x_np, g_np = rng.standard_normal(shape) + 100.0, rng.standard_normal(shape)
    out = {}
    for dtype in DTYPES:
        layer = make().to(dtype=dtype)
        randomize(layer, 9)
        layer.to(dtype=dtype)
        y = layer(backend.asarray(x_np, dtype=dtype))
        dx = layer.backward(backend.asarray(g_np, dtype=dtype))
        out[dtype] = [host(a).astype(np.float64) for a in (y, dx, layer.weight.grad)]
    for what, a, b in zip(("y", "dx", "dweight"), out["float32"], out["float64"]):
        assert np.abs(a - b).max() <= 3e-5 * max(np.abs(b).max(), 1.0), what


@pytest.mark.parametrize("args,kw,msg", [
    ((0, 4), {}, "GroupNorm: num_groups must be a positive int, got 0"),
    ((3, 4), {}, "GroupNorm: num_channels (4) must be divisible by num_groups (3)"),
    ((2, 4), dict(eps=-1.0), "GroupNorm: eps must be a positive real number, got -1.0"),
    ((2, 4), dict(affine="no"), "GroupNorm: affine must be True or False, got 'no'"),
])
def test_group_norm_rejects_bad_hyperparameters(args, kw, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        GroupNorm(*args, **kw)


@pytest.mark.parametrize("make,msg", [
    (lambda: InstanceNorm2d(0), "InstanceNorm2d: num_features must be a positive int, got 0"),
    (lambda: InstanceNorm1d(3, momentum=2.0), "InstanceNorm1d: momentum must be a real number in [0, 1] or None, got 2.0"),
    (lambda: InstanceNorm3d(3, track_running_stats=1), "InstanceNorm3d: track_running_stats must be True or False, got 1"),
    (lambda: BatchNorm3d(2, eps=0), "BatchNorm3d: eps must be a positive real number, got 0"),
    (lambda: RMSNorm(()), "RMSNorm: normalized_shape must be a positive int or a non-empty sequence of them, got ()"),
    (lambda: RMSNorm(3, eps=0.0), "RMSNorm: eps must be a positive real number, got 0.0"),
    (lambda: RMSNorm(3, elementwise_affine=None), "RMSNorm: elementwise_affine must be True or False, got None"),
    (lambda: LocalResponseNorm(0), "LocalResponseNorm: size must be a positive int, got 0"),
    (lambda: LocalResponseNorm(2, alpha=float("nan")), "LocalResponseNorm: alpha must be a real number, got nan"),
    (lambda: LocalResponseNorm(2, beta="1"), "LocalResponseNorm: beta must be a real number, got '1'"),
])
def test_more_norms_reject_bad_hyperparameters(make, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        make()


def test_more_norms_wrong_inputs_name_layer_expected_and_got(backend):
    x = randn(backend, (2, 3, 4, 4), "float32")
    for layer, msg in [
        (BatchNorm3d(3), "BatchNorm3d(3) expected input (N, 3, D, H, W), got (2, 3, 4, 4)"),
        (InstanceNorm1d(3), "InstanceNorm1d(3) expected input (N, 3, L) or (3, L), got (2, 3, 4, 4)"),
        (RMSNorm(3), "RMSNorm((3,)) expected input (*, 3), got (2, 3, 4, 4)"),
        (GroupNorm(2, 4), "GroupNorm(2, 4) expected input (N, 4, *), got (2, 3, 4, 4)"),
    ]:
        with pytest.raises(ValueError, match=re.escape(msg)):
            layer(x)
    with pytest.raises(ValueError, match=re.escape("InstanceNorm3d(3) expected input (N, 3, D, H, W) or (3, D, H, W), "
                                                   "got (3, 4, 4)")):
        InstanceNorm3d(3)(randn(backend, (3, 4, 4), "float32"))
    with pytest.raises(ValueError, match=re.escape("LocalResponseNorm(2) expected input (N, C, *) of 3 or more "
                                                   "dimensions, got (2, 3)")):
        LocalResponseNorm(2)(randn(backend, (2, 3), "float32"))
    with pytest.raises(ValueError, match=re.escape("InstanceNorm2d(3): expected more than 1 spatial element when "
                                                   "training, got input of shape (3, 1, 1)")):
        InstanceNorm2d(3)(randn(backend, (3, 1, 1), "float32"))
    assert InstanceNorm2d(3, track_running_stats=True).eval()(randn(backend, (3, 1, 1), "float32")).shape == (3, 1, 1)
    lrn = LocalResponseNorm(2)
    lrn(x)
    with pytest.raises(ValueError, match=re.escape("LocalResponseNorm(2).backward expected dy of shape (2, 3, 4, 4)")):
        lrn.backward(randn(backend, (2, 3, 4), "float32"))
    with pytest.raises(TypeError, match=re.escape("GroupNorm(2, 4) expected a float32 input to match its parameters, "
                                                  "got float64")):
        GroupNorm(2, 4)(randn(backend, (2, 4, 3)))


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_more_norms_export_to_onnx_at_each_opset_form(opset, tmp_path):
    """ReduceMean's two forms (axes an input from opset 18), onnxruntime against xpnet's eval output."""
    onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install 'xpnet[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")
    with backends.use("numpy"):
        net = xpnet.Sequential(GroupNorm(2, 4), InstanceNorm2d(4, affine=True), InstanceNorm2d(4, track_running_stats=True),
                               LocalResponseNorm(3), xpnet.Flatten(2), RMSNorm(6),
                               RMSNorm(6, 1e-3, False))
        randomize(net, 10)
    x = np.random.default_rng(11).standard_normal((3, 4, 2, 3)).astype(np.float32)
    model = xpnet.to_onnx(net, tmp_path / "m.onnx", x.shape, opset=opset)
    assert model.opset_import[0].version == opset
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx.load(tmp_path / "m.onnx").SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    for batch in (x, np.concatenate([x, x[:2] * 2.0])):
        with xpnet.no_grad():
            want = host(net.eval()(backends.get("numpy").asarray(batch)))
        np.testing.assert_allclose(sess.run(None, {"input": batch})[0], want, rtol=1e-5, atol=1e-5)
