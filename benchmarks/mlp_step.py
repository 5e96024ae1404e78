#!/usr/bin/env python
"""One training step of xpnet against the same net in plain PyTorch, side by side.

Workloads: a 784-512-256-10 ReLU MLP at batch 32, 256 and 1024, and a 2-16-2 ReLU
net at batch 32; softmax cross-entropy, SGD (lr 0.01, momentum 0.9).

    python benchmarks/mlp_step.py                 # full run, 2 threads
    python benchmarks/mlp_step.py --threads 1 --json results.json
    python benchmarks/mlp_step.py --quick         # under a minute

Each side runs in its own fresh process, with the BLAS/OpenMP thread variables set
before numpy or torch is imported: xpnet on each backend (numpy and torch on the CPU;
torch:cuda and cupy where a GPU is usable), and the plain-PyTorch peer (torch.nn,
torch.optim.SGD, F.cross_entropy) on each device. The xpnet-numpy process never
imports torch. Every side starts from the same weights (through the state dict) and
trains on the same random batches; the processes alternate over several rounds, so
slow drift of the machine reaches both sides alike. Peak host memory is measured in
two more fresh processes, one with only xpnet on numpy and one with only torch.
See benchmarks/README.md for the method.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402  (standard library only: safe before numpy/torch)

SCRIPT = os.path.abspath(__file__)
SIZES = {"mlp": (784, 512, 256, 10), "tiny": (2, 16, 2)}
WORKLOAD_NAMES = {"mlp": "MLP 784-512-256-10", "tiny": "2-16-2"}
WORKLOADS = (("mlp", 32), ("mlp", 256), ("mlp", 1024), ("tiny", 32))
BACKENDS = ("numpy", "torch", "torch:cuda", "cupy")  # never array_api_strict: it is not a performance backend
LR, MOMENTUM = 0.01, 0.9
POOL = 4  # distinct random batches, cycled, so that no run trains on one batch for thousands of steps
MEM_BATCH, MEM_STEPS = 1024, 20
SEED = 0

# rounds: fresh processes per side, alternating; repeats: per workload in each process
FULL = {"rounds": 4, "repeats": 3, "repeat_s": 0.3, "warmup_s": 0.4}
QUICK = {"rounds": 2, "repeats": 2, "repeat_s": 0.1, "warmup_s": 0.15}


def step_flops(sizes, batch):
    """Multiply-add FLOPs of one step: forward, dW for every layer, dx for all but the first."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    fwd = sum(2 * batch * i * o for i, o in pairs)
    return 2 * fwd + sum(2 * batch * i * o for i, o in pairs[1:])


# =====================================================================================
# workers (each in its own process)
# =====================================================================================
def _torch_net(torch, sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(a, b))
    return torch.nn.Sequential(*layers)


def _xpnet_net(xn, sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(xn.ReLU())
        layers.append(xn.Linear(a, b))
    return xn.Sequential(*layers)


def worker_probe(cfg):
    """Which backends are usable here, and the versions of everything involved."""
    import numpy as np
    import array_api_compat

    import xpnet
    from xpnet import backends

    versions = {"xpnet": xpnet.__version__, "numpy": np.__version__, "array_api_compat": array_api_compat.__version__}
    try:
        cfg_np = np.show_config(mode="dicts")
        blas = cfg_np.get("Build Dependencies", {}).get("blas", {})
        versions["numpy_blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        pass
    avail = {}
    for spec, a in backends.available().items():
        if spec in BACKENDS:
            avail[spec] = {"usable": a.usable, "detail": a.detail}
    if "torch" in sys.modules:
        import torch

        versions["torch"] = torch.__version__
        try:
            info = torch.__config__.parallel_info().splitlines()
            versions["torch_parallel"] = "; ".join(
                l.strip() for l in info if l.strip().startswith(("ATen parallel backend", "MKL", "OpenMP", "MKLDNN"))
            )
        except Exception:
            pass
        if torch.cuda.is_available():
            versions["cuda_device"] = torch.cuda.get_device_name(0)
    if "cupy" in sys.modules:
        versions["cupy"] = sys.modules["cupy"].__version__
    return {"available": avail, "versions": versions}


def worker_time(cfg):
    """Time every workload on one side: xpnet on one backend, or the PyTorch peer on one device.

    Only the libraries that side needs are imported (the xpnet-numpy process never imports
    torch). Both sides start from the same weights, xpnet's numpy initialisation with the
    same seed, loaded through the state dict, and train on the same random batches.
    """
    threads, side, spec = cfg["threads"], cfg["side"], cfg["backend"]
    H.check_thread_env(threads)
    import numpy as np

    import xpnet as xn
    from xpnet import backends

    if side == "pytorch" or spec.startswith("torch"):
        import torch

        torch.set_num_threads(threads)
    if side == "pytorch":
        import torch.nn.functional as F

        dev = torch.device(spec)
        if dev.type == "cuda":
            sync = torch.cuda.synchronize
        else:
            def sync():
                pass
        describe = f"torch {torch.__version__} on {dev} ({torch.get_num_threads()} threads)"
    else:
        be = backends.get(spec)
        sync = be.synchronize
        describe = be.describe()
    gpu = spec in ("cupy", "torch:cuda", "cuda")
    timing = dict(repeats=cfg["repeats"], target_s=cfg["repeat_s"], warmup_s=cfg["warmup_s"],
                  min_block_s=1e-2 if gpu else 2e-3)
    out = {"side": side, "backend": spec, "describe": describe, "rows": []}

    # this library's own GEMM rate in this process (float32, 1024^3): the ceiling
    rng = np.random.default_rng(SEED)
    a_np, b_np = (rng.standard_normal((1024, 1024), dtype=np.float32) for _ in range(2))
    if side == "pytorch":
        ga, gb = torch.from_numpy(a_np).to(dev), torch.from_numpy(b_np).to(dev)
    else:
        ga, gb = be.asarray(a_np), be.asarray(b_np)
    g = H.time_steps(lambda: ga @ gb, sync, **{**timing, "repeats": 3, "target_s": min(0.15, timing["target_s"])})
    out["gemm_gflops"] = 2 * 1024**3 / H.summarize(g["per_repeat_s"], 1)["median_s"] / 1e9
    del ga, gb

    for wl, batch in cfg["workloads"]:
        sizes = SIZES[wl]
        xn.manual_seed(SEED)
        with backends.use("numpy"):
            init = _xpnet_net(xn, sizes).state_dict()  # the same initial weights on every side
        rng = np.random.default_rng([SEED, batch, sizes[0]])
        np_xs = [rng.standard_normal((batch, sizes[0]), dtype=np.float32) for _ in range(POOL)]
        np_ys = [rng.integers(0, sizes[-1], size=batch, dtype=np.int64) for _ in range(POOL)]

        if side == "pytorch":
            tnet = _torch_net(torch, sizes)
            tnet.load_state_dict({k: torch.from_numpy(backends.to_numpy(v)) for k, v in init.items()})
            tnet.to(dev)
            topt = torch.optim.SGD(tnet.parameters(), lr=LR, momentum=MOMENTUM)
            xs = [torch.from_numpy(a).to(dev) for a in np_xs]
            ys = [torch.from_numpy(b).to(dev) for b in np_ys]

            def train(x, y):
                topt.zero_grad()
                loss = F.cross_entropy(tnet(x), y)
                loss.backward()
                topt.step()
                return loss

            def read(loss):
                return float(loss.item())
        else:
            with backends.use(be):
                net = _xpnet_net(xn, sizes)
            net.load_state_dict(init)
            loss_fn = xn.CrossEntropyLoss()
            opt = xn.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
            xs = [be.asarray(a, dtype="float32") for a in np_xs]
            ys = [be.asarray(b) for b in np_ys]

            def train(x, y):
                opt.zero_grad()
                loss = loss_fn(net(x), y)
                net.backward(loss_fn.backward(), input_grad=False)
                opt.step()
                return loss

            def read(loss):
                return float(backends.to_numpy(loss))

        # the first two losses, for the same-net check against the other side (outside the timing)
        first = [read(train(xs[i], ys[i])) for i in range(2)]
        it = [0]

        def step():
            i = it[0] = (it[0] + 1) % POOL
            train(xs[i], ys[i])  # no read-back of the loss: a GPU step stays asynchronous

        res = H.time_steps(step, sync, **timing)
        out["rows"].append({"wl": wl, "batch": batch, **res, "first_losses": first,
                            "final_loss": read(train(xs[0], ys[0]))})
    out["libraries_loaded"] = sorted(
        {m.partition(".")[0] for m in sys.modules} & {"numpy", "torch", "cupy", "array_api_strict", "xpnet"}
    )
    if side == "xpnet" and spec == "numpy" and "torch" in out["libraries_loaded"]:
        raise RuntimeError("the xpnet-numpy process imported torch")
    return out


def worker_memory(cfg):
    """Peak RSS of a batch-1024 MLP training loop, with only one of xpnet-on-numpy or torch imported."""
    threads = cfg["threads"]
    H.check_thread_env(threads)
    sizes, side = SIZES["mlp"], cfg["side"]
    if side == "xpnet":
        import numpy as np

        import xpnet as xn
        from xpnet import backends

        after_import = H.peak_rss_mb()
        be = backends.get("numpy")
        with backends.use(be):
            net = _xpnet_net(xn, sizes)
        loss_fn = xn.CrossEntropyLoss()
        opt = xn.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
        rng = np.random.default_rng(SEED)
        x = be.asarray(rng.standard_normal((MEM_BATCH, sizes[0]), dtype=np.float32), dtype="float32")
        y = be.asarray(rng.integers(0, sizes[-1], size=MEM_BATCH, dtype=np.int64))

        def step():
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            net.backward(loss_fn.backward(), input_grad=False)
            opt.step()
            return loss
    else:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(threads)
        after_import = H.peak_rss_mb()
        torch.manual_seed(SEED)
        tnet = _torch_net(torch, sizes)
        topt = torch.optim.SGD(tnet.parameters(), lr=LR, momentum=MOMENTUM)
        x = torch.randn(MEM_BATCH, sizes[0])
        y = torch.randint(0, sizes[-1], (MEM_BATCH,))

        def step():
            topt.zero_grad()
            loss = F.cross_entropy(tnet(x), y)
            loss.backward()
            topt.step()
            return loss

    for _ in range(MEM_STEPS):
        step()
    peak = H.peak_rss_mb()
    libs = sorted({m.partition(".")[0] for m in sys.modules} & {"numpy", "torch", "cupy", "array_api_strict", "xpnet"})
    if side == "xpnet" and "torch" in libs:
        raise RuntimeError("the xpnet-numpy memory process imported torch; its peak would not be xpnet's own")
    return {"side": side, "after_import_mb": after_import, "peak_mb": peak, "steps": MEM_STEPS,
            "batch": MEM_BATCH, "libraries_loaded": libs}


WORKERS = {"probe": worker_probe, "time": worker_time, "memory": worker_memory}


# =====================================================================================
# the driver
# =====================================================================================
def _peer_of(backend):
    return "cuda" if backend in ("cupy", "torch:cuda") else "cpu"


def combine(procs, results, chosen):
    """Rows of the table from every process's results: per-repeat times pooled over the rounds;
    the ratio's spread pairs repeat j of round r of one side with repeat j of round r of the other
    (each round runs both sides back to back)."""
    rows = []
    for w, (wl, batch) in enumerate(WORKLOADS):
        for b in chosen:
            xr = [res["rows"][w] for res in results[("xpnet", b)]]
            tr = [res["rows"][w] for res in results[("pytorch", _peer_of(b))]]
            xsum = H.summarize([t for r in xr for t in r["per_repeat_s"]], batch)
            tsum = H.summarize([t for r in tr for t in r["per_repeat_s"]], batch)
            # repeat j of round r on one side against repeat j of round r on the other
            paired = [tt / xt for x, t in zip(xr, tr) for xt, tt in zip(x["per_repeat_s"], t["per_repeat_s"])]
            diff = max(abs(a - c) / max(abs(c), 1e-12) for a, c in zip(xr[0]["first_losses"], tr[0]["first_losses"]))
            flops = step_flops(SIZES[wl], batch)
            rows.append({
                "workload": WORKLOAD_NAMES[wl], "wl": wl, "net": list(SIZES[wl]), "batch": batch, "backend": b,
                "peer": f"torch:{_peer_of(b)}",
                "xpnet": {**xsum, "steps": sum(r["steps"] for r in xr), "gflops": flops / xsum["median_s"] / 1e9,
                          "minor_faults_per_step": statistics.median(r["minor_faults_per_step"] for r in xr),
                          "first_losses": xr[0]["first_losses"], "final_losses": [r["final_loss"] for r in xr]},
                "torch": {**tsum, "steps": sum(r["steps"] for r in tr), "gflops": flops / tsum["median_s"] / 1e9,
                          "minor_faults_per_step": statistics.median(r["minor_faults_per_step"] for r in tr),
                          "first_losses": tr[0]["first_losses"], "final_losses": [r["final_loss"] for r in tr]},
                "ratio": tsum["median_s"] / xsum["median_s"],
                "ratio_paired": paired, "ratio_min": min(paired), "ratio_max": max(paired),
                "flops_per_step": flops, "first_loss_rel_diff": diff,
            })
    return rows


def _pct(v, med):
    return f"{100 * (v / med - 1):+.0f}%"


def _us(s):
    return f"{s * 1e6:,.0f} us" if s < 1e-2 else f"{s * 1e3:,.1f} ms"


def format_table(rows, threads, timing):
    head = ("workload", "batch", "backend", "xpnet samples/s", "PyTorch samples/s", "ratio",
            "spread: ratio | xpnet | PyTorch", "step xpnet / PyTorch")
    lines = []
    for r in rows:
        x, t, b = r["xpnet"], r["torch"], r["batch"]
        spread = (f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f} | "
                  f"{_pct(b / x['max_s'], x['samples_per_s'])} {_pct(b / x['min_s'], x['samples_per_s'])} | "
                  f"{_pct(b / t['max_s'], t['samples_per_s'])} {_pct(b / t['min_s'], t['samples_per_s'])}")
        lines.append((r["workload"], str(b), r["backend"], f"{x['samples_per_s']:,.0f}", f"{t['samples_per_s']:,.0f}",
                      f"{r['ratio']:.2f}", spread, f"{_us(x['median_s'])} / {_us(t['median_s'])}"))
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    right = {1, 3, 4, 5}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    n = timing["rounds"] * timing["repeats"]
    title = (f"One training step (softmax CE, SGD lr {LR} momentum {MOMENTUM}), {threads} thread(s) on both sides. "
             f"Median of {n} repeats of ~{timing['repeat_s']} s ({timing['rounds']} alternating rounds of fresh "
             f"processes); ratio = xpnet / PyTorch samples/s. Spread: min-max of the ratio over paired repeats, then "
             f"min/max of each side's per-repeat throughput relative to its median.")
    return "\n".join([title, fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_worker":
        cfg = json.loads(argv[1])
        H.emit(WORKERS[cfg["kind"]](cfg))
        return 0

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for numpy/OpenBLAS and torch, both sides (default 2)")
    p.add_argument("--quick", action="store_true", help="fewer, shorter repeats (under a minute)")
    p.add_argument("--json", metavar="PATH", help="write the results and a machine description to PATH")
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help=f"comma-separated xpnet backends to time, among those usable (default {','.join(BACKENDS)})")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in wanted if b not in BACKENDS]
    if bad:
        p.error(f"unknown backend(s) {bad}; choose among {', '.join(BACKENDS)}")
    timing = QUICK if args.quick else FULL
    threads = args.threads

    def run(cfg):
        return H.run_worker(SCRIPT, ["_worker", json.dumps(cfg)], threads)

    print(f"probing backends ({threads} thread(s))...", file=sys.stderr)
    probe = run({"kind": "probe", "threads": threads})
    machine = H.machine_description(threads, probe["versions"])
    if not probe["available"].get("torch", {}).get("usable"):
        print("mlp_step.py needs PyTorch for the peer it compares against: "
              + probe["available"].get("torch", {}).get("detail", "torch is not usable"), file=sys.stderr)
        return 2
    chosen, skipped = [], {}
    for b in wanted:
        a = probe["available"].get(b)
        if a and a["usable"]:
            chosen.append(b)
        else:
            skipped[b] = a["detail"] if a else "not probed"

    # one process per side per round: the PyTorch peer on each device used, and xpnet on each backend
    procs = []
    for dev in ("cpu", "cuda"):
        mine = [b for b in chosen if _peer_of(b) == dev]
        if mine:
            procs += [("pytorch", dev)] + [("xpnet", b) for b in mine]
    results = {pr: [] for pr in procs}
    for rnd in range(timing["rounds"]):
        for side, spec in (procs if rnd % 2 == 0 else procs[::-1]):
            print(f"round {rnd + 1}/{timing['rounds']}: {side} on {spec}...", file=sys.stderr)
            results[(side, spec)].append(run({
                "kind": "time", "side": side, "backend": spec, "threads": threads, "workloads": WORKLOADS,
                "repeats": timing["repeats"], "repeat_s": timing["repeat_s"], "warmup_s": timing["warmup_s"],
            }))
    rows = combine(procs, results, chosen)

    memory = None
    if not args.no_memory:
        print("measuring peak memory (two fresh processes)...", file=sys.stderr)
        memory = {side: run({"kind": "memory", "side": side, "threads": threads}) for side in ("xpnet", "torch")}

    print()
    v = probe["versions"]
    print(f"{machine['date']} | CPU: {machine['cpu_model']} ({machine['cpus_usable']} usable) | "
          + ", ".join(f"{k} {v[k]}" for k in ("xpnet", "numpy", "numpy_blas", "torch", "cupy", "cuda_device") if k in v))
    print(format_table(rows, threads, timing))
    for pr in procs:
        gf = [r["gemm_gflops"] for r in results[pr]]
        print(f"GEMM ceiling, float32 1024^3, {pr[0]} process on {pr[1]}: median {statistics.median(gf):.0f} GFLOP/s "
              f"(rounds: {', '.join(f'{g:.0f}' for g in gf)})")
    for r in rows:
        if r["first_loss_rel_diff"] > 1e-3:
            print(f"WARNING: {r['workload']} batch {r['batch']} on {r['backend']}: the first losses differ "
                  f"(xpnet {r['xpnet']['first_losses']}, PyTorch {r['torch']['first_losses']}); not the same net?")
    foreign = {f"{s}:{b}": [r.get("_foreign_cpu") for r in results[(s, b)]] for s, b in procs}
    worst = max((f for fs in foreign.values() for f in fs if f is not None), default=None)
    if worst is not None:
        print(f"Other processes' CPU use during the timing processes: at most {worst:.0%} of all CPUs"
              + (" -- WARNING: the machine was busy; these figures are unreliable, rerun on a quiet machine"
                 if worst > 0.05 else " (quiet)"))
    for b, why in skipped.items():
        print(f"skipped backend {b}: {why}")
    if memory:
        xm, tm = memory["xpnet"], memory["torch"]
        gx, gt = xm["peak_mb"] - xm["after_import_mb"], tm["peak_mb"] - tm["after_import_mb"]
        print()
        print(f"Peak host memory (ru_maxrss), MLP batch {MEM_BATCH}, {MEM_STEPS} training steps, each in its own fresh process:")
        print(f"  xpnet-numpy {xm['peak_mb']:7.1f} MB (after imports {xm['after_import_mb']:.1f} MB; modules: {', '.join(xm['libraries_loaded'])})")
        print(f"  PyTorch     {tm['peak_mb']:7.1f} MB (after imports {tm['after_import_mb']:.1f} MB; modules: {', '.join(tm['libraries_loaded'])})")
        print(f"  ratio xpnet / PyTorch: {xm['peak_mb'] / tm['peak_mb']:.2f} of the peak; "
              f"growth past the imports {gx:.1f} MB vs {gt:.1f} MB" + (f" ({gx / gt:.2f})" if gt > 0 else ""))

    if args.json:
        doc = {
            "machine": {**machine, "processes": {f"{s}:{b}": results[(s, b)][0]["describe"] for s, b in procs},
                        "foreign_cpu_per_process": foreign},
            "config": {"threads": threads, "quick": args.quick, **timing, "lr": LR, "momentum": MOMENTUM,
                       "data_pool": POOL, "seed": SEED},
            "results": rows,
            "gemm_ceiling_gflops": {f"{s}:{b}": [r["gemm_gflops"] for r in results[(s, b)]] for s, b in procs},
            "skipped": skipped, "memory": memory,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
