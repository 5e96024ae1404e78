"""Nested tuples of arrays, flattened and rebuilt: the inputs and outputs of sequence layers
(LSTM's ``(output, (h_n, c_n))``, an initial state ``(h0, c0)``) as one flat list of leaves.

Only tuples are structure; anything else (an array, None, a flag) is a leaf.
"""

from __future__ import annotations


def flatten(tree):
    """``(leaves, shape)``: the leaves in order, and a description that :func:`unflatten` takes."""
    leaves = []

    def walk(t):
        if isinstance(t, tuple):
            return tuple(walk(e) for e in t)
        leaves.append(t)
        return None

    return leaves, walk(tree)


def unflatten(shape, leaves):
    """The tree of :func:`flatten`'s ``shape`` with ``leaves`` in its places."""
    it = iter(leaves)

    def build(s):
        return tuple(build(e) for e in s) if isinstance(s, tuple) else next(it)

    return build(shape)


def paths(shape, prefix=""):
    """A name per leaf: ``"[1][0]"`` for the first element of the second entry."""
    if not isinstance(shape, tuple):
        return [prefix]
    return [p for i, s in enumerate(shape) for p in paths(s, f"{prefix}[{i}]")]
