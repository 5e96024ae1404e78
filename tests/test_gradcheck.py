"""gradcheck itself: correct layers (one or several inputs and outputs, integer inputs, frozen
parameters, random layers, buffers) pass on every backend, and each kind of wrong backward is
caught. Every xpnet layer and loss is gradchecked from the table in tests/layer_cases.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet as xn
from xpnet import backends
from xpnet.layers import Parameter
from xpnet.testing import GradcheckError, gradcheck

f64 = "float64"


def randn(be, shape, scale=1.0):
    return be.rng.normal(shape, 0.0, scale, dtype=be.dtype(f64))


def _param(shape):
    be = backends.get()
    return Parameter(be.rng.normal(shape, dtype=be.dtype(f64)))


# -- correct layers ------------------------------------------------------------------------------

class Gated(xn.Layer):
    """Two inputs: ``y = (a @ W.T) * b``; ``dW = (dy * b).T @ a``, ``da = (dy * b) @ W``, ``db = dy * (a @ W.T)``."""

    def __init__(self, d):
        self.weight = _param((d, d))

    def forward(self, a, b):
        h = a @ self.weight.data.T
        self.save_for_backward(a, b, h)
        return h * b

    def backward(self, dy, input_grad=True):
        a, b, h = self.saved()
        if dy is None:
            return None
        dh = dy * b
        self.weight.accumulate(dh.T @ a)
        if not input_grad:
            return None
        return dh @ self.weight.data, self._db(dy, a, h)

    def _db(self, dy, a, h):
        return dy * h


class TwoHeads(xn.Layer):
    """Two outputs: ``(x @ W.T, tanh(x))``; ``dx = dy1 @ W + dy2 * (1 - tanh(x)^2)``."""

    def __init__(self, d):
        self.weight = _param((d, d))

    def forward(self, x):
        t = backends.namespace_of(x).tanh(x)
        self.save_for_backward(x, t)
        return x @ self.weight.data.T, t

    def backward(self, dy1, dy2, input_grad=True):
        x, t = self.saved()
        if dy1 is not None:
            self.weight.accumulate(dy1.T @ x)
        if not input_grad or (dy1 is None and dy2 is None):
            return None
        dx = 0.0
        if dy1 is not None:
            dx = dy1 @ self.weight.data
        if dy2 is not None:
            dx = dx + self._dtanh(dy2, t)
        return dx

    def _dtanh(self, dy2, t):
        return dy2 * (1.0 - t * t)


class Scaled(xn.Layer):
    """A float input and integer indices: ``y[n, :] = x[n, :] * scale[idx[n]]``. Indices get None."""

    def __init__(self, m):
        self.scale = _param((m,))

    def forward(self, x, idx):
        xp = backends.namespace_of(x)
        s = xp.take(self.scale.data, idx, axis=0)
        self.save_for_backward(x, idx, s)
        return x * s[:, None]

    def backward(self, dy, input_grad=True):
        x, idx, s = self.saved()
        if dy is None:
            return None
        be = backends.backend_of(dy)
        xp = be.xp
        zeros = xp.zeros(self.scale.shape, dtype=dy.dtype, device=dy.device)
        self.scale.accumulate(be.scatter_add(zeros, idx, xp.sum(dy * x, axis=1)))
        return (dy * s[:, None], self._didx(dy, idx)) if input_grad else None

    def _didx(self, dy, idx):
        return None


class Noisy(xn.Layer):
    """Random: ``y = x * m`` with ``m ~ Bernoulli(0.5)`` from the backend's generator (as Dropout)."""

    def forward(self, x):
        be = backends.backend_of(x)
        m = be.rng.bernoulli(tuple(x.shape), 0.5, dtype=x.dtype, device=x.device)
        self.save_for_backward(m)
        return x * m

    def backward(self, dy, input_grad=True):
        (m,) = self.saved()
        return None if dy is None or not input_grad else dy * m


class Counting(xn.Linear):
    """A Linear with a buffer that every forward rebinds (as BatchNorm's running statistics)."""

    _buffer_names = ("count",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        w = self.weight.data
        self.count = backends.namespace_of(w).zeros((), dtype=w.dtype, device=w.device)

    def forward(self, x):
        self.count = self.count + 1.0
        return super().forward(x)


def _square_linear(backend, d=3, cls=xn.Linear, **kw):
    return cls(d, d, **kw).to(backend, dtype=f64)


def test_linear_passes(backend):
    assert gradcheck(xn.Linear(4, 3).to(dtype=f64), randn(backend, (5, 4)))
    assert gradcheck(xn.Linear(4, 3, bias=False).to(dtype=f64), randn(backend, (2, 3, 4)))


def test_several_inputs_pass(backend):
    assert gradcheck(Gated(3), randn(backend, (4, 3)), randn(backend, (4, 3)))


def test_several_outputs_pass(backend):
    assert gradcheck(TwoHeads(3), randn(backend, (4, 3)))


def test_integer_input_gets_none_and_passes(backend):
    idx = backend.asarray(np.array([0, 2, 2, 1]), dtype="int64")
    assert gradcheck(Scaled(3), randn(backend, (4, 2)), idx)


def test_random_layer_is_made_deterministic(backend):
    assert gradcheck(Noisy(), randn(backend, (6, 5)))


def test_frozen_parameter_passes_and_stays_none(backend):
    layer = _square_linear(backend)
    layer.weight.requires_grad_(False)
    assert gradcheck(layer, randn(backend, (4, 3)))
    assert layer.weight.grad is None


def test_leaves_grads_buffers_and_saved_stacks_alone(backend):
    layer = _square_linear(backend, cls=Counting)
    sentinel = layer.weight.data * 0.0 + 7.0
    layer.weight.grad = sentinel
    count = layer.count
    layer(randn(backend, (2, 3)))  # a pending forward of the user's: still pending afterwards
    count_after_user = layer.count
    gradcheck(layer, randn(backend, (2, 3)))
    assert layer.weight.grad is sentinel and layer.bias.grad is None
    assert layer.count is count_after_user and layer.count is not count
    assert layer.pending == 1


@pytest.mark.parametrize("directions", [1, 5])
def test_seed_and_directions_are_honoured(backend, directions):
    for seed in (0, 1, 12345):
        assert gradcheck(Gated(2), randn(backend, (3, 2)), randn(backend, (3, 2)), seed=seed, directions=directions)


SETTINGS = settings(
    max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(seed=st.integers(0, 2**16), n=st.integers(1, 5))
def test_whole_net_passes(backend, seed, n):
    backend.manual_seed(seed)
    net = xn.Sequential(
        xn.Flatten(), xn.Linear(6, 5), xn.Tanh(), xn.Dropout(0.3), xn.Linear(5, 4), xn.LeakyReLU(0.1),
        xn.Linear(4, 3), xn.Sigmoid(), xn.Softmax(),
    ).to(dtype=f64)
    assert gradcheck(net, randn(backend, (n, 2, 3)), seed=seed)


def test_losses_pass(backend):
    pred = randn(backend, (4, 3))
    assert gradcheck(xn.MSELoss(), pred, randn(backend, (4, 3)))  # float target: dtarget checked too
    labels = backend.asarray(np.array([0, 2, 1, 2]), dtype="int64")
    assert gradcheck(xn.CrossEntropyLoss(reduction="sum"), pred, labels)  # integer target: dtarget None


# -- wrong backwards that must be caught -------------------------------------------------------------

class TransposedLinear(xn.Linear):
    """dx = dy @ W.T where dy @ W is right: invisible when the cotangent is also a direction."""

    def backward(self, dy, input_grad=True):
        super().backward(dy, input_grad)
        return dy @ self.weight.data.T if input_grad else None


class NoBiasGradLinear(xn.Linear):
    """Never adds the bias gradient."""

    def backward(self, dy, input_grad=True):
        bias, self.bias = self.bias, None
        try:
            return super().backward(dy, input_grad)
        finally:
            self.bias = bias


class ZeroBiasGradLinear(xn.Linear):
    """Adds zeros as the bias gradient."""

    def backward(self, dy, input_grad=True):
        dx = super().backward(dy, input_grad)
        self.bias.grad = self.bias.grad * 0.0
        return dx


class OverwritingLinear(xn.Linear):
    """Sets grad instead of adding to it."""

    def backward(self, dy, input_grad=True):
        self.weight.grad = None
        self.bias.grad = None
        return super().backward(dy, input_grad)


class ScaledWeightGradLinear(xn.Linear):
    """A weight gradient 1% off."""

    def backward(self, dy, input_grad=True):
        before = self.weight.grad
        dx = super().backward(dy, input_grad)
        added = self.weight.grad if before is None else self.weight.grad - before
        self.weight.grad = added * 1.01 if before is None else before + added * 1.01
        return dx


class IgnoresInputGradFlag(xn.Linear):
    def backward(self, dy, input_grad=True):
        return super().backward(dy, True)


class OtherGradsWithoutInputGrad(xn.Linear):
    """input_grad=False changes the parameter gradients (it must not)."""

    def backward(self, dy, input_grad=True):
        dx = super().backward(dy, input_grad)
        if not input_grad:
            self.bias.grad = self.bias.grad * 2.0
        return dx


class Float32Dx(xn.Linear):
    def backward(self, dy, input_grad=True):
        dx = super().backward(dy, input_grad)
        return None if dx is None else backends.namespace_of(dx).astype(dx, backends.backend_of(dx).dtype("float32"))


class WrongShapeDx(xn.Linear):
    def backward(self, dy, input_grad=True):
        dx = super().backward(dy, input_grad)
        return None if dx is None else dx[:1, ...]


class GradsFrozen(xn.Linear):
    """Writes a gradient into a frozen weight."""

    def backward(self, dy, input_grad=True):
        dx = super().backward(dy, input_grad)
        self.weight.grad = self.weight.data * 0.0
        return dx


class NeverPops(xn.Layer):
    """Backward reads what forward saved without popping it: the stack grows."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, dy, input_grad=True):
        (x,) = self.__dict__["_saved"][-1]
        return None if not input_grad else 2.0 * x * dy


class OneTuple(xn.Linear):
    """A one-input layer must return an array, not a 1-tuple."""

    def backward(self, dy, input_grad=True):
        dx = super().backward(dy, input_grad)
        return None if dx is None else (dx,)


class WrongSecondInput(Gated):
    """db uses a @ W where a @ W.T is right."""

    def _db(self, dy, a, h):
        return dy * (a @ self.weight.data)


class WrongSecondOutput(TwoHeads):
    """The second output's gradient drops the square: 1 - tanh(x) instead of 1 - tanh(x)^2."""

    def _dtanh(self, dy2, t):
        return dy2 * (1.0 - t)


class IgnoresSecondOutput(TwoHeads):
    def _dtanh(self, dy2, t):
        return dy2 * 0.0


class GradForIndices(Scaled):
    def _didx(self, dy, idx):
        return dy[:, 0] * 0.0


class WrongTargetGrad(xn.MSELoss):
    """dtarget = dpred (the sign is wrong)."""

    def backward(self, *args, **kwargs):
        out = super().backward(*args, **kwargs)
        if isinstance(out, tuple) and out[1] is not None:
            return out[0], out[0]
        return out


class IgnoresUpstream(xn.MSELoss):
    """A loss that ignores the incoming gradient (as if it were always 1)."""

    def backward(self, dy=1.0, **kwargs):
        return super().backward(1.0, **kwargs)


def _x(be, shape=(4, 3)):
    return randn(be, shape)


def _idx(be):
    return be.asarray(np.array([0, 2, 2, 1]), dtype="int64")


BROKEN = {
    "transposed input gradient": (lambda be: _square_linear(be, cls=TransposedLinear), lambda be: (_x(be),), "input 0, direction"),
    "dropped bias gradient": (lambda be: _square_linear(be, cls=NoBiasGradLinear), lambda be: (_x(be),), "bias: backward left grad None"),
    "zero bias gradient": (lambda be: _square_linear(be, cls=ZeroBiasGradLinear), lambda be: (_x(be),), "bias, direction"),
    "overwritten gradient": (lambda be: _square_linear(be, cls=OverwritingLinear), lambda be: (_x(be),), "must add into grad"),
    "weight gradient 1% off": (lambda be: _square_linear(be, cls=ScaledWeightGradLinear), lambda be: (_x(be),), "weight, direction"),
    "input_grad=False ignored": (lambda be: _square_linear(be, cls=IgnoresInputGradFlag), lambda be: (_x(be),), "input_grad=False\\) must return None"),
    "input_grad=False changes grads": (lambda be: _square_linear(be, cls=OtherGradsWithoutInputGrad), lambda be: (_x(be),), "input_grad=False\\) gives another gradient"),
    "float32 dx": (lambda be: _square_linear(be, cls=Float32Dx), lambda be: (_x(be),), "input 0: the gradient must match"),
    "wrong-shape dx": (lambda be: _square_linear(be, cls=WrongShapeDx), lambda be: (_x(be),), "input 0: the gradient must match"),
    "saved entry never popped": (lambda be: NeverPops(), lambda be: (_x(be),), "saved entries"),
    "one-input layer returns a tuple": (lambda be: _square_linear(be, cls=OneTuple), lambda be: (_x(be),), "must return one array"),
    "wrong second input": (lambda be: WrongSecondInput(3), lambda be: (_x(be), _x(be)), "input 1, direction"),
    "wrong second output": (lambda be: WrongSecondOutput(3), lambda be: (_x(be),), "input 0, direction"),
    "ignored second output": (lambda be: IgnoresSecondOutput(3), lambda be: (_x(be),), "input 0, direction"),
    "gradient for integer indices": (lambda be: GradForIndices(3), lambda be: (_x(be, (4, 2)), _idx(be)), "has no gradient"),
}


def _frozen_writer(be):
    layer = _square_linear(be, cls=GradsFrozen)
    layer.weight.requires_grad_(False)
    return layer


BROKEN["gradient into a frozen parameter"] = (_frozen_writer, lambda be: (_x(be),), "weight is frozen")


@pytest.mark.parametrize("defect", list(BROKEN))
def test_catches(backend, defect):
    make, inputs, message = BROKEN[defect]
    with pytest.raises(GradcheckError, match=message):
        gradcheck(make(backend), *inputs(backend))


@pytest.mark.parametrize("broken", [WrongTargetGrad, IgnoresUpstream], ids=lambda c: c.__name__)
def test_catches_wrong_loss_backward(backend, broken):
    with pytest.raises(GradcheckError, match="input [01], direction"):
        gradcheck(broken(), randn(backend, (4, 3)), randn(backend, (4, 3)))


def test_transposed_gradient_passes_the_old_check_but_not_this_one(backend):
    """With the cotangent reused as the direction, <dy W.T, dy> == <dy W, dy>: the old check passed."""
    layer = _square_linear(backend, cls=TransposedLinear)
    x = randn(backend, (4, 3))
    w = randn(backend, (4, 3))
    layer(x)
    wrong = layer.backward(w)
    layer(x)
    right = xn.Linear.backward(layer, w)
    xp = backend.xp
    assert abs(float(xp.sum(wrong * w)) - float(xp.sum(right * w))) < 1e-12  # the blind spot
    with pytest.raises(GradcheckError):
        gradcheck(layer, x)


# -- usage errors ------------------------------------------------------------------------------------

def test_requires_float64_input(backend):
    with pytest.raises(ValueError, match="gradcheck needs float64 arrays, got float32 for input 0"):
        gradcheck(xn.Linear(3, 2), backend.rng.normal((2, 3)))


def test_requires_float64_parameters(backend):
    with pytest.raises(ValueError, match="gradcheck needs float64 arrays, got float32 for weight"):
        gradcheck(Gated(3).to(dtype="float32"), randn(backend, (2, 3)), randn(backend, (2, 3)))


def test_requires_an_input():
    with pytest.raises(TypeError, match="at least one input"):
        gradcheck(xn.Linear(3, 2))


def test_rejects_non_arrays():
    with pytest.raises(TypeError, match="input 0 must be an array"):
        gradcheck(xn.Linear(3, 2), [[1.0, 2.0, 3.0]])


def test_requires_a_layer(backend):
    with pytest.raises(TypeError, match="gradcheck expected a Layer or a Loss, got function"):
        gradcheck(lambda x: x, randn(backend, (2, 3)))


# -- nested tuples, constants and keyword arguments (the sequence layers' contract) --------------

class Recur(xn.Layer):
    """A toy recurrent step with LSTM's shapes of inputs and outputs:
    ``forward(x, state=None, flag=True, *, mask=None) -> (y, (h, c), None)`` with
    ``h = x * a + b``, ``c = b * b``, ``y = h @ W.T`` (masked to 0 where ``mask``; ``a = b = 1``
    without a state); backward returns ``dx``, or ``(dx, (da, db), None)`` when a state was given."""

    def __init__(self, d, broken=None):
        self.weight = _param((d, d))
        self.broken = broken

    def forward(self, x, state=None, flag=True, *, mask=None):
        xp = backends.namespace_of(x)
        a, b = state if state is not None else (xp.ones_like(x), xp.ones_like(x))
        keep = xp.ones_like(x) if mask is None else xp.astype(xp.logical_not(mask), x.dtype)
        h = x * a + b
        self.save_for_backward(x, a, b, h, keep, state is not None, flag)
        return (h @ self.weight.data.T) * keep, (h, b * b), None

    def backward(self, dy, dstate=None, dnone=None, input_grad=True):
        x, a, b, h, keep, stated, flag = self.saved()
        dh_state, dc = dstate if dstate is not None else (None, None)
        dz = dy * keep
        self.weight.accumulate(dz.T @ h if dz.ndim == 2 else dz[..., None] * h)
        if not input_grad:
            return None
        dh = dz @ self.weight.data + (0 if dh_state is None else dh_state)
        if not stated:
            return dh * a
        db = dh + (0 if dc is None else 2 * b * dc)
        if self.broken == "flat":
            return dh * a, dh * x, db, None
        if self.broken == "constant":
            return dh * a, (dh * x, db), dh
        return dh * a, (dh * x, db), None


def _state(backend):
    return (randn(backend, (4, 3)), randn(backend, (4, 3)))


def test_nested_outputs_and_tuple_inputs_pass(backend):
    mask = backend.asarray(np.array([[True, False, False]] * 4))
    assert gradcheck(Recur(3), randn(backend, (4, 3)))
    assert gradcheck(Recur(3), randn(backend, (4, 3)), _state(backend), False)
    assert gradcheck(Recur(3), randn(backend, (4, 3)), _state(backend), True, kwargs={"mask": mask})


@pytest.mark.parametrize("broken, message", [
    ("flat", r"expected a tuple of 3 input gradients, got a tuple of 4"),
    ("constant", r"input 2 \(a constant\) has no gradient: backward must return None for it"),
])
def test_catches_a_wrong_nested_gradient(backend, broken, message):
    with pytest.raises(GradcheckError, match=message):
        gradcheck(Recur(3, broken), randn(backend, (4, 3)), _state(backend), False)


def test_a_wrong_gradient_of_a_state_is_named_by_its_place(backend):
    class Off(Recur):
        def backward(self, *a, **k):
            out = super().backward(*a, **k)
            if isinstance(out, tuple):
                dx, (da, db), dn = out
                return dx, (da, db * 1.5), dn
            return out

    with pytest.raises(GradcheckError, match=r"input 1\[1\], direction 0: numeric"):
        gradcheck(Off(3), randn(backend, (4, 3)), _state(backend), False)
