"""2-D pooling: MaxPool2d, AvgPool2d and AdaptiveAvgPool2d, as ``torch.nn`` defines them.

Inputs are ``(N, C, H, W)``, or ``(C, H, W)`` for one unbatched sample (as torch accepts).
Windows are never materialised: each layer works on the ``KH * KW`` strided slices of the
(padded) input that ``_spatial.window`` gives, one slice per kernel offset ``(i, j)``; the
backward pass adds each slice's share of ``dy`` back into those same slices of a fresh ``dx``.
"""

from __future__ import annotations

import math

from ._checks import no_forward_error, require_float, shape_str
from ._spatial import out_size, pad2d, pair, window
from .base import Layer


def _only_default(owner, given, defaults):
    """torch arguments that xpnet accepts only at their default value (so torch code ports as is)."""
    for name, value in given.items():
        if value is not defaults[name] and (type(value) is not type(defaults[name]) or value != defaults[name]):
            raise ValueError(
                f"{owner}: {name}={value!r} is not supported; xpnet implements {name}={defaults[name]!r} (torch's default)"
            )


def _given(value):
    """An argument as torch stores and prints it: an int stays an int, a pair becomes a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else value


def _batched(tag, x):
    """``(x as (N, C, H, W), whether it came without the batch axis)``; torch accepts (C, H, W) too."""
    if x.ndim == 4:
        return x, False
    if x.ndim == 3:
        return x[None, ...], True
    raise ValueError(f"{tag} expected a 4-D (N, C, H, W) or 3-D (C, H, W) input, got shape {shape_str(x.shape)}")


class _Pool2d(Layer):
    """Shared plumbing of the windowed pools: argument checks, 3-D inputs, shapes and errors."""

    _config_fields = ('kernel_size', 'stride', 'padding')

    def __init__(self, kernel_size, stride=None, padding=0):
        owner = type(self).__name__
        self._k = pair(owner, "kernel_size", kernel_size, 1)
        self._s = self._k if stride is None else pair(owner, "stride", stride, 1)
        self._p = pair(owner, "padding", padding, 0)
        if self._p[0] > self._k[0] // 2 or self._p[1] > self._k[1] // 2:
            raise ValueError(
                f"{owner}: padding must be at most half of kernel_size, "
                f"got padding={_given(padding)!r} for kernel_size={_given(kernel_size)!r}"
            )
        self.kernel_size = _given(kernel_size)
        self.stride = self.kernel_size if stride is None else _given(stride)
        self.padding = _given(padding)
        # every kernel offset, in (row, column) scan order: the order ties are broken in
        self._offsets = [(i, j) for i in range(self._k[0]) for j in range(self._k[1])]
        self._kept = None

    def _geometry(self, x):
        """``(x as 4-D, unbatched?, oh, ow)``, after checking the input's rank and size."""
        x4, unbatched = _batched(self._tag(), x)
        (kh, kw), (sh, sw), (ph, pw) = self._k, self._s, self._p
        h, w = x4.shape[2], x4.shape[3]
        oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{self._tag()} expected a padded input of at least {kh}x{kw} (the kernel), got {h + 2 * ph}x{w + 2 * pw} "
                f"(input {shape_str(x.shape)} with padding ({ph}, {pw}))"
            )
        return x4, unbatched, oh, ow

    def _dy4(self, dy, n, c, oh, ow, unbatched):
        """``dy`` as 4-D, after checking it has the output's shape."""
        expect = (c, oh, ow) if unbatched else (n, c, oh, ow)
        if tuple(dy.shape) != expect:
            raise ValueError(f"{self._tag()}.backward expected dy of shape {shape_str(expect)}, got {shape_str(dy.shape)}")
        return dy[None, ...] if unbatched else dy

    def _grad_buffer(self, xp, n, c, h, w, oh, ow, dtype, device):
        """A fresh gradient for the padded input, and ``put(dx, i, j, g)``, which adds ``g`` at
        kernel offset ``(i, j)``'s positions (the adjoint of taking that strided slice).

        Windows that tile the padded input exactly (stride == kernel, no remainder) write every
        element once, so ``dx`` starts empty and the slices are assigned; gaps (stride > kernel or
        a remainder) need zeros; overlapping windows (stride < kernel) must add: ``+=``.
        Callers put each slice as soon as it is computed, so that no more than one slice-sized
        temporary is alive at a time (fresh allocations are page-faulted anew on every step).
        """
        (kh, kw), (sh, sw), (ph, pw) = self._k, self._s, self._p
        hp, wp = h + 2 * ph, w + 2 * pw
        tiled = (sh, sw) == (kh, kw) and hp == oh * kh and wp == ow * kw
        overlap = sh < kh or sw < kw
        make = xp.empty if tiled else xp.zeros
        dx = make((n, c, hp, wp), dtype=dtype, device=device)
        rstop, cstop = sh * (oh - 1) + 1, sw * (ow - 1) + 1

        def put(dx, i, j, g):
            if overlap:
                dx[:, :, i: i + rstop: sh, j: j + cstop: sw] += g  # dx is our own fresh array
            else:
                dx[:, :, i: i + rstop: sh, j: j + cstop: sw] = g

        return dx, put

    def _crop(self, dx, h, w):
        """The gradient of the unpadded input: a view of the padded one."""
        ph, pw = self._p
        return dx[:, :, ph: ph + h, pw: pw + w] if ph or pw else dx

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over each ``KH x KW`` window, as ``torch.nn.MaxPool2d`` (dilation 1, floor mode).

    ``y[n, c, a, b] = max_{i < KH, j < KW} xpad[n, c, a*SH + i, b*SW + j]``, where ``xpad`` is the
    input padded with ``-inf`` (padded positions never win). ``stride`` defaults to ``kernel_size``;
    ``padding`` may be at most half the kernel.

    Shapes: ``(N, C, H, W) -> (N, C, OH, OW)`` (or ``(C, H, W) -> (C, OH, OW)``) with
    ``OH = (H + 2*PH - KH) // SH + 1`` and likewise ``OW``.

    Backward: each window's ``dy`` goes to exactly ONE input element, the first maximal one in
    (row, column) scan order, as PyTorch's CPU kernel does, so ties (all zeros after a ReLU)
    never duplicate gradient. Where windows overlap (stride < kernel) an element that wins in
    several windows receives the sum of their gradients.

    Keeps the padded input and the output: backward finds each window's winner by comparing
    the kernel-offset slices with the output, first match first. This costs no extra forward
    work (unlike tracking an argmax index while taking the max) and no memory beyond references
    (the padded input is the caller's array unless there is padding). Like every layer's input
    and output, neither may be modified in place between forward and backward. Corner cases that
    differ from torch: a window holding a NaN outputs NaN, but its gradient goes to the window's
    last element; a window whose real elements are all ``-inf`` may route its gradient to padding.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        if pair("MaxPool2d", "dilation", dilation, 1) != (1, 1):
            dilation = _given(dilation)
        else:
            dilation = 1
        _only_default(
            "MaxPool2d",
            {"dilation": dilation, "return_indices": return_indices, "ceil_mode": ceil_mode},
            {"dilation": 1, "return_indices": False, "ceil_mode": False},
        )
        super().__init__(kernel_size, stride, padding)

    def forward(self, x):
        xp = require_float(self._tag(), x).xp
        x4, unbatched, oh, ow = self._geometry(x)
        (sh, sw), (ph, pw) = self._s, self._p
        xpad = pad2d(xp, x4, ph, pw, -math.inf)
        first, *rest = [window(xpad, i, j, oh, ow, sh, sw) for i, j in self._offsets]
        if not rest:
            y = xp.asarray(first, copy=True)  # a 1x1 kernel: still a fresh array, never a view of x
        else:
            y = xp.maximum(first, rest[0])
            for s in rest[1:]:
                y = xp.maximum(y, s)
        # kept: the padded input and the output, from which backward finds each window's first maximum
        self._kept = (xpad, y, tuple(x4.shape), unbatched)
        return y[0, ...] if unbatched else y

    def backward(self, dy):
        kept = self._kept
        if kept is None:
            raise no_forward_error(self._tag())
        xpad, y, (n, c, h, w), unbatched = kept
        oh, ow = y.shape[2], y.shape[3]
        xp = require_float(self._tag(), dy, "dy").xp
        dy = self._dy4(dy, n, c, oh, ow, unbatched)
        self._kept = None
        sh, sw = self._s
        # Route dy through the slices in scan order. `rest` is the gradient not yet routed:
        # slice k takes rest * [slice_k == y] (a float mask: faster than where() on numpy), and
        # what it took leaves `rest` (rest - rest == 0 exactly), so a tie later in the scan gets
        # nothing. The last slice takes whatever remains: no earlier slice matched, so it is the max.
        dx, put = self._grad_buffer(xp, n, c, h, w, oh, ow, dy.dtype, dy.device)
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
        dx = self._crop(dx, h, w)
        return dx[0, ...] if unbatched else dx

    def extra_repr(self):
        return super().extra_repr() + ", dilation=1, ceil_mode=False"


class AvgPool2d(_Pool2d):
    """Mean over each ``KH x KW`` window, as ``torch.nn.AvgPool2d`` with its defaults
    (``count_include_pad=True``, ``ceil_mode=False``).

    ``y[n, c, a, b] = (1 / (KH*KW)) * sum_{i < KH, j < KW} xpad[n, c, a*SH + i, b*SW + j]``, where
    ``xpad`` is the input padded with zeros, which count in the mean. Shapes as ``MaxPool2d``.

    Backward: ``dx`` adds ``dy / (KH*KW)`` into every element of each window. Keeps only the
    input's shape: the gradient does not depend on the input's values.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        _only_default(
            "AvgPool2d",
            {"ceil_mode": ceil_mode, "count_include_pad": count_include_pad, "divisor_override": divisor_override},
            {"ceil_mode": False, "count_include_pad": True, "divisor_override": None},
        )
        super().__init__(kernel_size, stride, padding)

    def forward(self, x):
        xp = require_float(self._tag(), x).xp
        x4, unbatched, oh, ow = self._geometry(x)
        (sh, sw), (ph, pw) = self._s, self._p
        xpad = pad2d(xp, x4, ph, pw, 0.0)
        first, *rest = [window(xpad, i, j, oh, ow, sh, sw) for i, j in self._offsets]
        if not rest:
            y = xp.asarray(first, copy=True)
        else:
            y = first + rest[0]
            for s in rest[1:]:
                y += s  # y is our own fresh array
            y /= float(len(self._offsets))
        self._kept = (tuple(x4.shape), unbatched)  # kept: only the shape; dx does not depend on x
        return y[0, ...] if unbatched else y

    def backward(self, dy):
        kept = self._kept
        if kept is None:
            raise no_forward_error(self._tag())
        (n, c, h, w), unbatched = kept
        (kh, kw), (sh, sw), (ph, pw) = self._k, self._s, self._p
        oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
        xp = require_float(self._tag(), dy, "dy").xp
        dy = self._dy4(dy, n, c, oh, ow, unbatched)
        self._kept = None
        g = dy / float(kh * kw)
        dx, put = self._grad_buffer(xp, n, c, h, w, oh, ow, dy.dtype, dy.device)
        for i, j in self._offsets:
            put(dx, i, j, g)
        dx = self._crop(dx, h, w)
        return dx[0, ...] if unbatched else dx


def _adaptive_windows(size, out):
    """torch's adaptive windows along one axis: ``[floor(i*size/out), ceil((i+1)*size/out))``."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


class AdaptiveAvgPool2d(Layer):
    """Mean over adaptive windows giving a fixed output size, as ``torch.nn.AdaptiveAvgPool2d``.

    Output cell ``(a, b)`` of an ``H x W`` input averages rows ``[floor(a*H/OH), ceil((a+1)*H/OH))``
    and columns ``[floor(b*W/OW), ceil((b+1)*W/OW))``. ``output_size`` is an int or a pair; ``None``
    in the pair keeps that axis's input size. Shapes: ``(N, C, H, W) -> (N, C, OH, OW)`` (or 3-D).

    ``output_size=1`` (global average pooling) is one mean over ``H, W``. Other sizes are
    separable (a rectangle's mean is the mean of its row means), so they pool the rows, then
    the columns: ``OH + OW`` slice means rather than ``OH * OW``. Backward is the adjoint, in the
    opposite order. Keeps only the input's shape.
    """

    _config_fields = ('output_size',)

    def __init__(self, output_size):
        vals = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
        if len(vals) != 2 or not all(
            v is None or (not isinstance(v, bool) and isinstance(v, int) and v >= 1) for v in vals
        ):
            raise ValueError(
                f"AdaptiveAvgPool2d: output_size must be an int >= 1 or a pair of ints >= 1 (or None), got {output_size!r}"
            )
        self.output_size = _given(output_size)
        self._out = tuple(vals)
        self._kept = None

    def forward(self, x):
        xp = require_float(self._tag(), x).xp
        x4, unbatched = _batched(self._tag(), x)
        h, w = x4.shape[2], x4.shape[3]
        oh, ow = (h if self._out[0] is None else self._out[0]), (w if self._out[1] is None else self._out[1])
        if h < 1 or w < 1:
            raise ValueError(f"{self._tag()} expected an input with H, W >= 1, got shape {shape_str(x.shape)}")
        if (oh, ow) == (1, 1):
            y = xp.mean(x4, axis=(2, 3), keepdims=True)
        else:
            y = x4
            if oh != h:
                y = xp.stack([xp.mean(y[:, :, a:b, :], axis=2) for a, b in _adaptive_windows(h, oh)], axis=2)
            if ow != w:
                y = xp.stack([xp.mean(y[:, :, :, a:b], axis=3) for a, b in _adaptive_windows(w, ow)], axis=3)
            if y is x4:
                y = xp.asarray(x4, copy=True)  # output size == input size: still a fresh array
        self._kept = (tuple(x4.shape), oh, ow, unbatched)
        return y[0, ...] if unbatched else y

    def backward(self, dy):
        kept = self._kept
        if kept is None:
            raise no_forward_error(self._tag())
        (n, c, h, w), oh, ow, unbatched = kept
        xp = require_float(self._tag(), dy, "dy").xp
        expect = (c, oh, ow) if unbatched else (n, c, oh, ow)
        if tuple(dy.shape) != expect:
            raise ValueError(f"{self._tag()}.backward expected dy of shape {shape_str(expect)}, got {shape_str(dy.shape)}")
        self._kept = None
        g = dy[None, ...] if unbatched else dy
        dt, dev = dy.dtype, dy.device
        if (oh, ow) == (1, 1):
            dx = xp.empty((n, c, h, w), dtype=dt, device=dev)
            dx[...] = g / float(h * w)  # broadcast into our own fresh array
        else:
            dx = g
            if ow != w:  # columns first: the adjoint of the forward's last step
                t = xp.zeros((n, c, dx.shape[2], w), dtype=dt, device=dev)
                for k, (a, b) in enumerate(_adaptive_windows(w, ow)):
                    t[:, :, :, a:b] += dx[:, :, :, k: k + 1] / float(b - a)
                dx = t
            if oh != h:
                t = xp.zeros((n, c, h, w), dtype=dt, device=dev)
                for k, (a, b) in enumerate(_adaptive_windows(h, oh)):
                    t[:, :, a:b, :] += dx[:, :, k: k + 1, :] / float(b - a)
                dx = t
            if dx is g:
                dx = xp.asarray(g, copy=True)
        return dx[0, ...] if unbatched else dx

    def extra_repr(self):
        return f"output_size={self.output_size}"
