"""xpnet.data.synthetic: shapes, dtypes, devices, seeding, and identical data on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xpnet import backends, data

from .conftest import host

# (function, kwargs, number of rows, number of classes or None for regression)
CASES = [
    (data.ring_vs_blob, {"n_per_class": 30}, 60, 2),
    (data.x_squared, {"n": 50}, 50, None),
    (data.spirals, {"n_per_class": 20, "classes": 3}, 60, 3),
    (data.moons, {"n": 51}, 51, 2),
]
IDS = [c[0].__name__ for c in CASES]


@pytest.mark.parametrize("fn, kw, rows, classes", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shapes_dtypes_devices(backend, fn, kw, rows, classes, dtype):
    X, y = fn(**kw, seed=3, dtype=dtype)  # backend=None: the current default, i.e. the fixture's
    assert backends.backend_of(X) is backend and backends.backend_of(y) is backend
    assert X.device == backend.device and y.device == backend.device
    assert backend.dtype_name(X.dtype) == dtype
    if classes is None:
        assert tuple(X.shape) == (rows, 1) and tuple(y.shape) == (rows, 1)
        assert backend.dtype_name(y.dtype) == dtype
    else:
        assert tuple(X.shape) == (rows, 2) and tuple(y.shape) == (rows,)
        assert backend.dtype_name(y.dtype) == "int64"
        assert sorted(set(host(y).tolist())) == list(range(classes))


@pytest.mark.parametrize("fn, kw, rows, classes", CASES, ids=IDS)
def test_identical_on_every_backend(backend, fn, kw, rows, classes):
    ref_X, ref_y = fn(**kw, seed=7, backend="numpy")
    X, y = fn(**kw, seed=7, backend=backend)
    np.testing.assert_array_equal(host(X), ref_X)
    np.testing.assert_array_equal(host(y), ref_y)
    assert host(X).dtype == np.float32


@pytest.mark.parametrize("fn, kw, rows, classes", CASES, ids=IDS)
def test_deterministic_by_seed(fn, kw, rows, classes):
    a, b, c = (fn(**kw, seed=s, backend="numpy") for s in (1, 1, 2))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("fn, kw, rows, classes", CASES, ids=IDS)
def test_float64_is_the_unrounded_float32(fn, kw, rows, classes):
    X32, _ = fn(**kw, seed=5, backend="numpy", dtype="float32")
    X64, _ = fn(**kw, seed=5, backend="numpy", dtype="float64")
    assert X64.dtype == np.float64
    np.testing.assert_array_equal(X64.astype(np.float32), X32)


@pytest.mark.parametrize("fn, kw, rows, classes", CASES, ids=IDS)
def test_shared_generators_untouched(backend, fn, kw, rows, classes):
    """Data come from a private stream: neither the numpy generator nor the default backend's moves."""
    watched = [backends.get("numpy"), backend]
    before = [be.rng.get_state() for be in watched]
    fn(**kw, seed=0)
    after = [be.rng.get_state() for be in watched]
    for b, a in zip(before, after):
        if isinstance(b, dict):
            assert a == b
        else:
            np.testing.assert_array_equal(a, b)


def test_label_balance():
    _, y = data.ring_vs_blob(40, seed=0, backend="numpy")
    assert np.bincount(y).tolist() == [40, 40]
    assert y[:40].max() == 0 and y[40:].min() == 1  # blob first, then ring
    _, y = data.spirals(25, classes=4, seed=0, backend="numpy")
    assert np.bincount(y).tolist() == [25] * 4
    _, y = data.moons(101, seed=0, backend="numpy")
    assert np.bincount(y).tolist() == [50, 51]  # n0 = n // 2 outer, n - n0 inner


def test_ring_vs_blob_geometry():
    X, y = data.ring_vs_blob(2000, seed=1, backend="numpy", dtype="float64")
    r = np.hypot(X[:, 0], X[:, 1])
    ring, blob = r[y == 1], X[y == 0]
    assert abs(ring.mean() - 1.0) < 0.01 and abs(ring.std() - 0.1) < 0.01
    assert np.all(np.abs(blob.mean(axis=0)) < 0.02) and np.all(np.abs(blob.std(axis=0) - 0.2) < 0.01)
    theta = np.arctan2(X[y == 1, 1], X[y == 1, 0])
    assert np.histogram(theta, bins=4, range=(-math.pi, math.pi))[0].min() > 400  # the whole circle
    X, y = data.ring_vs_blob(500, seed=1, backend="numpy", dtype="float64", radius=3.0, ring_noise=0.0, blob_std=0.5)
    np.testing.assert_allclose(np.hypot(X[500:, 0], X[500:, 1]), 3.0, rtol=1e-12)
    assert abs(X[:500].std() - 0.5) < 0.05


def test_x_squared_formula():
    X, y = data.x_squared(5000, seed=2, backend="numpy", dtype="float64")
    np.testing.assert_array_equal(y, X * X)
    assert abs(X.mean()) < 0.05 and abs(X.std() - 1.0) < 0.05
    X32, y32 = data.x_squared(100, seed=2, backend="numpy")
    np.testing.assert_array_equal(y32, (X[:100] * X[:100]).astype(np.float32))  # squared before rounding


def test_spirals_formula():
    n = 50
    X, y = data.spirals(n, classes=3, noise=0.0, seed=0, backend="numpy", dtype="float64")
    i = np.arange(n) / (n - 1)
    for k in range(3):
        Xk = X[y == k]
        np.testing.assert_allclose(np.hypot(Xk[:, 0], Xk[:, 1]), i, atol=1e-12)
        t = 4.0 * k + 4.0 * i
        np.testing.assert_allclose(Xk, np.stack([i * np.sin(t), i * np.cos(t)], axis=1), atol=1e-12)
    Xn, _ = data.spirals(n, classes=3, noise=0.2, seed=0, backend="numpy", dtype="float64")
    np.testing.assert_allclose(np.hypot(Xn[:, 0], Xn[:, 1]), np.tile(i, 3), atol=1e-12)  # noise moves the angle only
    assert not np.allclose(Xn, X)


def test_moons_formula():
    X, y = data.moons(40, noise=0.0, seed=0, backend="numpy", dtype="float64")
    outer, inner = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1.0, inner[:, 1] - 0.5), 1.0, rtol=1e-12)
    assert outer[:, 1].min() >= -1e-12 and inner[:, 1].max() <= 0.5 + 1e-12
    Xn, _ = data.moons(4000, noise=0.1, seed=0, backend="numpy", dtype="float64")
    X0, _ = data.moons(4000, noise=0.0, seed=0, backend="numpy", dtype="float64")
    assert abs((Xn - X0).std() - 0.1) < 0.005


def test_half_precision_where_the_backend_has_it():
    X, y = data.moons(6, seed=0, backend="numpy", dtype="float16")
    ref, _ = data.moons(6, seed=0, backend="numpy", dtype="float64")
    assert X.dtype == np.float16 and y.dtype == np.int64
    np.testing.assert_array_equal(X, ref.astype(np.float16))


def test_explicit_backend_overrides_default():
    with backends.use("array_api_strict:device1"):
        X, y = data.moons(10, seed=0, backend="numpy")
    assert isinstance(X, np.ndarray) and isinstance(y, np.ndarray)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: data.ring_vs_blob(0), r"ring_vs_blob: n_per_class must be an int >= 1, got 0"),
        (lambda: data.x_squared(2.5), r"x_squared: n must be an int >= 1, got 2.5"),
        (lambda: data.spirals(10, classes=1), r"spirals: classes must be an int >= 2, got 1"),
        (lambda: data.moons(1), r"moons: n must be an int >= 2, got 1"),
        (lambda: data.moons(10, noise=-0.1), r"moons: noise must be a real number >= 0, got -0.1"),
        (lambda: data.ring_vs_blob(5, seed=-1), r"ring_vs_blob: seed must be a non-negative int, got -1"),
        (lambda: data.x_squared(5, seed=1.5), r"x_squared: seed must be a non-negative int, got 1.5"),
        (lambda: data.spirals(5, dtype="int64"), r"spirals: dtype must be a floating-point dtype, got 'int64'"),
        (lambda: data.moons(4, backend="array_api_strict", dtype="float16"), r"has no dtype 'float16'"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
