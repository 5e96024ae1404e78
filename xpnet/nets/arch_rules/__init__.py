"""The checkpoint architecture rules (:mod:`xpnet.nets.checkpoint_arch`) of layer families, one
module each: a module defines ``rules(L)`` (``L``: :mod:`xpnet.layers`) returning ``{layer
class: rule}``, where a rule maps the constructor's arguments (a dict with every argument,
defaults filled in) to ``[(name, shape, is_parameter, FLOAT or INT), ...]`` of the arrays the
constructor makes. :func:`collect` merges every module's rules."""

from __future__ import annotations

import importlib
import pkgutil


def collect(layers) -> dict:
    """``{class: rule}`` of every module in this package."""
    out = {}
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        out.update(importlib.import_module(f"{__name__}.{m.name}").rules(layers))
    return out
