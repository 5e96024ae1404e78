"""The exponential linear units ELU, CELU and SELU: one formula with three settings.

``y = scale * x`` for ``x > 0``, ``scale * alpha * (exp(x / s) - 1)`` otherwise, with
``(scale, s) = (1, 1)`` for ELU, ``(1, alpha)`` for CELU, SELU's fixed constants and ``s = 1``.
Backward: ``dx = dy * scale`` for ``x > 0``, ``dy * scale * alpha / s * exp(x / s)`` otherwise
(at ``x = 0`` the exponential side, ``alpha`` for ELU, as torch's ``x <= 0`` branch). Keeps the slope.

Any input shape, 0-d included. A NaN input gives NaN, and a NaN gradient, as torch's vectorised
kernel does (its scalar loop, which takes the last few elements of a tensor, passes ``scale * dy``).
"""

from __future__ import annotations

from ..validate import real
from .activations import _Elementwise, inplace_flag

# Klambauer et al. 2017, as torch writes them
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def elu(xp, x, alpha, scale, input_scale):
    """``(y, dy/dx)`` of the exponential linear unit (see the module doc)."""
    pos = x > 0  # NaN is not: it takes the exponential side, whose NaN it keeps
    e = xp.expm1(xp.minimum(x, 0.0) * input_scale)  # only the negative side: no overflow on the other
    y = xp.where(pos, x * scale, e * (alpha * scale))
    e += 1.0  # exp(x / s)
    e *= alpha * scale * input_scale
    return y, xp.where(pos, scale, e)


class _WithAlpha(_Elementwise):
    """ELU and CELU: an ``alpha`` and torch's ignored ``inplace``."""

    _config_fields = ('alpha',)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        name = type(self).__name__
        self.alpha = real(name, "alpha", alpha)
        self.inplace = inplace_flag(name, inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class ELU(_WithAlpha):
    """``y = x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise (module doc: shapes, backward).
    ``inplace``: accepted and ignored (xpnet never overwrites an input)."""

    def _forward(self, xp, x):
        return elu(xp, x, self.alpha, 1.0, 1.0)


class CELU(_WithAlpha):
    """``y = max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``, continuously differentiable at 0
    for every ``alpha != 0`` (module doc: shapes, backward). ``inplace``: accepted and ignored.

    torch's backward rounds ``1 / alpha`` to float32 (even in float64: its gradient is off by up to
    3e-8 relative where ``1 / alpha`` is not a float32, ``alpha = 0.7`` say); xpnet's does not.
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__(alpha, inplace)
        if self.alpha == 0.0:
            raise ValueError("CELU: alpha must not be 0 (x is divided by it), got 0.0")

    def _forward(self, xp, x):
        return elu(xp, x, self.alpha, 1.0, 1.0 / self.alpha)


class SELU(_Elementwise):
    """``y = scale * (max(0, x) + min(0, alpha * (exp(x) - 1)))`` with torch's constants
    ``alpha = 1.6732632423543772``, ``scale = 1.0507009873554805`` (module doc: shapes, backward).
    ``inplace``: accepted and ignored."""

    def __init__(self, inplace: bool = False):
        self.inplace = inplace_flag("SELU", inplace)

    def _forward(self, xp, x):
        return elu(xp, x, SELU_ALPHA, SELU_SCALE, 1.0)
