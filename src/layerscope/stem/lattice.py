"""The 2D lattice of an atomic-resolution image, from its FFT and from column positions.

Two independent measurements of the same translation lattice:

* :func:`image_lattice` — the image's own power spectrum. The strongest spots
  (:func:`layerscope.stem.fft_lattice`) may belong to a sublattice sum (the
  {110} spots of a perovskite A+B pattern are stronger than its {100}); the
  primitive reciprocal basis is the finest lattice, spanned by two of the
  strongest significant spots, that indexes the strong spots and has a spot
  of at least 0.5 % of the strongest power on 60 % of its nodes (a charge-
  order or domain superstructure, or noise, gives mostly empty nodes). Every
  spot ``h g1 + k g2`` inside the usable band is then located to a fraction
  of an FFT bin (Hann window, 4× zero-padded spectrum, parabola through
  log-power along x and y) and ``g1, g2`` are the least-squares fit to all of
  them, so higher orders set the precision.
* :func:`index_columns` — the refined positions of one sublattice. Columns
  are indexed ``(i, j)`` by walking from neighbour to neighbour along ±a, ±b
  (robust to slow distortions and to the sample's drift, unlike rounding a
  global fit), then ``p = o + i a + j b`` is fitted by least squares to all
  indexed columns.

Written here: no maintained library indexes a 2D image lattice this way
(Atomap and TEMUL take zone vectors from neighbour statistics only).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from layerscope.stem.columns import _binned_median, _check_image, fft_lattice, reduce_basis

__all__ = ["ImageLattice", "ColumnLattice", "image_lattice", "index_columns", "lattice_agreement",
           "lattice_parameters"]


@dataclass(frozen=True)
class ImageLattice:
    """Primitive lattice of the image's power spectrum (pixel units).

    Attributes
    ----------
    g_per_px : (2, 2) array
        Refined primitive reciprocal basis (rows; cycles/px).
    basis_px : (2, 2) array
        Reduced real-space basis (rows; px), shortest first.
    spots_hk : (M, 2) int array
        Indices of the spots used in the fit.
    spots_g : (M, 2) array
        Their measured positions (cycles/px).
    rms_residual_bins : float
        RMS distance between measured and fitted spots, in FFT bins of the
        unpadded image.
    """

    g_per_px: np.ndarray
    basis_px: np.ndarray
    spots_hk: np.ndarray
    spots_g: np.ndarray
    rms_residual_bins: float


def lattice_parameters(basis_px: np.ndarray) -> tuple[float, float, float]:
    """``|a|, |b|`` and the angle between them (degrees) of a basis (rows)."""
    a, b = np.asarray(basis_px, float)
    la, lb = np.linalg.norm(a), np.linalg.norm(b)
    return float(la), float(lb), float(np.degrees(np.arccos(np.clip(a @ b / (la * lb), -1, 1))))


def _power(img: np.ndarray, pad: int):
    ny, nx = img.shape
    win = np.hanning(ny)[:, None] * np.hanning(nx)[None, :]
    f = np.abs(np.fft.fft2((img - img.mean()) * win, s=(pad * ny, pad * nx))) ** 2
    fy = np.fft.fftfreq(pad * ny)
    fx = np.fft.fftfreq(pad * nx)
    return f, fx, fy


def _locate(logf: np.ndarray, iy: int, ix: int) -> tuple[float, float]:
    """Sub-bin maximum by a parabola through log-power along y and x (periodic indices)."""
    ny, nx = logf.shape

    def vertex(m, c, p):
        den = m - 2 * c + p
        return 0.0 if den >= 0 else float(np.clip(0.5 * (m - p) / den, -0.5, 0.5))

    dy = vertex(logf[(iy - 1) % ny, ix], logf[iy, ix], logf[(iy + 1) % ny, ix])
    dx = vertex(logf[iy, (ix - 1) % nx], logf[iy, ix], logf[iy, (ix + 1) % nx])
    return iy + dy, ix + dx


def image_lattice(image: np.ndarray, *, min_period_px: float = 3.0, significance: float = 12.0,
                  pad: int = 4, min_occupancy: float = 0.6,
                  node_fraction: float = 0.005) -> ImageLattice:
    """Primitive 2D lattice of an image from its power spectrum, refined on all spots.

    Parameters
    ----------
    image : (ny, nx) array
    min_period_px : float
        Spots at shorter periods are not used.
    significance : float
        A spot counts when its power is this many times the median power at
        its |g| (noise power is exponentially distributed: 12× the median is
        exceeded by chance with probability 2^-12 per bin).
    pad : int
        Zero-padding factor of the FFT.

    Raises
    ------
    ValueError
        No lattice in the image (from :func:`fft_lattice`).
    """
    img = _check_image(image)
    strong = fft_lattice(img, min_period_px=min_period_px)
    ny, nx = img.shape
    f, fx, fy = _power(img, pad)
    GX, GY = np.meshgrid(fx, fy)
    G = np.hypot(GX, GY)
    gmax = 1.0 / min_period_px
    gmin = 3.0 / min(nx, ny)
    rbin = np.minimum((G / G.max() * 300).astype(int), 299)
    med = _binned_median(f, rbin, 300)[rbin]
    norm = f / np.maximum(med, 1e-300)
    logf = np.log(np.maximum(f, 1e-300))
    size = 2 * pad + 1
    is_max = (ndimage.maximum_filter(norm, size=size, mode="wrap") == norm) & (norm > significance)
    is_max &= (G > gmin) & (G < gmax)
    cand_idx = np.argwhere(is_max)
    cand = np.stack([GX[is_max], GY[is_max]], axis=1) if len(cand_idx) else np.zeros((0, 2))
    # Primitive basis: the finest reciprocal lattice, built from two of the
    # strongest significant spots, that (i) indexes the strong basis and
    # (ii) has a significant spot on at least ``min_occupancy`` of its nodes
    # out to the strong spots' radius (a superstructure or noise spot gives
    # a finer lattice with mostly empty nodes).
    gstrong = strong.g_per_px
    # a node counts as occupied by a spot within ``node_fraction`` of the
    # strongest spot's power: superstructure and noise spots are weaker
    sig = ndimage.binary_dilation(norm > max(significance, node_fraction * strong.contrast), iterations=pad)
    pny, pnx = norm.shape
    rmax = 1.5 * max(np.hypot(*gstrong[0]), np.hypot(*gstrong[1]))

    def occupancy(gb):
        h = int(np.ceil(rmax / min(np.hypot(*gb[0]), np.hypot(*gb[1])))) + 1
        hh, kk = np.meshgrid(np.arange(-h, h + 1), np.arange(-h, h + 1))
        nodes = hh.ravel()[:, None] * gb[0] + kk.ravel()[:, None] * gb[1]
        r = np.hypot(*nodes.T)
        nodes = nodes[(r > gmin) & (r < min(rmax, gmax))]
        if len(nodes) == 0:
            return 0.0
        ix = np.rint(nodes[:, 0] * pnx).astype(int) % pnx
        iy = np.rint(nodes[:, 1] * pny).astype(int) % pny
        return float(np.mean(sig[iy, ix]))

    basis, best = gstrong, abs(np.linalg.det(gstrong))
    top = np.argsort(-norm[is_max])[:30] if len(cand) else []
    for a in range(len(top)):
        for b in range(a + 1, len(top)):
            g1, g2 = cand[top[a]], cand[top[b]]
            c = abs(g1[0] * g2[1] - g1[1] * g2[0]) / (np.linalg.norm(g1) * np.linalg.norm(g2))
            if c < 0.2:
                continue
            trial = _reduce_reciprocal(np.array([g1, g2]))
            det = abs(np.linalg.det(trial))
            if det >= 0.98 * best:
                continue
            hk = gstrong @ np.linalg.inv(trial)
            if np.all(np.abs(hk - np.rint(hk)) < 0.12) and occupancy(trial) >= min_occupancy:
                basis, best = trial, det
    g = _reduce_reciprocal(basis)
    hk_all, g_obs = _measure_spots(g, norm, logf, fx, fy, gmin, gmax, significance)
    for _ in range(3):
        if len(hk_all) < 3:
            break
        g = np.linalg.lstsq(hk_all.astype(float), g_obs, rcond=None)[0]
        hk_all, g_obs = _measure_spots(g, norm, logf, fx, fy, gmin, gmax, significance)
    if len(hk_all) >= 3:
        g = np.linalg.lstsq(hk_all.astype(float), g_obs, rcond=None)[0]
        res = g_obs - hk_all @ g
        rms = float(np.sqrt(np.mean(np.sum((res * [nx, ny]) ** 2, axis=1))))
    else:
        rms = float("nan")
    real = reduce_basis(np.linalg.inv(g).T)
    return ImageLattice(g, real, hk_all, g_obs, rms)


def _reduce_reciprocal(g: np.ndarray) -> np.ndarray:
    return reduce_basis(g)


def _measure_spots(g, norm, logf, fx, fy, gmin, gmax, significance):
    """Sub-bin positions of the significant spots near ``h g1 + k g2``."""
    pny, pnx = norm.shape
    hmax = int(np.ceil(gmax / min(np.linalg.norm(g[0]), np.linalg.norm(g[1])))) + 1
    hk, obs = [], []
    for h in range(-hmax, hmax + 1):
        for k in range(-hmax, hmax + 1):
            if (h, k) <= (0, 0):  # one of each ±g pair
                continue
            gp = h * g[0] + k * g[1]
            r = np.hypot(*gp)
            if r < gmin or r > gmax:
                continue
            ix = int(round(gp[0] * pnx)) % pnx
            iy = int(round(gp[1] * pny)) % pny
            # the local maximum within ±2 padded bins
            ys = (iy + np.arange(-2, 3)) % pny
            xs = (ix + np.arange(-2, 3)) % pnx
            patch = norm[np.ix_(ys, xs)]
            a, b = np.unravel_index(np.argmax(patch), patch.shape)
            if patch[a, b] < significance or a in (0, 4) or b in (0, 4):
                continue
            py, px = _locate(logf, ys[a], xs[b])
            gy = (py if py < pny / 2 else py - pny) / pny
            gx = (px if px < pnx / 2 else px - pnx) / pnx
            hk.append((h, k))
            obs.append((gx, gy))
    return np.array(hk, int).reshape(-1, 2), np.array(obs, float).reshape(-1, 2)


@dataclass(frozen=True)
class ColumnLattice:
    """Columns of one sublattice indexed on a 2D lattice.

    Attributes
    ----------
    basis_px : (2, 2) array
        Least-squares lattice vectors a, b (rows, px) over all indexed columns.
    origin_px : (2,) array
    ij : (N, 2) int array
        Lattice indices of each column; ``-2**31`` where not indexed.
    indexed : (N,) bool array
        Column reached by the neighbour walk (largest connected grain).
    residual_px : (N,) array
        Distance from the global lattice site (NaN when not indexed): the
        long-range distortion map.
    duplicate : (N,) bool array
        Another column was already indexed at the same site (an extra
        column or a second sublattice in the set).
    """

    basis_px: np.ndarray
    origin_px: np.ndarray
    ij: np.ndarray
    indexed: np.ndarray
    residual_px: np.ndarray
    duplicate: np.ndarray

    def site_map(self) -> dict[tuple[int, int], int]:
        return {(int(i), int(j)): n for n, (i, j) in enumerate(self.ij) if self.indexed[n] and not self.duplicate[n]}


_NOIDX = -(2**31)


def index_columns(positions_px: np.ndarray, basis_px: np.ndarray, *, tolerance: float = 0.3) -> ColumnLattice:
    """Index columns on a lattice by walking along ±a, ±b from the most central column.

    Parameters
    ----------
    positions_px : (N, 2) array
    basis_px : (2, 2) array
        Approximate lattice vectors a, b (rows), e.g. ``image_lattice(...).basis_px``.
    tolerance : float
        A neighbour is accepted within ``tolerance × min(|a|, |b|)`` of where
        the step puts it.
    """
    pos = np.asarray(positions_px, float)
    B = np.asarray(basis_px, float)
    n = len(pos)
    if n < 4:
        raise ValueError(f"need at least 4 columns to index a lattice, got {n}")
    tol = tolerance * min(np.linalg.norm(B[0]), np.linalg.norm(B[1]))
    tree = cKDTree(pos)
    steps = [(1, 0), (-1, 0), (0, 1), (0, -1)]
    nbr = np.full((n, 4), -1)
    for s, (di, dj) in enumerate(steps):
        d, j = tree.query(pos + di * B[0] + dj * B[1])
        nbr[:, s] = np.where(d < tol, j, -1)
    # Largest connected component first, then seeded at its most central column.
    comp = np.full(n, -1)
    sizes = []
    for start in range(n):
        if comp[start] >= 0:
            continue
        c = len(sizes)
        comp[start] = c
        q, size = deque([start]), 0
        while q:
            u = q.popleft()
            size += 1
            for v in nbr[u]:
                if v >= 0 and comp[v] < 0:
                    comp[v] = c
                    q.append(v)
        sizes.append(size)
    main = int(np.argmax(sizes))
    members = np.flatnonzero(comp == main)
    centre = pos[members].mean(axis=0)
    seed = members[np.argmin(np.hypot(*(pos[members] - centre).T))]
    ij = np.full((n, 2), _NOIDX)
    ij[seed] = (0, 0)
    seen = {(0, 0): seed}
    dup = np.zeros(n, bool)
    q = deque([seed])
    visited = np.zeros(n, bool)
    visited[seed] = True
    while q:
        u = q.popleft()
        for s, (di, dj) in enumerate(steps):
            v = nbr[u, s]
            if v < 0 or visited[v]:
                continue
            visited[v] = True
            site = (int(ij[u, 0] + di), int(ij[u, 1] + dj))
            ij[v] = site
            if site in seen:
                dup[v] = True
            else:
                seen[site] = v
            q.append(v)
    ok = visited & ~dup
    A = np.column_stack([np.ones(ok.sum()), ij[ok].astype(float)])
    coef = np.linalg.lstsq(A, pos[ok], rcond=None)[0]
    origin, basis = coef[0], coef[1:]
    resid = np.full(n, np.nan)
    pred = origin + ij[visited].astype(float) @ basis
    resid[visited] = np.hypot(*(pos[visited] - pred).T)
    return ColumnLattice(basis, origin, ij, visited, resid, dup)


def lattice_agreement(basis_a: np.ndarray, basis_b: np.ndarray) -> dict:
    """Relative differences of two lattices given as bases of the same lattice (any choice).

    Both are Lagrange–Gauss reduced and compared as ``|a|``, ``|b|`` (relative)
    and the angle (degrees); ``area`` is the relative difference of the cell areas.
    """
    ra, rb = reduce_basis(np.asarray(basis_a, float)), reduce_basis(np.asarray(basis_b, float))
    la = lattice_parameters(ra)
    lb = lattice_parameters(rb)
    # the reduced angle is ambiguous (γ or 180° - γ)
    ga, gb = min(la[2], 180 - la[2]), min(lb[2], 180 - lb[2])
    area_a, area_b = abs(np.linalg.det(ra)), abs(np.linalg.det(rb))
    return {"a_rel": float(lb[0] / la[0] - 1), "b_rel": float(lb[1] / la[1] - 1), "angle_deg": float(gb - ga),
            "area_rel": float(area_b / area_a - 1)}
