"""Finding atomic columns: lattice from the image's FFT, peaks, sublattices.

The minimum separation between columns is not a user guess: the two
strongest non-collinear spots of the image's power spectrum give a reciprocal
basis ``g1, g2``; the real-space basis is its inverse, Lagrange–Gauss reduced,
and the shortest lattice vector is the column spacing of the dominant
(brightest) sublattice. Peaks are then taken with
:func:`skimage.feature.peak_local_max` at a fraction of that spacing.

A second sublattice "between" the first is placed, as Atomap does for
perovskites, at the midpoints of neighbouring first-sublattice columns
along the lattice vector whose midpoints are brightest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max

__all__ = [
    "FFTLattice",
    "fft_lattice",
    "find_columns",
    "sublattice_between",
    "reduce_basis",
]


@dataclass(frozen=True)
class FFTLattice:
    """Dominant lattice seen in the power spectrum (pixel units).

    Attributes
    ----------
    g_per_px : (2, 2) array
        Reciprocal basis vectors (rows, cycles / px, (gx, gy)).
    basis_px : (2, 2) array
        Reduced real-space basis (rows, px); ``basis_px[0]`` is the shortest.
    spacing_px : float
        Length of the shortest lattice vector (column spacing).
    contrast : float
        Power of the strongest spot over the median power at the same |g|
        (about 1 for noise, ≫ 10 for a crystal lattice).
    """

    g_per_px: np.ndarray
    basis_px: np.ndarray
    spacing_px: float
    contrast: float


def reduce_basis(b: np.ndarray) -> np.ndarray:
    """Lagrange–Gauss reduction of a 2D lattice basis (rows); shortest first."""
    u, v = np.array(b[0], float), np.array(b[1], float)
    if u @ u > v @ v:
        u, v = v, u
    for _ in range(100):
        mu = np.rint((u @ v) / (u @ u))
        v = v - mu * u
        if v @ v >= u @ u:
            break
        u, v = v, u
    return np.array([u, v])


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"expected a 2D image, got an array of shape {img.shape}")
    if img.size == 0 or min(img.shape) < 16:
        raise ValueError(f"image is empty or too small ({img.shape}); need at least 16×16 pixels")
    if not np.all(np.isfinite(img)):
        bad = np.count_nonzero(~np.isfinite(img))
        raise ValueError(f"image contains {bad} NaN/inf pixels; mask or fill them first")
    if np.ptp(img) == 0:
        raise ValueError("image is constant (no contrast): nothing to analyse")
    return img


def _binned_median(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Median of ``values`` per label ``0..n-1`` (as ``ndimage.median``, one sort
    of the labels instead of a selection per label; 0 for an empty label)."""
    lab = labels.ravel()
    order = np.argsort(lab, kind="stable")
    v = values.ravel()[order]
    bounds = np.searchsorted(lab[order], np.arange(n + 1))
    return np.array([np.median(v[a:b]) if b > a else 0.0 for a, b in zip(bounds[:-1], bounds[1:])])


def _peaks(image: np.ndarray, min_distance: int, border: int) -> np.ndarray:
    """Local maxima as :func:`skimage.feature.peak_local_max` finds them.

    Same definition (maximum of its ``(2·min_distance+1)²`` neighbourhood,
    above the image minimum, at least ``border`` pixels from the edge), and
    the same peaks on the simulated images (bench/bench_haadf.py); equal
    maxima closer than ``min_distance`` (Chebyshev) are thinned greedily,
    brightest and then first in raster order kept, with one KD-tree pair
    query instead of skimage's batched per-peak loop (seconds for the
    ~20 000 columns of a 2048² frame; skimage may keep a few more of such
    ties on quantised images).
    """
    size = 2 * min_distance + 1
    mx = ndimage.maximum_filter(image, size=size, mode="nearest")
    mask = (image == mx) & (image > image.min())
    if border > 0:
        mask[:border] = mask[-border:] = False
        mask[:, :border] = mask[:, -border:] = False
    pk = np.argwhere(mask)
    if len(pk) == 0:
        return pk
    order = np.argsort(-image[pk[:, 0], pk[:, 1]], kind="stable")
    pk = pk[order]
    pairs = cKDTree(pk).query_pairs(min_distance, p=np.inf, output_type="ndarray")
    if len(pairs):
        drop = np.zeros(len(pk), bool)
        for i, j in sorted(map(tuple, np.sort(pairs, axis=1))):
            if not drop[i]:
                drop[j] = True
        pk = pk[~drop]
    return pk


def fft_lattice(image: np.ndarray, *, min_contrast: float = 60.0, min_period_px: float = 3.0) -> FFTLattice:
    """Dominant 2D lattice of an image from its power spectrum.

    Parameters
    ----------
    image : (ny, nx) array
    min_contrast : float
        Raise ``ValueError`` if the strongest spot is not this many times the
        median power at its radius (no lattice in the image).
    min_period_px : float
        Spots at periods shorter than this (noise, aliasing) are ignored.

    Returns
    -------
    FFTLattice
    """
    img = _check_image(image)
    ny, nx = img.shape
    win = np.hanning(ny)[:, None] * np.hanning(nx)[None, :]
    f = np.fft.fftshift(np.abs(np.fft.fft2((img - img.mean()) * win)) ** 2)
    fy = np.fft.fftshift(np.fft.fftfreq(ny))
    fx = np.fft.fftshift(np.fft.fftfreq(nx))
    GX, GY = np.meshgrid(fx, fy)
    G = np.hypot(GX, GY)
    # Lowest frequencies carry the image envelope, not the lattice.
    gmin = 3.0 / min(nx, ny)
    usable = (G > gmin) & (G < 1.0 / min_period_px)
    # Radial median to normalise the spectrum (removes the 1/g falloff).
    rbin = np.minimum((G / G.max() * 200).astype(int), 199)
    med = _binned_median(f, rbin, 200)[rbin]
    norm = np.where(usable, f / np.maximum(med, 1e-300), 0.0)
    spots = peak_local_max(norm, min_distance=2, num_peaks=40, exclude_border=False)
    if len(spots) == 0:
        raise ValueError("no lattice found: the power spectrum has no spots")
    vals = norm[spots[:, 0], spots[:, 1]]
    contrast = float(vals.max())
    if contrast < min_contrast:
        raise ValueError(
            f"no lattice found: strongest FFT spot is only {contrast:.1f}× the background "
            f"power (need ≥ {min_contrast}); is this an atomic-resolution image?"
        )
    g = np.stack([GX[spots[:, 0], spots[:, 1]], GY[spots[:, 0], spots[:, 1]]], axis=1)
    strong = vals >= min(0.01 * contrast, min_contrast)
    g, vals = g[strong], vals[strong]
    # Keep one of each ±g pair; take the strongest spot, then the strongest
    # non-collinear one.
    order = np.argsort(-vals)
    g1 = g[order[0]]
    g2 = None
    for i in order[1:]:
        cross = abs(g1[0] * g[i][1] - g1[1] * g[i][0]) / (np.linalg.norm(g1) * np.linalg.norm(g[i]))
        if cross > 0.2:
            g2 = g[i]
            break
    if g2 is None:
        raise ValueError("no 2D lattice found: only one set of lattice fringes in the FFT")
    gmat = np.array([g1, g2])
    basis = reduce_basis(np.linalg.inv(gmat).T)
    return FFTLattice(gmat, basis, float(np.linalg.norm(basis[0])), contrast)


def find_columns(
    image: np.ndarray,
    *,
    separation_px: float | None = None,
    separation_fraction: float = 0.75,
    threshold_fraction: float = 0.3,
    smooth_sigma_px: float | None = None,
    exclude_border_px: int | None = None,
) -> np.ndarray:
    """Peak positions (x, y) of the brightest sublattice.

    Parameters
    ----------
    image : (ny, nx) array
    separation_px : float, optional
        Minimum separation between columns; default
        ``separation_fraction`` × the FFT lattice spacing (:func:`fft_lattice`).
    threshold_fraction : float
        A peak is kept if its height above the image's 5th percentile is at
        least this fraction of the median height of all candidate peaks.
    smooth_sigma_px : float, optional
        Gaussian smoothing before peak finding; default separation / 8.
    exclude_border_px : int, optional
        Peaks closer than this to the edge are dropped; default separation / 2.

    Returns
    -------
    (N, 2) float array of (x, y) pixel positions (integer-valued).
    """
    img = _check_image(image)
    if separation_px is None:
        separation_px = separation_fraction * fft_lattice(img).spacing_px
    sep = max(int(round(separation_px)), 1)
    sm = ndimage.gaussian_filter(img, smooth_sigma_px if smooth_sigma_px is not None else max(sep / 8, 0.5))
    border = int(exclude_border_px) if exclude_border_px is not None else max(sep // 2, 1)
    pk = _peaks(sm, sep, border)
    if len(pk) == 0:
        raise ValueError("no peaks found in the image")
    floor = np.percentile(sm, 5)
    height = sm[pk[:, 0], pk[:, 1]] - floor
    keep = height >= threshold_fraction * np.median(height)
    pk = pk[keep]
    return np.stack([pk[:, 1], pk[:, 0]], axis=1).astype(np.float64)


def sublattice_between(
    image: np.ndarray,
    positions_px: np.ndarray,
    *,
    vector_px: np.ndarray | None = None,
    tolerance: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Second sublattice at midpoints of neighbouring first-sublattice columns.

    Parameters
    ----------
    image : (ny, nx) array
    positions_px : (N, 2) array
        Refined positions of the first (brightest) sublattice.
    vector_px : (2,) array, optional
        Lattice vector joining the pairs. Default: among the two shortest
        lattice vectors and their sum and difference, the one whose midpoints
        are brightest in the (smoothed) image.
    tolerance : float
        A pair is used when its separation vector is within this fraction of
        |vector| of ±vector.

    Returns
    -------
    midpoints : (M, 2) array
    vector : (2,) array
        The vector used.
    """
    img = _check_image(image)
    pos = np.asarray(positions_px, float)
    if len(pos) < 3:
        raise ValueError("need at least 3 columns to build a second sublattice")
    tree = cKDTree(pos)
    _, idx = tree.query(pos, k=min(9, len(pos)))
    vecs = (pos[idx[:, 1:]] - pos[:, None, :]).reshape(-1, 2)
    # Fold ± and cluster: the modal neighbour vectors are the lattice vectors.
    vecs = np.where((vecs[:, 0] < 0) | ((vecs[:, 0] == 0) & (vecs[:, 1] < 0)), -1, 1)[:, None] * vecs
    vecs = vecs[np.argsort(np.hypot(*vecs.T))]
    basis = []
    for v in vecs:
        if not basis:
            basis.append(v)
            continue
        if len(basis) == 1:
            c = abs(basis[0][0] * v[1] - basis[0][1] * v[0]) / (np.linalg.norm(basis[0]) * np.linalg.norm(v))
            if c > 0.3:
                basis.append(v)
                break
    if len(basis) < 2:
        raise ValueError("columns do not form a 2D lattice")
    b = reduce_basis(np.array(basis))
    sm = ndimage.gaussian_filter(img, max(np.linalg.norm(b[0]) / 10, 0.5))

    def midpoints(vec):
        q = pos + vec
        d, j = tree.query(q)
        ok = d < tolerance * np.linalg.norm(vec)
        return 0.5 * (pos[ok] + pos[j[ok]])

    if vector_px is None:
        cands = [b[0], b[1], b[0] + b[1], b[0] - b[1]]
        scores = []
        for vec in cands:
            m = midpoints(vec)
            if len(m) == 0:
                scores.append(-np.inf)
                continue
            scores.append(np.median(ndimage.map_coordinates(sm, [m[:, 1], m[:, 0]], order=1)))
        vector = np.asarray(cands[int(np.argmax(scores))])
    else:
        vector = np.asarray(vector_px, float)
    mids = midpoints(vector)
    return mids, vector
