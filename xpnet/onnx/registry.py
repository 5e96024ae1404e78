"""The table of converters, one per layer type, and the layer types refused with a reason.

A converter is ``fn(g, layer, path, x) -> Value``: it adds the nodes computing ``layer`` on the
graph tensor ``x`` (a :class:`~xpnet.onnx.graph.Value`) to the :class:`~xpnet.onnx.graph.Graph`
``g`` and returns the output's Value; a container converts its children with :func:`convert`.
Types are looked up exactly: a subclass of ``Linear`` may compute something else, so it needs
its own entry. A new layer adds one entry, with :func:`converter`::

    @xpnet.onnx.converter(MyScale)
    def _my_scale(g, layer, path, x):
        y = g.run(layer, path, x)                  # xpnet's output on the probes: shapes, errors
        return Value(g.node("Mul", [x.name, g.param(f"{path}.weight", layer.weight.data)], path), *y)
"""

from __future__ import annotations

from .graph import Value, where

#: layer type -> converter
CONVERTERS: dict = {}

#: layer types that cannot be exported, each with the reason (filled by :mod:`xpnet.onnx.ops`)
REFUSED: dict = {}


def converter(cls):
    """Register the decorated function as the ONNX converter of layer type ``cls``."""
    if not isinstance(cls, type):
        raise TypeError(f"xpnet.onnx.converter expected a layer class, got {type(cls).__name__}")

    def register(fn):
        CONVERTERS[cls] = fn
        REFUSED.pop(cls, None)
        return fn

    return register


def convert(g, layer, path: str, x: Value) -> Value:
    """``layer`` applied to ``x`` as graph nodes (``path``: where the layer sits in the net)."""
    fn = CONVERTERS.get(type(layer))
    if fn is None:
        # a refusal covers subclasses too (a loss of your own is still a loss)
        reason = next((REFUSED[c] for c in type(layer).__mro__ if c in REFUSED), None)
        if reason is not None:
            raise ValueError(f"to_onnx: {where(path, layer)} cannot be exported: {reason}")
        raise ValueError(f"to_onnx: {where(path, layer)} has no ONNX converter; write one and register it with "
                         f"@xpnet.onnx.converter({type(layer).__name__}) (see xpnet/onnx/registry.py)")
    return fn(g, layer, path, x)


def refuse(path, layer, why):
    """The error for a layer whose type converts but whose settings ONNX cannot express."""
    return ValueError(f"to_onnx: {where(path, layer)} cannot be exported: {why}")
