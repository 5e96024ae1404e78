"""Output directories checked before any work: ``xpnet train --out`` and ``xpnet bench --out``.

:func:`check` inspects, without creating anything, whether ``directory`` can hold the named
files: every component short enough for its file system, no file where a directory must be
(the directory itself, or any directory above it), a directory one may write in, and none of
the files already a directory. (An existing read-only file is no obstacle: every output is
written to a temporary file renamed over it.) :func:`prepare` then creates the directory
and writes (and deletes) a probe file in it, which catches what inspection cannot (a read-only
file system, a quota, a special file system that refuses new entries). Both raise
:class:`~xpnet.cli.UsageError` naming the option, the path and the problem.

:func:`clear` removes the outputs an earlier run left in a directory (:data:`RUN_OUTPUTS` and
:data:`RUN_PLOTS`, and the temporary files of interrupted writes to them), and nothing else,
so that a run directory describes one run.

Unwritable directories: :func:`check` asks ``os.access`` (effective ids), which for root says
yes almost everywhere; the probe write in :func:`prepare` is what refuses them then.
"""

from __future__ import annotations

import os
import pathlib
import stat
import tempfile

from . import UsageError

#: what every ``xpnet train`` run writes into its output directory, besides the plots
RUN_OUTPUTS = ("last.xpnet", "best.xpnet", "history.json", "metrics.json")
#: every PNG ``xpnet train`` may write there
RUN_PLOTS = ("curves.png", "confusion.png", "misclassified.png", "decision_boundary.png")

# atomic writes go through a temporary sibling named ".<name>.<random>.tmp" (xpnet.io.atomic,
# xpnet.plot): up to 26 bytes longer than the name itself
_TEMP_EXTRA = 26


def check(option, directory, names=()) -> None:
    """Raise UsageError unless ``directory`` exists as a writable directory, or can be created,
    and each file of ``names`` can be written into it (see the module docstring)."""
    text = os.fspath(directory)
    where = f"{option} {_show(text)}"
    if not text:
        raise UsageError(f"{option}: an empty path")
    if "\0" in text:
        raise UsageError(f"{option} {text!r}: a path cannot contain a NUL character")
    path = pathlib.Path(text)
    parts = path.absolute().parts
    cur = pathlib.Path(parts[0])
    missing = []
    for i, part in enumerate(parts[1:], 1):
        if missing:
            missing.append(part)
            continue
        _name_fits(where, cur, part)
        nxt = cur / part
        try:
            st = os.stat(nxt)
        except FileNotFoundError:
            missing.append(part)
            continue
        except OSError as e:
            raise UsageError(f"{where}: cannot use {_show(nxt)}: {e.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            if i == len(parts) - 1:
                raise UsageError(f"{where}: this is a file, not a directory")
            raise UsageError(f"{where}: {_show(nxt)} is a file, so there can be no directory below it")
        cur = nxt
    for part in missing:  # to be created: their names must fit what the nearest existing directory allows
        _name_fits(where, cur, part)
    for name in names:
        _name_fits(where, cur, name, extra=_TEMP_EXTRA)
        _path_fits(where, cur, path / name)
    if not os.access(cur, os.W_OK | os.X_OK, **_effective()):
        what = "create it in" if missing else "write in"
        raise UsageError(f"{where}: cannot {what} {_show(cur)}: permission denied")
    if missing:
        return
    for name in names:
        target = path / name
        try:
            st = os.stat(target)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise UsageError(f"{where}: cannot use {_show(target)}: {e.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{where}: {_show(target)} is a directory, where the run must write a file")


def prepare(option, directory) -> None:
    """Create ``directory`` (and its parents) and write a probe file in it; on failure remove
    the directories just created and raise UsageError."""
    path = pathlib.Path(directory)
    created = []
    d = path
    while not d.exists() and d != d.parent:
        created.append(d)
        d = d.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".xpnet-probe-", suffix=".tmp") as f:
            f.write(b"x")
            f.flush()
    except OSError as e:
        for d in created:  # deepest first: only what this call made, and only if still empty
            try:
                d.rmdir()
            except OSError:
                break
        raise UsageError(f"{option} {_show(directory)}: cannot write there: {e.strerror or e}") from None


def _name_fits(where, parent, name, extra=0):
    limit = _conf(parent, "PC_NAME_MAX", 255)
    size = len(os.fsencode(name)) + extra
    if size > limit:
        short = name if len(name) <= 40 else f"{name[:20]}...{name[-10:]}"
        what = f"the name {short!r} is {len(os.fsencode(name))} bytes long"
        if extra:
            what += f" (with its temporary file's {extra} more)"
        raise UsageError(f"{where}: {what}; the file system allows names of at most {limit} bytes")


def _path_fits(where, parent, target):
    limit = _conf(parent, "PC_PATH_MAX", 4096)
    size = len(os.fsencode(os.fspath(target))) + _TEMP_EXTRA
    if size >= limit:
        raise UsageError(f"{where}: the path {_show(target)} would be {size} bytes long with its temporary file; "
                         f"this system allows at most {limit - 1}")


def _show(path, limit=120):
    """``path`` for a message: a long one cut in the middle."""
    text = os.fspath(path)
    return text if len(text) <= limit else f"{text[:limit // 2 - 2]}...{text[-(limit // 2 - 1):]}"


def _conf(path, name, default):
    try:
        value = os.pathconf(path, name)
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or no such limit
        return default
    return value if value and value > 0 else default


def _effective():
    return {"effective_ids": True} if os.access in os.supports_effective_ids else {}


def clear(directory, names=RUN_OUTPUTS + RUN_PLOTS) -> list:
    """Remove the files ``names`` from ``directory`` (and the temporary files that interrupted
    writes to them left behind); returns the names removed. A directory of that name is left
    alone (:func:`check` refuses one first)."""
    from ..io.atomic import remove_stale_temps

    path = pathlib.Path(directory)
    removed = []
    for name in names:
        target = path / name
        remove_stale_temps(target)
        try:
            if stat.S_ISDIR(os.lstat(target).st_mode):
                continue
            os.unlink(target)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise UsageError(f"cannot remove the earlier run's {_show(target)}: {e.strerror}") from None
        removed.append(name)
    return removed
