"""One analysis of one dataset: run it, write its files, compare with the truth when there is one.

Every runner takes the validated options of a :class:`~layerscope.study.schema.Dataset` and an
output folder and returns a JSON-able record::

    {"summary": {...},                      # the headline numbers of the analysis
     "tables": {"name": "file.csv", ...},   # CSV tables (go to results.h5 as xarray groups)
     "figures": {"key": "file.png", ...},   # figures for the report
     "validation": [{"quantity", "value", "truth", "error", "tolerance", "ok", "note"}, ...]}

Paths in the record are relative to the output folder. The runners call the same functions as
the single-analysis commands (``layerscope refine``, ``operando``, ``haadf``, ``fourd``, ``eels``,
``echem``), so a study and a command give the same files. Tolerances in ``validation`` are the
ones the issue that built each analysis set (stated next to each check).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from layerscope._io import file_in, save_figure, write_csv
from layerscope.study._checks import _check, _check_fraction, _rows, _truth  # noqa: F401 (shared by the runners)
from layerscope.study.tasks_echem import run_cycler
from layerscope.study.tasks_microscopy import ZONE_AXES, run_fourd, run_haadf, run_kinematic  # noqa: F401


# --------------------------------------------------------------------------------------- operando

#: issue 4's tolerances: fraction 2 % absolute, cells 5e-4 Å, DoO 5 %, DoD 0.3 %
OPERANDO_TOLERANCES = {"frac": 0.02, "cell": 5e-4, "DoO": 0.05, "DoD": 0.003}


def run_operando(opts, out: Path) -> dict:
    from layerscope.operando.api import refine_series, stderr_progress, write_series

    progress, bridged = stderr_progress()
    series = refine_series(opts["series"], cycler=opts["cycler"], instrument=opts["instprm"], model=opts["model"],
                           strategy=opts["strategy"], tof_range=tuple(opts["tof_range"]) if opts["tof_range"] else None,
                           checkpoint_dir=out, progress=progress, bridge_progress=bridged)
    for name, note in series.notes:
        print(f"note: {name}: {note}", file=sys.stderr)
    files = write_series(series, out, truth=opts["truth_series"], cif_per_pattern=bool(opts.get("cif_per_pattern")))
    res = {**files, "n_flagged": series.n_flagged, "rows": series.rows, "records": series.records,
           "model": series.model, "layout": series.layout, "patterns": series.patterns, "result": series}
    rows = res["rows"]
    figures = {k: Path(v).name for k, v in res["figures"].items()}
    summary = {"patterns": len(rows), "flagged": int(res["n_flagged"]),
               "rwp_median": float(np.median([r["rwp"] for r in rows]))}
    for k in rows[0]:
        if k.startswith("frac_") and not k.endswith("_esd"):
            summary[f"{k}_first"] = float(rows[0][k])
            summary[f"{k}_last"] = float(rows[-1][k])
            if f"{k}_esd" in rows[0]:  # the report shows each value with its esd
                summary[f"{k}_first_esd"] = float(rows[0][f"{k}_esd"])
                summary[f"{k}_last_esd"] = float(rows[-1][f"{k}_esd"])
    tables = {"timeseries": "timeseries.csv"}
    if "records" in res:
        figures.update(_operando_fits(res, out))
        tables.update(_table_s2(res, out))
        summary["table"] = "S2"
    validation = []
    if opts["truth_series"]:
        validation = operando_validation(rows, _rows(opts["truth_series"]))
    return {"summary": summary, "tables": tables, "figures": figures, "validation": validation}


def _end_of_charge(rows) -> int:
    """Index of the last pattern at the top of charge (highest voltage, before the discharge)."""
    v = np.array([float(r.get("voltage_V", np.nan)) for r in rows])
    if not np.isfinite(v).any():
        return len(rows) - 1
    top = np.nanmax(v)
    return int(np.flatnonzero(v >= top - 0.01)[-1])


def _operando_fits(res, out: Path) -> dict:
    """Supp. Fig. 10: the refined patterns of the cell before and after the first charge (a column
    per bank when the series has several; the calculated patterns are those stored with each
    record, as in ``operando.h5``)."""
    from matplotlib.figure import Figure

    from layerscope.diffraction.pattern import make_pattern_function, reflection_table
    from layerscope.refine.parameters import make_layout

    model, layout, records, rows = res["model"], res["layout"], res["records"], res["rows"]
    series = res.get("result")
    banks = series.banks() if series is not None else [(None, res["patterns"], None, model.instrument)]
    lay0 = make_layout(model)   # bank 0's own layout: the first entries of a several-bank vector
    fn = None
    names = [s.phase.name for s in model.phases]
    picks = {"a: before charge": 0, "b: after the first charge to 4.5 V": _end_of_charge(rows)}
    fig = Figure(figsize=(9 * len(banks), 7), layout="constrained")
    axes = fig.subplots(2, len(banks), squeeze=False)
    for r, (label, k) in enumerate(picks.items()):
        params = lay0.unflatten(np.asarray(records[k].full)[:len(lay0.names)])
        tab = reflection_table(model, params)
        for c, (bank, patterns, calc, inst) in enumerate(banks):
            ax = axes[r, c]
            if calc is not None:
                total = np.asarray(calc[k][0])
            else:   # records without stored patterns: evaluate (one bank)
                fn = fn or make_pattern_function(model)
                total = np.asarray(fn(layout.unflatten(np.asarray(records[k].full)))[0])
            _, tof, y, sig = patterns[k][:4]
            d = inst.d_from_tof(np.asarray(tof))
            span = np.nanmax(y) - np.nanmin(y)
            ax.plot(d, y, ".", ms=1.5, color="k", label="observed")
            ax.plot(d, total, "-", lw=0.7, color="r", label="calculated")
            base = np.nanmin(y) - 0.12 * span
            ax.plot(d, y - total + base, "-", lw=0.5, color="b", label="difference")
            for i, name in enumerate(names):
                frac = float(rows[k].get(f"frac_{name}", 1.0) or 0.0)
                if name in ("O3p", "O3", "S") and frac < 0.01:
                    continue
                dh = tab["d_angstrom"][(tab["phase"] == i) & (tab["d_angstrom"] > d.min())
                                       & (tab["d_angstrom"] < d.max())]
                ax.plot(dh, np.full(len(dh), base - (0.1 + 0.045 * i) * span), "|", ms=5, label=name)
            ax.set_xlabel("d (Å)"), ax.set_ylabel("counts/µs")
            rwp = rows[k].get("rwp" if bank is None else f"rwp_bank{bank}", np.nan)
            ax.set_title(f"({label}) {'' if bank is None else f'bank {bank}: '}{patterns[k][0]}, "
                         f"t = {float(rows[k].get('time_h', np.nan)):.2f} h, Rwp {float(rwp):.2f} %", fontsize=9)
            ax.legend(fontsize=6, ncol=4, loc="upper right")
    save_figure(fig, out / "supp_fig10_refined_patterns.png", dpi=110)
    return {"supp_fig10": "supp_fig10_refined_patterns.png"}


def _table_s2(res, out: Path) -> dict:
    """Table S2: the cathode phases of the uncharged cell from the reference refinement."""
    from layerscope.refine.rietveld import refined_phases

    rows0 = res["rows"][0]
    phases = refined_phases(res["model"], res["layout"], res["records"][0].full)
    keep = [p for p in phases if p.name in ("O3p", "O3", "S") and float(rows0.get(f"frac_{p.name}", 0) or 0) > 0.005]
    write_csv(out / "structure.csv", _structure_rows(keep))
    cells = []
    for ph in keep:
        row = {"phase": ph.name}
        for c, v in zip(("a", "b", "c", "alpha", "beta", "gamma"), ph.cell):
            row[c] = v
            e = rows0.get(f"{ph.name}_{c}_esd")
            row[f"{c}_esd"] = e if e not in (None, "") else ""
        row["weight_fraction"] = rows0.get(f"frac_{ph.name}")
        row["weight_fraction_esd"] = rows0.get(f"frac_{ph.name}_esd", "")
        row["bragg_r"] = ""
        cells.append(row)
    write_csv(out / "phases.csv", cells)
    return {"structure": "structure.csv", "phases": "phases.csv"}


def operando_validation(rows, truth_rows) -> list[dict]:
    """Worst error over the series of each refined quantity that has a truth column.

    Cells are compared while their phase is ≥ 20 % of the cathode; DoO/DoD at every pattern where
    the refinement determined them — not where the protocol held the O3' exchange/migration at
    their last values because O3' had become a minority (the ``held`` column; a series without
    that column: while O3' is ≥ 50 %); fractions everywhere."""
    n = min(len(rows), len(truth_rows))
    out = []
    names = [k for k in truth_rows[0] if k in rows[0] and not k.endswith("_esd")]

    def col(src, k):
        return np.array([float(src[i][k]) if src[i].get(k) not in (None, "") else np.nan for i in range(n)])

    for k in names:
        if k.startswith("frac_"):
            tol, mask, note = OPERANDO_TOLERANCES["frac"], np.ones(n, bool), "every pattern"
        elif k.split("_")[-1] in ("a", "b", "c") and k.split("_")[0] in ("O3p", "O3", "S"):
            ph = k.split("_")[0]
            fk = f"frac_{ph}"
            if fk not in truth_rows[0]:
                continue
            tol, mask = OPERANDO_TOLERANCES["cell"], col(truth_rows, fk) >= 0.2
            note = f"patterns with {ph} ≥ 20 %"
        elif k in ("DoO", "DoD"):
            if "frac_O3p" not in truth_rows[0]:
                continue
            if "held" in rows[0]:
                mask = np.array([not rows[i].get("held") for i in range(n)])
                note = "patterns where DoO/DoD are refined (not held)"
            else:
                mask, note = col(truth_rows, "frac_O3p") >= 0.5, "patterns with O3' ≥ 50 %"
            tol = OPERANDO_TOLERANCES[k]
        else:
            continue
        v, t = col(rows, k), col(truth_rows, k)
        mask &= np.isfinite(v) & np.isfinite(t)
        if not mask.any():
            continue
        err = v[mask] - t[mask]
        i = int(np.argmax(np.abs(err)))
        out.append(_check(f"{k} (worst of {int(mask.sum())})", v[mask][i], t[mask][i], tol, note=note))
    return out


# --------------------------------------------------------------------------------- ex-situ neutron

def run_neutron(opts, out: Path) -> dict:
    from layerscope.descriptors import find_o3p_sites, phase_descriptors
    from layerscope.refine.api import refine
    from layerscope.refine.output import write_outputs

    res = refine(opts["pattern"], instrument=opts["instprm"], phases=opts["phases"], strategy=opts["strategy"],
                 tmin=opts["tmin"], tmax=opts["tmax"], n_background=opts["n_background"],
                 conventions=opts.get("conventions"), log=print,
                 progress=lambda name, fr: print(f"  stage {name!r}: Rwp {fr.stats.rwp:.2f} %"))
    write_outputs(res, out, plot=True)
    summ = json.loads((out / "summary.json").read_text())
    write_csv(out / "structure.csv", _structure_rows(res.phases))  # table S1-S3 style
    cells = [{"phase": p, **{c: v["value"] for c, v in d["cell"].items()},
              **{f"{c}_esd": v["esd"] for c, v in d["cell"].items()},
              "weight_fraction": d["weight_fraction"]["value"], "weight_fraction_esd": d["weight_fraction"]["esd"],
              "bragg_r": d["bragg_r"]} for p, d in summ["phases"].items()]
    write_csv(out / "phases.csv", cells)
    desc = {}
    for ph in res.phases:
        try:
            find_o3p_sites(ph)
        except (ValueError, KeyError):
            continue
        desc[ph.name] = phase_descriptors(ph)
    _pie(summ, out / "fractions.png")
    figures = {"fit": "fit.png", "fractions": "fractions.png"}
    tables = {"structure": "structure.csv", "phases": "phases.csv", "fit": "fit.csv"}
    # Supp. Fig. 3: difference Fourier map of the main layered phase (missing Li = negative density)
    main = max((p for p in res.phases if p.space_group.number in (12, 166)),
               key=lambda p: res.weight_fraction[p.name], default=None)
    if main is not None:
        _fourier(res, main.name, out)
        figures["fourier"] = "fourier.png"
        tables["fourier_minima"] = "fourier_minima.csv"
    summary = {"rwp": summ["rwp"], "rp": summ["rp"], "chi2": summ["chi2"], "converged": summ["converged"],
               "table": opts["table"], "weight_fractions": {p: d["weight_fraction"]["value"]
                                                           for p, d in summ["phases"].items()},
               "weight_fractions_esd": {p: d["weight_fraction"]["esd"] for p, d in summ["phases"].items()},
               "descriptors": desc, "warnings": summ["warnings"]}
    validation = []
    truth = _truth(opts)
    if truth:
        validation = neutron_validation(summ, truth)
    return {"summary": summary, "tables": tables, "figures": figures, "validation": validation,
            "files": {ph.name: file_in(out, ph.name, ".cif").name for ph in res.phases}}


def _fourier(res, name: str, out: Path) -> None:
    """Difference map (X-PLOR), its 8 deepest minima and the z = 0 (TM layer) section as a figure."""
    from matplotlib.figure import Figure

    from layerscope.refine.fourier import difference_fourier_from_result, map_extrema, map_slice, write_xplor

    fmap = difference_fourier_from_result(res, name)
    write_xplor(fmap, file_in(out, name, "_difference.xplor"))
    write_csv(out / "fourier_minima.csv", [{"phase": name, "x": f[0], "y": f[1], "z": f[2], "density_fm_A3": v}
                                              for f, v in map_extrema(fmap, 8, sign=-1)])
    sec = map_slice(fmap, "c", 0.0)
    fig = Figure(figsize=(4.6, 4.0), layout="constrained")
    ax = fig.subplots()
    lim = float(np.abs(sec).max()) or 1.0
    im = ax.imshow(sec.T, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    fig.colorbar(im, ax=ax, label="Δρ (fm/Å³)")
    ax.set_xlabel("x (fractional)"), ax.set_ylabel("y (fractional)")
    ax.set_title(f"{name}: difference Fourier section z = 0", fontsize=9)
    save_figure(fig, out / "fourier.png", dpi=110)


def neutron_validation(summ, truth) -> list[dict]:
    """Issue 3's criteria: each refined value within 3 esd of the truth (its synthetic test), or
    within 2e-4 Å for cell lengths (its agreement with GSAS-II on real data) / 0.01° for angles /
    0.5 % for weight fractions, whichever is larger."""
    out = []
    for p, t in truth.get("phases", {}).items():
        d = summ["phases"].get(p)
        if d is None:
            out.append({"quantity": f"{p} present", "value": 0.0, "esd": None, "truth": 1.0, "error": -1.0,
                        "tolerance": "refined", "ok": False, "note": "phase missing from the refinement"})
            continue
        for c, tv in t.get("cell", {}).items():
            v = d["cell"][c]
            esd = v["esd"] or 0.0
            floor = 2e-4 if c in "abc" else 0.01
            out.append(_check(f"{p} {c}", v["value"], tv, max(3 * esd, floor), esd=esd, note=f"max(3 esd, {floor:g})"))
        if "weight_fraction" in t:
            v = d["weight_fraction"]
            esd = v["esd"] or 0.0
            out.append(_check(f"{p} weight fraction", v["value"], t["weight_fraction"], max(3 * esd, 0.005),
                              esd=esd, note="max(3 esd, 0.005)"))
    return out


def _structure_rows(phases) -> list[dict]:
    """One row per site and species: the refined-structure tables S1-S3."""
    return [{"phase": ph.name, "site": s.label, "wyckoff": s.wyckoff or "", "element": el, "x": s.xyz[0],
             "y": s.xyz[1], "z": s.xyz[2], "occupancy": occ, "biso_A2": s.biso}
            for ph in phases for s in ph.sites for el, occ in s.species]


def _pie(summ, path):
    """Weight fractions as the paper's inset sector plot."""
    from matplotlib.figure import Figure

    names = list(summ["phases"])
    w = [max(summ["phases"][n]["weight_fraction"]["value"], 0.0) for n in names]
    fig = Figure(figsize=(3.2, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.pie(w, labels=[f"{n}\n{100 * v:.1f} %" for n, v in zip(names, w)], startangle=90,
           colors=["#8e44ad", "#3498db", "#f1c40f", "#95a5a6", "#e67e22", "#2ecc71", "#e74c3c"][:len(w)])
    ax.set_title("weight fractions")
    save_figure(fig, path, dpi=110)




# ------------------------------------------------------------------------------------------ spectra

def run_eels(opts, out: Path) -> dict:
    from layerscope.spectra.api import analyze_eels

    mn_bg, o_bg = opts["mn_background_eV"], opts["o_background_eV"]
    off = opts.get("low_loss_offset")
    if off is not None and off != "auto":
        off = tuple(int(v) for v in off.split(","))
    ana = analyze_eels(opts["spectrum"], low_loss=opts.get("low_loss"), low_loss_offset=off,
                       calibrate_edges=opts.get("calibrate_edges"), align_edge=opts.get("align_edge"),
                       align_energy_eV=opts.get("align_energy_eV"), shift_eV=opts.get("shift_eV") or 0.0,
                       mn_background_eV=tuple(mn_bg) if mn_bg else None,
                       o_background_eV=tuple(o_bg) if o_bg else None, step_width_eV=1.0,
                       deconvolve=opts.get("deconvolve") or "none")
    # the eels command's record.json (calibration, windows, methods) is replaced by the runner's (the
    # mark of a finished task): the command writes into a hidden staging folder, its tables and figure
    # are moved out and its record is kept inside the runner's; a kill never leaves a record.json
    # that is not the runner's
    import os
    import shutil
    import tempfile

    stage = Path(tempfile.mkdtemp(prefix=".eels.", suffix=".part", dir=out))
    ana.write(stage)
    eels_record = json.loads((stage / "record.json").read_text())
    for p in sorted(stage.iterdir()):
        if p.name != "record.json":
            os.replace(p, out / p.name)
    shutil.rmtree(stage)
    l3l2, val = ana.l3_over_l2, ana.valence
    summary = {"spectra": len(l3l2), "l3_over_l2_mean": float(np.nanmean(l3l2)),
               "valence_mean": float(np.nanmean(val))}
    # esds of the means from the per-spectrum statistical esds (independent spectra): √Σσ²/n
    for key, v, e in (("l3_over_l2_mean", l3l2, ana.l3_over_l2_stat_err), ("valence_mean", val, ana.valence_esd)):
        ok = np.isfinite(np.asarray(v, float))
        if e is not None and ok.any() and np.all(np.isfinite(np.asarray(e, float)[ok])):  # else undetermined
            summary[f"{key}_esd"] = float(np.sqrt(np.sum(np.asarray(e, float)[ok] ** 2)) / ok.sum())
    validation = []
    truth = _truth(opts)
    if truth:
        for i, t in enumerate(truth["l3_over_l2"]):
            validation.append(_check(f"L3/L2 spectrum {i}", l3l2[i], t, 0.02, relative=True, note="issue 7: 2 %"))
    return {"summary": summary, "tables": {"eels": "eels.csv"}, "figures": {"eels": "eels.png"},
            "validation": validation, "eels_record": eels_record}


def read_xas(path) -> tuple[np.ndarray, np.ndarray]:
    """Two columns, energy (eV) and absorption; a header line is allowed."""
    path = Path(path)
    try:
        arr = np.loadtxt(path, delimiter=",", skiprows=1 if not path.read_text()[:1].isdigit() else 0)
    except ValueError as exc:
        raise ValueError(f"{path}: expected two comma-separated columns energy_eV, mu ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] < 2 or len(arr) < 10:
        raise ValueError(f"{path}: expected at least 10 rows of energy_eV, mu")
    if not np.all(np.isfinite(arr[:, :2])):
        raise ValueError(f"{path}: NaN or infinite values in energy_eV, mu")
    return arr[:, 0], arr[:, 1]


def run_xas(opts, out: Path) -> dict:
    from matplotlib.figure import Figure

    from layerscope.spectra.xas import normalize, state_integrals

    spectra = {state: read_xas(p) for state, p in opts["spectra"].items()}
    win = tuple(opts["window_eV"])
    ints = state_integrals(spectra, window_eV=win)
    write_csv(out / "xas.csv", [{"state": k, "integral_525_535": float(v)} for k, v in ints.items()])
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for k, (e, mu) in spectra.items():
        ax1.plot(e, normalize(e, mu), label=k, lw=1)
    ax1.axvspan(*win, color="0.9")
    ax1.set_xlabel("energy (eV)"), ax1.set_ylabel("normalised μ"), ax1.legend(fontsize=7)
    ax2.bar(range(len(ints)), list(ints.values()), color="tab:purple")
    ax2.set_xticks(range(len(ints)), list(ints), rotation=30, fontsize=7)
    ax2.set_ylabel(f"∫ {win[0]:g}–{win[1]:g} eV")
    save_figure(fig, out / "xas.png", dpi=110)
    validation = []
    truth = _truth(opts)
    if truth:
        for k, t in truth["integrals"].items():
            validation.append(_check(f"O-K integral {k}", ints[k], t, 0.01, relative=True, note="issue 7: 1 %"))
    return {"summary": {"integrals": {k: float(v) for k, v in ints.items()}}, "tables": {"xas": "xas.csv"},
            "figures": {"xas": "xas.png"}, "validation": validation}


RUNNERS = {"kinematic": run_kinematic, "operando": run_operando, "neutron": run_neutron, "haadf": run_haadf, "fourd": run_fourd,
           "eels": run_eels, "xas": run_xas, "cycler": run_cycler}
