"""Traced kernels kept on disk, so that a fresh process skips JAX's tracing and lowering too.

JAX's persistent compilation cache (:mod:`layerscope._jaxcache`) keeps the compiled XLA
programs, but a fresh process still traces every kernel in Python and lowers it to StableHLO
before it can look the program up: for the 8-phase operando model that is ~1.5 s per Jacobian
kernel, most of a fresh process's first pattern. :func:`persistent_jit` keeps each kernel's
lowered form as a ``jax.export`` artefact (StableHLO, serialized) in ``<cache>/traced/``; a later
process with the same kernel, the same static arguments and the same argument shapes
deserializes it and calls it (the compiled program then comes from the compilation cache).

An artefact is used only when all that decides the traced program is equal, and that is the key
of its file: the kernel's name, a digest of its static arguments (built from their content, not
Python's per-process hashes; a static argument this module cannot digest makes the call an
ordinary ``jax.jit`` call), the shapes, dtypes and tree structure of the array arguments, a digest
of every ``.py`` file of the installed layerscope package (any change to the code invalidates
every artefact), the JAX and jaxlib versions, the backend, and the JAX settings that change how
code traces (64-bit mode, default matmul precision, dtype promotion). A file that cannot be read
or deserialized is ignored and rewritten. Only processes that switch the compilation cache on
(the command line, the study runner's workers) use it; a library import changes nothing.

Written here, not taken from a library: ``jax.export`` provides (de)serialization; JAX has no
on-disk cache of traced functions keyed on static arguments.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import sys
import threading
from pathlib import Path

import jax
import numpy as np

__all__ = ["enable", "persistent_jit"]

_STATE = {"dir": None, "env": None}
_LOCK = threading.Lock()
_MAX_BYTES = 256 << 20  # the traced/ folder is trimmed (least recently used) past 256 MiB


def enable(folder: Path | None) -> None:
    """Keep traced kernels in ``folder/traced`` (None: off). Called by
    :func:`layerscope._jaxcache.enable_compilation_cache`."""
    if folder is None:
        _STATE["dir"] = None
        return
    try:  # jax.export's serialization needs the flatbuffers package (a dependency of layerscope)
        import flatbuffers  # noqa: F401
    except ImportError:
        _STATE["dir"] = None
        return
    d = Path(folder) / "traced"
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        _STATE["dir"] = None
        return
    _STATE["dir"] = d


class _Undigestable(Exception):
    pass


def _digest_into(h, v) -> None:
    """Feed a stable, type-tagged encoding of ``v`` into the hash ``h``."""
    if v is None or isinstance(v, (bool, int, float, complex, str, bytes)):
        h.update(type(v).__name__.encode())
        h.update(repr(v).encode())
        h.update(b"\x00")
    elif isinstance(v, (np.generic,)):
        h.update(b"np" + v.dtype.str.encode())
        h.update(v.tobytes())
    elif isinstance(v, np.ndarray):
        h.update(b"nd" + v.dtype.str.encode() + repr(v.shape).encode())
        h.update(np.ascontiguousarray(v).tobytes())
    elif isinstance(v, (tuple, list)):
        h.update(b"(" if isinstance(v, tuple) else b"[")
        h.update(struct.pack("<q", len(v)))
        for x in v:
            _digest_into(h, x)
        h.update(b")")
    elif isinstance(v, dict):
        h.update(b"{")
        for k in sorted(v, key=repr):
            _digest_into(h, k)
            _digest_into(h, v[k])
        h.update(b"}")
    elif dataclasses.is_dataclass(v) and not isinstance(v, type):
        h.update(b"dc" + f"{type(v).__module__}.{type(v).__qualname__}".encode())
        for f in dataclasses.fields(v):
            _digest_into(h, f.name)
            _digest_into(h, getattr(v, f.name))
    elif isinstance(v, type):
        h.update(b"type" + f"{v.__module__}.{v.__qualname__}".encode())
    elif hasattr(v, "__trace_digest__"):
        h.update(type(v).__qualname__.encode())
        _digest_into(h, v.__trace_digest__())
    else:
        raise _Undigestable(type(v).__name__)


def _package_digest() -> str:
    """Digest of the installed layerscope package's Python sources (names and contents)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _environment() -> bytes:
    """The package digest, versions and backend (fixed for a process) and the JAX settings that
    change how code traces (read at every call: a module may switch 64-bit mode on later)."""
    if _STATE["env"] is None:
        import jaxlib

        _STATE["env"] = repr((_package_digest(), jax.__version__, getattr(jaxlib, "__version__", "?"),
                              jax.default_backend(), sys.version_info[:2])).encode()
    cfg = jax.config
    return _STATE["env"] + repr((bool(cfg.jax_enable_x64), str(cfg.jax_default_matmul_precision),
                                 str(cfg.jax_numpy_dtype_promotion), str(cfg.jax_numpy_rank_promotion))).encode()


def _aval_key(tree) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    avals = []
    for x in leaves:
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            avals.append((tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False))))
        else:  # a Python scalar: weakly typed
            a = np.asarray(x)
            avals.append((a.shape, str(a.dtype), True))
    return str(treedef), tuple(avals)


#: {id(tuple): (tuple, key)}: a model's leaves are one long-lived tuple of immutable arrays
_TUPLE_KEYS: dict = {}


def _arg_key(x):
    """:func:`_aval_key` of one argument; a tuple of arrays (the model's ~80 leaves, passed at
    every call) is keyed once per tuple object."""
    if isinstance(x, jax.Array):
        return (tuple(x.shape), str(x.dtype), bool(x.weak_type))
    if isinstance(x, tuple) and x and all(isinstance(v, jax.Array) for v in x):
        hit = _TUPLE_KEYS.get(id(x))
        if hit is not None and hit[0] is x:
            return hit[1]
        key = _aval_key(x)
        if len(_TUPLE_KEYS) >= 64:
            _TUPLE_KEYS.clear()
        _TUPLE_KEYS[id(x)] = (x, key)
        return key
    return _aval_key(x)


def _trim(d: Path) -> None:
    try:
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in d.glob("*.jaxexp")]
    except OSError:
        return
    total = sum(s for _, s, _ in files)
    for _, size, p in sorted(files):
        if total <= _MAX_BYTES:
            break
        try:
            p.unlink()
            total -= size
        except OSError:
            pass


class _PlainCall:
    """A call of the plain jitted function in the (dyn, dyn_kw) form of the memo."""

    def __init__(self, jitted, n, dyn_pos, statics, static_argnums, static_kw):
        self._jitted, self._n, self._dyn_pos = jitted, n, dyn_pos
        self._static = dict(zip(static_argnums, statics))
        self._static_kw = static_kw

    def __call__(self, dyn, dyn_kw):
        it = iter(dyn)
        args = [self._static[i] if i in self._static else next(it) for i in range(self._n)]
        return self._jitted(*args, **self._static_kw, **dyn_kw)


class _PersistentJit:
    def __init__(self, fn, name, static_argnums, static_argnames, jitted, recipe=None):
        self._fn = fn
        self._recipe = recipe
        self._name = name
        self._static_argnums = tuple(static_argnums)
        self._static_argnames = tuple(static_argnames)
        self._jitted = jitted
        self._memo: dict = {}
        self._fast: dict = {}

    def __call__(self, *args, **kwargs):
        d = _STATE["dir"]
        if d is None:
            return self._jitted(*args, **kwargs)
        statics = tuple(args[i] for i in self._static_argnums)
        static_kw = {k: kwargs[k] for k in self._static_argnames if k in kwargs}
        dyn_pos = tuple(i for i in range(len(args)) if i not in self._static_argnums)
        dyn = tuple(args[i] for i in dyn_pos)
        dyn_kw = {k: v for k, v in kwargs.items() if k not in self._static_argnames}
        # the static arguments' own equality (what jax.jit keys on) finds a call seen before in
        # this process without digesting their content again (milliseconds for a model's spec)
        try:
            fast = (statics, tuple(sorted(static_kw.items())), len(args), dyn_pos, tuple(map(_arg_key, dyn)),
                    tuple((k, _arg_key(v)) for k, v in sorted(dyn_kw.items())), bool(jax.config.jax_enable_x64))
            call = self._fast.get(fast)
        except TypeError:  # an unhashable static argument: jax.jit would refuse it too
            return self._jitted(*args, **kwargs)
        if call is not None:
            return call(dyn, dyn_kw)
        try:
            h = hashlib.sha256(_environment())
            h.update(self._name.encode())
            _digest_into(h, self._recipe)
            _digest_into(h, statics)
            _digest_into(h, static_kw)
            h.update(repr((len(args), dyn_pos, sorted(dyn_kw), _aval_key((dyn, dyn_kw)))).encode())
        except _Undigestable:
            self._fast[fast] = _PlainCall(self._jitted, len(args), dyn_pos, statics, self._static_argnums, static_kw)
            return self._jitted(*args, **kwargs)
        key = h.hexdigest()[:40]
        call = self._memo.get(key)
        if call is None:
            call = self._load_or_export(d, key, args, kwargs, dyn_pos, dyn, dyn_kw)
            self._memo[key] = call
        if len(self._fast) >= 256:
            self._fast.clear()
        self._fast[fast] = call
        return call(dyn, dyn_kw)

    def _load_or_export(self, d, key, args, kwargs, dyn_pos, dyn, dyn_kw):
        from jax import export

        path = d / f"{self._name}-{key}.jaxexp"
        exp = None
        if path.is_file():
            try:
                exp = export.deserialize(bytearray(path.read_bytes()))
                os.utime(path)
            except Exception:  # noqa: BLE001  (a damaged or foreign file: export again)
                exp = None
        if exp is None:
            n = len(args)
            static_pos = {i: args[i] for i in self._static_argnums}
            static_kw = {k: kwargs[k] for k in self._static_argnames if k in kwargs}
            fn = self._fn

            def bound(dyn_args, dyn_kwargs):
                it = iter(dyn_args)
                full = [static_pos[i] if i in static_pos else next(it) for i in range(n)]
                return fn(*full, **static_kw, **dyn_kwargs)

            exp = export.export(jax.jit(bound))(dyn, dyn_kw)
            data = exp.serialize()
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, path)
                with _LOCK:
                    _trim(d)
            except OSError:
                try:
                    tmp.unlink()
                except OSError:
                    pass
        return jax.jit(exp.call)


def persistent_jit(fn, *, name: str, static_argnums=(), static_argnames=(), recipe=None):
    """``jax.jit(fn, static_argnums=..., static_argnames=...)`` whose traced form is kept on disk
    (see the module docstring) once :func:`enable` has been given a folder. ``name`` names the
    artefacts (one name per kernel). ``recipe``: for a closure, everything the closure was built
    from (digested into the key like a static argument); the caller promises that equal recipes
    build closures that trace to the same program."""
    jitted = jax.jit(fn, static_argnums=static_argnums, static_argnames=static_argnames)
    return _PersistentJit(fn, name, static_argnums, static_argnames, jitted, recipe)
