"""Margin losses on labels +-1 or 0/1 given as a target of the prediction's shape:
HingeEmbeddingLoss, SoftMarginLoss and MultiLabelSoftMarginLoss."""

from __future__ import annotations

import math

from ... import backends
from ...validate import real
from .._checks import require_float, shape_str
from .base import Loss, as_array, target_dtype_error
from .bce import WeightedLoss, log_sigmoid, sigmoid


class _LabelTargetLoss(Loss):
    """A loss whose target ``t`` has the prediction's shape and holds labels: floats of the
    prediction's dtype (which get a gradient) or integers (which do not, and count as floats)."""

    def _pair(self, pred, target):
        """``(xp, t, float_target)``: ``t`` in the prediction's dtype, after checking both."""
        tag = self._tag()
        be = require_float(tag, pred, "prediction")
        self._check_target_place(target, pred)
        is_int = target.dtype in be.int_dtypes
        if not is_int and target.dtype != pred.dtype:
            raise target_dtype_error(tag, target, pred)
        if tuple(target.shape) != tuple(pred.shape):
            raise ValueError(f"{tag} expected target of shape {shape_str(pred.shape)} (the prediction's), "
                             f"got {shape_str(target.shape)}")
        return be.xp, (be.xp.astype(target, pred.dtype) if is_int else target), not is_int


class HingeEmbeddingLoss(_LabelTargetLoss):
    """As ``torch.nn.HingeEmbeddingLoss``, on distances (or scores) ``x`` with labels ``t = +-1``::

        l = x                        where t = 1
        l = max(0, margin - x)       where t = -1

    (as torch, a label that is neither gets both terms). ``"mean"`` divides by ``numel``. Shapes:
    ``x`` and ``t`` of one shape ``(*)``, 0-d included.

    Backward, with ``g = dy`` (``/ numel`` for ``"mean"``): ``dx = ([t != -1] - [t != 1][x <= margin]) g``;
    the target enters only through comparisons: ``dt = 0``. Keeps ``x`` and ``t``.
    """

    _config_fields = ("margin", "reduction")

    def __init__(self, margin: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = real("HingeEmbeddingLoss", "margin", margin)

    def forward(self, pred, target):
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        xp, t, has_grad = self._pair(pred, target)
        per = xp.where(t != 1.0, xp.maximum(self.margin - pred, 0.0), 0.0) + xp.where(t != -1.0, pred, 0.0)
        self.save_for_backward(pred, t, has_grad)
        return self._reduce(xp, as_array(xp, per), math.prod(pred.shape))

    def _backward(self, saved, dy, input_grad, target_grad):
        x, t, has_grad = saved
        xp = backends.namespace_of(x)
        g = self._seed(dy, x, tuple(x.shape), math.prod(x.shape))
        dx = None
        if input_grad:
            local = xp.astype(t != -1.0, x.dtype) - xp.astype((t != 1.0) & (x <= self.margin), x.dtype)
            dx = as_array(xp, local * g)
        return dx, (xp.zeros_like(x) if target_grad and has_grad else None)

    def extra_repr(self):
        parts = [f"margin={self.margin}"] if self.margin != 1.0 else []
        return ", ".join(parts + ([super().extra_repr()] if self.reduction != "mean" else []))


class SoftMarginLoss(_LabelTargetLoss):
    """As ``torch.nn.SoftMarginLoss``: the logistic loss of scores ``x`` with labels ``t = +-1``,
    ``l = log(1 + exp(-t x))``, computed without overflow (``-log sigmoid(t x)``; torch's
    ``log1p(exp(-t x))`` overflows to inf beyond ``t x < -710``). ``"mean"`` divides by ``numel``.
    Shapes: ``x`` and ``t`` of one shape ``(*)``, 0-d included.

    Backward, with ``g = dy`` (``/ numel`` for ``"mean"``) and ``s = sigmoid(-t x)``:
    ``dx = -t s g`` and, for a float target, ``dt = -x s g`` (torch refuses a target that needs
    a gradient). Keeps ``x`` and ``t``.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, pred, target):
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        xp, t, has_grad = self._pair(pred, target)
        self.save_for_backward(pred, t, has_grad)
        return self._reduce(xp, as_array(xp, -log_sigmoid(xp, t * pred)), math.prod(pred.shape))

    def _backward(self, saved, dy, input_grad, target_grad):
        x, t, has_grad = saved
        xp = backends.namespace_of(x)
        g = self._seed(dy, x, tuple(x.shape), math.prod(x.shape))
        s = sigmoid(xp, -(t * x)) * g
        dx = as_array(xp, -(t * s)) if input_grad else None
        return dx, (as_array(xp, -(x * s)) if target_grad and has_grad else None)


class MultiLabelSoftMarginLoss(_LabelTargetLoss, WeightedLoss):
    """As ``torch.nn.MultiLabelSoftMarginLoss``: one-vs-all logistic loss of logits ``x`` with
    0/1 targets ``t`` over the last axis (``C`` classes), averaged over the classes::

        l_n = (1 / C) sum_c w_c ((1 - t_nc) x_nc - log sigmoid(x_nc))

    (``-(t log sigmoid(x) + (1 - t) log sigmoid(-x))``, without overflow). Shapes: ``x (C,)``,
    ``(N, C)`` (or ``(N, ..., C)``), ``t`` of that shape (floats or integers); ``"none"`` returns
    ``(N,)`` (``()`` for ``(C,)``); ``"mean"`` divides ``sum(l)`` by ``N``. ``weight``: broadcast
    against ``x`` (``(C,)``: one per class), a buffer on ``backend`` in ``dtype`` (default float32).

    Backward, with ``g_n = dy_n / C`` (``/ N`` too for ``"mean"``): ``dx = (sigmoid(x) - t) w g``
    and, for a float target, ``dt = -x w g``. Keeps ``x``, ``t`` and ``w``.
    """

    def forward(self, pred, target):
        tag = self._tag()
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        xp, t, has_grad = self._pair(pred, target)
        if pred.ndim == 0 or pred.shape[-1] == 0:
            raise ValueError(f"{tag} expected input of shape (C,) or (N, C) with C >= 1, got {shape_str(pred.shape)}")
        w = self._broadcastable(self.weight, "weight", pred)
        per = (1.0 - t) * pred - log_sigmoid(xp, pred)
        if w is not None:
            per = per * w
        per = xp.sum(per, axis=-1) * (1.0 / pred.shape[-1])
        self.save_for_backward(pred, t, w, has_grad)
        return self._reduce(xp, as_array(xp, per), math.prod(per.shape))

    def _backward(self, saved, dy, input_grad, target_grad):
        x, t, w, has_grad = saved
        xp = backends.namespace_of(x)
        shape = tuple(x.shape[:-1])
        g = self._seed(dy, x, shape, math.prod(shape))
        if type(g) is not float and g.ndim:
            g = xp.expand_dims(g, axis=-1)
        g = g * (1.0 / x.shape[-1])
        if w is not None:
            g = w * g
        dx = as_array(xp, (sigmoid(xp, x) - t) * g) if input_grad else None
        return dx, (as_array(xp, -(x * g)) if target_grad and has_grad else None)
