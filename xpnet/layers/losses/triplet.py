"""TripletMarginLoss: an anchor should lie nearer its positive than its negative, by a margin."""

from __future__ import annotations

import math

from ... import backends
from ...validate import flag, real
from .._checks import require_float, shape_str
from ..distance import sum_to, vector_norm, vector_norm_backward
from ._broadcast import broadcast_shape
from .base import MultiInputLoss, as_array


class TripletMarginLoss(MultiInputLoss):
    """The triplet loss of ``torch.nn.TripletMarginLoss`` on anchors ``a``, positives ``p`` and
    negatives ``n``, with torch's pairwise distance ``d(x, y) = ||x - y + eps||_p`` along the
    last axis::

        l = max(0, margin + d(a, p) - d(a, n))

    and with ``swap=True`` (the distance swap of Balntas et al.) ``d(a, n)`` replaced by
    ``min(d(a, n), d(p, n))``. ``margin > 0``; ``p`` any real or ``inf`` (as
    :func:`xpnet.layers.distance.vector_norm`); ``eps`` any real.

    Shapes: the three inputs with one number of dimensions, ``(N, D)`` usually (``(D,)``
    unbatched, any ``(*, D)``), broadcasting together; the output is ``()``, or ``(*)`` for
    ``"none"``; ``"mean"`` divides by its size.

    Backward, with ``g`` the upstream gradient (``/ size`` for ``"mean"``) where the hinge is
    active (torch's clamp passes it at 0), and ``u(x, y) = d||x - y + eps||_p / dx``: ``da =
    g (u(a, p) - u(a, n))``, ``dp = -g u(a, p)``, ``dn = g u(a, n)``; with the swap, ``min``
    sends its gradient to the smaller distance (half to each on a tie, as torch), the
    ``d(p, n)`` share going to ``p`` and ``n``. Each is summed over the axes it was broadcast
    along. Keeps the differences and their norms.
    """

    _config_fields = ("margin", "p", "eps", "swap", "reduction")
    _inputs = ("anchor", "positive", "negative")

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                 reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = real("TripletMarginLoss", "margin", margin, lo=0.0, lo_open=True)
        self.p = real("TripletMarginLoss", "p", p)
        self.eps = real("TripletMarginLoss", "eps", eps)
        self.swap = flag("TripletMarginLoss", "swap", swap)

    def forward(self, anchor, positive, negative):
        tag = self._tag()
        anchor, positive, negative = self._lift(anchor, positive, negative)  # float16/bfloat16: computed in float32
        xp = require_float(tag, anchor, "anchor").xp
        self._check_input(positive, anchor, "positive", "anchor")
        self._check_input(negative, anchor, "negative", "anchor")
        shapes = {"anchor": anchor.shape, "positive": positive.shape, "negative": negative.shape}
        if not anchor.ndim == positive.ndim == negative.ndim:
            named = ", ".join(f"{k} {shape_str(s)}" for k, s in shapes.items())
            raise ValueError(f"{tag} expected anchor, positive and negative with one number of dimensions, got {named}")
        shape = broadcast_shape(tag, **shapes)
        if not shape:  # 0-d inputs: a distance over their one element
            anchor, positive, negative = (xp.reshape(x, (1,)) for x in (anchor, positive, negative))
        pairs = [(anchor, positive), (anchor, negative)] + ([(positive, negative)] if self.swap else [])
        diffs = [x - y + self.eps for x, y in pairs]
        norms = [vector_norm(xp, d, self.p, -1) for d in diffs]  # each (*, 1)
        near = norms[1] if not self.swap else xp.minimum(norms[1], norms[2])
        z = self.margin + norms[0] - near
        # the share of d(a, n) in the min (1, 0 or 1/2 on a tie), and the hinge's gate
        share = None if not self.swap else xp.where(norms[1] == norms[2], 0.5, xp.astype(norms[1] < norms[2], z.dtype))
        gate = xp.astype(z >= 0.0, z.dtype)
        self.save_for_backward(diffs, norms, share, gate, tuple(shapes.values()))
        per = xp.reshape(xp.maximum(z, 0.0), tuple(z.shape[:-1]))
        return self._reduce(xp, as_array(xp, per), math.prod(per.shape))

    def _backward(self, saved, dy, wanted):
        diffs, norms, share, gate, (sa, sp, sn) = saved
        xp = backends.namespace_of(gate)
        loss_shape = tuple(gate.shape[:-1])
        g = self._seed(dy, gate, loss_shape, math.prod(loss_shape))
        g = gate * (g if isinstance(g, float) or g.ndim == 0 else xp.reshape(g, tuple(gate.shape)))
        u = [vector_norm_backward(xp, diffs[0], norms[0], g, self.p, -1),
             vector_norm_backward(xp, diffs[1], norms[1], g if share is None else g * share, self.p, -1)]
        da, dp, dn = u[0] - u[1], -u[0], u[1]
        if share is not None:
            w = vector_norm_backward(xp, diffs[2], norms[2], g * (1.0 - share), self.p, -1)
            dp, dn = dp - w, dn + w
        return tuple(as_array(xp, sum_to(xp, d, s)) if want else None
                     for d, s, want in zip((da, dp, dn), (sa, sp, sn), wanted))

    def extra_repr(self):
        parts = [f"margin={self.margin}", f"p={self.p}", f"eps={self.eps}", f"swap={self.swap}"]
        return ", ".join(parts + ([super().extra_repr()] if self.reduction != "mean" else []))
