"""LSTM, with the optional projection of its output (``proj_size``), as ``torch.nn.LSTM``."""

from __future__ import annotations

from ._args import stack_args
from ._stack import RecurrentStack


class LSTM(RecurrentStack):
    """A multi-layer long short-term memory, as ``torch.nn.LSTM``. Per layer and direction, per
    step, gates in torch's order ``i, f, g, o`` (``s``: the sigmoid)::

        [i, f, g, o] = [s, s, tanh, s](x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)                   (with proj_size: h_t = (o * tanh(c_t)) W_hr^T)

    Backpropagation through time, from ``t = T-1`` down: ``dh`` is the output's gradient at ``t``
    plus what step ``t+1`` sends back (with a projection, ``dh W_hr``), ``dc`` what step ``t+1``
    sends back to ``c_t``::

        dc  = dc + dh * o * (1 - tanh(c_t)^2)
        di, df, dg, do = dc * g, dc * c_{t-1}, dc * i, dh * tanh(c_t)
        da  = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]            (the pre-activations)
        dc_{t-1} = dc * f,    dh_{t-1} = da W_hh
        dW_ih += sum_t da^T x_t,   dW_hh += sum_t da^T h_{t-1},   db_ih = db_hh += sum_t da
        dW_hr += sum_t dh_t^T (o * tanh(c_t))

    The factors that do not involve ``dh`` or ``dc`` are formed for all steps at once before the
    reversed loop, and the sums are one matrix product each after it (docs/sequences.md walks
    through the code).

    Shapes (``D`` = 2 if bidirectional, ``L`` = num_layers, ``H`` = hidden_size, ``P`` =
    proj_size or H): ``input (T, N, input_size)`` (``(N, T, input_size)`` with ``batch_first``)
    or unbatched ``(T, input_size)``; ``hx = (h0 (D*L, N, P), c0 (D*L, N, H))`` (unbatched
    without the N axis), zeros when absent. ``forward(input, hx=None)`` returns ``(output,
    (h_n, c_n))``: ``output (T, N, D*P)``, ``h_n (D*L, N, P)``, ``c_n (D*L, N, H)``.

    Parameters, as torch: ``weight_ih_l{k} (4H, input_size or D*P)``, ``weight_hh_l{k} (4H, P)``,
    ``bias_ih_l{k}``, ``bias_hh_l{k} (4H,)``, ``weight_hr_l{k} (P, H)`` with proj_size
    (``_reverse`` for the second direction), each from ``U(-1/sqrt(H), 1/sqrt(H))``.

    ``backward(d_output, d_state=None)``, ``d_state`` None or ``(d_h_n, d_c_n)`` (either None),
    returns ``dx``, or ``(dx, (dh0, dc0))`` when ``hx`` was given positionally (None for a None hx).
    """

    _config_fields = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
                      "proj_size")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, backend=None, dtype=None):
        args = stack_args("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                          proj_size)
        self._setup("LSTM", args, backend, dtype)

    def backward(self, d_output, d_state=None, input_grad: bool = True):
        if d_state is None:
            return self._backward(d_output, None, None, input_grad)
        if not isinstance(d_state, (tuple, list)) or len(d_state) != 2:
            raise TypeError(f"{self._tag()}.backward expected d_state to be None or a pair (d_h_n, d_c_n), "
                            f"got {type(d_state).__name__}")
        return self._backward(d_output, d_state[0], d_state[1], input_grad)
