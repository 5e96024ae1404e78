"""float64 finite-difference gradient checks for every layer and loss, on random shapes and seeds,
on every backend present. Also proves that gradcheck itself catches wrong gradients."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet as xn
from xpnet.testing import GradcheckError, gradcheck

SETTINGS = settings(
    max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
f64 = "float64"


def randn(be, shape, scale=1.0):
    return be.rng.normal(shape, 0.0, scale, dtype=be.dtype(f64))


LAYER_FACTORIES = {
    "Linear": lambda d: xn.Linear(d, 3),
    "Linear(no bias)": lambda d: xn.Linear(d, 2, bias=False),
    "ReLU": lambda d: xn.ReLU(),
    "LeakyReLU": lambda d: xn.LeakyReLU(0.2),
    "LeakyReLU(negative slope)": lambda d: xn.LeakyReLU(-0.5),
    "Sigmoid": lambda d: xn.Sigmoid(),
    "Tanh": lambda d: xn.Tanh(),
    "Softmax": lambda d: xn.Softmax(),
    "Softmax(dim=0)": lambda d: xn.Softmax(dim=0),
    "Identity": lambda d: xn.Identity(),
    "Dropout": lambda d: xn.Dropout(0.4),
    "Dropout(eval)": lambda d: xn.Dropout(0.4).eval(),
    "Flatten": lambda d: xn.Flatten(),
}


@pytest.mark.parametrize("name", list(LAYER_FACTORIES))
@SETTINGS
@given(n=st.integers(1, 6), d=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_layer_gradients(backend, name, n, d, seed):
    backend.manual_seed(seed)
    layer = LAYER_FACTORIES[name](d).to(dtype=f64)
    assert gradcheck(layer, randn(backend, (n, d)))


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), seed=st.integers(0, 2**16))
def test_flatten_gradients_any_rank(backend, shape, seed):
    backend.manual_seed(seed)
    assert gradcheck(xn.Flatten(), randn(backend, tuple(shape)))
    assert gradcheck(xn.Flatten(0, -2), randn(backend, tuple(shape)))


@SETTINGS
@given(n=st.integers(1, 6), c=st.integers(2, 6), seed=st.integers(0, 2**16),
       reduction=st.sampled_from(["mean", "sum"]), smoothing=st.sampled_from([0.0, 0.1, 1.0]))
def test_cross_entropy_gradients(backend, n, c, seed, reduction, smoothing):
    backend.manual_seed(seed)
    labels = backend.xp.astype(backend.rng.permutation(max(n, c))[:n] % c, backend.xp.int64)
    loss = xn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)
    assert gradcheck(loss, randn(backend, (n, c), 3.0), labels)


@SETTINGS
@given(n=st.integers(1, 6), d=st.integers(1, 4), seed=st.integers(0, 2**16), reduction=st.sampled_from(["mean", "sum"]))
def test_mse_and_bce_gradients(backend, n, d, seed, reduction):
    backend.manual_seed(seed)
    pred = randn(backend, (n, d), 2.0)
    assert gradcheck(xn.MSELoss(reduction=reduction), pred, randn(backend, (n, d)))
    probs = backend.rng.uniform((n, d), dtype=backend.dtype(f64))
    assert gradcheck(xn.BCEWithLogitsLoss(reduction=reduction), pred, probs)


@SETTINGS
@given(seed=st.integers(0, 2**16), n=st.integers(1, 5))
def test_whole_net_gradients(backend, seed, n):
    backend.manual_seed(seed)
    net = xn.Sequential(
        xn.Flatten(), xn.Linear(6, 5), xn.Tanh(), xn.Dropout(0.3), xn.Linear(5, 4), xn.LeakyReLU(0.1),
        xn.Linear(4, 3), xn.Sigmoid(), xn.Softmax(),
    ).to(dtype=f64)
    assert gradcheck(net, randn(backend, (n, 2, 3)))


class _WrongLinear(xn.Linear):
    """A Linear whose weight gradient is off by a factor: gradcheck must reject it."""

    def backward(self, dy, input_grad=True):
        dx = super().backward(dy, input_grad)
        self.weight.grad = self.weight.grad * 1.01
        return dx


class _OverwritingLinear(xn.Linear):
    """A Linear that overwrites grads instead of adding: breaks the contract."""

    def backward(self, dy, input_grad=True):
        self.weight.grad = None
        self.bias.grad = None
        return super().backward(dy, input_grad)


class _WrongReLU(xn.ReLU):
    def _backward(self, xp, dy, y):
        return dy  # forgets the mask


@pytest.mark.parametrize("broken", [_WrongLinear(3, 2), _OverwritingLinear(3, 2), _WrongReLU()], ids=type)
def test_gradcheck_catches_wrong_backward(backend, broken):
    broken.to(backend, dtype=f64)
    with pytest.raises(GradcheckError):
        gradcheck(broken, randn(backend, (4, 3)))


def test_gradcheck_requires_float64(backend):
    with pytest.raises(ValueError, match="float64"):
        gradcheck(xn.Linear(3, 2), backend.rng.normal((2, 3)))


def test_gradcheck_leaves_user_grads_alone(backend):
    layer = xn.Linear(3, 2).to(dtype=f64)
    sentinel = layer.weight.data * 0.0 + 7.0
    layer.weight.grad = sentinel
    gradcheck(layer, randn(backend, (2, 3)))
    assert layer.weight.grad is sentinel
