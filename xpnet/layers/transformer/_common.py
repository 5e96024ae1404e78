"""What the transformer layers share: the count of positional arguments a forward was called
with (backward returns one gradient per positional argument), the activation argument, the
input checks, and sums of gradients that may be missing."""

from __future__ import annotations

from ... import backends
from ...validate import choice, flag, positive_int, positive_real, probability
from .._checks import require_float, shape_str
from ..base import Layer

#: what torch's ``activation="relu"`` / ``"gelu"`` strings are in xpnet: the layer classes' names
ACTIVATIONS = ("relu", "gelu")


class PositionalLayer(Layer):
    """A layer whose backward returns one gradient per POSITIONAL argument of the matching
    forward call (``layer(src)`` -> ``dsrc``; ``layer(src, mask)`` -> ``(dsrc, None)``), as the
    layer contract has it: ``__call__`` notes how many there were, forward keeps the count."""

    def __call__(self, *inputs, **kwargs):
        self.__dict__["_positional"] = len(inputs)
        return self.forward(*inputs, **kwargs)

    def _take_positional(self, least: int) -> int:
        """The count ``__call__`` noted (``least`` when forward was called directly)."""
        return max(self.__dict__.pop("_positional", least), least)

    @staticmethod
    def _per_argument(n, grads, input_grad):
        """``grads`` (the differentiable inputs' gradients, in order) as backward returns them for
        a call with ``n`` positional arguments: the one array, or a tuple padded with None."""
        if not input_grad:
            return None
        if n == 1:
            return grads[0]
        return tuple(grads) + (None,) * (n - len(grads))


def add(*grads):
    """The sum of the gradients that are not None (None when all are)."""
    total = None
    for g in grads:
        if g is not None:
            total = g if total is None else total + g
    return total


def activation_arg(owner, activation):
    """``(layer, config value)`` for torch's ``activation`` argument: ``"relu"``/``"gelu"`` make
    :class:`~xpnet.layers.ReLU`/:class:`~xpnet.layers.GELU` (and stay strings in the config), an
    xpnet Layer (xpnet's analogue of torch's callable: it needs a backward) is used as given;
    torch's own ``F.relu`` and ``F.gelu`` are taken for the strings."""
    from .. import activations, activations_smooth

    if isinstance(activation, Layer):
        return activation, activation
    if callable(activation) and (getattr(activation, "__module__", None) or "").startswith("torch"):
        # torch's own F.relu / F.gelu (what a torch user passes): the strings
        F = backends.torch_module().nn.functional
        activation = next((name for name in ACTIVATIONS if activation is getattr(F, name)), activation)
    if isinstance(activation, str):
        choice(owner, "activation", activation, ACTIVATIONS)
        return (activations.ReLU() if activation == "relu" else activations_smooth.GELU()), activation
    raise TypeError(f"{owner}: activation must be 'relu', 'gelu' or an xpnet Layer (a function has no backward), "
                    f"got {type(activation).__name__}")


def layer_args(owner, d_model, nhead, dim_feedforward, dropout, layer_norm_eps, batch_first, norm_first, bias):
    """The checked scalar arguments of an encoder or decoder layer, in that order."""
    d_model = positive_int(owner, "d_model", d_model)
    nhead = positive_int(owner, "nhead", nhead)
    if d_model % nhead:
        raise ValueError(f"{owner}: d_model ({d_model}) must be divisible by nhead ({nhead})")
    return (d_model, nhead, positive_int(owner, "dim_feedforward", dim_feedforward),
            probability(owner, "dropout", dropout), positive_real(owner, "layer_norm_eps", layer_norm_eps),
            flag(owner, "batch_first", batch_first), flag(owner, "norm_first", norm_first), flag(owner, "bias", bias))


def check_sequence(tag, x, d_model, batch_first, what):
    """``x`` must be a float ``(S, E)`` (unbatched) or ``(S, N, E)`` / ``(N, S, E)`` array with
    ``E = d_model``; returns its backend."""
    be = require_float(tag, x, what)
    if x.ndim not in (2, 3) or x.shape[-1] != d_model:
        batched = f"(N, S, {d_model})" if batch_first else f"(S, N, {d_model})"
        raise ValueError(f"{tag} expected {what} of shape (S, {d_model}) or {batched}, got {shape_str(x.shape)}")
    return be


def causal_flag(tag, name, value, mask, mask_name):
    """torch's ``is_causal`` hint (None: False, as torch's detection only picks a faster path
    to the same result); True needs the mask it describes, as torch requires."""
    if value is None:
        return False
    flag(tag, name, value)
    if value and mask is None:
        raise ValueError(f"{tag}: {name}=True is a hint that {mask_name} is the causal mask, and needs that mask; "
                         f"make it with Transformer.generate_square_subsequent_mask(S)")
    return value
