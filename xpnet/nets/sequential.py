"""Sequential: layers applied in order; backward runs them in reverse."""

from __future__ import annotations

from ..layers.base import Layer, Parameter, Signature


class Sequential(Layer):
    """``y = layers[-1](...layers[1](layers[0](x)))``.

    Parameters are named by position as in ``torch.nn.Sequential`` (``0.weight``,
    ``2.bias``), so state dicts move between the two unchanged. A layer may appear more
    than once (its weights are then shared, and it gets one backward per use).

    ``backward(dy)`` returns ``dL/dx``. In a training loop pass ``input_grad=False``:
    the data needs no gradient, so the layers before the first trainable parameter get
    no gradient (``None``: they only drop what forward kept) and the first layer with one
    does not compute its ``dx`` (for an MLP that saves about a quarter of the backward
    FLOPs, as autograd does; with a frozen backbone, all of the backbone's backward).
    """

    def __init__(self, *layers):
        self.layers = []
        for layer in layers:
            self.append(layer)

    def append(self, layer):
        """Add ``layer`` at the end; returns self."""
        if not isinstance(layer, Layer) or _is_loss(layer):
            raise TypeError(
                f"Sequential expected Layer instances, got {type(layer).__name__} at position {len(self.layers)}"
                + ("; losses are applied outside the net" if _is_loss(layer) else "")
            )
        self.layers.append(layer)
        return self

    def forward(self, x):
        layers = self.layers
        if not layers:  # the identity: it checks dy itself (otherwise the last layer does)
            self.save_for_backward(Signature(x))
        for layer in layers:
            x = layer.forward(x)  # what __call__ does, one Python call fewer per layer
        return x

    def backward(self, dy, input_grad: bool = True):
        layers = self.layers
        if not layers:
            (out,) = self.saved()
            if dy is None or not input_grad:
                return None
            self.check_grad(dy, out)
            return dy
        first = len(layers) if input_grad else self._first_trainable()
        for i in range(len(layers) - 1, -1, -1):
            # layer i needs its input's gradient when a trainable layer comes before it
            dy = layers[i].backward(dy, input_grad=input_grad or i > first)
        return dy

    def _first_trainable(self):
        """The index of the first layer with a trainable parameter (``len`` when none)."""
        for i, layer in enumerate(self.layers):
            if _trainable(layer):
                return i
        return len(self.layers)

    def config(self):
        return {"layers": list(self.layers)}

    def set_child(self, name, layer):
        self.layers[int(name)] = layer

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


def _trainable(layer):
    """Whether ``layer`` or a layer below it holds a trainable parameter (looked up every backward,
    since parameters may be frozen at any time: direct attribute scans, no generators)."""
    for v in vars(layer).values():
        if isinstance(v, Parameter) and v.requires_grad:
            return True
    return any(_trainable(child) for _, child in layer.named_children())


def _is_loss(layer):
    from ..layers.losses import Loss

    return isinstance(layer, Loss)
