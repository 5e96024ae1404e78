"""The ``xpnet`` command: ``xpnet train``, ``xpnet evaluate``, ``xpnet predict``, ``xpnet export``,
``xpnet info``, ``xpnet bench``.

Each subcommand lives in its own module, which defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int`` (the exit status).

Every error a user can cause is one line on stderr, ``xpnet <command>: error: ...``, never a
traceback, with exit status

- 2, a usage error: a bad argument, path, model spec, checkpoint or data set, found by argparse,
  raised as :class:`UsageError`, or any of :data:`USER_ERRORS` escaping from the library;
- 1, a run failure (:class:`RunFailure`): training diverged, or writing the outputs failed
  once training had begun.

The subcommands check what they can before they start the work (``xpnet train`` checks its
output directory, its model and its data before the first epoch), so that a usage error costs
no training time. Any other exception type is a bug in xpnet and keeps its traceback; with
``XPNET_TRACEBACK=1`` set, every error does.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = ("train", "evaluate", "predict", "info", "bench", "export")
DEBUG_VAR = "XPNET_TRACEBACK"
MAX_MESSAGE = 2000  # characters; a longer message (a crafted file's contents, say) is cut

#: The exception types that a user's input can cause anywhere in the library, each documented
#: there: ValueError (bad values; CheckpointError, a damaged or crafted checkpoint; a model that
#: does not fit the data), TypeError (a value of the wrong type, e.g. from a spec file), KeyError
#: (a missing entry in a spec or a checkpoint), OSError (paths: missing, a file for a directory,
#: unwritable, too long; DatasetUnavailable), RecursionError (a spec or checkpoint nested too
#: deeply), MemoryError (a model too large to allocate), OverflowError (a size beyond any float).
USER_ERRORS = (ValueError, TypeError, KeyError, OSError, RecursionError, MemoryError, OverflowError)


class UsageError(Exception):
    """A bad argument found after parsing (a missing file, an unusable backend): exit status 2."""


class RunFailure(Exception):
    """The run failed once under way (divergence, an output that could not be written): exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(prog="xpnet", description="Neural networks from scratch on NumPy, CuPy and PyTorch.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        mod = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _prog=p.prog, _parser=p)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from ..nets.fit import TrainingDiverged

    try:
        return int(args._run(args) or 0)
    except UsageError as e:
        return _report(args, e, 2)
    except (RunFailure, TrainingDiverged) as e:
        return _report(args, e, 1)
    except USER_ERRORS as e:
        return _report(args, e, 2)
    except KeyboardInterrupt:
        print(f"{args._prog}: interrupted", file=sys.stderr)
        return 130


def _report(args, e, status):
    if os.environ.get(DEBUG_VAR):  # for a bug report: where it came from, not just what
        raise e
    print(f"{args._prog}: error: {one_line(describe(e))}", file=sys.stderr)
    return status


def describe(e) -> str:
    """What went wrong, in words, for any exception (``str(e)`` where that says it)."""
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        where = os.fsdecode(e.filename)
        if e.filename2 is not None:
            where += f" -> {os.fsdecode(e.filename2)}"
        return f"{where}: {e.strerror}"
    if isinstance(e, KeyError):  # str() of a KeyError is the bare key
        return f"missing key {e.args[0]!r}" if e.args else "a missing key"
    if isinstance(e, RecursionError):
        return "nested too deeply (Python's recursion limit was reached)"
    if isinstance(e, MemoryError):
        return f"out of memory{f': {e}' if str(e) else ''}"
    return str(e) or type(e).__name__


def one_line(text: str) -> str:
    """``text`` as one printable line of at most :data:`MAX_MESSAGE` characters: lines joined
    (a line ending with ``:`` runs on into the next), control characters escaped."""
    parts = [p.strip() for p in str(text).splitlines() if p.strip()]
    out = ""
    for p in parts:
        out = p if not out else f"{out} {p}" if out.endswith(":") else f"{out}; {p}"
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in out)
    if len(out) > MAX_MESSAGE:  # cut in the middle: the start says where, the end often what
        cut = len(out) - MAX_MESSAGE + 40
        half = (MAX_MESSAGE - 40) // 2
        out = f"{out[:half]} ... ({cut:,} characters left out) ... {out[-half:]}"
    return out
