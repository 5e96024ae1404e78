"""Deferred checks: a layer validates its input on the device during a training step, and the
error is raised later, after one host read for every check together.

On a GPU a check such as ``bool(xp.any(idx >= n))`` stops the host until the device has run
everything queued before it. Inside :func:`deferred_checks`, the layers that check values
(``Embedding``'s index range, ``CrossEntropyLoss``'s class labels) do not read: they compute a
0-d device flag ("this batch is bad") and the figures their message needs, make the affected
outputs NaN (and never index out of range: indices are clamped for the gather), and
:meth:`DeferredChecks.record` the flag. :func:`raise_deferred` (or leaving the block) reads all
flags at once, and raises the layer's usual ``ValueError`` with the epoch and step where it
first happened appended:

    with deferred_checks() as checks:        # what a training loop does
        for i, (xb, yb) in enumerate(loader, 1):
            checks.step = i                  # what the errors name
            ...forward, loss, backward, step...
        checks.raise_pending()               # one host read for the epoch

The rule is simple and uniform: inside the block checks are deferred, outside it every layer
checks eagerly, as it always has (a direct call raises at once). A bad batch makes the loss NaN,
so a divergence guard (:class:`xpnet.nets.guard.DivergenceGuard`) notices it too, and reads these
flags in its own single read to name the real cause.

Each record keeps only 0-d device arrays (a flag and a few figures), and every :data:`FOLD`
records of one layer are stacked into one array: one small array per 256 steps, not one per step.

Deferring costs a few array operations more than the eager checks, which branch on what they
read (CrossEntropyLoss's common case takes about 14 more small ones): where a read waits for
nothing (numpy, torch on the CPU) the eager checks are the cheaper; deferring is for devices.
"""

from __future__ import annotations

import contextlib
import contextvars

from .. import backends

_ACTIVE = contextvars.ContextVar("xpnet_deferred_checks", default=None)

#: a layer's 0-d records are stacked into one array every FOLD records (bounded device memory)
FOLD = 256


def active():
    """The :class:`DeferredChecks` of the innermost :func:`deferred_checks` block, or None."""
    return _ACTIVE.get()


@contextlib.contextmanager
def deferred_checks(checks=None):
    """Defer the value checks of layers inside the block to ``checks`` (a new
    :class:`DeferredChecks` by default), which the block yields. Leaving the block normally
    raises what is still pending (one host read), so no error is lost; leaving it through an
    exception does not read."""
    checks = DeferredChecks() if checks is None else checks
    token = _ACTIVE.set(checks)
    try:
        yield checks
    finally:
        _ACTIVE.reset(token)
    checks.raise_pending()


def raise_deferred(checks=None):
    """Raise the first pending failure of ``checks`` (default: the active block's), after one host
    read for all of them; a no-op when nothing is deferred or nothing failed."""
    checks = active() if checks is None else checks
    if checks is not None:
        checks.raise_pending()


def any_true(flags) -> bool:
    """Whether any of ``flags`` (0-d or 1-D boolean device arrays, or numpy scalars, which live on
    the host already) holds True: one host read per array library and device among them (one,
    in practice)."""
    groups = {}
    for f in flags:
        if not hasattr(f, "__array_namespace__") and not hasattr(f, "shape"):
            raise TypeError(f"any_true expected boolean arrays, got {type(f).__name__}")
        groups.setdefault((type(f), getattr(f, "device", None)), []).append(f)
    for same in groups.values():
        try:
            xp = backends.namespace_of(same[0])
        except TypeError:  # numpy's reductions give host scalars (np.bool_): no device to wait for
            if any(bool(f) for f in same):
                return True
            continue
        if bool(xp.any(flatten(xp, same))):
            return True
    return False


def flatten(xp, arrays):
    """One 1-D array of the elements of ``arrays`` (0-d or 1-D arrays of namespace ``xp``, or
    numpy scalars), in order: one ``stack`` or ``concat``."""
    if len(arrays) == 1:
        return xp.reshape(arrays[0], (-1,))
    if all(a.ndim == 0 for a in arrays):
        return xp.stack(arrays)
    return xp.concat([xp.reshape(a, (-1,)) for a in arrays])


class DeferredChecks:
    """The checks postponed inside one :func:`deferred_checks` block.

    ``epoch`` (None, or an int) and ``step`` (an int; 0: not counted) say where a record was
    made; the loop sets them, and errors name them (``"...; first at epoch 2, step 7"``).
    """

    def __init__(self):
        self.epoch = None
        self.step = 0
        self._logs = {}

    def record(self, layer, xp, bad, values, describe, key=()):
        """Note one check of ``layer``: ``bad`` is a 0-d boolean device array of namespace ``xp``
        (True: this call's input was wrong; a numpy scalar will do), ``values`` a tuple of 0-d
        device arrays read back only if it was, and ``describe(*values)`` builds the ValueError's
        message from them (as Python numbers). ``key`` (host data, e.g. the class count) tells
        apart checks of one layer that ``describe`` words differently. No device work, no read."""
        k = (id(layer), xp, key)
        log = self._logs.get(k)
        if log is None:
            log = self._logs[k] = _Log(xp, describe)
        log.add(bad, values, (self.epoch, self.step))

    def flags(self) -> list:
        """The boolean device arrays of every pending record (for a caller that folds them into
        its own single read)."""
        return [f for log in self._logs.values() for f in log.flags()]

    def failure(self, known_bad: bool = False):
        """The ValueError of the earliest failed record (or None), and forget every record.
        One host read, unless ``known_bad`` (a caller that has read the flags already)."""
        logs = list(self._logs.values())
        self._logs.clear()
        if not logs or not (known_bad or any_true([f for log in logs for f in log.flags()])):
            return None
        found = [hit for hit in (log.first_failure() for log in logs) if hit is not None]  # the error path reads freely
        if not found:
            return None
        return ValueError(min(found, key=lambda hit: hit[0])[1])

    def raise_pending(self):
        """Raise :meth:`failure`'s error, if any (one host read)."""
        error = self.failure()
        if error is not None:
            raise error

    def clear(self):
        """Forget every record without reading it."""
        self._logs.clear()

    @property
    def pending(self) -> int:
        """How many records wait to be read."""
        return sum(log.count for log in self._logs.values())


class _Log:
    """The records of one check of one layer, in order: older ones stacked into 1-D chunks,
    newer ones as 0-d arrays, and where each was made (on the host)."""

    __slots__ = ("xp", "describe", "chunks", "tail", "where")

    def __init__(self, xp, describe):
        self.xp, self.describe = xp, describe
        self.chunks = []  # [(bad (K,), value_0 (K,), ...)]
        self.tail = []  # [(bad, value_0, ...)] 0-d arrays
        self.where = []  # (epoch, step) of every record

    @property
    def count(self):
        return len(self.where)

    def add(self, bad, values, where):
        self.tail.append((bad, *values))
        self.where.append(where)
        if len(self.tail) >= FOLD:
            self._fold()

    def _fold(self):
        xp = self.xp
        self.chunks.append(tuple(xp.stack(column) for column in zip(*self.tail)))
        self.tail = []

    def flags(self):
        # the tail's flags as one array (numpy's reductions give scalars, which are not arrays)
        tail = [self.xp.stack([t[0] for t in self.tail])] if self.tail else []
        return [c[0] for c in self.chunks] + tail

    def first_failure(self):
        """``((epoch, step), message)`` of the first failed record, or None (reads the host)."""
        if self.tail:
            self._fold()
        if not self.chunks:
            return None
        xp = self.xp
        columns = [backends.to_numpy(xp.concat(parts) if len(parts) > 1 else parts[0]) for parts in zip(*self.chunks)]
        hits = columns[0].nonzero()[0]
        if not len(hits):
            return None
        k = int(hits[0])
        epoch, step = self.where[k]
        message = self.describe(*(c[k].item() for c in columns[1:]))
        if step:
            message += f"; first at epoch {epoch}, step {step}" if epoch is not None else f"; first at step {step}"
        return ((epoch or 0, step, k), message)
