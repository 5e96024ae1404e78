"""xpnet.data.load_digits: the packaged 8x8 digits, its integrity check, and the stratified split."""

from __future__ import annotations

import hashlib
import pathlib
import re
import shutil

import numpy as np
import pytest

from xpnet import backends, data
from xpnet.data import digits

from .conftest import host

# the class counts of the 1,797 images (digits 0..9), as in the file
CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
# at test_fraction=0.2: round(0.2 * n) test images per class
TEST_COUNTS = [round(0.2 * n) for n in CLASS_COUNTS]
N_TEST = sum(TEST_COUNTS)  # 359
N_TRAIN = 1797 - N_TEST  # 1438
SIZES = {"train": N_TRAIN, "test": N_TEST, "all": 1797}


def _packaged_file() -> pathlib.Path:
    return pathlib.Path(digits.__file__).with_name(digits._FILE)


@pytest.mark.parametrize("split", ["train", "test", "all"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shapes_dtypes_devices(backend, split, dtype):
    X, y = data.load_digits(split, dtype=dtype)  # backend=None: the current default, i.e. the fixture's
    n = SIZES[split]
    assert backends.backend_of(X) is backend and backends.backend_of(y) is backend
    assert X.device == backend.device and y.device == backend.device
    assert tuple(X.shape) == (n, 1, 8, 8) and tuple(y.shape) == (n,)
    assert backend.dtype_name(X.dtype) == dtype
    assert backend.dtype_name(y.dtype) == "int64"


def test_flatten(backend):
    X4, y4 = data.load_digits("test", backend=backend)
    X2, y2 = data.load_digits("test", backend=backend, flatten=True)
    assert tuple(X2.shape) == (N_TEST, 64)
    np.testing.assert_array_equal(host(X2), host(X4).reshape(N_TEST, 64))
    np.testing.assert_array_equal(host(y2), host(y4))


def test_values(backend):
    X, y = data.load_digits("all", backend=backend, dtype="float64")
    Xh, yh = host(X), host(y)
    assert Xh.min() == 0.0 and Xh.max() == 1.0
    np.testing.assert_array_equal(Xh * 16, np.round(Xh * 16))  # pixels are k / 16, k = 0..16
    assert set(np.unique(yh).tolist()) == set(range(10))
    # float32 holds k / 16 exactly
    np.testing.assert_array_equal(host(data.load_digits("all", backend=backend)[0]), Xh.astype(np.float32))


def test_identical_on_every_backend(backend):
    for split, seed in (("train", 0), ("test", 0), ("train", 5), ("all", 0)):
        ref_X, ref_y = data.load_digits(split, seed=seed, backend="numpy")
        X, y = data.load_digits(split, seed=seed, backend=backend)
        np.testing.assert_array_equal(host(X), ref_X)
        np.testing.assert_array_equal(host(y), ref_y)


def test_class_counts():
    _, y = data.load_digits("all", backend="numpy")
    assert y.shape == (1797,)
    assert np.bincount(y, minlength=10).tolist() == CLASS_COUNTS
    _, ytr = data.load_digits("train", backend="numpy")
    _, yte = data.load_digits("test", backend="numpy")
    assert np.bincount(yte, minlength=10).tolist() == TEST_COUNTS
    assert (np.bincount(ytr, minlength=10) + np.bincount(yte, minlength=10)).tolist() == CLASS_COUNTS


def test_first_image_is_the_known_zero():
    # the first row of scikit-learn's digits.csv.gz: a 0
    X, y = data.load_digits("all", backend="numpy", flatten=True)
    first = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
             0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]
    assert (X[0] * 16).astype(int).tolist() == first and int(y[0]) == 0


@pytest.mark.parametrize("test_fraction", [0.2, 0.1, 0.5, 0.75])
@pytest.mark.parametrize("seed", [0, 3])
def test_split_disjoint_complete_stratified(seed, test_fraction):
    train, test = (np.asarray(a) for a in digits._split_indices(seed, test_fraction))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # file order, no repeats
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    X, y = data.load_digits("all", backend="numpy", flatten=True)
    Xtr, ytr = data.load_digits("train", seed=seed, test_fraction=test_fraction, backend="numpy", flatten=True)
    Xte, yte = data.load_digits("test", seed=seed, test_fraction=test_fraction, backend="numpy", flatten=True)
    np.testing.assert_array_equal(Xtr, X[train])
    np.testing.assert_array_equal(ytr, y[train])
    np.testing.assert_array_equal(Xte, X[test])
    np.testing.assert_array_equal(yte, y[test])
    assert np.bincount(yte, minlength=10).tolist() == [round(test_fraction * n) for n in CLASS_COUNTS]


def test_split_deterministic_by_seed():
    a = data.load_digits("test", seed=1, backend="numpy")
    b = data.load_digits("test", seed=1, backend="numpy")
    c = data.load_digits("test", seed=2, backend="numpy")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # the split does not touch (or depend on) the backends' shared generators
    be = backends.get("numpy")
    state = be.rng.get_state()
    be.manual_seed(99)
    d = data.load_digits("test", seed=1, backend="numpy")
    np.testing.assert_array_equal(a[0], d[0])
    be.rng.set_state(state)


def test_returned_arrays_do_not_alias_the_cache():
    X, y = data.load_digits("all", backend="numpy")
    X[...] = -1.0
    y[...] = -1
    X2, y2 = data.load_digits("all", backend="numpy")
    assert X2.min() == 0.0 and y2.min() == 0


# -- the file and its integrity check ------------------------------------------------------------
def test_packaged_file_hash_matches_the_recorded_one():
    blob = _packaged_file().read_bytes()
    assert hashlib.sha256(blob).hexdigest() == digits._SHA256
    source = pathlib.Path(digits.__file__).with_name("DIGITS_SOURCE.md").read_text()
    assert digits._SHA256 in source


def test_load_raw_from_a_path(tmp_path):
    good = tmp_path / "digits.bin.gz"
    shutil.copyfile(_packaged_file(), good)
    raw = digits._load_raw(good)
    assert len(raw) == 1797 * 65
    pixels, labels = digits._decode(raw)
    assert pixels.shape == (1797, 64) and labels.shape == (1797,)


def _corrupt_error(path):
    blob = path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    with pytest.raises(ValueError) as e:
        digits._load_raw(path)
    msg = str(e.value)
    assert str(path) in msg and "corrupt or truncated" in msg
    assert f"expected {digits._SHA256}" in msg and f"SHA-256 is {actual}" in msg
    assert f"({len(blob)} bytes)" in msg


def test_corrupt_file_is_refused(tmp_path):
    bad = tmp_path / "digits.bin.gz"
    blob = bytearray(_packaged_file().read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one flipped bit
    bad.write_bytes(bytes(blob))
    _corrupt_error(bad)


def test_truncated_file_is_refused(tmp_path):
    bad = tmp_path / "digits.bin.gz"
    bad.write_bytes(_packaged_file().read_bytes()[:-100])
    _corrupt_error(bad)


def test_wrong_length_with_matching_hash(tmp_path):
    import gzip

    blob = gzip.compress(b"\0" * 10)
    path = tmp_path / "short.bin.gz"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=r"holds 10 bytes once decompressed, expected 116805"):
        digits._load_raw(path, expected_sha256=hashlib.sha256(blob).hexdigest())


def test_missing_packaged_file(monkeypatch):
    monkeypatch.setattr(digits, "_FILE", "no-such-file.bin.gz")
    with pytest.raises(FileNotFoundError, match=r"no-such-file\.bin\.gz is missing.*reinstall xpnet"):
        digits._load_raw()


# -- argument errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["valid", "TRAIN", None, 0])
def test_bad_split(split):
    with pytest.raises(ValueError, match=re.escape(f"load_digits: split must be one of 'train', 'test', 'all', got {split!r}")):
        data.load_digits(split, backend="numpy")


@pytest.mark.parametrize("test_fraction", [0.0, 1.0, -0.1, 1.5, True, "0.2", float("nan")])
def test_bad_test_fraction(test_fraction):
    with pytest.raises(ValueError, match=re.escape(
            f"load_digits: test_fraction must be a number with 0 < test_fraction < 1, got {test_fraction!r}")):
        data.load_digits(backend="numpy", test_fraction=test_fraction)


@pytest.mark.parametrize("test_fraction", [0.001, 0.999])
def test_test_fraction_leaving_a_class_empty(test_fraction):
    with pytest.raises(ValueError, match=r"leaves class \d \(\d+ images\) with .*each split needs at least one image"):
        data.load_digits(backend="numpy", test_fraction=test_fraction)


@pytest.mark.parametrize("dtype", ["int64", "uint8", "bool", "float", object()])
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match=r"load_digits: dtype must be a floating-point dtype \(float16, bfloat16, float32, float64\), got "):
        data.load_digits(backend="numpy", dtype=dtype)


def test_dtype_object_of_the_backend(backend):
    X, _ = data.load_digits("test", dtype=backend.dtype("float64"))
    assert backend.dtype_name(X.dtype) == "float64"
    with pytest.raises(ValueError, match="floating-point"):
        data.load_digits("test", dtype=backend.dtype("int32"))


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match=re.escape(f"load_digits: seed must be a non-negative int, got {seed!r}")):
        data.load_digits(backend="numpy", seed=seed)
