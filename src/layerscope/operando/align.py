"""Place each pattern on the cycler log: voltage, current, capacity (and Li content) over its
exposure window and at its mid-time.

DESIGN.md ("Data conventions"): ``series.csv`` gives each pattern's counting interval
``start_s``…``end_s`` in seconds from the cycler log's time zero. A pattern integrates the
cell over that whole window, so the cycler values reported with it (``voltage_V``,
``current_mA``, ``capacity_mAh``) are their time averages over the window — the integral of
the log's piecewise-linear interpolant divided by the window length — and the values at the
mid-time are kept beside them (``voltage_V_mid`` …). ``time_h`` is the mid-time.

Patterns may lie before the log's first row (the uncharged reference pattern recorded before
cycling starts, e.g. ``start_s = -3600, end_s = 0``): they get no electrochemistry (NaN) and a
note, and are still refined. A window that overlaps the log only in part is averaged over the
part inside it, with a note. A pattern wholly after the log's last row is an error (a wrong
time zero is the usual cause).
"""

from __future__ import annotations

import numpy as np

from layerscope._errors import InputError

__all__ = ["align_to_cycler", "window_mean", "ECHEM_COLUMNS"]

_FARADAY_MAH_PER_MOL = 26801.4

#: cycler quantities carried into each row (window mean under this name, mid-time value + "_mid")
ECHEM_COLUMNS = ("voltage_V", "current_mA", "capacity_mAh")


def window_mean(t, v, a: float, b: float) -> float:
    """Time average over [a, b] of the piecewise-linear function through (t, v); ``t`` ascending
    and [a, b] inside [t[0], t[-1]]. Exact for the interpolant (trapezoids between the knots)."""
    t = np.asarray(t, dtype=float)
    v = np.asarray(v, dtype=float)
    if b <= a:
        return float(np.interp(a, t, v))
    inside = (t > a) & (t < b)
    tt = np.concatenate([[a], t[inside], [b]])
    vv = np.concatenate([[np.interp(a, t, v)], v[inside], [np.interp(b, t, v)]])
    return float(np.sum(0.5 * (vv[1:] + vv[:-1]) * np.diff(tt)) / (b - a))


def align_to_cycler(entries, log, *, active_mass_g: float | None = None,
                    formula_mass_g_mol: float | None = None) -> list[dict]:
    """Cycler values of each pattern: window means (``voltage_V``, ``current_mA``,
    ``capacity_mAh``), mid-time values (``…_mid``), ``time_h`` (mid-time) and a ``note`` for a
    window that the log does not (wholly) cover.

    With ``active_mass_g`` and ``formula_mass_g_mol`` the Li extracted per formula unit is
    x = capacity / (F · m / M), the charge passed per mole of cathode (``li_extracted``, window
    mean; ``li_extracted_mid``).
    """
    t = np.asarray(log.time_s, dtype=float)
    src = getattr(log, "source", "") or None
    if len(t) < 2 or not np.all(np.isfinite(t)):
        raise InputError("the cycler log needs at least two rows with finite time_s", path=src)
    if np.any(np.diff(t) < 0):
        k = int(np.argmax(np.diff(t) < 0))
        raise InputError(f"time_s must not decrease (row {k + 2}: {t[k + 1]:g} s after {t[k]:g} s)", path=src)
    cols = {c: np.asarray(getattr(log, c), dtype=float) for c in ECHEM_COLUMNS}
    t0, t1 = t[0], t[-1]
    eps = 1e-6
    rows = []
    for e in entries:
        a, b = float(e.start_s), float(e.end_s)
        mid = 0.5 * (a + b)
        row = {"time_h": mid / 3600.0}
        if a > t1 + eps:
            raise InputError(f"pattern {e.file.name} ({a:.0f}-{b:.0f} s) starts after the cycler log ends "
                             f"({t0:.0f}-{t1:.0f} s): check the manifest's time zero")
        notes = []
        if b <= t0 + eps:
            for c in ECHEM_COLUMNS:
                row[c] = row[f"{c}_mid"] = float("nan")
            notes.append(f"recorded before the cycler log starts ({a:.0f}-{b:.0f} s; log from {t0:.0f} s): "
                         "no electrochemistry")
        else:
            lo, hi = max(a, t0), min(b, t1)
            for c, v in cols.items():
                row[c] = window_mean(t, v, lo, hi)
                row[f"{c}_mid"] = float(np.interp(mid, t, v)) if t0 - eps <= mid <= t1 + eps else float("nan")
            if lo > a + eps or hi < b - eps:
                notes.append(f"exposure window {a:.0f}-{b:.0f} s only partly inside the cycler log "
                             f"({t0:.0f}-{t1:.0f} s): cycler values averaged over {lo:.0f}-{hi:.0f} s")
        if active_mass_g and formula_mass_g_mol:
            per_mol = _FARADAY_MAH_PER_MOL * active_mass_g / formula_mass_g_mol
            row["li_extracted"] = row["capacity_mAh"] / per_mol
            row["li_extracted_mid"] = row["capacity_mAh_mid"] / per_mol
        row["note"] = "; ".join(notes)
        rows.append(row)
    return rows
