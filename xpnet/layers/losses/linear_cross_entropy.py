"""LinearCrossEntropyLoss: a learned Linear to logits, then cross-entropy, as
``torch.nn.LinearCrossEntropyLoss`` (torch >= 2.13)."""

from __future__ import annotations

import math

from ... import backends
from ...validate import flag, integer, positive_int, probability
from .._checks import check_like, require_float, shape_str
from ..base import Layer, trains
from ..linear import Linear
from .base import Loss, host_list
from .cross_entropy import CrossEntropyLoss

_TAG = "LinearCrossEntropyLoss"


class _Logits(CrossEntropyLoss):
    """The cross-entropy on the logits, held (not as a child) by a LinearCrossEntropyLoss: its
    errors name that loss."""

    def _tag(self):
        return _TAG


class LinearCrossEntropyLoss(Loss):
    """Cross-entropy of the logits of a learned linear map: ``z = x W^T (+ b)`` reshaped to
    ``(N, C, d1, ..., dK)``, then :class:`CrossEntropyLoss` of ``z`` against the target.

    ``LinearCrossEntropyLoss(in_features, num_classes, *, out_features=(), bias=False,
    device=None, dtype=None, reduction="mean", weight=None, ignore_index=None,
    label_smoothing=0.0, options=None, backend=None)``, torch's signature; the arrays are made on
    ``backend`` (default: the current one) in ``dtype`` (default float32; a name, or a dtype
    object of any library: torch's ``torch.float64`` is read by its name).

    - ``linear``: a :class:`~xpnet.layers.Linear` ``(in_features -> C * prod(out_features))``,
      state-dict names ``linear.weight (C*d1*...*dK, in_features)`` and ``linear.bias``
      ``(C*d1*...*dK,)`` (flat, as torch stores them), with Linear's initialisation; the class
      weights ``weight (C,)`` are a buffer, as CrossEntropyLoss's.
    - ``ignore_index``: None (torch's default) ignores the label -100 of class-index targets
      and allows probability targets; an int ignores that label, and then probability targets
      raise (as torch).
    - ``label_smoothing``, ``weight`` and ``reduction`` as :class:`CrossEntropyLoss`.
    - ``device``: None or ``"cpu"`` (torch's argument, accepted so that torch's calls work:
      ``backend=`` places the arrays); anything else raises.
    - ``options``: None, or torch's :class:`LinearCrossEntropyOptions`, which select a chunked
      computation that saves memory and gives the same loss (torch itself falls back to the
      whole computation for many of them). xpnet always computes the logits whole: the options
      change no figure, so they are accepted and not kept (the config says None). Anything
      else raises.

    Shapes: input ``x (N, in_features)`` or unbatched ``(in_features,)`` (only with
    ``out_features=()``); target class indices ``(N, d1, ..., dK)`` (``()`` unbatched, int) or
    class probabilities of the logits' shape ``(N, C, d1, ..., dK)`` (``(C,)``; float), told
    apart by that shape, as torch does; output as CrossEntropyLoss's (``(N, d1, ..., dK)`` for
    ``"none"``, else a 0-d array).

    ``backward(dy=1.0, *, input_grad=True, target_grad=False)``: with ``dz`` the cross-entropy's
    gradient of the logits (flattened back to ``(N, C*d1*...*dK)``), ``dW += dz^T x``,
    ``db += sum_n dz``, and returns ``dx = dz W`` (``(dx, dt)`` with ``target_grad=True``;
    ``dt``, of probability targets only, is CrossEntropyLoss's). The Linear's gradients are
    accumulated even with ``input_grad=False`` (what ``fit`` asks). Keeps what the Linear and the
    cross-entropy keep (``x``; the softmax and the targets).

    ``fit`` trains the Linear when the optimizer holds its parameters
    (``SGD(net.parameters() + loss.parameters(), lr)``); a checkpoint stores the loss's
    arguments, not its weights.
    """

    _buffer_names = ("weight",)
    _config_fields = ("in_features", "num_classes", "out_features", "bias", "reduction", "weight", "ignore_index",
                      "label_smoothing", "options")

    def __init__(self, in_features: int, num_classes: int, *, out_features=(), bias: bool = False, device=None,
                 dtype=None, reduction: str = "mean", weight=None, ignore_index=None, label_smoothing: float = 0.0,
                 options=None, backend=None):
        super().__init__(reduction)
        _check_device(device)
        _check_options(options)
        in_features = positive_int(_TAG, "in_features", in_features)
        self.num_classes = positive_int(_TAG, "num_classes", num_classes)
        self.out_features = _out_features(out_features)
        self.ignore_index = None if ignore_index is None else integer(_TAG, "ignore_index", ignore_index)
        self.label_smoothing = probability(_TAG, "label_smoothing", label_smoothing, closed=True)
        self.options = None
        flag(_TAG, "bias", bias)
        self._buffers(backend, dtype, weight=weight)  # sets self.weight
        if self.weight is not None and tuple(self.weight.shape) != (self.num_classes,):
            raise ValueError(f"{_TAG}: weight must have shape ({self.num_classes},), one value per class, "
                             f"got {shape_str(self.weight.shape)}")
        self.linear = Linear(in_features, math.prod(self.out_features, start=self.num_classes), bias=bias,
                             backend=backend, dtype=dtype)
        # the cross-entropy's maths, kept out of named_children (it holds no state of its own:
        # forward hands it this loss's settings and class weights)
        self._ce = _Logits()

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    # -- the tree: the Linear is the only child --------------------------------------------------
    def named_children(self):
        for name, child in super().named_children():
            if name != "_ce":
                yield name, child

    def clear_saved(self):
        self._ce.clear_saved()
        return super().clear_saved()

    def trim_saved(self, keep: int):
        super().trim_saved(keep)
        self._ce.trim_saved(keep)

    # -- forward and backward --------------------------------------------------------------------
    def forward(self, input, target):
        x = input
        be = require_float(_TAG, x, "input")
        check_like(_TAG, x, self.linear.weight.data)  # here, to name this loss rather than its Linear
        lead, logits_shape = self._shapes(x)
        self._check_target_place(target, x, "input")
        probs = self._target_kind(be, x, target, lead, logits_shape)
        if probs and self.ignore_index is not None:
            raise ValueError(
                f"{_TAG} got class probabilities as target (float, of the logits' shape {shape_str(logits_shape)}), "
                f"to which ignore_index={self.ignore_index} does not apply; use ignore_index=None"
            )
        ce = self._ce
        ce.reduction, ce.label_smoothing, ce.weight = self.reduction, self.label_smoothing, self.weight
        ce.ignore_index = -100 if self.ignore_index is None else self.ignore_index  # torch's mapping of None
        lin = self.linear
        kept = lin.pending
        z = lin(x)
        if self.out_features:
            z = be.xp.reshape(z, logits_shape)
        try:
            out = ce(z, target)
        except Exception:  # a bad label (or weight): the Linear's entry has no backward coming
            lin.trim_saved(kept)
            raise
        self.save_for_backward(lead)
        return out

    def backward(self, dy=1.0, *, input_grad: bool = True, target_grad: bool = False):
        (lead,) = self.saved()
        lin, ce = self.linear, self._ce
        need_z = input_grad or trains(lin.weight) or trains(lin.bias)
        if dy is None or not (need_z or target_grad):  # pop both entries, compute nothing
            ce.backward(None)
            lin.backward(None)
            return (None, None) if target_grad else None
        grads = ce.backward(dy, input_grad=need_z, target_grad=target_grad)
        dz, dt = grads if target_grad else (grads, None)
        if dz is not None and self.out_features:
            dz = backends.namespace_of(dz).reshape(dz, lead + (-1,))
        dx = lin.backward(dz, input_grad=input_grad)
        dx = dx if input_grad else None
        return (dx, dt) if target_grad else dx

    # -- checks ----------------------------------------------------------------------------------
    def _shapes(self, x):
        """``(leading axes, logits shape)`` of input ``x``: ``((N,), (N, C, *out_features))`` or ``((), (C,))``."""
        n_in = self.in_features
        if x.ndim not in (1, 2) or x.shape[-1] != n_in:
            raise ValueError(f"{_TAG} expected input of shape (N, {n_in}) or ({n_in},), got {shape_str(x.shape)}")
        if x.ndim == 1 and self.out_features:
            raise ValueError(
                f"{_TAG} with out_features={self.out_features} (a K-dimensional loss) expected batched input "
                f"(N, {n_in}), got unbatched {shape_str(x.shape)}"
            )
        lead = tuple(x.shape[:-1])
        return lead, lead + (self.num_classes,) + self.out_features

    def _target_kind(self, be, x, target, lead, logits_shape):
        """True for class probabilities (float, the logits' shape), False for class indices."""
        shape = tuple(target.shape)
        labels = lead + self.out_features
        expected = (f"integer class labels of shape {shape_str(labels)} or float class probabilities of shape "
                    f"{shape_str(logits_shape)} (the logits') for input {shape_str(x.shape)}")
        if be.is_float(target.dtype) and shape == logits_shape:
            return True
        if target.dtype not in be.int_dtypes:
            raise TypeError(f"{_TAG} expected {expected}, got a {be.dtype_name(target.dtype)} target of shape "
                            f"{shape_str(shape)}; labels must be integers (xp.astype(y, xp.int64))")
        if shape != labels:
            raise ValueError(f"{_TAG} expected {expected}, got integer labels of shape {shape_str(shape)}")
        return False

    # -- architecture and printing ---------------------------------------------------------------
    def config(self) -> dict:
        return {"in_features": self.in_features, "num_classes": self.num_classes,
                "out_features": list(self.out_features), "bias": self.linear.bias is not None,
                "reduction": self.reduction, "weight": host_list(self.weight), "ignore_index": self.ignore_index,
                "label_smoothing": self.label_smoothing, "options": None}

    def extra_repr(self):
        parts = [f"in_features={self.in_features}", f"num_classes={self.num_classes}"]
        if self.out_features:
            parts.append(f"out_features={self.out_features}")
        if self.linear.bias is not None:
            parts.append("bias=True")
        if self.reduction != "mean":
            parts.append(f"reduction={self.reduction!r}")
        if self.ignore_index is not None:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(parts)

    def __repr__(self):
        return Layer.__repr__(self).replace("(\n", f"(\n  {self.extra_repr()}\n", 1)  # the arguments, then the Linear


def _out_features(value):
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                for v in value):
        return tuple(int(v) for v in value)
    raise ValueError(f"{_TAG}: out_features must be a tuple of positive ints (d1, ..., dK), () for none, got {value!r}")


def _check_device(device):
    if device is not None and str(device) != "cpu":
        raise ValueError(
            f"{_TAG}: device must be None or 'cpu' (torch's argument); xpnet places the loss with "
            f"backend= (e.g. backend='torch:cuda' or 'cupy'), got device={device!r}"
        )


# the fields of torch's LinearCrossEntropyOptions (read by name: torch is not imported here)
_OPTION_FIELDS = ("batch_chunk_size", "chunking_method", "acc_policy")


def _check_options(options):
    if options is not None and not all(hasattr(options, f) for f in _OPTION_FIELDS):
        raise ValueError(
            f"{_TAG}: options must be None or torch's LinearCrossEntropyOptions (a chunking strategy that "
            f"saves memory; xpnet computes the whole logits, the same loss), got options={options!r}"
        )

