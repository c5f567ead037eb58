"""Nuclear structure factors with mixed occupancies and isotropic Debye–Waller factors.

    F(h) = Σ_s (m_s / n_ops) · b̄_s · exp(−B_s / (4 d²)) · Σ_g exp(2πi (h R_g x_s + h·t_g))
    b̄_s  = Σ_k occ_k · b_k                      (species k sharing site s)

The inner sum runs over all n_ops operations (centring included) of the space
group; dividing by the site's stabiliser size n_ops/m_s counts each distinct
position once. Written this way F is a smooth function of the free coordinates,
occupancies and Biso, so the Rietveld engine differentiates it with JAX.
b in fm (Sears 1992), so F is in fm per cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.crystal.phase import Phase, symmetry_operations  # noqa: E402
from layerscope.crystal.scattering import b_coh_fm  # noqa: E402

__all__ = ["SiteTables", "site_tables", "structure_factor_kernel", "structure_factors"]


@dataclass(frozen=True)
class SiteTables:
    """Arrays describing a phase's sites and the reflections' symmetry images.

    hr : (n_refl, n_ops, 3) h·R_g ; ht : (n_refl, n_ops) h·t_g
    site_weight : (n_sites,) m_s / n_ops
    spec_site : (n_spec,) site index of each species entry; spec_b : (n_spec,) b (fm)
    xyz, biso : (n_sites, 3), (n_sites,) ; occ : (n_spec,) — starting values
    """

    hr: np.ndarray
    ht: np.ndarray
    site_weight: np.ndarray
    spec_site: np.ndarray
    spec_b: np.ndarray
    spec_symbol: tuple[str, ...]
    xyz: np.ndarray
    biso: np.ndarray
    occ: np.ndarray


def site_tables(phase: Phase, hkl: np.ndarray) -> SiteTables:
    rot, trans = symmetry_operations(phase.spacegroup)
    h = np.asarray(hkl, dtype=float)
    hr = np.einsum("ni,gij->ngj", h, rot)
    ht = h @ trans.T
    mult = phase.site_multiplicities()
    spec_site, spec_b, spec_sym, occ = [], [], [], []
    for i, s in enumerate(phase.sites):
        for sym, o in s.species:
            spec_site.append(i)
            spec_b.append(b_coh_fm(sym))
            spec_sym.append(sym)
            occ.append(o)
    return SiteTables(
        hr=hr, ht=ht, site_weight=mult / len(rot),
        spec_site=np.asarray(spec_site, dtype=int), spec_b=np.asarray(spec_b), spec_symbol=tuple(spec_sym),
        xyz=np.array([s.xyz for s in phase.sites], dtype=float).reshape(-1, 3),
        biso=np.array([s.biso for s in phase.sites], dtype=float), occ=np.asarray(occ, dtype=float),
    )


def structure_factor_kernel(hr, ht, inv_d2, site_weight, spec_site, spec_b, xyz, biso, occ):
    """Complex F(h) (fm) — a pure JAX function of the arrays of :class:`SiteTables`.

    ``inv_d2`` is 1/d² (Å⁻²) of each reflection (it changes with the cell).
    """
    n_sites = xyz.shape[0]
    b_site = jax.ops.segment_sum(occ * spec_b, spec_site, num_segments=n_sites)
    arg = 2.0 * jnp.pi * (jnp.einsum("ngj,sj->nsg", hr, xyz) + ht[:, None, :])
    geo = jnp.sum(jnp.exp(1j * arg), axis=2)  # (n_refl, n_sites)
    dw = jnp.exp(-biso[None, :] * inv_d2[:, None] / 4.0)
    return jnp.sum(geo * dw * (site_weight * b_site)[None, :], axis=1)


def structure_factors(phase: Phase, hkl) -> np.ndarray:
    """Complex nuclear structure factors F(hkl) in fm for the phase as given."""
    from layerscope.diffraction.reflections import d_spacings

    hkl = np.atleast_2d(np.asarray(hkl))
    t = site_tables(phase, hkl)
    inv_d2 = 1.0 / d_spacings(phase.cell, hkl) ** 2
    f = structure_factor_kernel(t.hr, t.ht, inv_d2, t.site_weight, t.spec_site, t.spec_b, t.xyz, t.biso, t.occ)
    return np.asarray(f)
