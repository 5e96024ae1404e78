"""The optional forward arguments of the attention layers, given positionally or by name.

The layer contract returns one gradient per positional argument of the forward call, so these
layers take their options as ``*options, **named`` and count what came positionally; this binds
them to their names as Python would (``forward(q, k, v, mask, need_weights=False)``).
"""

from __future__ import annotations


def bind_options(who, names, defaults, options, named):
    """The values of the optional forward arguments ``names`` (``defaults`` where not given)
    from the extra positional ``options`` and the keyword ones ``named``; a TypeError, as
    Python's own, for too many, an unknown name or a name given twice."""
    if len(options) > len(names):
        raise TypeError(f"{who}.forward takes at most {3 + len(names)} positional arguments (query, key, value, "
                        f"{', '.join(names)}), got {3 + len(options)}")
    values = list(options) + list(defaults[len(options):])
    for name, v in named.items():
        if name not in names:
            raise TypeError(f"{who}.forward got an unexpected keyword argument {name!r}; it takes "
                            f"{', '.join(names)}")
        i = names.index(name)
        if i < len(options):
            raise TypeError(f"{who}.forward got multiple values for argument {name!r}")
        values[i] = v
    return values
