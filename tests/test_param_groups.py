"""Parameter groups, frozen and tied parameters, torch-format state dicts, and schedules over
groups: SGD, Adam, AdamW, RMSprop and the lr schedules against torch.optim, on every backend."""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest

import xpnet as xn
from xpnet import nets
from xpnet.nets.optim import build_optimizer
from tests.conftest import host

SHAPES = [(3, 4), (4,), (2, 3), (5,)]  # group 0: the first two, group 1: the last two

GROUP_CASES = [
    ("SGD", {"lr": 0.1, "momentum": 0.9}, [{"lr": 0.05, "weight_decay": 0.01}, {"momentum": 0.5, "dampening": 0.2}]),
    ("SGD", {"lr": 0.1}, [{"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}, {}]),
    ("Adam", {"lr": 0.01}, [{"betas": (0.8, 0.95), "weight_decay": 0.05}, {"lr": 0.002, "amsgrad": True, "eps": 1e-6}]),
    ("AdamW", {"lr": 0.01}, [{"weight_decay": 0.1}, {"lr": 0.05, "betas": (0.5, 0.9), "amsgrad": True}]),
    ("RMSprop", {"lr": 0.01}, [{"momentum": 0.9, "weight_decay": 0.01}, {"alpha": 0.9, "centered": True, "lr": 0.003}]),
]
IDS = [f"{n}-{i}" for i, (n, _, _) in enumerate(GROUP_CASES)]


def _data(n_steps, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes], [[rng.standard_normal(s) for s in shapes] for _ in range(n_steps)]


def _params(backend, w0, dtype="float64"):
    return [xn.Parameter(backend.asarray(w, dtype=dtype)) for w in w0]


def _groups(params, overrides):
    return [{"params": params[:2], **overrides[0]}, {"params": params[2:], **overrides[1]}]


def _torch_twin(torch, name, defaults, overrides, w0):
    tparams = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in w0]
    return tparams, getattr(torch.optim, name)(_groups(tparams, overrides), **defaults)


def _feed(params, tparams, torch, backend, gs, skip=()):
    for i, (p, tp, g) in enumerate(zip(params, tparams, gs)):
        p.grad = None if i in skip else backend.asarray(g, dtype="float64")
        tp.grad = None if i in skip else torch.tensor(g, dtype=torch.float64)


def _close(params, tparams):
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(host(p.data), tp.detach().numpy(), rtol=1e-10, atol=1e-13)


# -- steps over two groups against torch ------------------------------------------------------

@pytest.mark.parametrize("name,defaults,overrides", GROUP_CASES, ids=IDS)
def test_two_groups_match_torch_every_step(backend, torch, name, defaults, overrides):
    w0, grads = _data(12)
    params = _params(backend, w0)
    opt = getattr(nets, name)(_groups(params, overrides), **defaults)
    tparams, topt = _torch_twin(torch, name, defaults, overrides, w0)
    for gs in grads:
        _feed(params, tparams, torch, backend, gs)
        opt.step()
        topt.step()
        _close(params, tparams)
    assert opt.params == params and [g["params"] for g in opt.param_groups] == [params[:2], params[2:]]
    for g, tg in zip(opt.param_groups, topt.param_groups):
        for k, v in g.items():
            if k != "params":
                assert tg[k] == v, k  # every hyperparameter, defaults filled in, as torch's


@pytest.mark.parametrize("name,defaults,overrides", GROUP_CASES, ids=IDS)
def test_frozen_parameter_is_untouched_and_gets_no_state(backend, torch, name, defaults, overrides):
    """Parameter 2 is frozen for 4 steps (its grad even set by hand), then trains: torch sees a
    grad of None for those steps, the same thing for its optimizer."""
    w0, grads = _data(8, seed=1)
    params = _params(backend, w0)
    opt = getattr(nets, name)(_groups(params, overrides), **defaults)
    tparams, topt = _torch_twin(torch, name, defaults, overrides, w0)
    params[2].requires_grad_(False)
    frozen = params[2].data
    for t, gs in enumerate(grads):
        if t == 4:
            params[2].requires_grad_(True)
        _feed(params, tparams, torch, backend, gs, skip={2} if t < 4 else ())
        if t < 4:
            params[2].grad = backend.asarray(gs[2], dtype="float64")  # ignored: requires_grad is False
        opt.step()
        topt.step()
        _close(params, tparams)
        if t < 4:
            assert params[2].data is frozen and opt.state[2] == {}
            assert 2 not in opt.state_dict()["state"]
    assert opt.state[2] or name == "SGD" and not opt.param_groups[1]["momentum"]


@pytest.mark.parametrize("name,kw", [("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
                                     ("Adam", {"lr": 0.01, "amsgrad": True}), ("AdamW", {"lr": 0.01}),
                                     ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5})])
def test_tied_weights_step_once_and_match_torch(backend, torch, name, kw):
    """One Parameter used by two Linear layers: listed once, its summed gradient applied once a step."""
    net = xn.Sequential(xn.Linear(4, 4), xn.Tanh(), xn.Linear(4, 4)).to(backend, "float64")
    net.tie("0.weight", "2.weight")
    tnet = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4)).double()
    tnet[2].weight = tnet[0].weight
    tnet.load_state_dict({k: torch.tensor(host(v)) for k, v in net.state_dict().items()})
    opt = getattr(nets, name)(net, **kw)
    topt = getattr(torch.optim, name)(tnet.parameters(), **kw)
    assert len(opt.params) == 3 == len(list(tnet.parameters()))
    rng = np.random.default_rng(2)
    crit, tcrit = xn.MSELoss(), torch.nn.MSELoss()
    for t in range(5):
        x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
        opt.zero_grad()
        crit(net(backend.asarray(x, dtype="float64")), backend.asarray(y, dtype="float64"))
        net.backward(crit.backward(), input_grad=False)
        opt.step()
        topt.zero_grad()
        tcrit(tnet(torch.tensor(x)), torch.tensor(y)).backward()
        topt.step()
        assert net[0].weight is net[2].weight
        for k, v in net.state_dict().items():
            np.testing.assert_allclose(host(v), tnet.state_dict()[k].numpy(), rtol=1e-10, atol=1e-13, err_msg=k)
        if name != "SGD":
            assert opt.state[0]["step"] == t + 1  # the tied weight: stepped once per step


def test_a_parameter_listed_twice_is_kept_once_with_a_warning(backend):
    net = xn.Sequential(xn.Linear(3, 3), xn.Linear(3, 3)).to(backend, "float64")
    net.tie("0.weight", "1.weight")
    listed = [net[0].weight, net[0].bias, net[1].weight, net[1].bias]
    with pytest.warns(UserWarning, match=r"SGD param group 0 lists some parameters more than once; each is kept once"):
        opt = xn.SGD(listed, lr=0.1)
    assert opt.params == [net[0].weight, net[0].bias, net[1].bias] and len(opt.state) == 3
    w = host(net[0].weight.data)
    net[0].weight.grad = net[0].weight.data * 0.0 + 1.0
    opt.step()
    np.testing.assert_allclose(host(net[0].weight.data), w - 0.1)  # once, not twice
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert xn.SGD(net, lr=0.1).params == net.parameters()  # a Layer lists a tied parameter once


# -- state dicts ----------------------------------------------------------------------------

def _host_sd(backend, sd):
    return {"state": {i: {k: (v if isinstance(v, int) else backend.to_numpy(v)) for k, v in st.items()}
                      for i, st in sd["state"].items()},
            "param_groups": sd["param_groups"]}


@pytest.mark.parametrize("name,defaults,overrides", GROUP_CASES, ids=IDS)
def test_state_dict_has_torchs_structure(backend, torch, name, defaults, overrides):
    w0, grads = _data(3, seed=3)
    params = _params(backend, w0)
    opt = getattr(nets, name)(_groups(params, overrides), **defaults)
    tparams, topt = _torch_twin(torch, name, defaults, overrides, w0)
    for gs in grads:
        _feed(params, tparams, torch, backend, gs, skip={1})
        opt.step()
        topt.step()
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sorted(sd) == sorted(tsd) == ["param_groups", "state"]
    assert len(sd["param_groups"]) == len(tsd["param_groups"]) == 2
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        assert g["params"] == tg["params"]
        assert list(g)[-1] == "params"
        for k, v in g.items():
            assert tg[k] == v, k
    assert sorted(sd["state"]) == sorted(tsd["state"])  # parameter 1 never had a gradient: no state
    for i, st in sd["state"].items():
        assert sorted(st) == sorted(tsd["state"][i])
        for k, v in st.items():
            if k == "step":
                assert type(v) is int and v == int(tsd["state"][i][k])
            else:
                np.testing.assert_allclose(host(v), tsd["state"][i][k].numpy(), rtol=1e-10, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("name,defaults,overrides", GROUP_CASES, ids=IDS)
def test_state_dict_round_trip_with_groups_resumes_identically(backend, name, defaults, overrides):
    w0, grads = _data(7, seed=4)
    cls = getattr(nets, name)
    p1 = _params(backend, w0)
    o1 = cls(_groups(p1, overrides), **defaults)
    for gs in grads:
        for p, g in zip(p1, gs):
            p.grad = backend.asarray(g, dtype="float64")
        o1.step()

    p2 = _params(backend, w0)
    o2 = cls(_groups(p2, overrides), **defaults)
    for gs in grads[:3]:
        for p, g in zip(p2, gs):
            p.grad = backend.asarray(g, dtype="float64")
        o2.step()
    # through JSON, as a checkpoint stores it: string indices, lists for tuples
    sd = _host_sd(backend, o2.state_dict())
    sd = {"state": {str(i): st for i, st in sd["state"].items()},
          "param_groups": json.loads(json.dumps(sd["param_groups"]))}
    o3 = cls([{"params": p2[:2], "lr": 0.5}, {"params": p2[2:], "weight_decay": 0.3}], lr=0.7)
    o3.load_state_dict(sd)
    assert o3.param_groups == o2.param_groups  # hyperparameters restored (betas as a tuple again)
    assert repr(o3) == repr(o2)
    for st3, st2 in zip(o3.state, o2.state):
        assert sorted(st3) == sorted(st2)
        for k, v in st3.items():
            if isinstance(v, int):
                assert type(v) is int and v == st2[k]
            else:
                assert backend.dtype_name(v.dtype) == "float64"
                np.testing.assert_array_equal(host(v), host(st2[k]))
    for gs in grads[3:]:
        for p, g in zip(p2, gs):
            p.grad = backend.asarray(g, dtype="float64")
        o3.step()
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(host(a.data), host(b.data))


def test_loaded_state_is_copied_onto_each_parameters_backend_and_dtype(backend):
    w0, grads = _data(2, seed=5)
    src = _params(xn.backends.get("numpy"), w0)
    o = xn.Adam(src, lr=0.01)
    for gs in grads:
        for p, g in zip(src, gs):
            p.grad = xn.backends.get("numpy").asarray(g, dtype="float64")
        o.step()
    dst = _params(backend, w0, "float32")
    o2 = xn.Adam(dst, lr=0.01)
    o2.load_state_dict(o.state_dict())
    for st in o2.state:
        for k in ("exp_avg", "exp_avg_sq"):
            assert xn.backends.backend_of(st[k]) is backend and backend.dtype_name(st[k].dtype) == "float32"
    before = host(o2.state[0]["exp_avg"])
    o.step()  # the source's buffers change in place: the loaded copies do not
    np.testing.assert_array_equal(host(o2.state[0]["exp_avg"]), before)


@pytest.mark.parametrize("name,kw", [("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
                                     ("Adam", {"lr": 0.01, "amsgrad": True}),
                                     ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True})])
def test_old_one_group_format_loads(backend, name, kw):
    """``{"state": ..., "hyper": {...}}``: what xpnet wrote before parameter groups."""
    w0, grads = _data(6, seed=6)
    cls = getattr(nets, name)
    p1, p2 = _params(backend, w0), _params(backend, w0)
    o1, o2 = cls(p1, **kw), cls(p2, **kw)
    for t, gs in enumerate(grads):
        for p, q, g in zip(p1, p2, gs):
            p.grad = backend.asarray(g, dtype="float64")
            q.grad = backend.asarray(g, dtype="float64")
        o1.step()
        o2.step()
        if t == 1:
            new = _host_sd(backend, o2.state_dict())
            old = {"state": new["state"], "hyper": dict(o2.defaults, betas=[0.9, 0.999]) if name == "Adam" else o2.defaults}
            o2 = cls(p2, lr=0.3)
            o2.load_state_dict(old)
            assert o2.param_groups == [{"params": p2, **o1.defaults}] and o2.lr == kw["lr"]  # lr=0.3 replaced
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(host(a.data), host(b.data))
    two = cls([{"params": p2[:2]}, {"params": p2[2:]}], lr=0.1)
    with pytest.raises(ValueError, match=f"^{name}.load_state_dict: the state dict has 1 parameter groups, "
                                         "this optimizer has 2$"):
        two.load_state_dict({"state": {}, "hyper": {"lr": 0.1}})


def _opt2(backend):
    w0, _ = _data(0)
    ps = _params(backend, w0)
    return ps, xn.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.1}], lr=0.01)


def test_load_state_dict_errors_leave_the_optimizer_unchanged():
    ps, opt = _opt2(xn.backends.get("numpy"))
    good = opt.state_dict()
    before = [dict(g) for g in opt.param_groups]
    bad = [
        ({"state": {}, "param_groups": good["param_groups"][:1]},
         "Adam.load_state_dict: the state dict has 1 parameter groups, this optimizer has 2"),
        ({"state": {}, "param_groups": [good["param_groups"][0], dict(good["param_groups"][1], params=[2])]},
         "Adam.load_state_dict: parameter group 1 has 1 parameters in the state dict, 2 in this optimizer"),
        ({"state": {}, "param_groups": [good["param_groups"][0], dict(good["param_groups"][1], lr=-1.0)]},
         "Adam.load_state_dict: param group 1: lr must be >= 0, got -1.0"),
        ({"state": {}, "param_groups": [good["param_groups"][0], dict(good["param_groups"][1], momentum=0.9)]},
         "Adam.load_state_dict: param group 1: unknown hyperparameter 'momentum'; Adam takes lr, betas, eps, weight_decay, amsgrad"),
        ({"state": {7: {"step": 1}}, "param_groups": good["param_groups"]},
         "Adam.load_state_dict: the state dict has state for parameter 7, which none of its parameter groups lists"),
        ({"state": {1: {"step": 1, "exp_avg": np.zeros(3)}}, "param_groups": [dict(g, lr=0.5) for g in good["param_groups"]]},
         "Adam.load_state_dict: state 'exp_avg' of parameter 1 has shape (3,), the parameter (4,)"),
        ({"weights": {}}, "Adam.load_state_dict: expected a dict with 'state' and 'param_groups', got ['weights']"),
        ([1, 2], "Adam.load_state_dict: expected a dict with 'state' and 'param_groups', got list"),
    ]
    for sd, message in bad:
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            opt.load_state_dict(sd)
        assert opt.param_groups == before and all(st == {} for st in opt.state)


# -- construction, attributes, errors ---------------------------------------------------------

def test_groups_fill_in_defaults_and_attributes_read_group_0():
    ps, opt = _opt2(xn.backends.get("numpy"))
    assert opt.defaults == {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]
    assert all(set(g) == {"params", *opt.defaults} for g in opt.param_groups)
    assert opt.params == ps and len(opt.state) == 4
    assert opt.lr == 0.01 and opt.betas == (0.9, 0.999)
    opt.lr = 0.2  # every group
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2] and opt.defaults["lr"] == 0.01
    opt.param_groups[1]["lr"] = 0.05
    assert opt.lr == 0.2
    opt.betas = [0.5, 0.6]
    assert [g["betas"] for g in opt.param_groups] == [(0.5, 0.6)] * 2
    with pytest.raises(ValueError, match=re.escape("Adam param group 0: lr must be >= 0, got -1")):
        opt.lr = -1
    assert opt.lr == 0.2
    single = xn.SGD(ps, lr=0.1)
    with pytest.raises(ValueError, match=re.escape("SGD: lr must be >= 0, got -1")):
        single.lr = -1
    with pytest.raises(ValueError, match=re.escape("SGD: nesterov momentum requires momentum > 0 and dampening = 0")):
        single.nesterov = True


def test_a_group_may_be_a_layer_and_groups_may_be_added(backend):
    net = xn.Sequential(xn.Linear(2, 3), xn.ReLU(), xn.Linear(3, 1)).to(backend, "float64")
    opt = xn.SGD([{"params": net[0], "lr": 0.01}], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": net[2], "momentum": 0.0})
    assert opt.params == net.parameters()
    assert [(g["lr"], g["momentum"]) for g in opt.param_groups] == [(0.01, 0.9), (0.1, 0.0)]
    for p in net.parameters():
        p.grad = p.data * 0.0 + 1.0
    w2 = host(net[2].weight.data)
    opt.step()
    np.testing.assert_allclose(host(net[2].weight.data), w2 - 0.1)
    assert opt.state[2] == {} and "momentum_buffer" in opt.state[0]


def test_repr_shows_groups():
    ps, opt = _opt2(xn.backends.get("numpy"))
    assert repr(opt) == (
        "Adam(4 tensors in 2 groups; "
        "group 0 (2 tensors): lr=0.01, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False; "
        "group 1 (2 tensors): lr=0.1, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False)")
    assert repr(xn.SGD(ps, lr=0.1)) == "SGD(4 tensors, lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0)"


@pytest.mark.parametrize("name,kw", [("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
                                     ("Adam", {"lr": 2e-3, "betas": (0.8, 0.95), "amsgrad": True}),
                                     ("AdamW", {"betas": (0.85, 0.99), "weight_decay": 0.1}),
                                     ("RMSprop", {"alpha": 0.9, "momentum": 0.5, "centered": True})])
def test_config_and_build_optimizer(name, kw):
    net = xn.Sequential(xn.Linear(3, 4), xn.ReLU(), xn.Linear(4, 2))
    opt = getattr(xn, name)(net, **kw)
    config = opt.config()
    assert config == json.loads(json.dumps(config)) and config["type"] == name
    assert {k: v for k, v in config.items() if k != "type"} == {
        k: list(v) if isinstance(v, tuple) else v for k, v in opt.defaults.items()}
    again = build_optimizer(json.loads(json.dumps(config)), net)
    assert type(again) is type(opt) and again.config() == config and repr(again) == repr(opt)
    groups = build_optimizer(config, [{"params": net[0], "lr": 0.5}, {"params": net[2]}])
    assert [g["lr"] for g in groups.param_groups] == [0.5, opt.lr] and groups.params == net.parameters()


def test_build_optimizer_errors():
    params = xn.Linear(2, 2).parameters()
    with pytest.raises(ValueError, match=r"""^optimizer: expected a spec with "type" one of \['Adam', 'AdamW', 'RMSprop', 'SGD'\], got \{'type': 'Adagrad'\}$"""):
        build_optimizer({"type": "Adagrad"}, params)
    with pytest.raises(ValueError, match=r"^optimizer: expected a spec with \"type\""):
        build_optimizer(["SGD"], params)
    with pytest.raises(ValueError, match=r"^optimizer: bad arguments for SGD: .*unexpected keyword argument 'mom'"):
        build_optimizer({"type": "SGD", "lr": 0.1, "mom": 0.9}, params)
    with pytest.raises(ValueError, match=r"^optimizer: bad arguments for SGD: .*'lr'"):
        build_optimizer({"type": "SGD"}, params)


def _ps(n=3):
    be = xn.backends.get("numpy")
    return [xn.Parameter(be.asarray(np.zeros(2), dtype="float32")) for _ in range(n)]


@pytest.mark.parametrize("make,error,message", [
    (lambda a, b, c: xn.SGD([{"params": [a], "mom": 0.9}], lr=0.1), ValueError,
     "SGD param group 0: unknown hyperparameter 'mom'; SGD takes lr, momentum, dampening, nesterov, weight_decay"),
    (lambda a, b, c: xn.Adam([{"params": [a]}, {"params": [b], "lr": -1}]), ValueError,
     "Adam param group 1: lr must be >= 0, got -1"),
    (lambda a, b, c: xn.AdamW([{"params": [a]}, {"params": [b], "betas": (0.9, 1.0)}]), ValueError,
     "AdamW param group 1: betas[1] must be in [0, 1), got 1.0"),
    (lambda a, b, c: xn.RMSprop([{"params": [a], "alpha": "0.9"}]), ValueError,
     "RMSprop param group 0: alpha must be a real number, got '0.9'"),
    (lambda a, b, c: xn.SGD([{"params": [a]}, {"params": [b], "nesterov": True}], lr=0.1), ValueError,
     "SGD param group 1: nesterov momentum requires momentum > 0 and dampening = 0"),
    (lambda a, b, c: xn.SGD([{"params": [a, b]}, {"params": [c, a]}], lr=0.1), ValueError,
     "SGD: some parameters appear in more than one parameter group (param group 1)"),
    (lambda a, b, c: xn.SGD([{"params": [a]}, {"params": []}], lr=0.1), ValueError,
     "SGD got an empty parameter list in param group 1"),
    (lambda a, b, c: xn.SGD([{"params": [a]}, {"lr": 0.1}], lr=0.1), ValueError,
     "SGD param group 1 has no 'params' key"),
    (lambda a, b, c: xn.SGD([{"params": [a]}, {"params": [b.data]}], lr=0.1), TypeError,
     "SGD expected Parameters, got ndarray at position 0 of param group 1"),
    (lambda a, b, c: xn.SGD([{"params": [a]}, b], lr=0.1), TypeError,
     "SGD expected either Parameters or parameter groups (dicts), got a mix of both"),
    (lambda a, b, c: xn.SGD({"params": [a]}, lr=0.1), TypeError,
     "SGD expected a list of parameter groups, got one dict (pass [group])"),
    (lambda a, b, c: xn.SGD(a, lr=0.1), TypeError,
     "SGD expected an iterable of Parameters, a Layer or a list of parameter groups, got one Parameter (pass [p])"),
    (lambda a, b, c: xn.SGD([{"params": {a, b}}], lr=0.1), TypeError,
     "SGD: parameters must be in an ordered collection (a list), not a set, whose order changes between runs"),
    (lambda a, b, c: xn.SGD([a], lr=0.1).add_param_group([b]), TypeError,
     "SGD: a parameter group must be a dict with 'params', got list"),
    (lambda a, b, c: xn.SGD([a], lr=0.1).add_param_group({"params": [a]}), ValueError,
     "SGD: some parameters appear in more than one parameter group (param group 1)"),
    (lambda a, b, c: xn.SGD([], lr=0.1), ValueError, "SGD got an empty parameter list"),
    (lambda a, b, c: xn.Adam(xn.ReLU()), ValueError, "Adam got an empty parameter list"),
])
def test_group_errors(make, error, message):
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        make(*_ps())


def test_clip_grad_norm_counts_a_tied_parameter_once(backend, torch):
    p, q = (xn.Parameter(backend.asarray(np.zeros(3), dtype="float64")) for _ in range(2))
    g = np.array([3.0, 4.0, 12.0])
    p.grad = backend.asarray(g, dtype="float64")
    total = nets.clip_grad_norm([p, q, p], 1.0)  # q has no grad
    tp = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    tp.grad = torch.tensor(g)
    ttotal = torch.nn.utils.clip_grad_norm_([tp], 1.0)
    np.testing.assert_allclose(host(total), ttotal.numpy(), rtol=1e-12)
    np.testing.assert_allclose(host(p.grad), tp.grad.numpy(), rtol=1e-12)  # scaled once
    assert q.grad is None


# -- schedules over groups ----------------------------------------------------------------------

SCHEDULES = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}, {"step_size": 3, "gamma": 0.5}),
    ("CosineAnnealingLR", {"T_max": 12, "eta_min": 1e-3}, {"T_max": 12, "eta_min": 1e-3}),
    ("LinearWarmup", {"warmup_steps": 5, "start_factor": 0.01}, {"total_iters": 5, "start_factor": 0.01}),
    ("OneCycleLR", {"max_lr": 0.5, "total_steps": 40}, {"max_lr": 0.5, "total_steps": 40}),
    ("OneCycleLR", {"max_lr": [0.5, 0.05], "total_steps": 40, "three_phase": True, "anneal_strategy": "linear"},
     {"max_lr": [0.5, 0.05], "total_steps": 40, "three_phase": True, "anneal_strategy": "linear"}),
]


def _two_group_sgd():
    ps = _ps(2)
    return xn.SGD([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.02}], lr=0.1)


@pytest.mark.parametrize("name,opts,topts", SCHEDULES, ids=lambda v: str(v))
def test_schedule_over_two_groups_matches_torch(torch, name, opts, topts):
    opt = _two_group_sgd()
    sched = getattr(nets, name)(opt, **opts)
    ta, tb = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    topt = torch.optim.SGD([{"params": [ta]}, {"params": [tb], "lr": 0.02}], lr=0.1)
    tname = "LinearLR" if name == "LinearWarmup" else name
    tsched = getattr(torch.optim.lr_scheduler, tname)(
        topt, **(dict(topts, cycle_momentum=False) if name == "OneCycleLR" else topts))
    assert sched.base_lrs == pytest.approx(tsched.base_lrs, rel=1e-15)
    n = 30 if name != "OneCycleLR" else opts["total_steps"] - 1
    for _ in range(n + 1):
        got, expected = sched.get_last_lr(), tsched.get_last_lr()
        assert isinstance(got, list) and len(got) == 2
        for a, b in zip(got, expected):
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
        assert [g["lr"] for g in opt.param_groups] == got
        topt.step()
        sched.step()
        tsched.step()


def test_one_group_schedules_still_report_a_float():
    opt = xn.SGD(_ps(1), lr=0.1)
    sched = nets.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    assert sched.get_last_lr() == 0.05 and opt.lr == 0.05
    assert repr(sched) == "StepLR(last_epoch=1, lr=0.05)"


def test_one_cycle_max_lr_per_group_must_match_the_groups():
    with pytest.raises(ValueError, match=re.escape("OneCycleLR: max_lr must be one number or a list of one per parameter group (2), got [0.1]")):
        nets.OneCycleLR(_two_group_sgd(), max_lr=[0.1], total_steps=10)
    with pytest.raises(ValueError, match=re.escape("OneCycleLR: max_lr[1] must be a real number in (0.0, inf], got -0.1")):
        nets.OneCycleLR(_two_group_sgd(), max_lr=[0.1, -0.1], total_steps=10)
    with pytest.raises(TypeError, match="OneCycleLR expected an xpnet Optimizer, got list"):
        nets.OneCycleLR([], max_lr=[0.1], total_steps=10)


def test_schedule_refuses_an_optimizer_whose_groups_changed():
    opt = xn.SGD(_ps(1), lr=0.1)
    sched = nets.StepLR(opt, step_size=1)
    opt.add_param_group({"params": _ps(1)})
    with pytest.raises(ValueError, match=re.escape("StepLR: the optimizer has 2 parameter groups, this schedule was made for 1")):
        sched.step()


def test_lr_scheduler_callback_restores_every_groups_lr():
    opt = _two_group_sgd()
    cb = xn.LRScheduler(nets.CosineAnnealingLR(opt, T_max=10))
    for _ in range(3):
        cb.on_epoch_end(None, {})
    sd = json.loads(json.dumps(cb.state_dict()))
    opt2 = _two_group_sgd()
    cb2 = xn.LRScheduler(nets.CosineAnnealingLR(opt2, T_max=10))
    cb2.load_state_dict(sd)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert opt2.param_groups[0]["lr"] != opt2.param_groups[1]["lr"]
    for _ in range(4):
        cb.on_epoch_end(None, {})
        cb2.on_epoch_end(None, {})
        assert cb2.schedule.get_last_lr() == cb.schedule.get_last_lr() == [g["lr"] for g in opt2.param_groups]


@pytest.mark.parametrize("name,opts", [("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.01}),
                                       ("OneCycleLR", {"max_lr": 0.4, "total_steps": 20})])
def test_schedule_old_one_group_state_loads(name, opts):
    """The state xpnet wrote before groups: ``base_lr`` and a float ``_last_lr`` (OneCycleLR:
    ``initial_lr``/``max_lr``/``min_lr`` numbers and phases naming them)."""
    a = getattr(nets, name)(xn.SGD(_ps(1), lr=0.1), **opts)
    for _ in range(4):
        a.step()
    sd = json.loads(json.dumps(a.state_dict()))
    old = {k: v for k, v in sd.items() if k not in ("base_lrs", "_last_lr", "initial_lrs", "max_lrs", "min_lrs")}
    old.update(base_lr=sd["base_lrs"][0], _last_lr=sd["_last_lr"][0])
    if name == "OneCycleLR":
        old.update(initial_lr=sd["initial_lrs"][0], max_lr=sd["max_lrs"][0], min_lr=sd["min_lrs"][0],
                   phases=[[end, lo[:-1], hi[:-1]] for end, lo, hi in sd["phases"]])
    opt2 = xn.SGD(_ps(1), lr=0.1)
    b = getattr(nets, name)(opt2, **opts)
    b.load_state_dict(old)
    b.restore_lr()
    assert opt2.lr == a.get_last_lr()
    for _ in range(8):
        a.step()
        b.step()
        assert a.get_last_lr() == b.get_last_lr() == opt2.lr
