"""The checks and bounds between the patterns of an operando series.

Phases whose fraction among ``lrm_phases`` is below ``min_fraction`` have their cell and
occupancies fixed for that pattern (an unobservable phase must not wander), keeping the model's
starting cell (O3: table S3's) until it grows above the threshold; a phase whose cell was
refined keeps it free down to ``keep_fraction`` (hysteresis: an established minor phase such
as the spinel must not have its cell frozen while the true cell moves on) —
:func:`active_phases`. Groups of parameters listed under ``[[series.hold]]`` (O3'
exchange/migration occupancies) are held at their last values while their phase is below the
given fraction (:func:`held_params`, row column ``held``).

Cells are seeded by linear extrapolation of the last two patterns (a predictor step,
:func:`_predict_cells`) and bounded to ± ``max_cell_step`` (0.5 %) of the previous pattern's
values per ``cell_step_hours`` (0.5 h) elapsed between their mid-times (a trust region,
:func:`_trust_bounds`; 2 % for patterns 2 h apart; without times, ± ``max_cell_step`` per
pattern). ``[[series.window]]`` quantities stay within a window around the reference's value
(:func:`_window_bounds`).

Each result is checked (:func:`_implausible`): a fit whose GoF jumps (against the last pattern
that passed; GoF, not Rwp: Rwp scales with the counting time, and the reference pattern counts
twice as long), whose cell runs to the trust-region limit, whose fractions go clearly negative,
or where a well-determined phase (≥ min_fraction and ≥ 5 esd) loses more than three quarters of
its fraction within one pattern fails. It is then refined again from a grid scan of the major
LRM cells within the trust region (:func:`_cell_scan`).
"""

from __future__ import annotations

import numpy as np

from layerscope.operando.observables import _lrm_fractions
from layerscope.operando.protocol import SeriesProtocol

__all__ = ["active_phases", "held_params", "held_note", "RECOVERED"]


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
