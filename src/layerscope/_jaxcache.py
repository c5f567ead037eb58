"""JAX's persistent compilation cache for the command line.

The refinement kernels take seconds to compile (XLA on CPU) and are the same from one run to the
next for data of the same shape, so ``layerscope`` commands keep compiled kernels on disk: the
NAC four-stage refinement's first run in a new process goes from 19.5 s to 10.5 s (2-core CPU;
the rest is tracing and the fit itself). JAX keys every entry on the computation, the JAX/jaxlib
version, the backend and the compile flags, so a stale entry is never used for another program.

Only the command line (and the study runner's workers) switch it on: importing layerscope as a
library changes no global JAX setting. ``LAYERSCOPE_JAX_CACHE`` chooses the folder; ``off``, ``0``
or an empty value switches the cache off. The default is ``$XDG_CACHE_HOME/layerscope/jax``
(``~/.cache/layerscope/jax``), kept below 1 GiB (least recently used entries are removed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["cache_dir", "enable_compilation_cache"]

_OFF = {"", "0", "off", "no", "false"}


def cache_dir() -> Path | None:
    """The cache folder the environment asks for, or None when it is switched off."""
    v = os.environ.get("LAYERSCOPE_JAX_CACHE")
    if v is not None:
        return None if v.strip().lower() in _OFF else Path(v).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "layerscope" / "jax"


def _tracecache_off() -> None:
    # without importing it (and JAX) when nothing switched it on
    tc = sys.modules.get("layerscope._tracecache")
    if tc is not None:
        tc.enable(None)


def enable_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at :func:`cache_dir`; return the folder used.

    A folder that cannot be created leaves the cache off with a one-line note on stderr.
    """
    d = cache_dir()
    if d is None:
        _tracecache_off()
        return None
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"layerscope: note: JAX compilation cache off, cannot create {d}: {exc}", file=sys.stderr)
        _tracecache_off()
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(d))
    # cache every kernel that took noticeable time to compile, whatever its size
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # least-recently-used entries go when the folder passes 1 GiB (a kernel is 10 kB - 1 MB)
    try:
        jax.config.update("jax_compilation_cache_max_size", 1 << 30)
    except AttributeError:  # JAX before the size cap: unbounded folder
        pass
    from layerscope import _tracecache

    _tracecache.enable(d)  # and the traced (lowered) kernels beside the compiled ones
    return d
