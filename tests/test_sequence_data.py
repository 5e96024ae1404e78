"""The generated sequence tasks (xpnet.data.sequences) and the character corpus (xpnet.data.text)."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import backends, data
from tests.conftest import host


def _rows(a):
    return {tuple(r) for r in host(a).tolist()}


@pytest.mark.parametrize("make", [data.sort_digits, data.reverse_digits])
def test_digit_tasks_format_and_answers(make):
    task = make(length=5, num_digits=4, seed=3)
    X, Y = (host(a) for a in task.train)
    P, A = task.prompt_length, task.answer_length
    assert (P, A, task.vocab_size, task.block_size) == (5, 5, 4, 9)
    assert X.shape == Y.shape == (X.shape[0], 9) and X.dtype == Y.dtype == np.int64
    assert (Y[:, : P - 1] == -1).all()                       # the prompt is not predicted, but its last position
    assert (Y[:, P - 1:-1] == X[:, P:]).all()                # Y is X shifted by one on the answer
    prompt, answer = X[:, :P], Y[:, P - 1:]
    want = np.sort(prompt, axis=1) if make is data.sort_digits else prompt[:, ::-1]
    assert (answer == want).all()
    assert (host(task.prompts("train")) == prompt).all() and (host(task.answers("train")) == answer).all()
    # every problem once in its split
    assert len(_rows(prompt)) == len(prompt)


def test_addition_answers_are_the_reversed_sums():
    task = data.add_numbers(3, n_train=300, n_test=50, seed=1)
    assert (task.vocab_size, task.prompt_length, task.answer_length) == (10, 6, 4)
    X, Y = (host(a) for a in task.test)
    digits = X[:, :6]
    a = digits[:, :3] @ np.array([100, 10, 1])
    b = digits[:, 3:] @ np.array([100, 10, 1])
    answer = Y[:, 5:]
    assert (answer @ np.array([1, 10, 100, 1000]) == a + b).all()   # least significant digit first
    row = np.concatenate([X[0], Y[0, -1:]])
    assert task.decode(row) == f"{a[0]:03d}+{b[0]:03d}={a[0] + b[0]:04d}"


@pytest.mark.parametrize("space", ["enumerated", "sampled"])
def test_train_and_test_are_disjoint_seeded_and_the_test_split_does_not_depend_on_n_train(space):
    kw = dict(length=6, num_digits=3) if space == "enumerated" else dict(length=14, num_digits=5, n_test=300)
    task = data.sort_digits(**kw, seed=7, n_train=400)
    assert not _rows(task.prompts("train")) & _rows(task.prompts("test"))
    again = data.sort_digits(**kw, seed=7, n_train=50)
    assert (host(again.test[0]) == host(task.test[0])).all()
    other = data.sort_digits(**kw, seed=8, n_train=400)
    assert _rows(other.prompts("test")) != _rows(task.prompts("test"))


def test_default_sizes_follow_mingpt():
    t = data.sort_digits()                          # 3**6 = 729 problems, a quarter held out
    assert (int(t.test[0].shape[0]), int(t.train[0].shape[0])) == (183, 546)
    a = data.add_numbers()                          # 10**4 problems, 500 held out
    assert (int(a.test[0].shape[0]), int(a.train[0].shape[0])) == (500, 9500)
    r = data.reverse_digits()                       # 10**6 problems
    assert (int(r.test[0].shape[0]), int(r.train[0].shape[0])) == (1000, 20_000)


def test_the_same_problems_on_every_backend(backend):
    task = data.reverse_digits(seed=2, n_train=500, n_test=100, backend=backend)
    ref = data.reverse_digits(seed=2, n_train=500, n_test=100, backend="numpy")
    assert backends.backend_of(task.train[0]) is backend
    for got, want in zip(task.train + task.test, ref.train + ref.test):
        assert (host(got) == host(want)).all()
    assert task.check(task.answers("test")) == 1.0


def test_check_scores_exact_sequences(backend):
    task = data.sort_digits(seed=0, backend=backend)
    xp = backend.xp
    answers, prompts = task.answers("test"), task.prompts("test")
    assert task.check(xp.concat((prompts, answers), axis=1)) == 1.0     # whole sequences, as generate gives
    n = int(answers.shape[0])
    first_wrong = xp.where(xp.arange(answers.shape[1], device=backend.device)[None, :] == 0,
                           (answers + 1) % 3, answers)
    half = xp.concat((first_wrong[: n // 2, :], answers[n // 2:, :]), axis=0)
    assert task.check(half) == pytest.approx((n - n // 2) / n)
    with pytest.raises(ValueError, match=r"sort.check: expected the 183 generated answers .* got shape \(183, 3\)"):
        task.check(answers[:, :3])


def test_decode():
    task = data.sort_digits(seed=0)
    assert task.decode([2, 0, 1, 1, 2, 0, 0, 0, 1, 1, 2, 2]) == "201120 -> 001122"
    assert task.decode([2, 0, 1, 1, 2, 0]) == "201120 -> "
    assert task.decode(np.array([[0] * 6, [1] * 6])) == ["000000 -> ", "111111 -> "]
    with pytest.raises(ValueError, match=r"sort.decode: a row holds 6 to 12 tokens .* got 3"):
        task.decode([1, 2, 0])
    with pytest.raises(ValueError, match=r"tokens lie in \[0, 3\), got 7"):
        task.decode([7, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("call, message", [
    (lambda: data.sort_digits(length=0), "sort_digits: length must be an int >= 1, got 0"),
    (lambda: data.sort_digits(num_digits=11), "sort_digits: num_digits must be an int from 2 to 10"),
    (lambda: data.reverse_digits(length=40, num_digits=10), "10**40 problems are too many to number in int64; "
                                                             "use at most 18 digits"),
    (lambda: data.sort_digits(length=2, num_digits=2, n_test=4), "n_test=4 leaves none of the 4 problems"),
    (lambda: data.sort_digits(n_train=600), "n_train=600 exceeds the 546 problems left once the 183 test"),
    (lambda: data.sort_digits(seed=-1), "sort_digits: seed must be an int >= 0, got -1"),
    (lambda: data.add_numbers(10), "add_numbers: digits must be an int from 1 to 9"),
    (lambda: data.add_numbers(test_fraction=1.5), "add_numbers: test_fraction must be a probability in [0, 1)"),
    (lambda: data.sort_digits().split("val"), "sort: split must be 'train' or 'test', got 'val'"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError) as e:
        call()
    assert message in str(e.value)


# -- the character corpus ----------------------------------------------------------------
TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 3


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "poem.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


def test_corpus_vocabulary_split_and_windows(text_file, backend):
    c = data.load_text(text_file, block_size=8, val_fraction=0.25, backend=backend)
    assert c.chars == tuple(sorted(set(TEXT))) and c.vocab_size == len(set(TEXT))
    n_val = round(len(TEXT) * 0.25)
    assert (int(c.train.shape[0]), int(c.val.shape[0])) == (len(TEXT) - n_val, n_val)
    assert c.decode(c.train) + c.decode(c.val) == TEXT          # split by position, nothing lost
    X, Y = c.windows("train")
    assert tuple(X.shape) == ((len(TEXT) - n_val - 8 + 7) // 8, 8) and backends.backend_of(X) is backend
    for i in (0, 3):
        start = 8 * i
        assert c.decode(X[i, :]) == TEXT[start: start + 8] and c.decode(Y[i, :]) == TEXT[start + 1: start + 9]
    Xs, _ = c.windows("val", stride=1)
    assert int(Xs.shape[0]) == n_val - 8
    assert c.decode(c.encode("to be")) == "to be"


def test_corpus_reads_unicode_and_drops_a_byte_order_mark(tmp_path):
    p = tmp_path / "u.txt"
    p.write_bytes(("\ufeff" + "çà et là — 日本語 " * 20).encode())
    c = data.load_text(p, block_size=4)
    assert "\ufeff" not in c.chars and "日" in c.chars
    assert c.decode(c.train[:4]) == "çà e"


@pytest.mark.parametrize("content, kw, message", [
    (b"abc\n\xff\xfe rest", {}, "not UTF-8 text: byte 0xff at offset 4 (line 2) invalid start byte"),
    (b"short text", {"block_size": 8}, "10 characters are too few for block_size 8: the validation part "
                                       "(val_fraction 0.1) holds 1 and needs at least 9"),
    (b"x" * 100, {"max_bytes": 50}, "100 bytes is more than the limit of 50 (max_bytes)"),
    (b"", {}, "0 characters are too few"),
    (b"x" * 100, {"val_fraction": 0.0}, "val_fraction must be in (0, 1), got 0.0"),
    (b"x" * 100, {"block_size": 0}, "load_text: block_size must be an int >= 1, got 0"),
])
def test_corpus_errors(tmp_path, content, kw, message):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(ValueError) as e:
        data.load_text(p, **kw)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_corpus_path_errors(tmp_path, text_file):
    with pytest.raises(FileNotFoundError):
        data.load_text(tmp_path / "missing.txt")
    with pytest.raises(IsADirectoryError, match="a directory, not a text file"):
        data.load_text(tmp_path)
    c = data.load_text(text_file, block_size=4)
    with pytest.raises(ValueError, match=r"CharCorpus.encode: 1 character\(s\) are not in the vocabulary of "
                                         r"poem.txt: 'Z'"):
        c.encode("Zoo")
    with pytest.raises(ValueError, match=r"CharCorpus.decode: tokens are ints in \[0, \d+\), got 999"):
        c.decode([999])
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        c.windows("test")
