"""xpnet.summary: the layer table of a net, its parameter counts, and its errors; and the README's
"Summaries and metrics" block."""

from __future__ import annotations

import math
import pathlib
import re

import numpy as np
import pytest

import xpnet as xn
from xpnet.cli import recipes

from .conftest import Pair, host

DIGITS = recipes.RECIPES["digits"]
README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _size(net):
    return sum(math.prod(p.shape) for p in net.parameters())


def _row(s, name):
    (row,) = [r for r in s.rows if r.name == name]
    return row


def test_digits_mlp(backend):
    net = recipes.mlp(DIGITS)
    s = xn.summary(net, (1, 8, 8), batch_size=3)
    assert s.total_params == _size(net) == 64 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    assert s.trainable_params == s.total_params and s.frozen_params == 0
    assert sum(r.params for r in s.rows) == s.total_params
    assert [(r.name, r.layer, r.depth) for r in s.rows][:3] == [("", "Sequential", 0), ("0", "Flatten", 1), ("1", "Linear", 1)]
    assert _row(s, "0").output_shape == (3, 64) and _row(s, "7").output_shape == (3, 10)
    assert s.output_shape == (3, 10) and s.input_shape == (3, 1, 8, 8)
    assert s.param_bytes == 4 * s.total_params and s.buffer_bytes == 0
    assert s.input_bytes == 3 * 64 * 4 and s.dtype == "float32"
    text = str(s)
    assert "Total params: 50,826" in text and "Trainable params: 50,826" in text and "Non-trainable params: 0" in text
    assert "Params size: 203.30 KB (203,304 B)" in text and "Input size: (3, 1, 8, 8) float32, 768 B" in text
    assert re.search(r"^  1: Linear +\(3, 256\) +16,640 +True$", text, re.M)
    assert re.search(r"^  2: ReLU +\(3, 256\) +-- +--$", text, re.M)
    assert net.training and all("forward" not in vars(m) for _, m in net.named_modules())


def test_digits_cnn_and_float64(backend):
    net = recipes.cnn(DIGITS).to(dtype="float64")
    s = xn.summary(net, (1, 8, 8))
    assert s.total_params == _size(net) == sum(r.params for r in s.rows)
    assert [r.output_shape for r in s.rows if r.layer in ("Conv2d", "MaxPool2d", "Flatten")] == [
        (1, 32, 8, 8), (1, 32, 4, 4), (1, 64, 4, 4), (1, 64, 2, 2), (1, 256)]
    assert s.dtype == "float64" and s.param_bytes == 8 * s.total_params and s.input_bytes == 64 * 8
    assert "  10: Linear" in str(s)


def test_frozen_layer_and_buffers(backend):
    net = xn.Sequential(xn.Linear(4, 8), xn.BatchNorm1d(8), xn.ReLU(), xn.Linear(8, 3))
    net.layers[0].requires_grad_(False)
    state = {k: host(v) for k, v in net.state_dict().items()}
    s = xn.summary(net, (4,))
    assert s.frozen_params == s.non_trainable_params == 40 and s.trainable_params == 16 + 27
    assert s.total_params == 40 + 16 + 27
    assert _row(s, "0").trainable == "False" and _row(s, "1").trainable == "True" and _row(s, "").trainable == "Partial"
    assert s.buffer_bytes == 8 * 4 * 2 + 8  # running mean and var (float32), num_batches_tracked (int64)
    assert "Non-trainable params: 40" in str(s)
    for k, v in net.state_dict().items():  # eval mode: the running statistics did not move
        np.testing.assert_array_equal(host(v), state[k], err_msg=k)


def test_residual_and_concat(backend):
    net = xn.Sequential(
        xn.Linear(4, 6),
        xn.Residual(xn.Sequential(xn.Linear(6, 6), xn.Tanh())),
        xn.Residual(xn.Linear(6, 3), shortcut=xn.Linear(6, 3, bias=False)),
        xn.Concat(xn.Linear(3, 2), xn.Sequential(xn.Linear(3, 5), xn.ReLU())),
    )
    s = xn.summary(net, (4,), batch_size=2)
    got = [(r.name, r.layer, r.depth, r.output_shape) for r in s.rows]
    assert got == [
        ("", "Sequential", 0, (2, 7)), ("0", "Linear", 1, (2, 6)),
        ("1", "Residual", 1, (2, 6)), ("1.body", "Sequential", 2, (2, 6)),
        ("1.body.0", "Linear", 3, (2, 6)), ("1.body.1", "Tanh", 3, (2, 6)),
        ("2", "Residual", 1, (2, 3)), ("2.body", "Linear", 2, (2, 3)), ("2.shortcut", "Linear", 2, (2, 3)),
        ("3", "Concat", 1, (2, 7)), ("3.0", "Linear", 2, (2, 2)), ("3.1", "Sequential", 2, (2, 5)),
        ("3.1.0", "Linear", 3, (2, 5)), ("3.1.1", "ReLU", 3, (2, 5)),
    ]
    assert s.total_params == _size(net) == sum(r.params for r in s.rows)
    assert re.search(r"^      1\.body\.0: Linear +\(2, 6\) +42 +True$", str(s), re.M)


def test_shared_layer_and_tied_weights(backend):
    lin = xn.Linear(4, 4)
    net = xn.Sequential(lin, xn.Tanh(), lin, xn.Linear(4, 4))
    net.tie("0.weight", "3.weight")
    s = xn.summary(net, (4,))
    assert s.total_params == _size(net) == 16 + 4 + 4 == sum(r.params for r in s.rows)
    assert [r.name for r in s.rows] == ["", "0", "1", "2", "3"]
    assert _row(s, "2").note == "shared with 0" and _row(s, "2").params == 0
    assert _row(s, "3").params == 4 and _row(s, "3").note == ""  # its weight is 0's: only the bias is new
    assert "2: Linear (shared with 0)" in str(s)
    only_tied = xn.Sequential(xn.Linear(3, 3, bias=False), xn.Linear(3, 3, bias=False)).tie("0.weight", "1.weight")
    assert _row(xn.summary(only_tied, 3), "1").note == "tied"


def test_several_inputs_and_integer_input(backend):
    s = xn.summary(Pair(xn.Linear(3, 2), xn.Linear(5, 2)), [(3,), (5,)], batch_size=4)
    assert s.input_shape == [(4, 3), (4, 5)] and s.output_shape == (4, 2)
    assert [r.name for r in s.rows] == ["", "first", "second"]
    emb = xn.Sequential(xn.Embedding(10, 3), xn.Flatten(), xn.Linear(6, 2))
    s = xn.summary(emb, (2,), dtype="int64")
    assert _row(s, "0").output_shape == (1, 2, 3) and s.dtype == "int64" and s.input_bytes == 16


def test_uncalled_layer_is_listed():
    class Half(xn.Layer):
        def __init__(self):
            self.used, self.unused = xn.Linear(2, 2), xn.Linear(2, 5)

        def forward(self, x):
            return self.used(x)

    s = xn.summary(Half(), (2,))
    assert _row(s, "unused").output_shape is None and _row(s, "unused").params == 15
    assert s.total_params == 6 + 15 and re.search(r"^  unused: Linear +-- +15 +True$", str(s), re.M)


def test_input_shape_that_does_not_fit(backend):
    net = recipes.mlp(DIGITS)
    with pytest.raises(ValueError, match=r"^summary: layer 1: Linear failed on an input of shape \(1, 72\): "
                                         r"Linear\(64 -> 256\) expected input of shape \(\*, 64\)"):
        xn.summary(net, (1, 8, 9))
    assert all("forward" not in vars(m) for _, m in net.named_modules())  # unhooked after a failure too
    deep = xn.Sequential(xn.Linear(4, 4), xn.Residual(xn.Sequential(xn.Linear(4, 4), xn.Linear(5, 4))))
    with pytest.raises(ValueError, match=r"summary: layer 1\.body\.1: Linear failed on an input of shape \(1, 4\)"):
        xn.summary(deep, 4)
    with pytest.raises(TypeError, match=r"summary: layer 0: Linear failed on an input of shape \(1, 4\)"):
        xn.summary(xn.Sequential(xn.Linear(4, 2)), 4, dtype="int64")


def test_bad_arguments():
    net = xn.Sequential(xn.Linear(2, 2))
    for bad in ((0, 2), (2.0,), "2", None, (True,)):
        with pytest.raises(ValueError, match="summary: input_shape must be a tuple of positive ints"):
            xn.summary(net, bad)
    with pytest.raises(ValueError, match="summary: batch_size must be a positive int, got 0"):
        xn.summary(net, (2,), batch_size=0)
    with pytest.raises(TypeError, match="summary: net must be an xpnet Layer, got list"):
        xn.summary([net], (2,))


def test_readme_block(capsys):
    section = README.read_text().split("## Summaries and metrics", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    scope = {}
    exec(compile(block, "README.md (Summaries and metrics)", "exec"), scope)
    out = capsys.readouterr().out
    assert "Total params:" in out and "val_f1" in out
