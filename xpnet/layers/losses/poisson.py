"""PoissonNLLLoss: the negative log-likelihood of counts under a Poisson distribution."""

from __future__ import annotations

import math

from ... import backends
from ...validate import flag, positive_real
from .base import Loss, as_array

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class PoissonNLLLoss(Loss):
    """As ``torch.nn.PoissonNLLLoss``: the prediction is the rate ``r`` of a Poisson distribution,
    given as ``x = log r`` (``log_input=True``, default) or as ``r = x`` itself; the target ``t``
    holds counts::

        l = exp(x) - t x                    (log_input=True)
        l = x - t log(x + eps)              (log_input=False; eps keeps the log finite at 0)

    ``full=True`` adds Stirling's approximation of ``log(t!)``, ``t log t - t + 0.5 log(2 pi t)``,
    where ``t > 1`` (0 elsewhere). ``"mean"`` divides by ``numel``. Shapes: ``x`` and ``t`` of one
    shape ``(*)``.

    Backward, with ``g = dy`` (``/ numel`` for ``"mean"``): ``dx = (exp(x) - t) g``
    (``(1 - t / (x + eps)) g``) and ``dt = -x g`` (``-log(x + eps) g``), plus
    ``(log t + 0.5 / t) g`` where ``t > 1`` with ``full`` (elsewhere the Stirling term is the
    constant 0; torch's autograd gives NaN at ``t = 0`` there). Keeps ``x`` and ``t``.
    """

    _config_fields = ("log_input", "full", "eps", "reduction")

    def __init__(self, log_input: bool = True, full: bool = False, eps: float = 1e-8, reduction: str = "mean"):
        super().__init__(reduction)
        self.log_input = flag("PoissonNLLLoss", "log_input", log_input)
        self.full = flag("PoissonNLLLoss", "full", full)
        self.eps = positive_real("PoissonNLLLoss", "eps", eps)

    def forward(self, pred, target):
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        xp = self._check_pair(pred, target)
        if self.log_input:
            per = xp.exp(pred) - target * pred
        else:
            per = pred - target * xp.log(pred + self.eps)
        if self.full:
            big = target > 1.0
            tb = xp.where(big, target, 2.0)  # no log of a count <= 0
            per = per + xp.where(big, tb * xp.log(tb) - tb + 0.5 * xp.log(tb) + _HALF_LOG_2PI, 0.0)
        self.save_for_backward(pred, target)
        return self._reduce(xp, as_array(xp, per), math.prod(pred.shape))

    def _backward(self, saved, dy, input_grad, target_grad):
        x, t = saved
        xp = backends.namespace_of(x)
        g = self._seed(dy, x, tuple(x.shape), math.prod(x.shape))
        dx = dt = None
        if input_grad:
            local = xp.exp(x) - t if self.log_input else 1.0 - t / (x + self.eps)
            dx = as_array(xp, local * g)
        if target_grad:
            local = -x if self.log_input else -xp.log(x + self.eps)
            if self.full:
                big = t > 1.0
                tb = xp.where(big, t, 2.0)
                local = local + xp.where(big, xp.log(tb) + 0.5 / tb, 0.0)
            dt = as_array(xp, local * g)
        return dx, dt

    def extra_repr(self):
        parts = [super().extra_repr()] if self.reduction != "mean" else []
        if not self.log_input:
            parts.append("log_input=False")
        if self.full:
            parts.append("full=True")
        if self.eps != 1e-8:
            parts.append(f"eps={self.eps}")
        return ", ".join(parts)
