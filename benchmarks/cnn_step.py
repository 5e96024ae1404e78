#!/usr/bin/env python
"""Convolution, max-pooling and a small CNN's training step: xpnet against plain PyTorch, side by side.

Rows:
  (a) conv1:  Conv2d(1, 32, 3, padding=1), forward + backward (dx, dW, db) on (64, 1, 28, 28)
  (b) conv2:  Conv2d(32, 64, 3, padding=1), forward + backward (dx, dW, db) on (64, 32, 14, 14)
  (c) pool:   MaxPool2d(2), forward + backward on (64, 32, 28, 28)
  (d) cnn:    one training step, batch 64 on 1x28x28: Conv2d(1,32,3,padding=1)-ReLU-MaxPool2d(2)-
              Conv2d(32,64,3,padding=1)-ReLU-MaxPool2d(2)-Flatten-Linear(64*7*7,10), softmax
              cross-entropy, SGD lr 0.01 momentum 0.9 (no dx for the data, on both sides)
and the peak host memory of the small-CNN training loop, xpnet-numpy and PyTorch each in its
own fresh process.

    python benchmarks/cnn_step.py                 # full run, 2 threads
    python benchmarks/cnn_step.py --threads 1 --json results.json
    python benchmarks/cnn_step.py --quick         # about a minute
    python benchmarks/cnn_step.py --malloc-top-pad 64   # both sides with MALLOC_TOP_PAD_=64 MB (a diagnostic)

Method as benchmarks/mlp_step.py (see benchmarks/README.md): one fresh process per side per
round with the BLAS/OpenMP thread variables set before numpy or torch is imported, processes
alternating over rounds, medians of per-repeat medians with their spread, and the peer's own
GEMM ceiling measured in the same process. The PyTorch peer uses torch.nn.functional (conv2d,
max_pool2d) with autograd for the layer rows and torch.nn + torch.optim.SGD for the CNN row;
it starts from the same weights (xpnet's numpy initialisation, through the state dict) and
sees the same data. The xpnet-numpy process never imports torch. The table's last column
gives the minor page faults per step of each side: memory that the step touched fresh because
the allocator had returned it to the OS (costly on this VM; --malloc-top-pad changes that).
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
BATCH = 64
WORKLOADS = ("conv1", "conv2", "pool", "cnn")
WORKLOAD_NAMES = {
    "conv1": "(a) Conv2d 1->32 3x3 p1, 28x28, fwd+bwd",
    "conv2": "(b) Conv2d 32->64 3x3 p1, 14x14, fwd+bwd",
    "pool": "(c) MaxPool2d 2, 32x28x28, fwd+bwd",
    "cnn": "(d) small CNN training step",
}
CONV = {"conv1": (1, 32, 28), "conv2": (32, 64, 14)}  # in channels, out channels, spatial size
POOL_SHAPE = (BATCH, 32, 28, 28)
BACKENDS = ("numpy", "torch", "torch:cuda", "cupy")  # never array_api_strict: it is not a performance backend
LR, MOMENTUM = 0.01, 0.9
POOL = 4  # distinct random batches, cycled
MEM_STEPS = 20
SEED = 0

FULL = {"rounds": 4, "repeats": 3, "repeat_s": 0.4, "warmup_s": 0.5}
QUICK = {"rounds": 2, "repeats": 2, "repeat_s": 0.15, "warmup_s": 0.2}


def conv_flops(cin, cout, size, k=3, dx=True):
    """Multiply-add FLOPs of a stride-1 'same' conv: forward and dW, plus dx if asked."""
    one = 2 * BATCH * cout * size * size * cin * k * k
    return one * (3 if dx else 2)


def workload_flops(wl):
    if wl in CONV:
        return conv_flops(*CONV[wl])
    if wl == "cnn":
        return conv_flops(1, 32, 28, dx=False) + conv_flops(32, 64, 14) + 3 * 2 * BATCH * 64 * 7 * 7 * 10
    return 0  # pooling: no multiply-adds worth counting


# =====================================================================================
# the nets, on each side
# =====================================================================================
def _xpnet_cnn(xn, MaxPool2d, Conv2d):
    return xn.Sequential(
        Conv2d(1, 32, 3, padding=1), xn.ReLU(), MaxPool2d(2),
        Conv2d(32, 64, 3, padding=1), xn.ReLU(), MaxPool2d(2),
        xn.Flatten(), xn.Linear(64 * 7 * 7, 10),
    )


def _torch_cnn(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10),
    )


def _xpnet_layers():
    from xpnet.layers.conv import Conv2d
    from xpnet.layers.pooling import MaxPool2d

    return Conv2d, MaxPool2d


# =====================================================================================
# workers (each in its own process)
# =====================================================================================
def worker_probe(cfg):
    """Which backends are usable here, and the versions of everything involved."""
    import numpy as np
    import array_api_compat

    import xpnet
    from xpnet import backends

    versions = {"xpnet": xpnet.__version__, "numpy": np.__version__, "array_api_compat": array_api_compat.__version__}
    try:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        versions["numpy_blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        pass
    avail = {spec: {"usable": a.usable, "detail": a.detail} for spec, a in backends.available().items() if spec in BACKENDS}
    if "torch" in sys.modules:
        import torch

        versions["torch"] = torch.__version__
        if torch.cuda.is_available():
            versions["cuda_device"] = torch.cuda.get_device_name(0)
    if "cupy" in sys.modules:
        versions["cupy"] = sys.modules["cupy"].__version__
    return {"available": avail, "versions": versions}


def _data(np, wl):
    """POOL (input, cotangent-or-labels) pairs of numpy data for a workload, the same on every side."""
    rng = np.random.default_rng([SEED, WORKLOADS.index(wl)])
    if wl in CONV:
        cin, cout, s = CONV[wl]
        return [(rng.standard_normal((BATCH, cin, s, s), dtype=np.float32),
                 rng.standard_normal((BATCH, cout, s, s), dtype=np.float32)) for _ in range(POOL)]
    if wl == "pool":
        n, c, h, w = POOL_SHAPE
        return [(rng.standard_normal(POOL_SHAPE, dtype=np.float32),
                 rng.standard_normal((n, c, h // 2, w // 2), dtype=np.float32)) for _ in range(POOL)]
    return [(rng.standard_normal((BATCH, 1, 28, 28), dtype=np.float32),
             rng.integers(0, 10, size=BATCH, dtype=np.int64)) for _ in range(POOL)]


def worker_time(cfg):
    """Time every workload on one side: xpnet on one backend, or the PyTorch peer on one device."""
    threads, side, spec = cfg["threads"], cfg["side"], cfg["backend"]
    H.check_thread_env(threads)
    import numpy as np

    import xpnet as xn
    from xpnet import backends

    Conv2d, MaxPool2d = _xpnet_layers()
    if side == "pytorch" or spec.startswith("torch"):
        import torch

        torch.set_num_threads(threads)
    if side == "pytorch":
        import torch.nn.functional as F

        dev = torch.device(spec)
        sync = torch.cuda.synchronize if dev.type == "cuda" else H._nosync
        describe = f"torch {torch.__version__} on {dev} ({torch.get_num_threads()} threads)"
    else:
        be = backends.get(spec)
        sync = be.synchronize
        describe = be.describe()
    gpu = spec in ("cupy", "torch:cuda", "cuda")
    timing = dict(repeats=cfg["repeats"], target_s=cfg["repeat_s"], warmup_s=cfg["warmup_s"],
                  min_block_s=1e-2 if gpu else 2e-3)
    out = {"side": side, "backend": spec, "describe": describe, "rows": []}

    rng = np.random.default_rng(SEED)
    a_np, b_np = (rng.standard_normal((1024, 1024), dtype=np.float32) for _ in range(2))
    if side == "pytorch":
        ga, gb = torch.from_numpy(a_np).to(dev), torch.from_numpy(b_np).to(dev)
    else:
        ga, gb = be.asarray(a_np), be.asarray(b_np)
    g = H.time_steps(lambda: ga @ gb, sync, **{**timing, "repeats": 3, "target_s": min(0.15, timing["target_s"])})
    out["gemm_gflops"] = 2 * 1024**3 / H.summarize(g["per_repeat_s"], 1)["median_s"] / 1e9
    del ga, gb

    for wl in cfg["workloads"]:
        data = _data(np, wl)
        xn.manual_seed(SEED)
        with backends.use("numpy"):  # the same initial weights on every side
            if wl in CONV:
                cin, cout, _ = CONV[wl]
                init = Conv2d(cin, cout, 3, padding=1).state_dict()
            elif wl == "cnn":
                init = _xpnet_cnn(xn, MaxPool2d, Conv2d).state_dict()
            else:
                init = {}
        if side == "pytorch":
            tdata = [(torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev)) for a, b in data]
            params = {k: torch.from_numpy(backends.to_numpy(v)).to(dev) for k, v in init.items()}
            if wl in CONV:
                wt, bt = params["weight"].requires_grad_(True), params["bias"].requires_grad_(True)

                def run(x, dy):
                    x = x.detach().requires_grad_(True)  # dx is computed, as on the xpnet side
                    y = F.conv2d(x, wt, bt, padding=1)
                    y.backward(dy)
                    wt.grad = bt.grad = None
                    return y
            elif wl == "pool":
                def run(x, dy):
                    x = x.detach().requires_grad_(True)
                    y = F.max_pool2d(x, 2)
                    y.backward(dy)
                    return y
            else:
                tnet = _torch_cnn(torch)
                tnet.load_state_dict(params)
                tnet.to(dev)
                topt = torch.optim.SGD(tnet.parameters(), lr=LR, momentum=MOMENTUM)

                def run(x, y):
                    topt.zero_grad()
                    loss = F.cross_entropy(tnet(x), y)
                    loss.backward()
                    topt.step()
                    return loss

            def read(v):
                return float((v.detach().double() ** 2).sum().item())
        else:
            tdata = [(be.asarray(a), be.asarray(b)) for a, b in data]
            with backends.use(be):
                if wl in CONV:
                    cin, cout, _ = CONV[wl]
                    layer = Conv2d(cin, cout, 3, padding=1)
                    layer.load_state_dict(init)

                    def run(x, dy):
                        y = layer(x)
                        layer.backward(dy)
                        layer.zero_grad()
                        return y
                elif wl == "pool":
                    layer = MaxPool2d(2)

                    def run(x, dy):
                        y = layer(x)
                        layer.backward(dy)
                        return y
                else:
                    net = _xpnet_cnn(xn, MaxPool2d, Conv2d)
                    net.load_state_dict(init)
                    loss_fn = xn.CrossEntropyLoss()
                    opt = xn.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)

                    def run(x, y):
                        opt.zero_grad()
                        loss = loss_fn(net(x), y)
                        net.backward(loss_fn.backward(), input_grad=False)
                        opt.step()
                        return loss

            def read(v):
                v = be.xp.astype(v, be.dtype("float64"))
                return float(be.xp.sum(v * v))

        # sums of squares of the first two outputs (losses for the CNN), for the same-computation check against the other side
        first = [read(run(*tdata[i])) for i in range(2)]
        it = [0]

        def step():
            i = it[0] = (it[0] + 1) % POOL
            run(*tdata[i])  # no read-back: a GPU step stays asynchronous

        res = H.time_steps(step, sync, **timing)
        out["rows"].append({"wl": wl, **res, "first": first})
    out["libraries_loaded"] = sorted(
        {m.partition(".")[0] for m in sys.modules} & {"numpy", "torch", "cupy", "array_api_strict", "xpnet"}
    )
    if side == "xpnet" and spec == "numpy" and "torch" in out["libraries_loaded"]:
        raise RuntimeError("the xpnet-numpy process imported torch")
    return out


def worker_memory(cfg):
    """Peak RSS of the small-CNN training loop, with only one of xpnet-on-numpy or torch imported."""
    threads, side = cfg["threads"], cfg["side"]
    H.check_thread_env(threads)
    if side == "xpnet":
        import numpy as np

        import xpnet as xn
        from xpnet import backends

        Conv2d, MaxPool2d = _xpnet_layers()
        after_import = H.peak_rss_mb()
        be = backends.get("numpy")
        with backends.use(be):
            net = _xpnet_cnn(xn, MaxPool2d, Conv2d)
        loss_fn = xn.CrossEntropyLoss()
        opt = xn.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
        x, y = (be.asarray(a) for a in _data(np, "cnn")[0])

        def step():
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            net.backward(loss_fn.backward(), input_grad=False)
            opt.step()
            return loss
    else:
        import numpy as np
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(threads)
        after_import = H.peak_rss_mb()
        torch.manual_seed(SEED)
        tnet = _torch_cnn(torch)
        topt = torch.optim.SGD(tnet.parameters(), lr=LR, momentum=MOMENTUM)
        x, y = (torch.from_numpy(a) for a in _data(np, "cnn")[0])

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
            "batch": BATCH, "libraries_loaded": libs}


WORKERS = {"probe": worker_probe, "time": worker_time, "memory": worker_memory}


# =====================================================================================
# the driver
# =====================================================================================
def _peer_of(backend):
    return "cuda" if backend in ("cupy", "torch:cuda") else "cpu"


def combine(results, chosen, workloads):
    rows = []
    for w, wl in enumerate(workloads):
        for b in chosen:
            xr = [res["rows"][w] for res in results[("xpnet", b)]]
            tr = [res["rows"][w] for res in results[("pytorch", _peer_of(b))]]
            xsum = H.summarize([t for r in xr for t in r["per_repeat_s"]], BATCH)
            tsum = H.summarize([t for r in tr for t in r["per_repeat_s"]], BATCH)
            paired = [tt / xt for x, t in zip(xr, tr) for xt, tt in zip(x["per_repeat_s"], t["per_repeat_s"])]
            diff = max(abs(a - c) / max(abs(c), 1e-12) for a, c in zip(xr[0]["first"], tr[0]["first"]))
            flops = workload_flops(wl)
            rows.append({
                "workload": WORKLOAD_NAMES[wl], "wl": wl, "batch": BATCH, "backend": b, "peer": f"torch:{_peer_of(b)}",
                "xpnet": {**xsum, "steps": sum(r["steps"] for r in xr),
                          "gflops": flops / xsum["median_s"] / 1e9 if flops else None,
                          "minor_faults_per_step": statistics.median(r["minor_faults_per_step"] for r in xr),
                          "first": xr[0]["first"]},
                "torch": {**tsum, "steps": sum(r["steps"] for r in tr),
                          "gflops": flops / tsum["median_s"] / 1e9 if flops else None,
                          "minor_faults_per_step": statistics.median(r["minor_faults_per_step"] for r in tr),
                          "first": tr[0]["first"]},
                "ratio": tsum["median_s"] / xsum["median_s"],
                "ratio_paired": paired, "ratio_min": min(paired), "ratio_max": max(paired),
                "flops_per_step": flops, "first_rel_diff": diff,
            })
    return rows


def _pct(v, med):
    return f"{100 * (v / med - 1):+.0f}%"


def _ms(s):
    return f"{s * 1e3:,.2f}"


def format_table(rows, threads, timing):
    head = ("workload", "backend", "xpnet ms", "PyTorch ms", "ratio", "spread: ratio | xpnet | PyTorch",
            "GFLOP/s xpnet / PyTorch", "faults/step xpnet / PyTorch")
    lines = []
    for r in rows:
        x, t = r["xpnet"], r["torch"]
        spread = (f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f} | "
                  f"{_pct(x['min_s'], x['median_s'])} {_pct(x['max_s'], x['median_s'])} | "
                  f"{_pct(t['min_s'], t['median_s'])} {_pct(t['max_s'], t['median_s'])}")
        gf = f"{x['gflops']:.0f} / {t['gflops']:.0f}" if x["gflops"] else "-"
        faults = f"{x['minor_faults_per_step']:,.0f} / {t['minor_faults_per_step']:,.0f}"
        lines.append((r["workload"], r["backend"], _ms(x["median_s"]), _ms(t["median_s"]), f"{r['ratio']:.2f}",
                      spread, gf, faults))
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    right = {2, 3, 4}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    n = timing["rounds"] * timing["repeats"]
    title = (f"Batch {BATCH}, float32, {threads} thread(s) on both sides. Median time per step of {n} repeats of "
             f"~{timing['repeat_s']} s ({timing['rounds']} alternating rounds of fresh processes); ratio = PyTorch time / "
             f"xpnet time (above 1: xpnet faster). Spread: min-max of the ratio over paired repeats, then each side's "
             f"fastest/slowest repeat relative to its median. Layer rows compute dx, dW and db on both sides.")
    return "\n".join([title, fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_worker":
        cfg = json.loads(argv[1])
        H.emit(WORKERS[cfg["kind"]](cfg))
        return 0

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for numpy/OpenBLAS and torch, both sides (default 2)")
    p.add_argument("--quick", action="store_true", help="fewer, shorter repeats (about a minute)")
    p.add_argument("--json", metavar="PATH", help="write the results and a machine description to PATH")
    p.add_argument("--backends", default="numpy",
                   help=f"comma-separated xpnet backends to time, among {', '.join(BACKENDS)} (default numpy)")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma-separated rows to run, among {', '.join(WORKLOADS)} (default all)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--malloc-top-pad", type=int, metavar="MB",
                   help="run every worker (both sides) with glibc's MALLOC_TOP_PAD_ set to MB megabytes, to see how "
                        "much the allocator's page faults cost each side (default: unset). Setting it also turns off "
                        "glibc's dynamic mmap threshold: on the 2-core dev VM, 64 MB made PyTorch's CNN step 2x slower "
                        "(17,000 faults per step) and xpnet's about the same")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in wanted if b not in BACKENDS]
    if bad:
        p.error(f"unknown backend(s) {bad}; choose among {', '.join(BACKENDS)}")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in workloads if w not in WORKLOADS]
    if bad:
        p.error(f"unknown workload(s) {bad}; choose among {', '.join(WORKLOADS)}")
    timing = QUICK if args.quick else FULL
    threads = args.threads
    if args.malloc_top_pad is not None:
        os.environ["MALLOC_TOP_PAD_"] = str(args.malloc_top_pad * 2**20)  # inherited by every worker
    malloc = os.environ.get("MALLOC_TOP_PAD_")

    def run(cfg):
        return H.run_worker(SCRIPT, ["_worker", json.dumps(cfg)], threads)

    print(f"probing backends ({threads} thread(s))...", file=sys.stderr)
    probe = run({"kind": "probe", "threads": threads})
    machine = H.machine_description(threads, probe["versions"])
    if not probe["available"].get("torch", {}).get("usable"):
        print("cnn_step.py needs PyTorch for the peer it compares against: "
              + probe["available"].get("torch", {}).get("detail", "torch is not usable"), file=sys.stderr)
        return 2
    chosen, skipped = [], {}
    for b in wanted:
        a = probe["available"].get(b)
        if a and a["usable"]:
            chosen.append(b)
        else:
            skipped[b] = a["detail"] if a else "not probed"

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
                "kind": "time", "side": side, "backend": spec, "threads": threads, "workloads": workloads,
                "repeats": timing["repeats"], "repeat_s": timing["repeat_s"], "warmup_s": timing["warmup_s"],
            }))
    rows = combine(results, chosen, workloads)

    memory = None
    if not args.no_memory:
        print("measuring peak memory (two fresh processes)...", file=sys.stderr)
        memory = {side: run({"kind": "memory", "side": side, "threads": threads}) for side in ("xpnet", "torch")}

    print()
    v = probe["versions"]
    load = machine.get("load_average_at_start")
    print(f"{machine['date']} | load average at start {', '.join(f'{l:.2f}' for l in load) if load else '?'} | "
          f"CPU: {machine['cpu_model']} ({machine['cpus_usable']} usable) | "
          + ", ".join(f"{k} {v[k]}" for k in ("xpnet", "numpy", "numpy_blas", "torch", "cupy", "cuda_device") if k in v))
    print(format_table(rows, threads, timing))
    print(f"glibc malloc: {'MALLOC_TOP_PAD_=' + malloc + ' (both sides)' if malloc else 'default settings'}")
    for pr in procs:
        gf = [r["gemm_gflops"] for r in results[pr]]
        print(f"GEMM ceiling, float32 1024^3, {pr[0]} process on {pr[1]}: median {statistics.median(gf):.0f} GFLOP/s "
              f"(rounds: {', '.join(f'{g:.0f}' for g in gf)})")
    for r in rows:
        if r["first_rel_diff"] > 1e-3:
            print(f"WARNING: {r['workload']} on {r['backend']}: the first results differ "
                  f"(xpnet {r['xpnet']['first']}, PyTorch {r['torch']['first']}); not the same computation?")
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
        print(f"Peak host memory (ru_maxrss), small CNN batch {BATCH}, {MEM_STEPS} training steps, each in its own fresh process:")
        print(f"  xpnet-numpy {xm['peak_mb']:7.1f} MB (after imports {xm['after_import_mb']:.1f} MB; modules: {', '.join(xm['libraries_loaded'])})")
        print(f"  PyTorch     {tm['peak_mb']:7.1f} MB (after imports {tm['after_import_mb']:.1f} MB; modules: {', '.join(tm['libraries_loaded'])})")
        print(f"  ratio xpnet / PyTorch: {xm['peak_mb'] / tm['peak_mb']:.2f} of the peak; "
              f"growth past the imports {gx:.1f} MB vs {gt:.1f} MB" + (f" ({gx / gt:.2f})" if gt > 0 else ""))

    if args.json:
        doc = {
            "machine": {**machine, "processes": {f"{s}:{b}": results[(s, b)][0]["describe"] for s, b in procs},
                        "foreign_cpu_per_process": foreign},
            "config": {"threads": threads, "quick": args.quick, **timing, "batch": BATCH, "lr": LR, "malloc_top_pad": malloc,
                       "momentum": MOMENTUM, "data_pool": POOL, "seed": SEED, "workloads": workloads},
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
