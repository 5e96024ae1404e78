"""DataLoader and metrics on every backend, against numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import backends, metrics
from xpnet.data import DataLoader

from .conftest import host


def _data(backend, n=23, d=3):
    xp = backend.xp
    X = backend.asarray(np.arange(n * d, dtype=np.float32).reshape(n, d))
    y = backend.asarray(np.arange(n, dtype=np.int64))
    return X, y


def _rows(batches):
    return np.concatenate([host(b) for b in batches]) if batches else np.zeros((0,))


# -- DataLoader ------------------------------------------------------------------------------
def test_sequential_batches_and_last_partial(backend):
    X, y = _data(backend)
    dl = DataLoader(X, y, batch_size=5)
    assert len(dl) == 5 and dl.dataset_size == 23
    batches = list(dl)
    assert [tuple(xb.shape) for xb, _ in batches] == [(5, 3)] * 4 + [(3, 3)]
    for xb, yb in batches:
        assert backends.backend_of(xb) is backend and backends.backend_of(yb) is backend
        np.testing.assert_array_equal(host(xb)[:, 0], host(yb) * 3)
    np.testing.assert_array_equal(_rows([yb for _, yb in batches]), np.arange(23))


def test_drop_last(backend):
    X, y = _data(backend)
    dl = DataLoader(X, y, batch_size=5, shuffle=True, drop_last=True)
    assert len(dl) == 4
    batches = list(dl)
    assert len(batches) == 4 and all(tuple(xb.shape) == (5, 3) for xb, _ in batches)
    seen = _rows([yb for _, yb in batches])
    assert len(np.unique(seen)) == 20
    exact = DataLoader(X, y, batch_size=23, drop_last=True)
    assert len(exact) == 1 and len(list(exact)) == 1
    assert len(DataLoader(X, y, batch_size=24, drop_last=True)) == 0


def test_shuffle_covers_every_sample_once_per_epoch(backend):
    X, y = _data(backend)
    dl = DataLoader(X, y, batch_size=4, shuffle=True)
    orders = []
    for _ in range(3):
        batches = list(dl)
        assert len(batches) == len(dl) == 6
        for xb, yb in batches:  # rows stay paired with their labels
            np.testing.assert_array_equal(host(xb)[:, 0], host(yb) * 3)
        order = _rows([yb for _, yb in batches])
        np.testing.assert_array_equal(np.sort(order), np.arange(23))
        orders.append(order)
    assert not all(np.array_equal(orders[0], o) for o in orders[1:])  # a new permutation each epoch


def test_shuffle_deterministic_given_seed(backend):
    X, y = _data(backend)

    def run():
        dl = DataLoader(X, y, batch_size=4, shuffle=True)
        return [_rows([yb for _, yb in dl]) for _ in range(2)]

    backend.manual_seed(7)
    a = run()
    backend.manual_seed(7)
    b = run()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_private_generator(backend):
    X, y = _data(backend)
    g1 = type(backend.rng)(backend, 3)
    g2 = type(backend.rng)(backend, 3)
    a = _rows([yb for _, yb in DataLoader(X, y, batch_size=6, shuffle=True, generator=g1)])
    b = _rows([yb for _, yb in DataLoader(X, y, batch_size=6, shuffle=True, generator=g2)])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.sort(a), np.arange(23))


def test_y_none(backend):
    X, _ = _data(backend)
    for shuffle in (False, True):
        batches = list(DataLoader(X, batch_size=10, shuffle=shuffle))
        assert [tuple(b.shape) for b in batches] == [(10, 3), (10, 3), (3, 3)]
        np.testing.assert_array_equal(np.sort(_rows(batches)[:, 0]), np.arange(23) * 3)


def test_moves_host_data_once(backend):
    Xn = np.arange(12, dtype=np.float32).reshape(6, 2)
    dl = DataLoader(Xn, [0, 1, 0, 1, 0, 1], batch_size=4, backend=backend)
    assert backends.backend_of(dl.X) is backend and backends.backend_of(dl.y) is backend
    xb, yb = next(iter(dl))
    assert backends.backend_of(xb) is backend
    np.testing.assert_array_equal(host(xb), Xn[:4])
    # default target: where X lives when it is an array, else the current default backend
    assert DataLoader(Xn, batch_size=2).backend is backends.get("numpy")
    assert DataLoader(backend.asarray(Xn), batch_size=2).backend is backend
    assert DataLoader(Xn.tolist(), batch_size=2).backend is backend  # the fixture made it the default


def test_validation(backend):
    X, y = _data(backend)
    for bad in (0, -1, 2.0, True, None):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(X, y, batch_size=bad)
    with pytest.raises(ValueError, match=r"\(23, 3\).*\(22,\)"):
        DataLoader(X, y[:22])
    with pytest.raises(TypeError):
        DataLoader(X, y, generator=42)


# -- metrics -------------------------------------------------------------------------------
def _ref_cm(t, p, C):
    cm = np.zeros((C, C), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def test_accuracy(backend):
    rs = np.random.default_rng(0)
    logits = rs.standard_normal((50, 4)).astype(np.float32)
    t = rs.integers(0, 4, 50)
    L, T = backend.asarray(logits), backend.asarray(t)
    acc = metrics.accuracy(L, T)
    assert acc.ndim == 0 and backends.backend_of(acc) is backend
    assert backend.dtype_name(acc.dtype) == "float32"
    ref = float(np.mean(np.argmax(logits, axis=1) == t))
    assert float(host(acc)) == pytest.approx(ref, abs=1e-6)
    pred = backend.asarray(np.argmax(logits, axis=1))
    assert float(host(metrics.accuracy(pred, T))) == pytest.approx(ref, abs=1e-6)
    assert float(host(metrics.accuracy(T, T))) == 1.0
    with pytest.raises(ValueError):
        metrics.accuracy(L, T[:10])


def test_confusion_matrix(backend):
    rs = np.random.default_rng(1)
    C = 5
    t = rs.integers(0, C, 200)
    p = np.where(rs.random(200) < 0.6, t, rs.integers(0, C, 200))
    cm = metrics.confusion_matrix(backend.asarray(p), backend.asarray(t), C)
    assert tuple(cm.shape) == (C, C) and backends.backend_of(cm) is backend
    assert backend.dtype_name(cm.dtype) == "int64"
    np.testing.assert_array_equal(host(cm), _ref_cm(t, p, C))
    # from logits, and with int32 labels
    logits = rs.standard_normal((30, C)).astype(np.float32)
    t2 = rs.integers(0, C, 30).astype(np.int32)
    cm2 = metrics.confusion_matrix(backend.asarray(logits), backend.asarray(t2), C)
    np.testing.assert_array_equal(host(cm2), _ref_cm(t2, np.argmax(logits, axis=1), C))
    # a class never seen leaves zero rows and columns
    np.testing.assert_array_equal(
        host(metrics.confusion_matrix(backend.asarray(p % 3), backend.asarray(t % 3), 6)),
        _ref_cm(t % 3, p % 3, 6))


def test_confusion_matrix_rejects_bad_labels(backend):
    t = backend.asarray(np.array([0, 1, 2, 3]))
    for bad in ([0, 1, 2, 4], [0, -1, 2, 3]):
        with pytest.raises(ValueError, match=r"\[0, 4\)"):
            metrics.confusion_matrix(backend.asarray(np.array(bad)), t, 4)
        with pytest.raises(ValueError, match=r"\[0, 4\)"):
            metrics.confusion_matrix(t, backend.asarray(np.array(bad)), 4)
    with pytest.raises(ValueError, match="num_classes"):
        metrics.confusion_matrix(t, t, 0)


def test_unshuffled_batches_are_views_on_numpy():
    Xn = np.arange(20, dtype=np.float32).reshape(10, 2)
    xb = next(iter(DataLoader(Xn, batch_size=4)))
    assert np.shares_memory(xb, Xn)


def test_y_moved_to_the_backend_of_x(backend):
    X, _ = _data(backend, n=6)
    y_np = np.arange(6)
    dl = DataLoader(X, y_np, batch_size=4)
    assert dl.backend is backend and backends.backend_of(dl.y) is backend


def test_evaluate_counts_every_position_and_leaves_ignored_targets_out(backend):
    """CrossEntropyLoss on (N, C, T) logits: accuracy over the positions whose target is not
    ignore_index (never above 1); probability targets count their argmax."""
    import xpnet as xn
    from xpnet.nets.evaluate import Tally

    rng = np.random.default_rng(4)
    out = rng.standard_normal((4, 3, 5))
    y = np.argmax(out, axis=1)
    y[0, :3] = -1
    y[1, 0] = (y[1, 0] + 1) % 3  # one miss among the 17 counted
    ce = xn.CrossEntropyLoss(ignore_index=-1)
    tally = Tally(ce, backend.xp)
    for lo, hi in ((0, 2), (2, 4)):
        o, t = backend.asarray(out[lo:hi]), backend.asarray(y[lo:hi])
        tally.add(ce(o, t), o, t)
    assert tally.result()["accuracy"] == pytest.approx(16 / 17)
    p = np.exp(out[:, :, 0]) / np.exp(out[:, :, 0]).sum(axis=1, keepdims=True)
    tally = Tally(xn.CrossEntropyLoss(), backend.xp)
    o, t = backend.asarray(out[:, :, 0]), backend.asarray(p)
    tally.add(xn.CrossEntropyLoss()(o, t), o, t)
    assert tally.result()["accuracy"] == 1.0
