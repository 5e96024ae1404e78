"""The training loop: ``fit(net, loss, optimizer, train, epochs, batch_size, val=None, callbacks=())``.

One step on a batch ``(xb, yb)``::

    optimizer.zero_grad(); out = net(xb); l = loss(out, yb)
    net.backward(loss.backward(), input_grad=False); optimizer.step()

The data stay on the net's device (:class:`~xpnet.data.DataLoader`); the epoch's loss and
accuracy are summed on the device and read back once per epoch. The NaN/Inf guard reads each
step's loss (one host read per step; on a GPU that is one synchronisation) and stops with
:class:`TrainingDiverged` *before* a non-finite loss reaches the weights (the running statistics
that the step's forward updated are put back as well).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import sys
import time

from ..layers.losses import Loss
from .callbacks import Callback, ModelCheckpoint
from .clip import clip_grad_norm
from .evaluate import Tally, as_loader, evaluate, net_backend
from .optim import Optimizer


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite. ``epoch`` and ``step`` (1-based, within the epoch) say
    where; ``history`` holds the completed epochs; ``checkpoint`` is the last good one (or None)."""

    def __init__(self, message, epoch, step, history, checkpoint):
        super().__init__(message)
        self.epoch, self.step, self.history, self.checkpoint = epoch, step, history, checkpoint


class History(dict):
    """Per-epoch figures, ``{"epoch": [1, 2, ...], "loss": [...], "accuracy": [...], "val_loss": [...],
    "val_accuracy": [...], "lr": [...], "time": [...], "samples_per_s": [...]}``: plain lists, JSON-ready."""

    def append(self, epoch, logs):
        self.setdefault("epoch", []).append(epoch)
        for k, v in logs.items():
            self.setdefault(k, []).append(v)


@dataclasses.dataclass
class TrainState:
    """What callbacks see. ``stop = True`` ends training after the current epoch."""

    net: object
    loss: object
    optimizer: object
    epochs: int
    callbacks: list
    history: History
    epoch: int = 0
    step: int = 0
    stop: bool = False

    def callback_states(self) -> dict:
        return {_key(i, cb): cb.state_dict() for i, cb in enumerate(self.callbacks)}

    def save(self, path, extra=None):
        """A checkpoint of everything needed to resume (see :func:`xpnet.save`), with ``extra``."""
        from .checkpoint import save

        return save(path, self.net, self.optimizer, loss=self.loss, epoch=self.epoch, history=self.history,
                    callbacks=self.callback_states(), extra={**(extra or {}), "step": self.step})


def _key(i, cb):
    return f"{i}:{type(cb).__name__}"


def fit(net, loss, optimizer, train, epochs=1, batch_size=32, *, val=None, callbacks=(), progress=True,
        shuffle=True, clip_norm=None, guard=True, resume=None) -> History:
    """Train ``net`` for ``epochs`` epochs; returns the :class:`History`.

    ``train`` and ``val``: ``(X, y)`` pairs (moved once to the net's device) or DataLoaders.
    ``progress``: a tqdm bar per epoch with the running loss, accuracy and samples/s, shown only
    when stderr is a terminal. ``clip_norm``: clip the global gradient norm each step.
    ``guard``: check every step's loss and raise :class:`TrainingDiverged` on NaN/Inf.
    ``resume``: a :class:`~xpnet.nets.checkpoint.Checkpoint` of this run: training continues
    from its epoch with its history, generator state and callback states, so that on numpy
    2 epochs + resume + 2 epochs give the same bits as 4 epochs.
    """
    _check(net, loss, optimizer, epochs)
    be = net_backend(net)
    loader = as_loader(train, batch_size, shuffle, be, "fit")
    val_loader = None if val is None else as_loader(val, max(batch_size, 1024), False, be, "fit (val)")
    callbacks = sorted(_callbacks(callbacks), key=lambda cb: cb.order)
    state = TrainState(net, loss, optimizer, int(epochs), callbacks, History())
    if resume is not None:
        _resume(state, resume)
    for cb in callbacks:
        cb.on_train_begin(state)
    params = net.parameters()
    try:
        while state.epoch < state.epochs and not state.stop:
            for cb in callbacks:
                cb.on_epoch_begin(state)
            logs = _epoch(state, be, loader, params, clip_norm, guard, progress)
            if val_loader is not None:
                logs.update({f"val_{k}": v for k, v in evaluate(net, loss, val_loader).items()})
            state.epoch += 1
            state.history.append(state.epoch, logs)
            for cb in callbacks:
                cb.on_epoch_end(state, logs)
    finally:
        for cb in callbacks:
            cb.on_train_end(state)
    return state.history


def _epoch(state, be, loader, params, clip_norm, guard, progress):
    net, loss, opt = state.net, state.loss, state.optimizer
    net.train()
    tally = Tally(loss, be.xp)
    bar = _bar(progress, len(loader), f"epoch {state.epoch + 1}/{state.epochs}")
    # buffers (BatchNorm's running statistics) that a forward rebinds: the guard puts them back
    buffers = [(owner, attr) for _, owner, attr, is_param in net.state_entries() if not is_param] if guard else []
    t0 = last = time.perf_counter()
    try:
        for i, (xb, yb) in enumerate(loader, 1):
            opt.zero_grad()
            kept = [getattr(owner, attr) for owner, attr in buffers]
            out = net(xb)
            value = loss(out, yb)
            if guard:
                v = float(value)
                if not math.isfinite(v):
                    for (owner, attr), b in zip(buffers, kept):
                        setattr(owner, attr, b)
                    raise _diverged(state, v, i, len(loader))
            net.backward(loss.backward(), input_grad=False)
            if clip_norm is not None:
                clip_grad_norm(params, clip_norm)
            opt.step()
            tally.add(value, out, yb)
            state.step += 1
            for cb in state.callbacks:
                cb.on_batch_end(state)
            if bar is not None:
                bar.update(1)
                now = time.perf_counter()
                if now - last > 0.25 or i == len(loader):  # refreshing reads the device: not every step
                    last = now
                    fig = tally.result()
                    post = {"loss": f"{fig['loss']:.4f}"}
                    if "accuracy" in fig:
                        post["acc"] = f"{fig['accuracy']:.2%}"
                    post["samples/s"] = f"{tally.n / (now - t0):,.0f}"
                    bar.set_postfix(post, refresh=False)
    finally:
        if bar is not None:
            bar.close()
    be.synchronize()
    seconds = time.perf_counter() - t0
    logs = tally.result()
    logs["lr"] = float(opt.lr)
    logs["time"] = seconds
    logs["samples_per_s"] = tally.n / seconds if seconds > 0 else float("inf")
    return logs


def _diverged(state, v, i, n):
    saved = [cb for cb in state.callbacks if isinstance(cb, ModelCheckpoint) and cb.last_path is not None]
    last = max(saved, key=lambda cb: cb.last_epoch) if saved else None
    where = (f"the last good checkpoint is {last.last_path} (epoch {last.last_epoch})" if last
             else "no checkpoint had been saved")
    return TrainingDiverged(
        f"fit: the loss became {v} at epoch {state.epoch + 1}, step {i} of {n}; training stopped before "
        f"that step changed the weights; {where}", state.epoch + 1, i, state.history,
        None if last is None else last.last_path,
    )


def _bar(progress, total, desc):
    if not progress or not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency; without it, train silently rather than fail
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=True, file=sys.stderr, dynamic_ncols=True)


def _callbacks(callbacks):
    out = list(callbacks)
    for i, cb in enumerate(out):
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: callbacks must be xpnet Callback instances, got {type(cb).__name__} at position {i}")
    return out


def _check(net, loss, optimizer, epochs):
    from ..layers.base import Layer

    if not isinstance(net, Layer):
        raise TypeError(f"fit: net must be an xpnet Layer, got {type(net).__name__}")
    if not isinstance(loss, Loss):
        raise TypeError(f"fit: loss must be an xpnet Loss, got {type(loss).__name__}")
    if loss.reduction == "none":
        raise ValueError(
            f"fit: the loss must reduce to one number to train on, got {loss!r}; use reduction='mean' "
            "or 'sum' (a loss with reduction='none' needs a hand-written loop: loss.backward(dy) takes its gradient)"
        )
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"fit: optimizer must be an xpnet Optimizer, got {type(optimizer).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}")


def _resume(state, ck):
    from .checkpoint import Checkpoint

    if not isinstance(ck, Checkpoint):
        raise TypeError(f"fit: resume must be a Checkpoint from xpnet.load, got {type(ck).__name__}")
    if ck.epoch > state.epochs:
        raise ValueError(f"fit: the checkpoint is at epoch {ck.epoch}, past epochs={state.epochs}")
    state.epoch = ck.epoch
    state.step = int(ck.extra.get("step", 0))
    state.history = History({k: list(v) for k, v in ck.history.items()})
    ck.restore_rng()
    for i, cb in enumerate(state.callbacks):
        sd = ck.callbacks.get(_key(i, cb))
        if sd is not None:
            cb.load_state_dict(sd)
