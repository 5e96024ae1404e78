"""NLLLoss: the negative log-likelihood of class labels, as ``torch.nn.NLLLoss``."""

from __future__ import annotations

import math

from ... import backends
from ...validate import integer
from .._checks import require_float, shape_str
from .class_labels import ClassLabelLoss, with_class_axis


class NLLLoss(ClassLabelLoss):
    """Negative log-likelihood on log-probabilities ``x`` (a LogSoftmax's output) over the class
    axis (axis 1, or 0 for unbatched input) with integer class labels ``y``::

        l = -w_y x_y        (0 where y == ignore_index)

    Shapes: ``x (N, C)``, ``(N, C, d1, ..., dk)`` or unbatched ``(C,)``; ``y (N,)``,
    ``(N, d1, ..., dk)`` or ``()``; ``"none"`` returns ``y``'s shape. ``weight (C,)``: class
    weights ``w`` (default 1), a buffer on ``backend`` in ``dtype`` (default float32), moved by
    ``.to(...)``. ``"mean"`` divides ``sum(l)`` by ``sum w_y`` over the labels not ignored (NaN
    when that is 0, as in torch). Labels outside ``[0, C)`` that are not ``ignore_index`` raise
    ``ValueError`` (one or two booleans read back from the device; inside
    :func:`~xpnet.layers.deferred.deferred_checks` none: the loss is NaN and the error comes when
    the loop reads its checks), as :class:`CrossEntropyLoss` does.

    Backward, with ``g = dy`` (``/ sum w_y`` for ``"mean"``): ``dx_c = -w_y [c = y] g`` (0 for
    ignored labels). Keeps the labels, the mask of ignored ones and ``w_y``.
    """

    _config_fields = ("weight", "ignore_index", "reduction")
    _buffer_names = ("weight",)

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean", *, backend=None, dtype=None):
        super().__init__(reduction)
        self.ignore_index = integer("NLLLoss", "ignore_index", ignore_index)
        self._class_weights(backend, dtype, weight)  # sets self.weight

    def forward(self, pred, target):
        tag = self._tag()
        pred, target = self._lift(pred, target)  # float16/bfloat16: computed in float32
        be = require_float(tag, pred, "input")
        xp = be.xp
        self._check_target_place(target, pred, "input")
        shape = tuple(pred.shape)
        if not shape or shape[1 if len(shape) > 1 else 0] == 0:
            raise ValueError(f"{tag} expected input of shape (C,), (N, C) or (N, C, d1, ..., dk) with C >= 1, "
                             f"got {shape_str(shape)}")
        self._label_dtype(be, target, shape)
        expect = () if len(shape) == 1 else shape[:1] + shape[2:]
        if tuple(target.shape) != expect:
            raise ValueError(f"{tag} expected target of shape {shape_str(expect)} for input {shape_str(shape)}, "
                             f"got {shape_str(target.shape)}")
        unbatched = len(shape) == 1
        if unbatched:  # one sample: the batched computation on (1, C)
            pred, target = xp.reshape(pred, (1,) + shape), xp.reshape(target, (1,))
        c = pred.shape[1]
        w = self._class_weight(pred, c, "input")
        valid, index, bad = self._valid_targets(xp, self._int64(be, target), c)
        if bad is not None:  # deferred: the gather below must not read outside [0, C)
            index = xp.minimum(xp.maximum(index, 0), c - 1)
        wy = None if w is None else xp.reshape(xp.take(w, xp.reshape(index, (-1,)), axis=0), tuple(index.shape))
        picked = self._gather(xp, pred, index)
        per = -picked if wy is None else -(wy * picked)
        if valid is not None:  # a where: an ignored label's -inf or NaN entry must not leak in
            per = xp.where(valid, per, 0.0)
        denom = None  # "mean": sum w_y over the labels not ignored (their count without weights)
        if self.reduction == "mean" and wy is None:
            denom = math.prod(index.shape) if valid is None else xp.sum(xp.astype(valid, pred.dtype))
        elif self.reduction == "mean":
            denom = xp.sum(wy if valid is None else xp.where(valid, wy, 0.0))
        self.save_for_backward(unbatched, denom, c, picked, index, valid, wy)
        out = self._reduce(xp, per, denom)
        if bad is not None:  # a deferred label check: a bad batch's loss is NaN
            out = xp.where(bad, math.nan, out)
        return xp.reshape(out, ()) if unbatched and self.reduction == "none" else out

    def _backward(self, saved, dy, input_grad, target_grad):
        unbatched, denom, c, picked, index, valid, wy = saved
        if not input_grad:
            return None, None
        xp = backends.namespace_of(picked)
        # picked (x_y, the loss's shape) stands for the input's dtype and place in dy's check
        g = self._seed(dy, picked, () if unbatched else tuple(index.shape), denom)
        coef = -g if wy is None else -(wy * g)
        if valid is not None:  # no gradient through ignored labels, whatever dy holds there
            coef = xp.astype(valid, picked.dtype) * coef if type(coef) is float else xp.where(valid, coef, 0.0)
        onehot = with_class_axis(xp, index) == self._classes(xp, c, index, index.ndim + 1)
        if type(coef) is float or coef.ndim == 0:
            dx = xp.astype(onehot, picked.dtype) * coef
        else:
            dx = xp.where(onehot, with_class_axis(xp, coef), 0.0)
        return (xp.reshape(dx, (-1,)) if unbatched else dx), None

    def extra_repr(self):
        parts = [super().extra_repr()] if self.reduction != "mean" else []
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        return ", ".join(parts)
