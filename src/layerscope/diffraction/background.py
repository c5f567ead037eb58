"""Powder-pattern backgrounds.

Chebyshev polynomials of the first kind on the TOF axis mapped onto [-1, 1] over
the fitted range (GSAS-II's "chebyschev-1" background):

    B(t) = Σ_k c_k T_k(x),  x = 2 (t − t_min)/(t_max − t_min) − 1
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["chebyshev_basis", "chebyshev_background"]


def chebyshev_basis(tof_us, n_terms: int, t_range=None):
    """(n_terms, N) matrix of T_k(x) at the TOF points (NumPy or JAX arrays)."""
    xp = jnp if isinstance(tof_us, jax.Array) else np
    t = tof_us
    t0, t1 = (t[0], t[-1]) if t_range is None else t_range
    x = 2.0 * (t - t0) / (t1 - t0) - 1.0
    rows = [xp.ones_like(x)]
    if n_terms > 1:
        rows.append(x)
    for _ in range(2, n_terms):
        rows.append(2.0 * x * rows[-1] - rows[-2])
    return xp.stack(rows[:n_terms])


def chebyshev_background(tof_us, coeffs, t_range=None):
    """Background B(t) for Chebyshev coefficients ``coeffs``."""
    n = coeffs.shape[0]
    if n == 0:
        return jnp.zeros_like(tof_us)
    return coeffs @ chebyshev_basis(tof_us, n, t_range)
