"""What the losses over integer class labels share (CrossEntropyLoss, NLLLoss, MultiMarginLoss,
MultiLabelMarginLoss): the label-range check (eager, or deferred inside
:func:`~xpnet.layers.deferred.deferred_checks`), the per-class weight buffer, and the index helpers."""

from __future__ import annotations

import math

from ... import backends
from .. import deferred
from .._checks import shape_str
from .base import Loss

_INT64_MAX = 2**63 - 1


class ClassLabelLoss(Loss):
    """A loss whose target holds class labels ``y`` in ``[0, C)``, ``C`` the size of the
    prediction's class axis; ``ignore_index`` (None here: none) names a label that counts for
    nothing. Subclasses call :meth:`_valid_targets` (with ``ignore_index``) or
    :meth:`_check_labels` (every label checked) in their forward."""

    ignore_index = None

    def _class_weights(self, backend, dtype, weight):
        """Set ``self.weight``: None, or a 1-D buffer of one weight per class."""
        self._buffers(backend, dtype, weight=weight)
        if self.weight is not None and self.weight.ndim != 1:
            raise ValueError(
                f"{self._tag()}: weight must be 1-D, one value per class, got shape {shape_str(self.weight.shape)}"
            )

    def _class_weight(self, ref, c, what):
        """The weight buffer (or None), checked against ``ref`` (the prediction) with ``c`` classes."""
        w = self.weight
        if w is not None:
            self._check_buffer(w, "weight", ref, what)
            if w.shape[0] != c:
                raise ValueError(f"{self._tag()} has a weight for {w.shape[0]} classes but got {what} with {c} classes "
                                 f"(shape {shape_str(ref.shape)})")
        return w

    def _valid_targets(self, xp, target, c):
        """``(valid, index, bad)``: the mask of targets not ignored (None when none is), the targets
        with the ignored ones replaced by 0, and None. Labels outside ``[0, C)`` that are not
        ignored raise.

        One read-back answers the common case (every label in range, so none ignored when
        ``ignore_index`` is outside ``[0, C)``); a second is made only when some label is outside.
        Inside :func:`~xpnet.layers.deferred.deferred_checks` nothing is read: ``bad`` is a 0-d
        device flag of the check, recorded there, and ``index`` is ``target`` itself.
        """
        ii = self.ignore_index
        if math.prod(target.shape) == 0:
            return None, target, None
        checks = deferred.active()
        if checks is not None:
            valid = target != ii
            return valid, target, self._defer_label_check(checks, xp, target, c, valid)
        if not 0 <= ii < c and not bool((xp.min(target) < 0) | (xp.max(target) >= c)):
            return None, target, None
        valid = target != ii
        index = xp.where(valid, target, 0)  # an ignored target reads class 0, then is masked out
        if bool(xp.any((index < 0) | (index >= c))):
            host = backends.to_numpy(target)
            kept = host[host != ii]
            raise ValueError(self._labels_message(int(kept.min()), int(kept.max()), c))
        return valid, index, None

    def _check_labels(self, xp, target, c, low=0):
        """Every label of ``target`` must lie in ``[low, C)``: raises at once (one read-back), or,
        inside :func:`~xpnet.layers.deferred.deferred_checks`, returns the recorded 0-d device flag
        (None: nothing to check, or checked already). A caller given a flag must clamp the labels
        before indexing with them and make its output NaN where the flag is set."""
        if math.prod(target.shape) == 0:
            return None
        checks = deferred.active()
        if checks is not None:
            return self._defer_label_check(checks, xp, target, c, None, low)
        if bool((xp.min(target) < low) | (xp.max(target) >= c)):
            host = backends.to_numpy(target)
            raise ValueError(self._labels_message(int(host.min()), int(host.max()), c, low))
        return None

    def _defer_label_check(self, checks, xp, target, c, valid, low=0):
        """Record the flag "a label among the ``valid`` ones (all, for None) is outside ``[low, C)``"
        with the smallest and largest of them, and return it: no read."""
        if valid is None:
            lo, hi = xp.min(target), xp.max(target)
        else:  # the smallest and largest label not ignored (int64 bounds when every one is)
            lo = xp.min(xp.where(valid, target, _INT64_MAX))
            hi = xp.max(xp.where(valid, target, -_INT64_MAX))
        bad = (lo < low) | (hi >= c)
        checks.record(self, xp, bad, (lo, hi), lambda lo, hi: self._labels_message(lo, hi, c, low), key=(c, low))
        return bad

    def _labels_message(self, lo, hi, c, low=0):
        """The error for class labels (those not ignored) ranging over ``[lo, hi]``, not all in ``[low, c)``."""
        ii = self.ignore_index
        return (f"{self._tag()} expected class labels in [{low}, {c}){self._labels_note()}, "
                f"got labels from {lo} to {hi}"
                + ("" if ii is None or ii == -100 else f" (ignore_index={ii} aside)"))

    def _labels_note(self):
        return ""

    def _gather(self, xp, x, index):
        """``x[n, index[n, j], j]`` for ``x (N, C, *d)`` and ``index (N, *d)``, as one flat ``take``
        (numpy's take_along_axis costs tens of microseconds of index building per call)."""
        shape, c = tuple(index.shape), x.shape[1]
        d = math.prod(shape[1:])
        key = (shape, c, index.device, type(index))
        cached = self.__dict__.get("_row_starts")
        if cached is None or cached[0] != key:  # flat position of (n, 0, j): n C d + j
            dev, dt = index.device, index.dtype
            starts = xp.reshape(xp.arange(shape[0], dtype=dt, device=dev) * (c * d), (-1, 1)) \
                + xp.reshape(xp.arange(d, dtype=dt, device=dev), (1, -1))
            cached = self._row_starts = (key, xp.reshape(starts, (-1,)))
        flat = cached[1] + (xp.reshape(index, (-1,)) * d if d != 1 else xp.reshape(index, (-1,)))
        return xp.reshape(xp.take(xp.reshape(x, (-1,)), flat, axis=0), shape)

    def _classes(self, xp, c, ref, ndim):
        """``[0, 1, ..., C-1]`` shaped ``(1, C, 1, ...)`` on ``ref``'s device, made once per shape and place."""
        key = (c, ndim, ref.device, type(ref))
        cached = self.__dict__.get("_class_row")
        if cached is None or cached[0] != key:
            row = xp.arange(c, dtype=ref.dtype, device=ref.device)
            cached = self._class_row = (key, xp.reshape(row, (1, c) + (1,) * (ndim - 2)))
        return cached[1]

    def _int64(self, be, target):
        """The labels as int64: one index dtype, no mixed-sign comparisons, no overflow."""
        return target if target.dtype == be.dtype("int64") else be.xp.astype(target, be.dtype("int64"))

    def _label_dtype(self, be, target, pred_shape):
        """Raise TypeError unless ``target`` holds integers."""
        if target.dtype not in be.int_dtypes:
            raise TypeError(
                f"{self._tag()} expected integer class labels as target, got {be.dtype_name(target.dtype)} of shape "
                f"{shape_str(target.shape)} (for a prediction of shape {shape_str(pred_shape)}); convert them "
                f"with xp.astype(y, xp.int64)"
            )


def with_class_axis(xp, a):
    """``a (N, d1, ...)`` as ``(N, 1, d1, ...)``, to broadcast against ``(N, C, d1, ...)``."""
    shape = tuple(a.shape)
    return xp.reshape(a, shape[:1] + (1,) + shape[1:])
