"""Constant-wavelength refinement from files: ``layerscope refine D1 D2 ... --instprm I1 I2 ... --phase P``.

Each pattern has its own instrument file; histogram i of the joint refinement
(:mod:`layerscope.refine.cw`) is the i-th pattern given, so its parameters are ``hist{i}.…`` and
``PHASE@hist{i}.…``. :func:`route` decides from the instrument files whether a command is a TOF
refinement (one bank; :func:`layerscope.cli.refine.refine_files`), a CW one
(:func:`refine_cw_files`) or a joint one with TOF banks among the histograms
(:func:`layerscope.refine.joint_run.refine_joint_files`); a pattern and its instrument file that
disagree stop with an :class:`InputError` naming both files.

Default CW strategy (:func:`default_cw_strategy`), GSAS-II's usual order, stages cumulative, a stage
that leaves χ²ν higher than it found it undone (``revert_worse``):

1. scales + background: every histogram's scale and Chebyshev background (and the phase
   fractions of the second and later phases);
2. cells: every phase's cell (crystal-system columns); the cell is set by the first histogram,
   every later histogram gets GSAS-II's hydrostatic strain (``P@hist{i}.hstrain``) so that its
   wavelength calibration does not pull the shared cell (GSAS-II's own PbSO4 X-ray + neutron job);
3. profile + sample: isotropic microstrain of every phase in every histogram, sample shift
   (Bragg–Brentano) or DisplaceX/Y (Debye–Scherrer);
4. atoms: coordinates along each Wyckoff position's free directions and Biso of every site;
5. texture (only with ``--texture ORDER`` or a strategy file that names it): spherical-harmonics
   C(L,N) of each Bragg–Brentano histogram.

A strategy file (:mod:`layerscope.refine.strategy`) names CW parameters the way
:mod:`layerscope.refine.cw` does (``hist1.shift``, ``hist0.background``, ``PbSO4.cell``,
``PbSO4@hist0.texture``, ``PbSO4@hist1.hstrain``) and a few shorthands that expand over every
histogram: ``background``, ``scale`` (histogram scales), ``P.scale``, ``P.mustrain``, ``P.size``,
``P.hstrain``, ``P.stephens``, ``P.texture``. ``[refine] texture_order = 2`` gives the harmonic
order when a stage names texture and ``--texture`` is not given.
"""

from __future__ import annotations

import re
import tomllib
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope.refine.strategy import Stage, StagedRun, Strategy

__all__ = ["route", "instrument_kind", "default_cw_strategy", "expand_cw_free", "check_cw_names",
           "refine_cw_files", "CWRun"]

_HIST_KEYS = ("scale", "zero", "shift", "transparency", "displace", "displace_x", "displace_y", "background",
              "absorption", "surf_rough", "surf_rough_a", "surf_rough_b")
_HAP_KEYS = ("scale", "mustrain", "size", "hstrain", "stephens", "texture", "md")
_PHASE_KEYS = ("cell", "xyz", "biso")


def _declared_kind(path):
    """"cw"/"tof" from the ``Type:`` (``.instprm``) or ``INS HTYPE`` (``.prm``) record, None if absent."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for ln in lines:
        t = None
        if ln.startswith("Type:"):
            t = ln.split(":", 1)[1].strip().split()[0] if ln.split(":", 1)[1].strip() else ""
        elif ln.startswith("INS") and "HTYPE" in ln:
            t = ln.split("HTYPE", 1)[1].strip()[:4]
        if t:
            t = t.upper()
            if len(t) >= 3 and t[0] == "P" and t[2] == "T":
                return "tof"
            if len(t) >= 3 and t[0] == "P" and t[2] == "C":
                return "cw"
    return None


def instrument_kind(path) -> str:
    """"cw" or "tof" from an instrument file's content (GSAS-II ``.instprm`` Type, GSAS-I ``.prm`` HTYPE)."""
    from layerscope.diffraction.cw_instrument import read_cw_instrument

    kind = _declared_kind(path)
    if kind:
        return kind
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_cw_instrument(path)
        return "cw"
    except InputError as e:
        if "time-of-flight" in str(e):
            return "tof"
        try:
            from layerscope.diffraction.instrument import read_instprm

            read_instprm(path)
            return "tof"
        except Exception:
            raise e from None


def route(data_paths, inst_paths) -> str:
    """"tof" (one TOF bank), "cw" (one or several CW histograms) or "joint" (several TOF banks, or TOF
    and CW histograms together: :mod:`layerscope.refine.joint_run`); InputError when the counts differ."""
    data_paths, inst_paths = list(data_paths), list(inst_paths)
    if len(data_paths) != len(inst_paths):
        raise InputError(f"one instrument file per pattern is needed: {len(data_paths)} pattern(s) "
                         f"({', '.join(map(str, data_paths))}) but {len(inst_paths)} instrument file(s) "
                         f"({', '.join(map(str, inst_paths))}), in the same order")
    kinds = [instrument_kind(i) for i in inst_paths]
    if kinds == ["tof"]:
        return "tof"
    if any(k == "tof" for k in kinds):
        return "joint"
    return "cw"


def default_cw_strategy(phase_names, geometries, *, texture_hists=(), max_cycles: int = 30) -> Strategy:
    """The default CW strategy (module docstring); ``geometries`` one per histogram."""
    n = len(geometries)
    s1 = [f"hist{i}.{k}" for i in range(n) for k in ("scale", "background")]
    s1 += [f"{p}@hist{i}.scale" for i in range(n) for p in phase_names[1:]]
    s2 = [f"{p}.cell" for p in phase_names] + [f"{p}@hist{i}.hstrain" for i in range(1, n) for p in phase_names]
    s3 = [f"{p}@hist{i}.mustrain" for i in range(n) for p in phase_names]
    s3 += [f"hist{i}.shift" if g == "Bragg-Brentano" else f"hist{i}.displace" for i, g in enumerate(geometries)]
    s4 = [f"{p}.{k}" for p in phase_names for k in ("xyz", "biso")]
    stages = [Stage("scales + background", tuple(s1)), Stage("cells", tuple(s2)),
              Stage("profile + sample", tuple(s3)), Stage("atoms", tuple(s4))]
    if texture_hists:
        stages.append(Stage("texture", tuple(f"{p}@hist{i}.texture" for i in texture_hists for p in phase_names)))
    return Strategy(tuple(stages), max_cycles=max_cycles, revert_worse=True)


_NAME = re.compile(r"^(?:(?P<hp>[^@]+)@)?hist(?P<i>\d+)\.(?P<k>.+)$")


def check_cw_names(free, n_hist: int, phase_names, source: str = "strategy", stage: str = "") -> None:
    """InputError for a free name that is not a CW parameter (before any model is built)."""
    where = f"stage {stage!r}" if stage else None
    for key in free:
        m = _NAME.match(key)
        if m:
            i, k = int(m["i"]), m["k"]
            if i >= n_hist:
                raise InputError(f"{key!r}: there are {n_hist} histogram(s), hist0..hist{n_hist - 1}", path=source,
                                 where=where)
            if m["hp"] is None and (k in _HIST_KEYS or re.fullmatch(r"bkg\[\d+\]", k)):
                continue
            if m["hp"] in phase_names and (k in _HAP_KEYS or re.fullmatch(r"(hstrain\[\d\]|C\(\d+,-?\d+\)|S\d{3})", k)):
                continue
        elif key in ("background", "scale", "hscale"):
            continue
        elif "." in key and key.split(".", 1)[0] in phase_names:
            k = key.split(".", 1)[1]
            if k in _PHASE_KEYS or k in _HAP_KEYS or re.fullmatch(r"[^.]+\.(x|y|z|biso)|[a-c]|alpha|beta|gamma", k):
                continue
        raise InputError(f"{key!r} is not a constant-wavelength parameter (names: hist{{i}}.scale|background|zero|"
                         f"shift|transparency|displace|absorption|surf_rough, "
                         f"PHASE@hist{{i}}.scale|mustrain|size|hstrain|stephens|texture|md, "
                         f"PHASE.cell|xyz|biso; phases {', '.join(phase_names)})", path=source, where=where)


def expand_cw_free(free, n_hist: int, phase_names, texture_hists=()) -> list[str]:
    """Shorthands → the keys :func:`layerscope.refine.cw.cw_free_set` takes."""
    out = []
    for key in free:
        if key == "background":
            out += [f"hist{i}.background" for i in range(n_hist)]
        elif key in ("scale", "hscale"):
            out += [f"hist{i}.scale" for i in range(n_hist)]
        elif "." in key and "@" not in key and key.split(".", 1)[0] in phase_names and \
                key.split(".", 1)[1] in _HAP_KEYS:
            p, k = key.split(".", 1)
            hists = texture_hists if k == "texture" else range(n_hist)
            out += [f"{p}@hist{i}.{k}" for i in hists]
        else:
            out.append(key)
    return list(dict.fromkeys(out))


@dataclass
class CWRun(StagedRun):
    """What :func:`refine_cw_files` did: per-histogram data and models, stages and the final fit."""

    histograms: list
    models: list
    ys: list
    sigmas: list
    evaluator: object
    stages: list = field(default_factory=list)  # (name, FitResult, [FitStats per histogram])
    reverted: list = field(default_factory=list)  # (name, FitResult, message)
    phases: tuple = ()
    conventions: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def _texture_in(strategy, n_hist, phase_names, geometries):
    named = set()
    for st in strategy.stages:
        for k in st.free:
            m = _NAME.match(k)
            if m and m["hp"] and m["k"] == "texture":
                named.add(int(m["i"]))
            elif "." in k and "@" not in k and k.split(".", 1)[1] == "texture":
                named |= {i for i, g in enumerate(geometries) if g == "Bragg-Brentano"}
    return sorted(named)


def _stephens_in(strategy, phase_names):
    out = set()
    for st in strategy.stages:
        for k in st.free:
            if k.endswith(".stephens"):
                out.add(k.split("@")[0].split(".")[0])
    return out


def _linear_start(ev, full, i, y, sigma):
    """Histogram i's scale (first phase), phase fractions of the others and Chebyshev background by
    weighted linear least squares at the starting structure (every term enters y linearly), written
    into the full vector ``full`` of the evaluator ``ev``; returns a note when it fails."""
    model = ev.models[i]
    calc = ev.components(full)[i]
    x = np.asarray(model.x)
    u = -1.0 + 2.0 * (x - x[0]) / (x[-1] - x[0])
    cheb = np.polynomial.chebyshev.chebvander(u, model.n_background - 1)
    scale = full[ev.names.index(f"hist{i}.scale")]
    cols = [calc[p] / (scale * full[ev.names.index(f"{p}@hist{i}.scale")]) for p in model.phase_names]
    a = np.column_stack(cols + [cheb]) / sigma[:, None]
    coef, *_ = np.linalg.lstsq(a, y / sigma, rcond=None)
    nph = len(cols)
    sc = coef[:nph]
    if not np.all(np.isfinite(sc)) or sc[0] <= 0:
        return "linear start gave no positive scale; kept scale 1 and a flat background"
    full[ev.names.index(f"hist{i}.scale")] = float(sc[0])
    for p, sp in zip(model.phase_names, sc):
        full[ev.names.index(f"{p}@hist{i}.scale")] = 1.0 if p == model.phase_names[0] else float(max(sp / sc[0], 1e-4))
    for j in range(model.n_background):
        full[ev.names.index(f"hist{i}.bkg[{j}]")] = float(coef[nph + j])
    return None


def _read_strategy_doc(path):
    from layerscope.refine.strategy import parse_strategy

    p = Path(path)
    if not p.is_file():
        raise InputError("strategy file not found", path=p)
    try:
        doc = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", path=p) from None
    try:
        strat = parse_strategy(doc, str(p))
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(str(exc), path=p) from None
    order = doc.get("refine", {}).get("texture_order")
    if order is not None and (not isinstance(order, int) or order < 2 or order % 2):
        raise InputError("[refine] texture_order must be an even integer >= 2", path=p)
    return strat, order


def refine_cw_files(data_paths, inst_paths, phase_specs, *, strategy=None, limits=None, n_background=6,
                    cycles=None, texture=None, anomalous=None, scattering=None, prm_reading="gsas2",
                    progress=None, log=print, march_dollase=None) -> CWRun:
    """Read CW patterns, their instruments and the phases; refine them jointly, stage by stage.

    ``limits``: None or one (low, high) 2θ range per histogram (or one for all); ``n_background``:
    an int or one per histogram; ``texture``: spherical-harmonics order for the Bragg–Brentano
    histograms (a texture stage is added to the default strategy); ``anomalous``: {element: (f′, f″)}
    for X-ray histograms (default gemmi's Cromer–Liberman at Kα1); ``scattering``: neutron
    scattering-length table (default that of the instrument file's code: GSAS-II's for
    ``.instprm``/``.prm``); ``prm_reading``: how GSAS-I ``.prm`` files are read ("gsas2" as GSAS-II
    reads them, or "as_written"; :mod:`layerscope.diffraction.cw_instrument`); ``march_dollase``:
    {phase: (h, k, l)} March–Dollase axes (ratio ``PHASE@histN.md`` on every histogram, start 1).
    """
    from layerscope.crystal.load import load_phases
    from layerscope.crystal.scattering import b_coh_fm, element_of
    from layerscope.diffraction import cw_pattern as cw
    from layerscope.diffraction.cw_readers import load_cw_histogram
    from layerscope.refine.conventions import conventions_for
    from layerscope.refine.cw import CWJointEvaluator, cw_free_set, histogram_stats
    from layerscope.refine.engine import least_squares

    say = log or (lambda m: None)
    data_paths, inst_paths = list(data_paths), list(inst_paths)
    n = len(data_paths)
    if len(inst_paths) != n:
        raise InputError(f"{n} pattern(s) but {len(inst_paths)} instrument file(s); give one per pattern")
    lims = list(limits) if limits else [None] * n
    if len(lims) == 1 and n > 1:
        lims = lims * n
    if len(lims) != n:
        raise InputError(f"--limits given {len(lims)} time(s) for {n} histograms; give one LOW HIGH per histogram "
                         "(or one for all)")
    nbk = list(n_background) if isinstance(n_background, (list, tuple)) else [n_background]
    nbk = nbk * n if len(nbk) == 1 else nbk
    if len(nbk) != n or any(int(b) < 1 for b in nbk):
        raise InputError(f"--nbkg: one positive number of background terms, or one per histogram ({n})")
    if texture is not None and (int(texture) < 2 or int(texture) % 2):
        raise InputError(f"--texture {texture}: the spherical-harmonics order must be an even integer >= 2")
    from layerscope.refine.api import as_phases

    loaded = as_phases(phase_specs) if not isinstance(phase_specs, (list, tuple)) or any(
        not isinstance(x, (str, Path)) for x in phase_specs) else load_phases(phase_specs)
    phases = [p for p, _ in loaded]
    names = [p.name for p in phases]
    notes = []
    if isinstance(strategy, Strategy):
        strat, order, strategy = strategy, texture, None
        for st in strat.stages:
            check_cw_names(st.free, n, names, source="strategy", stage=st.name)
    elif strategy:
        strat, order = _read_strategy_doc(strategy)
        for st in strat.stages:
            check_cw_names(st.free, n, names, source=str(strategy), stage=st.name)
        order = texture or order
    else:
        strat, order = None, texture
    scat_table = scattering or conventions_for(inst_paths[0]).scattering
    hists, datas = [], []
    for i, (d, ip) in enumerate(zip(data_paths, inst_paths)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                data, inst = load_cw_histogram(d, ip, reading=prm_reading)
            except InputError as e:
                if str(d) in str(e) and str(ip) in str(e):
                    raise
                raise InputError(f"data {d} with instrument {ip}: {e.detail}", path=e.path, where=e.where) from None
        for w in caught:
            notes.append(f"hist{i}: {w.message}")
        for nt in inst.notes:
            notes.append(f"hist{i} instrument {ip}: {nt}")
        datas.append((data, inst))
    geometries = ["Bragg-Brentano" if inst.radiation == "xray" else "Debye-Scherrer" for _, inst in datas]
    if strat is None:
        tex = [i for i, g in enumerate(geometries) if g == "Bragg-Brentano"] if texture else []
        if texture and not tex:
            raise InputError("--texture: no Bragg–Brentano (X-ray) histogram to apply it to")
        strat = default_cw_strategy(names, geometries, texture_hists=tex)
    tex = _texture_in(strat, n, names, geometries)
    if tex and not order:
        raise InputError("the strategy refines texture but no order is given (--texture ORDER or [refine] "
                         "texture_order)", path=strategy)
    stephens = _stephens_in(strat, names)
    md = dict(march_dollase or {})
    for k in md:
        if k not in names:
            raise InputError(f"--march-dollase {k}: no such phase (phases: {', '.join(names)})")
    for st in strat.stages:
        for k in st.free:
            if k.endswith(".md") and k.split("@")[0].split(".")[0] not in md:
                raise InputError(f"{k!r}: give the phase's March–Dollase axis (--march-dollase PHASE=H,K,L)",
                                 path=strategy, where=f"stage {st.name!r}")
    if cycles:
        strat = replace(strat, max_cycles=cycles)
    models, params, ys, sigmas = [], [], [], []
    for i, ((data, inst), lim, nb) in enumerate(zip(datas, lims, nbk)):
        x = np.asarray(data.x)
        lim = (float(x[0]), float(x[-1])) if lim is None else (float(lim[0]), float(lim[1]))
        if lim[0] >= lim[1] or lim[1] <= x[0] or lim[0] >= x[-1]:
            raise InputError(f"limits {lim[0]}-{lim[1]}° 2θ lie outside the pattern's {x[0]:.3f}-{x[-1]:.3f}°",
                             path=data_paths[i])
        lengths = {}
        if inst.radiation == "neutron":
            for ph in phases:
                for s in ph.sites:
                    for sym, _ in s.species:
                        lengths[element_of(sym)] = b_coh_fm(element_of(sym), scat_table)
        m = cw.build_cw_model(phases, x, inst, limits=lim, n_background=int(nb), anomalous=anomalous or {},
                              scattering_lengths=lengths, sh_order=order if i in tex else None,
                              stephens=stephens or None, march_dollase=md or None)
        sl = cw.computed_range(x, lim)
        y, s = np.asarray(data.y[sl], float), np.asarray(data.sigma[sl], float)
        p0 = cw.cw_initial_params(m, background=np.r_[np.median(y), np.zeros(int(nb) - 1)])
        nonpos = int(np.sum(y <= 0))
        if nonpos:
            notes.append(f"hist{i}: {nonpos} point(s) with y <= 0 in the fitted range keep the reader's σ "
                         "(GSAS-II gives them weight 0)")
        models.append(m)
        params.append(p0)
        ys.append(y)
        sigmas.append(s)
        anom = {el: v.get("anomalous_source") for ph in m.scattering.values() for el, v in ph.items()
                if "anomalous_source" in v}
        hists.append({"file": str(data_paths[i]), "instrument": str(inst_paths[i]), "radiation": inst.radiation,
                      "geometry": m.geometry, "wavelength": inst.lam1, "lam2": inst.lam2, "ka2_ratio": inst.ratio,
                      "limits": [float(m.x[0]), float(m.x[-1])], "n_points": int(len(y)),
                      "n_background": int(nb), "prm_reading": inst.reading,
                      "texture_order": order if i in tex else None, "scattering": m.scattering,
                      "anomalous_source": anom})
        say(f"hist{i}: {data_paths[i]} ({inst.radiation}, {m.geometry}, λ1 {inst.lam1} Å, instrument {inst_paths[i]} "
            f"read as {inst.reading!r}), {m.x[0]:.3f}-{m.x[-1]:.3f}° 2θ, {len(y)} points")
    ev = CWJointEvaluator(models, params)
    start_full = ev.x0.copy()
    for i in range(n):
        msg = _linear_start(ev, start_full, i, ys[i], sigmas[i])
        if msg:
            notes.append(f"hist{i}: {msg}")
    yall, sall = np.concatenate(ys), np.concatenate(sigmas)
    conv = {"kind": "constant-wavelength", "prm_reading": prm_reading,
            "instrument_readings": [h["prm_reading"] for h in hists],
            "anomalous_source": "given (--anomalous)" if anomalous else "gemmi Cromer-Liberman at the Kα1 energy",
            "anomalous_given": {k: list(v) for k, v in (anomalous or {}).items()},
            "scattering": scat_table, "background": "chebyshev-1", "profile": "gsas2",
            "schedule": strat.schedule, "max_cycles": strat.max_cycles,
            "origin": f"instrument files ({', '.join(map(str, inst_paths))})"
                      + (f", strategy file {strategy}" if strategy else "")}
    say(f"conventions: .prm reading {prm_reading}, f′/f″ {conv['anomalous_source']}, neutron scattering lengths "
        f"{scat_table}, Chebyshev background, GSAS-II CW profile")
    run = CWRun(hists, models, ys, sigmas, ev, conventions=conv, notes=notes)
    free: list[str] = []
    full = start_full.copy()
    names_full = list(ev.names)
    for st in strat.stages:
        for k, v in st.start.items():
            if k not in names_full:
                raise InputError(f"start value for {k!r}: not a parameter of this refinement", path=strategy,
                                 where=f"stage {st.name!r}")
            full[names_full.index(k)] = float(v)
        before = list(free)
        add = expand_cw_free(st.free, n, names, tex)
        fix = set(expand_cw_free(st.fix, n, names, tex))
        free = [f for f in dict.fromkeys(free + add) if f not in fix]
        try:
            fs = cw_free_set(ev, free, x0=full)
        except (ValueError, KeyError) as exc:
            raise InputError(f"{exc}", path=strategy, where=f"stage {st.name!r}") from None
        fr = least_squares(ev, fs, yall, sall, max_cycles=st.max_cycles or strat.max_cycles, tol=strat.tol,
                           schedule=strat.schedule, ftol=strat.ftol)
        hs = histogram_stats(ev, fr, ys, sigmas)
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
        raise InputError("the strategy has no stage that could be kept", path=strategy)
    run.phases = refined_cw_phases(run)
    return run


def refined_cw_phases(run: CWRun):
    """Phases with the refined (shared) cell, coordinates and Biso."""
    from layerscope.crystal.phase import Site

    p0 = run.evaluator.unpack(run.final.full)[0]["phases"]
    out = []
    for s in run.models[0].phases:
        ph, pp = s.phase, p0[s.phase.name]
        xyz, biso = np.asarray(pp["xyz"]), np.clip(np.asarray(pp["biso"]), 0.0, None)
        sites = tuple(Site(st.label, tuple(float(v) for v in xyz[i]), st.species, float(biso[i]), st.wyckoff, st.uani)
                      for i, st in enumerate(ph.sites))
        out.append(replace(ph, cell=tuple(float(v) for v in np.asarray(pp["cell"])), sites=sites))
    return tuple(out)
