"""Rietveld intensity partitioning: "observed" integrated intensities, Bragg R, |F_obs|.

Each reflection's observed intensity is the observed pattern shared out in proportion to the
calculated peaks (Rietveld, J. Appl. Cryst. 2, 65 (1969); FullProf/GSAS "Iobs")::

    I_obs,h = Σ_t y_h(t) · (y_obs(t) − b(t)) / (y_calc(t) − b(t)) · Δt
    I_calc,h = Σ_t y_h(t) · Δt
    R_Bragg = Σ_h |I_obs,h − I_calc,h| / Σ_h I_obs,h
    |F_obs,h| = |F_calc,h| · √(I_obs,h / I_calc,h)

y_h is reflection h's contribution, evaluated with the same profile functions as the
pattern kernel (:mod:`layerscope.diffraction.pattern`), on the same window of points; this
module repeats the kernel's per-reflection lines because the kernel returns only the sum
over reflections.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.diffraction import tof_profile as tp  # noqa: E402
from layerscope.diffraction.pattern import _cell_inv_d2  # noqa: E402
from layerscope.diffraction.structure_factors import structure_factor_kernel  # noqa: E402

__all__ = ["ReflectionIntensities", "partition_phase", "bragg_r_factors"]


@dataclass(frozen=True)
class ReflectionIntensities:
    """Per-reflection results of one phase."""

    hkl: np.ndarray
    d_angstrom: np.ndarray
    tof_us: np.ndarray
    multiplicity: np.ndarray
    f_calc: np.ndarray          # complex, fm per cell
    i_calc: np.ndarray
    i_obs: np.ndarray
    f_obs: np.ndarray           # |F_obs| (fm)


def _reflection_profiles(setup, pp, ip, tof, absorption, sin_theta, lorentz):
    hkl = jnp.asarray(setup.hkl)
    inv_d2, vol = _cell_inv_d2(jnp.asarray(pp["cell"]), hkl)
    d = 1.0 / jnp.sqrt(inv_d2)
    t = setup.tables
    f = structure_factor_kernel(t.hr, t.ht, inv_d2, t.site_weight, t.spec_site, t.spec_b,
                                jnp.asarray(pp["xyz"]), jnp.asarray(pp["biso"]), jnp.asarray(pp["occ"]))
    f2 = jnp.real(f) ** 2 + jnp.imag(f) ** 2
    inten = pp["scale"] * setup.multiplicity * f2 * d**4 / vol**2 * jnp.exp(-absorption * 2.0 * d * sin_theta)
    th = tp.tof_from_d(d, ip["zero"], ip["difc"], ip["difa"], ip["difb"])
    alpha = tp.alpha_tof(d, ip["alpha"])
    beta = tp.beta_tof(d, ip["beta0"], ip["beta1"], ip["betaq"])
    sig2 = tp.sigma2_tof(d, ip["sig0"], ip["sig1"], ip["sig2"], ip["sigq"])
    gam = tp.gamma_tof(d, ip["x"], ip["y"], ip["z"])
    g_size = 1e-4 * ip["difc"] * d**2 * pp["inv_size"]
    g_strain = 1e-6 * ip["difc"] * d * pp["mustrain"]
    mx = pp["mx"]
    gam = gam + mx * (g_size + g_strain)
    sig2 = jnp.maximum(sig2 + (1.0 - mx) ** 2 * (g_size**2 + g_strain**2) / tp.EIGHT_LN2, 1e-6)
    n = tof.shape[0]
    k = setup.window
    start = jnp.clip(jnp.searchsorted(tof, th) - setup.left, 0, n - k)
    idx = start[:, None] + jnp.arange(k)[None, :]
    prof = tp.tof_peak(tof[idx] - th[:, None], alpha[:, None], beta[:, None], sig2[:, None], gam[:, None],
                       lorentz=lorentz)
    return d, th, f, inten, idx, inten[:, None] * prof


def partition_phase(model, tree, i_phase: int, y_obs, y_calc, background) -> ReflectionIntensities:
    """Observed and calculated integrated intensities of one phase's reflections."""
    setup = model.phases[i_phase]
    tof = jnp.asarray(model.tof_us)
    sin_theta = float(np.sin(np.radians(model.two_theta / 2)))
    d, th, f, inten, idx, contrib = _reflection_profiles(setup, tree["phases"][i_phase], tree["instrument"], tof,
                                                         tree["absorption"], sin_theta, model.lorentz)
    idx = np.asarray(idx)
    contrib = np.asarray(contrib)
    dt = np.gradient(model.tof_us)
    net_obs = np.asarray(y_obs) - np.asarray(background)
    net_calc = np.asarray(y_calc) - np.asarray(background)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.abs(net_calc) > 1e-12 * np.max(np.abs(net_calc)), net_obs / net_calc, 0.0)
    i_calc = np.sum(contrib * dt[idx], axis=1)
    i_obs = np.sum(contrib * ratio[idx] * dt[idx], axis=1)
    # reflections whose windows do not overlap the measured range contribute nothing
    inside = (np.asarray(th) >= model.tof_us[0]) & (np.asarray(th) <= model.tof_us[-1])
    f = np.asarray(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_obs = np.where(i_calc > 0, np.abs(f) * np.sqrt(np.clip(i_obs, 0, None) / i_calc), 0.0)
    return ReflectionIntensities(setup.hkl[inside].astype(int), np.asarray(d)[inside], np.asarray(th)[inside],
                                 setup.multiplicity[inside], f[inside], i_calc[inside], i_obs[inside],
                                 f_obs[inside])


def bragg_r_factors(model, tree, y_obs, y_calc, background):
    """Bragg R (%) per phase and the reflection TOFs (tick marks) by phase name."""
    r, ticks = {}, {}
    for i, s in enumerate(model.phases):
        ri = partition_phase(model, tree, i, y_obs, y_calc, background)
        denom = np.sum(np.abs(ri.i_obs))
        r[s.phase.name] = float(100 * np.sum(np.abs(ri.i_obs - ri.i_calc)) / denom) if denom > 0 else float("nan")
        ticks[s.phase.name] = ri.tof_us
    return r, ticks
