"""End-to-end column analysis of any crystal, and the checks that gate the layered-oxide analyses.

:func:`analyse_crystal`: primitive lattice from the FFT (:func:`image_lattice`)
→ averaged unit cell and its sites (:func:`unit_cell_motif`) → peaks closer
than any two sites → sublattices by lattice translations
(:func:`translation_classes`) → all columns refined together
(:func:`refine_columns`) → sublattice 0 indexed and its least-squares lattice
(:func:`index_columns`) compared with the FFT lattice → per-cell metrics,
sublattice displacements, vacancies (:mod:`layerscope.stem.metrics`).

:func:`detect_contrast`: HAADF/ADF columns are sharp bright peaks on a dark
background, so the band-passed image is positively skewed; ABF/BF columns
are dark dips on a bright background, negatively skewed. ``|skewness| <
0.15`` is undecided and raises (give ``--contrast``). Measured (band-pass σ = spacing/12 to 2×spacing): STO ADF
+1.44, STO ABF −0.68, NSMO HAADF +1.27, PTO/SRO HAADF +1.65.

:func:`recognise_layered`: the TM columns of a layered oxide along <100>_O3
form layers with in-layer spacing d = a√3/2 and interlayer spacing
h = c/3 (O3), the next layer shifted by ±d/3 (O3, twin variants) or 0 (O1).
Recognised when ``h/d`` is within ``LAYERED_TOLERANCE["h_over_d"]``
(Li and Na layered oxides: 1.97–2.2), the next-layer shift of at least 75 %
of the columns is within 0.12 d of 1/3 or 0 (integer peak positions), and — with a calibration — d
is 0.23–0.27 nm. Without a calibration the check is on shape only (said so
in the notes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, stats

from layerscope.stem.columns import find_columns
from layerscope.stem.fit import ColumnFit, refine_columns
from layerscope.stem.lattice import ColumnLattice, ImageLattice, image_lattice, index_columns, lattice_agreement
from layerscope.stem.metrics import CellMetrics, cell_metrics, lattice_vacancies, sublattice_displacements
from layerscope.stem.sublattices import Motif, snap_site, translation_classes, unit_cell_motif

__all__ = ["CrystalAnalysis", "analyse_crystal", "detect_contrast", "recognise_layered", "LAYERED_TOLERANCE"]

LAYERED_TOLERANCE = {"h_over_d": (1.75, 2.3), "lateral": 0.12, "fraction": 0.75, "d_nm": (0.23, 0.27)}


def detect_contrast(image: np.ndarray, *, period_px: float | None = None) -> tuple[str, float]:
    """``("bright-atoms" | "dark-atoms", skewness)`` of the band-passed image."""
    img = np.asarray(image, float)
    s_lo = 1.0 if period_px is None else max(0.5, period_px / 12)
    s_hi = 15.0 if period_px is None else 2 * period_px
    bp = ndimage.gaussian_filter(img, s_lo) - ndimage.gaussian_filter(img, s_hi)
    sk = float(stats.skew(bp.ravel()))
    if abs(sk) < 0.15:
        raise ValueError(f"cannot tell bright from dark atoms (band-passed skewness {sk:+.2f}); "
                         "give --contrast bright-atoms or dark-atoms")
    return ("bright-atoms" if sk > 0 else "dark-atoms"), sk


def recognise_layered(positions_px: np.ndarray, pixel_size_nm: float | None = None) -> tuple[bool, str]:
    """Whether columns look like the TM sublattice of a layered oxide along <100>_O3, and why."""
    from layerscope.stem.cells import layer_frame

    try:
        fr = layer_frame(positions_px)
    except ValueError as exc:
        return False, f"no layers ({exc})"
    d, h = fr.spacing_px, fr.layer_spacing_px
    pos = np.asarray(positions_px, float)
    from scipy.spatial import cKDTree

    tree = cKDTree(pos)
    dist, idx = tree.query(pos, k=min(16, len(pos)))
    rel = pos[idx[:, 1:]] - pos[:, None, :]
    normal = rel @ fr.e2
    lateral = rel @ fr.e1
    up = np.abs(normal - h) < 0.2 * h
    lat = []
    for r in range(len(pos)):
        if up[r].any():
            v = lateral[r][up[r]] / d
            v = v - np.rint(v)
            lat.append(v[np.argmin(np.abs(v))])
    lat = np.abs(np.array(lat))
    tol = LAYERED_TOLERANCE["lateral"]
    on = np.minimum(np.abs(lat - 1 / 3), lat) <= tol if len(lat) else np.zeros(0, bool)
    frac = float(np.mean(on)) if len(lat) else 0.0
    lo, hi = LAYERED_TOLERANCE["h_over_d"]
    shape_ok = lo <= h / d <= hi and frac >= LAYERED_TOLERANCE["fraction"]
    desc = (f"interlayer/in-layer spacing {h / d:.2f} (layered {lo}-{hi}), next-layer shift 1/3 or 0 of the "
            f"in-layer spacing (±{tol}) for {100 * frac:.0f} % of the columns (need "
            f"{100 * LAYERED_TOLERANCE['fraction']:.0f} %)")
    if not shape_ok:
        return False, "lattice is not a layered-oxide <100> projection: " + desc
    if pixel_size_nm:
        dn = d * pixel_size_nm
        a, b = LAYERED_TOLERANCE["d_nm"]
        if not a <= dn <= b:
            return False, f"{desc}, but in-layer spacing {dn:.3f} nm is outside {a}-{b} nm"
        return True, f"recognised as a layered oxide along <100>: {desc}, in-layer spacing {dn:.3f} nm"
    return True, f"recognised as a layered oxide along <100> by shape only (no calibration): {desc}"


@dataclass
class CrystalAnalysis:
    """Result of :func:`analyse_crystal` (pixel units)."""

    fft: ImageLattice
    motif: Motif
    fit: ColumnFit
    sublattice: np.ndarray
    site_frac: np.ndarray  # (K, 2) fractional site of each sublattice in the cell of sublattice 0
    lattice: ColumnLattice  # sublattice 0
    agreement: dict
    cells: CellMetrics
    displacements: dict  # sublattice -> dict of arrays
    vacancies: np.ndarray  # (V, 3): sublattice, x_px, y_px of sites the lattice predicts but the image lacks
    notes: list = field(default_factory=list)
    found_by: np.ndarray | None = None  # per column: 0 peak search, 1 lattice prediction confirmed by the fit

    @property
    def positions0(self) -> np.ndarray:
        return self.fit.positions_px[self.sublattice == 0]


def analyse_crystal(image: np.ndarray, *, raw: np.ndarray | None = None, max_sublattices: int = 4,
                    refine: bool = True) -> CrystalAnalysis:
    """Columns, sublattices, lattice and per-cell metrics of any crystal.

    Parameters
    ----------
    image : (ny, nx) array
        Denoised image with atoms bright.
    raw : (ny, nx) array, optional
        The image the columns are refined on (default ``image``).
    max_sublattices : int
        At most this many sublattices (sites of the averaged cell).
    """
    img = np.asarray(image, float)
    fft = image_lattice(img)
    motif = unit_cell_motif(img, fft.basis_px, max_sites=max_sublattices)
    a_len = float(np.linalg.norm(fft.basis_px[0]))
    sep = max(0.53 * motif.min_site_distance_px(), 0.25 * a_len, 2.0)
    peaks = find_columns(img, separation_px=sep, threshold_fraction=0.1)
    sm = ndimage.gaussian_filter(img, max(0.5, a_len / 12))
    inten = ndimage.map_coordinates(sm, [peaks[:, 1], peaks[:, 0]], order=1)
    site, off = translation_classes(peaks, fft.basis_px, intensity=inten)
    site[site >= max_sublattices] = -1
    keep = site >= 0
    notes = []
    if np.sum(~keep):
        notes.append(f"{int(np.sum(~keep))} peaks off the lattice's sites were dropped")
    fit = refine_columns(raw if raw is not None else img, peaks[keep]) if refine else _unrefined(peaks[keep])
    sub = site[keep]
    pos = fit.positions_px
    p0 = pos[sub == 0]
    lat = index_columns(p0, fft.basis_px)
    agree = lattice_agreement(fft.basis_px, lat.basis_px)
    smap = lat.site_map()
    # express the fitted lattice on the FFT's reduced basis choice for the metrics
    cells = cell_metrics(p0, smap, lat.basis_px)
    tol = 0.3 * motif.min_site_distance_px()
    rawimg = raw if raw is not None else img
    found_by = np.zeros(len(sub), int)  # 0: peak, 1: predicted by the lattice and confirmed by the fit
    vacancies = []
    if refine:
        # Sublattice-0 sites the lattice predicts (all four neighbours found) are fitted: a column
        # with a clear peak there was missed by the peak search; else the site is empty.
        pred = lattice_vacancies(smap, p0)
        fit, sub, found_by, empty = _test_sites(rawimg, fit, sub, found_by, pred, 0, tol)
        vacancies += [(0, x, y) for x, y in empty]
        pos = fit.positions_px
        p0 = pos[sub == 0]
        lat = index_columns(p0, fft.basis_px)
        smap = lat.site_map()
        cells = cell_metrics(p0, smap, lat.basis_px)
        # Motif sites seen in the averaged cell but not among the peaks' sublattices: predicted in every cell.
        have = [np.asarray(o) for o in off]
        for f in motif.sites[1:]:
            if len(off) >= max_sublattices:
                break
            dd = [np.abs((f - o) - np.rint(f - o)).max() for o in have]
            if min(dd) < 0.1 or len(cells) == 0:
                continue
            sid = int(sub.max()) + 1
            pred = _bilinear(cells, p0, snap_site(f))
            fit, sub, found_by, empty = _test_sites(rawimg, fit, sub, found_by, pred, sid, tol, min_present=0.5)
            if np.any(sub == sid):
                off = np.vstack([off, f])
                have.append(np.asarray(f))
                notes.append(f"sublattice {sid} at {np.round(f, 3).tolist()} of the cell: seen in the averaged "
                             f"cell, fitted where the lattice predicts it ({int(np.sum(sub == sid))} columns)")
                vacancies += [(sid, x, y) for x, y in empty]
        pos = fit.positions_px
        # Empty sites of the other sublattices, cell by cell.
        for s_ in range(1, int(sub.max()) + 1 if len(sub) else 1):
            f = snap_site(off[s_])
            d = sublattice_displacements(cells, p0, pos[sub == s_], f, tolerance_px=tol)
            miss = np.setdiff1d(np.arange(len(cells)), d["cell"])
            if len(miss):
                pred = _bilinear(cells, p0, f)[miss]
                fit, sub, found_by, empty = _test_sites(rawimg, fit, sub, found_by, pred, s_, tol)
                vacancies += [(s_, x, y) for x, y in empty]
                pos = fit.positions_px
    disp = {}
    for s_ in range(1, int(sub.max()) + 1 if len(sub) else 1):
        f = snap_site(off[s_])
        disp[s_] = sublattice_displacements(cells, p0, pos[sub == s_], f, tolerance_px=tol)
    vac = np.array(vacancies, float).reshape(-1, 3) if refine else np.column_stack(
        [np.zeros(len(lattice_vacancies(smap, p0))), lattice_vacancies(smap, p0)])
    agree = lattice_agreement(fft.basis_px, lat.basis_px)
    return CrystalAnalysis(fft, motif, fit, sub, np.asarray(off), lat, agree, cells, disp, vac, notes, found_by)


def _bilinear(cells: CellMetrics, p0: np.ndarray, f) -> np.ndarray:
    u, v = float(f[0]), float(f[1])
    c = cells.corners
    return ((1 - u) * (1 - v) * p0[c[:, 0]] + u * (1 - v) * p0[c[:, 1]] + (1 - u) * v * p0[c[:, 2]]
            + u * v * p0[c[:, 3]])


_FIELDS = ("x_px", "y_px", "amplitude", "sigma_px", "background", "position_esd_px", "x_esd_px", "y_esd_px",
           "converged")


def _test_sites(raw, fit, sub, found_by, pred, sid, tol, *, min_amplitude=0.25, min_present=0.0):
    """Fit a column at each predicted site (with its fitted neighbours); keep those that are clearly there.

    Present: amplitude ≥ ``min_amplitude`` × the median of the reference sublattice (``sid`` if it
    has columns, else sublattice 0), width within 0.4–2.5× its median, and still within ``tol`` of
    the prediction. Returns the extended fit, sublattice and found_by arrays and the empty sites.
    """
    pred = np.asarray(pred, float).reshape(-1, 2)
    if len(pred) == 0:
        return fit, sub, found_by, pred
    ny, nx = raw.shape
    inside = (pred[:, 0] > 2) & (pred[:, 0] < nx - 3) & (pred[:, 1] > 2) & (pred[:, 1] < ny - 3)
    pred = pred[inside]
    if len(pred) == 0:
        return fit, sub, found_by, pred
    pos = fit.positions_px
    from scipy.spatial import cKDTree

    near = np.unique(np.concatenate([np.asarray(i, int) for i in
                                     cKDTree(pos).query_ball_point(pred, 4 * tol / 0.3)] + [np.zeros(0, int)]))
    trial = refine_columns(raw, np.vstack([pos[near], pred]))
    k = slice(len(near), None)
    ref = sub == sid if np.any(sub == sid) else sub == 0
    amp0, sig0 = np.nanmedian(fit.amplitude[ref]), np.nanmedian(fit.sigma_px[ref])
    x, y = trial.x_px[k], trial.y_px[k]
    ok = ((trial.amplitude[k] >= min_amplitude * amp0) & (trial.sigma_px[k] > 0.4 * sig0)
          & (trial.sigma_px[k] < 2.5 * sig0) & (np.hypot(x - pred[:, 0], y - pred[:, 1]) < tol))
    if np.mean(ok) < min_present:
        ok[:] = False
    if not ok.any():
        return fit, sub, found_by, pred
    sel = np.flatnonzero(ok)
    merged = ColumnFit(*[np.concatenate([getattr(fit, f), getattr(trial, f)[len(near):][sel]]) for f in _FIELDS])
    return (merged, np.concatenate([sub, np.full(len(sel), sid)]), np.concatenate([found_by, np.ones(len(sel), int)]),
            pred[~ok])


def _unrefined(xy: np.ndarray) -> ColumnFit:
    n = len(xy)
    nan = np.full(n, np.nan)
    return ColumnFit(xy[:, 0].astype(float), xy[:, 1].astype(float), nan, nan, nan, nan, nan, nan,
                     np.zeros(n, bool))
