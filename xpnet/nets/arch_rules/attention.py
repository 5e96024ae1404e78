"""Checkpoint architecture rules of the attention layers: MultiheadAttention (the packed
``in_proj_weight (3E, E)`` when ``kdim == vdim == embed_dim``, else ``q_proj_weight``,
``k_proj_weight``, ``v_proj_weight``; ``in_proj_bias (3E,)``; ``bias_k``, ``bias_v (1, 1, E)``
with ``add_bias_kv``; ``out_proj`` a Linear(E, E))."""

from __future__ import annotations


def _multihead(a):
    from ...validate import flag, positive_int
    from ..checkpoint_arch import FLOAT

    name = "MultiheadAttention"
    e = positive_int(name, "embed_dim", a["embed_dim"])
    h = positive_int(name, "num_heads", a["num_heads"])
    if e % h:
        raise ValueError(f"{name}: embed_dim must be divisible by num_heads, got embed_dim={e} and num_heads={h}")
    kdim = e if a["kdim"] is None else positive_int(name, "kdim", a["kdim"])
    vdim = e if a["vdim"] is None else positive_int(name, "vdim", a["vdim"])
    bias = flag(name, "bias", a["bias"])
    if kdim == e and vdim == e:
        out = [("in_proj_weight", (3 * e, e), True, FLOAT)]
    else:
        out = [("q_proj_weight", (e, e), True, FLOAT), ("k_proj_weight", (e, kdim), True, FLOAT),
               ("v_proj_weight", (e, vdim), True, FLOAT)]
    if bias:
        out.append(("in_proj_bias", (3 * e,), True, FLOAT))
    if flag(name, "add_bias_kv", a["add_bias_kv"]):
        out += [("bias_k", (1, 1, e), True, FLOAT), ("bias_v", (1, 1, e), True, FLOAT)]
    out += [("out_proj.weight", (e, e), True, FLOAT)] + ([("out_proj.bias", (e,), True, FLOAT)] if bias else [])
    return out


def rules(L):
    return {L.MultiheadAttention: _multihead}
