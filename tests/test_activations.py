"""ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, Identity and Dropout on the saved-values contract:
torch's own samples, 0-d and 1-D inputs, a layer used twice in one forward, input_grad=False,
dy=None, no_grad, and the errors. Then the activations of issue 11: their outputs and gradients
at NaN, infinities, zeros and kinks against torch, the error function against ``math``, half
precision, reprs, ``inplace``, bad arguments, interop, checkpoint rules and ONNX forms."""

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


# ========================================================================================
# issue 11: the rest of torch.nn's activations (their case-table tests: tests/cases/activations.py;
# torch's own samples: tests/test_module_db.py)
# ========================================================================================

import math  # noqa: E402
import warnings  # noqa: E402

from xpnet.layers import activations_erf  # noqa: E402
from xpnet.nets import checkpoint_arch, spec as spec_module  # noqa: E402

NAN, INF = math.nan, math.inf
# the corners: NaN, infinities, signed zeros, every kink of the layers below, far tails
CORNERS = np.array([NAN, INF, -INF, 0.0, -0.0, 1e-30, -1e-30, 0.1, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0,
                    6.0, -6.0, 20.0, -20.0, 50.0, -50.0, 800.0, -800.0])

# name: (xpnet layer, torch module) for the corner and dtype tests
NEW = {
    "ELU": (lambda: xpnet.ELU(), lambda nn: nn.ELU()),
    "ELU-2": (lambda: xpnet.ELU(2.0), lambda nn: nn.ELU(2.0)),
    "CELU": (lambda: xpnet.CELU(2.0), lambda nn: nn.CELU(2.0)),
    "SELU": (lambda: xpnet.SELU(), lambda nn: nn.SELU()),
    "GELU": (lambda: xpnet.GELU(), lambda nn: nn.GELU()),
    "GELU-tanh": (lambda: xpnet.GELU("tanh"), lambda nn: nn.GELU("tanh")),
    "SiLU": (lambda: xpnet.SiLU(), lambda nn: nn.SiLU()),
    "Mish": (lambda: xpnet.Mish(), lambda nn: nn.Mish()),
    "Softplus": (lambda: xpnet.Softplus(), lambda nn: nn.Softplus()),
    "Softplus-2-1": (lambda: xpnet.Softplus(2.0, 1.0), lambda nn: nn.Softplus(2.0, 1.0)),
    "LogSigmoid": (lambda: xpnet.LogSigmoid(), lambda nn: nn.LogSigmoid()),
    "Softsign": (lambda: xpnet.Softsign(), lambda nn: nn.Softsign()),
    "Tanhshrink": (lambda: xpnet.Tanhshrink(), lambda nn: nn.Tanhshrink()),
    "Hardtanh": (lambda: xpnet.Hardtanh(), lambda nn: nn.Hardtanh()),
    "Hardtanh-0.5-2": (lambda: xpnet.Hardtanh(-0.5, 2.0), lambda nn: nn.Hardtanh(-0.5, 2.0)),
    "ReLU6": (lambda: xpnet.ReLU6(), lambda nn: nn.ReLU6()),
    "Hardsigmoid": (lambda: xpnet.Hardsigmoid(), lambda nn: nn.Hardsigmoid()),
    "Hardswish": (lambda: xpnet.Hardswish(), lambda nn: nn.Hardswish()),
    "Hardshrink": (lambda: xpnet.Hardshrink(), lambda nn: nn.Hardshrink()),
    "Softshrink": (lambda: xpnet.Softshrink(), lambda nn: nn.Softshrink()),
    "Threshold": (lambda: xpnet.Threshold(0.1, 20.0), lambda nn: nn.Threshold(0.1, 20.0)),
    "PReLU": (lambda: xpnet.PReLU(dtype="float64"), lambda nn: nn.PReLU().double()),
    "LogSoftmax": (lambda: xpnet.LogSoftmax(1), lambda nn: nn.LogSoftmax(1)),
    "Softmin": (lambda: xpnet.Softmin(1), lambda nn: nn.Softmin(1)),
    "GLU": (lambda: xpnet.GLU(1), lambda nn: nn.GLU(1)),
}
ALONG = ("LogSoftmax", "Softmin", "GLU")


def _corner_input(name):
    """The corners as one row per value for an elementwise layer; for a layer along an axis,
    rows of 8: one with NaN, one with infinities, finite rows with a wide spread."""
    if name not in ALONG:
        return CORNERS[:, None] * np.ones((1, 2))
    return np.stack([CORNERS[:8], CORNERS[8:16], CORNERS[16:], np.linspace(-40, 40, 8), CORNERS[3:11] * 0.25])


@pytest.mark.parametrize("name", list(NEW))
def test_corners_as_torch(backend, torch, name):
    """Outputs, input and parameter gradients at NaN, +-inf, +-0, the kinks (torch's conventions:
    ELU's slope alpha at 0, no gradient at Hardtanh's bounds, Hardswish's 0 at -3 and 1 at 3, ...)
    and the far tails, in float64."""
    ours, theirs = NEW[name]
    x = _corner_input(name)
    dy_shape = (x.shape[0], x.shape[1] // 2) if name == "GLU" else x.shape
    dy = 1.5 - np.arange(math.prod(dy_shape)).reshape(dy_shape) * 0.125
    module = theirs(torch.nn)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = module(xt)
    wrt = [xt] + list(module.parameters())
    gt = torch.autograd.grad(yt, wrt, torch.from_numpy(dy.copy()))
    layer = ours()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # array_api_strict: numpy's overflow warnings
        y = layer(backend.asarray(x, dtype="float64"))
        g = layer.backward(backend.asarray(dy, dtype="float64"))
    tol = dict(rtol=1e-12, atol=1e-15, equal_nan=True)
    np.testing.assert_allclose(host(y), yt.detach().numpy(), err_msg=f"{name} output", **tol)
    np.testing.assert_allclose(host(g), gt[0].numpy(), err_msg=f"{name} dx", **tol)
    for p, tg in zip(layer.parameters(), gt[1:]):
        np.testing.assert_allclose(host(p.grad), tg.numpy(), err_msg=f"{name} weight gradient", **tol)


def test_numpy_warns_nothing_at_the_extremes():
    """Overflow inside a formula (exp(-x) for x = -1e4, x^2 for 1e200) is expected there, not a
    user's problem: no RuntimeWarning on numpy, and finite results where torch's are."""
    for make in (xpnet.GELU, xpnet.SiLU, xpnet.Mish, xpnet.Softplus, xpnet.LogSigmoid, xpnet.Softsign,
                 lambda: xpnet.GELU("tanh"), xpnet.ELU, xpnet.SELU):
        layer = make()
        for dtype, huge in (("float64", 1e200), ("float32", 1e30)):
            x = np.array([-1e4, -800.0, 1e-30, 800.0, 1e4, huge, -huge], dtype=dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                with np.errstate(under="ignore"):
                    y = layer(x)
                    layer.backward(np.ones_like(y))
            assert np.isfinite(y[:5]).all(), (layer, dtype, y)


def test_stable_where_torch_is_and_beyond():
    """LogSigmoid and LogSoftmax stay finite far out; Softplus with a large threshold does not
    overflow (torch's log1p(exp(beta x)) gives inf there)."""
    y = xpnet.LogSigmoid()(np.array([-1000.0, 1000.0]))
    np.testing.assert_allclose(y, [-1000.0, 0.0], atol=1e-300)
    ls = xpnet.LogSoftmax()(np.array([[0.0, 1e4, -1e4]]))
    np.testing.assert_allclose(ls, [[-1e4, 0.0, -2e4]])
    np.testing.assert_allclose(xpnet.Softplus(threshold=1e6)(np.array([1000.0, -1000.0])), [1000.0, 0.0], atol=1e-300)


# -- the error function -------------------------------------------------------------------

ERF_X = np.concatenate([np.linspace(-30.0, 30.0, 24001), np.geomspace(1e-300, 1.0, 600), -np.geomspace(1e-300, 1.0, 600),
                        [0.0, -0.0, 0.46875, -0.46875, 4.0, -4.0, 27.2, 28.0, 1e300, -1e300]])


def _ulps(ours, exact, floor):
    mask = np.abs(exact) > floor
    return np.abs(ours[mask] - exact[mask]) / np.abs(exact[mask]) / np.finfo(np.float64).eps


def test_erf_and_erfc_against_math_in_float64(backend):
    """Within 4 ulp of math.erf and math.erfc (relative: erfc in its far tail too, where 1 - erf
    would have none of its digits), over [-30, 30], tiny arguments and huge ones."""
    x = backend.asarray(ERF_X, dtype="float64")
    erf, erfc = host(activations_erf.erf(x)), host(activations_erf.erfc(x))
    exact_erf = np.array([math.erf(v) for v in ERF_X])
    exact_erfc = np.array([math.erfc(v) for v in ERF_X])
    assert _ulps(erf, exact_erf, 0.0).max() <= 4
    assert _ulps(erfc, exact_erfc, 1e-300).max() <= 4  # below 1e-300 lie the subnormals, and 0
    assert np.max(np.abs(erfc - exact_erfc)[np.abs(exact_erfc) <= 1e-300]) < 1e-300
    special = host(activations_erf.erf(backend.asarray(np.array([INF, -INF, NAN]))))
    np.testing.assert_array_equal(special, [1.0, -1.0, NAN])
    np.testing.assert_array_equal(host(activations_erf.erfc(backend.asarray(np.array([INF, -INF, NAN])))), [0.0, 2.0, NAN])


def test_erf_keeps_float32_and_its_precision(backend):
    x = ERF_X[np.abs(ERF_X) < 1e30].astype(np.float32)
    got = activations_erf.erf(backend.asarray(x))
    assert got.dtype == backend.dtype("float32")
    exact = np.array([math.erf(v) for v in x.astype(np.float64)])
    assert np.max(np.abs(host(got) - exact)) < 3e-7


def test_normal_cdf_pdf_float32_form(backend):
    """Abramowitz and Stegun's 26.2.17 in float32: within 2.5e-7 of Phi everywhere; the density exact."""
    x = np.linspace(-12.0, 12.0, 4801).astype(np.float32)
    cdf, pdf = activations_erf.normal_cdf_pdf(backend.asarray(x))
    x64 = x.astype(np.float64)
    exact = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x64])
    assert np.max(np.abs(host(cdf) - exact)) < 2.6e-7
    # exp(-x^2 / 2) inherits the float32 rounding of x^2: x^2 * 6e-8 relative, 9e-6 at |x| = 12
    np.testing.assert_allclose(host(pdf), np.exp(-x64 * x64 / 2) / math.sqrt(2 * math.pi), rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("name", ["GELU", "GELU-tanh", "SiLU", "LogSoftmax", "Softmin", "ELU", "Hardswish"])
def test_half_precision_inputs_keep_their_dtype(backend, name):
    """float16 in, float16 out (and dx); the softmax family and GELU's Phi computed in float32."""
    if "float16" not in backend.low_precision_dtypes():
        pytest.skip(f"{backend.label} has no float16")
    x = np.random.default_rng(3).standard_normal((4, 6)) * 2
    layer = NEW[name][0]()
    y = layer(backend.asarray(x, dtype="float16"))
    dx = layer.backward(backend.asarray(np.ones((4, 6)), dtype="float16"))
    assert y.dtype == dx.dtype == backend.dtype("float16")
    ref = NEW[name][0]()
    y32 = host(ref(backend.asarray(x.astype(np.float16), dtype="float32")))
    np.testing.assert_allclose(host(y).astype(np.float32), y32, rtol=2e-3, atol=2e-3)


# -- construction, configuration, interop -------------------------------------------------

@pytest.mark.parametrize("ours, theirs", [
    (lambda: xpnet.ELU(0.5), lambda nn: nn.ELU(0.5)), (lambda: xpnet.CELU(), lambda nn: nn.CELU()),
    (lambda: xpnet.SELU(), lambda nn: nn.SELU()), (lambda: xpnet.GELU("tanh"), lambda nn: nn.GELU("tanh")),
    (lambda: xpnet.GLU(1), lambda nn: nn.GLU(1)), (lambda: xpnet.Hardshrink(0.25), lambda nn: nn.Hardshrink(0.25)),
    (lambda: xpnet.Hardsigmoid(), lambda nn: nn.Hardsigmoid()), (lambda: xpnet.Hardswish(), lambda nn: nn.Hardswish()),
    (lambda: xpnet.Hardtanh(-2.0, 3.0), lambda nn: nn.Hardtanh(-2.0, 3.0)), (lambda: xpnet.LogSigmoid(), lambda nn: nn.LogSigmoid()),
    (lambda: xpnet.LogSoftmax(1), lambda nn: nn.LogSoftmax(1)), (lambda: xpnet.Softmin(0), lambda nn: nn.Softmin(0)),
    (lambda: xpnet.Softmax2d(), lambda nn: nn.Softmax2d()), (lambda: xpnet.Mish(), lambda nn: nn.Mish()),
    (lambda: xpnet.PReLU(3), lambda nn: nn.PReLU(3)), (lambda: xpnet.ReLU6(), lambda nn: nn.ReLU6()),
    (lambda: xpnet.SiLU(), lambda nn: nn.SiLU()), (lambda: xpnet.Softplus(2.0, 10.0), lambda nn: nn.Softplus(2.0, 10.0)),
    (lambda: xpnet.Softshrink(), lambda nn: nn.Softshrink()), (lambda: xpnet.Softsign(), lambda nn: nn.Softsign()),
    (lambda: xpnet.Tanhshrink(), lambda nn: nn.Tanhshrink()), (lambda: xpnet.Threshold(0.1, 20.0), lambda nn: nn.Threshold(0.1, 20.0)),
], ids=lambda f: "")
def test_repr_is_torchs(torch, ours, theirs):
    assert repr(ours()) == repr(theirs(torch.nn))


@pytest.mark.parametrize("make", [lambda: xpnet.ELU(inplace=True), lambda: xpnet.CELU(1.5, True), lambda: xpnet.SELU(True),
                                  lambda: xpnet.Hardtanh(inplace=True), lambda: xpnet.ReLU6(True), lambda: xpnet.Hardsigmoid(True),
                                  lambda: xpnet.Hardswish(True), lambda: xpnet.SiLU(True), lambda: xpnet.Mish(True),
                                  lambda: xpnet.Threshold(0.0, 1.0, True)])
def test_inplace_is_accepted_and_changes_nothing(backend, make):
    layer = make()
    x_np = np.linspace(-4.0, 4.0, 12).reshape(3, 4)
    x = backend.asarray(x_np)
    y = layer(x)
    np.testing.assert_array_equal(host(x), x_np)  # the input is untouched
    assert y is not x and "inplace" not in repr(layer) and "inplace" not in layer.config()
    plain = spec_module.build(spec_module.layer_spec(layer))
    np.testing.assert_array_equal(host(plain(x)), host(y))


@pytest.mark.parametrize("make, kind, msg", [
    (lambda: xpnet.CELU(0.0), ValueError, "CELU: alpha must not be 0 (x is divided by it), got 0.0"),
    (lambda: xpnet.ELU("1"), ValueError, "ELU: alpha must be a real number, got '1'"),
    (lambda: xpnet.ELU(inplace=1), ValueError, "ELU: inplace must be True or False, got 1"),
    (lambda: xpnet.GELU("erf"), ValueError, "GELU: approximate must be one of ('none', 'tanh'), got 'erf'"),
    (lambda: xpnet.Softplus(0), ValueError, "Softplus: beta must not be 0 (the output is divided by it), got 0.0"),
    (lambda: xpnet.Softplus(threshold=NAN), ValueError, "Softplus: threshold must be a real number, got nan"),
    (lambda: xpnet.Hardtanh(1.0, 1.0), ValueError, "Hardtanh: max_val must be greater than min_val, got min_val=1.0, max_val=1.0"),
    (lambda: xpnet.Softshrink(-0.5), ValueError, "Softshrink: lambd must be a real number in [0.0, inf], got -0.5"),
    (lambda: xpnet.Threshold(0.1), TypeError, "missing 1 required positional argument: 'value'"),
    (lambda: xpnet.LogSoftmax(None), ValueError, "LogSoftmax: dim must be an int, got None (torch's implicit dim=None is "
                                                 "deprecated; pass the axis, e.g. LogSoftmax(dim=-1))"),
    (lambda: xpnet.Softmin(1.0), ValueError, "Softmin: dim must be an int, got 1.0"),
    (lambda: xpnet.GLU("0"), ValueError, "GLU: dim must be an int, got '0'"),
    (lambda: xpnet.PReLU(0), ValueError, "PReLU: num_parameters must be a positive int, got 0"),
    (lambda: xpnet.PReLU(init="0.25"), ValueError, "PReLU: init must be a real number, got '0.25'"),
])
def test_bad_constructor_arguments(make, kind, msg):
    with pytest.raises(kind, match=re.escape(msg)):
        make()


def test_prelu_weight_layout_and_errors(backend):
    layer = xpnet.PReLU(3, init=0.1, backend=backend, dtype="float64")
    assert list(layer.state_dict()) == ["weight"] and tuple(layer.weight.shape) == (3,)
    np.testing.assert_array_equal(host(layer.weight.data), [0.1, 0.1, 0.1])
    with pytest.raises(TypeError, match=re.escape("PReLU(num_parameters=3) expected a float64 input to match its "
                                                  "parameters, got float32")):
        layer(backend.asarray(np.ones((2, 3)), dtype="float32"))
    with pytest.raises(ValueError, match=re.escape("PReLU(num_parameters=3) expected an input with 3 channels (axis 1), "
                                                   "got input of shape ()")):
        layer(backend.asarray(np.asarray(1.0)))


def test_prelu_frozen_weight_gets_no_gradient(backend):
    layer = xpnet.PReLU(2, backend=backend, dtype="float64")
    layer.weight.requires_grad_(False)
    layer(randn(backend, (3, 2)))
    dx = layer.backward(randn(backend, (3, 2)))
    assert layer.weight.grad is None and tuple(dx.shape) == (3, 2)


def test_interop_round_trip(torch):
    """to_torch and back: same classes, options, PReLU's weights, and outputs."""
    net = xpnet.Sequential(xpnet.Linear(4, 6, dtype="float64"), xpnet.PReLU(6, 0.3, dtype="float64"),
                           xpnet.GLU(), xpnet.Softplus(2.0, 5.0), xpnet.Hardtanh(-0.5, 0.5), xpnet.GELU("tanh"),
                           xpnet.CELU(0.5), xpnet.LogSoftmax(1))
    module = xpnet.to_torch(net)
    assert [type(m).__name__ for m in module] == [type(layer).__name__ for layer in net.layers]
    x = np.random.default_rng(0).standard_normal((5, 4))
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), net(x), rtol=1e-12)
    back = xpnet.from_torch(module)
    assert repr(back) == repr(net)
    np.testing.assert_allclose(back(x), net(x), rtol=1e-12)
    # torch's modules with their inplace and default options come across too
    tm = torch.nn.Sequential(torch.nn.ELU(inplace=True), torch.nn.SELU(), torch.nn.ReLU6(inplace=True), torch.nn.Threshold(0.5, -1.0))
    np.testing.assert_allclose(xpnet.from_torch(tm)(x), tm(torch.from_numpy(x)).numpy(), rtol=1e-12)


ARCH = {"PReLU": [dict(num_parameters=1), dict(num_parameters=5, init=0.1)], "GELU": [dict(approximate="tanh")],
        "Hardtanh": [dict(min_val=-2.0, max_val=2.0)], "Threshold": [dict(threshold=0.0, value=1.0)]}


NEW_NAMES = ["CELU", "ELU", "SELU", "GELU", "GLU", "Hardshrink", "Hardsigmoid", "Hardswish", "Hardtanh", "LogSigmoid",
             "LogSoftmax", "Mish", "PReLU", "ReLU6", "SiLU", "Softmax2d", "Softmin", "Softplus", "Softshrink", "Softsign",
             "Tanhshrink", "Threshold"]


@pytest.mark.parametrize("name", NEW_NAMES)
def test_checkpoint_rules_predict_the_arrays(name):
    """xpnet/nets/arch_rules/activations.py against the layers (test_checkpoint_fuzz's check)."""
    cls = getattr(xpnet, name)
    assert checkpoint_arch.rule_for(cls) is not None
    for cfg in ARCH.get(name, [{}]):
        with backends.use("numpy"):
            layer = spec_module.build({"type": name, **cfg})
        walk = checkpoint_arch.from_spec(spec_module.layer_spec(layer))
        model = [e[:4] for e in checkpoint_arch.entries(walk.root)]
        assert model == [e[:4] for e in checkpoint_arch.entries(checkpoint_arch.from_net(layer))], (name, cfg)



def test_checkpoint_rule_refuses_a_bad_prelu():
    with pytest.raises(checkpoint_arch.Invalid, match=re.escape("PReLU: num_parameters must be a positive int, got -1")):
        checkpoint_arch.from_spec({"type": "PReLU", "num_parameters": -1, "init": 0.25})


# -- ONNX forms that depend on the opset ----------------------------------------------------

@pytest.mark.parametrize("opset", [13, 18, 20])
@pytest.mark.parametrize("make", [lambda: xpnet.GELU(), lambda: xpnet.GELU("tanh"), lambda: xpnet.Hardswish(),
                                  lambda: xpnet.Mish()], ids=["GELU", "GELU-tanh", "Hardswish", "Mish"])
def test_onnx_forms_at_each_opset(make, opset, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from tests.test_onnx import export_and_compare

    x = (np.random.default_rng(1).standard_normal((3, 5)) * 3).astype(np.float32)
    model = export_and_compare(make(), x, tmp_path, opset=opset)
    assert model.opset_import[0].version == opset


def test_onnx_celu_in_float64_and_glu_on_the_batch_axis(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from tests.test_onnx import export_and_compare

    x = np.random.default_rng(2).standard_normal((4, 3))
    net = xpnet.Sequential(xpnet.Linear(3, 3, dtype="float64"), xpnet.CELU(-0.5))
    model = export_and_compare(net, x, tmp_path, tol=1e-12)  # ONNX's Celu is float32-only: composed
    assert "Celu" not in [n.op_type for n in model.graph.node]
    with pytest.raises(ValueError, match=re.escape("to_onnx: the net (GLU) takes an input of shape (4, 3) but not one "
                                                   "of another batch size ((5, 3): GLU(dim=0) expected an even size")):
        xpnet.to_onnx(xpnet.GLU(0), tmp_path / "g.onnx", (4, 3))
    export_and_compare(xpnet.GLU(0), x.astype(np.float32), tmp_path, dynamic=False)
