"""MaxPool1d, MaxPool2d, MaxPool3d: the max over each window, gradient routed to one winner per
window; and the max over windows that LPPool (``norm_type=inf``) shares."""

from __future__ import annotations

import math

from ... import backends
from .._checks import require_float
from ...validate import flag
from ._windows import Pool, given, unbatch


def window_max(pool, xp, xb, geo):
    """``(y, xpad, slices)``: the max of every window of ``xb`` (batched), the input padded with
    ``-inf`` (padded positions never win) and the kernel offsets' slices of it, in scan order."""
    xpad = pool._pad(xp, xb, geo, -math.inf)
    slices = pool._slices(xpad, geo)
    first, *rest = slices
    if not rest:
        return xp.asarray(first, copy=True), xpad, slices  # a one-element kernel: still a fresh array, never a view of x
    y = xp.maximum(first, rest[0])
    for s in rest[1:]:
        y = xp.maximum(y, s)
    return y, xpad, slices


def window_max_grad(pool, xp, dy, xpad, y, geo):
    """The gradient of the padded input of :func:`window_max`: each window's ``dy`` routed to
    its first maximum in scan order.

    ``rest`` is the gradient not yet routed: slice k takes ``rest * [slice_k == y]`` (a float
    mask: faster than where() on numpy), and what it took leaves ``rest`` (rest - rest == 0
    exactly), so a tie later in the scan gets nothing. The last slice takes whatever remains:
    no earlier slice matched, so it is the max.
    """
    dx, put = pool._grad_buffer(xp, geo, dy.dtype, dy.device)
    *head, last = geo.windows
    rest = dy
    for k, w in enumerate(head):
        g = xp.astype(xpad[w] == y, dy.dtype)
        g *= rest  # g is our own fresh mask
        if k == 0:
            rest = rest - g  # never modify the caller's dy
        else:
            rest -= g  # our own array from the first step on
        put(dx, w, g)
        del g
    put(dx, last, rest)
    return dx


def window_indices(pool, xp, slices, y, geo):
    """Each window's first maximum in scan order (the element backward routes to), as a flat
    index into the unpadded input plane (``h * W + w`` in 2-D): the window's first corner plus
    the winning offset. The scan runs backwards so that the earliest match is written last."""
    plane = [math.prod(geo.size[a + 1:]) for a in range(pool.nd)]  # the plane's strides, per axis
    offset = [sum((o - p) * st for o, p, st in zip(off, pool._p, plane)) for off in pool._offsets]
    idx = xp.full(tuple(y.shape), offset[-1], dtype=xp.int64, device=y.device)
    for k in range(len(slices) - 2, -1, -1):
        idx = xp.where(slices[k] == y, offset[k], idx)
    for a, (o, s, st) in enumerate(zip(geo.out, pool._s, plane)):
        step = xp.arange(o, dtype=xp.int64, device=y.device) * (s * st)
        idx += xp.reshape(step, (o,) + (1,) * (pool.nd - 1 - a))  # idx is our own fresh array
    return idx


class _MaxPool(Pool):
    """Max over each window, as ``torch.nn.MaxPoolNd`` (the subclasses fix ``nd``).

    ``y[n, c, a] = max_{i < k} xpad[n, c, a * s + i * d]`` per spatial axis, where ``xpad`` is the
    input padded with ``-inf`` (padded positions never win). ``stride`` defaults to
    ``kernel_size``; ``padding`` may be at most half the kernel; ``dilation`` spaces the
    window's elements; ``ceil_mode`` keeps a last partial window (see :mod:`._windows`). Each
    spatial axis gives ``out = (L + 2p - d (k - 1) - 1) // s + 1`` windows (rounded up with
    ``ceil_mode``); the batch axis is optional, as in torch.

    ``return_indices=True``: forward returns ``(y, indices)``, ``indices`` int64 of ``y``'s
    shape, each the flat index in its input plane (``w``; ``h * W + w``; ``(t * H + h) * W + w``)
    of the element that won, as torch gives them; backward is then ``backward(dy,
    dindices=None)`` (indices have no gradient).

    Each window's winner, for the indices and for backward, is the first maximal element in
    scan order (the last axis fastest), as PyTorch's CPU kernel picks it, so ties (all zeros
    after a ReLU) never duplicate gradient. Where windows overlap an element that wins several
    windows receives the sum of their gradients.

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
        self.return_indices = flag(type(self).__name__, "return_indices", return_indices)

    def forward(self, x):
        xp = require_float(self._tag(), x).xp
        xb, unbatched, geo = self._geometry(x)
        y, xpad, slices = window_max(self, xp, xb, geo)
        # kept: the padded input and the output, from which backward finds each window's first maximum
        self.save_for_backward(xpad, y, geo, unbatched)
        if not self.return_indices:
            return unbatch(y, unbatched)
        return unbatch(y, unbatched), unbatch(window_indices(self, xp, slices, y, geo), unbatched)

    def backward(self, dy, dindices=None, input_grad: bool = True):
        """``dx`` from ``dy``; ``dindices`` (with ``return_indices``) is ignored: indices have no gradient."""
        xpad, y, geo, unbatched = self.saved()
        if dy is None or not input_grad:
            return None
        dy = self._dy(dy, y, geo, unbatched)  # y: the batched output
        xp = backends.namespace_of(dy)
        return self._input_grad(window_max_grad(self, xp, dy, xpad, y, geo), geo, unbatched)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPool):
    """Max over each window of ``(N, C, L)`` (or ``(C, L)``), as ``torch.nn.MaxPool1d``:
    ``y[n, c, a] = max_{i < k} xpad[n, c, a*s + i*d]``; see :class:`_MaxPool` for the options,
    ties and indices (the position ``l`` of the winner). Shapes: ``(N, C, L) -> (N, C, OL)``,
    ``OL = (L + 2p - d (k - 1) - 1) // s + 1`` (rounded up with ``ceil_mode``)."""

    nd = 1


class MaxPool2d(_MaxPool):
    """Max over each ``KH x KW`` window, as ``torch.nn.MaxPool2d``.

    ``y[n, c, a, b] = max_{i < KH, j < KW} xpad[n, c, a*SH + i*DH, b*SW + j*DW]``, where ``xpad``
    is the input padded with ``-inf``; see :class:`_MaxPool` for the options, ties and indices
    (``h * W + w``). Shapes: ``(N, C, H, W) -> (N, C, OH, OW)`` (or ``(C, H, W) -> (C, OH, OW)``)
    with ``OH = (H + 2*PH - DH*(KH - 1) - 1) // SH + 1`` (rounded up with ``ceil_mode``) and likewise ``OW``.
    """

    nd = 2


class MaxPool3d(_MaxPool):
    """Max over each ``KD x KH x KW`` window of ``(N, C, D, H, W)`` (or ``(C, D, H, W)``), as
    ``torch.nn.MaxPool3d``; see :class:`_MaxPool` for the options, ties and indices
    (``(t * H + h) * W + w``). Each spatial axis gives ``(L + 2p - d (k - 1) - 1) // s + 1``
    windows (rounded up with ``ceil_mode``)."""

    nd = 3
