"""The 8x8 handwritten digits: 1,797 grey-scale images of the digits 0-9.

This is the data scikit-learn ships as ``load_digits``: the test part of the UCI
"Optical Recognition of Handwritten Digits" data set (E. Alpaydin and C. Kaynak, 1998;
UCI ML Repository id 80, https://doi.org/10.24432/C50P49), licensed CC BY 4.0.
Each image is a 32x32 bitmap of a handwritten digit, reduced to 8x8 blocks whose
values count the set pixels in each 4x4 block, so pixels are integers 0..16.

xpnet keeps its own compact copy, ``digits.bin.gz`` next to this module: the gzip of
1797*64 uint8 pixels (row-major, one image after another) followed by 1797 uint8
labels. ``DIGITS_SOURCE.md`` says how it was made; its SHA-256 is checked on load.

The file is read and checked once per process; the decoded host arrays are cached,
so later calls only select rows and move them to the backend.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.resources
import numbers
import os

from .. import backends
from ._args import check_split, float_dtype_name

__all__ = ["load_digits"]

#: the packaged file and the SHA-256 of its (compressed) bytes
_FILE = "digits.bin.gz"
_SHA256 = "b14331f5100db0031de1abc44bb1da54e9e338aa94e5138763a5851fcb9f52df"
N_IMAGES, N_PIXELS, N_CLASSES = 1797, 64, 10

_SPLITS = ("train", "test", "all")

# decoded host arrays of the packaged file: (pixels uint8 (N, 64), labels uint8 (N,))
_cache: tuple | None = None


def _load_raw(path=None, expected_sha256=_SHA256) -> bytes:
    """The decompressed bytes of the digits file (the packaged one when ``path`` is None).

    Checks the SHA-256 of the file before decompressing it, and the decompressed length,
    so a corrupt or truncated file is an error that names the file, never wrong data.
    """
    if path is None:
        res = importlib.resources.files(__package__).joinpath(_FILE)
        where = str(res)
        try:
            blob = res.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"load_digits: the data file {where} is missing; the xpnet installation is incomplete "
                f"(it must include the package data xpnet/data/{_FILE}); reinstall xpnet"
            ) from None
    else:
        where = os.fspath(path)
        with open(where, "rb") as f:
            blob = f.read()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected_sha256:
        raise ValueError(
            f"load_digits: the data file {where} is corrupt or truncated ({len(blob)} bytes): "
            f"its SHA-256 is {actual}, expected {expected_sha256}; reinstall xpnet"
        )
    raw = gzip.decompress(blob)
    if len(raw) != N_IMAGES * (N_PIXELS + 1):  # only reachable with a matching hash of a wrong file
        raise ValueError(
            f"load_digits: the data file {where} holds {len(raw)} bytes once decompressed, "
            f"expected {N_IMAGES * (N_PIXELS + 1)} (1797 images of 64 pixels, then 1797 labels)"
        )
    return raw


def _decode(raw: bytes):
    """Host (numpy-backend) arrays ``pixels (N, 64) uint8`` and ``labels (N,) uint8`` from ``raw``."""
    host = backends.get("numpy")
    xp = host.xp
    view = memoryview(raw)
    pixels = xp.reshape(host.asarray(view[: N_IMAGES * N_PIXELS], dtype="uint8"), (N_IMAGES, N_PIXELS))
    labels = host.asarray(view[N_IMAGES * N_PIXELS:], dtype="uint8")
    return pixels, labels


def _host_arrays():
    global _cache
    if _cache is None:
        _cache = _decode(_load_raw())
    return _cache


@functools.lru_cache(maxsize=32)
def _split_indices(seed: int, test_fraction: float):
    """Host int64 row indices ``(train, test)``, each in ascending (file) order.

    Stratified: for each class ``c = 0..9`` in turn, one private generator seeded with
    ``seed`` draws a permutation of that class's rows (in file order); the last
    ``round(test_fraction * n_c)`` of the permuted rows go to test, the rest to train.
    """
    host = backends.get("numpy")
    xp = host.xp
    _, labels = _host_arrays()
    g = type(host.rng)(host, seed)  # private: the backends' shared generators are untouched
    rows = xp.arange(N_IMAGES, dtype=xp.int64, device=host.device)
    train, test = [], []
    for c in range(N_CLASSES):
        members = rows[labels == c]
        n_c = int(members.shape[0])
        n_test = round(test_fraction * n_c)
        if not 0 < n_test < n_c:
            raise ValueError(
                f"load_digits: test_fraction={test_fraction!r} leaves class {c} ({n_c} images) with "
                f"{n_test} test and {n_c - n_test} train images; each split needs at least one image "
                f"of every class"
            )
        shuffled = xp.take(members, g.permutation(n_c), axis=0)
        train.append(shuffled[: n_c - n_test])
        test.append(shuffled[n_c - n_test:])
    return xp.sort(xp.concat(train)), xp.sort(xp.concat(test))


def _check_args(split, dtype, test_fraction, seed):
    fn = "load_digits"
    check_split(fn, split, _SPLITS)
    name = float_dtype_name(fn, dtype)
    if (isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real)
            or not 0.0 < float(test_fraction) < 1.0):
        raise ValueError(f"{fn}: test_fraction must be a number with 0 < test_fraction < 1, got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{fn}: seed must be a non-negative int, got {seed!r}")
    return name, float(test_fraction), int(seed)


def load_digits(split="train", *, backend=None, dtype="float32", test_fraction=0.2, seed=0, flatten=False):
    """The 8x8 handwritten digits (1,797 images, classes 0-9), as ``(X, y)`` on ``backend``.

    ``X``: pixel values / 16, so in [0, 1] (exact in every float dtype), in ``dtype``;
    shape ``(N, 1, 8, 8)`` (NCHW, one channel), or ``(N, 64)`` with ``flatten=True``.
    ``y``: int64 labels, shape ``(N,)``.

    ``split``: ``"train"``, ``"test"`` or ``"all"`` (all 1,797 images, in file order).
    The train/test split is stratified and deterministic: within each class, a permutation
    drawn from a private generator seeded with ``seed`` sends the last
    ``round(test_fraction * n_class)`` images to test and the rest to train (1,438
    train and 359 test images at the default 0.2). Train and test are disjoint, together
    are the whole set, and each keeps file order. For a given ``seed`` and
    ``test_fraction`` the split, and the data, are identical on every backend.

    ``backend``: a name or Backend (default: the current default backend).

    Source: the test part of the UCI "Optical Recognition of Handwritten Digits" data set
    (E. Alpaydin, C. Kaynak, 1998, UCI Machine Learning Repository,
    https://doi.org/10.24432/C50P49), as shipped by scikit-learn; licence CC BY 4.0.
    See ``xpnet/data/DIGITS_SOURCE.md``.

    >>> X, y = load_digits("train", backend="numpy")     # X (1437, 1, 8, 8) float32, y (1437,) int64
    """
    name, test_fraction, seed = _check_args(split, dtype, test_fraction, seed)
    target = backends.get(backend)
    target.dtype(name)  # a clear ValueError when the target lacks it (array_api_strict has no float16)
    host = backends.get("numpy")
    pixels, labels = _host_arrays()
    if split != "all":
        train, test = _split_indices(seed, test_fraction)
        rows = train if split == "train" else test
        pixels = host.xp.take(pixels, rows, axis=0)
        labels = host.xp.take(labels, rows, axis=0)
    xp = target.xp
    # move uint8 (the fewest bytes), then convert on the target: k / 16 is exact in every float
    # dtype, and the casts always copy, so the cached host arrays are never handed out
    X = xp.astype(target.asarray(pixels), target.dtype(name))
    X *= 0.0625  # in place on our own fresh array (saves a 0.4 MB temporary); rebinds on immutable libraries
    y = xp.astype(target.asarray(labels), target.dtype("int64"))
    n = int(X.shape[0])
    X = xp.reshape(X, (n, N_PIXELS) if flatten else (n, 1, 8, 8))
    return X, y
