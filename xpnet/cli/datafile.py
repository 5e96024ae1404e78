"""Users' own data for ``xpnet train --data FILE``, ``xpnet evaluate`` and ``xpnet predict``.

A data file is a ``.npz`` archive holding ``X`` (samples, first axis) and ``y`` (class labels),
or a CSV file with a header line: one column holds the labels (``--label NAME``; by default a
column named ``label``, ``target``, ``class`` or ``y``, else the last column), every other
column is a numeric feature. Labels are integers ``0..C-1`` or names (text), which become the
classes in sorted order; the names are kept in the checkpoint, so that ``xpnet predict``
answers with them. ``X`` of shape ``(N, F)`` trains an MLP; ``(N, H, W)`` (grey) and
``(N, C, H, W)`` are images, for the MLP or ``--model cnn``.

The samples are split 70/15/15 into train, validation and test, per class (stratified), by a
permutation drawn from ``--seed``. Features are standardised with the train split's mean and
standard deviation (per feature; for images, per channel), which the checkpoint keeps for
``evaluate`` and ``predict``. The file is untrusted input: it is bounded in size, never
unpickled, and every defect is a one-line :class:`~xpnet.cli.UsageError` naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import pathlib

from .. import backends
from . import UsageError, checks, describe

#: the suffixes that make a --data value a file (any existing file counts as well)
SUFFIXES = (".npz", ".csv")
#: the label column's default names, in order of preference (else the last column)
LABEL_NAMES = ("label", "target", "class", "y")
#: train, validation and test fractions of each class
SPLIT = (0.70, 0.15, 0.15)
#: the fewest samples each split may have
MIN_SPLIT = 3


def is_file(spec) -> bool:
    """Whether ``--data spec`` names a file rather than one of xpnet's data sets."""
    s = str(spec)
    return s.lower().endswith(SUFFIXES) or os.path.isfile(s)


@dataclasses.dataclass
class Table:
    """A data file as read: host arrays ``X`` (float64, ``(N, F)`` or ``(N, C, H, W)``), ``y``
    (int64 labels), and what the checkpoint keeps about it (:meth:`info`)."""

    path: str
    sha256: str
    X: object
    y: object
    classes: list | None  # class names, or None for integer labels
    num_classes: int
    label: str | None = None  # the CSV's label column
    features: list | None = None  # the CSV's feature columns


def read(option, path, label=None, saved=None, labels=True) -> Table:
    """Read and check the data file ``path`` (see the module doc); ``label``: a CSV's label column.

    ``saved``: the data-file info of a checkpoint (:func:`saved_info`), for a file read to
    evaluate or predict with it: a CSV must then have its feature columns (in any order), text
    labels must be among its classes. ``labels=False`` (predict): ``y`` is not needed, and a
    CSV's label column, if present, is ignored. A ``.npy`` file (``X`` alone) is read then too.
    """
    files = backends.files
    text = os.fspath(path)
    where = f"{option} {text}".strip()
    checks.regular_file(option, text)  # a leading space (no option) goes with one_line
    if os.path.isdir(text):
        raise UsageError(f"{where}: a directory, not a data file")
    kind = pathlib.Path(text).suffix.lower()
    kinds = SUFFIXES if labels else SUFFIXES + (".npy",)
    if kind not in kinds:
        raise UsageError(f"{where}: not a data file xpnet reads: expected a .npz file (arrays X{' and y' if labels else ''})"
                         f"{', a .npy file (X)' if not labels else ''} or a .csv file with a header line")
    if label is not None and kind != ".csv":
        raise UsageError(f"--label {label}: names a column of a CSV file; {text} is a {kind} file")
    y = label_col = feature_cols = None
    what = "y"
    try:
        digest = _sha256(text)
        if kind == ".npy":
            X = files.read_npy(text)
        elif kind == ".npz":
            arrays = files.read_npz(text)
            missing = [k for k in (("X", "y") if labels else ("X",)) if k not in arrays]
            if missing:
                raise ValueError(f"expected arrays named X{' and y' if labels else ''}, found {_names(arrays)}")
            X, y = arrays["X"], arrays.get("y") if labels else None
        else:
            names, columns = files.read_csv(text)
            label_col, feature_cols = _columns(where, names, label, saved, labels)
            cols = dict(zip(names, columns))
            X = _numeric_columns(where, feature_cols, cols)
            if labels:
                y = cols[label_col]
                what = f"the label column {label_col!r}"
        X = files.features(X)
        classes = None
        if labels:
            y, classes = files.class_labels(y, what)
    except (ValueError, MemoryError) as e:
        raise UsageError(f"{where}: {describe(e)}") from None
    except OSError as e:
        raise UsageError(f"{where}: {e.strerror or describe(e)}") from None
    n = int(X.shape[0])
    if X.ndim not in (2, 3, 4) or (y is not None and n != int(y.shape[0])) or min(X.shape[1:], default=0) < 1 or n < 1:
        raise UsageError(f"{where}: X has shape {tuple(X.shape)}{'' if y is None else f' and y {tuple(y.shape)}'}: "
                         f"expected X (N, features), (N, H, W) or (N, C, H, W) images"
                         f"{', and y (N,), with the same N' if y is not None else ''}")
    hx = backends.host.host_namespace()
    if X.ndim == 3:  # grey images: one channel
        X = hx.reshape(X, (n, 1, *X.shape[1:]))
    C = None if y is None else len(classes) if classes is not None else int(hx.max(y)) + 1
    if saved is not None and y is not None:
        y, C = _saved_classes(where, y, classes, saved), saved["num_classes"]
        classes = saved["classes"]
    return Table(str(pathlib.Path(text).resolve()), digest, X, y, classes, C, label_col, feature_cols)


def _columns(where, names, label, saved, labels):
    """``(label column, feature columns)`` of a CSV header (see :func:`read`)."""
    if saved is not None and saved.get("features"):
        features = saved["features"]
        label = label or saved.get("label")
        present, known = set(names), set(features)
        missing = [n for n in features if n not in present]
        if missing:
            raise UsageError(f"{where}: no column {missing[0][:60]!r}; the model was trained on the feature columns "
                             f"{_cut(features)}")
        if labels and label not in names:
            raise UsageError(f"{where}: no label column {str(label)[:60]!r}; pass --label")
        extra = [n for n in names if n not in known and n != label]
        if extra:
            raise UsageError(f"{where}: the column {extra[0][:60]!r} is not among the model's features "
                             f"({_cut(features)}) nor its label column {str(label)[:60]!r}")
        return label, list(features)
    if not labels:
        label = label or (saved or {}).get("label")
        return label, [n for n in names if n != label]
    label = _label_column(where, names, label)
    features = [n for n in names if n != label]
    if not features:
        raise UsageError(f"{where}: only the label column {label!r}: no feature columns")
    return label, features


def _saved_classes(where, y, classes, saved):
    """The labels ``y`` (with the file's own ``classes``) as the checkpoint's class indices."""
    C, names = saved["num_classes"], saved["classes"]
    hx = backends.host.host_namespace()
    if names is None:
        if classes is not None:
            raise UsageError(f"{where}: its labels are names ({_cut(classes, 3)}) but the model's classes are "
                             f"the numbers 0..{C - 1}")
        if int(hx.max(y)) >= C:
            raise UsageError(f"{where}: it holds the label {int(hx.max(y))}; the model knows the classes 0..{C - 1}")
        return y
    if classes is None:
        raise UsageError(f"{where}: its labels are numbers but the model's classes are names ({_cut(names, 3)})")
    index = {n: i for i, n in enumerate(names)}
    unknown = [n for n in classes if n not in index]
    if unknown:
        raise UsageError(f"{where}: the label {unknown[0][:60]!r} is not one of the model's classes ({_cut(names)})")
    table = hx.asarray([index[n] for n in classes], dtype=hx.int64)
    return hx.take(table, y)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _names(arrays):
    return ", ".join(repr(k[:40]) for k in list(arrays)[:10]) or "none"


def _label_column(where, names, label):
    """``--label``, else the first of :data:`LABEL_NAMES` (any case), else the last column."""
    if label is not None:
        if label not in names:
            raise UsageError(f"{where}: no column named {label!r} for --label; the columns are {_cut(names)}")
        return label
    lower = {n.lower(): n for n in reversed(names)}
    for cand in LABEL_NAMES:
        if cand in lower:
            return lower[cand]
    return names[-1]


def _cut(names, limit=10):
    shown = ", ".join(repr(n[:40]) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _numeric_columns(where, names, cols):
    hx = backends.host.host_namespace()
    for name in names:
        col = cols[name]
        if isinstance(col, list):
            i, v = next((i, v) for i, v in enumerate(col) if not _is_number(v))
            shown = repr(v[:40]) if v else "an empty cell"
            raise UsageError(f"{where}: the feature column {name[:60]!r} holds {shown} (data row {i + 1}): "
                             "features must be numbers (is it the label column? then pass --label)")
    return hx.stack([cols[n] for n in names], axis=1)


def _is_number(v):
    try:
        float(v)
    except ValueError:
        return False
    return True


# -- splits and standardisation --------------------------------------------------------------------
def split(where, y, seed):
    """Host int64 index arrays ``(train, val, test)``: per class, a permutation drawn from
    ``seed`` (a private generator: no backend's is touched) gives its first ``round(15%)``
    samples to validation, the next ``round(15%)`` to test, and the rest to train."""
    host = backends.get("numpy")
    perm = type(host.rng)(host, seed).permutation(int(y.shape[0])).tolist()
    labels = y.tolist()
    by_class: dict = {}
    for i in perm:
        by_class.setdefault(labels[i], []).append(i)
    parts = ([], [], [])
    for c in sorted(by_class):
        idx = by_class[c]
        k = int(len(idx) * SPLIT[1] + 0.5)
        parts[1].extend(idx[:k])
        parts[2].extend(idx[k:2 * k])
        parts[0].extend(idx[2 * k:])
    sizes = [len(p) for p in parts]
    if min(sizes) < MIN_SPLIT:
        raise UsageError(f"{where}: {len(labels)} samples are too few: the {_split_text()} split gives "
                         f"{sizes[0]} train, {sizes[1]} validation and {sizes[2]} test samples; "
                         f"each needs at least {MIN_SPLIT}")
    hx = backends.host.host_namespace()
    return tuple(hx.asarray(p, dtype=hx.int64) for p in parts)


def _split_text():
    return "/".join(str(round(f * 100)) for f in SPLIT)


def moments(X):
    """Per feature (``X (N, F)``) or per channel (``X (N, C, H, W)``): the mean and standard
    deviation (population) of ``X``, as lists of floats; a constant feature gets 1."""
    hx = backends.host.host_namespace()
    axes = (0,) if X.ndim == 2 else (0, 2, 3)
    mean = hx.mean(X, axis=axes)
    std = hx.std(X, axis=axes)
    std = hx.where(std > 0, std, 1.0)
    return [float(v) for v in mean.tolist()], [float(v) for v in std.tolist()]


def standardize(X, mean, std):
    """``(X - mean) / std`` over the features (or channels) of host ``X``."""
    hx = backends.host.host_namespace()
    shape = (1, len(mean)) if X.ndim == 2 else (1, len(mean), 1, 1)
    m = hx.reshape(hx.asarray(mean, dtype=hx.float64), shape)
    s = hx.reshape(hx.asarray(std, dtype=hx.float64), shape)
    return (X - m) / s


def sample_shape(where, X, shape):
    """Host ``X`` with samples of ``shape`` (a list, as the checkpoint keeps it): as it is, or
    rows of features reshaped to images of that size; else UsageError saying both shapes."""
    shape = tuple(shape)
    got = tuple(int(s) for s in X.shape[1:])
    if got == shape:
        return X
    if len(got) == 1 and got[0] == math.prod(shape):
        return backends.host.host_namespace().reshape(X, (int(X.shape[0]), *shape))
    raise UsageError(f"{where}: samples of shape {got} ({math.prod(got)} values); the model was trained on "
                     f"samples of shape {shape} ({math.prod(shape)} values)")


def to_backend(X, be, dtype, flatten):
    """Host ``X`` (standardised) as ``dtype`` on ``be``; images flattened to ``(N, C*H*W)`` if asked."""
    hx = backends.host.host_namespace()
    if flatten and X.ndim > 2:
        X = hx.reshape(X, (int(X.shape[0]), -1))
    return be.asarray(X, dtype=dtype)


@dataclasses.dataclass
class Prepared:
    """A data file split and standardised on the host: ``X`` (float64), ``y``, the index
    arrays of the splits, and the :func:`info` a checkpoint keeps."""

    X: object
    y: object
    parts: tuple
    info: dict

    def on(self, be, dtype, flatten):
        """The ``(train, val, test)`` pairs on backend ``be``, ``X`` in ``dtype``."""
        hx = backends.host.host_namespace()
        return tuple((to_backend(hx.take(self.X, p, axis=0), be, dtype, flatten),
                      be.asarray(hx.take(self.y, p), dtype="int64")) for p in self.parts)


def prepare(option, path, label, seed, saved=None) -> Prepared:
    """Read the data file, split it by ``seed`` and standardise it with its train split's
    statistics. ``saved``: the info of a checkpoint of this file's run: the file must be
    unchanged, and the saved standardisation is applied."""
    t = read(option, path, label, saved)
    where = f"{option} {path}".strip()
    if saved is not None and saved["sha256"] != t.sha256:
        raise UsageError(f"{where}: the file has changed since the run began (its SHA-256 differs from the "
                         "checkpoint's), so its splits would not be the run's")
    parts = split(where, t.y, seed)
    if saved is not None:
        mean, std = saved["mean"], saved["std"]
    else:
        mean, std = moments(backends.host.host_namespace().take(t.X, parts[0], axis=0))
    return Prepared(standardize(t.X, mean, std), t.y, parts, info(t, mean, std, seed))


def info(t: Table, mean, std, seed) -> dict:
    """What a checkpoint keeps about its data file (JSON): where it was, its SHA-256, the
    columns, the classes, the sample shape and the standardisation."""
    return {"path": t.path, "sha256": t.sha256, "label": t.label, "features": t.features, "classes": t.classes,
            "num_classes": t.num_classes, "shape": [int(s) for s in t.X.shape[1:]], "mean": mean, "std": std,
            "split": f"{_split_text()} per class, seed {seed}"}


def recipe(info_: dict):
    """The training defaults for a data file: an MLP of two hidden layers (64, 64 for features;
    256, 128 with dropout for images), 50 epochs of batches of 32, Adam at 3e-3."""
    from .recipes import Recipe

    shape = tuple(info_["shape"])
    image = shape if len(shape) == 3 else None
    return Recipe(image, math.prod(shape), info_["num_classes"], epochs=50, batch_size=32, lr=3e-3,
                  hidden=(256, 128) if image else (64, 64), threads=None if image else 1)


# -- a checkpoint's info, checked ----------------------------------------------------------------------
def saved_info(where, extra):
    """The data-file info of a checkpoint's ``extra`` (None when it has none), every field checked:
    the checkpoint is untrusted too."""
    d = extra.get("data_file") if isinstance(extra, dict) else None
    if d is None:
        return None

    def bad(field, why):
        return UsageError(f"{where}: the checkpoint's data_file.{field} is {checks.short(d.get(field))}: {why}")

    if not isinstance(d, dict):
        raise UsageError(f"{where}: the checkpoint's data_file is {checks.short(d)}: expected a mapping")
    for k in ("path", "sha256"):
        if not isinstance(d.get(k), str):
            raise bad(k, "expected a string")
    shape = d.get("shape")
    if not (isinstance(shape, list) and len(shape) in (1, 3) and all(_count(s) for s in shape)
            and math.prod(shape) <= 2**31):
        raise bad("shape", "expected a sample shape [features] or [channels, height, width]")
    C = d.get("num_classes")
    if not (_count(C) and 2 <= C <= backends.files.MAX_CLASSES):
        raise bad("num_classes", f"expected an integer from 2 to {backends.files.MAX_CLASSES}")
    width = shape[0]
    for k in ("mean", "std"):
        v = d.get(k)
        if not (isinstance(v, list) and len(v) == width and all(_finite(x) for x in v)):
            raise bad(k, f"expected {width} finite numbers")
    if not all(x > 0 for x in d["std"]):
        raise bad("std", "expected standard deviations > 0")
    for k, n in (("classes", C), ("features", width if len(shape) == 1 else None)):
        v = d.get(k)
        if v is not None and not (isinstance(v, list) and len(v) == n and all(isinstance(s, str) for s in v)):
            raise bad(k, f"expected None or {n} names")
    if d.get("label") is not None and not isinstance(d.get("label"), str):
        raise bad("label", "expected None or a column name")
    return d


def _count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _finite(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
