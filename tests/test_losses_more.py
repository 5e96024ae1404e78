"""The two-input losses of issue 11 beyond the case table (tests/cases/losses_two_input.py): the
corners torch defines (empty batches, probabilities of 0 and 1, targets of 0, NaN and negative
numbers, huge margins), the deferred label and range checks against the eager ones, low
precision, and the constructor's errors."""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pytest

import xpnet as xn
from xpnet.layers.deferred import deferred_checks
from tests.conftest import host
from tests.host_reads import count_host_reads

F64 = "float64"


def _torch_grads(torch, module, x, t, dy, target_grad=True):
    xt = torch.from_numpy(np.array(x, dtype=np.float64)).requires_grad_(True)
    tt = torch.from_numpy(np.array(t))
    if target_grad:
        tt.requires_grad_(True)
    out = module(xt, tt)
    wrt = [xt, tt] if target_grad else [xt]
    grads = torch.autograd.grad(out, wrt, torch.from_numpy(np.asarray(dy, dtype=np.float64)), allow_unused=True)
    return [out.detach().numpy()] + [None if g is None else g.numpy() for g in grads]


def _ours(backend, loss, x, t, dy, target_grad=True):
    tb = backend.asarray(np.asarray(t), dtype=F64 if np.asarray(t).dtype.kind == "f" else None)
    out = loss(backend.asarray(np.asarray(x), dtype=F64), tb)
    dyb = backend.asarray(np.asarray(dy), dtype=F64) if loss.reduction == "none" else float(dy)
    grads = loss.backward(dyb, target_grad=target_grad)
    grads = grads if isinstance(grads, tuple) else (grads,)
    return [host(out)] + [None if g is None else host(g) for g in grads]


def _same(ours, theirs, what):
    for k, (a, b) in enumerate(zip(ours, theirs)):
        if b is None:
            continue
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-300, equal_nan=True, err_msg=f"{what}: result {k}")


# -- the corners torch defines ------------------------------------------------------------------

def test_bce_at_probabilities_0_and_1_as_torch(backend, torch):
    """log clamped at -100 in the loss; dp divides by max(p (1 - p), 1e-12); dt = -logit(p), infinite."""
    p, t = [0.0, 1.0, 0.0, 1.0, 0.3], [0.0, 1.0, 1.0, 0.0, 0.6]
    dy = np.array([1.5, -0.5, 2.0, 1.0, 0.7])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no divide-by-zero warning of numpy either
        ours = _ours(backend, xn.BCELoss(reduction="none"), p, t, dy)
    _same(ours, _torch_grads(torch, torch.nn.BCELoss(reduction="none"), p, t, dy), "BCELoss")
    assert ours[0][2] == 100.0 and math.isinf(ours[2][0])


def test_kl_div_targets_of_0_negative_nan_as_torch(backend, torch):
    """xlogy(t, t): 0 at t = 0, NaN below; torch's autograd gives NaN target gradients at t <= 0."""
    x, t = [0.5, -0.2, 0.5, 0.1, 0.3], [0.0, -1.0, 2.0, math.nan, 0.25]
    dy = np.array([1.0, 2.0, -1.0, 0.5, 3.0])
    for kw in ({}, {"log_target": True}):
        ours = _ours(backend, xn.KLDivLoss(reduction="none", **kw), x, t, dy)
        _same(ours, _torch_grads(torch, torch.nn.KLDivLoss(reduction="none", **kw), x, t, dy), f"KLDivLoss {kw}")
    out = _ours(backend, xn.KLDivLoss(reduction="none"), x, t, dy)[0]
    assert out[0] == 0.0 and math.isnan(out[1]) and math.isnan(out[3])


def test_soft_margin_does_not_overflow_where_torch_does(backend, torch):
    x, t = np.array([800.0, -800.0, 3.0]), np.array([-1.0, 1.0, 1.0])
    loss = xn.SoftMarginLoss(reduction="none")
    out, dx, dt = _ours(backend, loss, x, t, np.ones(3))
    np.testing.assert_allclose(out, [800.0, 800.0, math.log1p(math.exp(-3.0))], rtol=1e-12)
    np.testing.assert_allclose(dx, [1.0, -1.0, -1.0 / (1.0 + math.exp(3.0))], rtol=1e-12)
    np.testing.assert_allclose(dt, [-800.0, 800.0, -3.0 / (1.0 + math.exp(3.0))], rtol=1e-12)
    theirs = torch.nn.SoftMarginLoss(reduction="none")(torch.from_numpy(x), torch.from_numpy(t))
    assert math.isinf(theirs[0]) and np.allclose(theirs.numpy()[2], out[2])


def test_poisson_full_target_gradient_below_1_is_the_limit(backend, torch):
    """torch's autograd of masked_fill gives NaN at t = 0; the Stirling term is the constant 0
    there, so xpnet's dt is -x (log_input) as for any t <= 1; elsewhere it equals torch's."""
    x, t = [0.5, -0.3, 0.2, 1.1], [0.0, 0.5, 2.0, 3.0]
    dy = np.array([1.0, 2.0, -1.0, 0.5])
    ours = _ours(backend, xn.PoissonNLLLoss(full=True, reduction="none"), x, t, dy)
    theirs = _torch_grads(torch, torch.nn.PoissonNLLLoss(full=True, reduction="none"), x, t, dy)
    assert math.isnan(theirs[2][0]) and ours[2][0] == -0.5 * 1.0
    theirs[2][0] = ours[2][0]
    _same(ours, theirs, "PoissonNLLLoss full")


def test_hinge_with_labels_other_than_plus_minus_1_as_torch(backend, torch):
    x, t = [0.5, 1.0, 2.0, 0.5, 3.0, -0.5], [1.0, -1.0, -1.0, 0.5, 2.0, 0.0]
    dy = np.linspace(0.5, 2.0, 6)
    ours = _ours(backend, xn.HingeEmbeddingLoss(reduction="none"), x, t, dy, target_grad=False)
    _same(ours, _torch_grads(torch, torch.nn.HingeEmbeddingLoss(reduction="none"), x, t, dy, target_grad=False), "Hinge")


def test_nll_every_label_ignored(backend, torch):
    """A mean over no label is NaN (torch too) and the gradient is 0, weights or not."""
    x = np.log(np.full((3, 4), 0.25))
    y = np.array([2, 2, 2])
    for weight in (None, [1.0, 2.0, 3.0, 4.0]):
        loss = xn.NLLLoss(weight=weight, ignore_index=2, dtype=F64)
        out = loss(backend.asarray(x, dtype=F64), backend.asarray(y))
        dx = host(loss.backward())
        tw = None if weight is None else torch.tensor(weight, dtype=torch.float64)
        ref = torch.nn.NLLLoss(weight=tw, ignore_index=2)(torch.from_numpy(x), torch.from_numpy(y))
        assert math.isnan(float(host(out))) and math.isnan(float(ref))
        assert (dx == 0).all()


EMPTY = {
    "L1Loss": (lambda r: xn.L1Loss(r), (0, 3), "like"),
    "SmoothL1Loss": (lambda r: xn.SmoothL1Loss(r, beta=0.5), (0, 3), "like"),
    "HuberLoss": (lambda r: xn.HuberLoss(r), (0, 3), "like"),
    "KLDivLoss": (lambda r: xn.KLDivLoss(r), (0, 3), "like"),
    "KLDivLoss-batchmean": (lambda r: xn.KLDivLoss("batchmean" if r == "mean" else r), (0, 3), "like"),
    "BCELoss": (lambda r: xn.BCELoss(reduction=r), (0, 3), "like"),
    "PoissonNLLLoss": (lambda r: xn.PoissonNLLLoss(full=True, reduction=r), (0, 3), "like"),
    "HingeEmbeddingLoss": (lambda r: xn.HingeEmbeddingLoss(reduction=r), (0, 3), "like"),
    "SoftMarginLoss": (lambda r: xn.SoftMarginLoss(r), (0, 3), "like"),
    "MultiLabelSoftMarginLoss": (lambda r: xn.MultiLabelSoftMarginLoss(reduction=r), (0, 3), "like"),
    "NLLLoss": (lambda r: xn.NLLLoss(weight=[1.0, 2.0, 3.0], reduction=r, dtype=F64), (0, 3), "labels"),
    "NLLLoss-3d": (lambda r: xn.NLLLoss(reduction=r), (0, 3, 2), "labels"),
    "MultiMarginLoss": (lambda r: xn.MultiMarginLoss(reduction=r), (0, 3), "labels"),
    "MultiLabelMarginLoss": (lambda r: xn.MultiLabelMarginLoss(r), (0, 3), "like-int"),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", list(EMPTY))
def test_empty_batch(backend, name, reduction):
    """A mean over nothing is NaN (torch's too, but for MultiMarginLoss and MultiLabelMarginLoss,
    whose empty means read uninitialised memory), a sum 0, "none" empty; empty gradients."""
    make, shape, kind = EMPTY[name]
    pred = np.zeros(shape)
    target = {"like": np.zeros(shape), "like-int": np.zeros(shape, dtype=np.int64),
              "labels": np.zeros(shape[:1] + shape[2:], dtype=np.int64)}[kind]
    loss = make(reduction)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        tb = backend.asarray(target, dtype=F64 if kind == "like" else None)
        out = loss(backend.asarray(pred, dtype=F64), tb)
        dy = 1.0 if reduction != "none" else backend.asarray(np.zeros(tuple(out.shape)), dtype=F64)
        dpred = loss.backward(dy)
    assert backend.owns(out) and backend.owns(dpred) and tuple(dpred.shape) == shape
    value = host(out)
    if reduction == "mean":
        assert value.shape == () and math.isnan(float(value))
    elif reduction == "sum":
        assert float(value) == 0.0
    else:
        assert value.size == 0


# -- deferred checks ----------------------------------------------------------------------------

LABELLED = {
    "NLLLoss": (lambda: xn.NLLLoss(weight=[0.5, 2.0, 1.0, 1.5], ignore_index=1, dtype=F64),
                [0, 1, 3, 2, 1, 3], [0, 1, 3, 7, 1, 3]),
    "NLLLoss-none": (lambda: xn.NLLLoss(reduction="none"), [0, 1, 3, 2, 1, 3], [0, -3, 3, 2, 1, 3]),
    "MultiMarginLoss": (lambda: xn.MultiMarginLoss(p=2, weight=[0.5, 2.0, 1.0, 1.5], dtype=F64),
                        [0, 1, 3, 2, 1, 3], [0, 4, 3, 2, 1, 3]),
    "MultiLabelMarginLoss": (lambda: xn.MultiLabelMarginLoss("sum"),
                             [[0, 2, -1, 1]] * 6, [[0, 2, -1, 1]] * 5 + [[0, 4, -1, 1]]),
}


@pytest.mark.parametrize("name", list(LABELLED))
def test_deferred_label_checks_equal_eager(backend, name):
    make, good, bad = LABELLED[name]
    rng = np.random.default_rng(5)
    x = backend.asarray(rng.standard_normal((6, 4)))
    y, y_bad = backend.asarray(np.array(good)), backend.asarray(np.array(bad))
    loss = make()
    results = []
    for ctx in (deferred_checks, contextlib.nullcontext):
        with ctx():
            out = loss(x, y)
            dy = 1.0 if out.ndim == 0 else backend.xp.ones_like(out)
            results.append((host(out), host(loss.backward(dy))))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"expected class labels in .*; first at step 2$"):
        with deferred_checks() as checks:
            checks.step = 2
            assert np.isnan(host(loss(x, y_bad))).all()
            loss.backward(dy)
    with pytest.raises(ValueError, match=r"expected class labels in .*, got labels from -?\d+ to \d+"):
        loss(x, y_bad)


def test_bce_range_check_deferred_reads_nothing_and_raises_later():
    from xpnet import backends

    be = backends.get("array_api_strict:device1")
    loss = xn.BCELoss()
    p = be.asarray(np.array([0.2, 1.5, -0.25, 0.9]))
    t = be.asarray(np.array([0.0, 1.0, 1.0, 0.0]))
    message = r"BCELoss expected input probabilities in \[0, 1\] .*, got values from -0.25 to 1.5"
    with pytest.raises(ValueError, match=message + "; first at step 3$"):
        with deferred_checks() as checks:
            checks.step = 3
            with count_host_reads() as reads:
                out = loss(p, t)
                loss.backward()
            assert reads.count == 0, reads
            assert math.isnan(float(host(out)))
    with pytest.raises(ValueError, match=message + "$"):
        loss(p, t)
    nan_p = be.asarray(np.array([0.2, math.nan]))  # NaN is no range error: the loss is NaN
    assert math.isnan(float(host(loss(nan_p, t[:2]))))


# -- low precision ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["L1Loss", "NLLLoss", "KLDivLoss", "MultiMarginLoss", "BCELoss"])
def test_float16_is_computed_in_float32(backend, name):
    if "float16" not in backend.low_precision_dtypes():
        pytest.skip(f"{backend.label} has no float16")
    rng = np.random.default_rng(2)
    x = np.log(rng.uniform(0.1, 0.9, size=(5, 3)))
    if name == "BCELoss":
        x = np.exp(x)
    if name in ("NLLLoss", "MultiMarginLoss"):
        t = backend.asarray(np.array([0, 2, 1, 1, 0]))
    else:
        t = backend.asarray(rng.uniform(0.1, 0.9, size=(5, 3)).astype(np.float16))
    loss = getattr(xn, name)()
    x16 = backend.asarray(x.astype(np.float16))
    out = loss(x16, t)
    grads = loss.backward(target_grad=True)
    assert backend.dtype_name(out.dtype) == "float32"
    assert grads[0].dtype == x16.dtype
    assert grads[1] is None if name in ("NLLLoss", "MultiMarginLoss") else grads[1].dtype == t.dtype
    t32 = t if t.dtype in backend.int_dtypes else backend.xp.astype(t, backend.dtype("float32"))
    ref = loss(backend.xp.astype(x16, backend.dtype("float32")), t32)
    loss.backward()
    np.testing.assert_allclose(host(out), host(ref), rtol=1e-6)


# -- constructor errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: xn.SmoothL1Loss(beta=-0.5), r"^SmoothL1Loss: beta must be >= 0, got -0\.5$"),
    (lambda: xn.SmoothL1Loss(beta=math.inf), r"^SmoothL1Loss: beta must be finite, got inf$"),
    (lambda: xn.HuberLoss(delta=0.0), r"^HuberLoss: delta must be a positive real number, got 0\.0$"),
    (lambda: xn.KLDivLoss(reduction="batch"), r"^KLDivLoss: reduction must be one of \('none', 'batchmean', 'mean', 'sum'\), got 'batch'$"),
    (lambda: xn.KLDivLoss(log_target=1), r"^KLDivLoss: log_target must be True or False, got 1$"),
    (lambda: xn.PoissonNLLLoss(eps=0.0), r"^PoissonNLLLoss: eps must be a positive real number, got 0\.0$"),
    (lambda: xn.PoissonNLLLoss(full="yes"), r"^PoissonNLLLoss: full must be True or False, got 'yes'$"),
    (lambda: xn.MultiMarginLoss(p=3), r"^MultiMarginLoss: p must be 1 or 2 \(as in torch\), got 3$"),
    (lambda: xn.MultiMarginLoss(weight=[[1.0, 2.0]]), r"^MultiMarginLoss: weight must be 1-D, one value per class, got shape \(1, 2\)$"),
    (lambda: xn.NLLLoss(weight=2.0), r"^NLLLoss: weight must be 1-D, one value per class, got shape \(\)$"),
    (lambda: xn.NLLLoss(ignore_index=1.5), r"^NLLLoss: ignore_index must be an int, got 1\.5$"),
    (lambda: xn.HingeEmbeddingLoss(margin="1"), r"^HingeEmbeddingLoss: margin must be a real number, got '1'$"),
    (lambda: xn.L1Loss(reduction="avg"), r"^L1Loss: reduction must be one of \('none', 'mean', 'sum'\), got 'avg'$"),
])
def test_constructor_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_input_shape_errors(backend):
    x = backend.asarray(np.zeros((2, 3, 4)))
    y = backend.asarray(np.zeros((2, 3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"^MultiMarginLoss expected input of shape \(C,\) or \(N, C\) with C >= 1, got \(2, 3, 4\)$"):
        xn.MultiMarginLoss()(x, y[:, 0, 0])
    with pytest.raises(ValueError, match=r"^MultiLabelMarginLoss expected input of shape \(C,\) or \(N, C\)"):
        xn.MultiLabelMarginLoss()(x, y)
    with pytest.raises(ValueError, match=r"^NLLLoss expected input of shape \(C,\), \(N, C\) or \(N, C, d1, \.\.\., dk\) "
                                         r"with C >= 1, got \(\)$"):
        xn.NLLLoss()(backend.asarray(np.zeros(())), backend.asarray(np.zeros((), dtype=np.int64)))
