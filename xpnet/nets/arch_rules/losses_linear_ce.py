"""Checkpoint architecture rule of LinearCrossEntropyLoss (issue 11): its Linear
``(in_features -> C * prod(out_features))`` and its class weights, predicted from the arguments
alone, so that a checkpoint's loss counts towards the memory bound before anything is built
(a huge ``num_classes`` or ``out_features`` is refused, not allocated).

The Linear's arrays are named as in the state dict (``linear.weight``, ``linear.bias``) on the
loss's own node: a rule describes one node, and a loss's model is only sized, never tied or
shared."""

from __future__ import annotations

import math


def _linear_cross_entropy(a):
    from ...validate import flag, positive_int
    from ..checkpoint_arch import FLOAT

    name = "LinearCrossEntropyLoss"
    i = positive_int(name, "in_features", a["in_features"])
    c = positive_int(name, "num_classes", a["num_classes"])
    out = a["out_features"]
    if not isinstance(out, (list, tuple)):
        raise ValueError(f"{name}: out_features must be a list of positive ints, got {out!r}")
    rows = c * math.prod(positive_int(name, "out_features", d) for d in out)
    entries = [] if a["weight"] is None else [("weight", (c,), False, FLOAT)]
    entries.append(("linear.weight", (rows, i), True, FLOAT))
    if flag(name, "bias", a["bias"]):
        entries.append(("linear.bias", (rows,), True, FLOAT))
    return entries


def rules(L):
    return {L.LinearCrossEntropyLoss: _linear_cross_entropy}
