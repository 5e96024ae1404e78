"""ONNX export of the transformer layers: refused. The encoder layer and stack are built on
MultiheadAttention, which has no converter (see :mod:`.attention`); the decoder layer and
stack, and Transformer, take two inputs (the target and the memory, or the source and the
target), and an exported graph has one input."""

from __future__ import annotations

from ... import layers as L
from ..registry import REFUSED

for _cls in (L.TransformerEncoderLayer, L.TransformerEncoder):
    REFUSED[_cls] = ("its self-attention is a MultiheadAttention, which xpnet's ONNX export does not convert "
                     "(no attention converter yet)")
REFUSED[L.TransformerDecoderLayer] = REFUSED[L.TransformerDecoder] = (
    "it takes two inputs (tgt and memory), and an exported graph has one input; export the parts around it")
REFUSED[L.Transformer] = ("it takes two inputs (src and tgt), and an exported graph has one input; "
                          "export the parts around it")
