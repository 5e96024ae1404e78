"""A seeded fuzzer over checkpoints, and the checks that keep the checkpoint schema honest.

The fuzzer (run in a subprocess under an address-space cap, so that a case that tried to
allocate gigabytes fails with MemoryError rather than take the machine down) damages bytes,
truncates files, and crafts correctly hashed files with hostile or inconsistent metadata and
tensors. Every case must end in ``CheckpointError`` (a short message naming the file), or load
and then resume training for one epoch; each within a hang-detecting time bound, and without
allocating more than a small multiple of the file's size (tracemalloc peaks; numpy reports its
buffers to tracemalloc).

The schema predicts each layer's arrays from its spec (:mod:`xpnet.nets.checkpoint_arch`) and
each optimizer's state from its hyperparameters (``checkpoint_schema.STATE``); the tests below
compare both predictions with the real layers and optimizers, so that a change to a layer
cannot make legitimate files unloadable unnoticed.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pathlib
import random
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.io import read_safetensors, write_safetensors
from xpnet.nets import checkpoint as ck_module
from xpnet.nets import checkpoint_arch as arch
from xpnet.nets import checkpoint_schema as schema
from xpnet.nets import spec as spec_module

SEED = 1717
CASES = 320
TIME_BOUND_S = 5.0  # a hang detector, not a speed test
MEMORY_FACTOR, MEMORY_SLACK = 8, 2 * 2**20


# -- the rules against the real layers -----------------------------------------------------------------------

CONFIGS = {
    "Linear": [dict(in_features=3, out_features=4), dict(in_features=1, out_features=7, bias=False)],
    "Conv2d": [dict(in_channels=2, out_channels=4, kernel_size=3), dict(in_channels=4, out_channels=6, kernel_size=(1, 2),
                                                                      groups=2, bias=False, padding="same")],
    "BatchNorm1d": [dict(num_features=3), dict(num_features=2, affine=False), dict(num_features=4, track_running_stats=False),
                    dict(num_features=5, bias=False)],
    "BatchNorm2d": [dict(num_features=3), dict(num_features=2, affine=False, track_running_stats=False)],
    "LayerNorm": [dict(normalized_shape=4), dict(normalized_shape=[2, 3], bias=False),
                  dict(normalized_shape=[3], elementwise_affine=False)],
    "Embedding": [dict(num_embeddings=5, embedding_dim=3), dict(num_embeddings=4, embedding_dim=2, padding_idx=1)],
    "Identity": [{}], "ReLU": [{}], "Sigmoid": [{}], "Tanh": [{}], "LeakyReLU": [dict(negative_slope=0.2)],
    "Softmax": [dict(dim=1)], "Dropout": [dict(p=0.3)], "Flatten": [{}], "Unflatten": [dict(dim=1, unflattened_size=[2, 3])],
    "Reshape": [dict(shape=[2, 3])], "AdaptiveAvgPool2d": [dict(output_size=2)],
    "MaxPool2d": [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1)], "AvgPool2d": [dict(kernel_size=2)],
}
# containers, and the layers that take layers as arguments (walked as composites, checked once built)
COMPOSITES = {"Sequential", "Residual", "Concat", "TransformerEncoder", "TransformerDecoder", "Transformer"}
LOSSES = {name for name, cls in spec_module.builtin_classes().items() if issubclass(cls, xn.Loss)}


def _case_configs():
    """The configurations of every layer in tests/layer_cases.py's table (and its families) that
    CONFIGS above does not spell out: every new layer's rule is checked without a list to update."""
    from tests.layer_cases import CASES as TABLE

    out = {}
    be = backends.get("numpy")
    for case in TABLE:
        name = case.cls.__name__
        if name in CONFIGS or name in LOSSES or name in COMPOSITES or spec_module.builtin_classes().get(name) is not case.cls:
            continue
        spec = spec_module.layer_spec(case.make(be, "float64"))
        cfg = {k: v for k, v in spec.items() if k != "type"}
        if cfg not in out.setdefault(name, []):
            out[name].append(cfg)
    return out


CONFIGS.update(_case_configs())


def _model(node):
    """``[(name, shape, is_param, kind)]`` of a model tree, in state-dict order."""
    return [e[:4] for e in arch.entries(node)]


def test_every_builtin_layer_has_a_rule_or_is_a_composite_or_a_loss():
    for name, cls in spec_module.builtin_classes().items():
        assert name in COMPOSITES or name in LOSSES or arch.rule_for(cls) is not None, name
        assert name in COMPOSITES or name in LOSSES or name in CONFIGS, f"add configurations of {name} to CONFIGS"


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_rules_predict_the_layers_arrays(kind):
    """What the schema predicts from a spec equals what the constructor makes: names, shapes,
    parameter or buffer, float or integer, in state-dict order."""
    cls = spec_module.builtin_classes()[kind]
    for cfg in CONFIGS[kind]:
        with backends.use("numpy"):
            layer = spec_module.build({"type": kind, **cfg})
        spec = spec_module.layer_spec(layer)
        walk = arch.from_spec(spec)
        assert walk.root is not None
        assert _model(walk.root) == _model(arch.from_net(layer)), (kind, cfg)
        values = sum(math.prod(s) for _, s, _, _ in _model(walk.root))
        assert walk.floats + walk.ints == values
        assert arch.rule_for(cls) is not None


def test_composite_rules_predict_names_ties_and_parameter_order():
    with backends.use("numpy"):
        block = xn.Sequential(xn.Linear(4, 4), xn.BatchNorm1d(4))
        net = xn.Sequential(xn.Linear(3, 4), block, xn.Residual(xn.Sequential(xn.Linear(4, 4), xn.Tanh()), xn.Linear(4, 4)),
                            block, xn.Concat(xn.Linear(4, 2), xn.Sequential(xn.ReLU(), xn.Linear(4, 3))), xn.Linear(5, 2))
        net.tie("2.body.0.weight", "2.shortcut.weight")
    spec = spec_module.layer_spec(net)
    root = arch.from_spec(spec).root
    arch.share(root, net.shared_layers())
    arch.tie(root, net.tied_parameters())
    got = [(n, s) for n, s, _, _, _ in arch.entries(root)]
    assert got == [(n, tuple(v.shape)) for n, v in net.state_dict().items()]
    assert [(n, p.shape) for n, p in arch.parameters(root)] == [(n, p.shape) for n, p in net.named_parameters()]


OPT_CASES = [("SGD", {"lr": 0.1}), ("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adam", {}), ("Adam", {"amsgrad": True}),
             ("AdamW", {"amsgrad": True}), ("RMSprop", {}), ("RMSprop", {"momentum": 0.5, "centered": True})]


def _stepped(name, kw):
    with backends.use("numpy"):
        lin = xn.Linear(2, 2)
        opt = getattr(xn, name)(lin, **kw)
        x = backends.get("numpy").asarray(np.ones((3, 2)), dtype="float32")
        crit = xn.MSELoss()
        crit(lin(x), x)
        lin.backward(crit.backward())
        opt.step()
    return opt


@pytest.mark.parametrize("name,kw", OPT_CASES, ids=[f"{n}-{sorted(k)}" for n, k in OPT_CASES])
def test_state_table_matches_what_a_step_reads(name, kw):
    """The schema's table of each optimizer's state: every name a step makes is known (as an
    array or an int), and the names it says a step needs are exactly those without which the
    next step fails."""
    arrays, ints, needs = schema.STATE[name]
    opt = _stepped(name, kw)
    st = opt.state[0]
    assert {k for k, v in st.items() if not isinstance(v, int)} <= arrays
    assert {k for k, v in st.items() if isinstance(v, int)} <= ints
    g = {k: (list(v) if isinstance(v, tuple) else v) for k, v in opt.param_groups[0].items() if k != "params"}
    for missing in sorted(st):
        opt = _stepped(name, kw)
        del opt.state[0][missing]
        try:
            opt.step()
            crashed = False
        except KeyError:
            crashed = True
        assert crashed == (missing in needs(g)), missing
    assert set(schema.optimizer_classes()) == set(schema.STATE)


# -- the fuzzer ----------------------------------------------------------------------------------------------

def _numpy_data(image=False, n=8):
    be = backends.get("numpy")
    rng = np.random.default_rng(0)
    shape = (n, 1, 4, 4) if image else (n, 3)
    return be.asarray(rng.standard_normal(shape), dtype="float32"), be.asarray(np.arange(n) % 2, dtype="int64")


def _bases():
    """(name, net, optimizer, loss, is_image) of the nets the fuzzer starts from: every container,
    ties, shares, frozen parameters, parameter groups, and each optimizer's state."""
    out = []
    net = xn.Sequential(xn.Linear(3, 5), xn.BatchNorm1d(5), xn.ReLU(), xn.Dropout(0.2), xn.Linear(5, 2))
    out.append(("mlp-adam", net, xn.Adam(net, lr=0.01, amsgrad=True), xn.CrossEntropyLoss(), False))
    net = xn.Sequential(xn.Linear(3, 6), xn.Residual(xn.Sequential(xn.Linear(6, 6), xn.Tanh())),
                        xn.Concat(xn.Linear(6, 4), xn.Residual(xn.Linear(6, 6), xn.Linear(6, 6))), xn.ReLU(), xn.Linear(10, 2))
    net.tie("1.body.0.weight", "2.1.shortcut.weight")
    net[2].branches[0].bias.requires_grad_(False)
    head = net[4].parameters()
    rest = [p for p in net.parameters() if all(p is not q for q in head)]
    opt = xn.SGD([{"params": head, "lr": 0.05}, {"params": rest}], lr=0.1, momentum=0.9, nesterov=True)
    out.append(("composite-sgd", net, opt, xn.CrossEntropyLoss(label_smoothing=0.1), False))
    net = xn.Sequential(xn.Linear(3, 4), xn.LayerNorm(4), xn.Tanh(), xn.Linear(4, 2))
    out.append(("layernorm-rmsprop", net, xn.RMSprop(net, lr=0.01, momentum=0.5, centered=True), xn.CrossEntropyLoss(), False))
    net = xn.Sequential(xn.Conv2d(1, 2, 3, padding=1), xn.ReLU(), xn.MaxPool2d(2), xn.Flatten(), xn.Linear(8, 2))
    out.append(("conv-adamw", net, xn.AdamW(net, lr=0.01), xn.CrossEntropyLoss(), True))
    shared = xn.Linear(3, 3)
    net = xn.Sequential(shared, xn.ReLU(), shared, xn.Linear(3, 2))
    out.append(("shared-adam", net, xn.Adam(net, lr=0.01), xn.CrossEntropyLoss(), False))
    return out


def _callbacks(path):
    return [xn.EarlyStopping(monitor="loss", patience=1000), xn.ModelCheckpoint(path)]


def _make_bases(d):
    made = []
    with backends.use("numpy"):
        backends.get("numpy").manual_seed(3)
        for name, net, opt, loss, image in _bases():
            path = d / f"{name}.xpnet"
            xn.fit(net, loss, opt, _numpy_data(image), epochs=2, batch_size=4, callbacks=_callbacks(path), progress=False)
            made.append((name, path, image))
    return made


BIG = 10**400
HOSTILE = [None, True, False, 0, -1, 1, 2, 3, 2**31, 2**63, BIG, -10**20, 0.5, -0.0, 1e308, math.nan, math.inf, -math.inf,
           "", "x", "x" * 50_000, "tensor", "numpy", "torch:cpu", "float64", "Linear", "step", [], [1], [0, 1], [-1], [[]],
           [0, 0], [[0, 1]], ["0.weight", "0.weight"], {}, {"type": "Linear", "in_features": 100000, "out_features": 100000},
           {"type": "Linear", "in_features": BIG, "out_features": 2}, {"type": "ReLU"}, {"type": "Nope"}, {"type": "MSELoss"},
           {"type": "Linear"}, {"type": "Sequential", "layers": [{"type": "ReLU"}] * 1000}, {"step": -5}, {"0": {"step": 1}},
           {"type": "Adam", "lr": math.nan}, {"type": "SGD"}, {"best": "x"}]
# where a change may make a valid file the training data no longer fit (a different net or loss)
ARCH_FIELDS = ("model", "loss", "dtype", "backend")


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _get(obj, path):
    for k in path:
        obj = obj[k]
    return obj


def _deep(v, depth):
    for _ in range(depth):
        v = [v]
    return v


def _mutate_meta(meta, r):
    """One hostile edit of the metadata; returns (the edited text, the top-level field changed)."""
    meta = copy.deepcopy(meta)
    paths = [p for p in _paths(meta) if p]
    path = r.choice(paths)
    parent, key = _get(meta, path[:-1]), path[-1]
    op = r.random()
    if op < 0.2:
        del parent[key]
    elif op < 0.65:
        parent[key] = copy.deepcopy(r.choice(HOSTILE))
    elif op < 0.75:
        parent[key] = _deep(parent[key], r.choice([3, 60, 300]))
    elif op < 0.9 and type(parent[key]) is int:
        parent[key] = r.choice([parent[key] + 1, parent[key] - 1, -parent[key], parent[key] * 1000, parent[key] + 10**6])
    elif isinstance(parent[key], list) and parent[key]:
        parent[key] = parent[key] + [parent[key][0]] if r.random() < 0.5 else parent[key][::-1]
    else:
        parent[key] = copy.deepcopy(r.choice(HOSTILE))
    return json.dumps(meta, sort_keys=True), path[0]


def _mutate_tensors(tensors, r):
    tensors = dict(tensors)
    name = r.choice(sorted(tensors))
    a = tensors[name]
    op = r.randrange(6)
    if op == 0:
        del tensors[name]
    elif op == 1:
        tensors[r.choice(["model.9.weight", "optimizer.99.exp_avg", "optimizer.0.bogus", "junk", name + "x"])] = a
    elif op == 2:
        tensors[name] = np.zeros(r.choice([(2, 2), (0,), (1,) * 5, (a.size + 1,)]), dtype=a.dtype)
    elif op == 3:
        tensors[name] = a.astype(r.choice([np.float64, np.float16, np.int64, np.uint8, np.bool_]))
    elif op == 4 and a.dtype.kind == "f":
        tensors[name] = np.full_like(a, r.choice([np.nan, np.inf, 1e30]))
    else:
        tensors["rng.state"] = np.frombuffer(bytes(r.randrange(256) for _ in range(r.choice([0, 16, 5056]))), np.uint8).copy()
    return tensors


def _cases(bases, d, r):
    """Yield (label, path, lenient, bytes of the file) for CASES cases over the base files."""
    blobs = {name: path.read_bytes() for name, path, _ in bases}
    for i in range(CASES):
        name, base, image = bases[i % len(bases)]
        blob = blobs[name]
        p = d / f"case{i}.xpnet"
        kind = r.random()
        lenient = False
        if kind < 0.15:
            damaged = bytearray(blob)
            for _ in range(r.randint(1, 4)):
                damaged[r.randrange(len(damaged))] ^= 1 << r.randrange(8)
            p.write_bytes(bytes(damaged))
            label = "byte damage"
        elif kind < 0.27:
            p.write_bytes(blob[: r.randrange(len(blob))])
            label = "truncation"
        else:
            tensors, md = read_safetensors(base)
            meta = json.loads(md["xpnet"])
            if kind < 0.87:
                text, field = _mutate_meta(meta, r)
                label, lenient = f"metadata {field}", field in ARCH_FIELDS
            else:
                text, tensors = md["xpnet"], _mutate_tensors(tensors, r)
                label = "tensors"
            write_safetensors(p, tensors, {"xpnet": text, "xpnet.sha256": ck_module._digest(text, tensors)})
        yield label, p, lenient, image


def _attempt(path, lenient, image, out_dir):
    """``(outcome, bytes allocated at the peak of the load)``: the outcome is 'refused', 'trained'
    or 'diverged' ('the changed net does not fit' where the file describes another net or loss
    than the base did, valid but not for these data); anything else raises."""
    tracemalloc.start()
    try:
        ck = xn.load(path)
    except xn.CheckpointError as e:
        msg = str(e)
        assert len(msg) <= schema.MESSAGE_LIMIT, f"a message of {len(msg)} characters"
        assert msg.startswith("checkpoint ") and path.name in msg, msg
        return "refused", tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    loss = ck.loss if ck.loss is not None else xn.CrossEntropyLoss()
    opt = ck.optimizer if ck.optimizer is not None else xn.SGD(ck.net, lr=0.1)
    try:
        xn.fit(ck.net, loss, opt, _numpy_data(image), epochs=ck.epoch + 1, batch_size=4,
               callbacks=_callbacks(out_dir / "resumed.xpnet"), progress=False, resume=ck)
    except xn.TrainingDiverged:  # the guard stopping a valid file's wild weights or rates: no crash
        return "diverged", peak
    except (ValueError, TypeError, MemoryError):
        # a valid file of another architecture (a Conv2d padded by a million: what the README
        # warns of) may not fit these data, or this memory; a file of the base's net must train
        if not lenient:
            raise
        return "the changed net does not fit", peak
    return "trained", peak


def _warm():
    """Import the other backends before the memory cap (importing torch takes seconds and
    memory; a file may name it), so that a case measures the loader, not an import."""
    for name in ("torch", "array_api_strict"):
        try:
            backends.get(name)
        except Exception:
            pass


def _driver(d, seed):
    """Run every case; print one JSON line: outcomes counted, the failures, the worst case."""
    d = pathlib.Path(d)
    r = random.Random(seed)
    bases = _make_bases(d)
    counts, failures, worst = {}, [], {"seconds": 0.0, "peak_bytes": 0, "file_bytes": 0}
    with backends.use("numpy"):
        for label, path, lenient, image in _cases(bases, d, r):
            size = path.stat().st_size
            t0 = time.perf_counter()
            failed = len(failures)
            try:
                outcome, peak = _attempt(path, lenient, image, d)
            except BaseException as e:  # MemoryError under the cap included
                outcome, peak = None, 0
                failures.append(f"{path.name} ({label}): {type(e).__name__}: {str(e)[:300]}")
            seconds = time.perf_counter() - t0
            if seconds > TIME_BOUND_S:
                failures.append(f"{path.name} ({label}): took {seconds:.1f} s")
            if peak > MEMORY_FACTOR * size + MEMORY_SLACK:
                failures.append(f"{path.name} ({label}): loading allocated {peak} bytes for a file of {size}")
            worst["seconds"] = max(worst["seconds"], seconds)
            if peak > worst["peak_bytes"]:
                worst.update(peak_bytes=peak, file_bytes=size)
            if outcome is not None:
                key = f"{label.split()[0]}: {outcome}"
                counts[key] = counts.get(key, 0) + 1
            if len(failures) > failed:
                path.rename(d / f"failed-{path.name}")  # kept, to be looked at
            else:
                path.unlink()
    print(json.dumps({"counts": counts, "failures": failures, "worst": worst}))


def _cap_memory(extra_bytes):
    import resource

    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra_bytes, vm + extra_bytes))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory cap reads /proc and sets RLIMIT_AS")
def test_fuzzed_checkpoints_are_refused_or_train(tmp_path):
    repo = pathlib.Path(__file__).resolve().parents[1]
    code = ("import sys; import tests.test_checkpoint_fuzz as t; t._warm(); t._cap_memory(1536 * 2**20); "
            f"t._driver(sys.argv[1], {SEED})")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "XPNET_BACKEND": "numpy"}
    env.pop(ck_module.KEY_ENV, None)
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=repo, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], "\n".join(report["failures"][:20])
    counts = report["counts"]
    assert sum(counts.values()) == CASES
    # the fuzzer reaches every kind of outcome it is meant to: refusals of each kind, and files that train
    for kind in ("byte", "truncation", "metadata", "tensors"):
        assert counts.get(f"{kind}: refused", 0) > 0, counts
    assert counts.get("metadata: trained", 0) > 0, counts
