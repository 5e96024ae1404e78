"""Checkpoint architecture rules of the recurrent layers: RNN, LSTM and GRU (per layer and
direction ``weight_ih_l{k}``, ``weight_hh_l{k}``, the biases, LSTM's ``weight_hr_l{k}``), and
RNNCell, LSTMCell, GRUCell (``weight_ih``, ``weight_hh``, the biases). The shapes come from the
layers' own table (:mod:`xpnet.layers.recurrent._args`), after the constructors' own checks."""

from __future__ import annotations


def _stack(name, mode):
    def rule(a):
        from ...layers.recurrent._args import GATES, stack_args, stack_shapes
        from ..checkpoint_arch import FLOAT

        v = stack_args(name, a["input_size"], a["hidden_size"], a["num_layers"], a["bias"], a["batch_first"],
                       a["dropout"], a["bidirectional"], a.get("proj_size", 0), a.get("nonlinearity"))
        gates = GATES[mode]
        shapes = stack_shapes(gates, v["input_size"], v["hidden_size"], v["num_layers"], v["bias"], v["bidirectional"],
                              v["proj_size"])
        return [(n, shape, True, FLOAT) for n, shape in shapes]
    return rule


def _cell(name, mode):
    def rule(a):
        from ...layers.recurrent._args import GATES, cell_args, cell_shapes
        from ..checkpoint_arch import FLOAT

        v = cell_args(name, a["input_size"], a["hidden_size"], a["bias"], a.get("nonlinearity"))
        return [(n, shape, True, FLOAT) for n, shape in cell_shapes(GATES[mode], v["input_size"], v["hidden_size"],
                                                                   v["bias"])]
    return rule


def rules(L):
    return {L.RNN: _stack("RNN", "RNN_TANH"), L.LSTM: _stack("LSTM", "LSTM"), L.GRU: _stack("GRU", "GRU"),
            L.RNNCell: _cell("RNNCell", "RNN_TANH"), L.LSTMCell: _cell("LSTMCell", "LSTM"),
            L.GRUCell: _cell("GRUCell", "GRU")}
