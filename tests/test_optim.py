"""SGD: PyTorch's update rule, computed here by hand in numpy, on every backend; rebinding; state."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from tests.conftest import host


def reference_sgd(w, grads, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """The update of torch.optim.SGD, written out in numpy float64."""
    buf = None
    for g in grads:
        g = g + weight_decay * w
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        w = w - lr * g
    return w


@pytest.mark.parametrize("opts", [
    {}, {"momentum": 0.9}, {"momentum": 0.9, "weight_decay": 0.01}, {"momentum": 0.8, "dampening": 0.3},
    {"momentum": 0.9, "nesterov": True, "weight_decay": 0.001}, {"weight_decay": 0.1},
], ids=str)
def test_sgd_matches_the_reference_rule(backend, opts):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(6)]
    p = xn.Parameter(backend.asarray(w0, dtype="float64"))
    opt = xn.SGD([p], lr=0.05, **opts)
    for g in grads:
        p.grad = backend.asarray(g, dtype="float64")
        opt.step()
    np.testing.assert_allclose(host(p.data), reference_sgd(w0, grads, 0.05, **opts), rtol=1e-12, atol=1e-14)


def test_step_rebinds_and_never_mutates(backend):
    p = xn.Parameter(backend.asarray(np.ones((2, 2)), dtype="float32"))
    old = p.data
    p.grad = backend.asarray(np.ones((2, 2)), dtype="float32")
    xn.SGD([p], lr=0.5, momentum=0.9).step()
    assert p.data is not old
    np.testing.assert_array_equal(host(old), np.ones((2, 2)))
    np.testing.assert_allclose(host(p.data), 0.5 * np.ones((2, 2)))
    assert backends.backend_of(p.data) is backend and backend.dtype_name(p.data.dtype) == "float32"


def test_parameters_without_grad_are_skipped(backend):
    a, b = (xn.Parameter(backend.asarray(np.ones(3), dtype="float32")) for _ in range(2))
    a.grad = backend.asarray(np.ones(3), dtype="float32")
    opt = xn.SGD([a, b], lr=0.1, weight_decay=0.5)
    before = b.data
    opt.step()
    assert b.data is before
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_accepts_a_layer_and_lr_can_change(backend):
    net = xn.Sequential(xn.Linear(2, 2))
    opt = xn.SGD(net, lr=0.1)
    assert opt.params == net.parameters()
    opt.lr = 0.0
    w = host(net[0].weight.data)
    net[0].weight.grad = net[0].weight.data
    opt.step()
    np.testing.assert_array_equal(host(net[0].weight.data), w)


def test_state_dict_round_trip_resumes_identically(backend):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(5) for _ in range(4)]

    def run(opt, p, gs):
        for g in gs:
            p.grad = backend.asarray(g, dtype="float64")
            opt.step()

    p1 = xn.Parameter(backend.asarray(np.zeros(5), dtype="float64"))
    o1 = xn.SGD([p1], lr=0.1, momentum=0.9, nesterov=True)
    run(o1, p1, grads)

    p2 = xn.Parameter(backend.asarray(np.zeros(5), dtype="float64"))
    o2 = xn.SGD([p2], lr=0.1, momentum=0.9, nesterov=True)
    run(o2, p2, grads[:2])
    sd = {"state": {i: {k: backend.to_numpy(v) for k, v in st.items()} for i, st in o2.state_dict()["state"].items()},
          "param_groups": o2.state_dict()["param_groups"]}
    o3 = xn.SGD([p2], lr=1.0)
    o3.load_state_dict(sd)
    assert o3.momentum == 0.9 and o3.nesterov and o3.lr == 0.1
    run(o3, p2, grads[2:])
    np.testing.assert_array_equal(host(p1.data), host(p2.data))


def test_repr():
    opt = xn.SGD(xn.Linear(2, 2), lr=0.1, momentum=0.9)
    assert repr(opt) == "SGD(2 tensors, lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0)"
