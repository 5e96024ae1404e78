"""The broadcast shape of a loss's named inputs, or the error naming them (the gradient of a
broadcast input is summed back with :func:`xpnet.layers.distance.sum_to`)."""

from __future__ import annotations

from .._checks import shape_str


def broadcast_shape(tag, **shapes):
    """The shape the named ``shapes`` broadcast to (the array API's rules: aligned on the right,
    a size-1 axis stretches), or ValueError naming the ``tag``'s inputs and their shapes."""
    out = ()
    for shape in shapes.values():
        n = max(len(out), len(shape))
        a, b = (1,) * (n - len(out)) + tuple(out), (1,) * (n - len(shape)) + tuple(shape)
        if any(i != j and 1 not in (i, j) for i, j in zip(a, b)):
            named = ", ".join(f"{k} {shape_str(s)}" for k, s in shapes.items())
            raise ValueError(f"{tag} expected inputs whose shapes broadcast together, got {named}")
        out = tuple(j if i == 1 else i for i, j in zip(a, b))
    return out
