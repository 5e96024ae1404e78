"""BCEWithLogitsLoss: binary cross-entropy on logits, with torch's weight and pos_weight."""

from __future__ import annotations

import math

from ... import backends
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
        g = self._seed(dy, z, tuple(z.shape), math.prod(z.shape))
        if w is not None:
            g = w * g
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
