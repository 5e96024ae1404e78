"""Weight initialisers, as ``torch.nn.init`` but rebinding ``Parameter.data`` instead of mutating it.

Each draws from the generator of the parameter's own backend, on its device, in its dtype.
Fans follow PyTorch: for a weight of shape ``(out, in, *kernel)``, ``fan_in = in * prod(kernel)``
and ``fan_out = out * prod(kernel)``.
"""

from __future__ import annotations

import math

from .. import backends


def _fans(p):
    shape = tuple(p.data.shape)
    if len(shape) < 2:
        raise ValueError(f"fan-based init needs a parameter with at least 2 dimensions, got shape {shape}")
    field = math.prod(shape[2:])
    return shape[1] * field, shape[0] * field


def _redraw(p, draw):
    be = backends.backend_of(p.data)
    p.data = draw(be.rng, tuple(p.data.shape), p.data.dtype, p.data.device)
    return p


def uniform(p, a=0.0, b=1.0):
    """``p ~ U(a, b)``."""
    return _redraw(p, lambda g, s, dt, dev: g.uniform(s, a, b, dtype=dt, device=dev))


def normal(p, mean=0.0, std=1.0):
    """``p ~ N(mean, std^2)``."""
    return _redraw(p, lambda g, s, dt, dev: g.normal(s, mean, std, dtype=dt, device=dev))


def constant(p, value):
    """Every element set to ``value``."""
    xp = backends.namespace_of(p.data)
    p.data = xp.full(tuple(p.data.shape), value, dtype=p.data.dtype, device=p.data.device)
    return p


def zeros(p):
    return constant(p, 0.0)


def ones(p):
    return constant(p, 1.0)


def xavier_uniform(p, gain=1.0):
    """Glorot: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(p)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(p, -a, a)


def xavier_normal(p, gain=1.0):
    """Glorot: ``N(0, std^2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(p)
    return normal(p, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform(p, a=0.0, nonlinearity="leaky_relu"):
    """He: ``U(-b, b)`` with ``b = gain * sqrt(3 / fan_in)``, ``gain = sqrt(2 / (1 + a^2))`` for (leaky) ReLU."""
    fan_in, _ = _fans(p)
    bound = _gain(nonlinearity, a) * math.sqrt(3.0 / fan_in)
    return uniform(p, -bound, bound)


def kaiming_normal(p, a=0.0, nonlinearity="leaky_relu"):
    """He: ``N(0, std^2)`` with ``std = gain / sqrt(fan_in)``."""
    fan_in, _ = _fans(p)
    return normal(p, 0.0, _gain(nonlinearity, a) / math.sqrt(fan_in))


def _gain(nonlinearity, a):
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    if nonlinearity in ("linear", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}; expected relu, leaky_relu, linear, sigmoid or tanh")
