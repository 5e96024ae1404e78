"""Data sets: the embedded digits, MNIST and Fashion-MNIST (downloaded and cached), and small
synthetic problems, identical on every backend for a given seed.

>>> from xpnet import data
>>> X, y = data.ring_vs_blob(100, seed=0, backend="torch")   # X (200, 2) float32, y (200,) int64
"""

from .digits import load_digits
from .loader import DataLoader
from .mnist import DatasetUnavailable, load_fashion_mnist, load_mnist
from .synthetic import moons, ring_vs_blob, spirals, x_squared
from .sequences import SequenceTask, add_numbers, reverse_digits, sort_digits  # issue 12: sequence tasks
from .text import CharCorpus, load_text

__all__ = [
    "DataLoader", "DatasetUnavailable", "load_digits", "load_fashion_mnist", "load_mnist", "moons", "ring_vs_blob", "spirals", "x_squared",
]
__all__ += ["CharCorpus", "SequenceTask", "add_numbers", "load_text", "reverse_digits", "sort_digits"]  # issue 12
