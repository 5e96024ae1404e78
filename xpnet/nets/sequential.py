"""Sequential: layers applied in order; backward runs them in reverse."""

from __future__ import annotations

from ..layers.base import Layer


class Sequential(Layer):
    """``y = layers[-1](...layers[1](layers[0](x)))``.

    Parameters are named by position as in ``torch.nn.Sequential`` (``0.weight``,
    ``2.bias``), so state dicts move between the two unchanged.

    ``backward(dy)`` returns ``dL/dx``. In a training loop pass ``input_grad=False``:
    the data needs no gradient, so the layers before the first parameter are skipped
    and the first parametrised layer does not compute its ``dx`` (for an MLP that
    saves about a quarter of the backward FLOPs, as autograd does).
    """

    def __init__(self, *layers):
        self.layers = []
        for layer in layers:
            self.append(layer)

    def append(self, layer):
        """Add ``layer`` at the end; returns self."""
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential expected Layer instances, got {type(layer).__name__} at position {len(self.layers)}"
                + ("; losses are applied outside the net" if hasattr(layer, "reduction") else "")
            )
        self.layers.append(layer)
        self._first_trainable = next(
            (i for i, l in enumerate(self.layers) if next(iter(l.named_parameters()), None) is not None), None
        )
        return self

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy, input_grad: bool = True):
        layers = self.layers
        if input_grad:
            for layer in reversed(layers):
                dy = layer.backward(dy)
            return dy
        first = self._first_trainable
        if first is None:
            return None
        for i in range(len(layers) - 1, first, -1):
            dy = layers[i].backward(dy)
        head = layers[first]
        if getattr(head, "_input_grad_optional", False):
            head.backward(dy, input_grad=False)
        else:
            head.backward(dy)
        return None

    def named_children(self):
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(*self.layers[i])
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)
