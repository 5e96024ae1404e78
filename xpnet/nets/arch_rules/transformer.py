"""Checkpoint architecture rules of the transformer layers: TransformerEncoderLayer and
TransformerDecoderLayer, whose arrays are their children's (``self_attn.`` and, for the
decoder, ``multihead_attn.``: MultiheadAttention's; ``linear1.``, ``linear2.``: Linear's;
``norm1.``, ``norm2.`` (``norm3.``): LayerNorm's), predicted by those children's own rules.

The rules take a string activation (``"relu"``, ``"gelu"``: no arrays); a layer given as the
activation, and TransformerEncoder, TransformerDecoder and Transformer (which take layers as
arguments), are walked as composites by the loader, which compares them once built.
"""

from __future__ import annotations


def _layer(cls, attentions, norms):
    """The rule of an encoder (one attention, two norms) or decoder layer (two, three)."""
    def rule(a):
        from ... import layers as L
        from ...layers.transformer._common import activation_arg, layer_args
        from ..checkpoint_arch import rule_for

        name = cls.__name__
        e, h, f, _, eps, _, _, bias = layer_args(name, a["d_model"], a["nhead"], a["dim_feedforward"], a["dropout"],
                                                 a["layer_norm_eps"], a["batch_first"], a["norm_first"], a["bias"])
        activation_arg(name, a["activation"])
        attention = rule_for(L.MultiheadAttention)({"embed_dim": e, "num_heads": h, "bias": bias, "add_bias_kv": False,
                                                    "add_zero_attn": False, "kdim": None, "vdim": None})
        linear, norm = rule_for(L.Linear), rule_for(L.LayerNorm)
        parts = [(child, attention) for child in attentions]
        parts += [("linear1", linear({"in_features": e, "out_features": f, "bias": bias})),
                  ("linear2", linear({"in_features": f, "out_features": e, "bias": bias}))]
        norm_arrays = norm({"normalized_shape": e, "eps": eps, "elementwise_affine": True, "bias": bias})
        parts += [(child, norm_arrays) for child in norms]
        return [(f"{child}.{attr}", shape, is_param, kind) for child, arrays in parts
                for attr, shape, is_param, kind in arrays]
    return rule


def rules(L):
    return {L.TransformerEncoderLayer: _layer(L.TransformerEncoderLayer, ("self_attn",), ("norm1", "norm2")),
            L.TransformerDecoderLayer: _layer(L.TransformerDecoderLayer, ("self_attn", "multihead_attn"),
                                              ("norm1", "norm2", "norm3"))}
