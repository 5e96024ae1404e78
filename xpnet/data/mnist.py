"""MNIST and Fashion-MNIST: downloaded on first use, checked by SHA-256, cached on disk.

Each data set is four gzip-compressed IDX files (see :mod:`xpnet.data.idx`), kept under
their original names in ``<cache>/mnist/`` or ``<cache>/fashion-mnist/``, where ``<cache>``
is :func:`cache_dir`: the ``root`` argument, else ``$XPNET_DATA``, else
``$XDG_CACHE_HOME/xpnet``, else ``~/.cache/xpnet``.

A missing file is fetched from the mirrors in turn into a temporary file in the cache
directory, and moved into place (atomically) only once its SHA-256 matches, so a failed or
corrupt download leaves nothing behind. A file already in the cache is checked too, once per
process (again when its size or modification time changes). Without network access,
:class:`DatasetUnavailable` says which files to place where by hand.

Downloads are bounded in time: the mirrors of a file share :data:`TIMEOUT` seconds to answer
(so a proxy that never answers gives up within it, naming every mirror tried), and a whole load
gives up after :data:`DEADLINE` seconds. Progress goes to stderr (:data:`PROGRESS`): bytes
received of the total on a terminal, else one line per file.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import logging
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

from .. import backends
from ._args import check_split, float_dtype_name
from . import idx

__all__ = ["DatasetUnavailable", "cache_dir", "load_fashion_mnist", "load_mnist"]

ENV_VAR = "XPNET_DATA"
#: seconds that all the mirrors of one file together may take to answer (connect and response
#: headers), shared among them; also the longest any one read may then wait for data. A proxy
#: that never answers fails within this, with every mirror named.
TIMEOUT = 30.0
#: seconds that one load may spend downloading, all its files and mirrors together, so that a
#: mirror trickling a byte now and then cannot hold it forever (MNIST is 11 MB, Fashion-MNIST 30 MB)
DEADLINE = 600.0
#: show each download's progress on stderr: bytes/total on a terminal, else one line per file
PROGRESS = True
_CHUNK = 1 << 20

#: split -> (images file, labels file), the original names
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: data set -> base URLs, tried in order
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch's (torchvision.datasets.MNIST.mirrors)
        "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow Datasets'
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # Zalando's own (TFDS, torchvision)
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",  # the project repository
    ],
}

#: data set -> file -> SHA-256 of the .gz file as served. Sources:
#: MNIST: TensorFlow Datasets, tensorflow_datasets/url_checksums/mnist.txt (github.com/tensorflow/datasets,
#:   commit 31f1255e57e5; "url size sha256" for the cvdf-datasets mirror), the same four values as
#:   torchvision/prototype/datasets/_builtin/mnist.py (github.com/pytorch/vision, commit 1ec2509e8715) lists
#:   for yann.lecun.com, whose files the ossci-datasets mirror copies (same MD5 in torchvision.datasets.MNIST).
#: Fashion-MNIST: TensorFlow Datasets, tensorflow_datasets/url_checksums/fashion_mnist.txt (commits
#:   333639b37af6 and 90b66237ad09), the same four values as the torchvision file above.
#: Sizes in bytes (same sources): MNIST 9912422, 28881, 1648877, 4542; Fashion 26421880, 29515, 4422102, 5148.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

_TITLE = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
_SIDE = 28
_log = logging.getLogger(__name__)

# (real path, size, mtime_ns, inode, expected SHA-256) of the files checked in this process
_verified: set = set()


class DatasetUnavailable(OSError):
    """A data set's files are neither in the cache nor downloadable (offline, or ``download=False``)."""


def cache_dir(root=None) -> str:
    """xpnet's data cache directory: ``root``, else ``$XPNET_DATA``, else ``$XDG_CACHE_HOME/xpnet``,
    else ``~/.cache/xpnet`` (``~`` expanded; empty variables count as unset)."""
    if root is None:
        root = os.environ.get(ENV_VAR) or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "xpnet")
    return os.path.abspath(os.path.expanduser(os.fspath(root)))


def _stamp(path, expected):
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, expected


def _verify(fn, path, expected):
    """Raise ValueError unless the SHA-256 of the file ``path`` is ``expected``."""
    key = _stamp(path, expected)
    if key in _verified:
        return
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    if h.hexdigest() != expected:
        raise ValueError(
            f"{fn}: the cached file {path} is corrupt or incomplete ({key[1]} bytes): its SHA-256 is "
            f"{h.hexdigest()}, expected {expected}; delete it and call {fn} again to download it anew "
            f"(or put a good copy in its place)"
        )
    _verified.add(key)


def _why(e) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP error {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        e = e.reason if isinstance(e.reason, BaseException) else e
    return f"{type(e).__name__}: {e}"


class _Progress:
    """Progress of one download on stderr: on a terminal, ``bytes/total`` rewritten in place (at
    most 10 times a second); otherwise one line when the download starts. Silent when
    :data:`PROGRESS` is false or there is no stderr."""

    def __init__(self, fn, url):
        self.out = sys.stderr if PROGRESS else None
        self.tty = bool(self.out is not None and getattr(self.out, "isatty", lambda: False)())
        self.fn, self.url = fn, url
        self.total, self.shown, self.drawn = None, 0.0, False
        if self.out is not None and not self.tty:
            print(f"{fn}: downloading {url}", file=self.out, flush=True)
        self.update(0)

    def update(self, n, force=False):
        if not self.tty:
            return
        now = time.monotonic()
        if not force and self.drawn and now - self.shown < 0.1:
            return
        self.shown, self.drawn = now, True
        of = f"/{self.total:,} bytes ({100 * n / self.total:.0f}%)" if self.total else " bytes"
        self.out.write(f"\r\x1b[K{self.fn}: downloading {self.url}: {n:,}{of}")
        self.out.flush()

    def close(self, n, why):
        if self.tty:
            self.update(n, force=True)
            self.out.write(f" - failed: {why}\n" if why else "\n")
            self.out.flush()


def _set_timeout(r, seconds):
    """Make each further read of the response ``r`` wait at most ``seconds``. urllib exposes no way
    to change the socket timeout once the answer has come, so this reaches through http.client's
    reader to its socket; where that layout differs, the per-chunk deadline check still bounds the
    download, only less tightly."""
    sock = getattr(getattr(getattr(r, "fp", None), "raw", None), "_sock", None)
    if sock is None:
        return False
    sock.settimeout(max(seconds, 1e-3))
    return True


def _download(fn, url, dest, expected, *, wait, deadline):
    """Fetch ``url`` to ``dest`` (atomically, only if its SHA-256 is ``expected``).

    ``wait``: the most seconds to wait for the mirror to answer (connect and response headers);
    then each read waits at most :data:`TIMEOUT`; ``deadline``: the ``time.monotonic()`` by which
    the whole file must be in. Returns ``(why, waited)``: None or why it failed, and the seconds
    spent waiting for the answer.
    """
    # the temporary file sits next to dest, so os.replace is a rename within one file system
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=os.path.basename(dest) + ".", suffix=".part")
    t0 = time.monotonic()
    waited, n, why, size, last, stall = None, 0, None, None, False, wait
    bar = _Progress(fn, url)
    try:
        _log.info("downloading %s to %s", url, dest)
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            from .. import __version__  # here: xpnet/__init__ may still be running when this module loads

            request = urllib.request.Request(url, headers={"User-Agent": f"xpnet/{__version__} (urllib)"})
            # a fresh opener each time: it reads the proxy variables now, not at the first download
            with urllib.request.build_opener().open(request, timeout=wait) as r:
                waited = time.monotonic() - t0
                size = r.headers.get("Content-Length")
                bar.total = int(size) if size is not None and size.isdigit() else None
                # read1: whatever has arrived (up to a chunk), so a trickling mirror meets the deadline check
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        why = _late(n, size)
                        return why, waited
                    if _set_timeout(r, min(TIMEOUT, left)):
                        stall = min(TIMEOUT, left)
                    last = left <= stall  # this read ends at the deadline at the latest
                    chunk = r.read1(_CHUNK)
                    if not chunk:
                        break
                    h.update(chunk)
                    out.write(chunk)
                    n += len(chunk)
                    bar.update(n)
        # read1 ends quietly at a premature EOF, so compare with the announced length
        if size is not None and size.isdigit() and n != int(size):
            why = f"the connection ended after {n} of {size} bytes"
        elif h.hexdigest() != expected:
            why = f"SHA-256 mismatch: got {n} bytes whose SHA-256 is {h.hexdigest()}, expected {expected}"
        else:
            os.replace(tmp, dest)
            tmp = None
            _verified.add(_stamp(dest, expected))
        return why, waited
    except (OSError, http.client.HTTPException, ValueError) as e:  # URLError, timeouts, cut connections
        why = _why(e)
        if _timed_out(e) and waited is not None and last:
            why = _late(n, size)
        elif _timed_out(e):
            why += f" (no data for {stall:.3g} s)" if waited is not None else f" (no answer within {wait:.3g} s)"
        return why, time.monotonic() - t0 if waited is None else waited
    finally:
        bar.close(n, why)
        if tmp is not None:
            os.remove(tmp)


def _late(n, size):
    return (f"gave up after {DEADLINE:g} s, the time allowed for the whole download, "
            f"with {n:,} of {size or 'an unknown number of'} bytes")


def _timed_out(e):
    if isinstance(e, urllib.error.URLError) and isinstance(e.reason, BaseException):
        e = e.reason
    return isinstance(e, TimeoutError)


def _fetch(fn, key, name, dest, deadline):
    """Download the file ``name`` of data set ``key`` to ``dest`` from the first mirror that works;
    None, or the lines saying why each mirror failed.

    All the mirrors of the file share :data:`TIMEOUT` seconds to answer: each waits at most an
    equal share of what the ones before it left, so a proxy that never answers fails within
    TIMEOUT overall. The time spent receiving a file does not count against that, only against
    the ``deadline`` of the whole load."""
    mirrors = MIRRORS[key]
    answer_left = TIMEOUT
    tried = []
    for j, base in enumerate(mirrors):
        url = base + name
        left = min(answer_left, deadline - time.monotonic())
        if left <= 0:
            spent = (f"the {TIMEOUT:g} s allowed for the mirrors to answer" if answer_left <= 0
                     else f"the {DEADLINE:g} s allowed for the whole download")
            tried.append(f"  {url}: not tried: {spent} had run out")
            continue
        why, waited = _download(fn, url, dest, SHA256[key][name], wait=left / (len(mirrors) - j), deadline=deadline)
        if why is None:
            return None
        answer_left -= waited
        tried.append(f"  {url}: {why}")
    return "\n".join(tried) or "  (no mirrors)"


def _make_dir(fn, key, directory):
    """Create the cache directory (and check that files can be written there), or say why not:
    typically ``$XPNET_DATA`` or ``root=`` names a file, or a directory one cannot write in."""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".xpnet-probe-"):
            pass
    except OSError as e:
        source = (f" (from ${ENV_VAR}={os.environ[ENV_VAR]!r})" if os.environ.get(ENV_VAR)
                  and cache_dir() == os.path.dirname(directory) else "")
        raise DatasetUnavailable(
            f"{fn}: cannot use the cache directory {directory}{source} for the {_TITLE[key]} files: "
            f"{e.strerror or e}{_blocker(directory)}; point {ENV_VAR} or root= at a directory you can write in"
        ) from None


def _blocker(directory):
    """`` (X is a file)`` when an ancestor of ``directory`` is a file, else ``""``."""
    d = directory
    while True:
        parent = os.path.dirname(d)
        if os.path.isfile(d):
            return f" ({d} is a file)"
        if parent == d:
            return ""
        d = parent


def _by_hand(key, directory, names) -> str:
    return (
        f"To install {' and '.join(names)} by hand, download {'them' if len(names) > 1 else 'it'} from one of "
        f"{', '.join(MIRRORS[key]) or '(no mirrors)'} and place {'them' if len(names) > 1 else 'it'} in the "
        f"directory\n  {directory}\nunder the same name{'s' * (len(names) > 1)} (still gzip-compressed; the "
        f"SHA-256 is checked on load). To use another cache directory, set the environment variable "
        f"{ENV_VAR} (files then go in $XPNET_DATA/{key}/) or pass root=."
    )


def _files(fn, key, split, root, download):
    """Paths of the split's (images, labels) files, downloaded when missing, each checked by SHA-256."""
    directory = os.path.join(cache_dir(root), key)
    names = FILES[split]
    paths = [os.path.join(directory, name) for name in names]
    missing = [name for name, path in zip(names, paths) if not os.path.isfile(path)]
    if missing and not download:
        raise DatasetUnavailable(
            f"{fn}: the {_TITLE[key]} file{'s' * (len(missing) > 1)} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not in {directory}, and download=False.\n"
            + _by_hand(key, directory, missing))
    if missing:
        _make_dir(fn, key, directory)
    deadline = time.monotonic() + DEADLINE
    for i, name in enumerate(missing):
        tried = _fetch(fn, key, name, os.path.join(directory, name), deadline)
        if tried is not None:
            raise DatasetUnavailable(
                f"{fn}: cannot download the {_TITLE[key]} file {name}; tried:\n"
                + tried + "\n" + _by_hand(key, directory, missing[i:]))
    for name, path in zip(names, paths):
        _verify(fn, path, SHA256[key][name])
    return paths


@functools.lru_cache(maxsize=4)
def _parse(fn, images_path, labels_path, stamps):
    """Host arrays ``images (N, 28, 28) uint8`` and ``labels (N,) uint8`` (``stamps`` keys the cache)."""
    images = idx.read_idx(images_path, ndim=3)
    labels = idx.read_idx(labels_path, ndim=1)
    dt_i, dt_l = backends.host.host_dtype_name(images), backends.host.host_dtype_name(labels)
    if dt_i != "uint8" or tuple(images.shape[1:]) != (_SIDE, _SIDE):
        raise ValueError(f"{fn}: {images_path} holds {dt_i} images of shape {tuple(images.shape)}, "
                         f"expected uint8 images of shape (N, {_SIDE}, {_SIDE})")
    if dt_l != "uint8" or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{fn}: {labels_path} holds {labels.shape[0]} {dt_l} labels, expected "
                         f"{images.shape[0]} uint8 labels (one for each image in {images_path})")
    return images, labels


def _check_args(fn, split, dtype, download):
    check_split(fn, split, tuple(FILES))
    name = float_dtype_name(fn, dtype)
    if not isinstance(download, bool):
        raise ValueError(f"{fn}: download must be True or False, got {download!r}")
    return name


def _load(fn, key, split, backend, dtype, flatten, root, download):
    name = _check_args(fn, split, dtype, download)
    target = backends.get(backend)
    target.dtype(name)  # a clear ValueError before any download when the target lacks the dtype
    img, lbl = _files(fn, key, split, root, download)
    stamps = (_stamp(img, SHA256[key][FILES[split][0]]), _stamp(lbl, SHA256[key][FILES[split][1]]))
    images, labels = _parse(fn, img, lbl, stamps)
    xp = target.xp
    # move uint8 (the fewest bytes), convert on the target; the casts copy, so the cache is never handed out
    X = xp.astype(target.asarray(images), target.dtype(name))
    X /= 255.0  # in place on our own fresh array: a correctly rounded k / 255 in every dtype
    y = xp.astype(target.asarray(labels), target.dtype("int64"))
    n = int(X.shape[0])
    return xp.reshape(X, (n, _SIDE * _SIDE) if flatten else (n, 1, _SIDE, _SIDE)), y


def load_mnist(split="train", *, backend=None, dtype="float32", flatten=False, root=None, download=True):
    """The MNIST handwritten digits (28x28 grey images, classes 0-9), as ``(X, y)`` on ``backend``.

    ``X``: pixel values / 255, so in [0, 1], in ``dtype``; shape ``(N, 1, 28, 28)`` (NCHW, one
    channel), or ``(N, 784)`` with ``flatten=True``. ``y``: int64 labels, shape ``(N,)``.
    ``split``: ``"train"`` (N = 60,000) or ``"test"`` (N = 10,000), in file order.
    ``backend``: a name or Backend (default: the current default backend).

    ``root``: the cache directory (default :func:`cache_dir`); the files live in ``<root>/mnist/``.
    Missing files are downloaded (``download=True``) from :data:`MIRRORS` and checked against
    :data:`SHA256`; :class:`DatasetUnavailable` (an OSError) says where to put them by hand when
    that fails or ``download=False``. A corrupt cached file is a ValueError naming it.

    Source: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits",
    http://yann.lecun.com/exdb/mnist/; licence CC BY-SA 3.0.

    >>> X, y = load_mnist("test", backend="numpy")       # X (10000, 1, 28, 28) float32, y (10000,) int64
    """
    return _load("load_mnist", "mnist", split, backend, dtype, flatten, root, download)


def load_fashion_mnist(split="train", *, backend=None, dtype="float32", flatten=False, root=None, download=True):
    """Fashion-MNIST (28x28 grey images of clothing, 10 classes), as ``(X, y)`` on ``backend``.

    Everything as in :func:`load_mnist`, with files in ``<root>/fashion-mnist/``. Classes:
    0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag,
    9 ankle boot.

    Source: H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking
    Machine Learning Algorithms", arXiv:1708.07747 (2017),
    https://github.com/zalandoresearch/fashion-mnist; licence MIT.

    >>> X, y = load_fashion_mnist("train", backend="torch", flatten=True)   # X (60000, 784), y (60000,)
    """
    return _load("load_fashion_mnist", "fashion-mnist", split, backend, dtype, flatten, root, download)
