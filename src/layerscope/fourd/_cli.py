"""``layerscope zone-axis``, ``layerscope fourd`` and ``layerscope simulate fourd``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from layerscope._io import save_figure, save_image


def _phase(spec: str):
    from layerscope.crystal import load_phases

    phases = load_phases([spec])
    if len(phases) != 1:
        raise ValueError(f"{spec!r} names {len(phases)} phases; give one (e.g. lrm-pristine:O3p)")
    return phases[0][0]


def _zone_axis(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from layerscope.diffraction import electron as el

    phase = _phase(args.phase)
    uvw = (args.u, args.v, args.w)
    twin = None
    if args.twin:
        laws = el.paper_twin_laws(phase)
        if args.twin not in laws:
            raise ValueError(f"unknown twin {args.twin!r}; choose one of {sorted(laws)}")
        twin = laws[args.twin]
    pat = el.zone_axis_pattern(phase, uvw, twin=twin, kv=args.kv, precession_deg=args.precession,
                               thickness_nm=args.thickness, g_max_inv_angstrom=args.gmax)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.set_facecolor("black")
    rel = pat.intensity / pat.intensity.max()
    for v, colour in ((0, "white"), (1, "orange")):
        s = pat.variant == v
        ax.scatter(pat.g_xy[s, 0], pat.g_xy[s, 1], s=300 * np.sqrt(rel[s]), c=colour, alpha=0.85, linewidths=0)
    ax.scatter([0], [0], s=300, c="white")
    if args.labels:
        for (x, y), h, r in zip(pat.g_xy[pat.variant == 0], pat.hkl[pat.variant == 0], rel[pat.variant == 0]):
            if r > 0.02:
                ax.annotate("".join(f"{int(round(i))}" if i >= 0 else f"-{-int(round(i))}" for i in h), (x, y),
                            color="cyan", fontsize=6, ha="center", va="bottom")
    lim = args.gmax * 1.05
    ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
    ax.set_xlabel("g_x (1/Å)"), ax.set_ylabel("g_y (1/Å)")
    title = f"{phase.name} [{' '.join(str(i) for i in uvw)}]  {args.kv:g} kV, precession {args.precession:g}°"
    ax.set_title(title + (f"\n+ {twin.name} (orange)" if twin else ""), fontsize=9)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {out} ({len(pat.hkl)} spots)")
    return 0


def _calibration_for(args, scan, shape):
    """The calibration used for indexing: --calibration file, --pixel-size, the scan file's, or an
    assumed one (warned loudly and recorded)."""
    from layerscope.fourd import calibrate as cb
    from layerscope.fourd.detector import paper_detector

    if getattr(args, "calibration", None):
        cal = cb.Calibration.from_json(args.calibration)
        if cal.pixel_inv_angstrom is None:
            raise cb.InputError("a pixel_inv_angstrom (this calibration has none: calibrate with --standard)",
                                path=args.calibration)
        if args.pixel_size:
            cal.pixel_inv_angstrom = float(args.pixel_size)
            cal.notes.append("pixel size overridden by --pixel-size")
        cal.source = f"{args.calibration} ({cal.source})"
        return cal
    pix, why = args.pixel_size, "--pixel-size"
    if not pix and scan.pixel_inv_angstrom:
        pix, why = scan.pixel_inv_angstrom, "the scan file"
    if pix:
        # centre from the direct beam of the mean pattern (up to 256 positions)
        ny, nx = scan.data.shape[:2]
        step = max(1, int(np.sqrt(ny * nx / 256)))
        mean = np.asarray(scan.data[::step, ::step].mean(axis=(0, 1)).compute(), dtype=float)
        c = cb._initial_centre(mean)
        return cb.Calibration(float(pix), (float(c[0]), float(c[1])), source=why,
                              notes=[f"pixel size from {why}; centre from the mean pattern's direct beam; "
                                     "no ellipticity correction"])
    import warnings

    paper = paper_detector(kv=args.kv, convergence_mrad=args.convergence, pixels=shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cb.AssumedCalibrationWarning)  # printed below instead
        cal = cb.assumed(paper.pixel_inv_angstrom, shape,
                         why=f"no --calibration, --pixel-size or calibration in {args.scan}; the paper's "
                             f"detector (124.5 mrad over {shape[0]} px at {args.kv:g} kV) is assumed")
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from layerscope.diffraction.electron import paper_twin_laws
    from layerscope.fourd import (
        build_library, disc_mask, index_scan, ipf_colours, paper_detector, prepare_matcher, read_scan,
        virtual_image, write_maps,
    )
    from layerscope.fourd.calibrate import recentre
    from layerscope.fourd.detector import DetectorGeometry
    from layerscope.fourd.maps import twin_map

    from layerscope.fourd.peaks import is_bragg_peak_file

    if Path(args.scan).suffix.lower() in (".h5", ".hdf5", ".emd") and is_bragg_peak_file(args.scan):
        return _fourd_peaks(args)
    scan = read_scan(args.scan, chunk_positions=args.chunk,
                     scan_shape=tuple(args.scan_shape) if args.scan_shape else None)
    ky, kx = scan.data.shape[2:]
    if min(ky, kx) < 32:
        from layerscope._errors import InputError

        raise InputError(f"diffraction patterns of at least 32×32 pixels to index; these are {ky}×{kx} (the "
                         "scan can still be read with layerscope.fourd.read_scan, e.g. for virtual images)",
                         path=args.scan)
    cal = _calibration_for(args, scan, (ky, kx))
    paper = paper_detector(kv=args.kv, convergence_mrad=args.convergence, pixels=ky)
    pix = cal.pixel_inv_angstrom
    geo = DetectorGeometry((ky, kx), pix, tuple(cal.center_px), paper.disc_radius_px * paper.pixel_inv_angstrom / pix,
                           cal.ellipticity, cal.ellipse_angle_deg % 180)
    data = scan.data
    if cal.origin_px is not None:
        data = recentre(data, np.asarray(cal.origin_px, float), cal.center_px, path=args.calibration)
    phases = [_phase(p) for p in args.phase]
    lib = build_library(phases, geo, spacing_deg=args.spacing, kv=args.kv, precession_deg=args.precession)
    matcher = prepare_matcher(lib, min_correlation=getattr(args, "min_correlation", 0.25),
                              min_signal_counts=getattr(args, "min_signal", 20.0))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # finished blocks are kept in OUT/index_checkpoint: a killed run resumes with them
    maps = index_scan(data, matcher, scheduler=args.scheduler, checkpoint_dir=out / "index_checkpoint",
                      checkpoint_key=_scan_identity(args))
    vbf = virtual_image(data, disc_mask((ky, kx), geo.centre_px, 2 * geo.disc_radius_px)).compute()
    extra = {"vbf": vbf}
    for code, ph in enumerate(phases, start=2):
        if ph.space_group.number in (12, 166):
            for name, law in paper_twin_laws(ph).items():
                extra[f"twin_{ph.name}_{name.strip('(){}')}"] = twin_map(maps, code, law, lib.symmetry[code - 2])
    write_maps(out / "maps.h5", maps, extra=extra,
               attrs={"source": str(args.scan), "library_spacing_deg": args.spacing, "kv": args.kv,
                      "pixel_inv_angstrom": pix, "calibration_assumed": bool(cal.assumed),
                      "calibration_source": str(cal.source), "ellipticity": cal.ellipticity,
                      "ellipse_angle_deg": cal.ellipse_angle_deg, "center_px": list(cal.center_px),
                      "min_correlation": matcher.min_correlation, "min_signal_counts": matcher.min_signal_counts})
    cal.to_json(out / "calibration.json")
    save_image(out / "vbf.png", vbf, cmap="gray")
    cmap = plt.get_cmap("tab10")
    colours = np.array([[0, 0, 0]] + [cmap(i)[:3] for i in range(9)])
    code = np.where(maps.phase == matcher.not_indexed_code, -1, np.clip(maps.phase, 0, 9))
    rgb = colours[np.clip(code, 0, 9)]
    rgb[code < 0] = 0.5                       # "not indexed": grey
    save_image(out / "phase_map.png", rgb)
    save_image(out / "orientation_map.png", ipf_colours(maps, {c: s for c, s in enumerate(lib.symmetry, start=2)}))
    counts = {n: int((maps.phase == i).sum()) for i, n in enumerate(maps.phase_names)}
    print(f"indexed {maps.phase.size} patterns against {len(lib)} templates: {counts} "
          f"(not indexed: correlation < {matcher.min_correlation:g} or signal < {matcher.min_signal_counts:g} "
          f"counts); calibration {pix:.5g} 1/Å/px from {cal.source}{' (ASSUMED)' if cal.assumed else ''}; "
          f"wrote {out}")
    return 0


def _fourd_peaks(args) -> int:
    """Phase/orientation maps of a Bragg-peak list (py4DSTEM PointListArray)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from layerscope._io import write_csv
    from layerscope.fourd import build_library, ipf_colours, prepare_matcher, write_maps
    from layerscope.fourd.peaks import index_peaks, peak_geometry, read_bragg_peaks

    k_max = getattr(args, "k_max", 1.7)
    min_peaks = getattr(args, "min_peaks", 5)
    bp = read_bragg_peaks(args.scan, pixel_inv_angstrom=args.pixel_size)
    geo = peak_geometry(k_max)
    phases = [_phase(p) for p in args.phase]
    lib = build_library(phases, geo, spacing_deg=args.spacing, kv=args.kv, precession_deg=args.precession)
    matcher = prepare_matcher(lib, min_correlation=getattr(args, "min_correlation", 0.25), min_signal_counts=0.0)
    maps, npk = index_peaks(bp, matcher, min_peaks=min_peaks)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_maps(out / "maps.h5", maps, extra={"peak_count": npk},
               attrs={"source": bp.source, "library_spacing_deg": args.spacing, "kv": args.kv,
                      "k_max_inv_angstrom": k_max, "min_peaks": min_peaks,
                      "min_correlation": matcher.min_correlation,
                      "calibration_source": "peak list (qx, qy in 1/Å)" if bp.calibrated else "--pixel-size"})
    rows = []
    for i, n in enumerate(maps.phase_names):
        sel = maps.phase == i
        rel = maps.phase_reliability[sel]
        rows.append({"phase": n, "fraction": float(sel.mean()), "positions": int(sel.sum()),
                     "median_phase_reliability_percent": float(np.median(rel)) if sel.any() and n != "not indexed"
                     else float("nan"),
                     "median_correlation": float(np.median(maps.correlation[sel])) if sel.any() else float("nan")})
    write_csv(out / "phase_fractions.csv", rows)
    cmap = plt.get_cmap("tab10")
    colours = np.array([[0, 0, 0]] + [cmap(i)[:3] for i in range(9)])
    code = np.where(maps.phase == matcher.not_indexed_code, -1, np.clip(maps.phase, 0, 9))
    rgb = colours[np.clip(code, 0, 9)]
    rgb[code < 0] = 0.5
    save_image(out / "phase_map.png", rgb)
    save_image(out / "orientation_map.png", ipf_colours(maps, {c: s for c, s in enumerate(lib.symmetry, start=2)}))
    print("; ".join(f"{r['phase']} {100 * r['fraction']:.1f} %" for r in rows)
          + f" of {maps.phase.size} positions (not indexed: < {min_peaks} Bragg peaks or correlation < "
            f"{matcher.min_correlation:g}); wrote {out}")
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
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
    plt.close(fig)
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig, axs = plt.subplots(1, 4, figsize=(14, 3.4))
    lim = max(float(np.nanpercentile(np.abs(np.stack([sm.exx, sm.eyy, sm.exy])), 98)) * 100, 1e-3)
    for ax, (name, v) in zip(axs, (("εxx (%)", sm.exx * 100), ("εyy (%)", sm.eyy * 100), ("εxy (%)", sm.exy * 100),
                                   ("rotation (°)", sm.rotation_deg))):
        vmax = lim if "%" in name else max(float(np.nanmax(np.abs(v))), 1e-3)
        im = ax.imshow(v, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"{name}, {sm.frame} frame", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    save_figure(fig, out / "strain.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
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


