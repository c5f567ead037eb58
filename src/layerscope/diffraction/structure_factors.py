"""Nuclear structure factors with mixed occupancies and isotropic or anisotropic Debye–Waller factors.

    F(h) = Σ_s (m_s / n_ops) · b̄_s · Σ_g T_sg(h) · exp(2πi (h R_g x_s + h·t_g))
    b̄_s  = Σ_k occ_k · b_k                      (species k sharing site s)
    T_sg = exp(−B_s / (4 d²))                            isotropic site
    T_sg = exp(−2π² Σ_ij k_i k_j U_ij,s),  k = (h R_g) ∘ (a*, b*, c*)   anisotropic site (U in
           the CIF convention; the image of the atom under (R_g, t_g) carries R_g U R_gᵀ, so its
           factor is the site's own one at the rotated index h R_g — Trueblood et al. 1996)

The inner sum runs over all n_ops operations (centring included) of the space
group; dividing by the site's stabiliser size n_ops/m_s counts each distinct
position once. Written this way F is a smooth function of the free coordinates,
occupancies and Biso, so the Rietveld engine differentiates it with JAX.
b in fm (Sears 1992 by default, or GSAS-II's table: ``scattering``), so F is in fm per cell. The anisotropic branch is taken only for
phases that have an anisotropic site, so isotropic phases cost what they did before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.crystal import geometry  # noqa: E402
from layerscope.crystal.phase import Phase, symmetry_operations  # noqa: E402
from layerscope.crystal.scattering import b_coh_fm  # noqa: E402

__all__ = ["SiteTables", "site_tables", "structure_factor_kernel", "structure_factors", "aniso_arguments",
           "reciprocal_lengths"]


@dataclass(frozen=True)
class SiteTables:
    """Arrays describing a phase's sites and the reflections' symmetry images.

    hr : (n_refl, n_ops, 3) h·R_g ; ht : (n_refl, n_ops) h·t_g
    site_weight : (n_sites,) m_s / n_ops
    spec_site : (n_spec,) site index of each species entry; spec_b : (n_spec,) b (fm)
    xyz, biso : (n_sites, 3), (n_sites,) ; occ : (n_spec,) — starting values
    aniso_site : (n_aniso,) indices of the anisotropic sites ; uani : (n_aniso, 6) their starting
        (U11, U22, U33, U12, U13, U23) in Å²
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
    aniso_site: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    uani: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))


def site_tables(phase: Phase, hkl: np.ndarray, *, scattering: str = "sears1992") -> SiteTables:
    """Site and symmetry arrays of a phase for reflections ``hkl``; ``scattering`` names the
    neutron scattering-length table (:data:`layerscope.crystal.scattering.SCATTERING_TABLES`)."""
    rot, trans = symmetry_operations(phase.spacegroup)
    h = np.asarray(hkl, dtype=float)
    hr = np.einsum("ni,gij->ngj", h, rot)
    ht = h @ trans.T
    mult = phase.site_multiplicities()
    spec_site, spec_b, spec_sym, occ = [], [], [], []
    for i, s in enumerate(phase.sites):
        for sym, o in s.species:
            spec_site.append(i)
            spec_b.append(b_coh_fm(sym, scattering))
            spec_sym.append(sym)
            occ.append(o)
    return SiteTables(
        hr=hr, ht=ht, site_weight=mult / len(rot),
        spec_site=np.asarray(spec_site, dtype=int), spec_b=np.asarray(spec_b), spec_symbol=tuple(spec_sym),
        xyz=np.array([s.xyz for s in phase.sites], dtype=float).reshape(-1, 3),
        biso=np.array([s.biso for s in phase.sites], dtype=float), occ=np.asarray(occ, dtype=float),
        aniso_site=np.array([i for i, s in enumerate(phase.sites) if s.uani is not None], dtype=int),
        uani=np.array([s.uani for s in phase.sites if s.uani is not None], dtype=float).reshape(-1, 6),
    )


def reciprocal_lengths(cell):
    """a*, b*, c* (Å⁻¹) of (a, b, c, α, β, γ) — JAX-traceable."""
    return geometry.reciprocal_lengths(cell, xp=jnp)


def aniso_arguments(tables: SiteTables, phase_params: dict) -> dict:
    """Keyword arguments of :func:`structure_factor_kernel` for a phase's anisotropic sites
    (``uani`` and the cell from the parameter pytree); empty for an isotropic phase."""
    if len(tables.aniso_site) == 0:
        return {}
    return {"uani": phase_params.get("uani", tables.uani), "astar": reciprocal_lengths(phase_params["cell"]),
            "aniso_site": tables.aniso_site}


def structure_factor_kernel(hr, ht, inv_d2, site_weight, spec_site, spec_b, xyz, biso, occ, *,
                            uani=None, astar=None, aniso_site=None):
    """Complex F(h) (fm) — a pure JAX function of the arrays of :class:`SiteTables`.

    ``inv_d2`` is 1/d² (Å⁻²) of each reflection (it changes with the cell). For anisotropic
    sites give ``uani`` (n_aniso, 6), ``astar`` = (a*, b*, c*) of the current cell and the
    static ``aniso_site`` indices (:func:`aniso_arguments`); their ``biso`` is then unused.
    """
    n_sites = xyz.shape[0]
    b_site = jax.ops.segment_sum(occ * spec_b, spec_site, num_segments=n_sites)
    arg = 2.0 * jnp.pi * (jnp.einsum("ngj,sj->nsg", hr, xyz) + ht[:, None, :])
    phase = jnp.exp(1j * arg)  # (n_refl, n_sites, n_ops)
    geo = jnp.sum(phase, axis=2)  # (n_refl, n_sites)
    dw = jnp.exp(-biso[None, :] * inv_d2[:, None] / 4.0)
    term = geo * dw
    if aniso_site is not None and len(aniso_site):
        idx = np.asarray(aniso_site)
        k = hr * astar  # (n_refl, n_ops, 3)
        kk = jnp.stack([k[..., 0] ** 2, k[..., 1] ** 2, k[..., 2] ** 2, 2 * k[..., 0] * k[..., 1],
                        2 * k[..., 0] * k[..., 2], 2 * k[..., 1] * k[..., 2]], axis=-1)
        t_aniso = jnp.exp(-2.0 * jnp.pi**2 * jnp.einsum("ngc,ac->nag", kk, uani))  # (n_refl, n_aniso, n_ops)
        term = term.at[:, idx].set(jnp.sum(phase[:, idx, :] * t_aniso, axis=2))
    return jnp.sum(term * (site_weight * b_site)[None, :], axis=1)


def structure_factors(phase: Phase, hkl, *, scattering: str = "sears1992") -> np.ndarray:
    """Complex nuclear structure factors F(hkl) in fm for the phase as given."""
    from layerscope.diffraction.reflections import d_spacings

    hkl = np.atleast_2d(np.asarray(hkl))
    t = site_tables(phase, hkl, scattering=scattering)
    inv_d2 = 1.0 / d_spacings(phase.cell, hkl) ** 2
    f = structure_factor_kernel(t.hr, t.ht, inv_d2, t.site_weight, t.spec_site, t.spec_b, t.xyz, t.biso, t.occ,
                                **aniso_arguments(t, {"uani": t.uani, "cell": jnp.asarray(phase.cell)}))
    return np.asarray(f)
