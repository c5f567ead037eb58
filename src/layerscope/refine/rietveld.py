"""A Rietveld refinement of one TOF pattern: build the model, run the stages, collect results.

``refine_pattern`` is a function of data (TOF grid, counts, σ), phases, an instrument and a
:class:`~layerscope.refine.strategy.Strategy`; it returns a frozen :class:`RietveldResult`
with every stage's fit, the refined phases, agreement factors, Bragg R per phase and the
Hill–Howard weight/molar fractions with esds.

Scale conventions (``Strategy.scale_model``):

* ``"phase"`` (FullProf): one scale S_p per phase, I_h = S_p m |F|² d⁴ / V² (S ∝ volume fraction).
* ``"gsas"`` (GSAS-II): S_p = h · f_p · V_p · sin θ, with the histogram scale h and phase
  fractions f_p = 1 at the start. GSAS-II's TOF intensity is h·f·m|F|² d⁴ sin θ / V
  (its ``Vst·Lorenz``), which is ours with that S_p; this lets a GSAS-II job that frees
  one phase fraction and the histogram scale be re-run step by step.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace

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
    #: the conventions used (``refine.conventions.Conventions.as_dict()``), recorded in the outputs
    conventions: dict = field(default_factory=dict)
    #: what the cell alignment before least squares did, one dict per phase scanned
    alignment: tuple = ()
    #: stages undone because they made the fit worse: (name, FitResult, message)
    reverted: tuple = ()
    #: results the method could not determine: dicts with kind, name, value, esd, reason
    flags: tuple = ()

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
        out += [msg for _, _, msg in self.reverted]
        out += [f["reason"] for f in self.flags]
        return tuple(out)

    def value(self, name: str) -> float:
        return float(self.full[self.layout_names.index(name)])

    def esd(self, name: str) -> float:
        return float(self.esd_full[self.layout_names.index(name)])

    def __repr__(self) -> str:  # Rwp, cells with esds, flags (refine.api.result_lines)
        from layerscope.refine.api import result_lines
        return "\n".join(result_lines(self))

    def _repr_html_(self) -> str:
        from layerscope.refine.api import result_html
        return result_html(self)

    def to_xarray(self):  # the pattern over tof_us, the parameters with esds (refine.api.result_dataset)
        from layerscope.refine.api import result_dataset
        return result_dataset(self)


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
                   d_min: float | None = None, window_margin: float = 1.3, scattering: str = "sears1992",
                   conventions: dict | None = None, log=None, absorption_form: str = "exponential",
                   extinction: dict | None = None) -> RietveldResult:
    """Run a staged Rietveld refinement.

    Parameters
    ----------
    tof_us, y, sigma : the pattern (µs, counts/µs and their σ) already cut to the fitted range
    phases : list of :class:`~layerscope.crystal.Phase`
    instrument : starting calibration and profile
    strategy : stages, constraints, bounds, cycles and the scale convention
    scales : starting phase scales by name (``"phase"`` convention; ignored for ``"gsas"``)
    mustrain, size_um : starting sample broadening by phase name
    absorption : starting μ of the absorption term exp(−μ·λ) (λ in Å), or of μR = μ·λ of a cylinder
        when ``absorption_form`` is "cylinder" (GSAS-II's) or "cylinder-hewat" (FullProf's)
    extinction : FullProf's TOF extinction parameter by phase name, fixed (``cw_sample.tof_extinction``)
    progress : optional callable(stage_name, FitResult) called after each stage
    d_min, window_margin : passed to :func:`~layerscope.diffraction.pattern.build_model` (GSAS-II
        drops reflections below its low TOF limit / difC and evaluates peaks over ~50 FWHM;
        window_margin 4 gives ~100 FWHM windows instead of ~32)
    scattering : neutron scattering-length table ("sears1992" or "gsas2")
    conventions : the conventions in force (recorded in the result as given)
    log : optional callable(str) for what the alignment and the stage checks did
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
        # a stage that frees the broadening may widen the peaks: size the windows for ≥ 2000e-6 / 0.5 µm
        for f in st.free:
            for p in phases:
                if fnmatch.fnmatchcase(f"{p.name}.mustrain", f):
                    start_mu[p.name] = max(start_mu.get(p.name, 0.0), 2000.0)
                if fnmatch.fnmatchcase(f"{p.name}.inv_size", f):
                    start_size[p.name] = min(start_size.get(p.name, np.inf), 0.5)
    model = build_model(list(phases), tof_us, instrument, n_background=n_background, lorentz=lorentz,
                        mustrain=start_mu, size_um=start_size, d_min=d_min, window_margin=window_margin,
                        lorentz_convention=strategy.lorentz_convention, scattering=scattering,
                        absorption_form=absorption_form, extinction=extinction)
    sin_t = float(np.sin(np.radians(instrument.two_theta / 2)))
    if strategy.scale_model == "gsas":
        scales = {p.name: p.volume * sin_t for p in phases}
    params = initial_params(model, scales=scales or {}, background=background, mustrain=mustrain,
                            size_um=size_um, absorption=absorption)
    layout = make_layout(model)
    full = layout.flatten(params)
    ev = Evaluator(model, layout)
    bounds = stage_bounds(layout, strategy)
    say = log or (lambda msg: None)
    alignment = ()
    if strategy.align_cells:
        full, alignment = align_cells(ev, layout, full, y, sigma, model, span=strategy.align_range)
        for a in alignment:
            say(f"alignment: {a['phase']} cell × {a['factor']:.5f} (χ² {a['chi2_before']:.6g} → "
                f"{a['chi2_after']:.6g}, {a['steps']} steps over ±{100 * strategy.align_range:.2f} %)")
    free: list[str] = []
    results = []
    reverted = []
    for st in strategy.stages:
        for k, v in st.start.items():
            for i in layout.match(k) or [layout.index(k)]:
                full[i] = float(v)
        before = list(free)
        new = [f for f in st.free if f not in free]
        if st.min_phase_fraction > 0 and len(phases) > 1:
            wf = _current_weight_fractions(layout, full, phases)
            minor = [p for p, w in wf.items() if w < st.min_phase_fraction]
            kept = [f for f in new if not any(f.startswith(f"{p}.") for p in minor)]
            if len(kept) < len(new):
                say(f"stage {st.name!r}: {', '.join(minor)} below {100 * st.min_phase_fraction:g} wt% — "
                    f"kept fixed: {', '.join(f for f in new if f not in kept)}")
            new = kept
        free = [f for f in free + new if f not in st.fix]
        # broadening at exactly 0 has no Lorentzian to differentiate: start it just above 0
        for f in new:
            for i in layout.match(f) if ("mustrain" in f or "inv_size" in f) else []:
                lo_i = bounds[0][i]
                if full[i] <= max(lo_i, 0.0):
                    full[i] = max(lo_i, 0.0) + (10.0 if layout.names[i].endswith(".mustrain") else 1e-3)
        fs = free_set(layout, full, free, constraints=strategy.constraints, bounds=bounds,
                      cell_jacobian=strategy.cell_jacobian)
        fr = least_squares(ev, fs, y, sigma, max_cycles=st.max_cycles or strategy.max_cycles, tol=strategy.tol,
                           schedule=strategy.schedule, ftol=strategy.ftol)
        if strategy.revert_worse and results:
            prev = results[-1][1]
            worse = not np.isfinite(fr.stats.chi2) or fr.stats.chi2 > prev.stats.chi2 * (1 + 1e-4)
            if worse or fr.diverged:
                msg = (f"stage {st.name!r} made the fit worse (χ²ν {prev.stats.chi2:.6g} → {fr.stats.chi2:.6g}): "
                       f"undone, its parameters fixed again")
                say(msg)
                reverted.append((st.name, fr, msg))
                free = before
                full = prev.full
                continue
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
    flags = undetermined_flags(results, layout.names, full, esd_full, names, s_eff, cov_s)
    return RietveldResult(
        tof_us=tof_us, y_obs=y, sigma=sigma, y_calc=total, background=bkg,
        phase_patterns={n: parts[i] for i, n in enumerate(names)}, stages=tuple(results), phases=new_phases,
        layout_names=layout.names, full=np.asarray(full), esd_full=esd_full,
        weight_fraction=dict(zip(names, map(float, wf))), weight_fraction_esd=dict(zip(names, map(float, wf_esd))),
        molar_fraction=dict(zip(names, map(float, mf))), molar_fraction_esd=dict(zip(names, map(float, mf_esd))),
        bragg_r=br, tick_tof_us=ticks, model=model, scale_model=strategy.scale_model,
        conventions=dict(conventions or {"lorentz": strategy.lorentz_convention, "scattering": scattering}),
        alignment=tuple(alignment), reverted=tuple(reverted), flags=tuple(flags))


def _current_weight_fractions(layout, full, phases) -> dict:
    h = full[layout.index("hscale")]
    s = np.array([h * full[layout.index(f"{p.name}.scale")] for p in phases])
    wf = weight_fractions(np.clip(s, 0, None), list(phases))
    return {p.name: float(w) for p, w in zip(phases, wf)}


#: a refined parameter whose esd exceeds this factor × |value| is flagged as undetermined
UNDETERMINED_ESD_FACTOR = 1.0
#: a phase whose effective scale is below this many esds is flagged as not determined
PHASE_SIGNIFICANCE = 3.0


def undetermined_flags(stages, names, full, esd_full, phase_names, s_eff, cov_s) -> list[dict]:
    """Flags for what the final fit could not determine: free parameters with esd >
    ``UNDETERMINED_ESD_FACTOR``·|value| (or a NaN esd), and phases whose scale is below
    ``PHASE_SIGNIFICANCE`` esds (their Bragg signal is not significant in this pattern)."""
    out = []
    final = stages[-1][1]
    index = {n: i for i, n in enumerate(names)}
    for n in final.names:
        if n.startswith("bkg.") or n not in index:
            continue
        v, e = float(full[index[n]]), float(esd_full[index[n]])
        if not np.isfinite(e) or e > UNDETERMINED_ESD_FACTOR * abs(v):
            out.append({"kind": "undetermined_parameter", "name": n, "value": v, "esd": e,
                        "reason": f"{n} = {v:.6g} ± {e:.3g}: esd exceeds {UNDETERMINED_ESD_FACTOR:g} × |value| "
                                  "(not determined by this pattern)"})
    esd_s = np.sqrt(np.clip(np.diag(np.nan_to_num(cov_s, nan=np.inf)), 0, None))
    for p, s, e in zip(phase_names, s_eff, esd_s):
        sig = float(s / e) if e > 0 else np.inf
        if len(phase_names) > 1 and not sig >= PHASE_SIGNIFICANCE:
            out.append({"kind": "phase_undetermined", "name": p, "value": float(s), "esd": float(e),
                        "reason": f"phase {p}: scale {s:.4g} ± {e:.3g} is below {PHASE_SIGNIFICANCE:g} esd "
                                  "(its Bragg signal is not significant in this pattern)"})
    return out


def align_cells(ev, layout, full, y, sigma, model, *, span: float = 0.007, order=None):
    """Scale each phase's cell lengths on a grid to the best profile match, before least squares.

    Cells from the literature are often 0.3–0.5 % off, several peak widths on a high-resolution
    instrument, where least squares starts in a wrong basin. For each phase (largest scale first)
    the lengths a, b, c are multiplied by factors 1 + t, |t| ≤ ``span``, on a grid of half the
    typical relative peak width (FWHM/t of the phase's reflections), with the scales and the
    background solved by linear least squares at every step
    (:func:`~layerscope.refine.engine.linear_scan`); a second grid of a fifth of that step
    refines the best point. Angles are kept. Returns (full vector, one record per phase).
    """
    from layerscope.diffraction.pattern import reflection_table
    from layerscope.refine.engine import linear_scan

    full = np.asarray(full, dtype=float).copy()
    tab = reflection_table(model, layout.unflatten(full))
    fwhm = np.sqrt(8 * np.log(2) * tab["sig2"]) + tab["gamma"]
    rel = fwhm / tab["tof_us"]
    scales = {p: abs(full[layout.index(f"{p}.scale")]) for p in layout.phase_names}
    phases = order or sorted(layout.phase_names, key=lambda p: -scales[p])
    records = []
    for p in phases:
        i = layout.phase_names.index(p)
        m = tab["phase"] == i
        if not np.any(m):
            continue
        step = max(0.5 * float(np.median(rel[m])), 2e-5)
        n = int(min(200, np.ceil(span / step)))
        idx = [layout.index(f"{p}.{c}") for c in ("a", "b", "c")]
        direction = np.zeros(len(full))
        direction[idx] = full[idx]
        grid = np.linspace(-span, span, 2 * n + 1)
        chi2, best = linear_scan(ev, full, direction, grid, y, sigma)
        j = int(np.argmin(chi2))
        k0 = int(np.argmin(np.abs(grid)))
        fine = grid[j] + np.linspace(-step, step, 11)
        chi2f, bestf = linear_scan(ev, full, direction, fine, y, sigma)
        jf = int(np.argmin(chi2f))
        if chi2f[jf] < chi2[j]:
            best, t, c_after = bestf, float(fine[jf]), float(chi2f[jf])
        else:
            t, c_after = float(grid[j]), float(chi2[j])
        full = best
        records.append({"phase": p, "factor": 1.0 + t, "chi2_before": float(chi2[k0]), "chi2_after": c_after,
                        "steps": int(len(grid) + len(fine)), "step": step})
    return full, records


def _molar_esd(s, phases, cov_s):
    s = np.asarray(s, dtype=float)
    base = molar_fractions(s, list(phases))
    jac = np.zeros((len(s), len(s)))
    for j in range(len(s)):
        ds = np.zeros(len(s))
        ds[j] = 1e-7 * max(abs(s[j]), 1e-12)
        jac[:, j] = (molar_fractions(s + ds, list(phases)) - base) / ds[j]
    return np.sqrt(np.clip(np.diag(jac @ np.nan_to_num(cov_s) @ jac.T), 0, None))


def linear_start(phases, tof_us, y, sigma, instrument, scales=None, n_background: int = 6, *,
                 scattering: str = "sears1992", mustrain=None, size_um=None, lorentz_convention: str = "exact",
                 d_min: float | None = None, phase_patterns=None):
    """Starting scales and Chebyshev background by weighted linear least squares.

    Phase scales and background coefficients enter the pattern linearly, so one solve with
    the structures as given puts them close to the data before the nonlinear stages.
    Returns (scales by name, background coefficients); scales keep the given relative values
    only as a fallback when a solved scale is not positive. ``scattering``, the starting
    broadening, the Lorentzian convention and ``d_min`` are those of the refinement to follow.
    ``phase_patterns``: the phases' patterns at unit scale in the order of ``phases``, when the
    caller has them (e.g. from the refinement's compiled Evaluator); the model is then not built
    and evaluated again here.
    """
    from layerscope.diffraction.background import chebyshev_basis
    from layerscope.diffraction.pattern import compute_pattern

    scales = dict(scales or {})
    tof_us = np.asarray(tof_us)
    t_range = (float(tof_us[0]), float(tof_us[-1]))
    if phase_patterns is None:
        model = build_model(list(phases), tof_us, instrument, n_background=n_background, mustrain=mustrain,
                            size_um=size_um, scattering=scattering, lorentz_convention=lorentz_convention,
                            d_min=d_min)
        pat = compute_pattern(model, scales={p.name: 1.0 for p in phases}, mustrain=mustrain, size_um=size_um)
        phase_patterns = [pat.phases[p.name] for p in phases]
        t_range = model.t_range
    cols = [np.asarray(u) for u in phase_patterns] + list(chebyshev_basis(tof_us, n_background, t_range))
    a = np.stack(cols, axis=1) / np.asarray(sigma)[:, None]
    norm = np.linalg.norm(a, axis=0)
    norm[norm == 0] = 1.0
    coef = np.linalg.lstsq(a / norm, np.asarray(y) / np.asarray(sigma), rcond=None)[0] / norm
    out = {}
    for i, p in enumerate(phases):
        out[p.name] = float(coef[i]) if coef[i] > 0 else float(scales.get(p.name, 1.0)) * 1e-3
    return out, coef[len(phases):]
