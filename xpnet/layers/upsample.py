"""Upsample (and torch's UpsamplingNearest2d / UpsamplingBilinear2d): resizing the spatial axes of
``(N, C, *spatial)`` arrays as ``torch.nn.functional.interpolate`` does.

Output size per spatial axis: ``size``, or ``floor(in * scale_factor)``. Each axis is resized on
its own (the 2-D and 3-D modes are separable), from source coordinates computed as torch does
(``s``: the scale, ``in / out``; ``1 / scale_factor`` when a ``scale_factor`` is given, unless
``recompute_scale_factor=True``):

- ``"nearest"``: ``y[i] = x[min(floor(i s), in - 1)]`` (``s`` and the product in float32, as
  torch); ``"nearest-exact"``: ``x[min(floor((i + 0.5) s), in - 1)]``;
- ``"linear"`` (1-D), ``"bilinear"`` (2-D), ``"trilinear"`` (3-D):
  ``y[i] = (1 - t) x[j] + t x[j + 1]`` with ``j = floor(c)``, ``t = c - j`` and source coordinate
  ``c = i (in - 1) / (out - 1)`` (``align_corners=True``) or ``c = max(s (i + 0.5) - 0.5, 0)``
  (the default, ``align_corners=False``); ``j + 1`` stays ``j`` at the last entry.

Backward, per axis in reverse: ``dx = dy @ A`` along the axis, ``A (out, in)`` the interpolation
matrix (one-hot rows for nearest, ``1 - t`` and ``t`` for linear): repeated sources summed.
Forward keeps, per axis, the source indices and weights (small, and cached per input shape),
the input's shape and the output's :class:`~xpnet.layers.base.Signature`.
"""

from __future__ import annotations

import math

from .. import backends
from ..validate import _is_int, _is_real, choice, flag
from ._checks import require_float, shape_str
from .base import Layer, Signature

#: mode -> the number of spatial axes it needs (None: any of 1, 2, 3)
MODES = {"nearest": None, "nearest-exact": None, "linear": 1, "bilinear": 2, "trilinear": 3}


def _size_arg(name, size):
    if size is None or (_is_int(size) and size > 0):
        return size
    if isinstance(size, (tuple, list)) and size and all(_is_int(s) and s > 0 for s in size):
        return tuple(int(s) for s in size)
    raise ValueError(f"{name}: size must be None, a positive int or a tuple of them, got {size!r}")


def _scale_arg(name, scale):
    def ok(s):
        return _is_real(s) and math.isfinite(s) and s > 0

    if scale is None:
        return None
    if ok(scale):
        return float(scale)
    if isinstance(scale, (tuple, list)) and scale and all(ok(s) for s in scale):
        return tuple(float(s) for s in scale)
    raise ValueError(f"{name}: scale_factor must be None, a positive number or a tuple of them, got {scale!r}")


class Upsample(Layer):
    """``torch.nn.Upsample(size=None, scale_factor=None, mode="nearest", align_corners=None,
    recompute_scale_factor=None)``: see :mod:`xpnet.layers.upsample` for the formulas.

    Shapes: ``(N, C, *spatial)`` with 1 to 3 spatial axes -> ``(N, C, *out)``. ``"linear"``
    needs 3-D input, ``"bilinear"`` 4-D, ``"trilinear"`` 5-D. Exactly one of ``size`` (an int or
    one per spatial axis) and ``scale_factor`` (a number or one per axis) is given;
    ``align_corners`` only with the linear modes.
    """

    _config_fields = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        name = type(self).__name__
        self.size = _size_arg(name, size)
        self.scale_factor = _scale_arg(name, scale_factor)
        if (self.size is None) == (self.scale_factor is None):
            raise ValueError(f"{name}: give exactly one of size and scale_factor, got size={size!r}, "
                             f"scale_factor={scale_factor!r}")
        self.mode = choice(name, "mode", mode, tuple(MODES))
        if align_corners is not None:
            flag(name, "align_corners", align_corners)
            if MODES[mode] is None:
                raise ValueError(f"{name}: align_corners can only be set with the interpolating modes "
                                 f"(linear, bilinear, trilinear), got mode={mode!r}")
        self.align_corners = align_corners
        if recompute_scale_factor is not None:
            flag(name, "recompute_scale_factor", recompute_scale_factor)
        self.recompute_scale_factor = recompute_scale_factor
        self._plans = {}

    # -- geometry ------------------------------------------------------------------------
    def _out_sizes(self, tag, spatial):
        k = len(spatial)
        for what, v in (("size", self.size), ("scale_factor", self.scale_factor)):
            if isinstance(v, tuple) and len(v) != k:
                raise ValueError(f"{tag} has a {what} for {len(v)} spatial axes, but its input has {k} "
                                 f"(spatial sizes {list(spatial)}); give the input as (N, C, d1, ..., dk)")
        if self.size is not None:
            out = self.size if isinstance(self.size, tuple) else (self.size,) * k
            return out, (None,) * k
        sf = self.scale_factor if isinstance(self.scale_factor, tuple) else (self.scale_factor,) * k
        out = tuple(int(math.floor(n * s)) for n, s in zip(spatial, sf))
        if any(o <= 0 for o in out):
            raise ValueError(f"{tag}: scale_factor {self.scale_factor} gives output sizes {list(out)} for input "
                             f"sizes {list(spatial)}; every size must be greater than 0")
        return out, (None,) * k if self.recompute_scale_factor else sf

    def _plan(self, xp, n_in, n_out, sf, dtype, device):
        """The source of each output entry along one axis: ``("take", idx)`` (nearest) or
        ``("lerp", idx0, idx1, t)`` (linear), cached per geometry."""
        key = (n_in, n_out, sf, dtype, device)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 16:
                self._plans.clear()
            plan = self._plans[key] = (_nearest if MODES[self.mode] is None else _linear)(
                xp, n_in, n_out, sf, dtype, device, self.mode, bool(self.align_corners))
        return plan

    # -- forward and backward ------------------------------------------------------------------
    def forward(self, x):
        tag = self._tag()
        be = require_float(tag, x)
        need = MODES[self.mode]
        if x.ndim not in (3, 4, 5) or (need is not None and x.ndim != need + 2):
            want = "a 3-D, 4-D or 5-D (N, C, *spatial)" if need is None else f"a {need + 2}-D (N, C, {need} spatial)"
            raise ValueError(f"{tag} expected {want} input for mode {self.mode!r}, got shape {shape_str(x.shape)}")
        xp = be.xp
        spatial = tuple(x.shape[2:])
        out, sfs = self._out_sizes(tag, spatial)
        plans = []
        y = x
        for k, (n_in, n_out, sf) in enumerate(zip(spatial, out, sfs)):
            axis = 2 + k
            plan = self._plan(xp, n_in, n_out, sf, x.dtype, x.device)
            plans.append(plan)
            if plan[0] == "same":
                continue
            if plan[0] == "take":
                y = xp.take(y, plan[1], axis=axis)
            else:
                t = xp.reshape(plan[3], (n_out,) + (1,) * (x.ndim - 1 - axis))
                y = xp.take(y, plan[1], axis=axis) * (1.0 - t) + xp.take(y, plan[2], axis=axis) * t
        self.save_for_backward(plans, tuple(x.shape), Signature(x, y.shape))
        return y

    def backward(self, dy, input_grad: bool = True):
        plans, in_shape, sig = self.saved()
        if dy is None or not input_grad:
            return None
        self.check_grad(dy, sig)
        xp = backends.namespace_of(dy)
        for k in reversed(range(len(plans))):
            plan, axis, n_in = plans[k], 2 + k, in_shape[2 + k]
            if plan[0] == "same":
                continue
            a = _matrix(xp, plan, n_in, dy.dtype, dy.device)  # (out, in)
            dy = xp.moveaxis(xp.tensordot(dy, a, axes=([axis], [0])), -1, axis)
        return dy

    def extra_repr(self):
        s = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return s + f", mode={self.mode!r}"


def _nearest(xp, n_in, n_out, sf, dtype, device, mode, align_corners):
    if n_out == n_in:
        return ("same",)
    idx = xp.arange(n_out, dtype=xp.int64, device=device)
    if mode == "nearest" and n_out == 2 * n_in:
        return ("take", idx // 2)  # torch's shortcut for this size, whatever the scale
    f32 = xp.float32
    # the scale in float32, as torch computes it: 1 / scale_factor (from the double), or in / out
    s = xp.full((), 1.0 / sf, dtype=f32, device=device) if sf else xp.full((), float(n_in), dtype=f32, device=device) / float(n_out)
    pos = xp.astype(idx, f32) + (0.5 if mode == "nearest-exact" else 0.0)
    src = xp.astype(xp.floor(pos * s), xp.int64)
    return ("take", xp.minimum(src, n_in - 1))


def _linear(xp, n_in, n_out, sf, dtype, device, mode, align_corners):
    dst = xp.arange(n_out, dtype=dtype, device=device)
    if align_corners:
        s = xp.full((), float(n_in - 1), dtype=dtype, device=device) / float(n_out - 1) if n_out > 1 else 0.0
        src = dst * s
    else:
        s = xp.full((), 1.0 / sf, dtype=dtype, device=device) if sf else xp.full((), float(n_in), dtype=dtype, device=device) / float(n_out)
        src = xp.maximum(s * (dst + 0.5) - 0.5, 0.0)
    i0 = xp.minimum(xp.astype(xp.floor(src), xp.int64), n_in - 1)
    t = xp.clip(src - xp.astype(i0, dtype), 0.0, 1.0)
    i1 = xp.where(i0 < n_in - 1, i0 + 1, i0)
    return ("lerp", i0, i1, t)


def _matrix(xp, plan, n_in, dtype, device):
    """The ``(out, in)`` interpolation matrix of one axis's plan."""
    cols = xp.arange(n_in, dtype=xp.int64, device=device)[None, :]
    if plan[0] == "take":
        return xp.astype(plan[1][:, None] == cols, dtype)
    _, i0, i1, t = plan
    t = t[:, None]
    return xp.where(i0[:, None] == cols, 1.0 - t, 0.0) + xp.where(i1[:, None] == cols, t, 0.0)


class UpsamplingNearest2d(Upsample):
    """``torch.nn.UpsamplingNearest2d(size=None, scale_factor=None)``: ``Upsample(..., mode="nearest")``
    on ``(N, C, H, W)``."""

    _config_fields = ("size", "scale_factor")

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``torch.nn.UpsamplingBilinear2d(size=None, scale_factor=None)``: ``Upsample(...,
    mode="bilinear", align_corners=True)`` on ``(N, C, H, W)``."""

    _config_fields = ("size", "scale_factor")

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
