"""Joint refinement from files when time-of-flight banks are among the histograms:
``layerscope refine D1 D2 ... --instprm I1 I2 ... --phase P`` with several TOF banks, or TOF and
constant-wavelength histograms together (CW histograms alone go to :mod:`layerscope.refine.cw_run`).

Histogram i is the i-th pattern given, with the i-th instrument file; the engine is
:class:`layerscope.refine.joint.JointEvaluator` (names: ``P.a`` … shared; ``hist{i}.hscale``,
``hist{i}.bkg.{j}``, ``hist{i}.P.mustrain``, ``hist{i}.inst.difc`` for a TOF bank; ``hist{i}.scale``,
``hist{i}.bkg[j]``, ``P@hist{i}.mustrain``, ``hist{i}.shift`` for a CW histogram). Each TOF bank is
read with the conventions its instrument file implies (:func:`layerscope.refine.conventions.conventions_for`:
Lorentzian form, scattering lengths, reflection limit, starting broadening), each CW histogram as
:mod:`layerscope.refine.cw_run` reads it.

Start: every histogram's phase scales and background coefficients by weighted linear least squares
(the pattern is exactly linear in them; its columns are taken as differences of the compiled pattern).

Default strategy (:func:`default_joint_strategy`), stages cumulative, a stage that raises χ² undone:

1. scales + background of every histogram (TOF: ``hist{i}.hscale``, CW: ``hist{i}.scale``; the second
   and later phases' scales per histogram);
2. cells (shared); every CW histogram after the first TOF/CW one gets its hydrostatic strain
   (``P@hist{i}.hstrain``) so that its wavelength does not pull the shared cell;
3. microstrain of every phase in every histogram, CW sample shift (Bragg–Brentano) or DisplaceX/Y;
4. atoms: coordinates along each Wyckoff position's free directions and B_iso.

A strategy file names the joint parameters as above (``[[stage]] free = [...]``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope.refine.strategy import Stage, StagedRun, Strategy

__all__ = ["JointRun", "default_joint_strategy", "refine_joint_files", "write_joint_outputs"]


@dataclass
class JointRun(StagedRun):
    """What :func:`refine_joint_files` did: per-histogram data, the evaluator, the stages."""

    histograms: list
    kinds: list
    xs: list
    ys: list
    sigmas: list
    evaluator: object
    stages: list = field(default_factory=list)  # (name, FitResult, [FitStats per histogram])
    reverted: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def default_joint_strategy(phase_names, kinds, geometries, *, max_cycles: int = 30) -> Strategy:
    """The default strategy of the module docstring; ``kinds`` "tof"/"cw" and ``geometries`` (CW:
    "Bragg-Brentano"/"Debye-Scherrer", TOF: None) one per histogram."""
    s1, s2, s3 = [], [f"{p}.cell" for p in phase_names], []
    for i, k in enumerate(kinds):
        if k == "tof":
            s1 += [f"hist{i}.hscale", f"hist{i}.background"] + [f"hist{i}.{p}.scale" for p in phase_names[1:]]
            s3 += [f"hist{i}.{p}.mustrain" for p in phase_names]
        else:
            s1 += [f"hist{i}.scale", f"hist{i}.background"] + [f"{p}@hist{i}.scale" for p in phase_names[1:]]
            if i > 0:
                s2 += [f"{p}@hist{i}.hstrain" for p in phase_names]
            s3 += [f"{p}@hist{i}.mustrain" for p in phase_names]
            s3.append(f"hist{i}.shift" if geometries[i] == "Bragg-Brentano" else f"hist{i}.displace")
    s4 = [f"{p}.{k}" for p in phase_names for k in ("xyz", "biso")]
    return Strategy((Stage("scales + background", tuple(s1)), Stage("cells", tuple(s2)),
                     Stage("profile + sample", tuple(s3)), Stage("atoms", tuple(s4))),
                    max_cycles=max_cycles, revert_worse=True)


def _tof_histogram(i, data_path, inst_path, phases, lim, nb, notes):
    from layerscope.diffraction.instrument import read_instprm
    from layerscope.diffraction.pattern import build_model, initial_params
    from layerscope.diffraction.readers import read_powder
    from layerscope.refine.conventions import conventions_for

    pd = read_powder(data_path, zero_sigma="keep")
    if pd.kind != "tof":
        raise InputError(f"data {data_path} is constant-wavelength (2θ) data but its instrument {inst_path} is "
                         "time-of-flight; give the pattern's own instrument file", path=data_path)
    inst = read_instprm(inst_path)
    conv = conventions_for(inst_path)
    x, y, s = (np.asarray(v, float) for v in (pd.x, pd.y, pd.sigma))
    lo, hi = (x[0], x[-1]) if lim is None else lim
    keep = (x >= lo) & (x <= hi) & (s > 0)
    if conv.zero_counts == "exclude":
        keep &= y > 0
    if keep.sum() < 20:
        raise InputError(f"fewer than 20 usable points between {lo:g} and {hi:g} µs", path=data_path)
    if np.sum((x >= lo) & (x <= hi)) > keep.sum():
        notes.append(f"hist{i}: {int(np.sum((x >= lo) & (x <= hi)) - keep.sum())} point(s) with σ = 0"
                     + (" or zero counts" if conv.zero_counts == "exclude" else "") + " left out")
    x, y, s = x[keep], y[keep], s[keep]
    d_min = float(inst.d_from_tof(x[0])) if conv.reflections == "gsas2" else None
    brd = {p.name: 1000.0 for p in phases} if conv.start_broadening == "gsas2" else None
    size = {p.name: 1.0 for p in phases} if conv.start_broadening == "gsas2" else None
    m = build_model(phases, x, inst, n_background=nb, lorentz=True, mustrain=brd, size_um=size, d_min=d_min,
                    lorentz_convention=conv.lorentz, scattering=conv.scattering)
    p = initial_params(m, background=np.r_[np.median(y), np.zeros(nb - 1)], mustrain=brd, size_um=size)
    info = {"file": str(data_path), "instrument": str(inst_path), "kind": "tof", "radiation": "neutron",
            "range_us": [float(x[0]), float(x[-1])], "n_points": int(len(y)), "n_background": nb,
            "conventions": conv.as_dict()}
    return (m, p), x, y, s, info


def _cw_histogram(i, data_path, inst_path, phases, lim, nb, notes, prm_reading):
    from layerscope.crystal.scattering import b_coh_fm, element_of
    from layerscope.diffraction import cw_pattern as cw
    from layerscope.diffraction.cw_readers import load_cw_histogram
    from layerscope.refine.conventions import conventions_for

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data, inst = load_cw_histogram(data_path, inst_path, reading=prm_reading)
    notes += [f"hist{i}: {w.message}" for w in caught]
    x = np.asarray(data.x, float)
    lim = (float(x[0]), float(x[-1])) if lim is None else (float(lim[0]), float(lim[1]))
    lengths = {}
    if inst.radiation == "neutron":
        table = conventions_for(inst_path).scattering
        lengths = {element_of(sym): b_coh_fm(element_of(sym), table)
                   for ph in phases for st in ph.sites for sym, _ in st.species}
    m = cw.build_cw_model(phases, x, inst, limits=lim, n_background=nb, scattering_lengths=lengths)
    sl = cw.computed_range(x, lim)
    y, s = np.asarray(data.y[sl], float), np.asarray(data.sigma[sl], float)
    p = cw.cw_initial_params(m, background=np.r_[np.median(y), np.zeros(nb - 1)])
    info = {"file": str(data_path), "instrument": str(inst_path), "kind": "cw", "radiation": inst.radiation,
            "geometry": m.geometry, "wavelength": inst.lam1, "limits": [float(m.x[0]), float(m.x[-1])],
            "n_points": int(len(y)), "n_background": nb, "prm_reading": inst.reading}
    return (m, p), np.asarray(m.x), y, s, info


def _linear_columns(ev, full, names):
    """Columns ∂y/∂name of a pattern exactly linear in those names, as differences of calc."""
    y0 = ev.calc(full)[0]
    cols = []
    for nm in names:
        f = full.copy()
        f[ev.index(nm)] += 1.0
        cols.append(ev.calc(f)[0] - y0)
    return np.column_stack(cols), y0


def _linear_start(ev, kinds, phase_names, ys, sigmas, full, notes):
    """Phase scales (the histogram scale kept) and background of every histogram by weighted linear
    least squares; a histogram whose solve gives a non-positive first-phase scale keeps its start."""
    k = 0
    for i, (kind, y, s) in enumerate(zip(kinds, ys, sigmas)):
        sl = slice(k, k + len(y))
        k += len(y)
        if kind == "tof":
            scale_names = [f"hist{i}.{p}.scale" for p in phase_names]
            bkg = [n for n in ev.names if n.startswith(f"hist{i}.bkg.")]
        else:
            scale_names = [f"{p}@hist{i}.scale" for p in phase_names]
            bkg = [n for n in ev.names if n.startswith(f"hist{i}.bkg[")]
        names = scale_names + bkg
        base = full.copy()
        for nm in names:
            base[ev.index(nm)] = 0.0
        cols, _ = _linear_columns(ev, base, names)
        a = cols[sl] / s[:, None]
        coef, *_ = np.linalg.lstsq(a, y / s, rcond=None)
        if not np.all(np.isfinite(coef)) or coef[0] <= 0:
            notes.append(f"hist{i}: linear start gave no positive scale; kept the starting scale and background")
            continue
        for nm, v in zip(names, coef):
            full[ev.index(nm)] = float(max(v, 1e-6 * coef[0])) if nm in scale_names else float(v)


def refine_joint_files(data_paths, inst_paths, phase_specs, *, strategy=None, limits=None, n_background=6,
                       cycles=None, prm_reading="gsas2", progress=None, log=print) -> JointRun:
    """Read TOF banks and CW histograms, their instruments and the phases; refine them jointly.

    ``limits``: None or one (low, high) per histogram (µs for a TOF bank, degrees 2θ for CW);
    ``n_background``: an int or one per histogram.
    """
    from layerscope.refine.api import as_phases
    from layerscope.refine.cw_run import _read_strategy_doc, instrument_kind
    from layerscope.refine.engine import fit_stats, least_squares
    from layerscope.refine.joint import JointEvaluator, joint_free_set

    say = log or (lambda m: None)
    data_paths, inst_paths = list(data_paths), list(inst_paths)
    n = len(data_paths)
    if len(inst_paths) != n:
        raise InputError(f"{n} pattern(s) but {len(inst_paths)} instrument file(s); give one per pattern, in order")
    lims = list(limits) if limits else [None] * n
    if len(lims) != n:
        raise InputError(f"--limits given {len(lims)} time(s) for {n} histograms; give one LOW HIGH per histogram")
    nbk = list(n_background) if isinstance(n_background, (list, tuple)) else [n_background]
    nbk = [int(b) for b in (nbk * n if len(nbk) == 1 else nbk)]
    if len(nbk) != n or any(b < 1 for b in nbk):
        raise InputError(f"--nbkg: one positive number of background terms, or one per histogram ({n})")
    phases = [p for p, _ in as_phases(list(phase_specs))]
    names = [p.name for p in phases]
    kinds = [instrument_kind(ip) for ip in inst_paths]
    notes, hists, infos, xs, ys, sigmas = [], [], [], [], [], []
    for i, (d, ip, kind, lim, nb) in enumerate(zip(data_paths, inst_paths, kinds, lims, nbk)):
        if kind == "tof":
            h, x, y, s, info = _tof_histogram(i, d, ip, phases, lim, nb, notes)
        else:
            h, x, y, s, info = _cw_histogram(i, d, ip, phases, lim, nb, notes, prm_reading)
        hists.append(h)
        infos.append(info)
        xs.append(x)
        ys.append(y)
        sigmas.append(s)
        say(f"hist{i}: {d} ({info['kind'].upper()} {info['radiation']}, instrument {ip}), {len(y)} points")
    geometries = [info.get("geometry") for info in infos]
    if isinstance(strategy, Strategy):
        strat = strategy
    elif strategy:
        strat, _ = _read_strategy_doc(strategy)
    else:
        strat = default_joint_strategy(names, kinds, geometries)
    if cycles:
        from dataclasses import replace

        strat = replace(strat, max_cycles=cycles)
    ev = JointEvaluator(hists)
    full = ev.x0.copy()
    _linear_start(ev, kinds, names, ys, sigmas, full, notes)
    yall, sall = np.concatenate(ys), np.concatenate(sigmas)
    run = JointRun(infos, kinds, xs, ys, sigmas, ev, notes=notes)
    free: list[str] = []
    src = str(strategy) if isinstance(strategy, (str, Path)) else "strategy"
    for st in strat.stages:
        for k, v in st.start.items():
            if k not in ev.names:
                raise InputError(f"start value for {k!r}: not a parameter of this refinement", path=src,
                                 where=f"stage {st.name!r}")
            full[ev.index(k)] = float(v)
        before = list(free)
        free = [f for f in dict.fromkeys(free + list(st.free)) if f not in set(st.fix)]
        try:
            fs = joint_free_set(ev, free, x0=full)
        except (ValueError, KeyError) as exc:
            raise InputError(f"{exc}", path=src, where=f"stage {st.name!r}") from None
        fr = least_squares(ev, fs, yall, sall, max_cycles=st.max_cycles or strat.max_cycles, tol=strat.tol,
                           schedule=strat.schedule, ftol=strat.ftol)
        hs, k = [], 0
        for y, s in zip(ys, sigmas):
            hs.append(fit_stats(y, fr.y_calc[k:k + len(y)], s, fr.free.n))
            k += len(y)
        if strat.revert_worse and run.stages:
            prev = run.stages[-1][1]
            if not np.isfinite(fr.stats.chi2) or fr.diverged or fr.stats.chi2 > prev.stats.chi2 * (1 + 1e-6):
                msg = (f"stage {st.name!r} made the fit worse (χ²ν {prev.stats.chi2:.6g} → {fr.stats.chi2:.6g}): "
                       "undone, its parameters fixed again")
                say(msg)
                run.reverted.append((st.name, fr, msg))
                free = before
                continue
        full = fr.full.copy()
        run.stages.append((st.name, fr, hs))
        if progress:
            progress(st.name, fr, hs)
    if not run.stages:
        raise InputError("the strategy has no stage that could be kept", path=src)
    return run


def write_joint_outputs(run: JointRun, out_dir) -> dict:
    """``summary.json`` (overall Rwp/Rexp/χ², a ``histograms`` list with each one's Rwp, Rexp, χ² and
    refined terms, the stages, the shared phase parameters) and ``fit_hist{i}.csv`` per histogram."""
    import json

    from layerscope._io import write_csv, write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fr, ev = run.final, run.evaluator
    names, free_full = list(ev.names), set(np.flatnonzero(np.any(fr.free.A != 0, axis=1)))

    def entry(j):
        e = float(fr.esd_full[j])
        return {"value": float(fr.full[j]), "esd": e if np.isfinite(e) and j in free_full else None}

    hists, k, files = [], 0, {}
    for i, (info, st, x, y, s) in enumerate(zip(run.histograms, run.final_hist_stats, run.xs, run.ys, run.sigmas)):
        yc = fr.y_calc[k:k + len(y)]
        k += len(y)
        mine = {nm: entry(j) for j, nm in enumerate(names) if nm.startswith(f"hist{i}.") or f"@hist{i}." in nm}
        hists.append(dict(info, rwp=st.rwp, rp=st.rp, rexp=st.rexp, chi2=st.chi2,
                          refined={kk: v for kk, v in mine.items() if v["esd"] is not None}))
        files[f"fit_hist{i}"] = write_csv(out / f"fit_hist{i}.csv", zip(x, y, s, yc, y - yc),
                                          ["tof_us" if info["kind"] == "tof" else "two_theta_deg", "y_obs", "sigma",
                                           "y_calc", "diff"])
    shared = {nm: entry(j) for j, nm in enumerate(names) if not nm.startswith("hist") and "@hist" not in nm}
    summary = {"rwp": fr.stats.rwp, "rp": fr.stats.rp, "rexp": fr.stats.rexp, "chi2": fr.stats.chi2,
               "converged": run.converged, "histograms": hists, "phases": shared,
               "stages": [{"name": nm, "rwp": f.stats.rwp, "chi2": f.stats.chi2, "cycles": f.n_cycles,
                           "converged": bool(f.converged), "histograms": [{"rwp": h.rwp, "chi2": h.chi2} for h in hs]}
                          for nm, f, hs in run.stages],
               "reverted": [nm for nm, _, _ in run.reverted], "warnings": list(run.warnings)}
    files["summary"] = write_text(out / "summary.json", json.dumps(summary, indent=1, default=float))
    return files
