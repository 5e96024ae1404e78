"""Learning-rate schedules with torch.optim.lr_scheduler's semantics, over parameter groups.

As in PyTorch, constructing a schedule performs its initial step (``last_epoch = 0``), and the
user calls :meth:`Schedule.step` once per epoch or per batch afterwards. Each parameter group's
lr follows the schedule from its own base lr (``base_lrs``: the groups' lrs at construction).
Where torch computes the next rate from the current one (StepLR, CosineAnnealingLR, LinearLR)
the same recursive ("chainable") formula is used, and where torch is closed-form (OneCycleLR)
so is this, so the sequences agree with torch's to rounding. ``get_last_lr()`` returns a float
when the optimizer has one group, and a list of floats (one per group, as torch) otherwise.
"""

from __future__ import annotations

import math

from ..validate import choice, integer, real
from .callbacks import Callback, _mode, _monitored
from .optim import Optimizer


class Schedule:
    """Base class: holds the optimizer, ``base_lrs`` (each group's lr at construction) and
    ``last_epoch``. A subclass's ``_get_lrs()`` gives the next lr of every group."""

    def __init__(self, optimizer):
        self._check_optimizer(optimizer)
        self.optimizer = optimizer
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = -1
        self._initial = True
        self.step()
        self._initial = False

    def _get_lrs(self) -> list:
        raise NotImplementedError

    def _check_optimizer(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} expected an xpnet Optimizer, got {type(optimizer).__name__}")

    def _groups(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(f"{type(self).__name__}: the optimizer has {len(groups)} parameter groups, "
                             f"this schedule was made for {len(self.base_lrs)}")
        return groups

    def step(self):
        """Advance one step and set every group's lr."""
        self.last_epoch += 1
        groups = self._groups()
        lrs = [float(lr) for lr in self._get_lrs()]
        for g, lr in zip(groups, lrs):
            g["lr"] = lr
        self._last_lr = lrs

    def get_last_lr(self):
        """The lr this schedule last set: a float for an optimizer with one parameter group, a
        list of floats (one per group, in group order) for several."""
        lrs = self._last_lr
        return lrs[0] if len(lrs) == 1 else list(lrs)

    def restore_lr(self):
        """Set every group's lr to the one this schedule last set (after :meth:`load_state_dict`,
        for an optimizer whose own state was not restored with it)."""
        for g, lr in zip(self._groups(), self._last_lr):
            g["lr"] = lr

    def state_dict(self):
        """Everything but the optimizer (Python numbers, strings and lists only)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, sd):
        """Restore what :meth:`state_dict` gave (also the one-group form of xpnet before
        parameter groups, with ``base_lr`` and a float ``_last_lr``)."""
        sd = dict(sd)
        n = len(self.optimizer.param_groups)
        if "base_lr" in sd and "base_lrs" not in sd:
            sd["base_lrs"] = [float(sd.pop("base_lr"))] * n
        if "_last_lr" in sd and not isinstance(sd["_last_lr"], (list, tuple)):
            sd["_last_lr"] = [float(sd["_last_lr"])] * n
        self.__dict__.update(sd)

    def __repr__(self):
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self.get_last_lr()})"


class StepLR(Schedule):
    """``lr = base_lr * gamma ** (epoch // step_size)``, as ``torch.optim.lr_scheduler.StepLR``."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = integer("StepLR", "step_size", step_size, minimum=1)
        self.gamma = real("StepLR", "gamma", gamma, lo=0.0)
        super().__init__(optimizer)

    def _get_lrs(self):
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lrs
        return [lr * self.gamma for lr in lrs]


class CosineAnnealingLR(Schedule):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``, computed with
    torch's recursive form (continuing periodically past ``T_max``), as
    ``torch.optim.lr_scheduler.CosineAnnealingLR``."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = integer("CosineAnnealingLR", "T_max", T_max, minimum=1)
        self.eta_min = real("CosineAnnealingLR", "eta_min", eta_min, lo=0.0)
        super().__init__(optimizer)

    def _get_lrs(self):
        e, T, lo = self.last_epoch, self.T_max, self.eta_min
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        if self._initial:
            return lrs
        if (e - 1 - T) % (2 * T) == 0:
            return [lr + (base - lo) * (1 - math.cos(math.pi / T)) / 2 for lr, base in zip(lrs, self.base_lrs)]
        f = (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T))
        return [f * (lr - lo) + lo for lr in lrs]


class LinearWarmup(Schedule):
    """Linear warmup from ``start_factor * lr`` to ``lr`` over ``warmup_steps`` steps, then
    constant: torch's ``LinearLR(start_factor, end_factor=1.0, total_iters=warmup_steps)``."""

    def __init__(self, optimizer, warmup_steps, start_factor=1.0 / 3):
        self.warmup_steps = integer("LinearWarmup", "warmup_steps", warmup_steps, minimum=1)
        self.start_factor = real("LinearWarmup", "start_factor", start_factor, lo=0.0, hi=1.0, lo_open=True)
        super().__init__(optimizer)

    def _get_lrs(self):
        s = self.start_factor
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        if self.last_epoch == 0:
            return [lr * s for lr in lrs]
        if self._initial or self.last_epoch > self.warmup_steps:
            return lrs
        f = 1.0 + (1.0 - s) / (self.warmup_steps * s + (self.last_epoch - 1) * (1.0 - s))
        return [lr * f for lr in lrs]


class OneCycleLR(Schedule):
    """The 1cycle policy, as ``torch.optim.lr_scheduler.OneCycleLR`` given ``total_steps``.

    Each group's lr rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of the steps, then anneals to ``max_lr / div_factor / final_div_factor``
    (with ``three_phase``: back to the initial lr, then down to the minimum). ``max_lr``: one
    number for every group, or a list of one per group. The groups' lrs are overwritten at
    construction. Only the lr is scheduled: torch's momentum cycling (``cycle_momentum``) is
    omitted. Stepping more than ``total_steps`` times raises ValueError, as in torch.
    """

    def __init__(self, optimizer, max_lr, total_steps, pct_start=0.3, anneal_strategy="cos",
                 div_factor=25.0, final_div_factor=1e4, three_phase=False):
        n = "OneCycleLR"
        self._check_optimizer(optimizer)
        groups = optimizer.param_groups
        if isinstance(max_lr, (list, tuple)):
            if len(max_lr) != len(groups):
                raise ValueError(f"{n}: max_lr must be one number or a list of one per parameter group "
                                 f"({len(groups)}), got {max_lr!r}")
            self.max_lrs = [real(n, f"max_lr[{i}]", v, lo=0.0, lo_open=True) for i, v in enumerate(max_lr)]
            self.max_lr = list(self.max_lrs)
        else:
            self.max_lr = real(n, "max_lr", max_lr, lo=0.0, lo_open=True)
            self.max_lrs = [self.max_lr] * len(groups)
        self.total_steps = integer(n, "total_steps", total_steps, minimum=1)
        self.pct_start = real(n, "pct_start", pct_start, lo=0.0, hi=1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{n}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.div_factor = real(n, "div_factor", div_factor, lo=0.0, lo_open=True)
        self.final_div_factor = real(n, "final_div_factor", final_div_factor, lo=0.0, lo_open=True)
        self.three_phase = bool(three_phase)
        self.initial_lrs = [m / self.div_factor for m in self.max_lrs]
        self.min_lrs = [lr / self.final_div_factor for lr in self.initial_lrs]
        p, T = self.pct_start, self.total_steps
        # (last step of the phase, where it starts, where it ends): names of per-group lists
        if self.three_phase:
            self.phases = [
                (float(p * T) - 1, "initial_lrs", "max_lrs"),
                (float(2 * p * T) - 2, "max_lrs", "initial_lrs"),
                (T - 1, "initial_lrs", "min_lrs"),
            ]
        else:
            self.phases = [(float(p * T) - 1, "initial_lrs", "max_lrs"), (T - 1, "max_lrs", "min_lrs")]
        for g, lr in zip(groups, self.initial_lrs):
            g["lr"] = lr
        super().__init__(optimizer)

    def _get_lrs(self):
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {t} times; total_steps is {self.total_steps}")
        start = 0.0
        for i, (end, lo_name, hi_name) in enumerate(self.phases):
            if t <= end or i == len(self.phases) - 1:
                pct = (t - start) / (end - start)
                pairs = zip(getattr(self, lo_name), getattr(self, hi_name))
                if self.anneal_strategy == "cos":
                    c = math.cos(math.pi * pct) + 1
                    return [b + (a - b) / 2.0 * c for a, b in pairs]
                return [(b - a) * pct + a for a, b in pairs]
            start = end

    def load_state_dict(self, sd):
        """As :meth:`Schedule.load_state_dict`; the one-group form's ``initial_lr``/``max_lr``/
        ``min_lr`` numbers and phase names are read too."""
        sd = dict(sd)
        n = len(self.optimizer.param_groups)
        for name in ("initial_lr", "min_lr"):
            if name in sd and f"{name}s" not in sd:
                sd[f"{name}s"] = [float(sd.pop(name))] * n
        if "max_lrs" not in sd and "max_lr" in sd:
            sd["max_lrs"] = [float(sd["max_lr"])] * n
        if "phases" in sd:
            sd["phases"] = [(end, lo if lo.endswith("s") else lo + "s", hi if hi.endswith("s") else hi + "s")
                            for end, lo, hi in sd["phases"]]
        super().load_state_dict(sd)


class ReduceLROnPlateau(Schedule, Callback):
    """Cut every group's lr by ``factor`` when a figure stops improving, as
    ``torch.optim.lr_scheduler.ReduceLROnPlateau``; the same object is a callback for fit.

    Two ways to use it:

    - by hand, as in torch: ``sched.step(val_loss)`` once per epoch;
    - in :func:`~xpnet.fit`, as Keras' callback: ``callbacks=[xn.ReduceLROnPlateau(opt,
      monitor="val_loss")]`` steps it after every epoch with that epoch's ``logs[monitor]``
      (``val_*`` figures need ``fit(..., val=...)``), before early stopping and checkpoints
      look at the epoch; its state goes into checkpoints and a resumed fit continues it.

    ``step(metric)`` counts an improvement when ``metric < best * (1 - threshold)``
    (``mode="min"``, ``threshold_mode="rel"``), ``metric < best - threshold`` ("abs"),
    ``metric > best * (1 + threshold)`` or ``metric > best + threshold`` (``mode="max"``).
    After more than ``patience`` epochs in a row without one, each group's lr becomes
    ``max(lr * factor, min_lr)`` (kept when that would change it by ``eps`` or less), and the
    next ``cooldown`` epochs count no bad epochs. ``min_lr``: one number, or one per group.
    ``mode="auto"`` (not in torch): "min" when ``monitor`` names a loss, else "max". Unlike the
    other schedules it takes no step at construction (as in torch).
    """

    order = 0
    _STATE = ("monitor", "mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lrs", "eps",
              "base_lrs", "last_epoch", "best", "num_bad_epochs", "cooldown_counter", "_last_lr")

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8, *, monitor="val_loss"):
        n = "ReduceLROnPlateau"
        self._check_optimizer(optimizer)
        if not isinstance(monitor, str):
            raise TypeError(f"{n}: monitor must be the name of a figure (a str), got {type(monitor).__name__}")
        self.optimizer, self.monitor = optimizer, monitor
        self.mode = _mode(n, monitor, mode)
        self.factor = real(n, "factor", factor, lo=0.0, hi=1.0, hi_open=True)
        self.patience = integer(n, "patience", patience, minimum=0)
        self.threshold = real(n, "threshold", threshold, lo=0.0)
        self.threshold_mode = choice(n, "threshold_mode", threshold_mode, ("rel", "abs"))
        self.cooldown = integer(n, "cooldown", cooldown, minimum=0)
        self.eps = real(n, "eps", eps, lo=0.0)
        groups = optimizer.param_groups
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(groups):
                raise ValueError(f"{n}: min_lr must be one number or a list of one per parameter group "
                                 f"({len(groups)}), got {min_lr!r}")
            self.min_lrs = [real(n, f"min_lr[{i}]", v, lo=0.0) for i, v in enumerate(min_lr)]
        else:
            self.min_lrs = [real(n, "min_lr", min_lr, lo=0.0)] * len(groups)
        self.base_lrs = [float(g["lr"]) for g in groups]
        self.last_epoch = 0
        self._last_lr = list(self.base_lrs)
        self.best, self.num_bad_epochs, self.cooldown_counter = self._worst(), 0, 0

    def _worst(self):
        return math.inf if self.mode == "min" else -math.inf

    def _improves(self, v):
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return v < (self.best * (1.0 - self.threshold) if rel else self.best - self.threshold)
        return v > (self.best * (1.0 + self.threshold) if rel else self.best + self.threshold)

    def step(self, metric):
        """One epoch whose monitored figure is ``metric`` (a number, or a 0-d array: one read)."""
        if isinstance(metric, (bool, str)):
            raise TypeError(f"ReduceLROnPlateau.step: metric must be a number, got {type(metric).__name__}")
        try:
            current = float(metric)
        except (TypeError, ValueError):
            raise TypeError(f"ReduceLROnPlateau.step: metric must be a number, got {type(metric).__name__}") from None
        groups = self._groups()
        self.last_epoch += 1
        if self._improves(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            for g, lo in zip(groups, self.min_lrs):
                old = float(g["lr"])
                new = max(old * self.factor, lo)
                if old - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [float(g["lr"]) for g in groups]

    def on_epoch_end(self, state, logs):
        self.step(_monitored("ReduceLROnPlateau", self.monitor, logs))

    def state_dict(self):
        """Everything but the optimizer, as JSON data (an infinite ``best``, none yet, as null)."""
        sd = {k: list(v) if isinstance(v, list) else v for k, v in ((k, getattr(self, k)) for k in self._STATE)}
        sd["best"] = None if math.isinf(self.best) else self.best
        return sd

    def load_state_dict(self, sd):
        """Restore what :meth:`state_dict` gave, then set each group's lr to the one this schedule
        last set (a no-op where the optimizer's own state was restored too)."""
        n = "ReduceLROnPlateau.load_state_dict"
        missing = [k for k in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch") if k not in sd]
        if missing:
            raise ValueError(f"{n}: the state lacks {', '.join(map(repr, missing))}")
        for k in self._STATE:
            if k in sd:
                setattr(self, k, list(sd[k]) if isinstance(sd[k], list) else sd[k])
        choice(n, "mode", self.mode, ("min", "max"))
        choice(n, "threshold_mode", self.threshold_mode, ("rel", "abs"))
        if self.best is None:
            self.best = self._worst()
        self.restore_lr()
