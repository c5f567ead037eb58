"""Running a translated FullProf TOF job (:func:`refine_pcr_job`) and reading FullProf's refined
cells back from its ``.sum`` file (:func:`read_sum_cells`) to compare.

Hand-written: no library reads FullProf's ``.sum`` listing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope.refine.pcr import PcrJob

__all__ = ["refine_pcr_job", "read_sum_cells"]


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
    from layerscope.diffraction.readers import read_powder
    from layerscope.refine.conventions import FULLPROF
    from layerscope.refine.rietveld import linear_start, refine_pattern

    conv = conventions or FULLPROF
    say = log or (lambda msg: None)
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
    x, y, s = x[m], y[m], s[m]
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
                          progress=progress, scattering=conv.scattering, conventions=conv.as_dict(), log=say)
