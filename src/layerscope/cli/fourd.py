"""``layerscope fourd``: 4D-STEM phase / orientation / twin maps (parse → :func:`layerscope.fourd.api.index_fourd` → :func:`~layerscope.fourd.api.write_fourd`)."""

from __future__ import annotations

import sys
from pathlib import Path


def _calibration_for(args, scan, shape):
    """The calibration ``layerscope fourd`` indexes with (an assumed one is printed as a WARNING)."""
    import warnings

    from layerscope.fourd.api import _calibration_for as choose
    from layerscope.fourd.calibrate import AssumedCalibrationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AssumedCalibrationWarning)  # printed below instead
        cal = choose(args.calibration, args.pixel_size, scan, shape, kv=args.kv, convergence_mrad=args.convergence,
                     source=str(args.scan))
    if cal.assumed:
        print("WARNING: " + cal.notes[0], file=sys.stderr)
    return cal


def _scan_identity(args) -> dict:
    """What identifies the patterns a `fourd` run indexes (for its block checkpoint)."""
    import hashlib

    def ident(path):
        if not path:
            return None
        st = Path(path).stat()
        return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    calib = getattr(args, "calibration", None)
    cal = hashlib.sha256(Path(calib).read_bytes()).hexdigest() if calib else None
    return {"scan": ident(args.scan), "scan_shape": getattr(args, "scan_shape", None),
            "chunk": getattr(args, "chunk", None), "calibration": cal, "pixel_size": getattr(args, "pixel_size", None)}


def _fourd(args) -> int:
    from layerscope._lock import output_lock

    with output_lock(args.out, "fourd"):  # one command at a time per output folder
        return _fourd_locked(args)


def _fourd_locked(args) -> int:
    """Parse → :func:`layerscope.fourd.api.index_fourd` → :func:`~layerscope.fourd.api.write_fourd`."""
    from layerscope.fourd.api import _quiet_index, write_fourd

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # finished blocks are kept in OUT/index_checkpoint: a killed run resumes with them
    res = _quiet_index(args.scan, phases=args.phase, spacing_deg=args.spacing, kv=args.kv,
                       convergence_mrad=args.convergence, precession_deg=args.precession, pixel_size=args.pixel_size,
                       calibration=args.calibration, min_correlation=args.min_correlation, min_signal=args.min_signal,
                       min_peaks=args.min_peaks, k_max=args.k_max, scan_shape=args.scan_shape, chunk=args.chunk,
                       scheduler=args.scheduler, checkpoint_dir=out / "index_checkpoint",
                       checkpoint_key=_scan_identity(args))
    for f in res.flags:
        print("WARNING: " + f, file=sys.stderr)
    write_fourd(res, out)
    maps, th = res.maps, res._thresholds
    if res.kind == "peaks":
        print("; ".join(f"{r['phase']} {100 * r['fraction']:.1f} %" for r in res.phase_fractions())
              + f" of {maps.phase.size} positions (not indexed: < {th['min_peaks']} Bragg peaks or correlation < "
                f"{th['min_correlation']:g}); wrote {out}")
        return 0
    counts = {n: int((maps.phase == i).sum()) for i, n in enumerate(maps.phase_names)}
    cal = res.calibration
    print(f"indexed {maps.phase.size} patterns against {res.n_templates} templates: {counts} "
          f"(not indexed: correlation < {th['min_correlation']:g} or signal < {th['min_signal_counts']:g} "
          f"counts); calibration {cal.pixel_inv_angstrom:.5g} 1/Å/px from {cal.source}"
          f"{' (ASSUMED)' if cal.assumed else ''}; wrote {out}")
    return 0


def register(sub) -> None:
    f = sub.add_parser("fourd", help="4D-STEM phase / orientation / twin maps by template matching")
    f.add_argument("scan", help=".npy, .h5/.hdf5/.emd (Dectris/Arina), .hspy, .zspy, .mib, .zip (Merlin), .blo, "
                   ".raw (EMPAD), or a py4DSTEM Bragg-peak list (.h5)")
    f.add_argument("--phase", nargs="+", required=True, help="phases to match (preset names or CIF files)")
    f.add_argument("--out", required=True, help="output folder")
    f.add_argument("--spacing", type=float, default=1.0, help="template library spacing (deg)")
    f.add_argument("--kv", type=float, default=200.0)
    f.add_argument("--convergence", type=float, default=1.5, help="convergence semi-angle (mrad)")
    f.add_argument("--precession", type=float, default=0.8, help="precession angle (deg)")
    f.add_argument("--pixel-size", type=float, help="detector calibration (1/Å per pixel)")
    f.add_argument("--calibration", help="calibration.json from 'layerscope fourd-calibrate' (pixel size, "
                   "centre, ellipse, per-position origins)")
    f.add_argument("--min-correlation", type=float, default=0.25,
                   help="positions whose best correlation is lower are 'not indexed' (default 0.25)")
    f.add_argument("--min-peaks", type=int, default=5,
                   help="Bragg-peak lists: positions with fewer peaks (direct beam excluded) are 'not indexed'")
    f.add_argument("--k-max", type=float, default=1.7, help="Bragg-peak lists: largest |q| used (1/Å)")
    f.add_argument("--min-signal", type=float, default=20.0,
                   help="positions with fewer scattered counts (inside the matching annulus) are 'not indexed' "
                        "(default 20)")
    f.add_argument("--scan-shape", type=int, nargs=2, help="scan (y, x) for 3-D frame stacks")
    f.add_argument("--chunk", type=int, default=32, help="probe positions per chunk side")
    f.add_argument("--scheduler", help="dask.distributed scheduler address (default: local threads)")
    f.set_defaults(func=_fourd)
