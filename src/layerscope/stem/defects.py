"""Pores, trenches and particles: defect statistics (Fig. 4e,f; Supp. Figs. 20, 22; table S4).

Two scales:

* **Atomic resolution** — :func:`find_pores`. A pore-like defect is a place
  where the TM lattice predicts columns but the image has none (Fig. 4f:
  "reduced atomic connectivity"). For every found column, the next site
  along its layer is ``p + t1``; when the next column found along the layer
  lies ``g ≥ gap_factor × |t1|`` away, the ``round(g/|t1|) - 1`` sites in
  between are missing. Missing sites are grouped into pores by single
  linkage (within 1.5 interlayer spacings), so a trench spanning several
  layers is one defect. The small misfit gaps where two twin variants meet
  inside one layer (< 1.7 |t1|) are frustration, not pores.
* **Low magnification** — :func:`segment_particles` and
  :func:`find_lowmag_defects`. Particles are bright on vacuum (HAADF signal ∝
  projected thickness): Otsu threshold of the smoothed image, holes filled,
  touching particles split by a watershed on the distance transform where a
  region is clearly non-convex. Trenches are dark, narrow features inside a
  particle: the image is divided by its grey-level closing (which fills
  features narrower than the structuring element, leaving the thickness
  profile) and regions whose relative deficit exceeds a threshold are
  defects. :func:`defects_per_particle` counts them as in table S4.

Written with scipy.ndimage / scikit-image building blocks; the lattice-gap
rule for missing columns is our own because no library does it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial import cKDTree

from layerscope.stem.cells import LayerFrame, layer_frame

__all__ = [
    "PoreTable", "find_pores", "segment_particles", "LowMagDefects", "find_lowmag_defects",
    "defects_per_particle",
]


@dataclass(frozen=True)
class PoreTable:
    """Pore-like defects found in an atomic-resolution image (pixel units).

    ``missing_px`` are the lattice sites with no column; ``site_pore`` gives the
    pore (0-based) of each. Per pore: centroid, number of missing columns and
    area (missing columns × projected area per column ``|t1| × h``).
    """

    missing_px: np.ndarray
    site_pore: np.ndarray
    centre_x_px: np.ndarray
    centre_y_px: np.ndarray
    n_missing: np.ndarray
    area_px2: np.ndarray

    def __len__(self) -> int:
        return len(self.n_missing)


def find_pores(
    positions_px: np.ndarray,
    *,
    frame: LayerFrame | None = None,
    image_shape: tuple[int, int] | None = None,
    gap_factor: float = 1.7,
    max_gap_sites: int = 12,
    min_missing: int = 2,
    border_px: float = 4.0,
) -> PoreTable:
    """Pore-like defects as clusters of missing TM columns.

    Parameters
    ----------
    positions_px : (N, 2) array
        TM column positions (x, y).
    frame : LayerFrame, optional
        Layer direction and spacings; default :func:`layer_frame`.
    image_shape : (ny, nx), optional
        Missing sites closer than ``border_px`` to the image edge are ignored.
    gap_factor : float
        A gap along a layer counts when the next column is at least this many
        in-layer spacings away.
    max_gap_sites : int
        Gaps longer than this (the crystal's edge, vacuum) are not pores.
    min_missing : int
        Smallest number of missing columns that makes a pore.
    """
    pos = np.asarray(positions_px, float)
    fr = frame if frame is not None else layer_frame(pos)
    d, h = fr.spacing_px, fr.layer_spacing_px
    tree = cKDTree(pos)
    missing = []
    # Columns of the same layer ahead of p: within ±0.3 h of its layer line.
    ahead = tree.query_ball_point(pos + fr.e1 * (max_gap_sites + 1) * d / 2, r=(max_gap_sites + 1) * d / 2 + 0.5 * d)
    for i, cand in enumerate(ahead):
        c = np.asarray([j for j in cand if j != i], int)
        if len(c) == 0:
            continue
        rel = pos[c] - pos[i]
        along = rel @ fr.e1
        normal = rel @ fr.e2
        same = (along > 0.3 * d) & (np.abs(normal) < 0.3 * h)
        if not np.any(same):
            continue
        g = along[same].min()
        if g < gap_factor * d:
            continue
        k = int(round(g / d)) - 1
        if k < 1 or k > max_gap_sites:
            continue
        step = g / (k + 1)
        for s in range(1, k + 1):
            missing.append(pos[i] + fr.e1 * step * s)
    missing = np.asarray(missing, float).reshape(-1, 2)
    if image_shape is not None and len(missing):
        ny, nx = image_shape
        ok = (
            (missing[:, 0] > border_px) & (missing[:, 0] < nx - 1 - border_px)
            & (missing[:, 1] > border_px) & (missing[:, 1] < ny - 1 - border_px)
        )
        missing = missing[ok]
    if len(missing) == 0:
        e = np.zeros(0)
        return PoreTable(missing, np.zeros(0, int), e, e, np.zeros(0, int), e)
    if len(missing) == 1:
        lab = np.array([1])
    else:
        lab = fcluster(linkage(missing, "single"), 1.5 * h, criterion="distance")
    keep_lab = [k for k in np.unique(lab) if np.sum(lab == k) >= min_missing]
    site_pore = np.full(len(missing), -1)
    cx, cy, nm = [], [], []
    for n, k in enumerate(keep_lab):
        sel = lab == k
        site_pore[sel] = n
        cx.append(missing[sel, 0].mean())
        cy.append(missing[sel, 1].mean())
        nm.append(int(sel.sum()))
    keep = site_pore >= 0
    nm = np.asarray(nm, int)
    return PoreTable(missing[keep], site_pore[keep], np.asarray(cx), np.asarray(cy), nm, nm * d * h)


# ---- low magnification -------------------------------------------------------------------------


def segment_particles(
    image: np.ndarray,
    *,
    smooth_sigma_px: float = 2.0,
    min_area_px: int = 400,
    solidity_split: float = 0.92,
    edge_fraction: float = 0.08,
) -> np.ndarray:
    """Label particles (bright) on vacuum (dark) in a low-magnification image.

    Returns a (ny, nx) int array: 0 vacuum, 1..K particles (sorted by the
    row, then column, of their centroid, i.e. reading order).
    """
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import watershed

    from layerscope.stem.columns import _check_image

    img = _check_image(image)
    sm = ndimage.gaussian_filter(img, smooth_sigma_px)
    # Otsu splits vacuum from particle; the edge threshold then sits at
    # ``edge_fraction`` of the way from the vacuum level to the particle level,
    # since an ellipsoid's projected thickness falls to zero at its rim.
    t = threshold_otsu(sm)
    lo, hi = np.median(sm[sm <= t]), np.median(sm[sm > t])
    spread = np.std(sm[sm <= t])
    if hi - lo < 6.0 * spread:
        raise ValueError(
            f"no particles found: bright and dark levels differ by only {(hi - lo) / max(spread, 1e-300):.1f}× "
            "the background noise (need ≥ 6); is this a low-magnification image of particles on vacuum?"
        )
    mask = sm > lo + edge_fraction * (hi - lo)
    mask = ndimage.binary_fill_holes(mask)
    mask = remove_small_objects(mask, max_size=min_area_px)
    lab = label(mask)
    if lab.max() == 0:
        raise ValueError("no particles found: the image has no region brighter than its background")
    out = np.zeros_like(lab)
    n = 0
    for reg in regionprops(lab):
        sub = lab == reg.label
        if reg.solidity >= solidity_split:
            n += 1
            out[sub] = n
            continue
        # Touching particles: split at the neck of the distance transform.
        from skimage.feature import peak_local_max

        dist = ndimage.distance_transform_edt(sub)
        r = max(int(0.5 * np.sqrt(reg.area / np.pi)), 3)
        pk = peak_local_max(dist, min_distance=r, labels=sub.astype(int))
        markers = np.zeros_like(lab)
        for j, (y, x) in enumerate(pk):
            markers[y, x] = j + 1
        ws = watershed(-dist, markers, mask=sub)
        for j in range(1, ws.max() + 1):
            if np.sum(ws == j) >= min_area_px:
                n += 1
                out[ws == j] = n
    # reading order
    props = sorted(regionprops(out), key=lambda r: (round(r.centroid[0] / 50), r.centroid[1]))
    final = np.zeros_like(out)
    for k, r in enumerate(props):
        final[out == r.label] = k + 1
    return final


@dataclass(frozen=True)
class LowMagDefects:
    """Dark pore/trench defects inside particles (pixel units).

    ``labels`` is a (ny, nx) map (0 none, j = defect j, 1-based); per defect the
    particle (1-based), centroid, area, length along its long axis and
    orientation (degrees, counter-clockwise from +x in image coordinates),
    and the mean relative intensity deficit.
    """

    labels: np.ndarray
    particle: np.ndarray
    centre_x_px: np.ndarray
    centre_y_px: np.ndarray
    area_px: np.ndarray
    length_px: np.ndarray
    orientation_deg: np.ndarray
    depth: np.ndarray

    def __len__(self) -> int:
        return len(self.particle)


def find_lowmag_defects(
    image: np.ndarray,
    particle_labels: np.ndarray,
    *,
    max_width_px: float = 8.0,
    smooth_sigma_px: float = 1.0,
    min_depth: float = 0.2,
    min_area_px: int = 6,
    edge_px: float = 4.0,
) -> LowMagDefects:
    """Dark, narrow defects (pores, trenches) inside segmented particles.

    Parameters
    ----------
    image : (ny, nx) array
    particle_labels : (ny, nx) int array
        From :func:`segment_particles`.
    max_width_px : float
        Widest defect to find: the grey closing uses a disc of this diameter
        plus two pixels, which fills darker features narrower than that.
    min_depth : float
        Minimum relative intensity deficit ``1 - I / closing(I)`` (after
        background subtraction) of a defect pixel.
    min_area_px : int
        Smallest defect area.
    edge_px : float
        Pixels closer than this to the particle's rim are ignored (the
        thickness falls to zero there).
    """
    from skimage.measure import label, regionprops
    from skimage.morphology import disk

    from layerscope.stem.columns import _check_image

    img = _check_image(image)
    pl = np.asarray(particle_labels)
    if pl.shape != img.shape:
        raise ValueError(f"particle labels {pl.shape} and image {img.shape} differ in shape")
    bg = np.median(img[pl == 0]) if np.any(pl == 0) else 0.0
    sm = ndimage.gaussian_filter(img, smooth_sigma_px) - bg
    rad = int(np.ceil(max_width_px / 2)) + 1
    closed = ndimage.grey_closing(sm, footprint=disk(rad))
    deficit = 1.0 - sm / np.maximum(closed, 1e-9 * np.max(closed))
    interior = ndimage.distance_transform_edt(pl > 0) > edge_px
    mask = (deficit > min_depth) & interior
    lab = label(mask)
    out = np.zeros_like(lab)
    rows = []
    for reg in regionprops(lab):
        if reg.area < min_area_px:
            continue
        ys, xs = reg.coords[:, 0], reg.coords[:, 1]
        part = np.bincount(pl[ys, xs]).argmax()
        if part == 0:
            continue
        cov = np.cov(np.stack([xs, ys])) if reg.area > 2 else np.eye(2)
        w, v = np.linalg.eigh(cov)
        ang = np.degrees(np.arctan2(v[1, -1], v[0, -1]))
        rows.append((part, reg.centroid[1], reg.centroid[0], reg.area, 4.0 * np.sqrt(max(w[-1], 0.0)),
                     ang, float(np.mean(deficit[ys, xs]))))
        out[ys, xs] = len(rows)
    arr = np.asarray(rows, float).reshape(-1, 7)
    return LowMagDefects(out, arr[:, 0].astype(int), arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4],
                         (arr[:, 5] + 90.0) % 180.0 - 90.0, arr[:, 6])


def defects_per_particle(defects: LowMagDefects, n_particles: int) -> np.ndarray:
    """Number of defects in each particle 1..n_particles (table S4)."""
    return np.bincount(np.asarray(defects.particle, int), minlength=n_particles + 1)[1:]
