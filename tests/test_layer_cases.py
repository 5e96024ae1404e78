"""Every case of tests/layer_cases.py, on every backend: a float64 gradcheck, parity with torch.nn
in float64 and float32 (outputs, every input and parameter gradient, buffers after the forward,
same weights through the state dict), a spec round trip, and the error a bad input raises.
And the table itself must cover every exported layer, loss and container."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.nets import spec as spec_mod
from xpnet.testing import _tree as tree, gradcheck
from tests.conftest import BACKEND_PARAMS, host
from tests.layer_cases import CASES, build, covered_classes, inputs_to

TOL = {"float64": 1e-10}

BY_ID = {c.id: c for c in CASES}
CASE_PARAMS = [pytest.param(c, id=c.id) for c in CASES]
BAD_PARAMS = [pytest.param(c, id=c.id) for c in CASES if c.bad is not None]


def test_case_table_is_well_formed():
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids), sorted({i for i in ids if ids.count(i) > 1})
    for c in CASES:
        if c.bad is not None:
            kind, pattern = c.error
            assert issubclass(kind, Exception) and pattern, f"{c.id}: a bad input needs an exception type and a regex"


def test_every_exported_layer_and_loss_has_a_case():
    have = {c.cls for c in CASES}
    missing = sorted(cls.__name__ for cls in covered_classes() if cls not in have)
    assert not missing, f"tests/layer_cases.py has no case for {', '.join(missing)}: add one"


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_case_builds_its_class(case):
    layer = case.make(backends.get("numpy"), "float64")
    assert type(layer) is case.cls


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_gradcheck(backend, case):
    layer = build(case, backend, "float64")
    draw = case.grad_inputs or case.inputs
    inputs = inputs_to(backend, draw(np.random.default_rng(case.seed())), "float64")
    assert gradcheck(layer, *inputs, seed=case.seed())


def _close(ours, theirs, tol, what):
    a = host(ours)
    b = theirs.detach().cpu().numpy()
    assert a.shape == b.shape, f"{what}: shape {a.shape}, torch's {b.shape}"
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype}, torch's {b.dtype}"
    if not np.issubdtype(b.dtype, np.floating):
        np.testing.assert_array_equal(a, b, err_msg=what)
        return
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-3)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale, err_msg=what)


def _twin(torch, case, layer, dtype):
    """The torch module, with the layer's weights and buffers, mode and frozen parameters."""
    if case.torch is None:
        module = xn.to_torch(layer)
    else:
        module = case.torch(torch.nn)
    module.to(getattr(torch, dtype))
    module.load_state_dict({k: torch.from_numpy(host(v)) for k, v in layer.state_dict().items()})
    module.train(layer.training)
    for name, p in layer.named_parameters():
        module.get_parameter(name).requires_grad_(p.requires_grad)
    return module


# strict's default device is left out: device1 checks everything it does, and more
PARITY_PLACES = [p for p in BACKEND_PARAMS if p.id != "array_api_strict"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASE_PARAMS)
@pytest.mark.parametrize("place", PARITY_PLACES)
def test_torch_parity(torch, place, case, dtype):
    if case.parity:
        pytest.skip(case.parity)
    backend = backends.get(place)
    with backends.use(backend):
        _parity(torch, case, backend, dtype)


def _grad_leaves(g, shape):
    """One gradient per leaf of an input of tree ``shape`` (a None for a tuple: None for each)."""
    if g is None:
        return [None] * len(tree.paths(shape))
    return tree.flatten(g)[0] if isinstance(shape, tuple) else [g]


def _needs_grad(t):
    return getattr(t, "requires_grad", False)


def _torch_inputs(torch, arrays, dtype):
    """The case's numpy inputs as torch tensors (float ones in ``dtype``, requiring grad), with
    tuples and constants kept."""
    def one(a):
        if isinstance(a, tuple):
            return tuple(one(e) for e in a)
        if not isinstance(a, (np.ndarray, np.generic)):  # None, a flag, a number
            return a
        t = torch.from_numpy(a.astype(dtype) if a.dtype == np.float64 else a)
        return t.requires_grad_(True) if t.is_floating_point() else t
    return tuple(one(a) for a in arrays)


def _parity(torch, case, backend, dtype):
    tol = TOL.get(dtype, case.tol32)
    layer = build(case, backend, dtype)
    module = _twin(torch, case, layer, dtype)
    rng = np.random.default_rng(case.seed())
    arrays = case.inputs(rng)
    xs = inputs_to(backend, arrays, dtype)
    tin = _torch_inputs(torch, arrays, dtype)
    ts, in_shape = tree.flatten(tin)
    out = layer(*xs)
    tout = module(*tin)
    ys, out_shape = tree.flatten(out)
    tys, tshape = tree.flatten(tout)
    assert out_shape == tshape, f"outputs shaped {out_shape}, torch's {tshape}"
    for k, (y, ty) in enumerate(zip(ys, tys)):
        assert (y is None) == (ty is None), f"output {k}: {y is None and 'None' or 'an array'}, torch's {ty is None and 'None' or 'a tensor'}"
        if y is not None:
            _close(y, ty, tol, f"output {k}")

    is_loss = isinstance(layer, xn.Loss)
    cts, tcts, touts = [], [], []
    for y, ty in zip(ys, tys):
        if ty is None or not ty.is_floating_point():
            cts.append(None)
            continue
        w = np.asarray(rng.standard_normal(tuple(ty.shape))).astype(dtype)
        cts.append(float(w) if is_loss and w.ndim == 0 else backends.backend_of(y).asarray(w))
        tcts.append(torch.from_numpy(w))
        touts.append(ty)
    cts = tree.unflatten(out_shape, cts)
    if not isinstance(out_shape, tuple):
        cts = (cts,)
    grads = layer.backward(*cts, target_grad=True) if is_loss else layer.backward(*cts)
    if len(xs) == 1 and not is_loss:
        grads = (grads,)
    assert isinstance(grads, tuple) and len(grads) == len(xs), f"backward gave {grads!r:.80} for {len(xs)} inputs"
    grads = [leaf for g, s in zip(grads, in_shape) for leaf in _grad_leaves(g, s)]
    tparams = dict(module.named_parameters())
    trained = [(n, p) for n, p in layer.named_parameters() if p.requires_grad]
    wrt = [t for t in ts if _needs_grad(t)] + [tparams[n] for n, _ in trained]
    tgrads = list(torch.autograd.grad(touts, wrt, tcts, allow_unused=True))
    tgrads = [torch.zeros_like(w) if g is None else g for g, w in zip(tgrads, wrt)]
    for i, (g, t) in enumerate(zip(grads, ts)):
        if not _needs_grad(t):
            assert g is None, f"input {i} ({getattr(t, 'dtype', t)!r}) must get no gradient"
            continue
        assert g is not None, f"input {i}: no gradient"
        _close(g, tgrads.pop(0), tol, f"gradient of input {i}")
    for (name, p), tg in zip(trained, tgrads):
        assert p.grad is not None, f"{name}: no gradient"
        _close(p.grad, tg, tol, f"gradient of {name}")
    for name, p in layer.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, f"{name} is frozen but got a gradient"
    tstate = module.state_dict()
    for name, v in layer.state_dict().items():
        _close(v, tstate[name], tol, f"{name} after the forward")


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_spec_round_trip(case):
    layer = case.make(backends.get("numpy"), "float64")
    spec = spec_mod.layer_spec(layer)
    back = spec_mod.build(json.loads(json.dumps(spec)), backend="numpy", dtype="float64")
    assert type(back) is type(layer)
    assert repr(back) == repr(layer)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in back.state_dict().items()} == shapes
    assert spec_mod.layer_spec(back) == spec


@pytest.mark.parametrize("case", BAD_PARAMS)
def test_bad_input_raises(backend, case):
    layer = build(case, backend, "float64")
    bad = inputs_to(backend, case.bad(np.random.default_rng(case.seed())), "float64")
    kind, pattern = case.error
    with pytest.raises(kind, match=pattern):
        layer(*bad)
