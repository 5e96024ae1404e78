"""xpnet.data.idx and load_mnist / load_fashion_mnist: IDX files, the cache, the download, the errors.

No test touches the network: the data are small IDX files generated here (50 train and 20 test
images of random pixels), and downloads come from an http.server on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import re
import shutil
import socket
import struct
import threading

import numpy as np
import pytest

from xpnet import backends, data
from xpnet.data import idx, mnist

from .conftest import host

N = {"train": 50, "test": 20}
KEYS = ("mnist", "fashion-mnist")
LOADERS = {"mnist": data.load_mnist, "fashion-mnist": data.load_fashion_mnist}
FN = {"mnist": "load_mnist", "fashion-mnist": "load_fashion_mnist"}
ALL_FILES = [name for pair in mnist.FILES.values() for name in pair]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No proxies, no user cache, no real mirrors, and fresh per-process caches, in every test."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "env-cache"))
    monkeypatch.setattr(mnist, "TIMEOUT", 5.0)
    for key in KEYS:
        monkeypatch.setitem(mnist.MIRRORS, key, [])
    mnist._verified.clear()
    mnist._parse.cache_clear()
    yield
    mnist._verified.clear()
    mnist._parse.cache_clear()


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """key -> (directory with the four generated .gz files, {split: (images, labels)})."""
    out = {}
    for seed, key in enumerate(KEYS):
        directory = tmp_path_factory.mktemp(key)
        rng = np.random.default_rng(seed)
        arrays = {}
        for split, (fi, fl) in mnist.FILES.items():
            images = rng.integers(0, 256, size=(N[split], 28, 28), dtype=np.uint8)
            images[0, 0, :2] = (0, 255)  # both ends of the range
            labels = rng.integers(0, 10, size=N[split], dtype=np.uint8)
            idx.write_idx(directory / fi, images)
            idx.write_idx(directory / fl, labels)
            arrays[split] = (images, labels)
        out[key] = (directory, arrays)
    return out


@pytest.fixture
def hashes(monkeypatch, source):
    """The module's checksum tables, pointed at the generated files."""
    for key in KEYS:
        monkeypatch.setitem(mnist.SHA256, key, {name: _sha256(source[key][0] / name) for name in ALL_FILES})


@pytest.fixture
def cache(tmp_path, source, hashes):
    """A cache root already holding both data sets."""
    root = tmp_path / "cache"
    for key in KEYS:
        shutil.copytree(source[key][0], root / key)
    return root


def _free_port() -> int:
    with socket.socket() as s:  # closed at once, so connecting to it is refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dead(key=""):
    return f"http://127.0.0.1:{_free_port()}/{key}/"


class _Server:
    """An HTTP server on 127.0.0.1 serving ``directory``, recording each request's (path, User-Agent)."""

    def __init__(self, directory):
        requests = self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                requests.append((self.path, self.headers.get("User-Agent")))
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def serve():
    servers = []

    def start(directory):
        servers.append(_Server(directory))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


# -- IDX ------------------------------------------------------------------------------------------------
SAMPLES = {
    "uint8": np.array([[0, 1, 127], [128, 254, 255]], dtype=np.uint8),
    "int8": np.array([-128, -1, 0, 1, 127], dtype=np.int8),
    "int16": np.array([[[-32768, -1], [0, 1]], [[258, 32767], [-258, 7]]], dtype=np.int16),
    "int32": np.array([[-(2**31), -1, 0], [1, 16909060, 2**31 - 1]], dtype=np.int32),
    "float32": np.array([0.0, -0.0, 1.5, -3.25e-30, 3.4e38, np.inf, -np.inf, np.nan], dtype=np.float32),
    "float64": np.array([[0.1, -2.0**-1074], [1e308, np.nan]], dtype=np.float64),
}


@pytest.mark.parametrize("name", list(SAMPLES))
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, name, suffix):
    a = SAMPLES[name]
    path = tmp_path / f"a-idx{a.ndim}{suffix}"
    idx.write_idx(path, a)
    blob = path.read_bytes()
    assert (blob[:2] == b"\x1f\x8b") == (suffix == ".gz")
    raw = gzip.decompress(blob) if suffix else blob
    code = {v: k for k, v in idx.IDX_TYPES.items()}[name]
    # the header, and big-endian values, by hand
    assert raw[:4 + 4 * a.ndim] == struct.pack(f">HBB{a.ndim}I", 0, code, a.ndim, *a.shape)
    assert raw[4 + 4 * a.ndim:] == a.astype(a.dtype.newbyteorder(">")).tobytes()
    b = idx.read_idx(path, ndim=a.ndim)
    assert b.dtype == a.dtype and b.dtype.isnative and b.shape == a.shape and b.flags.writeable
    np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(idx.parse_idx(raw), a)
    assert idx.to_idx_bytes(a) == raw


def test_idx_gzip_detected_by_content_and_reproducible(tmp_path):
    a = SAMPLES["int16"]
    idx.write_idx(tmp_path / "raw.gz", a, compress=False)
    idx.write_idx(tmp_path / "zipped", a, compress=True)
    idx.write_idx(tmp_path / "zipped2", a, compress=True)
    assert (tmp_path / "raw.gz").read_bytes()[:2] == b"\0\0"
    assert (tmp_path / "zipped").read_bytes() == (tmp_path / "zipped2").read_bytes()  # no time stamp
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "raw.gz"), a)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "zipped"), a)


def test_idx_empty_and_large_dims(tmp_path):
    for a in (np.zeros((0, 28, 28), np.uint8), np.arange(70000, dtype=np.int32)):
        idx.write_idx(tmp_path / "x", a)
        b = idx.read_idx(tmp_path / "x")
        assert b.shape == a.shape
        np.testing.assert_array_equal(b, a)


def test_idx_write_from_any_backend(backend):
    a = SAMPLES["int32"]
    assert idx.to_idx_bytes(backend.asarray(a)) == idx.to_idx_bytes(a)


@pytest.mark.parametrize("dtype", ["int64", "uint16", "bool", "float16"])
def test_idx_write_refuses_other_dtypes(dtype):
    with pytest.raises(ValueError, match=re.escape(
            f"IDX cannot store dtype {dtype}; it stores uint8, int8, int16, int32, float32, float64")):
        idx.to_idx_bytes(np.zeros(3, dtype=dtype))


def test_idx_write_refuses_a_dimension_of_2_to_the_32():
    huge = np.broadcast_to(np.zeros(1, np.uint8), (2, 2**32))  # a view: no memory behind it
    with pytest.raises(ValueError, match=re.escape(
            "IDX cannot store shape (2, 4294967296): at most 255 dimensions, each below 2**32")):
        idx.to_idx_bytes(huge)


def _write(tmp_path, blob, name="bad-idx"):
    path = tmp_path / name
    path.write_bytes(blob)
    return path


def _read_error(path, **kw) -> str:
    with pytest.raises(ValueError) as e:
        idx.read_idx(path, **kw)
    assert str(e.value).startswith(f"IDX file {path}: ")
    return str(e.value)


GOOD = struct.pack(">HBBII", 0, 0x08, 2, 2, 3) + bytes(range(6))  # a valid uint8 (2, 3) file


@pytest.mark.parametrize("magic", [b"\x00\x01\x08\x02", b"\x01\x00\x08\x02", b"\x00\x00\x0a\x02", b"PK\x03\x04"])
def test_idx_bad_magic(tmp_path, magic):
    msg = _read_error(_write(tmp_path, magic + GOOD[4:]))
    assert f"bad magic number 0x{magic.hex().upper()}: expected 0x0000TTNN with TT a type code " in msg
    assert "(0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)" in msg
    assert msg.endswith("and NN the number of dimensions; this is not an IDX file")


def test_idx_bad_magic_inside_gzip(tmp_path):
    msg = _read_error(_write(tmp_path, gzip.compress(b"hello world"), "x.gz"))
    assert "bad magic number 0x68656C6C" in msg


def test_idx_too_short_for_a_magic_number(tmp_path):
    msg = _read_error(_write(tmp_path, b"\0\0"))
    assert msg.endswith("truncated: 2 bytes, fewer than the 4-byte magic number")


def test_idx_truncated_header(tmp_path):
    msg = _read_error(_write(tmp_path, GOOD[:9]))
    assert msg.endswith("truncated header: 9 bytes, expected 12 (4 + 4 * 2 dimension sizes)")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_data(tmp_path, gz):
    blob = GOOD[:-2]
    path = _write(tmp_path, gzip.compress(blob) if gz else blob)
    msg = _read_error(path)
    assert msg.endswith("truncated data: 16 bytes, expected 18 for uint8 of shape (2, 3) (12-byte header + 6 * 1)")


def test_idx_trailing_bytes(tmp_path):
    path = _write(tmp_path, struct.pack(">HBBI", 0, 0x0C, 1, 2) + bytes(8 + 3))
    msg = _read_error(path)
    assert msg.endswith("3 trailing bytes: 19 bytes, expected 16 for int32 of shape (2,) (8-byte header + 2 * 4)")


def test_idx_wrong_dimension_count(tmp_path):
    path = _write(tmp_path, GOOD)
    assert _read_error(path, ndim=3).endswith("expected 3 dimensions, found 2 (magic number 0x00000802)")
    assert _read_error(path, ndim=1).endswith("expected 1 dimension, found 2 (magic number 0x00000802)")
    assert idx.read_idx(path, ndim=2).shape == (2, 3)


def test_idx_corrupt_gzip(tmp_path):
    blob = gzip.compress(GOOD)
    msg = _read_error(_write(tmp_path, blob[:-6], "cut.gz"))
    assert "not a valid gzip stream (" in msg
    bad = bytearray(blob)
    bad[3] = 0xFF  # reserved flag bits set: not a gzip header
    assert "not a valid gzip stream (" in _read_error(_write(tmp_path, bytes(bad), "bad.gz"))


def test_parse_idx_names_bytes_by_default():
    with pytest.raises(ValueError, match=r"^IDX file <bytes>: bad magic number"):
        idx.parse_idx(b"\xff" * 8)
    with pytest.raises(ValueError, match=r"^IDX file my-source: truncated"):
        idx.parse_idx(b"", where="my-source")


# -- the checksum table and the cache directory -----------------------------------------------------------
def test_checksum_table_is_complete():
    for key in KEYS:
        assert set(mnist.SHA256[key]) == set(ALL_FILES)
        for h in mnist.SHA256[key].values():
            assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert len({h for key in KEYS for h in mnist.SHA256[key].values()}) == 8


def test_published_tables_untouched_by_fixtures():
    # the autouse fixture empties the mirror lists; the module itself names the real ones
    import importlib.util

    spec = importlib.util.find_spec("xpnet.data.mnist")
    text = open(spec.origin).read()
    for url in ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"):
        assert f'"{url}"' in text


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mnist.cache_dir(tmp_path / "r") == str(tmp_path / "r")
    assert mnist.cache_dir("~/r") == str(tmp_path / "home" / "r")
    assert mnist.cache_dir() == str(tmp_path / "a")
    monkeypatch.setenv("XPNET_DATA", "")  # empty counts as unset
    assert mnist.cache_dir() == str(tmp_path / "xdg" / "xpnet")
    monkeypatch.delenv("XPNET_DATA")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert mnist.cache_dir() == str(tmp_path / "home" / ".cache" / "xpnet")


# -- loading from a filled cache ---------------------------------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_shapes_dtypes_values(backend, cache, source, key, split, dtype):
    X, y = LOADERS[key](split, dtype=dtype, root=cache, download=False)  # backend=None: the fixture's
    n = N[split]
    assert backends.backend_of(X) is backend and backends.backend_of(y) is backend
    assert X.device == backend.device and y.device == backend.device
    assert tuple(X.shape) == (n, 1, 28, 28) and tuple(y.shape) == (n,)
    assert backend.dtype_name(X.dtype) == dtype and backend.dtype_name(y.dtype) == "int64"
    images, labels = source[key][1][split]
    Xh = host(X)
    assert Xh.min() == 0.0 and Xh.max() == 1.0
    np.testing.assert_array_equal(Xh[:, 0], images.astype(dtype) / np.asarray(255, dtype))  # correctly rounded k / 255
    np.testing.assert_array_equal(host(y), labels.astype(np.int64))


@pytest.mark.parametrize("key", KEYS)
def test_load_flatten(backend, cache, key):
    X4, y4 = LOADERS[key]("test", backend=backend, root=cache)
    X2, y2 = LOADERS[key]("test", backend=backend, root=cache, flatten=True)
    assert tuple(X2.shape) == (N["test"], 784)
    np.testing.assert_array_equal(host(X2), host(X4).reshape(N["test"], 784))
    np.testing.assert_array_equal(host(y2), host(y4))


def test_dtype_object_of_the_backend(backend, cache):
    X, _ = data.load_mnist("test", dtype=backend.dtype("float64"), root=cache)
    assert backend.dtype_name(X.dtype) == "float64"


def test_root_from_the_environment(monkeypatch, cache, source):
    monkeypatch.setenv("XPNET_DATA", str(cache))
    X, y = data.load_fashion_mnist("test", backend="numpy")
    np.testing.assert_array_equal(y, source["fashion-mnist"][1]["test"][1])
    monkeypatch.delenv("XPNET_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache.parent))
    (cache.parent / "xpnet").symlink_to(cache)
    X2, _ = data.load_fashion_mnist("test", backend="numpy")
    np.testing.assert_array_equal(X2, X)


def test_returned_arrays_do_not_alias_the_parsed_cache(cache):
    X, y = data.load_mnist("test", backend="numpy", root=cache)
    X[...] = -1.0
    y[...] = -1
    X2, y2 = data.load_mnist("test", backend="numpy", root=cache)
    assert X2.min() == 0.0 and y2.min() == 0


def test_verified_once_per_process(monkeypatch, cache):
    data.load_mnist("test", backend="numpy", root=cache)
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(mnist.hashlib, "sha256", lambda *a: calls.append(a) or real(*a))
    data.load_mnist("test", backend="numpy", root=cache)
    assert calls == []  # neither hashed nor parsed again
    path = cache / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes() + b"\0")  # changed on disk: checked again, and refused
    with pytest.raises(ValueError, match="is corrupt or incomplete"):
        data.load_mnist("test", backend="numpy", root=cache)
    assert calls


# -- argument errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("split", ["valid", "all", "TRAIN", None, 0])
def test_bad_split(key, split):
    with pytest.raises(ValueError, match=re.escape(f"{FN[key]}: split must be one of 'train', 'test', got {split!r}")):
        LOADERS[key](split, backend="numpy")


@pytest.mark.parametrize("dtype", ["int64", "uint8", "float", object()])
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match=r"load_mnist: dtype must be a floating-point dtype "
                                         r"\(float16, bfloat16, float32, float64\), got "):
        data.load_mnist(backend="numpy", dtype=dtype)


@pytest.mark.parametrize("download", [None, 1, "yes"])
def test_bad_download(download):
    with pytest.raises(ValueError, match=re.escape(f"load_fashion_mnist: download must be True or False, got {download!r}")):
        data.load_fashion_mnist(backend="numpy", download=download)


def test_dtype_the_backend_lacks_fails_before_any_download(tmp_path):
    with pytest.raises(ValueError, match="has no dtype 'float16'"):
        data.load_mnist(backend="array_api_strict", dtype="float16", root=tmp_path)
    assert not (tmp_path / "mnist").exists()


# -- files with a matching hash but the wrong content -------------------------------------------------------
def _replace(monkeypatch, root, name, array):
    path = root / "mnist" / name
    idx.write_idx(path, array)
    monkeypatch.setitem(mnist.SHA256["mnist"], name, _sha256(path))
    return path


def test_images_of_the_wrong_size(monkeypatch, cache):
    path = _replace(monkeypatch, cache, "t10k-images-idx3-ubyte.gz", np.zeros((20, 28, 27), np.uint8))
    with pytest.raises(ValueError, match=re.escape(
            f"load_mnist: {path} holds uint8 images of shape (20, 28, 27), expected uint8 images of shape (N, 28, 28)")):
        data.load_mnist("test", backend="numpy", root=cache)


def test_images_with_two_dimensions(monkeypatch, cache):
    path = _replace(monkeypatch, cache, "t10k-images-idx3-ubyte.gz", np.zeros((20, 784), np.uint8))
    with pytest.raises(ValueError, match=re.escape(f"IDX file {path}: expected 3 dimensions, found 2")):
        data.load_mnist("test", backend="numpy", root=cache)


def test_labels_that_do_not_match_the_images(monkeypatch, cache):
    path = _replace(monkeypatch, cache, "t10k-labels-idx1-ubyte.gz", np.zeros(19, np.int32))
    images = cache / "mnist" / "t10k-images-idx3-ubyte.gz"
    with pytest.raises(ValueError, match=re.escape(
            f"load_mnist: {path} holds 19 int32 labels, expected 20 uint8 labels (one for each image in {images})")):
        data.load_mnist("test", backend="numpy", root=cache)


# -- a corrupt cached file ---------------------------------------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
def test_corrupt_cached_file(cache, key):
    path = cache / key / "train-images-idx3-ubyte.gz"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError) as e:
        LOADERS[key]("train", backend="numpy", root=cache)
    msg = str(e.value)
    assert msg.startswith(f"{FN[key]}: the cached file {path} is corrupt or incomplete ({len(blob)} bytes): ")
    assert f"its SHA-256 is {hashlib.sha256(blob).hexdigest()}, expected {mnist.SHA256[key][path.name]}" in msg
    assert f"delete it and call {FN[key]} again to download it anew (or put a good copy in its place)" in msg
    assert path.exists()  # the user's file is left alone


def test_real_hashes_refuse_generated_files(monkeypatch, tmp_path, source):
    # without the patched table, the generated files are not MNIST: refused on first use
    shutil.copytree(source["mnist"][0], tmp_path / "c" / "mnist")
    with pytest.raises(ValueError, match=r"corrupt or incomplete.*expected 8d422c7b0a1c1c79"):
        data.load_mnist("test", backend="numpy", root=tmp_path / "c")


# -- downloads from a local server ------------------------------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
def test_download_falls_back_to_the_second_mirror(monkeypatch, tmp_path, source, hashes, serve, key):
    srv = serve(source[key][0])
    monkeypatch.setitem(mnist.MIRRORS, key, [_dead(key), srv.url])
    root = tmp_path / "fresh"
    X, y = LOADERS[key]("test", backend="numpy", root=root, flatten=True)
    images, labels = source[key][1]["test"]
    np.testing.assert_array_equal(X, images.reshape(-1, 784) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    # only the two test files were fetched, byte for byte, with no temporary file left behind
    assert sorted(os.listdir(root / key)) == sorted(mnist.FILES["test"])
    for name in mnist.FILES["test"]:
        assert (root / key / name).read_bytes() == (source[key][0] / name).read_bytes()
    assert sorted(p for p, _ in srv.requests) == sorted("/" + n for n in mnist.FILES["test"])
    assert all(ua.startswith("xpnet/") for _, ua in srv.requests)
    # the next call uses the cache, even with no mirror at all
    monkeypatch.setitem(mnist.MIRRORS, key, [])
    X2, _ = LOADERS[key]("test", backend="numpy", root=root, flatten=True)
    np.testing.assert_array_equal(X2, X)
    assert len(srv.requests) == 2


def test_download_only_what_is_missing(monkeypatch, tmp_path, source, hashes, serve):
    srv = serve(source["mnist"][0])
    monkeypatch.setitem(mnist.MIRRORS, "mnist", [srv.url])
    (tmp_path / "c" / "mnist").mkdir(parents=True)
    shutil.copy(source["mnist"][0] / "train-images-idx3-ubyte.gz", tmp_path / "c" / "mnist")
    data.load_mnist("train", backend="numpy", root=tmp_path / "c")
    assert [p for p, _ in srv.requests] == ["/train-labels-idx1-ubyte.gz"]


def test_corrupt_download_leaves_nothing_behind(monkeypatch, tmp_path, source, hashes, serve):
    bad = tmp_path / "bad-mirror"
    shutil.copytree(source["mnist"][0], bad)
    blob = bytearray((bad / "t10k-images-idx3-ubyte.gz").read_bytes())
    blob[100] ^= 0xFF
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes(bytes(blob))
    srv = serve(bad)
    dead = _dead()
    monkeypatch.setitem(mnist.MIRRORS, "mnist", [dead, srv.url])
    root = tmp_path / "fresh"
    with pytest.raises(mnist.DatasetUnavailable) as e:
        data.load_mnist("test", backend="numpy", root=root)
    msg = str(e.value)
    expected = mnist.SHA256["mnist"]["t10k-images-idx3-ubyte.gz"]
    assert f"  {srv.url}t10k-images-idx3-ubyte.gz: SHA-256 mismatch: got {len(blob)} bytes whose SHA-256 is " \
           f"{hashlib.sha256(blob).hexdigest()}, expected {expected}" in msg
    assert f"  {dead}t10k-images-idx3-ubyte.gz: ConnectionRefusedError: " in msg
    assert os.listdir(root / "mnist") == []  # no partial file, no temporary file


def test_http_error_is_reported(monkeypatch, tmp_path, serve):
    (tmp_path / "empty").mkdir()
    srv = serve(tmp_path / "empty")
    monkeypatch.setitem(mnist.MIRRORS, "fashion-mnist", [srv.url])
    with pytest.raises(mnist.DatasetUnavailable,
                       match=re.escape(f"  {srv.url}train-images-idx3-ubyte.gz: HTTP error 404 File not found")):
        data.load_fashion_mnist(backend="numpy", root=tmp_path / "c")
    assert os.listdir(tmp_path / "c" / "fashion-mnist") == []


# -- offline ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
def test_offline(monkeypatch, tmp_path, key):
    mirrors = [_dead("a"), _dead("b")]
    monkeypatch.setitem(mnist.MIRRORS, key, mirrors)
    with pytest.raises(mnist.DatasetUnavailable) as e:
        LOADERS[key]("train", backend="numpy", root=tmp_path / "c")
    assert isinstance(e.value, OSError)
    msg = str(e.value)
    directory = str(tmp_path / "c" / key)
    title = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}[key]
    assert msg.startswith(f"{FN[key]}: cannot download the {title} file train-images-idx3-ubyte.gz; tried:\n")
    for m in mirrors:
        assert f"\n  {m}train-images-idx3-ubyte.gz: ConnectionRefusedError: " in msg
    assert ("To install train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz by hand, download them from "
            f"one of {', '.join(mirrors)} and place them in the directory\n  {directory}\nunder the same names") in msg
    assert "set the environment variable XPNET_DATA (files then go in $XPNET_DATA/" + key + "/) or pass root=." in msg
    assert os.listdir(directory) == []


def test_no_mirrors(tmp_path):
    with pytest.raises(mnist.DatasetUnavailable, match=r"tried:\n  \(no mirrors\)\n.*from one of \(no mirrors\)"):
        data.load_mnist("test", backend="numpy", root=tmp_path)


@pytest.mark.parametrize("present", [0, 1])
def test_download_false_with_missing_files(tmp_path, source, hashes, present):
    root = tmp_path / "c"
    (root / "mnist").mkdir(parents=True)
    if present:
        shutil.copy(source["mnist"][0] / "t10k-images-idx3-ubyte.gz", root / "mnist")
    with pytest.raises(mnist.DatasetUnavailable) as e:
        data.load_mnist("test", backend="numpy", root=root, download=False)
    msg = str(e.value)
    if present:
        assert msg.startswith(f"load_mnist: the MNIST file t10k-labels-idx1-ubyte.gz is not in {root / 'mnist'}, "
                              "and download=False.\nTo install t10k-labels-idx1-ubyte.gz by hand, download it from ")
        assert "under the same name (still gzip-compressed" in msg
    else:
        assert msg.startswith(f"load_mnist: the MNIST files t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz are "
                              f"not in {root / 'mnist'}, and download=False.\n")
    assert "XPNET_DATA" in msg


def test_silent_server_times_out(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist, "TIMEOUT", 0.3)
    with socket.socket() as s:  # accepts connections (in its backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen()
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
        monkeypatch.setitem(mnist.MIRRORS, "mnist", [url])
        with pytest.raises(mnist.DatasetUnavailable, match=re.escape(f"  {url}t10k-images-idx3-ubyte.gz: TimeoutError: ")):
            data.load_mnist("test", backend="numpy", root=tmp_path)
    assert os.listdir(tmp_path / "mnist") == []


def test_connection_cut_mid_file_leaves_nothing_behind(monkeypatch, tmp_path, source, hashes):
    blob = (source["mnist"][0] / "t10k-images-idx3-ubyte.gz").read_bytes()

    class Cut(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # promises the whole file, sends half of it, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob[: len(blob) // 2])
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Cut)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        monkeypatch.setitem(mnist.MIRRORS, "mnist", [url])
        reason = f"  {url}t10k-images-idx3-ubyte.gz: the connection ended after {len(blob) // 2} of {len(blob)} bytes\n"
        with pytest.raises(mnist.DatasetUnavailable, match=re.escape(reason)):
            data.load_mnist("test", backend="numpy", root=tmp_path)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert os.listdir(tmp_path / "mnist") == []


# -- bounded time, progress, an unusable cache directory ----------------------------------------------------
class _Silent:
    """A socket on 127.0.0.1 that accepts connections (into its backlog) and never answers: a dead proxy."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_a_proxy_that_never_answers_fails_within_the_timeout_naming_every_mirror(monkeypatch, tmp_path):
    import time

    monkeypatch.setattr(mnist, "TIMEOUT", 1.5)
    mirrors = ["http://mirror-a.invalid/mnist/", "http://mirror-b.invalid/mnist/", "http://mirror-c.invalid/"]
    monkeypatch.setitem(mnist.MIRRORS, "mnist", mirrors)
    with _Silent() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        t0 = time.monotonic()
        with pytest.raises(mnist.DatasetUnavailable) as e:
            data.load_mnist("test", backend="numpy", root=tmp_path)
        elapsed = time.monotonic() - t0
    # the three mirrors share the 1.5 s; one at a time (the old way), they took 3 x 1.5 s
    assert elapsed < 3.5, elapsed
    msg = str(e.value)
    for m in mirrors:
        assert f"\n  {m}t10k-images-idx3-ubyte.gz: TimeoutError: " in msg, msg
    assert msg.count("(no answer within ") == 3 and os.listdir(tmp_path / "mnist") == []


def test_the_answer_time_is_shared_but_a_refusal_spends_none_of_it(monkeypatch, tmp_path, source, hashes, serve):
    srv = serve(source["mnist"][0])
    monkeypatch.setattr(mnist, "TIMEOUT", 1.0)
    with _Silent() as silent:
        # a silent mirror spends its half of the second; the next one, answering at once, still gets the file
        monkeypatch.setitem(mnist.MIRRORS, "mnist", [_dead(), silent.url + "/", srv.url])
        X, _ = data.load_mnist("test", backend="numpy", root=tmp_path)
    assert tuple(X.shape) == (N["test"], 1, 28, 28)


def _serving(handler):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return httpd, thread, f"http://127.0.0.1:{httpd.server_address[1]}/"


def _stop(httpd, thread):
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_a_trickling_mirror_meets_the_deadline(monkeypatch, tmp_path):
    import time

    stop = threading.Event()

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # one byte every 20 ms: never stalls long enough for a read timeout
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            while not stop.is_set():
                try:
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.02)

        def log_message(self, *args):
            pass

    monkeypatch.setattr(mnist, "DEADLINE", 1.0)
    httpd, thread, url = _serving(Trickle)
    try:
        monkeypatch.setitem(mnist.MIRRORS, "mnist", [url, url + "again/"])
        t0 = time.monotonic()
        with pytest.raises(mnist.DatasetUnavailable) as e:
            data.load_mnist("test", backend="numpy", root=tmp_path)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        _stop(httpd, thread)
    assert elapsed < 3.0, elapsed
    msg = str(e.value)
    assert re.search(re.escape(f"  {url}t10k-images-idx3-ubyte.gz: gave up after 1 s, the time allowed for the "
                               "whole download, with ") + r"[\d,]+ of 1000000 bytes\n", msg), msg
    assert (f"  {url}again/t10k-images-idx3-ubyte.gz: not tried: the 1 s allowed for the whole download "
            "had run out") in msg
    assert os.listdir(tmp_path / "mnist") == []


def test_a_mirror_that_stops_sending_times_out_mid_file(monkeypatch, tmp_path, source):
    blob = (source["mnist"][0] / "t10k-images-idx3-ubyte.gz").read_bytes()
    release = threading.Event()

    class Stall(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # headers and a first part at once, then nothing
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob[:100])
            self.wfile.flush()
            release.wait(10)

        def log_message(self, *args):
            pass

    monkeypatch.setattr(mnist, "TIMEOUT", 0.5)
    httpd, thread, url = _serving(Stall)
    try:
        monkeypatch.setitem(mnist.MIRRORS, "mnist", [url])
        with pytest.raises(mnist.DatasetUnavailable, match=re.escape(
                f"  {url}t10k-images-idx3-ubyte.gz: TimeoutError: timed out (no data for 0.5 s)\n")):
            data.load_mnist("test", backend="numpy", root=tmp_path)
    finally:
        release.set()
        _stop(httpd, thread)


def test_progress_is_one_line_per_file_when_stderr_is_not_a_terminal(monkeypatch, tmp_path, source, hashes, serve,
                                                                     capsys):
    srv = serve(source["mnist"][0])
    monkeypatch.setitem(mnist.MIRRORS, "mnist", [srv.url])
    data.load_mnist("test", backend="numpy", root=tmp_path)
    err = capsys.readouterr().err
    assert err.splitlines() == [f"load_mnist: downloading {srv.url}{name}" for name in mnist.FILES["test"]]
    data.load_mnist("test", backend="numpy", root=tmp_path)  # cached: silent
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(mnist, "PROGRESS", False)
    shutil.rmtree(tmp_path / "mnist")
    data.load_mnist("test", backend="numpy", root=tmp_path)
    assert capsys.readouterr().err == ""


def test_progress_on_a_terminal_counts_bytes_of_the_total(monkeypatch, tmp_path, source, hashes, serve):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(mnist.sys, "stderr", term)
    srv = serve(source["mnist"][0])
    monkeypatch.setitem(mnist.MIRRORS, "mnist", [_dead(), srv.url])
    data.load_mnist("test", backend="numpy", root=tmp_path)
    text = term.getvalue()
    for name in mnist.FILES["test"]:
        size = (source["mnist"][0] / name).stat().st_size
        assert f"\r\x1b[Kload_mnist: downloading {srv.url}{name}: {size:,}/{size:,} bytes (100%)\n" in text
    assert re.search(r"downloading http://127\.0\.0\.1:\d+//t10k-images-idx3-ubyte\.gz: 0 bytes - failed: "
                     r"ConnectionRefusedError: .*\n", text)


@pytest.mark.parametrize("below", [False, True])
def test_a_cache_directory_that_is_a_file(monkeypatch, tmp_path, below):
    f = tmp_path / "a-file"
    f.write_text("not a directory")
    root = f / "below" if below else f
    monkeypatch.setenv("XPNET_DATA", str(root))
    with pytest.raises(mnist.DatasetUnavailable) as e:
        data.load_mnist("test", backend="numpy")
    msg = str(e.value)
    assert msg == (f"load_mnist: cannot use the cache directory {root / 'mnist'} (from $XPNET_DATA={str(root)!r}) "
                   f"for the MNIST files: Not a directory ({f} is a file); point XPNET_DATA or root= at a "
                   "directory you can write in")
    assert f.read_text() == "not a directory"
