"""What every normalization layer shares: the input check, the hyperparameter checks, and the
per-row reductions that the statistics and the backward are made of.

The layers view their input as rows: ``(N * C, S)`` for the channel norms (BatchNorm,
InstanceNorm, GroupNorm: ``S`` the spatial size), ``(R, m)`` for LayerNorm and RMSNorm (``m``
the normalized size). A row's sum is a matrix-vector product with a vector of ones and a row's
dot product a ``vecdot``: one pass through memory each, in BLAS, where ``xp.sum(a * b, axis=-1)``
would take two and a temporary (measured 2-3x slower on numpy).
"""

from __future__ import annotations

import numbers

from ... import backends
from ...validate import flag, positive_real
from .._checks import dtype_error, place_error, require_float

#: rows shorter than this: an elementwise product and a matrix-vector product beat ``vecdot``
#: (numpy's vecdot calls BLAS once per row: ~2x slower on rows of 4-16 values, measured)
_SHORT_ROW = 32


def check_input(tag, x, ref, stats=False):
    """``x`` must be a float array on ``ref``'s backend, device and dtype (``ref=None``: any float
    array); ``stats``: ``ref`` is a running statistic (no weight), which a float16/bfloat16 ``x``
    is normalized with in float32 (mixed precision keeps buffers in float32)."""
    if ref is None:
        require_float(tag, x)
        return
    if type(x) is not type(ref) or x.device != ref.device:
        raise place_error(tag, x, ref)
    if x.dtype != ref.dtype and not (stats and x.dtype in backends.backend_of(x).low_float_dtypes):
        raise dtype_error(tag, x, ref.dtype)


def momentum_arg(name, momentum):
    """A running-average factor in [0, 1], or None (torch's meaning depends on the layer)."""
    if momentum is not None and (
        isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0.0 <= momentum <= 1.0
    ):
        raise ValueError(f"{name}: momentum must be a real number in [0, 1] or None, got {momentum!r}")
    return None if momentum is None else float(momentum)


def eps_arg(name, eps, optional=False):
    """A positive epsilon (or None where ``optional``)."""
    return None if optional and eps is None else positive_real(name, "eps", eps)


def normalized_shape_arg(name, normalized_shape):
    """``normalized_shape`` (an int or a non-empty sequence of positive ints) as a tuple."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    try:
        shape = tuple(shape)
    except TypeError:
        shape = None
    if (
        not shape
        or isinstance(normalized_shape, bool)
        or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in shape)
    ):
        raise ValueError(
            f"{name}: normalized_shape must be a positive int or a non-empty sequence of them, got {normalized_shape!r}"
        )
    return shape


def flags(name, **values):
    """Each keyword checked to be True or False (in order)."""
    return tuple(flag(name, k, v) for k, v in values.items())


def ones(xp, n, like):
    return xp.ones((n,), dtype=like.dtype, device=like.device)


def row_sums(xp, a):
    """``sum(a, axis=-1)`` of a 2-D ``(R, m)`` array, in one BLAS pass."""
    if a.shape[1] == 1:
        return a[:, 0]
    return a @ ones(xp, a.shape[1], a)


def row_dots(xp, a, b):
    """``sum(a * b, axis=-1)`` of two 2-D ``(R, m)`` arrays."""
    m = a.shape[1]
    if m == 1:
        return a[:, 0] * b[:, 0]
    if m < _SHORT_ROW:
        return (a * b) @ ones(xp, m, a)
    return xp.vecdot(a, b)


def col_sums(xp, a):
    """``sum(a, axis=0)`` of a 2-D ``(R, m)`` array, in one BLAS pass (a fresh array: a
    parameter's gradient never aliases the caller's ``dy``)."""
    return ones(xp, a.shape[0], a) @ a


def column(xp, v):
    """A 1-D ``(R,)`` array as ``(R, 1)``, to scale the rows of an ``(R, m)`` array."""
    return xp.reshape(v, (v.shape[0], 1))
