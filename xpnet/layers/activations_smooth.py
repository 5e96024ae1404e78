"""Smooth elementwise activations: GELU, SiLU, Mish, Softplus, LogSigmoid, Softsign, Tanhshrink.

Each computes its slope ``dy/dx`` in the forward, where the exponentials it needs are at hand,
and keeps only that (``dx = dy * slope``). Any input shape, 0-d included. NaN and infinite
inputs give what torch gives, output and gradient (the infinities included: GELU's and SiLU's
gradient at +inf is NaN in torch too, ``inf * 0``).
"""

from __future__ import annotations

import math

from ..backends import backend_of
from ..validate import choice, real
from .activations import _Elementwise, inplace_flag
from .activations_erf import normal_cdf_pdf

_TANH_BETA = math.sqrt(2.0 / math.pi)  # torch's kBeta = M_SQRT2 * M_2_SQRTPI * 0.5
_TANH_KAPPA = 0.044715


def softplus_sigmoid(xp, z):
    """``(log(1 + exp(z)), sigmoid(z))`` without overflow, from one ``exp(-|z|)``:
    ``softplus(z) = max(z, 0) + log1p(exp(-|z|))``."""
    e = xp.exp(-xp.abs(z))
    sp = xp.maximum(z, 0.0) + xp.log1p(e)
    r = 1.0 / (1.0 + e)
    return sp, xp.where(z >= 0, r, e * r)


class GELU(_Elementwise):
    """``y = x * Phi(x)``, ``Phi`` the standard normal distribution function (``approximate="none"``),
    or ``y = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`` (``approximate="tanh"``).

    Backward: ``dx = dy * (Phi(x) + x * phi(x))``, ``phi`` the normal density; for ``"tanh"``,
    torch's ``dy * (u/2 + x/2 * (1 - t^2) * sqrt(2/pi) * (1 + 3 * 0.044715 x^2))``, ``t`` the tanh,
    ``u = 1 + t``. ``Phi`` comes from :mod:`~xpnet.layers.activations_erf` (the array API has no
    erf): to the last few ulp in float64, within 2.5e-7 in float32 (float16/bfloat16: in float32).
    """

    _config_fields = ('approximate',)

    def __init__(self, approximate: str = "none"):
        self.approximate = choice("GELU", "approximate", approximate, ("none", "tanh"))

    def _forward(self, xp, x):
        if self.approximate == "tanh":
            return self._tanh_form(xp, x)
        fused = backend_of(x).fused()
        if fused is not None and fused.takes(x):  # numpy float32 with numba: one pass, same formulas
            return fused.gelu(x)
        cdf, slope = normal_cdf_pdf(x)  # fresh arrays: updated in place
        y = x * cdf
        with backend_of(x).ignore_overflow():  # x * pdf is inf * 0 = NaN at +-inf, as in torch
            slope *= x
        slope += cdf
        return y, slope

    @staticmethod
    def _tanh_form(xp, x):
        with backend_of(x).ignore_overflow():  # x^3 overflows for a huge |x|: tanh(+-inf) = +-1
            x2 = x * x
            inner = x2 * _TANH_KAPPA
            inner += 1.0
            inner *= x
            inner *= _TANH_BETA
            t = xp.tanh(inner)
            half = t + 1.0
            half *= 0.5  # the derivative of x/2 * (1 + t) through its first factor
            y = x * half
            slope = t * t
            slope -= 1.0
            x2 *= 3.0 * _TANH_KAPPA
            x2 += 1.0
            x2 *= -0.5 * _TANH_BETA  # the sign folds (t^2 - 1) into (1 - t^2)
            slope *= x2
            slope *= x
            slope += half
        return y, slope

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(_Elementwise):
    """``y = x * sigmoid(x) = x / (1 + exp(-x))`` (the swish); ``dx = dy * s * (1 + x * (1 - s))``,
    ``s = sigmoid(x)``, computed as ``s + y * (1 - s)``. ``inplace``: accepted and ignored."""

    def __init__(self, inplace: bool = False):
        self.inplace = inplace_flag("SiLU", inplace)

    def _forward(self, xp, x):
        be = backend_of(x)
        fused = be.fused()
        if fused is not None and fused.takes(x):  # numpy float32 with numba: one pass
            return fused.silu(x)
        with be.ignore_overflow():  # exp(-x) = inf for x < -88 in float32: s = 0, as torch
            e = xp.exp(-x)
            e += 1.0
            s = 1.0 / e
            y = x * s
            slope = 1.0 - s  # not (e - 1) s: inf * 0 where exp(-x) overflowed
            slope *= y
            slope += s
        return y, slope


class Mish(_Elementwise):
    """``y = x * tanh(softplus(x))``; ``dx = dy * (t + x * sigmoid(x) * (1 - t^2))``, ``t`` the tanh.
    ``inplace``: accepted and ignored."""

    def __init__(self, inplace: bool = False):
        self.inplace = inplace_flag("Mish", inplace)

    def _forward(self, xp, x):
        sp, sig = softplus_sigmoid(xp, x)
        t = xp.tanh(sp)
        with backend_of(x).ignore_overflow():  # -inf * 0 at x = -inf: NaN, as in torch
            y = x * t
            slope = t * t
            slope -= 1.0
            slope *= sig
            slope *= x
            slope = t - slope
        return y, slope


class Softplus(_Elementwise):
    """``y = log(1 + exp(beta * x)) / beta``, and ``y = x`` where ``beta * x > threshold``;
    ``dx = dy * sigmoid(beta * x)`` (``dy`` on the linear side). Stable for any threshold:
    ``log(1 + exp(z))`` is computed as ``max(z, 0) + log1p(exp(-|z|))``."""

    _config_fields = ('beta', 'threshold')

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        self.beta = real("Softplus", "beta", beta)
        if self.beta == 0.0:
            raise ValueError("Softplus: beta must not be 0 (the output is divided by it), got 0.0")
        self.threshold = real("Softplus", "threshold", threshold)

    def _forward(self, xp, x):
        z = x * self.beta
        sp, sig = softplus_sigmoid(xp, z)
        linear = z > self.threshold
        sp /= self.beta
        return xp.where(linear, x, sp), xp.where(linear, 1.0, sig)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class LogSigmoid(_Elementwise):
    """``y = log(sigmoid(x)) = -softplus(-x)``, stable at both ends; ``dx = dy * sigmoid(-x)``."""

    def _forward(self, xp, x):
        sp, sig = softplus_sigmoid(xp, -x)
        return -sp, sig


class Softsign(_Elementwise):
    """``y = x / (1 + |x|)``; ``dx = dy * r * (1 - |x| r)`` with ``r = 1 / (1 + |x|)`` (which is
    ``dy / (1 + |x|)^2``, written as torch's autograd composes it: NaN at +-inf, as torch)."""

    def _forward(self, xp, x):
        a = xp.abs(x)
        r = 1.0 / (1.0 + a)
        with backend_of(x).ignore_overflow():  # inf * 0 at +-inf
            y = x * r
            a *= r
        slope = 1.0 - a
        slope *= r
        return y, slope


class Tanhshrink(_Elementwise):
    """``y = x - tanh(x)``; ``dx = dy * tanh(x)^2``."""

    def _forward(self, xp, x):
        t = xp.tanh(x)
        return x - t, t * t
