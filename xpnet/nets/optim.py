"""Optimizers. The base validates, holds the parameters and rebinds ``Parameter.data``;
a subclass only computes the new value from the gradient and its per-parameter state.
"""

from __future__ import annotations

import numbers

from ..layers.base import Layer, Parameter


def _number(owner, name, value, *, positive=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: {name} must be a real number, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{owner}: {name} must be > 0, got {value!r}")
    if not positive and not value >= 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {value!r}")
    return float(value)


class Optimizer:
    """Holds ``params`` (Parameters, or a Layer whose parameters are taken) and steps them.

    ``step()`` skips parameters whose ``grad`` is ``None``; ``zero_grad()`` sets every
    ``grad`` to ``None``. Subclasses implement ``_update(p, grad, state) -> new data``.
    """

    def __init__(self, params, lr):
        if isinstance(params, Layer):
            params = params.parameters()
        params = list(params)
        name = type(self).__name__
        if not params:
            raise ValueError(f"{name} got an empty parameter list")
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{name} expected Parameters, got {type(p).__name__} at position {i}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name} got some parameters more than once")
        self.params = params
        self.lr = _number(name, "lr", lr)  # lr = 0 is allowed, as in torch (a schedule may end there)
        self.state = [{} for _ in params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        for p, st in zip(self.params, self.state):
            g = p.grad
            if g is not None:
                p.data = self._update(p.data, g, st)

    def _update(self, w, g, state):
        raise NotImplementedError

    def _hyper(self):
        """Hyperparameters, for state_dict and repr."""
        return {"lr": self.lr}

    def state_dict(self):
        """``{"state": {index: {name: array}}, "hyper": {...}}``.

        The arrays are the live buffers, which later steps update in place (as in PyTorch):
        copy them (e.g. ``backend.to_numpy``) to keep a snapshot.
        """
        return {"state": {i: dict(st) for i, st in enumerate(self.state) if st}, "hyper": self._hyper()}

    def load_state_dict(self, sd):
        """Restore what :meth:`state_dict` gave; arrays are moved to each parameter's backend and dtype."""
        from .. import backends

        for k, v in sd["hyper"].items():
            setattr(self, k, v)
        self.state = [{} for _ in self.params]
        for i, st in sd["state"].items():
            p = self.params[int(i)]
            be = backends.backend_of(p.data)
            # copies: the buffers are updated in place, and must not be shared with the source
            self.state[int(i)] = {k: be.asarray(v, dtype=be.dtype_name(p.data.dtype), copy=True) for k, v in st.items()}

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self._hyper().items())
        return f"{type(self).__name__}({len(self.params)} parameters, {args})"


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's semantics.

    ``g = grad + weight_decay * w``; with momentum ``mu``:
    ``b = g`` on the first step, then ``b = mu * b + (1 - dampening) * g``;
    ``g = g + mu * b`` (Nesterov) or ``g = b``. Finally ``w = w - lr * g``.
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum = _number("SGD", "momentum", momentum)
        self.dampening = _number("SGD", "dampening", dampening)
        self.weight_decay = _number("SGD", "weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0")

    def _update(self, w, g, state):
        owned = False  # is g a fresh array of ours (not the user-visible p.grad)?
        if self.weight_decay:
            d = w * self.weight_decay
            d += g
            g, owned = d, True
        mu = self.momentum
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                # the buffer is the optimizer's own array, updated in place from here on,
                # so it must not alias the gradient the user can still see
                buf = g if owned else g * 1.0
                state["momentum_buffer"] = buf
            else:
                buf *= mu
                buf += g * (1.0 - self.dampening) if self.dampening else g
            if self.nesterov:
                t = buf * mu
                t += g
                g = t
            else:
                g = buf
        new = g * -self.lr  # one temporary, then rebind: the parameter's array itself is never touched
        new += w
        return new

    def _hyper(self):
        return {
            "lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
            "nesterov": self.nesterov, "weight_decay": self.weight_decay,
        }
