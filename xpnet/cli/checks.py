"""What ``xpnet train`` and ``xpnet evaluate`` check before the work starts, each failure a
:class:`~xpnet.cli.UsageError` naming the option, the file and the problem: checkpoints (a
directory, a FIFO, a damaged or crafted file), model spec files, whether a model fits its data,
and whether its checkpoints could be written and read back."""

from __future__ import annotations

import os
import pathlib
import stat

from . import USER_ERRORS, UsageError, describe


def usable_backend(name):
    """Raise UsageError unless ``--backend name`` (when given) is usable here."""
    from xpnet import backends

    if name is None:
        return
    try:
        backends.get(name)
    except (backends.BackendUnavailable, ValueError) as e:
        raise UsageError(f"--backend: {e}") from None


def load_checkpoint(option, path, backend):
    """``xpnet.load(path)``, every failure a UsageError naming ``option`` (if any) and the file."""
    import xpnet as xn

    lead = f"{option} " if option else ""
    if not os.fspath(path):
        raise UsageError(f"{option or 'checkpoint'}: an empty path")
    regular_file(option or "checkpoint", path)
    p = pathlib.Path(path)
    if p.is_dir():
        hint = f"; did you mean {p / 'last.xpnet'}?" if (p / "last.xpnet").is_file() else ""
        raise UsageError(f"{lead}{path}: a directory, not a checkpoint file{hint}")
    try:
        return xn.load(path, backend=backend)
    except (FileNotFoundError, xn.CheckpointError) as e:  # their messages name the file
        raise UsageError(f"{option}: {e}" if option else str(e)) from None
    except CHECKPOINT_ERRORS as e:
        raise UsageError(f"{lead}{path}: cannot load this checkpoint: {describe(e)}") from None


#: A checkpoint is untrusted input: whatever reading one raises is the file's fault. xn.load
#: raises CheckpointError for every defect it checks; IndexError and AttributeError stand for
#: crafted metadata that slips past those checks.
CHECKPOINT_ERRORS = USER_ERRORS + (IndexError, AttributeError)


def saved_seed(path, cli):
    """The seed a checkpoint's run used (its validation split depends on it)."""
    v = cli.get("seed", 0)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
        raise UsageError(f"{path}: the checkpoint's saved --seed is {short(v)}: "
                         "expected an integer from 0 to 2**63 - 1")
    return v


def round_trip(xn, be, net, opt, loss, what):
    """Save ``net`` (with ``opt`` and ``loss``) as the checkpoints after each epoch will, and load
    it back, in a temporary directory: a model whose checkpoints could not be written (nested
    too deeply to describe) or read back (beyond the loader's bounds on nesting, layer count or
    size) fails here rather than after the first epoch, or at the next ``xpnet evaluate``.

    Loading builds a second net, which draws its initial weights from the backend's generator:
    its state is put back afterwards, so the check changes no result. Where the state cannot be
    read (CuPy), only the save is tried. A temporary directory that cannot take the file skips
    the check: the run's own directory is checked separately."""
    import tempfile

    try:
        state = be.rng.get_state()
    except NotImplementedError:
        state = None
    with tempfile.TemporaryDirectory(prefix="xpnet-train-check-") as tmp:
        path = pathlib.Path(tmp) / "check.xpnet"
        try:
            xn.save(path, net, opt, loss=loss)
        except OSError:
            return
        except (RecursionError, MemoryError, ValueError, TypeError) as e:
            raise UsageError(f"{what} cannot be saved in a checkpoint: {describe(e)}") from None
        if state is None:
            return
        try:
            xn.load(path, backend=be)
        except (xn.CheckpointError, RecursionError, MemoryError) as e:
            why = describe(e).replace(f"checkpoint {path}: ", "").replace(str(path), "the checkpoint")
            raise UsageError(f"{what}: its checkpoints could not be loaded back: {why}") from None
        finally:
            be.rng.set_state(state)


def fits(xn, net, train, recipe, data, what, metrics=()):
    """Run two training samples through ``net`` (in eval mode, keeping nothing): a model whose
    input size or output size does not suit the data fails here, before the first epoch; so
    does a metric of ``metrics`` (names) that cannot score its outputs (``mae`` on class labels,
    ``top5`` of 3 classes)."""
    X = train[0]
    shape = tuple(int(d) for d in X.shape[1:])
    try:
        out = xn.predict(net, X[:2, ...])  # "...": the standard indexes every axis (array_api_strict)
    except (ValueError, TypeError) as e:
        raise UsageError(f"{what} does not fit the {data} data (samples of shape {shape}): {e}") from None
    except (RecursionError, MemoryError) as e:
        raise UsageError(f"{what} cannot run on the {data} data: {describe(e)}") from None
    got = tuple(int(d) for d in out.shape)
    if len(got) != 2 or got[1] < recipe.classes:
        raise UsageError(f"{what} gives outputs of shape {got} for 2 samples of the {data} data; training needs "
                         f"(N, {recipe.classes}): one score for each of its {recipe.classes} classes")
    metric_scores(xn, metrics, out, train[1][:2])


def metric_scores(xn, metrics, out, y):
    """Raise UsageError naming the first metric of ``metrics`` (names) that cannot score the
    outputs ``out`` against the labels ``y``."""
    for name in metrics:
        m = xn.metrics.get(name)
        try:
            m.update(out, y)
            m.result()
        except (ValueError, TypeError) as e:
            raise UsageError(f"--metrics {name}: cannot score this model's outputs {tuple(out.shape)} against "
                             f"class labels: {describe(e)}") from None


#: the largest model spec file read (JSON; a spec of 100,000 layers is about 10 MB)
MAX_SPEC_BYTES = 64 * 2**20


def regular_file(option, path, max_bytes=None):
    """Refuse what reading would hang on or never finish: a FIFO, a device (``/dev/zero``), a
    file larger than ``max_bytes``. A missing file or a directory is left to the reader's message."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise UsageError(f"{option} {path}: {e.strerror or describe(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        return
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{option} {path}: not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise UsageError(f"{option} {path}: {st.st_size:,} bytes, more than the {max_bytes:,} a model spec may have")




def short(v):
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."
