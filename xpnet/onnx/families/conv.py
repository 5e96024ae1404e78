"""Converters of the convolutions (:mod:`xpnet.layers.conv`, :mod:`~xpnet.layers.conv_transpose`,
:mod:`~xpnet.layers.conv_lazy`), over 1, 2 or 3 spatial axes. ONNX's operators take batched
input only: an unbatched input gets an ``Unsqueeze`` before and a ``Squeeze`` after.

- ``Conv1d/2d/3d``: ``Conv`` with xpnet's padding (``"same"`` resolved: the odd entry after, as
  PyTorch), strides, dilations and groups. The border padding modes pad first, then convolve
  unpadded: ``"reflect"`` is ``Pad(mode="reflect")``, ``"replicate"`` ``Pad(mode="edge")``,
  ``"circular"`` a ``Concat`` of each axis's wrapped-around ``Slice`` s (ONNX's ``"wrap"`` mode
  needs opset 19).
- ``ConvTranspose1d/2d/3d``: ``ConvTranspose`` with strides, dilations, groups and ``pads``,
  the output padding as less padding at the end (onnxruntime refuses an ``output_padding``
  not below the stride) and, where it reaches past every window, a zero ``Pad`` before the
  bias is added (ONNX's weight layout is torch's, ``(in, out / groups, *kernel)``).
- ``LazyConv*``: the probe's forward materializes the layer (it becomes the eager class), which
  then converts as above.
"""

from __future__ import annotations

from ... import layers as L
from ..graph import Value
from ..ops import child
from ..registry import CONVERTERS, converter
from ..spatial import _back

_CONV = (L.Conv1d, L.Conv2d, L.Conv3d)
_TRANSPOSED = (L.ConvTranspose1d, L.ConvTranspose2d, L.ConvTranspose3d)
_LAZY = (L.LazyConv1d, L.LazyConv2d, L.LazyConv3d, L.LazyConvTranspose1d, L.LazyConvTranspose2d,
         L.LazyConvTranspose3d)


def _batched(g, layer, x, path):
    """``x``'s name with a batch axis, and whether it came without one."""
    if x.ndim == layer.dims + 1:
        return g.unsqueeze(x.name, [0], path), True
    return x.name, False


def _weights(g, layer, path):
    bias = [] if layer.bias is None else [g.param(child(path, "bias"), layer.bias.data)]
    return [g.param(child(path, "weight"), layer.weight.data), *bias]


def _border(g, layer, xin, path):
    """``xin`` padded by the layer's padding in its border mode (reflect, replicate, circular)."""
    before, after = [lo for lo, _ in layer._pads], [hi for _, hi in layer._pads]
    if layer.padding_mode != "circular":
        spec = g.ints(f"{path}/pads", [0, 0, *before, 0, 0, *after])
        return g.node("Pad", [xin, spec], path, mode="reflect" if layer.padding_mode == "reflect" else "edge")
    for axis, (lo, hi) in enumerate(layer._pads, start=2):
        parts = []
        if lo:
            parts.append(_slice(g, xin, axis, -lo, 2**62, path))
        parts.append(xin)
        if hi:
            parts.append(_slice(g, xin, axis, 0, hi, path))
        if len(parts) > 1:
            xin = g.node("Concat", parts, path, axis=axis)
    return xin


def _slice(g, x, axis, start, end, path):
    return g.node("Slice", [x, g.ints(f"{path}/starts", [start]), g.ints(f"{path}/ends", [end]),
                            g.ints(f"{path}/axes", [axis])], path)


def _conv(g, layer, path, x):
    y = g.run(layer, path, x)
    xin, unbatched = _batched(g, layer, x, path)
    if layer.padding_mode == "zeros":
        pads = [lo for lo, _ in layer._pads] + [hi for _, hi in layer._pads]
    else:
        xin, pads = _border(g, layer, xin, path), [0] * (2 * layer.dims)
    out = g.node("Conv", [xin, *_weights(g, layer, path)], path, kernel_shape=list(layer.kernel_size),
                 strides=list(layer.stride), dilations=list(layer.dilation), pads=pads, group=layer.groups)
    return Value(_back(g, out, unbatched, path), *y)


def _conv_transpose(g, layer, path, x):
    y = g.run(layer, path, x)
    xin, unbatched = _batched(g, layer, x, path)
    p, op = layer.padding, layer.output_padding
    # The output padding as less padding at the end (onnxruntime refuses an output_padding not
    # below the stride, which torch allows with dilation), and past the uncropped output, where no
    # window reaches, as zeros (bias added after them).
    zeros = [max(o - q, 0) for q, o in zip(p, op)]
    weight, *bias = _weights(g, layer, path)
    out = g.node("ConvTranspose", [xin, weight, *([] if any(zeros) else bias)], path,
                 kernel_shape=list(layer.kernel_size), strides=list(layer.stride), dilations=list(layer.dilation),
                 pads=list(p) + [max(q - o, 0) for q, o in zip(p, op)], group=layer.groups)
    if any(zeros):
        out = g.node("Pad", [out, g.ints(f"{path}/pads", [0] * (layer.dims + 2) + [0, 0, *zeros])], path)
        if bias:
            shape = g.ints(f"{path}/bias_shape", [layer.out_channels] + [1] * layer.dims)
            out = g.node("Add", [out, g.node("Reshape", [bias[0], shape], path)], path)
    return Value(_back(g, out, unbatched, path), *y)


def _lazy(g, layer, path, x):
    g.run(layer, path, x)  # materializes it: now the eager class
    return CONVERTERS[type(layer)](g, layer, path, x)


for _cls in _CONV:
    converter(_cls)(_conv)
for _cls in _TRANSPOSED:
    converter(_cls)(_conv_transpose)
for _cls in _LAZY:
    converter(_cls)(_lazy)
