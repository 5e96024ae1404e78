"""Concat: several branches applied to one input, their outputs joined along an axis (Inception-style)."""

from __future__ import annotations

from .. import backends
from ..layers._checks import shape_str
from ..layers.base import Layer, Signature
from ..validate import dim as _dim
from .residual import add_grads


class Concat(Layer):
    """``y = concat([branch_1(x), ..., branch_k(x)], axis=dim)``.

    The outputs must agree on every axis but ``dim``. Backward cuts ``dy`` into the branches'
    pieces along ``dim``, runs each branch's backward (last branch first) and sums their input
    gradients, since ``x`` fans out into every branch. Keeps the branches' sizes along ``dim``
    and the output's :class:`~xpnet.layers.base.Signature`, against which ``dy`` is checked (cut
    into pieces, a ``dy`` too long along ``dim`` would otherwise go unnoticed).
    """

    def __init__(self, *branches, dim: int = 1):
        if not branches:
            raise ValueError("Concat: expected at least one branch")
        for i, b in enumerate(branches):
            if not isinstance(b, Layer):
                raise TypeError(f"Concat: branch {i} must be a Layer, got {type(b).__name__}")
        self.branches = list(branches)
        self.dim = _dim("Concat", "dim", dim)

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        ref = outs[0]
        nd = ref.ndim
        d = self.dim + nd if self.dim < 0 else self.dim
        if not 0 <= d < nd:
            raise ValueError(f"{self._tag()} expected the branches' outputs to have axis {self.dim}, got {nd}-d outputs")
        for i, o in enumerate(outs):
            if o.ndim != nd or any(o.shape[a] != ref.shape[a] for a in range(nd) if a != d):
                raise ValueError(
                    f"{self._tag()}: branch {i} gives shape {shape_str(o.shape)}, branch 0 gives "
                    f"{shape_str(ref.shape)}; they must agree on every axis but {self.dim}"
                )
        y = backends.namespace_of(ref).concat(outs, axis=d)
        self.save_for_backward(d, [o.shape[d] for o in outs], Signature(y))
        return y

    def backward(self, dy, input_grad: bool = True):
        d, sizes, out = self.saved()
        if dy is not None:
            self.check_grad(dy, out)
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        dx = None
        for b, start, size in zip(reversed(self.branches), reversed(starts), reversed(sizes)):
            piece = None if dy is None else dy[(slice(None),) * d + (slice(start, start + size), ...)]
            dx = add_grads(dx, b.backward(piece, input_grad=input_grad))
        return dx if input_grad else None

    def config(self):
        return {"branches": list(self.branches), "dim": self.dim}

    def set_child(self, name, layer):
        self.branches[int(name)] = layer

    def named_children(self):
        for i, b in enumerate(self.branches):
            yield str(i), b

    def extra_repr(self):
        return f"dim={self.dim}"

    def _tag(self):
        return f"Concat(dim={self.dim})"
