"""TransformerEncoderLayer: self-attention and a feedforward block, each in a residual, as
``torch.nn.TransformerEncoderLayer``."""

from __future__ import annotations

from ._common import check_sequence
from ._sublayers import Sublayers


class TransformerEncoderLayer(Sublayers):
    """Self-attention then a feedforward network, as ``torch.nn.TransformerEncoderLayer``::

        sa(x) = dropout1(self_attn(x, x, x, attn_mask=src_mask, key_padding_mask=src_key_padding_mask)[0])
        ff(x) = dropout2(linear2(dropout(activation(linear1(x)))))
        norm_first=False:  h = norm1(x + sa(x));  y = norm2(h + ff(h))
        norm_first=True:   h = x + sa(norm1(x));  y = h + ff(norm2(h))

    Shapes: ``src (S, N, E)`` (``(N, S, E)`` with ``batch_first``; ``(S, E)`` unbatched) ->
    ``y`` of the same shape, ``E = d_model``. ``src_mask (S, S)`` or ``(N * nhead, S, S)``,
    ``src_key_padding_mask (N, S)`` (``(S,)`` unbatched): boolean (True: not attended) or
    additive float, as MultiheadAttention takes them. ``is_causal=True`` is torch's hint that
    ``src_mask`` is the causal mask (which it then needs).

    Children and state-dict names as torch's: ``self_attn`` (a MultiheadAttention:
    ``self_attn.in_proj_weight``, ``self_attn.out_proj.weight``, ...), ``linear1`` (d_model ->
    dim_feedforward), ``dropout``, ``linear2``, ``norm1``, ``norm2``, ``dropout1``, ``dropout2``,
    and ``activation``: ``"relu"``, ``"gelu"``, or an xpnet Layer (torch's callable; it needs a
    backward). ``bias=False`` drops the biases of the attention, the linears and the norms.

    Backward calls the children's backwards in reverse order, and sums the gradients where the
    input fans out (the residual; query, key and value of the self-attention)::

        norm_first=False:  dh = norm2'(dy);  dh += ff'(dh);  da = norm1'(dh);  dx = da + sum(sa'(da))
        norm_first=True:   dh = dy + norm2'(ff'(dy));  dx = dh + norm1'(sum(sa'(dh)))

    Returns one gradient per positional argument of the forward (``dsrc``, then None for each
    mask given positionally). Keeps only that count and the output's Signature: the children keep
    what they need.

    In evaluation under ``no_grad`` torch may take a fused inference path; its results are the
    same, except NaN where every key of a sequence is padding (torch's training path, and xpnet,
    give finite values there).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, *, backend=None, dtype=None):
        self._build((d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first,
                     bias), ("self_attn",), 2, {"backend": backend, "dtype": dtype})

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        n = self._take_positional(1)
        check_sequence(self._tag(), src, self.d_model, self.batch_first, "src")
        masks = self._options(src_key_padding_mask, src_mask, is_causal, ("is_causal", "src_mask"))
        h = self._residual(src, self.norm1, lambda z: self.dropout1(self.self_attn(z, z, z, **masks)[0]))
        return self._keep(n, self._residual(h, self.norm2, lambda z: self._feedforward(z, self.dropout2)))

    def backward(self, dy, input_grad: bool = True):
        n = self._count(dy)
        dh = self._residual_backward(dy, self.norm2, lambda d, _: self._feedforward_backward(d, self.dropout2))
        dx = self._residual_backward(dh, self.norm1, lambda d, need: self._attention_backward(
            self.self_attn, self.dropout1, d, True, need), input_grad)
        return None if dy is None else self._per_argument(n, (dx,), input_grad)
