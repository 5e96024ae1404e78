"""L1Loss, SmoothL1Loss and HuberLoss: elementwise losses of the difference ``d = pred - target``."""

from __future__ import annotations

import math

from ... import backends
from ...validate import nonnegative, positive_real
from .base import Loss, as_array


class _DifferenceLoss(Loss):
    """``l = f(d)`` elementwise with ``d = pred - target``; ``"mean"`` divides ``sum(l)`` by ``numel``.

    Shapes: ``pred`` and ``target`` of one shape ``(*)``, 0-d included; the output is ``()``
    (``"mean"``/``"sum"``) or ``(*)`` (``"none"``). Backward, with ``g = dy`` (``/ numel`` for
    ``"mean"``): ``dpred = f'(d) g``, ``dtarget = -dpred``. Keeps ``d``. Subclasses give ``f``
    (:meth:`_loss`) and ``f'`` (:meth:`_slope`).
    """

    def forward(self, pred, target):
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        xp = self._check_pair(pred, target)
        d = as_array(xp, pred - target)
        self.save_for_backward(d)
        return self._reduce(xp, self._loss(xp, d), math.prod(pred.shape))

    def _backward(self, saved, dy, input_grad, target_grad):
        (d,) = saved
        xp = backends.namespace_of(d)
        g = self._seed(dy, d, tuple(d.shape), math.prod(d.shape))
        dpred = as_array(xp, self._slope(xp, d) * g)
        return dpred, (as_array(xp, -dpred) if target_grad else None)

    def _loss(self, xp, d):
        raise NotImplementedError

    def _slope(self, xp, d):
        raise NotImplementedError


class L1Loss(_DifferenceLoss):
    """The absolute error, as ``torch.nn.L1Loss``: ``l = |pred - target|``, ``f'(d) = sign(d)``
    (0 at ``d = 0``, as torch)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction)

    def _loss(self, xp, d):
        return xp.abs(d)

    def _slope(self, xp, d):
        return xp.sign(d)


class SmoothL1Loss(_DifferenceLoss):
    """As ``torch.nn.SmoothL1Loss``: quadratic near 0, linear beyond ``beta`` (>= 0)::

        l = 0.5 d^2 / beta   if |d| < beta,   |d| - 0.5 beta   otherwise

    ``beta = 0`` is :class:`L1Loss`. ``f'(d) = clip(d / beta, -1, 1)`` (``sign(d)`` for ``beta = 0``).
    """

    _config_fields = ("reduction", "beta")

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        self.beta = nonnegative("SmoothL1Loss", "beta", beta)
        if math.isinf(self.beta):
            raise ValueError(f"SmoothL1Loss: beta must be finite, got {beta!r}")

    def _loss(self, xp, d):
        a = xp.abs(d)
        b = self.beta
        if not b:
            return a
        return xp.where(a < b, (d * d) * (0.5 / b), a - 0.5 * b)

    def _slope(self, xp, d):
        b = self.beta
        return xp.sign(d) if not b else xp.clip(d / b, -1.0, 1.0)

    def extra_repr(self):
        parts = [super().extra_repr()] if self.reduction != "mean" else []
        return ", ".join(parts + ([f"beta={self.beta}"] if self.beta != 1.0 else []))


class HuberLoss(_DifferenceLoss):
    """As ``torch.nn.HuberLoss``: quadratic near 0, linear beyond ``delta`` (> 0)::

        l = 0.5 d^2   if |d| < delta,   delta (|d| - 0.5 delta)   otherwise

    (``delta`` times :class:`SmoothL1Loss` with ``beta = delta``); ``f'(d) = clip(d, -delta, delta)``.
    """

    _config_fields = ("reduction", "delta")

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        self.delta = positive_real("HuberLoss", "delta", delta)

    def _loss(self, xp, d):
        a, k = xp.abs(d), self.delta
        return xp.where(a < k, (d * d) * 0.5, (a - 0.5 * k) * k)

    def _slope(self, xp, d):
        return xp.clip(d, -self.delta, self.delta)

    def extra_repr(self):
        parts = [super().extra_repr()] if self.reduction != "mean" else []
        return ", ".join(parts + ([f"delta={self.delta}"] if self.delta != 1.0 else []))
