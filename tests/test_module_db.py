"""The yardstick: PyTorch's own module test samples (``torch.testing._internal.common_modules.module_db``)
for every torch.nn module type that xpnet has under the same name, each sample in training and in
eval mode, in float64, on numpy, on array_api_strict's simulated second device (the strictest:
it rejects any array made without ``device=``), on torch CPU, and on CuPy and torch CUDA where a
GPU is usable (skipped with the reason elsewhere; ``XPNET_TEST_BACKENDS`` selects, as everywhere).
This file is the one place that runs module_db: the per-layer test files do not repeat it.

For each sample: build the torch module and the xpnet layer from the sample's constructor
arguments (tensors become numpy arrays), give both the same random weights and buffers through
the state dict, run both, and compare every output, the input gradients and every parameter
gradient (one random cotangent per float output; torch's through ``torch.autograd.grad``), and
the buffers after the forward (BatchNorm's running statistics). A sample that xpnet refuses
(raises anywhere) fails like a mismatch: the goal is zero of both.

``python tests/test_module_db.py`` prints the counts (``-v``: every failing sample, first line).
"""

from __future__ import annotations

import functools
import inspect
import pathlib
import sys
import zlib

if __name__ == "__main__":  # run as a script from anywhere: the repository on the path
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.testing import _tree as tree
from tests.conftest import BACKEND_PARAMS

RTOL = 1e-10
MODES = (("train", True), ("eval", False))


class Refused(Exception):
    """xpnet raised on a sample torch accepts."""


class Mismatch(Exception):
    """xpnet and torch disagree on a sample."""


def _missing():
    """Why module_db cannot be used here, or None."""
    for name in ("torch", "expecttest"):
        try:
            __import__(name)
        except ImportError as e:
            return f"{name} is not installed ({e}); module_db needs torch and expecttest (pip install expecttest)"
    return None


@functools.lru_cache(maxsize=None)
def module_infos():
    """``{name: ModuleInfo}`` for every module_db type that xpnet.layers or xpnet.nets has by name."""
    from torch.testing._internal.common_modules import module_db

    out = {}
    for m in module_db:
        name = m.module_cls.__name__
        if xpnet_class(name) is not None and name not in out:
            out[name] = m
    return out


def xpnet_class(name):
    for mod in (xn.layers, xn.nets):
        obj = getattr(mod, name, None)
        if isinstance(obj, type) and issubclass(obj, (xn.Layer, xn.Loss)):
            return obj
    return None


@functools.lru_cache(maxsize=None)
def samples(name, training):
    import torch

    m = module_infos()[name]
    return list(m.module_inputs_func(m, device="cpu", dtype=torch.float64, requires_grad=True, training=training))


def sample_ids():
    """``(name, mode, index)`` of every sample."""
    return [(name, mode, i) for name in module_infos() for mode, training in MODES
            for i in range(len(samples(name, training)))]


# -- one sample ---------------------------------------------------------------------------------------

def _to_xpnet(be, v):
    import torch

    if isinstance(v, torch.Tensor):
        return be.asarray(v.detach().cpu().numpy(), copy=True)
    if isinstance(v, torch.nn.Module):  # TransformerEncoder's encoder_layer: xpnet's own, same weights
        return xn.from_torch(v, backend=be, dtype="float64")
    if isinstance(v, (list, tuple)):
        return type(v)(_to_xpnet(be, e) for e in v)
    if isinstance(v, dict):
        return {k: _to_xpnet(be, e) for k, e in v.items()}
    return v


def _host(x):
    return backends.to_numpy(x)


def _compare(ours, theirs, what):
    try:
        a = _host(ours)
    except TypeError:
        raise Mismatch(f"{what}: xpnet gives a {type(ours).__module__}.{type(ours).__name__}, not an array") from None
    b = theirs.detach().cpu().numpy()
    if a.shape != b.shape:
        raise Mismatch(f"{what}: shape {a.shape}, torch's {b.shape}")
    if a.dtype != b.dtype:
        raise Mismatch(f"{what}: dtype {a.dtype}, torch's {b.dtype}")
    if not np.issubdtype(b.dtype, np.floating):
        if not np.array_equal(a, b):
            raise Mismatch(f"{what}: {int(np.sum(a != b))} of {a.size} values differ")
        return
    finite = np.abs(b[np.isfinite(b)])
    scale = max(float(np.max(finite, initial=0.0)), 1e-2)
    bad = ~np.isclose(a, b, rtol=RTOL, atol=RTOL * scale, equal_nan=True)
    if np.any(bad):
        gap = float(np.max(np.abs(a - b)[bad]))
        raise Mismatch(f"{what}: {int(bad.sum())} of {a.size} values differ (max gap {gap:.3g}, scale {scale:.3g})")


def _same_state(torch, module, rng):
    """Random float weights and buffers (variances positive), integer buffers kept: {name: tensor}."""
    state = {}
    for k, v in module.state_dict().items():
        if not v.is_floating_point():
            state[k] = v.clone()
        elif k.endswith("running_var"):
            state[k] = torch.from_numpy(rng.uniform(0.5, 2.0, size=tuple(v.shape)))
        elif k.endswith(("weight", "bias", "running_mean")) and not isinstance(module, torch.nn.modules.loss._Loss):
            state[k] = torch.from_numpy(np.asarray(rng.standard_normal(tuple(v.shape))))
        else:
            state[k] = v.clone()  # a loss's class weights are the sample's
    module.load_state_dict(state)
    return state


def _positional(module, args, kwargs):
    """The sample's forward arguments as one positional list (``Linear(input=x)`` -> ``[x]``)."""
    if not kwargs:
        return list(args)
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    bound.apply_defaults()
    if bound.kwargs:
        raise Refused(f"keyword-only forward arguments {sorted(bound.kwargs)} have no xpnet equivalent")
    return list(bound.args)


def check_sample(name, mode, index, spec="numpy"):
    """Compare one sample on backend ``spec``; raises Refused or Mismatch (first line: what),
    returns None when all match."""
    import torch

    training = dict(MODES)[mode]
    sample = samples(name, training)[index]
    info = module_infos()[name]
    be = backends.get(spec)
    rng = np.random.default_rng(zlib.crc32(f"{name}-{index}-{mode}".encode()))
    cargs, ckwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    module = info.module_cls(*cargs, **ckwargs).to(torch.float64).train(training)
    targs = _positional(module, sample.forward_input.args, sample.forward_input.kwargs)
    if isinstance(module, torch.nn.modules.lazy.LazyModuleMixin):  # its parameters take shape in a first forward
        with torch.no_grad():
            module(*targs)
    state = _same_state(torch, module, rng)

    try:
        with backends.use(be):
            layer = xpnet_class(name)(*_to_xpnet(be, cargs), **_to_xpnet(be, ckwargs)).to(be, "float64")
        layer.train(training)
        layer.load_state_dict({k: v.detach().numpy() for k, v in state.items()})
        xargs = [_to_xpnet(be, a) for a in targs]
        ys = layer(*xargs)
    except Exception as e:
        raise Refused(f"{type(e).__name__}: {e}") from e
    touts = module(*targs)
    ys, yshape = tree.flatten(ys)
    touts, tshape = tree.flatten(touts)
    if yshape != tshape:
        raise Mismatch(f"outputs shaped {_shape_str(yshape)}, torch's {_shape_str(tshape)}")
    for k, (y, t) in enumerate(zip(ys, touts)):
        if (y is None) != (t is None):
            raise Mismatch(f"output {k}: {'None' if y is None else 'an array'}, torch gives {'None' if t is None else 'a tensor'}")
        if y is not None:
            _compare(y, t, f"output {k}")
    ours = layer.state_dict()
    for k, v in module.state_dict().items():
        if k not in ours:
            raise Mismatch(f"state dict: xpnet has no {k!r}")
        _compare(ours[k], v, f"{k} after the forward")

    is_loss = isinstance(layer, xn.Loss)
    cts, tcts, used = [], [], []
    for y, t in zip(ys, touts):
        if t is None or not (t.is_floating_point() and t.requires_grad):
            cts.append(None)
            continue
        w = np.asarray(rng.standard_normal(tuple(t.shape)))
        cts.append(float(w) if is_loss and w.ndim == 0 else be.asarray(w))
        tcts.append(torch.from_numpy(w))
        used.append(t)
    cts = tree.unflatten(yshape, cts)
    cts = cts if isinstance(yshape, tuple) else (cts,)
    tleaves, in_shape = tree.flatten(tuple(targs))
    tparams = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    wrt_inputs = [i for i, a in enumerate(tleaves) if isinstance(a, torch.Tensor) and a.requires_grad]
    wrt = [tleaves[i] for i in wrt_inputs] + [p for _, p in tparams]
    tgrads = []
    if used and wrt:
        tgrads = [torch.zeros_like(w) if g is None else g
                  for g, w in zip(torch.autograd.grad(used, wrt, tcts, allow_unused=True), wrt)]
    try:
        if is_loss:
            grads = layer.backward(*cts, target_grad=True)
        else:
            grads = layer.backward(*cts)
    except Exception as e:
        raise Refused(f"backward: {type(e).__name__}: {e}") from e
    if not used:
        return
    grads = list(grads) if isinstance(grads, tuple) and (len(xargs) > 1 or is_loss) else [grads]
    if len(grads) != len(xargs):
        raise Mismatch(f"backward returned {len(grads)} input gradients for {len(xargs)} inputs")
    leaves = []
    for i, (g, shape) in enumerate(zip(grads, in_shape)):
        n = len(tree.paths(shape))
        if g is None or not isinstance(shape, tuple):
            leaves += [g] * n if g is None else [g]
        elif not isinstance(g, tuple) or len(tree.flatten(g)[0]) != n:
            raise Mismatch(f"input {i} is a tuple of {n} tensors; xpnet's gradient is {type(g).__name__}")
        else:
            leaves += tree.flatten(g)[0]
    grads = leaves
    for i, tg in zip(wrt_inputs, tgrads):
        # one tensor passed as several inputs (KLDivLoss's scalar samples): torch's gradient is the sum
        same = [k for k in wrt_inputs if tleaves[k] is tleaves[i]]
        if any(grads[k] is None for k in same):
            raise Mismatch(f"input {i}: xpnet gives no gradient, torch does")
        g = grads[same[0]]
        for k in same[1:]:
            g = be.xp.asarray(g + grads[k])  # numpy gives a scalar for 0-d sums
        _compare(g, tg, f"gradient of input {i}" + (f" (the sum over inputs {same}: one tensor)" if len(same) > 1 else ""))
    for i, a in enumerate(tleaves):
        if isinstance(a, torch.Tensor) and not a.is_floating_point() and grads[i] is not None:
            raise Mismatch(f"input {i} ({a.dtype}) must get no gradient")
    for (pname, _), tg in zip(tparams, tgrads[len(wrt_inputs):]):
        g = layer.get_parameter(pname).grad
        if g is None:
            raise Mismatch(f"{pname}: xpnet gives no gradient, torch does")
        _compare(g, tg, f"gradient of {pname}")


def _shape_str(shape):
    return "one output" if shape is None else str(shape).replace("None", "x")


def run_one(name, mode, index, spec="numpy"):
    """``("matched" | "refused" | "mismatched", first line of the problem or "")``."""
    try:
        check_sample(name, mode, index, spec)
    except Refused as e:
        return "refused", str(e).splitlines()[0] if str(e) else "refused"
    except Mismatch as e:
        return "mismatched", str(e).splitlines()[0]
    except Exception as e:  # xpnet raising after the forward (or torch rejecting what xpnet gave)
        return "refused", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return "matched", ""


def summary():
    """Run every sample: ``{"types": [...], "samples": n, "matched": n, "refused": n,
    "mismatched": n, "failures": [(id, status, first line), ...]}``."""
    out = {"types": sorted(module_infos()), "samples": 0, "matched": 0, "refused": 0, "mismatched": 0, "failures": []}
    for name, mode, i in sample_ids():
        status, why = run_one(name, mode, i)
        out["samples"] += 1
        out[status] += 1
        if status != "matched":
            out["failures"].append((f"{name}-{i}-{mode}", status, why))
    return out


# -- the tests ----------------------------------------------------------------------------------------

def _params():
    why = _missing()
    if why:
        return [pytest.param(None, marks=pytest.mark.skip(reason=why), id="module_db-unavailable")]
    return [pytest.param(s, id=f"{s[0]}-{s[2]}-{s[1]}") for s in sample_ids()]


# array_api_strict's default device adds nothing that device1 does not check
BACKENDS = [p for p in BACKEND_PARAMS if p.values[0] != "array_api_strict"]

# numpy runs every sample; the other backends at most this many of a type per mode, evenly spread
# (LinearCrossEntropyLoss has 857 per mode, combinations of the same few code paths)
THIN = 120


def _pairs():
    """``(backend, sample)`` parameters: every sample on numpy, a spread of each large type elsewhere."""
    out = []
    for sample in _params():
        for b in BACKENDS:
            if sample.values[0] is not None and b.values[0] != "numpy":
                name, mode, index = sample.values[0]
                if index % -(-len(samples(name, dict(MODES)[mode])) // THIN):
                    continue
            out.append(pytest.param(b.values[0], sample.values[0], id=f"{sample.id}-{b.id}", marks=b.marks + sample.marks))
    return out


@pytest.mark.parametrize("spec, sample", _pairs())
def test_module_db_sample(sample, spec):
    name, mode, index = sample
    status, why = run_one(name, mode, index, spec)
    if status != "matched":
        desc = samples(name, dict(MODES)[mode])[index].desc
        pytest.fail(f"{status} ({desc or 'no desc'}): {why}", pytrace=False)


def test_module_db_covers_xpnet_types():
    """module_db must still know the types this yardstick was written against."""
    if _missing():
        pytest.skip(_missing())
    assert {"Linear", "Conv2d", "BatchNorm1d", "CrossEntropyLoss"} <= set(module_infos())


if __name__ == "__main__":
    why = _missing()
    if why:
        sys.exit(f"module_db unavailable: {why}")
    s = summary()
    print(f"types: {len(s['types'])} ({', '.join(s['types'])})")
    print(f"samples: {s['samples']}, matched: {s['matched']}, refused: {s['refused']}, mismatched: {s['mismatched']}")
    if "-v" in sys.argv[1:]:
        for sid, status, why in s["failures"]:
            print(f"  {sid}: {status}: {why}")
