"""Gradient clipping by global norm, as ``torch.nn.utils.clip_grad_norm_``."""

from __future__ import annotations

import math

from .. import backends
from ..layers.base import Layer
from ..validate import real


def _norm(xp, g, p):
    # numpy's reductions give numpy scalars: asarray makes them 0-d arrays (a no-op elsewhere)
    return xp.asarray(_reduce(xp, g, p))


def _reduce(xp, g, p):
    a = xp.abs(g)
    if p == math.inf:
        return xp.max(a)
    if p == -math.inf:
        return xp.min(a)
    if p == 0:
        return xp.sum(xp.astype(a != 0, g.dtype))
    if p == 1:
        return xp.sum(a)
    if p == 2:
        return xp.sqrt(xp.sum(g * g))
    return xp.sum(a**p) ** (1.0 / p)


def clip_grad_norm(params, max_norm, norm_type=2.0):
    """Scale every gradient by ``min(1, max_norm / (total + 1e-6))``, where ``total`` is the
    ``norm_type``-norm of all gradients together (the norm of the per-gradient norms).

    ``params``: Parameters or a Layer; those whose ``grad`` is None are ignored, and a
    parameter listed more than once (tied) counts once. The gradients are rebound
    (``p.grad = p.grad * coef``), never modified in place. Returns the total norm as a 0-d array
    on the gradients' backend (no host read); with no gradients, returns ``None``.
    """
    if isinstance(params, Layer):
        params = params.parameters()
    max_norm = real("clip_grad_norm", "max_norm", max_norm)
    norm_type = float(norm_type)
    params = list({id(p): p for p in params if p.grad is not None}.values())
    if not params:
        return None
    xp = backends.namespace_of(params[0].grad)
    norms = [_norm(xp, p.grad, norm_type) for p in params]
    dtype = xp.result_type(*norms) if len(norms) > 1 else norms[0].dtype
    total = _norm(xp, xp.stack([xp.astype(n, dtype) for n in norms]), norm_type)
    coef = max_norm / (total + 1e-6)
    coef = xp.where(coef < 1.0, coef, 1.0)
    for p in params:
        g = p.grad
        p.grad = g * (coef if coef.dtype == g.dtype else xp.astype(coef, g.dtype))
    return total
