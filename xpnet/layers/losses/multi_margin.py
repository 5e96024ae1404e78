"""Multi-class hinge losses on integer class labels: MultiMarginLoss (one label per sample) and
MultiLabelMarginLoss (a list of labels per sample, ended by -1)."""

from __future__ import annotations

import math

from ... import backends
from ...validate import integer, real
from .._checks import require_float, shape_str
from .class_labels import ClassLabelLoss


class _MarginOverClasses(ClassLabelLoss):
    """Shared checks: scores ``x`` of shape ``(C,)`` or ``(N, C)`` (C >= 1) and an integer target."""

    def _scores(self, pred, target, target_shape):
        """``(be, x (N, C), y, unbatched)`` after checking; ``target_shape(x_shape)``: the target's shape."""
        tag = self._tag()
        be = require_float(tag, pred, "input")
        self._check_target_place(target, pred, "input")
        shape = tuple(pred.shape)
        if len(shape) not in (1, 2) or shape[-1] == 0:
            raise ValueError(f"{tag} expected input of shape (C,) or (N, C) with C >= 1, got {shape_str(shape)}")
        self._label_dtype(be, target, shape)
        if tuple(target.shape) != target_shape(shape):
            raise ValueError(f"{tag} expected target of shape {shape_str(target_shape(shape))} for input "
                             f"{shape_str(shape)}, got {shape_str(target.shape)}")
        unbatched = len(shape) == 1
        xp = be.xp
        y = self._int64(be, target)
        if unbatched:  # one sample: the batched computation on (1, C)
            pred, y = xp.reshape(pred, (1,) + shape), xp.reshape(y, (1,) + tuple(y.shape))
        return be, pred, y, unbatched

    def _finish(self, xp, per, unbatched, bad):
        out = self._reduce(xp, per, per.shape[0])
        if bad is not None:  # a deferred label check: a bad batch's loss is NaN
            out = xp.where(bad, math.nan, out)
        return xp.reshape(out, ()) if unbatched and self.reduction == "none" else out

    def _seed_per_sample(self, dy, ref, unbatched, n):
        """``dy`` as an ``(N, 1)`` array or a number (``/ N`` for ``"mean"``), checked against ``ref``."""
        g = self._seed(dy, ref, () if unbatched else (n,), n)
        if type(g) is float or g.ndim == 0:
            return g
        return backends.namespace_of(ref).reshape(g, (-1, 1))


class MultiMarginLoss(_MarginOverClasses):
    """As ``torch.nn.MultiMarginLoss``: the multi-class hinge loss of scores ``x (N, C)`` (or
    ``(C,)``) with one label ``y`` per sample (``(N,)``, or ``()``)::

        l_n = (1 / C) sum_{c != y} w_y max(0, margin - x_y + x_c)^p         (p = 1 or 2)

    ``weight (C,)``: class weights ``w`` (default 1), a buffer on ``backend`` in ``dtype``.
    ``"none"`` returns ``(N,)`` (``()`` unbatched); ``"mean"`` divides ``sum(l)`` by ``N``. Labels
    outside ``[0, C)`` raise ``ValueError`` (one boolean read back; inside
    :func:`~xpnet.layers.deferred.deferred_checks` none: the loss is NaN, the error comes later).

    Backward, with ``z_c = margin - x_y + x_c``, ``a_c = w_y p z_c^(p-1) g_n / C`` where
    ``c != y`` and ``z_c > 0`` (else 0), ``g = dy`` (``/ N`` for ``"mean"``):
    ``dx_c = a_c - [c = y] sum_k a_k``. Keeps ``a / g`` and the one-hot labels.
    """

    _config_fields = ("p", "margin", "weight", "reduction")
    _buffer_names = ("weight",)

    def __init__(self, p: int = 1, margin: float = 1.0, weight=None, reduction: str = "mean", *,
                 backend=None, dtype=None):
        super().__init__(reduction)
        self.p = integer("MultiMarginLoss", "p", p)
        if self.p not in (1, 2):
            raise ValueError(f"MultiMarginLoss: p must be 1 or 2 (as in torch), got {p!r}")
        self.margin = real("MultiMarginLoss", "margin", margin)
        self._class_weights(backend, dtype, weight)  # sets self.weight

    def forward(self, pred, target):
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        be, x, y, unbatched = self._scores(pred, target, lambda s: s[:1] if len(s) == 2 else ())
        xp = be.xp
        c = x.shape[1]
        w = self._class_weight(x, c, "input")
        bad = self._check_labels(xp, y, c)
        if bad is not None:  # deferred: the gathers below must not read outside [0, C)
            y = xp.minimum(xp.maximum(y, 0), c - 1)
        hot = y[:, None] == self._classes(xp, c, y, 2)
        z = self.margin - xp.reshape(self._gather(xp, x, y), (-1, 1)) + x
        on = (z > 0.0) & ~hot
        zz = xp.where(on, z, 0.0)
        h = zz if self.p == 1 else zz * zz
        scale = 1.0 / c if w is None else xp.reshape(xp.take(w, y, axis=0), (-1, 1)) * (1.0 / c)
        per = xp.sum(h * scale, axis=1)
        slope = (xp.astype(on, x.dtype) if self.p == 1 else zz * 2.0) * scale  # d l_n / d x_c for c != y
        self.save_for_backward(unbatched, slope, hot)
        return self._finish(xp, per, unbatched, bad)

    def _backward(self, saved, dy, input_grad, target_grad):
        unbatched, slope, hot = saved
        if not input_grad:
            return None, None
        xp = backends.namespace_of(slope)
        a = slope * self._seed_per_sample(dy, slope, unbatched, slope.shape[0])
        dx = a - xp.where(hot, xp.sum(a, axis=1, keepdims=True), 0.0)
        return (xp.reshape(dx, (-1,)) if unbatched else dx), None

    def extra_repr(self):
        parts = [f"p={self.p}"] if self.p != 1 else []
        parts += [f"margin={self.margin}"] if self.margin != 1.0 else []
        return ", ".join(parts + ([super().extra_repr()] if self.reduction != "mean" else []))


class MultiLabelMarginLoss(_MarginOverClasses):
    """As ``torch.nn.MultiLabelMarginLoss``: the multi-label hinge loss of scores ``x (N, C)`` (or
    ``(C,)``) with a target ``y`` of the same shape listing each sample's labels, ended by the
    first negative entry (``-1``; what follows is not read)::

        l_n = (1 / C) sum_{j listed} sum_{i not listed} max(0, 1 - x_j + x_i)

    (a label listed twice counts twice, as in torch). ``"none"`` returns ``(N,)`` (``()`` for
    ``(C,)``); ``"mean"`` divides ``sum(l)`` by ``N``. Entries outside ``[-1, C)`` raise
    ``ValueError`` (one boolean read back; inside :func:`~xpnet.layers.deferred.deferred_checks`
    none: the loss is NaN, the error comes later).

    Backward, with ``a_ji = m_j [i not listed] [1 - x_j + x_i > 0] g_n / C`` (``m_j``: how often
    ``j`` is listed; ``g = dy``, ``/ N`` for ``"mean"``): ``dx_k = sum_j a_jk - sum_i a_ki``.
    Keeps ``a / g``, ``(N, C, C)``.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction)

    def _labels_note(self):
        return " (-1 ends a sample's labels)"

    def forward(self, pred, target):
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        be, x, y, unbatched = self._scores(pred, target, lambda s: s)
        xp = be.xp
        c = x.shape[1]
        bad = self._check_labels(xp, y, c, low=-1)
        if bad is not None:
            y = xp.minimum(y, c - 1)
        listed = xp.cumulative_sum(xp.astype(y < 0, y.dtype), axis=1) == 0  # before the first negative entry
        hot = (y[:, :, None] == xp.reshape(self._classes(xp, c, y, 2), (1, 1, c))) & listed[:, :, None]
        m = xp.sum(xp.astype(hot, x.dtype), axis=1)  # (N, C): how often each class is listed
        z = 1.0 - x[:, :, None] + x[:, None, :]  # (N, j, i)
        on = (m[:, :, None] > 0.0) & (m[:, None, :] == 0.0) & (z > 0.0)
        per = xp.sum(xp.sum(xp.where(on, m[:, :, None] * z, 0.0), axis=2), axis=1) * (1.0 / c)
        weight = xp.where(on, m[:, :, None], 0.0) * (1.0 / c)
        self.save_for_backward(unbatched, weight)
        return self._finish(xp, per, unbatched, bad)

    def _backward(self, saved, dy, input_grad, target_grad):
        unbatched, weight = saved
        if not input_grad:
            return None, None
        xp = backends.namespace_of(weight)
        g = self._seed_per_sample(dy, weight, unbatched, weight.shape[0])
        a = weight * (g if type(g) is float or g.ndim == 0 else g[:, :, None])
        dx = xp.sum(a, axis=1) - xp.sum(a, axis=2)
        return (xp.reshape(dx, (-1,)) if unbatched else dx), None
