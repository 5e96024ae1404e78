"""What the windowed pools (max, average, power-average; 1, 2 or 3 spatial axes) share: their
arguments, the window geometry (torch's output-size rule, ceil mode included), unbatched
inputs, padding, the strided slice of the input each kernel offset sees, and its adjoint.

Inputs are ``(N, C, *S)`` with ``nd`` spatial axes ``S`` (``L``; ``H, W``; ``D, H, W``), or
``(C, *S)`` for one unbatched sample. Along one axis of size ``L``, with kernel ``k``, stride
``s``, padding ``p`` and dilation ``d`` (span ``e = d (k - 1) + 1``), window ``a`` covers padded
positions ``a s + i d`` for ``i < k``. There are ``out = (L + 2p - e) // s + 1`` windows, or with
``ceil_mode`` ``ceil((L + 2p - e) / s) + 1`` less one if the last would start past the input and
its left padding (torch's rule). Ceil-mode windows may reach past the padding; the input is then
padded by ``extra`` more positions at the end (``-inf`` for max, zeros for the average, whose
divisor does not count them).

Windows are never materialised: a pool works on the ``prod(k)`` strided slices of the padded
input, one per kernel offset, in scan order (the last axis fastest, as torch's kernels loop).
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

from .._checks import shape_str
from ..base import Layer
from ...validate import flag, int_tuple

#: the spatial axes' names, by their number
AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def given(value):
    """An argument as torch stores and prints it: an int stays an int, a sequence becomes a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else value


def layout(nd, batch=True) -> str:
    """``"4-D (N, C, H, W)"`` (``batch``) or ``"3-D (C, H, W)"`` for ``nd`` spatial axes."""
    names = (("N",) if batch else ()) + ("C",) + AXES[nd]
    return f"{len(names)}-D ({', '.join(names)})"


def batched(layer, x):
    """``(x with a batch axis, whether it came without one)``, for ``layer.nd`` spatial axes."""
    nd = layer.nd
    if x.ndim == nd + 2:
        return x, False
    if x.ndim == nd + 1:
        return x[None, ...], True
    raise ValueError(f"{layer._tag()} expected a {layout(nd)} or {layout(nd, False)} input, got shape {shape_str(x.shape)}")


def unbatch(y, unbatched):
    return y[0, ...] if unbatched else y


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
    """One forward's sizes: batch ``n``, channels ``c``, the spatial ``size`` of the input, the
    windows per axis ``out``, the ``extra`` padding that ceil-mode windows need at each axis's
    end, the ``padded`` sizes; ``windows``, the index of each kernel offset's strided slice of
    the padded input (scan order), and ``interior``, that of the input within it; and how
    backward writes window slices into ``dx`` (see :meth:`Pool._grad_buffer`): ``tiled`` (every
    padded position touched exactly once) and ``overlap`` (some position touched twice)."""

    n: int
    c: int
    size: tuple
    out: tuple
    extra: tuple
    padded: tuple
    windows: tuple
    interior: tuple
    tiled: bool
    overlap: bool


def _hits(out, k, s, d):
    """The padded positions the windows of one axis touch, and whether no two (window, offset)
    pairs touch the same one."""
    pos = [a * s + i * d for a in range(out) for i in range(k)]
    return set(pos), len(set(pos)) == len(pos)


_ALL = slice(None)


@functools.lru_cache(maxsize=512)
def _plan(size, k, s, p, d, ceil_mode):
    """Everything of :class:`Geometry` but ``n`` and ``c`` for an input of spatial ``size``
    (None when some axis has no window): pure arithmetic on the arguments, remembered so that a
    training loop pays for it once per input size."""
    axes = [axis_windows(*a, ceil_mode) for a in zip(size, k, s, p, d)]
    out, extra = tuple(a[0] for a in axes), tuple(a[1] for a in axes)
    if min(out) < 1:
        return None
    padded = tuple(n + 2 * q + e for n, q, e in zip(size, p, extra))
    hits = [_hits(*a) for a in zip(out, k, s, d)]
    overlap = not all(once for _, once in hits)
    tiled = not overlap and all(len(pos) == n for (pos, _), n in zip(hits, padded))
    offsets = itertools.product(*(range(0, di * ki, di) for ki, di in zip(k, d)))
    windows = tuple((_ALL, _ALL) + tuple(slice(i, i + si * (o - 1) + 1, si) for i, si, o in zip(off, s, out))
                    for off in offsets)
    interior = (_ALL, _ALL) + tuple(slice(q, q + n) for q, n in zip(p, size))
    return out, extra, padded, windows, interior, tiled, overlap


class Pool(Layer):
    """Shared plumbing of the windowed pools: argument checks, unbatched inputs, geometry,
    padding, window slices and their adjoint, errors. ``nd``: the number of spatial axes."""

    nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        owner, nd = type(self).__name__, self.nd
        self._k = int_tuple(owner, "kernel_size", kernel_size, nd, 1)
        self._s = self._k if stride is None else int_tuple(owner, "stride", stride, nd, 1)
        self._p = int_tuple(owner, "padding", padding, nd, 0)
        self._d = int_tuple(owner, "dilation", dilation, nd, 1)
        self.ceil_mode = flag(owner, "ceil_mode", ceil_mode)
        if any(p > k // 2 for p, k in zip(self._p, self._k)):
            raise ValueError(
                f"{owner}: padding must be at most half of kernel_size, "
                f"got padding={given(padding)!r} for kernel_size={given(kernel_size)!r}"
            )
        self.kernel_size = given(kernel_size)
        self.stride = self.kernel_size if stride is None else given(stride)
        self.padding = given(padding)
        # every kernel offset (padded coordinates), in scan order: the order ties are broken in
        self._offsets = list(itertools.product(*(range(0, d * k, d) for k, d in zip(self._k, self._d))))

    def _geometry(self, x):
        """``(x with a batch axis, unbatched?, Geometry)``, after checking the input's rank and size."""
        xb, unbatched = batched(self, x)
        n, c, *size = xb.shape
        size = tuple(size)
        plan = _plan(size, self._k, self._s, self._p, self._d, self.ceil_mode)
        if plan is None:
            need = [d * (k - 1) + 1 for k, d in zip(self._k, self._d)]
            what = "the kernel" if set(self._d) == {1} else "the dilated kernel"
            if self.ceil_mode:
                need = [e - s + 1 for e, s in zip(need, self._s)]
                what += ", less stride - 1 with ceil_mode=True"
            got = [a + 2 * p for a, p in zip(size, self._p)]
            raise ValueError(
                f"{self._tag()} expected a padded input of at least {'x'.join(map(str, need))} ({what}), "
                f"got {'x'.join(map(str, got))} (input {shape_str(x.shape)} with padding {shape_str(self._p)})"
            )
        if min(size) < 1 or c < 1:
            names = ", ".join(("C",) + AXES[self.nd])
            raise ValueError(f"{self._tag()} expected an input with {names} >= 1, got shape {shape_str(x.shape)}")
        return xb, unbatched, Geometry(n, c, size, *plan)

    def _pad(self, xp, xb, geo, value):
        """``xb`` padded with ``value``: ``padding`` on every side, plus ``extra`` at each axis's
        end. One fresh buffer and one slice assignment; no copy when nothing is padded."""
        if not any(self._p) and not any(geo.extra):
            return xb
        out = xp.full((geo.n, geo.c) + geo.padded, value, dtype=xb.dtype, device=xb.device)
        out[geo.interior] = xb
        return out

    @staticmethod
    def _slices(xpad, geo):
        """The strided slice of the padded input each kernel offset sees, in scan order."""
        return [xpad[w] for w in geo.windows]

    def _dy(self, dy, like, geo, unbatched):
        """``dy`` with a batch axis, after checking it has the output's shape and ``like``'s dtype and place."""
        self.check_grad(dy, like, ((geo.c,) if unbatched else (geo.n, geo.c)) + geo.out)
        return dy[None, ...] if unbatched else dy

    @staticmethod
    def _grad_buffer(xp, geo, dtype, device):
        """A fresh gradient for the padded input, and ``put(dx, window, g)``, which adds ``g`` at
        the positions of one kernel offset's slice (``window``: one of ``geo.windows``; the
        adjoint of taking that strided slice).

        Windows that tile the padded input exactly (every position touched once: stride ==
        kernel, no dilation, no remainder) write every element once, so ``dx`` starts empty and
        the slices are assigned; positions no window touches need zeros; where two (window,
        offset) pairs touch one position (stride < span) the slices must add: ``+=``.
        Callers put each slice as soon as it is computed, so that no more than one slice-sized
        temporary is alive at a time (fresh allocations are page-faulted anew on every step).
        """
        make = xp.empty if geo.tiled else xp.zeros
        dx = make((geo.n, geo.c) + geo.padded, dtype=dtype, device=device)

        if geo.overlap:
            def put(dx, window, g):
                dx[window] += g  # dx is our own fresh array
        else:
            def put(dx, window, g):
                dx[window] = g

        return dx, put

    def _input_grad(self, dx, geo, unbatched):
        """The gradient of the input as given: the padded one cropped (a view), unbatched if it was."""
        if any(self._p) or any(geo.extra):
            dx = dx[geo.interior]
        return unbatch(dx, unbatched)

    def _window_size(self):
        """``prod(kernel_size)``: the positions of one window."""
        return math.prod(self._k)
