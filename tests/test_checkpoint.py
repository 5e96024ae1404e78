"""Checkpoints (xpnet.save / xpnet.load) and the safetensors format underneath: round trips on every backend,
damaged and foreign files, atomic writes, compatibility with the reference safetensors package, and a
bit-identical resume of training."""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import math
import os
import pathlib
import pickle
import re
import stat
import struct
import tracemalloc

import numpy as np
import pytest

import xpnet as xn
from xpnet import backends
from xpnet.io import FormatError, read_safetensors, write_safetensors
from xpnet.io import safetensors as st_module
from xpnet.nets import checkpoint as ck_module
from tests.conftest import host


def _net(**kw):
    return xn.Sequential(xn.Linear(3, 5, **kw), xn.BatchNorm1d(5, **kw), xn.ReLU(), xn.Linear(5, 2, **kw))


def _data(backend, dtype="float32", n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = backend.asarray(rng.standard_normal((n, 3)), dtype=dtype)
    y = backend.asarray(rng.integers(0, 2, n), dtype="int64")
    return x, y


def _step(net, crit, opt, x, y):
    opt.zero_grad()
    loss = crit(net(x), y)
    net.backward(crit.backward(), input_grad=False)
    opt.step()
    return loss


def _fit_with_step_schedule(net, opt, loss, data, epochs, extra=(), resume=None):
    """fit with a StepLR schedule (and ``extra`` callbacks), validating on the training data: the
    resume tests' run, whose every piece of state (schedule, optimizer, generator) must survive."""
    cbs = [xn.LRScheduler(xn.StepLR(opt, step_size=3, gamma=0.5)), *extra]
    return xn.fit(net, loss, opt, data, epochs=epochs, batch_size=16, val=data, callbacks=cbs,
                  progress=False, resume=resume)


def _host_state(net):
    return {k: host(v) for k, v in net.state_dict().items()}


def _assert_same_state(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _assert_same_opt_state(o1, o2):
    assert len(o1.state) == len(o2.state)
    for s1, s2 in zip(o1.state, o2.state):
        assert sorted(s1) == sorted(s2)
        for k in s1:
            if isinstance(s1[k], int):
                assert type(s2[k]) is int and s2[k] == s1[k], k
            else:
                np.testing.assert_array_equal(host(s1[k]), host(s2[k]), err_msg=k)


@pytest.fixture
def saved(backend, tmp_path):
    """A trained-a-little net with BatchNorm, its Adam, and the checkpoint file of both."""
    net = _net()
    opt = xn.Adam(net, lr=0.01, amsgrad=True)
    crit = xn.CrossEntropyLoss()
    x, y = _data(backend)
    for _ in range(3):
        _step(net, crit, opt, x, y)
    path = xn.save(tmp_path / "ck.xpnet", net, opt, loss=crit, epoch=3, history={"loss": [0.9, 0.8, 0.7]},
                   extra={"note": "hello", "n": 3})
    return net, opt, crit, path


# -- round trips on every backend -------------------------------------------------------------------------------

OPTS = [("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
        ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}),
        ("AdamW", {"lr": 0.01}),
        ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5})]


@pytest.mark.parametrize("name,kw", OPTS, ids=[o[0] for o in OPTS])
def test_round_trip_then_one_more_step_is_identical(backend, tmp_path, name, kw):
    net = _net()
    opt = getattr(xn, name)(net, **kw)
    crit = xn.CrossEntropyLoss()
    x, y = _data(backend)
    for _ in range(3):
        _step(net, crit, opt, x, y)
    path = xn.save(tmp_path / "ck.xpnet", net, opt, loss=crit)
    ck = xn.load(path)
    assert ck.path == path
    assert type(ck.net) is xn.Sequential and repr(ck.net) == repr(net)
    assert backends.backend_of(ck.net[0].weight.data) is backend  # the saved backend, usable here
    assert ck.backend == backend.label and ck.dtype == "float32"
    _assert_same_state(_host_state(net), _host_state(ck.net))
    nbt = ck.net[1].num_batches_tracked
    assert backend.dtype_name(nbt.dtype) == "int64" and int(nbt) == 3
    assert type(ck.optimizer) is type(opt) and repr(ck.optimizer) == repr(opt)
    assert ck.optimizer.params == ck.net.parameters()
    _assert_same_opt_state(opt, ck.optimizer)
    if name != "SGD":
        assert ck.optimizer.state[0]["step"] == 3
    assert type(ck.loss) is xn.CrossEntropyLoss
    # one more step on both: same bits everywhere (weights, running statistics, optimizer state)
    _step(net, crit, opt, x, y)
    _step(ck.net, ck.loss, ck.optimizer, x, y)
    _assert_same_state(_host_state(net), _host_state(ck.net))
    _assert_same_opt_state(opt, ck.optimizer)


def test_contents_round_trip(saved):
    net, opt, crit, path = saved
    ck = xn.load(path)
    assert ck.epoch == 3
    assert ck.history == {"loss": [0.9, 0.8, 0.7]}
    assert ck.extra == {"note": "hello", "n": 3}
    assert ck.callbacks == {}
    assert ck.net.training is True  # a rebuilt net starts in training mode


def test_net_only_and_optimizer_over_some_parameters(backend, tmp_path):
    net = _net()
    x, y = _data(backend)
    crit = xn.CrossEntropyLoss()
    ck = xn.load(xn.save(tmp_path / "bare.xpnet", net))
    assert ck.optimizer is None and ck.loss is None and ck.epoch == 0 and ck.history == {} and ck.extra == {}
    _assert_same_state(_host_state(net), _host_state(ck.net))
    # an optimizer over the last layer only, its parameters in reverse order: each keeps its parameter
    head = net[3].parameters()[::-1]
    opt = xn.SGD(head, lr=0.1, momentum=0.9)
    _step(net, crit, opt, x, y)
    ck = xn.load(xn.save(tmp_path / "head.xpnet", net, opt))
    assert ck.optimizer.params == ck.net[3].parameters()[::-1]
    _assert_same_opt_state(opt, ck.optimizer)
    _step(net, crit, opt, x, y)
    _step(ck.net, crit, ck.optimizer, x, y)
    _assert_same_state(_host_state(net), _host_state(ck.net))


def test_save_rejects_a_foreign_optimizer(backend, tmp_path):
    net = _net()
    other = xn.Linear(2, 2)
    opt = xn.SGD(net[0].parameters() + other.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"^save: the optimizer holds parameters that are not the net's \(positions \[2, 3\]\)$"):
        xn.save(tmp_path / "x.xpnet", net, opt)
    assert not (tmp_path / "x.xpnet").exists()


def test_float64_is_kept(backend, tmp_path):
    net = _net(dtype="float64")
    opt = xn.RMSprop(net, lr=0.01, centered=True)
    x, y = _data(backend, "float64")
    _step(net, xn.CrossEntropyLoss(), opt, x, y)
    ck = xn.load(xn.save(tmp_path / "f64.xpnet", net, opt))
    assert ck.dtype == "float64"
    for k, v in ck.net.state_dict().items():
        assert backend.dtype_name(v.dtype) == ("int64" if "num_batches" in k else "float64"), k
    assert backend.dtype_name(ck.optimizer.state[0]["grad_avg"].dtype) == "float64"
    _assert_same_state(_host_state(net), _host_state(ck.net))


def test_load_overrides_backend_and_dtype(saved):
    net, opt, _, path = saved
    ck = xn.load(path, backend="numpy", dtype="float64")
    np_be = backends.get("numpy")
    want = _host_state(net)
    for k, v in ck.net.state_dict().items():
        assert backends.backend_of(v) is np_be, k
        assert v.dtype == (np.int64 if "num_batches" in k else np.float64), k
        np.testing.assert_array_equal(v, want[k].astype(v.dtype), err_msg=k)
    for st in ck.optimizer.state:
        for k, v in st.items():
            if not isinstance(v, int):
                assert backends.backend_of(v) is np_be and v.dtype == np.float64, k
    # the saved backend and dtype are still reported
    assert ck.dtype == "float32"
    # and a Backend object works as well as a name
    ck2 = xn.load(path, backend=np_be)
    assert ck2.net[0].weight.data.dtype == np.float32


def _on_gpu(backend):
    return backend.name == "cupy" or "cuda" in backend.label


def test_rng_state_is_restored(saved, backend):
    _, _, _, path = saved
    if backend.name == "cupy":  # documented: CuPy cannot export its generator state
        ck = xn.load(path)
        assert ck.rng_state is None and ck.restore_rng() is False
        return
    first = host(backend.rng.normal((6,)))  # draws right after the save
    backend.rng.uniform((50,))  # move on
    ck = xn.load(path)
    assert ck.restore_rng() is True
    np.testing.assert_array_equal(host(backend.rng.normal((6,))), first)


def test_rng_not_saved(backend, tmp_path):
    ck = xn.load(xn.save(tmp_path / "norng.xpnet", _net(), rng=False))
    assert ck.rng_state is None
    assert ck.restore_rng() is False


def test_rng_of_another_backend_is_not_applied(tmp_path, torch):
    """A net loaded onto another backend than the saved one does not take the saved generator state."""
    for saved_on, loaded_on in (("torch", "numpy"), ("numpy", "torch"), ("numpy", "array_api_strict")):
        with backends.use(saved_on):
            p = xn.save(tmp_path / "x.xpnet", _net())
        be = backends.get(loaded_on)
        ck = xn.load(p, backend=be)
        assert ck.rng_state is not None
        be.manual_seed(1234)
        draws = host(be.rng.normal((3,)))
        be.manual_seed(1234)
        assert ck.restore_rng() is False
        be.manual_seed(1234)
        np.testing.assert_array_equal(host(be.rng.normal((3,))), draws)


def test_net_without_parameters_keeps_its_dtype(backend, tmp_path):
    net = xn.Sequential(xn.BatchNorm1d(3, affine=False, dtype="float64"), xn.ReLU())
    net(backend.asarray(np.random.default_rng(0).standard_normal((5, 3)), dtype="float64"))
    ck = xn.load(xn.save(tmp_path / "bn.xpnet", net))
    assert ck.dtype == "float64"
    assert backend.dtype_name(ck.net[0].running_mean.dtype) == "float64"
    _assert_same_state(_host_state(net), _host_state(ck.net))


# -- damaged and foreign files -------------------------------------------------------------------------------


@pytest.fixture
def ckfile(tmp_path):
    with backends.use("numpy"):
        net = _net()
        opt = xn.Adam(net)
        x, y = _data(backends.get("numpy"))
        _step(net, xn.CrossEntropyLoss(), opt, x, y)
        return xn.save(tmp_path / "good.xpnet", net, opt)


def _header_len(blob):
    return struct.unpack("<Q", blob[:8])[0]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^checkpoint .*nothere\.xpnet: no such file$"):
        xn.load(tmp_path / "nothere.xpnet")


@pytest.mark.parametrize("where", ["empty", "length", "header", "data-start", "data-middle", "data-last-byte"])
def test_truncated_file(ckfile, where):
    blob = ckfile.read_bytes()
    n = _header_len(blob)
    cut = {"empty": 0, "length": 5, "header": 8 + n // 2, "data-start": 8 + n + 3,
           "data-middle": (8 + n + len(blob)) // 2, "data-last-byte": len(blob) - 1}[where]
    ckfile.write_bytes(blob[:cut])
    if where in ("empty", "length"):
        msg = rf"truncated: {cut} bytes, too short for a safetensors file"
    elif where == "header":
        msg = rf"truncated: the header needs {n} bytes, the file has {cut - 8} after the length"
    else:
        msg = r"truncated: 'model\.[^']+'|truncated: 'optimizer\.[^']+'|truncated: 'rng\.state' ends at data byte"
    with pytest.raises(xn.CheckpointError, match=rf"^checkpoint .*good\.xpnet: ({msg})"):
        xn.load(ckfile)


def test_trailing_garbage(ckfile):
    with open(ckfile, "ab") as f:
        f.write(b"\x00junk")
    with pytest.raises(xn.CheckpointError, match=r"good\.xpnet: 5 unexpected bytes after the last tensor"):
        xn.load(ckfile)


def test_flipped_byte_in_data(ckfile):
    blob = bytearray(ckfile.read_bytes())
    n = _header_len(blob)
    for pos in (8 + n, (8 + n + len(blob)) // 2, len(blob) - 1):
        damaged = bytearray(blob)
        damaged[pos] ^= 0x01
        ckfile.write_bytes(bytes(damaged))
        with pytest.raises(xn.CheckpointError,
                           match=r"good\.xpnet: its SHA-256 does not match its contents: the file was modified or damaged"):
            xn.load(ckfile)


def test_flipped_byte_in_header(ckfile):
    blob = ckfile.read_bytes()
    n = _header_len(blob)
    header = blob[8:8 + n].decode()
    # inside the xpnet JSON text, inside the digest, inside a tensor's shape, and a structural character
    targets = [header.index('\\"epoch\\": 0') + len('\\"epoch\\": '),
               header.index('"xpnet.sha256":"') + len('"xpnet.sha256":"') + 5,
               header.index('"model.0.weight":{"dtype":"F32","shape":[') + len('"model.0.weight":{"dtype":"F32","shape":['),
               0]
    for pos in targets:
        damaged = bytearray(blob)
        damaged[8 + pos] ^= 0x01
        ckfile.write_bytes(bytes(damaged))
        with pytest.raises(xn.CheckpointError, match=r"^checkpoint .*good\.xpnet: (its SHA-256 does not match|corrupt header)"):
            xn.load(ckfile)


def test_not_a_safetensors_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("this is a text file, not a checkpoint at all")
    with pytest.raises(xn.CheckpointError, match=r"notes\.txt: not a safetensors file \(its header would be \d+ bytes\)"):
        xn.load(p)
    p.write_bytes(struct.pack("<Q", 4) + b"[1] ")
    with pytest.raises(xn.CheckpointError, match=r"notes\.txt: corrupt header \(a JSON list, not an object\)"):
        xn.load(p)


def test_plain_safetensors_file_is_not_a_checkpoint(tmp_path):
    p = tmp_path / "plain.safetensors"
    write_safetensors(p, {"w": np.ones((2, 2), np.float32)}, {"author": "me"})
    with pytest.raises(xn.CheckpointError,
                       match=r"plain\.safetensors: a safetensors file, but not an xpnet checkpoint \(no 'xpnet' metadata\)"):
        xn.load(p)


def _rewrite(path, edit):
    """Rewrite the checkpoint's metadata with ``edit(meta)``, with a valid digest (a well-formed file)."""
    tensors, md = read_safetensors(path)
    meta = json.loads(md["xpnet"])
    edit(meta)
    text = json.dumps(meta, sort_keys=True)
    write_safetensors(path, tensors, {"xpnet": text, "xpnet.sha256": ck_module._digest(text, tensors)})


def test_newer_format_version(ckfile):
    xn.load(ckfile)
    _rewrite(ckfile, lambda m: m.update(version=ck_module.VERSION + 1))
    with pytest.raises(xn.CheckpointError,
                       match=rf"good\.xpnet: format version {ck_module.VERSION + 1} is newer than this xpnet reads \({ck_module.VERSION}\)"):
        xn.load(ckfile)


def test_unknown_format(ckfile):
    _rewrite(ckfile, lambda m: m.update(format="something-else"))
    with pytest.raises(xn.CheckpointError, match=r"good\.xpnet: unknown format 'something-else'"):
        xn.load(ckfile)


@pytest.mark.parametrize("text,msg", [("{not json", r"its 'xpnet' metadata is not valid JSON \("),
                                      ("[1, 2]", r"unknown format \[1, 2\]"),
                                      ('{"format": "xpnet-checkpoint", "version": "1"}', r"version: expected an int >= 1, got '1'$")],
                         ids=["not-json", "list", "str-version"])
def test_well_signed_but_malformed_metadata(ckfile, text, msg):
    tensors, _ = read_safetensors(ckfile)
    write_safetensors(ckfile, tensors, {"xpnet": text, "xpnet.sha256": ck_module._digest(text, tensors)})
    with pytest.raises(xn.CheckpointError, match=r"^checkpoint .*good\.xpnet: " + msg):
        xn.load(ckfile)


def test_non_string_metadata(tmp_path):
    p = tmp_path / "m.safetensors"
    p.write_bytes(_raw({"__metadata__": {"xpnet": 5}}))
    with pytest.raises(FormatError, match=r"m\.safetensors: corrupt header \(__metadata__ must map strings to strings, got \{'xpnet': 5\}\)"):
        read_safetensors(p)
    with pytest.raises(xn.CheckpointError, match=r"^checkpoint .*m\.safetensors: corrupt header \(__metadata__"):
        xn.load(p)


def test_digest_covers_the_tensors_names(ckfile):
    """Renaming a tensor (same bytes) is detected too."""
    tensors, md = read_safetensors(ckfile)
    tensors["model.0.weightX"] = tensors.pop("model.0.weight")
    write_safetensors(ckfile, tensors, md)
    with pytest.raises(xn.CheckpointError, match="SHA-256 does not match"):
        xn.load(ckfile)


# -- safetensors reader errors (direct) ----------------------------------------------------------------------


def _raw(header, data=b""):
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


@pytest.mark.parametrize("header,data,msg", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4,
     r"corrupt header: 'a' spans bytes 0\.\.4, but F32 \[2\] needs 8 bytes from byte 0"),
    ({"a": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8, r"corrupt header entry for 'a'"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, r"corrupt header entry for 'a'"),
    ({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, r"corrupt header entry for 'a'"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8,
     r"corrupt header: 'a' spans bytes 4\.\.8, but F32 \[1\] needs 4 bytes from byte 0"),
    ({"a": [1, 2]}, b"", r"corrupt header entry for 'a'"),
])
def test_reader_rejects_malformed_headers(tmp_path, header, data, msg):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(_raw(header, data))
    with pytest.raises(FormatError, match=r"bad\.safetensors: " + msg):
        read_safetensors(p)


def test_reader_rejects_bad_utf8_header(tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(struct.pack("<Q", 2) + b"\xff\xfe")
    with pytest.raises(FormatError, match=r"bad\.safetensors: corrupt header \("):
        read_safetensors(p)


def test_writer_rejects_unsupported(tmp_path):
    with pytest.raises(TypeError, match=r"safetensors: cannot store 'z' of dtype complex128"):
        write_safetensors(tmp_path / "c.safetensors", {"z": np.zeros(2, np.complex128)})
    with pytest.raises(TypeError, match=r"safetensors: metadata keys and values must be strings, not for \['n'\]"):
        write_safetensors(tmp_path / "c.safetensors", {"a": np.zeros(2)}, {"n": 3})
    assert list(tmp_path.iterdir()) == []


def test_all_dtypes_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {name: rng.integers(0, 100, (2, 3)).astype(name) for name in st_module._CODES if name != "bool"}
    tensors["bool"] = rng.integers(0, 2, (4,)).astype(bool)
    tensors["scalar"] = np.asarray(7, dtype=np.int64)
    tensors["empty"] = np.zeros((0, 3), np.float32)
    write_safetensors(tmp_path / "all.safetensors", tensors, {"k": "v"})
    got, md = read_safetensors(tmp_path / "all.safetensors")
    assert md == {"k": "v"}
    assert sorted(got) == sorted(tensors)
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v)
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return
    ref = load_file(str(tmp_path / "all.safetensors"))  # the reference reader agrees
    assert sorted(ref) == sorted(tensors)
    for k, v in tensors.items():
        assert ref[k].dtype == v.dtype and ref[k].shape == v.shape, k
        np.testing.assert_array_equal(ref[k], v)


# -- atomic writes -------------------------------------------------------------------------------------------


class _Boom(RuntimeError):
    pass


def _failing_atomic_write(real, fail_on_call):
    """An atomic_write whose file raises on the ``fail_on_call``-th write, after writing half of its bytes."""

    @contextlib.contextmanager
    def patched(path, mode="wb"):
        with real(path, mode) as f:
            calls = [0]
            write = f.write

            class Proxy:
                def write(self, b):
                    calls[0] += 1
                    if calls[0] == fail_on_call:
                        write(b[: len(b) // 2])
                        raise _Boom("disk full")
                    return write(b)

                def __getattr__(self, name):
                    return getattr(f, name)

            yield Proxy()

    return patched


@pytest.mark.parametrize("how", ["encode", "header-write", "data-write", "fsync"])
def test_failed_write_leaves_the_old_file(ckfile, monkeypatch, how):
    before = ckfile.read_bytes()
    listing = sorted(os.listdir(ckfile.parent))
    if how == "encode":
        monkeypatch.setattr(st_module, "encode", lambda *a, **k: (_ for _ in ()).throw(_Boom("encode")))
    elif how == "fsync":
        def fsync(fd):
            raise _Boom("fsync failed")
        monkeypatch.setattr(os, "fsync", fsync)
    else:
        monkeypatch.setattr(st_module, "atomic_write",
                            _failing_atomic_write(st_module.atomic_write, 2 if how == "header-write" else 3))
    with backends.use("numpy"):
        net = _net()
    with pytest.raises(_Boom):
        xn.save(ckfile, net)
    assert ckfile.read_bytes() == before
    assert sorted(os.listdir(ckfile.parent)) == listing  # no temporary file left behind
    monkeypatch.undo()
    xn.load(ckfile)


def test_atomic_write_creates_parents_and_replaces(tmp_path):
    p = tmp_path / "a" / "b" / "ck.xpnet"
    with backends.use("numpy"):
        xn.save(p, _net())
        net2 = _net()
        xn.save(p, net2)
    assert os.listdir(p.parent) == ["ck.xpnet"]
    _assert_same_state(_host_state(net2), _host_state(xn.load(p).net))


# -- the reference safetensors package -----------------------------------------------------------------------


def test_checkpoint_is_read_by_the_reference_package(saved):
    st_numpy = pytest.importorskip("safetensors.numpy")
    safetensors = pytest.importorskip("safetensors")
    net, opt, _, path = saved
    ref = st_numpy.load_file(str(path))
    want = {f"model.{k}": v for k, v in _host_state(net).items()}
    for k, v in want.items():
        assert ref[k].dtype == v.dtype and ref[k].shape == v.shape, k
        np.testing.assert_array_equal(ref[k], v)
    np.testing.assert_array_equal(ref["optimizer.0.exp_avg"], host(opt.state[0]["exp_avg"]))
    assert all(k in want or k.startswith(("optimizer.", "rng.")) for k in ref)
    with safetensors.safe_open(str(path), framework="np") as f:
        md = f.metadata()
    assert json.loads(md["xpnet"])["format"] == "xpnet-checkpoint"
    assert md["xpnet.sha256"] == ck_module._digest(md["xpnet"], ref)


def test_reference_file_is_read(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(1)
    tensors = {"w": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(4),
               "idx": np.arange(5, dtype=np.int64), "mask": np.array([True, False, True]),
               "h": rng.standard_normal((2, 2)).astype(np.float16), "s": np.asarray(2.5, np.float32),
               "u": np.arange(7, dtype=np.uint8)}
    p = tmp_path / "ref.safetensors"
    st_numpy.save_file(tensors, str(p), metadata={"format": "np", "x": "y"})
    got, md = read_safetensors(p)
    assert md == {"format": "np", "x": "y"}
    assert sorted(got) == sorted(tensors)
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v)


# -- no code runs on load ------------------------------------------------------------------------------------


def _code_names(src):
    """Every module imported, name used, attribute read and keyword passed in ``src`` (its code, not its docs)."""
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.update([node.module or "", *(a.name for a in node.names)])
        elif isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            out.add(node.arg)
    return out


def test_loading_never_unpickles(ckfile, monkeypatch):
    from xpnet.nets import checkpoint_arch, checkpoint_schema

    for mod in (ck_module, checkpoint_schema, checkpoint_arch, st_module, xn.io.atomic, backends._host):
        names = _code_names(inspect.getsource(mod))
        assert not names & {"pickle", "allow_pickle", "marshal", "shelve", "eval", "exec", "__import__"}, mod.__name__

    def refuse(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    ck = xn.load(ckfile)
    assert ck.optimizer is not None


def test_hostile_strings_in_metadata_are_just_data(tmp_path, monkeypatch):
    hostile = {"code": "__import__('os').system('touch pwned')", "pickle": "cos\nsystem\n(S'touch pwned'\ntR.",
               "yaml": "!!python/object/apply:os.system ['touch pwned']", "nested": {"a": [1, None, "${HOME}"]}}
    with backends.use("numpy"):
        p = xn.save(tmp_path / "h.xpnet", _net(), extra=hostile, callbacks={"0:Mine": {"code": hostile["code"]}},
                    history={"loss": [1.0], "eval('1+1')": [2.0]})
        # a history is numbers (what fit reads back); a save refuses what a load would refuse
        with pytest.raises(ValueError, match=r"^save: history\['loss'\]\[0\]: expected a number, got \"eval\('1\+1'\)\"$"):
            xn.save(tmp_path / "h2.xpnet", _net(), history={"loss": ["eval('1+1')"]})
    monkeypatch.chdir(tmp_path)
    ck = xn.load(p)
    assert ck.extra == hostile and ck.history == {"loss": [1.0], "eval('1+1')": [2.0]}
    assert ck.callbacks == {"0:Mine": {"code": hostile["code"]}}
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "h2.xpnet").exists()


# -- a bit-identical resume ------------------------------------------------------------------------------------


def test_resume_is_bit_identical(backend, tmp_path):
    if _on_gpu(backend):
        pytest.skip("bit-identical resume is promised on the CPU backends (CuPy cannot save its generator state; "
                    "GPU kernels may reduce in varying order)")
    X, y = xn.data.moons(96, seed=1, backend=backend)

    def make():
        backend.manual_seed(7)
        net = xn.Sequential(xn.Linear(2, 16), xn.BatchNorm1d(16), xn.ReLU(), xn.Dropout(0.2), xn.Linear(16, 2))
        return net, xn.Adam(net, lr=0.01)

    def run(net, opt, loss, epochs, extra=(), resume=None):
        return _fit_with_step_schedule(net, opt, loss, (X, y), epochs, extra, resume)

    net, opt = make()
    full = run(net, opt, xn.CrossEntropyLoss(), 4)
    want = _host_state(net)

    net, opt = make()
    path = tmp_path / "run.xpnet"
    first = run(net, opt, xn.CrossEntropyLoss(), 2, [xn.ModelCheckpoint(path)])
    assert first["loss"] == full["loss"][:2]
    ck = xn.load(path)
    assert ck.epoch == 2 and ck.history["loss"] == full["loss"][:2]
    backend.rng.normal((17,))  # the resume must not depend on the generator's state before it
    second = run(ck.net, ck.optimizer, ck.loss, 4, [xn.ModelCheckpoint(path)], resume=ck)
    _assert_same_state(want, _host_state(ck.net))
    for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert second[k] == full[k], k
    assert full["lr"] == [0.01, 0.01, 0.01, 0.005]  # the schedule's state matters: it must be restored
    assert xn.load(path).epoch == 4


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_checkpoint_gets_the_umask_permissions(tmp_path):
    """Not the 0600 of a mkstemp temporary file: others can read a checkpoint as they can any new file."""
    old = os.umask(0o022)
    try:
        with backends.use("numpy"):
            p = xn.save(tmp_path / "perm.xpnet", _net())
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o644
        os.umask(0o077)
        with backends.use("numpy"):
            xn.save(p, _net())
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    finally:
        os.umask(old)


# -- composites, tied and frozen parameters, parameter groups (format 2) ---------------------------------------


def _composite(**kw):
    """Residuals (with and without a shortcut) and a Concat, with BatchNorm running statistics."""
    return xn.Sequential(
        xn.Linear(3, 6, **kw),
        xn.Residual(xn.Sequential(xn.Linear(6, 6, **kw), xn.BatchNorm1d(6, **kw), xn.Tanh())),
        xn.Concat(xn.Linear(6, 4, **kw), xn.Residual(xn.Linear(6, 6, **kw), xn.Linear(6, 6, **kw))),
        xn.ReLU(),
        xn.Linear(10, 2, **kw),
    )


def _tied_frozen_grouped(net):
    """Ties two 6x6 weights, freezes a bias, and gives an Adam with two groups (the head's first)."""
    net.tie("1.body.0.weight", "2.1.shortcut.weight")
    net[2].branches[0].bias.requires_grad_(False)
    head = net[4].parameters()
    rest = [p for p in net.parameters() if all(p is not q for q in head)]
    return xn.Adam([{"params": head, "lr": 0.02, "betas": (0.8, 0.9)}, {"params": rest, "weight_decay": 0.01}],
                   lr=0.01, amsgrad=True)


def _positions(net, params):
    pos = {id(p): i for i, p in enumerate(net.parameters())}
    return [pos[id(p)] for p in params]


def _hypers(opt):
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


def test_composite_with_ties_frozen_and_groups_round_trips(backend, tmp_path):
    net = _composite()
    opt = _tied_frozen_grouped(net)
    crit = xn.CrossEntropyLoss(weight=[1.0, 3.0], label_smoothing=0.1)
    x, y = _data(backend)
    for _ in range(3):
        _step(net, crit, opt, x, y)
    path = xn.save(tmp_path / "c.xpnet", net, opt, loss=crit)
    tensors, md = read_safetensors(path)
    meta = json.loads(md["xpnet"])
    assert meta["version"] == 2 and meta["tied"] == [["1.body.0.weight", "2.1.shortcut.weight"]]
    assert meta["frozen"] == ["2.0.bias"]
    assert "model.1.body.0.weight" in tensors and "model.2.1.shortcut.weight" not in tensors  # stored once

    ck = xn.load(path)
    assert repr(ck.net) == repr(net) and type(ck.net[2].branches[1]) is xn.Residual
    tied = ck.net[1].body[0].weight
    assert tied is ck.net[2].branches[1].shortcut.weight
    assert ck.net.tied_parameters() == net.tied_parameters()
    assert [(n, p.requires_grad) for n, p in ck.net.named_parameters()] == [
        (n, p.requires_grad) for n, p in net.named_parameters()]
    assert ck.net[2].branches[0].bias.requires_grad is False
    _assert_same_state(_host_state(net), _host_state(ck.net))
    # the optimizer: the same groups over the loaded net's parameters, the tied one once
    o = ck.optimizer
    assert type(o) is xn.Adam and len(o.param_groups) == 2 and _hypers(o) == _hypers(opt)
    assert [_positions(ck.net, g["params"]) for g in o.param_groups] == [
        _positions(net, g["params"]) for g in opt.param_groups]
    assert o.param_groups[0]["params"] == ck.net[4].parameters()
    assert sum(p is tied for p in o.params) == 1 and len(o.params) == len(ck.net.parameters())
    _assert_same_opt_state(opt, o)
    assert o.state[0]["step"] == 3
    # the loss, class weights included, on the net's backend
    assert type(ck.loss) is xn.CrossEntropyLoss and ck.loss.config() == crit.config()
    assert backends.backend_of(ck.loss.weight) is backend
    # one more step on both: the same bits, still tied, the frozen bias untouched
    frozen = host(ck.net[2].branches[0].bias.data)
    _step(net, crit, opt, x, y)
    _step(ck.net, ck.loss, o, x, y)
    _assert_same_state(_host_state(net), _host_state(ck.net))
    _assert_same_opt_state(opt, o)
    assert ck.net[1].body[0].weight is ck.net[2].branches[1].shortcut.weight
    np.testing.assert_array_equal(host(ck.net[2].branches[0].bias.data), frozen)


def test_tied_parameter_is_stepped_once(tmp_path):
    """SGD over a net whose two Linears share one weight: the loaded optimizer steps it once per step,
    with the sum of both uses' gradients, exactly as the original."""
    with backends.use("numpy"):
        net = xn.Sequential(xn.Linear(4, 4), xn.Tanh(), xn.Linear(4, 4))
        net.tie("0.weight", "2.weight")
        opt = xn.SGD(net, lr=0.1, momentum=0.9)
        x = backends.get("numpy").asarray(np.random.default_rng(0).standard_normal((5, 4)), dtype="float32")
        t = backends.get("numpy").asarray(np.random.default_rng(1).standard_normal((5, 4)), dtype="float32")
        crit = xn.MSELoss()
        for _ in range(2):
            _step(net, crit, opt, x, t)
        ck = xn.load(xn.save(tmp_path / "tied.xpnet", net, opt))
    assert ck.net[0].weight is ck.net[2].weight and len(ck.optimizer.params) == 3
    before = host(ck.net[0].weight.data)
    _step(net, crit, opt, x, t)
    _step(ck.net, crit, ck.optimizer, x, t)
    _assert_same_state(_host_state(net), _host_state(ck.net))
    assert not np.array_equal(host(ck.net[0].weight.data), before)


def test_frozen_flags_without_an_optimizer(backend, tmp_path):
    net = _net()
    net[0].requires_grad_(False)
    ck = xn.load(xn.save(tmp_path / "f.xpnet", net))
    assert [p.requires_grad for p in ck.net.parameters()] == [False, False, True, True, True, True]


class Stack(xn.Layer):
    """A composite of one's own: blocks in a list attribute, ``*blocks`` in the constructor."""

    def __init__(self, *blocks, scale=1.0):
        self.blocks, self.scale = list(blocks), scale

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x * self.scale

    def config(self):
        return {"blocks": self.blocks, "scale": self.scale}


@pytest.fixture
def private_registry(monkeypatch):
    from xpnet.nets import spec as S

    monkeypatch.setattr(S, "_REGISTRY", dict(S._registry()))
    return S


def test_registered_composite_round_trips(backend, tmp_path, private_registry):
    private_registry.register(Stack)
    net = Stack(xn.Linear(3, 4), xn.Residual(xn.Sequential(xn.Linear(4, 4), xn.ReLU())), xn.BatchNorm1d(4), scale=0.5)
    x, _ = _data(backend)
    net(x)
    ck = xn.load(xn.save(tmp_path / "s.xpnet", net))
    assert type(ck.net) is Stack and ck.net.scale == 0.5 and type(ck.net.blocks[1]) is xn.Residual
    assert list(ck.net.state_dict())[:2] == ["blocks.0.weight", "blocks.0.bias"]
    _assert_same_state(_host_state(net), _host_state(ck.net))
    ck.net.eval()
    net.eval()
    np.testing.assert_array_equal(host(ck.net(x)), host(net(x)))
    # a process that has not registered the class gets a clear error
    del private_registry._REGISTRY["Stack"]
    with pytest.raises(xn.CheckpointError, match=r"^checkpoint .*s\.xpnet: cannot rebuild it: model: unknown layer type 'Stack'"):
        xn.load(tmp_path / "s.xpnet")


def test_resume_with_composite_ties_and_groups_is_bit_identical(backend, tmp_path):
    if _on_gpu(backend):
        pytest.skip("bit-identical resume is promised on the CPU backends")
    X, y = xn.data.moons(96, seed=1, backend=backend)

    def make():
        backend.manual_seed(7)
        net = xn.Sequential(
            xn.Linear(2, 8),
            xn.Residual(xn.Sequential(xn.Linear(8, 8), xn.BatchNorm1d(8), xn.Tanh())),
            xn.Concat(xn.Linear(8, 8), xn.Sequential(xn.Dropout(0.2), xn.Linear(8, 4))),
            xn.ReLU(),
            xn.Linear(12, 2),
        )
        net.tie("1.body.0.weight", "2.0.weight")
        net[0].bias.requires_grad_(False)
        head = net[4].parameters()
        rest = [p for p in net.parameters() if all(p is not q for q in head)]
        opt = xn.Adam([{"params": rest}, {"params": head, "lr": 0.03, "weight_decay": 0.01}], lr=0.01)
        return net, opt

    def run(net, opt, loss, epochs, extra=(), resume=None):
        return _fit_with_step_schedule(net, opt, loss, (X, y), epochs, extra, resume)

    net, opt = make()
    full = run(net, opt, xn.CrossEntropyLoss(), 4)
    want, want_hypers = _host_state(net), _hypers(opt)

    net, opt = make()
    path = tmp_path / "run.xpnet"
    run(net, opt, xn.CrossEntropyLoss(), 2, [xn.ModelCheckpoint(path)])
    ck = xn.load(path)
    assert ck.net[1].body[0].weight is ck.net[2].branches[0].weight and len(ck.optimizer.param_groups) == 2
    backend.rng.normal((17,))  # the resume must not depend on the generator's state before it
    second = run(ck.net, ck.optimizer, ck.loss, 4, resume=ck)
    _assert_same_state(want, _host_state(ck.net))
    assert _hypers(ck.optimizer) == want_hypers
    for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert second[k] == full[k], k


# -- format 1 ------------------------------------------------------------------------------------------------


def _save_v1(path, net, optimizer=None, *, opt_spec=None, loss_spec=None, epoch=0):
    """A version-1 checkpoint, written as xpnet wrote them before format 2 (the save of commit 0f0c305):
    every state-dict key stored, the optimizer as one list of net positions with its state indexed by
    position in ``optimizer.params``, integer state in ``ints``, no ties, no frozen flags."""
    be = backends.backend_of(net.parameters()[0].data)
    tensors = {f"model.{k}": be.to_numpy(v) for k, v in net.state_dict().items()}
    meta = {
        "format": "xpnet-checkpoint", "version": 1,
        "model": xn.nets.spec.layer_spec(net),
        "loss": loss_spec,
        "optimizer": None, "epoch": int(epoch), "history": {}, "callbacks": {}, "extra": {},
        "backend": be.label, "dtype": "float32", "rng": None,
    }
    if optimizer is not None:
        pos = {id(p): i for i, p in enumerate(net.parameters())}
        steps = {}
        for i, st in optimizer.state_dict()["state"].items():
            for name, v in st.items():
                if isinstance(v, int):
                    steps.setdefault(str(i), {})[name] = v
                else:
                    tensors[f"optimizer.{i}.{name}"] = backends.to_numpy(v)
        meta["optimizer"] = {"spec": opt_spec, "params": [pos[id(p)] for p in optimizer.params], "ints": steps}
    text = json.dumps(meta, sort_keys=True)
    write_safetensors(path, tensors, {"xpnet": text, "xpnet.sha256": ck_module._digest(text, tensors)})
    return path


V1_OPTS = [("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": True, "weight_decay": 0.0}),
           ("Adam", {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "amsgrad": True})]


@pytest.mark.parametrize("name,spec", V1_OPTS, ids=[o[0] for o in V1_OPTS])
def test_version_1_files_load(backend, tmp_path, name, spec):
    net = _net()
    head = net[3].parameters()[::-1]  # some parameters, out of order: the positions matter
    opt = getattr(xn, name)(head, **spec)
    crit = xn.CrossEntropyLoss(reduction="sum")
    x, y = _data(backend)
    for _ in range(2):
        _step(net, crit, opt, x, y)
    path = _save_v1(tmp_path / "v1.xpnet", net, opt, opt_spec={"type": name, **spec}, epoch=2,
                    loss_spec={"type": "CrossEntropyLoss", "reduction": "sum", "label_smoothing": 0.0})
    ck = xn.load(path)
    assert ck.epoch == 2 and repr(ck.net) == repr(net) and ck.net.tied_parameters() == []
    assert all(p.requires_grad for p in ck.net.parameters())
    _assert_same_state(_host_state(net), _host_state(ck.net))
    assert type(ck.loss) is xn.CrossEntropyLoss and ck.loss.reduction == "sum"
    assert ck.optimizer.params == ck.net[3].parameters()[::-1] and _hypers(ck.optimizer) == _hypers(opt)
    _assert_same_opt_state(opt, ck.optimizer)
    _step(net, crit, opt, x, y)
    _step(ck.net, ck.loss, ck.optimizer, x, y)
    _assert_same_state(_host_state(net), _host_state(ck.net))
    # and a version-1 file of the net alone
    ck = xn.load(_save_v1(tmp_path / "bare.xpnet", net))
    assert ck.optimizer is None and ck.loss is None
    _assert_same_state(_host_state(net), _host_state(ck.net))


# -- hostile files: the schema (issue 17) ---------------------------------------------------------------------


def _setter(*path_value):
    *path, value = path_value

    def edit(meta):
        o = meta
        for k in path[:-1]:
            o = o[k]
        o[path[-1]] = value
    return edit


def _deleter(*path):
    def edit(meta):
        o = meta
        for k in path[:-1]:
            o = o[k]
        del o[path[-1]]
    return edit


def _rewrite_tensors(path, edit):
    tensors, md = read_safetensors(path)
    edit(tensors)
    write_safetensors(path, tensors, {"xpnet": md["xpnet"], "xpnet.sha256": ck_module._digest(md["xpnet"], tensors)})


# (edit of the metadata, the message after "checkpoint <path>: "): every one of them a crafted file
# with a valid SHA-256, which xpnet before issue 17 failed on with a raw exception or accepted.
HOSTILE = [
    ("no-backend", _deleter("backend"), r"the metadata lacks 'backend'"),
    ("backend-5", _setter("backend", 5), r"backend: expected a backend name \(.*\), got 5"),
    ("backend-unknown", _setter("backend", "jax:gpu"), r"backend: expected a backend name"),
    ("dtype-list", _setter("dtype", ["float32"]), r"dtype: expected one of float16, bfloat16, float32, float64, got \['float32'\]"),
    ("unknown-key", _setter("zzz", 1), r"unknown metadata key 'zzz'"),
    ("epoch-str", _setter("epoch", "x"), r"epoch: expected an int >= 0, got 'x'"),
    ("epoch-negative", _setter("epoch", -1), r"epoch: expected an int >= 0, got -1"),
    ("epoch-bool", _setter("epoch", True), r"epoch: expected an int >= 0, got True"),
    ("history-list", _setter("history", [1]), r"history: expected an object, got \[1\]"),
    ("history-entry", _setter("history", {"loss": [0.5, "x"]}), r"history\['loss'\]\[1\]: expected a number, got 'x'"),
    ("history-huge-int", _setter("history", {"loss": [10**400]}), r"history\['loss'\]\[0\]: expected a number"),
    ("callbacks-list", _setter("callbacks", []), r"callbacks: expected an object, got \[\]"),
    ("early-stopping", _setter("callbacks", {"0:EarlyStopping": {"best": "x", "best_epoch": 0, "wait": 0}}),
     r"callbacks\['0:EarlyStopping'\]\.best: expected a number or null, got 'x'"),
    ("plateau-factor", _setter("callbacks", {"0:ReduceLROnPlateau": {
        "best": 0.5, "num_bad_epochs": 0, "cooldown_counter": 0, "last_epoch": 3, "factor": "x"}}),
     r"callbacks\['0:ReduceLROnPlateau'\]\.factor: expected a number in \[0, 1\), got 'x'"),
    ("plateau-missing", _setter("callbacks", {"0:ReduceLROnPlateau": {"best": 0.5}}),
     r"callbacks\['0:ReduceLROnPlateau'\]: the state lacks 'num_bad_epochs'"),
    ("extra-step", _setter("extra", {"step": "x"}), r"extra\.step: expected an int >= 0, got 'x'"),
    ("scheduler-optimizer", _setter("callbacks", {"0:LRScheduler": {"optimizer": 1, "last_epoch": 0}}),
     r"callbacks\['0:LRScheduler'\]\.optimizer: expected nothing \(a schedule's state has no optimizer\), got 1"),
    ("scheduler-lrs", _setter("callbacks", {"0:LRScheduler": {"base_lrs": ["x"]}}),
     r"callbacks\['0:LRScheduler'\]\.base_lrs: expected a list of numbers, got \['x'\]"),
    ("rng-list", _setter("rng", [1, 2]), r"rng: expected null, \"tensor\" or a generator state \(an object\), got \[1, 2\]"),
    ("rng-bad-state", _setter("rng", "bit_generator", "MT19937"), r"rng: not a generator state of numpy \("),
    ("rng-tensor-missing", _setter("rng", "tensor"), r"rng: says \"tensor\", but the file has no 'rng\.state' tensor"),
    ("model-missing", _deleter("model"), r"the metadata lacks 'model'"),
    ("model-int", _setter("model", 5), r"model: expected a layer spec, an object with a string \"type\", got 5"),
    ("model-loss", _setter("model", {"type": "MSELoss"}), r"model: expected a layer or a composite, got the loss MSELoss"),
    ("model-placement", _setter("model", "layers", 0, "backend", "cupy"), r"model\.layers\[0\]\.backend: a spec does not choose"),
    ("model-unknown-arg", _setter("model", "layers", 0, "units", 3), r"model\.layers\[0\]: Linear takes no argument 'units'"),
    ("model-bad-arg", _setter("model", "layers", 0, "in_features", -3),
     r"model\.layers\[0\]: Linear: in_features must be a positive int, got -3"),
    ("model-huge-int", _setter("model", "layers", 0, "in_features", 10**400),
     r"model\.layers\[0\]\.in_features: expected integers that fit in 64 bits, got 1000000"),
    ("model-spec-in-arg", _setter("model", "layers", 0, "bias", [{"type": "Linear", "in_features": 10**5, "out_features": 10**5}]),
     r"model\.layers\[0\]\.bias: expected a value, got a layer spec"),
    ("model-huge", _setter("model", "layers", 0, {"type": "Linear", "in_features": 100000, "out_features": 100000}),
     r"model: the architecture holds 10000100033 values \(40000400136 bytes in float32\), more than max_bytes=4294967296"),
    ("model-bigger", _setter("model", "layers", 0, "out_features", 6),
     r"tensors\['model\.0\.weight'\]: expected shape \[6, 3\] \(the architecture's\), got \[5, 3\]"),
    ("model-lacks", _setter("model", "layers", 3, "bias", False), r"tensors: the file has 'model\.3\.bias', which the architecture does not"),
    ("model-more", _setter("model", "layers", 2, {"type": "Linear", "in_features": 5, "out_features": 5}),
     r"tensors: the architecture has '2\.weight' \(and 1 more\), which the file lacks"),
    ("loss-linear", _setter("loss", {"type": "Linear", "in_features": 2, "out_features": 2}),
     r"loss: expected a loss, got a Linear \(a layer, not a Loss\)"),
    ("loss-bad-arg", _setter("loss", {"type": "CrossEntropyLoss", "reduction": "max"}),
     r"cannot rebuild it: loss: CrossEntropyLoss: reduction must be one of"),
    ("tied-unknown", _setter("tied", [["0.weight", "nope"]]), r"tied\[0\]\[1\]: the net has no parameter 'nope'"),
    ("tied-shapes", _setter("tied", [["0.weight", "3.weight"]]),
     r"tied\[0\]\[1\]: '3\.weight' has shape \(2, 5\), '0\.weight' has \(5, 3\): they cannot be one parameter"),
    ("tied-one", _setter("tied", [["0.weight"]]), r"tied\[0\]: expected a list of at least two names"),
    ("frozen-unknown", _setter("frozen", ["9.weight"]), r"frozen\[0\]: the net has no parameter '9\.weight'"),
    ("shared-root", _setter("shared", [["", "0"]]), r"shared\[0\]\[0\]: expected the path of a sub-layer, got ''"),
    ("shared-itself", _setter("shared", [["0", "0"]]), r"shared\[0\]\[1\]: '0' appears in more than one place of shared"),
    ("shared-different", _setter("shared", [["0", "3"]]),
     r"shared\[0\]\[1\]: the layer at '3' is not the same as the one at '0', so they cannot be one shared layer"),
    ("optimizer-type", _setter("optimizer", "spec", "type", "LBFGS"), r"optimizer\.spec\.type: expected one of Adam, AdamW, RMSprop, SGD, got 'LBFGS'"),
    ("optimizer-keys", _deleter("optimizer", "scalars"), r"optimizer: expected the keys param_groups, positions, scalars, spec"),
    ("lr-nan", _setter("optimizer", "spec", "lr", math.nan), r"optimizer\.spec\.lr: expected a finite number >= 0, got nan"),
    ("lr-group-inf", _setter("optimizer", "param_groups", 0, "lr", math.inf),
     r"optimizer\.param_groups\[0\]\.lr: expected a finite number >= 0, got inf"),
    ("lr-huge-int", _setter("optimizer", "param_groups", 0, "lr", 10**400), r"optimizer\.param_groups\[0\]\.lr: expected a finite number"),
    ("betas", _setter("optimizer", "param_groups", 0, "betas", [0.9, 1.5]),
     r"optimizer\.param_groups\[0\]\.betas: expected a pair of numbers in \[0, 1\), got \[0\.9, 1\.5\]"),
    ("amsgrad-int", _setter("optimizer", "spec", "amsgrad", 1), r"optimizer\.spec\.amsgrad: expected true or false, got 1"),
    ("hyper-unknown", _setter("optimizer", "param_groups", 0, "momentum", 0.9),
     r"optimizer\.param_groups\[0\]: Adam has no hyperparameter 'momentum'"),
    ("positions-range", _setter("optimizer", "positions", [0, 1, 2, 3, 4, 99]),
     r"optimizer\.positions\[5\]: expected one of the 6 positions in the net's parameters \(0\.\.5\), got 99"),
    ("positions-repeat", _setter("optimizer", "positions", [0, 1, 2, 3, 4, 4]), r"optimizer\.positions\[5\]: 4 is listed twice"),
    ("group-range", _setter("optimizer", "param_groups", 0, "params", [0, 1, 2, 3, 4, 5, 6]),
     r"optimizer\.param_groups\[0\]\.params\[6\]: expected one of the 6 indices in the optimizer's parameters \(0\.\.5\), got 6"),
    ("group-cover", _setter("optimizer", "param_groups", 0, "params", [0, 1, 2]),
     r"optimizer\.param_groups: no group holds parameter 3 of the optimizer's 6"),
    ("step-negative", _setter("optimizer", "scalars", "0", "step", -3), r"optimizer\.scalars\['0'\]\.step: expected an int >= 0, got -3"),
    ("step-float", _setter("optimizer", "scalars", "0", "step", 1.0), r"optimizer\.scalars\['0'\]\.step: expected an int >= 0, got 1\.0"),
    ("step-missing", _deleter("optimizer", "scalars", "0", "step"),
     r"optimizer: parameter 0 has Adam state without step, which its next step reads"),
    ("step-unknown", _setter("optimizer", "scalars", "0", "count", 1), r"optimizer\.scalars\['0'\]\['count'\]: Adam keeps no number called 'count'"),
    ("scalar-index", _setter("optimizer", "scalars", "9", {"step": 1}),
     r"optimizer\.scalars\['9'\]: expected the index of one of the optimizer's 6 parameters"),
]


@pytest.mark.parametrize("edit,msg", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_crafted_metadata_is_refused_with_the_field_named(ckfile, edit, msg):
    xn.load(ckfile)
    _rewrite(ckfile, edit)
    with pytest.raises(xn.CheckpointError) as info:
        xn.load(ckfile)
    text = str(info.value)
    assert re.match(r"^checkpoint .*good\.xpnet: " + msg, text), text
    assert len(text) <= 300


TENSOR_EDITS = [
    ("adam-moment-shape", lambda t: t.update({"optimizer.0.exp_avg": np.zeros((2, 2), np.float32)}),
     r"tensors\['optimizer\.0\.exp_avg'\]: expected a float tensor of its parameter's shape \[5, 3\], got F32 \[2, 2\]"),
    ("adam-moment-missing", lambda t: t.pop("optimizer.0.exp_avg"),
     r"optimizer: parameter 0 has Adam state without exp_avg, which its next step reads"),
    ("unknown-state", lambda t: t.update({"optimizer.0.velocity": np.zeros((5, 3), np.float32)}),
     r"tensors\['optimizer\.0\.velocity'\]: Adam keeps no state called 'velocity'"),
    ("state-index", lambda t: t.update({"optimizer.7.exp_avg": np.zeros((5, 3), np.float32)}),
     r"tensors: optimizer state 'optimizer\.7\.exp_avg' is for parameter 7, but the optimizer has 6"),
    ("weight-dtype", lambda t: t.update({"model.0.weight": np.zeros((5, 3), np.int64)}),
     r"tensors\['model\.0\.weight'\]: expected a floating-point dtype, got I64"),
    ("counter-dtype", lambda t: t.update({"model.1.num_batches_tracked": np.zeros((), np.float32)}),
     r"tensors\['model\.1\.num_batches_tracked'\]: expected an integer dtype, got F32"),
    ("weight-missing", lambda t: t.pop("model.3.bias"), r"tensors: the architecture has '3\.bias', which the file lacks"),
    ("unexpected", lambda t: t.update({"notes": np.zeros(1, np.uint8)}), r"tensors: unexpected tensor 'notes'"),
    ("rng-unasked", lambda t: t.update({"rng.state": np.zeros(16, np.uint8)}),
     r"tensors: the file has 'rng\.state', but its rng field is not \"tensor\""),
]


@pytest.mark.parametrize("edit,msg", [h[1:] for h in TENSOR_EDITS], ids=[h[0] for h in TENSOR_EDITS])
def test_crafted_tensors_are_refused(ckfile, edit, msg):
    _rewrite_tensors(ckfile, edit)
    with pytest.raises(xn.CheckpointError, match=r"^checkpoint .*good\.xpnet: " + msg):
        xn.load(ckfile)


def test_a_tiny_file_asking_for_a_huge_net_allocates_nothing(ckfile):
    """Linear(100000, 100000) would be 37 GiB: the size is computed from the spec and refused; a
    raised max_bytes still compares the spec with the file's tensors before building."""
    _rewrite(ckfile, _setter("model", "layers", 0, {"type": "Linear", "in_features": 100000, "out_features": 100000}))
    for kw, msg in (({}, "more than max_bytes=4294967296; pass a larger max_bytes"),
                    ({"max_bytes": 2**40}, r"tensors\['model\.0\.weight'\]: expected shape \[100000, 100000\]")):
        tracemalloc.start()
        try:
            with pytest.raises(xn.CheckpointError, match=msg):
                xn.load(ckfile, **kw)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 2 * 2**20, peak


def test_max_bytes_bounds_the_file_and_the_net(tmp_path):
    with backends.use("numpy"):
        p = xn.save(tmp_path / "big.xpnet", xn.Sequential(xn.Linear(100, 100), xn.ReLU()))
    with pytest.raises(xn.CheckpointError, match=r"big\.xpnet: its tensors hold 40400 bytes, more than the limit of 40000$"):
        xn.load(p, max_bytes=40000)
    with pytest.raises(xn.CheckpointError, match=r"big\.xpnet: model: the architecture holds 10100 values \(80800 bytes in float64\), "
                                                 r"more than max_bytes=50000"):
        xn.load(p, max_bytes=50000, dtype="float64")
    assert xn.load(p, max_bytes=40400).net[0].weight.shape == (100, 100)
    with pytest.raises(ValueError, match=r"^load: max_bytes must be an int >= 0, got -1$"):
        xn.load(p, max_bytes=-1)


def _with_model_text(path, model_text):
    """The checkpoint at ``path`` with its "model" replaced by raw JSON text (deeper than json.dumps can write)."""
    tensors, md = read_safetensors(path)
    meta = json.loads(md["xpnet"])
    meta["model"] = "@MODEL@"
    text = json.dumps(meta, sort_keys=True).replace('"@MODEL@"', model_text)
    write_safetensors(path, {}, {"xpnet": text, "xpnet.sha256": ck_module._digest(text, {})})


@pytest.mark.parametrize("depth,msg", [(3000, r"its 'xpnet' metadata is JSON nested more than 256 deep"),
                                       (150, r"model\.body\.body.*\.body\.body: layers nested more than 100 deep")])
def test_deep_specs_are_refused_not_a_recursion_error(tmp_path, depth, msg):
    with backends.use("numpy"):
        p = xn.save(tmp_path / "deep.xpnet", xn.Sequential(xn.ReLU()), rng=False)
    _with_model_text(p, '{"type": "Residual", "body": ' * depth + '{"type": "ReLU"}' + "}" * depth)
    with pytest.raises(xn.CheckpointError, match=r"^checkpoint .*deep\.xpnet: " + msg) as info:
        xn.load(p)
    assert len(str(info.value)) <= 300


def test_long_specs_load(tmp_path):
    """20,000 layers (linear in the spec's length: no hang), nested 60 deep."""
    with backends.use("numpy"):
        p = xn.save(tmp_path / "long.xpnet", xn.Sequential(*[xn.ReLU() for _ in range(20_000)]), rng=False)
        assert len(xn.load(p).net) == 20_000
        _with_model_text(p, '{"type": "Residual", "body": ' * 60 + '{"type": "ReLU"}' + "}" * 60)
        assert type(xn.load(p).net) is xn.Residual


def test_malformed_and_overfull_headers_give_short_messages(tmp_path):
    p = tmp_path / "h.xpnet"
    blob = b'{"a": ' + b"[1," * 700_000 + b"x"  # a 2 MB malformed header
    p.write_bytes(struct.pack("<Q", len(blob)) + blob)
    with pytest.raises(xn.CheckpointError, match=r"h\.xpnet: corrupt header \(JSON nested more than 8 deep\)$") as info:
        xn.load(p)
    blob = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": "' + b"y" * 2_000_000 + b'}'
    p.write_bytes(struct.pack("<Q", len(blob)) + blob)
    with pytest.raises(xn.CheckpointError, match=r"h\.xpnet: corrupt header \(Unterminated string") as info:
        xn.load(p)
    assert len(str(info.value)) <= 300
    entries = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(400_000)}
    blob = json.dumps(entries).encode()
    p.write_bytes(struct.pack("<Q", len(blob)) + blob)
    with pytest.raises(xn.CheckpointError, match=r"h\.xpnet: its header lists more than the limit of 100000 entries$"):
        xn.load(p)
    blob = json.dumps({"a": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}).encode()  # unhashable dtype
    p.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 4)
    with pytest.raises(xn.CheckpointError, match=r"h\.xpnet: corrupt header entry for 'a': \{'data_offsets': \[0, 4\], 'dtype': \['F32'\]"):
        xn.load(p)


def test_messages_are_bounded_and_keep_the_file_name(tmp_path):
    d = tmp_path / ("d" * 200) / ("e" * 200)
    d.mkdir(parents=True)
    with backends.use("numpy"):
        p = xn.save(d / "named.xpnet", _net())
    _rewrite(p, _setter("backend", "x" * 100_000))
    with pytest.raises(xn.CheckpointError) as info:
        xn.load(p)
    text = str(info.value)
    assert len(text) <= 300 and text.startswith("checkpoint ...") and "named.xpnet: backend: expected a backend name" in text


def test_json_depth_scan():
    from xpnet.io.safetensors import json_depth

    for text in ["[]", '[[1, [2]], {"a": [3]}]', '"[[[["', '["\\\\", [[]]]', '["\\"[[[", []]', "[" * 50 + "]" * 50,
                 '{"a": {"b": {"c": [[[]]]}}, "d": "{{{{{{{{{"}']:
        want = _parse_depth(json.loads(text))
        assert json_depth(text, 4) == min(want, 5) if want > 4 else json_depth(text, 4) <= 4
        assert json_depth(text, 100) >= want and (want > 4 or json_depth(text, 100) <= 100)
    assert json_depth("[1," * 40, 10) == 11  # unbalanced: the depth a parser reaches
    assert json_depth("]]]" + "[" * 30, 100) <= 100


def _parse_depth(v):
    if isinstance(v, (list, dict)):
        items = v.values() if isinstance(v, dict) else v
        return 1 + max((_parse_depth(e) for e in items), default=0)
    return 0


# -- a layer of one's own: checked after building (issue 17) ---------------------------------------------------


def test_registered_layer_is_checked_after_building(tmp_path, private_registry):
    private_registry.register(Stack)
    with backends.use("numpy"):
        p = xn.save(tmp_path / "s.xpnet", Stack(xn.Linear(3, 4), xn.ReLU(), scale=0.5))
        _rewrite(p, _setter("model", "blocks", 0, "out_features", 6))
        with pytest.raises(xn.CheckpointError,
                           match=r"s\.xpnet: tensors\['model\.blocks\.0\.weight'\]: expected shape \[6, 3\] \(the architecture's\), got \[4, 3\]"):
            xn.load(p)
        # its known children still count before anything is built
        _rewrite(p, _setter("model", "blocks", 0, {"type": "Linear", "in_features": 100000, "out_features": 100000}))
        with pytest.raises(xn.CheckpointError, match=r"s\.xpnet: model: the architecture holds 10000100000 values"):
            xn.load(p)


# -- authenticity: signed checkpoints (issue 17) ---------------------------------------------------------------


def test_signed_checkpoint_round_trips_and_is_verified(tmp_path, monkeypatch):
    monkeypatch.delenv(ck_module.KEY_ENV, raising=False)
    with backends.use("numpy"):
        net = _net()
        p = xn.save(tmp_path / "s.xpnet", net, key=b"secret")
        _assert_same_state(_host_state(net), _host_state(xn.load(p, key=b"secret").net))
        assert xn.load(p, key="secret").net is not None  # a str key is its UTF-8 bytes
        assert xn.load(p).net is not None  # without a key nothing is verified (the SHA-256 still is)
        with pytest.raises(xn.CheckpointError, match=r"s\.xpnet: its signature does not match the key: it was signed with "
                                                     r"another key, or written by someone without the key$"):
            xn.load(p, key=b"other")
        unsigned = xn.save(tmp_path / "u.xpnet", net)
        with pytest.raises(xn.CheckpointError, match=r"u\.xpnet: it is not signed, and a key was given \(key= or "
                                                     r"XPNET_CHECKPOINT_KEY\): an unsigned file could have been written by anyone$"):
            xn.load(unsigned, key=b"secret")
    # someone who can write the file but has not the key edits it and fixes the SHA-256: the signature fails
    _rewrite(p, _setter("epoch", 99))
    tensors, md = read_safetensors(p)
    assert md["xpnet.sha256"] == ck_module._digest(md["xpnet"], tensors) and "xpnet.hmac-sha256" not in md
    tensors, md = read_safetensors(p)
    write_safetensors(p, tensors, {**md, "xpnet.hmac-sha256": "0" * 64})
    with pytest.raises(xn.CheckpointError, match="its signature does not match the key"):
        xn.load(p, key=b"secret")


def test_signing_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ck_module.KEY_ENV, "from-env")
    with backends.use("numpy"):
        p = xn.save(tmp_path / "e.xpnet", _net())
        assert xn.load(p).net is not None
        assert xn.load(p, key="from-env").net is not None
        with pytest.raises(xn.CheckpointError, match="its signature does not match the key"):
            xn.load(p, key="another")
        monkeypatch.delenv(ck_module.KEY_ENV)
        unsigned = xn.save(tmp_path / "u.xpnet", _net())
        monkeypatch.setenv(ck_module.KEY_ENV, "from-env")
        with pytest.raises(xn.CheckpointError, match="it is not signed, and a key was given"):
            xn.load(unsigned)
        with pytest.raises(TypeError, match=r"^save: key must be bytes or str, got int$"):
            xn.save(tmp_path / "k.xpnet", _net(), key=5)
        with pytest.raises(ValueError, match=r"^load: key must not be empty$"):
            xn.load(p, key=b"")


# -- temporary files of interrupted saves (issue 17) -----------------------------------------------------------


def test_temporary_files_have_the_documented_pattern(tmp_path, monkeypatch):
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(pathlib.Path(src).name)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    with backends.use("numpy"):
        xn.save(tmp_path / "ck.xpnet", _net())
    assert len(seen) == 1 and re.fullmatch(r"\.ck\.xpnet\.[0-9a-f]{12}\.xpnet-tmp", seen[0])
    assert xn.io.atomic.temp_pattern(tmp_path / "ck.xpnet").fullmatch(seen[0])


def test_leftovers_of_an_interrupted_save_are_removed_by_the_next(tmp_path):
    target = tmp_path / "ck.xpnet"
    leftovers = [tmp_path / ".ck.xpnet.0123456789ab.xpnet-tmp", tmp_path / ".ck.xpnet.ffffffffffff.xpnet-tmp"]
    others = [tmp_path / ".ck.xpnet.0123456789ab.tmp", tmp_path / ".ck.xpnet.0123456789AB.xpnet-tmp",
              tmp_path / ".ck.xpnet.0123456789a.xpnet-tmp", tmp_path / ".other.xpnet.0123456789ab.xpnet-tmp",
              tmp_path / "ck.xpnet.0123456789ab.xpnet-tmp", tmp_path / ".ck.xpnet.0123456789ab.xpnet-tmp.keep",
              tmp_path / ".ck.xpnetX0123456789ab.xpnet-tmp"]
    for f in leftovers + others:
        f.write_bytes(b"partial")
    with backends.use("numpy"):
        xn.save(target, _net())
    assert not any(f.exists() for f in leftovers)
    assert all(f.read_bytes() == b"partial" for f in others)  # nothing else is touched
    assert xn.load(target).net is not None


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    import fcntl

    live = tmp_path / ".ck.xpnet.0123456789ab.xpnet-tmp"
    fd = os.open(live, os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with backends.use("numpy"):
            xn.save(tmp_path / "ck.xpnet", _net())
        assert live.exists()
    finally:
        os.close(fd)
    with backends.use("numpy"):
        xn.save(tmp_path / "ck.xpnet", _net())
    assert not live.exists()


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_killed_save_leaves_a_leftover_that_the_next_save_removes(tmp_path):
    """A real kill: a child process starts a large save and is SIGKILLed in the middle of writing."""
    import signal
    import subprocess
    import sys

    target = tmp_path / "ck.xpnet"
    code = ("import sys, time, xpnet as xn\n"
            "from xpnet.io import safetensors as st\n"
            "real = st.atomic_write\n"
            "import contextlib\n"
            "@contextlib.contextmanager\n"
            "def slow(path, mode='wb'):\n"
            "    with real(path, mode) as f:\n"
            "        f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n"
            "        yield f\n"
            "st.atomic_write = slow\n"
            "with xn.backends.use('numpy'):\n"
            "    xn.save(sys.argv[1], xn.Linear(3, 2))\n")
    repo = pathlib.Path(__file__).resolve().parents[1]
    child = subprocess.Popen([sys.executable, "-c", code, str(target)], cwd=repo, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    left = [f for f in os.listdir(tmp_path) if f.endswith(".xpnet-tmp")]
    assert len(left) == 1 and not target.exists()
    unrelated = tmp_path / ".ck.xpnet.notes"
    unrelated.write_text("mine")
    with backends.use("numpy"):
        xn.save(target, _net())
    assert sorted(os.listdir(tmp_path)) == [".ck.xpnet.notes", "ck.xpnet"]


def test_a_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(xn.CheckpointError, match=r"^checkpoint .*: cannot be read \(Is a directory\)$"):
        xn.load(tmp_path)


def test_version_1_files_are_checked_too(tmp_path):
    with backends.use("numpy"):
        net = _net()
        opt = xn.Adam(net)
        x, y = _data(backends.get("numpy"))
        _step(net, xn.CrossEntropyLoss(), opt, x, y)
        spec = {"type": "Adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}
        p = _save_v1(tmp_path / "v1.xpnet", net, opt, opt_spec=spec)
        assert xn.load(p).optimizer.state[0]["step"] == 1
        _rewrite(p, _setter("optimizer", "ints", "0", "step", -1))
        with pytest.raises(xn.CheckpointError, match=r"v1\.xpnet: optimizer\.ints\['0'\]\.step: expected an int >= 0, got -1$"):
            xn.load(p)
        _rewrite(p, _setter("optimizer", "params", [0, 1, 2, 3, 4, 6]))
        with pytest.raises(xn.CheckpointError, match=r"v1\.xpnet: optimizer\.params\[5\]: expected one of the 6 positions"):
            xn.load(p)
