"""What the converters of layers over spatial axes share: ONNX's operators take batched input
only, and an unbatched input gets an ``Unsqueeze`` before and a ``Squeeze`` (:func:`_back`) after.

The convolutions convert in :mod:`xpnet.onnx.families.conv`, the pools (1-, 2- and 3-D) in
:mod:`xpnet.onnx.families.pooling`.
"""

from __future__ import annotations


def _back(g, out, unbatched, path):
    return g.squeeze(out, [0], path) if unbatched else out
