"""Cases of the recurrent layers (issue 12): RNN (tanh and relu), LSTM (with proj_size), GRU and
their cells; batched, batch-first and unbatched inputs, initial states given (positionally) or
absent, stacks of 2-3 layers, both directions, a long sequence, dropout between layers in
training (gradcheck only). The nested forms (LSTM's ``(output, (h_n, c_n))``, its ``(h0, c0)``
input) go through the harness's nested tuples. More corners (keyword states, gradients of only
some outputs, frozen weights, errors): tests/test_recurrent.py."""

from __future__ import annotations

import xpnet as xn
from tests.layer_cases import Case, _placed, ints


def seq(*shapes):
    """Normal arrays of the shapes given; a tuple of shapes becomes a tuple of arrays (a state pair)."""
    def draw(rng):
        return tuple(tuple(rng.standard_normal(s) for s in shape) if isinstance(shape[0], tuple)
                     else rng.standard_normal(shape) for shape in shapes)
    return draw


def made(cls, *args, **kwargs):
    return lambda be, dt: cls(*args, **kwargs, **_placed(be, dt))


def train_mode(make):
    return lambda be, dt: make(be, dt).train()


FLOAT_ONLY = (TypeError, r"expected a floating-point .*input, got int64")

CASES = [
    # RNN
    Case("RNN", xn.RNN, made(xn.RNN, 3, 4), seq((5, 2, 3)), lambda nn: nn.RNN(3, 4), seq((5, 2, 4)),
         (ValueError, r"RNN\(3, 4\) expected input of shape \(T, N, 3\), or \(3,\) per step unbatched: \(T, 3\), "
                      r"got \(5, 2, 4\)")),
    Case("RNN-relu-2-layers-h0", xn.RNN, made(xn.RNN, 3, 4, 2, "relu"), seq((6, 2, 3), (2, 2, 4)),
         lambda nn: nn.RNN(3, 4, 2, "relu"), seq((6, 2, 3), (2, 3, 4)),
         (ValueError, r"RNN\(3, 4, num_layers=2\) expected h0 of shape \(2, 2, 4\) \(num_layers \* num_directions, "
                      r"batch, hidden_size\) for the batched input of shape \(6, 2, 3\), got \(2, 3, 4\)")),
    Case("RNN-bidirectional-batch-first", xn.RNN, made(xn.RNN, 3, 4, batch_first=True, bidirectional=True),
         seq((2, 5, 3)), lambda nn: nn.RNN(3, 4, batch_first=True, bidirectional=True), ints(2, 5, 3), FLOAT_ONLY),
    Case("RNN-unbatched-3-layers-no-bias", xn.RNN, made(xn.RNN, 3, 4, 3, bias=False), seq((5, 3), (3, 4)),
         lambda nn: nn.RNN(3, 4, 3, bias=False), seq((5, 2, 3), (3, 4)),
         (ValueError, r"RNN\(3, 4, num_layers=3, bias=False\) expected h0 of shape \(3, 2, 4\) .* for the batched "
                      r"input of shape \(5, 2, 3\), got \(3, 4\)")),
    Case("RNN-long", xn.RNN, made(xn.RNN, 1, 2), seq((50, 1, 1)), lambda nn: nn.RNN(1, 2), seq((2, 2, 2, 1)),
         (ValueError, r"RNN\(1, 2\) expected input of shape .*, got \(2, 2, 2, 1\)")),
    Case("RNN-dropout-train", xn.RNN, train_mode(made(xn.RNN, 3, 4, 2, dropout=0.4)), seq((4, 3, 3)),
         lambda nn: nn.RNN(3, 4, 2, dropout=0.4), seq((4, 3, 2)),
         (ValueError, r"RNN\(3, 4, num_layers=2, dropout=0\.4\) expected input"),
         parity="dropout masks are random: xpnet's and torch's generators differ"),
    # GRU
    Case("GRU", xn.GRU, made(xn.GRU, 3, 4), seq((5, 2, 3)), lambda nn: nn.GRU(3, 4), seq((5, 2)),
         (ValueError, r"GRU\(3, 4\) expected input of shape \(T, N, 3\).*, got \(5, 2\)")),
    Case("GRU-2-layers-bidirectional-h0", xn.GRU, made(xn.GRU, 3, 4, 2, bidirectional=True),
         seq((3, 2, 3), (4, 2, 4)), lambda nn: nn.GRU(3, 4, 2, bidirectional=True), seq((3, 2, 3), (2, 2, 4)),
         (ValueError, r"GRU\(3, 4, num_layers=2, bidirectional=True\) expected h0 of shape \(4, 2, 4\)")),
    Case("GRU-batch-first-no-bias-h0", xn.GRU, made(xn.GRU, 3, 4, bias=False, batch_first=True),
         seq((2, 5, 3), (1, 2, 4)), lambda nn: nn.GRU(3, 4, bias=False, batch_first=True), seq((2, 5, 3), (1, 5, 4)),
         (ValueError, r"GRU\(3, 4, bias=False, batch_first=True\) expected h0 of shape \(1, 2, 4\)")),
    Case("GRU-unbatched-3-layers", xn.GRU, made(xn.GRU, 3, 4, 3), seq((4, 3)), lambda nn: nn.GRU(3, 4, 3), seq((4, 4)),
         (ValueError, r"GRU\(3, 4, num_layers=3\) expected input of shape \(T, N, 3\), or \(3,\) per step unbatched: "
                      r"\(T, 3\), got \(4, 4\)")),
    Case("GRU-long", xn.GRU, made(xn.GRU, 1, 2), seq((50, 1, 1)), lambda nn: nn.GRU(1, 2), ints(50, 1, 1), FLOAT_ONLY),
    Case("GRU-dropout-train", xn.GRU, train_mode(made(xn.GRU, 3, 4, 2, dropout=0.3)), seq((4, 2, 3)),
         lambda nn: nn.GRU(3, 4, 2, dropout=0.3), ints(4, 2, 3), FLOAT_ONLY,
         parity="dropout masks are random: xpnet's and torch's generators differ"),
    # LSTM
    Case("LSTM", xn.LSTM, made(xn.LSTM, 3, 4), seq((5, 2, 3)), lambda nn: nn.LSTM(3, 4), seq((5, 2, 2)),
         (ValueError, r"LSTM\(3, 4\) expected input of shape \(T, N, 3\).*, got \(5, 2, 2\)")),
    Case("LSTM-proj-2-layers-state", xn.LSTM, made(xn.LSTM, 3, 5, 2, proj_size=2),
         seq((6, 2, 3), ((2, 2, 2), (2, 2, 5))), lambda nn: nn.LSTM(3, 5, 2, proj_size=2),
         seq((6, 2, 3), ((2, 2, 5), (2, 2, 5))),
         (ValueError, r"LSTM\(3, 5, proj_size=2, num_layers=2\) expected h0 of shape \(2, 2, 2\) \(num_layers \* "
                      r"num_directions, batch, proj_size\) for the batched input of shape \(6, 2, 3\), "
                      r"got \(2, 2, 5\)")),
    Case("LSTM-bidirectional-batch-first-state", xn.LSTM, made(xn.LSTM, 3, 4, batch_first=True, bidirectional=True),
         seq((2, 5, 3), ((2, 2, 4), (2, 2, 4))), lambda nn: nn.LSTM(3, 4, batch_first=True, bidirectional=True),
         seq((2, 5, 3), ((2, 2, 4), (2, 2, 3))),
         (ValueError, r"LSTM\(3, 4, batch_first=True, bidirectional=True\) expected c0 of shape \(2, 2, 4\)")),
    Case("LSTM-unbatched-2-layers-state-no-bias", xn.LSTM, made(xn.LSTM, 3, 4, 2, bias=False),
         seq((5, 3), ((2, 4), (2, 4))), lambda nn: nn.LSTM(3, 4, 2, bias=False), seq((5, 3), ((2, 1, 4), (2, 1, 4))),
         (ValueError, r"LSTM\(3, 4, num_layers=2, bias=False\) expected h0 of shape \(2, 4\) \(num_layers \* "
                      r"num_directions, hidden_size\) for the unbatched input of shape \(5, 3\), got \(2, 1, 4\)")),
    Case("LSTM-proj-bidirectional", xn.LSTM, made(xn.LSTM, 3, 4, bidirectional=True, proj_size=3),
         seq((4, 2, 3)), lambda nn: nn.LSTM(3, 4, bidirectional=True, proj_size=3), ints(4, 2, 3), FLOAT_ONLY),
    Case("LSTM-long", xn.LSTM, made(xn.LSTM, 1, 2), seq((50, 1, 1)), lambda nn: nn.LSTM(1, 2), seq((0, 1, 1)),
         (ValueError, r"LSTM\(1, 2\) expected a sequence of at least one step, got input of shape \(0, 1, 1\)")),
    Case("LSTM-dropout-train", xn.LSTM, train_mode(made(xn.LSTM, 3, 4, 2, dropout=0.5, proj_size=2)), seq((4, 2, 3)),
         lambda nn: nn.LSTM(3, 4, 2, dropout=0.5, proj_size=2), ints(4, 2, 3), FLOAT_ONLY,
         parity="dropout masks are random: xpnet's and torch's generators differ"),
    # cells
    Case("RNNCell", xn.RNNCell, made(xn.RNNCell, 3, 4), seq((2, 3)), lambda nn: nn.RNNCell(3, 4), seq((2, 4)),
         (ValueError, r"RNNCell\(3, 4\) expected input of shape \(N, 3\), or \(3,\) unbatched, got \(2, 4\)")),
    Case("RNNCell-relu-h", xn.RNNCell, made(xn.RNNCell, 3, 4, nonlinearity="relu"), seq((2, 3), (2, 4)),
         lambda nn: nn.RNNCell(3, 4, nonlinearity="relu"), seq((2, 3), (4,)),
         (ValueError, r"RNNCell\(3, 4, nonlinearity=relu\) expected h0 of shape \(2, 4\) \(batch, hidden_size\) for "
                      r"the batched input of shape \(2, 3\), got \(4,\)")),
    Case("RNNCell-unbatched-no-bias", xn.RNNCell, made(xn.RNNCell, 3, 4, bias=False), seq((3,), (4,)),
         lambda nn: nn.RNNCell(3, 4, bias=False), ints(3), FLOAT_ONLY),
    Case("GRUCell", xn.GRUCell, made(xn.GRUCell, 3, 4), seq((2, 3), (2, 4)), lambda nn: nn.GRUCell(3, 4),
         seq((2, 3, 1)), (ValueError, r"GRUCell\(3, 4\) expected input of shape \(N, 3\), or \(3,\) unbatched, "
                                      r"got \(2, 3, 1\)")),
    Case("GRUCell-unbatched", xn.GRUCell, made(xn.GRUCell, 3, 4, bias=False), seq((3,)),
         lambda nn: nn.GRUCell(3, 4, bias=False), seq((3,), (2, 4)),
         (ValueError, r"GRUCell\(3, 4, bias=False\) expected h0 of shape \(4,\) \(hidden_size\) for the unbatched "
                      r"input of shape \(3,\), got \(2, 4\)")),
    Case("LSTMCell", xn.LSTMCell, made(xn.LSTMCell, 3, 4), seq((2, 3)), lambda nn: nn.LSTMCell(3, 4), ints(2, 3),
         FLOAT_ONLY),
    Case("LSTMCell-state", xn.LSTMCell, made(xn.LSTMCell, 3, 4), seq((2, 3), ((2, 4), (2, 4))),
         lambda nn: nn.LSTMCell(3, 4), seq((2, 3), ((2, 4), (2, 5))),
         (ValueError, r"LSTMCell\(3, 4\) expected c0 of shape \(2, 4\) \(batch, hidden_size\)")),
    Case("LSTMCell-unbatched-state-no-bias", xn.LSTMCell, made(xn.LSTMCell, 3, 4, bias=False),
         seq((3,), ((4,), (4,))), lambda nn: nn.LSTMCell(3, 4, bias=False), seq((3,), ((1, 4), (1, 4))),
         (ValueError, r"LSTMCell\(3, 4, bias=False\) expected h0 of shape \(4,\) \(hidden_size\) for the "
                      r"unbatched input")),
]
