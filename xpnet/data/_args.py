"""Argument checks shared by the data-set loaders (one wording for every loader)."""

from __future__ import annotations

from .. import backends

FLOATS = ("float16", "bfloat16", "float32", "float64")


def check_split(fn, split, valid):
    """``split`` when it is one of ``valid``, else a ValueError naming them."""
    if not isinstance(split, str) or split not in valid:
        raise ValueError(f"{fn}: split must be one of {', '.join(map(repr, valid))}, got {split!r}")
    return split


def float_dtype_name(fn, dtype):
    """The name of floating-point ``dtype`` (a name or a dtype of any backend), else a ValueError."""
    try:
        name = dtype if isinstance(dtype, str) else backends.dtype_name(dtype)
    except TypeError:
        name = repr(dtype)
    if name not in FLOATS:
        raise ValueError(f"{fn}: dtype must be a floating-point dtype ({', '.join(FLOATS)}), got {name!r}")
    return name
