"""Transformer: an encoder stack and a decoder stack, as ``torch.nn.Transformer``."""

from __future__ import annotations

from ... import backends
from .. import init
from .._checks import require_float, shape_str
from ..base import Layer
from ..normalization import LayerNorm
from ...validate import float_dtype, integer, positive_int
from ._common import PositionalLayer, activation_arg, layer_args
from .decoder_layer import TransformerDecoderLayer
from .encoder_layer import TransformerEncoderLayer
from .stacks import TransformerDecoder, TransformerEncoder


class Transformer(PositionalLayer):
    """The encoder-decoder transformer of "Attention Is All You Need", as ``torch.nn.Transformer``::

        memory = encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask)
        y = decoder(tgt, memory, tgt_mask=..., memory_mask=..., tgt_key_padding_mask=...,
                    memory_key_padding_mask=...)

    ``encoder``: a TransformerEncoder of ``num_encoder_layers`` TransformerEncoderLayer and a final
    LayerNorm (or ``custom_encoder``); ``decoder`` likewise (or ``custom_decoder``). State-dict names
    as torch's: ``encoder.layers.0.self_attn.in_proj_weight``, ..., ``encoder.norm.weight``,
    ``decoder.layers.0.multihead_attn.out_proj.weight``, ..., ``decoder.norm.bias``. As torch, every
    parameter with more than one axis (custom stacks' too) is then drawn anew, Xavier-uniform.

    Shapes: ``src (S, N, E)``, ``tgt (T, N, E)`` (``(N, S, E)``, ``(N, T, E)`` with
    ``batch_first``; ``(S, E)``, ``(T, E)`` unbatched) -> ``y`` of ``tgt``'s shape,
    ``E = d_model``. Masks as TransformerEncoderLayer's and TransformerDecoderLayer's;
    :meth:`generate_square_subsequent_mask` makes the causal ``tgt_mask``. The ``*_is_causal``
    flags are torch's hints that the matching mask is causal; None (torch: detect) is False.

    Backward: the decoder's, then the encoder's with the memory's gradient. Returns
    ``(dsrc, dtgt)``, then None for each further positional argument. Keeps only that count.
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, *, backend=None, dtype=None):
        name = type(self).__name__
        layer = layer_args(name, d_model, nhead, dim_feedforward, dropout, layer_norm_eps, batch_first, norm_first,
                           bias)
        self.d_model, self.nhead, self.batch_first = layer[0], layer[1], layer[5]
        activation_arg(name, activation)  # checked here, so that the message names the Transformer
        for what, v in (("custom_encoder", custom_encoder), ("custom_decoder", custom_decoder)):
            if v is not None and not isinstance(v, Layer):
                raise TypeError(f"{name}: {what} must be an xpnet Layer or None, got {type(v).__name__}")
        # the config, as given (a dict: a Layer held in an attribute would be a child)
        self._args = {"d_model": layer[0], "nhead": layer[1],
                      "num_encoder_layers": positive_int(name, "num_encoder_layers", num_encoder_layers),
                      "num_decoder_layers": positive_int(name, "num_decoder_layers", num_decoder_layers),
                      "dim_feedforward": layer[2], "dropout": layer[3], "activation": activation,
                      "custom_encoder": custom_encoder, "custom_decoder": custom_decoder,
                      "layer_norm_eps": layer[4], "batch_first": layer[5], "norm_first": layer[6], "bias": layer[7]}
        placed = {"backend": backend, "dtype": dtype}
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(*layer[:4], activation, *layer[4:], **placed),
                                              num_encoder_layers, self._norm(layer, placed))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(*layer[:4], activation, *layer[4:], **placed),
                                              num_decoder_layers, self._norm(layer, placed))
        for p in self.parameters():  # torch's _reset_parameters
            if p.data.ndim > 1:
                init.xavier_uniform(p)

    @staticmethod
    def _norm(layer, placed):
        return LayerNorm(layer[0], eps=layer[4], bias=layer[7], **placed)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        n = self._take_positional(2)
        tag = self._tag()
        require_float(tag, src, "src")
        require_float(tag, tgt, "tgt")
        axis = 0 if self.batch_first else 1
        if src.ndim == 3 and (tgt.ndim != 3 or src.shape[axis] != tgt.shape[axis]):
            raise ValueError(f"{tag}: the batch size of src and tgt must be equal (axis {axis}), got src "
                             f"{shape_str(src.shape)} and tgt {shape_str(tgt.shape)}")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"{tag}: src and tgt must have d_model ({self.d_model}) features (the last axis), "
                             f"got src {shape_str(src.shape)} and tgt {shape_str(tgt.shape)}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        y = self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                         tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                         tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        self.save_for_backward(n)
        return y

    def backward(self, dy, input_grad: bool = True):
        (n,) = self.saved()
        grads = self.decoder.backward(dy)
        dtgt, dmemory = (None, None) if grads is None else grads
        dsrc = self.encoder.backward(dmemory, input_grad=input_grad)
        return None if dy is None else self._per_argument(n, (dsrc, dtgt), input_grad)

    @staticmethod
    def generate_square_subsequent_mask(sz, backend=None, dtype=None):
        """The causal mask of a sequence of ``sz``: an ``(sz, sz)`` float array, ``-inf`` above the
        diagonal (position i attends to positions j <= i only) and 0 elsewhere, on ``backend``
        (xpnet's analogue of torch's ``device``; default: the current one) in ``dtype`` (default
        float32)."""
        sz = integer("Transformer.generate_square_subsequent_mask", "sz", sz, minimum=0)
        be = backends.get(backend)
        xp, dev = be.xp, be.device
        dt = float_dtype("Transformer.generate_square_subsequent_mask", be, dtype)
        i = xp.arange(sz, device=dev)
        return xp.where(i[None, :] > i[:, None], xp.full((sz, sz), -float("inf"), dtype=dt, device=dev),
                        xp.zeros((sz, sz), dtype=dt, device=dev))

    def config(self):
        args = dict(self._args)
        args["custom_encoder"] = self.encoder if args["custom_encoder"] is not None else None
        args["custom_decoder"] = self.decoder if args["custom_decoder"] is not None else None
        return args

    def _tag(self):
        return f"Transformer(d_model={self.d_model}, nhead={self.nhead})"
