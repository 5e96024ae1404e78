"""Classification metrics, computed on the device with the array-API standard.

>>> from xpnet import metrics
>>> acc = metrics.accuracy(logits, y)                 # 0-d float32 array; float(acc) reads it
>>> cm = metrics.confusion_matrix(pred, y, 10)        # (10, 10) int64, rows = true class
"""

from __future__ import annotations

import numbers

from . import backends

__all__ = ["accuracy", "confusion_matrix"]


def _labels(fn, be, pred, target):
    """Predicted labels ``(N,)`` (argmax of 2-D float logits) and the checked target ``(N,)``."""
    xp = be.xp
    tb = backends.backend_of(target)
    if tb is not be:
        raise ValueError(f"{fn}: predictions are on {be.label} but target is on {tb.label}")
    if pred.ndim == 2 and be.is_float(pred.dtype):
        pred = xp.argmax(pred, axis=1)
    if pred.ndim != 1 or target.ndim != 1 or pred.shape[0] != target.shape[0]:
        raise ValueError(
            f"{fn}: expected logits (N, C) or labels (N,) and target labels (N,), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    for name, a in (("predictions", pred), ("target", target)):
        if a.dtype not in be.int_dtypes:
            raise TypeError(f"{fn}: {name} must be integer class labels, got dtype {be.dtype_name(a.dtype)}")
    return pred, target


def accuracy(logits_or_pred, target):
    """The fraction of correct predictions, as a 0-d float32 array on the device (no host read).

    ``logits_or_pred``: float logits ``(N, C)`` (the prediction is their argmax over axis 1)
    or integer labels ``(N,)``; ``target``: integer labels ``(N,)`` on the same backend.
    """
    be = backends.backend_of(logits_or_pred)
    xp = be.xp
    pred, target = _labels("accuracy", be, logits_or_pred, target)
    n = pred.shape[0]
    if n == 0:
        raise ValueError("accuracy: no samples (N = 0)")
    correct = xp.sum(xp.astype(pred == target, xp.int64))
    # asarray: numpy turns 0-d results into scalars; keep a 0-d array on every backend
    return xp.asarray(xp.astype(correct, xp.float32) / n, device=be.device)


def confusion_matrix(pred, target, num_classes):
    """Counts ``M (C, C)`` int64 on the device of ``pred``: ``M[i, j]`` = samples of true class ``i``
    predicted as class ``j``.

    ``pred``: integer labels ``(N,)`` (or float logits ``(N, C)``, argmax over axis 1);
    ``target``: integer labels ``(N,)``; ``num_classes = C``. Labels outside ``[0, C)``
    raise ValueError (that check reads one boolean back to the host).
    """
    fn = "confusion_matrix"
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"{fn}: num_classes must be a positive int, got {num_classes!r}")
    C = int(num_classes)
    be = backends.backend_of(pred)
    xp, dev = be.xp, be.device
    pred, target = _labels(fn, be, pred, target)
    n = pred.shape[0]
    zeros = xp.zeros((C * C,), dtype=xp.int64, device=dev)
    if n == 0:
        return xp.reshape(zeros, (C, C))
    p, t = xp.astype(pred, xp.int64), xp.astype(target, xp.int64)
    if bool(xp.any((p < 0) | (p >= C) | (t < 0) | (t >= C))):
        lo = int(xp.min(xp.concat((p, t))))
        hi = int(xp.max(xp.concat((p, t))))
        raise ValueError(f"{fn}: labels must lie in [0, {C}), got values in [{lo}, {hi}]")
    # Accumulate in int32 (CuPy's scatter_add has no int64 atomics), in chunks short enough
    # that no cell can overflow, and sum the chunks in int64.
    flat = t * C + p
    zeros32 = xp.zeros((C * C,), dtype=xp.int32, device=dev)
    counts = zeros
    for a in range(0, n, _CHUNK):
        b = min(a + _CHUNK, n)
        ones = xp.ones((b - a,), dtype=xp.int32, device=dev)
        counts = counts + xp.astype(be.scatter_add(zeros32, flat[a:b], ones), xp.int64)
    return xp.reshape(counts, (C, C))


_CHUNK = 2**31 - 1  # the most samples one int32 cell can count
