"""Converters of layer families, one module each, registered with :func:`xpnet.onnx.converter`
(or refused with :func:`xpnet.onnx.registry` 's refusal table) when the module is imported;
every module in this package is imported here."""

import importlib
import pkgutil

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_m.name}")
