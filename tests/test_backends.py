"""The backend selector: names, defaults, contexts, availability, conversions, generators, scatter-add."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from xpnet import backends
from tests.conftest import host


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'; valid names are numpy, cupy, torch, array_api_strict, auto"):
        backends.get("tensorflow")


def test_default_is_numpy_then_environment(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    assert backends.get().name == "numpy"
    monkeypatch.setenv(backends.ENV_VAR, "array_api_strict:device1")
    be = backends.get()
    assert be.name == "array_api_strict" and "device1" in be.label


def test_environment_with_unknown_name_fails_clearly(monkeypatch):
    monkeypatch.setenv(backends.ENV_VAR, "jax")
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        backends.get()


def test_use_restores_previous_default_and_nests(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    with backends.use("array_api_strict") as outer:
        assert backends.get() is outer
        with backends.use("numpy"):
            assert backends.get().name == "numpy"
        assert backends.get() is outer
    assert backends.get().name == "numpy"


def test_use_restores_after_an_exception(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    with pytest.raises(KeyError):
        with backends.use("array_api_strict"):
            raise KeyError
    assert backends.get().name == "numpy"


def test_use_is_per_thread(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    seen = {}
    with backends.use("array_api_strict"):
        t = threading.Thread(target=lambda: seen.setdefault("name", backends.get().name))
        t.start()
        t.join()
        assert backends.get().name == "array_api_strict"
    # the other thread did not inherit this thread's `use`
    assert seen["name"] == "numpy"


def test_same_place_same_instance():
    assert backends.get("numpy") is backends.get("numpy")
    assert backends.get("array_api_strict") is backends.get("array_api_strict:CPU_DEVICE")
    assert backends.get("array_api_strict:device1") is not backends.get("array_api_strict")


def test_auto_without_gpu_is_numpy_or_cupy():
    be = backends.get("auto")
    assert be.name in ("numpy", "cupy")
    if backends.available()["cupy"].usable:
        assert be.name == "cupy"
    else:
        assert be.name == "numpy"


def test_available_reports_each_backend_with_a_reason():
    av = backends.available()
    assert set(av) == {"numpy", "torch", "torch:cuda", "cupy", "array_api_strict"}
    assert av["numpy"].usable and "numpy" in av["numpy"].detail
    for a in av.values():
        assert a.detail  # a description when usable, a reason when not
        if not a.usable:
            assert "install" in a.detail or "device" in a.detail or "CUDA" in a.detail


def test_unusable_backend_says_why_and_what_to_install():
    av = backends.available()
    if av["cupy"].usable:
        pytest.skip("cupy is usable here")
    with pytest.raises(backends.BackendUnavailable, match="cupy"):
        backends.get("cupy")
    msg = av["cupy"].detail
    assert "xpnet[cuda13]" in msg or "no CUDA device" in msg


def test_bad_device_for_a_backend():
    with pytest.raises(ValueError, match="device"):
        backends.get("numpy", device="cuda")
    with pytest.raises(ValueError, match="device9"):
        backends.get("array_api_strict:device9")


def test_backend_exposes_namespace_device_and_name(backend):
    assert backend.name in backends.NAMES
    x = backend.xp.zeros((2, 3), dtype=backend.xp.float32, device=backend.device)
    assert backends.backend_of(x) is backend
    assert backends.namespace_of(x) is backend.xp
    assert backend.describe()


def test_asarray_and_to_numpy_round_trip(backend):
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    x = backend.asarray(a, dtype="float32")
    assert backend.dtype_name(x.dtype) == "float32"
    assert x.device == backend.device
    back = backend.to_numpy(x)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, a.astype(np.float32))
    # to_numpy is a copy: writing to it does not touch the array
    back[0, 0] = 99
    assert host(x)[0, 0] == 0
    # python data and dtype by namespace object
    y = backend.asarray([[1, 2]], dtype=backend.xp.float64)
    assert backend.dtype_name(y.dtype) == "float64"
    assert backend.dtype_name(backend.asarray([1, 2]).dtype) == "int64"


def test_asarray_moves_arrays_of_other_backends_explicitly(backend):
    src = backends.get("array_api_strict:device1")
    x = src.asarray([1.0, 2.0], dtype="float64")
    y = backend.asarray(x)
    assert backends.backend_of(y) is backend
    np.testing.assert_array_equal(host(y), [1.0, 2.0])


def test_dtype_resolution(backend):
    assert backend.dtype("float64") == backend.xp.float64
    assert backend.dtype(np.float32) == backend.xp.float32
    assert backend.is_float(backend.xp.zeros((1,), dtype=backend.xp.float32, device=backend.device).dtype)
    assert backend.is_float(backend.xp.float32) and backend.is_float(backend.dtype("float64"))
    assert backend.asarray([1]).dtype in backend.int_dtypes and backend.xp.int32 in backend.int_dtypes
    assert not backend.is_float(backend.asarray([1]).dtype)
    with pytest.raises(ValueError, match="no dtype 'float128'"):
        backend.dtype("float128")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_generator_draws_on_the_device_with_the_dtype(backend, dtype):
    g, dt = backend.rng, backend.dtype(dtype)
    for x in (g.normal((50, 40), 2.0, 0.5, dtype=dt), g.uniform((50, 40), -1.0, 3.0, dtype=dt),
              g.bernoulli((50, 40), 0.3, dtype=dt)):
        assert tuple(x.shape) == (50, 40) and x.dtype == dt and x.device == backend.device
    z = host(g.normal((200, 100), 2.0, 0.5, dtype=dt))
    assert abs(z.mean() - 2.0) < 0.02 and abs(z.std() - 0.5) < 0.02
    u = host(g.uniform((200, 100), -1.0, 3.0, dtype=dt))
    assert u.min() >= -1.0 and u.max() < 3.0 and abs(u.mean() - 1.0) < 0.05
    b = host(g.bernoulli((200, 100), 0.3, dtype=dt))
    assert set(np.unique(b)) <= {0.0, 1.0} and abs(b.mean() - 0.3) < 0.02


def test_generator_is_seeded_and_reproducible(backend):
    a = host(backend.manual_seed(7).rng.normal((5,)))
    b = host(backend.manual_seed(7).rng.normal((5,)))
    c = host(backend.rng.normal((5,)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_generator_state_round_trip(backend):
    try:
        state = backend.rng.get_state()
    except NotImplementedError as e:
        pytest.skip(str(e))
    a = host(backend.rng.uniform((4,)))
    backend.rng.set_state(state)
    np.testing.assert_array_equal(a, host(backend.rng.uniform((4,))))


def test_permutation(backend):
    p = backend.rng.permutation(100)
    assert p.device == backend.device and backend.dtype_name(p.dtype) == "int64"
    assert sorted(host(p).tolist()) == list(range(100))


def test_manual_seed_rejects_bad_seeds(backend):
    with pytest.raises(ValueError, match="non-negative int"):
        backend.manual_seed(-1)


def test_scatter_add_sums_repeated_indices_exactly(backend):
    xp = backend.xp
    target = backend.asarray(np.ones((4, 3)), dtype="float64")
    index = backend.asarray([2, 0, 2, 2, 3])
    values = backend.asarray(np.arange(15, dtype=np.float64).reshape(5, 3))
    out = backend.scatter_add(target, index, values)
    expected = np.ones((4, 3))
    np.add.at(expected, [2, 0, 2, 2, 3], np.arange(15, dtype=np.float64).reshape(5, 3))
    np.testing.assert_array_equal(host(out), expected)
    assert out.device == backend.device
    np.testing.assert_array_equal(host(target), np.ones((4, 3)))  # the input is not modified
    assert xp is backend.xp


def test_backend_of_rejects_non_arrays():
    with pytest.raises(TypeError, match="expected an array of numpy, torch, cupy or array_api_strict, got builtins.list"):
        backends.backend_of([1, 2])


def test_manual_seed_reaches_every_backend():
    backends.manual_seed(3)
    a = host(backends.get("numpy").rng.normal((3,)))
    backends.manual_seed(3)
    np.testing.assert_array_equal(a, host(backends.get("numpy").rng.normal((3,))))


def test_only_backends_import_array_libraries():
    import pathlib
    import re

    root = pathlib.Path(backends.__file__).parent.parent
    pattern = re.compile(r"^\s*(import|from)\s+(numpy|cupy|cupyx|torch)\b", re.M)
    offenders = [
        str(p.relative_to(root)) for p in root.rglob("*.py")
        if "backends" not in p.parts and pattern.search(p.read_text())
    ]
    assert offenders == []


def test_packaging_metadata_is_written_once_and_licensed():
    import pathlib
    import re

    import xpnet

    root = pathlib.Path(xpnet.__file__).resolve().parent.parent
    meta = (root / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in meta and 'attr = "xpnet.__version__"' in meta
    assert not re.search(r"^version\s*=\s*\"", meta, re.M)  # the version lives in xpnet/__init__.py only
    assert re.search(r'^license = "MIT"$', meta, re.M) and (root / "LICENSE").read_text().startswith("MIT License")
    assert "cuda13 = " in meta and "cuda12 = " in meta
    from importlib import metadata

    assert metadata.version("xpnet") == xpnet.__version__


def test_torch_describe_counts_threads_in_words():
    torch = pytest.importorskip("torch")
    be = backends.get("torch")
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert be.describe().endswith("(1 thread)")
        torch.set_num_threads(2)
        assert be.describe().endswith("(2 threads)")
    finally:
        torch.set_num_threads(n)
