"""The fit figure of an operando series: observed, calculated and difference patterns, a panel
per bank and per chosen time step (``fig_fits.png``).

The calculated patterns are the ones stored with each record (``SeriesRecord.calc``, a profile
pass at its refined vector), so the figure draws what ``operando.h5`` holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerscope._io import save_figure

__all__ = ["plot_fits", "fit_picks"]


def fit_picks(rows) -> list[int]:
    """The time steps drawn: the reference (first) and the last one."""
    return [0] if len(rows) == 1 else [0, len(rows) - 1]


def plot_fits(rows, banks, out_dir, *, picks=None, name: str = "fig_fits.png") -> dict[str, Path]:
    """Observed, calculated and difference patterns against d, one row of panels per bank and one
    column per time step in ``picks`` (default :func:`fit_picks`).

    ``banks``: ``[(bank, patterns, calc, instrument)]`` — ``bank`` the label (None for a one-bank
    series), ``patterns`` ``[(name, tof_us, y, sigma)]`` per time step, ``calc`` ``[(y_calc,
    background)]`` per time step. Each panel's title names the bank, the pattern, its time and
    its Rwp (the bank's own, ``rwp_bank<N>``, when the series has several)."""
    from matplotlib.figure import Figure

    picks = fit_picks(rows) if picks is None else list(picks)
    fig = Figure(figsize=(6 * len(picks), 3.2 * len(banks)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(banks), len(picks), squeeze=False))
    for r, (label, pats, calc, inst) in enumerate(banks):
        for c, k in enumerate(picks):
            ax = axes[r, c]
            pname, tof, y, _ = pats[k][:4]
            yc, bkg = (np.asarray(a, dtype=float) for a in calc[k])
            d = inst.d_from_tof(np.asarray(tof))
            span = float(np.nanmax(y) - np.nanmin(y)) or 1.0
            base = float(np.nanmin(y)) - 0.15 * span
            ax.plot(d, y, ".", ms=1.5, color="k", label="observed")
            ax.plot(d, yc, "-", lw=0.7, color="r", label="calculated")
            ax.plot(d, bkg, "-", lw=0.5, color="g", label="background")
            ax.plot(d, np.asarray(y) - yc + base, "-", lw=0.5, color="b", label="difference (offset)")
            rwp = rows[k].get("rwp" if label is None else f"rwp_bank{label}", np.nan)
            head = "" if label is None else f"bank {label}: "
            ax.set_title(f"{head}{pname}, t = {float(rows[k].get('time_h', np.nan)):.2f} h, "
                         f"Rwp {float(rwp):.2f} %", fontsize=9)
            ax.set_xlabel("d (Å)")
            ax.set_ylabel("counts/µs")
            if r == 0 and c == 0:
                ax.legend(fontsize=6, loc="upper right")
    p = save_figure(fig, Path(out_dir) / name, dpi=110)
    return {name: p}
