"""AdaptiveAvgPool2d: a mean over windows sized to give a fixed output."""

from __future__ import annotations

from ... import backends
from .._checks import require_float, shape_str
from ..base import Layer, Signature
from ._windows import batched, given


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
        self.output_size = given(output_size)
        self._out = tuple(vals)

    def forward(self, x):
        xp = require_float(self._tag(), x).xp
        x4, unbatched = batched(self, x)
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
        y = y[0, ...] if unbatched else y
        self.save_for_backward(tuple(x4.shape), unbatched, Signature(y))  # dx does not depend on x
        return y

    def backward(self, dy, input_grad: bool = True):
        (n, c, h, w), unbatched, out = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, out)
        xp = backends.namespace_of(dy)
        oh, ow = out.shape[-2:]
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
