"""``layerscope haadf`` for any crystal: calibration, contrast, lattice, sublattices, per-cell metrics.

Outputs (``_nm`` columns are NaN, with a warning in ``summary.json``, when
the image has no calibration and none was given):

* ``columns.csv``: every refined column and its sublattice (same columns as
  the layered analysis, plus ``intensity`` and ``intensity_class``),
* ``lattice_cells.csv``: per cell of sublattice 0 — local a, b, angle, strain
  from positions (exx, eyy, exy, rotation),
* ``displacements.csv``: each other sublattice's offset from its ideal site,
* ``vacancies.csv``: sites the lattice predicts that hold no column (``status`` empty or unresolved),
* ``strain.h5`` (GPA), ``summary.json`` (FFT vs positions lattice, notes),
  figures.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope._io import save_figure, write_csv, write_text

__all__ = ["load", "run_crystal", "calibrate_from_lattice"]


def _warn(notes: list, msg: str) -> None:
    notes.append(msg)
    warnings.warn(msg, stacklevel=3)
    print(f"layerscope haadf: warning: {msg}", file=sys.stderr)


def load(args):
    """Read the image, apply the contrast convention; notes record every assumption."""
    from layerscope.stem import read_image
    from layerscope.stem.analysis import detect_contrast
    from layerscope.stem.io import STEMImage

    img = read_image(args.image, pixel_size_nm=args.pixel_size_nm)
    notes: list[str] = []
    if img.units_assumed:
        _warn(notes, f"{img.source}: the calibration has no unit; nm assumed (HyperSpy's convention)")
    if not img.pixel_size_nm and getattr(args, "spacing_nm", None) is None and not getattr(args, "cell", None):
        _warn(notes, f"{img.source}: no pixel calibration in the file; results are in pixels (_nm columns "
                     "NaN). Give --pixel-size-nm, --spacing-nm or --cell")
    contrast = getattr(args, "contrast", "bright-atoms") or "bright-atoms"
    if contrast == "auto":
        from layerscope.stem.columns import fft_lattice

        period = fft_lattice(img.data).spacing_px  # raises when there is no lattice to analyse
        contrast, sk = detect_contrast(img.data, period_px=period)
        notes.append(f"contrast detected: {contrast} (band-passed skewness {sk:+.2f})")
    if contrast == "dark-atoms":
        img = STEMImage(img.data.max() - img.data, img.pixel_size_nm, img.source, img.units_assumed)
        notes.append("image inverted (dark atoms, ABF/BF) so that columns are intensity maxima")
    return img, notes


def calibrate_from_lattice(basis_px: np.ndarray, spacing_nm: float | None, cell: list | None,
                           source: str = "") -> tuple[float, str]:
    """Pixel size (nm) from a known lattice spacing or projected cell, and how it was obtained."""
    from layerscope.stem.columns import reduce_basis
    from layerscope.stem.lattice import lattice_parameters

    la, lb, gam = lattice_parameters(reduce_basis(basis_px))
    gam = min(gam, 180 - gam)
    if spacing_nm is not None:
        if spacing_nm <= 0:
            raise InputError(f"--spacing-nm must be positive, got {spacing_nm}")
        return spacing_nm / la, f"calibrated from --spacing-nm {spacing_nm} (shortest lattice vector {la:.2f} px)"
    if len(cell) not in (2, 3) or min(cell[:2]) <= 0:
        raise InputError(f"--cell expects A B [GAMMA_DEG] with positive lengths, got {cell}")
    A, B = sorted(cell[:2])
    s1, s2 = A / la, B / lb
    px = 0.5 * (s1 + s2)
    msg = f"calibrated from --cell {cell}: {la:.2f} px and {lb:.2f} px give {s1:.5f} and {s2:.5f} nm/px"
    if abs(s1 / s2 - 1) > 0.02:
        raise InputError(f"{source}: --cell {cell} does not fit the image's lattice ({msg}; the two "
                         "scales differ by more than 2 %)")
    if len(cell) == 3 and abs(min(cell[2], 180 - cell[2]) - gam) > 3:
        raise InputError(f"{source}: --cell angle {cell[2]}° does not fit the image's {gam:.1f}°")
    return px, msg


def run_crystal(args, img, notes: list, *, layered=None) -> int:
    from layerscope.stem import denoise
    from layerscope.stem.analysis import analyse_crystal, recognise_layered
    from layerscope.stem.columns import find_columns
    from layerscope.stem.gpa import gpa
    from layerscope.stem.io import STEMImage

    smooth = denoise(img.data, args.denoise)
    # Layered-oxide projection? Checked on the brightest peaks, before any layered analysis runs.
    px_file = img.pixel_size_nm
    try:
        ok, why = recognise_layered(find_columns(smooth), px_file)
    except ValueError as exc:
        ok, why = False, f"not checked ({exc})"
    if ok and layered is not None:
        notes.append(why)
        return layered(args, img, notes)
    notes.append(f"layered-oxide analyses (m/n, variants, O1, frustration, pores, A/B/C domains) skipped: {why}; "
                 "give --zone 100 or --zone 210 to run them")
    res = analyse_crystal(smooth, raw=img.data, max_sublattices=args.max_sublattices)
    notes.extend(res.notes)
    px = img.pixel_size_nm
    spacing, cell = getattr(args, "spacing_nm", None), getattr(args, "cell", None)
    if spacing is not None or cell:
        px, msg = calibrate_from_lattice(res.lattice.basis_px, spacing, cell, img.source)
        if img.pixel_size_nm:
            msg += f" (the file said {img.pixel_size_nm:.5f} nm/px)"
        notes.append(msg)
        img = STEMImage(img.data, px, img.source)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scale = px if px else np.nan
    fit, sub = res.fit, res.sublattice
    from layerscope.stem.domains import column_intensity

    a_len = float(np.linalg.norm(res.lattice.basis_px[0]))
    inten = column_intensity(img.data, fit.positions_px, sigma_px=max(0.5, a_len / 10))
    cls = np.full(len(sub), -1)
    classes = {}
    nc = getattr(args, "intensity_classes", None)
    if nc:
        from layerscope.stem.metrics import intensity_classes

        for s in np.unique(sub):
            m = sub == s
            if m.sum() >= 8:
                lab, means, k = intensity_classes(inten[m], n_classes=None if nc == "auto" else int(nc))
                cls[m] = lab
                classes[int(s)] = {"n_classes": k, "means": [float(v) for v in means],
                                   "counts": [int(np.sum(lab == i)) for i in range(k)]}
    write_csv(out / "columns.csv",
              zip(fit.x_px, fit.y_px, fit.x_px * scale, fit.y_px * scale, fit.amplitude, fit.sigma_px,
                  fit.position_esd_px, sub, inten, cls, [("peak", "lattice")[k]
                                                                                   for k in res.found_by]),
              ["x_px", "y_px", "x_nm", "y_nm", "amplitude", "sigma_px", "position_esd_px", "sublattice",
               "intensity", "intensity_class", "found_by"], fmt=None)
    c = res.cells
    la, lb = np.hypot(*c.a_px.T), np.hypot(*c.b_px.T)
    write_csv(out / "lattice_cells.csv",
              zip(c.i, c.j, c.centre_x_px, c.centre_y_px, c.centre_x_px * scale, c.centre_y_px * scale,
                  la, lb, la * scale, lb * scale, c.angle_deg, c.exx, c.eyy, c.exy, c.rotation_rad),
              ["i", "j", "centre_x_px", "centre_y_px", "centre_x_nm", "centre_y_nm", "a_px", "b_px", "a_nm",
               "b_nm", "angle_deg", "exx", "eyy", "exy", "rotation_rad"], fmt=None)
    rows = []
    for s, d in res.displacements.items():
        for k in range(len(d["cell"])):
            cell_k = int(d["cell"][k])
            dx, dy = d["dx_px"][k], d["dy_px"][k]
            rows.append((s, c.i[cell_k], c.j[cell_k], d["ideal_x_px"][k], d["ideal_y_px"][k], dx, dy,
                         dx * scale, dy * scale, np.hypot(dx, dy) * scale))
    write_csv(out / "displacements.csv", rows,
              ["sublattice", "i", "j", "ideal_x_px", "ideal_y_px", "dx_px", "dy_px", "dx_nm", "dy_nm",
               "magnitude_nm"], fmt=None)
    v = res.vacancies
    write_csv(out / "vacancies.csv",
              zip(v[:, 0].astype(int), v[:, 1], v[:, 2], v[:, 1] * scale, v[:, 2] * scale,
                  np.where(v[:, 3] > 0, "empty", "unresolved")),
              ["sublattice", "x_px", "y_px", "x_nm", "y_nm", "status"], fmt=None)
    strain = None
    try:
        strain = gpa(smooth, g_per_px=_gpa_g(res))
        from layerscope.stem._cli import _write_strain

        _write_strain(out / "strain.h5", strain, px, img.source)
    except ValueError as exc:
        notes.append(f"GPA skipped: {exc}")
    from layerscope.stem.lattice import lattice_parameters

    def latdict(b):
        la_, lb_, g_ = lattice_parameters(b)
        return {"a_px": la_, "b_px": lb_, "angle_deg": g_, "a_nm": la_ * scale if px else None,
                "b_nm": lb_ * scale if px else None, "basis_px": np.asarray(b).tolist()}

    summary = {
        "image": img.source, "pixel_size_nm": px, "units": "nm" if px else "px", "zone": None,
        "columns": int(len(sub)), "columns_per_sublattice": [int(np.sum(sub == s)) for s in np.unique(sub)],
        "sublattice_sites_frac": np.asarray(res.site_frac).tolist(),
        "lattice_fft": latdict(res.fft.basis_px), "lattice_positions": latdict(res.lattice.basis_px),
        "lattice_agreement": res.agreement, "cells": int(len(c)),
        "strain_from_positions_std": {"exx": _std(c.exx), "eyy": _std(c.eyy), "exy": _std(c.exy)},
        "mean_displacement_px": {int(s): [float(np.mean(d["dx_px"])) if len(d["dx_px"]) else None,
                                          float(np.mean(d["dy_px"])) if len(d["dy_px"]) else None]
                                 for s, d in res.displacements.items()},
        "vacancies": {int(k): int(np.sum((v[:, 0] == k) & (v[:, 3] > 0))) for k in np.unique(v[:, 0])},
        "unresolved_sites": {int(k): int(np.sum((v[:, 0] == k) & (v[:, 3] == 0))) for k in np.unique(v[:, 0])},
        "vacancies_note": "sites the lattice predicts: empty = a fit with a sensible width and position finds "
                          "< 0.25x the local median amplitude; unresolved = the fit could not hold a column there "
                          "(occupancy not determined)",
        "columns_predicted_by_lattice": int(np.sum(res.found_by)), "intensity_classes": classes,
        "median_position_esd_px": float(np.nanmedian(fit.position_esd_px)) if len(sub) else None,
        "notes": notes, "warnings": [n for n in notes if "no pixel calibration" in n or "no unit" in n],
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2, default=float))
    if not args.no_figures:
        _figures(out, img.data, res, strain)
    ag = res.agreement
    print(f"{len(sub)} columns in {len(np.unique(sub))} sublattice(s), {len(c)} cells; positions vs FFT lattice "
          f"{100 * ag['a_rel']:+.2f} % / {100 * ag['b_rel']:+.2f} % → {out}")
    return 0


def _std(x):
    return float(np.std(x)) if len(x) else None


def _gpa_g(res):
    """The two strongest reflections of the refined FFT lattice (rows gx, gy)."""
    g = res.fft.g_per_px
    return np.asarray(g, float)


def _figures(out: Path, image, res, strain) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit, sub = res.fit, res.sublattice
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(image, cmap="gray")
    for s in np.unique(sub):
        m = sub == s
        ax.plot(fit.x_px[m], fit.y_px[m], ".", ms=3, label=f"sublattice {s}")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_axis_off()
    save_figure(fig, out / "columns.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    c = res.cells
    if len(c):
        fig, axes = plt.subplots(1, 3, figsize=(15, 5))
        for ax, e, name in zip(axes, (c.exx, c.eyy, c.exy), ("εxx", "εyy", "εxy")):
            ax.imshow(image, cmap="gray")
            lim = max(float(np.nanpercentile(np.abs(e), 98)), 1e-4) * 100
            sc = ax.scatter(c.centre_x_px, c.centre_y_px, c=100 * e, cmap="bwr", vmin=-lim, vmax=lim, s=12,
                            marker="s")
            fig.colorbar(sc, ax=ax, label=f"{name} (%)", shrink=0.7)
            ax.set_axis_off()
        save_figure(fig, out / "strain_positions.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        for s, d in res.displacements.items():
            if len(d["dx_px"]) == 0:
                continue
            fig, ax = plt.subplots(figsize=(7, 7))
            ax.imshow(image, cmap="gray")
            ax.quiver(d["ideal_x_px"], d["ideal_y_px"], d["dx_px"], -np.asarray(d["dy_px"]), color="yellow",
                      angles="xy", scale_units="xy", scale=0.1)
            ax.set_title(f"sublattice {s} displacement from its ideal site (×10)")
            ax.set_axis_off()
            save_figure(fig, out / f"displacement_{s}.png", dpi=110, bbox_inches="tight")
            plt.close(fig)
    if strain is not None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 5))
        for ax, e, name in zip(axes, (strain.exx, strain.eyy), ("εxx", "εyy")):
            im = ax.imshow(100 * e, cmap="bwr", vmin=-5, vmax=5)
            ax.set_title(f"GPA {name} (%)")
            ax.set_axis_off()
        fig.colorbar(im, ax=axes, label="strain (%)")
        save_figure(fig, out / "strain.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
