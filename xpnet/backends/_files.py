"""Host (numpy) readers and writers for users' data files: ``.npz``, ``.npy`` and ``.csv``.

The files are untrusted input. Every reader bounds what it will hold in memory
(``max_bytes``, checked against the sizes the file declares *before* anything is allocated),
never unpickles (``allow_pickle=False``: object arrays are refused), and raises ValueError
saying what is wrong (the caller adds the file's name); OSError (a missing file, a directory)
passes through. :func:`features` and :func:`class_labels` check the arrays once read:
numbers that are all finite, and class labels ``0..C-1`` (or names, mapped to classes).
"""

from __future__ import annotations

import csv
import os
import zipfile

import numpy as np

#: the most bytes a data file's arrays may hold once read
MAX_BYTES = 2**30
#: the largest CSV file read (its cells become Python strings first, about ten times its size)
MAX_CSV_BYTES = 256 * 2**20
#: the most classes a label column may ask for (labels are 0..C-1, and C sizes the last layer)
MAX_CLASSES = 10_000
#: array kinds a data file may hold: booleans, integers, floats, and (labels only) text
_KINDS = "biufUS"


def read_npz(path, *, max_bytes=MAX_BYTES) -> dict:
    """The arrays of the ``.npz`` archive at ``path``, ``{name: numpy array}``.

    Each member's ``.npy`` header is read first: a member that is not an ``.npy`` array, an
    object array, a dtype other than numbers or text, or arrays whose declared sizes add up to
    more than ``max_bytes`` are refused before any array is allocated.
    """
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError("not a .npz file (a zip archive of .npy arrays)") from None
    with zf:
        total = 0
        names = []
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"not a .npz file: it holds {info.filename[:60]!r}, which is not a .npy array")
            with zf.open(info) as f:
                total += _declared_bytes(f, info.filename[:-4])
            if total > max_bytes:
                raise ValueError(f"its arrays declare more than {max_bytes:,} bytes, the most a data file may hold")
            names.append(info.filename[:-4])
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {name: npz[name] for name in names}
        except (ValueError, EOFError, OSError, zipfile.BadZipFile) as e:
            raise ValueError(f"a damaged .npz file: {e}") from None


def read_npy(path, *, max_bytes=MAX_BYTES):
    """The array of the ``.npy`` file at ``path``, refused (as in :func:`read_npz`) from its header."""
    with open(path, "rb") as f:
        if _declared_bytes(f, "the array") > max_bytes:
            raise ValueError(f"its array declares more than {max_bytes:,} bytes, the most a data file may hold")
        f.seek(0)
        try:
            return np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, EOFError) as e:
            raise ValueError(f"a damaged .npy file: {e}") from None


def _declared_bytes(f, name) -> int:
    """The size in bytes that the ``.npy`` header at the start of ``f`` declares (checked: a
    known version, a number or text dtype, a whole shape)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        # version 3's header differs from 2's only in allowing UTF-8 field names: refused below anyway
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(f)
    except (ValueError, EOFError, SyntaxError, TypeError) as e:
        raise ValueError(f"{name}: not a .npy array ({e})") from None
    if dtype.hasobject or dtype.kind not in _KINDS or dtype.fields is not None:
        raise ValueError(f"{name}: arrays of dtype {dtype} are not data xpnet reads; expected numbers (or text labels)")
    n = 1
    for s in shape:
        n *= int(s)
    return n * dtype.itemsize


def read_csv(path, *, max_bytes=MAX_CSV_BYTES):
    """``(names, columns)`` of the CSV file at ``path``: UTF-8, comma-separated, with a header.

    ``names``: the header's column names; ``columns``: per column, a float64 array when every
    cell is a number, else the cells as a list of str. Blank lines are skipped. Refused: a
    file over ``max_bytes``, text that is not UTF-8, a header that is missing (a first line of
    numbers), has an empty or repeated name, rows whose field count differs from the header's,
    a file without data rows.
    """
    size = os.stat(path).st_size
    if size > max_bytes:
        raise ValueError(f"{size:,} bytes, more than the {max_bytes:,} a CSV data file may have (use .npz for more)")
    cells = None
    names = None
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for r in csv.reader(f):
                if not r:
                    continue
                if names is None:
                    names = _header(r)
                    cells = [[] for _ in names]
                    continue
                if len(r) != len(names):
                    raise ValueError(f"data row {len(cells[0]) + 1} has {len(r)} fields where the header "
                                     f"has {len(names)}")
                for col, v in zip(cells, r):
                    col.append(v.strip())
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text ({e.reason})") from None
    except csv.Error as e:
        raise ValueError(f"not a readable CSV file: {e}") from None
    if names is None:
        raise ValueError("empty: expected a header line naming the columns, then one line per sample")
    if not cells[0]:
        raise ValueError("no data: only a header line")
    columns = []
    for col in cells:
        try:
            columns.append(np.array(col, dtype=np.float64))
        except ValueError:
            columns.append(col)
    return names, columns


def _header(row):
    names = [n.strip() for n in row]
    if all(_is_number(n) for n in names):
        raise ValueError(f"the first line must be a header naming the columns, got numbers {_cut(row)} "
                         "(names that are all numbers read as data)")
    for i, n in enumerate(names):
        if not n:
            raise ValueError(f"the header's column {i + 1} has no name")
        if n in names[:i]:
            raise ValueError(f"the header names two columns {n[:60]!r}")
    return names


def _is_number(s) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _cut(row):
    s = ",".join(row)
    return repr(s if len(s) <= 60 else s[:57] + "...")


def features(X, what="X"):
    """``X`` as a float64 array, checked: numbers (not text), every value finite."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{what} has dtype {X.dtype}: expected numbers")
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"sample {first[0]}" + (f", feature {first[1]}" if len(first) == 2 else
                                       f", position {first[1:]}" if len(first) > 2 else "")
        raise ValueError(f"{what} holds {int(bad.sum()):,} values that are NaN or infinite (the first at {where})")
    return X


def class_labels(y, what="y"):
    """``(labels, names)``: ``y (N,)`` as int64 class labels ``0..C-1``, and the class names.

    Integer labels (or floats that are whole numbers) are used as they are, with ``names``
    None; they must be >= 0, with at most :data:`MAX_CLASSES` classes. Text labels (str cells
    of a CSV column, or a text array) become classes in sorted order, ``names`` their texts.
    At least two classes are needed.
    """
    if isinstance(y, list):
        y = np.array(y, dtype=str)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{what} has shape {tuple(y.shape)}: expected class labels of shape (N,)")
    if y.dtype.kind in "US":
        names, labels = np.unique(y.astype(str), return_inverse=True)
        names = [str(n) for n in names]
        if len(names) > MAX_CLASSES:
            raise ValueError(f"{what} holds {len(names):,} different labels: at most {MAX_CLASSES:,} classes")
    elif y.dtype.kind in "biuf":
        if y.dtype.kind == "f":
            if not np.isfinite(y).all() or not (y == np.round(y)).all():
                bad = y[~(np.isfinite(y) & (y == np.round(y)))][0]
                raise ValueError(f"{what} holds {float(bad)!r}: class labels must be whole numbers 0..C-1 (or names)")
        labels, names = y.astype(np.int64), None
        lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
        if lo < 0:
            raise ValueError(f"{what} holds the label {lo}: class labels must be 0..C-1")
        if hi >= MAX_CLASSES:
            raise ValueError(f"{what} holds the label {hi}: at most {MAX_CLASSES:,} classes (labels 0..{MAX_CLASSES - 1})")
    else:
        raise ValueError(f"{what} has dtype {y.dtype}: expected class labels (integers or names)")
    count = len(names) if names is not None else len(np.unique(labels))
    if count < 2:
        raise ValueError(f"{what} holds {count} class{'es' if count != 1 else ''}: a classifier needs at least 2")
    return labels.astype(np.int64), names


def write_csv(f, header, columns):
    """Write a CSV (``header``, then one row per sample) to the text file ``f``; ``columns``:
    per column, a list of str or ints, or a float array (written with 6 significant digits)."""
    cells = []
    for col in columns:
        a = np.asarray(col) if not isinstance(col, list) else None
        if a is not None and a.dtype.kind == "f":
            cells.append([f"{v:.6g}" for v in a.tolist()])
        else:
            cells.append([str(v) for v in (col if a is None else a.tolist())])
    w = csv.writer(f, lineterminator="\n")
    w.writerow(header)
    w.writerows(zip(*cells))


def write_npz(f, **arrays):
    """Write ``arrays`` (host arrays or lists: numbers or text) as a ``.npz`` archive to the binary file ``f``."""
    np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
