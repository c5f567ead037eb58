"""Refinement outputs: ``summary.json``, a refined CIF per phase and the obs/calc/diff plot.

Files are written atomically (temporary file, then rename). The plot is the familiar
Rietveld plot (paper Fig. 1a, Supp. Fig. 10): observed points, calculated line, the
difference below, and one row of tick marks per phase.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from layerscope._io import file_in, save_figure, write_text
from layerscope.crystal.cif import write_cif
from layerscope.refine.rietveld import RietveldResult

__all__ = ["summary_dict", "write_outputs", "plot_fit"]

_CELL = ("a", "b", "c", "alpha", "beta", "gamma")


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


def summary_dict(res: RietveldResult) -> dict:
    """The refinement as plain JSON-able data (values with esds)."""
    st = res.final.stats
    free_full = set()
    for _, fr in res.stages:
        free_full |= {fr.free.full_names[j] for j in np.where(np.any(fr.free.A != 0, axis=1))[0]}
    phases = {}
    for ph in res.phases:
        p = ph.name
        cell = {c: {"value": res.value(f"{p}.{c}"), "esd": _num(res.esd(f"{p}.{c}"))} for c in _CELL}
        occ = {}
        for n in res.layout_names:
            if n.startswith(f"{p}.occ[") and n in free_full:
                occ[n[len(p) + 5:-1]] = {"value": res.value(n), "esd": _num(res.esd(n))}
        refined = {n[len(p) + 1:]: {"value": res.value(n), "esd": _num(res.esd(n))}
                   for n in res.layout_names if n.startswith(p + ".") and n in free_full}
        phases[p] = {
            "spacegroup": ph.spacegroup, "cell": cell, "volume": ph.volume,
            "weight_fraction": {"value": res.weight_fraction[p], "esd": _num(res.weight_fraction_esd[p])},
            "molar_fraction": {"value": res.molar_fraction[p], "esd": _num(res.molar_fraction_esd[p])},
            "bragg_r": _num(res.bragg_r[p]), "occupancies": occ, "refined": refined,
        }
    stages = [{"name": n, "rwp": fr.stats.rwp, "rp": fr.stats.rp, "chi2": fr.stats.chi2, "cycles": fr.n_cycles,
               "converged": fr.converged, "free": list(fr.names), "warnings": list(fr.warnings)}
              for n, fr in res.stages]
    glob = {n: {"value": res.value(n), "esd": _num(res.esd(n))} for n in res.layout_names
            if n in free_full and "." not in n.replace("inst.", "").replace("bkg.", "")}
    glob.update({n: {"value": res.value(n), "esd": _num(res.esd(n))} for n in res.layout_names
                 if n in free_full and (n.startswith("inst.") or n.startswith("bkg."))})
    return {
        "rwp": st.rwp, "rp": st.rp, "rexp": st.rexp, "chi2": st.chi2, "gof": st.gof,
        "n_points": st.n_points, "n_params": st.n_params,
        "converged": bool(res.converged), "singular": bool(res.final.singular), "diverged": bool(res.final.diverged),
        "bound_hits": list(res.final.bound_hits), "warnings": list(res.warnings),
        "scale_model": res.scale_model, "conventions": _jsonable(res.conventions),
        "alignment": [_jsonable(a) for a in res.alignment],
        "reverted_stages": [{"name": n, "rwp": fr.stats.rwp, "chi2": fr.stats.chi2, "message": msg}
                            for n, fr, msg in res.reverted],
        "flags": [_jsonable(f) for f in res.flags],
        "phases": phases, "global": glob, "stages": stages,
        "correlation": {"names": list(res.final.names),
                        "matrix": [[_num(v) for v in row] for row in np.asarray(res.final.correlation)]},
    }


def _jsonable(d):
    return {k: (_num(v) if isinstance(v, (float, np.floating)) else v) for k, v in dict(d).items()}


def conventions_text(res: RietveldResult) -> str:
    """The conventions and what the refinement did to its starting point, as lines of text."""
    c = res.conventions or {}
    lines = ["refined by layerscope (TOF Rietveld)",
             "conventions (" + str(c.get("origin", "?")) + "): "
             + ", ".join(f"{k} = {v}" for k, v in c.items() if k != "origin" and v is not None)]
    for a in res.alignment:
        lines.append(f"cell alignment before least squares: {a['phase']} x {a['factor']:.5f}")
    for n, _, _ in res.reverted:
        lines.append(f"stage '{n}' undone (it made the fit worse)")
    return "\n".join(lines)


def report_text(res: RietveldResult) -> str:
    """A plain-text report a person reads: agreement, cells and fractions with esds, conventions,
    alignment, stages, and every flag."""
    st = res.final.stats
    out = [f"Rwp {st.rwp:.2f} %   Rp {st.rp:.2f} %   Rexp {st.rexp:.2f} %   chi2 {st.chi2:.3f}   "
           f"({st.n_points} points, {st.n_params} parameters)", ""]
    for ph in res.phases:
        p = ph.name
        cell = "  ".join(f"{c} {_fmt_esd(res.value(f'{p}.{c}'), res.esd(f'{p}.{c}'))}" for c in _CELL[:3])
        out.append(f"{p} ({ph.spacegroup}): {cell}   weight fraction "
                   f"{_fmt_esd(res.weight_fraction[p], res.weight_fraction_esd[p])}   R_Bragg {res.bragg_r[p]:.2f} %")
    out += ["", conventions_text(res), "", "stages:"]
    for n, fr in res.stages:
        out.append(f"  {n}: Rwp {fr.stats.rwp:.2f} %, chi2 {fr.stats.chi2:.3f}, {fr.n_cycles} cycles, "
                   f"{'converged' if fr.converged else 'NOT converged'}")
    for n, fr, msg in res.reverted:
        out.append(f"  {n}: {msg}")
    if res.flags:
        out += ["", "flags (values the pattern does not determine):"] + [f"  {f['reason']}" for f in res.flags]
    return "\n".join(out) + "\n"


def _fmt_esd(v, e):
    if e is None or not math.isfinite(e) or e <= 0:
        return f"{v:.6g}" + ("" if e == 0 else " (esd undetermined)")
    digits = max(0, -int(math.floor(math.log10(e))) + 1)
    return f"{v:.{digits}f} ± {e:.{digits}f}"


def _write_atomic(path: Path, text: str):
    write_text(path, text)


def write_outputs(res: RietveldResult, out_dir, *, plot: bool = True) -> dict:
    """Write ``summary.json``, ``PHASE.cif`` for each phase, ``report.txt``, ``fit.csv`` and ``fit.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    summ = summary_dict(res)
    _write_atomic(out / "summary.json", json.dumps(summ, indent=1))
    files["summary"] = out / "summary.json"
    details = conventions_text(res)
    for ph in res.phases:
        files[ph.name] = write_cif(ph, file_in(out, ph.name, ".cif"), details=details)
    _write_atomic(out / "report.txt", report_text(res))
    files["report"] = out / "report.txt"
    cols = [res.tof_us, res.y_obs, res.sigma, res.y_calc, res.background]
    header = "tof_us,y_obs,sigma,y_calc,background"
    _write_atomic(out / "fit.csv", header + "\n" + "\n".join(",".join(f"{v:.8g}" for v in row)
                                                             for row in np.column_stack(cols)) + "\n")
    files["fit"] = out / "fit.csv"
    if plot:
        files["plot"] = plot_fit(res, out / "fit.png")
    return files


def plot_fit(res: RietveldResult, path, *, x_axis: str = "d"):
    """Observed (points), calculated (line), difference and tick rows; x in d (Å) or TOF (µs)."""
    from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure list

    inst = res.model.instrument
    to_x = (lambda t: inst.d_from_tof(t)) if x_axis == "d" else (lambda t: np.asarray(t))
    x = to_x(res.tof_us)
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    ax.plot(x, res.y_obs, "+", ms=2, color="k", label="observed")
    ax.plot(x, res.y_calc, "-", lw=0.8, color="r", label="calculated")
    span = np.nanmax(res.y_obs) - np.nanmin(res.y_obs)
    base = np.nanmin(res.y_obs) - 0.15 * span
    diff = res.y_obs - res.y_calc
    ax.plot(x, diff + base, "-", lw=0.6, color="b", label="difference")
    for i, (name, t) in enumerate(res.tick_tof_us.items()):
        yt = base - (0.12 + 0.06 * i) * span
        ax.plot(to_x(t), np.full(len(t), yt), "|", ms=6, label=f"{name} (R_B {res.bragg_r[name]:.1f} %)")
    ax.set_xlabel("d (Å)" if x_axis == "d" else "TOF (µs)")
    ax.set_ylabel("intensity (counts/µs)")
    st = res.final.stats
    ax.set_title(f"Rwp {st.rwp:.2f} %  Rexp {st.rexp:.2f} %  χ² {st.chi2:.2f}")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    save_figure(fig, path, dpi=120)
    return path
