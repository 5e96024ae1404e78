"""Fused CPU kernels for numpy float32 arrays, when numba is installed (``pip install
'xpnet[fast]'``): GELU, SiLU, LayerNorm and GroupNorm training steps in one or two passes
through memory each, instead of one per array operation (issue 11: numpy makes a pass per
operation, torch fuses); and the pointwise part of an LSTM or GRU step, forward and backward, in
one pass each (issue 12), the recurrent product staying numpy's.

Layers ask ``backend.fused()`` (None on other backends, without numba, or with
``XPNET_FUSED=0``), then ``kernels.takes(x)`` for each array: a numpy float32 array (a
strided one is copied to a contiguous one first). Everything else -- float64, the other
backends -- takes the array-API code, which gives the same values to float32 rounding (the
tests compare both paths).

The kernels compile on first use (a few seconds, once: numba caches them on disk) and run on one
thread. They allocate their outputs; nothing here is kept between calls.
"""

from __future__ import annotations

import os

import numpy as np

#: set to 0 to use the array-API code even where numba is installed
ENV_VAR = "XPNET_FUSED"

_kernels = None  # the module of compiled kernels, once imported; False: unavailable
_reason = None


def available():
    """``(True, None)``, or ``(False, why)`` where the kernels cannot be used."""
    return _load() is not None, _reason


def kernels_for(backend):
    """The kernels for ``backend``'s arrays, or None (not numpy, no numba, or switched off)."""
    if backend.name != "numpy":
        return None
    return Kernels if _load() is not None else None


def _load():
    global _kernels, _reason
    if _kernels is None:
        if os.environ.get(ENV_VAR, "").strip() == "0":
            _kernels, _reason = False, f"switched off by ${ENV_VAR}=0"
        else:
            try:
                from . import _numba_kernels
            except ImportError as e:  # numba (or its llvmlite) absent or unusable
                _kernels, _reason = False, f"numba is not usable ({e}); pip install 'xpnet[fast]'"
            else:
                _kernels = _numba_kernels
    return _kernels or None


def _flat(x):
    return np.ascontiguousarray(x).reshape(-1)


def _c(x):
    return np.ascontiguousarray(x)


class Kernels:
    """The fused operations (static methods); see :mod:`._numba_kernels` for their formulas."""

    #: the marker of an absent array argument of the recurrent steps (an empty float32 array)
    NONE = np.empty((0, 0, 0), np.float32)

    @staticmethod
    def takes(*arrays):
        """True when each array is a numpy float32 array (None is skipped); the kernels make a
        strided one contiguous (one copy)."""
        return all(a is None or (type(a) is np.ndarray and a.dtype == np.float32) for a in arrays)

    @staticmethod
    def gelu(x):
        """``(y, slope)`` of exact GELU (``Phi`` as Abramowitz and Stegun 26.2.17)."""
        return _elementwise(_kernels.gelu, x)

    @staticmethod
    def silu(x):
        """``(y, slope)`` of SiLU."""
        return _elementwise(_kernels.silu, x)

    @staticmethod
    def layer_norm(x2, w, b, eps):
        """``(y, mean, rstd)`` of the rows of ``x2 (R, m)``; ``w``, ``b`` ``(m,)`` or None."""
        r, m = x2.shape
        x2 = _c(x2)
        y = np.empty_like(x2)
        mean, rstd = np.empty(r, np.float32), np.empty(r, np.float32)
        _kernels.layer_norm(x2, _or_fill(w, m, 1.0), _or_fill(b, m, 0.0), float(eps), y, mean, rstd)
        return y, mean, rstd

    @staticmethod
    def layer_norm_backward(dy2, x2, mean, rstd, w, input_grad):
        """``(dx or None, dweight, dbias)`` (float32; ``dx`` as ``x2``)."""
        r, m = x2.shape
        dx = np.empty_like(x2) if input_grad else np.empty((0, m), np.float32)
        dw, db = np.zeros(m), np.zeros(m)
        _kernels.layer_norm_backward(_c(dy2), _c(x2), mean, rstd, _or_fill(w, m, 1.0), dx, dw, db)
        return (dx if input_grad else None), dw.astype(np.float32), db.astype(np.float32)

    @staticmethod
    def group_norm(x3, groups, w, b, eps):
        """``(y, mean, rstd)`` of ``x3 (N, C, S)``; ``w``, ``b`` ``(C,)`` or None; statistics ``(N groups,)``."""
        n, c, _ = x3.shape
        x3 = _c(x3)
        y = np.empty_like(x3)
        mean, rstd = np.empty(n * groups, np.float32), np.empty(n * groups, np.float32)
        _kernels.group_norm(x3, groups, _or_fill(w, c, 1.0), _or_fill(b, c, 0.0), float(eps), y, mean, rstd)
        return y, mean, rstd

    @staticmethod
    def group_norm_backward(dy3, x3, groups, mean, rstd, w, input_grad):
        """``(dx or None, dweight, dbias)`` (float32; ``dx`` as ``x3``)."""
        n, c, s = x3.shape
        dx = np.empty_like(x3) if input_grad else np.empty((0, c, s), np.float32)
        dw, db = np.zeros(c), np.zeros(c)
        _kernels.group_norm_backward(_c(dy3), _c(x3), groups, mean, rstd, _or_fill(w, c, 1.0), dx, dw, db)
        return (dx if input_grad else None), dw.astype(np.float32), db.astype(np.float32)

    # -- recurrent steps: arguments as _numba_kernels' (``t`` indexes the (T, N, .) arrays), no copies,
    # so the callers pass contiguous float32 arrays (``contiguous``, once per loop) and NONE for
    # what is absent; called once per time step, so nothing else happens here
    @staticmethod
    def contiguous(x):
        """``x`` as a C-contiguous array (itself when it is one already)."""
        return np.ascontiguousarray(x)

    @staticmethod
    def lstm_step(a, gx, t, c, out, c_new, pd, at, f):
        """LSTM step ``t``: writes ``out[t]`` (``o tanh(c_new)``), ``c_new``, and unless ``pd`` is
        NONE the backward's factors ``pd[t]``, ``at[t]``, ``f[t]``."""
        _kernels.lstm_step(a, gx, t, c, out, c_new, pd, at, f)

    @staticmethod
    def lstm_back_step(dh, dy, t, dc, pd, at, f, da, dc_prev):
        """The backward of LSTM step ``t``: writes ``da[t]`` and ``dc_prev``."""
        _kernels.lstm_back_step(dh, dy, t, dc, pd, at, f, da, dc_prev)

    @staticmethod
    def gru_step(gh, gx, t, bn, h, out, k, kr, z):
        """GRU step ``t``: writes ``out[t]``, and unless ``k`` is NONE ``k[t]``, ``kr[t]``, ``z[t]``."""
        _kernels.gru_step(gh, gx, t, bn, h, out, k, kr, z)

    @staticmethod
    def gru_back_step(mm, dy, t, dh_later, z, t_later, k, kr, dh, dgx, dgh):
        """The backward of GRU step ``t``: writes ``dh``, ``dgx[t]`` and ``dgh[t]``."""
        _kernels.gru_back_step(mm, dy, t, dh_later, z, t_later, k, kr, dh, dgx, dgh)


def _elementwise(kernel, x):
    x = _c(x)
    y, slope = np.empty_like(x), np.empty_like(x)
    kernel(_flat(x), _flat(y), _flat(slope))
    return y, slope


def _or_fill(v, n, value):
    """``v`` as a contiguous float32 vector, or ``n`` copies of ``value`` where it is None."""
    if v is None:
        return np.full(n, value, np.float32)
    return np.ascontiguousarray(v.reshape(-1))
