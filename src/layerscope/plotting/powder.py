"""Powder-pattern figures: calculated (and observed/difference) curves with a tick row per phase."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure list

from layerscope._io import save_figure

__all__ = ["plot_powder"]

_COLOURS = ["#6a3d9a", "#1f78b4", "#e6ab02", "#33a02c", "#e31a1c", "#ff7f00", "#a6761d", "#666666", "#17becf"]


def plot_powder(path: str | os.PathLike, x, calc, *, ticks: dict[str, np.ndarray] | None = None,
                components: dict[str, np.ndarray] | None = None, obs=None, xlabel: str = "TOF (µs)",
                title: str = "", dpi: int = 130) -> Path:
    """Write a PNG: observed (dots), calculated, difference, per-phase curves and tick rows."""
    path = Path(path)
    ticks = ticks or {}
    fig = Figure(figsize=(10, 5.2), dpi=dpi)
    ax = fig.subplots()
    x = np.asarray(x)
    calc = np.asarray(calc)
    top = float(np.nanmax(calc if obs is None else np.maximum(calc, obs)))
    if obs is not None:
        ax.plot(x, obs, ".", ms=2, color="k", label="observed")
    ax.plot(x, calc, "-", lw=0.9, color="#d62728", label="calculated")
    for i, (name, y) in enumerate((components or {}).items()):
        ax.plot(x, y, "-", lw=0.6, color=_COLOURS[i % len(_COLOURS)], alpha=0.8, label=name)
    low = 0.0
    if obs is not None:
        diff = np.asarray(obs) - calc
        off = -0.08 * top - np.nanmax(diff)
        ax.plot(x, diff + off, "-", lw=0.6, color="#1f77b4", label="obs − calc")
        low = off + np.nanmin(diff)
    step = 0.045 * top
    for i, (name, pos) in enumerate(ticks.items()):
        yv = low - (i + 1) * step
        pos = np.asarray(pos)
        pos = pos[(pos >= x.min()) & (pos <= x.max())]
        ax.vlines(pos, yv - 0.35 * step, yv + 0.35 * step, color=_COLOURS[i % len(_COLOURS)], lw=0.7)
        ax.text(x.max(), yv, f" {name}", va="center", fontsize=7, color=_COLOURS[i % len(_COLOURS)])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("intensity (arb. units / µs)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    ax.set_xlim(x.min(), x.max())
    fig.tight_layout()
    return save_figure(fig, path)
