"""The losses (MSELoss, BCEWithLogitsLoss, CrossEntropyLoss) against torch.nn and finite differences.

- torch parity of the value, d/dpred and d/dtarget (float targets) for every option combination:
  reductions, class weights, pos_weight broadcasting, ignore_index, label smoothing, class-index
  and probability targets, (N, C) / (N, C, d1, ..., dk) / unbatched logits, 0-d predictions,
  with a random upstream gradient (float64 to 1e-10, float32 to 1e-5)
- float64 gradchecks (xpnet.testing.gradcheck: d/dpred and d/dtarget) over the same options
- the backward contract (dy, dy=None, input_grad/target_grad, the stack of forwards), buffers
  (state_dict, .to, config), and every error message

torch's own module_db samples of the three losses run in tests/test_module_db.py.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

import xpnet as xn
from tests.conftest import host
from xpnet import backends
from xpnet.nets import spec
from xpnet.testing import gradcheck

DTYPES = ("float64", "float32")
REDUCTIONS = ("none", "mean", "sum")
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}

CE_SHAPES = ((5, 4), (3, 4, 2, 3), (4,))  # (N, C), (N, C, d1, d2), unbatched (C,)
CE_OPTIONS = list(itertools.product(CE_SHAPES, (False, True), (0.0, 0.3), (-100, 1)))  # shape, weighted, smoothing, ignore_index
BCE_CASES = [  # (pred shape, weight shape or None, pos_weight shape or None)
    ((6, 4), None, None), ((6, 4), (4,), None), ((6, 4), (), None), ((6, 4), (6, 1), None), ((6, 4), (6, 4), None),
    ((6, 4), None, (4,)), ((6, 4), None, ()), ((6, 4), (4,), (4,)), ((6, 4), (6, 1), (1, 4)),
    ((3, 2, 4), (2, 4), (4,)), ((5,), (5,), (5,)), ((), (), ()),
]
MSE_SHAPES = ((5, 3), (2, 3, 4), (7,), ())


def ce_options(probabilities):
    """The options for index or probability targets: the latter get ignore_index -1 instead of 1
    (torch and xpnet refuse one >= 0 for them; a negative one other than -100 must be inert)."""
    return [(s, w, e, -1 if probabilities and i >= 0 else i) for s, w, e, i in CE_OPTIONS]


# -- data ------------------------------------------------------------------------------------------


def ce_data(rng, shape, probabilities, ignore_index, dtype):
    """Logits of ``shape`` and a numpy target: class probabilities (normalized over the class axis)
    or int64 indices, a quarter of them ``ignore_index`` (never all, never an unbatched one)."""
    z = (rng.standard_normal(shape) * 2.0).astype(dtype)
    axis = 0 if len(shape) == 1 else 1
    c = shape[axis]
    if probabilities:
        t = rng.uniform(0.05, 1.0, size=shape)
        return z, (t / t.sum(axis=axis, keepdims=True)).astype(dtype)
    tshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    if 0 <= ignore_index < c:  # the others: any class but the ignored one
        y = rng.integers(0, c - 1, size=tshape)
        y = (y + (y >= ignore_index)).astype(np.int64)
    else:
        y = rng.integers(0, c, size=tshape).astype(np.int64)
    if len(shape) == 1:
        return z, np.asarray(y, dtype=np.int64)
    flat = y.reshape(-1)
    flat[::4] = ignore_index
    return z, y


def bce_data(rng, shape, dtype):
    z = np.asarray(rng.standard_normal(shape) * 3.0, dtype=dtype)
    t = rng.uniform(0.0, 1.0, size=shape)
    t = np.where(rng.uniform(size=shape) < 0.5, np.round(t), t)  # hard and soft targets
    return z, np.asarray(t, dtype=dtype)


def on(backend, a, dtype):
    """A numpy array on the backend: floats in ``dtype``, integers as int64."""
    return backend.asarray(a, dtype="int64" if np.issubdtype(a.dtype, np.integer) else dtype)


def close(ours, theirs, dtype, what):
    a = host(ours)
    b = theirs.detach().cpu().numpy()
    assert a.shape == b.shape, f"{what}: shape {a.shape} != torch {b.shape}"
    assert a.dtype == np.dtype(dtype), f"{what}: dtype {a.dtype}, expected {dtype}"
    np.testing.assert_allclose(a, b, err_msg=what, **TOL[dtype])


def compare_with_torch(torch, backend, loss, tloss, pred, target, dtype, rng, what, dy_array=False):
    """Value, d/dpred and (float targets) d/dtarget of ``loss`` and its torch twin ``tloss`` with a
    random upstream gradient: an array for reduction="none", else a Python float (or a 0-d array)."""
    out = loss(on(backend, pred, dtype), on(backend, target, dtype))
    assert backend.owns(out), f"{what}: the output is a {type(out).__name__}"
    g = np.asarray(rng.standard_normal(tuple(out.shape)), dtype=dtype)
    dy = backend.asarray(g, dtype=dtype) if g.ndim or dy_array else float(g)
    dpred, dtarget = loss.backward(dy, target_grad=True)
    assert loss.pending == 0
    pred, target = np.asarray(pred), np.asarray(target)
    pt = torch.from_numpy(pred).requires_grad_(True)
    float_target = np.issubdtype(target.dtype, np.floating)
    tt = torch.from_numpy(target).requires_grad_(float_target)
    lt = tloss(pt, tt)
    grads = torch.autograd.grad(lt, [pt, tt] if float_target else [pt], torch.from_numpy(g))
    close(out, lt, dtype, f"{what}: loss")
    assert backend.owns(dpred), f"{what}: dpred is a {type(dpred).__name__}"
    close(dpred, grads[0], dtype, f"{what}: dpred")
    if float_target:
        assert dtarget is not None and backend.owns(dtarget), f"{what}: no target gradient"
        close(dtarget, grads[1], dtype, f"{what}: dtarget")
    else:
        assert dtarget is None, f"{what}: integer targets have no gradient"


def ce_pair(torch, dtype, c, weighted, eps, ignore, reduction, rng):
    w = rng.uniform(0.5, 2.0, size=c).astype(dtype) if weighted else None
    ours = xn.CrossEntropyLoss(weight=w, ignore_index=ignore, reduction=reduction, label_smoothing=eps, dtype=dtype)
    theirs = torch.nn.CrossEntropyLoss(weight=None if w is None else torch.from_numpy(w), ignore_index=ignore,
                                       reduction=reduction, label_smoothing=eps)
    return ours, theirs


def bce_pair(torch, dtype, wshape, pwshape, reduction, rng):
    w = None if wshape is None else rng.uniform(0.5, 2.0, size=wshape).astype(dtype)
    pw = None if pwshape is None else rng.uniform(0.5, 3.0, size=pwshape).astype(dtype)
    ours = xn.BCEWithLogitsLoss(weight=w, reduction=reduction, pos_weight=pw, dtype=dtype)
    theirs = torch.nn.BCEWithLogitsLoss(weight=None if w is None else torch.from_numpy(w), reduction=reduction,
                                        pos_weight=None if pw is None else torch.from_numpy(pw))
    return ours, theirs


# -- torch parity, every option ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("probabilities", [False, True], ids=["indices", "probabilities"])
def test_cross_entropy_matches_torch(backend, torch, dtype, reduction, probabilities):
    rng = np.random.default_rng(0)
    for shape, weighted, eps, ignore in ce_options(probabilities):
        what = f"CE {shape} weighted={weighted} eps={eps} ignore={ignore} {reduction}"
        c = shape[0] if len(shape) == 1 else shape[1]
        ours, theirs = ce_pair(torch, dtype, c, weighted, eps, ignore, reduction, rng)
        z, t = ce_data(rng, shape, probabilities, ignore, dtype)
        compare_with_torch(torch, backend, ours, theirs, z, t, dtype, rng, what)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_torch(backend, torch, dtype, reduction):
    rng = np.random.default_rng(1)
    for shape, wshape, pwshape in BCE_CASES:
        ours, theirs = bce_pair(torch, dtype, wshape, pwshape, reduction, rng)
        z, t = bce_data(rng, shape, dtype)
        compare_with_torch(torch, backend, ours, theirs, z, t, dtype, rng, f"BCE {shape} w={wshape} pw={pwshape} {reduction}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_torch(backend, torch, dtype, reduction):
    rng = np.random.default_rng(2)
    for shape in MSE_SHAPES:
        p = np.asarray(rng.standard_normal(shape), dtype=dtype)
        t = np.asarray(rng.standard_normal(shape), dtype=dtype)
        compare_with_torch(torch, backend, xn.MSELoss(reduction), torch.nn.MSELoss(reduction=reduction),
                           p, t, dtype, rng, f"MSE {shape} {reduction}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_d_upstream_gradient(backend, torch, dtype):
    """dy as a 0-d array of the loss's dtype, for "mean" and "sum", and for 0-d "none" losses."""
    rng = np.random.default_rng(3)
    for reduction in ("mean", "sum"):
        ours, theirs = ce_pair(torch, dtype, 4, True, 0.1, 1, reduction, rng)
        z, t = ce_data(rng, (5, 4), False, 1, dtype)
        compare_with_torch(torch, backend, ours, theirs, z, t, dtype, rng, f"CE {reduction}", dy_array=True)
    z, t = ce_data(rng, (4,), True, -100, dtype)
    ours, theirs = ce_pair(torch, dtype, 4, True, 0.1, -100, "none", rng)
    compare_with_torch(torch, backend, ours, theirs, z, t, dtype, rng, "unbatched CE none", dy_array=True)
    p, t = (np.asarray(rng.standard_normal(()), dtype=dtype) for _ in range(2))
    compare_with_torch(torch, backend, xn.MSELoss("none"), torch.nn.MSELoss(reduction="none"), p, t, dtype, rng,
                       "0-d MSE none", dy_array=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_huge_logits_stay_finite_and_match_torch(backend, torch, dtype, reduction):
    rng = np.random.default_rng(4)
    z = (rng.choice([-1.0, 1.0], size=(6, 5, 2)) * 1e4 * rng.uniform(0.5, 1.0, size=(6, 5, 2))).astype(dtype)
    z[0, :, 0] = [1e4, -1e4, 1e4, -1e4, 1e4]  # ties at the top
    for probabilities in (False, True):
        _, t = ce_data(rng, (6, 5, 2), probabilities, -100, dtype)
        ours, theirs = ce_pair(torch, dtype, 5, True, 0.2, -100, reduction, rng)
        compare_with_torch(torch, backend, ours, theirs, z, t, dtype, rng, f"CE at 1e4, probabilities={probabilities}")
    zb = (rng.choice([-1.0, 1.0], size=(6, 4)) * 1e4).astype(dtype)
    zb[0] = [1e4, -1e4, 3e4, -3e4]
    _, t = bce_data(rng, (6, 4), dtype)
    ours, theirs = bce_pair(torch, dtype, (4,), (4,), reduction, rng)
    compare_with_torch(torch, backend, ours, theirs, zb, t, dtype, rng, "BCE at 1e4")
    assert np.all(np.isfinite(host(ours(on(backend, zb, dtype), on(backend, t, dtype)))))
    ours.clear_saved()


def test_cross_entropy_with_minus_infinity_logits_as_torch(backend, torch):
    """Masked classes (logit -inf) cost nothing without label smoothing: loss and gradient 0, finite."""
    z = np.full((2, 3), -np.inf)
    z[:, 0] = 1.0
    ours, theirs = xn.CrossEntropyLoss(dtype="float64"), torch.nn.CrossEntropyLoss()
    compare_with_torch(torch, backend, ours, theirs, z, np.array([0, 0]), "float64", np.random.default_rng(5), "-inf logits")


def test_all_targets_ignored_gives_nan_mean_and_zero_gradient_as_torch(backend, torch):
    z = np.random.default_rng(6).standard_normal((3, 4))
    t = np.full(3, -100)
    for w in (None, [1.0, 2.0, 3.0, 4.0]):
        loss = xn.CrossEntropyLoss(weight=w, label_smoothing=0.1, dtype="float64")
        with np.errstate(all="ignore"):
            out = loss(on(backend, z, "float64"), on(backend, t, "float64"))
            dz = loss.backward()
        assert np.isnan(host(out))
        np.testing.assert_array_equal(host(dz), np.zeros((3, 4)))


# -- torch's own samples -----------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("probabilities", [False, True], ids=["indices", "probabilities"])
def test_cross_entropy_gradcheck(backend, reduction, probabilities):
    rng = np.random.default_rng(10)
    for k, (shape, weighted, eps, ignore) in enumerate(ce_options(probabilities)):
        c = shape[0] if len(shape) == 1 else shape[1]
        w = rng.uniform(0.5, 2.0, size=c) if weighted else None
        loss = xn.CrossEntropyLoss(w, ignore, reduction, eps, dtype="float64")
        z, t = ce_data(rng, shape, probabilities, ignore, "float64")
        assert gradcheck(loss, on(backend, z, "float64"), on(backend, t, "float64"), seed=k)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_gradcheck(backend, reduction):
    rng = np.random.default_rng(11)
    for k, (shape, wshape, pwshape) in enumerate(BCE_CASES):
        w = None if wshape is None else rng.uniform(0.5, 2.0, size=wshape)
        pw = None if pwshape is None else rng.uniform(0.5, 3.0, size=pwshape)
        loss = xn.BCEWithLogitsLoss(w, reduction, pw, dtype="float64")
        z, t = bce_data(rng, shape, "float64")
        assert gradcheck(loss, on(backend, z, "float64"), on(backend, t, "float64"), seed=k)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_gradcheck(backend, reduction):
    rng = np.random.default_rng(12)
    for k, shape in enumerate(MSE_SHAPES):
        p, t = (backend.asarray(rng.standard_normal(shape), dtype="float64") for _ in range(2))
        assert gradcheck(xn.MSELoss(reduction), p, t, seed=k)


# -- the backward contract -----------------------------------------------------------------------------


def f32(backend, *shape):
    return backend.rng.normal(shape, dtype=backend.dtype("float32"))


def labels(backend, values):
    return backend.asarray(np.asarray(values), dtype="int64")


def test_backward_forms(backend):
    loss = xn.CrossEntropyLoss()
    z, y = f32(backend, 3, 4), labels(backend, [0, 3, 1])
    loss(z, y)
    dz = loss.backward()
    assert tuple(dz.shape) == (3, 4) and dz.dtype == z.dtype
    loss(z, y)
    assert loss.backward(target_grad=True)[1] is None  # (dpred, None): integer targets
    loss(z, y)
    assert loss.backward(input_grad=False) is None and loss.pending == 0
    loss(z, y)
    assert loss.backward(None) is None and loss.pending == 0  # nobody used the loss: pop, nothing else
    mse = xn.MSELoss()
    p, t = f32(backend, 3), f32(backend, 3)
    mse(p, t)
    assert mse.backward(None, target_grad=True) == (None, None)
    mse(p, t)
    dpred, dt = mse.backward(input_grad=False, target_grad=True)
    assert dpred is None and tuple(dt.shape) == (3,)
    with pytest.raises(RuntimeError, match="MSELoss.backward was called before forward"):
        mse.backward()


def test_forwards_stack_and_backwards_pop_in_reverse(backend):
    loss = xn.MSELoss(reduction="sum")
    a, b, t = f32(backend, 4), f32(backend, 4), f32(backend, 4)
    loss(a, t)
    loss(b, t)
    assert loss.pending == 2
    np.testing.assert_allclose(host(loss.backward()), 2 * (host(b) - host(t)), rtol=1e-6)
    np.testing.assert_allclose(host(loss.backward(0.5)), host(a) - host(t), rtol=1e-6)
    assert loss.pending == 0


def test_no_grad_keeps_nothing(backend):
    loss = xn.BCEWithLogitsLoss()
    with xn.no_grad():
        loss(f32(backend, 2, 3), f32(backend, 2, 3))
    assert loss.pending == 0


def test_output_shapes_and_dtypes(backend):
    z, y = f32(backend, 2, 3, 5), labels(backend, np.zeros((2, 5), dtype=int))
    assert tuple(xn.CrossEntropyLoss(reduction="none")(z, y).shape) == (2, 5)
    out = xn.CrossEntropyLoss(reduction="none")(f32(backend, 3), labels(backend, 1))
    assert tuple(out.shape) == () and backend.owns(out)
    out = xn.MSELoss()(f32(backend), f32(backend))
    assert tuple(out.shape) == () and backend.owns(out) and out.dtype == backend.dtype("float32")
    loss = xn.MSELoss("none")
    loss(f32(backend), f32(backend))
    d = loss.backward()  # a 0-d loss takes a number even with reduction="none"
    assert backend.owns(d) and tuple(d.shape) == ()


def test_labels_range_check_skips_ignored_targets(backend):
    z = f32(backend, 3, 3)
    xn.CrossEntropyLoss()(z, labels(backend, [-100, 0, 2]))
    xn.CrossEntropyLoss(ignore_index=7)(z, labels(backend, [7, 0, 7]))
    with pytest.raises(ValueError, match=re.escape("CrossEntropyLoss expected class labels in [0, 3), got labels from 3 to 3")):
        xn.CrossEntropyLoss()(z, labels(backend, [-100, 3, -100]))
    with pytest.raises(ValueError, match=re.escape("got labels from -1 to 2 (ignore_index=5 aside)")):
        xn.CrossEntropyLoss(ignore_index=5)(z, labels(backend, [5, -1, 2]))


def test_other_integer_label_dtypes(backend, torch):
    z = np.random.default_rng(7).standard_normal((4, 3))
    for dt in ("int32", "uint8"):
        y = backend.asarray(np.array([0, 2, 1, 2]), dtype=dt)
        out = xn.CrossEntropyLoss(dtype="float64")(on(backend, z, "float64"), y)
        close(out, torch.nn.CrossEntropyLoss()(torch.from_numpy(z), torch.tensor([0, 2, 1, 2])), "float64", dt)


# -- buffers -------------------------------------------------------------------------------------------


def test_weights_are_buffers_named_as_torch(backend, torch):
    w = [1.0, 2.0, 0.5]
    assert set(xn.CrossEntropyLoss(weight=w).state_dict()) == set(torch.nn.CrossEntropyLoss(weight=torch.tensor(w)).state_dict())
    both = xn.BCEWithLogitsLoss(weight=w, pos_weight=w)
    assert set(both.state_dict()) == {"weight", "pos_weight"}
    assert dict(xn.BCEWithLogitsLoss().state_dict()) == {} == dict(torch.nn.BCEWithLogitsLoss().state_dict())
    assert xn.CrossEntropyLoss().weight is None and xn.MSELoss().parameters() == []
    sd = both.state_dict()
    assert backend.owns(sd["weight"]) and sd["pos_weight"].dtype == backend.dtype("float32")


def test_weight_given_in_any_form(backend, torch):
    import array_api_strict

    expect = np.array([1.0, 2.0, 0.5])
    forms = [expect.tolist(), tuple(expect.tolist()), expect, torch.tensor(expect),
             array_api_strict.asarray(expect), backend.asarray(expect), (1, 2, 0.5)]
    for form in forms:
        loss = xn.CrossEntropyLoss(weight=form)
        assert backend.owns(loss.weight) and loss.weight.dtype == backend.dtype("float32"), type(form)
        np.testing.assert_array_equal(host(loss.weight), expect.astype(np.float32))
    loss = xn.CrossEntropyLoss(weight=expect, backend="numpy", dtype="float64")
    assert isinstance(loss.weight, np.ndarray) and loss.weight.dtype == np.float64
    assert xn.BCEWithLogitsLoss(pos_weight=2.0).pos_weight.shape == ()
    expect[0] = 9.0  # the loss holds its own copy
    assert float(host(loss.weight)[0]) == 1.0


def test_to_moves_weights_and_the_loss_then_runs_there(backend):
    loss = xn.CrossEntropyLoss(weight=[1.0, 2.0, 0.5], backend="numpy")
    z = backend.asarray(np.random.default_rng(8).standard_normal((4, 3)), dtype="float64")
    y = labels(backend, [0, 1, 2, 1])
    if backend.label != "numpy":
        with pytest.raises(ValueError, match=f"CrossEntropyLoss has its weight on numpy but the logits on {re.escape(backend.label)}"):
            loss(z, y)
    with pytest.raises(TypeError, match=re.escape("CrossEntropyLoss has a float32 weight but float64 logits; move the loss with .to(dtype='float64')")):
        xn.CrossEntropyLoss(weight=[1.0, 2.0, 0.5])(z, y)
    assert loss.to(backend, "float64") is loss
    assert backend.owns(loss.weight) and loss.weight.dtype == z.dtype
    plain = xn.CrossEntropyLoss(weight=[1.0, 2.0, 0.5], dtype="float64")
    np.testing.assert_allclose(host(loss(z, y)), host(plain(z, y)), rtol=1e-12)
    bce = xn.BCEWithLogitsLoss(weight=[1.0, 2.0, 3.0], pos_weight=[2.0, 1.0, 1.0]).to(dtype="float64")
    assert bce.weight.dtype == bce.pos_weight.dtype == z.dtype
    bce(z, z * 0.0 + 0.5)
    assert tuple(bce.backward().shape) == (4, 3)


def test_config_is_json_and_rebuilds_the_loss(backend):
    z = backend.asarray(np.random.default_rng(9).standard_normal((5, 3)), dtype="float32")
    y = labels(backend, [0, 1, 2, 1, 1])
    for loss, target in [
        (xn.CrossEntropyLoss(weight=[1.0, 2.0, 0.5], ignore_index=1, reduction="sum", label_smoothing=0.1), y),
        (xn.BCEWithLogitsLoss(weight=[[1.0, 2.0, 0.5]], reduction="none", pos_weight=3.0), z * 0.0 + 0.25),
        (xn.MSELoss("sum"), z * 0.5),
        (xn.CrossEntropyLoss(), y),
    ]:
        config = json.loads(json.dumps(loss.config()))
        assert config == loss.config()
        again = type(loss)(**config)
        built = spec.build(spec.layer_spec(loss))
        for other in (again, built):
            assert type(other) is type(loss) and repr(other) == repr(loss)
            np.testing.assert_array_equal(host(other(z, target)), host(loss(z, target)))
    c = xn.CrossEntropyLoss(weight=[1.0, 2.0], ignore_index=3, label_smoothing=0.25).config()
    assert c == {"weight": [1.0, 2.0], "ignore_index": 3, "reduction": "mean", "label_smoothing": 0.25}
    assert xn.BCEWithLogitsLoss().config() == {"weight": None, "reduction": "mean", "pos_weight": None}


def test_repr():
    assert repr(xn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(xn.CrossEntropyLoss(ignore_index=0, reduction="none", label_smoothing=0.1)) == \
        "CrossEntropyLoss(reduction='none', ignore_index=0, label_smoothing=0.1)"
    assert repr(xn.MSELoss("sum")) == "MSELoss(reduction='sum')"


def test_a_loss_is_a_layer_but_not_for_sequential():
    assert isinstance(xn.MSELoss(), xn.Layer)
    with pytest.raises(TypeError, match="losses are applied outside the net"):
        xn.Sequential(xn.Linear(2, 2), xn.BCEWithLogitsLoss())


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, error, message", [
    (lambda: xn.MSELoss("avg"), ValueError, "MSELoss: reduction must be one of ('none', 'mean', 'sum'), got 'avg'"),
    (lambda: xn.BCEWithLogitsLoss(reduction=None), ValueError, "BCEWithLogitsLoss: reduction must be one of ('none', 'mean', 'sum'), got None"),
    (lambda: xn.CrossEntropyLoss(label_smoothing=1.5), ValueError, "CrossEntropyLoss: label_smoothing must be a probability in [0, 1], got 1.5"),
    (lambda: xn.CrossEntropyLoss(ignore_index=1.5), ValueError, "CrossEntropyLoss: ignore_index must be an int, got 1.5"),
    (lambda: xn.CrossEntropyLoss(weight=[[1.0, 2.0]]), ValueError, "CrossEntropyLoss: weight must be 1-D, one value per class, got shape (1, 2)"),
    (lambda: xn.CrossEntropyLoss(weight="abc"), TypeError, "CrossEntropyLoss: weight must be None, a list of numbers or an array, got 'abc'"),
    (lambda: xn.CrossEntropyLoss(weight=[1.0, "b"]), TypeError, "CrossEntropyLoss: weight must be None, a list of numbers or an array, got [1.0, 'b']"),
    (lambda: xn.BCEWithLogitsLoss(pos_weight=[True, False]), TypeError, "BCEWithLogitsLoss: pos_weight must be None, a list of numbers or an array, got [True, False]"),
    (lambda: xn.BCEWithLogitsLoss(weight=np.array([True])), TypeError, "BCEWithLogitsLoss: weight must hold numbers, got an array of bool"),
    (lambda: xn.BCEWithLogitsLoss(weight=[[1.0], [2.0, 3.0]]), TypeError, "BCEWithLogitsLoss: weight must be None, a list of numbers or an array"),
    (lambda: xn.BCEWithLogitsLoss(weight=[1.0], dtype="int64"), ValueError, "BCEWithLogitsLoss: dtype must be a floating-point dtype, got 'int64'"),
    (lambda: xn.CrossEntropyLoss(dtype="int32"), ValueError, "CrossEntropyLoss: dtype must be a floating-point dtype, got 'int32'"),
    (lambda: xn.CrossEntropyLoss(backend="no-such-backend"), ValueError, "no-such-backend"),
])
def test_bad_constructor_arguments(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()


@pytest.mark.parametrize("call, error, message", [
    (lambda b: xn.CrossEntropyLoss()(f32(b), labels(b, 0)), ValueError,
     "CrossEntropyLoss expected logits of shape (C,), (N, C) or (N, C, d1, ..., dk), got ()"),
    (lambda b: xn.CrossEntropyLoss()(f32(b, 4), labels(b, [0, 1, 0, 1])), ValueError,
     "CrossEntropyLoss expected target of shape () for logits (4,), got (4,)"),
    (lambda b: xn.CrossEntropyLoss()(f32(b, 2, 3, 5), labels(b, [[0, 1, 2]] * 2)), ValueError,
     "CrossEntropyLoss expected target of shape (2, 5) for logits (2, 3, 5), got (2, 3)"),
    (lambda b: xn.CrossEntropyLoss()(f32(b, 4, 3), f32(b, 4)), TypeError,
     "CrossEntropyLoss expected integer class labels as target, got float32 of shape (4,)"),
    (lambda b: xn.CrossEntropyLoss()(f32(b, 4, 3), b.asarray(np.ones((4,), dtype=bool))), TypeError,
     "CrossEntropyLoss expected integer class labels as target, got bool"),
    (lambda b: xn.CrossEntropyLoss()(f32(b, 4, 3), b.asarray(np.ones((4, 3)), dtype="float64")), TypeError,
     "CrossEntropyLoss expected class probabilities as a float32 target to match the logits, got float64"),
    (lambda b: xn.CrossEntropyLoss(ignore_index=0)(f32(b, 2, 3), f32(b, 2, 3)), ValueError,
     "CrossEntropyLoss got class probabilities as target (float, the logits' shape), to which ignore_index=0 does not apply"),
    (lambda b: xn.CrossEntropyLoss(weight=[1.0, 2.0, 3.0, 4.0])(f32(b, 2, 3), labels(b, [0, 1])), ValueError,
     "CrossEntropyLoss has a weight for 4 classes but got logits with 3 classes (shape (2, 3))"),
    (lambda b: xn.BCEWithLogitsLoss(weight=[1.0, 2.0, 3.0])(f32(b, 4, 2), f32(b, 4, 2)), ValueError,
     "BCEWithLogitsLoss has a weight of shape (3,), which does not broadcast to the prediction's shape (4, 2)"),
    (lambda b: xn.BCEWithLogitsLoss(pos_weight=np.ones((2, 4, 2)))(f32(b, 4, 2), f32(b, 4, 2)), ValueError,
     "BCEWithLogitsLoss has a pos_weight of shape (2, 4, 2), which does not broadcast to the prediction's shape (4, 2)"),
    (lambda b: xn.BCEWithLogitsLoss(pos_weight=[1.0, 2.0], dtype="float64")(f32(b, 4, 2), f32(b, 4, 2)), TypeError,
     "BCEWithLogitsLoss has a float64 pos_weight but float32 prediction; move the loss with .to(dtype='float32')"),
    (lambda b: xn.MSELoss()(f32(b, 4, 1), f32(b, 4)), ValueError,
     "MSELoss expected target of shape (4, 1) (the prediction's), got (4,)"),
    (lambda b: xn.BCEWithLogitsLoss()(f32(b, 4), labels(b, [0, 1, 1, 0])), TypeError,
     "BCEWithLogitsLoss expected a floating-point (float32) target, got int64"),
    (lambda b: xn.MSELoss()(f32(b, 4), b.asarray(np.ones(4), dtype="float64")), TypeError,
     "MSELoss expected a float32 target to match the prediction, got float64"),
    (lambda b: xn.MSELoss()(labels(b, [1, 2]), labels(b, [1, 2])), TypeError,
     "MSELoss expected a floating-point prediction, got int64"),
    (lambda b: xn.MSELoss()(f32(b, 2), [1.0, 2.0]), TypeError,
     "MSELoss expected its target to be an array (numpy, torch, cupy or array_api_strict), got list"),
])
def test_bad_inputs(backend, call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call(backend)


def _other_place(be):
    for name in ("array_api_strict:device1", "numpy", "array_api_strict"):
        other = backends.get(name)
        if other is not be:
            return other


def test_target_or_dy_on_another_place(backend):
    other = _other_place(backend)
    with pytest.raises(ValueError, match=re.escape(f"CrossEntropyLoss got its target on {other.label} but the logits on {backend.label}")):
        xn.CrossEntropyLoss()(f32(backend, 2, 3), other.asarray(np.array([1, 2])))
    loss = xn.MSELoss()
    loss(f32(backend, 2), f32(backend, 2))
    with pytest.raises(ValueError, match=re.escape(f"MSELoss.backward got dy on {other.label} but its output is on {backend.label}")):
        loss.backward(other.asarray(1.0, dtype="float32"))


@pytest.mark.parametrize("make, shape, dy, error, message", [
    (lambda: xn.MSELoss("none"), (4, 2), lambda b: f32(b, 4), ValueError,
     "MSELoss.backward expected dy of shape (4, 2) (its output's, reduction='none'), got (4,)"),
    (lambda: xn.MSELoss("none"), (4, 2), lambda b: 1.0, ValueError,
     "MSELoss.backward expected dy of shape (4, 2) (its output's, reduction='none'), got the number 1.0"),
    (lambda: xn.MSELoss(), (4, 2), lambda b: f32(b, 3), ValueError,
     "MSELoss.backward expected dy of shape () (its output's, reduction='mean'), got (3,)"),
    (lambda: xn.MSELoss("sum"), (4,), lambda b: b.asarray(1.0, dtype="float64"), TypeError,
     "MSELoss.backward expected dy of dtype float32 (its output's), got float64"),
    (lambda: xn.MSELoss(), (4,), lambda b: "1", TypeError,
     "MSELoss.backward expected dy to be a number or an array, got str"),
    (lambda: xn.MSELoss(), (4,), lambda b: True, TypeError,
     "MSELoss.backward expected dy to be a number or an array, got bool"),
])
def test_bad_upstream_gradient(backend, make, shape, dy, error, message):
    loss = make()
    loss(f32(backend, *shape), f32(backend, *shape))
    with pytest.raises(error, match=re.escape(message)):
        loss.backward(dy(backend))


def test_cross_entropy_backward_dy_shape_for_index_targets(backend):
    loss = xn.CrossEntropyLoss(reduction="none")
    loss(f32(backend, 2, 3, 5), labels(backend, np.zeros((2, 5), dtype=int)))
    with pytest.raises(ValueError, match=re.escape("CrossEntropyLoss.backward expected dy of shape (2, 5) (its output's, reduction='none'), got (2, 3, 5)")):
        loss.backward(f32(backend, 2, 3, 5))
