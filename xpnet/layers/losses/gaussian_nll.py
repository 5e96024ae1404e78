"""GaussianNLLLoss: the negative log-likelihood of a target under a Gaussian of predicted mean and variance."""

from __future__ import annotations

import math
import numbers

from ... import backends
from ...validate import flag, real
from .. import deferred
from .._checks import require_float, shape_str
from ..distance import sum_to
from ._broadcast import broadcast_shape
from .base import MultiInputLoss, as_array

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class GaussianNLLLoss(MultiInputLoss):
    """``torch.nn.GaussianNLLLoss(*, full=False, eps=1e-6)`` on a predicted mean ``x``, a target
    ``t`` and a predicted variance ``v``::

        l = (log(max(v, eps)) + (x - t)^2 / max(v, eps)) / 2   (+ log(2 pi) / 2 with full=True)

    Shapes: ``x (*)``; ``t`` broadcasting with it (``(*)`` usually); ``v`` of ``x``'s shape
    (heteroscedastic), or homoscedastic: ``x``'s shape without its last axis (``(N, D)`` ->
    ``(N,)``, read as ``(N, 1)``), or ``x``'s number of dimensions with its sizes but one, that
    one 1 (``(N, 1)``, ``(1, D)``, ``(N, 1, H, W)``), exactly torch's rule; or a Python number
    ``>= 0``. The output is ``()``, or the broadcast shape for ``"none"``; ``"mean"`` divides
    by its size. ``v`` must be ``>= 0`` (ValueError): checking reads one boolean back from the
    device; inside :func:`~xpnet.layers.deferred.deferred_checks` nothing is read, the loss of
    a bad batch is NaN and the error is raised when the loop reads its checks.

    Backward, with ``c = max(v, eps)``, ``d = x - t`` and ``g`` the upstream gradient (``/ size``
    for ``"mean"``): ``dx = g d / c``, ``dt = -dx``, ``dv = g (1 / c - d^2 / c^2) / 2``. As in
    torch, whose clamp runs outside autograd, ``dv`` is that value even where ``v < eps`` (the
    clamp does not stop it). Each is summed over the axes it was broadcast along. Keeps ``d``
    and ``c``.
    """

    _config_fields = ("full", "eps", "reduction")
    _inputs = ("input", "target", "var")
    _targets = ("target",)

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
        super().__init__(reduction)
        self.full = flag("GaussianNLLLoss", "full", full)
        self.eps = real("GaussianNLLLoss", "eps", eps)

    def forward(self, input, target, var):
        tag = self._tag()
        input, target, var = self._lift(input, target, var)  # float16/bfloat16: computed in float32
        be = require_float(tag, input, "input")
        xp = be.xp
        self._check_input(target, input, "target", "input")
        number = isinstance(var, numbers.Real) and not isinstance(var, bool)
        if number:
            if var < 0:
                raise ValueError(f"{tag} expected var >= 0 (a variance), got {var!r}")
            v = xp.full(tuple(input.shape), float(var), dtype=input.dtype, device=input.device)
        else:
            self._check_input(var, input, "var", "input")
            v = self._var_shaped(xp, input, var)
            bad = self._negative(xp, var)
        shape = broadcast_shape(tag, input=input.shape, target=target.shape, var=v.shape)
        c = xp.maximum(v, self.eps)  # as torch's clamp: NaN stays NaN
        d = as_array(xp, input - target)
        per = (xp.log(c) + d * d / c) * 0.5
        if self.full:
            per = per + _HALF_LOG_2PI
        self.save_for_backward(d, c, shape, tuple(input.shape), tuple(target.shape),
                               None if number else tuple(var.shape))
        out = self._reduce(xp, as_array(xp, per), math.prod(shape))
        return out if number or bad is None else xp.where(bad, math.nan, out)

    def _var_shaped(self, xp, input, var):
        """``var`` with the shape it broadcasts with (torch's rule: see the class docstring)."""
        xs, vs = tuple(input.shape), tuple(var.shape)
        if vs == xs:
            return var
        if xs[:-1] == vs and xs:
            return xp.reshape(var, vs + (1,))
        if len(vs) == len(xs) and sum(b for a, b in zip(xs, vs) if a != b) == 1:
            return var
        raise ValueError(
            f"{self._tag()} expected var of the input's shape {shape_str(xs)}, that shape without its last "
            f"axis, or with one of its sizes 1, got {shape_str(vs)}"
        )

    def _negative(self, xp, var):
        """None when every variance is >= 0 (one read), or, checks deferred, the 0-d flag of a
        negative one (recorded, nothing read); raises for a negative one otherwise."""
        if math.prod(var.shape) == 0:
            return None
        low = xp.min(var)
        checks = deferred.active()
        if checks is not None:
            bad = low < 0
            checks.record(self, xp, bad, (low,), self._negative_message)
            return bad
        if bool(low < 0):
            raise ValueError(self._negative_message(float(low)))
        return None

    def _negative_message(self, low):
        return f"{self._tag()} expected var >= 0 everywhere (variances), got a negative entry (the smallest: {low})"

    def _backward(self, saved, dy, wanted):
        d, c, shape, sx, st, sv = saved
        xp = backends.namespace_of(d)
        g = self._seed(dy, d, shape, math.prod(shape))
        dx = as_array(xp, (d / c) * g)
        dv = None
        if wanted[2] and sv is not None:
            dv = as_array(xp, xp.reshape(sum_to(xp, (1.0 / c - (d * d) / (c * c)) * (g * 0.5), c.shape), sv))
        return (as_array(xp, sum_to(xp, dx, sx)) if wanted[0] else None,
                as_array(xp, sum_to(xp, -dx, st)) if wanted[1] else None, dv)

    def extra_repr(self):
        parts = [f"full={self.full}"] if self.full else []
        parts += [f"eps={self.eps}"] if self.eps != 1e-6 else []
        return ", ".join(parts + ([super().extra_repr()] if self.reduction != "mean" else []))
