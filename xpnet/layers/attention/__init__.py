"""Attention, as ``torch.nn`` and ``torch.nn.functional`` define it.

- :mod:`.sdpa`: :func:`scaled_dot_product_attention` (torch's functional), its forward/backward
  pair :func:`sdpa_forward` / :func:`sdpa_backward` (the one place the attention maths lives),
  and :class:`ScaledDotProductAttention`, the function as a layer with a backward;
- :mod:`.multihead`: :class:`MultiheadAttention`;
- :mod:`._masks`: the masks' checks, the causal mask, torch's float form of a boolean mask.
"""

from .multihead import MultiheadAttention
from .sdpa import ScaledDotProductAttention, scaled_dot_product_attention, sdpa_backward, sdpa_forward

__all__ = ["MultiheadAttention", "ScaledDotProductAttention", "scaled_dot_product_attention", "sdpa_backward",
           "sdpa_forward"]
