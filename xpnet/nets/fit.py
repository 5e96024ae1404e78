"""The training loop: ``fit(net, loss, optimizer, train, epochs, batch_size, val=None, callbacks=())``.

One step on a batch ``(xb, yb)`` (:class:`_Step`)::

    optimizer.zero_grad(); out = net(xb); l = loss(out, yb)
    net.backward(loss.backward(), input_grad=False); optimizer.step()

With ``accumulate=k`` one optimizer step covers k consecutive batches: ``zero_grad`` before
the first, ``loss.backward(1 / k)`` after each (the gradients add up to the mean of the k
batches' gradients), and clipping and ``optimizer.step()`` after the last.

The data stay on the net's device (:class:`~xpnet.data.DataLoader`); the epoch's loss and
accuracy are summed on the device and read back once per epoch; the batch hooks get the batch
loss as a 0-d device array (a callback that reads it syncs the device). No step reads the host:
the NaN/Inf guard (:class:`~xpnet.nets.guard.DivergenceGuard`) reads the losses once every
``guard_every`` steps and at the end of each epoch, and on a NaN/Inf puts back the weights,
buffers and optimizer state of its last good check and raises :class:`TrainingDiverged`; on a
device backend (``backend.asynchronous``: CuPy, torch on CUDA, and array-api-strict, which plays
one in the tests) the layers' value checks (bad labels, indices) are deferred to those same
reads (:mod:`xpnet.layers.deferred`). With ``precision="bf16"|"fp16"`` each step runs through
:class:`~xpnet.amp.MixedPrecision` (float32 master weights; fp16 scales the loss, which costs
one host read per optimizer step to decide whether to skip it).

With ``distributed=`` each rank trains on its share of every global batch
(:mod:`xpnet.distributed`): the gradients are all-reduced after the backward of each optimizer
step (once per ``accumulate`` group, before clipping and the step, on the master gradients
under mixed precision), the guard reads the global losses, and the epoch's figures are summed
over the ranks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import numbers
import sys
import time

from ..layers.deferred import deferred_checks
from ..layers.losses import Loss
from ..validate import integer
from ..metrics import resolve as _resolve_metrics
from .callbacks import Callback, ModelCheckpoint, figures
from .clip import clip_grad_norm
from .evaluate import Tally, as_loader, evaluate, net_backend
from .guard import DEFAULT_EVERY, DivergenceGuard
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
    """What callbacks see. ``epoch``: epochs completed; ``step``: optimizer steps taken (with
    ``accumulate=k``, one per k batches). ``stop = True`` ends training after the current
    epoch. ``halt = True``, set by a batch hook, ends training after the current batch: that
    epoch is not validated, not recorded in the history, and gets no ``on_epoch_end`` (the LR
    finder stops so)."""

    net: object
    loss: object
    optimizer: object
    epochs: int
    callbacks: list
    history: History
    epoch: int = 0
    step: int = 0
    stop: bool = False
    halt: bool = False
    #: the mixed-precision policy (``fit(precision=)``), or None
    amp: object = None
    #: this process's rank and the number of ranks (``fit(distributed=)``; 0 and 1 alone):
    #: callbacks that print or write files do so on rank 0 only
    rank: int = 0
    world_size: int = 1

    def callback_states(self) -> dict:
        return {_key(i, cb): cb.state_dict() for i, cb in enumerate(self.callbacks)}

    def save(self, path, extra=None):
        """A checkpoint of everything needed to resume (see :func:`xpnet.save`), with ``extra``."""
        from .checkpoint import save

        scaler = None if self.amp is None or not self.amp.scaler.is_enabled() else self.amp.scaler
        return save(path, self.net, self.optimizer, loss=self.loss, epoch=self.epoch, history=self.history,
                    callbacks=self.callback_states(), extra={**(extra or {}), "step": self.step}, scaler=scaler)


def _key(i, cb):
    return f"{i}:{type(cb).__name__}"


def fit(net, loss, optimizer, train, epochs=1, batch_size=32, *, val=None, callbacks=(), progress=True,
        shuffle=True, clip_norm=None, guard=True, guard_every=DEFAULT_EVERY, resume=None, accumulate=1,
        metrics=None, precision=None, distributed=None) -> History:
    """Train ``net`` for ``epochs`` epochs; returns the :class:`History`.

    ``train`` and ``val``: ``(X, y)`` pairs (moved once to the net's device) or DataLoaders.
    ``progress``: a tqdm bar per epoch (``tqdm.auto``: a widget in Jupyter) with the running
    loss, accuracy and samples/s, and at the epoch's end its figures, validation's included,
    and lr; shown only when stderr is a terminal or inside a Jupyter kernel.
    ``clip_norm``: clip the global gradient norm before each optimizer step.
    ``guard``: watch the losses and raise :class:`TrainingDiverged` on NaN/Inf, reading them
    once every ``guard_every`` steps (default 50, measured: see :mod:`xpnet.nets.guard`) and at
    the end of each epoch; the weights, buffers and optimizer state come back as they were at
    the last good check, so no bad update stays. ``guard_every=None``: once an epoch.
    ``resume``: a :class:`~xpnet.nets.checkpoint.Checkpoint` of this run: training continues
    from its epoch with its history, generator state and callback states, so that on numpy
    2 epochs + resume + 2 epochs give the same bits as 4 epochs.
    ``accumulate``: k >= 1 batches per optimizer step. Each batch's loss gradient is scaled by
    1/k and the k gradients are summed, so ``batch_size=8, accumulate=4`` steps as
    ``batch_size=32`` does (exactly, for a "mean" loss, batches of equal size and no layer that
    depends on the batch, such as BatchNorm). The epoch's last group may be shorter: its k'
    batches are scaled by 1/k' (a step on their mean). ``state.step`` counts optimizer steps;
    the batch hooks fire for every batch.
    ``precision``: None (the net's own dtype), ``"bf16"`` or ``"fp16"``: forward and backward in
    that dtype over float32 master weights (:class:`~xpnet.amp.MixedPrecision`; fp16 with a
    :class:`~xpnet.amp.GradScaler`, stored in checkpoints and restored by ``resume``);
    validation and the saved weights are float32.
    ``metrics``: names or :class:`~xpnet.metrics.Metric` objects (``["f1", "top5"]``, see
    :func:`xpnet.metrics.get`), accumulated on the device over each epoch and over ``val``: the
    logs and the history gain their figures (``f1``, ``val_f1``, ``top5_accuracy``...).
    ``distributed``: None (this process alone, as always), True or ``"auto"`` (the communicator
    of the launcher that started this process: mpiexec, torchrun, or none), an engine name
    (``"single"``, ``"mpi"``, ``"nccl"``, ``"torch"``) or an :class:`xpnet.distributed.Communicator`.
    Data-parallel training (:class:`xpnet.distributed.DataParallel`): the parameters and
    buffers start as rank 0's; ``batch_size`` is the global batch, each rank training on its
    contiguous share of it, shuffled by one permutation per epoch drawn from rank 0's seed
    and the epoch (the same for any number of ranks); each rank's gradient is weighted by its
    share, so N ranks compute what one process (``distributed="single"``) computes, the
    uneven last batch included (exactly for a "mean" loss with no layer that depends on the
    batch, such as BatchNorm, whose running statistics are averaged over the ranks after each
    epoch). Validation is split across the ranks and its figures summed; every rank gets the
    same history; only rank 0 shows progress and writes files (``state.rank``); dropout
    masks differ per rank. An exception on one rank ends every rank (see
    :func:`xpnet.distributed.together`); TrainingDiverged, decided on the global losses, is
    raised on every rank.
    """
    _check(net, loss, optimizer, epochs)
    accumulate = integer("fit", "accumulate", accumulate, minimum=1)
    metrics = _resolve_metrics(metrics, "fit")
    be = net_backend(net)
    dist = _data_parallel(distributed, net, optimizer, be)
    loader = as_loader(train, batch_size, shuffle, be, "fit")
    val_loader = None if val is None else as_loader(val, max(batch_size, 1024), False, be, "fit (val)")
    callbacks = sorted(_callbacks(callbacks), key=lambda cb: cb.order)
    state = TrainState(net, loss, optimizer, int(epochs), callbacks, History())
    state.amp = None if precision is None else _mixed_precision(net, optimizer, precision, resume)
    if resume is not None:
        _resume(state, resume)
    if dist is not None:
        state.rank, state.world_size = dist.rank, dist.size
        dist.start(be)
        loader = dist.shard(loader)
    with _together(dist):
        for cb in callbacks:
            cb.on_train_begin(state)
    step = _Step(state, net.parameters(), clip_norm, guard and _guard(state, guard_every), accumulate, dist)
    try:
        while state.epoch < state.epochs and not state.stop:
            for cb in callbacks:
                cb.on_epoch_begin(state)
            bar = _Bar.open(progress and state.rank == 0, len(loader), f"epoch {state.epoch + 1}/{state.epochs}")
            try:
                with deferred_checks() if be.asynchronous else contextlib.nullcontext():
                    logs = _epoch(state, be, loader, step, bar, metrics)
                if state.halt:
                    break
                if val_loader is not None:
                    figures_val = (evaluate(net, loss, val_loader, metrics=metrics) if dist is None
                                   else dist.evaluate(loss, val_loader, metrics))
                    logs.update({f"val_{k}": v for k, v in figures_val.items()})
                if bar is not None:
                    bar.finish(logs)
            finally:
                if bar is not None:
                    bar.close()
            state.epoch += 1
            state.history.append(state.epoch, logs)
            for cb in callbacks:
                cb.on_epoch_end(state, logs)
    except BaseException as e:
        _fail(dist, e)  # one rank's error ends every rank (its others would wait in a collective)
        raise
    finally:
        for cb in callbacks:
            cb.on_train_end(state)
    return state.history


def _data_parallel(distributed, net, optimizer, be):
    """fit's DataParallel for ``distributed`` (None: none)."""
    if distributed is None or distributed is False:
        return None
    from ..distributed import Communicator, DataParallel, init

    if isinstance(distributed, Communicator):
        comm = distributed
    elif distributed is True or isinstance(distributed, str):
        try:
            comm = init("auto" if distributed is True else distributed, be)
        except ValueError as e:
            raise ValueError(f"fit: distributed={distributed!r}: {e}") from None
    else:
        raise TypeError(f"fit: distributed must be None, True, an engine name or an xpnet.distributed "
                        f"Communicator, got {type(distributed).__name__}")
    return DataParallel(net, optimizer, comm)


def _together(dist):
    if dist is None:
        return contextlib.nullcontext()
    from ..distributed import together

    return together(dist.comm, (TrainingDiverged,))


def _fail(dist, error):
    if dist is not None:
        from ..distributed.failure import fail

        fail(dist.comm, error, (TrainingDiverged,))


def _epoch(state, be, loader, step, bar, metrics=()):
    net, loss, opt = state.net, state.loss, state.optimizer
    net.train()
    tally = Tally(loss, be.xp, metrics)
    n = len(loader)
    if step.dist is not None:
        step.dist.begin_epoch(state.epoch)
    if step.guard is not None:
        step.guard.begin_epoch(state.epoch + 1, n)
    t0 = time.perf_counter()
    for i, (xb, yb) in enumerate(loader, 1):
        logs = {"batch": i, "size": int(xb.shape[0])}
        for cb in state.callbacks:
            cb.on_batch_begin(state, logs)
        out, value = step(xb, yb, i, n)
        if out is not None:  # None: this rank had no sample of the batch (distributed)
            tally.add(value, out, yb)
        logs["loss"] = value  # a 0-d device array: reading it is the callback's choice (and sync)
        for cb in state.callbacks:
            cb.on_batch_end(state, logs)
        if bar is not None:
            bar.update(tally, t0, i == n)
        if state.halt:
            break
    if step.dist is not None:
        step.dist.average_buffers()  # before the guard keeps this epoch's state
    if step.guard is not None:
        step.guard.end_epoch()
    be.synchronize()
    seconds = time.perf_counter() - t0
    if step.dist is not None:
        seconds = step.dist.end_epoch(tally, seconds)
    logs = tally.result()
    logs["lr"] = float(opt.lr)
    logs["time"] = seconds
    logs["samples_per_s"] = tally.n / seconds if seconds > 0 else float("inf")
    return logs


class _Step:
    """Training on batch ``i`` of ``n``: ``zero_grad`` before the first batch of each group of
    ``accumulate`` batches, forward, loss, the guard's note of the loss, backward of the loss
    scaled by 1/k (k: the group's size), and after the group's last batch clipping and
    ``optimizer.step()``. With mixed precision (``state.amp``) the forward and backward run in
    its ``autocast`` block, the loss is scaled, and clipping sees the unscaled gradients.

    Distributed (``dist``, a :class:`~xpnet.distributed.DataParallel`): the loss gradient is
    also scaled by this rank's share of the global batch, and after the group's last backward
    the gradients are all-reduced (once per optimizer step); the guard then observes the
    group's global losses, which every rank shares. A rank with no sample of a batch runs no
    forward and returns ``(None, 0)``."""

    def __init__(self, state, params, clip_norm, guard, accumulate, dist=None):
        self.state, self.params, self.clip_norm, self.k = state, params, clip_norm, accumulate
        self.guard = guard or None
        self.dy = 1.0
        self.dist, self.shared = dist, []  # the group's local losses times their shares

    def __call__(self, xb, yb, i, n):
        """The outputs and the (unscaled) loss of batch ``i`` (1-based) of ``n``."""
        state, k, amp, dist = self.state, self.k, self.state.amp, self.dist
        net, loss, opt = state.net, state.loss, state.optimizer
        guard = self.guard if dist is None else None  # distributed: it sees the global losses below
        if (i - 1) % k == 0:
            opt.zero_grad()
            self.dy = 1.0 / min(k, n - i + 1)
        share = 1.0 if dist is None else dist.share(i, xb)
        if share == 0:
            out, value = None, dist.zero_loss()
        elif amp is None:
            out = net(xb)
            value = loss(out, yb)
            if guard is not None:
                guard.observe(value)
            net.backward(loss.backward(self.dy * share), input_grad=False)
        else:
            with amp.autocast():
                out = net(amp.cast(xb))
                value = loss(out, yb)
                if guard is not None:
                    guard.observe(value)
                amp.backward(loss, self.dy * share)
        if dist is not None:
            self.shared.append(dist.weighted(value, share))
        if i % k == 0 or i == n:
            if dist is not None:
                for v in dist.reduce_gradients(self.shared):
                    if self.guard is not None:
                        self.guard.observe(v)
                self.shared = []
            if self.clip_norm is not None:
                if amp is not None:
                    amp.unscale_()
                clip_grad_norm(self.params, self.clip_norm)
            if amp is None:
                opt.step()
            else:
                amp.step()
            state.step += 1
        return out, value


def _guard(state, every):
    """fit's DivergenceGuard: its errors name fit's last good checkpoint and carry the history."""
    return DivergenceGuard(state.net, state.optimizer, every, on_diverged=lambda e: _diverged(state, e))


def _mixed_precision(net, optimizer, precision, resume):
    from ..amp import MixedPrecision

    scaler = getattr(resume, "scaler", None)
    try:
        return MixedPrecision(net, optimizer, precision, scaler=scaler)
    except ValueError as e:  # name fit, as fit's other errors do
        raise ValueError(f"fit: {e}") from None


def _diverged(state, error):
    """The guard's ``error``, with where the last good checkpoint is and the completed epochs."""
    saved = [cb for cb in state.callbacks if isinstance(cb, ModelCheckpoint) and cb.last_path is not None]
    last = max(saved, key=lambda cb: cb.last_epoch) if saved else None
    where = (f"the last good checkpoint is {last.last_path} (epoch {last.last_epoch})" if last
             else "no checkpoint had been saved")
    out = TrainingDiverged(f"{error}; {where}", error.epoch, error.step, state.history,
                           None if last is None else last.last_path)
    out.value, out.restored = error.value, error.restored
    return out


class _Bar:
    """The epoch's progress bar: the running figures as it goes, the epoch's figures at its end."""

    def __init__(self, bar):
        self.bar, self.last = bar, time.perf_counter()

    @classmethod
    def open(cls, progress, total, desc):
        """A bar when ``progress`` and stderr is a terminal or this is a Jupyter kernel; else None."""
        if not progress or not (sys.stderr.isatty() or _in_kernel()):
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is a dependency; without it, train silently rather than fail
            return None
        return cls(tqdm(total=total, desc=desc, unit="batch", leave=True, file=sys.stderr, dynamic_ncols=True))

    def update(self, tally, t0, last):
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.last > 0.25 or last:  # refreshing reads the device: not every step
            self.last = now
            self.bar.set_postfix(_postfix({**tally.result(), "samples_per_s": tally.n / (now - t0)}), refresh=False)

    def finish(self, logs):
        """Show the epoch's figures (validation's too) and lr."""
        self.bar.set_postfix(_postfix(logs), refresh=True)

    def close(self):
        self.bar.close()


def _postfix(logs):
    """An epoch's (or the running) figures as tqdm postfix strings: scores, lr, samples/s."""
    out = {k: f"{v:.2%}" if "accuracy" in k else f"{v:.4f}" for k, v in figures(logs)}
    if "lr" in logs:
        out["lr"] = f"{logs['lr']:.3g}"
    if "samples_per_s" in logs:
        out["samples/s"] = f"{logs['samples_per_s']:,.0f}"
    return out


def _in_kernel():
    """Inside a Jupyter (IPython) kernel? Only a running IPython has imported it: never import it here."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return getattr(shell, "kernel", None) is not None


def _callbacks(callbacks):
    out = list(callbacks)
    for i, cb in enumerate(out):
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: callbacks must be xpnet Callback instances, got {type(cb).__name__} at position {i}")
        for hook in ("on_batch_begin", "on_batch_end"):
            if not _takes_logs(getattr(cb, hook)):
                raise TypeError(f"fit: {type(cb).__name__}.{hook} must take (state, logs): the batch hooks are "
                                "given the batch's logs (batch, size, loss)")
    return out


def _takes_logs(hook):
    try:
        inspect.signature(hook).bind(None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): let the call say
        pass
    return True


def _two_inputs(loss, where):
    """fit and evaluate feed a loss ``(outputs, targets)``: refuse one of more inputs clearly."""
    from ..layers.losses import MultiInputLoss

    if isinstance(loss, MultiInputLoss):
        raise TypeError(f"{where}: {type(loss).__name__} takes more inputs than (outputs, targets); "
                        "train with it in a hand-written loop: loss(*inputs), then loss.backward()")


def _check(net, loss, optimizer, epochs):
    from ..layers.base import Layer

    if not isinstance(net, Layer):
        raise TypeError(f"fit: net must be an xpnet Layer, got {type(net).__name__}")
    if not isinstance(loss, Loss):
        raise TypeError(f"fit: loss must be an xpnet Loss, got {type(loss).__name__}")
    _two_inputs(loss, "fit")
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
