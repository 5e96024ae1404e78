"""xpnet.distributed: the world of one, launcher detection, the sharded loader's maths,
bucketing and flat buffers, metric merging, rank-0-only callbacks (one process), and the
multi-process runs under ``mpiexec -n 2`` (scripts in tests/distributed/): parity with one
process (numpy MLP, CNN with BatchNorm, torch under gloo), failures that end the job, and the
``xpnet train`` launch commands. The multi-process tests skip, with the reason, where mpi4py
and mpiexec (``pip install 'xpnet[mpi]'``) or torchrun are absent."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends, distributed
from xpnet.data import DataLoader, ring_vs_blob
from xpnet.data.loader import ShardedLoader
from xpnet.distributed import launch as L
from xpnet.distributed import metrics as M
from xpnet.distributed import parallel as P
from tests.conftest import host

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "distributed"


class Doubling(distributed.Communicator):
    """Rank ``rank`` of 2 in one process: the other rank is taken to hold the same arrays, so an
    all-reduce doubles them; a broadcast keeps them; ``others`` are the other rank's objects."""

    engine = "doubling"

    def __init__(self, rank=0, others=None):
        self.rank, self.size, self.others, self.calls = rank, 2, others, 0

    def _allreduce_flat(self, flat):
        self.calls += 1
        return flat * 2

    def _broadcast_flat(self, flat, root):
        self.calls += 1
        return flat

    def allgather_object(self, obj):
        return [obj, obj if self.others is None else self.others]


# -- the world of one ------------------------------------------------------------------------------------------


def test_single_is_rank_0_of_1_and_returns_its_inputs(backend):
    comm = distributed.Single()
    a = backend.xp.ones((2, 3), device=backend.device)
    (b,) = comm.allreduce([a])
    assert b is a and comm.broadcast([a])[0] is a
    assert (comm.rank, comm.size, comm.is_main) == (0, 1, True)
    assert comm.allreduce_host([1, 2.5]) == [1.0, 2.5]
    assert comm.allgather_object("x") == ["x"] and comm.broadcast_object(3) == 3
    comm.barrier()


def test_init_alone_is_the_world_of_one(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    comm = distributed.init()
    assert isinstance(comm, distributed.Single) and distributed.init("auto") is comm
    with pytest.raises(ValueError, match=r"engine must be one of 'auto', 'single', 'mpi', 'nccl', 'torch', got 'gloo'"):
        distributed.init("gloo")


def test_detect_reads_each_launchers_environment():
    assert L.detect({}) is None
    assert L.detect({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}) == \
        L.Launch("torchrun", 1, 4, 1, 2)
    assert L.detect({"PMI_RANK": "0", "PMI_SIZE": "2", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "2"}) == \
        L.Launch("mpi", 0, 2, 0, 2)
    assert L.detect({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "3"}) == \
        L.Launch("mpi", 3, 8, 3, 8)
    with pytest.raises(ValueError, match=r"\$PMI_RANK='x': expected an int >= 0"):
        L.detect({"PMI_RANK": "x", "PMI_SIZE": "2"})
    with pytest.raises(ValueError, match=r"\$XPNET_DIST_TIMEOUT='0': expected a positive number of seconds"):
        L.timeout({"XPNET_DIST_TIMEOUT": "0"})
    assert L.timeout({}) == L.DEFAULT_TIMEOUT


def test_the_engine_follows_the_launcher_and_the_backend():
    mpi, torchrun = L.Launch("mpi", 0, 2, 0), L.Launch("torchrun", 0, 2, 0)
    numpy, strict = backends.get("numpy"), backends.get("array_api_strict")
    assert L.engine_for(None, numpy) == "single"
    assert L.engine_for(mpi, numpy) == L.engine_for(mpi, strict) == "mpi"
    assert L.engine_for(torchrun, numpy) == "torch"
    assert L.rank_device("cupy", L.Launch("mpi", 5, 8, 1)) == "cupy:1"
    assert L.rank_device("torch:cuda", L.Launch("mpi", 5, 8, 3)) == "torch:cuda:3"
    assert L.rank_device("cupy:0", mpi) == "cupy:0" and L.rank_device("cupy", None) == "cupy"


# -- the sharded loader ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,batch,world", [(23, 5, 2), (23, 5, 3), (10, 10, 4), (7, 3, 5), (11, 4, 1)])
def test_each_global_batch_is_split_once_across_the_ranks(n, batch, world):
    be = backends.get("numpy")
    X = np.arange(n, dtype=np.float64)[:, None]
    base = DataLoader(X, np.arange(n), batch_size=batch, shuffle=True, backend=be)
    shards = [ShardedLoader(base, r, world, seed=3) for r in range(world)]
    for epoch in range(2):
        for s in shards:
            s.set_epoch(epoch)
        assert all(len(s) == len(base) for s in shards)  # every rank takes the same number of steps
        seen = []
        for i, parts in enumerate(zip(*shards), 1):
            sizes = [int(xb.shape[0]) for xb, _ in parts]
            assert sum(sizes) == shards[0].global_size(i) and max(sizes) - min(sizes) <= 1
            batch_ids = [int(v) for _, yb in parts for v in yb]
            seen += batch_ids
        assert sorted(seen) == list(range(n))  # each sample once an epoch, none duplicated
    one = ShardedLoader(base, 0, 1, seed=3)
    one.set_epoch(1)
    assert [int(v) for _, yb in one for v in yb] == seen  # the order does not depend on the world size


def test_the_epochs_permutation_is_the_same_on_every_backend(backend):
    orders = []
    for be in (backends.get("numpy"), backend):
        base = DataLoader(np.arange(12.0)[:, None], np.arange(12), batch_size=12, shuffle=True, backend=be)
        s = ShardedLoader(base, 0, 1, seed=7)
        s.set_epoch(4)
        orders.append(host(next(iter(s))[1]).tolist())
    assert orders[0] == orders[1] and sorted(orders[0]) == list(range(12))
    s.set_epoch(5)
    assert host(next(iter(s))[1]).tolist() != orders[0]


def test_sharded_loader_errors():
    base = DataLoader(np.zeros((4, 1)), np.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="ShardedLoader: rank 2 is not below world_size 2"):
        ShardedLoader(base, 2, 2)
    with pytest.raises(ValueError, match="ShardedLoader: world_size must be an int >= 1, got 0"):
        ShardedLoader(base, 0, 0)
    with pytest.raises(TypeError, match="ShardedLoader: expected a DataLoader, got tuple"):
        ShardedLoader((1, 2), 0, 1)


# -- buckets and flat buffers -------------------------------------------------------------------------------------


def test_buckets_run_backwards_split_by_dtype_and_size():
    be = backends.get("numpy")
    ps = [xn.Parameter(be.xp.zeros(s, dtype=be.dtype(d))) for s, d in
          [((10,), "float32"), ((30,), "float32"), ((5,), "float64"), ((100,), "float32"), ((2,), "float32")]]
    out = P.buckets(ps, bucket_bytes=160)  # 40 float32
    assert [[ps.index(p) for p in b] for b in out] == [[4], [3], [2], [1, 0]]


def test_gradients_travel_in_flat_buckets_and_come_back_in_shape(backend):
    with backends.use(backend):
        net = xn.Sequential(xn.Linear(3, 4), xn.ReLU(), xn.Linear(4, 2))
    x = backend.rng.normal((5, 3))
    loss = xn.CrossEntropyLoss()
    loss(net(x), backend.asarray(np.array([0, 1, 1, 0, 1])))
    net.backward(loss.backward(), input_grad=False)
    before = [host(p.grad) for p in net.parameters()]
    comm = Doubling()
    dp = distributed.DataParallel(net, xn.SGD(net, lr=0.1), comm, bucket_bytes=40)
    dp.start(backend)
    value = backend.xp.asarray(0.25, device=backend.device)
    (total,) = dp.reduce_gradients([value])
    assert len(dp.buckets) == 3 and comm.calls == 1 + 3  # the start: one dtype, no buffers; then a call a bucket
    for p, g in zip(net.parameters(), before):
        assert backends.backend_of(p.grad) is backend and tuple(p.grad.shape) == g.shape
        np.testing.assert_array_equal(host(p.grad), 2 * g)
    assert float(total) == 0.5 and total.ndim == 0


def test_a_missing_gradient_is_sent_as_zeros(backend):
    with backends.use(backend):
        net = xn.Sequential(xn.Linear(2, 2))
    dp = distributed.DataParallel(net, xn.SGD(net, lr=0.1), Doubling())
    dp.start(backend)
    dp.reduce_gradients()
    assert all(float(backend.xp.sum(backend.xp.abs(p.grad))) == 0.0 for p in net.parameters())


def test_running_statistics_are_averaged(backend):
    with backends.use(backend):
        net = xn.Sequential(xn.BatchNorm1d(3))
    dp = distributed.DataParallel(net, xn.SGD(net, lr=0.1), Doubling())
    net[0].running_mean = backend.xp.asarray([1.0, 2.0, 4.0], device=backend.device)
    dp.average_buffers()  # (x + x) / 2
    assert host(net[0].running_mean).tolist() == [1.0, 2.0, 4.0]
    assert backends.backend_of(net[0].num_batches_tracked).dtype_name(net[0].num_batches_tracked.dtype) == "int64"


# -- figures ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["f1", "top3", "precision", "mae", "r2", "rmse"])
def test_metrics_merged_over_ranks_equal_one_pass_over_all(spec):
    rng = np.random.default_rng(0)
    if spec in ("mae", "r2", "rmse"):
        out, target = rng.normal(size=(40, 2)) + 5, rng.normal(size=(40, 2)) + 5
    else:
        out, target = rng.normal(size=(40, 5)), rng.integers(0, 5, 40)
    whole, a, b = (xn.metrics.get(spec) for _ in range(3))
    for m in (whole, a, b):
        m.reset()
    whole.update(out, target)
    a.update(out[:17], target[:17])
    b.update(out[17:], target[17:])
    M.merge_metrics(Doubling(others=[M._state(b)]), [a])
    (k, v), = whole.result().items()
    assert a.result()[k] == pytest.approx(v, rel=1e-12), (spec, a.result(), whole.result())


def test_tally_figures_are_summed_over_ranks():
    from xpnet.nets.evaluate import Tally

    be = backends.get("numpy")
    tally = Tally(xn.CrossEntropyLoss(), be.xp)
    out = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    tally.add(np.asarray(0.5), out, np.array([0, 0, 0]))
    assert P.merge_tally(Doubling(), tally, 2.0) == 2.0  # the mean of the ranks' seconds
    assert tally.result() == {"loss": 0.5, "accuracy": 2 / 3} and tally.n == 6


# -- fit ----------------------------------------------------------------------------------------------------------


def _ring_fit(be, **kw):
    backends.manual_seed(0)
    X, y = ring_vs_blob(30, backend=be)
    with backends.use(be):
        net = xn.Sequential(xn.Linear(2, 8), xn.ReLU(), xn.Linear(8, 2))
    h = xn.fit(net, xn.CrossEntropyLoss(), xn.Adam(net, lr=1e-2), (X, y), epochs=2, batch_size=16, progress=False,
               val=(X, y), **kw)
    return net, h


def test_fit_in_a_world_of_one_is_plain_fit(backend):
    net, h = _ring_fit(backend, shuffle=False)
    net1, h1 = _ring_fit(backend, shuffle=False, distributed="single")
    for p, q in zip(net.parameters(), net1.parameters()):
        np.testing.assert_array_equal(host(p.data), host(q.data))
    assert h["loss"] == h1["loss"] and h["val_accuracy"] == h1["val_accuracy"]


def test_fit_distributed_argument_errors():
    with pytest.raises(ValueError, match=r"fit: distributed='gloo': xpnet.distributed.init: engine must be one of"):
        _ring_fit(backends.get("numpy"), distributed="gloo")
    with pytest.raises(TypeError, match="fit: distributed must be None, True, an engine name or an xpnet.distributed "
                                        "Communicator, got int"):
        _ring_fit(backends.get("numpy"), distributed=2)


def test_rank_seeds_differ_by_rank_and_epoch():
    seeds = {P.rank_seed(0, r, e) for r in range(1, 4) for e in range(3)}
    assert len(seeds) == 9 and all(0 <= s < 2**63 for s in seeds)


def test_one_rank_failing_ends_every_rank_with_its_name(capsys, monkeypatch):
    from xpnet.distributed.failure import fail

    ended = []
    comm = Doubling(rank=1)
    monkeypatch.setattr(comm, "_abort", ended.append, raising=False)
    fail(distributed.Single(), ValueError("alone"))  # alone: the caller raises it
    fail(comm, FloatingPointError("everywhere"), (FloatingPointError,))
    assert ended == []
    fail(comm, ValueError("bad label"))
    assert ended == [1]
    assert capsys.readouterr().err == "xpnet: rank 1 of 2: ValueError: bad label; stopping every rank\n"


def test_callbacks_write_on_rank_0_only(tmp_path, capsys):
    from xpnet.nets.fit import History, TrainState

    be = backends.get("numpy")
    with backends.use(be):
        net = xn.Sequential(xn.Linear(2, 2))
    state = TrainState(net, xn.CrossEntropyLoss(), xn.SGD(net, lr=0.1), 1, [], History(), epoch=1, rank=1, world_size=2)
    logs = {"loss": 0.5, "lr": 0.1, "time": 1.0, "samples_per_s": 10.0}
    ck, csv_ = xn.ModelCheckpoint(tmp_path / "last.xpnet"), xn.CSVLogger(tmp_path / "log.csv")
    for cb in (ck, csv_, xn.EpochLogger()):
        cb.on_train_begin(state)
        cb.on_epoch_end(state, logs)
        cb.on_train_end(state)
    assert list(tmp_path.iterdir()) == [] and capsys.readouterr().out == ""
    assert ck.last_epoch == 1  # the same record as rank 0's


def test_readme_many_processes_block_runs_alone(capsys):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Many processes"):readme.index("## Tests")]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    exec(compile(block, "README.md (Many processes)", "exec"), {})
    assert capsys.readouterr().out.startswith("1 rank over single: loss ")


# -- many processes -----------------------------------------------------------------------------------------------


def _tool(name):
    here = pathlib.Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


MPIEXEC = _tool("mpiexec")
NO_MPI = ("mpi4py is not installed (pip install 'xpnet[mpi]')" if importlib.util.find_spec("mpi4py") is None
          else None if MPIEXEC else "mpiexec is not on PATH (pip install 'xpnet[mpi]' brings MPICH's)")
needs_mpi = pytest.mark.skipif(NO_MPI is not None, reason=str(NO_MPI))
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
#: as root, Open MPI refuses to start without these (MPICH ignores them)
ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
       "OMPI_MCA_rmaps_base_oversubscribe": "true", "PYTHONPATH": str(ROOT)}


def _mpiexec(args, timeout=120, cwd=None):
    t0 = time.monotonic()
    done = subprocess.run([MPIEXEC, "-n", "2", *args], capture_output=True, text=True, timeout=timeout, env=ENV,
                          cwd=cwd or ROOT)
    return done, time.monotonic() - t0


def _script(name, *argv):
    done, _ = _mpiexec([sys.executable, "-m", "mpi4py", str(SCRIPTS / name), *map(str, argv)])
    assert done.returncode == 0 and f"OK {name.removesuffix('.py')}" in done.stdout, done.stdout + done.stderr
    return done.stdout


@needs_mpi
def test_two_ranks_train_the_mlp_as_one_process(tmp_path):
    out = _script("parity.py", tmp_path)
    assert "A: Adam, 3 epochs, 96 steps" in out and "D: 2 epochs on 2 ranks + 1 resumed alone" in out


@needs_mpi
def test_two_ranks_train_the_batchnorm_cnn_as_ghost_batches_alone():
    assert "BatchNorm: 2 ranks vs ghost batches alone" in _script("batchnorm.py")


@needs_mpi
@needs_torch
def test_torch_backend_under_gloo_from_mpi_ranks():
    assert "torch gloo: relative gap" in _script("torch_gloo.py")


@needs_mpi
@pytest.mark.parametrize("mode", ["raise", "kill", "kill-writing"])
def test_a_failing_rank_ends_the_job_and_leaves_whole_checkpoints(tmp_path, mode):
    done, seconds = _mpiexec([sys.executable, str(SCRIPTS / "fail.py"), mode, tmp_path], timeout=60)
    text = done.stdout + done.stderr
    assert done.returncode != 0 and seconds < 60 and "finished" not in text, text
    pids = re.search(r"pids (\d+) (\d+)", done.stdout).groups()
    if mode == "raise":
        assert "xpnet: rank 1 of 2: ValueError: boom from rank 1; stopping every rank" in done.stderr, text
    else:  # the launcher names the dead process (MPICH by its PID, which the run's first line maps to its rank)
        dead = 0 if mode == "kill-writing" else 1
        assert f"PID {pids[dead]} " in text or f"rank {dead} " in text, text
    ck = xn.load(tmp_path / "last.xpnet")  # epoch 1's, whole
    assert ck.epoch == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.xpnet"]
    # killed mid-write (the data written, not yet renamed), rank 0 leaves its temporary file; the next write removes it
    assert len(leftovers) == (mode == "kill-writing") and all(n.endswith(".xpnet-tmp") for n in leftovers), leftovers


@needs_mpi
def test_mpiexec_xpnet_train_then_resume_alone(tmp_path):
    out = tmp_path / "run"
    done, _ = _mpiexec([_tool("xpnet"), "train", "--epochs", "2", "--schedule", "none", "--out", out, "--no-plots",
                        "--no-progress"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("epoch 1/2") == 1 and "2 ranks over mpi" in done.stdout  # rank 0 alone prints
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
    alone = subprocess.run([sys.executable, "-m", "xpnet", "train", "--resume", str(out / "last.xpnet"), "--epochs",
                            "3", "--no-plots", "--no-progress"], capture_output=True, text=True, timeout=120,
                           env={k: v for k, v in ENV.items() if not k.startswith(("PMI_", "OMPI_COMM"))})
    assert alone.returncode == 0, alone.stdout + alone.stderr
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3]


@needs_mpi
def test_mpiexec_usage_error_is_one_message_and_status_2(tmp_path):
    done, seconds = _mpiexec([_tool("xpnet"), "train", "--model", "missing.json"], timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and seconds < 60, done.stdout + done.stderr
    assert "xpnet train: error: rank 0 of 2: --model: model spec missing.json: no such file" in done.stderr, done.stderr
    assert done.stderr.count("error:") == 1  # rank 0 speaks for both: rank 1 waits, and is ended first


def _cupy_reason():
    try:
        backends.get("cupy")
    except backends.BackendUnavailable as e:
        return f"no usable GPU for the NCCL engine: {e}"
    return NO_MPI


@pytest.mark.skipif(_cupy_reason() is not None, reason=str(_cupy_reason()))
def test_nccl_engine_on_one_gpu():
    done = subprocess.run([MPIEXEC, "-n", "1", sys.executable, "-m", "mpi4py", str(SCRIPTS / "nccl_gpu.py")],
                          capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT)
    assert done.returncode == 0 and "OK nccl_gpu" in done.stdout, done.stdout + done.stderr


@needs_torch
@pytest.mark.skipif(_tool("torchrun") is None, reason="torchrun is not on PATH")
def test_torchrun_xpnet_train_on_the_torch_backend(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([_tool("torchrun"), "--nproc-per-node", "2", "-m", "xpnet", "train", "--backend", "torch",
                           "--epochs", "1", "--out", str(out), "--no-plots", "--no-progress"], capture_output=True,
                          text=True, timeout=120, env=ENV, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 ranks over torch (gloo)" in done.stdout and done.stdout.count("epoch 1/1") == 1
    assert xn.load(out / "last.xpnet").epoch == 1
