"""The ``eels.png`` figure: one spectrum with its windows, background and steps; values per spectrum."""

from __future__ import annotations

import numpy as np


def eels_figure(res, position_nm=None):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    ex = res.example
    if ex:
        e, y = ex["energy_eV"], ex["counts"]
        w = ex["windows"]
        m = (e >= (w["background"] or [w["l3"][0] - 30])[0] - 5) & (e <= w["post_edge"][1] + 5)
        ax1.plot(e[m], y[m], "k", lw=0.8, label=f"spectrum {ex['index']} (calibrated)")
        ax1.plot(e[m], ex["background"][m], "tab:blue", lw=1, label="power-law background")
        ax1.plot(e[m], (ex["background"] + ex["step"])[m], "tab:orange", lw=1,
                 label="background + continuum steps")
        for key, c in (("background", "tab:blue"), ("l3", "tab:red"), ("l2", "tab:green"),
                       ("post_edge", "tab:orange")):
            if w.get(key):
                ax1.axvspan(*w[key], color=c, alpha=0.12)
        ax1.set_xlabel("energy loss (eV)")
        ax1.set_ylabel("counts")
        ax1.legend(fontsize=6)
        ax1.set_title(f"Mn L2,3: L3/L2 = {ex['wl'].l3_over_l2:.3f}", fontsize=8)
        o = ex.get("o")
        if o:
            mo = (e >= o["windows"]["background"][0] - 5) & (e <= o["windows"]["main"][1] + 10)
            ax2.plot(e[mo], y[mo], "k", lw=0.8)
            ax2.plot(e[mo], o["background"][mo], "tab:blue", lw=1)
            ax2.axvspan(*o["windows"]["background"], color="tab:blue", alpha=0.12)
            ax2.axvspan(*o["windows"]["pre_edge"], color="tab:red", alpha=0.15)
            ax2.axvspan(*o["windows"]["main"], color="tab:green", alpha=0.12)
            ax2.set_title(f"O-K: pre-edge peak {o['peak_eV']:.1f} eV", fontsize=8)
            ax2.set_xlabel("energy loss (eV)")
    x = np.arange(len(res.flags)) if position_nm is None else np.asarray(position_nm, float)
    for v, lab in ((res.valence, "L3/L2"), (res.valence_shift, "ΔE(L3−O K)"),
                   (res.valence_mlls, "MLLS")):
        if np.isfinite(v).any():
            if lab == "L3/L2" and res.valence_esd is not None:
                ax3.errorbar(x, v, yerr=res.valence_esd, fmt="o-", ms=3, lw=0.8, capsize=2,
                             label="L3/L2 (± statistical esd)")
            else:
                ax3.plot(x, v, "o-", ms=3, label=lab)
    bad = ~np.isfinite(res.valence)
    if bad.any():
        ax3.plot(x[bad], np.full(bad.sum(), np.nanmin(res.valence) if np.isfinite(res.valence).any()
                                 else 0.0), "rx", label="no L3/L2 valence (see flag)")
    ax3.set_xlabel("position (nm)" if position_nm is not None else "spectrum")
    ax3.set_ylabel("Mn valence")
    ax3.legend(fontsize=6)
    return fig
