"""RNN: the Elman recurrence, tanh or ReLU, as ``torch.nn.RNN``."""

from __future__ import annotations

from ._args import stack_args
from ._stack import RecurrentStack


class RNN(RecurrentStack):
    """A multi-layer Elman RNN, as ``torch.nn.RNN``. Per layer and direction, per step::

        h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   act = tanh or relu (nonlinearity)

    Backpropagation through time, from ``t = T-1`` down (``dh_t``: the output's gradient at
    ``t`` plus what step ``t+1`` sends back)::

        da_t = dh_t * act'(h_t)        (1 - h_t^2 for tanh, [h_t > 0] for relu)
        dh_{t-1} = da_t W_hh
        dW_ih += sum_t da_t^T x_t,   dW_hh += sum_t da_t^T h_{t-1},   db_ih = db_hh += sum_t da_t

    (the sums are one matrix product each, after the loop). ``x_t W_ih^T`` of all steps is one
    product before the loop.

    Shapes (``D`` = 2 if bidirectional, ``L`` = num_layers, ``H`` = hidden_size):
    ``input (T, N, input_size)`` (``(N, T, input_size)`` with ``batch_first``) or unbatched
    ``(T, input_size)``; ``hx (D*L, N, H)`` (unbatched ``(D*L, H)``), zeros when absent.
    ``forward(input, hx=None)`` returns ``(output, h_n)``: ``output (T, N, D*H)`` (the last
    layer's ``h_t`` of every step, both directions concatenated), ``h_n (D*L, N, H)``.

    Parameters, as torch names and shapes them: ``weight_ih_l{k} (H, input_size or D*H)``,
    ``weight_hh_l{k} (H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k} (H,)``, ``_reverse`` for the
    second direction; each drawn from ``U(-1/sqrt(H), 1/sqrt(H))``.

    ``backward(d_output, d_h_n=None)`` (either may be None) returns ``dx``, or ``(dx, dh0)``
    when ``hx`` was given positionally (``dh0`` None when that ``hx`` was None).
    """

    _config_fields = ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first", "dropout",
                      "bidirectional")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, backend=None, dtype=None):
        args = stack_args("RNN", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                          nonlinearity=nonlinearity)
        self._setup("RNN_RELU" if args["nonlinearity"] == "relu" else "RNN_TANH", args, backend, dtype)

    def backward(self, d_output, d_h_n=None, input_grad: bool = True):
        return self._backward(d_output, d_h_n, None, input_grad)
