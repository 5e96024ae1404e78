"""PReLU: a leaky ReLU whose negative slope is learned, one per channel or one for all."""

from __future__ import annotations

from .. import backends
from ..validate import positive_int, real
from ._checks import check_like, shape_str
from .base import Layer, Parameter, trains


class PReLU(Layer):
    """``y = x`` for ``x > 0``, ``weight[c] * x`` otherwise, ``c`` the channel: axis 1 of an input
    with two axes or more; an input with fewer (0-d, 1-D) has one channel.

    ``weight (num_parameters,)``, all ``init`` at first (torch's initialisation), in ``dtype``
    (default float32) on ``backend``; ``num_parameters`` is 1 (one slope shared by every
    channel) or the number of channels. The input must have the weight's dtype and place, as torch
    (``prelu: Type promoting not supported``).

    Backward: ``dx = dy`` where ``x > 0``, ``weight[c] * dy`` elsewhere (a NaN input included, as
    torch); ``dweight[c] += sum of x * dy`` over the elements of channel ``c`` with ``x <= 0``.
    Keeps ``x`` and the weight it used.
    """

    _config_fields = ('num_parameters', 'init')

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *, backend=None, dtype=None):
        self.num_parameters = positive_int("PReLU", "num_parameters", num_parameters)
        self.init = real("PReLU", "init", init)
        be = backends.get(backend)
        dt = be.dtype("float32" if dtype is None else dtype)
        self.weight = Parameter(be.xp.full((self.num_parameters,), self.init, dtype=dt, device=be.device))

    def _slopes(self, xp, w, ndim):
        """The weight shaped to broadcast over an input of ``ndim`` axes (channels on axis 1)."""
        return xp.reshape(w, (1, self.num_parameters) + (1,) * (ndim - 2)) if ndim >= 2 else w

    def forward(self, x):
        w = self.weight.data
        check_like(self._tag(), x, w)
        n = self.num_parameters
        channels = x.shape[1] if x.ndim >= 2 else 1
        if n != 1 and n != channels:
            raise ValueError(f"{self._tag()} expected an input with {n} channels (axis 1), got input of shape "
                             f"{shape_str(x.shape)}; or use PReLU(num_parameters=1), one slope for every channel")
        xp = backends.namespace_of(x)
        positive = xp.astype(x > 0, x.dtype)
        slope = positive * (1.0 - self._slopes(xp, w, x.ndim)) + self._slopes(xp, w, x.ndim)
        self.save_for_backward(x, w)
        y = x * slope
        return xp.reshape(y, ()) if x.ndim == 0 else y  # numpy: 0-d arithmetic gives a scalar

    def backward(self, dy, input_grad: bool = True):
        x, w = self.saved()
        if dy is None:
            return None
        self.check_grad(dy, x)
        xp = backends.namespace_of(dy)
        if trains(self.weight):
            g = xp.where(x > 0, 0.0, x * dy)  # a NaN input is not > 0: its x * dy counts, as in torch
            axes = tuple(i for i in range(x.ndim) if i != 1 or self.num_parameters == 1)
            self.weight.accumulate(xp.reshape(xp.sum(g, axis=axes), (self.num_parameters,)))
        if not input_grad:
            return None
        s = self._slopes(xp, w, x.ndim)
        dx = xp.where(x > 0, dy, dy * s)
        return xp.reshape(dx, ()) if x.ndim == 0 else dx

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
