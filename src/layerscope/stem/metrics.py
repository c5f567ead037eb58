"""Per-cell metrics of any crystal from indexed column positions.

For every cell ``(i, j)`` whose four corners ``p00, p10, p01, p11`` of
sublattice 0 were found, the local lattice vectors are the mean edge vectors
``a = ((p10 - p00) + (p11 - p01)) / 2`` and ``b = ((p01 - p00) + (p11 - p10)) / 2``.
The local deformation gradient against the reference lattice ``(a0, b0)``
(the least-squares lattice of the image) is ``F = [a b] [a0 b0]^-1``; the
strain is ``(F + F^T)/2 - I`` (image x, y axes, as :func:`layerscope.stem.gpa`)
and the rotation ``(F_yx - F_xy)/2`` (radians) — the position-based
counterpart of geometric phase analysis.

Sublattice displacement: a column of sublattice ``s`` (fractional site
``f_s`` of the cell, snapped to the nearest position of symmetry) is compared
with the bilinear interpolation of its cell's corners at ``f_s``; for a
perovskite B column at (1/2, 1/2) of the A cell this is the off-centring
used as a polarisation proxy.

Vacancy: a sublattice-0 site whose four neighbours ``(i±1, j), (i, j±1)``
were found but which itself holds no column; only a lattice that predicts a
column there can call it missing.

Intensity classes: a Gaussian mixture of the column intensities with the
number of components chosen by BIC (scikit-learn), the StatSTEM-style
assignment of column types / atom counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["CellMetrics", "cell_metrics", "sublattice_displacements", "lattice_vacancies", "intensity_classes"]


@dataclass(frozen=True)
class CellMetrics:
    """Per-cell lattice metrics (pixel units); corner indices into the sublattice-0 positions."""

    i: np.ndarray
    j: np.ndarray
    corners: np.ndarray  # (M, 4) p00, p10, p01, p11
    centre_x_px: np.ndarray
    centre_y_px: np.ndarray
    a_px: np.ndarray  # (M, 2)
    b_px: np.ndarray  # (M, 2)
    angle_deg: np.ndarray
    exx: np.ndarray
    eyy: np.ndarray
    exy: np.ndarray
    rotation_rad: np.ndarray

    def __len__(self) -> int:
        return len(self.i)


def cell_metrics(positions_px: np.ndarray, site_map: dict, reference_basis_px: np.ndarray) -> CellMetrics:
    """Local lattice vectors, angle and strain of every complete cell."""
    pos = np.asarray(positions_px, float)
    cells = [(i, j) for (i, j) in site_map if (i + 1, j) in site_map and (i, j + 1) in site_map
             and (i + 1, j + 1) in site_map]
    cells.sort()
    c = np.array([[site_map[(i, j)], site_map[(i + 1, j)], site_map[(i, j + 1)], site_map[(i + 1, j + 1)]]
                  for i, j in cells], int).reshape(-1, 4)
    p00, p10, p01, p11 = (pos[c[:, k]] for k in range(4))
    a = 0.5 * ((p10 - p00) + (p11 - p01))
    b = 0.5 * ((p01 - p00) + (p11 - p10))
    la, lb = np.hypot(*a.T), np.hypot(*b.T)
    ang = np.degrees(np.arccos(np.clip(np.sum(a * b, 1) / np.maximum(la * lb, 1e-12), -1, 1)))
    ref = np.asarray(reference_basis_px, float).T  # columns a0, b0
    F = np.stack([a, b], axis=2) @ np.linalg.inv(ref)  # (M, 2, 2): [a b] ref^-1
    exx = F[:, 0, 0] - 1
    eyy = F[:, 1, 1] - 1
    exy = 0.5 * (F[:, 0, 1] + F[:, 1, 0])
    rot = 0.5 * (F[:, 1, 0] - F[:, 0, 1])
    centre = 0.25 * (p00 + p10 + p01 + p11)
    ij = np.array(cells, int).reshape(-1, 2)
    return CellMetrics(ij[:, 0], ij[:, 1], c, centre[:, 0], centre[:, 1], a, b, ang, exx, eyy, exy, rot)


def sublattice_displacements(cells: CellMetrics, positions0_px: np.ndarray, positions_px: np.ndarray,
                             site_frac: np.ndarray, *, tolerance_px: float) -> dict:
    """Displacement of one sublattice's columns from their ideal site in each cell.

    Returns a dict of arrays (one row per cell whose site holds a column):
    ``cell`` (row in ``cells``), ``column`` (index into ``positions_px``),
    ``ideal_x_px, ideal_y_px, dx_px, dy_px``.
    """
    p0 = np.asarray(positions0_px, float)
    pos = np.asarray(positions_px, float)
    u, v = float(site_frac[0]), float(site_frac[1])
    c = cells.corners
    ideal = ((1 - u) * (1 - v) * p0[c[:, 0]] + u * (1 - v) * p0[c[:, 1]] + (1 - u) * v * p0[c[:, 2]]
             + u * v * p0[c[:, 3]])
    empty = {k: np.zeros(0) for k in ("cell", "column", "ideal_x_px", "ideal_y_px", "dx_px", "dy_px")}
    if len(pos) == 0 or len(ideal) == 0:
        return empty
    d, j = cKDTree(pos).query(ideal)
    ok = d < tolerance_px
    k = np.flatnonzero(ok)
    disp = pos[j[ok]] - ideal[ok]
    return {"cell": k, "column": j[ok], "ideal_x_px": ideal[ok, 0], "ideal_y_px": ideal[ok, 1],
            "dx_px": disp[:, 0], "dy_px": disp[:, 1]}


def lattice_vacancies(site_map: dict, positions_px: np.ndarray) -> np.ndarray:
    """Predicted (x, y) of empty sublattice-0 sites enclosed by found columns on all four sides."""
    pos = np.asarray(positions_px, float)
    out = []
    cand = set()
    for (i, j) in site_map:
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            s = (i + di, j + dj)
            if s not in site_map:
                cand.add(s)
    for (i, j) in sorted(cand):
        nb = [(i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)]
        if all(n in site_map for n in nb):
            out.append(np.mean([pos[site_map[n]] for n in nb], axis=0))
    return np.array(out, float).reshape(-1, 2)


def intensity_classes(values: np.ndarray, *, n_classes: int | None = None, max_classes: int = 6,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Gaussian-mixture classes of column intensities (StatSTEM-style), brightest class last.

    Parameters
    ----------
    values : (N,) array
    n_classes : int, optional
        Fixed number of components; default the BIC minimum over 1..max_classes.

    Returns
    -------
    label : (N,) int array (0 = dimmest class)
    means : (K,) array of class means
    k : number of classes
    """
    from sklearn.mixture import GaussianMixture

    x = np.asarray(values, float).reshape(-1, 1)
    if len(x) < 4:
        raise ValueError(f"need at least 4 column intensities to classify, got {len(x)}")
    ks = [n_classes] if n_classes else range(1, min(max_classes, len(x) // 3) + 1)
    best = None
    for k in ks:
        gm = GaussianMixture(k, random_state=seed, n_init=3).fit(x)
        bic = gm.bic(x)
        if best is None or bic < best[0]:
            best = (bic, gm, k)
    _, gm, k = best
    order = np.argsort(gm.means_.ravel())
    rank = np.empty(k, int)
    rank[order] = np.arange(k)
    return rank[gm.predict(x)], gm.means_.ravel()[order], k
