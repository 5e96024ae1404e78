"""A character-level corpus from any UTF-8 text file: the vocabulary is the file's characters.

>>> from xpnet import data
>>> corpus = data.load_text("input.txt", block_size=64)    # e.g. tiny Shakespeare
>>> X, Y = corpus.windows("train")                          # (n, 64) int64: Y is X shifted by one
>>> corpus.decode(corpus.encode("to be"))                    # 'to be'

The file is untrusted: it must be a regular file of at most ``max_bytes`` (64 MiB by default),
valid UTF-8 (a leading byte-order mark is dropped), and long enough for one window of
``block_size + 1`` characters in each split; each problem raises one ValueError (OSError for a
missing or unreadable file) that names the file and says what is wrong.

The split is by position: the first ``1 - val_fraction`` of the characters train, the rest
validate (so no validation text is seen in training, as in minGPT's and nanoGPT's char
models). :meth:`CharCorpus.windows` cuts a split into ``(X, Y)`` pairs, ``Y[i, t] = X[i, t + 1]``
in the text, with windows starting every ``stride`` characters.
"""

from __future__ import annotations

import dataclasses
import os
import stat

from .. import backends
from ..validate import integer, probability

__all__ = ["CharCorpus", "load_text", "MAX_BYTES"]

MAX_BYTES = 64 * 2**20
_BOM = "\ufeff"


@dataclasses.dataclass(frozen=True, eq=False)
class CharCorpus:
    """The characters of a text file as tokens. ``chars``: the vocabulary, sorted by code point
    (token ``i`` is ``chars[i]``); ``train`` and ``val``: the two parts of the text as 1-D
    int64 token arrays on the backend; ``block_size``: the window length."""

    path: str
    chars: tuple
    block_size: int
    train: object
    val: object

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text) -> list:
        """The tokens of ``text`` (a str of the vocabulary's characters)."""
        if not isinstance(text, str):
            raise TypeError(f"CharCorpus.encode: expected a str, got {type(text).__name__}")
        index = self._index()
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(f"CharCorpus.encode: {len(unknown)} character(s) are not in the vocabulary of "
                             f"{os.path.basename(self.path)}: {''.join(unknown[:20])!r}")
        return [index[c] for c in text]

    def decode(self, tokens) -> str:
        """The text of ``tokens`` (a list, or a 1-D integer array of any backend)."""
        values = backends.to_numpy(tokens).tolist() if hasattr(tokens, "shape") else list(tokens)
        if values and isinstance(values[0], list):
            raise ValueError("CharCorpus.decode: expected one row of tokens (1-D), got several")
        bad = [t for t in values if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < len(self.chars)]
        if bad:
            raise ValueError(f"CharCorpus.decode: tokens are ints in [0, {len(self.chars)}), got {bad[0]!r}")
        return "".join(self.chars[t] for t in values)

    def windows(self, split="train", stride=None):
        """``(X, Y)`` int64 ``(n, block_size)`` on the corpus's backend: windows of ``split``
        (``"train"`` or ``"val"``) starting every ``stride`` characters (default ``block_size``:
        each character is a target once), ``Y`` the characters that follow ``X``'s."""
        if split not in ("train", "val"):
            raise ValueError(f"CharCorpus.windows: split must be 'train' or 'val', got {split!r}")
        stride = self.block_size if stride is None else integer("CharCorpus.windows", "stride", stride, minimum=1)
        tokens = self.train if split == "train" else self.val
        be = backends.backend_of(tokens)
        xp, T = be.xp, self.block_size
        starts = xp.arange(0, int(tokens.shape[0]) - T, stride, dtype=xp.int64, device=be.device)
        idx = starts[:, None] + xp.arange(T + 1, dtype=xp.int64, device=be.device)[None, :]
        rows = xp.reshape(xp.take(tokens, xp.reshape(idx, (-1,)), axis=0), tuple(idx.shape))
        return rows[:, :-1], rows[:, 1:]

    def _index(self):
        index = self.__dict__.get("_stoi")
        if index is None:
            index = {c: i for i, c in enumerate(self.chars)}
            object.__setattr__(self, "_stoi", index)
        return index

    def __repr__(self):
        return (f"CharCorpus({os.path.basename(self.path)}: {self.vocab_size} characters, "
                f"{int(self.train.shape[0]):,} train and {int(self.val.shape[0]):,} validation tokens, "
                f"block_size={self.block_size})")


def load_text(path, block_size=128, *, val_fraction=0.1, max_bytes=MAX_BYTES, backend=None) -> CharCorpus:
    """The :class:`CharCorpus` of the UTF-8 text file ``path``: its characters as the
    vocabulary, split by position (the last ``val_fraction`` validates), each part at least
    ``block_size + 1`` characters long, on ``backend`` (default: the current one)."""
    fn = "load_text"
    block_size = integer(fn, "block_size", block_size, minimum=1)
    val_fraction = probability(fn, "val_fraction", val_fraction)
    if not val_fraction > 0:
        raise ValueError(f"{fn}: val_fraction must be in (0, 1), got {val_fraction!r}")
    max_bytes = integer(fn, "max_bytes", max_bytes, minimum=1)
    name = os.fspath(path)
    text = _read(fn, name, max_bytes)
    n = len(text)
    n_val = int(round(n * val_fraction))
    n_train = n - n_val
    need = block_size + 1
    if min(n_train, n_val) < need:
        raise ValueError(f"{fn}: {name}: {n:,} characters are too few for block_size {block_size}: the "
                         f"{'training' if n_train < need else 'validation'} part (val_fraction {val_fraction}) holds "
                         f"{min(n_train, n_val):,} and needs at least {need:,}; use a longer file or a smaller "
                         "block_size")
    # the code points as one host array (UTF-32 bytes), their sorted distinct values the vocabulary
    host = backends.host.host_namespace()
    codes = backends.host.from_bytes(text.encode("utf-32-le"), "uint32", (n,))
    values, tokens = host.unique_inverse(codes)
    chars = tuple(chr(c) for c in values.tolist())
    be = backends.get(backend)
    tokens = be.asarray(host.astype(tokens, host.int64))
    return CharCorpus(name, chars, block_size, tokens[:n_train], tokens[n_train:])


def _read(fn, name, max_bytes) -> str:
    """The text of file ``name``: a regular file of at most ``max_bytes``, valid UTF-8."""
    st = os.stat(name)  # a missing file: FileNotFoundError naming it
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "a directory, not a text file", name)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{fn}: {name}: not a regular file (a device, pipe or socket)")
    if st.st_size > max_bytes:
        raise ValueError(f"{fn}: {name}: {st.st_size:,} bytes is more than the limit of {max_bytes:,} "
                         "(max_bytes)")
    with open(name, "rb") as f:
        raw = f.read(max_bytes + 1)  # the file may have grown since the stat
    if len(raw) > max_bytes:
        raise ValueError(f"{fn}: {name}: more than the limit of {max_bytes:,} bytes (max_bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{fn}: {name}: not UTF-8 text: byte 0x{raw[e.start]:02x} at offset {e.start:,} "
                         f"(line {line}) {e.reason}") from None
    return text[1:] if text.startswith(_BOM) else text
