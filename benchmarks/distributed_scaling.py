"""Many processes on one machine: samples/s of 1 process (1 and 2 BLAS threads) against 2 MPI
ranks of 1 thread each, and the gradient all-reduce's cost per step (benchmarks/RESULTS.md,
"Many processes").

    python benchmarks/distributed_scaling.py [--rounds 3] [--workloads mlp,wide]

Each configuration runs in fresh processes (``mpiexec -n 2`` for the ranks), in alternating
rounds. A run trains the workload (xpnet.bench's MLP 784-512-256-10 or wide MLP 784-4096-4096-10,
float32, numpy, SGD with momentum) with ``fit(..., distributed=...)`` on synthetic N(0, 1)
data at a global batch of 256 (128 per rank on 2 ranks); epoch 1 warms up, and the figure is
the best samples/s of the epochs after it (fit's own clock, the whole job's samples). Then, on
the trained net's real gradients, it times ``DataParallel.reduce_gradients()`` (flat buckets
of 25 MiB: concatenate, ``Allreduce``, cut back) and a bare ``Allreduce`` of one buffer of the
same bytes, the median of 20 calls after 3 warm-up ones, each after a barrier.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

STEPS = {"mlp": 40, "wide": 4}  # steps per epoch: the wide MLP's step takes ~0.4 s on one thread
EPOCHS = 3


def worker(key, threads, mode):
    import xpnet as xn
    from xpnet import backends, distributed
    from xpnet.bench.workloads import WORKLOADS, build_xpnet, host_batches

    be = backends.get("numpy")
    be.set_threads(threads)
    comm = distributed.init("mpi" if mode == "ranks" else "single")
    w = WORKLOADS[key]
    n = 256 * STEPS[key]
    ((X, y),) = host_batches(w, n, seed=1, pool=1)
    be.manual_seed(0)
    net = build_xpnet(w, be)
    opt = xn.SGD(net, lr=0.01, momentum=0.9)
    h = xn.fit(net, xn.CrossEntropyLoss(), opt, (X, y), epochs=EPOCHS, batch_size=256, progress=False,
               guard=False, distributed=comm)
    out = {"workload": key, "mode": mode, "threads": threads, "samples_per_s": max(h["samples_per_s"][1:]),
           "step_ms": 1000 * min(h["time"][1:]) / STEPS[key]}
    if comm.size > 1:
        out.update(_allreduce_costs(comm, net, opt))
    if comm.rank == 0:
        print(json.dumps(out), flush=True)


def _allreduce_costs(comm, net, opt):
    from mpi4py import MPI

    from xpnet import backends, distributed

    dp = distributed.DataParallel(net, opt, comm)
    xp = backends.get("numpy").xp
    loss = xp.asarray(0.0, dtype=xp.float32)

    def timed(call):
        for _ in range(3):
            call()
        times = []
        for _ in range(20):
            comm.barrier()
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times), 1000 * min(times)

    nbytes = sum(4 * p.data.size for p in net.parameters())
    buf = xp.ones(nbytes // 4, dtype=xp.float32)
    bare, bare_min = timed(lambda: comm.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM))
    ours, ours_min = timed(lambda: dp.reduce_gradients([loss]))
    return {"grad_mb": nbytes / 2**20, "buckets": len(dp.buckets), "allreduce_ms": ours, "allreduce_min_ms": ours_min,
            "bare_allreduce_ms": bare, "bare_allreduce_min_ms": bare_min}


def run(key, config):
    here = str(pathlib.Path(__file__).resolve())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": str(config[1])}
    if config[0] == "ranks":
        mpiexec = pathlib.Path(sys.executable).parent / "mpiexec"
        cmd = [str(mpiexec), "-n", "2", sys.executable, here, "--worker", key, "1", "ranks"]
    else:
        cmd = [sys.executable, here, "--worker", key, str(config[1]), "alone"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workloads", default="mlp,wide")
    p.add_argument("--worker", nargs=3, metavar=("WORKLOAD", "THREADS", "MODE"))
    a = p.parse_args()
    if a.worker:
        worker(a.worker[0], int(a.worker[1]), a.worker[2])
        return
    configs = [("alone", 1), ("alone", 2), ("ranks", 1)]
    print(f"load average before: {os.getloadavg()}", flush=True)
    results = {}
    for r in range(a.rounds):
        for key in a.workloads.split(","):
            for c in configs:
                res = run(key, c)
                results.setdefault((key, c), []).append(res)
                print(f"round {r + 1}: {json.dumps(res)}", flush=True)
    print(f"load average after: {os.getloadavg()}")
    print("\n| workload | configuration | samples/s (median, min-max) | step (ms) | vs 1 thread |")
    print("|---|---|---|---|---|")
    for key in a.workloads.split(","):
        base = statistics.median(x["samples_per_s"] for x in results[(key, ("alone", 1))])
        for c in configs:
            rs = results[(key, c)]
            s = [x["samples_per_s"] for x in rs]
            name = "2 ranks x 1 thread" if c[0] == "ranks" else f"1 process, {c[1]} thread{'s' if c[1] > 1 else ''}"
            print(f"| {key} | {name} | {statistics.median(s):,.0f} ({min(s):,.0f}-{max(s):,.0f}) | "
                  f"{statistics.median(x['step_ms'] for x in rs):.1f} | {statistics.median(s) / base:.2f}x |")
    print("\n| workload | gradients | buckets | reduce_gradients (ms): median, fastest | bare Allreduce (ms): median, "
          "fastest | share of a 2-rank step |")
    print("|---|---|---|---|---|---|")
    for key in a.workloads.split(","):
        rs = results[(key, ("ranks", 1))]

        def med(k):
            return statistics.median(x[k] for x in rs)

        ours, bare, step = med("allreduce_ms"), med("bare_allreduce_ms"), med("step_ms")
        print(f"| {key} | {rs[0]['grad_mb']:.1f} MiB | {rs[0]['buckets']} | {ours:.2f}, "
              f"{min(x['allreduce_min_ms'] for x in rs):.2f} | {bare:.2f}, {min(x['bare_allreduce_min_ms'] for x in rs):.2f} | "
              f"{ours / step:.0%} |")


if __name__ == "__main__":
    main()
