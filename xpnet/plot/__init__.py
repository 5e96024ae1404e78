"""Pictures of training and of classifiers, saved as PNG files (needs ``pip install 'xpnet[plot]'``).

>>> from xpnet import plot
>>> plot.curves(history, "runs/curves.png")                 # loss | accuracy per epoch, train and validation
>>> plot.decision_boundary(net, X, y, "runs/regions.png")   # a 2-D classifier's decision regions
>>> plot.misclassified(net, X_test, y_test, "runs/wrong.png")  # the images it gets wrong, "true → predicted"
>>> plot.confusion(metrics.confusion_matrix(pred, y, 10), "runs/confusion.png")

Every function takes arrays of any backend (or Python data), writes the PNG atomically
(creating parent directories), and returns the ``pathlib.Path`` written. matplotlib is
imported on first use, through its object API and the Agg canvas only: no pyplot state,
no window, safe in threads. Without matplotlib the functions raise ImportError saying
how to install it; importing ``xpnet.plot`` itself never needs it.
"""

from ._classify import confusion, decision_boundary, misclassified, misclassified_indices
from ._common import INSTALL_HINT
from ._curves import curves

__all__ = ["INSTALL_HINT", "confusion", "curves", "decision_boundary", "misclassified", "misclassified_indices"]
