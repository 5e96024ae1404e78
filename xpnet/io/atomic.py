"""Atomic file writes: a crash mid-write never leaves a half-written file under the final name.

A write to ``dir/name`` goes to a temporary file ``dir/.name.<12 hex digits>.xpnet-tmp``
(:data:`TEMP_SUFFIX`), renamed over ``dir/name`` once complete. A process killed mid-write
leaves its temporary file behind; the next write to the same ``dir/name`` deletes such
leftovers: files of exactly that pattern for exactly that name, and only those that no live
writer holds (each writer keeps an exclusive ``flock`` on its temporary file while it writes,
and the lock dies with its process). Nothing else in the directory is touched.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import secrets

try:
    import fcntl
except ImportError:  # Windows: an open file cannot be deleted there, which protects a live writer
    fcntl = None

#: what every temporary file's name ends with
TEMP_SUFFIX = ".xpnet-tmp"
_TOKEN_HEX = 12


def temp_pattern(path) -> re.Pattern:
    """The names of the temporary files of writes to ``path``: ``.<name>.<12 hex>.xpnet-tmp``."""
    name = pathlib.Path(path).name
    return re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{{_TOKEN_HEX}}}{re.escape(TEMP_SUFFIX)}")


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path`` for writing; on a clean exit it is flushed, fsynced
    and renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows); on an exception it
    is deleted and ``path`` is left as it was. Parent directories are created, and temporary
    files that killed writes to ``path`` left behind are deleted (see the module doc)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if fcntl is not None:
                os.replace(tmp, path)  # while the lock is held: no cleaner can take the file for a leftover
        if fcntl is None:
            os.replace(tmp, path)  # Windows renames only closed files
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def remove_stale_temps(path) -> list:
    """Delete the temporary files of earlier, interrupted writes to ``path`` whose writer is
    gone; returns their paths. Files of any other name are never touched."""
    path = pathlib.Path(path)
    pattern = temp_pattern(path)
    removed = []
    try:
        with os.scandir(path.parent) as it:
            names = [e.name for e in it if e.name.startswith(".") and pattern.fullmatch(e.name)]
    except OSError:
        return removed
    for name in names:
        tmp = path.parent / name
        if _is_stale(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
                removed.append(tmp)
    return removed


def _is_stale(tmp):
    """Nobody holds the file's lock (its writer died); False when that cannot be told."""
    if fcntl is None:
        return True  # Windows refuses to delete a file that a live writer has open
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False  # a live writer holds it (or the filesystem has no locks: then keep the file)
    finally:
        os.close(fd)  # drops our lock too


def _create_temp(path):
    # Not tempfile.mkstemp: it creates the file with mode 0600, and the rename would carry that mode
    # to the final file. A file opened with 0666 gets the permissions the umask gives any new file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(_TOKEN_HEX // 2)}{TEMP_SUFFIX}"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        if _lock(fd, tmp):
            return fd, tmp
        os.close(fd)  # a cleaner took it for a leftover between our open and our lock: try another name
    raise FileExistsError(f"atomic_write: could not create a temporary file beside {path}")


def _lock(fd, tmp):
    """Take the writer's lock on the new temporary file; False if it was deleted meanwhile."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True  # a filesystem without flock: write unlocked, as before
    try:
        return os.stat(tmp).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


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
