"""xpnet.metrics: the functions and the streaming metrics on every backend, against formulas
written out in numpy on host data, and their plumbing through fit and evaluate."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends, metrics

from .conftest import host


# -- references (numpy, on the host) ---------------------------------------------------------
def _ref_prf(t, p, C):
    """Per class precision, recall, F1 (zero_division=0), and the set of classes present."""
    P, R, F = np.zeros(C), np.zeros(C), np.zeros(C)
    for c in range(C):
        tp = np.sum((p == c) & (t == c))
        npred, nact = np.sum(p == c), np.sum(t == c)
        P[c] = tp / npred if npred else 0.0
        R[c] = tp / nact if nact else 0.0
        F[c] = 2 * P[c] * R[c] / (P[c] + R[c]) if P[c] + R[c] else 0.0
    present = np.zeros(C, bool)
    present[np.unique(np.concatenate([t, p]))] = True
    return P, R, F, present


def _ref_topk(logits, t, k):
    return float(np.mean([t[i] in np.argsort(-logits[i])[:k] for i in range(len(t))]))


def _ref_r2(y, t):
    y, t = y.reshape(len(y), -1).astype(np.float64), t.reshape(len(t), -1).astype(np.float64)
    ss_res = np.sum((t - y) ** 2, axis=0)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    return float(np.mean(1 - ss_res / ss_tot))


def _ref_rmse(y, t):
    y, t = y.reshape(len(y), -1).astype(np.float64), t.reshape(len(t), -1).astype(np.float64)
    return float(np.mean(np.sqrt(np.mean((y - t) ** 2, axis=0))))


def _classification(backend, n=90, C=5, seed=0):
    rs = np.random.default_rng(seed)
    logits = rs.standard_normal((n, C)).astype(np.float32)
    t = rs.integers(0, C, n)
    return logits, t, backend.asarray(logits), backend.asarray(t)


def _regression(backend, n=40, d=3, seed=0, offset=0.0):
    rs = np.random.default_rng(seed)
    t = (offset + rs.standard_normal((n, d))).astype(np.float32)
    y = (t + 0.5 * rs.standard_normal((n, d))).astype(np.float32)
    return y, t, backend.asarray(y), backend.asarray(t)


def _batches(n, sizes=(7, 1, 20)):
    """Uneven batch bounds covering range(n)."""
    out, a, i = [], 0, 0
    while a < n:
        b = min(n, a + sizes[i % len(sizes)])
        out.append((a, b))
        a, i = b, i + 1
    return out


def _rows(x, a, b):
    return x[a:b, ...]


def _is_device_array(x, backend, ndim):
    return backends.backend_of(x) is backend and x.ndim == ndim


# -- functions ---------------------------------------------------------------------------------
def test_precision_recall_f1_by_hand(backend):
    # t: 0 0 1 1 2 2, p: 0 1 1 1 0 2 -> class 0: tp 1, predicted 2, actual 2; class 1: tp 2,
    # predicted 3, actual 2; class 2: tp 1, predicted 1, actual 2; class 3 absent from both
    t = backend.asarray(np.array([0, 0, 1, 1, 2, 2]))
    p = backend.asarray(np.array([0, 1, 1, 1, 0, 2]))
    P, R, F = metrics.precision_recall_f1(p, t, 4, average=None)
    assert all(_is_device_array(v, backend, 1) for v in (P, R, F))
    np.testing.assert_allclose(host(P), [1 / 2, 2 / 3, 1, 0], rtol=1e-6)
    np.testing.assert_allclose(host(R), [1 / 2, 1, 1 / 2, 0], rtol=1e-6)
    np.testing.assert_allclose(host(F), [1 / 2, 4 / 5, 2 / 3, 0], rtol=1e-6)
    macro = metrics.precision_recall_f1(p, t, 4)  # over the 3 classes present
    assert all(_is_device_array(v, backend, 0) for v in macro)
    np.testing.assert_allclose([float(host(v)) for v in macro],
                               [(1 / 2 + 2 / 3 + 1) / 3, (1 / 2 + 1 + 1 / 2) / 3, (1 / 2 + 4 / 5 + 2 / 3) / 3], rtol=1e-6)
    micro = metrics.precision_recall_f1(p, t, 4, average="micro")
    np.testing.assert_allclose([float(host(v)) for v in micro], [4 / 6] * 3, rtol=1e-6)


def test_precision_recall_f1_against_reference(backend):
    logits, t, L, T = _classification(backend, C=6)
    p = np.argmax(logits, axis=1)
    P, R, F, present = _ref_prf(t, p, 6)
    got = metrics.precision_recall_f1(L, T, 6, average=None)
    for g, ref in zip(got, (P, R, F)):
        np.testing.assert_allclose(host(g), ref, rtol=1e-5, atol=1e-7)
    for g, ref in zip(metrics.precision_recall_f1(L, T, 6), (P, R, F)):
        assert float(host(g)) == pytest.approx(ref[present].mean(), rel=1e-5)
    # labels instead of logits, int32 targets: the same figures
    same = metrics.precision_recall_f1(backend.asarray(p), backend.asarray(t.astype(np.int32)), 6)
    np.testing.assert_allclose([float(host(v)) for v in same], [P[present].mean(), R[present].mean(), F[present].mean()],
                               rtol=1e-5)


def test_class_never_predicted_scores_zero(backend):
    t = backend.asarray(np.array([0, 1, 2, 2]))
    p = backend.asarray(np.array([0, 1, 1, 1]))  # class 2 never predicted: precision 0/0 -> 0
    P, R, F = (host(v) for v in metrics.precision_recall_f1(p, t, 3, average=None))
    assert P[2] == 0 and R[2] == 0 and F[2] == 0
    assert np.all(np.isfinite(P))


def test_top_k_accuracy(backend):
    logits, t, L, T = _classification(backend, C=7)
    for k in (1, 3, 7):
        acc = metrics.top_k_accuracy(L, T, k=k)
        assert _is_device_array(acc, backend, 0) and backend.dtype_name(acc.dtype) == "float32"
        assert float(host(acc)) == pytest.approx(_ref_topk(logits, t, k), abs=1e-6)
    assert float(host(metrics.top_k_accuracy(L, T, k=1))) == pytest.approx(float(host(metrics.accuracy(L, T))))
    assert float(host(metrics.top_k_accuracy(L, T, k=7))) == 1.0
    # a tie with the target's logit goes in the target's favour
    tie = backend.asarray(np.array([[1.0, 1.0, 0.0]], dtype=np.float32))
    assert float(host(metrics.top_k_accuracy(tie, backend.asarray(np.array([1])), k=1))) == 1.0


def test_regression_functions(backend):
    y, t, Y, T = _regression(backend)
    mae = metrics.mean_absolute_error(Y, T)
    rmse = metrics.root_mean_squared_error(Y, T)
    r2 = metrics.r2_score(Y, T)
    for v in (mae, rmse, r2):
        assert _is_device_array(v, backend, 0) and backend.dtype_name(v.dtype) == "float32"
    assert float(host(mae)) == pytest.approx(float(np.mean(np.abs(y - t))), rel=1e-5)
    assert float(host(rmse)) == pytest.approx(_ref_rmse(y, t), rel=1e-5)
    assert float(host(r2)) == pytest.approx(_ref_r2(y, t), rel=1e-5)
    # 1-D targets; a perfect fit; predicting the mean scores 0
    assert float(host(metrics.r2_score(Y[:, 0], T[:, 0]))) == pytest.approx(_ref_r2(y[:, 0], t[:, 0]), rel=1e-5)
    assert float(host(metrics.r2_score(T, T))) == 1.0
    mean = backend.asarray(np.broadcast_to(t.mean(axis=0), t.shape).astype(np.float32))
    assert float(host(metrics.r2_score(mean, T))) == pytest.approx(0.0, abs=1e-5)
    # a constant target: 1 when predicted exactly, else 0 (scikit-learn's force_finite)
    c = backend.asarray(np.full((5,), 2.0, dtype=np.float32))
    assert float(host(metrics.r2_score(c, c))) == 1.0
    assert float(host(metrics.r2_score(c + 1.0, c))) == 0.0


def test_out_of_range_labels_make_functions_nan(backend):
    logits, t, L, _ = _classification(backend, n=6, C=3)
    bad = backend.asarray(np.array([0, 1, 2, 3, 0, 1]))
    assert np.isnan(float(host(metrics.top_k_accuracy(L, bad, k=2))))
    assert all(np.isnan(float(host(v))) for v in metrics.precision_recall_f1(L, bad, 3))
    with pytest.raises(ValueError, match=r"confusion_matrix: labels must lie in \[0, 3\), got values in \[0, 3\]"):
        metrics.confusion_matrix(L, bad, 3)


def test_function_errors(backend):
    _, _, L, T = _classification(backend, n=10, C=4)
    with pytest.raises(ValueError, match=r"top_k_accuracy: k=5 exceeds the number of classes C=4"):
        metrics.top_k_accuracy(L, T, k=5)
    with pytest.raises(ValueError, match="top_k_accuracy: k must be a positive int, got 0"):
        metrics.top_k_accuracy(L, T, k=0)
    with pytest.raises(ValueError, match=r"precision_recall_f1: num_classes=5 but the logits have 4 classes"):
        metrics.precision_recall_f1(L, T, 5)
    with pytest.raises(ValueError, match="average must be 'macro', 'micro' or None, got 'weighted'"):
        metrics.precision_recall_f1(L, T, 4, average="weighted")
    with pytest.raises(ValueError, match=r"no samples \(N = 0\)"):
        metrics.precision_recall_f1(L[:0, ...], T[:0], 4)
    with pytest.raises(ValueError, match=r"top_k_accuracy: no samples"):
        metrics.top_k_accuracy(L[:0, ...], T[:0], k=2)
    with pytest.raises(ValueError, match=r"expected logits \(N, C\) or labels \(N,\).*\(10, 4\) and \(9,\)"):
        metrics.precision_recall_f1(L, T[:9], 4)
    Y = backend.asarray(np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"r2_score: expected predictions and target of one shape.*\(4, 2\) and \(4,\)"):
        metrics.r2_score(Y, Y[:, 0])
    with pytest.raises(ValueError, match=r"mean_absolute_error: no samples"):
        metrics.mean_absolute_error(Y[:0, ...], Y[:0, ...])
    with pytest.raises(TypeError, match="root_mean_squared_error: predictions must be floating-point"):
        metrics.root_mean_squared_error(T, T)


# -- streaming -------------------------------------------------------------------------------
def _stream(metric, out, target, n):
    for a, b in _batches(n):
        metric.update(_rows(out, a, b), target[a:b] if target.ndim == 1 else _rows(target, a, b))
    return metric.result()


def test_streaming_classification_equals_whole_set(backend):
    logits, t, L, T = _classification(backend, n=90, C=5)
    P, R, F = (float(host(v)) for v in metrics.precision_recall_f1(L, T, 5))
    assert _stream(metrics.get("precision"), L, T, 90) == {"precision": pytest.approx(P, rel=1e-6)}
    assert _stream(metrics.get("recall"), L, T, 90) == {"recall": pytest.approx(R, rel=1e-6)}
    f1 = metrics.get("f1")
    assert _stream(f1, L, T, 90) == {"f1": pytest.approx(F, rel=1e-6)}
    ref = _ref_prf(t, np.argmax(logits, axis=1), 5)
    for got, want in zip((f1.precision_per_class, f1.recall_per_class, f1.f1_per_class), ref[:3]):
        assert isinstance(got, list) and len(got) == 5
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    micro = metrics.F1(average="micro")
    assert _stream(micro, L, T, 90)["f1"] == pytest.approx(float(host(metrics.accuracy(L, T))), rel=1e-6)
    assert _stream(metrics.get("top_k:3"), L, T, 90) == {"top3_accuracy": pytest.approx(_ref_topk(logits, t, 3))}
    assert _stream(metrics.get("top2"), L, T, 90) == {"top2_accuracy": pytest.approx(_ref_topk(logits, t, 2))}
    assert _stream(metrics.get("accuracy"), L, T, 90) == {"accuracy": pytest.approx(float(np.mean(np.argmax(logits, 1) == t)))}
    # labels with a given num_classes
    labels = metrics.Precision(num_classes=5)
    assert _stream(labels, backend.asarray(np.argmax(logits, axis=1)), T, 90) == {"precision": pytest.approx(P, rel=1e-6)}


def test_streaming_regression_equals_whole_set(backend):
    y, t, Y, T = _regression(backend, n=45, d=2)
    for name, fn in (("mae", metrics.mean_absolute_error), ("rmse", metrics.root_mean_squared_error), ("r2", metrics.r2_score)):
        got = _stream(metrics.get(name), Y, T, 45)
        assert list(got) == [name]
        assert got[name] == pytest.approx(float(host(fn(Y, T))), rel=1e-5)
    assert _stream(metrics.R2(), Y[:, 0], T[:, 0], 45)["r2"] == pytest.approx(_ref_r2(y[:, 0], t[:, 0]), rel=1e-5)


def test_streaming_r2_is_exact_far_from_zero(backend):
    # targets ~ 1e4 + N(0, 1) in float32: sum t^2 - (sum t)^2 / n would cancel to noise
    y, t, Y, T = _regression(backend, n=200, d=1, seed=3, offset=1e4)
    got = _stream(metrics.R2(), Y, T, 200)["r2"]
    assert got == pytest.approx(_ref_r2(y, t), abs=1e-3)


def test_reset_starts_over(backend):
    logits, t, L, T = _classification(backend, n=30, C=3)
    m = metrics.get("f1")
    m.update(L, T)
    first = m.result()
    m.update(L, T)
    assert m.result() == pytest.approx(first)  # the same data twice: the same ratios
    m.reset()
    with pytest.raises(ValueError, match=r"F1.result: no samples were seen"):
        m.result()
    m.update(L[:10, ...], T[:10])
    assert m.n == 10


def test_streaming_errors(backend):
    _, _, L, T = _classification(backend, n=12, C=4)
    f1 = metrics.get("f1")
    f1.update(L, T)
    with pytest.raises(ValueError, match=r"F1.update: num_classes=4 but the logits have 3 classes"):
        f1.update(L[:, :3], T)
    with pytest.raises(ValueError, match=r"TopKAccuracy.update: k=5 exceeds the number of classes C=4"):
        metrics.get("top5").update(L, T)
    with pytest.raises(ValueError, match=r"Recall.update: labels \(12,\) do not say how many classes"):
        metrics.Recall().update(T, T)
    with pytest.raises(ValueError, match=r"RMSE.result: no samples were seen"):
        metrics.RMSE().result()
    r2 = metrics.R2()
    Y = backend.asarray(np.zeros((4, 2), dtype=np.float32))
    r2.update(Y, Y)
    with pytest.raises(ValueError, match=r"R2.update: this batch has 3 outputs, earlier ones had 2"):
        r2.update(backend.asarray(np.zeros((4, 3), dtype=np.float32)), backend.asarray(np.zeros((4, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="F1: average must be 'macro' or 'micro'"):
        metrics.F1(average=None)


def test_out_of_range_labels_reported_at_result(backend):
    _, _, L, _ = _classification(backend, n=6, C=3)
    bad = backend.asarray(np.array([0, 1, 2, 5, -1, 1]))
    for name in ("f1", "top2"):
        m = metrics.get(name)
        m.update(L, bad)  # no check here: that would read the device every batch
        with pytest.raises(ValueError, match=r"result: 2 label\(s\) lay outside \[0, 3\); they were not counted"):
            m.result()


def test_update_reads_nothing_back(monkeypatch):
    # On array-api-strict, a host read goes through __bool__/__int__/__float__/__index__: make them fail.
    be = backends.get("array_api_strict")
    _, _, L, T = _classification(be, n=20, C=4)
    y, t, Y, Tr = _regression(be, n=20, d=2)
    made = [metrics.get(n) for n in ("accuracy", "top3", "precision", "recall", "f1")], \
           [metrics.get(n) for n in ("mae", "rmse", "r2")]
    Array = type(L)

    def refuse(self, *a):
        raise AssertionError("host read during update")

    with monkeypatch.context() as mp:
        for dunder in ("__bool__", "__int__", "__float__", "__index__"):
            mp.setattr(Array, dunder, refuse)
        for _ in range(2):
            for m in made[0]:
                m.update(L, T)
            for m in made[1]:
                m.update(Y, Tr)
    for m in made[0] + made[1]:
        assert all(isinstance(v, float) for v in m.result().values())


def test_get_and_resolve():
    assert isinstance(metrics.get("top5"), metrics.TopKAccuracy) and metrics.get("top5").k == 5
    assert metrics.get("top_k:3").k == 3 and metrics.get("top_k:3").name == "top3"
    for name, cls in (("accuracy", metrics.Accuracy), ("precision", metrics.Precision), ("recall", metrics.Recall),
                      ("f1", metrics.F1), ("mae", metrics.MAE), ("rmse", metrics.RMSE), ("r2", metrics.R2)):
        assert type(metrics.get(name)) is cls and metrics.get(name).name == name
    m = metrics.F1(num_classes=3)
    assert metrics.get(m) is m
    assert metrics.get("f1") is not metrics.get("f1")
    for bad in ("f2", "top0", "top_k:", "F1"):
        with pytest.raises(ValueError, match=r"metrics.get: unknown metric .*; valid names: accuracy, top5, top_k:K, "
                                             r"precision, recall, f1, mae, rmse, r2"):
            metrics.get(bad)
    with pytest.raises(TypeError, match="metrics.get: expected a metric name or a Metric, got int"):
        metrics.get(3)
    assert metrics.resolve(None) == ()
    assert [m.name for m in metrics.resolve("f1")] == ["f1"]
    assert [m.name for m in metrics.resolve(["f1", "top5", "mae"])] == ["f1", "top5", "mae"]
    with pytest.raises(ValueError, match="fit: metric 'f1' was given more than once"):
        metrics.resolve(["f1", metrics.F1()])
    with pytest.raises(TypeError, match="fit: metrics must be a list of names or Metrics, got int"):
        metrics.resolve(5)


# -- fit and evaluate --------------------------------------------------------------------------
def _four_classes(backend, n=160):
    rs = np.random.default_rng(5)
    X = rs.standard_normal((n, 4)).astype(np.float32)
    y = np.argmax(X @ rs.standard_normal((4, 6)), axis=1) % 6
    return backend.asarray(X), backend.asarray(y)


def test_fit_and_evaluate_with_metrics(backend):
    X, y = _four_classes(backend)
    net = xn.Sequential(xn.Linear(4, 16), xn.Tanh(), xn.Linear(16, 6))
    loss = xn.CrossEntropyLoss()
    val = (X[:40, ...], y[:40])
    hist = xn.fit(net, loss, xn.Adam(net, lr=1e-2), (X, y), epochs=3, batch_size=32, val=val,
                  metrics=["f1", "top_k:2", metrics.Precision()], progress=False)
    for key in ("f1", "val_f1", "top2_accuracy", "val_top2_accuracy", "precision", "val_precision", "loss", "accuracy"):
        assert len(hist[key]) == 3 and all(0.0 <= v <= 1.0 for v in hist[key] if key != "loss"), key
    got = xn.evaluate(net, loss, val, metrics=["f1", "top2"])
    assert set(got) == {"loss", "accuracy", "f1", "top2_accuracy"}
    assert got["f1"] == pytest.approx(hist["val_f1"][-1], rel=1e-6)
    out = xn.predict(net, val[0])
    assert got["f1"] == pytest.approx(float(host(metrics.precision_recall_f1(out, val[1], 6)[2])), rel=1e-6)
    assert got["top2_accuracy"] == pytest.approx(float(host(metrics.top_k_accuracy(out, val[1], 2))), rel=1e-6)


def test_fit_regression_metrics(backend):
    rs = np.random.default_rng(2)
    Xn = rs.standard_normal((64, 3)).astype(np.float32)
    X, t = backend.asarray(Xn), backend.asarray((Xn @ np.array([[1.0], [-2.0], [0.5]])).astype(np.float32))
    net = xn.Sequential(xn.Linear(3, 1))
    hist = xn.fit(net, xn.MSELoss(), xn.SGD(net.parameters(), lr=0.1), (X, t), epochs=4, batch_size=16,
                  val=(X, t), metrics=["mae", "rmse", "r2"], progress=False)
    assert hist["val_r2"][-1] > 0.9 and hist["val_rmse"][-1] < hist["val_rmse"][0]
    got = xn.evaluate(net, xn.MSELoss(), (X, t), metrics=["rmse", "r2"])
    assert got["rmse"] ** 2 == pytest.approx(got["loss"], rel=1e-4)  # one output: RMSE^2 = MSE
    assert got["r2"] == pytest.approx(hist["val_r2"][-1], rel=1e-6)


def test_fit_rejects_bad_metrics(backend):
    X, y = _four_classes(backend, n=16)
    net = xn.Sequential(xn.Linear(4, 6))
    with pytest.raises(ValueError, match="fit: metric 'f1' was given more than once"):
        xn.fit(net, xn.CrossEntropyLoss(), xn.SGD(net.parameters(), lr=0.1), (X, y), metrics=["f1", "f1"], progress=False)
    with pytest.raises(ValueError, match="metrics.get: unknown metric 'auc'"):
        xn.evaluate(net, xn.CrossEntropyLoss(), (X, y), metrics=["auc"])
