"""Checkpoints: ``xpnet.save`` and ``xpnet.load``.

A checkpoint is one safetensors file (:mod:`xpnet.io.safetensors`): the arrays as tensors, and
everything else as JSON in its metadata, so loading it executes no code:

- ``model.<key>``: the net's state dict (parameters and buffers, keys as in ``torch.nn``);
- ``optimizer.<i>.<name>``: the optimizer's per-parameter buffers (momentum, Adam moments);
- ``rng.state``: the generator state when it is an array (torch);
- metadata ``xpnet``: JSON with the format version, the architecture (:mod:`xpnet.nets.spec`),
  the loss and optimizer specs, the optimizer's integer step counts, the epoch, the history,
  callback states, the backend and dtype, the generator state when it is JSON data (numpy),
  free-form ``extra`` data, and a SHA-256 of all of it, checked on load.

Writes are atomic (a temporary file renamed into place). A truncated file, a tampered one, or
one that is not a checkpoint raises :class:`CheckpointError` with the path and the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib

from .. import backends
from ..io import FormatError, read_safetensors, write_safetensors
from . import spec as _spec
from .evaluate import net_backend

FORMAT = "xpnet-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that cannot be loaded as an xpnet checkpoint; the message says why."""


@dataclasses.dataclass
class Checkpoint:
    """What :func:`load` returns. ``net`` is rebuilt and holds the saved weights; ``optimizer``
    (or None) holds the saved state over ``net``'s parameters; ``loss`` (or None) is rebuilt."""

    path: pathlib.Path
    net: object
    optimizer: object = None
    loss: object = None
    epoch: int = 0
    history: dict = dataclasses.field(default_factory=dict)
    callbacks: dict = dataclasses.field(default_factory=dict)
    extra: dict = dataclasses.field(default_factory=dict)
    backend: str = ""
    dtype: str = ""
    rng_state: object = None

    def restore_rng(self):
        """Put the saved generator state back into the backend of ``net`` (for a bit-identical
        resume); returns False when the checkpoint has none (CuPy cannot export it), or when
        ``net`` was loaded onto another backend than the one saved, whose state does not apply."""
        be = _net_backend(self.net)
        if self.rng_state is None or be.label != self.backend:
            return False
        be.rng.set_state(self.rng_state)
        return True


def save(path, net, optimizer=None, *, loss=None, epoch=0, history=None, callbacks=None, rng=True, extra=None):
    """Write a checkpoint of ``net`` (and ``optimizer``, ``loss``, the ``epoch`` reached, the
    ``history`` of per-epoch metrics, ``callbacks`` states) to ``path``; returns the path.

    ``rng=True`` stores the state of the net's backend generator, so that training resumed
    from the file draws the same shuffles and dropout masks as an uninterrupted run.
    ``extra`` is any JSON-compatible dict of your own. The write is atomic.
    """
    be = _net_backend(net)
    tensors = {f"model.{k}": be.to_numpy(v) for k, v in net.state_dict().items()}
    meta = {
        "format": FORMAT, "version": VERSION,
        "model": _spec.layer_spec(net),
        "loss": None if loss is None else _spec.layer_spec(loss),
        "optimizer": None, "epoch": int(epoch), "history": dict(history or {}),
        "callbacks": dict(callbacks or {}), "extra": dict(extra or {}),
        "backend": be.label, "dtype": _float_dtype(net, be), "rng": None,
    }
    if optimizer is not None:
        pos = {id(p): i for i, p in enumerate(net.parameters())}
        missing = [i for i, p in enumerate(optimizer.params) if id(p) not in pos]
        if missing:
            raise ValueError(f"save: the optimizer holds parameters that are not the net's (positions {missing})")
        order = [pos[id(p)] for p in optimizer.params]
        steps = {}
        for i, st in optimizer.state_dict()["state"].items():
            for name, v in st.items():
                if isinstance(v, int):
                    steps.setdefault(str(i), {})[name] = v
                else:
                    tensors[f"optimizer.{i}.{name}"] = backends.to_numpy(v)
        meta["optimizer"] = {"spec": _spec.optimizer_spec(optimizer), "params": order, "ints": steps}
    if rng:
        try:
            state = be.rng.get_state()
        except NotImplementedError:
            state = None  # CuPy: documented; a resume there is not bit-identical
        if backends.host.is_host_array(state):
            tensors["rng.state"] = state
            meta["rng"] = "tensor"
        else:
            meta["rng"] = state
    text = json.dumps(meta, sort_keys=True)
    path = pathlib.Path(path)
    write_safetensors(path, tensors, {"xpnet": text, "xpnet.sha256": _digest(text, tensors)})
    return path


def load(path, *, backend=None, dtype=None) -> Checkpoint:
    """Read the checkpoint at ``path`` and rebuild its net (and optimizer and loss).

    ``backend``: where to put the net (default: the backend it was saved from when usable
    here, else the current default); ``dtype``: its float dtype (default: as saved).
    """
    path = pathlib.Path(path)
    try:
        tensors, md = read_safetensors(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path}: no such file") from None
    except FormatError as e:
        raise CheckpointError(f"checkpoint {e}") from None
    if "xpnet" not in md:
        raise CheckpointError(f"checkpoint {path}: a safetensors file, but not an xpnet checkpoint (no 'xpnet' metadata)")
    text = md["xpnet"]
    if md.get("xpnet.sha256") != _digest(text, tensors):
        raise CheckpointError(f"checkpoint {path}: its SHA-256 does not match its contents: the file was modified or damaged")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint {path}: its 'xpnet' metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("version"), int):
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise CheckpointError(f"checkpoint {path}: unknown format {found!r}")
    if meta["version"] > VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {meta['version']} is newer than this xpnet reads ({VERSION})")
    be = backends.get(backend) if backend is not None else _saved_backend(meta["backend"])
    net = _spec.build(meta["model"], backend=be, dtype=dtype or meta["dtype"])
    prefix = "model."
    net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    ck = Checkpoint(
        path=path, net=net, epoch=meta["epoch"], history=meta["history"], callbacks=meta["callbacks"],
        extra=meta["extra"], backend=meta["backend"], dtype=meta["dtype"],
        loss=None if meta["loss"] is None else _spec.build(meta["loss"]),
    )
    if meta["optimizer"] is not None:
        ck.optimizer = _optimizer(meta["optimizer"], net, tensors)
    ck.rng_state = tensors["rng.state"] if meta["rng"] == "tensor" else meta["rng"]
    return ck


def _optimizer(om, net, tensors):
    params = net.parameters()
    opt = _spec.build_optimizer(om["spec"], [params[i] for i in om["params"]])
    state = {}
    for key, v in tensors.items():
        if key.startswith("optimizer."):
            _, i, name = key.split(".", 2)
            state.setdefault(i, {})[name] = v
    for i, ints in om["ints"].items():
        state.setdefault(i, {}).update(ints)
    opt.load_state_dict({"state": state, "hyper": opt._hyper()})
    return opt


def _digest(text, tensors):
    h = hashlib.sha256(text.encode())
    for name in sorted(tensors):
        a = tensors[name]
        h.update(f"{name}:{backends.host.host_dtype_name(a)}:{tuple(a.shape)}".encode())
        h.update(backends.host.to_bytes(a, "<"))
    return h.hexdigest()


def _net_backend(net):
    try:
        return net_backend(net, "save")
    except ValueError:  # a net with no arrays at all (e.g. Sequential(ReLU())): the current backend
        return backends.get()


def _float_dtype(net, be):
    for v in net.state_dict().values():  # buffers count: a net of BatchNorm(affine=False) has no parameters
        if be.is_float(v.dtype):
            return be.dtype_name(v.dtype)
    return "float32"


def _saved_backend(label):
    try:
        return backends.get(label)
    except (backends.BackendUnavailable, ValueError):
        return backends.get()
