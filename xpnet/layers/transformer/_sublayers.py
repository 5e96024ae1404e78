"""What the encoder and decoder layers share: the checks and the children, the residual
sub-blocks (either norm placement) and their backwards, the feedforward block, the backward of
an attention sub-block (summing where an input fans out), the config and the repr."""

from __future__ import annotations

from ... import backends
from ..attention import MultiheadAttention
from ..base import Layer, Signature
from ..dropout import Dropout
from ..linear import Linear
from ..normalization import LayerNorm
from ._common import PositionalLayer, activation_arg, add, causal_flag, layer_args


class Sublayers(PositionalLayer):
    """The base of TransformerEncoderLayer and TransformerDecoderLayer."""

    #: constructor arguments that may be a layer (checkpoints walk it as a child)
    _layer_arguments = ("activation",)

    def _build(self, args, attentions, blocks, placed):
        """Check and keep the constructor's ``args`` (d_model, ..., bias, in torch's order), then
        make the children in torch's order (the state dict's): the MultiheadAttention named
        ``attentions``, ``linear1``, ``dropout``, ``linear2``, ``norm1..blocks``,
        ``dropout1..blocks``, ``activation``."""
        name = type(self).__name__
        d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first, bias = args
        (self.d_model, self.nhead, self.dim_feedforward, p, self.layer_norm_eps, self.batch_first, self.norm_first,
         self.bias) = layer_args(name, d_model, nhead, dim_feedforward, dropout, layer_norm_eps, batch_first,
                                 norm_first, bias)
        act, spec = activation_arg(name, activation)
        # the config's value: "relu"/"gelu" as given (a Layer is the child itself; kept as no attribute,
        # which would make it a second child)
        self._activation_name = spec if isinstance(spec, str) else None
        e = self.d_model
        for child in attentions:
            setattr(self, child, MultiheadAttention(e, self.nhead, dropout=p, bias=self.bias,
                                                    batch_first=self.batch_first, **placed))
        self.linear1 = Linear(e, self.dim_feedforward, bias=self.bias, **placed)
        self.dropout = Dropout(p)
        self.linear2 = Linear(self.dim_feedforward, e, bias=self.bias, **placed)
        for i in range(1, blocks + 1):
            setattr(self, f"norm{i}", LayerNorm(e, eps=self.layer_norm_eps, bias=self.bias, **placed))
        for i in range(1, blocks + 1):
            setattr(self, f"dropout{i}", Dropout(p))
        self.activation = act

    def _options(self, key_padding_mask, attn_mask, is_causal, names):
        """An attention's keyword arguments, as torch's layers pass them (``need_weights=False``);
        ``names``: the forward's names of the causal flag and of the mask it describes."""
        return {"key_padding_mask": key_padding_mask, "need_weights": False, "attn_mask": attn_mask,
                "is_causal": causal_flag(self._tag(), names[0], is_causal, attn_mask, names[1])}

    def _keep(self, n, y):
        """Save the count of positional arguments and what ``dy`` must be; returns ``y``."""
        self.save_for_backward(n, Signature(y))  # dy is checked before any reshape of it
        return y

    def _count(self, dy):
        """The count :meth:`_keep` saved, after checking ``dy`` (when given)."""
        n, like = self.saved()
        if dy is not None:
            self.check_grad(dy, like)
        return n

    def _residual(self, x, norm, body):
        """One sub-block: ``x + body(norm(x))`` with ``norm_first``, else ``norm(x + body(x))``."""
        return x + body(norm(x)) if self.norm_first else norm(x + body(x))

    def _residual_backward(self, dy, norm, body_backward, input_grad=True):
        """The gradient of :meth:`_residual`'s input: the residual's ``dy`` plus the body's,
        ``body_backward(d, need_input)`` giving the gradient of the body's input from ``d``."""
        if self.norm_first:
            return add(dy, norm.backward(body_backward(dy, True), input_grad=input_grad))
        d = norm.backward(dy)
        return add(d, body_backward(d, input_grad))

    def _feedforward(self, x, last_dropout):
        """``last_dropout(linear2(dropout(activation(linear1(x)))))``, on the positions as rows:
        one GEMM per Linear (numpy runs a 3-D ``x @ W.T`` as one GEMM per batch entry, measured
        ~25% slower at (64, 32, 128) x (128, 512))."""
        xp = backends.namespace_of(x)
        rows = xp.reshape(x, (-1, self.d_model))
        y = last_dropout(self.linear2(self.dropout(self.activation(self.linear1(rows)))))
        return xp.reshape(y, tuple(x.shape))

    def _feedforward_backward(self, dy, last_dropout):
        xp = None if dy is None else backends.namespace_of(dy)
        d = None if dy is None else xp.reshape(dy, (-1, self.d_model))
        d = self.linear1.backward(self.activation.backward(self.dropout.backward(
            self.linear2.backward(last_dropout.backward(d)))))
        return None if dy is None else xp.reshape(d, tuple(dy.shape))

    @staticmethod
    def _attention_backward(attn, dropout, dy, self_attention, need_input=True):
        """The gradient of ``dropout(attn(q, k, v)[0])``: ``dq + dk + dv`` for self-attention
        (one input fans out three ways), ``(dq, dk + dv)`` for attention to a memory (key and
        value are the one memory); None (or a pair of None) where none is needed or given."""
        grads = attn.backward(dropout.backward(dy), None, input_grad=need_input)
        if grads is None:
            return None if self_attention else (None, None)
        dq, dk, dv = grads[:3]
        return add(dq, dk, dv) if self_attention else (dq, add(dk, dv))

    def config(self):
        act = self._activation_name if self._activation_name is not None else self.activation
        return {"d_model": self.d_model, "nhead": self.nhead, "dim_feedforward": self.dim_feedforward,
                "dropout": self.dropout.p, "activation": act, "layer_norm_eps": self.layer_norm_eps,
                "batch_first": self.batch_first, "norm_first": self.norm_first, "bias": self.bias}

    def _tag(self):
        return f"{type(self).__name__}(d_model={self.d_model}, nhead={self.nhead})"

    def __repr__(self):
        head = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if not isinstance(v, Layer))
        return Layer.__repr__(self).replace("(\n", f"(\n  {head}\n", 1)  # the arguments, then the children
