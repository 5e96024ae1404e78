"""The Loss base class: reductions, the upstream gradient, class-weight buffers and their checks.

A loss is a two-input layer: ``forward(pred, target)`` returns the reduced loss and
``backward(dy=1.0, *, input_grad=True, target_grad=False)`` returns ``d(loss)/d(pred)`` (and,
with ``target_grad=True``, the pair ``(dpred, dtarget)``). A loss of three or more inputs
(:class:`MultiInputLoss`: ``forward(*inputs)``) returns one gradient per input instead.
"""

from __future__ import annotations

import math
import numbers

from ... import backends
from ...validate import choice
from .._checks import place, require_array, require_float, shape_str
from ..base import Layer

REDUCTIONS = ("none", "mean", "sum")


class Loss(Layer):
    """Base class of the losses.

    ``forward(pred, target)`` computes the per-element loss ``l`` and reduces it:
    ``reduction="none"`` returns ``l`` (shape of the per-element / per-sample loss),
    ``"sum"`` returns ``sum(l)`` and ``"mean"`` ``sum(l) / D`` (0-d arrays), where ``D`` is the
    number of elements, or what the loss documents (a sum of class weights).

    ``backward(dy=1.0, *, input_grad=True, target_grad=False)``, after one forward:

    - ``dy``: the gradient flowing into the loss's output: a Python number or a 0-d array
      for ``"mean"``/``"sum"`` (default 1.0: ``loss.backward()``), an array of the loss's
      shape for ``"none"`` (a number too when that shape is ``()``); in pred's dtype.
      ``dy=None`` (nobody used the loss) pops what forward kept and returns None.
    - returns ``dpred``, or ``(dpred, dtarget)`` with ``target_grad=True`` (``dtarget`` is None
      for integer class targets; ``dpred`` None with ``input_grad=False``). With neither
      gradient asked for, it returns None and computes nothing.

    Non-trainable class weights are buffers (``_buffer_names``), so they appear in
    ``state_dict()`` under torch's names and move with ``.to(backend, dtype)``.

    Low precision (mixed precision's recipe): a float16/bfloat16 prediction, and a float
    target of either, are widened to float32 first (:meth:`_lift`), so the loss, its softmax and
    its reductions are computed in float32 and the output is float32 (as under torch's autocast);
    ``dy`` is then a number or a float32 array, and the gradients come back in the dtypes the
    prediction and the target had.
    """

    _config_fields = ("reduction",)

    def __init__(self, reduction: str = "mean"):
        self.reduction = choice(type(self).__name__, "reduction", reduction, REDUCTIONS)

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy=1.0, *, input_grad: bool = True, target_grad: bool = False):
        return self._answer(self.saved(), dy, input_grad, target_grad)

    def _answer(self, saved, dy, input_grad, target_grad):
        """What ``backward`` returns, from the entry it popped."""
        if dy is None or not (input_grad or target_grad):
            return (None, None) if target_grad else None
        dpred, dtarget = self._narrowed(*self._backward(saved, dy, input_grad, target_grad))
        if target_grad:
            return (dpred if input_grad else None), dtarget
        return dpred

    def _backward(self, saved, dy, input_grad, target_grad):
        """``(dpred, dtarget)`` from what forward saved (either may be None)."""
        raise NotImplementedError

    # -- low precision -----------------------------------------------------------------
    def _lift(self, pred, *others):
        """``(pred, *others)`` (``(pred, target)`` for a two-input loss), each widened to float32
        when ``pred`` is float16/bfloat16 (the others only when they are one of those too); the
        next :meth:`save_for_backward` records the dtypes they had, which backward gives the
        gradients back in."""
        self.__dict__["_lifted"] = None  # also forgets a forward that raised after lifting
        try:
            be = backends.backend_of(pred)
        except TypeError:  # not an array: the checks that follow say so
            return (pred, *others)
        if pred.dtype not in be.low_float_dtypes:
            return (pred, *others)
        low = [getattr(o, "dtype", None) in be.low_float_dtypes for o in others]
        self.__dict__["_lifted"] = (pred.dtype, *(o.dtype if w else None for o, w in zip(others, low)))
        return (be.widened(pred), *(be.widened(o) if w else o for o, w in zip(others, low)))

    def save_for_backward(self, *values):
        # each entry ends with what _lift widened in its forward (None: nothing), which saved() strips
        super().save_for_backward(*values, self.__dict__.pop("_lifted", None))

    def saved(self) -> tuple:
        *values, self.__dict__["_restore"] = super().saved()
        return tuple(values)

    def _narrowed(self, dpred, *others):
        """The gradients (of the inputs in order: ``(dpred, dtarget)`` for a two-input loss) in the
        dtypes the popped entry's forward widened from (as they are if none), as a tuple of
        ``max(2, len)`` (a missing ``dtarget`` is None)."""
        grads = (dpred, *others) if others else (dpred, None)
        restore = self.__dict__.get("_restore")
        if restore is None:
            return grads
        return tuple(g if g is None or low is None else backends.backend_of(g).narrowed(g, low)
                     for g, low in zip(grads, restore))

    # -- reductions and the upstream gradient -----------------------------------------
    def _reduce(self, xp, per, denom):
        """The output from the per-element loss ``per``; ``denom``: the divisor of "mean"."""
        if self.reduction == "none":
            return as_array(xp, per)
        total = xp.sum(per)
        if self.reduction == "mean":
            total = _divide(total, denom, xp)
        return xp.asarray(total)  # numpy reductions give scalars: always a 0-d array

    def _seed(self, dy, ref, loss_shape, denom):
        """``dy`` times d(output)/d(per-element loss): a Python float, a 0-d array ("mean"/"sum")
        or an array of ``loss_shape`` ("none"), after checking ``dy`` against ``ref`` (pred)."""
        if isinstance(dy, numbers.Real) and not isinstance(dy, bool):
            if self.reduction == "none" and loss_shape != ():
                raise ValueError(
                    f"{self._tag()}.backward expected dy of shape {shape_str(loss_shape)} ({self._grad_note()}), "
                    f"got the number {dy!r}"
                )
            dy = float(dy)  # a numpy float64 scalar would promote float32 gradients
        else:
            self._check_dy(dy, ref, loss_shape if self.reduction == "none" else ())
        return _divide(dy, denom, backends.namespace_of(ref)) if self.reduction == "mean" else dy

    def _check_dy(self, dy, ref, shape):
        """An array ``dy`` must have the output's place and dtype (``ref``'s) and ``shape``."""
        try:
            backends.backend_of(dy)
        except TypeError:
            raise TypeError(
                f"{self._tag()}.backward expected dy to be a number or an array, got {type(dy).__name__}"
            ) from None
        self.check_grad(dy, ref, tuple(shape))

    def _grad_note(self):
        return f"its output's, reduction={self.reduction!r}"

    # -- input checks -------------------------------------------------------------------
    def _check_pair(self, pred, target):
        """Float prediction; target of the same backend, device, dtype and shape. Returns xp."""
        tag = self._tag()
        be = require_float(tag, pred, "prediction")
        self._check_target_place(target, pred)
        if target.dtype != pred.dtype:
            raise target_dtype_error(tag, target, pred)
        if tuple(target.shape) != tuple(pred.shape):
            raise ValueError(
                f"{tag} expected target of shape {shape_str(pred.shape)} (the prediction's), "
                f"got {shape_str(target.shape)}"
            )
        return be.xp

    def _check_target_place(self, target, pred, what="prediction", name="target"):
        """``target`` (the input called ``name``) must be an array where ``pred`` (``what``) lives."""
        require_array(self._tag(), target, name)
        if type(target) is not type(pred) or target.device != pred.device:
            raise ValueError(
                f"{self._tag()} got its {name} on {place(target)} but the {what} on {place(pred)}; "
                f"move the {name} with backends.get(...).asarray(...)"
            )

    def _check_buffer(self, b, name, ref, what):
        """The buffer ``b`` (a class weight) must live where ``ref`` (pred) lives, in its dtype."""
        if type(b) is not type(ref) or b.device != ref.device:
            raise ValueError(
                f"{self._tag()} has its {name} on {place(b)} but the {what} on {place(ref)}; "
                f"move the loss with .to({backends.backend_of(ref).label!r})"
            )
        if b.dtype != ref.dtype:
            got = backends.backend_of(ref).dtype_name(ref.dtype)
            raise TypeError(
                f"{self._tag()} has a {backends.backend_of(b).dtype_name(b.dtype)} {name} but {got} {what}; "
                f"move the loss with .to(dtype={got!r})"
            )

    # -- buffers ------------------------------------------------------------------------
    def _buffers(self, backend, dtype, **values):
        """Set each of ``values`` (None, a number, a (nested) list/tuple of numbers, a numpy array
        or an array of any backend) as a buffer attribute: a new float array on ``backend``
        (default: the current one) in ``dtype`` (default float32), or None. ``backend`` and
        ``dtype`` are checked even when every value is None."""
        tag = type(self).__name__
        for name, value in values.items():
            _check_numbers(tag, name, value)
        if backend is None and dtype is None and all(v is None for v in values.values()):
            for name in values:
                setattr(self, name, None)
            return
        be = backends.get(backend)
        dt = be.dtype("float32" if dtype is None else dtype)
        if not be.is_float(dt):
            raise ValueError(f"{tag}: dtype must be a floating-point dtype, got {be.dtype_name(dt)!r}")
        for name, value in values.items():
            try:
                setattr(self, name, None if value is None else be.asarray(value, dtype=dt, copy=True))
            except (TypeError, ValueError) as e:
                raise TypeError(
                    f"{tag}: {name} must be None, a list of numbers or an array, got {_short(value)} ({e})"
                ) from None

    def config(self) -> dict:
        """The constructor arguments (``type(loss)(**loss.config())`` rebuilds it), JSON-compatible:
        buffers (class weights) as nested lists of floats, read back to the host."""
        return {f: host_list(getattr(self, f)) if f in self._buffer_names else getattr(self, f)
                for f in self._config_fields}

    def extra_repr(self):
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"

    def _tag(self):
        return type(self).__name__


class MultiInputLoss(Loss):
    """A loss of three or more inputs (``MarginRankingLoss()(x1, x2, y)``, ``CTCLoss()(log_probs,
    targets, input_lengths, target_lengths)``): ``forward(*inputs)`` returns the loss, reduced as
    every loss's, and ``backward(dy=1.0, *, input_grad=True, target_grad=True)`` returns a tuple
    of one gradient per input, in order, as torch's autograd gives them to inputs that require one:

    - every float input gets its gradient, the ground truth included (a ranking's ``y``, a
      regression's target: named in ``_targets``); ``target_grad=False`` leaves those None,
      uncomputed;
    - integer inputs (labels, lengths) and inputs that are no arrays (lengths as tuples of ints, a
      number) get None;
    - ``dy=None``, or ``input_grad=False`` (a loss has no parameters: nothing to compute), pops
      what forward kept and returns None.

    ``dy`` is as for every loss (a number or a 0-d array, or the loss's shape for ``"none"``), and
    low-precision inputs are widened as every loss's (:meth:`Loss._lift` of all the inputs, the
    first deciding). ``fit`` and ``evaluate`` call a loss with ``(output, target)``: a loss of
    more inputs is for a training step written out (``l = loss(a, p, n); dx = loss.backward()``).
    A subclass names its inputs in ``_inputs`` and implements ``_backward(saved, dy, wanted)``.
    """

    #: the names of the inputs, in order (what errors call them; the gradient tuple's length)
    _inputs: tuple = ()
    #: those of ``_inputs`` that are ground truth (``target_grad=False`` skips their gradients)
    _targets: tuple = ()

    def backward(self, dy=1.0, *, input_grad: bool = True, target_grad: bool = True):
        saved = self.saved()
        if dy is None or not input_grad:
            return None
        wanted = tuple(target_grad or name not in self._targets for name in self._inputs)
        grads = self._narrowed(*self._backward(saved, dy, wanted))
        return tuple(g if w else None for g, w in zip(grads, wanted))

    def _backward(self, saved, dy, wanted):
        """A gradient per input from what forward saved: None where ``wanted`` says no (computing
        nothing for it) and for inputs that are not float arrays."""
        raise NotImplementedError

    def _check_input(self, x, ref, name, ref_name, *, integer=False):
        """``x`` (the input called ``name``) must be an array where ``ref`` (``ref_name``) lives, of
        ``ref``'s float dtype, or with ``integer=True`` of an integer dtype. Returns whether ``x``
        is a float array (one that gets a gradient)."""
        self._check_target_place(x, ref, ref_name, name)
        if x.dtype == ref.dtype:
            return True
        be = backends.backend_of(x)
        if integer and x.dtype in be.int_dtypes:
            return False
        want, got = be.dtype_name(ref.dtype), be.dtype_name(x.dtype)
        kind = f"a {want} {name} to match the {ref_name}" + (" (or integers)" if integer else "")
        raise TypeError(f"{self._tag()} expected {kind}, got {got}; convert it with xp.astype({name}, xp.{want})")


def as_array(xp, x):
    """``x``, or a 0-d array of it where numpy turned a 0-d result into a scalar."""
    return xp.asarray(x) if x.ndim == 0 else x


def host_list(a):
    """A (nested) list of Python floats (a float for a 0-d array), or None."""
    return None if a is None else backends.to_numpy(a).astype("float64").tolist()


def target_dtype_error(tag, target, pred):
    be = backends.backend_of(target)
    want = backends.backend_of(pred).dtype_name(pred.dtype)
    got = be.dtype_name(target.dtype)
    if be.is_float(target.dtype):
        return TypeError(
            f"{tag} expected a {want} target to match the prediction, got {got}; "
            f"convert it with xp.astype(target, xp.{want})"
        )
    return TypeError(
        f"{tag} expected a floating-point ({want}) target, got {got}; convert it with xp.astype(target, xp.{want})"
    )


def _divide(total, denom, xp=None):
    # a "mean" over nothing is NaN, as in torch; without numpy's divide-by-zero warning
    if type(denom) in (int, float):
        return total * math.nan if denom == 0 else total / denom
    denom = xp.asarray(denom)  # numpy's reductions give scalars
    empty = denom == 0
    return xp.where(empty, math.nan, total / xp.where(empty, 1.0, denom))


def _check_numbers(tag, name, value):
    """``value`` is None, a real number, a (nested) list/tuple of them, or an array of numbers."""
    if value is None:
        return
    bad = "must be None, a list of numbers or an array"
    if isinstance(value, (bool, str, bytes)) or not (
        isinstance(value, (numbers.Real, list, tuple)) or hasattr(value, "shape")
    ):
        raise TypeError(f"{tag}: {name} {bad}, got {_short(value)}")
    if isinstance(value, (list, tuple)) and not _all_numbers(value):
        raise TypeError(f"{tag}: {name} {bad}, got {_short(value)}")
    if hasattr(value, "shape"):
        src = require_array(tag, value, name)
        if not (src.is_float(value.dtype) or value.dtype in src.int_dtypes):
            raise TypeError(f"{tag}: {name} must hold numbers, got an array of {src.dtype_name(value.dtype)}")


def _all_numbers(v):
    if isinstance(v, (list, tuple)):
        return all(_all_numbers(e) for e in v)
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _short(obj):
    s = repr(obj)
    return s if len(s) <= 60 else s[:57] + "..."
