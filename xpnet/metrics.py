"""Metrics computed on the device with the array-API standard: functions, and streaming objects
for :func:`xpnet.fit` / :func:`xpnet.evaluate`.

Functions (each returns a 0-d or 1-d array on the device; nothing is read back to the host):

>>> from xpnet import metrics
>>> acc = metrics.accuracy(logits, y)                 # 0-d float32 array; float(acc) reads it
>>> top5 = metrics.top_k_accuracy(logits, y, k=5)
>>> p, r, f1 = metrics.precision_recall_f1(logits, y, 10)           # macro averages
>>> cm = metrics.confusion_matrix(pred, y, 10)        # (10, 10) int64, rows = true class
>>> metrics.mean_absolute_error(pred, t), metrics.root_mean_squared_error(pred, t), metrics.r2_score(pred, t)

Streaming metrics (:class:`Metric`): ``update(out, target)`` per batch keeps running sums on the
device (no host read), ``result()`` reads them once and returns plain floats. :func:`get` makes
one from a name; these names and result keys are stable (the CLI's ``--metrics`` uses them):

    spec                        class           result() keys
    "accuracy"                  Accuracy        accuracy
    "top5", "top_k:3"           TopKAccuracy    top5_accuracy, top3_accuracy
    "precision"                 Precision       precision (macro)
    "recall"                    Recall          recall (macro)
    "f1"                        F1              f1 (macro)
    "mae"                       MAE             mae
    "rmse"                      RMSE            rmse
    "r2"                        R2              r2

Classification: ``out`` are logits ``(N, C)`` (the prediction is their argmax; ``C`` is the
number of classes) or integer labels ``(N,)`` (then give ``num_classes``), ``target`` integer
labels ``(N,)``. Precision, recall and F1 follow scikit-learn with ``zero_division=0``: a class
never predicted has precision 0, a class never in the target recall 0; the macro average runs
over the classes present in the target or the predictions (scikit-learn's default label set).
Top-k ties are resolved in the target's favour (a sample is a hit when fewer than ``k`` logits
exceed its target's). Regression: ``out`` and ``target`` of one shape ``(N,)`` or ``(N, D)``;
with several outputs each figure is the mean of the per-output figures (scikit-learn's
``multioutput="uniform_average"``).

Labels outside ``[0, C)`` are not checked by the functions (that would read the host): they make
``top_k_accuracy`` and ``precision_recall_f1`` NaN. The streaming metrics count them apart and
raise ValueError at ``result()``. ``confusion_matrix`` checks them (one host read).
"""

from __future__ import annotations

import numbers
import re

from . import backends
from .validate import positive_int

__all__ = [
    "accuracy", "confusion_matrix", "top_k_accuracy", "precision_recall_f1", "mean_absolute_error",
    "root_mean_squared_error", "r2_score", "Metric", "Accuracy", "TopKAccuracy", "Precision", "Recall",
    "F1", "MAE", "RMSE", "R2", "get", "resolve",
]


# -- checks ------------------------------------------------------------------------------------
def _labels(fn, be, pred, target):
    """Predicted labels ``(N,)`` (argmax of 2-D float logits) and the checked target ``(N,)``."""
    xp = be.xp
    tb = backends.backend_of(target)
    if tb is not be:
        raise ValueError(f"{fn}: predictions are on {be.label} but target is on {tb.label}")
    given = tuple(pred.shape)
    if pred.ndim == 2 and be.is_float(pred.dtype):
        pred = xp.argmax(pred, axis=1)
    if pred.ndim != 1 or target.ndim != 1 or pred.shape[0] != target.shape[0]:
        raise ValueError(
            f"{fn}: expected logits (N, C) or labels (N,) and target labels (N,), "
            f"got {given} and {tuple(target.shape)}"
        )
    for name, a in (("predictions", pred), ("target", target)):
        if a.dtype not in be.int_dtypes:
            raise TypeError(f"{fn}: {name} must be integer class labels, got dtype {be.dtype_name(a.dtype)}")
    return pred, target


def _num_classes(fn, out, num_classes):
    """``C``: the logits' last axis, which must agree with ``num_classes`` where both are given."""
    if num_classes is not None:
        num_classes = positive_int(fn, "num_classes", num_classes)
    if out.ndim == 2:
        C = int(out.shape[1])
        if C < 2:
            raise ValueError(f"{fn}: expected logits (N, C) with C >= 2 classes, got shape {tuple(out.shape)}")
        if num_classes is not None and num_classes != C:
            raise ValueError(f"{fn}: num_classes={num_classes} but the logits have {C} classes (shape {tuple(out.shape)})")
        return C
    if num_classes is None:
        raise ValueError(f"{fn}: labels {tuple(out.shape)} do not say how many classes there are; give num_classes")
    return num_classes


def _nonempty(fn, n):
    if n == 0:
        raise ValueError(f"{fn}: no samples (N = 0)")


def _pair(fn, pred, target):
    """Regression outputs and targets as ``(N, D)`` arrays of pred's float dtype."""
    be = backends.backend_of(pred)
    tb = backends.backend_of(target)
    if tb is not be:
        raise ValueError(f"{fn}: predictions are on {be.label} but target is on {tb.label}")
    if not be.is_float(pred.dtype):
        raise TypeError(f"{fn}: predictions must be floating-point, got dtype {be.dtype_name(pred.dtype)}")
    if tuple(pred.shape) != tuple(target.shape) or pred.ndim not in (1, 2):
        raise ValueError(
            f"{fn}: expected predictions and target of one shape (N,) or (N, D), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    xp = be.xp
    if pred.ndim == 1:
        pred, target = xp.reshape(pred, (-1, 1)), xp.reshape(target, (-1, 1))
    return be, pred, xp.astype(target, pred.dtype)


# -- device maths shared by the functions and the streaming metrics ------------------------------
def _pair_counts(be, p, t, C):
    """``(C*C + 1,)`` int64 counts: cell ``t*C + p`` for each in-range pair, the last cell for the
    pairs with a label outside ``[0, C)`` (so that no host read is needed to keep them out)."""
    xp, dev = be.xp, be.device
    p, t = xp.astype(p, xp.int64), xp.astype(t, xp.int64)
    ok = (p >= 0) & (p < C) & (t >= 0) & (t < C)
    flat = xp.where(ok, t * C + p, C * C)
    # Accumulate in int32 (CuPy's scatter_add has no int64 atomics), in chunks short enough
    # that no cell can overflow, and sum the chunks in int64.
    zeros32 = xp.zeros((C * C + 1,), dtype=xp.int32, device=dev)
    counts = xp.zeros((C * C + 1,), dtype=xp.int64, device=dev)
    n = int(flat.shape[0])
    for a in range(0, n, _CHUNK):
        b = min(a + _CHUNK, n)
        ones = xp.ones((b - a,), dtype=xp.int32, device=dev)
        counts = counts + xp.astype(be.scatter_add(zeros32, flat[a:b], ones), xp.int64)
    return counts


_CHUNK = 2**31 - 1  # the most samples one int32 cell can count


def _prf(xp, counts, C, average):
    """Precision, recall and F1 from ``_pair_counts``, as float32 (per class for ``average=None``).

    Per class ``c``: ``P = tp / predicted``, ``R = tp / actual``, ``F1 = 2 tp / (predicted + actual)``,
    each 0 where its denominator is 0; macro: their mean over the classes present in the target
    or the predictions; micro: the same ratios of the totals."""
    f32 = xp.float32
    m = xp.reshape(counts[: C * C], (C, C))
    tp = xp.astype(xp.reshape(m, (-1,))[:: C + 1], f32)
    predicted = xp.astype(xp.sum(m, axis=0), f32)
    actual = xp.astype(xp.sum(m, axis=1), f32)
    if average == "micro":
        tp, predicted, actual = xp.sum(tp), xp.sum(predicted), xp.sum(actual)
    figures = tuple(xp.where(den > 0, num / xp.maximum(den, 1.0), 0.0)
                    for num, den in ((tp, predicted), (tp, actual), (2 * tp, predicted + actual)))
    if average == "macro":
        present = xp.sum(xp.astype((predicted + actual) > 0, f32))
        figures = tuple(xp.sum(v) / xp.maximum(present, 1.0) for v in figures)
    return figures


def _topk_hits(xp, logits, t, k):
    """``(hits, bad)`` 0-d int64: samples whose target is among the top ``k`` logits (fewer than
    ``k`` logits exceed its own), and samples whose target lies outside ``[0, C)``."""
    C = logits.shape[1]
    t = xp.astype(t, xp.int64)
    ok = (t >= 0) & (t < C)
    own = xp.take_along_axis(logits, xp.where(ok, t, 0)[:, None], axis=1)
    above = xp.sum(xp.astype(logits > own, xp.int64), axis=1)
    i64 = xp.int64
    return xp.sum(xp.astype(ok & (above < k), i64)), xp.sum(xp.astype(~ok, i64))


def _rmse(xp, sse, n):
    """Mean over outputs of ``sqrt(sum (y - t)^2 / n)``."""
    return xp.mean(xp.sqrt(sse / n))


def _r2(xp, m2, sse):
    """Mean over outputs of ``1 - SS_res / SS_tot`` (``SS_tot = sum (t - mean t)^2 = m2``); an output
    with a constant target scores 1 when predicted exactly, else 0 (scikit-learn's force_finite)."""
    constant = 1.0 - xp.astype(sse > 0, sse.dtype)
    per = xp.where(m2 > 0, 1.0 - sse / xp.where(m2 > 0, m2, 1.0), constant)
    return xp.mean(per)


def _moments(xp, t):
    """Column means ``(D,)`` and sums of squared deviations ``(D,)`` of ``t (N, D)``."""
    mean = xp.mean(t, axis=0)
    return mean, xp.sum((t - mean) ** 2, axis=0)


def _nan_if(xp, bad, value):
    return xp.where(bad > 0, xp.nan, value)


# -- functions --------------------------------------------------------------------------------
def accuracy(logits_or_pred, target):
    """The fraction of correct predictions, as a 0-d float32 array on the device (no host read).

    ``logits_or_pred``: float logits ``(N, C)`` (the prediction is their argmax over axis 1)
    or integer labels ``(N,)``; ``target``: integer labels ``(N,)`` on the same backend.
    """
    be = backends.backend_of(logits_or_pred)
    xp = be.xp
    pred, target = _labels("accuracy", be, logits_or_pred, target)
    n = pred.shape[0]
    _nonempty("accuracy", n)
    correct = xp.sum(xp.astype(pred == target, xp.int64))
    # asarray: numpy turns 0-d results into scalars; keep a 0-d array on every backend
    return xp.asarray(xp.astype(correct, xp.float32) / n, device=be.device)


def top_k_accuracy(logits, target, k=5):
    """The fraction of samples whose target is among the ``k`` largest logits: 0-d float32.

    ``logits (N, C)`` float, ``target (N,)`` integer labels; ``1 <= k <= C``. Ties go in the
    target's favour (a hit when fewer than ``k`` logits are strictly larger than its own).
    """
    fn = "top_k_accuracy"
    be = backends.backend_of(logits)
    xp = be.xp
    k = positive_int(fn, "k", k)
    if logits.ndim != 2 or not be.is_float(logits.dtype):
        raise ValueError(f"{fn}: expected float logits (N, C), got shape {tuple(logits.shape)} of dtype "
                         f"{be.dtype_name(logits.dtype)}")
    _labels(fn, be, logits, target)
    C, n = int(logits.shape[1]), int(logits.shape[0])
    if k > C:
        raise ValueError(f"{fn}: k={k} exceeds the number of classes C={C} (logits shape {tuple(logits.shape)})")
    _nonempty(fn, n)
    hits, bad = _topk_hits(xp, logits, target, k)
    return xp.asarray(_nan_if(xp, bad, xp.astype(hits, xp.float32) / n), device=be.device)


def precision_recall_f1(pred_or_logits, target, num_classes, average="macro"):
    """``(precision, recall, f1)`` on the device: 0-d float32 for ``average="macro"`` or
    ``"micro"``, ``(C,)`` per class for ``average=None``. Per class ``c``:
    ``P = tp / predicted``, ``R = tp / actual``, ``F1 = 2 tp / (predicted + actual)``; macro: their
    mean over the classes present in the target or the predictions; micro: the ratios of the totals.

    ``pred_or_logits``: logits ``(N, C)`` (their argmax) or labels ``(N,)``; ``target (N,)``;
    ``num_classes = C`` (must equal the logits' last axis). Zero divisions give 0, as
    scikit-learn's ``zero_division=0``. Micro averages of single-label data all equal the accuracy.
    """
    fn = "precision_recall_f1"
    if average not in ("macro", "micro", None):
        raise ValueError(f"{fn}: average must be 'macro', 'micro' or None, got {average!r}")
    be = backends.backend_of(pred_or_logits)
    C = _num_classes(fn, pred_or_logits, num_classes)
    pred, target = _labels(fn, be, pred_or_logits, target)
    _nonempty(fn, int(pred.shape[0]))
    xp = be.xp
    counts = _pair_counts(be, pred, target, C)
    return tuple(_nan_if(xp, counts[C * C], v) for v in _prf(xp, counts, C, average))


def confusion_matrix(pred, target, num_classes):
    """Counts ``M (C, C)`` int64 on the device of ``pred``: ``M[i, j]`` = samples of true class ``i``
    predicted as class ``j``.

    ``pred``: integer labels ``(N,)`` (or float logits ``(N, C)``, argmax over axis 1);
    ``target``: integer labels ``(N,)``; ``num_classes = C``. Labels outside ``[0, C)``
    raise ValueError (that check reads one number back to the host).
    """
    fn = "confusion_matrix"
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"{fn}: num_classes must be a positive int, got {num_classes!r}")
    C = int(num_classes)
    be = backends.backend_of(pred)
    xp = be.xp
    pred, target = _labels(fn, be, pred, target)
    counts = _pair_counts(be, pred, target, C)
    if pred.shape[0] and int(counts[C * C]):
        both = xp.astype(xp.concat((pred, target)), xp.int64)
        raise ValueError(f"{fn}: labels must lie in [0, {C}), got values in [{int(xp.min(both))}, {int(xp.max(both))}]")
    return xp.reshape(counts[: C * C], (C, C))


def mean_absolute_error(pred, target):
    """``mean |pred - target|`` over every element: 0-d, in pred's dtype. Shapes ``(N,)`` or ``(N, D)``."""
    be, pred, target = _pair("mean_absolute_error", pred, target)
    _nonempty("mean_absolute_error", int(pred.shape[0]))
    xp = be.xp
    return xp.asarray(xp.mean(xp.abs(pred - target)), device=be.device)


def root_mean_squared_error(pred, target):
    """``sqrt(mean (pred - target)^2)`` per output, averaged over outputs: 0-d, in pred's dtype."""
    be, pred, target = _pair("root_mean_squared_error", pred, target)
    n = int(pred.shape[0])
    _nonempty("root_mean_squared_error", n)
    xp = be.xp
    return xp.asarray(_rmse(xp, xp.sum((pred - target) ** 2, axis=0), n), device=be.device)


def r2_score(pred, target):
    """The coefficient of determination ``1 - sum (t - y)^2 / sum (t - mean t)^2`` per output,
    averaged over outputs: 0-d, in pred's dtype (1 is a perfect fit; 0 predicts the mean)."""
    be, pred, target = _pair("r2_score", pred, target)
    _nonempty("r2_score", int(pred.shape[0]))
    xp = be.xp
    _, m2 = _moments(xp, target)
    return xp.asarray(_r2(xp, m2, xp.sum((pred - target) ** 2, axis=0)), device=be.device)


# -- streaming metrics ----------------------------------------------------------------------
class Metric:
    """A figure accumulated over batches. ``update(out, target)`` adds one batch to running sums
    kept on the device (no host read); ``result()`` reads them and returns ``{key: float}``;
    ``reset()`` starts over (``fit`` and ``evaluate`` reset each metric before each pass).

    ``name`` is the spec :func:`get` accepts and the prefix of the result keys.
    """

    name = ""

    def __init__(self):
        self.reset()

    def reset(self):
        self.n = 0  # samples seen: shapes are known on the host, so counting them reads nothing

    def update(self, out, target):
        raise NotImplementedError

    def result(self) -> dict:
        raise NotImplementedError

    def _seen(self):
        if self.n == 0:
            raise ValueError(f"{type(self).__name__}.result: no samples were seen (call update first)")

    def __repr__(self):
        return f"{type(self).__name__}()"


def _out_of_range(metric, bad, C):
    """Raise if any target (or label) fell outside ``[0, C)``: one host read, at result time."""
    bad = int(bad)
    if bad:
        raise ValueError(f"{type(metric).__name__}.result: {bad} label(s) lay outside [0, {C}); they were not counted")


class Accuracy(Metric):
    """The fraction of samples whose prediction (argmax of the logits, or the label) equals the target."""

    name = "accuracy"

    def reset(self):
        super().reset()
        self.hits = None

    def update(self, out, target):
        be = backends.backend_of(out)
        pred, target = _labels(f"{type(self).__name__}.update", be, out, target)
        xp = be.xp
        hit = xp.sum(xp.astype(pred == target, xp.int64))
        self.hits = hit if self.hits is None else self.hits + hit
        self.n += int(pred.shape[0])

    def result(self):
        self._seen()
        return {self.name: int(self.hits) / self.n}


class TopKAccuracy(Metric):
    """The fraction of samples whose target is among the ``k`` largest logits (see :func:`top_k_accuracy`);
    result key ``top{k}_accuracy``."""

    def __init__(self, k=5):
        self.k = positive_int("TopKAccuracy", "k", k)
        self.name = f"top{self.k}"
        super().__init__()

    def reset(self):
        super().reset()
        self.hits = self.bad = None
        self.num_classes = None

    def update(self, out, target):
        fn = f"{type(self).__name__}.update"
        be = backends.backend_of(out)
        if out.ndim != 2 or not be.is_float(out.dtype):
            raise ValueError(f"{fn}: expected float logits (N, C), got shape {tuple(out.shape)}")
        C = _num_classes(fn, out, self.num_classes)
        if self.k > C:
            raise ValueError(f"{fn}: k={self.k} exceeds the number of classes C={C} (logits shape {tuple(out.shape)})")
        _labels(fn, be, out, target)
        hits, bad = _topk_hits(be.xp, out, target, self.k)
        self.hits = hits if self.hits is None else self.hits + hits
        self.bad = bad if self.bad is None else self.bad + bad
        self.num_classes = C
        self.n += int(out.shape[0])

    def result(self):
        self._seen()
        _out_of_range(self, self.bad, self.num_classes)
        return {f"{self.name}_accuracy": int(self.hits) / self.n}

    def __repr__(self):
        return f"TopKAccuracy(k={self.k})"


class _Confusion(Metric):
    """Keeps the confusion counts on the device; precision, recall and F1 come from them.

    ``num_classes``: None takes it from the first batch's logits ``(N, C)``; needed when
    ``out`` are labels. ``average``: ``"macro"`` or ``"micro"``. After updates,
    ``precision_per_class``, ``recall_per_class`` and ``f1_per_class`` are lists of floats
    (one host read each).
    """

    figure = 0  # which of (precision, recall, f1) result() reports

    def __init__(self, num_classes=None, average="macro"):
        owner = type(self).__name__
        if average not in ("macro", "micro"):
            raise ValueError(f"{owner}: average must be 'macro' or 'micro', got {average!r}")
        self.average = average
        self.given = None if num_classes is None else positive_int(owner, "num_classes", num_classes)
        super().__init__()

    def reset(self):
        super().reset()
        self.counts = None
        self.num_classes = self.given

    def update(self, out, target):
        fn = f"{type(self).__name__}.update"
        be = backends.backend_of(out)
        C = _num_classes(fn, out, self.num_classes)
        pred, target = _labels(fn, be, out, target)
        counts = _pair_counts(be, pred, target, C)
        self.counts = counts if self.counts is None else self.counts + counts
        self.num_classes = C
        self.n += int(pred.shape[0])

    def _figures(self, average):
        self._seen()
        C = self.num_classes
        _out_of_range(self, self.counts[C * C], C)
        return _prf(backends.backend_of(self.counts).xp, self.counts, C, average)

    def _per_class(self, i):
        return backends.to_numpy(self._figures(None)[i]).tolist()

    @property
    def precision_per_class(self) -> list:
        return self._per_class(0)

    @property
    def recall_per_class(self) -> list:
        return self._per_class(1)

    @property
    def f1_per_class(self) -> list:
        return self._per_class(2)

    def result(self):
        return {self.name: float(self._figures(self.average)[self.figure])}

    def __repr__(self):
        return f"{type(self).__name__}(num_classes={self.given}, average={self.average!r})"


class Precision(_Confusion):
    """``tp / predicted`` per class, macro-averaged (0 for a class never predicted)."""

    name, figure = "precision", 0


class Recall(_Confusion):
    """``tp / actual`` per class, macro-averaged."""

    name, figure = "recall", 1


class F1(_Confusion):
    """``2 tp / (predicted + actual)`` per class (the harmonic mean of precision and recall), macro-averaged."""

    name, figure = "f1", 2


class _Regression(Metric):
    """Per-output running sums of a regression figure; ``D`` outputs fixed by the first batch."""

    def reset(self):
        super().reset()
        self.sums = None

    def _batch(self, out, target):
        be, pred, target = _pair(f"{type(self).__name__}.update", out, target)
        if self.sums is not None and int(pred.shape[1]) != int(self.sums[0].shape[0]):
            raise ValueError(f"{type(self).__name__}.update: this batch has {int(pred.shape[1])} outputs, "
                             f"earlier ones had {int(self.sums[0].shape[0])}")
        return be.xp, pred, target

    def _add(self, *parts):
        self.sums = parts if self.sums is None else tuple(a + b for a, b in zip(self.sums, parts))


class MAE(_Regression):
    """Mean absolute error over every element (see :func:`mean_absolute_error`)."""

    name = "mae"

    def update(self, out, target):
        xp, pred, target = self._batch(out, target)
        self._add(xp.sum(xp.abs(pred - target), axis=0))
        self.n += int(pred.shape[0])

    def result(self):
        self._seen()
        (sae,) = self.sums
        return {self.name: float(backends.namespace_of(sae).mean(sae)) / self.n}


class RMSE(_Regression):
    """Root mean squared error per output, averaged over outputs (see :func:`root_mean_squared_error`)."""

    name = "rmse"

    def update(self, out, target):
        xp, pred, target = self._batch(out, target)
        self._add(xp.sum((pred - target) ** 2, axis=0))
        self.n += int(pred.shape[0])

    def result(self):
        self._seen()
        (sse,) = self.sums
        return {self.name: float(_rmse(backends.namespace_of(sse), sse, self.n))}


class R2(_Regression):
    """The coefficient of determination (see :func:`r2_score`), from per-output running target
    means, sums of squared deviations and residual sums of squares.

    The target's spread is merged batch by batch (Chan et al.'s pairwise update) rather than as
    ``sum t^2 - (sum t)^2 / n``, which cancels catastrophically in float32 for targets far from 0.
    """

    name = "r2"

    def update(self, out, target):
        xp, pred, target = self._batch(out, target)
        nb = int(pred.shape[0])
        if nb == 0:
            return
        mean_b, m2_b = _moments(xp, target)
        sse_b = xp.sum((pred - target) ** 2, axis=0)
        if self.sums is None:
            self.sums = (mean_b, m2_b, sse_b)
        else:
            mean, m2, sse = self.sums
            total = self.n + nb
            d = mean_b - mean
            self.sums = (mean + d * (nb / total), m2 + m2_b + d * d * (self.n * nb / total), sse + sse_b)
        self.n += nb

    def result(self):
        self._seen()
        _, m2, sse = self.sums
        return {self.name: float(_r2(backends.namespace_of(m2), m2, sse))}


# -- by name ---------------------------------------------------------------------------------
_BY_NAME = {"accuracy": Accuracy, "precision": Precision, "recall": Recall, "f1": F1, "mae": MAE, "rmse": RMSE, "r2": R2}
_TOP_K = re.compile(r"top(\d+)|top_k:(\d+)")
NAMES = ("accuracy", "top5", "top_k:K", "precision", "recall", "f1", "mae", "rmse", "r2")


def get(spec) -> Metric:
    """A :class:`Metric` from ``spec``: a Metric (returned as it is) or a name: ``"accuracy"``,
    ``"top5"`` (any ``"topK"``) or ``"top_k:3"``, ``"precision"``, ``"recall"``, ``"f1"``,
    ``"mae"``, ``"rmse"``, ``"r2"``. A name gives a fresh metric each call."""
    if isinstance(spec, Metric):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"metrics.get: expected a metric name or a Metric, got {type(spec).__name__}")
    cls = _BY_NAME.get(spec)
    if cls is not None:
        return cls()
    m = _TOP_K.fullmatch(spec)
    if m is not None and int(m.group(1) or m.group(2)) > 0:
        return TopKAccuracy(int(m.group(1) or m.group(2)))
    raise ValueError(f"metrics.get: unknown metric {spec!r}; valid names: {', '.join(NAMES)}")


def resolve(specs, where="fit"):
    """A tuple of Metrics from ``specs``: None, one spec, or a list of them (see :func:`get`);
    two metrics of one name would report the same keys, which raises ValueError."""
    if specs is None:
        return ()
    if isinstance(specs, (str, Metric)):
        specs = [specs]
    elif not isinstance(specs, (list, tuple)):
        raise TypeError(f"{where}: metrics must be a list of names or Metrics, got {type(specs).__name__}")
    out = tuple(get(s) for s in specs)
    names = [m.name for m in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{where}: metric {dup[0]!r} was given more than once")
    return out
