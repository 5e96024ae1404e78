"""The error function and the normal distribution function against the array API (which has no
``erf``), for GELU.

:func:`erf` and :func:`erfc` use W. J. Cody's rational Chebyshev approximations ("Rational
Chebyshev approximations for the error function", Math. Comp. 23 (1969) 631-637; the SPECFUN
``CALERF`` coefficients), on three ranges of ``|x|``: ``erf(x) = x R1(x^2)`` below 0.46875,
``erfc(x) = exp(-x^2) R2(x)`` up to 4, ``erfc(x) = exp(-x^2) / x (1/sqrt(pi) - R3(1/x^2) / x^2)``
beyond. In float64 they are within a few units in the last place of ``math.erf``/``math.erfc``
(relative error), ``erfc`` in the far tail included, where ``1 - erf`` would have lost every digit.
Each range is evaluated on the whole array (on its clipped copy of ``|x|``, so that no range
overflows) and the right one is selected per element.

Where the array library has its own ``erf``/``erfc`` (torch, CuPy: ``backend.special``), those
are used instead, in every float dtype.

:func:`normal_cdf_pdf` gives ``Phi(x)`` and ``phi(x)``: from ``erfc`` in float64 and wherever the
library has its own; otherwise in float32 (and below, computed in float32) from Abramowitz and
Stegun's 26.2.17,
``Phi(-|x|) = phi(x) (b1 t + ... + b5 t^5)``, ``t = 1 / (1 + p |x|)``, within 7.5e-8 of
``Phi`` (2.5e-7 with float32 rounding): a third of the array passes of the float64 form, which
is what GELU's training step costs on numpy.
"""

from __future__ import annotations

import math

from ..backends import backend_of

_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# Cody's coefficients, highest power last as published (A, B: erf; C, D: erfc to 4; P, Q: beyond)
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
      1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
      8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
      2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
      3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
      6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
      2.33520497626869185e-3)

_SMALL, _MID = 0.46875, 4.0
_ZERO_TAIL = 28.0  # erfc(x) underflows to 0 in float64 from x = 27.3

# Abramowitz and Stegun 26.2.17, its b_k already divided by sqrt(2 pi)
_AS_P = 0.2316419
_AS_B = tuple(b * _INV_SQRT_2PI for b in (0.319381530, -0.356563782, 1.781477937, -1.821255978, 1.330274429))


def _cody_ratio(y, num, den, last_num, last_den):
    """Cody's loop: ``num = num[-1] y; den = y; (num + num[i]) y, (den + den[i]) y`` for the
    leading coefficients, then ``(num + last_num) / (den + last_den)``."""
    n = y * num[-1]
    d = y + 0.0  # a fresh array: updated in place below
    for a, b in zip(num[:len(den) - 1], den[:-1]):
        n += a
        n *= y
        d += b
        d *= y
    n += last_num
    d += last_den
    return n / d


def _exp_minus_square(xp, y):
    """``exp(-y^2)`` for ``y >= 0``, as Cody computes it: ``y^2`` split as ``s^2 + (y - s)(y + s)``
    with ``s`` ``y`` rounded down to a sixteenth, so that the rounding of ``y^2`` (up to 729 ulp of
    the exponent at y = 28) does not reach the result."""
    s = xp.floor(y * 16.0) / 16.0
    return xp.exp(-(s * s)) * xp.exp(-((y - s) * (y + s)))


def _erf_small(xp, x):
    """``erf(x)`` for ``|x| <= 0.46875``: ``x A(x^2) / B(x^2)``."""
    z = x * x
    return x * _cody_ratio(z, (*_A[:3], _A[4]), _B, _A[3], _B[3])


def _erfc_large(xp, y):
    """``erfc(y)`` for ``y >= 0.46875`` (``y`` not below it: the caller clips)."""
    mid = xp.clip(y, _SMALL, _MID)
    r2 = _cody_ratio(mid, (*_C[:7], _C[8]), _D, _C[7], _D[7])
    far = xp.clip(y, _MID, _ZERO_TAIL)
    z = 1.0 / (far * far)
    r3 = (_INV_SQRT_PI - z * _cody_ratio(z, (*_P[:4], _P[5]), _Q, _P[4], _Q[4])) / far
    tail = xp.clip(y, _SMALL, _ZERO_TAIL)
    return _exp_minus_square(xp, tail) * xp.where(y <= _MID, r2, r3)


def _widened(x, fn):
    """``fn`` computed in float32 for a float16/bfloat16 ``x``, in ``x``'s dtype otherwise."""
    be = backend_of(x)
    return be.narrowed(fn(be.xp, be.widened(x)), x.dtype)


def _native(x, name):
    """The library's own ``name`` (torch, CuPy), computed as :func:`_widened` does, or None."""
    fn = backend_of(x).special(name)
    return None if fn is None else _widened(x, lambda xp, w: fn(w))


def erf(x):
    """The error function ``erf(x) = 2/sqrt(pi) int_0^x exp(-t^2) dt``, elementwise (any shape,
    floating dtype; float16/bfloat16 computed in float32). ``erf(+-inf) = +-1``, NaN stays NaN.
    The library's own where it has one (torch, CuPy), else Cody's."""
    native = _native(x, "erf")
    if native is not None:
        return native

    def f(xp, x):
        y = xp.abs(x)
        small = _erf_small(xp, xp.clip(x, -_SMALL, _SMALL))
        big = 1.0 - _erfc_large(xp, y)
        return xp.where(y <= _SMALL, small, xp.where(x < 0, -big, big))
    return _widened(x, f)


def erfc(x):
    """The complementary error function ``erfc(x) = 1 - erf(x)``, accurate relative to its own
    size in the tail (``erfc(10) = 2.1e-45``); elementwise, as :func:`erf`."""
    native = _native(x, "erfc")
    if native is not None:
        return native

    def f(xp, x):
        y = xp.abs(x)
        small = 1.0 - _erf_small(xp, xp.clip(x, -_SMALL, _SMALL))
        big = _erfc_large(xp, y)
        return xp.where(y <= _SMALL, small, xp.where(x < 0, 2.0 - big, big))
    return _widened(x, f)


def normal_cdf_pdf(x):
    """``(Phi(x), phi(x))``: the standard normal distribution function and density, elementwise,
    in ``x``'s dtype (see the module doc for the float32 form). ``Phi(x) = erfc(-x / sqrt 2) / 2``
    in float64, accurate in both tails."""
    be = backend_of(x)
    xp = be.xp
    with be.ignore_overflow():  # x^2 overflows to inf for a huge |x|: exp(-inf) = 0, rightly
        native = be.special("erfc")
        if native is not None or be.dtype_name(x.dtype) == "float64":  # one fused erfc where there is one
            w = be.widened(x)
            cdf = erfc(w * -_SQRT1_2)
            cdf *= 0.5
            pdf = w * w
            pdf *= -0.5
            pdf = xp.exp(pdf)
            pdf *= _INV_SQRT_2PI
            return be.narrowed(cdf, x.dtype), be.narrowed(pdf, x.dtype)
        w = be.widened(x)
        t = xp.abs(w)
        t *= _AS_P
        t += 1.0
        t = 1.0 / t
        q = t * _AS_B[4]  # Horner's rule in place on fresh arrays: each step one pass, no allocation
        for b in _AS_B[3::-1]:
            q += b
            q *= t
        e = w * w
        e *= -0.5
        pdf = xp.exp(e)
        q *= pdf  # Phi(-|x|)
        pdf *= _INV_SQRT_2PI
        # Phi(x) = q for x < 0, 1 - q otherwise: q + [x >= 0] (1 - 2q), with no select (slow on numpy)
        upper = xp.astype(w >= 0, w.dtype)
        cdf = q * -2.0
        cdf += 1.0
        cdf *= upper
        cdf += q
    return be.narrowed(cdf, x.dtype), be.narrowed(pdf, x.dtype)
