"""ONNX export: ``xpnet.to_onnx(net, "model.onnx", input_shape=(1, 64))`` writes a trained net as
an ONNX model for inference elsewhere (onnxruntime, TensorRT, a browser), ``pip install 'xpnet[onnx]'``.

- :mod:`.export`: :func:`to_onnx` (probes, the model, the check, the atomic write);
- :mod:`.graph`: the graph under construction, and the :class:`~.graph.Value` each converter handles;
- :mod:`.registry`: the table of converters, one per layer type (:func:`converter` adds one), and
  the refused types with their reasons;
- :mod:`.ops` (dense, elementwise, shapes, containers, refusals), :mod:`.spatial` (convolution,
  pooling), :mod:`.normalization` (batch and layer normalization): the converters.

The ``onnx`` package is imported only when :func:`to_onnx` runs.
"""

from . import normalization, ops, spatial  # noqa: F401  (each fills the table of converters)
from . import families  # noqa: F401  (xpnet/onnx/families/*.py: the converters of more layer families)
from .export import DEFAULT_OPSET, MIN_OPSET, to_onnx
from .graph import Value
from .registry import CONVERTERS, REFUSED, converter

__all__ = ["CONVERTERS", "DEFAULT_OPSET", "MIN_OPSET", "REFUSED", "Value", "converter", "to_onnx"]
