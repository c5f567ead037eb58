"""JAX's persistent compilation cache for the command line.

The refinement kernels take seconds to compile (XLA on CPU) and are the same from one run to the
next for data of the same shape, so ``layerscope`` commands keep compiled kernels on disk: the
NAC four-stage refinement's first run in a new process goes from 19.5 s to 10.5 s (2-core CPU;
the rest is tracing and the fit itself). JAX keys every entry on the computation, the JAX/jaxlib
version, the backend and the compile flags, so a stale entry is never used for another program.

The cache is **off unless asked for** (``LAYERSCOPE_JAX_CACHE=DIR``, or ``=default`` for
``$XDG_CACHE_HOME/layerscope/jax``, i.e. ``~/.cache/layerscope/jax``; kept below 1 GiB, least
recently used entries removed). It was on by default until CI aborted inside
``backend.deserialize_executable`` (SIGSEGV in one run, SIGABRT in the next, both while the NAC
refinement read back a kernel that an earlier in-process CLI call had cached; jax/jaxlib 0.10.2,
CPU). Reading a cached CPU executable back is a known weak spot of XLA:CPU (jax-ml/jax#28908:
segfaults of deserialised executables; reports of LLVM ORC overflowing a worker stack while
materialising large deserialised modules), and a crash of the whole process is a worse failure
than a recompilation, so a user who wants the faster start opts in knowingly. ``off``, ``0`` or an
empty value switch it off explicitly.

Only the command line (and the study runner's workers) switch it on: importing layerscope as a
library changes no global JAX setting.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["cache_dir", "enable_compilation_cache"]

_OFF = {"", "0", "off", "no", "false"}


def cache_dir() -> Path | None:
    """The cache folder the environment asks for, or None when it is off (the default)."""
    v = os.environ.get("LAYERSCOPE_JAX_CACHE")
    if v is None or v.strip().lower() in _OFF:
        return None
    if v.strip().lower() == "default":
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "layerscope" / "jax"
    return Path(v).expanduser()


def enable_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at :func:`cache_dir`; return the folder used.

    A folder that cannot be created leaves the cache off with a one-line note on stderr.
    """
    d = cache_dir()
    if d is None:
        return None
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"layerscope: note: JAX compilation cache off, cannot create {d}: {exc}", file=sys.stderr)
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
    return d
