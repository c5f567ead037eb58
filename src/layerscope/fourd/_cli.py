"""``layerscope zone-axis``, ``layerscope fourd`` and ``layerscope simulate fourd``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from layerscope._io import save_figure


def _phase(spec: str):
    from layerscope.fourd.api import load_phase

    return load_phase(spec)


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


def _read_pattern_or_scan(path, scan_shape=None):
    """A 2-D pattern (ky, kx) or a 4-D scan (ny, nx, ky, kx) as a NumPy array."""
    from layerscope.fourd import read_scan

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such pattern or scan")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff", ".dm3", ".dm4", ".ser"):
        from layerscope.stem.io import read_image

        return read_image(path).data
    if suffix == ".npy":
        arr = np.load(path, mmap_mode="r")
        if arr.ndim == 2:
            return np.asarray(arr, dtype=float)
    data = np.asarray(read_scan(path, scan_shape=scan_shape).data.compute())
    return data[0, 0] if data.shape[:2] == (1, 1) else data


def _calibrate(args) -> int:
    from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure list

    from layerscope._errors import InputError
    from layerscope.fourd import calibrate as cb

    standard = None
    if args.standard:
        standard = cb.gold() if args.standard.lower() == "au" else _phase(args.standard)
    data = _read_pattern_or_scan(args.input, tuple(args.scan_shape) if args.scan_shape else None)
    try:
        if data.ndim == 2:
            if standard is None:
                raise InputError("--standard (Au or a CIF) to calibrate a single pattern", path=args.input)
            cal = cb.calibrate_pattern(data, standard, kv=args.kv, source=str(args.input),
                                       centre=tuple(args.center) if args.center else None)
            mean = data
        else:
            cal = cb.calibrate_scan(data, standard, kv=args.kv, source=str(args.input))
            mean = data.reshape(-1, *data.shape[2:])[:: max(1, data.shape[0] * data.shape[1] // 256)].mean(0)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"a calibration pattern ({exc})", path=args.input) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cal.to_json(out / "calibration.json")
    fig = Figure(figsize=(5.5, 5.5))
    ax = fig.subplots()
    ax.imshow(np.log1p(np.clip(mean, 0, None)), cmap="gray")
    if cal.ring_radii_px:
        t = np.linspace(0, 2 * np.pi, 361)
        minv = np.linalg.inv(cal.distortion())
        for r, hkl in zip(cal.ring_radii_px, cal.ring_hkl):
            d = minv @ np.stack([r * np.cos(t), r * np.sin(t)])
            ax.plot(cal.center_px[1] + d[0], cal.center_px[0] + d[1], lw=0.6, color="orange")
            ax.annotate("".join(str(v) for v in hkl), (cal.center_px[1] + d[0, 0], cal.center_px[0] + d[1, 0]),
                        color="cyan", fontsize=7)
    ax.set_title(f"{cal.pixel_inv_angstrom or float('nan'):.5g} 1/Å/px, ellipticity {cal.ellipticity:.4f} at "
                 f"{cal.ellipse_angle_deg:.1f}°", fontsize=9)
    save_figure(fig, out / "calibration.png", dpi=110, bbox_inches="tight")
    parts = [f"centre (y, x) {cal.center_px[0]:.2f}, {cal.center_px[1]:.2f} px"]
    if cal.pixel_inv_angstrom:
        parts.append(f"pixel {cal.pixel_inv_angstrom:.6g} 1/Å" + (f" ({cal.pixel_mrad:.4g} mrad)" if cal.pixel_mrad
                                                                     else ""))
        parts.append(f"ellipticity {cal.ellipticity:.4f} at {cal.ellipse_angle_deg:.1f}°")
    if cal.scan_rotation_deg is not None:
        parts.append(f"scan rotation {cal.scan_rotation_deg:.2f}°{' (flipped)' if cal.scan_flip else ''}"
                     f"{' ±180° ambiguous' if cal.scan_rotation_ambiguous_180 else ''}")
    if cal.origin_residual_rms_px is not None:
        parts.append(f"descan plane rms residual {cal.origin_residual_rms_px:.2f} px")
    print("; ".join(parts) + f"; wrote {out / 'calibration.json'}")
    return 0


def _strain(args) -> int:
    from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure list

    from layerscope._errors import InputError
    from layerscope._io import atomic_path
    from layerscope.fourd import calibrate as cb, read_scan
    from layerscope.fourd.strain import strain_map

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
    out.mkdir(parents=True, exist_ok=True)
    import h5py

    with atomic_path(out / "strain.h5", ".h5") as tmp, h5py.File(tmp, "w") as f:
        for k in ("exx", "eyy", "exy", "rotation_deg", "lattice", "n_indexed", "reference_lattice"):
            f.create_dataset(k, data=getattr(sm, k))
        f.attrs.update({"frame": sm.frame, "source": str(args.scan), "reference_y0_y1_x0_x1": list(args.reference),
                        "convention": "F = G^-T G0^T; eps = (F + F^T)/2 - I; rotation = atan2(F10 - F01, F00 + F11)"})
    fig = Figure(figsize=(14, 3.4))
    axs = fig.subplots(1, 4)
    lim = max(float(np.nanpercentile(np.abs(np.stack([sm.exx, sm.eyy, sm.exy])), 98)) * 100, 1e-3)
    for ax, (name, v) in zip(axs, (("εxx (%)", sm.exx * 100), ("εyy (%)", sm.eyy * 100), ("εxy (%)", sm.exy * 100),
                                   ("rotation (°)", sm.rotation_deg))):
        vmax = lim if "%" in name else max(float(np.nanmax(np.abs(v))), 1e-3)
        im = ax.imshow(v, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"{name}, {sm.frame} frame", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    save_figure(fig, out / "strain.png", dpi=110, bbox_inches="tight")
    bad = int(np.isnan(sm.exx).sum())
    print(f"strain of {ny * nx} positions vs reference {args.reference}: εxx rms {np.nanstd(sm.exx) * 100:.3f} %, "
          f"εyy rms {np.nanstd(sm.eyy) * 100:.3f} %; {bad} positions with < {args.min_disks} indexed disks (NaN); "
          f"wrote {out}")
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

    c = sub.add_parser("fourd-calibrate", help="4D-STEM detector calibration: pixel size and ellipse from a ring "
                       "pattern; descan origins and scan rotation from a scan")
    c.add_argument("input", help="a ring pattern (.npy/.tif/.dm3/.dm4, or a 1×1 scan) or a scan (any 'fourd' format)")
    c.add_argument("--standard", help="polycrystalline standard: 'Au' or a CIF/preset phase (needed for the pixel "
                   "size and ellipse)")
    c.add_argument("--kv", type=float, default=200.0, help="accelerating voltage (kV), for the mrad calibration")
    c.add_argument("--out", required=True, help="output folder (calibration.json, calibration.png)")
    c.add_argument("--center", type=float, nargs=2, help="pattern centre (y x px) if the direct beam is blocked")
    c.add_argument("--scan-shape", type=int, nargs=2, help="scan (y, x) for 3-D frame stacks")
    c.set_defaults(func=_calibrate)

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


