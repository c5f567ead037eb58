"""Host values to JAX arrays without compiling anything.

``jnp.asarray(numpy_array)`` outside a trace binds JAX's ``stage`` primitive, which (JAX 0.10)
compiles one tiny XLA program per new shape and dtype: 10-30 ms each, read back from the
persistent cache or compiled, ~50 of them for one 8-phase pattern model, so about a second of a
fresh process's first refinement went to copying arrays. ``jax.device_put`` copies without
compiling. Inside a trace (a Tracer) the value is returned as it is.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["to_device"]


def to_device(x, dtype=None):
    """``x`` (NumPy array, Python or NumPy scalar, nested list) as a JAX array on the default
    device, with NumPy's dtype rules (``dtype`` to force one); JAX arrays and tracers unchanged
    unless a different ``dtype`` is asked for."""
    if isinstance(x, (jax.Array, jax.core.Tracer)):
        return x if dtype is None or x.dtype == np.dtype(dtype) else x.astype(dtype)
    return jax.device_put(np.asarray(x, dtype=dtype))
