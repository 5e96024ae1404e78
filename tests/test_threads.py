"""Backend.set_threads: the library's CPU thread count really changes (and is put back)."""

from __future__ import annotations

import pytest

from xpnet import backends


def test_numpy_set_threads_limits_blas():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    be = backends.get("numpy")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if not before:
        pytest.skip("numpy's BLAS is not visible to threadpoolctl here")
    try:
        be.set_threads(1)
        assert all(i["num_threads"] == 1 for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")
    finally:
        be._limits.restore_original_limits()
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert after == before


def test_torch_set_threads(torch):
    be = backends.get("torch")
    before = torch.get_num_threads()
    try:
        be.set_threads(1)
        assert torch.get_num_threads() == 1
        be.set_threads(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_set_threads_is_a_no_op_where_there_is_no_cpu_pool():
    backends.get("array_api_strict").set_threads(1)  # nothing to limit; must not raise


def test_torch_default_threads_from_the_environment(torch):
    from xpnet.backends import _torch

    assert _torch.default_threads({}) == 1
    assert _torch.default_threads({"XPNET_THREADS": ""}) == 1
    assert _torch.default_threads({"XPNET_THREADS": "3"}) == 3
    for bad in ("0", "-2", "two"):
        with pytest.raises(ValueError, match=r"\$XPNET_THREADS='.*': expected a positive number"):
            _torch.default_threads({"XPNET_THREADS": bad})


def test_torch_backend_applies_the_default_once_unless_the_program_chose(torch, monkeypatch):
    from xpnet.backends import _torch

    before = torch.get_num_threads()
    try:
        # a program that left torch at its own default gets xpnet's default (1 thread)
        monkeypatch.setattr(_torch, "_threads_defaulted", False)
        monkeypatch.setattr(_torch, "_TORCH_DEFAULT_THREADS", torch.get_num_threads())
        monkeypatch.delenv("XPNET_THREADS", raising=False)
        _torch.TorchBackend("cpu")
        assert torch.get_num_threads() == 1
        # ... once: a later set_threads is not undone by making another backend
        torch.set_num_threads(2)
        _torch.TorchBackend("cpu")
        assert torch.get_num_threads() == 2
        # a program that chose its own count keeps it
        monkeypatch.setattr(_torch, "_threads_defaulted", False)
        monkeypatch.setattr(_torch, "_TORCH_DEFAULT_THREADS", 7)
        _torch.TorchBackend("cpu")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
