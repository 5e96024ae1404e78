"""What ``xpnet train`` trains: the data sets, the default model for each, and its settings.

Each data set gives ``(train, val, test)`` splits on the chosen backend. The validation split
(10% of the training data, drawn with the run's seed) picks the best checkpoint; the test
split is only used for the final figures. (A data file of one's own: :mod:`xpnet.cli.datafile`.)
"""

from __future__ import annotations

import dataclasses

from .. import backends, data
from .. import layers as L
from ..nets.sequential import Sequential


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Defaults for one data set: the input kind and size, classes, and training settings."""

    image: tuple | None  # (C, H, W) for image data, None for points
    features: int
    classes: int
    epochs: int
    batch_size: int
    lr: float
    hidden: tuple  # MLP widths
    # CPU threads: None = every core. The digits' and the toy sets'
    # matrix products are small: on this 2-core VM, idle, the digits MLP trained in 1.4 s on one
    # thread against 1.6 s on two (the CNN 6.5 s against 4.9 s), but when another process held
    # the second core, two threads took 3-10x longer (BLAS threads waiting on each other).
    threads: int | None = 1


RECIPES = {
    "digits": Recipe((1, 8, 8), 64, 10, epochs=40, batch_size=32, lr=2e-3, hidden=(256, 128)),
    "mnist": Recipe((1, 28, 28), 784, 10, epochs=10, batch_size=128, lr=1e-3, hidden=(512, 256), threads=None),
    "fashion-mnist": Recipe((1, 28, 28), 784, 10, epochs=15, batch_size=128, lr=1e-3, hidden=(512, 256), threads=None),
    "spirals": Recipe(None, 2, 2, epochs=300, batch_size=64, lr=1e-2, hidden=(64, 64)),
    "moons": Recipe(None, 2, 2, epochs=100, batch_size=32, lr=1e-2, hidden=(32, 32)),
    "ring": Recipe(None, 2, 2, epochs=100, batch_size=32, lr=1e-2, hidden=(16,)),
}
#: the generated sequence tasks, for --model gpt|lstm (xpnet.cli.sequences)
SEQUENCE_TASKS = tuple(data.sequences.TASKS)
DATASETS = tuple(RECIPES) + SEQUENCE_TASKS


def load(name, be, dtype, seed, flatten):
    """``((Xtr, ytr), (Xval, yval), (Xte, yte))`` of data set ``name`` on backend ``be``."""
    if name in SEQUENCE_TASKS:  # xpnet train gives them to xpnet.cli.sequences; evaluate and predict land here
        raise ValueError("a sequence task, whose models xpnet evaluate and xpnet predict do not score (they take "
                         "classifiers); its run's metrics.json holds the test figures, and xpnet train --resume "
                         "CKPT --epochs E (E: its last epoch) evaluates it anew")
    if name in ("digits", "mnist", "fashion-mnist"):
        loader = {"digits": data.load_digits, "mnist": data.load_mnist, "fashion-mnist": data.load_fashion_mnist}[name]
        Xtr, ytr = loader("train", backend=be, dtype=dtype, flatten=flatten)
        test = loader("test", backend=be, dtype=dtype, flatten=flatten)
    else:
        make = {"spirals": data.spirals, "moons": data.moons, "ring": data.ring_vs_blob}[name]
        n = 500 if name == "spirals" else 200 if name == "moons" else 100
        Xtr, ytr = make(n, seed=seed, backend=be, dtype=dtype)
        test = make(n, seed=seed + 10_000, backend=be, dtype=dtype)  # a disjoint draw: another seed
    return (*_split_val(Xtr, ytr, be, seed), test)


def load_named(name, be, dtype, seed, flatten):
    """:func:`load`, every failure a UsageError naming ``--data``."""
    from . import UsageError, describe

    try:
        return load(name, be, dtype, seed, flatten)
    except (data.DatasetUnavailable, ValueError) as e:  # offline, an unusable cache directory, a damaged file in it
        raise UsageError(f"--data {name}: {e}") from None
    except (OSError, MemoryError) as e:
        raise UsageError(f"--data {name}: {describe(e)}") from None


def _split_val(X, y, be, seed):
    """Hold out 10% of (X, y), chosen by a permutation from a private numpy generator seeded with
    ``seed`` (the backends' shared generators are left alone, so training draws are unaffected)."""
    n = int(X.shape[0])
    k = max(1, n // 10)
    host = backends.get("numpy")
    perm = type(host.rng)(host, seed).permutation(n)
    idx_val, idx_tr = be.asarray(perm[:k]), be.asarray(perm[k:])
    xp = be.xp
    return (xp.take(X, idx_tr, axis=0), xp.take(y, idx_tr, axis=0)), (xp.take(X, idx_val, axis=0), xp.take(y, idx_val, axis=0))


def mlp(r: Recipe, dropout=0.2):
    """``Flatten? -> [Linear -> ReLU -> Dropout] * len(hidden) -> Linear(classes)``."""
    layers = [L.Flatten()] if r.image else []
    d = r.features
    for h in r.hidden:
        layers += [L.Linear(d, h), L.ReLU()] + ([L.Dropout(dropout)] if dropout and r.image else [])
        d = h
    return Sequential(*layers, L.Linear(d, r.classes))


def cnn(r: Recipe):
    """Two conv-ReLU-maxpool blocks (3x3 kernels, padding 1) and two linear layers:
    ``C -> 32 -> 64`` channels, so ``H x W`` shrinks 4x before ``Linear(64 H/4 W/4, 128) -> Linear(128, classes)``."""
    if r.image is None:
        raise ValueError("--model cnn needs image data (digits, mnist, fashion-mnist, or a .npz file whose X holds "
                         "images (N, H, W) or (N, C, H, W))")
    c, h, w = r.image
    if h < 4 or w < 4:
        raise ValueError(f"--model cnn needs images of at least 4 x 4 pixels (its two 2 x 2 poolings), got {h} x {w}")
    return Sequential(
        L.Conv2d(c, 32, 3, padding=1), L.ReLU(), L.MaxPool2d(2),
        L.Conv2d(32, 64, 3, padding=1), L.ReLU(), L.MaxPool2d(2),
        L.Flatten(), L.Linear(64 * (h // 4) * (w // 4), 128), L.ReLU(), L.Dropout(0.25), L.Linear(128, r.classes),
    )
