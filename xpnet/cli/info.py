"""``xpnet info``: the backends usable here, with devices and versions, and why the others are not."""

from __future__ import annotations

import platform
import sys

HELP = "list the backends usable here (devices, versions) and why the others are unavailable"


def add_arguments(parser):
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args) -> int:
    from .. import __version__, backends

    avail = backends.available()
    if args.json:
        import json

        print(json.dumps({
            "xpnet": __version__, "python": platform.python_version(), "default": _default_label(backends),
            "backends": {k: {"usable": a.usable, "detail": a.detail} for k, a in avail.items()},
        }, indent=2))
        return 0
    print(f"xpnet {__version__} on Python {platform.python_version()} ({sys.platform})")
    print(f"default backend: {_default_label(backends)} (set {backends.ENV_VAR} or --backend to change it)")
    width = max(len(k) for k in avail)
    for name, a in avail.items():
        print(f"  {name:<{width}}  {'yes' if a.usable else 'no '}  {a.detail}")
    return 0


def _default_label(backends):
    try:
        return backends.get().label
    except (backends.BackendUnavailable, ValueError) as e:
        return f"unusable ({e})"
