"""ONNX: LinearCrossEntropyLoss is refused, as every loss is (:mod:`xpnet.onnx.ops` refuses
``Loss`` and so its subclasses); this entry says where its logits are, since its Linear is the
part an inference graph may want (a language model's output projection)."""

from ... import layers as L
from ..registry import REFUSED

REFUSED[L.LinearCrossEntropyLoss] = (
    "a loss is no part of the net's inference; export the net and apply the loss to its output "
    "(its logits, flattened to (N, C*d1*...*dK), are its .linear's output: export Sequential(net, loss.linear))"
)
