"""``layerscope haadf IMAGE --out DIR`` and ``layerscope simulate haadf --out DIR``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "haadf", help="atomic-resolution HAADF-STEM: columns, unit-cell m/n, variants, GPA strain"
    )
    p.add_argument("image", help="image file (.dm3/.dm4/.emd/.ser/.hspy/.hdf5/.tif/.npy)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--pixel-size-nm", type=float, default=None, help="override the file's calibration")
    p.add_argument("--denoise", default="du", choices=["du", "wiener", "gaussian", "nlm", "none"])
    p.add_argument("--separation-nm", type=float, default=None,
                   help="minimum column separation (default: from the image's FFT)")
    p.add_argument("--second-sublattice", action="store_true",
                   help="also fit a second sublattice at midpoints of the first (Atomap-style)")
    p.add_argument("--no-figures", action="store_true")
    p.set_defaults(func=_run_haadf)


def register_simulate(subparsers) -> None:
    p = subparsers.add_parser("haadf", help="HAADF image of a layered oxide with twin variants and its truth")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=384, help="image size, pixels (square)")
    p.add_argument("--pixel-size-nm", type=float, default=0.015)
    p.add_argument("--dose", type=float, default=4.0e4, help="electron dose, e/Å²")
    p.add_argument("--scene", choices=["twins", "I", "II", "O1"], default="twins")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_simulate)


def _write_csv(path: Path, header: list[str], rows) -> None:
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    tmp.replace(path)


def _run_haadf(args) -> int:
    from layerscope.stem import denoise, find_columns, read_image, refine_columns, sublattice_between, unit_cells
    from layerscope.stem.cells import VARIANTS
    from layerscope.stem.gpa import gpa

    img = read_image(args.image, pixel_size_nm=args.pixel_size_nm)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    px = img.pixel_size_nm
    sep_px = args.separation_nm / px if (args.separation_nm and px) else None
    if args.separation_nm and not px:
        raise ValueError(f"{img.source}: --separation-nm needs a pixel size; give --pixel-size-nm")
    smooth = denoise(img.data, args.denoise)
    start = find_columns(smooth, separation_px=sep_px)
    # Positions are found on the denoised image and refined on the raw one,
    # so the esd reflects the real (uncorrelated) noise.
    fit = refine_columns(img.data, start)
    subl = np.zeros(len(fit.x_px), int)
    fits = [fit]
    if args.second_sublattice:
        mids, _ = sublattice_between(smooth, fit.positions_px)
        if len(mids):
            fit2 = refine_columns(img.data, mids)
            fits.append(fit2)
            subl = np.concatenate([subl, np.ones(len(fit2.x_px), int)])
    cols = {k: np.concatenate([getattr(f, k) for f in fits]) for k in
            ("x_px", "y_px", "amplitude", "sigma_px", "position_esd_px")}
    scale = px if px else np.nan
    _write_csv(
        out / "columns.csv",
        ["x_px", "y_px", "x_nm", "y_nm", "amplitude", "sigma_px", "position_esd_px", "sublattice"],
        zip(cols["x_px"], cols["y_px"], cols["x_px"] * scale, cols["y_px"] * scale, cols["amplitude"],
            cols["sigma_px"], cols["position_esd_px"], subl),
    )
    cells = None
    try:
        cells = unit_cells(fit.positions_px)
    except ValueError as exc:
        print(f"layerscope haadf: no unit cells ({exc})")
    if cells is not None:
        _write_csv(
            out / "cells.csv",
            ["centre_x_px", "centre_y_px", "centre_x_nm", "centre_y_nm", "m_over_n", "angle_deg",
             "inplane_spacing_nm", "interlayer_spacing_nm", "variant"],
            zip(cells.centre_x_px, cells.centre_y_px, cells.centre_x_px * scale, cells.centre_y_px * scale,
                cells.m_over_n, cells.angle_deg, cells.inplane_spacing_px * scale,
                cells.interlayer_spacing_px * scale, [VARIANTS[v] for v in cells.variant]),
        )
    strain = gpa(smooth)
    _write_strain(out / "strain.h5", strain, px, img.source)
    summary = {
        "image": img.source, "pixel_size_nm": px, "columns": int(len(cols["x_px"])),
        "cells": int(len(cells)) if cells is not None else 0,
        "variant_fractions": (
            {VARIANTS[v]: float(np.mean(cells.variant == v)) for v in range(3)} if cells is not None else {}
        ),
        "median_position_esd_px": float(np.median(fit.position_esd_px)),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not args.no_figures:
        _figures(out, img.data, fit, cells, strain)
    print(f"{summary['columns']} columns, {summary['cells']} cells → {out}")
    return 0


def _write_strain(path: Path, res, px, source) -> None:
    import h5py

    tmp = path.with_suffix(".h5.part")
    with h5py.File(tmp, "w") as f:
        for name in ("exx", "eyy", "exy", "rotation_rad", "ux_px", "uy_px"):
            f.create_dataset(name, data=getattr(res, name), compression="gzip")
        f["g_per_px"] = res.g_per_px
        f.attrs["reference_y0_y1_x0_x1"] = np.asarray(res.reference)
        f.attrs["pixel_size_nm"] = px if px else np.nan
        f.attrs["source"] = str(source)
        f.attrs["method"] = "geometric phase analysis, Hytch, Snoeck & Kilaas, Ultramicroscopy 74 (1998) 131"
    tmp.replace(path)


def _figures(out: Path, image, fit, cells, strain) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    if cells is not None and len(cells):
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.imshow(image, cmap="gray")
        sc = ax.scatter(cells.centre_x_px, cells.centre_y_px, c=cells.m_over_n, cmap="coolwarm",
                        vmin=0.8, vmax=1.2, s=30, marker="s")
        fig.colorbar(sc, ax=ax, label="m/n")
        ax.set_title("m/n per unit cell (cf. Fig. 4b)")
        ax.set_axis_off()
        fig.savefig(out / "m_over_n.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.imshow(image, cmap="gray")
        cmap = ListedColormap(["tab:blue", "tab:pink", "tab:green"])
        ax.scatter(cells.centre_x_px, cells.centre_y_px, c=cells.variant, cmap=cmap, vmin=-0.5, vmax=2.5,
                   s=30, marker="s")
        ax.set_title("variants: I (blue), II (pink), O1 (green)")
        ax.set_axis_off()
        fig.savefig(out / "variants.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, e, name in zip(axes, (strain.exx, strain.eyy), ("εxx", "εyy")):
        im = ax.imshow(100 * e, cmap="bwr", vmin=-20, vmax=20)
        ax.set_title(f"{name} (%)")
        ax.set_axis_off()
    fig.colorbar(im, ax=axes, label="strain (%)")
    fig.savefig(out / "strain.png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _run_simulate(args) -> int:
    import tifffile

    from layerscope.simulate.haadf import VARIANT_NAMES, simulate_haadf, twin_scene, uniform_scene

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extent = args.size * args.pixel_size_nm * 10
    scene = twin_scene((extent, extent)) if args.scene == "twins" else uniform_scene((extent, extent), args.scene)
    sim = simulate_haadf(scene, pixel_size_nm=args.pixel_size_nm, dose_e_per_A2=args.dose, seed=args.seed,
                         shape=(args.size, args.size))
    tifffile.imwrite(out / "image.tif", sim.image.astype(np.float32), imagej=True,
                     resolution=(1 / args.pixel_size_nm, 1 / args.pixel_size_nm), metadata={"unit": "nm"})
    px = args.pixel_size_nm
    names = ("TM", "O", "Li")
    _write_csv(
        out / "truth_columns.csv", ["x_px", "y_px", "x_nm", "y_nm", "sublattice", "variant", "layer"],
        zip(sim.columns_px[:, 0], sim.columns_px[:, 1], sim.columns_px[:, 0] * px, sim.columns_px[:, 1] * px,
            [names[s] for s in sim.sublattice], [VARIANT_NAMES[v] for v in sim.variant], sim.layer),
    )
    import h5py

    with h5py.File(out / "truth.h5", "w") as f:
        f["variant_map"] = sim.variant_map
        f["pore_mask"] = sim.pore_mask
        f["expected_counts"] = sim.expected
        f.attrs["variant_names"] = list(VARIANT_NAMES)
        f.attrs["metadata"] = json.dumps(sim.metadata, default=str)
    print(f"{int(np.sum(sim.sublattice == 0))} TM columns, image {sim.image.shape} → {out}")
    return 0
