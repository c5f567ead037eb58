"""Figures of cycling data in the style of the paper's Supp. Figs. 2a–d, 8 and 15a.

Plotting stays at the edge: these functions take analysed data and return a
Matplotlib ``Figure`` (Agg canvas; nothing is shown).
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from layerscope.echem._table import CyclerLog
from layerscope.echem.analysis import CycleSummary, RateTable, half_cycle
from layerscope.echem.dqdv import dqdv


def _pick_cycles(summary: CycleSummary, cycles) -> list[int]:
    if cycles is not None:
        return list(cycles)
    full = summary.cycle[summary.full_cycles()]
    if len(full) <= 5:
        return list(full) or list(summary.cycle)
    return sorted({int(full[0]), int(full[1]), int(full[len(full) // 2]), int(full[-1])})


def gcd_figure(log: CyclerLog, summary: CycleSummary, cycles=None) -> Figure:
    """Galvanostatic charge/discharge curves, V against capacity (Supp. Fig. 2a)."""
    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.add_subplot()
    specific = bool(summary.mass_mg)
    scale = 1e3 / summary.mass_mg if specific else 1.0
    picked = _pick_cycles(summary, cycles)
    cmap = colormaps["viridis"]
    for j, c in enumerate(picked):
        col = cmap(j / max(len(picked) - 1, 1))
        for kind, ls in (("charge", "-"), ("discharge", "--")):
            q, v = half_cycle(log, c, kind)
            if len(q):
                ax.plot(q * scale, v, ls, color=col, label=f"cycle {c}" if kind == "charge" else None)
    ax.set_xlabel("capacity (mAh g$^{-1}$)" if specific else "capacity (mAh)")
    ax.set_ylabel("voltage (V)")
    ax.legend(frameon=False, fontsize=8)
    return fig


def cycling_figure(summary: CycleSummary) -> Figure:
    """Capacity, CE and average voltage against cycle number (Supp. Figs. 2c–d, 15a)."""
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    specific = bool(summary.mass_mg)
    qc = summary.charge_mAh_g if specific else summary.charge_mAh
    qd = summary.discharge_mAh_g if specific else summary.discharge_mAh
    ax1.plot(summary.cycle, qc, "o-", ms=3, label="charge")
    ax1.plot(summary.cycle, qd, "s-", ms=3, label="discharge")
    ax1.set_ylabel("capacity (mAh g$^{-1}$)" if specific else "capacity (mAh)")
    ce_ax = ax1.twinx()
    ce_ax.plot(summary.cycle, 100 * summary.ce, "k.", ms=4)
    ce_ax.set_ylabel("Coulombic efficiency (%)")
    ax1.legend(frameon=False, fontsize=8)
    ax2.plot(summary.cycle, summary.avg_charge_V, "o-", ms=3, label="charge")
    ax2.plot(summary.cycle, summary.avg_discharge_V, "s-", ms=3, label="discharge")
    ax2.set_xlabel("cycle")
    ax2.set_ylabel("average voltage (V)")
    ax2.legend(frameon=False, fontsize=8)
    return fig


def dqdv_figure(log: CyclerLog, summary: CycleSummary, cycles=None, **kwargs) -> Figure:
    """dQ/dV of selected cycles, charge above and discharge below the axis."""
    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["viridis"]
    picked = _pick_cycles(summary, cycles)
    for j, c in enumerate(picked):
        col = cmap(j / max(len(picked) - 1, 1))
        for kind, sign in (("charge", 1), ("discharge", -1)):
            q, v = half_cycle(log, c, kind)
            if len(q) < 8:
                continue
            try:
                d = dqdv(q, v, **kwargs)
            except ValueError:
                continue
            ax.plot(d.voltage_V, sign * d.dqdv_mAh_per_V, color=col,
                    label=f"cycle {c}" if sign > 0 else None)
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_xlabel("voltage (V)")
    ax.set_ylabel("dQ/dV (mAh V$^{-1}$)")
    ax.legend(frameon=False, fontsize=8)
    return fig


def voltage_time_figure(log: CyclerLog) -> Figure:
    """Voltage and current against time, e.g. a formation protocol (Supp. Fig. 8)."""
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    th = log.time_s / 3600.0
    ax.plot(th, log.voltage_V, lw=1)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("voltage (V)")
    ax_i = ax.twinx()
    ax_i.plot(th, log.current_mA, color="tab:red", lw=0.8)
    ax_i.set_ylabel("current (mA)", color="tab:red")
    return fig


def rate_figure(table: RateTable) -> Figure:
    """Discharge capacity against C-rate (Supp. Fig. 2b)."""
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(table.c_rate))
    ax.bar(x, table.discharge_mAh, yerr=table.discharge_std_mAh)
    ax.set_xticks(x, [f"{r:.2g}C" for r in table.c_rate])
    ax.set_ylabel("discharge capacity (mAh)")
    return fig


def dvdq_figure(log: CyclerLog, summary: CycleSummary, cycles=None, **kwargs) -> Figure:
    """dV/dQ of selected cycles against the charge passed in each half cycle."""
    from layerscope.echem.dqdv import dvdq

    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["viridis"]
    picked = _pick_cycles(summary, cycles)
    for j, c in enumerate(picked):
        col = cmap(j / max(len(picked) - 1, 1))
        for kind, ls in (("charge", "-"), ("discharge", "--")):
            q, v = half_cycle(log, c, kind)
            if len(q) < 8:
                continue
            try:
                d = dvdq(q, v, **kwargs)
            except ValueError:
                continue
            ax.plot(d.capacity_mAh, d.dvdq_V_per_mAh, ls, color=col,
                    label=f"cycle {c}" if kind == "charge" else None)
    ax.set_yscale("log")
    ax.set_xlabel("capacity in the half cycle (mAh)")
    ax.set_ylabel("|dV/dQ| (V mAh$^{-1}$)")
    ax.legend(frameon=False, fontsize=8)
    return fig
