"""The Backend object: one array library on one device, with what the standard lacks.

A Backend bundles everything a layer needs besides pure array maths:

- ``xp``: the array-API namespace (through array-api-compat where needed);
- ``device``: where arrays are created;
- ``rng``: a seeded random generator native to the library, drawing on the device;
- ``asarray`` / ``to_numpy``: explicit conversions in and out;
- ``scatter_add``: the one scatter primitive the standard does not have.

Subclasses in ``_numpy``, ``_torch``, ``_cupy`` and ``_strict`` override only what
differs between libraries.
"""

from __future__ import annotations

import contextlib

_DTYPE_NAMES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
)


class Generator:
    """A seeded random generator that draws directly on a backend's device.

    ``shape`` is a tuple; ``dtype`` a namespace dtype (default float32). Every
    method returns an array of the backend that owns the generator, on
    ``device`` (default: the backend's device).
    """

    def __init__(self, backend: "Backend", seed: int):
        self._backend = backend
        self.manual_seed(seed)

    @property
    def backend(self) -> "Backend":
        """The backend this generator draws on."""
        return self._backend

    def manual_seed(self, seed: int) -> "Generator":
        """Restart the stream from ``seed`` (an int >= 0)."""
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"manual_seed expected a non-negative int, got {seed!r}")
        self.seed = seed
        self._reseed(seed)
        return self

    # Subclasses implement the primitives below.
    def _reseed(self, seed: int) -> None:
        raise NotImplementedError

    def get_state(self):
        """The generator's full state, as plain Python/numpy data (for checkpoints)."""
        raise NotImplementedError

    def set_state(self, state) -> None:
        """Restore a state returned by :meth:`get_state`."""
        raise NotImplementedError

    def normal(self, shape, mean=0.0, std=1.0, *, dtype=None, device=None):
        """Samples of N(mean, std**2)."""
        raise NotImplementedError

    def uniform(self, shape, low=0.0, high=1.0, *, dtype=None, device=None):
        """Samples of U[low, high)."""
        raise NotImplementedError

    def bernoulli(self, shape, p, *, dtype=None, device=None):
        """1 with probability ``p``, else 0, as ``dtype`` (bool gives True/False)."""
        raise NotImplementedError

    def permutation(self, n: int, *, device=None):
        """A random permutation of ``range(n)`` as an int64 array."""
        raise NotImplementedError


class Backend:
    """One array library on one device. Obtain instances with :func:`xpnet.backends.get`."""

    name: str = ""
    #: default seed of every generator, so that an unseeded run is reproducible (as in PyTorch)
    default_seed = 0
    #: True where a host read waits for a queue of device work (GPUs): training loops then defer
    #: value checks (:mod:`xpnet.layers.deferred`) instead of reading per step. False where a
    #: read costs nothing and the eager checks are cheaper (numpy, torch on the CPU).
    asynchronous: bool = False

    def __init__(self, xp, device, label: str):
        self.xp = xp
        self.device = device
        self.label = label
        self._dtypes = {}
        for n in _DTYPE_NAMES:
            dt = getattr(xp, n, None)
            if dt is not None:
                self._dtypes[n] = dt
        # Keyed by both the namespace's dtype objects and the ones arrays actually carry
        # (numpy: np.float32 vs np.dtype('float32')), so that lookups in the hot path hit.
        self._dtype_names = {}
        carried = {}
        for n, dt in self._dtypes.items():
            try:
                real = xp.empty((0,), dtype=dt, device=device).dtype
            except (TypeError, ValueError, RuntimeError):  # a dtype this library cannot allocate
                continue
            carried[n] = real
            for key in (dt, real):
                try:
                    self._dtype_names.setdefault(key, n)
                except TypeError:  # unhashable dtype objects: dtype_name() falls back to parsing
                    pass
        # ``x.dtype in float_dtypes`` is one hash lookup in the hot path; the namespace's own
        # dtype objects are members too, so ``is_float(xp.float32)`` holds on numpy as well
        def kinds(names):
            return frozenset(d for n in names if n in carried for d in (carried[n], self._dtypes[n]))

        self.float_dtypes = kinds(("float16", "bfloat16", "float32", "float64"))
        # the floating dtypes narrower than float32 (mixed precision computes in them), and the
        # float32 that reductions, softmax and normalization statistics widen them to
        self.low_float_dtypes = kinds(("float16", "bfloat16"))
        self._low_names = tuple(n for n in ("float16", "bfloat16") if n in carried)
        self._float32 = self._dtypes["float32"]
        self.int_dtypes = kinds(("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"))
        self.rng = self._make_generator(self.default_seed)

    # -- identity --------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Backend({self.label})"

    # -- dtypes ------------------------------------------------------------------
    def dtype(self, spec):
        """Resolve ``spec`` (a name such as ``"float64"``, or a dtype of any backend) to this namespace's dtype."""
        if isinstance(spec, str):
            try:
                return self._dtypes[spec]
            except KeyError:
                raise ValueError(
                    f"backend {self.label} has no dtype {spec!r}; it has {sorted(self._dtypes)}"
                ) from None
        if spec in self._dtype_names:
            return spec
        return self.dtype(dtype_name(spec))

    def dtype_name(self, dt) -> str:
        """The standard name (``"float32"``) of one of this namespace's dtypes."""
        try:
            return self._dtype_names[dt]
        except (KeyError, TypeError):
            return dtype_name(dt)

    def is_float(self, dt) -> bool:
        """True for a real floating-point dtype of this namespace."""
        return dt in self.float_dtypes

    # -- low precision -------------------------------------------------------------
    def low_precision_dtypes(self) -> tuple:
        """The names of the dtypes narrower than float32 that this backend can compute in:
        ``("float16", "bfloat16")`` on torch, ``("float16",)`` on numpy (no bfloat16),
        ``()`` on array-api-strict (the standard has neither)."""
        return self._low_names

    def low_precision_dtype(self, name: str, who: str = "mixed precision"):
        """This namespace's ``name`` dtype (``"float16"`` or ``"bfloat16"``), or ValueError naming
        the backend and the low-precision dtypes it has (``who`` starts the message)."""
        if name not in ("float16", "bfloat16"):
            raise ValueError(f"{who}: expected a low-precision dtype, 'float16' or 'bfloat16', got {name!r}")
        if name in self._low_names:
            return self._dtypes[name]
        has = self._low_names
        why = {"numpy": " (the ml_dtypes package adds one to numpy, which xpnet does not use)",
               "array_api_strict": " (the array API standard defines no dtype narrower than float32)"}.get(self.name, "")
        alias = {"float16": "'fp16'", "bfloat16": "'bf16'"}
        hint = f"use precision {' or '.join(alias[n] for n in has)} here, or " if has else "use "
        raise ValueError(
            f"{who}: backend {self.label} has no {name}{why}; its dtypes narrower than float32: "
            f"{', '.join(has) or 'none'}; {hint}the torch backend, which has float16 and bfloat16"
        )

    def widened(self, x):
        """``x`` as float32 when its dtype is float16 or bfloat16, else ``x`` itself: what a layer
        computes its reductions, softmax and normalization statistics in (mixed precision)."""
        return self.xp.astype(x, self._float32) if x.dtype in self.low_float_dtypes else x

    def ignore_overflow(self):
        """A context in which overflow to inf and invalid results (NaN) raise no warnings (numpy
        warns, the other libraries do not): a loss-scaled float16 backward expects some, which
        the GradScaler detects and skips."""
        return contextlib.nullcontext()

    def narrowed(self, x, dtype):
        """``x`` in ``dtype`` (``x`` itself when it has it): a float32 result of :meth:`widened`
        inputs, back in the dtype of the layer's input or parameter."""
        return x if x.dtype == dtype else self.xp.astype(x, dtype)

    # -- conversions -------------------------------------------------------------
    def owns(self, x) -> bool:
        """True when ``x`` is an array of this library (on any device)."""
        raise NotImplementedError

    def asarray(self, obj, dtype=None, copy=None):
        """``obj`` as an array of this backend on its device.

        ``obj`` may be Python data, a numpy array, or an array of any backend
        (converted through a host copy: this call is the explicit move).
        ``dtype`` is a name or a dtype; by default floats stay as they are.
        ``copy``: as in the standard; ``None`` may share memory with ``obj``
        (a numpy array on the CPU), ``True`` never does.
        """
        dt = None if dtype is None else self.dtype(dtype)
        if not self.owns(obj):
            from ._registry import _foreign_to_host

            host = _foreign_to_host(obj, copy=bool(copy))
            return self._from_host(host, dt)
        out = self._to_device(obj)
        if dt is not None:
            out = self.xp.astype(out, dt, copy=False)
        if copy and out is obj:
            out = self.xp.asarray(out, copy=True)
        return out

    def _from_host(self, obj, dtype):
        return self.xp.asarray(obj, dtype=dtype, device=self.device)

    def _to_device(self, x):
        return x if x.device == self.device else self.xp.asarray(x, device=self.device)

    def to_numpy(self, x):
        """A host numpy copy of ``x`` (an array of this backend)."""
        raise NotImplementedError

    # -- what the standard lacks -----------------------------------------------
    def scatter_add(self, target, index, values):
        """``target`` with ``values[i]`` added into row ``index[i]``, repeated indices summed.

        Shapes: ``target (M, *rest)``, ``index (K,)`` integer, ``values (K, *rest)``.
        Returns a new array; ``target`` is not modified.
        """
        raise NotImplementedError

    def set_threads(self, n: int) -> None:
        """Use ``n`` CPU threads for this library's kernels (BLAS, OpenMP) from now on; a no-op on
        GPU backends. Small matrix products run fastest on one thread, and a second thread that
        spins while another process holds the core can make them many times slower."""

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU); call before reading a clock."""

    def special(self, name: str):
        """The array library's own ``erf`` or ``erfc`` (``name``) for this backend's arrays
        (:mod:`._special`: torch and CuPy have them), or None where xpnet computes its own."""
        from ._special import native

        return native(self, name)

    def fused(self):
        """The fused CPU kernels for this backend's arrays (:mod:`._fused`: GELU, SiLU, LayerNorm,
        GroupNorm, and the LSTM's and GRU's per-step gate maths, in float32), or None: numpy with
        numba installed has them, nothing else does."""
        from ._fused import kernels_for

        return kernels_for(self)

    def manual_seed(self, seed: int) -> "Backend":
        """Reseed this backend's generator."""
        self.rng.manual_seed(seed)
        return self

    def _make_generator(self, seed: int) -> Generator:
        raise NotImplementedError

    def describe(self) -> str:
        """A one-line description: library version and device."""
        return self.label


def dtype_name(dt) -> str:
    """The standard name of a dtype object from numpy, torch, cupy or array_api_strict."""
    name = getattr(dt, "name", None)  # numpy/cupy dtypes, numpy scalar types
    if isinstance(name, str):
        return name
    s = str(dt)
    for prefix in ("torch.", "array_api_strict."):
        if s.startswith(prefix):
            return s[len(prefix):]
    if s.startswith("<class 'numpy."):
        return s[len("<class 'numpy."):-2]
    if s in _DTYPE_NAMES:
        return s
    raise TypeError(f"not a dtype: {dt!r}")
