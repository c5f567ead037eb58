"""``layerscope haadf IMAGE --out DIR`` and ``layerscope simulate haadf --out DIR``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from layerscope._io import atomic_path, save_figure, write_csv, write_text


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "haadf", help="atomic-resolution HAADF-STEM: columns, unit-cell m/n, variants, GPA strain"
    )
    p.add_argument("image", nargs="+",
                   help="image file(s) (.dm3/.dm4/.emd/.ser/.hspy/.hdf5/.tif/.npy); several images are a batch: "
                        "each one's results go to OUT/<file name without extension>/, and a rerun keeps the "
                        "images finished before (their record.json) and does the rest")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--pixel-size-nm", type=float, default=None, help="override the file's calibration")
    p.add_argument("--denoise", default="du", choices=["du", "wiener", "gaussian", "nlm", "none"])
    p.add_argument("--separation-nm", type=float, default=None,
                   help="minimum column separation for the layered --zone 100 analysis (default: from the "
                        "image's FFT; the any-crystal analysis takes it from the averaged unit cell)")
    p.add_argument("--second-sublattice", action="store_true",
                   help="layered --zone 100 analysis: also fit a second sublattice at midpoints of the first "
                        "(Atomap-style; the any-crystal analysis finds all sublattices itself)")
    p.add_argument("--zone", choices=["100", "210"], default=None,
                   help="the image is a layered oxide along <100>_O3 (twin variants, m/n, boundaries, pores) or "
                        "<210>_O3 (O3' domains A/B/C, Li/TM order). Default: lattice-agnostic analysis of any "
                        "crystal; the <100> layered analyses run only if the lattice is recognised as that "
                        "projection (tolerances in layerscope.stem.analysis.LAYERED_TOLERANCE)")
    p.add_argument("--contrast", choices=["auto", "bright-atoms", "dark-atoms"], default="auto",
                   help="bright-atoms (HAADF/ADF) or dark-atoms (ABF/BF: the image is inverted so that columns "
                        "land on atoms); auto: from the skewness of the band-passed image")
    p.add_argument("--spacing-nm", type=float, default=None,
                   help="calibrate from a known lattice: length of the shortest lattice vector of sublattice 0, nm")
    p.add_argument("--cell", type=float, nargs="+", default=None, metavar="NM",
                   help="calibrate from the known projected 2D cell: A B [GAMMA_DEG] (nm, nm, degrees)")
    p.add_argument("--max-sublattices", type=int, default=4, help="most sublattices (sites of the cell) to fit")
    p.add_argument("--intensity-classes", default=None, metavar="N|auto",
                   help="Gaussian-mixture classes of column intensities per sublattice (StatSTEM-style)")
    p.add_argument("--lowmag", action="store_true",
                   help="low-magnification image: segment particles and count pore/trench defects per particle")
    p.add_argument("--shell", action="store_true",
                   help="particle edge: layered vs spinel map and the surface spinel shell thickness (shell.csv)")
    p.add_argument("--no-figures", action="store_true")
    p.set_defaults(func=_haadf)


def _haadf(args) -> int:
    """One image into --out, or a batch (one folder per image, resumable), holding the folder's lock."""
    from argparse import Namespace

    from layerscope._lock import output_lock

    images = args.image if isinstance(args.image, list) else [args.image]
    with output_lock(args.out, "haadf"):  # one command at a time per output folder
        if len(images) == 1:
            return _run_haadf(Namespace(**{**vars(args), "image": images[0]}))
        return _run_batch(args, images)


def _run_batch(args, images) -> int:
    """Every image of a batch into OUT/<stem>/; ``record.json`` (written last) marks an image done.

    A rerun keeps an image whose record holds the same fingerprint (SHA-256 of the image file,
    the options, the layerscope version), so a batch killed part way resumes where it stopped."""
    import hashlib
    from argparse import Namespace

    from layerscope import __version__
    from layerscope._errors import InputError
    from layerscope._io import file_in

    out = Path(args.out)
    names = [Path(i).stem for i in images]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"images of a batch need distinct file names (their output folders): {dup} repeat")
    plain = (str, int, float, bool, list, type(None))
    opts = {k: v for k, v in sorted(vars(args).items())
            if k not in ("image", "out", "func", "command") and isinstance(v, plain)}
    done = 0
    for k, (img, name) in enumerate(zip(images, names), start=1):
        sub = file_in(out, name)
        try:
            sha = hashlib.sha256(Path(img).read_bytes()).hexdigest()
        except OSError as exc:
            raise InputError(f"an image file ({exc.strerror})", path=img) from None
        fp = hashlib.sha256(json.dumps({"sha256": sha, "options": opts, "layerscope": __version__},
                                       sort_keys=True).encode()).hexdigest()
        rec = sub / "record.json"
        try:
            kept = json.loads(rec.read_text()).get("fingerprint") == fp
        except (OSError, ValueError, AttributeError):
            kept = False
        if kept:
            print(f"[haadf] {k}/{len(images)} {img}: done before, kept")
            done += 1
            continue
        print(f"[haadf] {k}/{len(images)} {img}")
        _run_haadf(Namespace(**{**vars(args), "image": str(img), "out": str(sub)}))
        write_text(rec, json.dumps({"image": str(img), "sha256": sha, "options": opts, "layerscope": __version__,
                                    "fingerprint": fp}, indent=1))
    print(f"[haadf] {len(images)} images ({done} kept from before) → {out}")
    return 0


def _write_csv(path: Path, header: list[str], rows) -> None:
    write_csv(path, rows, header, fmt=None)


def _run_haadf(args) -> int:
    if args.lowmag:
        return _run_lowmag(args)
    if args.shell:
        return _run_shell(args)
    if getattr(args, "zone", None) == "210":
        return _run_zone210(args)
    from layerscope.stem._cli_crystal import load, run_crystal

    if getattr(args, "zone", None) and (getattr(args, "spacing_nm", None) is not None or getattr(args, "cell", None)):
        from layerscope._errors import InputError

        raise InputError("--spacing-nm/--cell calibrate the any-crystal analysis; with --zone give --pixel-size-nm")
    img, notes = load(args)
    if getattr(args, "zone", None) == "100":
        return _run_layered100(args, img, notes)
    return run_crystal(args, img, notes, layered=_run_layered100)


def _run_layered100(args, img, notes) -> int:
    from layerscope.stem import denoise, find_columns, refine_columns, sublattice_between, unit_cells
    from layerscope.stem.boundaries import BOUNDARY_KINDS, nearest_boundary, trace_boundaries
    from layerscope.stem.cells import VARIANTS
    from layerscope.stem.defects import find_pores
    from layerscope.stem.gpa import gpa

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
    if getattr(args, "second_sublattice", False):
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
    bounds = pores = None
    if cells is not None:
        bounds = trace_boundaries(cells)
        cell_seg = np.full(len(cells), -1)
        cell_seg[bounds.cell_a] = bounds.segment
        cell_seg[bounds.cell_b] = bounds.segment
        _write_csv(
            out / "cells.csv",
            ["centre_x_px", "centre_y_px", "centre_x_nm", "centre_y_nm", "m_over_n", "angle_deg",
             "inplane_spacing_nm", "interlayer_spacing_nm", "variant", "boundary", "frustrated"],
            zip(cells.centre_x_px, cells.centre_y_px, cells.centre_x_px * scale, cells.centre_y_px * scale,
                cells.m_over_n, cells.angle_deg, cells.inplane_spacing_px * scale,
                cells.interlayer_spacing_px * scale, [VARIANTS[v] for v in cells.variant], cell_seg,
                bounds.frustrated.astype(int)),
        )
        _write_csv(
            out / "boundaries.csv",
            ["boundary", "kind", "angle_to_layers_deg", "variants", "n_edges", "length_nm", "centre_x_px",
             "centre_y_px", "centre_x_nm", "centre_y_nm"],
            zip(range(len(bounds)), [BOUNDARY_KINDS[k] for k in bounds.kind], bounds.angle_deg, bounds.variants,
                bounds.n_edges, bounds.length_px * scale, bounds.centre_x_px, bounds.centre_y_px,
                bounds.centre_x_px * scale, bounds.centre_y_px * scale),
        )
        pores = find_pores(fit.positions_px, frame=cells.frame, image_shape=img.data.shape)
        seg, dist = nearest_boundary(pores.centre_x_px, pores.centre_y_px, bounds)
        _write_csv(
            out / "defects.csv",
            ["defect", "kind", "x_px", "y_px", "x_nm", "y_nm", "missing_columns", "area_nm2", "boundary",
             "boundary_kind", "distance_to_boundary_nm"],
            zip(range(len(pores)), ["pore"] * len(pores), pores.centre_x_px, pores.centre_y_px,
                pores.centre_x_px * scale, pores.centre_y_px * scale, pores.n_missing,
                pores.area_px2 * scale**2, seg, [BOUNDARY_KINDS[bounds.kind[g]] if g >= 0 else "" for g in seg],
                dist * scale),
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
        "boundaries": (
            {k: int(np.sum(bounds.kind == i)) for i, k in enumerate(BOUNDARY_KINDS)} if bounds is not None else {}
        ),
        "frustrated_cells": int(bounds.frustrated.sum()) if bounds is not None else 0,
        "pores": int(len(pores)) if pores is not None else 0,
        "zone": "<100>_O3", "notes": list(notes), "units": "nm" if px else "px",
        "warnings": [n for n in notes if "no pixel calibration" in n or "no unit" in n],
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    if not args.no_figures:
        _figures(out, img.data, fit, cells, strain)
    print(f"{summary['columns']} columns, {summary['cells']} cells → {out}")
    return 0


def _write_strain(path: Path, res, px, source) -> None:
    import h5py

    with atomic_path(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        for name in ("exx", "eyy", "exy", "rotation_rad", "ux_px", "uy_px"):
            f.create_dataset(name, data=getattr(res, name), compression="gzip")
        f["g_per_px"] = res.g_per_px
        f.attrs["reference_y0_y1_x0_x1"] = np.asarray(res.reference)
        f.attrs["pixel_size_nm"] = px if px else np.nan
        f.attrs["source"] = str(source)
        f.attrs["method"] = "geometric phase analysis, Hytch, Snoeck & Kilaas, Ultramicroscopy 74 (1998) 131"


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
        save_figure(fig, out / "m_over_n.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.imshow(image, cmap="gray")
        cmap = ListedColormap(["tab:blue", "tab:pink", "tab:green"])
        ax.scatter(cells.centre_x_px, cells.centre_y_px, c=cells.variant, cmap=cmap, vmin=-0.5, vmax=2.5,
                   s=30, marker="s")
        ax.set_title("variants: I (blue), II (pink), O1 (green)")
        ax.set_axis_off()
        save_figure(fig, out / "variants.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, e, name in zip(axes, (strain.exx, strain.eyy), ("εxx", "εyy")):
        im = ax.imshow(100 * e, cmap="bwr", vmin=-20, vmax=20)
        ax.set_title(f"{name} (%)")
        ax.set_axis_off()
    fig.colorbar(im, ax=axes, label="strain (%)")
    save_figure(fig, out / "strain.png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _run_shell(args) -> int:
    """Particle edge: layered / spinel / vacuum map and the spinel shell thickness along the surface."""
    from layerscope.stem.phases import PHASES, shell_thickness

    img, out, scale = _prepare(args)
    if not img.pixel_size_nm:
        raise ValueError(f"{img.source}: --shell needs a pixel size; give --pixel-size-nm")
    res = shell_thickness(img.data, img.pixel_size_nm)
    _write_csv(
        out / "shell.csv", ["station_x_px", "station_y_px", "station_x_nm", "station_y_nm", "thickness_nm"],
        zip(res.station_x_px, res.station_y_px, res.station_x_px * scale, res.station_y_px * scale,
            res.thickness_nm),
    )
    pm = res.phase_map
    fractions = {name: float(np.mean(pm.phase == i)) for i, name in enumerate(PHASES)}
    summary = {"image": img.source, "pixel_size_nm": img.pixel_size_nm,
               "layer_spacing_nm": pm.layer_spacing_px * img.pixel_size_nm, "phase_fractions": fractions,
               "shell_thickness_nm": {"mean": res.mean_nm, "min": float(np.nanmin(res.thickness_nm)),
                                      "max": float(np.nanmax(res.thickness_nm))},
               "note": "+0.2 nm systematic on simulated edges (see layerscope.stem.phases)"}
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    if not args.no_figures:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap

        fig, ax = plt.subplots(figsize=(8, 4))
        ax.imshow(img.data, cmap="gray")
        ax.imshow(pm.phase, cmap=ListedColormap(["black", "tab:orange", "gold"]), alpha=0.3, vmin=-0.5,
                  vmax=2.5)
        ax.plot(res.station_x_px, res.station_y_px, "c.", ms=3)
        ax.set_title(f"layered (orange) / spinel (yellow); shell {res.mean_nm:.1f} nm mean (cf. Supp. Fig. 1)")
        ax.set_axis_off()
        save_figure(fig, out / "shell.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
    print(f"spinel shell {res.mean_nm:.2f} nm mean over {len(res.thickness_nm)} stations → {out}")
    return 0


def _prepare(args):
    from layerscope.stem import read_image
    from layerscope.stem.io import STEMImage

    img = read_image(args.image, pixel_size_nm=args.pixel_size_nm)
    if getattr(args, "contrast", None) == "dark-atoms":  # ABF/BF: atoms as maxima (auto only for columns)
        img = STEMImage(img.data.max() - img.data, img.pixel_size_nm, img.source, img.units_assumed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return img, out, (img.pixel_size_nm if img.pixel_size_nm else np.nan)


def _run_zone210(args) -> int:
    """<210>_O3: columns of the TM rows, O3' domains A/B/C region by region, Li/TM order."""
    from layerscope.stem import denoise, fft_lattice, find_columns
    from layerscope.stem.domains import DOMAINS, classify_domains, column_intensity
    from layerscope.stem.gpa import gpa

    img, out, scale = _prepare(args)
    smooth = denoise(img.data, args.denoise)
    sp = fft_lattice(smooth).spacing_px
    # The dark (2b) columns are half as bright as their TM neighbours one
    # spacing away: a peak window narrower than the spacing keeps them.
    sep = args.separation_nm / img.pixel_size_nm if (args.separation_nm and img.pixel_size_nm) else 0.45 * sp
    cols = find_columns(smooth, separation_px=sep)
    inten = column_intensity(img.data, cols, sigma_px=sp / 4)
    dm = classify_domains(cols, inten)
    names = lambda d: DOMAINS[d] if d >= 0 else "disordered"  # noqa: E731
    _write_csv(
        out / "columns.csv",
        ["x_px", "y_px", "x_nm", "y_nm", "amplitude", "sigma_px", "position_esd_px", "sublattice"],
        zip(cols[:, 0], cols[:, 1], cols[:, 0] * scale, cols[:, 1] * scale, inten, [sp / 4] * len(cols),
            [np.nan] * len(cols), [0] * len(cols)),
    )
    _write_csv(
        out / "domains.csv",
        ["region", "domain", "n_cells", "centre_x_px", "centre_y_px", "centre_x_nm", "centre_y_nm",
         "modulation"],
        zip(range(len(dm.region_domain)), [names(d) for d in dm.region_domain], dm.region_cells,
            dm.region_x_px, dm.region_y_px, dm.region_x_px * scale, dm.region_y_px * scale, dm.region_modulation),
    )
    _write_csv(
        out / "domain_cells.csv",
        ["x_px", "y_px", "x_nm", "y_nm", "row", "col", "domain", "modulation", "region"],
        zip(dm.x_px, dm.y_px, dm.x_px * scale, dm.y_px * scale, dm.row, dm.col, [names(d) for d in dm.domain],
            dm.modulation, dm.region),
    )
    strain = gpa(smooth)
    _write_strain(out / "strain.h5", strain, img.pixel_size_nm, img.source)
    fractions = {names(d): float(np.mean(dm.domain == d)) for d in (-1, 0, 1, 2)}
    summary = {"image": img.source, "zone": "<210>_O3", "pixel_size_nm": img.pixel_size_nm,
               "columns": int(len(cols)), "cells": int(len(dm)), "domain_fractions": fractions,
               "order_modulation": dm.image_modulation,
               "order_modulation_note": "2|<A exp(-2 pi i j/3)>|/<A> along TM rows; ~0.37 for table S1 O3', 0 random"}
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    if not args.no_figures:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap

        fig, ax = plt.subplots(figsize=(6, 6))
        ax.imshow(img.data, cmap="gray")
        ax.scatter(dm.x_px, dm.y_px, c=dm.domain, cmap=ListedColormap(["lightgray", "tab:green", "tab:blue",
                                                                          "tab:pink"]),
                   vmin=-1.5, vmax=2.5, s=12, marker="s", alpha=0.6)
        ax.set_title("O3' domains: A (green), B (blue), C (pink), disordered (grey) — cf. Fig. 1d")
        ax.set_axis_off()
        save_figure(fig, out / "domains.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
    print(f"{len(cols)} columns, {len(dm)} cells, order modulation {dm.image_modulation:.3f} → {out}")
    return 0


def _run_lowmag(args) -> int:
    """Low magnification: particles and their pore/trench defects (table S4)."""
    from layerscope.stem.defects import defects_per_particle, find_lowmag_defects, segment_particles

    img, out, scale = _prepare(args)
    labels = segment_particles(img.data)
    n = int(labels.max())
    d = find_lowmag_defects(img.data, labels)
    per = defects_per_particle(d, n)
    from scipy import ndimage

    idx = np.arange(1, n + 1)
    area = ndimage.sum_labels(np.ones_like(labels), labels, idx)
    com = np.array(ndimage.center_of_mass(labels > 0, labels, idx)).reshape(-1, 2)
    _write_csv(
        out / "particles.csv",
        ["particle", "centre_x_px", "centre_y_px", "centre_x_nm", "centre_y_nm", "area_nm2", "n_defects"],
        zip(idx, com[:, 1], com[:, 0], com[:, 1] * scale, com[:, 0] * scale, area * scale**2, per),
    )
    _write_csv(
        out / "defects.csv",
        ["defect", "kind", "particle", "x_px", "y_px", "x_nm", "y_nm", "area_nm2", "length_nm",
         "orientation_deg", "depth"],
        zip(range(len(d)), ["trench"] * len(d), d.particle, d.centre_x_px, d.centre_y_px, d.centre_x_px * scale,
            d.centre_y_px * scale, d.area_px * scale**2, d.length_px * scale, d.orientation_deg, d.depth),
    )
    summary = {"image": img.source, "mode": "low magnification", "pixel_size_nm": img.pixel_size_nm,
               "particles": n, "defects_per_particle": [int(x) for x in per],
               "mean_defects_per_particle": float(np.mean(per)) if n else 0.0}
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    if not args.no_figures:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 5))
        ax.imshow(img.data, cmap="gray")
        ax.contour(labels > 0, levels=[0.5], colors="c", linewidths=0.8)
        ax.contour(d.labels > 0, levels=[0.5], colors="orange", linewidths=0.8)
        for k in range(n):
            ax.text(com[k, 1], com[k, 0], f"{k + 1}: {per[k]}", color="yellow", ha="center")
        ax.set_title("particles (cyan) and defects (orange): particle: count (cf. table S4)")
        ax.set_axis_off()
        save_figure(fig, out / "defects.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
    print(f"{n} particles, defects per particle {list(map(int, per))} → {out}")
    return 0
