"""The safetensors format, written and read without the safetensors package.

A file is ``N`` (8 bytes, little-endian uint64), then an ``N``-byte UTF-8 JSON header, then
the data::

    {"name": {"dtype": "F32", "shape": [256, 784], "data_offsets": [begin, end]}, ...,
     "__metadata__": {"key": "string value", ...}}

Offsets count from the first data byte; tensors are little-endian, C order, and tile the data
exactly. Loading a safetensors file reads numbers and strings only: it cannot run code
(unlike a pickle). The files these functions write are read by ``safetensors.numpy.load_file``
and ``safetensors.torch.load_file`` as well.
"""

from __future__ import annotations

import json
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
_MAX_HEADER = 100 * 2**20  # the safetensors package's own limit: a bigger header is corrupt


class FormatError(ValueError):
    """A file that is not a valid (or not a complete) safetensors file."""


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


def read_safetensors(path):
    """``(tensors, metadata)``: host arrays ``{name: array}`` and ``{str: str}`` read from ``path``.

    Raises :class:`FormatError` naming the file when it is truncated, has trailing bytes,
    or its header is malformed.
    """
    with open(path, "rb") as f:
        blob = f.read()
    return decode(blob, str(path))


def decode(blob: bytes, where: str = "<bytes>"):
    """As :func:`read_safetensors`, from the file's bytes."""
    if len(blob) < 8:
        raise FormatError(f"{where}: truncated: {len(blob)} bytes, too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > _MAX_HEADER:
        raise FormatError(f"{where}: not a safetensors file (its header would be {n} bytes)")
    if 8 + n > len(blob):
        raise FormatError(f"{where}: truncated: the header needs {n} bytes, the file has {len(blob) - 8} after the length")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{where}: corrupt header ({e})") from None
    if not isinstance(header, dict):
        raise FormatError(f"{where}: corrupt header (a JSON {type(header).__name__}, not an object)")
    metadata = header.pop("__metadata__", None) or {}
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise FormatError(f"{where}: corrupt header (__metadata__ must map strings to strings, got {metadata!r:.80})")
    data = memoryview(blob)[8 + n:]
    tensors, end = {}, 0
    for name, entry in sorted(header.items(), key=lambda kv: _offsets(where, kv)[0]):
        begin, stop = _offsets(where, (name, entry))
        code, shape = entry.get("dtype"), entry.get("shape")
        if code not in _NAMES or not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise FormatError(f"{where}: corrupt header entry for {name!r}: {entry}")
        count = 1
        for s in shape:
            count *= s
        if begin != end or stop - begin != count * _ITEMSIZE[code]:
            raise FormatError(f"{where}: corrupt header: {name!r} spans bytes {begin}..{stop}, "
                              f"but {code} {shape} needs {count * _ITEMSIZE[code]} bytes from byte {end}")
        if stop > len(data):
            raise FormatError(f"{where}: truncated: {name!r} ends at data byte {stop}, the file has {len(data)}")
        tensors[name] = backends.host.from_bytes(data[begin:stop], _NAMES[code], shape, "<")
        end = stop
    if end != len(data):
        raise FormatError(f"{where}: {len(data) - end} unexpected bytes after the last tensor")
    return tensors, metadata


def _offsets(where, item):
    name, entry = item
    off = entry.get("data_offsets") if isinstance(entry, dict) else None
    if not (isinstance(off, list) and len(off) == 2 and all(isinstance(o, int) for o in off) and 0 <= off[0] <= off[1]):
        raise FormatError(f"{where}: corrupt header entry for {name!r}: {entry}")
    return off
