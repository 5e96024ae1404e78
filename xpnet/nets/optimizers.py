"""Adaptive optimizers with torch.optim's semantics, argument names and defaults: Adam, AdamW, RMSprop.

Like :class:`~xpnet.nets.optim.SGD`, each one takes parameter groups, updates its own state
buffers in place and rebinds the parameter (never mutates it). The formulas are those of torch's
single-tensor (non-fused, non-foreach) implementation, so float64 results agree with torch to
rounding. Each parameter's state holds a Python-int ``step`` beside its arrays.
"""

from __future__ import annotations

import numbers

from .. import backends
from ..validate import nonnegative
from .optim import Optimizer, _Hyper


def _unit_interval(owner, name, value):
    """A real number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), got {value!r}")
    return float(value)


class Adam(Optimizer):
    """Adam (Kingma & Ba), as ``torch.optim.Adam``.

    ``g = grad + weight_decay * w``; ``m = beta1 * m + (1 - beta1) * g``;
    ``v = beta2 * v + (1 - beta2) * g * g`` (with ``amsgrad``, ``v_max = max(v_max, v)`` is used
    in place of ``v``); ``w = w - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``.
    """

    _decoupled = False
    betas = _Hyper()
    eps = _Hyper()
    weight_decay = _Hyper()
    amsgrad = _Hyper()

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    def _check(self, h, owner):
        lr = super()._check(h, owner)["lr"]
        betas = h["betas"]
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"{owner}: betas must be a pair of numbers, got {betas!r}") from None
        betas = (_unit_interval(owner, "betas[0]", b1), _unit_interval(owner, "betas[1]", b2))
        return {"lr": lr, "betas": betas, "eps": nonnegative(owner, "eps", h["eps"]),
                "weight_decay": nonnegative(owner, "weight_decay", h["weight_decay"]),
                "amsgrad": bool(h["amsgrad"])}

    def _update(self, w, g, state, group):
        xp = backends.namespace_of(w)
        lr, wd, (beta1, beta2) = group["lr"], group["weight_decay"], group["betas"]
        amsgrad = group["amsgrad"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(w)
            state["exp_avg_sq"] = xp.zeros_like(w)
            if amsgrad:
                state["max_exp_avg_sq"] = xp.zeros_like(w)
        state["step"] += 1
        step = state["step"]
        if wd:
            if self._decoupled:
                w = w * (1.0 - lr * wd)  # a new array: the caller's parameter is not touched
            else:
                g = g + w * wd
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (g - m) * (1.0 - beta1)  # torch's lerp_ (weight < 0.5)
        v *= beta2
        v += g * g * (1.0 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        step_size = lr / bias_correction1
        if amsgrad:
            state["max_exp_avg_sq"] = v = xp.maximum(state["max_exp_avg_sq"], v)
        denom = xp.sqrt(v) / bias_correction2_sqrt
        denom += group["eps"]
        new = m / denom
        new *= -step_size
        new += w
        return new


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter), as ``torch.optim.AdamW``: Adam with decoupled weight decay,
    ``w = w * (1 - lr * weight_decay)`` before the Adam step."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``.

    ``g = grad + weight_decay * w``; ``s = alpha * s + (1 - alpha) * g * g``;
    ``avg = sqrt(s - a * a) + eps`` with ``centered`` (``a = alpha * a + (1 - alpha) * g``),
    else ``sqrt(s) + eps``; with momentum ``mu``: ``b = mu * b + g / avg``, ``w = w - lr * b``,
    else ``w = w - lr * g / avg``.
    """

    alpha = _Hyper()
    eps = _Hyper()
    weight_decay = _Hyper()
    momentum = _Hyper()
    centered = _Hyper()

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                         centered=centered)

    def _check(self, h, owner):
        lr = super()._check(h, owner)["lr"]
        return {"lr": lr, "alpha": nonnegative(owner, "alpha", h["alpha"]), "eps": nonnegative(owner, "eps", h["eps"]),
                "weight_decay": nonnegative(owner, "weight_decay", h["weight_decay"]),
                "momentum": nonnegative(owner, "momentum", h["momentum"]), "centered": bool(h["centered"])}

    def _update(self, w, g, state, group):
        xp = backends.namespace_of(w)
        alpha, mu, wd = group["alpha"], group["momentum"], group["weight_decay"]
        centered = group["centered"]
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(w)
            if mu > 0:
                state["momentum_buffer"] = xp.zeros_like(w)
            if centered:
                state["grad_avg"] = xp.zeros_like(w)
        state["step"] += 1
        if wd:
            g = g + w * wd
        s = state["square_avg"]
        s *= alpha
        s += g * g * (1.0 - alpha)
        if centered:
            a = state["grad_avg"]
            a += (g - a) * (1.0 - alpha)
            avg = xp.sqrt(s - a * a)
        else:
            avg = xp.sqrt(s)
        avg += group["eps"]
        if mu > 0:
            buf = state["momentum_buffer"]
            buf *= mu
            buf += g / avg
            new = buf * -group["lr"]
        else:
            new = g / avg
            new *= -group["lr"]
        new += w
        return new
