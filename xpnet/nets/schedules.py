"""Learning-rate schedules with torch.optim.lr_scheduler's semantics; each sets ``opt.lr``.

As in PyTorch, constructing a schedule performs its initial step (``last_epoch = 0``), and the
user calls :meth:`Schedule.step` once per epoch or per batch afterwards. Where torch computes the
next rate from the current one (StepLR, CosineAnnealingLR, LinearLR) the same recursive
("chainable") formula is used, and where torch is closed-form (OneCycleLR) so is this, so the
sequences agree with torch's to rounding. ``get_last_lr()`` returns a float (an xpnet optimizer
has one learning rate), not torch's one-element list.
"""

from __future__ import annotations

import math
import numbers

from .optim import Optimizer


def _int(owner, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _real(owner, name, value, lo=None, hi=None, lo_open=False, hi_open=False):
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value)
    if not bad and lo is not None:
        bad = value <= lo if lo_open else value < lo
    if not bad and hi is not None:
        bad = value >= hi if hi_open else value > hi
    if bad:
        rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{')' if hi_open else ']'}"
        raise ValueError(f"{owner}: {name} must be a real number in {rng}, got {value!r}")
    return float(value)


class Schedule:
    """Base class: holds the optimizer, ``base_lr`` (its lr at construction) and ``last_epoch``."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} expected an xpnet Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = -1
        self._initial = True
        self.step()
        self._initial = False

    def _get_lr(self) -> float:
        raise NotImplementedError

    def step(self):
        """Advance one step and set the optimizer's lr."""
        self.last_epoch += 1
        lr = float(self._get_lr())
        self.optimizer.lr = lr
        self._last_lr = lr

    def get_last_lr(self) -> float:
        """The lr this schedule last set."""
        return self._last_lr

    def state_dict(self):
        """Everything but the optimizer (Python numbers only)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, sd):
        self.__dict__.update(sd)

    def __repr__(self):
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


class StepLR(Schedule):
    """``lr = base_lr * gamma ** (epoch // step_size)``, as ``torch.optim.lr_scheduler.StepLR``."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _int("StepLR", "step_size", step_size)
        self.gamma = _real("StepLR", "gamma", gamma, lo=0.0)
        super().__init__(optimizer)

    def _get_lr(self):
        lr = self.optimizer.lr
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lr
        return lr * self.gamma


class CosineAnnealingLR(Schedule):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``, computed with
    torch's recursive form (continuing periodically past ``T_max``), as
    ``torch.optim.lr_scheduler.CosineAnnealingLR``."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = _int("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = _real("CosineAnnealingLR", "eta_min", eta_min, lo=0.0)
        super().__init__(optimizer)

    def _get_lr(self):
        lr, e, T, lo = self.optimizer.lr, self.last_epoch, self.T_max, self.eta_min
        if self._initial:
            return lr
        if (e - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - lo) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (lr - lo) + lo


class LinearWarmup(Schedule):
    """Linear warmup from ``start_factor * lr`` to ``lr`` over ``warmup_steps`` steps, then
    constant: torch's ``LinearLR(start_factor, end_factor=1.0, total_iters=warmup_steps)``."""

    def __init__(self, optimizer, warmup_steps, start_factor=1.0 / 3):
        self.warmup_steps = _int("LinearWarmup", "warmup_steps", warmup_steps)
        self.start_factor = _real("LinearWarmup", "start_factor", start_factor, lo=0.0, hi=1.0, lo_open=True)
        super().__init__(optimizer)

    def _get_lr(self):
        lr, s = self.optimizer.lr, self.start_factor
        if self.last_epoch == 0:
            return lr * s
        if self._initial or self.last_epoch > self.warmup_steps:
            return lr
        return lr * (1.0 + (1.0 - s) / (self.warmup_steps * s + (self.last_epoch - 1) * (1.0 - s)))


class OneCycleLR(Schedule):
    """The 1cycle policy, as ``torch.optim.lr_scheduler.OneCycleLR`` given ``total_steps``.

    The lr rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of the
    steps, then anneals to ``max_lr / div_factor / final_div_factor`` (with ``three_phase``: back
    to the initial lr, then down to the minimum). The optimizer's lr is overwritten at
    construction. Only the lr is scheduled: torch's momentum cycling (``cycle_momentum``) is
    omitted. Stepping more than ``total_steps`` times raises ValueError, as in torch.
    """

    def __init__(self, optimizer, max_lr, total_steps, pct_start=0.3, anneal_strategy="cos",
                 div_factor=25.0, final_div_factor=1e4, three_phase=False):
        n = "OneCycleLR"
        self.max_lr = _real(n, "max_lr", max_lr, lo=0.0, lo_open=True)
        self.total_steps = _int(n, "total_steps", total_steps)
        self.pct_start = _real(n, "pct_start", pct_start, lo=0.0, hi=1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{n}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.div_factor = _real(n, "div_factor", div_factor, lo=0.0, lo_open=True)
        self.final_div_factor = _real(n, "final_div_factor", final_div_factor, lo=0.0, lo_open=True)
        self.three_phase = bool(three_phase)
        self.initial_lr = self.max_lr / self.div_factor
        self.min_lr = self.initial_lr / self.final_div_factor
        p, T = self.pct_start, self.total_steps
        if self.three_phase:
            self.phases = [
                (float(p * T) - 1, "initial_lr", "max_lr"),
                (float(2 * p * T) - 2, "max_lr", "initial_lr"),
                (T - 1, "initial_lr", "min_lr"),
            ]
        else:
            self.phases = [(float(p * T) - 1, "initial_lr", "max_lr"), (T - 1, "max_lr", "min_lr")]
        optimizer.lr = self.initial_lr
        super().__init__(optimizer)

    def _get_lr(self):
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {t} times; total_steps is {self.total_steps}")
        start = 0.0
        for i, (end, lo_name, hi_name) in enumerate(self.phases):
            if t <= end or i == len(self.phases) - 1:
                pct = (t - start) / (end - start)
                a, b = getattr(self, lo_name), getattr(self, hi_name)
                if self.anneal_strategy == "cos":
                    return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
                return (b - a) * pct + a
            start = end
