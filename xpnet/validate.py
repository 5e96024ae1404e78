"""Validation of constructor arguments, written once for every layer, loss, optimizer and schedule.

Each function returns the value normalised (``float``, ``int``, a tuple) or raises ``ValueError``
with ``"{owner}: {name} must be ..., got {value!r}"``.
"""

from __future__ import annotations

import math
import numbers


def _is_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, numbers.Integral)


def _is_real(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, numbers.Real)


def integer(owner, name, value, minimum=None):
    """An int (``>= minimum`` when given)."""
    if not _is_int(value) or (minimum is not None and value < minimum):
        rule = "an int" if minimum is None else f"an int >= {minimum}"
        raise ValueError(f"{owner}: {name} must be {rule}, got {value!r}")
    return int(value)


def positive_int(owner, name, value):
    """A size argument (feature counts and the like): an int > 0."""
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return int(value)


def real(owner, name, value, lo=None, hi=None, lo_open=False, hi_open=False):
    """A finite-or-infinite real number (never NaN) in the interval given (``None``: unbounded)."""
    bad = not _is_real(value) or math.isnan(value)
    if not bad and lo is not None:
        bad = value <= lo if lo_open else value < lo
    if not bad and hi is not None:
        bad = value >= hi if hi_open else value > hi
    if bad:
        if lo is None and hi is None:
            raise ValueError(f"{owner}: {name} must be a real number, got {value!r}")
        rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{')' if hi_open else ']'}"
        raise ValueError(f"{owner}: {name} must be a real number in {rng}, got {value!r}")
    return float(value)


def positive_real(owner, name, value):
    """A finite real number > 0 (epsilons and the like)."""
    if not _is_real(value) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a positive real number, got {value!r}")
    return float(value)


def nonnegative(owner, name, value):
    """A real number >= 0 (weight decay, momentum)."""
    if not _is_real(value):
        raise ValueError(f"{owner}: {name} must be a real number, got {value!r}")
    if not value >= 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {value!r}")
    return float(value)


def probability(owner, name, value, *, closed=False):
    """A real number in [0, 1) (or [0, 1] with ``closed``)."""
    if not _is_real(value) or not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        raise ValueError(f"{owner}: {name} must be a probability in [0, 1{']' if closed else ')'}, got {value!r}")
    return float(value)


def flag(owner, name, value):
    """True or False (not 0/1, which usually means a mistaken positional argument)."""
    if not isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be True or False, got {value!r}")
    return value


def choice(owner, name, value, options):
    """One of ``options``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{owner}: {name} must be one of {tuple(options)}, got {value!r}")
    return value


def int_tuple(owner, name, value, n, minimum):
    """``value`` (an int or a sequence of ``n`` ints) as an ``n``-tuple, each ``>= minimum``."""
    vals = value if isinstance(value, (tuple, list)) else (value,) * n
    if len(vals) != n or any(not _is_int(v) or v < minimum for v in vals):
        what = "a pair" if n == 2 else f"a tuple of {n}"
        raise ValueError(f"{owner}: {name} must be an int >= {minimum} or {what} of them, got {value!r}")
    return tuple(int(v) for v in vals)


def pair(owner, name, value, minimum):
    """``value`` (an int or a pair of ints) as a tuple ``(h, w)``, each ``>= minimum``."""
    return int_tuple(owner, name, value, 2, minimum)


def dim(owner, name, value):
    """An axis index (any int; checked against the input's rank in forward)."""
    if not _is_int(value):
        raise ValueError(f"{owner}: {name} must be an int, got {value!r}")
    return int(value)


_FLOATS = ("float16", "bfloat16", "float32", "float64")


def float_dtype(owner, be, dtype):
    """The namespace dtype of backend ``be`` for ``dtype`` (default float32), which must be floating-point."""
    dt = be.dtype("float32" if dtype is None else dtype)
    if be.dtype_name(dt) not in _FLOATS:
        raise ValueError(f"{owner}: dtype must be a floating-point dtype, got {be.dtype_name(dt)}")
    return dt
