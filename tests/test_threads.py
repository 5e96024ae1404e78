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
