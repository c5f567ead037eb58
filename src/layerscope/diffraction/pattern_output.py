"""A computed TOF powder pattern written to disk: CSV (total and per phase) and a PNG.

The library side of ``layerscope pattern`` (and of the demo's pouch-cell pattern).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerscope._io import atomic_path


def compute_and_write_pattern(phase_specs, out_csv, *, instprm=None, tof_range=None,
                              points=6000, n_background=0, background=None, title="") -> dict:
    """A TOF neutron powder pattern of phases, written as CSV (total and per phase) + PNG.

    What ``layerscope pattern`` and ``layerscope demo`` compute.

    Parameters
    ----------
    phase_specs : list of str
        Preset names or CIF paths, optionally ``NAME=PATH:SCALE``.
    out_csv : str or Path
        The CSV to write (columns ``tof_us``, ``d_angstrom``, ``total`` and one per phase); the PNG
        is written beside it.
    instprm : str or Path, optional
        A GSAS-II ``.instprm`` file (default: the GPPD-like backscattering bank).
    tof_range : (float, float), optional
        TOF range in µs (default the GPPD-like bank's 5000-56000 µs).
    points : int
        Number of log-spaced TOF points.
    n_background, background
        Chebyshev background terms and their values (default none).
    title : str
        Title of the figure.

    Returns
    -------
    dict
        ``csv`` and ``png`` (paths), ``model``, ``result`` (the computed pattern) and ``instrument``.
    """
    from layerscope.crystal.geometry import d_spacing
    from layerscope.crystal.load import load_phases
    from layerscope.diffraction.instrument import gppd_like, read_instprm
    from layerscope.diffraction.pattern import build_model, compute_pattern, initial_params
    from layerscope.diffraction.tof_profile import tof_from_d
    from layerscope.plotting.powder import plot_powder

    from layerscope.diffraction.instrument import GPPD_TOF_RANGE_US

    lo, hi = (float(v) for v in (tof_range or GPPD_TOF_RANGE_US))
    if not (0 < lo < hi):
        raise ValueError(f"--tof-range needs 0 < MIN < MAX µs, got {lo} {hi}")
    if points < 10:
        raise ValueError(f"--points must be >= 10, got {points}")
    inst = read_instprm(instprm) if instprm else gppd_like()
    phases = load_phases(phase_specs)
    tof = np.geomspace(lo, hi, int(points))
    model = build_model([p for p, _ in phases], tof, inst, n_background=n_background)
    params = initial_params(model, scales={p.name: s for p, s in phases}, background=background)
    res = compute_pattern(model, params)
    d = inst.d_from_tof(tof)
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    names = list(res.phases)
    cols = [tof, d, res.total] + [res.phases[n] for n in names]
    header = ",".join(["tof_us", "d_angstrom", "total"] + names)
    with atomic_path(out_csv) as tmp:
        np.savetxt(tmp, np.column_stack(cols), delimiter=",", header=header, comments="", fmt="%.8g")
    ticks = {}
    for s in model.phases:
        dd = d_spacing(s.phase.cell, s.hkl)
        ticks[s.phase.name] = np.asarray(tof_from_d(dd, inst.zero, inst.difc, inst.difa, inst.difb))
    png = plot_powder(out_csv.with_suffix(".png"), tof, res.total, ticks=ticks,
                      components={n: res.phases[n] for n in names}, title=title)
    return {"csv": out_csv, "png": png, "model": model, "result": res, "instrument": inst}
