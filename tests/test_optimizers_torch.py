"""Adam, AdamW, RMSprop, the lr schedules and clip_grad_norm against PyTorch, on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet import nets
from tests.conftest import host

SHAPES = [(3, 4), (5,)]

CASES = [
    ("Adam", {}), ("Adam", {"amsgrad": True}), ("Adam", {"weight_decay": 0.05}),
    ("Adam", {"betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.01, "amsgrad": True, "lr": 0.01}),
    ("AdamW", {}), ("AdamW", {"weight_decay": 0.1, "lr": 0.01}), ("AdamW", {"amsgrad": True, "weight_decay": 0.05}),
    ("RMSprop", {}), ("RMSprop", {"momentum": 0.9}), ("RMSprop", {"centered": True}),
    ("RMSprop", {"weight_decay": 0.02}), ("RMSprop", {"momentum": 0.5, "centered": True, "weight_decay": 0.01, "alpha": 0.9}),
]


def _data(n_steps, seed=0):
    rng = np.random.default_rng(seed)
    w0 = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(n_steps)]
    return w0, grads


def _xp_params(backend, w0, dtype):
    return [xn.Parameter(backend.asarray(w, dtype=dtype)) for w in w0]


def _run(opt, params, backend, grads, dtype):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = backend.asarray(g, dtype=dtype)
        opt.step()


def _lockstep(backend, torch, name, opts, dtype, seed, rtol, atol):
    """20 steps of xpnet's and torch's optimizer on the same gradients; parameters compared after each."""
    w0, grads = _data(20, seed=seed)
    params = _xp_params(backend, w0, dtype)
    opt = getattr(nets, name)(params, **opts)
    tdt = getattr(torch, dtype)
    tparams = [torch.tensor(w, dtype=tdt, requires_grad=True) for w in w0]
    topt = getattr(torch.optim, name)(tparams, **opts)
    for gs in grads:
        for p, tp, g in zip(params, tparams, gs):
            p.grad = backend.asarray(g, dtype=dtype)
            tp.grad = torch.tensor(g, dtype=tdt)
        opt.step()
        topt.step()
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(host(p.data), tp.detach().numpy(), rtol=rtol, atol=atol)
    for p in params:
        assert backend.dtype_name(p.data.dtype) == dtype
    for k, v in opt.state[0].items():
        if not isinstance(v, int):
            assert backend.dtype_name(v.dtype) == dtype, k


@pytest.mark.parametrize("name,opts", CASES, ids=lambda v: str(v))
def test_matches_torch_every_step(backend, torch, name, opts):
    _lockstep(backend, torch, name, opts, "float64", 0, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name,opts", [("Adam", {"amsgrad": True}), ("AdamW", {}), ("RMSprop", {"momentum": 0.9, "centered": True})])
def test_float32_matches_torch(backend, torch, name, opts):
    _lockstep(backend, torch, name, opts, "float32", 3, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,opts", [("Adam", {"amsgrad": True, "weight_decay": 0.01}), ("AdamW", {}),
                                       ("RMSprop", {"momentum": 0.9, "centered": True})], ids=str)
def test_state_dict_round_trip_resumes_identically(backend, name, opts):
    w0, grads = _data(8, seed=5)
    cls = getattr(nets, name)
    p1 = _xp_params(backend, w0, "float64")
    _run(cls(p1, **opts), p1, backend, grads, "float64")

    p2 = _xp_params(backend, w0, "float64")
    o2 = cls(p2, **opts)
    _run(o2, p2, backend, grads[:3], "float64")
    sd = o2.state_dict()
    sd = {"state": {i: {k: (v if isinstance(v, int) else backend.to_numpy(v)) for k, v in st.items()}
                    for i, st in sd["state"].items()}, "param_groups": sd["param_groups"]}
    assert all(st["step"] == 3 and type(st["step"]) is int for st in sd["state"].values())
    o3 = cls(p2, lr=0.5)
    o3.load_state_dict(sd)
    assert o3.lr == o2.lr and type(o3.state[0]["step"]) is int
    _run(o3, p2, backend, grads[3:], "float64")
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(host(a.data), host(b.data))


def test_step_rebinds_and_never_mutates(backend):
    for cls in (nets.Adam, nets.AdamW, nets.RMSprop):
        p = xn.Parameter(backend.asarray(np.ones((2, 2)), dtype="float32"))
        old = p.data
        g = backend.asarray(np.ones((2, 2)), dtype="float32")
        p.grad = g
        kw = {"momentum": 0.9, "centered": True} if cls is nets.RMSprop else {"amsgrad": True, "weight_decay": 0.1}
        cls([p], **kw).step()
        assert p.data is not old
        np.testing.assert_array_equal(host(old), np.ones((2, 2)))
        np.testing.assert_array_equal(host(g), np.ones((2, 2)))


@pytest.mark.parametrize("call,match", [
    (lambda ps: nets.Adam(ps, lr=-1e-3), "Adam: lr must be >= 0"),
    (lambda ps: nets.Adam(ps, betas=(1.0, 0.9)), r"Adam: betas\[0\] must be in \[0, 1\)"),
    (lambda ps: nets.AdamW(ps, betas=(0.9, -0.1)), r"AdamW: betas\[1\] must be in \[0, 1\)"),
    (lambda ps: nets.Adam(ps, betas=0.9), "Adam: betas must be a pair"),
    (lambda ps: nets.AdamW(ps, eps=-1e-8), "AdamW: eps must be >= 0"),
    (lambda ps: nets.Adam(ps, weight_decay=-1), "Adam: weight_decay must be >= 0"),
    (lambda ps: nets.RMSprop(ps, lr=-0.1), "RMSprop: lr must be >= 0"),
    (lambda ps: nets.RMSprop(ps, alpha=-0.5), "RMSprop: alpha must be >= 0"),
    (lambda ps: nets.RMSprop(ps, momentum=-0.9), "RMSprop: momentum must be >= 0"),
    (lambda ps: nets.RMSprop(ps, eps="1e-8"), "RMSprop: eps must be a real number"),
])
def test_invalid_hyperparameters_are_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call([xn.Parameter(xn.backends.get("numpy").asarray(np.zeros(2), dtype="float32"))])


def test_repr_and_defaults():
    ps = xn.Linear(2, 2).parameters()
    assert nets.AdamW(ps).weight_decay == 0.01 and nets.Adam(ps).weight_decay == 0.0
    assert repr(nets.Adam(ps)) == "Adam(2 tensors, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False)"
    assert nets.RMSprop(ps).lr == 0.01 and nets.RMSprop(ps).alpha == 0.99


# -- schedules ------------------------------------------------------------------------------

SCHEDULES = [
    ("StepLR", {"step_size": 7}, {"step_size": 7}),
    ("StepLR", {"step_size": 3, "gamma": 0.5}, {"step_size": 3, "gamma": 0.5}),
    ("CosineAnnealingLR", {"T_max": 20}, {"T_max": 20}),
    ("CosineAnnealingLR", {"T_max": 12, "eta_min": 1e-3}, {"T_max": 12, "eta_min": 1e-3}),
    ("LinearWarmup", {"warmup_steps": 10}, {"total_iters": 10}),
    ("LinearWarmup", {"warmup_steps": 5, "start_factor": 0.01}, {"total_iters": 5, "start_factor": 0.01}),
    ("OneCycleLR", {"max_lr": 0.5, "total_steps": 50}, {"max_lr": 0.5, "total_steps": 50}),
    ("OneCycleLR", {"max_lr": 0.2, "total_steps": 50, "anneal_strategy": "linear", "pct_start": 0.25},
     {"max_lr": 0.2, "total_steps": 50, "anneal_strategy": "linear", "pct_start": 0.25}),
    ("OneCycleLR", {"max_lr": 1.0, "total_steps": 50, "three_phase": True, "div_factor": 10, "final_div_factor": 100},
     {"max_lr": 1.0, "total_steps": 50, "three_phase": True, "div_factor": 10, "final_div_factor": 100}),
]


def _lr_opts(name, opts):
    return dict(opts, cycle_momentum=False) if name == "OneCycleLR" else opts


def _sgd():
    return xn.SGD([xn.Parameter(xn.backends.get("numpy").asarray(np.zeros(2), dtype="float64"))], lr=0.1)


@pytest.mark.parametrize("name,opts,topts", SCHEDULES, ids=lambda v: str(v))
def test_schedule_matches_torch(torch, name, opts, topts):
    opt = _sgd()
    sched = getattr(nets, name)(opt, **opts)
    topt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    tname = "LinearLR" if name == "LinearWarmup" else name
    tsched = getattr(torch.optim.lr_scheduler, tname)(topt, **_lr_opts(name, topts))
    n = 50 if name != "OneCycleLR" else opts["total_steps"] - 1
    for _ in range(n + 1):
        expected = tsched.get_last_lr()[0]
        assert math.isclose(sched.get_last_lr(), expected, rel_tol=1e-12, abs_tol=1e-15)
        assert opt.lr == sched.get_last_lr()
        topt.step()
        sched.step()
        tsched.step()


def test_schedule_state_dict_round_trip():
    opt = _sgd()
    a = nets.CosineAnnealingLR(opt, T_max=10, eta_min=0.01)
    for _ in range(4):
        a.step()
    sd = a.state_dict()
    opt2 = _sgd()
    opt2.lr = opt.lr
    b = nets.CosineAnnealingLR(opt2, T_max=3)
    b.load_state_dict(sd)
    for _ in range(8):
        a.step()
        b.step()
        assert a.get_last_lr() == b.get_last_lr() == opt2.lr


def test_one_cycle_overstep_and_invalid_arguments():
    sched = nets.OneCycleLR(_sgd(), max_lr=0.1, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 4 times"):
        sched.step()
    with pytest.raises(ValueError, match="OneCycleLR: anneal_strategy"):
        nets.OneCycleLR(_sgd(), max_lr=0.1, total_steps=3, anneal_strategy="exp")
    with pytest.raises(ValueError, match="StepLR: step_size must be an int >= 1, got 0"):
        nets.StepLR(_sgd(), step_size=0)
    with pytest.raises(ValueError, match="LinearWarmup: start_factor"):
        nets.LinearWarmup(_sgd(), warmup_steps=3, start_factor=0.0)


# -- clipping -------------------------------------------------------------------------------

@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, math.inf), (2.0, 1.0), (1.5, 3.0)])
def test_clip_grad_norm_matches_torch(backend, torch, max_norm, norm_type):
    rng = np.random.default_rng(7)
    gs = [rng.standard_normal(s) for s in SHAPES]
    params = _xp_params(backend, [np.zeros(s) for s in SHAPES], "float64")
    params.append(xn.Parameter(backend.asarray(np.zeros(3), dtype="float64")))  # no grad: ignored
    old = []
    for p, g in zip(params, gs):
        p.grad = old_g = backend.asarray(g, dtype="float64")
        old.append(old_g)
    tparams = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for tp, g in zip(tparams, gs):
        tp.grad = torch.tensor(g, dtype=torch.float64)
    total = nets.clip_grad_norm(params, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
    assert tuple(total.shape) == ()
    np.testing.assert_allclose(host(total), ttotal.numpy(), rtol=1e-12)
    for p, tp, g, o in zip(params, tparams, gs, old):
        np.testing.assert_allclose(host(p.grad), tp.grad.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(host(o), g)  # rebound, not modified in place
    assert params[-1].grad is None
    if max_norm == 100.0:
        for p, g in zip(params, gs):
            np.testing.assert_array_equal(host(p.grad), g)


def test_clip_grad_norm_float32_keeps_dtype(backend):
    p = xn.Parameter(backend.asarray(np.zeros(4), dtype="float32"))
    p.grad = backend.asarray(np.full(4, 3.0), dtype="float32")
    total = nets.clip_grad_norm([p], 1.0)
    assert backend.dtype_name(p.grad.dtype) == "float32"
    np.testing.assert_allclose(host(total), 6.0, rtol=1e-6)
    np.testing.assert_allclose(host(p.grad), np.full(4, 0.5), rtol=1e-5)
