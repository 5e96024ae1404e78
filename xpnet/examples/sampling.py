"""Autoregressive generation for the language models of :mod:`xpnet.examples`: greedy decoding,
temperature and top-k sampling, on the device.

One step turns the last position's logits ``z (N, V)`` into the next tokens ``(N, 1)``:

- greedy (``do_sample=False``): ``argmax_v z[n, v]`` (the temperature changes nothing);
- sampling: ``z / temperature`` (below 1 sharper, above 1 flatter), with ``top_k`` every
  logit below the k-th largest of its row set to ``-inf``, then one draw from
  ``softmax(z)`` per row: the first ``v`` with ``cumsum(p)[v] > u``, ``u ~ U[0, 1)`` from the
  backend's generator (``generator=``, or a fresh one seeded with ``seed=``, else the backend's
  own), so a seeded run draws the same tokens every time.
"""

from __future__ import annotations

import math

from .. import backends
from ..layers.base import Layer
from ..nets.evaluate import eval_mode
from ..validate import integer, positive_real

__all__ = ["LanguageModel", "generate", "next_tokens"]


class LanguageModel(Layer):
    """The base of :mod:`xpnet.examples`' language models: ``forward(idx)``, token ids ``(N, T)``
    -> logits ``(N, T, vocab_size)``, and :meth:`generate`. A subclass gives ``_stepper()``, the
    ``step(seq, new, first)`` of :func:`generate` for one call, and ``_repr_fields``."""

    _repr_fields: tuple = ()

    def _stepper(self):
        raise NotImplementedError

    def _check_tokens(self, idx):
        """Raise unless ``idx`` is an integer array of token ids ``(N, T)``; returns ``T``."""
        name = type(self).__name__
        if not _is_array(idx):
            raise TypeError(f"{name}: expected an integer array of token ids (N, T), got {type(idx).__name__}")
        be = backends.backend_of(idx)
        if idx.ndim != 2 or idx.dtype not in be.int_dtypes:
            raise TypeError(f"{name}: expected integer token ids (N, T), got {be.dtype_name(idx.dtype)} of shape "
                            f"{tuple(idx.shape)}")
        return int(idx.shape[1])

    def generate(self, idx, max_new_tokens, temperature=1.0, do_sample=False, top_k=None, seed=None, generator=None):
        """``idx (N, T0)`` followed by ``max_new_tokens`` tokens, each chosen from the next-token
        logits: greedily (``do_sample=False``), or drawn from ``softmax(logits / temperature)``
        restricted to the ``top_k`` largest, from ``generator`` or a new one seeded with ``seed``
        (see the module doc). Runs in eval mode (dropout off) under ``no_grad``."""
        return generate(self, self._stepper(), idx, max_new_tokens, temperature, do_sample, top_k, seed, generator,
                        self.vocab_size, f"{type(self).__name__}.generate")

    def extra_repr(self):
        return ", ".join(f"{k}={getattr(self, k)}" for k in self._repr_fields)


def generate(net, step, idx, max_new_tokens, temperature=1.0, do_sample=False, top_k=None, seed=None,
             generator=None, vocab_size=None, where="generate"):
    """``idx (N, T0)`` int64 followed by ``max_new_tokens`` generated tokens: ``(N, T0 +
    max_new_tokens)``. ``step(seq, new, first)`` returns the logits ``(N, V)`` of the token that
    follows ``seq``, the sequence so far; ``new`` holds its tokens not seen by the previous call
    (all of ``idx`` on the ``first`` call, then the one just chosen), for a model that carries a
    state from call to call. Runs ``net`` in eval mode under ``no_grad``."""
    be = backends.backend_of(idx) if _is_array(idx) else None
    if be is None:
        raise TypeError(f"{where}: idx must be an int64 array (N, T) of token ids, got {type(idx).__name__}")
    if idx.ndim != 2 or idx.dtype not in be.int_dtypes or int(idx.shape[1]) == 0:
        raise ValueError(f"{where}: idx must be an integer array (N, T) with T >= 1 tokens, got shape "
                         f"{tuple(idx.shape)} of dtype {be.dtype_name(idx.dtype)}")
    n = integer(where, "max_new_tokens", max_new_tokens, minimum=0)
    options = _options(where, be, temperature, do_sample, top_k, seed, generator, vocab_size)
    xp = be.xp
    out = xp.astype(idx, xp.int64)
    with eval_mode(net):
        new = out
        for i in range(n):
            nxt = next_tokens(step(out, new, i == 0), *options)
            out = xp.concat((out, nxt), axis=1)
            new = nxt
    return out


def next_tokens(logits, temperature=1.0, do_sample=False, top_k=None, generator=None):
    """The next tokens ``(N, 1)`` int64 from the last position's logits ``(N, V)`` (see the module doc)."""
    be = backends.backend_of(logits)
    xp = be.xp
    if not do_sample:
        return xp.astype(xp.argmax(logits, axis=1, keepdims=True), xp.int64)
    z = logits / temperature if temperature != 1.0 else logits
    V = int(z.shape[1])
    if top_k is not None and top_k < V:
        kth = xp.sort(z, axis=1)[:, V - top_k: V - top_k + 1]  # the k-th largest of each row
        z = xp.where(z < kth, -math.inf, z)
    z = z - xp.max(z, axis=1, keepdims=True)
    p = xp.exp(z)
    cdf = xp.cumulative_sum(p, axis=1)
    g = generator if generator is not None else be.rng
    u = g.uniform((int(z.shape[0]), 1), dtype=z.dtype, device=be.device) * cdf[:, -1:]
    chosen = xp.sum(xp.astype(cdf <= u, xp.int64), axis=1, keepdims=True)
    return xp.minimum(chosen, V - 1)  # u * total rounding up to the total: the last token


def _options(where, be, temperature, do_sample, top_k, seed, generator, vocab_size):
    temperature = positive_real(where, "temperature", temperature)
    if not isinstance(do_sample, bool):
        raise ValueError(f"{where}: do_sample must be True or False, got {do_sample!r}")
    if top_k is not None:
        top_k = integer(where, "top_k", top_k, minimum=1)
        if vocab_size is not None and top_k > vocab_size:
            raise ValueError(f"{where}: top_k={top_k} exceeds the vocabulary of {vocab_size} tokens")
    if seed is not None and generator is not None:
        raise ValueError(f"{where}: give seed or generator, not both")
    if seed is not None:
        generator = type(be.rng)(be, integer(where, "seed", seed, minimum=0))
    elif generator is not None and not isinstance(generator, backends.Generator):
        raise TypeError(f"{where}: generator must be an xpnet.backends.Generator, got {type(generator).__name__}")
    return temperature, do_sample, top_k, generator


def _is_array(x):
    try:
        backends.backend_of(x)
    except TypeError:
        return False
    return True
