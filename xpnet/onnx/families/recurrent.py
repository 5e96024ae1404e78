"""ONNX export of the recurrent layers: refused. RNN, LSTM and GRU return two outputs
(``output`` and the final state ``h_n``, LSTM's ``(h_n, c_n)``) and take an optional initial
state, and LSTMCell returns ``(h', c')``, while an exported graph has one input and one output;
RNNCell and GRUCell compute one step from a state their caller carries between calls, which a
one-input graph cannot take."""

from __future__ import annotations

from ... import layers as L
from ..registry import REFUSED

for _cls in (L.RNN, L.LSTM, L.GRU):
    REFUSED[_cls] = ("it returns two outputs (output and its final state) and takes an optional initial state, "
                     "and an exported graph has one input and one output; export the parts around it")
REFUSED[L.LSTMCell] = ("it returns two outputs (h', c') and takes the state (h, c) besides its input, and an "
                       "exported graph has one input and one output; export the parts around it")
for _cls in (L.RNNCell, L.GRUCell):
    REFUSED[_cls] = ("it computes one step from a state its caller carries between calls, and an exported graph "
                     "has one input; export the parts around it")
