"""ONNX converters of the padding layers, Upsample, PixelShuffle/PixelUnshuffle and the channel
and alpha dropouts; refusals of the two-input layers; Embedding with ``max_norm``.

- Constant padding (ZeroPad, ConstantPad): ``Pad`` with the positive pads and ``value``, then
  ``Slice`` for the negative ones (crops).
- Reflection, replication and circular padding: one ``Gather`` per padded axis, with the source
  index of each output entry along it (:func:`xpnet.layers._pad.pad` applied to ``arange(n)``):
  exact, and the same for every batch size (a padded axis must not be the batch axis).
- Upsample: per spatial axis, the layer's own source indices (and weights): nearest is one
  ``Gather``; linear is ``Gather(x, j) * (1 - t) + Gather(x, j + 1) * t``. The indices are those
  xpnet (and torch) compute, so no runtime's own ``Resize`` rounding is involved.
- PixelShuffle, PixelUnshuffle: ``Reshape``, ``Transpose``, ``Reshape``.
- Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout: the identity (inference).
- Embedding with ``max_norm``: ``Gather``, then each gathered row times
  ``max_norm / (norm + 1e-7)`` where its norm exceeds ``max_norm`` (xpnet's forward); the
  probes' forward would renormalise rows of the weight, so the weight is put back after them.
  Without ``max_norm``, :mod:`xpnet.onnx.ops`'s converter.

Refused: CosineSimilarity, PairwiseDistance and Bilinear take two inputs; an exported graph has one.
"""

from __future__ import annotations

import math

from ... import backends
from ... import layers as L
from ...layers._pad import pad
from ...layers.padding import PADDING_LAYERS
from .. import ops
from ..graph import Value
from ..registry import REFUSED, converter, refuse

_INT64_MAX = 2**63 - 1


def _axis_spans(layer, nd):
    """``[(axis, before, after)]`` of a padding layer on an ``nd``-axis input, last axis first."""
    p = layer.padding
    return [(nd - 1 - k, p[2 * k], p[2 * k + 1]) for k in range(len(p) // 2)]


def _moves(x, axis):
    """True when ``axis`` of ``x`` changes with the batch size (the probes differ there)."""
    return x.b is not None and x.a.shape[axis] != x.b.shape[axis]


def _constant_pad(g, layer, path, x, spans):
    out = x.name
    if any(l > 0 or r > 0 for _, l, r in spans):
        begin, end = [0] * x.ndim, [0] * x.ndim
        for axis, l, r in spans:
            begin[axis], end[axis] = max(l, 0), max(r, 0)
        value = g.const(f"{path}/value", [layer.value], shape=[])
        out = g.node("Pad", [out, g.ints(f"{path}/pads", begin + end), value], path, mode="constant")
    crops = [(axis, max(-l, 0), max(-r, 0)) for axis, l, r in spans if l < 0 or r < 0]
    if crops:
        starts = g.ints(f"{path}/starts", [lc for _, lc, _ in crops])
        ends = g.ints(f"{path}/ends", [-rc if rc else _INT64_MAX for _, _, rc in crops])
        out = g.node("Slice", [out, starts, ends, g.ints(f"{path}/axes", [a for a, _, _ in crops])], path)
    return out


@converter(PADDING_LAYERS[0])
def _padding(g, layer, path, x):
    y = g.run(layer, path, x)
    spans = _axis_spans(layer, x.ndim)
    if layer._mode == "constant":
        return Value(_constant_pad(g, layer, path, x, spans), *y)
    out, xp = x.name, backends.namespace_of(x.a)
    for axis, l, r in spans:
        if l == 0 and r == 0:
            continue
        if _moves(x, axis):
            raise refuse(path, layer, f"it pads axis {axis}, which changes with the batch size; "
                                      "pass dynamic_batch=False to export this batch size only")
        src = pad(xp.arange(x.shape[axis], dtype=xp.int64, device=x.a.device), (l, r), layer._mode)
        out = g.node("Gather", [out, g.ints(f"{path}/index", backends.to_numpy(src).tolist())], path, axis=axis)
    return Value(out, *y)


for _cls in PADDING_LAYERS[1:]:
    converter(_cls)(_padding)


@converter(L.Upsample)
@converter(L.UpsamplingNearest2d)
@converter(L.UpsamplingBilinear2d)
def _upsample(g, layer, path, x):
    y = g.run(layer, path, x)
    xp, a = backends.namespace_of(x.a), x.a
    spatial = tuple(int(s) for s in a.shape[2:])
    out_sizes, sfs = layer._out_sizes(layer._tag(), spatial)
    out = x.name
    for k, (n_in, n_out, sf) in enumerate(zip(spatial, out_sizes, sfs)):
        axis, plan = 2 + k, layer._plan(xp, n_in, n_out, sf, a.dtype, a.device)
        if plan[0] == "same":
            continue

        def gather(idx, tag):
            return g.node("Gather", [out, g.ints(f"{path}/{tag}", backends.to_numpy(idx).tolist())], path, axis=axis)

        if plan[0] == "take":
            out = gather(plan[1], "index")
            continue
        t = backends.to_numpy(plan[3]).tolist()
        shape = [n_out] + [1] * (x.ndim - 1 - axis)
        w0, w1 = g.const(f"{path}/w0", [1.0 - v for v in t], shape=shape), g.const(f"{path}/w1", t, shape=shape)
        lo = g.node("Mul", [gather(plan[1], "index0"), w0], path)
        out = g.node("Add", [lo, g.node("Mul", [gather(plan[2], "index1"), w1], path)], path)
    return Value(out, *y)


def _regroup(g, layer, path, x, mid, perm):
    """``x`` reshaped to ``mid`` (its leading axes kept), transposed by ``perm`` and reshaped to
    the layer's output shape."""
    y = Value(x.name, *g.run(layer, path, x))
    lead = x.ndim - 3
    spec = g.shape_spec(x, f"layer {path!r}")
    if any(s == -1 for s in spec[lead:]):
        raise refuse(path, layer, "its channel or spatial axes change with the batch size; "
                                  "pass dynamic_batch=False to export this batch size only")
    shape = spec[:lead] + list(mid)
    out = g.node("Reshape", [x.name, g.ints(f"{path}/shape", shape)], path)
    out = g.node("Transpose", [out], path, perm=list(range(lead)) + [lead + p for p in perm])
    return y._replace(name=g.reshape(out, y, path, f"layer {path!r}"))


@converter(L.PixelShuffle)
def _pixel_shuffle(g, layer, path, x):
    r = layer.upscale_factor
    c, h, w = x.shape[-3:]
    return _regroup(g, layer, path, x, (c // (r * r), r, r, h, w), (0, 3, 1, 4, 2))


@converter(L.PixelUnshuffle)
def _pixel_unshuffle(g, layer, path, x):
    r = layer.downscale_factor
    c, h, w = x.shape[-3:]
    return _regroup(g, layer, path, x, (c, h // r, r, w // r, r), (0, 2, 4, 1, 3))


for _cls in (L.Dropout1d, L.Dropout2d, L.Dropout3d, L.AlphaDropout, L.FeatureAlphaDropout):
    converter(_cls)(ops._identity)


def _reduce(g, op, x, path):
    """``op`` (ReduceL1, ReduceL2) over the last axis, kept (its axes became an input in opset 18)."""
    if g.opset >= 18:
        return g.node(op, [x, g.ints(f"{path}/axes", [-1])], path, keepdims=1)
    return g.node(op, [x], path, axes=[-1], keepdims=1)


@converter(L.Embedding)
def _embedding(g, layer, path, x):
    if layer.max_norm is None:
        return ops._embedding(g, layer, path, x)
    weight = layer.weight.data
    try:
        y = g.run(layer, path, x)
    finally:
        layer.weight.data = weight  # the probes' forward renormalised rows: exporting changes nothing
    rows = g.node("Gather", [g.param(ops.child(path, "weight"), weight), x.name], path, axis=0)
    p = layer.norm_type
    if p in (1.0, 2.0):
        norm = _reduce(g, "ReduceL1" if p == 1.0 else "ReduceL2", rows, path)
    elif math.isinf(p) or p == 0.0:
        raise refuse(path, layer, f"max_norm with norm_type={p} has no ONNX form here; use a finite norm_type > 0")
    else:
        powered = g.node("Pow", [g.node("Abs", [rows], path), g.const(f"{path}/p", [p], shape=[])], path)
        total = g.node("ReduceSum", [powered, g.ints(f"{path}/axes", [-1])], path, keepdims=1)
        norm = g.node("Pow", [total, g.const(f"{path}/inv_p", [1.0 / p], shape=[])], path)
    limit = g.const(f"{path}/max_norm", [layer.max_norm], shape=[])
    scale = g.node("Div", [limit, g.node("Add", [norm, g.const(f"{path}/tiny", [1e-7], shape=[])], path)], path)
    scale = g.node("Where", [g.node("Greater", [norm, limit], path), scale, g.const(f"{path}/one", [1.0], shape=[])], path)
    return Value(g.node("Mul", [rows, scale], path), *y)


for _cls in (L.CosineSimilarity, L.PairwiseDistance, L.Bilinear):
    REFUSED[_cls] = "it takes two inputs, and an exported graph has one input; export the parts around it"
