"""The safetensors format, written and read without the safetensors package.

A file is ``N`` (8 bytes, little-endian uint64), then an ``N``-byte UTF-8 JSON header, then
the data::

    {"name": {"dtype": "F32", "shape": [256, 784], "data_offsets": [begin, end]}, ...,
     "__metadata__": {"key": "string value", ...}}

Offsets count from the first data byte; tensors are little-endian, C order, and tile the data
exactly. Loading a safetensors file reads numbers and strings only: it cannot run code
(unlike a pickle). The files these functions write are read by ``safetensors.numpy.load_file``
and ``safetensors.torch.load_file`` as well.

Reading trusts nothing. Before the header is parsed its size is checked (at most
:data:`MAX_HEADER` bytes, the reference package's limit) and so is its JSON nesting (at most
:data:`MAX_HEADER_DEPTH`: the format needs 3); after parsing, the number of entries (at most
``max_entries``, default :data:`MAX_ENTRIES`), every entry's dtype, shape and offsets, and the
tiling of the data are checked against the file's size *before* the data are read, so a
header that promises more than the file holds costs nothing. :func:`open_safetensors` stops
there, so that a caller can check the header (a checkpoint's schema) before one array exists.
Every message names the file and is at most a few hundred characters long.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import reprlib
import struct

from .. import backends
from .atomic import atomic_write

_CODES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32", "int16": "I16",
    "int8": "I8", "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL",
}
_NAMES = {v: k for k, v in _CODES.items()}
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4,
             "U16": 2, "U8": 1, "BOOL": 1}
#: the safetensors package's own limit on the header: a bigger one is corrupt
MAX_HEADER = 100 * 2**20
#: the header's JSON nesting: the format itself needs 3 levels ({name: {"shape": [...]}})
MAX_HEADER_DEPTH = 8
#: entries (tensors plus ``__metadata__``) a header may list unless the reader is told otherwise
MAX_ENTRIES = 100_000
#: axes a tensor may have (numpy's own limit is 64)
MAX_NDIM = 64


class FormatError(ValueError):
    """A file that is not a valid (or not a complete) safetensors file."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 4, 6, 6, 6, 6
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = 60


def short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (``...`` marks a cut): how messages quote
    values that came from a file, which may be megabytes long (and are not walked in full)."""
    s = _REPR.repr(value)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (``...`` marks the cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


_KEEP = bytes(b for b in range(256) if b not in b'[]{}"')
_PARENS = bytes.maketrans(b"[]{}", b"()()")
_ROUNDS = 8
_SIGN = bytes.maketrans(b"()", b"\x02\x00")  # open -> 2, close -> 0: minus 1 is the step in depth


def json_depth(text, limit: int) -> int:
    """A bound of the nesting depth of the JSON document ``text`` (str or bytes), found without
    parsing it (json's parser recurses, so a deep document would raise RecursionError), in linear
    time: the depth itself when it is over ``limit`` (then capped at ``limit + 1``), a number
    from the depth to ``limit`` otherwise. Brackets inside strings do not count. For a malformed
    document (unbalanced brackets) it bounds the depth a parser reaches before failing."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return min(limit, raw.count(b"[") + raw.count(b"{"))
    # Escaped backslashes, then escaped quotes, go first, so that every quote left delimits a
    # string; the pieces between quote 2k and 2k+1 are outside strings. What stays is brackets.
    raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _KEEP)
    s = b"".join(raw.split(b'"')[::2]).translate(_PARENS)
    rounds = 0
    while s and rounds < _ROUNDS:  # each round removes the innermost pairs: a shallow document is done here
        t = s.replace(b"()", b"")
        if len(t) == len(s):
            break  # unbalanced: what is left is ")))(((", scanned below
        s, rounds = t, rounds + 1
    if s:
        rounds += max(itertools.accumulate(map(int.__sub__, s.translate(_SIGN), itertools.repeat(1))), default=0)
    return min(rounds, limit + 1)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tensor as the header declares it: safetensors dtype ``code`` (``"F32"``), ``shape``
    (a tuple of ints) and its byte range ``[begin, end)`` in the data."""

    code: str
    shape: tuple
    begin: int
    end: int

    @property
    def dtype(self) -> str:
        """The dtype name (``"float32"``)."""
        return _NAMES[self.code]

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


class SafetensorsFile:
    """A safetensors file whose header has been checked: ``metadata`` (``{str: str}``),
    ``entries`` (``{name: Entry}``, in data order) and ``data`` (the bytes after the header);
    :meth:`raw`/:meth:`tensor`/:meth:`tensors` give a tensor's bytes or a host array of it."""

    def __init__(self, where, metadata, entries, data):
        self.where, self.metadata, self.entries, self.data = where, metadata, entries, data

    def raw(self, name) -> memoryview:
        """The stored bytes of tensor ``name`` (little-endian, C order)."""
        e = self.entries[name]
        return self.data[e.begin:e.end]

    def tensor(self, name):
        """Tensor ``name`` as a new host array."""
        e = self.entries[name]
        return backends.host.from_bytes(self.raw(name), e.dtype, e.shape, "<")

    def tensors(self) -> dict:
        """Every tensor, ``{name: host array}``, in data order."""
        return {name: self.tensor(name) for name in self.entries}


def encode(tensors: dict, metadata: dict | None = None):
    """``(header dict, data bytes)`` for host arrays ``tensors`` and string ``metadata``."""
    header, chunks, offset = {}, [], 0
    for name, a in tensors.items():
        dt = backends.host.host_dtype_name(a)
        if dt not in _CODES:
            raise TypeError(f"safetensors: cannot store {name!r} of dtype {dt}; supported: {', '.join(_CODES)}")
        raw = backends.host.to_bytes(a, "<")
        header[name] = {"dtype": _CODES[dt], "shape": [int(s) for s in a.shape], "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        bad = [k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
        if bad:
            raise TypeError(f"safetensors: metadata keys and values must be strings, not for {bad}")
        header["__metadata__"] = dict(metadata)
    return header, b"".join(chunks)


def write_safetensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write host arrays ``tensors`` (``{name: array}``) and ``metadata`` (``{str: str}``) to
    ``path``, atomically (a temporary file renamed into place)."""
    header, data = encode(tensors, metadata)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the data start 8-byte aligned, as the reference writer does
    with atomic_write(path) as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        f.write(data)


def read_safetensors(path, *, max_entries: int = MAX_ENTRIES):
    """``(tensors, metadata)``: host arrays ``{name: array}`` and ``{str: str}`` read from ``path``.

    Raises :class:`FormatError` naming the file when it is truncated, has trailing bytes,
    or its header is malformed or too large.
    """
    f = open_safetensors(path, max_entries=max_entries)
    return f.tensors(), f.metadata


def open_safetensors(path, *, max_entries: int = MAX_ENTRIES, max_data: int | None = None) -> SafetensorsFile:
    """Read the file at ``path``, checking its header before its data are read (see the
    module doc); no array is made until :meth:`SafetensorsFile.tensor` is called.

    ``max_data``: refuse a file whose tensors hold more bytes than this (None: no bound).
    """
    where = str(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        n = _header_length(f.read(8), size, where)
        blob = f.read(n)
        if len(blob) != n:
            raise FormatError(f"{where}: truncated: the header needs {n} bytes, the file has {len(blob)} after the length")
        metadata, entries, data_len = _parse(blob, size - 8 - n, where, max_entries)
        if max_data is not None and data_len > max_data:
            raise FormatError(f"{where}: its tensors hold {data_len} bytes, more than the limit of {max_data}")
        data = f.read(data_len + 1)  # one byte more: a file that grew while it was read is noticed
    if len(data) != data_len:
        raise FormatError(f"{where}: the file changed while it was read ({len(data)} data bytes, "
                          f"its header promised {data_len})")
    return SafetensorsFile(where, metadata, entries, memoryview(data))


def decode(blob: bytes, where: str = "<bytes>", *, max_entries: int = MAX_ENTRIES):
    """As :func:`read_safetensors`, from the file's bytes."""
    n = _header_length(blob[:8], len(blob), where)
    metadata, entries, data_len = _parse(blob[8:8 + n], len(blob) - 8 - n, where, max_entries)
    f = SafetensorsFile(where, metadata, entries, memoryview(blob)[8 + n:])
    return f.tensors(), f.metadata


def _header_length(head, size, where):
    if len(head) < 8:
        raise FormatError(f"{where}: truncated: {len(head)} bytes, too short for a safetensors file")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER:
        raise FormatError(f"{where}: not a safetensors file (its header would be {n} bytes)")
    if 8 + n > size:
        raise FormatError(f"{where}: truncated: the header needs {n} bytes, the file has {size - 8} after the length")
    return n


def _parse(blob, data_len, where, max_entries):
    """``(metadata, {name: Entry} in data order, data length)`` from the header bytes, checked
    against ``data_len``, the number of bytes the file holds after the header."""
    if json_depth(blob, MAX_HEADER_DEPTH) > MAX_HEADER_DEPTH:
        raise FormatError(f"{where}: corrupt header (JSON nested more than {MAX_HEADER_DEPTH} deep)")
    objects = [0]

    def count(pairs):  # an entry is one JSON object: past the limit, parsing stops
        objects[0] += 1
        if objects[0] > max_entries + 2:  # the entries, __metadata__ and the header itself
            raise _TooMany
        return dict(pairs)

    try:
        header = json.loads(blob.decode("utf-8"), object_pairs_hook=count)
    except _TooMany:
        raise FormatError(f"{where}: its header lists more than the limit of {max_entries} entries") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: also ints over Python's digit limit
        raise FormatError(f"{where}: corrupt header ({clip(str(e), 120)})") from None
    if not isinstance(header, dict):
        raise FormatError(f"{where}: corrupt header (a JSON {type(header).__name__}, not an object)")
    metadata = header.pop("__metadata__", None) or {}
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise FormatError(f"{where}: corrupt header (__metadata__ must map strings to strings, got {short(metadata, 80)})")
    items = sorted((_entry(where, name, e) for name, e in header.items()), key=lambda ne: ne[1].begin)
    entries, end = {}, 0
    for name, e in items:
        need = _ITEMSIZE[e.code]
        for s in e.shape:
            need *= s
        if e.begin != end or e.end - e.begin != need:
            raise FormatError(f"{where}: corrupt header: {short(name)} spans bytes {e.begin}..{e.end}, "
                              f"but {e.code} {short(list(e.shape))} needs {short(need, 40)} bytes from byte {end}")
        if e.end > data_len:
            raise FormatError(f"{where}: truncated: {short(name)} ends at data byte {e.end}, the file has {data_len}")
        entries[name] = e
        end = e.end
    if end != data_len:
        raise FormatError(f"{where}: {data_len - end} unexpected bytes after the last tensor")
    return metadata, entries, data_len


class _TooMany(Exception):
    pass


def _entry(where, name, entry):
    """``(name, Entry)`` from a header entry, or FormatError."""
    ok = isinstance(entry, dict)
    code, shape, off = (entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")) if ok else (None,) * 3
    ok = (ok and isinstance(code, str) and code in _NAMES
          and isinstance(shape, list) and len(shape) <= MAX_NDIM and all(_is_size(s) for s in shape)
          and isinstance(off, list) and len(off) == 2 and all(_is_size(o) for o in off) and off[0] <= off[1])
    if not ok:
        raise FormatError(f"{where}: corrupt header entry for {short(name)}: {short(entry, 120)}")
    return name, Entry(code, tuple(shape), off[0], off[1])


def _is_size(v):
    return type(v) is int and v >= 0
