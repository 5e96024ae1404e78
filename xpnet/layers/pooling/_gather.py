"""The max over windows that are no strided slices (adaptive windows of uneven sizes, fractional
windows drawn per plane), with the winners' flat indices, exactly as torch's CPU kernels pick
them; and its gradient, one scatter-add of ``dy`` onto the winners.

torch scans each window in row-major order (the last axis fastest) keeping ``val > max or
isnan(val)``: the winner is the window's last NaN if it holds one, else its first maximum. That
rule is separable: pooling the last axis first (each row's winner), then the axis before over
those winners, and so on, picks the same element (the last row holding a NaN, and that row's
last NaN; else the first row reaching the maximum, and that row's first maximum), with
``sum(k)`` steps per output rather than ``prod(k)``.
"""

from __future__ import annotations

import math

from ... import backends
from ..base import Layer, Signature
from ._windows import unbatch


def gathered_max(xp, xb, positions):
    """``(y, indices)`` of windows over ``xb`` ``(N, C, *S)``.

    ``positions[d]``: for spatial axis ``d``, a list over the window's offsets (in order) of int64
    arrays, the input position along ``d`` that the offset reads for each output position:
    shape ``(O_d,)`` when every plane has the same windows, ``(N, C, O_d)`` when each plane has
    its own. A window shorter than the longest repeats its last position (a repeat never wins
    twice: it is no greater than itself). ``indices``: int64 flat positions in the input plane.
    """
    nd = xb.ndim - 2
    strides = [math.prod(xb.shape[3 + d:]) for d in range(nd)]  # of the input plane, per axis
    v, f = xb, None
    for d in range(nd - 1, -1, -1):  # the last axis first
        ax, trail = 2 + d, nd - 1 - d
        best = None
        for pos in positions[d]:
            if pos.ndim == 1:  # the same windows in every plane
                cand = xp.take(v, pos, axis=ax)
                at = xp.reshape(pos, (pos.shape[0],) + (1,) * trail)
                fc = at * strides[d] if f is None else xp.take(f, pos, axis=ax) + at * strides[d]
            else:
                shape = tuple(v.shape[:ax]) + (pos.shape[-1],) + tuple(v.shape[ax + 1:])
                at = xp.broadcast_to(xp.reshape(pos, tuple(pos.shape[:2]) + (1,) * d + (pos.shape[-1],) + (1,) * trail),
                                     shape)
                cand = xp.take_along_axis(v, at, axis=ax)
                fc = at * strides[d] if f is None else xp.take_along_axis(f, at, axis=ax) + at * strides[d]
            if best is None:
                best, fbest = cand, xp.broadcast_to(fc, tuple(cand.shape))
                continue
            better = (cand > best) | xp.isnan(cand)
            best = xp.where(better, cand, best)
            fbest = xp.where(better, fc, fbest)
        v, f = best, fbest
    if len(positions[0]) == 1:  # one offset along the first axis: f may be a broadcast view
        f = xp.asarray(xp.broadcast_to(f, tuple(v.shape)), copy=True)
    return v, f


def gathered_max_grad(be, dy, indices, shape):
    """The gradient of an input of ``shape`` ``(N, C, *S)``: each ``dy`` added at the flat plane
    position ``indices`` names (summed where one element wins several windows)."""
    xp = be.xp
    n, c = shape[:2]
    plane = math.prod(shape[2:])
    first = xp.reshape(xp.arange(n * c, dtype=xp.int64, device=dy.device) * plane, (n, c) + (1,) * (len(shape) - 2))
    target = xp.zeros((n * c * plane,), dtype=dy.dtype, device=dy.device)
    dx = be.scatter_add(target, xp.reshape(indices + first, (-1,)), xp.reshape(dy, (-1,)))
    return xp.reshape(dx, tuple(shape))


class GatheredMax(Layer):
    """What the gathered max pools share: the end of forward (the max, the output or the pair
    with ``return_indices``, what backward keeps) and backward."""

    return_indices = False

    def _max_over(self, xp, xb, unbatched, positions):
        """The max over the windows ``positions`` name (see :func:`gathered_max`) of ``xb``."""
        y, idx = gathered_max(xp, xb, positions)
        y = unbatch(y, unbatched)
        self.save_for_backward(idx, tuple(xb.shape), unbatched, Signature(y))  # kept: the winners, for backward
        return (y, unbatch(idx, unbatched)) if self.return_indices else y

    def backward(self, dy, dindices=None, input_grad: bool = True):
        """``dx`` from ``dy``; ``dindices`` (with ``return_indices``) is ignored: indices have no gradient."""
        idx, shape, unbatched, out = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, out)
        g = dy[None, ...] if unbatched else dy
        return unbatch(gathered_max_grad(backends.backend_of(dy), g, idx, shape), unbatched)
