"""Running a translated FullProf TOF job (:func:`refine_pcr_job`), evaluating it at the pcr's own
values (:func:`evaluate_pcr_job`, with FullProf's R factors), and reading FullProf's refined cells
and R factors back from its ``.sum`` file (:func:`read_sum_cells`, :func:`read_sum_stats`) to compare.

Hand-written: no library reads FullProf's ``.sum`` listing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope.refine.pcr import PcrJob

__all__ = ["refine_pcr_job", "evaluate_pcr_job", "read_sum_cells", "read_sum_stats", "read_out_parameters",
           "fullprof_r_factors"]


def read_sum_cells(path) -> dict[str, list[tuple[float, float]]]:
    """Refined cells (value, esd) × 6 by phase name from a FullProf ``.sum`` (or ``.out``) file."""
    path = Path(path)
    lines = path.read_text(errors="replace").splitlines()
    out, phase = {}, None
    for i, s in enumerate(lines):
        m = re.match(r"\s*=> Phase No\.\s+\d+\s+(\S+)", s)
        if m:
            phase = m.group(1)
        if "=> Cell parameters" in s:
            vals = []
            for t in lines[i + 1:i + 7]:
                toks = t.split()
                try:
                    vals.append((float(toks[0]), float(toks[1])))
                except (IndexError, ValueError):
                    raise InputError("expected 'value esd' under '=> Cell parameters'", path=path,
                                     where=f"line {i + 2}") from None
            out[phase or f"phase{len(out) + 1}"] = vals
    if not out:
        raise InputError("no '=> Cell parameters' block (not a FullProf .sum file?)", path=path)
    return out


def read_sum_stats(path) -> dict[str, float]:
    """FullProf's R factors "not corrected for background" from a ``.sum``: the first line
    ``=> Rp: … Rwp: … Rexp: … Chi2: …`` ({"Rp", "Rwp", "Rexp", "Chi2"} in %, χ² as is)."""
    path = Path(path)
    for s in path.read_text(errors="replace").splitlines():
        m = re.search(r"=> Rp:\s*(\S+)\s+Rwp:\s*(\S+)\s+Rexp:\s*(\S+)\s+Chi2:\s*(\S+)", s)
        if m:
            try:
                return dict(zip(("Rp", "Rwp", "Rexp", "Chi2"), (float(v) for v in m.groups())))
            except ValueError:
                break
    raise InputError("no '=> Rp: … Rwp: … Rexp: … Chi2: …' line (not a FullProf .sum file?)", path=path)


def read_out_parameters(path) -> dict[str, tuple[float, float]]:
    """FullProf's refined values and esds by symbolic name from the ``SYMBOLIC NAMES AND FINAL VALUES``
    block of a ``.out`` (``-> Parameter number 1 : Scale_ph1_pat1 14.572590 ( +/- 0.698E-01 )``)."""
    path = Path(path)
    out = {}
    for s in path.read_text(errors="replace").splitlines():
        m = re.match(r"\s*->\s*Parameter number\s+\d+\s*:\s*(\S+)\s+(\S+)\s*\(\s*\+/-\s*(\S+)\s*\)", s)
        if m:
            try:
                out[m.group(1)] = (float(m.group(2)), float(m.group(3)))
            except ValueError:
                raise InputError(f"expected 'NAME value ( +/- esd )', got {s.strip()[:80]!r}", path=path) from None
    if not out:
        raise InputError("no '-> Parameter number … ( +/- … )' lines (not a FullProf .out file?)", path=path)
    return out


def fullprof_r_factors(y, y_calc, sigma, n_free: int = 0) -> dict[str, float]:
    """FullProf's R factors not corrected for background (its ``.sum``): Rp = Σ|yo − yc|/Σ yo,
    Rwp = √(Σ w(yo − yc)²/Σ w yo²), Rexp = √((N − P)/Σ w yo²), χ² = Σ w(yo − yc)²/(N − P),
    w = 1/σ² (Iwg = 0); R factors in %."""
    y, yc, s = (np.asarray(v, dtype=float) for v in (y, y_calc, sigma))
    w = 1.0 / s**2
    dof = len(y) - n_free
    wss = float(np.sum(w * (y - yc) ** 2))
    wyy = float(np.sum(w * y**2))
    return {"Rp": 100 * float(np.sum(np.abs(y - yc)) / np.sum(np.abs(y))), "Rwp": 100 * np.sqrt(wss / wyy),
            "Rexp": 100 * np.sqrt(dof / wyy), "Chi2": wss / dof}


def _job_points(job: PcrJob, data, tmin, tmax):
    """(x, y, σ) of the job's pattern over its TOF range less its excluded regions, σ > 0 only."""
    from layerscope.diffraction.readers import read_powder

    if data is None:
        if not job.data_file.is_file():
            raise FileNotFoundError(f"{job.data_file}: data file named by {job.source} not found (give it with --data)")
        data = read_powder(job.data_file, kind="tof", zero_sigma="keep")
    x, y, s = (np.asarray(v, dtype=float) for v in (data.x, data.y, data.sigma))
    lo = job.tof_range_us[0] if tmin is None else tmin
    hi = job.tof_range_us[1] if tmax is None else tmax
    m = (x >= lo) & (x <= hi)
    for a, b in job.excluded_us:
        m &= ~((x >= a) & (x <= b))
    m &= s > 0  # FullProf gives σ = 0 points no weight
    if m.sum() < 20:
        raise InputError(f"fewer than 20 points between {lo} and {hi} µs outside the excluded regions",
                         path=job.data_file)
    return x[m], y[m], s[m]


def evaluate_pcr_job(job: PcrJob, *, data=None, conventions=None) -> dict:
    """The job's pattern at the pcr's own values (nothing refined) on its points, with FullProf's
    R factors (P = 0): {"tof_us", "y", "sigma", "y_calc", "background", "stats"}.

    The phase scales are the pcr's, translated (:func:`~layerscope.refine.pcr.read_pcr`), not
    re-solved, so the comparison with FullProf's ``.sum`` also checks the intensity scale."""
    from layerscope.diffraction.pattern import build_model, compute_pattern
    from layerscope.refine.conventions import FULLPROF

    conv = conventions or FULLPROF
    x, y, s = _job_points(job, data, None, None)
    t_range = (float(x[0]), float(x[-1]))
    n_bkg, c0, _, _ = job.background_model(t_range, t_eval=x)
    model = build_model(list(job.phases), x, job.instrument, n_background=n_bkg,
                        lorentz_convention=conv.lorentz, scattering=conv.scattering,
                        absorption_form=job.absorption_form, extinction=job.extinction)
    pat = compute_pattern(model, scales=dict(job.scales), background=np.asarray(c0), absorption=job.absorption)
    return {"tof_us": x, "y": y, "sigma": s, "y_calc": pat.total, "background": pat.background,
            "stats": fullprof_r_factors(y, pat.total, s, 0)}


def refine_pcr_job(job: PcrJob, *, data=None, tmin=None, tmax=None, cycles=None, conventions=None,
                   progress=None, log=None):
    """Refine a translated FullProf job on its pattern (``data``: a PowderData, default: read
    ``job.data_file``) over its TOF range less its excluded regions, with FullProf's conventions.

    The background starts from the pcr's own coefficients and moves only along the directions
    FullProf refines; the phase scales start from a weighted linear solve with that background.
    Returns the :class:`~layerscope.refine.rietveld.RietveldResult`.
    """
    from dataclasses import replace

    from layerscope.diffraction.background import chebyshev_basis
    from layerscope.refine.conventions import FULLPROF
    from layerscope.refine.rietveld import linear_start, refine_pattern

    conv = conventions or FULLPROF
    say = log or (lambda msg: None)
    x, y, s = _job_points(job, data, tmin, tmax)
    t_range = (float(x[0]), float(x[-1]))
    n_bkg, c0, bkg_cons, notes = job.background_model(t_range, t_eval=x)
    for note in (*job.notes, *notes):
        say(f"pcr translation: {note}")
    strategy = replace(job.strategy, constraints=tuple(job.strategy.constraints) + tuple(bkg_cons))
    strategy = replace(strategy, lorentz_convention=conv.lorentz)
    if hasattr(strategy, "align_cells"):
        strategy = replace(strategy, align_cells=False)  # FullProf starts from the pcr's cells
    if cycles:
        strategy = replace(strategy, max_cycles=cycles)
    bkg_t = np.asarray(c0) @ chebyshev_basis(x, n_bkg, t_range)
    scales, _ = linear_start(list(job.phases), x, y - bkg_t, s, job.instrument, job.scales, 1,
                             scattering=conv.scattering, lorentz_convention=conv.lorentz)
    return refine_pattern(x, y, s, list(job.phases), job.instrument, strategy, scales=scales,
                          n_background=n_bkg, background=np.asarray(c0), absorption=job.absorption,
                          absorption_form=job.absorption_form, extinction=job.extinction,
                          progress=progress, scattering=conv.scattering, conventions=conv.as_dict(), log=say)
