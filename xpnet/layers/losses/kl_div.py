"""KLDivLoss: the Kullback-Leibler divergence of a target distribution from a predicted one."""

from __future__ import annotations

import math

from ... import backends
from ...validate import choice, flag
from .base import Loss, _divide, as_array


class KLDivLoss(Loss):
    """As ``torch.nn.KLDivLoss``, on log-probabilities ``x`` (the prediction) and a target ``t``
    of probabilities (or log-probabilities ``log t`` with ``log_target=True``)::

        l = t (log t - x)         (xlogy: 0 where t = 0; NaN where t < 0, as torch)
        l = exp(t) (t - x)        (log_target=True)

    Shapes: ``x`` and ``t`` of one shape ``(*)``, 0-d included. ``reduction``: ``"mean"``
    (default, as torch: ``sum(l) / numel``, which is not the divergence), ``"batchmean"``
    (``sum(l) / N`` with ``N = x.shape[0]``: the divergence per sample, what the maths means;
    ``sum(l)`` for 0-d input), ``"sum"`` or ``"none"``.

    Backward, with ``g = dy`` divided as the reduction divides: ``dx = -t g`` (``-exp(t) g``) and
    ``dt = (log t + 1 - x) g`` (NaN where ``t <= 0``, as torch's autograd gives;
    ``exp(t) (t - x + 1) g`` with ``log_target``). Keeps ``x`` and ``t``.
    """

    _config_fields = ("reduction", "log_target")

    def __init__(self, reduction: str = "mean", log_target: bool = False):
        super().__init__("mean")
        self.reduction = choice("KLDivLoss", "reduction", reduction, ("none", "batchmean", "mean", "sum"))
        self.log_target = flag("KLDivLoss", "log_target", log_target)

    def forward(self, pred, target):
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        xp = self._check_pair(pred, target)
        if self.log_target:
            per = xp.exp(target) * (target - pred)
        else:
            per = _xlogx(xp, target) - target * pred
        self.save_for_backward(pred, target)
        out = self._reduce(xp, as_array(xp, per), math.prod(pred.shape))
        return xp.asarray(_divide(out, self._batch(pred))) if self.reduction == "batchmean" else out

    @staticmethod
    def _batch(x):
        return x.shape[0] if x.ndim else 1

    def _backward(self, saved, dy, input_grad, target_grad):
        x, t = saved
        xp = backends.namespace_of(x)
        g = self._seed(dy, x, tuple(x.shape), math.prod(x.shape))
        if self.reduction == "batchmean":
            g = _divide(g, self._batch(x), xp)
        e = xp.exp(t) if self.log_target else t
        dx = as_array(xp, -(e * g)) if input_grad else None
        dt = None
        if target_grad:
            if self.log_target:
                local = e * ((t - x) + 1.0)
            else:  # torch's autograd of xlogy(t, t): log t + t / t, NaN at t = 0 and t = inf too
                inside = (t > 0) & (t < math.inf)
                local = xp.where(inside, xp.log(xp.where(inside, t, 1.0)) + 1.0 - x, math.nan)
            dt = as_array(xp, local * g)
        return dx, dt

    def extra_repr(self):
        parts = [super().extra_repr()] if self.reduction != "mean" else []
        return ", ".join(parts + (["log_target=True"] if self.log_target else []))


def _xlogx(xp, t):
    """``t log t`` as torch's ``xlogy(t, t)``: 0 at ``t = 0``, NaN for ``t < 0`` or NaN (no log of
    a number <= 0 is taken: numpy would warn)."""
    pos = t > 0
    return xp.where(pos, t * xp.log(xp.where(pos, t, 1.0)), xp.where(t == 0, t, math.nan))
