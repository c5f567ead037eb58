"""``layerscope pattern``: compute a TOF neutron powder pattern from phases."""

from __future__ import annotations


def _pattern(args) -> int:
    from layerscope.diffraction.pattern_output import compute_and_write_pattern

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
