"""Argument types for the ``xpnet`` subcommands: each bad value becomes a one-line argparse error."""

from __future__ import annotations

import argparse
import pathlib


def positive_int(s):
    return _int(s, 1, "a positive integer")


def nonneg_int(s):
    return _int(s, 0, "an integer >= 0")


def seed_arg(s):
    """A generator seed: every backend takes 0 <= seed < 2**63 (torch's is a signed 64-bit integer)."""
    return _int(s, 0, "an integer from 0 to 2**63 - 1", hi=2**63 - 1)


def _int(s, lo, what, hi=None):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {s!r}") from None
    if v < lo or (hi is not None and v > hi):
        raise argparse.ArgumentTypeError(f"must be {what}, got {s!r}")
    return v


def positive_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {s!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {s!r}")
    return v


def nonneg_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {s!r}") from None
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {s!r}")
    return v


def backend_arg(s):
    """A backend name, checked against the known names (whether it is usable is checked later)."""
    from xpnet import backends

    base = s.partition(":")[0]
    if base not in backends.NAMES:
        raise argparse.ArgumentTypeError(f"unknown backend {base!r}; valid names are {', '.join(backends.NAMES)}")
    return s


def data_arg(s):
    """One of xpnet's data sets by name, or the path of a data file (``.npz``, ``.csv``, or any
    existing file: what it holds is checked when it is read)."""
    from .datafile import is_file
    from .recipes import DATASETS

    if s in DATASETS or (s and is_file(s)):
        return s
    if pathlib.PurePath(s).suffix or "/" in s:  # meant as a file: say that it is not there
        raise argparse.ArgumentTypeError(f"{s!r}: no such file (a data file: .npz, .csv, or a text file for "
                                         f"--model gpt or lstm; or a data set: {', '.join(DATASETS)})")
    choices = ", ".join(map(repr, DATASETS))
    raise argparse.ArgumentTypeError(f"invalid choice: {s!r} (choose from {choices}; or the path of a .npz or .csv "
                                     "file, or of a text file for --model gpt or lstm)")


def metrics_arg(s):
    """A comma-separated list of metric names (``f1,top5``), each one that ``xpnet.metrics.get``
    knows; returned as that list, joined by commas without spaces."""
    from xpnet import metrics

    names = [n.strip() for n in s.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected metric names separated by commas, e.g. f1,top5, got {s!r}")
    try:
        metrics.resolve(names, "--metrics")
    except (ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(str(e).replace("metrics.get: ", "")) from None
    return ",".join(names)
