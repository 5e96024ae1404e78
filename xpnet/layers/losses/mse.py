"""MSELoss: the squared error, elementwise, then reduced."""

from __future__ import annotations

import math

from ... import backends
from .base import Loss, as_array


class MSELoss(Loss):
    """``l = (pred - target)^2`` elementwise; ``"mean"`` divides ``sum(l)`` by ``numel``.

    Shapes: ``pred`` and ``target`` of one shape ``(*)``, 0-d included; the output is ``()``
    for ``"mean"``/``"sum"`` and ``(*)`` for ``"none"``.

    Backward, with ``g = dy`` (``"sum"``, ``"none"``) or ``dy / numel`` (``"mean"``):
    ``dpred = 2 (pred - target) g``, ``dtarget = -dpred``. Keeps ``pred - target``.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, pred, target):
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        xp = self._check_pair(pred, target)
        d = as_array(xp, pred - target)
        self.save_for_backward(d)
        return self._reduce(xp, d * d, math.prod(pred.shape))

    def _backward(self, saved, dy, input_grad, target_grad):
        (d,) = saved
        g = self._seed(dy, d, tuple(d.shape), math.prod(d.shape))
        dpred = d * (2.0 * g) if isinstance(g, float) else d * (g * 2.0)
        xp = backends.namespace_of(d)
        return as_array(xp, dpred), (as_array(xp, -dpred) if target_grad else None)
