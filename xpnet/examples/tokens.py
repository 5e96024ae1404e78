"""Next-token training: the loss over ``(N, T, V)`` logits and the accuracies that
:func:`xpnet.fit` and :func:`xpnet.evaluate` report for sequence models.

A language model (:class:`~xpnet.examples.gpt.GPT`, :class:`~xpnet.examples.seq_lstm.SeqLSTM`)
gives logits ``(N, T, V)``: position ``t`` scores the token that follows the first ``t + 1``
tokens. The targets ``(N, T)`` hold the next tokens, ``-1`` where nothing is to be predicted
(the prompt of a :mod:`~xpnet.data.sequences` task).
"""

from __future__ import annotations

from .. import backends
from ..layers._checks import require_array, require_float, shape_str
from ..layers.losses import CrossEntropyLoss, Loss
from ..metrics import Metric
from ..nets.spec import register

__all__ = ["SequenceAccuracy", "TokenCrossEntropyLoss"]


@register
class TokenCrossEntropyLoss(Loss):
    """``CrossEntropyLoss`` over the last axis: logits ``z (N, T, V)``, targets ``y (N, T)`` of
    token ids in ``[0, V)`` or ``ignore_index`` (default -1: no loss, no gradient there).

    ``l[n, t] = logsumexp(z[n, t, :]) - z[n, t, y[n, t]]`` (with ``label_smoothing`` as torch);
    ``"mean"`` averages over the positions not ignored, ``"none"`` returns ``l (N, T)`` (0 where
    ignored). Equals ``torch.nn.functional.cross_entropy(z.reshape(-1, V), y.reshape(-1),
    ignore_index=-1)``. The logits are viewed as ``(N*T, V)`` rows, so the class axis stays the
    contiguous last one (no transpose to torch's ``(N, V, T)``).
    """

    _config_fields = ("ignore_index", "reduction", "label_smoothing")

    def __init__(self, ignore_index: int = -1, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.ce = CrossEntropyLoss(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
        self.ignore_index, self.label_smoothing = self.ce.ignore_index, self.ce.label_smoothing

    def forward(self, logits, target):
        tag = self._tag()
        be = require_float(tag, logits, "logits")
        require_array(tag, target, "target")
        if logits.ndim != 3 or target.ndim != 2 or tuple(target.shape) != tuple(logits.shape[:2]):
            raise ValueError(f"{tag} expected logits (N, T, V) and targets (N, T), got {shape_str(logits.shape)} "
                             f"and {shape_str(target.shape)}")
        if target.dtype not in be.int_dtypes:
            raise TypeError(f"{tag} expected integer token ids as target, got {be.dtype_name(target.dtype)}")
        N, T, V = (int(s) for s in logits.shape)
        xp = be.xp
        out = self.ce(xp.reshape(logits, (N * T, V)), xp.reshape(target, (N * T,)))
        self.save_for_backward((N, T, V))
        return xp.reshape(out, (N, T)) if self.reduction == "none" else out

    def backward(self, dy=1.0, *, input_grad: bool = True, target_grad: bool = False):
        ((N, T, V),) = self.saved()
        if self.reduction == "none" and dy is not None and hasattr(dy, "shape") and dy.ndim == 2:
            dy = backends.namespace_of(dy).reshape(dy, (N * T,))
        d = self.ce.backward(dy, input_grad=input_grad, target_grad=target_grad)
        dz = d[0] if target_grad else d
        if dz is not None:
            dz = backends.namespace_of(dz).reshape(dz, (N, T, V))
        return (dz, None) if target_grad else dz

    def extra_repr(self):
        return f"ignore_index={self.ignore_index}" + (f", reduction={self.reduction!r}" if self.reduction != "mean"
                                                      else "")


class SequenceAccuracy(Metric):
    """Accuracy of the next-token predictions (argmax over the last axis of ``(N, T, V)``
    logits) against targets ``(N, T)``, positions whose target is ``ignore_index`` left out.

    ``exact=True``: the fraction of sequences whose every predicted token is right (a
    :mod:`~xpnet.data.sequences` problem solved; with teacher forcing, which here equals what
    greedy decoding from the prompt gives: if every answer token is the argmax given the right
    tokens before it, greedy decoding reproduces the answer, and the first wrong one makes both
    fail). ``exact=False``: the fraction of tokens right (a character model's). Result key
    ``accuracy``, so that ``fit`` reports it as ``accuracy`` and ``val_accuracy``."""

    name = "accuracy"

    def __init__(self, exact=True, ignore_index=-1):
        self.exact, self.ignore_index = bool(exact), int(ignore_index)
        super().__init__()

    def reset(self):
        super().reset()
        self.hits = self.count = None

    def update(self, out, target):
        fn = f"{type(self).__name__}.update"
        be = require_float(fn, out, "logits")
        if out.ndim != 3 or tuple(target.shape) != tuple(out.shape[:2]):
            raise ValueError(f"{fn}: expected logits (N, T, V) and targets (N, T), got {shape_str(out.shape)} and "
                             f"{shape_str(getattr(target, 'shape', ()))}")
        xp = be.xp
        i64 = xp.int64
        scored = target != self.ignore_index
        right = xp.argmax(out, axis=-1) == target
        if self.exact:
            hit = xp.sum(xp.astype(xp.all(right | ~scored, axis=1), i64))
            count = int(out.shape[0])
        else:
            hit = xp.sum(xp.astype(right & scored, i64))
            count = xp.sum(xp.astype(scored, i64))
        self.hits = hit if self.hits is None else self.hits + hit
        self.count = count if self.count is None else self.count + count
        self.n += int(out.shape[0])

    def result(self):
        self._seen()
        count = int(self.count)
        return {self.name: int(self.hits) / count if count else float("nan")}

    def __repr__(self):
        return f"SequenceAccuracy(exact={self.exact})"
