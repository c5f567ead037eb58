"""The analyses behind :func:`layerscope.stem.haadf.analyze_haadf`, one function per kind of image.

Each takes a :class:`~layerscope.stem.io.STEMImage` (already inverted for dark-atom contrast) and
returns a :class:`~layerscope.stem.haadf.HaadfResult` whose tables are the CSV files of
``layerscope haadf`` (same columns, same order); nothing is written here.
"""

from __future__ import annotations

import numpy as np

from layerscope._errors import InputError
from layerscope.stem.haadf import HaadfResult

__all__ = ["layered100", "crystal", "zone210", "lowmag", "shell", "calibrate_from_lattice"]


def _calib(px) -> dict:
    return {"pixel_size_nm": px, "units": "nm" if px else "px"}


def _flags_of(notes) -> list:
    return [n for n in notes if "no pixel calibration" in n or "no unit" in n]


def layered100(img, notes: list, *, denoise_method: str = "du", separation_nm=None,
               second_sublattice: bool = False) -> HaadfResult:
    """Layered oxide along <100>_O3: columns, unit-cell m/n, twin variants, boundaries, pores, GPA."""
    from layerscope.stem import denoise, find_columns, refine_columns, sublattice_between, unit_cells
    from layerscope.stem.boundaries import BOUNDARY_KINDS, nearest_boundary, trace_boundaries
    from layerscope.stem.cells import VARIANTS
    from layerscope.stem.defects import find_pores
    from layerscope.stem.gpa import gpa

    px = img.pixel_size_nm
    sep_px = separation_nm / px if (separation_nm and px) else None
    if separation_nm and not px:
        raise ValueError(f"{img.source}: --separation-nm needs a pixel size; give --pixel-size-nm")
    smooth = denoise(img.data, denoise_method)
    start = find_columns(smooth, separation_px=sep_px)
    # Positions are found on the denoised image and refined on the raw one,
    # so the esd reflects the real (uncorrelated) noise.
    fit = refine_columns(img.data, start)
    subl = np.zeros(len(fit.x_px), int)
    fits = [fit]
    if second_sublattice:
        mids, _ = sublattice_between(smooth, fit.positions_px)
        if len(mids):
            fit2 = refine_columns(img.data, mids)
            fits.append(fit2)
            subl = np.concatenate([subl, np.ones(len(fit2.x_px), int)])
    cols = {k: np.concatenate([getattr(f, k) for f in fits]) for k in
            ("x_px", "y_px", "amplitude", "sigma_px", "position_esd_px")}
    scale = px if px else np.nan
    columns = {"x_px": cols["x_px"], "y_px": cols["y_px"], "x_nm": cols["x_px"] * scale,
               "y_nm": cols["y_px"] * scale, "amplitude": cols["amplitude"], "sigma_px": cols["sigma_px"],
               "position_esd_px": cols["position_esd_px"], "sublattice": subl}
    flags, metrics = [], {}
    cells = bounds = pores = None
    try:
        cells = unit_cells(fit.positions_px)
    except ValueError as exc:
        flags.append(f"no unit cells ({exc})")
    if cells is not None:
        bounds = trace_boundaries(cells)
        cell_seg = np.full(len(cells), -1)
        cell_seg[bounds.cell_a] = bounds.segment
        cell_seg[bounds.cell_b] = bounds.segment
        metrics["cells"] = {
            "centre_x_px": cells.centre_x_px, "centre_y_px": cells.centre_y_px,
            "centre_x_nm": cells.centre_x_px * scale, "centre_y_nm": cells.centre_y_px * scale,
            "m_over_n": cells.m_over_n, "angle_deg": cells.angle_deg,
            "inplane_spacing_nm": cells.inplane_spacing_px * scale,
            "interlayer_spacing_nm": cells.interlayer_spacing_px * scale,
            "variant": [VARIANTS[v] for v in cells.variant], "boundary": cell_seg,
            "frustrated": bounds.frustrated.astype(int)}
        metrics["boundaries"] = {
            "boundary": list(range(len(bounds))), "kind": [BOUNDARY_KINDS[k] for k in bounds.kind],
            "angle_to_layers_deg": bounds.angle_deg, "variants": bounds.variants, "n_edges": bounds.n_edges,
            "length_nm": bounds.length_px * scale, "centre_x_px": bounds.centre_x_px,
            "centre_y_px": bounds.centre_y_px, "centre_x_nm": bounds.centre_x_px * scale,
            "centre_y_nm": bounds.centre_y_px * scale}
        pores = find_pores(fit.positions_px, frame=cells.frame, image_shape=img.data.shape)
        seg, dist = nearest_boundary(pores.centre_x_px, pores.centre_y_px, bounds)
        metrics["defects"] = {
            "defect": list(range(len(pores))), "kind": ["pore"] * len(pores), "x_px": pores.centre_x_px,
            "y_px": pores.centre_y_px, "x_nm": pores.centre_x_px * scale, "y_nm": pores.centre_y_px * scale,
            "missing_columns": pores.n_missing, "area_nm2": pores.area_px2 * scale**2, "boundary": seg,
            "boundary_kind": [BOUNDARY_KINDS[bounds.kind[g]] if g >= 0 else "" for g in seg],
            "distance_to_boundary_nm": dist * scale}
    strain = gpa(smooth)
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
        "warnings": _flags_of(notes),
    }
    return HaadfResult("layered-100", img.source, _calib(px), columns, None, metrics,
                       tuple(_flags_of(notes) + flags), summary, strain, img.data, tuple(_flags_of(notes)),
                       {"fit": fit, "cells": cells})


def calibrate_from_lattice(basis_px: np.ndarray, spacing_nm: float | None, cell, source: str = "") -> tuple[float, str]:
    """Pixel size (nm) from a known lattice spacing or projected cell, and how it was obtained."""
    from layerscope.stem.columns import reduce_basis
    from layerscope.stem.lattice import lattice_parameters

    la, lb, gam = lattice_parameters(reduce_basis(basis_px))
    gam = min(gam, 180 - gam)
    if spacing_nm is not None:
        if spacing_nm <= 0:
            raise InputError(f"--spacing-nm must be positive, got {spacing_nm}")
        return spacing_nm / la, f"calibrated from --spacing-nm {spacing_nm} (shortest lattice vector {la:.2f} px)"
    cell = list(cell)
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


def _std(x):
    return float(np.std(x)) if len(x) else None


def crystal(img, notes: list, *, layered_opts: dict, max_sublattices: int = 4, spacing_nm=None, cell=None,
            n_classes=None) -> HaadfResult:
    """Any crystal: lattice, sublattices, per-cell metrics, displacements, vacancies; the layered
    <100> analysis instead when the lattice is recognised as one."""
    from layerscope.stem import denoise
    from layerscope.stem.analysis import analyse_crystal, recognise_layered
    from layerscope.stem.columns import find_columns
    from layerscope.stem.domains import column_intensity
    from layerscope.stem.gpa import gpa
    from layerscope.stem.io import STEMImage
    from layerscope.stem.lattice import lattice_parameters

    smooth = denoise(img.data, layered_opts["denoise_method"])
    # Layered-oxide projection? Checked on the brightest peaks, before any layered analysis runs.
    px_file = img.pixel_size_nm
    try:
        ok, why = recognise_layered(find_columns(smooth), px_file)
    except ValueError as exc:
        ok, why = False, f"not checked ({exc})"
    if ok:
        notes.append(why)
        return layered100(img, notes, **layered_opts)
    notes.append(f"layered-oxide analyses (m/n, variants, O1, frustration, pores, A/B/C domains) skipped: {why}; "
                 "give --zone 100 or --zone 210 to run them")
    res = analyse_crystal(smooth, raw=img.data, max_sublattices=max_sublattices)
    notes.extend(res.notes)
    px = img.pixel_size_nm
    if spacing_nm is not None or cell:
        px, msg = calibrate_from_lattice(res.lattice.basis_px, spacing_nm, cell, img.source)
        if img.pixel_size_nm:
            msg += f" (the file said {img.pixel_size_nm:.5f} nm/px)"
        notes.append(msg)
        img = STEMImage(img.data, px, img.source)
    scale = px if px else np.nan
    fit, sub = res.fit, res.sublattice
    a_len = float(np.linalg.norm(res.lattice.basis_px[0]))
    inten = column_intensity(img.data, fit.positions_px, sigma_px=max(0.5, a_len / 10))
    cls = np.full(len(sub), -1)
    classes = {}
    if n_classes:
        from layerscope.stem.metrics import intensity_classes

        for s in np.unique(sub):
            m = sub == s
            if m.sum() >= 8:
                lab, means, k = intensity_classes(inten[m], n_classes=None if n_classes == "auto" else int(n_classes))
                cls[m] = lab
                classes[int(s)] = {"n_classes": k, "means": [float(v) for v in means],
                                   "counts": [int(np.sum(lab == i)) for i in range(k)]}
    columns = {"x_px": fit.x_px, "y_px": fit.y_px, "x_nm": fit.x_px * scale, "y_nm": fit.y_px * scale,
               "amplitude": fit.amplitude, "sigma_px": fit.sigma_px, "position_esd_px": fit.position_esd_px,
               "sublattice": sub, "intensity": inten, "intensity_class": cls,
               "found_by": [("peak", "lattice")[k] for k in res.found_by]}
    c = res.cells
    la, lb = np.hypot(*c.a_px.T), np.hypot(*c.b_px.T)
    metrics = {"lattice_cells": {
        "i": c.i, "j": c.j, "centre_x_px": c.centre_x_px, "centre_y_px": c.centre_y_px,
        "centre_x_nm": c.centre_x_px * scale, "centre_y_nm": c.centre_y_px * scale, "a_px": la, "b_px": lb,
        "a_nm": la * scale, "b_nm": lb * scale, "angle_deg": c.angle_deg, "exx": c.exx, "eyy": c.eyy, "exy": c.exy,
        "rotation_rad": c.rotation_rad}}
    disp = {k: [] for k in ("sublattice", "i", "j", "ideal_x_px", "ideal_y_px", "dx_px", "dy_px", "dx_nm", "dy_nm",
                            "magnitude_nm")}
    for s, d in res.displacements.items():
        for k in range(len(d["cell"])):
            cell_k = int(d["cell"][k])
            dx, dy = d["dx_px"][k], d["dy_px"][k]
            for key, v in zip(disp, (s, c.i[cell_k], c.j[cell_k], d["ideal_x_px"][k], d["ideal_y_px"][k], dx, dy,
                                     dx * scale, dy * scale, np.hypot(dx, dy) * scale)):
                disp[key].append(v)
    metrics["displacements"] = disp
    v = res.vacancies
    metrics["vacancies"] = {"sublattice": v[:, 0].astype(int), "x_px": v[:, 1], "y_px": v[:, 2],
                            "x_nm": v[:, 1] * scale, "y_nm": v[:, 2] * scale,
                            "status": np.where(v[:, 3] > 0, "empty", "unresolved")}
    strain = None
    try:
        strain = gpa(smooth, g_per_px=np.asarray(res.fft.g_per_px, float))  # the FFT lattice's two strongest
    except ValueError as exc:
        notes.append(f"GPA skipped: {exc}")

    def latdict(b):
        la_, lb_, g_ = lattice_parameters(b)
        return {"a_px": la_, "b_px": lb_, "angle_deg": g_, "a_nm": la_ * scale if px else None,
                "b_nm": lb_ * scale if px else None, "basis_px": np.asarray(b).tolist()}

    lattice = {"fft": latdict(res.fft.basis_px), "positions": latdict(res.lattice.basis_px),
               "agreement": res.agreement, "sublattice_sites_frac": np.asarray(res.site_frac).tolist()}
    summary = {
        "image": img.source, "pixel_size_nm": px, "units": "nm" if px else "px", "zone": None,
        "columns": int(len(sub)), "columns_per_sublattice": [int(np.sum(sub == s)) for s in np.unique(sub)],
        "sublattice_sites_frac": lattice["sublattice_sites_frac"],
        "lattice_fft": lattice["fft"], "lattice_positions": lattice["positions"],
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
        "notes": notes, "warnings": _flags_of(notes),
    }
    flags = _flags_of(notes) + [n for n in notes if n.startswith("GPA skipped")]
    return HaadfResult("crystal", img.source, _calib(px), columns, lattice, metrics, tuple(flags), summary, strain,
                       img.data, tuple(_flags_of(notes)), {"analysis": res})


def zone210(img, *, denoise_method: str = "du", separation_nm=None) -> HaadfResult:
    """<210>_O3: columns of the TM rows, O3' domains A/B/C region by region, Li/TM order."""
    from layerscope.stem import denoise, fft_lattice, find_columns
    from layerscope.stem.domains import DOMAINS, classify_domains, column_intensity
    from layerscope.stem.gpa import gpa

    scale = img.pixel_size_nm if img.pixel_size_nm else np.nan
    smooth = denoise(img.data, denoise_method)
    sp = fft_lattice(smooth).spacing_px
    # The dark (2b) columns are half as bright as their TM neighbours one
    # spacing away: a peak window narrower than the spacing keeps them.
    sep = separation_nm / img.pixel_size_nm if (separation_nm and img.pixel_size_nm) else 0.45 * sp
    cols = find_columns(smooth, separation_px=sep)
    inten = column_intensity(img.data, cols, sigma_px=sp / 4)
    dm = classify_domains(cols, inten)
    names = lambda d: DOMAINS[d] if d >= 0 else "disordered"  # noqa: E731
    columns = {"x_px": cols[:, 0], "y_px": cols[:, 1], "x_nm": cols[:, 0] * scale, "y_nm": cols[:, 1] * scale,
               "amplitude": inten, "sigma_px": [sp / 4] * len(cols), "position_esd_px": [np.nan] * len(cols),
               "sublattice": [0] * len(cols)}
    metrics = {
        "domains": {"region": list(range(len(dm.region_domain))), "domain": [names(d) for d in dm.region_domain],
                    "n_cells": dm.region_cells, "centre_x_px": dm.region_x_px, "centre_y_px": dm.region_y_px,
                    "centre_x_nm": dm.region_x_px * scale, "centre_y_nm": dm.region_y_px * scale,
                    "modulation": dm.region_modulation},
        "domain_cells": {"x_px": dm.x_px, "y_px": dm.y_px, "x_nm": dm.x_px * scale, "y_nm": dm.y_px * scale,
                         "row": dm.row, "col": dm.col, "domain": [names(d) for d in dm.domain],
                         "modulation": dm.modulation, "region": dm.region}}
    strain = gpa(smooth)
    fractions = {names(d): float(np.mean(dm.domain == d)) for d in (-1, 0, 1, 2)}
    summary = {"image": img.source, "zone": "<210>_O3", "pixel_size_nm": img.pixel_size_nm,
               "columns": int(len(cols)), "cells": int(len(dm)), "domain_fractions": fractions,
               "order_modulation": dm.image_modulation,
               "order_modulation_note": "2|<A exp(-2 pi i j/3)>|/<A> along TM rows; ~0.37 for table S1 O3', 0 random"}
    return HaadfResult("zone-210", img.source, _calib(img.pixel_size_nm), columns, None, metrics, (), summary,
                       strain, img.data, (), {"domains": dm})


def lowmag(img) -> HaadfResult:
    """Low magnification: particles and their pore/trench defects (table S4)."""
    from scipy import ndimage

    from layerscope.stem.defects import defects_per_particle, find_lowmag_defects, segment_particles

    scale = img.pixel_size_nm if img.pixel_size_nm else np.nan
    labels = segment_particles(img.data)
    n = int(labels.max())
    d = find_lowmag_defects(img.data, labels)
    per = defects_per_particle(d, n)
    idx = np.arange(1, n + 1)
    area = ndimage.sum_labels(np.ones_like(labels), labels, idx)
    com = np.array(ndimage.center_of_mass(labels > 0, labels, idx)).reshape(-1, 2)
    metrics = {
        "particles": {"particle": idx, "centre_x_px": com[:, 1], "centre_y_px": com[:, 0],
                      "centre_x_nm": com[:, 1] * scale, "centre_y_nm": com[:, 0] * scale,
                      "area_nm2": area * scale**2, "n_defects": per},
        "defects": {"defect": list(range(len(d))), "kind": ["trench"] * len(d), "particle": d.particle,
                    "x_px": d.centre_x_px, "y_px": d.centre_y_px, "x_nm": d.centre_x_px * scale,
                    "y_nm": d.centre_y_px * scale, "area_nm2": d.area_px * scale**2, "length_nm": d.length_px * scale,
                    "orientation_deg": d.orientation_deg, "depth": d.depth}}
    summary = {"image": img.source, "mode": "low magnification", "pixel_size_nm": img.pixel_size_nm,
               "particles": n, "defects_per_particle": [int(x) for x in per],
               "mean_defects_per_particle": float(np.mean(per)) if n else 0.0}
    return HaadfResult("lowmag", img.source, _calib(img.pixel_size_nm), None, None, metrics, (), summary, None,
                       img.data, (), {"labels": labels, "defect_labels": d.labels, "com": com, "per": per})


def shell(img) -> HaadfResult:
    """Particle edge: layered / spinel / vacuum map and the spinel shell thickness along the surface."""
    from layerscope.stem.phases import PHASES, shell_thickness

    if not img.pixel_size_nm:
        raise ValueError(f"{img.source}: --shell needs a pixel size; give --pixel-size-nm")
    scale = img.pixel_size_nm
    res = shell_thickness(img.data, img.pixel_size_nm)
    metrics = {"shell": {"station_x_px": res.station_x_px, "station_y_px": res.station_y_px,
                         "station_x_nm": res.station_x_px * scale, "station_y_nm": res.station_y_px * scale,
                         "thickness_nm": res.thickness_nm}}
    pm = res.phase_map
    fractions = {name: float(np.mean(pm.phase == i)) for i, name in enumerate(PHASES)}
    summary = {"image": img.source, "pixel_size_nm": img.pixel_size_nm,
               "layer_spacing_nm": pm.layer_spacing_px * img.pixel_size_nm, "phase_fractions": fractions,
               "shell_thickness_nm": {"mean": res.mean_nm, "min": float(np.nanmin(res.thickness_nm)),
                                      "max": float(np.nanmax(res.thickness_nm))},
               "note": "+0.2 nm systematic on simulated edges (see layerscope.stem.phases)"}
    return HaadfResult("shell", img.source, _calib(img.pixel_size_nm), None, None, metrics, (), summary, None,
                       img.data, (), {"shell": res})
