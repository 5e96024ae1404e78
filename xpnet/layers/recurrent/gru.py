"""GRU, as ``torch.nn.GRU``."""

from __future__ import annotations

from ._args import stack_args
from ._stack import RecurrentStack


class GRU(RecurrentStack):
    """A multi-layer gated recurrent unit, as ``torch.nn.GRU``. Per layer and direction, per
    step, gates in torch's order ``r, z, n`` (``s``: the sigmoid)::

        [gx_r, gx_z, gx_n] = x_t W_ih^T + b_ih,     [gh_r, gh_z, gh_n] = h_{t-1} W_hh^T + b_hh
        r = s(gx_r + gh_r),   z = s(gx_z + gh_z),   n = tanh(gx_n + r * gh_n)
        h_t = (1 - z) * n + z * h_{t-1}

    Backpropagation through time, from ``t = T-1`` down (``dh``: the output's gradient at ``t``
    plus what step ``t+1`` sends back)::

        dn_pre = dh (1 - z)(1 - n^2)
        dz_pre = dh (h_{t-1} - n) z (1 - z)
        dr_pre = dn_pre gh_n r (1 - r)
        dgx = [dr_pre, dz_pre, dn_pre],   dgh = [dr_pre, dz_pre, dn_pre * r]
        dh_{t-1} = dgh W_hh + dh * z
        dW_ih += sum_t dgx^T x_t,  dW_hh += sum_t dgh^T h_{t-1},  db_ih += sum_t dgx,  db_hh += sum_t dgh

    Everything but ``dh`` in those lines is known once the forward is done, and is formed for all
    steps at once before the reversed loop; the loop does one ``(N, 3H) x (3H, H)`` product per
    step, and each weight gradient is one product after it.

    Shapes (``D`` = 2 if bidirectional, ``L`` = num_layers, ``H`` = hidden_size): ``input (T, N,
    input_size)`` (``(N, T, input_size)`` with ``batch_first``) or unbatched ``(T, input_size)``;
    ``hx (D*L, N, H)`` (unbatched ``(D*L, H)``), zeros when absent. ``forward(input, hx=None)``
    returns ``(output (T, N, D*H), h_n (D*L, N, H))``.

    Parameters, as torch: ``weight_ih_l{k} (3H, input_size or D*H)``, ``weight_hh_l{k} (3H, H)``,
    ``bias_ih_l{k}``, ``bias_hh_l{k} (3H,)`` (``_reverse`` for the second direction), each from
    ``U(-1/sqrt(H), 1/sqrt(H))``.

    ``backward(d_output, d_h_n=None)`` returns ``dx``, or ``(dx, dh0)`` when ``hx`` was given
    positionally (``dh0`` None when that ``hx`` was None).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, backend=None, dtype=None):
        args = stack_args("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)
        self._setup("GRU", args, backend, dtype)

    def backward(self, d_output, d_h_n=None, input_grad: bool = True):
        return self._backward(d_output, d_h_n, None, input_grad)
