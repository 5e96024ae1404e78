"""Argument types for the ``xpnet`` subcommands: each bad value becomes a one-line argparse error."""

from __future__ import annotations

import argparse


def positive_int(s):
    return _int(s, 1, "a positive integer")


def nonneg_int(s):
    return _int(s, 0, "an integer >= 0")


def _int(s, lo, what):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {s!r}") from None
    if v < lo:
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


def backend_arg(s):
    """A backend name, checked against the known names (whether it is usable is checked later)."""
    from xpnet import backends

    base = s.partition(":")[0]
    if base not in backends.NAMES:
        raise argparse.ArgumentTypeError(f"unknown backend {base!r}; valid names are {', '.join(backends.NAMES)}")
    return s
