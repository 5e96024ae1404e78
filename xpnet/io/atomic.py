"""Atomic file writes: a crash mid-write never leaves a half-written file under the final name."""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path`` for writing; on a clean exit it is flushed, fsynced
    and renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows); on an exception it
    is deleted and ``path`` is left as it was. Parent directories are created."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _create_temp(path):
    # Not tempfile.mkstemp: it creates the file with mode 0600, and the rename would carry that mode
    # to the final file. A file opened with 0666 gets the permissions the umask gives any new file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"atomic_write: could not create a temporary file beside {path}")


def _fsync_dir(directory):
    # the rename itself is durable only once the directory entry is on disk (POSIX)
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open directories; its rename is already durable
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
