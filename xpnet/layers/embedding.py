"""Embedding: a lookup table of learned vectors, indexed by integers, as torch.nn.Embedding."""

from __future__ import annotations

import math

from .. import backends
from ..validate import flag, float_dtype, positive_int, real
from . import deferred
from ._checks import place_error, require_array
from .base import Layer, Parameter, trains
from .distance import vector_norm


class Embedding(Layer):
    """``y[..., :] = weight[idx[...], :]``.

    Shapes: integer ``idx`` of any shape ``S`` -> ``y (*S, embedding_dim)``;
    ``weight (num_embeddings, embedding_dim)`` ~ N(0, 1), drawn from the backend's generator
    in ``dtype`` (default float32), as ``torch.nn.Embedding``.

    ``padding_idx``: that row is zeroed at construction and never receives a gradient (a
    negative value counts from the end, and is stored normalized, as torch does).

    ``max_norm``: each row looked up whose ``norm_type``-norm exceeds ``max_norm`` is first
    rescaled to norm ``max_norm`` (times ``max_norm / (norm + 1e-7)``, as torch): torch does it in
    place on the weight, xpnet rebinds ``weight.data`` to the renormalised table (rows that were
    not looked up are unchanged); the renormalisation takes no gradient, as in torch. It costs a
    norm of every row per forward. ``scale_grad_by_freq``: each row's gradient is divided by the
    number of times its index occurs in the batch. ``sparse=True`` (torch's sparse gradient
    tensors) is refused: the array API has no sparse arrays.

    Indices outside ``[0, num_embeddings)`` raise ValueError; inside
    :func:`~xpnet.layers.deferred.deferred_checks` (a training loop) the check reads nothing back:
    ``y`` is NaN (the indices are clamped for the gather) and the error is raised when the loop
    reads its checks.

    Backward: a scatter-add, ``dweight[idx[k]] += dy[k]`` for every position ``k``, repeated
    indices summed exactly (through the backend's native ``scatter_add``). Indices have no
    gradient, so ``backward`` returns ``None``.
    """

    _config_fields = ('num_embeddings', 'embedding_dim', 'padding_idx', 'max_norm', 'norm_type',
                      'scale_grad_by_freq', 'sparse')

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, max_norm=None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False, *,
                 backend=None, dtype=None):
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
        self.max_norm = None if max_norm is None else real("Embedding", "max_norm", max_norm)
        self.norm_type = real("Embedding", "norm_type", norm_type)
        self.scale_grad_by_freq = flag("Embedding", "scale_grad_by_freq", scale_grad_by_freq)
        if flag("Embedding", "sparse", sparse):
            raise ValueError("Embedding: sparse=True (sparse gradient tensors) is not available: the array API "
                             "has no sparse arrays; use sparse=False (dense gradients, the same values)")
        self.sparse = False
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
        if self.max_norm is not None:
            w = self.weight.data = self._renormed(be, w, flat)
        y = xp.take(w, flat, axis=0)
        if bad is not None:
            y = xp.where(bad, math.nan, y)
        y = xp.reshape(y, shape + (self.embedding_dim,))
        self.save_for_backward(flat, shape)  # where each row of dy goes, and the indices' shape
        return y

    def _renormed(self, be, w, flat):
        """``w`` with each row indexed by ``flat`` whose norm exceeds ``max_norm`` scaled by
        ``max_norm / (norm + 1e-7)`` (torch's ``embedding_renorm_``), the other rows as they are."""
        xp = be.xp
        norm = vector_norm(xp, w, self.norm_type, 1)  # (num_embeddings, 1)
        hit = self._counts(be, w, flat) > 0
        return w * xp.where(hit & (norm > self.max_norm), self.max_norm / (norm + 1e-7), 1.0)

    def _counts(self, be, w, flat):
        """``(num_embeddings, 1)``: how often each row is indexed by ``flat``, in ``w``'s dtype."""
        xp = be.xp
        ones = xp.ones((flat.shape[0], 1), dtype=w.dtype, device=w.device)
        return be.scatter_add(xp.zeros((self.num_embeddings, 1), dtype=w.dtype, device=w.device), flat, ones)

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
        if self.scale_grad_by_freq:
            g = g / xp.maximum(self._counts(be, w, flat), 1.0)
        if self.padding_idx is not None:
            g = xp.where(self._pad_rows(xp, w.device), 0.0, g)
        self.weight.accumulate(g)
        return None

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2.0:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        return s

    def _tag(self):
        return f"Embedding({self.extra_repr()})"
