"""MarginRankingLoss and CosineEmbeddingLoss: losses on a pair of inputs and a +-1 label saying
how they relate, as ``torch.nn``'s."""

from __future__ import annotations

import math

from ... import backends
from ...validate import real
from .._checks import require_float, shape_str
from ..distance import sum_to
from ._broadcast import broadcast_shape
from .base import MultiInputLoss, as_array

#: what torch adds to each squared norm of CosineEmbeddingLoss (aten's EPSILON)
COSINE_EPS = 1e-12


class _PairLoss(MultiInputLoss):
    """``(input1, input2, target)``: two float inputs and a float or integer target of labels."""

    _config_fields = ("margin", "reduction")
    _inputs = ("input1", "input2", "target")
    _targets = ("target",)

    def __init__(self, margin: float = 0.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = real(type(self).__name__, "margin", margin)

    def _checked(self, x1, x2, y):
        """``(xp, y as x1's float dtype, whether y gets a gradient)`` after the checks of place and dtype."""
        be = require_float(self._tag(), x1, "input1")
        self._check_input(x2, x1, "input2", "input1")
        y_float = self._check_input(y, x1, "target", "input1", integer=True)
        return be.xp, (y if y_float else be.xp.astype(y, x1.dtype)), y_float

    def _shapes(self, *arrays):
        return ", ".join(f"{n} {shape_str(a.shape)}" for n, a in zip(self._inputs, arrays))

    def extra_repr(self):
        parts = [f"margin={self.margin}"] if self.margin else []
        return ", ".join(parts + ([super().extra_repr()] if self.reduction != "mean" else []))


class MarginRankingLoss(_PairLoss):
    """The ranking hinge of ``torch.nn.MarginRankingLoss``: ``y = 1`` says ``x1`` should rank
    above ``x2``, ``y = -1`` below::

        l = max(0, -y (x1 - x2) + margin)

    Shapes: ``x1``, ``x2`` and ``y`` with one number of dimensions (``(N,)`` usually, ``()`` too),
    sizes broadcasting together; ``y`` float (it gets a gradient too) or integer (none).
    The output is ``()``, or their broadcast shape for ``"none"``; ``"mean"`` divides by its size.

    Backward, with ``a = [-y (x1 - x2) + margin >= 0]`` (torch's clamp passes the gradient at
    0) and ``g`` the upstream gradient (``/ size`` for ``"mean"``): ``dx1 = -y a g``,
    ``dx2 = y a g``, ``dy = -(x1 - x2) a g``, each summed over the axes it was broadcast along.
    Keeps ``a``, ``y`` and ``x1 - x2``.
    """

    def forward(self, input1, input2, target):
        tag = self._tag()
        input1, input2, target = self._lift(input1, input2, target)  # float16/bfloat16: computed in float32
        xp, y, y_float = self._checked(input1, input2, target)
        if not input1.ndim == input2.ndim == target.ndim:
            raise ValueError(f"{tag} expected input1, input2 and target with one number of dimensions, got "
                             f"{self._shapes(input1, input2, target)}")
        shape = broadcast_shape(tag, input1=input1.shape, input2=input2.shape, target=target.shape)
        d = as_array(xp, input1 - input2)
        z = as_array(xp, self.margin - y * d)
        active = xp.astype(z >= 0.0, z.dtype)
        self.save_for_backward(active, y, d, (input1.shape, input2.shape, target.shape), y_float)
        return self._reduce(xp, xp.maximum(z, 0.0), math.prod(shape))

    def _backward(self, saved, dy, wanted):
        active, y, d, (s1, s2, sy), y_float = saved
        xp = backends.namespace_of(active)
        ga = active * self._seed(dy, active, tuple(active.shape), math.prod(active.shape))
        gy = as_array(xp, y * ga)
        return (as_array(xp, sum_to(xp, -gy, s1)) if wanted[0] else None,
                as_array(xp, sum_to(xp, gy, s2)) if wanted[1] else None,
                as_array(xp, sum_to(xp, -(d * ga), sy)) if wanted[2] and y_float else None)


class CosineEmbeddingLoss(_PairLoss):
    """The cosine embedding loss of ``torch.nn.CosineEmbeddingLoss``: pairs labelled ``y = 1``
    should point the same way, pairs labelled ``y = -1`` apart (by more than ``margin``)::

        cos = <x1, x2> / sqrt((|x1|^2 + e)(|x2|^2 + e)),   e = 1e-12 (torch's)
        l = 1 - cos where y = 1,  max(0, cos - margin) where y = -1,  0 for other labels

    Shapes: ``x1``, ``x2`` of ``(N, D)`` with ``y (N,)``, or unbatched ``(D,)`` with ``y ()``
    (the two inputs may broadcast); ``y`` float or integer. The output is ``()``, or ``(N,)``
    (``()``) for ``"none"``. The label is a selector: a float ``y`` gets a zero gradient (torch
    gives none; the same thing).

    Backward, with ``c = dl/dcos`` (``-1`` where ``y = 1``, ``[cos - margin >= 0]`` where
    ``y = -1``, 0 elsewhere) and ``g`` the upstream gradient (``/ N`` for ``"mean"``):
    ``dx1 = c g (x2 / sqrt(m1 m2) - cos x1 / m1)``, ``dx2`` likewise with the roles swapped, for
    ``m_i = |x_i|^2 + e``. Keeps both inputs, ``c``, ``cos``, ``m1``, ``m2``.
    """

    def forward(self, input1, input2, target):
        tag = self._tag()
        input1, input2, target = self._lift(input1, input2, target)  # float16/bfloat16: computed in float32
        xp, y, y_float = self._checked(input1, input2, target)
        if target.ndim > 1:
            raise ValueError(f"{tag} expected a 0-d or 1-d target (one label per pair; multi-target is not "
                             f"supported), got shape {shape_str(target.shape)}")
        want = 2 if target.ndim == 1 else 1
        if input1.ndim != want or input2.ndim != want:
            batch = "2-d (N, D) inputs for a 1-d target (N,)" if want == 2 else "1-d (D,) inputs for a 0-d target"
            raise ValueError(f"{tag} expected {batch}, got {self._shapes(input1, input2, target)}")
        pair = broadcast_shape(tag, input1=input1.shape, input2=input2.shape)
        shape = broadcast_shape(tag, pairs=pair[:-1], target=target.shape)
        dots = xp.sum(input1 * input2, axis=-1)
        m1 = as_array(xp, xp.sum(input1 * input1, axis=-1) + COSINE_EPS)
        m2 = as_array(xp, xp.sum(input2 * input2, axis=-1) + COSINE_EPS)
        cos = as_array(xp, dots / xp.sqrt(m1 * m2))
        pos, neg = y == 1.0, y == -1.0
        per = xp.where(pos, 1.0 - cos, 0.0) + xp.where(neg, xp.maximum(cos - self.margin, 0.0), 0.0)
        # dl/dcos: -1 for a similar pair, 1 for a dissimilar one within the margin (the clamp passes at 0)
        c = as_array(xp, xp.astype(neg & (cos - self.margin >= 0.0), cos.dtype) - xp.astype(pos, cos.dtype))
        self.save_for_backward(c, cos, m1, m2, input1, input2, target.shape, y_float)
        return self._reduce(xp, as_array(xp, per), math.prod(shape))

    def _backward(self, saved, dy, wanted):
        c, cos, m1, m2, x1, x2, sy, y_float = saved
        xp = backends.namespace_of(c)
        g = as_array(xp, sum_to(xp, as_array(xp, c * self._seed(dy, c, tuple(c.shape), math.prod(c.shape))), cos.shape))
        root = xp.sqrt(m1 * m2)
        dx1 = dx2 = None
        if wanted[0]:
            dx1 = sum_to(xp, g[..., None] * (x2 / root[..., None] - (cos / m1)[..., None] * x1), x1.shape)
        if wanted[1]:
            dx2 = sum_to(xp, g[..., None] * (x1 / root[..., None] - (cos / m2)[..., None] * x2), x2.shape)
        dy_ = xp.zeros(sy, dtype=c.dtype, device=c.device) if wanted[2] and y_float else None
        return dx1, dx2, dy_
