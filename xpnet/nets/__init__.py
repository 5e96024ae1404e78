"""Containers and training tools: Sequential, the optimizers and schedules, the training loop,
callbacks, evaluation and checkpoints."""

from .callbacks import Callback, EarlyStopping, EpochLogger, LRScheduler, ModelCheckpoint
from .checkpoint import Checkpoint, CheckpointError, load, save
from .clip import clip_grad_norm
from .evaluate import evaluate, predict
from .fit import History, TrainingDiverged, fit
from .optim import SGD, Optimizer
from .optimizers import Adam, AdamW, RMSprop
from .schedules import CosineAnnealingLR, LinearWarmup, OneCycleLR, Schedule, StepLR
from .concat import Concat
from .residual import Residual
from .sequential import Sequential
from .summary import Summary, summary

__all__ = [
    "SGD", "Adam", "AdamW", "Callback", "Concat", "Residual", "Checkpoint", "CheckpointError", "CosineAnnealingLR", "EarlyStopping",
    "EpochLogger", "History", "LRScheduler", "LinearWarmup", "ModelCheckpoint", "OneCycleLR", "Optimizer",
    "RMSprop", "Schedule", "Sequential", "StepLR", "TrainingDiverged", "clip_grad_norm", "evaluate", "fit",
    "load", "predict", "save", "Summary", "summary",
]

# training feedback: CSV and TensorBoard logs, the plateau schedule (a callback too), the LR range test
from .callbacks import CSVLogger, TensorBoard  # noqa: E402
from .lr_finder import LRFinder, LRFinderResult, lr_find  # noqa: E402
from .schedules import ReduceLROnPlateau  # noqa: E402

__all__ += ["CSVLogger", "LRFinder", "LRFinderResult", "ReduceLROnPlateau", "TensorBoard", "lr_find"]
