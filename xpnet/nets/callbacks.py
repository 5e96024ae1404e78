"""Callbacks for :func:`xpnet.fit`: learning-rate scheduling, early stopping, checkpoints, logging.

A callback overrides any of the hooks below; each receives the :class:`~xpnet.nets.fit.TrainState`
(``net``, ``loss``, ``optimizer``, ``epoch`` completed so far, ``step`` taken so far,
``history``, and ``stop``, which a callback sets to end training after this epoch).
At the end of an epoch callbacks run in the order of their ``order`` attribute (then as given):
schedules (0), early stopping (10), checkpoints (20), loggers (30), so a checkpoint holds the
schedule's and the early-stopping counters' state of that epoch. ``state_dict`` and
``load_state_dict`` carry a callback's own state through checkpoints (plain JSON data).
"""

from __future__ import annotations

import math
import pathlib
import sys

from .schedules import Schedule


class Callback:
    """Base class: every hook does nothing."""

    order = 25

    def on_train_begin(self, state):
        pass

    def on_epoch_begin(self, state):
        pass

    def on_batch_end(self, state):
        pass

    def on_epoch_end(self, state, logs):
        """``logs``: this epoch's figures (``loss``, ``accuracy``, ``val_loss``, ``lr``, ...)."""

    def on_train_end(self, state):
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, sd) -> None:
        pass


def _monitored(owner, monitor, logs):
    if monitor not in logs:
        raise ValueError(f"{owner}: monitor {monitor!r} is not among this epoch's figures {sorted(logs)}"
                         + ("; pass val= to fit" if monitor.startswith("val_") else ""))
    return logs[monitor]


def _mode(owner, monitor, mode):
    if mode == "auto":
        return "min" if "loss" in monitor else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"{owner}: mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


class _Best:
    """The best value of a monitored figure so far; ``improves(v)`` by more than ``min_delta``."""

    def __init__(self, mode, min_delta):
        self.mode, self.min_delta, self.value = mode, float(min_delta), None

    def improves(self, v):
        if self.value is None:
            return math.isfinite(v)
        return v < self.value - self.min_delta if self.mode == "min" else v > self.value + self.min_delta


class LRScheduler(Callback):
    """Step ``schedule`` (an :mod:`xpnet.nets.schedules` schedule) after every epoch
    (``interval="epoch"``) or every batch (``"step"``, e.g. for OneCycleLR)."""

    order = 0

    def __init__(self, schedule, interval="epoch"):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"LRScheduler expected an xpnet schedule, got {type(schedule).__name__}")
        if interval not in ("epoch", "step"):
            raise ValueError(f"LRScheduler: interval must be 'epoch' or 'step', got {interval!r}")
        self.schedule, self.interval = schedule, interval

    def on_batch_end(self, state):
        if self.interval == "step":
            self.schedule.step()

    def on_epoch_end(self, state, logs):
        if self.interval == "epoch":
            self.schedule.step()

    def state_dict(self):
        return self.schedule.state_dict()

    def load_state_dict(self, sd):
        self.schedule.load_state_dict(sd)
        self.schedule.restore_lr()  # each group's own lr, through the schedule


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs
    in a row (``patience >= 1``).

    ``mode``: ``"min"``, ``"max"`` or ``"auto"`` (min for names containing "loss").
    ``restore_best_weights``: put back the weights of the best epoch when stopping (or at the end).
    """

    order = 10

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto", restore_best_weights=False):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"EarlyStopping: patience must be an int >= 1, got {patience!r}")
        self.monitor, self.patience = monitor, patience
        self.best = _Best(_mode("EarlyStopping", monitor, mode), min_delta)
        self.restore_best_weights = bool(restore_best_weights)
        self.wait, self.best_epoch, self.stopped_epoch = 0, 0, None
        self._weights = None

    def on_epoch_end(self, state, logs):
        v = _monitored("EarlyStopping", self.monitor, logs)
        if self.best.improves(v):
            self.best.value, self.best_epoch, self.wait = v, state.epoch, 0
            if self.restore_best_weights:
                # xpnet never updates arrays in place, so the live state dict is a snapshot
                self._weights = state.net.state_dict()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                state.stop, self.stopped_epoch = True, state.epoch

    def on_train_end(self, state):
        if self.restore_best_weights and self._weights is not None:
            state.net.load_state_dict(self._weights)

    def state_dict(self):
        return {"best": self.best.value, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, sd):
        self.best.value, self.best_epoch, self.wait = sd["best"], sd["best_epoch"], sd["wait"]


class ModelCheckpoint(Callback):
    """Save a checkpoint (:func:`xpnet.save`: net, optimizer, loss, epoch, history, callback
    states, generator state) to ``path`` after each epoch, or, with ``monitor``, only after
    epochs that improve it (the best model). ``extra``: JSON data of your own stored with it
    (``Checkpoint.extra``). ``last_path``/``last_epoch``: the latest save."""

    order = 20

    def __init__(self, path, monitor=None, mode="auto", min_delta=0.0, extra=None):
        self.path = pathlib.Path(path)
        self.extra = dict(extra or {})
        self.monitor = monitor
        self.best = None if monitor is None else _Best(_mode("ModelCheckpoint", monitor, mode), min_delta)
        self.last_path, self.last_epoch = None, None

    def on_epoch_end(self, state, logs):
        if self.best is not None:
            v = _monitored("ModelCheckpoint", self.monitor, logs)
            if not self.best.improves(v):
                return
            self.best.value = v
        # set before saving, so that the state stored in the file says that the file is this epoch's
        before = self.last_path, self.last_epoch
        self.last_path, self.last_epoch = self.path, state.epoch
        try:
            state.save(self.path, self.extra)
        except BaseException:
            self.last_path, self.last_epoch = before
            raise

    def state_dict(self):
        return {"best": None if self.best is None else self.best.value, "last_epoch": self.last_epoch}

    def load_state_dict(self, sd):
        if self.best is not None:
            self.best.value = sd["best"]
        self.last_epoch = sd["last_epoch"]
        if self.last_epoch is not None and self.path.exists():
            self.last_path = self.path


class EpochLogger(Callback):
    """Print one line per epoch (to ``file``, default stdout): the epoch, its figures, samples/s."""

    order = 30

    def __init__(self, file=None):
        self.file = file

    def on_epoch_end(self, state, logs):
        parts = [f"epoch {state.epoch}/{state.epochs}"]
        for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if k in logs:
                parts.append(f"{k} {logs[k]:.2%}" if "accuracy" in k else f"{k} {logs[k]:.4f}")
        parts.append(f"lr {logs['lr']:.3g}")
        parts.append(f"{logs['samples_per_s']:,.0f} samples/s")
        print("  ".join(parts), file=self.file or sys.stdout, flush=True)
