"""Binary cross-entropy: BCEWithLogitsLoss on logits (with torch's weight and pos_weight), and
BCELoss on probabilities."""

from __future__ import annotations

import math

from ... import backends
from .. import deferred
from .._checks import shape_str
from .base import Loss, as_array


def log_sigmoid(xp, z):
    """``log(sigmoid(z)) = min(z, 0) - log(1 + exp(-|z|))``: exp only of ``-|z|``, no overflow."""
    return xp.minimum(z, 0.0) - xp.log1p(xp.exp(-xp.abs(z)))


def sigmoid(xp, z):
    """``1 / (1 + exp(-z))`` without overflow."""
    e = xp.exp(-xp.abs(z))
    r = 1.0 / (1.0 + e)
    return xp.where(z >= 0, r, e * r)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits ``z`` with targets ``t`` (any reals; probabilities in
    [0, 1] usually), as ``torch.nn.BCEWithLogitsLoss``::

        l = w * ((1 - t) z - (1 + (pos_weight - 1) t) log sigmoid(z))

    (overflow-free for logits of any size; with ``pos_weight = 1`` it is
    ``-w (t log sigmoid(z) + (1 - t) log(1 - sigmoid(z)))``). ``"mean"`` divides by ``numel``.

    Shapes: ``z`` and ``t`` of one shape ``(*)``; ``weight`` and ``pos_weight`` broadcast to it
    (``pos_weight (C,)``: one weight per class along the last axis); output ``()`` or ``(*)``
    for ``"none"``. ``weight``/``pos_weight``: None, numbers, lists or arrays, stored as
    buffers on ``backend`` in ``dtype`` (default float32), moved by ``.to(...)``.

    Backward, with ``g = w dy`` (``/ numel`` for ``"mean"``) and ``p = pos_weight``:
    ``dz = ((p t + 1 - t) sigmoid(z) - p t) g`` (``(sigmoid(z) - t) g`` without ``pos_weight``),
    ``dt = (log sigmoid(-z) - p log sigmoid(z)) g`` (``-z g``). Keeps ``z`` and ``t``.
    """

    _config_fields = ("weight", "reduction", "pos_weight")
    _buffer_names = ("weight", "pos_weight")

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None, *, backend=None, dtype=None):
        super().__init__(reduction)
        self._buffers(backend, dtype, weight=weight, pos_weight=pos_weight)  # sets self.weight, self.pos_weight

    def forward(self, pred, target):
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        xp = self._check_pair(pred, target)
        w = self._broadcastable(self.weight, "weight", pred)
        pw = self._broadcastable(self.pos_weight, "pos_weight", pred)
        ls = log_sigmoid(xp, pred)
        if pw is None:
            loss = (1.0 - target) * pred - ls
        else:
            loss = (1.0 - target) * pred - ((pw - 1.0) * target + 1.0) * ls
        if w is not None:
            loss = loss * w
        self.save_for_backward(pred, target, w, pw)
        return self._reduce(xp, loss, math.prod(pred.shape))

    def _broadcastable(self, b, name, pred):
        if b is None:
            return None
        self._check_buffer(b, name, pred, "prediction")
        bs, ps = tuple(b.shape), tuple(pred.shape)
        if len(bs) > len(ps) or any(x not in (1, y) for x, y in zip(reversed(bs), reversed(ps))):
            raise ValueError(
                f"{self._tag()} has a {name} of shape {shape_str(bs)}, which does not broadcast to "
                f"the prediction's shape {shape_str(ps)}"
            )
        return b

    def _backward(self, saved, dy, input_grad, target_grad):
        z, t, w, pw = saved
        xp = backends.namespace_of(z)
        g = weighted_seed(self, dy, z, w)
        dz = dt = None
        if input_grad:
            if pw is None:
                local = sigmoid(xp, z) - t
            else:
                pt = pw * t
                local = (pt + 1.0 - t) * sigmoid(xp, z) - pt
            dz = as_array(xp, local * g)
        if target_grad:
            local = -z if pw is None else log_sigmoid(xp, -z) - pw * log_sigmoid(xp, z)
            dt = as_array(xp, local * g)
        return dz, dt


def weighted_seed(loss, dy, ref, w):
    """``loss._seed`` for an elementwise loss (``ref``: the prediction), times the weight ``w`` (None: 1)."""
    g = loss._seed(dy, ref, tuple(ref.shape), math.prod(ref.shape))
    return g if w is None else w * g


class WeightedLoss(Loss):
    """A loss with an elementwise ``weight`` (None, a number, a list or an array) broadcast against
    the prediction, a buffer on ``backend`` in ``dtype`` (default float32), as torch's ``_WeightedLoss``."""

    _config_fields = ("weight", "reduction")
    _buffer_names = ("weight",)
    _broadcastable = BCEWithLogitsLoss._broadcastable

    def __init__(self, weight=None, reduction: str = "mean", *, backend=None, dtype=None):
        super().__init__(reduction)
        self._buffers(backend, dtype, weight=weight)  # sets self.weight


class BCELoss(WeightedLoss):
    """Binary cross-entropy on probabilities ``p`` in [0, 1] (a Sigmoid's output) with targets
    ``t``, as ``torch.nn.BCELoss``; each log is clamped at -100, as torch does, so that ``p = 0``
    or ``1`` gives a finite loss::

        l = -w (t max(log p, -100) + (1 - t) max(log(1 - p), -100))

    (prefer :class:`BCEWithLogitsLoss` on logits: it needs no clamp.) ``"mean"`` divides by
    ``numel``. Shapes: ``p`` and ``t`` of one shape ``(*)``, 0-d included; ``weight`` broadcasts
    to it (None, a number, a list or an array, stored as a buffer on ``backend`` in ``dtype``,
    default float32). A ``p`` outside [0, 1] raises ``ValueError`` (one boolean read back; inside
    :func:`~xpnet.layers.deferred.deferred_checks` none: the loss is NaN and the error comes when
    the loop reads its checks).

    Backward, with ``g = w dy`` (``/ numel`` for ``"mean"``), as torch's:
    ``dp = (p - t) / max(p (1 - p), 1e-12) g`` (1e-12 rounded to float32, as torch's) and
    ``dt = (log(1 - p) - log p) g`` (unclamped: infinite at ``p = 0`` or ``1``). Keeps ``p`` and ``t``.
    """

    def forward(self, pred, target):
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        xp = self._check_pair(pred, target)
        w = self._broadcastable(self.weight, "weight", pred)
        bad = self._check_probabilities(xp, pred)
        p = pred if bad is None else xp.clip(pred, 0.0, 1.0)  # deferred: no log of a negative number
        log_p, log_q = _logs(xp, p)
        loss = (target - 1.0) * xp.maximum(log_q, -100.0) - target * xp.maximum(log_p, -100.0)
        if w is not None:
            loss = loss * w
        self.save_for_backward(pred, target, w)
        out = self._reduce(xp, as_array(xp, loss), math.prod(pred.shape))
        return out if bad is None else xp.where(bad, math.nan, out)

    def _check_probabilities(self, xp, p):
        """Raise unless every ``p`` lies in [0, 1] (NaN passes: the loss is NaN); inside
        :func:`~xpnet.layers.deferred.deferred_checks`, the recorded 0-d flag instead (no read)."""
        if math.prod(p.shape) == 0:
            return None
        outside = xp.any((p < 0.0) | (p > 1.0))
        checks = deferred.active()
        if checks is None:
            if bool(outside):
                host = backends.to_numpy(p)
                host = host[host == host]  # NaN aside
                raise ValueError(self._range_message(float(host.min()), float(host.max())))
            return None
        seen = xp.where(xp.isnan(p), 0.5, p)
        checks.record(self, xp, outside, (xp.min(seen), xp.max(seen)), self._range_message)
        return outside

    def _range_message(self, lo, hi):
        return (f"{self._tag()} expected input probabilities in [0, 1] (a Sigmoid's output; or use BCEWithLogitsLoss "
                f"on logits), got values from {lo:.6g} to {hi:.6g}")

    def _backward(self, saved, dy, input_grad, target_grad):
        p, t, w = saved
        xp = backends.namespace_of(p)
        g = weighted_seed(self, dy, p, w)
        dp = dt = None
        if input_grad:
            dp = as_array(xp, (p - t) / xp.maximum((1.0 - p) * p, _EPSILON) * g)
        if target_grad:
            log_p, log_q = _logs(xp, xp.clip(p, 0.0, 1.0))
            dt = as_array(xp, (log_q - log_p) * g)
        return dp, dt


#: torch's BCELoss divides its gradient by max(p (1 - p), EPSILON), with 1e-12 rounded to float32
_EPSILON = 9.999999960041972e-13


def _logs(xp, p):
    """``(log p, log(1 - p))`` for ``p`` in [0, 1], ``-inf`` at 0 and 1 without numpy's
    divide-by-zero warning."""
    log_p = xp.where(p == 0.0, -math.inf, xp.log(xp.where(p == 0.0, 1.0, p)))
    log_q = xp.where(p == 1.0, -math.inf, xp.log1p(-xp.where(p == 1.0, 0.0, p)))
    return log_p, log_q
