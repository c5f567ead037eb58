"""Bridging held stretches of an operando series.

With ``bridge_holds = true`` a stretch of held patterns that is followed by patterns where the
parameters refine again is refined a second time, after the series, with the held values
interpolated linearly in time between the last refined pattern before the stretch and the
first after it: both ends are measurements, and a value carried forward from the start of the
stretch is stale wherever the quantity kept changing while unobservable (simulated experiment,
seed 3: the O3' exchange DoO held at 66 % while the truth fell to 50 % biased the minority
O3' b by ~1e-4 Å). Bridged rows say so in ``held``; if a bridged fit fails the checks the
forward result is kept and the failure is noted in its warnings.
"""

from __future__ import annotations

import numpy as np

from layerscope.operando.checkpoint import SeriesRecord
from layerscope.operando.pattern_cif import parameter_esds
from layerscope.operando.guards import _flagged, _hours, _implausible, _time_of, _trust_bounds, _window_bounds
from layerscope.operando.observables import _determined, _evaluate_observables
from layerscope.operando.protocol import SeriesProtocol
from layerscope.operando.stages import bank_columns, convergence_columns, refine_one, stop_rules

__all__ = ["BRIDGED"]


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
            records[i] = (SeriesRecord(fwd.name, fwd.full, fwd.row, fwd.warnings + rec.warnings, fwd.esd)
                          if rec.row.get("bridge_failed")
                          else SeriesRecord(fwd.name, rec.full, rec.row, rec.warnings, rec.esd))
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
            records[i] = SeriesRecord(fwd.name, fwd.full, fwd.row, fwd.warnings + rec.warnings, fwd.esd)
        else:
            row = dict(fwd.row)
            row.update({"rwp": fr.stats.rwp, "gof": fr.stats.gof, "converged": bool(fr.converged),
                        "held": f"{fwd.row['held']}; values interpolated in time between "
                                f"{patterns[a][0]} and {patterns[b][0]}"})
            row.update(_evaluate_observables(obs, full, fr.cov_full))
            row.update(convergence_columns(fr))
            row.update(bank_columns(ev, full, y, s, fr.free.n))
            row.update(_determined(ev, full, y, s, row, model, protocol))
            row["stages"] = stop_rules(log)
            rec = SeriesRecord(key, [float(v) for v in full], row,
                               [f"[{sn}] {wn}" for sn, f in log for wn in f.warnings],
                               parameter_esds(fr, layout, model, full))
            records[i] = SeriesRecord(fwd.name, rec.full, row, rec.warnings, rec.esd)
        if ckpt:
            ckpt.append(rec)
        prev = np.array(records[i].full)
        if report:
            report(records[i], "; ".join(rec.warnings) if rec.row.get("bridge_failed") else "")
