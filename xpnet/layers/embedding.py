"""Embedding: a lookup table of learned vectors, indexed by integers, as torch.nn.Embedding."""

from __future__ import annotations

import math

from .. import backends
from ..validate import float_dtype, positive_int
from . import deferred
from ._checks import place_error, require_array
from .base import Layer, Parameter, trains


class Embedding(Layer):
    """``y[..., :] = weight[idx[...], :]``.

    Shapes: integer ``idx`` of any shape ``S`` -> ``y (*S, embedding_dim)``;
    ``weight (num_embeddings, embedding_dim)`` ~ N(0, 1), drawn from the backend's generator
    in ``dtype`` (default float32), as ``torch.nn.Embedding``.

    ``padding_idx``: that row is zeroed at construction and never receives a gradient (a
    negative value counts from the end, and is stored normalized, as torch does).

    Indices outside ``[0, num_embeddings)`` raise ValueError; inside
    :func:`~xpnet.layers.deferred.deferred_checks` (a training loop) the check reads nothing back:
    ``y`` is NaN (the indices are clamped for the gather) and the error is raised when the loop
    reads its checks.

    Backward: a scatter-add, ``dweight[idx[k]] += dy[k]`` for every position ``k``, repeated
    indices summed exactly (through the backend's native ``scatter_add``). Indices have no
    gradient, so ``backward`` returns ``None``.
    """

    _config_fields = ('num_embeddings', 'embedding_dim', 'padding_idx')

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, *, backend=None, dtype=None):
        self.num_embeddings = positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = positive_int("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, int) or not (
                -num_embeddings <= padding_idx < num_embeddings
            ):
                raise ValueError(
                    f"Embedding: padding_idx must be None or an int in [-{num_embeddings}, {num_embeddings}), "
                    f"got {padding_idx!r}"
                )
            if padding_idx < 0:
                padding_idx += num_embeddings
        self.padding_idx = padding_idx
        be = backends.get(backend)
        xp = be.xp
        dt = float_dtype("Embedding", be, dtype)
        w = be.rng.normal((num_embeddings, embedding_dim), dtype=dt)
        if padding_idx is not None:
            w = xp.where(self._pad_rows(xp, be.device), 0.0, w)
        self.weight = Parameter(w)

    def _pad_rows(self, xp, device):
        """A ``(num_embeddings, 1)`` bool column, True on the padding row."""
        return xp.reshape(xp.arange(self.num_embeddings, device=device) == self.padding_idx, (self.num_embeddings, 1))

    def forward(self, idx):
        w = self.weight.data
        tag = self._tag()
        be = require_array(tag, idx)
        if type(idx) is not type(w) or idx.device != w.device:
            raise place_error(tag, idx, w, what="indices")
        if idx.dtype not in be.int_dtypes:
            raise TypeError(
                f"{tag} expected integer indices, got {be.dtype_name(idx.dtype)}; "
                "convert them with xp.astype(idx, xp.int64)"
            )
        xp = be.xp
        shape = tuple(idx.shape)
        flat = xp.reshape(idx, (-1,))
        n = self.num_embeddings
        if be.dtype_name(flat.dtype) != "int64":
            flat = xp.astype(flat, xp.int64)  # one index dtype for take and every scatter_add
        checks = deferred.active()
        bad = None
        if flat.shape[0] and checks is None:
            # one device-to-host read; the standard leaves out-of-range take undefined, so check first
            if bool(xp.any((flat < 0) | (flat >= n))):
                raise ValueError(self._range_message(int(xp.min(flat)), int(xp.max(flat))))
        elif flat.shape[0]:
            # a training step reads nothing: the gather takes clamped indices, a bad call's output
            # is NaN, and the check is read later with every other (xpnet.layers.deferred)
            lo, hi = xp.min(flat), xp.max(flat)
            bad = (lo < 0) | (hi >= n)
            checks.record(self, xp, bad, (lo, hi), self._range_message)
            flat = xp.minimum(xp.maximum(flat, 0), n - 1)
        y = xp.take(w, flat, axis=0)
        if bad is not None:
            y = xp.where(bad, math.nan, y)
        y = xp.reshape(y, shape + (self.embedding_dim,))
        self.save_for_backward(flat, shape)  # where each row of dy goes, and the indices' shape
        return y

    def _range_message(self, lo, hi):
        """The error for indices ranging over ``[lo, hi]``, some outside ``[0, num_embeddings)``."""
        n = self.num_embeddings
        return f"{self._tag()} expected indices in [0, {n}), got {lo if lo < 0 else hi} (indices range over [{lo}, {hi}])"

    def backward(self, dy, input_grad: bool = True):
        """Adds the scatter-add into ``weight.grad``; returns None (indices have no gradient),
        whatever ``input_grad`` says."""
        flat, shape = self.saved()
        if dy is None:
            return None
        w = self.weight.data
        self.check_grad(dy, w, shape + (self.embedding_dim,))  # y has the weight's dtype and place
        if not trains(self.weight):
            return None
        be = backends.backend_of(w)
        xp = be.xp
        zeros = xp.zeros(tuple(w.shape), dtype=w.dtype, device=w.device)
        g = be.scatter_add(zeros, flat, xp.reshape(dy, (-1, self.embedding_dim)))
        if self.padding_idx is not None:
            g = xp.where(self._pad_rows(xp, w.device), 0.0, g)
        self.weight.accumulate(g)
        return None

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s

    def _tag(self):
        return f"Embedding({self.extra_repr()})"
