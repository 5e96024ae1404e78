"""ONNX export of the attention layers: refused. ``MultiheadAttention`` takes three inputs
(query, key, value) and optional masks and returns two outputs, while an exported graph has one
input and one output; a layer that applies it to one input (a transformer layer's
self-attention) would convert it with ``MatMul``, ``Softmax`` and ``Reshape`` nodes itself."""

from __future__ import annotations

from ... import layers as L
from ..registry import REFUSED

REFUSED[L.MultiheadAttention] = ("it takes three inputs (query, key, value) and returns two outputs "
                                 "(attn_output, attn_weights), and an exported graph has one of each; "
                                 "export the parts around it")
