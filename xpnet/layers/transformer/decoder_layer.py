"""TransformerDecoderLayer: self-attention, attention to the encoder's memory, and a
feedforward block, each in a residual, as ``torch.nn.TransformerDecoderLayer``."""

from __future__ import annotations

from .._checks import shape_str
from ._common import check_sequence
from ._sublayers import Sublayers


class TransformerDecoderLayer(Sublayers):
    """Self-attention, cross-attention to ``memory``, then a feedforward network, as
    ``torch.nn.TransformerDecoderLayer``::

        sa(x) = dropout1(self_attn(x, x, x, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask)[0])
        ca(x) = dropout2(multihead_attn(x, memory, memory, attn_mask=memory_mask,
                                        key_padding_mask=memory_key_padding_mask)[0])
        ff(x) = dropout3(linear2(dropout(activation(linear1(x)))))
        norm_first=False:  h = norm1(x + sa(x));  g = norm2(h + ca(h));  y = norm3(g + ff(g))
        norm_first=True:   h = x + sa(norm1(x));  g = h + ca(norm2(h));  y = g + ff(norm3(g))

    Shapes: ``tgt (T, N, E)`` and ``memory (S, N, E)`` (``(N, T, E)``, ``(N, S, E)`` with
    ``batch_first``; ``(T, E)``, ``(S, E)`` unbatched) -> ``y`` of ``tgt``'s shape,
    ``E = d_model``. ``tgt_mask (T, T)`` or ``(N * nhead, T, T)``, ``memory_mask (T, S)`` or
    ``(N * nhead, T, S)``, ``tgt_key_padding_mask (N, T)``, ``memory_key_padding_mask (N, S)``
    (without N unbatched): boolean (True: not attended) or additive float. ``tgt_is_causal`` and
    ``memory_is_causal`` are torch's hints that the matching mask is causal (which they need).

    Children and state-dict names as torch's: ``self_attn``, ``multihead_attn`` (two
    MultiheadAttention), ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``, ``norm3``,
    ``dropout1``, ``dropout2``, ``dropout3``, ``activation`` (as TransformerEncoderLayer's).

    Backward calls the children's backwards in reverse order and sums where an input fans out:
    the residuals, query, key and value of the self-attention, and key and value of the
    cross-attention (both ``memory``). Returns ``(dtgt, dmemory)``, then None for each further
    positional argument. Keeps only that count and the output's Signature: the children keep what
    they need.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, *, backend=None, dtype=None):
        self._build((d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first,
                     bias), ("self_attn", "multihead_attn"), 3, {"backend": backend, "dtype": dtype})

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        n = self._take_positional(2)
        tag = self._tag()
        check_sequence(tag, tgt, self.d_model, self.batch_first, "tgt")
        check_sequence(tag, memory, self.d_model, self.batch_first, "memory")
        if memory.ndim != tgt.ndim:
            raise ValueError(f"{tag} expected memory with tgt's {tgt.ndim} axes, got {shape_str(memory.shape)} "
                             f"for tgt {shape_str(tgt.shape)}")
        own = self._options(tgt_key_padding_mask, tgt_mask, tgt_is_causal, ("tgt_is_causal", "tgt_mask"))
        cross = self._options(memory_key_padding_mask, memory_mask, memory_is_causal,
                              ("memory_is_causal", "memory_mask"))
        h = self._residual(tgt, self.norm1, lambda z: self.dropout1(self.self_attn(z, z, z, **own)[0]))
        g = self._residual(h, self.norm2, lambda z: self.dropout2(self.multihead_attn(z, memory, memory, **cross)[0]))
        return self._keep(n, self._residual(g, self.norm3, lambda z: self._feedforward(z, self.dropout3)))

    def backward(self, dy, input_grad: bool = True):
        n = self._count(dy)
        memory = {}  # the cross-attention's gradient of memory (its key and value)

        def cross_backward(d, _):
            dq, memory["grad"] = self._attention_backward(self.multihead_attn, self.dropout2, d, False)
            return dq

        dg = self._residual_backward(dy, self.norm3, lambda d, _: self._feedforward_backward(d, self.dropout3))
        dh = self._residual_backward(dg, self.norm2, cross_backward)
        dx = self._residual_backward(dh, self.norm1, lambda d, need: self._attention_backward(
            self.self_attn, self.dropout1, d, True, need), input_grad)
        return None if dy is None else self._per_argument(n, (dx, memory["grad"]), input_grad)
