"""What the plots share: the lazy matplotlib import, atomic PNG writes, host copies of
arrays of any backend, evaluation mode, and predicted labels from logits."""

from __future__ import annotations

import os
import pathlib
import types

from .. import backends
from ..layers.base import Layer
from ..nets.evaluate import eval_mode  # noqa: F401  (one inference mode, shared with evaluate/predict)

INSTALL_HINT = "xpnet.plot needs matplotlib: pip install 'xpnet[plot]'"

#: every figure is drawn at this resolution; sizes below are in pixels and are multiples of
#: 25 px, so that size / DPI is an exact binary fraction and the PNG has exactly that size
#: (Agg truncates the pixel size, and 0.29 * 100 is 28.999...)
DPI = 100


def mpl():
    """The matplotlib pieces the plots use, imported on first use (matplotlib is an optional extra).

    ``Figure`` plus the Agg canvas, never pyplot: no global figure registry, no window,
    safe in threads and under any interactive backend the user has selected.
    """
    try:
        # the package first: a missing (or blocked, sys.modules entry None) matplotlib fails
        # here even where its submodules are already cached
        import matplotlib
        import matplotlib.ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return types.SimpleNamespace(
        colormaps=matplotlib.colormaps, ticker=matplotlib.ticker, Figure=Figure, Canvas=FigureCanvasAgg
    )


def figure(m, width_px, height_px):
    """A new Figure of ``width_px x height_px`` pixels with constrained layout."""
    return m.Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")


def save(m, fig, path) -> pathlib.Path:
    """Write ``fig`` as a PNG to ``path`` atomically and return ``path`` as a ``pathlib.Path``.

    The PNG goes to a temporary file beside ``path`` that replaces it in one rename
    (:func:`xpnet.io.atomic.atomic_write`), so a reader (or a crash mid-write) never sees half
    an image. Parent directories are created. The PNG format is used whatever the suffix of ``path``.
    """
    from ..io.atomic import atomic_write

    path = pathlib.Path(os.fspath(path))
    m.Canvas(fig)  # attaches an Agg canvas to this figure only
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI)
    return path


def class_colors(m, k):
    """``k`` distinct RGBA colours: tab10 up to 10 classes, tab20 up to 20, then turbo."""
    if k <= 10:
        cmap = m.colormaps["tab10"]
    elif k <= 20:
        cmap = m.colormaps["tab20"]
    else:
        cmap = m.colormaps["turbo"].resampled(k)
    return [cmap(i) for i in range(k)]


def class_name(class_names, k):
    return str(k) if class_names is None else str(class_names[k])


def check_class_names(fn, class_names, labels_needed):
    """``class_names`` as a list, checked to name every label in ``range(labels_needed)``."""
    if class_names is None:
        return None
    if isinstance(class_names, str):
        raise TypeError(f"{fn}: class_names must be a sequence of names, got the string {class_names!r}")
    names = list(class_names)
    if len(names) < labels_needed:
        raise ValueError(
            f"{fn}: class_names has {len(names)} names but the labels need {labels_needed} "
            f"(labels 0..{labels_needed - 1})"
        )
    return names


# -- arrays ----------------------------------------------------------------------------------
def host_namespace():
    return backends.host.host_namespace()


def to_host(x):
    """A host (numpy) array of ``x``: an array of any backend, or Python data."""
    return backends.get("numpy").asarray(x)


def shape_of(x):
    shape = getattr(x, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else tuple(to_host(x).shape)


def labels_host(fn, y, n):
    """The class labels ``y`` as a host int64 array ``(n,)``.

    Accepts shape ``(n,)`` or ``(n, 1)``, integer dtype, or floats holding whole numbers
    (the 0./1. targets of a one-logit binary classifier).
    """
    hx = host_namespace()
    yh = to_host(y)
    if yh.ndim == 2 and yh.shape[1] == 1:
        yh = hx.reshape(yh, (-1,))
    if yh.ndim != 1 or yh.shape[0] != n:
        raise ValueError(f"{fn}: expected labels y of shape ({n},) to match X, got {tuple(yh.shape)}")
    kind = yh.dtype.kind
    if kind == "f":
        if not bool(hx.all(yh == hx.round(yh))):
            raise ValueError(f"{fn}: labels y must be whole numbers (class indices), got fractional values")
    elif kind not in "iub":
        raise TypeError(f"{fn}: labels y must be integer class indices, got dtype {yh.dtype.name}")
    return hx.astype(yh, hx.int64)


# -- the net ----------------------------------------------------------------------------------
def check_net(fn, net):
    if not isinstance(net, Layer):
        raise TypeError(f"{fn}: net must be an xpnet Layer (e.g. xpnet.Sequential), got {type(net).__name__}")


def net_place(net, x_fallback):
    """The Backend and float dtype name the net computes in, read from its first parameter.

    A net without parameters computes wherever its input lives: the backend of
    ``x_fallback`` (numpy for Python data), with ``None`` meaning "keep the input's dtype".
    """
    p = next(iter(net.parameters()), None)
    if p is not None:
        be = backends.backend_of(p.data)
        return be, be.dtype_name(p.data.dtype)
    try:
        return backends.backend_of(x_fallback), None
    except TypeError:
        return backends.get("numpy"), None


def predicted_labels(fn, out):
    """Host int64 labels ``(N,)`` from logits ``out (N, C)`` of any backend, and ``C``.

    ``C >= 2``: the argmax; ``C == 1``: a single logit thresholded at 0 (label 1 where it is
    positive). Reduced on the device, so only ``N`` labels cross to the host.
    """
    shape = tuple(out.shape)
    if len(shape) != 2 or shape[1] < 1:
        raise ValueError(f"{fn}: the net must output logits of shape (N, C), got {shape}")
    be = backends.backend_of(out)
    xp = be.xp
    if shape[1] == 1:
        lab = xp.astype(out[:, 0] > 0, xp.int64)
    else:
        lab = xp.argmax(out, axis=1)
    return be.to_numpy(lab), shape[1]
