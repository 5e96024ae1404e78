"""Pictures of a classifier: decision regions in 2-D, misclassified images, a confusion matrix."""

from __future__ import annotations

import math
import numbers

from .. import backends
from . import _common as c

#: pixel sizes
SIZE_BOUNDARY = (600, 500)
CELL = (125, 150)  # one misclassified image with its caption
HEADER = 75  # the two or three lines above the grid of images
MIN_WIDTH = 400
SIZE_NOTHING = (400, 150)  # the "nothing misclassified" notice


# -- decision regions --------------------------------------------------------------------------
def decision_boundary(net, X, y, path, *, resolution=200, padding=0.5, title=None, class_names=None, split=None):
    """Draw the decision regions of a 2-D classifier with its data on top; save a PNG at ``path``.

    ``net``: an xpnet Layer (e.g. ``xpnet.Sequential``) mapping points ``(M, 2)`` to logits
    ``(M, C)``; the predicted class is the argmax for ``C >= 2``, and for ``C == 1`` the
    single logit thresholded at 0 (class 1 where positive).
    ``X (N, 2)`` and ``y (N,)`` (integer labels, or whole-number floats): arrays of any
    backend, or Python data.

    A ``resolution x resolution`` grid spans the data's bounding box widened by ``padding``
    on every side; it is evaluated in ONE batched forward (together with ``X``, to report the
    accuracy) on the net's own backend and dtype, in eval mode, and each layer's previous
    training mode is restored afterwards. Drawn: the predicted class over the grid as filled
    contours, the points coloured by their true class (``class_names[k]`` in the legend,
    default ``k``), the accuracy on ``X`` as the legend title. ``split`` (e.g. ``"test"``)
    names the data shown: "decision regions, test split" (unless ``title`` is given) and
    "test split accuracy 98.0%". Size: 600 x 500 pixels.

    Returns the ``pathlib.Path`` written. Raises ValueError, naming the function and the
    shape, when ``X`` is not ``(N, 2)``.
    """
    fn = "decision_boundary"
    c.check_net(fn, net)
    shape = c.shape_of(X)
    if len(shape) != 2 or shape[1] != 2 or shape[0] < 1:
        raise ValueError(f"{fn}: expected points X of shape (N, 2) with N >= 1, got shape {shape}")
    if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral) or resolution < 2:
        raise ValueError(f"{fn}: resolution must be an int >= 2, got {resolution!r}")
    if isinstance(padding, bool) or not isinstance(padding, numbers.Real) or not padding >= 0:
        raise ValueError(f"{fn}: padding must be a real number >= 0, got {padding!r}")
    hx = c.host_namespace()
    Xh = hx.astype(c.to_host(X), hx.float64)
    n = shape[0]
    yh = c.labels_host(fn, y, n)

    # the grid on the host in float64, then ONE move to the net's backend and dtype
    lo0, hi0 = float(hx.min(Xh[:, 0])) - padding, float(hx.max(Xh[:, 0])) + padding
    lo1, hi1 = float(hx.min(Xh[:, 1])) - padding, float(hx.max(Xh[:, 1])) + padding
    if hi0 == lo0:  # all points on a vertical line and no padding: still give the axis a width
        lo0, hi0 = lo0 - 0.5, hi0 + 0.5
    if hi1 == lo1:
        lo1, hi1 = lo1 - 0.5, hi1 + 0.5
    g0, g1 = hx.meshgrid(hx.linspace(lo0, hi0, resolution), hx.linspace(lo1, hi1, resolution))
    grid = hx.stack((hx.reshape(g0, (-1,)), hx.reshape(g1, (-1,))), axis=1)
    be, dt = c.net_place(net, X)
    inputs = be.asarray(hx.concat((grid, Xh), axis=0), dtype=dt or "float32")
    with c.eval_mode(net):
        out = net(inputs)
    labels, C = c.predicted_labels(fn, out)
    regions = hx.reshape(labels[: resolution * resolution], (resolution, resolution))
    accuracy = float(hx.mean(hx.astype(labels[resolution * resolution:] == yh, hx.float64)))

    k = max(2 if C == 1 else C, int(hx.max(yh)) + 1)
    names = c.check_class_names(fn, class_names, k)
    m = c.mpl()
    colors = c.class_colors(m, k)
    fig = c.figure(m, *SIZE_BOUNDARY)
    ax = fig.add_subplot()
    # half-integer levels: each class gets exactly its own band of the filled contour
    ax.contourf(g0, g1, regions, levels=[i - 0.5 for i in range(k + 1)], colors=colors, alpha=0.3)
    for cls in range(k):
        sel = yh == cls
        if bool(hx.any(sel)):
            ax.scatter(Xh[sel, 0], Xh[sel, 1], s=22, color=colors[cls], edgecolors="black", linewidths=0.5,
                       label=f"class {c.class_name(names, cls)}" if names is None else c.class_name(names, cls))
    ax.set_xlim(lo0, hi0)
    ax.set_ylim(lo1, hi1)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    where = "" if split is None else f"{split} split"
    ax.set_title(title if title is not None else f"decision regions, {where}" if where else "decision regions")
    ax.legend(title=f"{where} accuracy {accuracy:.1%}".strip(), loc="best", framealpha=0.85)
    return c.save(m, fig, path)


# -- misclassified images ----------------------------------------------------------------------
def _forward_batches(fn, net, X, batch_size):
    """Host int64 predicted labels ``(N,)`` of ``net`` on ``X``, ``batch_size`` rows per forward,
    in eval mode (each layer's mode restored afterwards)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"{fn}: batch_size must be an int >= 1, got {batch_size!r}")
    hx = c.host_namespace()
    be, dt = c.net_place(net, X)
    try:
        src = backends.backend_of(X)
    except TypeError:  # Python data
        X = c.to_host(X)
        src = backends.backend_of(X)
    # only float inputs take the net's dtype: integer inputs (token ids) stay integers
    dtype = dt if dt is not None and src.is_float(X.dtype) else None
    n = int(X.shape[0])
    parts = []
    with c.eval_mode(net):
        for a in range(0, n, batch_size):
            labels, _ = c.predicted_labels(fn, net(be.asarray(X[a:min(a + batch_size, n), ...], dtype=dtype)))
            parts.append(labels)
    return hx.concat(parts) if parts else hx.zeros((0,), dtype=hx.int64)


def misclassified_indices(net, X, y, *, batch_size=1024):
    """The samples ``net`` gets wrong: ``(indices, predicted)``, two lists of ints in index order.

    ``net`` maps ``X`` (any shape the net accepts, first axis the samples) to logits ``(N, C)``
    (argmax, or for ``C == 1`` the logit thresholded at 0); ``y (N,)`` are the true labels.
    The forward runs in eval mode, ``batch_size`` samples at a time, on the net's backend.
    """
    fn = "misclassified_indices"
    c.check_net(fn, net)
    idx, pred, _ = _wrong(fn, net, X, y, batch_size)
    return idx, pred


def _wrong(fn, net, X, y, batch_size):
    shape = c.shape_of(X)
    if len(shape) < 2:
        raise ValueError(f"{fn}: expected X with a first axis of samples, e.g. (N, 64) or (N, 1, 8, 8), got shape {shape}")
    hx = c.host_namespace()
    yh = c.labels_host(fn, y, shape[0])
    pred = _forward_batches(fn, net, X, batch_size)
    idx = hx.nonzero(pred != yh)[0]
    return [int(i) for i in idx], [int(pred[i]) for i in idx], yh


def _image_layout(fn, shape, image_shape):
    """How to turn one sample into a picture: ``(shape to reshape to, channels first?)``."""
    per = shape[1:]
    size = math.prod(per)
    if image_shape is not None:
        ish = tuple(int(s) for s in image_shape)
        if len(ish) not in (2, 3) or math.prod(ish) != size or (len(ish) == 3 and ish[2] not in (1, 3, 4)):
            raise ValueError(
                f"{fn}: image_shape {ish} does not fit samples of shape {per} ({size} values); expected "
                f"(H, W) or (H, W, channels) with channels 1, 3 or 4 and H * W * channels = {size}"
            )
        return ish, False
    if len(per) == 1:
        side = math.isqrt(size)
        if side * side != size:
            raise ValueError(
                f"{fn}: cannot infer a square image from {size} features per sample (X shape {shape}); "
                f"pass image_shape=(H, W)"
            )
        return (side, side), False
    if len(per) == 2:
        return per, False
    if len(per) == 3 and per[0] == 1:
        return per[1:], False
    if len(per) == 3 and per[0] in (3, 4):
        return (per[1], per[2], per[0]), True  # drawn channels last, after a transpose
    raise ValueError(
        f"{fn}: cannot draw samples of shape {per} as images; expected (H*W,), (H, W) or (C, H, W) "
        f"with C = 1, 3 or 4 (X shape {shape}), or pass image_shape"
    )


def grid_shape(n):
    """``(rows, cols)`` of a near-square grid holding ``n`` images, and its size in pixels."""
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    return (rows, cols), (max(MIN_WIDTH, cols * CELL[0]), rows * CELL[1] + HEADER)


def _images(X, indices):
    """Host copies of the samples ``indices`` only (a big X on a GPU is never copied whole)."""
    hx = c.host_namespace()
    try:
        be = backends.backend_of(X)
    except TypeError:
        return hx.take(c.to_host(X), hx.asarray(indices, dtype=hx.int64), axis=0)
    return be.to_numpy(be.xp.take(X, be.asarray(indices, dtype="int64"), axis=0))


def _draw_misclassified(net, X, y, *, image_shape, max_images, class_names, batch_size, title):
    fn = "misclassified"
    c.check_net(fn, net)
    if isinstance(max_images, bool) or not isinstance(max_images, numbers.Integral) or max_images < 1:
        raise ValueError(f"{fn}: max_images must be an int >= 1, got {max_images!r}")
    shape = c.shape_of(X)
    layout, channels_first = _image_layout(fn, shape, image_shape) if len(shape) >= 2 else (None, False)
    idx, pred, yh = _wrong(fn, net, X, y, batch_size)
    hx = c.host_namespace()
    k = int(max([int(hx.max(yh)) if yh.shape[0] else 0, *pred, 0])) + 1
    names = c.check_class_names(fn, class_names, k)
    m = c.mpl()
    n_total = shape[0]
    if not idx:
        fig = c.figure(m, *SIZE_NOTHING)
        fig.text(0.5, 0.5, f"nothing misclassified:\nall {n_total} samples are predicted correctly",
                 ha="center", va="center", fontsize=12)
        if title:
            fig.suptitle(title)
        return fig
    shown = idx[:max_images]
    (rows, cols), size = grid_shape(len(shown))
    fig = c.figure(m, *size)
    imgs = _images(X, shown)
    for j, (i, p) in enumerate(zip(shown, pred)):
        ax = fig.add_subplot(rows, cols, j + 1)
        img = imgs[j]
        if channels_first:
            img = hx.permute_dims(img, (1, 2, 0))
        img = hx.astype(hx.reshape(img, layout), hx.float64)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if img.ndim == 3:  # colour: imshow wants [0, 1], so stretch each image to it
            lo, hi = float(hx.min(img)), float(hx.max(img))
            img = (img - lo) / (hi - lo) if hi > lo else img * 0.0
            ax.imshow(img, interpolation="nearest")
        else:  # grey: high values (ink) dark, as on paper
            ax.imshow(img, cmap="gray_r", interpolation="nearest")
        ax.set_title(f"{c.class_name(names, int(yh[i]))} → {c.class_name(names, p)}\n#{i}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    more = f", the first {len(shown)} shown" if len(shown) < len(idx) else ""
    head = f"{len(idx)} of {n_total} misclassified{more}\ncaptions: true → predicted, #sample index"
    fig.suptitle(f"{title}\n{head}" if title else head, fontsize=11)
    return fig


def misclassified(net, X, y, path, *, image_shape=None, max_images=36, class_names=None,
                  batch_size=1024, title=None):
    """Draw a grid of the images ``net`` misclassifies, captioned "true → predicted"; save a PNG.

    ``X``: images of any backend, ``(N, H*W)`` flat (a square ``H = W`` is inferred unless
    ``image_shape=(H, W)`` or ``(H, W, channels)`` is given), ``(N, H, W)``, or ``(N, C, H, W)``
    with ``C`` 1 (grey) or 3/4 (colour); e.g. the digits ``(N, 64)`` or ``(N, 1, 8, 8)``,
    MNIST ``(N, 784)`` or ``(N, 1, 28, 28)``. ``X`` goes to the net as given, ``batch_size``
    samples per forward, in eval mode (each layer's mode is restored afterwards).
    ``y (N,)``: the true labels. Prediction: argmax of the logits, or for one logit, > 0.

    Drawn: the first ``max_images`` misclassified samples in index order, each captioned
    "true → predicted" (``class_names[k]`` when given) and its sample index, in a near-square
    grid of 125 x 150 pixel cells under a line saying how many of ``N`` are wrong (width at
    least 400 pixels, plus 75 pixels of header). When nothing is misclassified, a 400 x 150
    picture that says so. Returns the ``pathlib.Path`` written.
    """
    fig = _draw_misclassified(net, X, y, image_shape=image_shape, max_images=max_images,
                              class_names=class_names, batch_size=batch_size, title=title)
    return c.save(c.mpl(), fig, path)


# -- confusion matrix --------------------------------------------------------------------------
def confusion(matrix, path, class_names=None, *, normalize=False, title=None):
    """Draw a confusion matrix as a heat map and save a PNG at ``path``.

    ``matrix (C, C)``: counts of any backend, as ``xpnet.metrics.confusion_matrix`` returns
    (rows the true class, columns the predicted one). ``normalize=True`` divides each row by
    its total, so a cell is the fraction of that true class (the diagonal is the recall);
    ``normalize="color"`` colours by that fraction and writes the counts (what ``xpnet train``
    draws: a rare class's mistakes show as clearly as a common one's). Each cell is annotated
    with its value when ``C <= 30``. Size: a square panel of
    ``max(400, 50 C + 200)`` pixels plus 100 pixels for the colour bar.
    Returns the ``pathlib.Path`` written.
    """
    fn = "confusion"
    hx = c.host_namespace()
    M = hx.astype(c.to_host(matrix), hx.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] < 1:
        raise ValueError(f"{fn}: expected a square matrix (C, C), got shape {tuple(M.shape)}")
    if not (isinstance(normalize, bool) or normalize == "color"):
        raise ValueError(f"{fn}: normalize must be False, True or 'color', got {normalize!r}")
    k = int(M.shape[0])
    names = c.check_class_names(fn, class_names, k)
    counts = M
    if normalize:
        totals = hx.sum(M, axis=1, keepdims=True)
        M = M / hx.where(totals > 0, totals, 1.0)  # a class with no samples keeps a row of zeros
    m = c.mpl()
    side = max(400, 50 * k + 200)
    fig = c.figure(m, side + 100, side)
    ax = fig.add_subplot()
    im = ax.imshow(M, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="fraction of the true class" if normalize else "samples")
    labels = [c.class_name(names, i) for i in range(k)]
    ax.set_xticks(range(k), labels, rotation=45 if names is not None else 0, ha="right" if names is not None else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title if title is not None else "confusion matrix")
    if k <= 30:
        top = 1.0 if normalize else float(hx.max(M)) or 1.0
        for i in range(k):
            for j in range(k):
                v = float(M[i, j])
                text = f"{v:.0%}" if normalize is True else f"{float(counts[i, j]):.0f}"
                ax.text(j, i, text, ha="center", va="center",
                        fontsize=8 if k > 12 else 10, color="white" if v > 0.5 * top else "black")
    return c.save(m, fig, path)
