"""Recurrent layers, as ``torch.nn`` defines them (names, arguments, defaults, gate order,
parameter layouts and state-dict keys: state dicts move between the two unchanged).

- :mod:`.rnn`: :class:`RNN` (tanh or ReLU); :mod:`.lstm`: :class:`LSTM` (with ``proj_size``);
  :mod:`.gru`: :class:`GRU`; :mod:`.cells`: :class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell`

One engine serves the three sequence layers (:mod:`._stack`: layers, directions, batch-first and
unbatched inputs, dropout, states; :mod:`._sequence`: one direction's loop over time and its
backpropagation through time), and one step maths per kind (:mod:`._steps`) serves both the
sequence layers and the cells.
"""

from .cells import GRUCell, LSTMCell, RNNCell
from .gru import GRU
from .lstm import LSTM
from .rnn import RNN

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell"]
