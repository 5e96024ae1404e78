"""One rank's failure ends every rank, with a message that names it.

A rank that raises while the others wait in a collective would leave them waiting for ever.
Inside :func:`together`, an exception on a rank of a world larger than one prints
``xpnet: rank R of N: <error>; stopping every rank`` on stderr and ends the job: MPI's
``Abort`` where MPI started the ranks (mpiexec then ends every process at once), else this
process exits and the launcher (torchrun) ends the others. Files are never left half-written:
every checkpoint and output goes through an atomic rename (:mod:`xpnet.io.atomic`), so a kill
mid-write leaves the previous file whole.

A rank that dies (killed, out of memory) cannot speak; its launcher ends the others and says
which process died: mpiexec (MPICH) prints its PID, exit code and signal, torchrun its rank.
``xpnet train`` prints each rank's PID at the start of a run, so that either names the rank.
"""

from __future__ import annotations

import contextlib

#: the exit status of a job ended by an interrupt (Ctrl-C), as a shell reports it
INTERRUPTED = 130


@contextlib.contextmanager
def together(comm, passthrough=(), status=1):
    """Run the block; an exception in it ends every rank (see :func:`fail`)."""
    try:
        yield
    except BaseException as e:
        fail(comm, e, passthrough, status)
        raise


def fail(comm, error, passthrough=(), status=1):
    """Where ``comm`` has more than one rank, end every rank for ``error`` with exit ``status``
    (130 for an interrupt), naming this rank; otherwise, or when ``error`` is one of
    ``passthrough`` (raised on every rank at once, such as fit's TrainingDiverged, decided on
    figures every rank shares), return, for the caller to raise it."""
    if comm is None or comm.size == 1 or isinstance(error, passthrough):
        return
    if isinstance(error, KeyboardInterrupt):
        comm.abort("interrupted; stopping every rank", INTERRUPTED)
    comm.abort(f"{type(error).__name__}: {error}; stopping every rank", status)
