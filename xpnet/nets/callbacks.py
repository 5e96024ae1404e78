"""Callbacks for :func:`xpnet.fit`: learning-rate scheduling, early stopping, checkpoints, logging.

A callback overrides any of the hooks below; each receives the :class:`~xpnet.nets.fit.TrainState`
(``net``, ``loss``, ``optimizer``, ``epoch`` completed so far, ``step``: optimizer steps taken so
far, ``history``, ``stop``, which a callback sets to end training after this epoch, and ``halt``,
which a batch hook sets to end it after this batch).
Callbacks run in the order of their ``order`` attribute (then as given): schedules (0), early
stopping (10), checkpoints (20), loggers (30), so a checkpoint holds the schedule's and the
early-stopping counters' state of that epoch. ``state_dict`` and ``load_state_dict`` carry a
callback's own state through checkpoints (plain JSON data).

The batch hooks get ``logs = {"batch": i, "size": n}`` (``i`` 1-based within the epoch, ``n``
the batch's size) and, at ``on_batch_end``, ``"loss"``: the batch loss as a 0-d array on the
net's device. fit never reads it; a callback that does (``float(logs["loss"])``) costs one host
synchronisation per batch on a GPU, so read it only where the number is needed.

In data-parallel training (``fit(..., distributed=...)``) every rank runs the callbacks on
the same epoch figures; those that print or write files (checkpoints, CSV, TensorBoard, the
epoch lines) do so on rank 0 only (``state.rank``), and a batch hook's ``"loss"`` is the
rank's own part of the batch.
"""

from __future__ import annotations

import csv
import math
import numbers
import pathlib
import sys
import warnings


def is_main(state) -> bool:
    """True where this process prints and writes files: alone, or rank 0 of a distributed run."""
    return getattr(state, "rank", 0) == 0


class Callback:
    """Base class: every hook does nothing."""

    order = 25

    def on_train_begin(self, state):
        pass

    def on_epoch_begin(self, state):
        pass

    def on_batch_begin(self, state, logs):
        """Before batch ``logs["batch"]`` (1-based) of ``logs["size"]`` samples is trained on."""

    def on_batch_end(self, state, logs):
        """After the batch; ``logs["loss"]``: its loss, a 0-d device array (reading it syncs)."""

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
    (``interval="epoch"``) or every optimizer step (``"step"``, e.g. for OneCycleLR; with
    ``fit(..., accumulate=k)`` that is once per k batches)."""

    order = 0

    def __init__(self, schedule, interval="epoch"):
        from .schedules import ReduceLROnPlateau, Schedule  # schedules.py imports this module

        if isinstance(schedule, ReduceLROnPlateau):
            raise TypeError("LRScheduler: ReduceLROnPlateau is a callback itself (it steps on the figure it "
                            "monitors): pass it to fit's callbacks directly")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"LRScheduler expected an xpnet schedule, got {type(schedule).__name__}")
        if interval not in ("epoch", "step"):
            raise ValueError(f"LRScheduler: interval must be 'epoch' or 'step', got {interval!r}")
        self.schedule, self.interval = schedule, interval
        self._steps = None  # state.step when the schedule last stepped

    def on_train_begin(self, state):
        self._steps = state.step

    def on_batch_end(self, state, logs):
        if self.interval == "step" and state.step != self._steps:
            self._steps = state.step
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
        if not is_main(state):  # rank 0 writes; the others keep the same record of it
            return
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


def figures(logs):
    """``(name, number)`` of an epoch's scores in the order shown: training's, then validation's
    (lr, time, samples/s and the per-class lists left out)."""
    keys = [k for k in logs if not k.startswith("val_")] + [k for k in logs if k.startswith("val_")]
    return [(k, logs[k]) for k in keys if k not in _NOT_SCORES
            and isinstance(logs[k], numbers.Real) and not isinstance(logs[k], bool)]


_NOT_SCORES = ("lr", "time", "samples_per_s")


class EpochLogger(Callback):
    """Print one line per epoch (to ``file``, default stdout): the epoch, its figures, samples/s."""

    order = 30

    def __init__(self, file=None):
        self.file = file

    def on_epoch_end(self, state, logs):
        if not is_main(state):
            return
        parts = [f"epoch {state.epoch}/{state.epochs}"]
        for k, v in figures(logs):
            parts.append(f"{k} {v:.2%}" if "accuracy" in k else f"{k} {v:.4f}")
        parts.append(f"lr {logs['lr']:.3g}")
        parts.append(f"{logs['samples_per_s']:,.0f} samples/s")
        print("  ".join(parts), file=self.file or sys.stdout, flush=True)


def _numbers(logs):
    """The figures of ``logs`` that are numbers, as floats (the others, say a confusion matrix, are skipped)."""
    return {k: float(v) for k, v in logs.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}


class CSVLogger(Callback):
    """One row per epoch in the CSV file ``path``: ``epoch``, then every figure of the epoch.

    The columns are the first epoch's (``epoch``, ``loss``, ``accuracy``, ``lr``, ..., ``val_loss``,
    ...); a figure missing later is an empty cell, and one that first appears later is left out,
    with a warning. Each row is flushed as it is written, so the file always ends with a whole
    epoch, even after a crash. ``append=True`` (for a resumed run) continues an existing file
    under its own header; otherwise the file is started afresh. ``separator``: one character.
    """

    order = 30

    def __init__(self, path, separator=",", append=False):
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        self.path, self.separator, self.append = pathlib.Path(path), separator, bool(append)
        self.columns, self._file, self._writer, self._left_out = None, None, None, set()

    def on_train_begin(self, state):
        self.columns, self._left_out = None, set()
        if not is_main(state):
            return
        if self.append and self.path.exists():
            with open(self.path, newline="", encoding="utf-8") as f:
                self.columns = next(csv.reader(f, delimiter=self.separator), None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a" if self.append else "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file, delimiter=self.separator)

    def on_epoch_end(self, state, logs):
        if self._writer is None:  # not rank 0
            return
        figures = _numbers(logs)
        if self.columns is None:
            self.columns = ["epoch", *figures]
            self._writer.writerow(self.columns)
        new = [k for k in figures if k not in self.columns and k not in self._left_out]
        if new:
            self._left_out.update(new)
            warnings.warn(f"CSVLogger: {', '.join(new)} first appeared at epoch {state.epoch}, after {self.path}'s "
                          f"header was written; left out", UserWarning, stacklevel=2)
        self._writer.writerow([state.epoch, *(figures.get(k, "") for k in self.columns[1:])])
        self._file.flush()

    def on_train_end(self, state):
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None


TENSORBOARD_HINT = "TensorBoard needs tensorboardX: pip install 'xpnet[tensorboard]'"


class TensorBoard(Callback):
    """Scalars for TensorBoard in ``log_dir``, written with tensorboardX's ``SummaryWriter``.

    After each epoch, every figure (``loss``, ``accuracy``, ``val_loss``, ``lr``, ``time``, ...)
    under its own name, at step = the epoch. ``update_freq="batch"`` (or an int n: every n
    batches) also writes ``batch_loss`` at step = the batches trained on so far; that reads the
    batch loss, one host synchronisation each time on a GPU. The events are flushed every epoch.
    Needs ``pip install 'xpnet[tensorboard]'`` (tensorboardX); view with ``tensorboard --logdir``.
    """

    order = 30

    def __init__(self, log_dir, update_freq="epoch"):
        if update_freq == "epoch":
            self.every = 0
        elif update_freq == "batch":
            self.every = 1
        elif isinstance(update_freq, int) and not isinstance(update_freq, bool) and update_freq >= 1:
            self.every = update_freq
        else:
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or an int >= 1, got {update_freq!r}")
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ImportError(TENSORBOARD_HINT) from e
        self.log_dir, self.update_freq = pathlib.Path(log_dir), update_freq
        self._SummaryWriter, self.writer, self.batches = SummaryWriter, None, 0

    def on_train_begin(self, state):
        self.writer = self._SummaryWriter(str(self.log_dir)) if is_main(state) else None

    def on_batch_end(self, state, logs):
        self.batches += 1
        if self.every and self.batches % self.every == 0 and self.writer is not None:
            self.writer.add_scalar("batch_loss", float(logs["loss"]), self.batches)

    def on_epoch_end(self, state, logs):
        if self.writer is None:
            return
        for k, v in _numbers(logs).items():
            self.writer.add_scalar(k, v, state.epoch)
        self.writer.flush()

    def on_train_end(self, state):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def state_dict(self):
        return {"batches": self.batches}

    def load_state_dict(self, sd):
        self.batches = int(sd["batches"])
