"""PyTorch's own test samples (``torch.testing._internal.common_modules.module_db``) run through
an xpnet layer and its ``torch.nn`` twin: output, input gradient, every parameter gradient and
every buffer after the forward (running statistics) must match in float64.

``check_module_samples(backend, torch, "BatchNorm1d", make, training)`` returns how many samples
it compared; ``make(*args, **kwargs)`` builds the xpnet layer from a sample's constructor arguments.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from tests.conftest import host

TOL64 = dict(rtol=1e-10, atol=1e-12)


@functools.lru_cache(maxsize=None)
def _module_info(name):
    pytest.importorskip("expecttest", reason="module_db needs expecttest (pip install expecttest)")
    from torch.testing._internal.common_modules import module_db

    found = [m for m in module_db if m.module_cls.__name__ == name]
    assert found, f"module_db has no samples for torch.nn.{name}"
    return found[0]


def _same_state(torch, ours, theirs, seed):
    """Random non-trivial floating state in torch (variances and weights of norms kept positive),
    loaded into ours; integer buffers (num_batches_tracked) are kept."""
    rng = np.random.default_rng(seed)
    sd = {}
    for k, v in theirs.state_dict().items():
        if not v.is_floating_point():
            sd[k] = v.clone()
        elif k.endswith("running_var"):
            sd[k] = torch.from_numpy(rng.uniform(0.5, 2.0, size=tuple(v.shape)))
        else:
            sd[k] = torch.from_numpy(rng.standard_normal(tuple(v.shape)))
    theirs.load_state_dict(sd)
    ours.load_state_dict(sd)


def _close(ours, theirs, what):
    a = host(ours)
    b = theirs.detach().cpu().numpy()
    assert a.shape == b.shape, f"{what}: shape {a.shape} != torch {b.shape}"
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != torch {b.dtype}"
    np.testing.assert_allclose(a, b, err_msg=what, **TOL64)


def check_module_samples(backend, torch, name, make, training):
    """Compare every module_db sample of ``torch.nn.<name>`` (in ``training`` or eval mode); returns the count."""
    info = _module_info(name)
    f64 = torch.float64
    count = 0
    for i, s in enumerate(info.module_inputs_func(info, device="cpu", dtype=f64, requires_grad=True, training=training)):
        what = f"{name} sample {i} {s.desc!r} ({'train' if training else 'eval'})"
        args, kwargs = s.constructor_input.args, s.constructor_input.kwargs
        theirs = info.module_cls(*args, **kwargs).to(f64).train(training)
        ours = make(*args, **kwargs).train(training)
        if theirs.state_dict():
            _same_state(torch, ours, theirs, seed=i)
        assert s.forward_input.kwargs == {}, what
        raw = [t.detach() for t in s.forward_input.args]
        xs = [backend.asarray(t, dtype="float64" if t.is_floating_point() else "int64") for t in raw]
        xts = [t.clone().requires_grad_(t.is_floating_point()) for t in raw]  # clone keeps the strides

        y = ours(*xs)
        yt = theirs(*xts)
        assert backend.owns(y), f"{what}: output is a {type(y).__name__}, not an array of {backend.label}"
        _close(y, yt, f"{what}: output")
        tsd = theirs.state_dict()
        for k, v in ours.state_dict().items():  # buffers after the forward: the running statistics
            if tsd[k].is_floating_point():
                _close(v, tsd[k], f"{what}: {k} after forward")
            else:
                assert int(host(v)) == int(tsd[k]), f"{what}: {k} {int(host(v))} != torch {int(tsd[k])}"

        g = np.random.default_rng(100 + i).standard_normal(tuple(yt.shape))
        dx = ours.backward(backend.asarray(g, dtype="float64"))
        wrt = [t for t in xts if t.requires_grad]
        tparams = [(n, p) for n, p in theirs.named_parameters()]
        grads = torch.autograd.grad(yt, wrt + [p for _, p in tparams], torch.from_numpy(g), allow_unused=True)
        if wrt:
            assert dx is not None, f"{what}: no input gradient"
            assert backend.owns(dx), f"{what}: dx is a {type(dx).__name__}, not an array of {backend.label}"
            _close(dx, grads[0], f"{what}: dx")
        else:
            assert dx is None, f"{what}: integer inputs have no gradient"
        ours_params = dict(ours.named_parameters())
        assert set(ours_params) == {n for n, _ in tparams}, what
        for (n, _), gt in zip(tparams, grads[len(wrt):]):
            _close(ours_params[n].grad, gt, f"{what}: grad of {n}")
        assert ours.pending == 0, what
        count += 1
    return count
