"""BatchNorm1d, BatchNorm2d and LayerNorm: gradient checks, parity with torch.nn, state dicts, errors.

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
from xpnet.layers.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
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
    np.testing.assert_allclose(a, b, err_msg=what, **TOL[dtype])


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

SAMPLE_COUNTS = {"BatchNorm1d": 8, "BatchNorm2d": 7, "LayerNorm": 7}
NORMS = {"BatchNorm1d": BatchNorm1d, "BatchNorm2d": BatchNorm2d, "LayerNorm": LayerNorm}


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


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", ["1d", "2d-cma-nobias", "layernorm"])
def test_applied_twice_in_one_forward_matches_torch(backend, torch, case, mode):
    """``y = f(f(x))``: two stack entries, two backwards in reverse; gradients and (BatchNorm)
    running statistics as torch applying the module twice."""
    if case == "layernorm":
        layer, tlayer = LayerNorm(4, dtype=f64), torch.nn.LayerNorm(4).double()
        randomize(layer, 3, tlayer)
        shape = (5, 4)
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


NORM_CASES = {
    "bn1d": (lambda: BatchNorm1d(3, dtype=f64), (6, 3)),
    "bn2d": (lambda: BatchNorm2d(3, dtype=f64), (2, 3, 2, 2)),
    "bn1d-eval": (lambda: BatchNorm1d(3, dtype=f64).eval(), (6, 3, 2)),
    "layernorm": (lambda: LayerNorm((2, 3), dtype=f64), (4, 2, 3)),
}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", list(NORM_CASES))
def test_input_grad_false_and_dy_none(backend, case, mode):
    make, shape = NORM_CASES[case]
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
    make, shape = NORM_CASES[case]
    layer = make().train(mode == "train")
    tlayer = (torch.nn.LayerNorm((2, 3)) if isinstance(layer, LayerNorm)
              else getattr(torch.nn, type(layer).__name__)(3)).double().train(mode == "train")
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
