"""The IDX file format of MNIST and Fashion-MNIST: read and write n-dimensional arrays.

Layout (all header integers big-endian)::

    bytes 0-1   0x00 0x00
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     ndim, the number of dimensions
    then        ndim uint32 sizes d_0 .. d_{ndim-1}
    then        d_0 * ... * d_{ndim-1} values in C (row-major) order, big-endian

so a file holds exactly ``4 + 4*ndim + itemsize * prod(d)`` bytes. A file may also be
gzip-compressed (as MNIST is shipped, ``*.gz``); readers recognise gzip by its own magic
bytes ``1f 8b``, which no IDX file starts with.

>>> write_idx("x-idx2-int.gz", a)     # a: an int32 host array of shape (3, 4); gzip because of ".gz"
>>> read_idx("x-idx2-int.gz", ndim=2) # a new host int32 array of shape (3, 4)
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

from .. import backends

__all__ = ["IDX_TYPES", "parse_idx", "read_idx", "to_idx_bytes", "write_idx"]

#: type code -> dtype name
IDX_TYPES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
_CODES = {name: code for code, name in IDX_TYPES.items()}
_ITEMSIZE = {"uint8": 1, "int8": 1, "int16": 2, "int32": 4, "float32": 4, "float64": 8}
_GZIP_MAGIC = b"\x1f\x8b"
_TYPES_TEXT = ", ".join(f"0x{c:02X} {n}" for c, n in IDX_TYPES.items())


def _bad(where, what):
    return ValueError(f"IDX file {where}: {what}")


def parse_idx(buf, *, ndim: int | None = None, where: str = "<bytes>"):
    """The host array held by the IDX bytes ``buf`` (raw or gzip-compressed).

    ``ndim``: when given, the number of dimensions the data must have.
    ``where`` names the source in error messages. Raises ValueError, naming ``where``,
    what was expected and what was found, for a bad magic number or type code, a wrong
    dimension count, truncated data or trailing bytes, or a corrupt gzip stream.
    """
    if bytes(buf[:2]) == _GZIP_MAGIC:
        try:
            buf = gzip.decompress(buf)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a cut stream an EOFError
            raise _bad(where, f"not a valid gzip stream ({e})") from None
    if len(buf) < 4:
        raise _bad(where, f"truncated: {len(buf)} bytes, fewer than the 4-byte magic number")
    zero, code, nd = struct.unpack(">HBB", bytes(buf[:4]))
    if zero != 0 or code not in IDX_TYPES:
        raise _bad(where, f"bad magic number 0x{bytes(buf[:4]).hex().upper()}: expected 0x0000TTNN with "
                          f"TT a type code ({_TYPES_TEXT}) and NN the number of dimensions; "
                          f"this is not an IDX file")
    if ndim is not None and nd != ndim:
        raise _bad(where, f"expected {ndim} dimension{'s' * (ndim != 1)}, found {nd} (magic number "
                          f"0x{bytes(buf[:4]).hex().upper()})")
    head = 4 + 4 * nd
    if len(buf) < head:
        raise _bad(where, f"truncated header: {len(buf)} bytes, expected {head} (4 + 4 * {nd} dimension sizes)")
    shape = struct.unpack(f">{nd}I", bytes(buf[4:head]))
    name = IDX_TYPES[code]
    n = 1
    for d in shape:
        n *= d
    want, got = head + n * _ITEMSIZE[name], len(buf)
    if got != want:
        kind = "truncated data" if got < want else f"{got - want} trailing bytes"
        raise _bad(where, f"{kind}: {got} bytes, expected {want} for {name} of shape {shape} "
                          f"({head}-byte header + {n} * {_ITEMSIZE[name]})")
    # one conversion of the whole payload; a memoryview avoids copying the (up to 47 MB) slice first
    return backends.host.from_bytes(memoryview(buf)[head:], name, shape, byteorder=">")


def read_idx(path, *, ndim: int | None = None):
    """The host array in the IDX file ``path`` (raw or gzip-compressed); see :func:`parse_idx`."""
    with open(path, "rb") as f:
        return parse_idx(f.read(), ndim=ndim, where=os.fspath(path))


def to_idx_bytes(x) -> bytes:
    """The raw (uncompressed) IDX bytes of ``x``: a host array or an array of any backend
    whose dtype is one of :data:`IDX_TYPES`, with at most 255 dimensions each below 2**32."""
    if not backends.host.is_host_array(x):
        x = backends.to_numpy(x)
    name = backends.host.host_dtype_name(x)
    if name not in _CODES:
        raise ValueError(f"IDX cannot store dtype {name}; it stores {', '.join(_CODES)}")
    shape = tuple(int(d) for d in x.shape)
    if len(shape) > 255 or any(d >= 2**32 for d in shape):
        raise ValueError(f"IDX cannot store shape {shape}: at most 255 dimensions, each below 2**32")
    header = struct.pack(f">HBB{len(shape)}I", 0, _CODES[name], len(shape), *shape)
    return header + backends.host.to_bytes(x, byteorder=">")


def write_idx(path, x, *, compress: bool | None = None) -> None:
    """Write ``x`` to the IDX file ``path``, gzip-compressed when ``compress`` (default: when
    ``path`` ends with ``.gz``). The gzip header carries no time stamp, so equal arrays give
    equal files (and equal SHA-256)."""
    data = to_idx_bytes(x)
    if compress is None:
        compress = os.fspath(path).endswith(".gz")
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
