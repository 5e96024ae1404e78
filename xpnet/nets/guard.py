"""DivergenceGuard: the NaN/Inf guard of a training loop, reading the device once every ``every`` steps.

Reading each step's loss (``float(loss)``) stops the host until the device has finished the
step, every step. The guard instead keeps each step's 0-d loss (a reference: no device work),
and at a check, every ``every`` steps and at the end of each epoch, makes ONE host read: are all
the losses since the last check finite, and did any deferred check
(:mod:`xpnet.layers.deferred`) fail? Then:

- all is well: it keeps the state at this check, by reference (parameters are rebound, never
  mutated, so holding the arrays is free) for the parameters and buffers, by copy for the
  optimizer's state, which optimizers update in place;
- a deferred check failed: it puts that state back and raises the layer's ``ValueError`` (the
  cause: a bad label or index makes the loss NaN too);
- a loss was NaN or infinite: it puts that state back and raises :class:`TrainingDiverged`
  naming the epoch and the first bad step.

At a mid-epoch check the state kept is the one step ``j``'s forward ran with (the check comes
after step ``j``'s loss, before its update), so its loss is known to be finite; a bad step
after it loses at most ``every`` steps of work, and no bad update stays in the weights. At the
end of an epoch the state kept includes the epoch's last update; that check also requires every
parameter to be finite.

The default ``every`` (:data:`DEFAULT_EVERY` = 50) was measured on the digits MLP (numpy, one
thread, Adam, batch 32, 45 steps an epoch of 0.68 ms): a check (its read, and the copy of
Adam's two state arrays per parameter) took 0.09-0.11 ms, so ``every=1`` made the epoch 14-17%
slower, ``every=10`` about 4%, and ``every=50`` about 1% (README, "A training step that never
waits"). On a GPU a read waits for all queued work (tens of microseconds, and the device
idles while the host catches up) and the copies are device memcopies: 50 steps amortize both
to microseconds a step, while a divergence then throws away at most 49 steps of training that
would have been discarded anyway. The copy holds the optimizer state twice: ``restore=False``
keeps none (and puts nothing back).

A hand loop::

    guard = DivergenceGuard(net, opt, every=50)
    for epoch in range(1, epochs + 1):
        guard.begin_epoch(epoch, len(loader))
        for xb, yb in loader:
            opt.zero_grad(); out = net(xb); value = loss(out, yb)
            guard.observe(value)            # may raise (after putting the last good state back)
            net.backward(loss.backward(), input_grad=False); opt.step()
        guard.end_epoch()
"""

from __future__ import annotations

import math

from .. import backends
from ..layers import deferred

#: steps between two host reads of the guard (see the module doc for the measurement)
DEFAULT_EVERY = 50


class DivergenceGuard:
    """Watch the losses of a training loop for NaN/Inf, reading the device every ``every`` steps.

    ``net``: the Layer trained (its parameters and buffers are put back on divergence);
    ``optimizer``: its Optimizer (its parameters and state too); ``every``: a positive int, or
    None to check only at :meth:`end_epoch` (and explicit :meth:`check` calls); ``restore``: False
    keeps no state and puts nothing back (it only raises), for a model whose optimizer state
    is too large to hold twice (Adam's: two arrays per parameter); ``checks``: the
    :class:`~xpnet.layers.deferred.DeferredChecks` to read with the losses (default: the active
    ``deferred_checks()`` block's, if any); the guard numbers its steps into it (``epoch``,
    ``step``) so that a deferred error names the step. ``on_diverged(error)``:
    given the :class:`TrainingDiverged` about to be raised on a non-finite loss or weight (its
    ``epoch``, ``step``, ``value``, and ``restored``: which state was put back, in words, None
    with ``restore=False``), returns the exception to raise instead (default: that one).

    ``epoch``, ``step``: where the loop is (1-based; ``step`` within the epoch); ``reads``: host
    reads made so far.
    """

    def __init__(self, net, optimizer, every=DEFAULT_EVERY, *, restore=True, checks=None, on_diverged=None):
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ValueError(f"DivergenceGuard: every must be a positive int or None, got {every!r}")
        self.net, self.optimizer, self.every, self.restore = net, optimizer, every, bool(restore)
        self.checks, self.on_diverged = checks, on_diverged
        self.epoch, self.step, self.steps = 1, 0, None
        self.reads = 0
        self._chunks, self._tail = [], []  # the losses since the last check: stacked (older), 0-d
        params = {id(p): p for p in list(net.parameters()) + list(optimizer.params)}
        self._params = list(params.values())
        self._buffers = [(owner, attr) for _, owner, attr, is_param in net.state_entries() if not is_param]
        self._saved = self._snapshot()
        self._saved_at = "before the first step"

    # -- the loop's calls -----------------------------------------------------------------
    def begin_epoch(self, epoch: int, steps=None):
        """Start epoch ``epoch`` (1-based) of ``steps`` steps (None: unknown; only for messages)."""
        if self._tail or self._chunks:
            self.check()
        self.epoch, self.step, self.steps = int(epoch), 0, steps
        self._number(1)

    def observe(self, loss):
        """Note this step's loss (a 0-d device array); every ``every``-th call runs :meth:`check`."""
        self.step += 1
        tail = self._tail
        tail.append(loss)
        if len(tail) >= deferred.FOLD:  # bounded device memory when checks are rare
            self._chunks.append(backends.namespace_of(loss).stack(tail))
            self._tail = []
        self._number(self.step + 1)  # what the next forward's deferred checks belong to
        if self.every is not None and self._pending() >= self.every:
            self.check()

    def end_epoch(self):
        """The epoch's last check, which also requires every parameter to be finite."""
        self.check(weights=True)
        self._saved_at = f"at the end of epoch {self.epoch}"

    def check(self, weights: bool = False):
        """One host read of the losses since the last check and of the deferred checks (and, with
        ``weights``, of every parameter's finiteness). Keeps the state when all is well; else
        puts the last kept state back and raises (see the class doc)."""
        checks = self._deferred()
        flags = checks.flags() if checks is not None else []
        losses = self._losses()
        if losses:
            xp = backends.namespace_of(losses[0])
            flags.append(~xp.all(xp.isfinite(deferred.flatten(xp, losses))))
        if weights:
            flags += self._weight_flags()
        if not flags:
            return
        self.reads += 1
        if not deferred.any_true(flags):
            if checks is not None:
                checks.clear()
            self._kept()
            return
        restored = self._saved_at if self.restore else None
        self._restore()
        error = checks.failure() if checks is not None else None  # the error path reads freely
        if error is not None:
            self._kept(snapshot=False)
            raise error
        step, value = self._first_bad()
        self._kept(snapshot=False)
        if step is None:  # the losses were finite: the epoch's last update made a weight non-finite
            raise self._error(self.epoch, self.steps or self.step, math.nan, restored,
                              f"fit: a weight became NaN or infinite in epoch {self.epoch}")
        raise self._error(self.epoch, step, value, restored)

    # -- state -------------------------------------------------------------------------------
    def _snapshot(self):
        if not self.restore:
            return None
        opt_state = [{k: _copy(v) for k, v in st.items()} for st in self.optimizer.state]
        return ([p.data for p in self._params], [getattr(o, a) for o, a in self._buffers], opt_state)

    def _kept(self, snapshot=True):
        """Forget the losses checked; keep the current state (the last check's ``step``)."""
        self._chunks, self._tail = [], []
        if snapshot:
            self._saved = self._snapshot()
            self._saved_at = f"at epoch {self.epoch}, step {self.step}" if self.step else self._saved_at

    def _restore(self):
        if self._saved is None:
            return
        datas, buffers, opt_state = self._saved
        for p, d in zip(self._params, datas):
            p.data = d
        for (owner, attr), b in zip(self._buffers, buffers):
            setattr(owner, attr, b)
        for st, saved in zip(self.optimizer.state, opt_state):
            st.clear()  # in place: the optimizer's groups hold these same dicts
            st.update(saved)
        self._saved = self._snapshot()  # what was put back is live now, and updated in place from here

    def _weight_flags(self):
        flags = []
        for p in self._params:
            xp = backends.namespace_of(p.data)
            flags.append(~xp.all(xp.isfinite(p.data)))
        return flags

    # -- messages --------------------------------------------------------------------------
    def _first_bad(self):
        """``(step, value)`` of the first non-finite loss since the last check, or ``(None, None)``."""
        losses = self._losses()
        if not losses:
            return None, None
        xp = backends.namespace_of(losses[0])
        host = backends.to_numpy(deferred.flatten(xp, losses))
        for k, v in enumerate(host.tolist()):
            if not math.isfinite(v):
                return self.step - len(host) + k + 1, v
        return None, None

    def _error(self, epoch, step, value, restored, message=None):
        from .fit import TrainingDiverged  # here: fit imports this module

        of = f" of {self.steps}" if self.steps else ""
        message = message or f"fit: the loss became {value} at epoch {epoch}, step {step}{of}"
        back = ("with the weights, buffers and optimizer state put back as they were " + restored if restored
                else "with the weights as they were then")
        error = TrainingDiverged(f"{message}; training stopped, {back}", epoch, step, None, None)
        error.value, error.restored = value, restored
        return error if self.on_diverged is None else self.on_diverged(error)

    def _losses(self):
        tail = self._tail
        if len(tail) > 1:
            tail = [backends.namespace_of(tail[0]).stack(tail)]
        return self._chunks + tail

    def _pending(self):
        return len(self._tail) + sum(int(c.shape[0]) for c in self._chunks)

    def _deferred(self):
        return self.checks if self.checks is not None else deferred.active()

    def _number(self, step):
        checks = self._deferred()
        if checks is not None:
            checks.epoch, checks.step = self.epoch, step


def _copy(v):
    """An optimizer-state entry kept apart from the live one: arrays copied (they are updated in
    place), numbers as they are."""
    if isinstance(v, (bool, int, float)) or v is None:
        return v
    return backends.namespace_of(v).asarray(v, copy=True)
