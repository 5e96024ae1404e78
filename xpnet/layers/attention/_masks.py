"""Attention masks: the checks both kinds of caller share, the causal mask, and the float form
``MultiheadAttention`` gives every mask.

Two conventions meet here, both torch's:

- ``scaled_dot_product_attention``: a boolean ``attn_mask`` is True where a query may look at a
  key (True = take part); a float one is added to the scores.
- ``MultiheadAttention``: a boolean ``attn_mask`` or ``key_padding_mask`` is True where a key is
  ignored; torch turns it into a float mask of ``-inf`` (ignored) and ``0`` before use
  (:func:`additive`), and float masks are added as they are.
"""

from __future__ import annotations

import math

from .._checks import place, shape_str


def causal_keep(xp, n_query, n_key, device):
    """``(L, S)`` boolean, True where ``j <= i``: the top-left causal mask torch's ``is_causal``
    builds (``ones(L, S).tril()``), also when ``L != S``."""
    i = xp.arange(n_query, device=device)
    j = xp.arange(n_key, device=device)
    return i[:, None] >= j[None, :]


def check_mask(who, what, mask, like, be):
    """Raise unless ``mask`` is a boolean or floating-point array on ``like``'s place (``be``:
    its backend). A float mask of another precision than the query's is cast to it when used
    (torch accepts one too)."""
    if type(mask) is not type(like) or mask.device != like.device:
        raise ValueError(f"{who} got {what} on {place(mask)} but its query is on {place(like)}; "
                         "move it with backends.get(...).asarray(...)")
    if mask.dtype != be.xp.bool and not be.is_float(mask.dtype):
        raise TypeError(f"{who} expected {what} to be boolean or floating-point, got {be.dtype_name(mask.dtype)}")


def check_broadcast(who, what, mask, target):
    """Raise unless ``mask``'s shape broadcasts to ``target`` (the scores' shape)."""
    shape = tuple(mask.shape)
    ok = len(shape) <= len(target) and all(
        s in (1, t) for s, t in zip(shape[::-1], target[::-1]))
    if not ok:
        raise ValueError(f"{who} expected {what} of a shape that broadcasts to the scores' "
                         f"{shape_str(target)} (..., L, S), got {shape_str(shape)}")


def additive(xp, mask, dtype):
    """A MultiheadAttention mask as torch's ``_canonical_mask`` makes it: a boolean one (True =
    ignore) as ``-inf`` where True and ``0`` elsewhere, in ``dtype``; a float one as it is, in
    ``dtype``."""
    if mask.dtype != xp.bool:
        return mask if mask.dtype == dtype else xp.astype(mask, dtype)
    return xp.where(mask, -math.inf, xp.zeros(tuple(mask.shape), dtype=dtype, device=mask.device))


def padded(xp, mask, extra):
    """A float mask with ``extra`` columns of ``0`` (take part) appended on its last axis: the
    keys that ``add_bias_kv`` and ``add_zero_attn`` append."""
    if not extra:
        return mask
    pad = xp.zeros(tuple(mask.shape[:-1]) + (extra,), dtype=mask.dtype, device=mask.device)
    return xp.concat([mask, pad], axis=-1)
