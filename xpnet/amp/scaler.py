"""GradScaler: dynamic loss scaling for float16 training, with ``torch.amp.GradScaler``'s rules.

A float16 gradient smaller than about 6e-8 is flushed to zero. Scaling the loss by ``S`` (the
loss's ``dy = S``) scales every gradient by ``S`` and lifts the small ones out of that range;
the optimizer then steps on the gradients divided by ``S``. When a scaled gradient overflows
(inf or NaN), the step is skipped and ``S`` shrinks; after ``growth_interval`` clean steps in a
row it grows::

    overflow:  S <- S * backoff_factor,  tracker <- 0,  the step skipped
    clean:     tracker <- tracker + 1;  when tracker == growth_interval:
               S <- S * growth_factor (unless that is inf),  tracker <- 0

``S`` is a float32 value, as in torch (each update is rounded to float32).

**One host read per step.** :meth:`GradScaler.unscale_` folds the finiteness of every
gradient into one device-side flag per backend (one ``all(isfinite(g))`` per gradient,
combined on the device, never read per parameter); :meth:`GradScaler.step` reads that flag
once to decide whether to call ``optimizer.step()``, as torch's does. Skipping without any read
would mean selecting every weight and every optimizer state between old and new on the device.
"""

from __future__ import annotations

import math
import numbers
import struct

from .. import backends

_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"
_MAX_COUNT = 2**62
STATE_KEYS = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")


def _float32(x: float) -> float:
    """``x`` rounded to float32 (inf beyond its range), as torch keeps the scale."""
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def _real(v):
    # an int beyond float's range would raise OverflowError in the comparisons with floats
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and (
        not isinstance(v, numbers.Integral) or abs(v) <= 2**1023)


def _count(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_state(sd):
    """The first problem with a GradScaler state dict ``sd`` (untrusted: a checkpoint's), as
    ``(key, what was expected)`` (``key`` None: the dict as a whole), or None when it is one.

    A state is ``{}`` (a disabled scaler's) or exactly :data:`STATE_KEYS` with ``scale`` finite
    > 0, ``growth_factor`` finite > 1, ``backoff_factor`` in (0, 1), ``growth_interval`` an int
    >= 1 and ``_growth_tracker`` an int in [0, growth_interval).
    """
    if not isinstance(sd, dict):
        return None, "an object (a GradScaler state dict)"
    if not sd:
        return None
    if set(sd) != set(STATE_KEYS):
        return None, f"the keys {', '.join(STATE_KEYS)} (or none, for a disabled scaler)"
    rules = (
        ("scale", lambda v: _real(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
        ("growth_factor", lambda v: _real(v) and math.isfinite(v) and v > 1, "a finite number > 1"),
        ("backoff_factor", lambda v: _real(v) and 0 < v < 1, "a number in (0, 1)"),
        ("growth_interval", lambda v: _count(v) and 1 <= v <= _MAX_COUNT, "an int >= 1"),
        ("_growth_tracker", lambda v: _count(v) and 0 <= v < sd["growth_interval"],
         f"an int in [0, growth_interval={sd['growth_interval']!r})"),
    )
    for key, ok, what in rules:
        if not ok(sd[key]):
            return key, what
    return None


class GradScaler:
    """Loss scaling with ``torch.amp.GradScaler``'s arguments, rules and state dict.

    ``GradScaler(init_scale=2.**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
    enabled=True)``. A step (with an xpnet optimizer, after ``optimizer.zero_grad()``)::

        net.backward(loss.backward(scaler.scale()), input_grad=False)  # the loss's dy is S
        scaler.unscale_(optimizer)      # optional: before clipping the true gradients
        scaler.step(optimizer)          # unscales if not done; steps unless a gradient overflowed
        scaler.update()                 # S shrinks after an overflow, grows after growth_interval clean steps

    The optimizer's parameters must hold float32 (or float64) gradients: the master weights
    (:class:`~xpnet.amp.MixedPrecision` casts the float16 gradients of its low-precision copies
    up before this sees them); float16 gradients are refused, as torch refuses them. Disabled
    (``enabled=False``), every method is a pass-through: ``scale(v)`` is ``v``, ``step``
    steps. ``skipped``: how many steps were skipped for an overflow (not part of the state).
    """

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        if not isinstance(enabled, bool):
            raise TypeError(f"GradScaler: enabled must be True or False, got {enabled!r}")
        self._enabled = enabled
        self.skipped = 0
        self._per_optimizer = {}  # id(optimizer) -> {"stage": ..., "found_inf": {backend: flag}, "read": ...}
        for key, value in (("scale", init_scale), ("growth_factor", growth_factor),
                           ("backoff_factor", backoff_factor), ("growth_interval", growth_interval)):
            self._check(key, value, "GradScaler")
        self._scale = _float32(float(init_scale))
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._growth_tracker = 0

    @staticmethod
    def _check(key, value, who):
        probe = {"scale": 1.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 1,
                 "_growth_tracker": 0, key: value}
        bad = check_state(probe)
        if bad is not None:
            name = "init_scale" if key == "scale" else key
            raise ValueError(f"{who}: {name} must be {bad[1]}, got {value!r}")

    # -- scaling ------------------------------------------------------------------------
    def scale(self, value=1.0):
        """``value * S``: by default the gradient seed of the scaled loss (``loss.backward(scaler.scale())``);
        a number or an array (a loss's ``dy`` for ``reduction="none"``), as torch's ``scale(outputs)``."""
        if not self._enabled:
            return value
        if _real(value):
            return float(value) * self._scale
        try:
            backends.backend_of(value)
        except TypeError:
            raise TypeError(f"GradScaler.scale expected a number or an array, got {type(value).__name__}") from None
        return value * self._scale

    def unscale_(self, optimizer):
        """Divide every gradient of ``optimizer``'s parameters by ``S`` (rebinding ``p.grad``) and
        fold their finiteness into one device-side flag; at most once per step (before
        :meth:`step`), e.g. to clip the true gradients (``clip_grad_norm`` after this)."""
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] == _UNSCALED:
            raise RuntimeError("GradScaler.unscale_ has already been called on this optimizer since the last update()")
        if state["stage"] == _STEPPED:
            raise RuntimeError("GradScaler.unscale_ is being called after step(); call update() first")
        inv = _float32(1.0 / self._scale)  # torch: the float64 reciprocal, as float32
        flags = state["found_inf"]
        for i, p in enumerate(_params(optimizer)):
            g = p.grad
            if g is None:
                continue
            be = backends.backend_of(g)
            if g.dtype in be.low_float_dtypes:
                raise ValueError(
                    f"GradScaler.unscale_: parameter {i} of the optimizer has a {be.dtype_name(g.dtype)} gradient; "
                    "keep float32 master weights (xpnet.MixedPrecision does) and step those, as torch requires"
                )
            ok = be.xp.all(be.xp.isfinite(g))
            flags[be] = ok if be not in flags else flags[be] & ok
            p.grad = g * inv
        state["stage"] = _UNSCALED

    def step(self, optimizer):
        """Unscale (unless :meth:`unscale_` did), then ``optimizer.step()`` unless a gradient was
        inf or NaN (one host read: the folded flag). Returns what ``optimizer.step()`` returned,
        or None when the step was skipped."""
        if not self._enabled:
            return optimizer.step()
        state = self._state(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("GradScaler.step has already been called since the last update()")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        state["stage"] = _STEPPED
        if not state["found_inf"]:
            raise RuntimeError("GradScaler.step: none of the optimizer's parameters has a gradient to check "
                               "for inf (was backward run?)")
        if self._found_inf(state):
            self.skipped += 1
            return None
        return optimizer.step()

    def update(self, new_scale=None):
        """Update ``S`` after this step's :meth:`step` (or :meth:`unscale_`) calls: shrink it after
        an overflow, grow it after ``growth_interval`` clean steps in a row. ``new_scale`` (a
        number > 0) sets it instead, as in torch."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._check("scale", new_scale, "GradScaler.update")
            self._scale = _float32(float(new_scale))
        else:
            states = [s for s in self._per_optimizer.values() if s["stage"] != _READY]
            if not states:
                raise RuntimeError("GradScaler.update: no inf checks were recorded before update(); "
                                   "call step(optimizer) (or unscale_) first")
            found_inf = any(self._found_inf(s) for s in states)
            if found_inf:  # torch's _amp_update_scale_
                self._scale = _float32(self._scale * self._backoff_factor)
                self._growth_tracker = 0
            else:
                successful = self._growth_tracker + 1
                if successful == self._growth_interval:
                    grown = _float32(self._scale * self._growth_factor)
                    if math.isfinite(grown):
                        self._scale = grown
                    self._growth_tracker = 0
                else:
                    self._growth_tracker = successful
        self._per_optimizer = {}

    def _state(self, optimizer):
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": {}, "read": None})

    @staticmethod
    def _found_inf(state):
        """Whether some gradient was not finite: the step's one host read (cached)."""
        if state["read"] is None:
            state["read"] = not all(bool(flag) for flag in state["found_inf"].values())
        return state["read"]

    # -- accessors, as torch's --------------------------------------------------------------
    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        """``S`` (1.0 when disabled)."""
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor):
        self._set("growth_factor", new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor):
        self._set("backoff_factor", new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval):
        self._set("growth_interval", new_interval)

    def _set(self, key, value):
        self._check(key, value, f"GradScaler.set_{key}")
        setattr(self, "_" + key, int(value) if key == "growth_interval" else float(value))

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """torch's keys: ``scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval``,
        ``_growth_tracker`` (Python numbers; ``{}`` when disabled)."""
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict):
        """Restore a :meth:`state_dict` (validated first; nothing changes when it is refused). A
        disabled scaler ignores it; an enabled one refuses a disabled one's ``{}``, as torch does."""
        if not self._enabled:
            return
        bad = check_state(state_dict)
        if bad is None and not state_dict:
            bad = None, "a state saved from an enabled GradScaler (this one is empty: saved from a disabled one?)"
        if bad is not None:
            key, what = bad
            field = "the state dict" if key is None else repr(key)
            got = state_dict.get(key) if key is not None else (
                sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__)
            raise ValueError(f"GradScaler.load_state_dict: {field} must be {what}, got {got!r}")
        self._scale = _float32(float(state_dict["scale"]))
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])

    def __repr__(self):
        if not self._enabled:
            return "GradScaler(enabled=False)"
        return (f"GradScaler(scale={self._scale}, growth_factor={self._growth_factor}, "
                f"backoff_factor={self._backoff_factor}, growth_interval={self._growth_interval})")


def _params(optimizer):
    params = getattr(optimizer, "params", None)
    if params is None:
        raise TypeError(f"GradScaler expected an xpnet optimizer (with .params), got {type(optimizer).__name__}")
    return params
