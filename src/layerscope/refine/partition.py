"""Rietveld intensity partitioning: "observed" integrated intensities, Bragg R, |F_obs|.

Each reflection's observed intensity is the observed pattern shared out in proportion to the
calculated peaks (Rietveld, J. Appl. Cryst. 2, 65 (1969); FullProf/GSAS "Iobs")::

    I_obs,h = Σ_t y_h(t) · (y_obs(t) − b(t)) / (y_calc(t) − b(t)) · Δt
    I_calc,h = Σ_t y_h(t) · Δt
    R_Bragg = Σ_h |I_obs,h − I_calc,h| / Σ_h I_obs,h
    |F_obs,h| = |F_calc,h| · √(I_obs,h / I_calc,h)

y_h = I_h · P(t − t_h) is reflection h's contribution. Its integrated intensity, position and
profile terms come from :func:`layerscope.diffraction.pattern.reflection_table` (the numbers
the pattern kernel uses); the unit-area profile P is evaluated here on the same window of
points as the kernel. The complex F_calc (needed for the phases of a Fourier map) is the
structure-factor kernel at the table's d-spacings.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.diffraction import tof_profile as tp  # noqa: E402
from layerscope.diffraction.pattern import reflection_table  # noqa: E402
from layerscope.diffraction.structure_factors import reciprocal_lengths, structure_factor_kernel  # noqa: E402

__all__ = ["ReflectionIntensities", "partition_phase", "bragg_r_factors", "complex_f_calc"]


@dataclass(frozen=True)
class ReflectionIntensities:
    """Per-reflection results of one phase (reflections inside the measured TOF range)."""

    hkl: np.ndarray
    d_angstrom: np.ndarray
    tof_us: np.ndarray
    multiplicity: np.ndarray
    f_calc: np.ndarray          # complex, fm per cell
    i_calc: np.ndarray
    i_obs: np.ndarray
    f_obs: np.ndarray           # |F_obs| (fm)


def _f_calc(hr, ht, d, site_weight, spec_site, spec_b, xyz, biso, occ, uani, cell, aniso_site):
    kw = {}
    if aniso_site:
        kw = {"uani": uani, "astar": reciprocal_lengths(cell), "aniso_site": np.asarray(aniso_site)}
    return structure_factor_kernel(hr, ht, 1.0 / d**2, site_weight, spec_site, spec_b, xyz, biso, occ, **kw)


# one compiled function per phase shape: evaluated op by op, the structure-factor sums compiled
# some forty small XLA programs on the first call (~2.5 s of a refinement's first run)
_f_calc_jit = jax.jit(_f_calc, static_argnames="aniso_site")


def complex_f_calc(setup, phase_params: dict, d_angstrom) -> np.ndarray:
    """Complex F(h) (fm) of one phase's reflections at the given d-spacings."""
    t = setup.tables
    aniso = tuple(int(i) for i in t.aniso_site)
    uani = phase_params.get("uani", t.uani) if aniso else np.zeros((0, 6))
    f = _f_calc_jit(t.hr, t.ht, np.asarray(d_angstrom, dtype=float), t.site_weight, t.spec_site, t.spec_b,
                    jnp.asarray(phase_params["xyz"]), jnp.asarray(phase_params["biso"]),
                    jnp.asarray(phase_params["occ"]), jnp.asarray(uani), jnp.asarray(phase_params["cell"]),
                    aniso_site=aniso)
    return np.asarray(f)


def _window_profiles(model, table, rows, window, left):
    """Unit-area profiles of the selected reflections on their windows of the TOF grid."""
    if "profile" in table:  # the pattern kernel's own windows and profiles (reflection_table(profiles=True))
        return table["window_index"][rows], table["profile"][rows]
    tof = np.asarray(model.tof_us)
    n = len(tof)
    th = table["tof_us"][rows]
    start = np.clip(np.searchsorted(tof, th) - left, 0, n - window)
    idx = start[:, None] + np.arange(window)[None, :]
    prof = tp.tof_peak(jnp.asarray(tof[idx] - th[:, None]), jnp.asarray(table["alpha"][rows])[:, None],
                       jnp.asarray(table["beta"][rows])[:, None], jnp.asarray(table["sig2"][rows])[:, None],
                       jnp.asarray(table["gamma"][rows])[:, None], lorentz=model.lorentz)
    return idx, np.asarray(prof)


def partition_phase(model, tree, i_phase: int, y_obs, y_calc, background, *, table=None) -> ReflectionIntensities:
    """Observed and calculated integrated intensities of one phase's reflections."""
    table = reflection_table(model, tree, profiles=True) if table is None else table
    setup = model.phases[i_phase]
    rows = np.where(table["phase"] == i_phase)[0]
    idx, prof = _window_profiles(model, table, rows, setup.window, setup.left)
    contrib = table["intensity"][rows][:, None] * prof
    dt = np.gradient(model.tof_us)
    net_obs = np.asarray(y_obs) - np.asarray(background)
    net_calc = np.asarray(y_calc) - np.asarray(background)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.abs(net_calc) > 1e-12 * np.max(np.abs(net_calc)), net_obs / net_calc, 0.0)
    i_calc = np.sum(contrib * dt[idx], axis=1)
    i_obs = np.sum(contrib * ratio[idx] * dt[idx], axis=1)
    th = table["tof_us"][rows]
    d = table["d_angstrom"][rows]
    # reflections whose positions lie outside the measured range are not "observed"
    inside = (th >= model.tof_us[0]) & (th <= model.tof_us[-1])
    f = complex_f_calc(setup, tree["phases"][i_phase], d)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_obs = np.where(i_calc > 0, np.abs(f) * np.sqrt(np.clip(i_obs, 0, None) / i_calc), 0.0)
    return ReflectionIntensities(table["hkl"][rows][inside], d[inside], th[inside],
                                 table["multiplicity"][rows][inside], f[inside], i_calc[inside], i_obs[inside],
                                 f_obs[inside])


def bragg_r_factors(model, tree, y_obs, y_calc, background, *, fallback: bool = True):
    """Bragg R (%) per phase and the reflection TOFs (tick marks) by phase name. ``fallback=False``:
    the profiles fit the model's sub-windows here (see ``reflection_table``)."""
    table = reflection_table(model, tree, profiles=True, fallback=fallback)
    r, ticks = {}, {}
    for i, s in enumerate(model.phases):
        ri = partition_phase(model, tree, i, y_obs, y_calc, background, table=table)
        denom = np.sum(np.abs(ri.i_obs))
        r[s.phase.name] = float(100 * np.sum(np.abs(ri.i_obs - ri.i_calc)) / denom) if denom > 0 else float("nan")
        ticks[s.phase.name] = ri.tof_us
    return r, ticks
