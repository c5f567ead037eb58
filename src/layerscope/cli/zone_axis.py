"""``layerscope zone-axis``: a kinematic zone-axis electron diffraction pattern of a phase."""

from __future__ import annotations

from pathlib import Path

from layerscope._io import save_figure


def _zone_axis(args) -> int:
    from layerscope.fourd.api import zone_axis_figure

    fig, pat = zone_axis_figure(args.phase, (args.u, args.v, args.w), twin=args.twin, kv=args.kv,
                                precession_deg=args.precession, thickness_nm=args.thickness, gmax=args.gmax,
                                labels=args.labels)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, dpi=120, bbox_inches="tight")
    print(f"wrote {out} ({len(pat.hkl)} spots)")
    return 0


def register(sub) -> None:
    z = sub.add_parser("zone-axis", help="kinematic zone-axis electron diffraction pattern of a phase")
    z.add_argument("phase", help="preset phase (e.g. lrm-pristine:O3p) or CIF file")
    for k in "uvw":
        z.add_argument(k, type=int)
    z.add_argument("--out", required=True, help="PNG file")
    z.add_argument("--kv", type=float, default=200.0)
    z.add_argument("--precession", type=float, default=0.8, help="precession angle (deg)")
    z.add_argument("--thickness", type=float, default=30.0, help="specimen thickness (nm)")
    z.add_argument("--gmax", type=float, default=1.2, help="largest |g| shown (1/Å)")
    z.add_argument("--twin", help="overlay a twin variant of Supp. Fig. 18: '(001)' or '{012}'")
    z.add_argument("--labels", action="store_true", help="label spots with hkl")
    z.set_defaults(func=_zone_axis)
