"""What backward is given, and what it gives back, for every case of tests/layer_cases.py on every
backend (a new layer gets these tests by adding its case):

- a gradient of another shape (one that would broadcast, too), dtype or place than the output's,
  or not an array at all, is refused with a message naming the layer, before any parameter
  gradient is touched (torch's autograd refuses a shape mismatch: "Mismatch in shape");
- the right gradient gives input gradients of the inputs' shape, dtype and place (``None`` for
  integer inputs), and parameter gradients of the parameters';
- ``dy=None`` gives ``None`` and touches nothing.

Then the corners torch defines: NaN and infinite inputs to the activations, mean-reduced losses
over an empty batch (NaN), and 0-d inputs (0-d arrays out, never numpy scalars).
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.layers._checks import shape_str
from tests.conftest import host
from tests.layer_cases import CASES, build, inputs_to

CASE_PARAMS = [pytest.param(c, id=c.id) for c in CASES]


def other_place(be):
    """Another backend, or another device of the same library, than ``be``."""
    for name in ("array_api_strict:device1", "numpy", "array_api_strict"):
        other = backends.get(name)
        if other is not be:
            return other


def run_forward(case, be, dtype="float64"):
    """``(layer, inputs, outputs as a tuple)`` after one forward of the case's inputs."""
    layer = build(case, be, dtype)
    inputs = inputs_to(be, case.inputs(np.random.default_rng(case.seed())), dtype)
    out = layer(*inputs)
    return layer, inputs, (out if isinstance(out, tuple) else (out,))


def run_backward(layer, dy, outs):
    """Backward with ``dy`` for the first output and None for any other (MaxPool2d's indices)."""
    return layer.backward(dy, *([None] * (len(outs) - 1)))


def tags(layer):
    """How errors may name the layer that checks: the case's layer or one below it (a composite
    gets the check from its children)."""
    return "|".join(sorted({re.escape(m._tag()) for _, m in layer.named_modules()}, key=len, reverse=True))


def no_grads(layer):
    return all(p.grad is None for p in layer.parameters())


def wrong_shapes(shape):
    """Shapes other than ``shape``: ones that broadcast against it (the silent trap), and not."""
    if shape == ():
        return [(1,), (1, 1)]
    last = shape[-1]
    out = [shape[:-1] + ((1,) if last != 1 else (2,)), (1,) + shape, shape[:-1] + (last + 1,), ()]
    if shape[::-1] != shape:
        out.append(shape[::-1])
    return out


def zeros(be, shape, dtype):
    return be.xp.zeros(shape, dtype=be.dtype(dtype), device=be.device)


# -- what backward is given ------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASE_PARAMS)
def test_dy_of_another_shape_is_refused(backend, case):
    shape = tuple(run_forward(case, backend)[2][0].shape)
    for bad in wrong_shapes(shape):
        layer, _, outs = run_forward(case, backend)  # a fresh forward each time: a refused backward pops too
        pattern = (rf"^({tags(layer)})\.backward expected dy of shape {re.escape(shape_str(shape))} "
                   rf"\(its output's[^)]*\), got {re.escape(shape_str(bad))}$")
        with pytest.raises(ValueError, match=pattern):
            run_backward(layer, zeros(backend, bad, "float64"), outs)
        assert no_grads(layer), f"{case.id}: a refused dy of shape {bad} still left parameter gradients"


@pytest.mark.parametrize("case", CASE_PARAMS)
@pytest.mark.parametrize("bad_dtype", ["float32", "int64"])
def test_dy_of_another_dtype_is_refused(backend, case, bad_dtype):
    layer, _, outs = run_forward(case, backend, "float64")
    pattern = rf"^({tags(layer)})\.backward expected dy of dtype float64 \(its output's\), got {bad_dtype}$"
    with pytest.raises(TypeError, match=pattern):
        run_backward(layer, zeros(backend, tuple(outs[0].shape), bad_dtype), outs)
    assert no_grads(layer)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_dy_on_another_place_is_refused(backend, case):
    layer, _, outs = run_forward(case, backend)
    other = other_place(backend)
    pattern = (rf"^({tags(layer)})\.backward got dy on {re.escape(other.label)} but its output is on "
               rf"{re.escape(backend.label)}; move dy with backends\.get\(\.\.\.\)\.asarray\(\.\.\.\)$")
    with pytest.raises(ValueError, match=pattern):
        run_backward(layer, zeros(other, tuple(outs[0].shape), "float64"), outs)
    assert no_grads(layer)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_dy_that_is_not_an_array_is_refused(backend, case):
    layer, _, outs = run_forward(case, backend)
    dy = host(outs[0]).tolist()  # a (nested) list, or a Python float for a 0-d output
    if isinstance(dy, float):
        if isinstance(layer, xn.Loss):
            pytest.skip("a loss takes a Python number as the gradient of its 0-d output (loss.backward(1.0))")
        dy = [dy]
    pattern = rf"^({tags(layer)})\.backward expected dy to be (a number or )?an array.*, got list$"
    with pytest.raises(TypeError, match=pattern):
        run_backward(layer, dy, outs)
    assert no_grads(layer)


def test_a_numpy_scalar_is_not_the_gradient_of_a_0d_array():
    """numpy's 0-d arithmetic gives scalars; the gradient of a 0-d output must still be an array."""
    be = backends.get("numpy")
    for layer in (xn.ReLU(), xn.Identity(), xn.Dropout(0.5).eval(), xn.Sequential()):
        layer(be.asarray(np.asarray(0.5)))
        with pytest.raises(TypeError, match=re.escape(
                f"{layer._tag()}.backward expected dy to be an array (numpy, torch, cupy or array_api_strict), "
                "got numpy.float64")):
            layer.backward(np.float64(1.0))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_gradients_have_the_shape_dtype_and_place_of_what_they_differentiate(backend, case, dtype):
    layer, inputs, outs = run_forward(case, backend, dtype)
    y = outs[0]
    grads = run_backward(layer, backend.asarray(np.ones(tuple(y.shape)), dtype=dtype), outs)
    if len(inputs) == 1 or (isinstance(layer, xn.Loss) and not isinstance(grads, tuple)):
        grads = (grads,)  # a two-input loss gives d/dpred only (target_grad=False); others a tuple
    pairs = list(zip(inputs, grads))
    while any(isinstance(x, tuple) for x, _ in pairs):  # an LSTM's (h0, c0) and its (dh0, dc0)
        pairs = [q for x, g in pairs for q in (zip(x, g) if isinstance(x, tuple) else [(x, g)])]
    for x, g in pairs:
        if x is None or isinstance(x, (bool, int, float, str)) or not backend.is_float(x.dtype):
            assert g is None, f"{case.id}: an integer input, a mask or a constant got a gradient"
            continue
        assert backend.owns(g) and g.device == x.device, f"{case.id}: dx is a {type(g).__name__} on {getattr(g, 'device', '?')}"
        assert g.dtype == x.dtype and tuple(g.shape) == tuple(x.shape), (case.id, g.dtype, g.shape, x.shape)
    for name, p in layer.named_parameters():
        if p.requires_grad:
            g, w = p.grad, p.data
            assert backend.owns(g) and g.device == w.device and g.dtype == w.dtype, (case.id, name)
            assert tuple(g.shape) == tuple(w.shape), (case.id, name, g.shape, w.shape)
        else:
            assert p.grad is None, (case.id, name)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_dy_none_gives_none_and_pops(backend, case):
    layer, _, outs = run_forward(case, backend)
    assert run_backward(layer, None, outs) is None
    assert no_grads(layer)
    assert all(m.pending == 0 for _, m in layer.named_modules()), f"{case.id}: dy=None left saved entries"


def test_identity_and_shape_layers_keep_no_reference_to_their_output():
    """They keep the output's Signature, not the output: its memory goes when nobody holds it."""
    import weakref

    be = backends.get("numpy")
    for layer in (xn.Identity(), xn.Flatten(), xn.Reshape(6), xn.Dropout(0.5).eval(), xn.AvgPool2d(2),
                  xn.AdaptiveAvgPool2d(1), xn.Concat(xn.Identity(), xn.Identity()), xn.Sequential()):
        x = be.asarray(np.ones((2, 3, 2, 2)) if "Pool" in type(layer).__name__ else np.ones((2, 6)))
        ref_x, ref_y = weakref.ref(x), weakref.ref(layer(x))
        del x
        assert ref_x() is None and ref_y() is None, f"{layer!r} keeps its input or output alive"
        layer.clear_saved()


# -- NaN and infinities through the activations, as torch gives them ----------------------------

SPECIAL = np.array([math.nan, math.inf, -math.inf, 0.0, -0.0, 2.0, -2.0, 1e-30])

ACTIVATIONS = {
    "ReLU": (lambda: xn.ReLU(), lambda nn: nn.ReLU()),
    "LeakyReLU": (lambda: xn.LeakyReLU(0.1), lambda nn: nn.LeakyReLU(0.1)),
    "Tanh": (lambda: xn.Tanh(), lambda nn: nn.Tanh()),
    "Sigmoid": (lambda: xn.Sigmoid(), lambda nn: nn.Sigmoid()),
    "Softmax": (lambda: xn.Softmax(1), lambda nn: nn.Softmax(1)),
}


def _torch_reference(torch, make, x, dy):
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = make(torch.nn)(xt)
    (gt,) = torch.autograd.grad(yt, xt, torch.from_numpy(dy.copy()))
    return yt.detach().numpy(), gt.numpy()


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_nan_and_infinite_inputs_as_torch(backend, torch, name):
    """Outputs and gradients at NaN, +-inf, +-0 (ReLU passes dy at a NaN input, as torch does)."""
    ours, theirs = ACTIVATIONS[name]
    x = np.stack([SPECIAL, np.linspace(-1.0, 1.0, SPECIAL.size)])  # the Softmax row without NaN stays finite
    dy = np.full(x.shape, 3.0) - np.arange(x.size).reshape(x.shape) * 0.25
    y_ref, g_ref = _torch_reference(torch, theirs, x, dy)
    layer = ours()
    y = layer(backend.asarray(x, dtype="float64"))
    g = layer.backward(backend.asarray(dy, dtype="float64"))
    np.testing.assert_allclose(host(y), y_ref, rtol=1e-12, atol=1e-300, equal_nan=True, err_msg=f"{name} output")
    np.testing.assert_allclose(host(g), g_ref, rtol=1e-12, atol=1e-300, equal_nan=True, err_msg=f"{name} dx")
    if name == "ReLU":
        assert host(g)[0, 0] == dy[0, 0], "ReLU's gradient at a NaN input is dy, as in torch"


@pytest.mark.parametrize("name", ["LeakyReLU", "Tanh", "Sigmoid"])
def test_nan_dy_as_torch(backend, torch, name):
    ours, theirs = ACTIVATIONS[name]
    x = SPECIAL[None, :]
    dy = np.full(x.shape, math.nan)
    dy[0, ::2] = 1.5
    _, g_ref = _torch_reference(torch, theirs, x, dy)
    layer = ours()
    layer(backend.asarray(x, dtype="float64"))
    g = layer.backward(backend.asarray(dy, dtype="float64"))
    np.testing.assert_allclose(host(g), g_ref, rtol=1e-12, equal_nan=True)


def test_relu_nan_dy_where_active_as_torch(backend, torch):
    """Where ReLU is active (x > 0 or NaN) a NaN dy passes, as in torch. (Where it is not, torch
    selects 0 and xpnet multiplies by 0, giving NaN: see ReLU's docstring.)"""
    x = SPECIAL[None, :]
    dy = np.full(x.shape, math.nan)
    _, g_ref = _torch_reference(torch, ACTIVATIONS["ReLU"][1], x, dy)
    layer = xn.ReLU()
    layer(backend.asarray(x, dtype="float64"))
    g = host(layer.backward(backend.asarray(dy, dtype="float64")))
    active = ~(x <= 0)
    np.testing.assert_array_equal(g[active], g_ref[active])


# -- mean-reduced losses over an empty batch --------------------------------------------------------

W4 = [0.5, 2.0, 1.0, 1.5]

EMPTY = {
    "MSELoss": (lambda r: xn.MSELoss(reduction=r), lambda nn, t, r: nn.MSELoss(reduction=r), (0, 3), "like"),
    "BCEWithLogitsLoss": (lambda r: xn.BCEWithLogitsLoss(reduction=r), lambda nn, t, r: nn.BCEWithLogitsLoss(reduction=r),
                          (0, 3), "like"),
    "BCEWithLogitsLoss-weights": (
        lambda r: xn.BCEWithLogitsLoss(weight=[1.0, 0.5, 2.0], reduction=r, pos_weight=[2.0, 1.0, 0.5], dtype="float64"),
        lambda nn, t, r: nn.BCEWithLogitsLoss(weight=t([1.0, 0.5, 2.0]), reduction=r, pos_weight=t([2.0, 1.0, 0.5])),
        (0, 3), "like"),
    "CrossEntropyLoss": (lambda r: xn.CrossEntropyLoss(reduction=r), lambda nn, t, r: nn.CrossEntropyLoss(reduction=r),
                         (0, 4), "labels"),
    "CrossEntropyLoss-weight-smoothing": (
        lambda r: xn.CrossEntropyLoss(weight=W4, label_smoothing=0.1, reduction=r, dtype="float64"),
        lambda nn, t, r: nn.CrossEntropyLoss(weight=t(W4), label_smoothing=0.1, reduction=r), (0, 4), "labels"),
    "CrossEntropyLoss-ignore-index": (
        lambda r: xn.CrossEntropyLoss(ignore_index=1, reduction=r),
        lambda nn, t, r: nn.CrossEntropyLoss(ignore_index=1, reduction=r), (0, 4), "labels"),
    "CrossEntropyLoss-4d": (lambda r: xn.CrossEntropyLoss(reduction=r), lambda nn, t, r: nn.CrossEntropyLoss(reduction=r),
                            (0, 4, 2, 3), "labels"),
    "CrossEntropyLoss-probabilities": (
        lambda r: xn.CrossEntropyLoss(reduction=r), lambda nn, t, r: nn.CrossEntropyLoss(reduction=r), (0, 4), "like"),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", list(EMPTY))
def test_empty_batch_as_torch(backend, torch, name, reduction):
    """A mean over nothing is NaN (so fit's NaN guard sees the empty batch), a sum 0, "none" empty;
    the gradient is empty; and numpy warns of no division by zero."""
    ours, theirs, shape, kind = EMPTY[name]
    pred = np.zeros(shape)
    target = np.zeros(shape) if kind == "like" else np.zeros(shape[:1] + shape[2:], dtype=np.int64)
    tensor = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    pt = torch.from_numpy(pred).requires_grad_(True)
    ref = theirs(torch.nn, tensor, reduction)(pt, torch.from_numpy(target))
    loss = ours(reduction)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = loss(backend.asarray(pred, dtype="float64"), inputs_to(backend, (target,), "float64")[0])
        dy = 1.0 if reduction != "none" else backend.asarray(np.zeros(tuple(out.shape)), dtype="float64")
        dpred = loss.backward(dy)
    assert backend.owns(out) and tuple(out.shape) == tuple(ref.shape), (type(out), out.shape, ref.shape)
    np.testing.assert_array_equal(host(out), ref.detach().numpy())  # NaN == NaN here
    if reduction == "mean":
        assert math.isnan(float(host(out)))
    assert backend.owns(dpred) and tuple(dpred.shape) == shape


# -- 0-d inputs: 0-d arrays out, as torch ---------------------------------------------------------

ZERO_D = {
    "ReLU": (lambda: xn.ReLU(), lambda nn: nn.ReLU()),
    "LeakyReLU": (lambda: xn.LeakyReLU(0.2), lambda nn: nn.LeakyReLU(0.2)),
    "Tanh": (lambda: xn.Tanh(), lambda nn: nn.Tanh()),
    "Sigmoid": (lambda: xn.Sigmoid(), lambda nn: nn.Sigmoid()),
    "Softmax": (lambda: xn.Softmax(0), lambda nn: nn.Softmax(0)),
    "Identity": (lambda: xn.Identity(), lambda nn: nn.Identity()),
    "Dropout-eval": (lambda: xn.Dropout(0.5).eval(), lambda nn: nn.Dropout(0.5).eval()),
    "Dropout-p0": (lambda: xn.Dropout(0.0), lambda nn: nn.Dropout(0.0)),
    "Flatten": (lambda: xn.Flatten(0), lambda nn: nn.Flatten(0)),
    "Sequential": (lambda: xn.Sequential(xn.Tanh(), xn.ReLU(), xn.LeakyReLU()),
                   lambda nn: nn.Sequential(nn.Tanh(), nn.ReLU(), nn.LeakyReLU())),
    "Sequential-empty": (lambda: xn.Sequential(), lambda nn: nn.Sequential()),
}


@pytest.mark.parametrize("x0", [0.7, -0.4])
@pytest.mark.parametrize("name", list(ZERO_D))
def test_0d_input_gives_0d_arrays_as_torch(backend, torch, name, x0):
    ours, theirs = ZERO_D[name]
    x = np.asarray(x0)
    dy_shape = tuple(theirs(torch.nn)(torch.tensor(x0)).shape)
    dy = np.full(dy_shape, 1.5)
    y_ref, g_ref = _torch_reference(torch, theirs, x, dy)
    layer = ours()
    y = layer(backend.asarray(x, dtype="float64"))
    g = layer.backward(backend.asarray(dy, dtype="float64"))
    for what, a, ref in (("y", y, y_ref), ("dx", g, g_ref)):
        assert backend.owns(a), f"{name}: {what} is a {type(a).__name__}, not an array of {backend.label}"
        assert tuple(a.shape) == ref.shape, (name, what, a.shape, ref.shape)
        np.testing.assert_allclose(host(a), ref, rtol=1e-12, err_msg=f"{name} {what}")


def test_dropout_training_on_a_0d_input(backend):
    layer = xn.Dropout(0.5)
    y = layer(backend.asarray(np.asarray(0.7), dtype="float64"))
    g = layer.backward(backend.asarray(np.asarray(1.0), dtype="float64"))
    assert backend.owns(y) and backend.owns(g) and y.shape == () and g.shape == ()
    assert float(host(g)) in (0.0, 2.0) and float(host(y)) == pytest.approx(0.7 * float(host(g)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["MSELoss", "BCEWithLogitsLoss"])
def test_0d_losses_as_torch(backend, torch, name, reduction):
    pred, target = np.asarray(0.3), np.asarray(0.8)
    loss = getattr(xn, name)(reduction=reduction)
    ref_loss = getattr(torch.nn, name)(reduction=reduction)
    pt = torch.from_numpy(pred.copy()).requires_grad_(True)
    lt = ref_loss(pt, torch.from_numpy(target.copy()))
    (gt,) = torch.autograd.grad(lt, pt, torch.tensor(2.0, dtype=torch.float64))
    out = loss(backend.asarray(pred, dtype="float64"), backend.asarray(target, dtype="float64"))
    dpred, dtarget = loss.backward(backend.asarray(np.asarray(2.0), dtype="float64"), target_grad=True)
    for what, a in (("loss", out), ("dpred", dpred), ("dtarget", dtarget)):
        assert backend.owns(a) and a.shape == (), f"{name}: {what} is a {type(a).__name__} of shape {getattr(a, 'shape', '?')}"
    np.testing.assert_allclose(host(out), lt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(host(dpred), gt.numpy(), rtol=1e-12)
