"""CrossEntropyLoss: softmax cross-entropy over a class axis, as ``torch.nn.CrossEntropyLoss``."""

from __future__ import annotations

import math

from ... import backends
from ...validate import integer, probability
from .._checks import place, require_float, shape_str
from .base import Loss


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits ``z`` over the class axis (axis 1, or 0 for unbatched input).

    Shapes: ``z (N, C)``, ``(N, C, d1, ..., dk)`` or unbatched ``(C,)``; the target is either
    integer class indices ``y`` of shape ``(N,)``, ``(N, d1, ..., dk)`` or ``()``, or float class
    probabilities ``t`` of the logits' shape. ``"none"`` returns ``(N, d1, ..., dk)`` (``()``
    unbatched). ``weight (C,)``: class weights ``w`` (default 1), a buffer on ``backend`` in
    ``dtype`` (default float32), moved by ``.to(...)``.

    With ``log p = z - max z - log sum_c exp(z - max z)`` (stable for logits of any size),
    label smoothing ``e`` and ``C`` classes, the per-element loss is ``l = -sum_c a_c log p_c``:

    - class indices: ``a_c = (1 - e) w_y [c = y] + (e / C) w_c``, and ``a = 0`` where
      ``y == ignore_index``; ``"mean"`` divides ``sum(l)`` by ``sum w_y`` over the targets not
      ignored (their count without weights). Indices outside ``[0, C)`` that are not
      ``ignore_index`` raise ``ValueError`` (this reads one boolean back from the device).
    - probabilities: ``a_c = w_c ((1 - e) t_c + e / C)``; ``ignore_index`` does not apply (one
      ``>= 0`` raises, as in torch); ``"mean"`` divides by ``N d1 ... dk``.

    Backward, with ``g = dy`` (``/ D`` for ``"mean"``): ``dz_c = (p_c sum_k a_k - a_c) g`` and,
    for probability targets, ``dt_c = -(1 - e) w_c log p_c g``. Keeps ``log p`` and the target's
    one-hot mask (class indices) or ``a`` (probabilities).
    """

    _config_fields = ("weight", "ignore_index", "reduction", "label_smoothing")
    _buffer_names = ("weight",)

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0, *, backend=None, dtype=None):
        super().__init__(reduction)
        self.ignore_index = integer("CrossEntropyLoss", "ignore_index", ignore_index)
        self.label_smoothing = probability("CrossEntropyLoss", "label_smoothing", label_smoothing, closed=True)
        self.weight = self._as_buffer(weight, "weight", backend, dtype)
        if self.weight is not None and self.weight.ndim != 1:
            raise ValueError(
                f"CrossEntropyLoss: weight must be 1-D, one value per class, got shape {shape_str(self.weight.shape)}"
            )
        self._class_row = None

    def forward(self, logits, target):
        tag = self._tag()
        be = require_float(tag, logits, "logits")
        xp = be.xp
        if logits.ndim == 0:
            raise ValueError(f"{tag} expected logits of shape (C,), (N, C) or (N, C, d1, ..., dk), got ()")
        self._check_target_place(target, logits, "logits")
        probs = self._target_kind(be, logits, target)
        if probs and self.ignore_index >= 0:  # torch refuses this too: no target can be "ignored"
            raise ValueError(
                f"{tag} got class probabilities as target (float, the logits' shape), to which "
                f"ignore_index={self.ignore_index} does not apply; use a negative ignore_index (default -100)"
            )
        unbatched = logits.ndim == 1
        if unbatched:  # one sample: the batched computation on (1, C)
            logits = xp.reshape(logits, (1,) + tuple(logits.shape))
            target = xp.reshape(target, (1,) + tuple(target.shape))
        c = logits.shape[1]
        w = self.weight
        if w is not None:
            self._check_buffer(w, "weight", logits, "logits")
            if w.shape[0] != c:
                raise ValueError(f"{tag} has a weight for {w.shape[0]} classes but got logits with {c} classes "
                                 f"(shape {shape_str(logits.shape)})")
        cls_shape = (1, c) + (1,) * (logits.ndim - 2)
        wr = None if w is None else xp.reshape(w, cls_shape)
        shifted = logits - xp.max(logits, axis=1, keepdims=True)
        logp = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
        eps = self.label_smoothing
        mean = self.reduction == "mean"
        if probs:
            q = target if not eps else target * (1.0 - eps) + eps / c
            a = q if wr is None else q * wr
            per = -xp.sum(a * logp, axis=1)
            denom = math.prod(per.shape)
            self.save_for_backward(unbatched, logp, a, wr, None, None, denom)
        else:
            if target.dtype != be.dtype("int64"):  # one index dtype: no mixed-sign comparisons, no overflow
                target = xp.astype(target, be.dtype("int64"))
            valid = target != self.ignore_index
            index = xp.where(valid, target, 0)  # an ignored target reads class 0, then is masked out
            self._check_labels(xp, target, index, c)
            # gathers, not one-hot sums: O(N) work, and a -inf logit of another class costs nothing
            picked = xp.reshape(xp.take_along_axis(logp, with_class_axis(xp, index), axis=1), tuple(index.shape))
            wy = None if wr is None else xp.reshape(xp.take(w, xp.reshape(index, (-1,)), axis=0), tuple(index.shape))
            per = -picked if wy is None else -(wy * picked)
            if eps:
                smooth = -xp.sum(logp if wr is None else logp * wr, axis=1)
                per = per * (1.0 - eps) + smooth * (eps / c)
            per = xp.where(valid, per, 0.0)
            denom = None
            if mean:
                denom = xp.sum(xp.astype(valid, logits.dtype)) if wy is None else xp.sum(xp.where(valid, wy, 0.0))
            self.save_for_backward(unbatched, logp, index, wr, valid, wy, denom)
        out = self._reduce(xp, per, denom)
        return xp.reshape(out, ()) if unbatched and self.reduction == "none" else out

    def _target_kind(self, be, logits, target):
        """True for float class probabilities, False for integer class indices; raises for anything else."""
        tag = self._tag()
        shape, lshape = tuple(target.shape), tuple(logits.shape)
        if target.dtype in be.float_dtypes and shape == lshape:
            if target.dtype != logits.dtype:
                got = be.dtype_name(target.dtype)
                raise TypeError(
                    f"{tag} expected class probabilities as a {be.dtype_name(logits.dtype)} target to match "
                    f"the logits, got {got}; convert them with xp.astype(t, xp.{be.dtype_name(logits.dtype)})"
                )
            return True
        if target.dtype not in be.int_dtypes:
            raise TypeError(
                f"{tag} expected integer class labels as target, got {be.dtype_name(target.dtype)} of shape "
                f"{shape_str(shape)} (from {place(target)}); convert them with xp.astype(y, xp.int64), "
                f"or give float class probabilities of the logits' shape {shape_str(lshape)}"
            )
        expect = () if len(lshape) == 1 else lshape[:1] + lshape[2:]
        if shape != expect:
            raise ValueError(
                f"{tag} expected target of shape {shape_str(expect)} for logits {shape_str(lshape)}, "
                f"got {shape_str(shape)} (class indices; or float probabilities of the logits' shape)"
            )
        return False

    def _check_labels(self, xp, target, index, c):
        """``index``: the targets with the ignored ones replaced by 0."""
        if math.prod(index.shape) == 0:
            return
        if bool(xp.any((index < 0) | (index >= c))):  # one read-back, rather than a wrong answer or a device fault
            host = backends.to_numpy(target)
            kept = host[host != self.ignore_index]
            raise ValueError(
                f"{self._tag()} expected class labels in [0, {c}), got labels from {int(kept.min())} to {int(kept.max())}"
                + ("" if self.ignore_index == -100 else f" (ignore_index={self.ignore_index} aside)")
            )

    def _classes(self, xp, c, ref, ndim):
        """``[0, 1, ..., C-1]`` shaped ``(1, C, 1, ...)`` on ``ref``'s device, made once per shape and place."""
        key = (c, ndim, ref.device, type(ref))
        cached = self._class_row
        if cached is None or cached[0] != key:
            row = xp.arange(c, dtype=ref.dtype, device=ref.device)
            cached = self._class_row = (key, xp.reshape(row, (1, c) + (1,) * (ndim - 2)))
        return cached[1]

    def _backward(self, saved, dy, input_grad, target_grad):
        unbatched, logp, kept, wr, valid, wy, denom = saved
        xp = backends.namespace_of(logp)
        probs = valid is None
        loss_shape = tuple(logp.shape[:1]) + tuple(logp.shape[2:])
        g = self._seed(dy, logp, () if unbatched else loss_shape, denom)
        eps, c = self.label_smoothing, logp.shape[1]
        if not probs:  # no gradient through ignored targets, whatever dy holds there
            # a where, not a product: with every target ignored, g = 1/0 and the gradient is still 0
            g = xp.astype(valid, logp.dtype) * g if type(g) is float else xp.where(valid, g, 0.0)
        if not isinstance(g, float) and g.ndim:
            g = with_class_axis(xp, g)
        dz = dt = None
        if input_grad:
            p = xp.exp(logp)
            if probs:
                dz = p * xp.sum(kept, axis=1, keepdims=True) - kept
            else:
                onehot = xp.astype(with_class_axis(xp, kept) == self._classes(xp, c, kept, logp.ndim), logp.dtype)
                if wr is None:  # sum_c a_c = 1
                    dz = p - (onehot if not eps else onehot * (1.0 - eps) + eps / c)
                else:
                    wy1 = with_class_axis(xp, wy)
                    if not eps:
                        dz = (p - onehot) * wy1
                    else:
                        total = wy1 * (1.0 - eps) + xp.sum(wr) * (eps / c)
                        dz = p * total - (onehot * (wy1 * (1.0 - eps)) + wr * (eps / c))
            dz = dz * g
        if probs and target_grad:
            dt = logp * (-(1.0 - eps)) if wr is None else logp * (wr * -(1.0 - eps))
            dt = dt * g
        if unbatched:
            dz = None if dz is None else xp.reshape(dz, (c,))
            dt = None if dt is None else xp.reshape(dt, (c,))
        return dz, dt

    def extra_repr(self):
        parts = [super().extra_repr()] if self.reduction != "mean" else []
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(parts)


def with_class_axis(xp, a):
    """``a (N, d1, ...)`` as ``(N, 1, d1, ...)``, to broadcast against ``(N, C, d1, ...)``."""
    shape = tuple(a.shape)
    return xp.reshape(a, shape[:1] + (1,) + shape[1:])
