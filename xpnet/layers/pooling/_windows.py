"""What MaxPool2d and AvgPool2d share: their arguments, the window geometry (torch's output-size
rule, ceil mode included), unbatched inputs, padding, and the adjoint of taking a window slice.

Along one axis of size ``L``, with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d``
(span ``e = d (k - 1) + 1``), window ``a`` covers padded positions ``a s + i d`` for ``i < k``.
There are ``out = (L + 2p - e) // s + 1`` windows, or with ``ceil_mode`` ``ceil((L + 2p - e) / s) + 1``
less one if the last would start past the input and its left padding (torch's rule). Ceil-mode
windows may reach past the padding; the input is then padded by ``extra`` more positions at the
end (``-inf`` for max, zeros for the average, whose divisor does not count them).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from .._checks import shape_str
from .._spatial import window
from ..base import Layer
from ...validate import flag, pair


def given(value):
    """An argument as torch stores and prints it: an int stays an int, a pair becomes a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else value


def batched(layer, x):
    """``(x as (N, C, H, W), whether it came without the batch axis)``; torch accepts (C, H, W) too."""
    if x.ndim == 4:
        return x, False
    if x.ndim == 3:
        return x[None, ...], True
    raise ValueError(f"{layer._tag()} expected a 4-D (N, C, H, W) or 3-D (C, H, W) input, got shape {shape_str(x.shape)}")


def axis_windows(size, k, s, p, d, ceil_mode):
    """``(out, extra)`` along one axis: the number of windows, and how far the last one reaches
    past the padded input (0 unless ``ceil_mode``)."""
    span = d * (k - 1) + 1
    if ceil_mode:
        out = -(-(size + 2 * p - span) // s) + 1
        if out >= 1 and (out - 1) * s >= size + p:
            out -= 1
    else:
        out = (size + 2 * p - span) // s + 1
    extra = max(0, (out - 1) * s + span - (size + 2 * p)) if out >= 1 else 0
    return out, extra


class Geometry(NamedTuple):
    """One forward's sizes: the 4-D input ``(n, c, h, w)``, the output ``(oh, ow)``, the padding
    past the usual one that ceil-mode windows need at the bottom (``eh``) and right (``ew``), and
    how backward writes window slices into ``dx`` (see :meth:`Pool2d._grad_buffer`): ``tiled``
    (every padded position touched exactly once) and ``overlap`` (some position touched twice)."""

    n: int
    c: int
    h: int
    w: int
    oh: int
    ow: int
    eh: int
    ew: int
    tiled: bool
    overlap: bool


def _hits(out, k, s, d):
    """The padded positions the windows of one axis touch, and whether no two (window, offset)
    pairs touch the same one."""
    pos = [a * s + i * d for a in range(out) for i in range(k)]
    return set(pos), len(set(pos)) == len(pos)


@functools.lru_cache(maxsize=512)
def _plan(h, w, k, s, p, d, ceil_mode):
    """``(oh, ow, eh, ew, tiled, overlap)`` for an ``h x w`` input: pure arithmetic on the
    arguments, remembered so that a training loop pays for it once per input size."""
    oh, eh = axis_windows(h, k[0], s[0], p[0], d[0], ceil_mode)
    ow, ew = axis_windows(w, k[1], s[1], p[1], d[1], ceil_mode)
    if oh < 1 or ow < 1:
        return oh, ow, eh, ew, False, False
    rows, rows_once = _hits(oh, k[0], s[0], d[0])
    cols, cols_once = _hits(ow, k[1], s[1], d[1])
    overlap = not (rows_once and cols_once)
    tiled = not overlap and len(rows) == h + 2 * p[0] + eh and len(cols) == w + 2 * p[1] + ew
    return oh, ow, eh, ew, tiled, overlap


class Pool2d(Layer):
    """Shared plumbing of the windowed pools: argument checks, 3-D inputs, geometry, errors."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        owner = type(self).__name__
        self._k = pair(owner, "kernel_size", kernel_size, 1)
        self._s = self._k if stride is None else pair(owner, "stride", stride, 1)
        self._p = pair(owner, "padding", padding, 0)
        self._d = pair(owner, "dilation", dilation, 1)
        self.ceil_mode = flag(owner, "ceil_mode", ceil_mode)
        if self._p[0] > self._k[0] // 2 or self._p[1] > self._k[1] // 2:
            raise ValueError(
                f"{owner}: padding must be at most half of kernel_size, "
                f"got padding={given(padding)!r} for kernel_size={given(kernel_size)!r}"
            )
        self.kernel_size = given(kernel_size)
        self.stride = self.kernel_size if stride is None else given(stride)
        self.padding = given(padding)
        # every kernel offset in the padded input, in (row, column) scan order: the order ties are broken in
        (kh, kw), (dh, dw) = self._k, self._d
        self._offsets = [(i * dh, j * dw) for i in range(kh) for j in range(kw)]

    def _geometry(self, x):
        """``(x as 4-D, unbatched?, Geometry)``, after checking the input's rank and size."""
        x4, unbatched = batched(self, x)
        n, c, h, w = x4.shape
        plan = _plan(h, w, self._k, self._s, self._p, self._d, self.ceil_mode)
        if plan[0] < 1 or plan[1] < 1:
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self._k, self._s, self._p, self._d
            need = [d * (k - 1) + 1 for k, d in ((kh, dh), (kw, dw))]
            what = "the kernel" if (dh, dw) == (1, 1) else "the dilated kernel"
            if self.ceil_mode:
                need = [e - s + 1 for e, s in zip(need, (sh, sw))]
                what += ", less stride - 1 with ceil_mode=True"
            raise ValueError(
                f"{self._tag()} expected a padded input of at least {need[0]}x{need[1]} ({what}), "
                f"got {h + 2 * ph}x{w + 2 * pw} (input {shape_str(x.shape)} with padding ({ph}, {pw}))"
            )
        if h < 1 or w < 1 or c < 1:
            raise ValueError(f"{self._tag()} expected an input with C, H, W >= 1, got shape {shape_str(x.shape)}")
        return x4, unbatched, Geometry(n, c, h, w, *plan)

    def _pad(self, xp, x4, geo, value):
        """``x4`` padded with ``value``: ``padding`` on every side, plus ``eh``/``ew`` at the
        bottom/right. One fresh buffer and one slice assignment; no copy when nothing is padded."""
        (ph, pw), (h, w) = self._p, (geo.h, geo.w)
        if ph == pw == geo.eh == geo.ew == 0:
            return x4
        hp, wp = h + 2 * ph + geo.eh, w + 2 * pw + geo.ew
        out = xp.full((geo.n, geo.c, hp, wp), value, dtype=x4.dtype, device=x4.device)
        out[:, :, ph: ph + h, pw: pw + w] = x4
        return out

    def _slices(self, xpad, geo):
        """The strided slice of the padded input each kernel offset sees, in scan order."""
        sh, sw = self._s
        return [window(xpad, i, j, geo.oh, geo.ow, sh, sw) for i, j in self._offsets]

    def _dy4(self, dy, like, geo, unbatched):
        """``dy`` as 4-D, after checking it has the output's shape and ``like``'s dtype and place."""
        self.check_grad(dy, like, (geo.c, geo.oh, geo.ow) if unbatched else (geo.n, geo.c, geo.oh, geo.ow))
        return dy[None, ...] if unbatched else dy

    def _grad_buffer(self, xp, geo, dtype, device):
        """A fresh gradient for the padded input, and ``put(dx, i, j, g)``, which adds ``g`` at
        kernel offset ``(i, j)``'s positions (the adjoint of taking that strided slice).

        Windows that tile the padded input exactly (every position touched once: stride ==
        kernel, no dilation, no remainder) write every element once, so ``dx`` starts empty and
        the slices are assigned; positions no window touches need zeros; where two (window,
        offset) pairs touch one position (stride < span) the slices must add: ``+=``.
        Callers put each slice as soon as it is computed, so that no more than one slice-sized
        temporary is alive at a time (fresh allocations are page-faulted anew on every step).
        """
        (sh, sw), (ph, pw) = self._s, self._p
        hp, wp = geo.h + 2 * ph + geo.eh, geo.w + 2 * pw + geo.ew
        overlap = geo.overlap
        make = xp.empty if geo.tiled else xp.zeros
        dx = make((geo.n, geo.c, hp, wp), dtype=dtype, device=device)
        rstop, cstop = sh * (geo.oh - 1) + 1, sw * (geo.ow - 1) + 1

        def put(dx, i, j, g):
            if overlap:
                dx[:, :, i: i + rstop: sh, j: j + cstop: sw] += g  # dx is our own fresh array
            else:
                dx[:, :, i: i + rstop: sh, j: j + cstop: sw] = g

        return dx, put

    def _input_grad(self, dx, geo, unbatched):
        """The gradient of the input as given: the padded one cropped (a view), 3-D if it was."""
        ph, pw = self._p
        if ph or pw or geo.eh or geo.ew:
            dx = dx[:, :, ph: ph + geo.h, pw: pw + geo.w]
        return dx[0, ...] if unbatched else dx
