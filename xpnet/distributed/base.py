"""The communicator interface, and the world of one.

A :class:`Communicator` is one process's view of a group of ``size`` processes (ranks
``0 .. size-1``). Its collectives are called by every rank, in the same order, with arrays of
the same shapes and dtypes; each returns new arrays (the inputs are never modified):

- ``broadcast(arrays, root=0)``: every rank gets ``root``'s values;
- ``allreduce(arrays)``: every rank gets the elementwise sums over the ranks;
- ``barrier()``: returns once every rank has called it;
- ``allreduce_host(values)``: sums of a few Python numbers (figures, once an epoch);
- ``allgather_object(obj)`` / ``broadcast_object(obj)``: small picklable objects, off the hot path;
- ``abort(message, status)``: print ``message`` naming this rank and end every rank's process.

A list of arrays travels as one flat buffer per dtype (one engine call, not one per array):
:meth:`Communicator.allreduce` concatenates the arrays of each dtype, hands the engine the
flat buffer, and cuts the result back into arrays of the original shapes. Engines implement
``_allreduce_flat(flat)`` and ``_broadcast_flat(flat, root)`` on such a fresh 1-D buffer
(they may write into it).
"""

from __future__ import annotations

import math
import os
import sys

from .. import backends
from ..backends import _buffers


class Communicator:
    """Base class: ``rank``, ``size``, ``engine`` (its name) and the collectives above."""

    engine = ""
    rank = 0
    size = 1
    #: this rank's index among the ranks of its machine (picks its GPU)
    local_rank = 0

    # -- arrays ---------------------------------------------------------------------------
    def allreduce(self, arrays) -> list:
        """The elementwise sums over the ranks of each array of ``arrays`` (a list), as new arrays."""
        return self._flat_call(list(arrays), self._allreduce_flat)

    def broadcast(self, arrays, root: int = 0) -> list:
        """Rank ``root``'s values of each array of ``arrays``, on every rank, as new arrays."""
        self._check_root(root)
        return self._flat_call(list(arrays), lambda flat: self._broadcast_flat(flat, root))

    def _flat_call(self, arrays, call):
        if self.size == 1 or not arrays:
            return arrays
        out = [None] * len(arrays)
        for idx in _by_dtype(arrays):
            group = [arrays[i] for i in idx]
            be = backends.backend_of(group[0])
            flat = call(flatten(be.xp, group))
            for i, a in zip(idx, unflatten(be.xp, flat, group)):
                out[i] = a
        return out

    def _allreduce_flat(self, flat):
        raise NotImplementedError

    def _broadcast_flat(self, flat, root):
        raise NotImplementedError

    # -- host values ------------------------------------------------------------------------
    def allreduce_host(self, values) -> list:
        """The sums over the ranks of a few numbers (Python floats back; float64 on the way)."""
        values = list(values)
        if self.size == 1:
            return [float(v) for v in values]
        return _buffers.to_list(self._allreduce_host_buffer(_buffers.floats(values)))

    def _allreduce_host_buffer(self, buf):
        return self._allreduce_flat(buf)

    def allgather_object(self, obj) -> list:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        return [obj]

    def broadcast_object(self, obj, root: int = 0):
        """Rank ``root``'s ``obj`` on every rank."""
        return obj

    def barrier(self) -> None:
        """Wait until every rank has called it."""

    # -- ending ---------------------------------------------------------------------------
    def abort(self, message: str, status: int = 1):
        """Print ``message`` (one line, prefixed with this rank) to stderr and end every rank."""
        say(self, message)
        self._abort(status)

    def _abort(self, status):
        os._exit(status)

    def close(self) -> None:
        """Release the engine (at the end of the program; the collectives fail afterwards)."""

    def _check_root(self, root):
        if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < self.size:
            raise ValueError(f"{type(self).__name__}: root must be a rank in [0, {self.size}), got {root!r}")

    @property
    def is_main(self) -> bool:
        """True on rank 0, the rank that prints and writes files."""
        return self.rank == 0

    def describe(self) -> str:
        return f"{self.size} rank{'s' if self.size != 1 else ''} over {self.engine}"

    def __repr__(self):
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class Single(Communicator):
    """The world of one: rank 0 of 1, no engine. Every collective returns its input as it is,
    so it costs nothing and the same training script runs alone."""

    engine = "single"

    def _allreduce_flat(self, flat):
        return flat

    def _broadcast_flat(self, flat, root):
        return flat


def say(comm, message):
    """Write ``message`` to stderr as one line naming the rank (``xpnet: rank 1 of 2: ...``)."""
    text = " ".join(str(message).split())
    sys.stderr.write(f"xpnet: rank {comm.rank} of {comm.size}: {text}\n")
    sys.stderr.flush()


def flatten(xp, arrays):
    """One new 1-D array holding ``arrays`` (all of one dtype and device) one after another."""
    return xp.concat([xp.reshape(a, (-1,)) for a in arrays], axis=0)


def unflatten(xp, flat, like):
    """Arrays of the shapes of ``like`` cut in order out of the 1-D ``flat``."""
    out, at = [], 0
    for a in like:
        n = math.prod(a.shape)
        out.append(xp.reshape(flat[at:at + n], tuple(a.shape)))
        at += n
    return out


def _by_dtype(arrays):
    """The indices of ``arrays`` grouped by dtype (and array type), in order of first appearance."""
    groups = {}
    for i, a in enumerate(arrays):
        groups.setdefault((type(a), str(a.dtype)), []).append(i)
    return list(groups.values())
