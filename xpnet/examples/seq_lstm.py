"""An LSTM next-token model, and its training on reversing digit sequences.

    python -m xpnet.examples.seq_lstm [--backend numpy] [--epochs N] [--seed 0]

trains it on :func:`xpnet.data.reverse_digits` and prints the exact-sequence accuracy of greedy
decoding on the held-out problems and the time.

The model, for tokens ``idx (N, T)``::

    e = embed(idx)                        # (N, T, embedding_dim)
    h, (h_n, c_n) = lstm(e)               # xn.LSTM(batch_first=True): (N, T, hidden_size)
    logits = head(h)                      # (N, T, vocab_size)

``logits[:, t]`` depends on ``idx[:, :t + 1]`` alone (the LSTM reads left to right), so it
trains on the same ``(X, Y)`` pairs as :class:`~xpnet.examples.gpt.GPT`. Backward calls the
children in reverse (head, LSTM, embedding); the token ids have no gradient (None).
:meth:`SeqLSTM.generate` carries the LSTM's state ``(h, c)`` from token to token, so each new
token costs one step, whatever the length so far.
"""

from __future__ import annotations

import sys

from ..layers import Embedding, Linear
from ..layers.recurrent import LSTM
from ..nets.spec import register
from ..validate import integer, positive_int, probability
from . import sampling

__all__ = ["SeqLSTM"]


@register
class SeqLSTM(sampling.LanguageModel):
    """``Embedding(vocab_size, embedding_dim) -> LSTM(embedding_dim, hidden_size, num_layers,
    batch_first=True, dropout) -> Linear(hidden_size, vocab_size)``. ``forward(idx)``: int64
    ``(N, T)`` -> logits ``(N, T, vocab_size)``."""

    _config_fields = ("vocab_size", "embedding_dim", "hidden_size", "num_layers", "dropout")
    _repr_fields = _config_fields[:4]

    def __init__(self, vocab_size, embedding_dim=32, hidden_size=128, num_layers=1, dropout=0.0, *, backend=None,
                 dtype=None):
        fn = "SeqLSTM"
        self.vocab_size = positive_int(fn, "vocab_size", vocab_size)
        self.embedding_dim = positive_int(fn, "embedding_dim", embedding_dim)
        self.hidden_size = positive_int(fn, "hidden_size", hidden_size)
        self.num_layers = integer(fn, "num_layers", num_layers, minimum=1)
        self.dropout = probability(fn, "dropout", dropout)
        place = {"backend": backend, "dtype": dtype}
        self.embed = Embedding(self.vocab_size, self.embedding_dim, **place)
        self.lstm = LSTM(self.embedding_dim, self.hidden_size, self.num_layers, batch_first=True,
                         dropout=self.dropout, **place)
        self.head = Linear(self.hidden_size, self.vocab_size, **place)

    def forward(self, idx):
        self._check_tokens(idx)
        out, _ = self.lstm(self.embed(idx))
        return self.head(out)

    def backward(self, dlogits, input_grad: bool = True):
        dh = self.head.backward(dlogits)
        self.embed.backward(self.lstm.backward(dh, None))
        return None  # token ids have no gradient

    def _stepper(self):
        """The next-token logits, the LSTM's state ``(h, c)`` carried from call to call: each
        new token costs one step."""
        state = [None]

        def step(seq, new, first):
            out, state[0] = self.lstm(self.embed(new), state[0])
            return self.head(out[:, -1, :])

        return step


def main(argv=None):
    from .seq_recipes import example_main

    return example_main("seq_lstm", "lstm", "reverse", argv)


if __name__ == "__main__":
    sys.exit(main())
