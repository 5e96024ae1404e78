"""Generated sequence tasks, no download: sorting and reversing short digit sequences (minGPT's
demonstration) and multi-digit addition, as next-token problems.

>>> from xpnet import data
>>> task = data.sort_digits(length=6, num_digits=3, seed=0)    # 729 problems: 183 test, 546 train
>>> X, Y = task.train                                          # (546, 11) int64 each
>>> task.decode(X[0])               # '220210 -> 00122': the input row lacks the answer's last digit
>>> task.check(net.generate(task.prompts("test"), task.answer_length))   # exact-sequence accuracy

Each problem is a prompt of ``P`` tokens and its answer of ``A`` tokens. In minGPT's format a
problem is one row of the input ``X (N, P + A - 1)``, the prompt followed by the answer but
its last token, and one of the target ``Y (N, P + A - 1)``, the same sequence shifted by one:
``-1`` (ignored by ``CrossEntropyLoss(ignore_index=-1)``) on the first ``P - 1`` positions,
then the answer. So position ``P - 1 + i`` of the model's output predicts answer token ``i``
from the prompt and the answer's first ``i`` tokens, and greedy decoding from the prompt alone
(``generate(prompts, A)``) produces the answer.

Problems are numbered ``0 .. space - 1``; a seeded draw (a private numpy generator: no backend's
shared generator is touched) picks the test problems first and the training problems among the
others, so no test problem ever appears in the training split, and the test split of a seed
does not depend on ``n_train``. Every problem appears at most once in each split. The arrays
are int64 on ``backend`` (default: the current backend), identical on every backend for a seed.

Tasks (``vocab_size``, ``P``, ``A``):

- :func:`sort_digits`: ``length`` digits in ``[0, num_digits)`` -> the same digits sorted
  (``num_digits``, ``length``, ``length``);
- :func:`reverse_digits`: ``length`` digits -> the same digits in reverse order (same sizes);
- :func:`add_numbers`: two ``digits``-digit numbers ``a``, ``b`` (zero-padded, most
  significant digit first) -> ``a + b`` as ``digits + 1`` digits, least significant first
  (as minGPT's addition task, which is easier to learn left to right) (10, ``2 digits``,
  ``digits + 1``).

:meth:`SequenceTask.check` scores generated answers by exact-sequence accuracy (a problem
counts only when every token of its answer is right).
"""

from __future__ import annotations

import dataclasses
import math

from .. import backends
from ..validate import integer, probability

__all__ = ["SequenceTask", "add_numbers", "reverse_digits", "sort_digits", "TASKS"]

#: problems at most this many are drawn by one permutation of all of them; above it, by sampling
_ENUMERATE = 2**22
#: problem numbers are int64 on the host
_MAX_SPACE = 2**62
#: the test split's default size: test_fraction of the problems, at most this many
DEFAULT_MAX_TEST = 1000
#: the training split's default size: every remaining problem, at most this many
DEFAULT_MAX_TRAIN = 20_000
IGNORE = -1


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceTask:
    """A generated task and its two splits. ``train`` and ``test``: ``(X, Y)`` int64 pairs of
    shape ``(N, block_size)``, ``block_size = prompt_length + answer_length - 1`` (see the
    module doc for the format); ``vocab_size``: the tokens are ``0 .. vocab_size - 1``."""

    name: str
    vocab_size: int
    prompt_length: int
    answer_length: int
    train: tuple
    test: tuple
    settings: dict  # the arguments that made it (and remake it)

    @property
    def block_size(self) -> int:
        """The length of one input row: the longest context a model of this task needs."""
        return self.prompt_length + self.answer_length - 1

    def split(self, split):
        """``(X, Y)`` of ``split``, ``"train"`` or ``"test"``."""
        if split not in ("train", "test"):
            raise ValueError(f"{self.name}: split must be 'train' or 'test', got {split!r}")
        return self.train if split == "train" else self.test

    def prompts(self, split="test"):
        """The prompts ``(N, prompt_length)`` of ``split``: what a model is given to answer."""
        return self.split(split)[0][:, : self.prompt_length]

    def answers(self, split="test"):
        """The answers ``(N, answer_length)`` of ``split``."""
        return self.split(split)[1][:, self.prompt_length - 1:]

    def check(self, generated, split="test") -> float:
        """Exact-sequence accuracy: the fraction of the problems of ``split`` whose generated
        answer equals theirs in every token. ``generated``: ``(N, answer_length)`` answers, or
        ``(N, prompt_length + answer_length)`` whole sequences (what ``generate(prompts,
        answer_length)`` returns), on the split's backend. One host read."""
        want = self.answers(split)
        be = backends.backend_of(want)
        got = _on(be, generated, f"{self.name}.check")
        P, A, N = self.prompt_length, self.answer_length, int(want.shape[0])
        if got.ndim == 2 and int(got.shape[1]) == P + A:
            got = got[:, P:]
        if got.ndim != 2 or tuple(got.shape) != (N, A):
            raise ValueError(f"{self.name}.check: expected the {N} generated answers of the {split} split as "
                             f"({N}, {A}) tokens or ({N}, {P + A}) whole sequences, got shape {tuple(got.shape)}")
        xp = be.xp
        right = xp.all(xp.astype(got, xp.int64) == want, axis=1)
        return int(xp.sum(xp.astype(right, xp.int64))) / N

    def decode(self, tokens):
        """A problem as text: a row of ``prompt_length`` up to ``prompt_length + answer_length``
        tokens (a prompt, a prompt and a partial or whole answer, or a row of ``X``), e.g.
        ``'201120 -> 001122'`` (sort), ``'12+59=71'`` (addition); a 2-D array gives a list."""
        rows = _host_rows(tokens, f"{self.name}.decode")
        out = [self._text(r) for r in rows]
        return out if _ndim(tokens) == 2 else out[0]

    def _text(self, row):
        P, A = self.prompt_length, self.answer_length
        if not P <= len(row) <= P + A:
            raise ValueError(f"{self.name}.decode: a row holds {P} to {P + A} tokens (the prompt, then up to "
                             f"{A} answer tokens), got {len(row)}")
        bad = [t for t in row if not 0 <= t < self.vocab_size]
        if bad:
            raise ValueError(f"{self.name}.decode: tokens lie in [0, {self.vocab_size}), got {bad[0]}")
        prompt, answer = row[:P], row[P:]
        if self.name == "addition":
            n = P // 2
            digits = "".join(map(str, answer[::-1]))
            return f"{_digits(prompt[:n])}+{_digits(prompt[n:])}={digits}"
        return f"{_digits(prompt)} -> {_digits(answer)}"

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return (f"SequenceTask({self.name}: {args}; vocab_size={self.vocab_size}, prompt {self.prompt_length}, "
                f"answer {self.answer_length}, {int(self.train[0].shape[0])} train, {int(self.test[0].shape[0])} test)")


def sort_digits(length=6, num_digits=3, *, n_train=None, n_test=None, test_fraction=0.25, seed=0, backend=None):
    """Sort ``length`` digits in ``[0, num_digits)`` (minGPT's demonstration: length 6, digits
    0-2, 729 problems). ``n_test``: distinct test problems (default ``test_fraction`` of all,
    at most 1,000); ``n_train``: distinct training problems among the rest (default all of
    them, at most 20,000). See the module doc for the format and the split."""
    return _digit_task("sort", length, num_digits, n_train, n_test, test_fraction, seed, backend)


def reverse_digits(length=6, num_digits=10, *, n_train=None, n_test=None, test_fraction=0.25, seed=0, backend=None):
    """Reverse ``length`` digits in ``[0, num_digits)``; arguments as :func:`sort_digits`. The
    default, 6 decimal digits, makes a million problems, of which 1,000 test and 20,000 train:
    a model must learn to reverse, as it cannot remember the answers."""
    return _digit_task("reverse", length, num_digits, n_train, n_test, test_fraction, seed, backend)


def add_numbers(digits=2, *, n_train=None, n_test=None, test_fraction=0.05, seed=0, backend=None):
    """Add two ``digits``-digit numbers (1 to 9 digits; ``10**(2 digits)`` problems): the prompt
    is both numbers' digits, most significant first, the answer the sum's ``digits + 1``
    digits, least significant first. ``n_test`` defaults to ``test_fraction`` of the problems,
    at most 1,000 (500 of 2-digit addition's 10,000, as minGPT), ``n_train`` to the rest, at
    most 20,000."""
    fn = "add_numbers"
    n = integer(fn, "digits", digits, minimum=1)
    if n > 9:
        raise ValueError(f"{fn}: digits must be an int from 1 to 9 (the sum must fit in int64), got {digits!r}")
    settings = {"digits": n}
    space = 10 ** (2 * n)
    test, train = _draw(fn, space, n_train, n_test, test_fraction, seed)
    host = backends.host.host_namespace()

    def rows(codes):
        a, b = codes // 10**n, codes % 10**n
        prompt = host.concat((_base_digits(host, a, 10, n), _base_digits(host, b, 10, n)), axis=1)
        return prompt, _base_digits(host, a + b, 10, n + 1)[:, ::-1]  # least significant digit first

    return _task("addition", 10, 2 * n, n + 1, rows, train, test, settings, seed, backend)


#: the tasks by the names ``xpnet train --data`` uses
TASKS = {"sort": sort_digits, "reverse": reverse_digits, "addition": add_numbers}


# -- making them -------------------------------------------------------------------------------
def _digit_task(name, length, num_digits, n_train, n_test, test_fraction, seed, backend):
    fn = {"sort": "sort_digits", "reverse": "reverse_digits"}[name]
    L = integer(fn, "length", length, minimum=1)
    base = integer(fn, "num_digits", num_digits, minimum=2)
    if base > 10:
        raise ValueError(f"{fn}: num_digits must be an int from 2 to 10 (the tokens are the digits), "
                         f"got {num_digits!r}")
    if L * math.log2(base) > math.log2(_MAX_SPACE):
        raise ValueError(f"{fn}: {base}**{L} problems are too many to number in int64; "
                         f"use at most {int(math.log2(_MAX_SPACE) / math.log2(base))} digits of {base} values")
    test, train = _draw(fn, base**L, n_train, n_test, test_fraction, seed)
    host = backends.host.host_namespace()

    def rows(codes):
        prompt = _base_digits(host, codes, base, L)
        answer = host.sort(prompt, axis=1) if name == "sort" else prompt[:, ::-1]
        return prompt, answer

    return _task(name, base, L, L, rows, train, test, {"length": L, "num_digits": base}, seed, backend)


def _draw(fn, space, n_train, n_test, test_fraction, seed):
    """``(test codes, train codes)``: distinct problem numbers in ``[0, space)``, disjoint."""
    seed = integer(fn, "seed", seed, minimum=0)
    fraction = probability(fn, "test_fraction", test_fraction)
    n_test = min(max(1, math.ceil(fraction * space)), DEFAULT_MAX_TEST) if n_test is None else \
        integer(fn, "n_test", n_test, minimum=1)
    if n_test >= space:
        raise ValueError(f"{fn}: n_test={n_test} leaves none of the {space:,} problems for training")
    left = space - n_test
    n_train = min(left, DEFAULT_MAX_TRAIN) if n_train is None else integer(fn, "n_train", n_train, minimum=1)
    if n_train > left:
        raise ValueError(f"{fn}: n_train={n_train:,} exceeds the {left:,} problems left once the {n_test:,} test "
                         f"problems are set aside ({space:,} in all)")
    rng = backends.host.generator(seed)
    if space <= _ENUMERATE:
        perm = rng.permutation(space)
        return perm[:n_test], perm[n_test: n_test + n_train]
    # sampled without replacement in two draws: the test problems first (so that they do not
    # depend on n_train), then the training problems among those not in the test split
    test = rng.choice(space, n_test, replace=False)
    held = set(test.tolist())
    more = rng.choice(space, n_train + n_test, replace=False).tolist()
    train = [c for c in more if c not in held][:n_train]
    return test, backends.host.host_namespace().asarray(train, dtype=test.dtype)


def _base_digits(host, codes, base, width):
    """``(N, width)`` int64: the base-``base`` digits of ``codes``, most significant first."""
    powers = host.asarray([base ** (width - 1 - i) for i in range(width)], dtype=host.int64)
    return (host.astype(codes, host.int64)[:, None] // powers[None, :]) % base


def _task(name, vocab, P, A, rows, train_codes, test_codes, settings, seed, backend):
    be = backends.get(backend)
    host = backends.host.host_namespace()

    def pair(codes):
        prompt, answer = rows(codes)
        seq = host.concat((prompt, answer), axis=1)
        x = seq[:, :-1]
        y = host.concat((host.full((seq.shape[0], P - 1), IGNORE, dtype=host.int64), seq[:, P:]), axis=1)
        return be.asarray(x, dtype="int64"), be.asarray(y, dtype="int64")

    return SequenceTask(name, vocab, P, A, pair(train_codes), pair(test_codes), {**settings, "seed": seed})


# -- helpers -------------------------------------------------------------------------------------
def _digits(tokens):
    return "".join(str(t) for t in tokens)


def _ndim(tokens):
    nd = getattr(tokens, "ndim", None)
    if nd is not None:
        return nd
    return 2 if tokens and isinstance(tokens[0], (list, tuple)) else 1


def _host_rows(tokens, fn):
    """``tokens`` (a list, or a 1-D or 2-D integer array of any backend) as lists of ints."""
    if hasattr(tokens, "shape"):
        if _ndim(tokens) not in (1, 2):
            raise ValueError(f"{fn}: expected a row (1-D) or rows (2-D) of tokens, got shape {tuple(tokens.shape)}")
        values = backends.to_numpy(tokens).tolist()
    else:
        values = list(tokens)
    rows = values if _ndim(tokens) == 2 else [values]
    for r in rows:
        if any(isinstance(t, bool) or not isinstance(t, int) for t in r):
            raise TypeError(f"{fn}: tokens must be integers, got {r[:8]!r}")
    return rows


def _on(be, x, fn):
    """``x`` as an array of backend ``be`` (another backend's array is refused)."""
    try:
        other = backends.backend_of(x)
    except TypeError:
        return be.asarray(x, dtype="int64")
    if other is not be:
        raise ValueError(f"{fn}: the task's arrays are on {be.label}, the generated tokens on {other.label}")
    return x
