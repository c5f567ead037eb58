"""The stages of one operando pattern: the protocol's strategy run on one pattern under the
series' rules (small phases' cells fixed, held groups, conserved amounts, the reference's kept
scale ratios), and the conserved totals of the reference.
"""

from __future__ import annotations

import numpy as np

from layerscope.crystal.phase import metric_tensor
from layerscope.operando.guards import active_phases, held_params
from layerscope.operando.observables import _lrm_fractions
from layerscope.operando.protocol import SeriesProtocol
from layerscope.refine.banks import bank_stats, expand_bank_keys
from layerscope.refine.engine import least_squares
from layerscope.refine.parameters import free_set
from layerscope.refine.strategy import Strategy

__all__ = ["refine_one", "conservation_totals", "stop_rules", "bank_columns", "convergence_columns"]


def stop_rules(log) -> str:
    """Which rule ended each stage: ``"STAGE: RULE (N cycles); …"`` (shift/esd, chi2 change —
    GSAS-II's —, no lower chi2, max cycles, diverged)."""
    return "; ".join(f"{name}: {fr.stop_rule or '?'} ({fr.n_cycles} cycles)" for name, fr in log)


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


def _tie_start(full, strategy, layout):
    """Make the starting vector satisfy the ties (copy the first term's value to the others)."""
    for c in strategy.constraints:
        items = list(c.terms.items())
        if c.value is None and len(items) == 2 and items[0][1] == 1.0 and items[1][1] == -1.0:
            full[layout.index(items[1][0])] = full[layout.index(items[0][0])]
    return full


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
        use = expand_bank_keys(use, layout)   # several banks: each bank's background, scale, instrument
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


def bank_columns(ev, full, y, sigma, n_params: int) -> dict:
    """``rwp_bank<label>`` of each bank when the time step has several (else nothing)."""
    if not hasattr(ev, "evaluators"):
        return {}
    return {f"rwp_bank{lab}": st.rwp for lab, st in zip(ev.labels, bank_stats(ev, full, y, sigma, n_params))}


def convergence_columns(fr) -> dict:
    """GSAS-II's sequential-table convergence columns of a pattern's final stage: the largest
    |shift|/esd of its last cycle (``max_shift_esd``) and the relative χ² change over that cycle
    (``chi2_change``, (χ²_before − χ²_after)/χ²_before; NaN when no cycle ran)."""
    h = fr.history
    change = (h[-2] - h[-1]) / h[-2] if len(h) >= 2 and fr.n_cycles and h[-2] > 0 else float("nan")
    return {"max_shift_esd": float(fr.max_shift_esd), "chi2_change": float(change)}
