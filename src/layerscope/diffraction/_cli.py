"""``layerscope pattern``: compute a TOF neutron powder pattern from phases."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerscope._io import atomic_path


def compute_and_write_pattern(phase_specs, out_csv, *, instprm=None, tof_range=None,
                              points=6000, n_background=0, background=None, title="") -> dict:
    """Shared by the ``pattern`` and ``demo`` commands: writes the CSV and the PNG."""
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
        dd = 1.0 / np.sqrt(np.einsum("ni,ij,nj->n", s.hkl, np.linalg.inv(s.phase.metric_tensor), s.hkl))
        ticks[s.phase.name] = np.asarray(tof_from_d(dd, inst.zero, inst.difc, inst.difa, inst.difb))
    png = plot_powder(out_csv.with_suffix(".png"), tof, res.total, ticks=ticks,
                      components={n: res.phases[n] for n in names}, title=title)
    return {"csv": out_csv, "png": png, "model": model, "result": res, "instrument": inst}


def _pattern(args) -> int:
    out = compute_and_write_pattern(args.phase, args.out, instprm=args.instprm, tof_range=args.tof_range,
                                    points=args.points, title=" + ".join(args.phase))
    print(f"wrote {out['csv']} and {out['png']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("pattern", help="compute a TOF neutron powder pattern (total and per phase)")
    p.add_argument("phase", nargs="+", help="preset name or CIF path, optionally NAME=PATH:SCALE")
    p.add_argument("--instprm", help="GSAS-II .instprm file (default: a GPPD-like backscattering bank)")
    p.add_argument("--tof-range", nargs=2, type=float, default=None, metavar=("MIN", "MAX"),
                   help="TOF range in µs (default 5000 56000, the GPPD-like bank's d ≈ 0.45-5 Å)")
    p.add_argument("--points", type=int, default=6000, help="number of log-spaced TOF points (default 6000)")
    p.add_argument("--out", required=True, help="output CSV (a PNG is written beside it)")
    p.set_defaults(func=_pattern)
