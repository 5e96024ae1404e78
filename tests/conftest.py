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

import xpnet as xn
from xpnet import backends
from xpnet.nets import spec as _spec

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


def run_markdown(path, min_blocks):
    """Execute every ```python block of the markdown file ``path``, in order, in one scope
    (as a reader would run them); returns the scope. The blocks' own asserts check their claims."""
    import re

    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    assert len(blocks) >= min_blocks, f"{path.name}: {len(blocks)} python blocks"
    scope = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{path.name}, block {i + 1}", "exec"), scope)
    return scope


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


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the layer registry, so that registrations do not leak into other tests."""
    monkeypatch.setattr(_spec, "_REGISTRY", dict(_spec._registry()))
    monkeypatch.setattr(_spec, "_TORCH_TWINS", dict(_spec._TORCH_TWINS))
    return _spec._REGISTRY


class Pair(xn.Layer):
    """A two-input composite: ``y = first(a) + scale * second(b)``."""

    def __init__(self, first, second, scale=1.0):
        self.first, self.second, self.scale = first, second, scale

    def forward(self, a, b):
        return self.first(a) + self.second(b) * self.scale

    def backward(self, dy, input_grad=True):
        db = self.second.backward(None if dy is None else dy * self.scale, input_grad=input_grad)
        da = self.first.backward(dy, input_grad=input_grad)
        return (da, db) if input_grad else None

    def config(self):
        return {"first": self.first, "second": self.second, "scale": self.scale}
