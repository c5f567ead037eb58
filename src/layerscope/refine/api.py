"""``refine``: one TOF pattern, its instrument and phases → a :class:`RietveldResult`.

The Python entry point behind ``layerscope refine`` (``layerscope.cli.refine.refine_files`` is a thin
wrapper of it) and ``layerscope.refine(...)``. ``data``, ``instrument`` and ``phases`` may be
paths (as on the command line) or loaded objects (:class:`PowderData`, :class:`TOFInstrument`,
:class:`Phase` or ``(Phase, scale)`` pairs).

The conventions (``refine.conventions``) default to those of the instrument file's code (a
GSAS-II ``.instprm``: GSAS-II's; a loaded instrument: its ``source`` path decides, else
layerscope's), then the strategy's ``[conventions]``, then ``conventions`` (a preset name or a
dict of options given by the user) override them; the result records them.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from layerscope._errors import InputError

__all__ = ["refine", "as_phases"]


def _is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def as_phases(phases) -> list[tuple]:
    """(Phase, starting scale) pairs from specifications (preset, CIF path, ``NAME=SOURCE:SCALE``),
    :class:`Phase` objects (scale 1) or (Phase, scale) pairs, or a list mixing them."""
    from layerscope.crystal.load import load_phases
    from layerscope.crystal.phase import Phase

    if _is_path(phases) or isinstance(phases, Phase):
        phases = [phases]
    out = []
    for p in phases:
        if isinstance(p, Phase):
            out.append((p, 1.0))
        elif isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], Phase):
            out.append((p[0], float(p[1])))
        elif _is_path(p):
            out += load_phases([os.fspath(p)])
        else:
            raise TypeError(f"a phase is a preset name, a CIF path, a Phase or (Phase, scale), got {p!r}")
    names = [p.name for p, _ in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"phase names must be unique, repeated: {dupes} (use NAME=SOURCE or Phase.with_name)")
    return out


def _conventions(instrument_source, strat, strategy_origin, conventions):
    from layerscope.refine.conventions import PRESETS, conventions_for

    conv = conventions_for(instrument_source or None)
    conv = conv.with_options(origin=strategy_origin, **strat.conventions)
    if isinstance(conventions, str):
        if conventions not in PRESETS:
            raise ValueError(f"conventions must be one of {', '.join(PRESETS)} or a table of options, "
                             f"got {conventions!r}")
        return replace(PRESETS[conventions], origin=f"conventions = {conventions!r} (user)")
    return conv.with_options(origin="user", **(conventions or {}))


def refine(data, *, instrument, phases, strategy=None, conventions=None, tmin=None, tmax=None,
           n_background: int = 6, cycles=None, progress=None, calibrate=(), align=None, log=None):
    """Rietveld refinement of one TOF pattern: linear start, then the staged strategy.

    Parameters
    ----------
    data : path or :class:`~layerscope.diffraction.readers.PowderData`
        The TOF pattern (µs). Points with σ = 0 get weight 0 (said through ``log``).
    instrument : path or :class:`~layerscope.diffraction.instrument.TOFInstrument`
        The diffractometer constants (DIFC µs/Å, DIFA, ZERO µs) and profile: a GSAS-II
        ``.instprm`` file or a loaded instrument.
    phases : str, path, Phase, (Phase, float) or a list of them
        Preset names, CIF paths, phases or (phase, starting scale) pairs.
    strategy : path, dict, :class:`~layerscope.refine.strategy.Strategy` or None
        A strategy TOML, the same as a dict (``{"stage": [{"name": ..., "free": [...]}], "refine": {...}}``),
        or None (the default staged strategy for these phases)
    conventions : str, dict or None
        A preset name ("gsas2", "fullprof", "layerscope") or a dict of options; None: those of
        the instrument file's code.
    tmin, tmax : float, optional
        Fitted TOF range (µs); default: the whole pattern.
    n_background : int
        Chebyshev background terms.
    cycles : int, optional
        Maximum least-squares cycles per stage (overrides the strategy).
    progress : callable, optional
        ``progress(stage_name, FitResult)`` after each stage.
    calibrate : sequence of str
        Instrument terms ("zero", "difc") added to the default strategy.
    align : bool, optional
        Cell alignment before least squares on/off (default: the strategy's).
    log : callable, optional
        ``log(str)`` for notes (default: silent).

    Returns
    -------
    :class:`~layerscope.refine.rietveld.RietveldResult`
        Stages, refined phases (cells in Å and degrees), Rwp (%), weight fractions and every
        refined quantity with its esd, and the flags of what the data could not determine.

    Examples
    --------
    >>> import layerscope as ls                                          # doctest: +SKIP
    >>> res = ls.refine("PG3_22048.gsa", instrument="POWGEN_2665.instprm",
    ...                 phases=["NAC.cif", "CaF2.cif"])                  # doctest: +SKIP
    """
    from layerscope.diffraction.instrument import TOFInstrument, read_instprm
    from layerscope.diffraction.readers import PowderData, read_powder
    from layerscope.refine.rietveld import linear_start, refine_pattern
    from layerscope.refine.strategy import Strategy, default_strategy, parse_strategy, read_strategy

    say = log or (lambda msg: None)
    pd = data if isinstance(data, PowderData) else read_powder(data, zero_sigma="keep")
    where = pd.source or "the pattern"
    if pd.kind != "tof":
        inst_name = os.fspath(instrument) if _is_path(instrument) else (getattr(instrument, "source", "") or
                                                                       "the instrument")
        raise InputError(f"the pattern is {pd.kind!r} (2θ) data but {inst_name} is a time-of-flight instrument; "
                         "give a TOF pattern, or a constant-wavelength instrument for this one", path=pd.source)
    if isinstance(instrument, TOFInstrument):
        inst, inst_source = instrument, instrument.source
    else:
        inst_source = os.fspath(instrument)
        try:
            inst = read_instprm(instrument)
        except ValueError as exc:
            if "is not a TOF" in str(exc):
                raise InputError(f"{exc}; the pattern {where} is time-of-flight data, which needs a TOF "
                                 "instrument file (Type PNT)", path=instrument) from None
            raise
    loaded = as_phases(phases)
    phase_list = [p for p, _ in loaded]
    scales = {p.name: s for p, s in loaded}
    if isinstance(strategy, Strategy):
        strat = strategy
    elif isinstance(strategy, dict):
        strat = parse_strategy(strategy, "strategy given as a dict")
    elif strategy:
        strat = read_strategy(strategy)
    else:
        strat = default_strategy([p.name for p in phase_list], calibrate=calibrate)
    origin = f"strategy file {strategy}" if _is_path(strategy) else "strategy"
    conv = _conventions(inst_source, strat, origin, conventions)
    strat = replace(strat, lorentz_convention=conv.lorentz)
    if cycles:
        strat = replace(strat, max_cycles=cycles)
    if align is not None:
        strat = replace(strat, align_cells=bool(align))
    say(conv.describe())
    x, y, s = pd.x, pd.y, pd.sigma
    lo = tmin if tmin is not None else x[0]
    hi = tmax if tmax is not None else x[-1]
    m = (x >= lo) & (x <= hi)
    if int(np.sum(m & (s > 0))) < 10:
        raise InputError(f"the fit range {lo:g}-{hi:g} holds {int(np.sum(m & (s > 0)))} usable point(s) (data span "
                         f"{float(x[0]):g}-{float(x[-1]):g}); expected a range with at least 10 points of "
                         "positive sigma (check --tmin/--tmax)", path=where)
    n_zero_sigma = int(np.sum(m & (s <= 0)))
    m &= s > 0
    if n_zero_sigma:
        say(f"{n_zero_sigma} point(s) with σ = 0 in {where}: weight 0 (left out of the fit)")
    n_zero = 0
    if conv.zero_counts == "exclude":
        n_zero = int(np.sum(m & (y <= 0)))
        m &= y > 0
        if n_zero:
            say(f"{n_zero} point(s) with zero counts: weight 0 (convention zero_counts = exclude, as GSAS-II)")
    if m.sum() < 20:
        raise ValueError(f"{where}: fewer than 20 points between {lo} and {hi} µs")
    d_min = float(inst.d_from_tof(x[m][0])) if conv.reflections == "gsas2" else None
    mustrain = size_um = None
    if conv.start_broadening == "gsas2":
        mustrain = {p.name: 1000.0 for p in phase_list}
        size_um = {p.name: 1.0 for p in phase_list}
    background = None
    if strat.scale_model == "phase":
        # a linear least-squares estimate of the scales and the background is the usual first step
        scales, background = linear_start(phase_list, x[m], y[m], s[m], inst, scales, n_background,
                                          scattering=conv.scattering, mustrain=mustrain, size_um=size_um,
                                          lorentz_convention=conv.lorentz, d_min=d_min)
    record = conv.as_dict() | {"d_min_angstrom": d_min, "n_zero_sigma_points": n_zero_sigma,
                               "n_zero_count_points_excluded": n_zero}
    return refine_pattern(x[m], y[m], s[m], phase_list, inst, strat, scales=scales, n_background=n_background,
                          background=background, progress=progress, mustrain=mustrain, size_um=size_um,
                          d_min=d_min, scattering=conv.scattering, conventions=record, log=say)


def with_esd(value: float, esd: float) -> str:
    """``10.24799(3)``: the value to the esd's first significant digit (two when it is 1), the esd in
    brackets; ``value`` alone (6 significant digits) when the esd is 0, NaN or absent."""
    if not (np.isfinite(esd) and esd > 0) or not np.isfinite(value):
        return f"{value:.6g}"
    dec = -int(np.floor(np.log10(esd)))
    if round(esd * 10**dec) < 2:
        dec += 1
    dec = max(dec, 0)
    return f"{value:.{dec}f}({round(esd * 10**dec):d})"


def result_lines(res) -> list[str]:
    """The headline of a :class:`RietveldResult`: agreement factors, cells and fractions with esds,
    Bragg R, and every flag and warning (used by its ``repr``)."""
    st = res.final.stats
    out = [f"RietveldResult: {len(res.stages)} stage(s), {'converged' if res.converged else 'NOT converged'}; "
           f"Rwp {st.rwp:.2f} %  Rp {st.rp:.2f} %  Rexp {st.rexp:.2f} %  χ² {st.chi2:.3f}  ({st.n_points} points)"]
    names = set(res.layout_names)
    for ph in res.phases:
        cell = []
        for k, unit in (("a", "Å"), ("b", "Å"), ("c", "Å"), ("alpha", "°"), ("beta", "°"), ("gamma", "°")):
            n = f"{ph.name}.{k}"
            if n in names:
                cell.append(f"{k} {with_esd(res.value(n), res.esd(n))} {unit}")
        wf, wfe = res.weight_fraction.get(ph.name, np.nan), res.weight_fraction_esd.get(ph.name, np.nan)
        out.append(f"  {ph.name} ({ph.spacegroup}): {', '.join(cell)}; wt fraction {with_esd(wf, wfe)}; "
                   f"Bragg R {res.bragg_r.get(ph.name, np.nan):.2f} %")
    for w in res.warnings:
        out.append(f"  flag: {w}")
    return out


def result_html(res) -> str:
    """The same headline as an HTML block for notebooks."""
    import html

    lines = result_lines(res)
    body = "".join(f"<li>{html.escape(x.strip())}</li>" for x in lines[1:])
    return f"<div><b>{html.escape(lines[0])}</b><ul>{body}</ul></div>"


def result_dataset(res):
    """A :class:`RietveldResult` as an ``xarray.Dataset``: the pattern over ``tof_us`` (observed,
    calculated, σ, background, each phase), every parameter with its esd over ``parameter``, and
    the agreement factors, conventions and flags in ``attrs``."""
    import json

    import xarray as xr

    t = np.asarray(res.tof_us)
    data = {"y_obs": ("tof_us", res.y_obs, {"units": "counts/µs"}),
            "y_calc": ("tof_us", np.asarray(res.y_calc), {"units": "counts/µs"}),
            "sigma": ("tof_us", res.sigma, {"units": "counts/µs"}),
            "background": ("tof_us", np.asarray(res.background), {"units": "counts/µs"})}
    for name, y in res.phase_patterns.items():
        data[f"phase_{name}"] = ("tof_us", np.asarray(y), {"units": "counts/µs", "phase": name})
    free = set(res.final.names)
    data["value"] = ("parameter", np.asarray(res.full, float))
    data["esd"] = ("parameter", np.asarray(res.esd_full, float))
    data["refined"] = ("parameter", np.array([n in free for n in res.layout_names]))
    st = res.final.stats
    attrs = {"rwp_percent": st.rwp, "rp_percent": st.rp, "rexp_percent": st.rexp, "chi2": st.chi2,
             "converged": int(res.converged), "scale_model": res.scale_model,
             "weight_fraction": json.dumps(res.weight_fraction), "weight_fraction_esd": json.dumps(res.weight_fraction_esd),
             "bragg_r_percent": json.dumps(res.bragg_r), "conventions": json.dumps(res.conventions, default=str),
             "flags": "\n".join(res.warnings)}
    return xr.Dataset(data, coords={"tof_us": ("tof_us", t, {"units": "µs"}),
                                    "parameter": list(res.layout_names)}, attrs=attrs)
