"""The backends every test runs over: each present one, and a printed reason for each absent one.

- numpy
- array_api_strict (API 2024.12) on its default device, and on the simulated ``device1``,
  which rejects any array created without ``device=``
- torch on the CPU; torch on CUDA and CuPy only where a GPU is usable

``XPNET_TEST_BACKENDS=numpy,torch`` restricts the list (e.g. to run only ``cupy`` on a GPU box).
"""

from __future__ import annotations

import os

import pytest

from xpnet import backends

def pytest_configure(config):
    # Tests are not timed; one torch thread keeps torch's spinning OpenMP pool from crawling
    # when another process holds a core (seen here: 8-16 ms per tiny op under load).
    try:
        import torch as _torch
    except ImportError:
        return
    _torch.set_num_threads(1)


SPECS = ("numpy", "array_api_strict", "array_api_strict:device1", "torch", "torch:cuda", "cupy")


def _backend_params():
    wanted = os.environ.get("XPNET_TEST_BACKENDS")
    chosen = SPECS if not wanted else tuple(s.strip() for s in wanted.split(",") if s.strip())
    for spec in chosen:
        try:
            backends.get(spec)
            marks = ()
        except backends.BackendUnavailable as e:
            marks = (pytest.mark.skip(reason=f"backend {spec} absent: {e}"),)
        yield pytest.param(spec, id=spec, marks=marks)


BACKEND_PARAMS = list(_backend_params())


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """A Backend, freshly seeded, made the default for the duration of the test."""
    be = backends.get(request.param)
    be.manual_seed(1234)
    with backends.use(be):
        yield be


@pytest.fixture
def torch():
    """PyTorch for parity tests; the test is skipped, with the reason, where it is not installed."""
    return pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'xpnet[torch]')")


def host(x):
    """A numpy copy of an array of any backend (for comparisons in tests)."""
    return backends.to_numpy(x)


def step_both(net, crit, opt, tnet, tcrit, topt, x, target, x_torch, target_torch):
    """One training step of an xpnet net and of its torch twin on the same batch; returns both losses."""
    opt.zero_grad()
    loss = crit(net(x), target)
    net.backward(crit.backward(), input_grad=False)
    opt.step()
    topt.zero_grad()
    lt = tcrit(tnet(x_torch), target_torch)
    lt.backward()
    topt.step()
    return loss, lt
