"""A Rietveld refinement of one TOF pattern: build the model, run the stages, collect results.

``refine_pattern`` is a function of data (TOF grid, counts, σ), phases, an instrument and a
:class:`~layerscope.refine.strategy.Strategy`; it returns a frozen :class:`RietveldResult`
with every stage's fit, the refined phases, agreement factors, Bragg R per phase and the
Hill–Howard weight/molar fractions with esds.

Scale conventions (``Strategy.scale_model``):

* ``"phase"`` (FullProf): one scale S_p per phase, I_h = S_p m |F|² d⁴ / V² (S ∝ volume fraction).
* ``"gsas"`` (GSAS-II): S_p = h · f_p · V_p · sin θ, with the histogram scale h and phase
  fractions f_p = 1 at the start. GSAS-II's TOF intensity is h·f·m|F|² d⁴ sin θ / V
  (its ``Vst·Lorenz``), which is ours with that S_p; this lets a GSAS-II protocol that frees
  one phase fraction and the histogram scale be re-run step by step.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace

import numpy as np

from layerscope.crystal.phase import Phase, Site
from layerscope.diffraction.fractions import molar_fractions, weight_fractions
from layerscope.diffraction.instrument import TOFInstrument
from layerscope.diffraction.pattern import build_model, initial_params
from layerscope.refine.engine import Evaluator, FitResult, least_squares
from layerscope.refine.parameters import free_set, make_layout
from layerscope.refine.partition import bragg_r_factors
from layerscope.refine.strategy import Strategy, stage_bounds

__all__ = ["RietveldResult", "refine_pattern", "refined_phases", "linear_start", "gsas2_limits"]


def gsas2_limits(x, low, high) -> np.ndarray:
    """Mask of the points GSAS-II fits for Limits [low, high]: from the first x ≥ low through
    the first x > high (its ``x[searchsorted(x, low):searchsorted(x, high) + 1]``)."""
    x = np.asarray(x, dtype=float)
    m = np.zeros(len(x), bool)
    m[np.searchsorted(x, low):np.searchsorted(x, high) + 1] = True
    return m


@dataclass(frozen=True)
class RietveldResult:
    """Everything a refinement produced (read-only)."""

    tof_us: np.ndarray
    y_obs: np.ndarray
    sigma: np.ndarray
    y_calc: np.ndarray
    background: np.ndarray
    phase_patterns: dict
    stages: tuple[tuple[str, FitResult], ...]
    phases: tuple[Phase, ...]
    layout_names: tuple[str, ...]
    full: np.ndarray
    esd_full: np.ndarray
    weight_fraction: dict
    weight_fraction_esd: dict
    molar_fraction: dict
    molar_fraction_esd: dict
    bragg_r: dict
    tick_tof_us: dict
    model: object
    scale_model: str

    @property
    def final(self) -> FitResult:
        return self.stages[-1][1]

    @property
    def converged(self) -> bool:
        return self.final.converged

    @property
    def warnings(self) -> tuple[str, ...]:
        out = []
        for name, fr in self.stages:
            out += [f"[{name}] {w}" for w in fr.warnings]
        return tuple(out)

    def value(self, name: str) -> float:
        return float(self.full[self.layout_names.index(name)])

    def esd(self, name: str) -> float:
        return float(self.esd_full[self.layout_names.index(name)])


def refined_phases(model, layout, full) -> tuple[Phase, ...]:
    """Phases with the refined cell, coordinates, occupancies and Biso of a full vector."""
    tree = layout.unflatten(np.asarray(full))
    out = []
    for setup, pp in zip(model.phases, tree["phases"]):
        ph = setup.phase
        cell = tuple(float(v) for v in np.asarray(pp["cell"]))
        xyz = np.asarray(pp["xyz"])
        occ = np.clip(np.asarray(pp["occ"]), 0.0, 1.0)
        biso = np.clip(np.asarray(pp["biso"]), 0.0, None)
        uani = {int(i): tuple(float(v) for v in u)
                for i, u in zip(setup.tables.aniso_site, np.asarray(pp.get("uani", np.zeros((0, 6)))))}
        sites = []
        k = 0
        for i, s in enumerate(ph.sites):
            species = []
            for sym, _ in s.species:
                species.append((sym, float(occ[k])))
                k += 1
            tot = sum(o for _, o in species)
            if tot > 1.0:
                species = [(sym, o / tot) for sym, o in species]
            sites.append(Site(s.label, tuple(float(v) for v in xyz[i]), tuple(species), float(biso[i]), s.wyckoff,
                              uani.get(i)))
        out.append(replace(ph, cell=cell, sites=tuple(sites)))
    return tuple(out)


def _needs_lorentz(strategy: Strategy, mustrain, size_um) -> bool:
    for st in strategy.stages:
        for f in st.free:
            if f.endswith((".mustrain", ".inv_size")):
                return True
        for k, v in st.start.items():
            if k.endswith((".mustrain", ".inv_size")) and v:
                return True
    return bool(any(v > 0 for v in (mustrain or {}).values()) or size_um)


def refine_pattern(tof_us, y, sigma, phases, instrument: TOFInstrument, strategy: Strategy, *,
                   scales=None, n_background: int = 6, background=None, mustrain=None, size_um=None,
                   lorentz: bool | None = None, absorption: float = 0.0, progress=None,
                   d_min: float | None = None, window_margin: float = 1.3) -> RietveldResult:
    """Run a staged Rietveld refinement.

    Parameters
    ----------
    tof_us, y, sigma : the pattern (µs, counts/µs and their σ) already cut to the fitted range
    phases : list of :class:`~layerscope.crystal.Phase`
    instrument : starting calibration and profile
    strategy : stages, constraints, bounds, cycles and the scale convention
    scales : starting phase scales by name (``"phase"`` convention; ignored for ``"gsas"``)
    mustrain, size_um : starting sample broadening by phase name
    absorption : starting μ of the absorption term exp(−μ·λ) (λ in Å)
    progress : optional callable(stage_name, FitResult) called after each stage
    d_min, window_margin : passed to :func:`~layerscope.diffraction.pattern.build_model` (GSAS-II
        drops reflections below its low TOF limit / difC and evaluates peaks over ~50 FWHM;
        window_margin 4 gives ~100 FWHM windows instead of ~32)
    """
    tof_us = np.asarray(tof_us, dtype=float)
    y = np.asarray(y, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    if lorentz is None:
        lorentz = _needs_lorentz(strategy, mustrain, size_um)
    # the largest broadening any stage starts from sets the peak windows
    start_mu = dict(mustrain or {})
    start_size = dict(size_um or {})
    for st in strategy.stages:
        for k, v in st.start.items():
            for p in phases:
                if fnmatch.fnmatchcase(f"{p.name}.mustrain", k):
                    start_mu[p.name] = max(start_mu.get(p.name, 0.0), float(v))
                elif fnmatch.fnmatchcase(f"{p.name}.inv_size", k) and v > 0:
                    start_size[p.name] = min(start_size.get(p.name, np.inf), 1.0 / float(v))
    model = build_model(list(phases), tof_us, instrument, n_background=n_background, lorentz=lorentz,
                        mustrain=start_mu, size_um=start_size, d_min=d_min, window_margin=window_margin,
                        lorentz_convention=strategy.lorentz_convention)
    sin_t = float(np.sin(np.radians(instrument.two_theta / 2)))
    if strategy.scale_model == "gsas":
        scales = {p.name: p.volume * sin_t for p in phases}
    params = initial_params(model, scales=scales or {}, background=background, mustrain=mustrain,
                            size_um=size_um, absorption=absorption)
    layout = make_layout(model)
    full = layout.flatten(params)
    ev = Evaluator(model, layout)
    bounds = stage_bounds(layout, strategy)
    free: list[str] = []
    results = []
    for st in strategy.stages:
        for k, v in st.start.items():
            for i in layout.match(k) or [layout.index(k)]:
                full[i] = float(v)
        free = [f for f in free + [f for f in st.free if f not in free] if f not in st.fix]
        fs = free_set(layout, full, free, constraints=strategy.constraints, bounds=bounds,
                      cell_jacobian=strategy.cell_jacobian)
        fr = least_squares(ev, fs, y, sigma, max_cycles=st.max_cycles or strategy.max_cycles, tol=strategy.tol,
                           schedule=strategy.schedule, ftol=strategy.ftol)
        full = fr.full
        results.append((st.name, fr))
        if progress is not None:
            progress(st.name, fr)
    final = results[-1][1]
    total, parts, bkg = ev.calc(full)
    new_phases = refined_phases(model, layout, full)
    cov = final.cov_full
    esd_full = final.esd_full
    # effective scales S_p = h·s_p and their covariance
    ih = layout.index("hscale")
    iscale = [layout.index(f"{p}.scale") for p in layout.phase_names]
    h = full[ih]
    s_eff = np.array([h * full[i] for i in iscale])
    jac = np.zeros((len(iscale), len(full)))
    for r, i in enumerate(iscale):
        jac[r, i] = h
        jac[r, ih] = full[i]
    cov_s = jac @ cov @ jac.T
    names = [p.name for p in new_phases]
    if len(new_phases) > 1:
        wf, wf_esd = weight_fractions(s_eff, list(new_phases), cov_s)
        mf = molar_fractions(s_eff, list(new_phases))
        mf_esd = _molar_esd(s_eff, new_phases, cov_s)
    else:
        wf, wf_esd, mf, mf_esd = np.ones(1), np.zeros(1), np.ones(1), np.zeros(1)
    tree = layout.unflatten(full)
    br, ticks = bragg_r_factors(model, tree, y, total, bkg, fallback=not ev.profiles_fit(full))
    return RietveldResult(
        tof_us=tof_us, y_obs=y, sigma=sigma, y_calc=total, background=bkg,
        phase_patterns={n: parts[i] for i, n in enumerate(names)}, stages=tuple(results), phases=new_phases,
        layout_names=layout.names, full=np.asarray(full), esd_full=esd_full,
        weight_fraction=dict(zip(names, map(float, wf))), weight_fraction_esd=dict(zip(names, map(float, wf_esd))),
        molar_fraction=dict(zip(names, map(float, mf))), molar_fraction_esd=dict(zip(names, map(float, mf_esd))),
        bragg_r=br, tick_tof_us=ticks, model=model, scale_model=strategy.scale_model)


def _molar_esd(s, phases, cov_s):
    s = np.asarray(s, dtype=float)
    base = molar_fractions(s, list(phases))
    jac = np.zeros((len(s), len(s)))
    for j in range(len(s)):
        ds = np.zeros(len(s))
        ds[j] = 1e-7 * max(abs(s[j]), 1e-12)
        jac[:, j] = (molar_fractions(s + ds, list(phases)) - base) / ds[j]
    return np.sqrt(np.clip(np.diag(jac @ np.nan_to_num(cov_s) @ jac.T), 0, None))


def linear_start(phases, tof_us, y, sigma, instrument, scales=None, n_background: int = 6):
    """Starting scales and Chebyshev background by weighted linear least squares.

    Phase scales and background coefficients enter the pattern linearly, so one solve with
    the structures as given puts them close to the data before the nonlinear stages.
    Returns (scales by name, background coefficients); scales keep the given relative values
    only as a fallback when a solved scale is not positive.
    """
    from layerscope.diffraction.background import chebyshev_basis
    from layerscope.diffraction.pattern import compute_pattern

    scales = dict(scales or {})
    model = build_model(list(phases), tof_us, instrument, n_background=n_background)
    pat = compute_pattern(model, scales={p.name: 1.0 for p in phases})
    cols = [pat.phases[p.name] for p in phases] + list(chebyshev_basis(np.asarray(tof_us), n_background,
                                                                       model.t_range))
    a = np.stack(cols, axis=1) / np.asarray(sigma)[:, None]
    norm = np.linalg.norm(a, axis=0)
    norm[norm == 0] = 1.0
    coef = np.linalg.lstsq(a / norm, np.asarray(y) / np.asarray(sigma), rcond=None)[0] / norm
    out = {}
    for i, p in enumerate(phases):
        out[p.name] = float(coef[i]) if coef[i] > 0 else float(scales.get(p.name, 1.0)) * 1e-3
    return out, coef[len(phases):]
