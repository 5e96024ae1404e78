"""A tiny GPT (minGPT's, written against xpnet's layers), and its training on sorting.

    python -m xpnet.examples.gpt [--backend numpy] [--epochs 40] [--seed 0]

trains it on minGPT's sort task (6 digits of 0-2; the held-out problems are never trained on)
and prints the exact-sequence accuracy of greedy decoding on the held-out problems and the time.

The model, for tokens ``idx (N, T)``, ``T <= block_size``::

    x = drop(wte(idx) + wpe(arange(T)))              # token and position embeddings (N, T, E)
    x = block_l(x, causal mask)  for l = 1..n_layer  # pre-norm transformer blocks
    logits = head(ln_f(x))                           # (N, T, vocab_size)

Each block is minGPT's ``x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`` with a GELU MLP of width
``4 E``: ``xn.TransformerEncoderLayer(E, n_head, 4 E, dropout, activation="gelu",
batch_first=True, norm_first=True)``, under the causal mask (position ``t`` attends to
positions ``<= t`` only), so ``logits[:, t]`` depends on ``idx[:, :t + 1]`` alone.
``tie_weights=True`` makes the head's weight the token embedding's (``Layer.tie``: one
Parameter, both uses adding into its gradient). The weights start as minGPT's: every linear
and embedding weight ~ N(0, 0.02), biases 0, and the projections back into the residual stream
(each block's ``self_attn.out_proj`` and ``linear2``) ~ N(0, 0.02 / sqrt(2 n_layer)).

Backward calls the children in reverse: the head, ``ln_f``, the blocks last to first, the
dropout; the position embedding gets the gradient summed over the batch. The token ids have no
gradient: ``backward`` returns None.
"""

from __future__ import annotations

import math
import sys

from .. import backends
from ..layers import Dropout, Embedding, LayerNorm, Linear
from ..layers.transformer import TransformerEncoderLayer
from ..nets.spec import register
from ..validate import flag, positive_int, probability
from . import sampling

__all__ = ["GPT"]


@register
class GPT(sampling.LanguageModel):
    """A decoder-only transformer language model (see the module doc). ``forward(idx)``: int64
    token ids ``(N, T)`` -> logits ``(N, T, vocab_size)``; :meth:`generate` continues them."""

    _config_fields = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "tie_weights")
    _repr_fields = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")

    def __init__(self, vocab_size, block_size, n_layer=3, n_head=3, n_embd=48, dropout=0.0, tie_weights=False, *,
                 backend=None, dtype=None):
        fn = "GPT"
        self.vocab_size = positive_int(fn, "vocab_size", vocab_size)
        self.block_size = positive_int(fn, "block_size", block_size)
        self.n_layer = positive_int(fn, "n_layer", n_layer)
        self.n_head = positive_int(fn, "n_head", n_head)
        self.n_embd = positive_int(fn, "n_embd", n_embd)
        if self.n_embd % self.n_head:
            raise ValueError(f"GPT: n_embd must be divisible by n_head (each head takes n_embd / n_head "
                             f"features), got n_embd={n_embd}, n_head={n_head}")
        self.dropout = probability(fn, "dropout", dropout)
        self.tie_weights = flag(fn, "tie_weights", tie_weights)
        be = backends.get(backend)
        place = {"backend": be, "dtype": dtype}
        E = self.n_embd
        self.wte = Embedding(self.vocab_size, E, **place)
        self.wpe = Embedding(self.block_size, E, **place)
        self.drop = Dropout(self.dropout)
        self.blocks = [TransformerEncoderLayer(E, self.n_head, 4 * E, self.dropout, activation="gelu",
                                               batch_first=True, norm_first=True, **place)
                       for _ in range(self.n_layer)]
        self.ln_f = LayerNorm(E, **place)
        self.head = Linear(E, self.vocab_size, bias=False, **place)
        self._init_weights(be)
        if self.tie_weights:
            self.tie("wte.weight", "head.weight")
        self._masks = {}

    def _init_weights(self, be):
        """minGPT's initialisation (see the module doc); the LayerNorms keep weight 1, bias 0."""
        xp = be.xp
        deep = 0.02 / math.sqrt(2 * self.n_layer)
        for name, p in self.named_parameters():
            if name.startswith(("ln_f.",)) or ".norm" in name:
                continue
            if name.endswith("bias"):
                p.data = xp.zeros(p.shape, dtype=p.dtype, device=be.device)
            else:
                std = deep if name.endswith(("out_proj.weight", "linear2.weight")) else 0.02
                p.data = be.rng.normal(p.shape, std=std, dtype=p.dtype, device=be.device)

    def _causal_mask(self, T, be):
        """``(T, T)`` bool, True above the diagonal: the future positions a position may not see
        (torch's ``attn_mask`` convention); one per length and device, made once."""
        key = (T, be.label)
        mask = self._masks.get(key)
        if mask is None:
            xp = be.xp
            i = xp.arange(T, device=be.device)
            mask = self._masks[key] = i[None, :] > i[:, None]
        return mask

    def forward(self, idx):
        be = backends.backend_of(self.wte.weight.data)
        T = self._check_tokens(idx)
        if not 1 <= T <= self.block_size:
            raise ValueError(f"GPT: the sequence has {T} tokens; the model takes 1 to block_size={self.block_size}")
        xp = be.xp
        pos = xp.arange(T, dtype=xp.int64, device=be.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        mask = self._causal_mask(T, be)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        return self.head(self.ln_f(x))

    def backward(self, dlogits, input_grad: bool = True):
        dx = self.ln_f.backward(self.head.backward(dlogits))
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        dx = self.drop.backward(dx)
        self.wte.backward(dx)
        self.wpe.backward(None if dx is None else backends.namespace_of(dx).sum(dx, axis=0))
        return None  # token ids have no gradient

    def _stepper(self):
        """The next-token logits from the last ``block_size`` tokens (no state: each call reads
        the context anew)."""
        B = self.block_size

        def step(seq, new, first):
            T = int(seq.shape[1])
            return self(seq[:, T - B:] if T > B else seq)[:, -1, :]  # the standard has no out-of-range slices

        return step


def main(argv=None):
    from .seq_recipes import example_main

    return example_main("gpt", "gpt", "sort", argv)


if __name__ == "__main__":
    sys.exit(main())
