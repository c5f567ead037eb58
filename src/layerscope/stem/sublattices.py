"""Sublattices of any crystal: the averaged unit cell (motif) and column assignment.

The image is folded into the primitive cell of its lattice (every pixel's
fractional coordinate ``f = (r - o) B^-1`` taken modulo 1, intensities
averaged per bin), which averages thousands of cells into one motif. Each
local maximum of the motif at least ``min_height`` of the brightest one is a
site; sites are ordered by brightness (site 0 = sublattice 0).

Found columns are grouped into sublattices by lattice translations
(:func:`translation_classes`): columns one lattice step apart are the same
site, so a column keeps its crystallographic identity where another
sublattice is locally the brighter one (B over A in the SrRuO3 layers of a
PbTiO3 film), and the grouping follows a slowly distorted lattice.

Written here: Atomap assigns sublattices by peak separation and brightness
only, which breaks where the brightest site changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["Motif", "unit_cell_motif", "translation_classes", "snap_site"]


@dataclass(frozen=True)
class Motif:
    """Averaged unit cell.

    Attributes
    ----------
    image : (n, n) array
        Mean intensity at fractional coordinates ``(f_b, f_a)`` (rows along b).
    sites : (K, 2) array
        Fractional coordinates ``(f_a, f_b)`` of the sites, brightest first,
        site 0 at (0, 0) by choice of origin.
    heights : (K,) array
        Motif intensity at each site above the motif minimum.
    origin_px : (2,) array
        Image position of fractional (0, 0).
    basis_px : (2, 2) array
    """

    image: np.ndarray
    sites: np.ndarray
    heights: np.ndarray
    origin_px: np.ndarray
    basis_px: np.ndarray

    def min_site_distance_px(self) -> float:
        """Shortest distance between any two sites, periodic images included."""
        B = self.basis_px
        best = min(np.linalg.norm(B[0]), np.linalg.norm(B[1]), np.linalg.norm(B[0] + B[1]),
                   np.linalg.norm(B[0] - B[1]))
        for i in range(len(self.sites)):
            for j in range(i + 1, len(self.sites)):
                d = self.sites[i] - self.sites[j]
                d -= np.rint(d)
                for s in ((0, 0), (1, 0), (0, 1), (1, 1), (1, -1), (-1, 0), (0, -1), (-1, -1), (-1, 1)):
                    best = min(best, float(np.linalg.norm((d + s) @ B)))
        return best


def _fold(image, basis, origin, n):
    ny, nx = image.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    r = np.stack([xx.ravel() - origin[0], yy.ravel() - origin[1]], axis=1)
    f = (r @ np.linalg.inv(basis)) % 1.0
    ia = np.minimum((f[:, 0] * n).astype(int), n - 1)
    ib = np.minimum((f[:, 1] * n).astype(int), n - 1)
    lab = ib * n + ia
    s = np.bincount(lab, weights=image.ravel(), minlength=n * n)
    c = np.bincount(lab, minlength=n * n)
    m = (s / np.maximum(c, 1)).reshape(n, n)
    m[c.reshape(n, n) == 0] = np.nan
    if np.isnan(m).any():
        m = np.where(np.isnan(m), np.nanmean(m), m)
    return ndimage.gaussian_filter(m, 0.8, mode="wrap")


def unit_cell_motif(image: np.ndarray, basis_px: np.ndarray, *, min_height: float = 0.12,
                    max_sites: int = 4, bins: int | None = None) -> Motif:
    """Fold an image into its primitive cell and find the column sites.

    Parameters
    ----------
    image : (ny, nx) array
        Image with atoms bright (invert ABF/BF first).
    basis_px : (2, 2) array
        Primitive lattice vectors a, b (rows, px).
    min_height : float
        A site's height above the motif minimum must be at least this
        fraction of the brightest site's.
    max_sites : int
        At most this many sites (the brightest).
    bins : int, optional
        Motif sampling per cell edge; default ``max(|a|, |b|)`` px, 16..64.
    """
    img = np.asarray(image, float)
    B = np.asarray(basis_px, float)
    n = bins or int(np.clip(round(max(np.linalg.norm(B[0]), np.linalg.norm(B[1]))), 16, 64))
    m = _fold(img, B, np.zeros(2), n)
    # origin at the brightest site
    ib, ia = np.unravel_index(np.argmax(m), m.shape)
    origin = (np.array([ia + 0.5, ib + 0.5]) / n) @ B
    m = _fold(img, B, origin, n)
    size = max(3, int(round(0.15 * n)) | 1)
    peaks = np.argwhere((ndimage.maximum_filter(m, size=size, mode="wrap") == m))
    low = m.min()
    h = m[peaks[:, 0], peaks[:, 1]] - low
    order = np.argsort(-h)
    peaks, h = peaks[order], h[order]
    keep = h >= min_height * h[0]
    peaks, h = peaks[keep][:max_sites], h[keep][:max_sites]
    sites = np.stack([(peaks[:, 1] + 0.5) / n, (peaks[:, 0] + 0.5) / n], axis=1)
    sites = sites - sites[0]
    sites -= np.floor(sites + 1e-9)
    # refine each site by a parabola through the periodic motif
    ref = []
    for (pb, pa), s in zip(peaks, sites):
        def vertex(mm, c, p):
            den = mm - 2 * c + p
            return 0.0 if den >= 0 else float(np.clip(0.5 * (mm - p) / den, -0.5, 0.5))
        da = vertex(m[pb, (pa - 1) % n], m[pb, pa], m[pb, (pa + 1) % n])
        db = vertex(m[(pb - 1) % n, pa], m[pb, pa], m[(pb + 1) % n, pa])
        ref.append(((pa + 0.5 + da) / n, (pb + 0.5 + db) / n))
    ref = np.array(ref)
    shift = ref[0].copy()
    origin = origin + shift @ B
    ref = (ref - shift) % 1.0
    ref[np.abs(ref - 1) < 1e-9] = 0.0
    return Motif(m, ref, h, origin, B)


def snap_site(f: np.ndarray, tol: float = 0.06) -> np.ndarray:
    """Nearest position of symmetry (multiples of 1/2, then of 1/3) within ``tol``; else ``f``.

    The ideal (centrosymmetric) position from which a sublattice's
    displacement is measured: B at (1/2, 1/2) of a perovskite A cell.
    """
    out = np.array(f, float)
    for k in range(2):
        for den in (2, 3):
            v = np.rint(out[k] * den) / den
            if abs(out[k] - v) <= tol:
                out[k] = v % 1.0
                break
    return out


def translation_classes(positions_px: np.ndarray, basis_px: np.ndarray, *, tolerance: float = 0.25,
                        intensity: np.ndarray | None = None, min_fraction: float = 0.1,
                        offset_tolerance: float = 0.12) -> tuple[np.ndarray, np.ndarray]:
    """Group columns into sublattices by lattice translations, independent of brightness.

    Columns joined by a step ±a or ±b (within ``tolerance × min(|a|, |b|)``)
    are the same site in neighbouring cells; each connected set is a grain
    of one sublattice. Grains with at least ``min_fraction`` of the largest
    one's columns are grouped into sites by their fractional offset (mod 1)
    from the brightest large grain, measured locally (median over nearest
    pairs), so a slowly distorted lattice does not matter.

    Returns
    -------
    site : (N,) int array
        Sublattice of each column, 0 the brightest site (mean ``intensity``);
        -1 for columns in small grains (noise, isolated peaks).
    site_offset : (K, 2) array
        Fractional offset of each site from site 0.
    """
    pos = np.asarray(positions_px, float)
    B = np.asarray(basis_px, float)
    n = len(pos)
    inten = np.ones(n) if intensity is None else np.asarray(intensity, float)
    tol = tolerance * min(np.linalg.norm(B[0]), np.linalg.norm(B[1]))
    tree = cKDTree(pos)
    rows, cols = [], []
    for v in (B[0], B[1]):
        d, j = tree.query(pos + v)
        ok = d < tol
        rows.append(np.flatnonzero(ok))
        cols.append(j[ok])
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    r, c = np.concatenate(rows), np.concatenate(cols)
    g = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    ncomp, lab = connected_components(g, directed=False)
    size = np.bincount(lab, minlength=ncomp)
    big = np.flatnonzero(size >= max(3, min_fraction * size.max()))
    mean_i = np.array([inten[lab == k].mean() for k in big])
    inv = np.linalg.inv(B)
    # reference: the brightest among the grains at least half the largest
    large = size[big] >= 0.5 * size.max()
    ref = big[np.argmax(np.where(large, mean_i, -np.inf))]
    ref_tree = cKDTree(pos[lab == ref])
    ref_pos = pos[lab == ref]
    offsets = {}
    for k in big:
        mem = pos[lab == k]
        _, j = ref_tree.query(mem)
        f = (mem - ref_pos[j]) @ inv
        f -= np.rint(f)
        # circular median via the mean angle, robust enough for a tight cluster
        ang = 2 * np.pi * f
        offsets[k] = (np.arctan2(np.sin(ang).mean(0), np.cos(ang).mean(0)) / (2 * np.pi)) % 1.0
    sites: list[np.ndarray] = []
    site_of = {}
    for k in big:
        o = offsets[k]
        for s, so in enumerate(sites):
            d = o - so
            d -= np.rint(d)
            if np.all(np.abs(d) < offset_tolerance):
                site_of[k] = s
                break
        else:
            site_of[k] = len(sites)
            sites.append(o)
    site = np.full(n, -1)
    for k, s in site_of.items():
        site[lab == k] = s
    # order sites by mean intensity, brightest = 0
    means = np.array([inten[site == s].mean() for s in range(len(sites))])
    order = np.argsort(-means)
    remap = np.empty(len(sites), int)
    remap[order] = np.arange(len(sites))
    site = np.where(site >= 0, remap[np.maximum(site, 0)], -1)
    off = np.array(sites)[order]
    off = (off - off[0]) % 1.0
    off[np.abs(off - 1) < 1e-6] = 0.0
    return site, off
