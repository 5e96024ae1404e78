"""Embedding, Reshape and Unflatten: gradients, parity with torch.nn, exact scatter-add, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet
from xpnet import backends
from xpnet.layers.embedding import Embedding
from xpnet.layers.reshape import Flatten, Reshape, Unflatten
from xpnet.testing import gradcheck
from tests.conftest import host

SETTINGS = settings(
    max_examples=4, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}
f64 = "float64"


def randn(be, shape, dtype=f64):
    return be.rng.normal(tuple(shape), dtype=be.dtype(dtype))


def indices(be, values, dtype="int64"):
    return be.asarray(np.asarray(values, dtype=dtype), dtype=dtype)


# ----------------------------------------------------------------------------------------
# Embedding
# ----------------------------------------------------------------------------------------

@SETTINGS
@given(num=st.integers(1, 6), dim=st.integers(1, 4), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       pad=st.one_of(st.none(), st.integers(-1, 0)), seed=st.integers(0, 2**16))
def test_embedding_gradients(backend, num, dim, shape, pad, seed):
    backend.manual_seed(seed)
    emb = Embedding(num, dim, padding_idx=pad, dtype=f64)
    idx_np = np.random.default_rng(seed).integers(0, num, size=shape)  # repeats whenever size > num
    if pad is not None:
        # torch's padding row gets no gradient by design although the output reads it: a finite
        # difference would see it, so the numeric check avoids it (test_embedding_padding_idx covers it)
        idx_np = np.where(idx_np == emb.padding_idx, (emb.padding_idx + 1) % num, idx_np)
        if num == 1:
            return
    assert gradcheck(emb, indices(backend, idx_np))  # the int64 indices get no gradient (None)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_embedding_repeated_indices_exact(backend, dtype):
    """Every repeat adds its row: integer-valued dy makes the sums exact, so compare with ==."""
    emb = Embedding(5, 3, dtype=dtype)
    idx_np = np.array([[1, 1, 4], [1, 0, 4], [1, 1, 1]])  # row 1 six times, 4 twice, 0 once, 2 and 3 never
    dy_np = np.arange(27, dtype=dtype).reshape(3, 3, 3) - 13.0
    y = emb(indices(backend, idx_np))
    w = host(emb.weight.data)
    assert tuple(y.shape) == (3, 3, 3) and backends.backend_of(y) is backend
    np.testing.assert_array_equal(host(y), w[idx_np])
    assert emb.backward(backend.asarray(dy_np, dtype=dtype)) is None
    expect = np.zeros((5, 3), dtype=dtype)
    np.add.at(expect, idx_np.reshape(-1), dy_np.reshape(-1, 3))
    g = host(emb.weight.grad)
    assert g.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(g, expect)
    np.testing.assert_array_equal(g[1], dy_np.reshape(-1, 3)[idx_np.reshape(-1) == 1].sum(axis=0))
    assert not g[2:4].any()
    # a second backward adds
    emb(indices(backend, idx_np))
    emb.backward(backend.asarray(dy_np, dtype=dtype))
    np.testing.assert_array_equal(host(emb.weight.grad), 2 * expect)


def test_embedding_padding_idx(backend):
    emb = Embedding(6, 4, padding_idx=-2)
    assert emb.padding_idx == 4 and repr(emb) == "Embedding(6, 4, padding_idx=4)"
    w = host(emb.weight.data)
    assert not w[4].any() and np.all(np.delete(w, 4, axis=0) != 0)
    y = emb(indices(backend, [[4, 0], [4, 4]]))
    assert not host(y)[0, 0].any()
    emb.backward(backend.asarray(np.ones((2, 2, 4), dtype=np.float32), dtype="float32"))
    g = host(emb.weight.grad)
    assert not g[4].any()  # the padding row never receives a gradient
    np.testing.assert_array_equal(g[0], np.ones(4, dtype=np.float32))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("padding_idx", [None, 2])
@pytest.mark.parametrize("index_dtype", ["int64", "int32"])
def test_embedding_matches_torch(backend, torch, dtype, padding_idx, index_dtype):
    emb = Embedding(7, 5, padding_idx=padding_idx, dtype=dtype)
    temb = torch.nn.Embedding(7, 5, padding_idx=padding_idx).to(getattr(torch, dtype))
    sd = emb.state_dict()
    assert list(sd) == list(temb.state_dict())
    temb.load_state_dict({k: torch.from_numpy(host(v)) for k, v in sd.items()})
    assert repr(emb) == repr(temb)
    rng = np.random.default_rng(0)
    idx_np = rng.integers(0, 7, size=(4, 6)).astype(index_dtype)
    dy_np = rng.standard_normal((4, 6, 5)).astype(dtype)
    y = emb(indices(backend, idx_np, index_dtype))
    emb.backward(backend.asarray(dy_np, dtype=dtype))
    yt = temb(torch.from_numpy(idx_np))
    yt.backward(torch.from_numpy(dy_np))
    np.testing.assert_array_equal(host(y), yt.detach().numpy())
    np.testing.assert_allclose(host(emb.weight.grad), temb.weight.grad.numpy(), **TOL[dtype])
    assert host(emb.weight.grad).dtype == np.dtype(dtype)
    # and torch's state dict loads back into xpnet
    fresh = Embedding(7, 5, padding_idx=padding_idx, dtype=dtype).load_state_dict(temb.state_dict())
    np.testing.assert_array_equal(host(fresh.weight.data), temb.weight.detach().numpy())


def test_embedding_trains_in_a_sequential_like_torch(backend, torch):
    """Embedding -> Flatten -> Linear, 3 SGD steps against torch (float64)."""
    net = xpnet.Sequential(Embedding(10, 4, dtype=f64), Flatten(), xpnet.Linear(12, 2, dtype=f64))
    tnet = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Flatten(), torch.nn.Linear(12, 2)).double()
    tnet.load_state_dict({k: torch.from_numpy(host(v)) for k, v in net.state_dict().items()})
    opt, topt = xpnet.SGD(net.parameters(), lr=0.5), torch.optim.SGD(tnet.parameters(), lr=0.5)
    crit, tcrit = xpnet.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    for _ in range(3):
        idx_np = rng.integers(0, 10, size=(6, 3))
        t_np = rng.integers(0, 2, size=6)
        opt.zero_grad()
        crit(net(indices(backend, idx_np)), indices(backend, t_np))
        assert net.backward(crit.backward(), input_grad=False) is None
        opt.step()
        topt.zero_grad()
        tcrit(tnet(torch.from_numpy(idx_np)), torch.from_numpy(t_np)).backward()
        topt.step()
    for (k, v), tv in zip(net.state_dict().items(), tnet.state_dict().values()):
        np.testing.assert_allclose(host(v), tv.numpy(), err_msg=k, **TOL[f64])


def test_embedding_errors(backend):
    emb = Embedding(10, 3)
    with pytest.raises(TypeError, match=re.escape("Embedding(10, 3) expected integer indices, got float32")):
        emb(randn(backend, (2, 3), "float32"))
    with pytest.raises(TypeError, match=re.escape("Embedding(10, 3) expected integer indices, got bool")):
        emb(backend.asarray(np.array([True, False]), dtype="bool"))
    with pytest.raises(ValueError, match=re.escape("Embedding(10, 3) expected indices in [0, 10), got 10 (indices range over [0, 10])")):
        emb(indices(backend, [[0, 10], [3, 2]]))
    with pytest.raises(ValueError, match=re.escape("Embedding(10, 3) expected indices in [0, 10), got -1 (indices range over [-1, 4])")):
        emb(indices(backend, [4, -1]))
    with pytest.raises(TypeError, match="expected its input to be an array"):
        emb([1, 2])
    other = backends.get("numpy" if backend.name != "numpy" else "array_api_strict:device1")
    with pytest.raises(ValueError, match=re.escape(f"Embedding(10, 3) got its indices on {other.label} but its parameters are on {backend.label}")):
        emb(indices(other, [1, 2]))
    with pytest.raises(RuntimeError, match=re.escape("Embedding(10, 3).backward was called before forward")):
        emb.backward(randn(backend, (2, 3), "float32"))
    emb(indices(backend, [1, 2]))
    with pytest.raises(ValueError, match=re.escape("Embedding(10, 3).backward expected dy of shape (2, 3) (its output's), got (3, 2)")):
        emb.backward(randn(backend, (3, 2), "float32"))
    emb(indices(backend, [1, 2]))  # a failed backward still consumed its entry
    with pytest.raises(TypeError, match=re.escape("Embedding(10, 3).backward expected dy of dtype float32 (its output's), got float64")):
        emb.backward(randn(backend, (2, 3), "float64"))
    assert emb(indices(backend, np.zeros((0, 4), dtype=np.int64))).shape == (0, 4, 3)  # empty is fine


def _embedding_pair(torch, num=6, dim=3, **kw):
    emb = Embedding(num, dim, dtype=f64, **kw)
    temb = torch.nn.Embedding(num, dim, **kw).double()
    temb.load_state_dict({k: torch.from_numpy(host(v)) for k, v in emb.state_dict().items()})
    return emb, temb


VIEWS = {"0-d": lambda b: b[1, 3], "1-d": lambda b: b[0], "3-d": lambda b: b.reshape(2, 4, 5),
         "strided": lambda b: b[:, ::3], "transposed": lambda b: b.T, "empty": lambda b: b[:0]}


@pytest.mark.parametrize("form", list(VIEWS))
def test_embedding_index_forms_match_torch(backend, torch, form):
    """Any index shape, and index arrays that are views with strides (not C-contiguous)."""
    rng = np.random.default_rng(4)
    base = rng.integers(0, 6, size=(5, 8))
    idx_np = VIEWS[form](base)
    emb, temb = _embedding_pair(torch)
    if backend.name == "torch":  # torch's own strided view (numpy's, on numpy: asarray does not copy)
        idx = VIEWS[form](torch.from_numpy(base))
    else:
        idx = backend.asarray(np.asarray(idx_np), dtype="int64")
    if form in ("strided", "transposed") and backend.name in ("numpy", "torch"):
        assert not (idx.is_contiguous() if backend.name == "torch" else idx.flags.c_contiguous)
    y = emb(idx)
    ti = torch.from_numpy(np.array(idx_np))  # (np.ascontiguousarray makes 0-d into 1-d)
    yt = temb(ti)
    assert tuple(y.shape) == tuple(yt.shape)
    np.testing.assert_array_equal(host(y), yt.detach().numpy())
    g = rng.standard_normal(tuple(yt.shape))
    assert emb.backward(backend.asarray(g, dtype=f64)) is None
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(host(emb.weight.grad), temb.weight.grad.numpy(), **TOL[f64])


def test_embedding_used_twice_matches_torch(backend, torch):
    """Two lookups in one forward (a tied table), two backwards in reverse order: the gradients add."""
    emb, temb = _embedding_pair(torch, padding_idx=1)
    rng = np.random.default_rng(5)
    i1, i2 = rng.integers(0, 6, size=(3, 4)), rng.integers(0, 6, size=(7,))
    g1, g2 = rng.standard_normal((3, 4, 3)), rng.standard_normal((7, 3))
    emb(indices(backend, i1))
    emb(indices(backend, i2))
    assert emb.pending == 2
    assert emb.backward(backend.asarray(g2, dtype=f64)) is None
    assert emb.backward(backend.asarray(g1, dtype=f64)) is None
    assert emb.pending == 0
    ((temb(torch.from_numpy(i1)) * torch.from_numpy(g1)).sum()
     + (temb(torch.from_numpy(i2)) * torch.from_numpy(g2)).sum()).backward()
    np.testing.assert_allclose(host(emb.weight.grad), temb.weight.grad.numpy(), **TOL[f64])


def test_embedding_input_grad_false_dy_none_and_frozen(backend):
    emb = Embedding(5, 2, dtype=f64)
    idx = indices(backend, [[0, 4], [4, 4]])
    dy = randn(backend, (2, 2, 2))
    emb(idx)
    assert emb.backward(dy) is None
    full = host(emb.weight.grad)
    emb.zero_grad()
    emb(idx)
    assert emb.backward(dy, input_grad=False) is None  # the weight still gets its gradient
    np.testing.assert_array_equal(host(emb.weight.grad), full)
    emb(idx)
    assert emb.backward(None) is None and emb.pending == 0
    emb.zero_grad()
    emb.weight.requires_grad_(False)
    emb(idx)
    assert emb.backward(dy) is None
    assert emb.weight.grad is None and emb.pending == 0
    assert gradcheck(emb, idx)  # frozen: nothing to check but the contract (no grad, no input grad)


@pytest.mark.parametrize("args,kw,msg", [
    ((0, 3), {}, "Embedding: num_embeddings must be a positive int, got 0"),
    ((4, -3), {}, "Embedding: embedding_dim must be a positive int, got -3"),
    ((4, 3), dict(padding_idx=4), "Embedding: padding_idx must be None or an int in [-4, 4), got 4"),
    ((4, 3), dict(padding_idx=-5), "got -5"),
    ((4, 3), dict(padding_idx=1.0), "got 1.0"),
    ((4, 3), dict(dtype="int64"), "Embedding: dtype must be a floating-point dtype, got int64"),
])
def test_embedding_rejects_bad_arguments(backend, args, kw, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        Embedding(*args, **kw)


# ----------------------------------------------------------------------------------------
# Reshape and Unflatten
# ----------------------------------------------------------------------------------------

@SETTINGS
@given(n=st.integers(1, 3), a=st.integers(1, 4), b=st.integers(1, 4), c=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_reshape_unflatten_gradients(backend, n, a, b, c, seed):
    backend.manual_seed(seed)
    x = randn(backend, (n, a * b * c))
    for layer, out in ((Reshape(a, b, c), (n, a, b, c)), (Reshape(-1, c), (n, a * b, c)), (Reshape((c, -1)), (n, c, a * b)),
                       (Unflatten(1, (a * b, c)), (n, a * b, c)), (Unflatten(-1, (a, -1, c)), (n, a, b, c))):
        assert tuple(layer(x).shape) == out, layer
        assert gradcheck(layer, x)
    assert gradcheck(Unflatten(0, (1, n)), randn(backend, (n, a, b)))


@pytest.mark.parametrize("dim,sizes,shape", [(1, (2, 5), (3, 10, 4)), (-1, (2, -1), (3, 4, 6)), (0, (2, 3), (6, 2))])
def test_unflatten_matches_torch(backend, torch, dim, sizes, shape):
    layer, tlayer = Unflatten(dim, sizes), torch.nn.Unflatten(dim, sizes)
    assert repr(layer) == repr(tlayer)
    x_np = np.random.default_rng(2).standard_normal(shape)
    y = layer(backend.asarray(x_np, dtype=f64))
    yt = tlayer(torch.from_numpy(x_np))
    np.testing.assert_array_equal(host(y), yt.numpy())
    dx = layer.backward(backend.asarray(2.0 * yt.numpy(), dtype=f64))
    np.testing.assert_array_equal(host(dx), 2.0 * x_np)


def test_reshape_matches_torch_and_roundtrips_with_flatten(backend, torch):
    x_np = np.random.default_rng(3).standard_normal((4, 784)).astype(np.float32)
    x = backend.asarray(x_np, dtype="float32")
    r = Reshape(1, 28, 28)
    assert repr(r) == "Reshape(1, 28, 28)"
    y = r(x)
    np.testing.assert_array_equal(host(y), torch.from_numpy(x_np).reshape(4, 1, 28, 28).numpy())
    f = Flatten()
    back = f(y)
    np.testing.assert_array_equal(host(back), x_np)
    np.testing.assert_array_equal(host(r.backward(f.backward(back))), x_np)
    # in a net: Reshape -> Flatten -> Linear has the gradients of Linear alone
    net = xpnet.Sequential(Reshape(2, -1), Flatten(), xpnet.Linear(784, 3))
    dy = randn(backend, (4, 3), "float32")
    net(x)
    dx = net.backward(dy)
    lin = xpnet.Sequential(xpnet.Linear(784, 3)).load_state_dict({"0." + k.split(".", 1)[1]: v for k, v in net.state_dict().items()})
    lin(x)
    np.testing.assert_array_equal(host(dx), host(lin.backward(dy)))


def test_reshape_and_unflatten_errors(backend):
    x = randn(backend, (32, 780), "float32")
    with pytest.raises(ValueError, match=re.escape(
            "Reshape(1, 28, 28) cannot reshape an input of shape (32, 780) (780 values per sample) into (N, 1, 28, 28), "
            "which needs 784 values per sample")):
        Reshape(1, 28, 28)(x)
    with pytest.raises(ValueError, match=re.escape("Reshape(-1, 7) cannot reshape an input of shape (32, 780) (780 values per sample) "
                                                   "into (N, -1, 7), which needs a multiple of 7 values per sample")):
        Reshape(-1, 7)(x)
    with pytest.raises(ValueError, match=re.escape("Reshape(3) expected an input with a batch axis, got a 0-d array")):
        Reshape(3)(backend.asarray(1.0, dtype="float32"))
    with pytest.raises(ValueError, match=re.escape(
            "Unflatten(dim=1, unflattened_size=(2, 5)) cannot split axis 1 of size 12 (input shape (4, 12)) into (2, 5): "
            "the sizes must multiply to 12")):
        Unflatten(1, (2, 5))(randn(backend, (4, 12), "float32"))
    with pytest.raises(ValueError, match=re.escape(
            "Unflatten(dim=2, unflattened_size=(2, 5)) expected an input with axis 2, got 2-d input of shape (4, 10)")):
        Unflatten(2, (2, 5))(randn(backend, (4, 10), "float32"))
    for layer in (Reshape(2, 5), Unflatten(1, (2, 5))):
        with pytest.raises(RuntimeError, match=re.escape(f"{layer._tag()}.backward was called before forward")):
            layer.backward(randn(backend, (4, 2, 5), "float32"))
        layer(randn(backend, (4, 10), "float32"))
        with pytest.raises(ValueError, match=re.escape(f"{layer._tag()}.backward expected dy of shape (4, 2, 5) (its output's), got (4, 10)")):
            layer.backward(randn(backend, (4, 10), "float32"))
        with pytest.raises(TypeError, match="expected its input to be an array"):
            layer([[1.0] * 10])


@pytest.mark.parametrize("make,msg", [
    (lambda: Reshape(), "Reshape: shape must be a non-empty sequence of positive ints with at most one -1, got ()"),
    (lambda: Reshape(-1, -1), "got (-1, -1)"),
    (lambda: Reshape(0, 3), "got (0, 3)"),
    (lambda: Reshape(2.0, 3), "got (2.0, 3)"),
    (lambda: Unflatten(1, 5), "Unflatten: unflattened_size must be a non-empty sequence of positive ints with at most one -1, got 5"),
    (lambda: Unflatten(1, (2, -2)), "got (2, -2)"),
    (lambda: Unflatten(1.0, (2, 5)), "Unflatten: dim must be an int, got 1.0"),
])
def test_reshape_and_unflatten_reject_bad_arguments(backend, make, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        make()


@pytest.mark.parametrize("make", [lambda: Flatten(), lambda: Reshape(-1), lambda: Unflatten(1, (2, -1))],
                         ids=["Flatten", "Reshape", "Unflatten"])
def test_shape_layers_used_twice_pop_in_reverse(backend, make):
    """Two forwards of inputs with different shapes; each backward reshapes to its own input's shape."""
    layer = make()
    a, b = randn(backend, (2, 4, 3)), randn(backend, (5, 6))
    ya, yb = layer(a), layer(b)
    assert layer.pending == 2
    db = layer.backward(yb * 2.0)
    da = layer.backward(ya * 3.0)
    np.testing.assert_array_equal(host(db), 2.0 * host(b))
    np.testing.assert_array_equal(host(da), 3.0 * host(a))
    layer(a)
    assert layer.backward(ya, input_grad=False) is None and layer.pending == 0
    layer(a)
    assert layer.backward(None) is None and layer.pending == 0


def test_flatten_0d_and_1d_like_torch(backend, torch):
    for shape, start in (((), 0), ((4,), 0), ((4,), -1), ((3, 2), 0)):
        x_np = np.random.default_rng(0).standard_normal(shape)
        f = Flatten(start)
        y = f(backend.asarray(x_np, dtype=f64))
        yt = torch.nn.Flatten(start)(torch.from_numpy(x_np))
        np.testing.assert_array_equal(host(y), yt.numpy())
        dx = f.backward(y * 1.0)
        assert tuple(dx.shape) == shape
    with pytest.raises(ValueError, match=re.escape("Flatten(start_dim=1, end_dim=-1) cannot flatten axes 1..-1 of an input of shape ()")):
        Flatten()(randn(backend, ()))


def test_flatten_backward_errors(backend):
    f = Flatten()
    with pytest.raises(RuntimeError, match=re.escape("Flatten(start_dim=1, end_dim=-1).backward was called before forward")):
        f.backward(randn(backend, (4, 6)))
    f(randn(backend, (4, 2, 3)))
    with pytest.raises(ValueError, match=re.escape("Flatten(start_dim=1, end_dim=-1).backward expected dy of shape (4, 6) (its output's), got (6, 4)")):
        f.backward(randn(backend, (6, 4)))
    with pytest.raises(ValueError, match=re.escape("Flatten: start_dim must be an int, got 1.5")):
        Flatten(1.5)
    with pytest.raises(ValueError, match=re.escape("Flatten: end_dim must be an int, got None")):
        Flatten(0, None)
