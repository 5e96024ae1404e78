"""``xpnet bench``: time xpnet on every usable backend against the same nets in plain PyTorch.

The method and the meaning of every column are in ``benchmarks/README.md``; the harness
itself is :mod:`xpnet.bench`.
"""

from __future__ import annotations

import argparse

HELP = "time xpnet on each usable backend (CPU, GPU) against the same nets in plain PyTorch"


def _names(text, valid, what):
    from . import UsageError

    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return tuple(valid)
    if not names:
        raise UsageError(f"--{what} needs at least one name among {', '.join(valid)}")
    bad = [n for n in names if n not in valid]
    if bad:
        raise UsageError(f"unknown {what} {', '.join(bad)}; choose among {', '.join(valid)}")
    return tuple(dict.fromkeys(names))


def add_arguments(parser):
    from ..bench.sides import BACKENDS
    from ..bench.workloads import DEFAULT_WORKLOADS, MODES, WORKLOADS

    parser.add_argument("--quick", action="store_true",
                        help="one short round and 3-point scaling curves: under 2 minutes on a 2-core CPU")
    parser.add_argument("--steps", type=int, metavar="N",
                        help="time exactly N steps per repeat, after N warm-up steps (default: by time)")
    parser.add_argument("--repeats", type=int, metavar="N", help="repeats per row and round (default 5, quick 3)")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="fresh-process rounds per row, alternating order (default 3, quick 1)")
    parser.add_argument("--backends", default=",".join(BACKENDS), metavar="LIST",
                        help=f"comma-separated xpnet backends among {', '.join(BACKENDS)}; those unusable here "
                             "are skipped with the reason (default: all)")
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS), metavar="LIST",
                        help=f"comma-separated workloads among {', '.join(WORKLOADS)} "
                             f"(default: the classifiers {','.join(DEFAULT_WORKLOADS)}; 'all' for every one)")
    parser.add_argument("--modes", default=",".join(MODES), metavar="LIST",
                        help="train (a training step), infer (forward only), or both (default)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for every CPU row, xpnet and PyTorch alike (default: the usable CPUs)")
    parser.add_argument("--out", metavar="DIR", help="write bench.json and the PNG charts to DIR")
    parser.add_argument("--no-peer", dest="peer", action="store_false",
                        help="skip the plain-PyTorch peer rows (no ratios)")
    parser.add_argument("--scaling", action=argparse.BooleanOptionalAction, default=True,
                        help="time the scaling curves: throughput against batch size and width (default: on)")


def run(args) -> int:
    from . import UsageError
    from ..bench import run as bench_run
    from ..bench.machine import usable_cpus
    from ..bench.settings import preset
    from ..bench.sides import BACKENDS
    from ..bench.workloads import MODES, WORKLOADS

    for opt in ("steps", "repeats", "rounds", "threads"):
        v = getattr(args, opt)
        if v is not None and v < 1:
            raise UsageError(f"--{opt} must be at least 1, got {v}")
    settings = preset(
        args.quick, args.threads or usable_cpus(), steps=args.steps, repeats=args.repeats,
        backends=_names(args.backends, BACKENDS, "backends"), workloads=_names(args.workloads, tuple(WORKLOADS), "workloads"),
        modes=_names(args.modes, MODES, "modes"), peer=args.peer, scaling=args.scaling,
        **({"rounds": args.rounds} if args.rounds else {}),
    )
    if args.out is not None:  # before the measurements, which take minutes
        from . import paths

        paths.check("--out", args.out, ("bench.json", "throughput.png", "scaling.png"))
        paths.prepare("--out", args.out)
    try:
        return bench_run.run(settings, args.out)
    except bench_run.NothingToRun as e:
        raise UsageError(str(e)) from None
