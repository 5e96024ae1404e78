"""Checkpoints (xpnet.save / xpnet.load) and the safetensors format underneath: round trips on every backend,
damaged and foreign files, atomic writes, compatibility with the reference safetensors package, and a
bit-identical resume of training."""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import os
import pickle
import stat
import struct

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
                                      ('{"format": "xpnet-checkpoint", "version": "1"}', r"unknown format 'xpnet-checkpoint'")],
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
    for mod in (ck_module, st_module, xn.io.atomic, backends._host):
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
        p = xn.save(tmp_path / "h.xpnet", _net(), extra=hostile, history={"loss": ["eval('1+1')"]})
    monkeypatch.chdir(tmp_path)
    ck = xn.load(p)
    assert ck.extra == hostile and ck.history == {"loss": ["eval('1+1')"]}
    assert not (tmp_path / "pwned").exists()


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
        cbs = [xn.LRScheduler(xn.StepLR(opt, step_size=3, gamma=0.5)), *extra]
        return xn.fit(net, loss, opt, (X, y), epochs=epochs, batch_size=16, val=(X, y), callbacks=cbs,
                      progress=False, resume=resume)

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
        cbs = [xn.LRScheduler(xn.StepLR(opt, step_size=3, gamma=0.5)), *extra]
        return xn.fit(net, loss, opt, (X, y), epochs=epochs, batch_size=16, val=(X, y), callbacks=cbs,
                      progress=False, resume=resume)

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
