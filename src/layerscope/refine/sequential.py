"""Sequential (operando) Rietveld refinement with checkpoint/resume.

A series of patterns measured on one instrument is refined pattern by pattern, each seeded
from the previous result (or in reverse order). One pattern model and one compiled
pattern/Jacobian function serve the whole series, so the per-pattern cost is only the
least-squares cycles.

The protocol (a TOML file, default ``layerscope/data/operando_lrm.toml``) has a
``[reference]`` part — stages for the first, long uncharged pattern — and a ``[series]``
part for every following pattern, plus shared ``[[constraint]]``/``[[tie]]`` tables.
Constraints apply in a stage only when all their parameters are free in it. Phases whose
fraction among ``lrm_phases`` is below ``min_fraction`` have their cell and occupancies
fixed for that pattern (an unobservable phase must not wander), keeping the model's
starting cell (O3: table S3's) until it grows above the threshold; a phase whose cell was
refined keeps it free down to ``keep_fraction`` (hysteresis: an established minor phase such
as the spinel must not have its cell frozen while the true cell moves on), and a phase that
crosses ``min_fraction`` within a pattern is refined once more with its cell free. Groups of
parameters listed under ``[[series.hold]]`` (O3' exchange/migration occupancies) are held at
their last values while their phase is below the given fraction (row column ``held``). With
``bridge_holds = true`` a stretch of held patterns that is followed by patterns where the
parameters refine again is refined a second time, after the series, with the held values
interpolated linearly in time between the last refined pattern before the stretch and the
first after it: both ends are measurements, and a value carried forward from the start of the
stretch is stale wherever the quantity kept changing while unobservable (simulated experiment,
seed 3: the O3' exchange DoO held at 66 % while the truth fell to 50 % biased the minority
O3' b by ~1e-4 Å). Bridged rows say so in ``held``; if a bridged fit fails the checks the
forward result is kept and the failure is noted in its warnings.
Cells are seeded by linear extrapolation of the last two patterns (a predictor step) and
bounded to ± ``max_cell_step`` (0.5 %) of the previous pattern's values per
``cell_step_hours`` (0.5 h) elapsed between their mid-times (a trust region; 2 % for patterns
2 h apart; without times, ± ``max_cell_step`` per pattern).

Each result is checked: a fit whose GoF jumps (against the last pattern that passed; GoF, not
Rwp: Rwp scales with the counting time, and the reference pattern counts twice as long),
whose cell runs to the trust-region limit, whose fractions go clearly negative, or where a
well-determined phase (≥ min_fraction and ≥ 5 esd) loses more than three quarters of its
fraction within one pattern fails. It is then refined again from a grid scan of the major
LRM cells within the trust region (the peaks moved out of the least-squares basin: sparse
series, no trend yet); if that passes the checks the row's ``flag`` starts with "recovered by
a cell scan:" and the row counts as converged. Otherwise it is refined from the previous
pattern's values (with the affected cells fixed, or else with only the first stage free) and
the row is flagged (``flag`` column, ``converged`` False) — never reported silently.

Every row says which rule ended each stage (``stages``: shift/esd, or GSAS-II's relative χ²
change below ``chi2_tol`` over an undamped cycle, …) and, per phase, whether the pattern
determined it (``determined_<p>``, ``signal_<p>``, ``undetermined``: the esd of its fraction
above ``max_relative_esd`` of the value, or its Bragg signal below ``min_signal`` σ — see
:mod:`layerscope.refine.determined`); the figures do not draw undetermined values as
measurements.

Weight fractions are Hill–Howard's W_p = S_p ρ_p / Σ S_i ρ_i with ρ = cell mass / volume of
the *refined* occupancies and cell of each pattern (the cathode loses Li on charge).

After every pattern the state (full parameter vector, results row) is appended to
``checkpoint.json`` (written atomically); a run that is killed resumes after the last
completed pattern and produces identical results, because each pattern's refinement is a
deterministic function of its data and its seed vector.
"""

from __future__ import annotations

from layerscope._errors import reader
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.crystal.phase import metric_tensor  # noqa: E402
from layerscope.crystal.settings import O3_TO_O3P  # noqa: E402
from layerscope.diffraction.pattern import build_model, initial_params  # noqa: E402
from layerscope.refine.engine import Evaluator, least_squares  # noqa: E402
from layerscope.refine.parameters import free_set, make_layout  # noqa: E402
from layerscope.refine.strategy import Stage, Strategy, parse_strategy, stage_bounds  # noqa: E402

__all__ = ["SeriesProtocol", "read_series_protocol", "default_series_protocol", "refine_series",
           "SeriesRecord", "lrm_observables"]


@dataclass(frozen=True)
class SeriesProtocol:
    reference: Strategy
    series: Strategy
    min_fraction: float = 0.03
    lrm_phases: tuple[str, ...] = ("O3p", "O3", "S")
    anode_phases: tuple[str, ...] = ("graphite", "LiC12", "LiC6")
    fixed_scales: tuple[str, ...] = ()
    keep_ratio: tuple[tuple[str, str], ...] = ()
    conserve: tuple[tuple[tuple[str, ...], str], ...] = ()
    source: str = ""
    digest: str = ""
    #: a phase whose cell is being refined keeps it free down to this fraction (hysteresis;
    #: None: min_fraction / 4)
    keep_fraction: float | None = None
    #: largest relative change of a lattice parameter between consecutive patterns (the cell
    #: bounds of each pattern: previous value ± this)
    max_cell_step: float = 0.005
    cell_step_hours: float = 0.5
    #: (phase, fraction, params): params refined only while the phase's LRM fraction is at
    #: least ``fraction``, held at their last values below it
    hold: tuple[tuple[str, float, tuple[str, ...]], ...] = ()
    #: Chebyshev background terms of every pattern (None: refine_series' argument)
    n_background: int | None = None
    #: (param, within): a quantity the series refines inside ± ``within`` (its own units) of
    #: the reference pattern's refined value — one that does not change during the experiment
    #: but that the reference alone determines poorly (the Al foil's cell)
    window: tuple[tuple[str, float], ...] = ()
    #: re-refine stretches of held patterns with the held values interpolated in time between
    #: the refined patterns on either side (see the module docstring)
    bridge_holds: bool = False
    #: a phase is not determined in a pattern when its fraction's esd exceeds this fraction of
    #: the value, or its Bragg signal is below ``min_signal`` σ (layerscope.refine.determined)
    max_relative_esd: float = 0.5
    min_signal: float = 5.0
    #: GSAS-II's convergence rule besides shift/esd: a stage also ends when χ² falls by less
    #: than this (relative) over an undamped cycle (None: shift/esd only)
    chi2_tol: float | None = 1e-4

    def cell_limit(self, dt_h: float | None) -> float:
        """Largest relative cell change allowed between patterns ``dt_h`` hours apart."""
        if dt_h is None or not np.isfinite(dt_h):
            return self.max_cell_step
        return self.max_cell_step * max(1.0, abs(dt_h) / self.cell_step_hours)

    @property
    def keep(self) -> float:
        return self.min_fraction / 4 if self.keep_fraction is None else self.keep_fraction


def _parse_protocol(text: str, source: str) -> SeriesProtocol:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML ({exc})") from None
    from layerscope._toml import check_ints

    check_ints(doc, source)
    for key in ("reference", "series"):
        if key not in doc or "stage" not in doc[key]:
            raise ValueError(f"{source}: needs [[{key}.stage]] tables (stages for the "
                             f"{'reference pattern' if key == 'reference' else 'series patterns'})")
    shared = {k: doc[k] for k in ("constraint", "tie", "bounds") if k in doc}
    ref_doc = dict(doc["reference"])
    ref_refine = dict(ref_doc.get("refine", {}))
    keep_ratio = tuple(tuple(x) for x in ref_refine.pop("keep_ratio", []))
    if any(len(x) != 2 for x in keep_ratio):
        raise ValueError(f"{source}: reference.refine.keep_ratio takes pairs of phase names")
    ref_doc["refine"] = ref_refine
    ref = parse_strategy({**shared, **ref_doc}, f"{source} [reference]")
    ser_doc = {k: v for k, v in doc["series"].items()
               if k not in ("min_fraction", "lrm_phases", "anode_phases", "fixed_scales", "conserve",
                           "keep_fraction", "max_cell_step", "cell_step_hours", "hold", "n_background",
                           "window", "bridge_holds", "max_relative_esd", "min_signal", "chi2_tol")}
    ser = parse_strategy({**shared, **ser_doc}, f"{source} [series]")
    s = doc["series"]
    mf = float(s.get("min_fraction", 0.03))
    if not 0 <= mf < 1:
        raise ValueError(f"{source}: series.min_fraction must lie in [0, 1), got {mf}")
    kf = s.get("keep_fraction")
    if kf is not None and not 0 <= float(kf) <= mf:
        raise ValueError(f"{source}: series.keep_fraction must lie in [0, min_fraction = {mf}], got {kf}")
    step = float(s.get("max_cell_step", 0.005))
    if not 0 < step < 0.1:
        raise ValueError(f"{source}: series.max_cell_step must lie in (0, 0.1), got {step}")
    step_h = float(s.get("cell_step_hours", 0.5))
    if not step_h > 0:
        raise ValueError(f"{source}: series.cell_step_hours must be > 0, got {step_h}")
    nb = s.get("n_background")
    if nb is not None and (isinstance(nb, bool) or not isinstance(nb, int) or not 0 <= nb <= 36):
        raise ValueError(f"{source}: series.n_background must be an integer in [0, 36], got {nb!r}")
    conserve = []
    for g in s.get("conserve", []):
        if not isinstance(g, dict) or not g.get("phases") or not g.get("element"):
            raise ValueError(f"{source}: each series.conserve entry needs 'phases = [...]' and 'element = \"O\"'")
        conserve.append((tuple(g["phases"]), str(g["element"])))
    hold = []
    for h in s.get("hold", []):
        if not isinstance(h, dict) or "phase" not in h or "below" not in h or not h.get("params"):
            raise ValueError(f"{source}: each [[series.hold]] needs phase = \"NAME\", below = FRACTION and "
                             "params = [...]")
        if not 0 <= float(h["below"]) < 1:
            raise ValueError(f"{source}: [[series.hold]] {h['phase']}: below must lie in [0, 1), got {h['below']}")
        hold.append((str(h["phase"]), float(h["below"]), tuple(str(x) for x in h["params"])))
    window = []
    for w in s.get("window", []):
        if not isinstance(w, dict) or "param" not in w or "within" not in w:
            raise ValueError(f"{source}: each [[series.window]] needs param = \"PHASE.NAME\" and within = VALUE")
        if not (isinstance(w["within"], (int, float)) and not isinstance(w["within"], bool)
                and np.isfinite(w["within"]) and w["within"] > 0):
            raise ValueError(f"{source}: [[series.window]] {w['param']}: within must be a positive number, "
                             f"got {w['within']!r}")
        window.append((str(w["param"]), float(w["within"])))
    bridge = s.get("bridge_holds", False)
    if not isinstance(bridge, bool):
        raise ValueError(f"{source}: series.bridge_holds must be true or false, got {bridge!r}")
    mre, msig = s.get("max_relative_esd", 0.5), s.get("min_signal", 5.0)
    for key, v in (("max_relative_esd", mre), ("min_signal", msig)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (np.isfinite(v) and v > 0):
            raise ValueError(f"{source}: series.{key} must be a positive number, got {v!r}")
    ctol = s.get("chi2_tol", 1e-4)
    if ctol is not None and (isinstance(ctol, bool) or not isinstance(ctol, (int, float))
                             or not (np.isfinite(ctol) and 0 <= ctol < 1)):
        raise ValueError(f"{source}: series.chi2_tol must be a number in [0, 1) (0: shift/esd only), got {ctol!r}")
    return SeriesProtocol(ref, ser, mf, tuple(s.get("lrm_phases", ("O3p", "O3", "S"))),
                          tuple(s.get("anode_phases", ("graphite", "LiC12", "LiC6"))),
                          tuple(s.get("fixed_scales", ())), keep_ratio, tuple(conserve), source,
                          hashlib.sha256(text.encode()).hexdigest()[:16],
                          None if kf is None else float(kf), step, step_h, tuple(hold), nb, tuple(window), bridge,
                          float(mre), float(msig), float(ctol) if ctol else None)


@reader
def read_series_protocol(path) -> SeriesProtocol:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: strategy file not found")
    return _parse_protocol(path.read_text(), str(path))


def default_series_protocol() -> SeriesProtocol:
    text = resources.files("layerscope.data").joinpath("operando_lrm.toml").read_text()
    return _parse_protocol(text, "operando_lrm.toml (built in)")


@dataclass(frozen=True)
class SeriesRecord:
    """One refined pattern: its name, the full parameter vector and the derived row."""

    name: str
    full: list
    row: dict
    warnings: list = field(default_factory=list)


# --- observables with esds -----------------------------------------------------------------
def _d(cell, hkl):
    """d-spacing of ``hkl`` from the cell: 1/d² = hᵀ G⁻¹ h with G⁻¹ = adj(G)/det(G) written out
    (a traced 3 × 3 inverse per spacing made the observables' first compilation ~1 s longer)."""
    a, b, c, al, be, ga = (cell[i] for i in range(6))
    ca, cb, cg = jnp.cos(jnp.deg2rad(al)), jnp.cos(jnp.deg2rad(be)), jnp.cos(jnp.deg2rad(ga))
    g11, g22, g33, g12, g13, g23 = a * a, b * b, c * c, a * b * cg, a * c * cb, b * c * ca
    adj11, adj22, adj33 = g22 * g33 - g23 * g23, g11 * g33 - g13 * g13, g11 * g22 - g12 * g12
    adj12, adj13, adj23 = g13 * g23 - g12 * g33, g12 * g23 - g13 * g22, g12 * g13 - g11 * g23
    det = g11 * adj11 + g12 * adj12 + g13 * adj13
    h, k, l = (float(x) for x in hkl)
    q = (h * h * adj11 + k * k * adj22 + l * l * adj33 + 2 * h * k * adj12 + 2 * h * l * adj13
         + 2 * k * l * adj23)
    return 1.0 / jnp.sqrt(q / det)


_INTRA_O3 = np.array([[1, 0, 0], [0, 1, 0], [1, -1, 0]], dtype=float)


def _volume(cell, xp=np):
    ca, cb, cg = (xp.cos(xp.deg2rad(cell[i])) for i in (3, 4, 5))
    return cell[0] * cell[1] * cell[2] * xp.sqrt(1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg)


def _mass_terms(phase, p, idx):
    """(indices, weights) with cell mass = Σ weight · v[index] over the occupancy parameters."""
    from layerscope.crystal.scattering import atomic_weight

    ii, ww = [], []
    for m, site in zip(phase.site_multiplicities(), phase.sites):
        for sym, _ in site.species:
            ii.append(idx[f"{p}.occ[{site.label}:{sym}]"])
            ww.append(float(m) * atomic_weight(sym))
    return np.array(ii, dtype=int), np.array(ww)


def density_functions(layout, model, names, xp=jnp) -> dict:
    """ρ_p(v) = cell mass / cell volume of each named phase at the parameter vector ``v``: the
    Hill–Howard weight fraction W_p = S_p ρ_p / Σ S_i ρ_i needs the *current* composition and
    cell (Li leaves the cathode on charge, the cells swell and shrink), not the starting ones."""
    idx = {n: i for i, n in enumerate(layout.names)}
    phases = {s.phase.name: s.phase for s in model.phases}
    out = {}
    for p in names:
        ii, ww = _mass_terms(phases[p], p, idx)
        i0 = idx[f"{p}.a"]
        out[p] = (lambda v, ii=ii, ww=ww, i0=i0: (v[ii] * ww).sum() / _volume(v[i0:i0 + 6], xp))
    return out


def lrm_observables(layout, model, protocol: SeriesProtocol) -> dict:
    """Functions of the full vector for every reported quantity (JAX-differentiable)."""
    names = list(layout.names)
    idx = {n: i for i, n in enumerate(names)}
    phases = {s.phase.name: s.phase for s in model.phases}
    lrm = [p for p in protocol.lrm_phases if p in phases]
    anode = [p for p in protocol.anode_phases if p in phases]
    rho = density_functions(layout, model, lrm)
    obs = {}

    def scale(v, p):
        return v[idx["hscale"]] * v[idx[f"{p}.scale"]]

    def cell(v, p):
        i0 = idx[f"{p}.a"]
        return v[i0:i0 + 6]

    for p in lrm:
        def frac(v, p=p):
            w = {q: scale(v, q) * rho[q](v) for q in lrm}
            return w[p] / sum(w.values())
        obs[f"frac_{p}"] = frac
    n_c = {p: sum(o * m for m, s in zip(phases[p].site_multiplicities(), phases[p].sites)
                  for sym, o in s.species if sym == "C") for p in anode}
    for p in anode:
        def cfrac(v, p=p):
            n = {q: scale(v, q) * n_c[q] / phases[q].volume for q in anode}
            return n[p] / sum(n.values())
        obs[f"frac_{p}"] = cfrac
    for p in lrm:
        sg = phases[p].space_group.number
        if sg == 12:
            for k, j in (("a", 0), ("b", 1), ("c", 2), ("beta", 4)):
                obs[f"{p}_{k}"] = (lambda v, p=p, j=j: cell(v, p)[j])
            obs[f"d_inter_{p}"] = lambda v, p=p: _d(cell(v, p), [0, 0, 1])
            obs[f"d_intra_{p}"] = lambda v, p=p: sum(_d(cell(v, p), h) for h in _INTRA_O3 @ O3_TO_O3P) / 3
        elif sg == 166:
            obs[f"{p}_a"] = lambda v, p=p: cell(v, p)[0]
            obs[f"{p}_c"] = lambda v, p=p: cell(v, p)[2]
            obs[f"d_inter_{p}"] = lambda v, p=p: _d(cell(v, p), [0, 0, 3])
            obs[f"d_intra_{p}"] = lambda v, p=p: sum(_d(cell(v, p), h) for h in _INTRA_O3) / 3
        else:
            obs[f"{p}_a"] = lambda v, p=p: cell(v, p)[0]
    o3p = next((p for p in lrm if phases[p].space_group.number == 12), None)
    if o3p is not None:
        from layerscope.descriptors import find_o3p_sites

        sites = find_o3p_sites(phases[o3p])

        def occ(v, site, which):
            tot = 0.0
            for sym, _ in site.species:
                el = sym.lstrip("0123456789")
                if (which == "Li") == (el == "Li") and el != "O":
                    tot = tot + v[idx[f"{o3p}.occ[{site.label}:{sym}]"]]
            return tot

        obs["DoO"] = lambda v: occ(v, sites["2b"], "Li") / (occ(v, sites["2b"], "Li") + 2 * occ(v, sites["4g"], "Li"))

        def dod(v):
            t4h, t4g, t2b = (occ(v, sites[k], "TM") for k in ("4h", "4g", "2b"))
            return 2 * t4h / (2 * t4h + 2 * t4g + t2b)
        obs["DoD"] = dod

        def o_vac(phase_name):
            ph = phases[phase_name]
            terms = [(m, s) for m, s in zip(ph.site_multiplicities(), ph.sites) if any(x == "O" for x, _ in s.species)]
            den = sum(m for m, _ in terms)

            def f(v):
                return 1.0 - sum(m * v[idx[f"{phase_name}.occ[{s.label}:O]"]] for m, s in terms) / den
            return f

        vac = {p: o_vac(p) for p in lrm if phases[p].space_group.number in (12, 166)}

        def o_vacancy(v):
            return sum(vac[p](v) * obs[f"frac_{p}"](v) for p in vac)
        obs["O_vacancy"] = o_vacancy
    return obs


#: compiled (values, Jacobian) of the observables of recent series: {id(obs): (obs, function)}
_OBS_FUNCTIONS: dict = {}


def _observable_function(obs):
    """One compiled function of the full vector giving every observable's value and gradient
    (reverse mode, all observables at once). Evaluated op by op, the gradients of the ~20
    observables cost about a second per pattern (and ~20 s of small compilations at the first
    pattern); compiled together they cost milliseconds after one compilation per series."""
    hit = _OBS_FUNCTIONS.get(id(obs))
    if hit is not None and hit[0] is obs:
        return hit[1]
    names = list(obs)

    def values(v):
        return jnp.stack([jnp.asarray(obs[n](v), dtype=v.dtype) for n in names])

    fn = jax.jit(lambda v: (values(v), jax.jacrev(values)(v)))
    while len(_OBS_FUNCTIONS) >= 8:
        _OBS_FUNCTIONS.pop(next(iter(_OBS_FUNCTIONS)))
    _OBS_FUNCTIONS[id(obs)] = (obs, fn)
    return fn


def _evaluate_observables(obs, full, cov):
    """Value and esd of every observable; the esd is NaN where this pattern's refinement did not
    determine the quantity: it depends only on parameters that were not refined (held O3'
    exchange, a phase's cell fixed below min_fraction, the reference's unrefined occupancies —
    an esd of 0 would read as exact), or on a parameter the normal matrix left undetermined."""
    vals, jac = _observable_function(obs)(jnp.asarray(full, dtype=float))
    vals, jac = np.asarray(vals, dtype=float), np.asarray(jac, dtype=float)
    out = {}
    var = None if cov is None else np.diag(np.asarray(cov, dtype=float))
    c = None if cov is None else np.nan_to_num(cov)
    for k, name in enumerate(obs):
        esd = float("nan")
        if cov is not None:
            g = jac[k]
            dep = g != 0
            undetermined = np.any(dep & ~np.isfinite(var))
            not_refined = np.any(dep) and np.all(var[dep] == 0)
            if not (undetermined or not_refined):
                esd = float(np.sqrt(max(g @ c @ g, 0.0)))
        out[name] = float(vals[k])
        out[f"{name}_esd"] = esd
    return out


def _determined(ev, full, y, sigma, row, model, protocol):
    """``signal_<p>``, ``determined_<p>`` and ``undetermined`` of every phase with a fraction
    column (:mod:`layerscope.refine.determined`)."""
    from layerscope.refine.determined import determination, phase_signals

    present = {s.phase.name for s in model.phases}
    names = [p for p in (*protocol.lrm_phases, *protocol.anode_phases) if p in present and f"frac_{p}" in row]
    sig = phase_signals(ev, full, y, sigma, names)
    return determination(row, sig, max_relative_esd=protocol.max_relative_esd, min_signal=protocol.min_signal)


def stop_rules(log) -> str:
    """Which rule ended each stage: ``"STAGE: RULE (N cycles); …"`` (shift/esd, chi2 change —
    GSAS-II's —, no lower chi2, max cycles, diverged)."""
    return "; ".join(f"{name}: {fr.stop_rule or '?'} ({fr.n_cycles} cycles)" for name, fr in log)


# --- the sequential loop -----------------------------------------------------------------
def _constraints_for(fs_names, strategy, layout):
    free_names = set(fs_names)
    out = []
    for c in strategy.constraints:
        if all(n in free_names for n in c.terms):
            out.append(c)
    return out


def _stage_free(stage_free, small):
    """Drop cell/occupancy groups of the phases in ``small`` (too small to be observed)."""
    return [key for key in stage_free if not (key.split(".")[0] in small and not key.endswith(".scale"))]


def held_params(fractions: dict, protocol: SeriesProtocol) -> set:
    """Parameters held at their last values because their phase is below its ``hold`` fraction."""
    return {n for ph, below, params in protocol.hold if fractions.get(ph, 1.0) < below for n in params}


def held_note(fractions: dict, protocol: SeriesProtocol) -> str:
    return "; ".join(f"{ph}: {len(params)} parameter(s) held ({ph} {100 * fractions[ph]:.1f} % < {100 * below:.0f} %)"
                     for ph, below, params in protocol.hold if fractions.get(ph, 1.0) < below)


def active_phases(fractions: dict, previous: set | frozenset | None, protocol: SeriesProtocol) -> frozenset:
    """Phases whose cell/structure refine in the next pattern: those at or above
    ``min_fraction``, and those refined before that are still at or above ``keep_fraction``
    (hysteresis: an established phase near the threshold must not have its cell frozen while
    the true cell moves on — the spinel of seed 2 was lost that way)."""
    prev = previous or frozenset()
    return frozenset(p for p, f in fractions.items()
                     if f >= protocol.min_fraction or (p in prev and f >= protocol.keep))


def _tie_start(full, strategy, layout):
    """Make the starting vector satisfy the ties (copy the first term's value to the others)."""
    for c in strategy.constraints:
        items = list(c.terms.items())
        if c.value is None and len(items) == 2 and items[0][1] == 1.0 and items[1][1] == -1.0:
            full[layout.index(items[1][0])] = full[layout.index(items[0][0])]
    return full


def _cell_volume(cell) -> float:
    return float(np.sqrt(np.linalg.det(metric_tensor(cell))))


def _conservation_terms(full, layout, model, group):
    phases = {s.phase.name: s.phase for s in model.phases}
    names, element = group
    out = {}
    for p in names:
        if p in phases:
            i0 = layout.index(f"{p}.a")
            out[f"{p}.scale"] = phases[p].site_count(element) / _cell_volume(full[i0:i0 + 6])
    return out


def conservation_totals(full, layout, model, protocol) -> list[float]:
    """Σ scale·n/V of each conserved group, at the given parameters (the reference's values)."""
    return [sum(c * full[layout.index(n)] for n, c in _conservation_terms(full, layout, model, g).items())
            for g in protocol.conserve]


def _lrm_fractions(full, layout, model, protocol):
    phases = {s.phase.name: s.phase for s in model.phases}
    lrm = [p for p in protocol.lrm_phases if p in phases]
    rho = density_functions(layout, model, lrm, xp=np)
    full = np.asarray(full, dtype=float)
    w = {p: full[layout.index(f"{p}.scale")] * rho[p](full) for p in lrm}
    tot = sum(w.values()) or 1.0
    return {p: v / tot for p, v in w.items()}


def refine_one(ev, layout, model, full, y, sigma, strategy: Strategy, protocol: SeriesProtocol, bounds,
               totals=None, *, active=None, held=None, schedule: str = "layerscope"):
    """Run the stages of one strategy on one pattern; returns (full, final FitResult, stage log).

    ``totals``: the conserved amounts from the reference (None for the reference itself).
    ``active``: LRM phases whose cell/structure may refine (default: those at or above
    ``min_fraction`` in ``full``). ``held``: parameters kept at their values in ``full``
    (default: the ``[[series.hold]]`` groups of the phases below their fraction in ``full``).
    ``schedule``: :func:`~layerscope.refine.engine.least_squares`' ("gsas2": GSAS-II's cycles).
    """
    full = np.array(full, dtype=float)
    fractions = _lrm_fractions(full, layout, model, protocol)
    if active is None:
        active = active_phases(fractions, None, protocol)
    small = {p for p in fractions if p not in active}
    held = held_params(fractions, protocol) if held is None else set(held)
    free: list[str] = []
    fr = None
    log = []
    for st in strategy.stages:
        for k, v in st.start.items():
            for i in layout.match(k) or [layout.index(k)]:
                full[i] = float(v)
        free = [f for f in free + [f for f in st.free if f not in free] if f not in st.fix]
        use = [k for k in _stage_free(free, small) if k not in held]
        if totals is not None:
            use = [k for k in use if k not in {f"{p}.scale" for p in protocol.fixed_scales}]
        probe = free_set(layout, full, use, bounds=bounds)
        cons = _constraints_for(probe.names, strategy, layout)
        from layerscope.refine.parameters import Constraint

        if totals is None:
            for a, b in protocol.keep_ratio:
                na, nb = f"{a}.scale", f"{b}.scale"
                if na in probe.names and nb in probe.names and full[layout.index(na)] > 0:
                    r = full[layout.index(nb)] / full[layout.index(na)]
                    cons.append(Constraint({nb: 1.0, na: -r}, 0.0))
        if totals is not None:
            for g, tot in zip(protocol.conserve, totals):
                terms = _conservation_terms(full, layout, model, g)
                if all(n in probe.names for n in terms):
                    cons.append(Constraint(terms, tot))
        fs = free_set(layout, full, use, constraints=cons, bounds=bounds)
        fr = least_squares(ev, fs, y, sigma, max_cycles=st.max_cycles or strategy.max_cycles, tol=strategy.tol,
                           chi2_tol=protocol.chi2_tol, schedule=schedule)
        full = np.array(fr.full)
        log.append((st.name, fr))
    return full, fr, log


def refine_series(patterns, phases, instrument, *, protocol: SeriesProtocol | None = None, out_dir=None,
                  n_background: int | None = None, reverse: bool = False, progress=None, times=None,
                  start_fractions: dict | None = None, bridge_progress=None):
    """Refine a series of patterns sequentially.

    NumPy's BLAS/LAPACK runs single-threaded meanwhile: its matrices here are small (N × ~30
    Jacobians, 30 × 30 normal matrices, the N × 12 background design), and a threaded BLAS
    spent ~10× the CPU time of one thread on them on a shared 2-core machine (a reduced QR of
    4000 × 12: 15 ms of CPU, 48 ms wall, against 1.3 ms single-threaded).

    Parameters
    ----------
    patterns : list of (name, tof_us, y, sigma); the first is the reference pattern
        (refined with the protocol's ``[reference]`` stages), every pattern shares its TOF grid
    phases : starting phases (e.g. ``preset("lrm-pouch").phases``)
    instrument : :class:`~layerscope.diffraction.instrument.TOFInstrument`
    out_dir : folder for ``checkpoint.json`` (resume) — None keeps everything in memory
    n_background : Chebyshev background terms (None: the protocol's ``series.n_background``,
        else 6)
    reverse : refine the series patterns from the last to the first (the reference first)
    progress : callable(i, n, record) after each pattern
    bridge_progress : callable(record, note) after each pattern of a bridged hold stretch
        (``bridge_holds``); note is "" or why the forward result was kept
    times : optional per-pattern dict merged into each row (e.g. aligned cycler values)
    start_fractions : weight fractions of phases within their group to start from (e.g. the
        model's ``{"O3p": 0.9716, "S": 0.0284}``): the linear start's total is split by them

    Returns the list of :class:`SeriesRecord` in the order of ``patterns``.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _refine_series(patterns, phases, instrument, protocol, out_dir, n_background, reverse, progress,
                              times, start_fractions, bridge_progress)


def _refine_series(patterns, phases, instrument, protocol, out_dir, n_background, reverse, progress, times,
                   start_fractions, bridge_progress):
    protocol = protocol or default_series_protocol()
    if n_background is None:
        n_background = 6 if protocol.n_background is None else protocol.n_background
    if not patterns:
        raise ValueError("the series has no patterns")
    name0, tof, _, _ = patterns[0]
    for name, t, y, s in patterns:
        if t.shape != tof.shape or not np.allclose(t, tof, rtol=1e-9):
            raise ValueError(f"{name}: TOF grid differs from the reference pattern's; a series must share one grid")
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(s)) and np.all(s > 0)):
            raise ValueError(f"{name}: intensities must be finite with σ > 0")
    model = build_model(list(phases), tof, instrument, n_background=n_background)
    layout = make_layout(model)
    for wname, _ in protocol.window:
        if wname not in layout.names:
            raise ValueError(f"{protocol.source}: [[series.window]] param {wname!r} is not a quantity of this model "
                             f"(e.g. {', '.join(n for n in layout.names if n.endswith('.a'))})")
    ev = Evaluator(model, layout)
    # one compiled Jacobian per series stage, whichever phases are active
    union = [f for st in protocol.series.stages for f in st.free]
    ev.share_kernels(free_set(layout, np.array(layout.flatten(initial_params(model))),
                                       list(dict.fromkeys(union))).jacobian_columns)
    phase_names = [p.name for p in phases]
    # start: the reference's own structures, linear scales + background
    from layerscope.refine.rietveld import linear_start

    ckpt = _Checkpoint(out_dir, [p[0] for p in patterns], protocol, phase_names) if out_dir else None
    done = ckpt.load() if ckpt else {}
    order = [0] + (list(range(len(patterns) - 1, 0, -1)) if reverse else list(range(1, len(patterns))))
    bounds_ref = stage_bounds(layout, protocol.reference)
    bounds_ser = stage_bounds(layout, protocol.series)
    obs = lrm_observables(layout, model, protocol)
    records: dict[int, SeriesRecord] = {}
    full = None
    totals = None
    history: list = []
    prev_gof, seed_prev, prev_row = np.inf, None, None
    active = None
    after_active: dict[int, frozenset] = {}
    t_prev = None
    ref_full = None
    for k, i in enumerate(order):
        name, _, y, s = patterns[i]
        if name in done:
            records[i] = done[name]
            full = np.array(done[name].full)
            seed_prev, prev_row = np.array(full), done[name].row
            if not _flagged(done[name].row.get("flag", "")):
                prev_gof = float(done[name].row["gof"])
            active = active_phases(_lrm_fractions(full, layout, model, protocol), None if i == 0 else active,
                                   protocol)
            after_active[i] = active
            if i == 0:
                totals = conservation_totals(full, layout, model, protocol)
                ref_full = np.array(full)
            else:
                history.append((_time_of(times, i, k), np.array(full), active))
            t_prev = _hours(times, i)
            if progress:
                progress(k, len(order), records[i])
            continue
        if full is None:
            # the phases' unit-scale patterns from the compiled Evaluator (linear_start would
            # build and compile the model once more)
            unit = ev.calc(np.array(layout.flatten(initial_params(model, scales={p.name: 1.0 for p in phases}))))[1]
            scales, bkg = linear_start(phases, tof, y, s, instrument, n_background=n_background, phase_patterns=unit)
            if start_fractions:
                scales = _split_scales(scales, start_fractions, phases)
            params = initial_params(model, scales=scales, background=bkg)
            full = _tie_start(np.array(layout.flatten(params)), protocol.series, layout)
        t_now = _hours(times, i)
        lim = protocol.cell_limit(None if t_now is None or t_prev is None else t_now - t_prev)
        if i != 0 and len(history) >= 2:
            full = _predict_cells(full, history, _time_of(times, i, k), layout, model, protocol, lim)
        strategy = protocol.reference if i == 0 else protocol.series
        held = held_note(_lrm_fractions(full, layout, model, protocol), protocol) if i != 0 else ""
        bounds = bounds_ref if i == 0 else _window_bounds(
            _trust_bounds(bounds_ser, seed_prev, layout, model, protocol, lim), ref_full, layout, protocol)
        full, fr, log = refine_one(ev, layout, model, full, y, s, strategy, protocol, bounds,
                                   None if i == 0 else totals, active=None if i == 0 else active)
        if i != 0:
            grown = active_phases(_lrm_fractions(full, layout, model, protocol), active, protocol) - active
            if grown:
                # a phase crossed min_fraction in this pattern: its cell was still fixed at a
                # stale value, which biases its fraction (O3 at its onset) — refine once more
                # from this result with its cell and structure free
                active = active | grown
                full, fr, log2 = refine_one(ev, layout, model, full, y, s, strategy, protocol, bounds, totals,
                                            active=active)
                log = log + log2
        flag = "" if i == 0 else _implausible(full, fr, prev_gof, seed_prev, layout, model, protocol, prev_row, lim)
        if flag:
            # 1) the peaks may have moved out of the least-squares basin (patterns far apart, no
            #    trend yet for the predictor): grid-scan the active LRM cells within the trust
            #    region (linear scales + background solved at each step) and refine again from
            #    the best cells; accepted when the result passes the checks
            scanned = _cell_scan(ev, layout, model, seed_prev, y, s, protocol, active, lim)
            full_s, fr_s, log_s = refine_one(ev, layout, model, scanned, y, s, strategy, protocol, bounds, totals,
                                             active=active)
            flag_s = _implausible(full_s, fr_s, prev_gof, seed_prev, layout, model, protocol, prev_row, lim)
            log = log + log_s
            if not flag_s:
                full, fr = full_s, fr_s
                flag = f"{RECOVERED}{flag}"
        if flag and not flag.startswith(RECOVERED):
            # 2) retry from the previous pattern's values; a cell that ran to its per-pattern limit
            # (a small phase locking onto a neighbour's peaks) or belongs to a phase whose
            # fraction collapsed stays at its previous value, else only the first stage refines
            jumped = [p for p in protocol.lrm_phases if f"{p} cell moved" in flag or f"{p} fraction collapsed" in flag]
            if jumped:
                stages = tuple(Stage(st.name, st.free, st.fix + tuple(f"{p}.cell" for p in jumped), st.start,
                                     st.max_cycles) for st in strategy.stages)
            else:
                stages = strategy.stages[:1]
            retry = Strategy(stages, strategy.constraints, strategy.max_cycles, strategy.tol,
                             strategy.scale_model, strategy.bounds)
            full2, fr2, log2 = refine_one(ev, layout, model, np.array(seed_prev), y, s, retry, protocol,
                                          bounds, totals, active=active)
            flag2 = _implausible(full2, fr2, prev_gof, seed_prev, layout, model, protocol, prev_row, lim)
            full, fr, log = full2, fr2, log + log2
            how = f"{', '.join(jumped)} cell(s) fixed" if jumped else f"'{retry.stages[0].name}' only"
            flag = f"{flag}; cell scan did not help; refined again with {how}" + (f" (still: {flag2})" if flag2 else "")
        if not _flagged(flag):
            prev_gof = fr.stats.gof   # the GoF baseline: the last pattern that passed the checks
        seed_prev, t_prev = np.array(full), t_now
        active = active_phases(_lrm_fractions(full, layout, model, protocol), None if i == 0 else active, protocol)
        after_active[i] = active
        row = {"pattern": name, "rwp": fr.stats.rwp, "gof": fr.stats.gof,
               "converged": bool(fr.converged and not _flagged(flag)), "flag": flag, "held": held}
        row.update(_evaluate_observables(obs, full, fr.cov_full))
        row.update(_determined(ev, full, y, s, row, model, protocol))
        row["stages"] = stop_rules(log)
        if times is not None:
            row.update(times[i])
        prev_row = row
        warns = [f"[{n}] {w}" for n, f in log for w in f.warnings]
        if i == 0:
            totals = conservation_totals(full, layout, model, protocol)
            ref_full = np.array(full)
        else:
            history.append((_time_of(times, i, k), np.array(full), active))
        rec = SeriesRecord(name, [float(v) for v in full], row, warns)
        records[i] = rec
        if ckpt:
            ckpt.append(rec)
        if progress:
            progress(k, len(order), rec)
    if protocol.bridge_holds and protocol.hold:
        _bridge_holds(records, patterns, ev, layout, model, protocol, bounds_ser, ref_full, totals, times,
                      after_active, obs, ckpt, done, bridge_progress)
    return [records[i] for i in range(len(patterns))], model, layout


#: suffix of a bridged pattern's checkpoint entry (the forward entry keeps the plain name)
BRIDGED = " [bridged hold]"


def _held_names(note: str, protocol: SeriesProtocol) -> set:
    """The held parameters that a row's ``held`` note names (its phases' hold groups)."""
    return {n for ph, _, params in protocol.hold if note.startswith(f"{ph}:") or f"; {ph}:" in note for n in params}


def _bridge_holds(records, patterns, ev, layout, model, protocol, bounds_ser, ref_full, totals, times,
                  after_active, obs, ckpt, done, report=None):
    """Second pass over stretches of held patterns bracketed by refined ones (time order):
    each is refined again with its held parameters interpolated linearly in time between the
    brackets' refined values; kept when the fit passes the checks (see the module docstring)."""
    n = len(patterns)
    held = [i > 0 and bool(records[i].row.get("held")) for i in range(n)]
    usable = [not _flagged(records[i].row.get("flag", "")) for i in range(n)]
    i = 1
    while i < n:
        if not held[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and held[j + 1]:
            j += 1
        a, b = i - 1, j + 1
        if b < n and usable[a] and usable[b]:
            _bridge_stretch(range(i, j + 1), a, b, records, patterns, ev, layout, model, protocol, bounds_ser,
                            ref_full, totals, times, after_active, obs, ckpt, done, report)
        i = j + 1


def _bridge_stretch(stretch, a, b, records, patterns, ev, layout, model, protocol, bounds_ser, ref_full, totals,
                    times, after_active, obs, ckpt, done, report=None):
    fa, fb = np.array(records[a].full), np.array(records[b].full)
    ta, tb = _time_of(times, a, a), _time_of(times, b, b)
    prev = np.array(records[a].full)
    for i in stretch:
        name, _, y, s = patterns[i]
        fwd = records[i]
        key = name + BRIDGED
        if key in done:
            rec = done[key]
            records[i] = (SeriesRecord(fwd.name, fwd.full, fwd.row, fwd.warnings + rec.warnings)
                          if rec.row.get("bridge_failed") else SeriesRecord(fwd.name, rec.full, rec.row, rec.warnings))
            prev = np.array(records[i].full)
            if report:
                report(records[i], "; ".join(rec.warnings) if rec.row.get("bridge_failed") else "")
            continue
        names = sorted(_held_names(fwd.row["held"], protocol))
        w = (_time_of(times, i, i) - ta) / (tb - ta) if tb != ta else 0.0
        start = np.array(fwd.full)
        for nm in names:
            j = layout.index(nm)
            start[j] = fa[j] + w * (fb[j] - fa[j])
        t_prev, t_now = _hours(times, i - 1), _hours(times, i)
        lim = protocol.cell_limit(None if t_now is None or t_prev is None else t_now - t_prev)
        bounds = _window_bounds(_trust_bounds(bounds_ser, prev, layout, model, protocol, lim), ref_full, layout,
                                protocol)
        full, fr, log = refine_one(ev, layout, model, start, y, s, protocol.series, protocol, bounds, totals,
                                   active=after_active[i], held=names)
        flag = _implausible(full, fr, float(fwd.row["gof"]), prev, layout, model, protocol, records[i - 1].row, lim)
        if flag or not fr.converged:
            why = flag or "; ".join(fr.warnings) or "not converged"
            note = {"bridge_failed": True}
            rec = SeriesRecord(key, list(fwd.full), note, [f"bridging the hold failed ({why}): forward result kept"])
            records[i] = SeriesRecord(fwd.name, fwd.full, fwd.row, fwd.warnings + rec.warnings)
        else:
            row = dict(fwd.row)
            row.update({"rwp": fr.stats.rwp, "gof": fr.stats.gof, "converged": bool(fr.converged),
                        "held": f"{fwd.row['held']}; values interpolated in time between "
                                f"{patterns[a][0]} and {patterns[b][0]}"})
            row.update(_evaluate_observables(obs, full, fr.cov_full))
            row.update(_determined(ev, full, y, s, row, model, protocol))
            row["stages"] = stop_rules(log)
            rec = SeriesRecord(key, [float(v) for v in full], row,
                               [f"[{sn}] {wn}" for sn, f in log for wn in f.warnings])
            records[i] = SeriesRecord(fwd.name, rec.full, row, rec.warnings)
        if ckpt:
            ckpt.append(rec)
        prev = np.array(records[i].full)
        if report:
            report(records[i], "; ".join(rec.warnings) if rec.row.get("bridge_failed") else "")


#: prefix of the ``flag`` of a pattern whose first fit failed the checks and whose refit from a
#: cell scan passed them (a note, not a failure: the row counts as converged)
RECOVERED = "recovered by a cell scan: "


def _flagged(flag: str) -> bool:
    return bool(flag) and not flag.startswith(RECOVERED)


def _cell_directions(p, layout, model, x):
    """Relative-change directions of a phase's lattice lengths: in-plane (a, b), then stacking (c)
    for layered cells, one isotropic direction for a cubic cell."""
    i0 = layout.index(f"{p}.a")
    a, b, c = x[i0:i0 + 3]
    ang = x[i0 + 3:i0 + 6]
    if np.allclose([a, a], [b, c], rtol=1e-9) and np.allclose(ang, 90.0):
        groups = [(0, 1, 2)]
    else:
        # in-plane first: the hk0 lines do not depend on c, so that scan is not confounded by
        # a wrong stacking spacing (the other order can lock c onto a false minimum)
        groups = [(0, 1), (2,)]
    out = []
    for g in groups:
        d = np.zeros(len(x))
        for j in g:
            d[i0 + j] = x[i0 + j]
        out.append(d)
    return out


def _cell_scan(ev, layout, model, x, y, sigma, protocol, active, limit, step=0.001, passes=2, min_fraction=0.1):
    """Grid search of the active LRM phases' cells within ± ``limit`` (relative) of ``x``.

    The least-squares fit only finds the minimum whose basin it starts in — about one FWHM
    (0.3 % in d here) around the right cell. Patterns 2 h apart move the O3' layer spacing by
    ~1 %, and the first pattern after the reference has no trend for the predictor. Each active
    phase of at least ``min_fraction`` of the cathode (a minor one, e.g. the spinel whose lines
    sit on the Al foil's, could lock onto a neighbour's peaks; its cell refines from where it
    was), largest first, is scanned along its stacking and in-plane directions in steps of
    ``step`` with the linear scales and background solved at every step
    (:func:`~layerscope.refine.engine.linear_scan`); ``passes`` rounds let overlapping phases
    settle. Only the cells of the result are kept (scales and background stay those of ``x``,
    the refinement redoes them under the series' constraints).
    """
    from layerscope.refine.engine import linear_scan

    x = np.array(x, dtype=float)
    best = x.copy()
    fr = _lrm_fractions(x, layout, model, protocol)
    order = sorted((p for p in protocol.lrm_phases if p in active and fr.get(p, 0.0) >= min_fraction),
                   key=lambda p: -fr[p])
    n = int(np.clip(round(limit / step), 1, 40))
    steps = np.linspace(-limit, limit, 2 * n + 1)
    for _ in range(passes):
        for p in order:
            for d in _cell_directions(p, layout, model, best):
                _, cand = linear_scan(ev, best, d, steps, y, sigma)
                i0 = layout.index(f"{p}.a")
                best[i0:i0 + 6] = cand[i0:i0 + 6]
    out = x.copy()
    for p in order:
        i0 = layout.index(f"{p}.a")
        out[i0:i0 + 6] = best[i0:i0 + 6]
    return out


def _split_scales(scales: dict, fractions: dict, phases) -> dict:
    """Redistribute the summed scale of the named phases by the given weight fractions."""
    by = {p.name: p for p in phases}
    names = [n for n in fractions if n in by]
    if not names:
        return scales
    total_vol = sum(max(scales[n], 0.0) for n in names)
    vol = {n: fractions[n] / (by[n].cell_mass / by[n].volume) for n in names}
    k = total_vol / sum(vol.values())
    out = dict(scales)
    out.update({n: k * v for n, v in vol.items()})
    return out


def _trust_bounds(bounds, prev_full, layout, model, protocol, step=None):
    """The series bounds with every LRM lattice length held within ± ``max_cell_step`` of the
    previous pattern's value (a trust region: cells drift by a fraction of a per cent per
    pattern, and a weak phase must not lock onto a neighbour's lines a few per cent away)."""
    lo, hi = np.array(bounds[0]), np.array(bounds[1])
    phases = {s.phase.name for s in model.phases}
    step = protocol.max_cell_step if step is None else step
    for p in protocol.lrm_phases:
        if p in phases:
            i0 = layout.index(f"{p}.a")
            v = np.abs(prev_full[i0:i0 + 3])
            lo[i0:i0 + 3] = np.maximum(lo[i0:i0 + 3], v * (1 - step))
            hi[i0:i0 + 3] = np.minimum(hi[i0:i0 + 3], v * (1 + step))
    return lo, hi


def _window_bounds(bounds, ref_full, layout, protocol):
    """``bounds`` with each ``[[series.window]]`` quantity held within ± ``within`` of its value
    in the refined reference pattern (``ref_full``)."""
    if not protocol.window:
        return bounds
    lo, hi = np.array(bounds[0]), np.array(bounds[1])
    for name, within in protocol.window:
        j = layout.index(name)
        lo[j] = max(lo[j], ref_full[j] - within)
        hi[j] = min(hi[j], ref_full[j] + within)
    return lo, hi


def _implausible(full, fr, prev_gof, prev_full, layout, model, protocol, prev_row=None, limit=None) -> str:
    """Reason why a sequential result looks wrong ('' when it looks fine)."""
    if not np.all(np.isfinite(full)) or fr.diverged:
        return "diverged"
    reasons = []
    if np.isfinite(prev_gof) and fr.stats.gof > 1.3 * prev_gof:
        reasons.append(f"GoF rose from {prev_gof:.2f} to {fr.stats.gof:.2f}")
    phases = {s.phase.name for s in model.phases}
    for group in (protocol.lrm_phases, protocol.anode_phases):
        sc = {p: full[layout.index(f"{p}.scale")] for p in group if p in phases}
        tot = sum(abs(v) for v in sc.values()) or 1.0
        for p, v in sc.items():
            if v < -0.01 * tot:
                reasons.append(f"{p} scale negative ({v / tot:+.3f} of its group)")
    if prev_full is not None:
        for p in protocol.lrm_phases:
            if p in phases:
                i0 = layout.index(f"{p}.a")
                rel = np.abs(full[i0:i0 + 3] / prev_full[i0:i0 + 3] - 1)
                lim = protocol.max_cell_step if limit is None else limit
                if np.any(rel > lim * (1 - 1e-6)):
                    reasons.append(f"{p} cell moved by {100 * rel.max():.2f} % (limit {100 * lim:.2f} %)")
    if prev_row is not None:
        # a well-determined phase does not vanish within one pattern: a fraction falling below a
        # quarter of a value that was ≥ min_fraction and ≥ 5 esd is a false minimum
        fr_now = _lrm_fractions(full, layout, model, protocol)
        for p, f in fr_now.items():
            f0, e0 = prev_row.get(f"frac_{p}"), prev_row.get(f"frac_{p}_esd")
            if f0 is None or not np.isfinite(f0):
                continue
            e0 = e0 if e0 is not None and np.isfinite(e0) else 0.0
            if f0 >= max(protocol.min_fraction, 5 * e0) and f < 0.25 * f0:
                reasons.append(f"{p} fraction collapsed from {100 * f0:.2f} to {100 * f:.2f} %")
    return "; ".join(reasons)


def _hours(times, i):
    if times is not None and "time_h" in times[i]:
        return float(times[i]["time_h"])
    return None


def _time_of(times, i, k) -> float:
    if times is not None and "time_h" in times[i]:
        return float(times[i]["time_h"])
    return float(k)


def _predict_cells(full, history, t_next, layout, model, protocol, limit=None):
    """Seed the LRM cells by linear extrapolation of the last two patterns (a predictor step:
    lattice parameters drift smoothly with state of charge, and starting each pattern where the
    trend points keeps the Bragg peaks inside the basin of the least-squares minimum)."""
    (t0, f0, a0), (t1, f1, a1) = history[-2], history[-1]
    if t1 == t0:
        return full
    w = (t_next - t1) / (t1 - t0)
    if not 0 < w <= 2:
        return full
    out = np.array(full)
    phases = {s.phase.name for s in model.phases}
    for p in protocol.lrm_phases:
        # only cells that were refined in both patterns carry a trend; a fixed (small) phase's
        # cell must not drift, and no extrapolated step exceeds 0.5 % of the cell
        if p in phases and p in a0 and p in a1:
            i0 = layout.index(f"{p}.a")
            step = w * (f1[i0:i0 + 6] - f0[i0:i0 + 6])
            lim = (protocol.max_cell_step if limit is None else limit) * np.abs(f1[i0:i0 + 6])
            step = np.clip(step, -lim, lim)
            out[i0:i0 + 6] = f1[i0:i0 + 6] + step
    return out


class _Checkpoint:
    """Append-only JSON checkpoint, rewritten atomically after every pattern."""

    def __init__(self, out_dir, names, protocol, phase_names):
        self.path = Path(out_dir) / "checkpoint.json"
        self.key = {"patterns": list(names), "protocol": protocol.digest, "phases": list(phase_names)}

    def load(self) -> dict:
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.path}: unreadable checkpoint ({exc}); delete it to start over") from None
        if doc.get("key") != self.key:
            raise ValueError(f"{self.path}: checkpoint belongs to another series or protocol; "
                             "use a new --out folder or delete the checkpoint")
        return {r["name"]: SeriesRecord(r["name"], r["full"], r["row"], r.get("warnings", [])) for r in doc["records"]}

    def append(self, rec: SeriesRecord) -> None:
        doc = {"key": self.key, "records": []}
        if self.path.exists():
            doc = json.loads(self.path.read_text())
        doc["records"].append({"name": rec.name, "full": rec.full, "row": _jsonable(rec.row),
                               "warnings": rec.warnings})
        from layerscope._io import write_text

        write_text(self.path, json.dumps(doc))


def _jsonable(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, (np.floating, float)):
            out[k] = float(v)
        elif isinstance(v, (np.integer, int)) and not isinstance(v, bool):
            out[k] = int(v)
        else:
            out[k] = v
    return out
