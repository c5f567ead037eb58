"""``layerscope fourd-strain``: strain maps from Bragg disks relative to a reference region (parse →
:func:`layerscope.fourd.strain.strain_map` → :func:`~layerscope.fourd.strain.write_strain_maps`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _strain(args) -> int:
    from layerscope._errors import InputError
    from layerscope.fourd import calibrate as cb, read_scan
    from layerscope.fourd.strain import strain_map, write_strain_maps

    scan = read_scan(args.scan, scan_shape=tuple(args.scan_shape) if args.scan_shape else None)
    ny, nx = scan.data.shape[:2]
    y0, y1, x0, x1 = args.reference
    if not (0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx):
        raise InputError(f"--reference y0 y1 x0 x1 inside the {ny}×{nx} scan, got {args.reference}", path=args.scan)
    ref = np.zeros((ny, nx), bool)
    ref[y0:y1, x0:x1] = True
    data = np.asarray(scan.data.compute(), dtype=np.float32)
    rot, origins = None, None
    if args.calibration:
        cal = cb.Calibration.from_json(args.calibration)
        rot = cal.scan_rotation_deg
        if cal.origin_px is not None and np.shape(cal.origin_px)[:2] == (ny, nx):
            origins = np.asarray(cal.origin_px, float)
    if origins is None:
        origins = cb.beam_origins(data)
    try:
        sm = strain_map(data, reference=ref, probe_radius_px=args.probe_radius, origins=origins,
                        threshold=args.threshold, min_disks=args.min_disks, scan_rotation_deg=rot)
    except ValueError as exc:
        raise InputError(f"a scan with Bragg disks of a 2-D lattice ({exc})", path=args.scan) from None
    out = Path(args.out)
    write_strain_maps(sm, out, source=str(args.scan), reference=args.reference)
    bad = int(np.isnan(sm.exx).sum())
    print(f"strain of {ny * nx} positions vs reference {args.reference}: εxx rms {np.nanstd(sm.exx) * 100:.3f} %, "
          f"εyy rms {np.nanstd(sm.eyy) * 100:.3f} %; {bad} positions with < {args.min_disks} indexed disks (NaN); "
          f"wrote {out}")
    return 0


def register(sub) -> None:
    st = sub.add_parser("fourd-strain", help="4D-STEM strain maps from Bragg disks relative to a reference region")
    st.add_argument("scan", help="scan in any 'fourd' format")
    st.add_argument("--reference", type=int, nargs=4, required=True, metavar=("Y0", "Y1", "X0", "X1"),
                    help="reference region (scan rows Y0:Y1, columns X0:X1)")
    st.add_argument("--probe-radius", type=float, required=True, help="Bragg-disk radius (px)")
    st.add_argument("--out", required=True, help="output folder (strain.h5, strain.png)")
    st.add_argument("--calibration", help="calibration.json (origins per position, scan rotation)")
    st.add_argument("--threshold", type=float, default=0.1, help="disk threshold (fraction of the strongest)")
    st.add_argument("--min-disks", type=int, default=4, help="fewer indexed disks: NaN")
    st.add_argument("--scan-shape", type=int, nargs=2, help="scan (y, x) for 3-D frame stacks")
    st.set_defaults(func=_strain)
