"""Losses: ``forward(pred, target)`` returns a 0-d array; ``backward()`` returns d(loss)/d(pred).

Every loss supports ``reduction="mean"`` (average over the elements, or over the
samples for cross-entropy) and ``reduction="sum"``.
"""

from __future__ import annotations

import math
import numbers

from ._checks import dtype_error, no_forward_error, place, place_error, require_float, shape_str
from .activations import stable_sigmoid

_REDUCTIONS = ("mean", "sum")


class Loss:
    """Base class: validates ``reduction``, holds what backward needs, checks call order."""

    def __init__(self, reduction: str = "mean"):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._kept = None

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forward(self, pred, target):
        raise NotImplementedError

    def backward(self):
        """d(loss)/d(pred), same shape, dtype and device as ``pred``."""
        kept = self._kept
        if kept is None:
            raise no_forward_error(self._tag())
        self._kept = None
        return self._backward(*kept)

    def _tag(self):
        return type(self).__name__

    def config(self) -> dict:
        """The constructor arguments: ``type(loss)(**loss.config())`` rebuilds it."""
        return {"reduction": self.reduction}

    def extra_repr(self):
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def _check_pair(self, pred, target):
        """Float prediction, target of the same backend/device, same dtype and shape."""
        be = require_float(self._tag(), pred, "prediction")
        if type(target) is not type(pred) or target.device != pred.device:
            raise place_error(self._tag(), target, pred, "target")
        if target.dtype != pred.dtype:
            raise dtype_error(self._tag(), target, pred.dtype, "target")
        if tuple(target.shape) != tuple(pred.shape):
            raise ValueError(
                f"{self._tag()} expected target of shape {shape_str(pred.shape)} (the prediction's), "
                f"got {shape_str(target.shape)}"
            )
        return be.xp

    def _scale(self, n):
        return 1.0 / n if self.reduction == "mean" and n > 0 else 1.0


class MSELoss(Loss):
    """``L = reduce((pred - target)^2)``; ``dL/dpred = 2 (pred - target) * s`` with ``s = 1/numel`` for mean."""

    def forward(self, pred, target):
        xp = self._check_pair(pred, target)
        d = pred - target
        s = self._scale(math.prod(pred.shape))
        self._kept = (d, s)
        return xp.asarray(xp.sum(d * d) * s)

    def _backward(self, d, s):
        return d * (2.0 * s)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits ``z`` with targets ``t`` in [0, 1]:

    ``l = max(z, 0) - z t + log(1 + exp(-|z|))`` (overflow-free), ``dl/dz = sigmoid(z) - t``.
    """

    def forward(self, pred, target):
        xp = self._check_pair(pred, target)
        s = self._scale(math.prod(pred.shape))
        loss = xp.maximum(pred, 0.0) - pred * target + xp.log1p(xp.exp(-xp.abs(pred)))
        self._kept = (stable_sigmoid(xp, pred) - target, s)
        return xp.asarray(xp.sum(loss) * s)

    def _backward(self, g, s):
        return g * s


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits ``z (N, C)`` with integer class labels ``y (N,)``.

    ``log p = z - max z - log sum exp(z - max z)`` (stable for logits of any size);
    with ``q = (1 - eps) onehot(y) + eps / C`` (label smoothing ``eps``),
    ``l_n = -sum_c q_nc log p_nc`` and ``dl/dz = softmax(z) - q``. Mean divides by N.

    Labels outside ``[0, C)`` raise ``ValueError`` (this reads one boolean back from the device).
    """

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        if (
            isinstance(label_smoothing, bool)
            or not isinstance(label_smoothing, numbers.Real)
            or not 0.0 <= label_smoothing <= 1.0
        ):
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self._class_row = None

    def forward(self, logits, target):
        tag = self._tag()
        be = require_float(tag, logits, "logits")
        xp = be.xp
        if logits.ndim != 2:
            raise ValueError(f"{tag} expected logits of shape (N, C), got {shape_str(logits.shape)}")
        n, c = logits.shape
        if type(target) is not type(logits) or target.device != logits.device:
            raise place_error(tag, target, logits, "target")
        if target.dtype not in be.int_dtypes:
            raise TypeError(
                f"{tag} expected integer class labels as target, got {be.dtype_name(target.dtype)} "
                f"(from {place(target)}); convert them with xp.astype(y, xp.int64)"
            )
        if tuple(target.shape) != (n,):
            raise ValueError(f"{tag} expected target of shape ({n},) for logits {shape_str(logits.shape)}, got {shape_str(target.shape)}")
        if n and bool((xp.min(target) < 0) | (xp.max(target) >= c)):  # one read-back, not a wrong answer
            lo, hi = int(xp.min(target)), int(xp.max(target))
            raise ValueError(f"{tag} expected class labels in [0, {c}), got labels from {lo} to {hi}")
        shifted = logits - xp.max(logits, axis=1, keepdims=True)
        e = xp.exp(shifted)
        total = xp.sum(e, axis=1, keepdims=True)
        q = xp.astype(target[:, None] == self._classes(xp, c, target), logits.dtype)
        eps = self.label_smoothing
        if eps:
            q = q * (1.0 - eps) + eps / c
        s = self._scale(n)
        # sum_c q_nc = 1, so -sum_c q_nc log p_nc = log(total_n) - sum_c q_nc shifted_nc
        loss = (xp.sum(xp.log(total)) - xp.sum(q * shifted)) * s
        self._kept = (e / total, q, s)
        return xp.asarray(loss)

    def _classes(self, xp, c, target):
        """The row ``[0, 1, ..., C-1]`` on the target's device, made once per shape and place."""
        key = (c, target.dtype, target.device, type(target))
        cached = self._class_row
        if cached is None or cached[0] != key:
            cached = self._class_row = (key, xp.arange(c, dtype=target.dtype, device=target.device)[None, :])
        return cached[1]

    def _backward(self, p, q, s):
        g = p - q
        return g * s if s != 1.0 else g

    def config(self) -> dict:
        return {**super().config(), "label_smoothing": self.label_smoothing}

    def extra_repr(self):
        parts = [super().extra_repr()] if self.reduction != "mean" else []
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(parts)
