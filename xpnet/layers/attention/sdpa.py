"""Scaled dot-product attention, forward and backward: the one place xpnet's attention maths lives.

- :func:`sdpa_forward` / :func:`sdpa_backward`: the pair layers build on (``MultiheadAttention``,
  the transformer layers); forward returns what backward needs.
- :func:`scaled_dot_product_attention`: ``torch.nn.functional.scaled_dot_product_attention``'s
  signature and semantics, forward only.
- :class:`ScaledDotProductAttention`: the same as a Layer, with a backward.

Shapes: ``query (..., L, E)``, ``key (..., S, E)``, ``value (..., S, Ev)`` -> ``(..., L, Ev)``;
the leading axes (batch, heads) are the same for the three and run as one stack of batched
matrix products, with no Python loop over them.
"""

from __future__ import annotations

import math

from ... import backends
from ...validate import flag, probability, real
from .._checks import place, require_float, shape_str
from ..base import Layer
from ._masks import causal_keep, check_broadcast, check_mask
from ._options import bind_options


def sdpa_forward(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, *, safe=True):
    """``(out, weights, saved)`` of ``out = dropout(softmax(scale * Q K^T + M)) V``.

    ``scale`` defaults to ``1 / sqrt(E)``. ``attn_mask``: None, a boolean array (True = take
    part: elsewhere the score is ``-inf``) or a float array added to the scores, of a shape
    that broadcasts to the scores' ``(..., L, S)``; ``is_causal``: keep only ``j <= i`` (the
    top-left causal mask, also when ``L != S``). ``dropout_p``: each weight is zeroed with that
    probability and the rest scaled by ``1 / (1 - dropout_p)``, drawn from the query's backend
    generator on its device.

    The softmax subtracts each row's maximum first (it never overflows). ``safe``: a row whose
    every score is ``-inf`` (every key masked) gives weights 0, hence an output of 0 and no
    gradient, as torch's ``scaled_dot_product_attention`` does; with ``safe=False`` such a row
    is NaN, as the plain softmax that torch's ``MultiheadAttention`` uses with
    ``need_weights=True`` gives it.

    ``weights``: the ``(..., L, S)`` attention weights after dropout (what multiplies ``V``).
    ``saved``: for :func:`sdpa_backward`. float16/bfloat16 inputs: the softmax and its backward
    run in float32, the products in the inputs' dtype. No argument is checked here: callers
    check theirs.
    """
    be = backends.backend_of(query)
    xp = be.xp
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    qs = query * scale
    s = be.widened(qs @ xp.matrix_transpose(key))  # (..., L, S), our own fresh array
    if is_causal:
        attn_mask = causal_keep(xp, s.shape[-2], s.shape[-1], query.device)
    if attn_mask is None:
        p = _softmax(xp, s)
    else:
        p = _softmax(xp, _masked(xp, s, attn_mask), empty_rows=0.0 if safe else math.nan)
    drop = None
    if dropout_p > 0.0:
        drop = _dropout_mask(be, tuple(p.shape), dropout_p, p.dtype, query.device)
    pd = p if drop is None else p * drop
    weights = be.narrowed(pd, query.dtype)
    # Kept: the scaled query (dK = dS^T (scale Q) needs no second scaling), K, V, the softmax
    # P (its backward's only need) and the scaled dropout mask; P times the mask is recomputed
    return weights @ value, weights, (qs, key, value, p, drop, scale)


def sdpa_backward(dout, saved, dweights=None, need=(True, True, True)):
    """``(dq, dk, dv)`` for ``out`` and ``weights`` of :func:`sdpa_forward` (``saved``).

    ``dout (..., L, Ev)`` and ``dweights (..., L, S)`` (or broadcasting to it: a head-average's
    ``dW / H`` of shape ``(N, 1, L, S)``) may each be None. With ``Pd = P * D`` (``D`` the
    scaled dropout mask; 1 without dropout)::

        dV = Pd^T dout,   dPd = dout V^T + dweights,   dP = dPd * D
        dS = P * (dP - sum(dP * P, -1))        (the softmax's backward, row by row)
        dQ = scale * dS K,   dK = dS^T (scale * Q)

    ``need``: which of the three to compute (the others are None).
    """
    qs, k, v, p, drop, scale = saved
    if dout is None and dweights is None:
        return None, None, None
    be = backends.backend_of(p)
    xp = be.xp
    dv = None
    if dout is not None and need[2]:
        pd = p if drop is None else p * drop
        dv = xp.matrix_transpose(be.narrowed(pd, v.dtype)) @ dout
    if not (need[0] or need[1]):
        return None, None, dv
    if dout is not None:
        dp = be.widened(dout @ xp.matrix_transpose(v))  # our own fresh array
        if dweights is not None:
            dp += be.widened(dweights)
    else:
        dp = be.widened(dweights) * 1.0  # a fresh array (the caller's dweights is not ours)
        if tuple(dp.shape) != tuple(p.shape):
            dp = xp.broadcast_to(dp, tuple(p.shape)) * 1.0
    if drop is not None:
        dp *= drop
    dp -= xp.sum(dp * p, axis=-1, keepdims=True)
    dp *= p  # dS, in dP's buffer
    ds = be.narrowed(dp, v.dtype)
    dq = None
    if need[0]:
        dq = ds @ k
        dq *= scale
    dk = xp.matrix_transpose(ds) @ qs if need[1] else None
    return dq, dk, dv


def _masked(xp, s, mask):
    """The scores with ``mask`` applied (``s`` is our own fresh array)."""
    if mask.dtype == xp.bool:
        return xp.where(mask, s, -math.inf)
    s += mask if mask.dtype == s.dtype else xp.astype(mask, s.dtype)
    return s


def _softmax(xp, s, empty_rows=None):
    """Row softmax of the fresh scores ``s`` (overwritten), max-subtracted. ``empty_rows``: what
    a row of only ``-inf`` gives (masked scores): 0.0 (its max taken as 0 and its sum as 1) or
    NaN (its max taken as NaN: torch's plain softmax, without the warning that ``-inf - -inf``
    would raise in numpy)."""
    m = xp.max(s, axis=-1, keepdims=True)
    if empty_rows is not None:
        m = xp.where(m == -math.inf, empty_rows, m)
    s -= m
    e = xp.exp(s)
    z = xp.sum(e, axis=-1, keepdims=True)
    if empty_rows == 0.0:
        z = xp.where(z == 0.0, 1.0, z)
    e *= 1.0 / z
    return e


def _dropout_mask(be, shape, p, dtype, device):
    """``Bernoulli(1 - p) / (1 - p)`` (all zeros for ``p == 1``), on the device."""
    if p >= 1.0:
        return be.xp.zeros(shape, dtype=dtype, device=device)
    mask = be.rng.bernoulli(shape, 1.0 - p, dtype=dtype, device=device)
    mask *= 1.0 / (1.0 - p)  # our own fresh array
    return mask


# -- the user-facing function and layer ------------------------------------------------------------

_WHO = "scaled_dot_product_attention"


def check_inputs(who, query, key, value):
    """Raise unless ``query (..., L, E)``, ``key (..., S, E)`` and ``value (..., S, Ev)`` are
    float arrays of one dtype and place with the same leading axes; returns the backend."""
    be = require_float(who, query, "query")
    for what, a in (("key", key), ("value", value)):
        require_float(who, a, what)
        _same_place(who, what, a, query, be)
    if query.ndim < 2:
        raise ValueError(f"{who} expected query of shape (..., L, E), got {shape_str(query.shape)}")
    lead, e = tuple(query.shape[:-2]), query.shape[-1]
    if key.ndim != query.ndim or tuple(key.shape[:-2]) != lead or key.shape[-1] != e:
        want = shape_str(lead + ("S", e))
        raise ValueError(f"{who} expected key of shape {want} (the query's leading axes and embedding size), "
                         f"got {shape_str(key.shape)}")
    if value.ndim != query.ndim or tuple(value.shape[:-2]) != lead or value.shape[-2] != key.shape[-2]:
        want = shape_str(lead + (key.shape[-2], "Ev"))
        raise ValueError(f"{who} expected value of shape {want} (the key's leading axes and length), "
                         f"got {shape_str(value.shape)}")
    return be


def _same_place(who, what, a, query, be):
    if type(a) is not type(query) or a.device != query.device:
        raise ValueError(f"{who} got {what} on {place(a)} but query on {place(query)}; move it with "
                         "backends.get(...).asarray(...)")
    if a.dtype != query.dtype:
        raise TypeError(f"{who} expected {what} of the query's dtype {be.dtype_name(query.dtype)}, got "
                        f"{be.dtype_name(a.dtype)}")


def _check_options(who, query, key, attn_mask, dropout_p, is_causal, scale, be):
    """The options, validated: ``(dropout_p, is_causal, scale)``."""
    dropout_p = probability(who, "dropout_p", dropout_p, closed=True)
    flag(who, "is_causal", is_causal)
    if scale is not None:
        scale = real(who, "scale", scale)
    if attn_mask is not None:
        if is_causal:
            raise ValueError(f"{who}: give attn_mask or is_causal=True, not both (as torch, which refuses "
                             "an explicit attn_mask with is_causal)")
        check_mask(who, "attn_mask", attn_mask, query, be)
        check_broadcast(who, "attn_mask", attn_mask, tuple(query.shape[:-1]) + (key.shape[-2],))
    return dropout_p, is_causal, scale


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """``softmax(scale * Q K^T + M) V``, as ``torch.nn.functional.scaled_dot_product_attention``.

    ``query (..., L, E)``, ``key (..., S, E)``, ``value (..., S, Ev)`` -> ``(..., L, Ev)``, one
    float dtype and place, the same leading axes. ``attn_mask``: boolean (True = take part) or
    float (added to the scores), broadcasting to ``(..., L, S)``; ``is_causal``: the top-left
    causal mask ``j <= i`` (not with ``attn_mask``); ``scale``: default ``1 / sqrt(E)``;
    ``dropout_p``: dropout on the weights (applied whenever it is > 0, as torch's functional
    does: pass ``0.0`` at evaluation). A row whose every key is masked gives 0, as in torch.

    Forward only; :class:`ScaledDotProductAttention` is the same with a backward.
    """
    be = check_inputs(_WHO, query, key, value)
    dropout_p, is_causal, scale = _check_options(_WHO, query, key, attn_mask, dropout_p, is_causal, scale, be)
    out, _, _ = sdpa_forward(query, key, value, attn_mask, dropout_p, is_causal, scale)
    return out


_OPTIONS = ("attn_mask", "dropout_p", "is_causal", "scale")


class ScaledDotProductAttention(Layer):
    """:func:`scaled_dot_product_attention` as a layer, with its backward (no parameters).

    ``forward(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None)``
    -> ``(..., L, Ev)``; ``backward(dout)`` returns ``(dq, dk, dv)`` followed by ``None`` for each
    further positional argument of the forward (the mask, the options), per the layer contract.
    Backward: see :func:`sdpa_backward`. Keeps the scaled query, K, V, the weights and the
    dropout mask.
    """

    def forward(self, query, key, value, *options, **named):
        tag = self._tag()
        attn_mask, dropout_p, is_causal, scale = bind_options(tag, _OPTIONS, (None, 0.0, False, None), options, named)
        be = check_inputs(tag, query, key, value)
        dropout_p, is_causal, scale = _check_options(tag, query, key, attn_mask, dropout_p, is_causal, scale, be)
        out, _, saved = sdpa_forward(query, key, value, attn_mask, dropout_p, is_causal, scale)
        self.save_for_backward(saved, len(options))
        return out

    def backward(self, dout, input_grad: bool = True):
        saved, n_options = self.saved()
        if dout is None or not input_grad:
            return None
        qs, _, v, _, _, _ = saved
        self.check_grad(dout, v, tuple(qs.shape[:-1]) + (v.shape[-1],))
        return sdpa_backward(dout, saved) + (None,) * n_options
