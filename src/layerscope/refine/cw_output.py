"""Outputs of a constant-wavelength refinement (:func:`layerscope.refine.cw_run.refine_cw_files`).

``summary.json`` keeps the overall keys of the TOF summary (rwp, rp, rexp, chi2, phases with cells
± esd, stages, conventions, warnings) and adds ``histograms``: each one's file, instrument,
radiation, Rwp, Rp, Rexp, χ² and refined terms. Also a refined CIF per phase, ``report.txt``,
``fit_hist{i}.csv`` (2θ, observed, σ, calculated, background) and ``fit.png`` with one panel per
histogram (observed, calculated, difference, reflection ticks). Written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from layerscope._io import write_text
from layerscope.crystal.cif import write_cif
from layerscope.refine.output import _CELL, _num  # value/esd formatting shared with the TOF outputs
from layerscope.refine.output import _fmt_esd as _fmt

__all__ = ["cw_summary_dict", "cw_report_text", "write_cw_outputs", "plot_cw_fit"]


def _ve(run, n):
    return {"value": run.value(n), "esd": _num(run.esd(n))}


def _free_full(run) -> set:
    fr = run.final
    return {fr.free.full_names[j] for j in np.where(np.any(fr.free.A != 0, axis=1))[0]}


def _stats(st):
    return {"rwp": st.rwp, "rp": st.rp, "rexp": st.rexp, "chi2": st.chi2, "n_points": st.n_points}


def cw_summary_dict(run) -> dict:
    fr = run.final
    st = fr.stats
    free = _free_full(run)
    names = list(run.evaluator.names)
    phases = {}
    for ph in run.phases:
        p = ph.name
        phases[p] = {"spacegroup": ph.spacegroup, "cell": {c: _ve(run, f"{p}.{c}") for c in _CELL},
                     "volume": ph.volume,
                     "refined": {n[len(p) + 1:]: _ve(run, n) for n in names if n.startswith(p + ".") and n in free}}
    hists = []
    for i, (h, hs) in enumerate(zip(run.histograms, run.final_hist_stats)):
        pre = (f"hist{i}.", f"@hist{i}.")
        refined = {n: _ve(run, n) for n in names if n in free and (n.startswith(pre[0]) or pre[1] in n)}
        hists.append({k: v for k, v in h.items() if k != "scattering"} | _stats(hs)
                     | {"gof": hs.gof, "refined": refined, "scattering_factors": h["scattering"]})
    stages = [{"name": n, "rwp": f.stats.rwp, "rp": f.stats.rp, "chi2": f.stats.chi2, "cycles": f.n_cycles,
               "converged": bool(f.converged), "free": list(f.names), "warnings": list(f.warnings),
               "histograms": [{"rwp": s.rwp, "rexp": s.rexp, "chi2": s.chi2} for s in hs]}
              for n, f, hs in run.stages]
    return {
        "kind": "constant-wavelength", "rwp": st.rwp, "rp": st.rp, "rexp": st.rexp, "chi2": st.chi2, "gof": st.gof,
        "n_points": st.n_points, "n_params": st.n_params, "converged": run.converged, "singular": bool(fr.singular),
        "diverged": bool(fr.diverged), "bound_hits": list(fr.bound_hits), "warnings": list(run.warnings),
        "conventions": run.conventions, "histograms": hists, "phases": phases, "stages": stages,
        "reverted_stages": [{"name": n, "rwp": f.stats.rwp, "chi2": f.stats.chi2, "message": m}
                            for n, f, m in run.reverted],
        "correlation": {"names": list(fr.names),
                        "matrix": [[_num(v) for v in row] for row in np.asarray(fr.correlation)]},
    }


def _conventions_line(run) -> str:
    c = run.conventions
    return (f"conventions: .prm reading {c['prm_reading']} (as read: {', '.join(c['instrument_readings'])}), "
            f"f'/f'' {c['anomalous_source']}, neutron scattering lengths {c['scattering']}, background "
            f"{c['background']}, schedule {c['schedule']}")


def cw_report_text(run) -> str:
    st = run.final.stats
    out = [f"constant-wavelength refinement, {len(run.histograms)} histogram(s)",
           f"overall: Rwp {st.rwp:.3f} %   Rp {st.rp:.3f} %   Rexp {st.rexp:.3f} %   chi2 {st.chi2:.3f}   "
           f"({st.n_points} points, {st.n_params} parameters)", ""]
    for i, (h, hs) in enumerate(zip(run.histograms, run.final_hist_stats)):
        out.append(f"hist{i}: {h['file']} ({h['radiation']}, {h['geometry']}, λ {h['wavelength']} Å, "
                   f"{h['limits'][0]:.3f}-{h['limits'][1]:.3f}°, instrument {h['instrument']} read {h['prm_reading']})"
                   f"  Rwp {hs.rwp:.3f} %  Rexp {hs.rexp:.3f} %  chi2 {hs.chi2:.3f}")
    out.append("")
    for ph in run.phases:
        p = ph.name
        out.append(f"{p} ({ph.spacegroup}): " + "  ".join(f"{c} {_fmt(run.value(f'{p}.{c}'), run.esd(f'{p}.{c}'))}"
                                                          for c in _CELL[:3]) + f"   V {ph.volume:.3f} Å³")
    out += ["", _conventions_line(run), "", "stages (Rwp overall; per histogram):"]
    for n, f, hs in run.stages:
        out.append(f"  {n}: Rwp {f.stats.rwp:.3f} % ({' / '.join(f'{s.rwp:.3f}' for s in hs)}), chi2 "
                   f"{f.stats.chi2:.3f}, {f.n_cycles} cycles, {'converged' if f.converged else 'NOT converged'}")
    for n, f, m in run.reverted:
        out.append(f"  {n}: {m}")
    if run.warnings:
        out += ["", "warnings:"] + [f"  {w}" for w in run.warnings]
    return "\n".join(out) + "\n"


def _hist_curves(run):
    from layerscope.diffraction import cw_pattern as cw

    ev = run.evaluator
    ps = ev.unpack(run.final.full)
    comps = ev.components(run.final.full) if hasattr(ev, "components") else [cw.cw_pattern(m, p) for m, p in
                                                                              zip(run.models, ps)]
    for m, p, y, s, calc in zip(run.models, ps, run.ys, run.sigmas, comps):
        yield m, y, s, calc, cw.peak_positions(m, p)


def write_cw_outputs(run, out_dir, *, plot: bool = True) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    write_text(out / "summary.json", json.dumps(cw_summary_dict(run), indent=1, default=_jsonable))
    files["summary"] = out / "summary.json"
    details = "refined by layerscope (constant-wavelength Rietveld, " + ", ".join(
        f"hist{i} {h['file']} ({h['radiation']})" for i, h in enumerate(run.histograms)) + ")\n" + _conventions_line(run)
    for ph in run.phases:
        files[ph.name] = write_cif(ph, out / f"{ph.name}.cif", details=details)
    write_text(out / "report.txt", cw_report_text(run))
    files["report"] = out / "report.txt"
    curves = list(_hist_curves(run))
    for i, (m, y, s, calc, _) in enumerate(curves):
        rows = np.column_stack([m.x, y, s, calc["total"], calc["background"]])
        write_text(out / f"fit_hist{i}.csv", "two_theta_deg,y_obs,sigma,y_calc,background\n"
                   + "\n".join(",".join(f"{v:.8g}" for v in r) for r in rows) + "\n")
        files[f"fit_hist{i}"] = out / f"fit_hist{i}.csv"
    if plot:
        files["plot"] = plot_cw_fit(run, out / "fit.png", curves=curves)
    return files


def _jsonable(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"{type(o)} is not JSON-able")


def plot_cw_fit(run, path, *, curves=None):
    """One panel per histogram: observed points, calculated line, difference, one tick row per phase."""
    from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure list

    curves = curves or list(_hist_curves(run))
    fig = Figure(figsize=(8, 3.6 * len(curves)))
    axes = fig.subplots(len(curves), 1, squeeze=False)
    for i, ((m, y, s, calc, ticks), ax, h, hs) in enumerate(zip(curves, axes[:, 0], run.histograms,
                                                              run.final_hist_stats)):
        x = np.asarray(m.x)
        ax.plot(x, y, "+", ms=2, color="k", label="observed")
        ax.plot(x, calc["total"], "-", lw=0.8, color="r", label="calculated")
        span = np.nanmax(y) - np.nanmin(y)
        base = np.nanmin(y) - 0.15 * span
        ax.plot(x, y - calc["total"] + base, "-", lw=0.6, color="b", label="difference")
        for k, (name, t) in enumerate(ticks.items()):
            t = t[(t >= x[0]) & (t <= x[-1])]
            ax.plot(t, np.full(len(t), base - (0.12 + 0.06 * k) * span), "|", ms=6, label=name)
        ax.set_xlabel("2θ (degrees)")
        ax.set_ylabel("counts")
        ax.set_title(f"hist{i}: {Path(h['file']).name} ({h['radiation']}, λ {h['wavelength']} Å)  "
                     f"Rwp {hs.rwp:.2f} %  Rexp {hs.rexp:.2f} %  χ² {hs.chi2:.2f}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    from layerscope._io import save_figure

    return save_figure(fig, Path(path), dpi=110, format="png")   # atomic, no axis offsets
