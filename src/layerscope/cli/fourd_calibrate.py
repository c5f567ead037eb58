"""``layerscope fourd-calibrate``: detector pixel size and ellipse from a ring pattern; descan origins and scan
rotation from a scan (parse → :mod:`layerscope.fourd.calibrate` → ``calibration.json`` + ``calibration.png``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerscope._io import save_figure


def _phase(spec: str):
    from layerscope.fourd.api import load_phase

    return load_phase(spec)


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
    save_figure(cb.calibration_figure(cal, mean), out / "calibration.png", dpi=110, bbox_inches="tight")
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


def register(sub) -> None:
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
