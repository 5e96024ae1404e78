"""ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, Identity and Dropout on the saved-values contract:
torch's own samples, 0-d and 1-D inputs, a layer used twice in one forward, input_grad=False,
dy=None, no_grad, and the errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnet
from xpnet import backends
from xpnet.testing import gradcheck
from tests.conftest import host

TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}

MAKERS = {
    "ReLU": xpnet.ReLU,
    "LeakyReLU": xpnet.LeakyReLU,
    "Sigmoid": xpnet.Sigmoid,
    "Tanh": xpnet.Tanh,
    "Softmax": xpnet.Softmax,
}
# (xpnet layer, torch.nn layer) factories for the tests against torch
PAIRS = {
    "ReLU": (xpnet.ReLU, "ReLU", ()),
    "LeakyReLU": (lambda: xpnet.LeakyReLU(0.2), "LeakyReLU", (0.2,)),
    "Sigmoid": (xpnet.Sigmoid, "Sigmoid", ()),
    "Tanh": (xpnet.Tanh, "Tanh", ()),
    "Softmax": (lambda: xpnet.Softmax(0), "Softmax", (0,)),
    "Softmax-1": (xpnet.Softmax, "Softmax", (-1,)),
    "Identity": (xpnet.Identity, "Identity", ()),
}


def randn(be, shape, dtype="float64"):
    return be.rng.normal(tuple(shape), dtype=be.dtype(dtype))


def close(ours, theirs, dtype, what):
    a = host(ours)
    b = theirs.detach().cpu().numpy()
    assert a.shape == b.shape, f"{what}: shape {a.shape} != torch {b.shape}"
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != torch {b.dtype}"
    np.testing.assert_allclose(a, b, err_msg=what, **TOL[dtype])


# ----------------------------------------------------------------------------------------
# input forms
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1,), (5,), (3, 4), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("name", list(PAIRS))
def test_gradients_on_every_rank(backend, name, shape):
    make = PAIRS[name][0]
    assert gradcheck(make(), randn(backend, shape))


@pytest.mark.parametrize("shape", [(5,), (3, 4)], ids=str)
def test_dropout_gradients(backend, shape):
    assert gradcheck(xpnet.Dropout(0.3), randn(backend, shape))  # gradcheck replays the generator: one mask


@pytest.mark.parametrize("name", list(PAIRS) + ["Dropout"])
def test_0d_gradients_by_finite_differences(backend, name):
    """0-d inputs (gradcheck's perturbed 0-d numpy inputs become numpy scalars, so this one is by hand)."""
    eps = 1e-6
    for x0 in (0.37, -0.81):
        layer = xpnet.Dropout(0.5) if name == "Dropout" else PAIRS[name][0]()
        seed = 5
        def f(v):
            backend.manual_seed(seed)  # one mask for every Dropout forward
            with xpnet.no_grad():
                return float(host(layer(backend.asarray(np.asarray(v)))))

        num = (f(x0 + eps) - f(x0 - eps)) / (2 * eps)
        backend.manual_seed(seed)
        layer(backend.asarray(np.asarray(x0)))
        ana = float(host(layer.backward(backend.asarray(np.asarray(1.0)))))
        assert abs(num - ana) <= 1e-8 + 1e-6 * abs(ana), (x0, num, ana)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(PAIRS) + ["Dropout-train", "Dropout-eval"])
def test_0d_input_gives_0d_arrays_of_its_dtype(backend, name, dtype):
    """Numpy turns 0-d arithmetic into numpy scalars; every layer hands back 0-d arrays instead."""
    if name.startswith("Dropout"):
        layer = xpnet.Dropout(0.5).train(name == "Dropout-train")
    else:
        layer = PAIRS[name][0]()
    x = backend.asarray(np.asarray(0.7, dtype=dtype))
    y = layer(x)
    dx = layer.backward(backend.asarray(np.asarray(1.5, dtype=dtype)))
    for what, a in (("y", y), ("dx", dx)):
        assert backend.owns(a), f"{what} is a {type(a).__name__}, not an array of {backend.label}"
        assert tuple(a.shape) == () and a.dtype == backend.dtype(dtype), what


def test_softmax_of_0d_is_one_with_zero_gradient(backend, torch):
    for d in (0, -1):
        for v in (3.0, -1e30, float("nan")):
            layer, tlayer = xpnet.Softmax(d), torch.nn.Softmax(d)
            y = layer(backend.asarray(np.asarray(v)))
            xt = torch.tensor(v, dtype=torch.float64, requires_grad=True)
            yt = tlayer(xt)
            yt.backward(torch.tensor(2.0, dtype=torch.float64))
            dx = layer.backward(backend.asarray(np.asarray(2.0)))
            np.testing.assert_array_equal(host(y), yt.detach().numpy())
            np.testing.assert_array_equal(host(dx), xt.grad.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_and_softmax_do_not_overflow(backend, torch, dtype):
    x_np = np.array([[-1e4, -100.0, 0.0, 100.0, 1e4]], dtype=dtype)
    for ours, theirs in ((xpnet.Sigmoid(), torch.nn.Sigmoid()), (xpnet.Softmax(), torch.nn.Softmax(-1))):
        y = ours(backend.asarray(x_np))
        assert np.all(np.isfinite(host(y)))
        close(y, theirs(torch.from_numpy(x_np)), dtype, type(ours).__name__)


# ----------------------------------------------------------------------------------------
# the saved-values stack
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_applied_twice_in_one_forward_matches_torch(backend, torch, name, dtype):
    """``y = f(f(x))``: two entries on the stack, popped in reverse by two backwards."""
    make, tname, targs = PAIRS[name]
    layer, tlayer = make(), getattr(torch.nn, tname)(*targs)
    rng = np.random.default_rng(7)
    x_np = (rng.standard_normal((3, 4)) * 2.0).astype(dtype)
    g_np = rng.standard_normal((3, 4)).astype(dtype)
    y = layer(layer(backend.asarray(x_np)))
    assert layer.pending == 2
    dx = layer.backward(layer.backward(backend.asarray(g_np)))
    assert layer.pending == 0
    xt = torch.from_numpy(x_np).requires_grad_(True)
    yt = tlayer(tlayer(xt))
    yt.backward(torch.from_numpy(g_np))
    close(y, yt, dtype, "output")
    close(dx, xt.grad, dtype, "dx")


@pytest.mark.parametrize("name", list(PAIRS))
def test_two_inputs_pop_in_reverse_order(backend, name):
    """Two forwards on inputs of different shapes: each backward gets the newest entry."""
    layer = PAIRS[name][0]()
    a, b = randn(backend, (2, 3)), randn(backend, (4, 3))
    layer(a)
    layer(b)
    db = layer.backward(randn(backend, (4, 3)))
    da = layer.backward(randn(backend, (2, 3)))
    assert tuple(db.shape) == (4, 3) and tuple(da.shape) == (2, 3)


def test_dropout_used_twice_pops_its_masks_in_reverse(backend):
    drop = xpnet.Dropout(0.5)
    x1, x2 = randn(backend, (6, 5)) + 10.0, randn(backend, (6, 5)) + 10.0  # nonzero
    m1, m2 = host(drop(x1)) / host(x1), host(drop(x2)) / host(x2)
    assert not np.array_equal(m1, m2)  # a fresh mask per forward
    g1, g2 = randn(backend, (6, 5)), randn(backend, (6, 5))
    np.testing.assert_allclose(host(drop.backward(g2)), host(g2) * m2, rtol=1e-12)
    np.testing.assert_allclose(host(drop.backward(g1)), host(g1) * m1, rtol=1e-12)


@pytest.mark.parametrize("mode", ["train", "eval", "p0"])
def test_dropout_saves_an_entry_in_every_mode(backend, mode):
    drop = xpnet.Dropout(0.0 if mode == "p0" else 0.3).train(mode != "eval")
    x = randn(backend, (3, 4))
    y = drop(x)
    assert drop.pending == 1
    if mode != "train":
        assert y is x  # as torch: the identity returns its input
    dy = randn(backend, (3, 4))
    dx = drop.backward(dy)
    assert drop.pending == 0
    if mode != "train":
        assert dx is dy


@pytest.mark.parametrize("name", list(PAIRS) + ["Dropout"])
def test_input_grad_false_and_dy_none_pop_and_return_none(backend, name):
    layer = xpnet.Dropout(0.4) if name == "Dropout" else PAIRS[name][0]()
    x = randn(backend, (3, 4))
    layer(x)
    layer(x)
    assert layer.backward(randn(backend, (3, 4)), input_grad=False) is None
    assert layer.pending == 1
    assert layer.backward(None) is None
    assert layer.pending == 0
    with pytest.raises(RuntimeError, match="backward was called before forward"):
        layer.backward(None)


@pytest.mark.parametrize("name", list(PAIRS) + ["Dropout"])
def test_no_grad_keeps_nothing(backend, name):
    layer = xpnet.Dropout(0.4) if name == "Dropout" else PAIRS[name][0]()
    with xpnet.no_grad():
        y = layer(randn(backend, (3, 4)))
    assert tuple(y.shape) == (3, 4) and layer.pending == 0


def test_relu_keeps_one_array(backend):
    """ReLU saves its output only (the mask is derived from it in backward)."""
    relu = xpnet.ReLU()
    y = relu(randn(backend, (3, 4)))
    (kept,) = relu._saved[-1]
    assert kept is y


# ----------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PAIRS) + ["Dropout"])
def test_backward_before_forward_and_twice(backend, name):
    layer = xpnet.Dropout(0.4) if name == "Dropout" else PAIRS[name][0]()
    msg = re.escape(f"{layer._tag()}.backward was called before forward (or more often than forward")
    with pytest.raises(RuntimeError, match=msg):
        layer.backward(randn(backend, (2, 3)))
    layer(randn(backend, (2, 3)))
    layer.backward(randn(backend, (2, 3)))
    with pytest.raises(RuntimeError, match=msg):
        layer.backward(randn(backend, (2, 3)))


@pytest.mark.parametrize("name", [n for n in PAIRS if n != "Identity"] + ["Dropout"])
def test_backward_with_dy_of_another_shape(backend, name):
    layer = xpnet.Dropout(0.4) if name == "Dropout" else PAIRS[name][0]()
    layer(randn(backend, (2, 3)))
    msg = f"{layer._tag()}.backward expected dy of shape (2, 3) (its output's), got (3, 2)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        layer.backward(randn(backend, (3, 2)))


def test_softmax_axis_out_of_range_on_0d_and_1d(backend):
    with pytest.raises(ValueError, match=re.escape("Softmax(dim=1) expected an input with axis 1, got 0-d input")):
        xpnet.Softmax(1)(randn(backend, ()))
    with pytest.raises(ValueError, match=re.escape("Softmax(dim=-2) expected an input with axis -2, got 0-d input")):
        xpnet.Softmax(-2)(randn(backend, ()))
    with pytest.raises(ValueError, match=re.escape("Softmax(dim=1) expected an input with axis 1, got 1-d input")):
        xpnet.Softmax(1)(randn(backend, (4,)))


@pytest.mark.parametrize("make,msg", [
    (lambda: xpnet.LeakyReLU(float("nan")), "LeakyReLU: negative_slope must be a real number, got nan"),
    (lambda: xpnet.LeakyReLU(True), "LeakyReLU: negative_slope must be a real number, got True"),
    (lambda: xpnet.Softmax(True), "Softmax: dim must be an int, got True"),
    (lambda: xpnet.Dropout(True), "Dropout: p must be a probability in [0, 1), got True"),
    (lambda: xpnet.Dropout("0.5"), "Dropout: p must be a probability in [0, 1), got '0.5'"),
])
def test_bad_arguments(make, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        make()


def test_activation_outputs_stay_on_the_backend(backend):
    x = randn(backend, (2, 3), "float32")
    for layer in (xpnet.ReLU(), xpnet.LeakyReLU(), xpnet.Sigmoid(), xpnet.Tanh(), xpnet.Softmax(), xpnet.Dropout(0.5)):
        y = layer(x)
        assert backends.backend_of(y) is backend and y.dtype == x.dtype, layer
        assert backends.backend_of(layer.backward(y)) is backend, layer
