"""MaxPool2d: the max over each window, gradient routed to one winner per window."""

from __future__ import annotations

import math

from ... import backends
from .._checks import require_float
from ...validate import flag
from .._spatial import window
from ._windows import Pool2d, given


class MaxPool2d(Pool2d):
    """Max over each ``KH x KW`` window, as ``torch.nn.MaxPool2d``.

    ``y[n, c, a, b] = max_{i < KH, j < KW} xpad[n, c, a*SH + i*DH, b*SW + j*DW]``, where ``xpad``
    is the input padded with ``-inf`` (padded positions never win). ``stride`` defaults to
    ``kernel_size``; ``padding`` may be at most half the kernel; ``dilation`` spaces the
    window's elements; ``ceil_mode`` keeps a last partial window (see :mod:`._windows`).

    Shapes: ``(N, C, H, W) -> (N, C, OH, OW)`` (or ``(C, H, W) -> (C, OH, OW)``) with
    ``OH = (H + 2*PH - DH*(KH - 1) - 1) // SH + 1`` (rounded up with ``ceil_mode``) and likewise ``OW``.

    ``return_indices=True``: forward returns ``(y, indices)``, ``indices`` int64 of ``y``'s
    shape, each the flat index ``h * W + w`` in its input plane of the element that won, as
    torch gives them; backward is then ``backward(dy, dindices=None)`` (indices have no gradient).

    Each window's winner, for the indices and for backward, is the first maximal element in
    (row, column) scan order, as PyTorch's CPU kernel picks it, so ties (all zeros after a ReLU)
    never duplicate gradient. Where windows overlap an element that wins several windows
    receives the sum of their gradients.

    Keeps the padded input and the output: backward finds each window's winner by comparing
    the kernel-offset slices with the output, first match first. This costs no extra forward
    work (unlike tracking an argmax while taking the max) and no memory beyond references (the
    padded input is the caller's array unless there is padding). Like every layer's input and
    output, neither may be modified in place between forward and backward. Corner cases that
    differ from torch: a window holding a NaN outputs NaN, but its gradient (and index) goes to
    the window's last element; a window whose real elements are all ``-inf`` (or that holds no
    real element, possible with dilation) may route its gradient to padding and give the index
    of a padded position.
    """

    _config_fields = ('kernel_size', 'stride', 'padding', 'dilation', 'return_indices', 'ceil_mode')

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)
        self.dilation = given(dilation)
        self.return_indices = flag("MaxPool2d", "return_indices", return_indices)

    def forward(self, x):
        xp = require_float(self._tag(), x).xp
        x4, unbatched, geo = self._geometry(x)
        xpad = self._pad(xp, x4, geo, -math.inf)
        first, *rest = self._slices(xpad, geo)
        if not rest:
            y = xp.asarray(first, copy=True)  # a 1x1 kernel: still a fresh array, never a view of x
        else:
            y = xp.maximum(first, rest[0])
            for s in rest[1:]:
                y = xp.maximum(y, s)
        # kept: the padded input and the output, from which backward finds each window's first maximum
        self.save_for_backward(xpad, y, geo, unbatched)
        out = y[0, ...] if unbatched else y
        if not self.return_indices:
            return out
        idx = self._indices(xp, [first, *rest], y, geo)
        return out, (idx[0, ...] if unbatched else idx)

    def _indices(self, xp, slices, y, geo):
        """Each window's first maximum in scan order (the element backward routes to), as a flat
        index ``h * W + w`` into the unpadded input plane: the window's top-left corner plus the
        winning offset. The scan runs backwards so that the earliest match is written last."""
        (sh, sw), (ph, pw), w = self._s, self._p, geo.w
        dev = y.device
        offset = [(i - ph) * w + (j - pw) for i, j in self._offsets]
        idx = xp.full(tuple(y.shape), offset[-1], dtype=xp.int64, device=dev)
        for k in range(len(slices) - 2, -1, -1):
            idx = xp.where(slices[k] == y, offset[k], idx)
        rows = xp.arange(geo.oh, dtype=xp.int64, device=dev) * (sh * w)
        cols = xp.arange(geo.ow, dtype=xp.int64, device=dev) * sw
        idx += rows[:, None] + cols[None, :]  # idx is our own fresh array
        return idx

    def backward(self, dy, dindices=None, input_grad: bool = True):
        """``dx`` from ``dy``; ``dindices`` (with ``return_indices``) is ignored: indices have no gradient."""
        xpad, y, geo, unbatched = self.saved()
        if dy is None or not input_grad:
            return None
        dy = self._dy4(dy, y, geo, unbatched)  # y: the 4-D output
        xp = backends.namespace_of(dy)
        # Route dy through the slices in scan order. `rest` is the gradient not yet routed:
        # slice k takes rest * [slice_k == y] (a float mask: faster than where() on numpy), and
        # what it took leaves `rest` (rest - rest == 0 exactly), so a tie later in the scan gets
        # nothing. The last slice takes whatever remains: no earlier slice matched, so it is the max.
        dx, put = self._grad_buffer(xp, geo, dy.dtype, dy.device)
        (sh, sw), oh, ow = self._s, geo.oh, geo.ow
        last = len(self._offsets) - 1
        rest = dy
        for k, (i, j) in enumerate(self._offsets):
            if k == last:
                put(dx, i, j, rest)
                break
            g = xp.astype(window(xpad, i, j, oh, ow, sh, sw) == y, dy.dtype)
            g *= rest  # g is our own fresh mask
            if k == 0:
                rest = rest - g  # never modify the caller's dy
            else:
                rest -= g
            put(dx, i, j, g)
            del g
        return self._input_grad(dx, geo, unbatched)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")
