"""CrossEntropyLoss: softmax cross-entropy over a class axis, as ``torch.nn.CrossEntropyLoss``."""

from __future__ import annotations

import math

from ... import backends
from ...validate import integer, probability
from .._checks import place, require_float, shape_str
from ..base import grad_enabled
from .base import _divide
from .class_labels import ClassLabelLoss, with_class_axis


class CrossEntropyLoss(ClassLabelLoss):
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
      ``ignore_index`` raise ``ValueError`` (this reads one boolean back from the device, and a
      second one when some target is outside ``[0, C)`` or ``ignore_index`` is inside); inside
      :func:`~xpnet.layers.deferred.deferred_checks` (a training loop) nothing is read: a bad
      batch's loss is NaN and the error is raised when the loop reads its checks.
    - probabilities: ``a_c = w_c ((1 - e) t_c + e / C)``; ``ignore_index`` does not apply (one
      ``>= 0`` raises, as in torch); ``"mean"`` divides by ``N d1 ... dk``.

    Backward, with ``g = dy`` (``/ D`` for ``"mean"``): ``dz_c = (p_c sum_k a_k - a_c) g`` and,
    for probability targets, ``dt_c = -(1 - e) w_c log p_c g``. Keeps the softmax ``p`` and the
    class indices (with the mask of ignored ones), or ``p``, ``log p`` and ``a`` (probabilities).
    """

    _config_fields = ("weight", "ignore_index", "reduction", "label_smoothing")
    _buffer_names = ("weight",)

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0, *, backend=None, dtype=None):
        super().__init__(reduction)
        self.ignore_index = integer("CrossEntropyLoss", "ignore_index", ignore_index)
        self.label_smoothing = probability("CrossEntropyLoss", "label_smoothing", label_smoothing, closed=True)
        self._class_weights(backend, dtype, weight)  # sets self.weight
        self._class_row = self._row_starts = None  # index helpers, made once per shape and place

    def forward(self, logits, target):
        tag = self._tag()
        logits, target = self._lift(logits, target)  # float16/bfloat16: computed in float32
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
        if c == 0:
            raise ValueError(f"{tag} expected at least one class, got logits of shape {shape_str(logits.shape)}")
        w = self._class_weight(logits, c, "logits")
        cls_shape = (1, c) + (1,) * (logits.ndim - 2)
        wr = None if w is None else xp.reshape(w, cls_shape)
        shifted = logits - xp.max(logits, axis=1, keepdims=True)
        e = xp.exp(shifted)
        total = xp.sum(e, axis=1, keepdims=True)
        lse = xp.log(total)  # log p = shifted - lse
        p = e / total if grad_enabled() else None  # the softmax, kept for backward (cheaper than an exp there)
        eps = self.label_smoothing
        mean = self.reduction == "mean"
        if probs:
            logp = shifted - lse
            q = target if not eps else target * (1.0 - eps) + eps / c
            a = q if wr is None else q * wr
            per = -xp.sum(a * logp, axis=1)
            denom = math.prod(per.shape)
            self.save_for_backward("probabilities", unbatched, denom, p, logp, a, wr)
        else:
            target = self._int64(be, target)
            valid, index, bad = self._valid_targets(xp, target, c)
            common = w is None and not unbatched and logits.ndim == 2 and self.reduction != "none"
            if bad is not None and common:
                return self._deferred_common(xp, logits, shifted, lse, p, index, bad, mean)
            if bad is not None:  # deferred: the gathers below must not read outside [0, C)
                index = xp.minimum(xp.maximum(index, 0), c - 1)
            if valid is None and common:
                # the common case, (N, C) logits without weights or ignored targets: as few array
                # operations as possible (small nets are bound by their count). where(), not a
                # product with the one-hot: a -inf logit of another class must not give 0 * -inf.
                n = index.shape[0]
                hot = index[:, None] == self._classes(xp, c, index, 2)
                total = xp.sum(lse) - xp.sum(xp.where(hot, shifted, 0.0))
                if eps:  # -sum_c log p_nc summed over n = C sum(lse) - sum(shifted)
                    total = total * (1.0 - eps) + (xp.sum(lse) * float(c) - xp.sum(shifted)) * (eps / c)
                if p is not None:  # backward's dz = (p - q) g, q the (smoothed) one-hot targets
                    q = xp.astype(hot, logits.dtype)
                    self.save_for_backward("onehot", unbatched, n if mean else None, p,
                                           q if not eps else q * (1.0 - eps) + eps / c)
                return xp.asarray(_divide(total, n) if mean else total)
            lse_n = xp.reshape(lse, tuple(index.shape))
            # a gather, not a one-hot sum: O(N) work, and a -inf logit of another class costs nothing
            picked = self._gather(xp, shifted, index) - lse_n
            wy = None if w is None else xp.reshape(xp.take(w, xp.reshape(index, (-1,)), axis=0), tuple(index.shape))
            per = -picked if wy is None else -(wy * picked)
            if eps:  # -sum_c w_c log p_c, without forming log p
                if wr is None:
                    smooth = lse_n * float(c) - xp.sum(shifted, axis=1)
                else:
                    smooth = lse_n * xp.sum(w) - xp.sum(shifted * wr, axis=1)
                per = per * (1.0 - eps) + smooth * (eps / c)
            if valid is not None:
                per = xp.where(valid, per, 0.0)
            denom = None
            if mean and wy is None:
                denom = math.prod(index.shape) if valid is None else xp.sum(xp.astype(valid, logits.dtype))
            elif mean:
                denom = xp.sum(wy if valid is None else xp.where(valid, wy, 0.0))
            self.save_for_backward("indices", unbatched, denom, p, index, valid, wy, wr)
        out = self._reduce(xp, per, denom)
        if not probs and bad is not None:  # a deferred label check: a bad batch's loss is NaN
            out = xp.where(bad, math.nan, out)
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

    def _deferred_common(self, xp, logits, shifted, lse, p, target, bad, mean):
        """The common case's loss, ``(N, C)`` logits without weights, when the label check is
        deferred, in few array operations: an ignored target (like a bad one, which makes the
        loss NaN anyway) has no class in the one-hot ``q``, so the row sums ``r`` of ``q`` (1, or
        0) take it out of the loss, the count and the gradient, with no branch on the data."""
        c, eps = logits.shape[1], self.label_smoothing
        hot = target[:, None] == self._classes(xp, c, target, 2)
        q = xp.astype(hot, logits.dtype)
        r = xp.sum(q, axis=1, keepdims=True)  # (N, 1)
        total = xp.sum(lse * r) - xp.sum(xp.where(hot, shifted, 0.0))
        if eps:  # -sum_c log p_nc over the counted n = sum_n r_n (C lse_n - sum_c shifted_nc)
            total = total * (1.0 - eps) + (xp.sum(lse * r) * float(c) - xp.sum(shifted * r)) * (eps / c)
        scale = r  # backward's dz = (p - q) * scale, q the (smoothed) one-hot targets
        if mean:
            n = xp.sum(r)
            count = xp.maximum(n, 1.0)  # no target counted: zero gradients, as the eager path gives,
            total, scale = total / count, r / count
            bad = bad | (n == 0)  # and a NaN loss, as torch
        if p is not None:
            self.save_for_backward("masked", False, scale, p, q if not eps else q * (1.0 - eps) + eps / c)
        return xp.where(bad, math.nan, xp.asarray(total))  # a bad batch's loss is NaN too

    def backward(self, dy=1.0, *, input_grad: bool = True, target_grad: bool = False):
        saved = self.saved()
        if type(dy) is float and dy == 1.0 and input_grad and not target_grad and saved[0] == "onehot":
            # the training loop's loss.backward() after the common case's forward: dz = (p - q) / N,
            # without the general path's checks of a dy (there is none)
            _, _, n, p, q = saved
            dz = p - q
            if n is not None:
                dz *= (1.0 / n) if n else math.nan  # dz is our own fresh array
            return self._narrowed(dz)[0]
        return self._answer(saved, dy, input_grad, target_grad)

    def _backward(self, saved, dy, input_grad, target_grad):
        kind, unbatched, denom, p, *rest = saved
        xp = backends.namespace_of(p)
        if kind == "masked":  # _deferred_common's: denom is the per-row scale (N, 1)
            if not input_grad:
                return None, None
            g = self._seed(dy, p, (), 1)
            dz = (p - rest[0]) * denom
            if type(g) is not float or g != 1.0:
                dz *= g  # dz is our own fresh array
            return dz, None
        loss_shape = tuple(p.shape[:1]) + tuple(p.shape[2:])
        g = self._seed(dy, p, () if unbatched else loss_shape, denom)
        if kind == "onehot":
            if not input_grad:
                return None, None
            dz = p - rest[0]
            if type(g) is not float or g != 1.0:
                dz *= g  # dz is our own fresh array
            return dz, None
        if kind == "probabilities":
            dz, dt = self._grads_for_probabilities(xp, g, p, *rest, input_grad, target_grad)
        else:
            dz, dt = (self._grads_for_indices(xp, g, p, *rest) if input_grad else None), None
        if unbatched:
            c = p.shape[1]
            dz = None if dz is None else xp.reshape(dz, (c,))
            dt = None if dt is None else xp.reshape(dt, (c,))
        return dz, dt

    def _grads_for_indices(self, xp, g, p, index, valid, wy, wr):
        eps, c = self.label_smoothing, p.shape[1]
        if valid is not None:  # no gradient through ignored targets, whatever dy holds there;
            # a where, not a product, for when every target is ignored and g = 1/0
            g = xp.astype(valid, p.dtype) * g if type(g) is float else xp.where(valid, g, 0.0)
        onehot = xp.astype(with_class_axis(xp, index) == self._classes(xp, c, index, p.ndim), p.dtype)
        if wr is None:  # sum_c a_c = 1
            dz = p - (onehot if not eps else onehot * (1.0 - eps) + eps / c)
        else:
            wy1 = with_class_axis(xp, wy)
            if not eps:
                dz = (p - onehot) * wy1
            else:
                total = wy1 * (1.0 - eps) + xp.sum(wr) * (eps / c)
                dz = p * total - (onehot * (wy1 * (1.0 - eps)) + wr * (eps / c))
        return dz * (g if type(g) is float or g.ndim == 0 else with_class_axis(xp, g))

    def _grads_for_probabilities(self, xp, g, p, logp, a, wr, input_grad, target_grad):
        if not isinstance(g, float) and g.ndim:
            g = with_class_axis(xp, g)
        dz = (p * xp.sum(a, axis=1, keepdims=True) - a) * g if input_grad else None
        dt = None
        if target_grad:
            scale = -(1.0 - self.label_smoothing)
            dt = (logp * scale if wr is None else logp * (wr * scale)) * g
        return dz, dt

    def extra_repr(self):
        parts = [super().extra_repr()] if self.reduction != "mean" else []
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(parts)

