"""Projected unit cells of a layered oxide and their metrics (Fig. 4b,c).

Viewed along <100>_O3 the TM columns form layers. For each column ``p0``
the projected cell is ``p0``, its right neighbour in the layer ``R = p0 + t1``,
the nearest column of the next layer ``U = p0 + t2`` and ``UR = U + t1``.

* m/n: ``m = |U - R|``, ``n = |UR - p0|``, the two diagonals of the cell
  (paper, Fig. 4b). For O3 (a = 2.840 Å, c = 14.539 Å) m/n = 0.874 in one
  twin variant and 1/0.874 = 1.144 in the other; O1 stacking gives 1.
* angle_deg: acute angle between the TM layers (t1) and the stacking
  direction (t2): 80.4° for O3, 90° for O1 (paper: ~79° and ~83° in
  neighbouring variants after charging, 90° in O1 regions).
* in-plane spacing ``|t1|`` and interlayer spacing (component of t2 normal
  to the layer): the interlayer-spacing map of Supp. Fig. 17b.

The frame (``t1`` along the layers, ``e2`` = ``e1`` rotated by +90° in image
coordinates) is taken from the columns themselves: the layer direction is
the modal direction of the shortest neighbour vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["LayerFrame", "CellTable", "layer_frame", "unit_cells", "classify_variants", "VARIANTS"]

VARIANTS = ("I", "II", "O1")


@dataclass(frozen=True)
class LayerFrame:
    """Layer direction and spacings (pixel units)."""

    e1: np.ndarray  # unit vector along the layers (x component ≥ 0)
    e2: np.ndarray  # unit vector normal to the layers (e1 rotated +90°)
    spacing_px: float  # in-layer column spacing |t1|
    layer_spacing_px: float  # interlayer spacing


@dataclass(frozen=True)
class CellTable:
    """Per-cell metrics; row ``i`` is the cell anchored at column ``anchor[i]``.

    Corner indices refer to the positions given to :func:`unit_cells`.
    """

    anchor: np.ndarray
    right: np.ndarray
    up: np.ndarray
    up_right: np.ndarray
    centre_x_px: np.ndarray
    centre_y_px: np.ndarray
    m_px: np.ndarray
    n_px: np.ndarray
    m_over_n: np.ndarray
    angle_deg: np.ndarray
    inplane_spacing_px: np.ndarray
    interlayer_spacing_px: np.ndarray
    variant: np.ndarray  # index into VARIANTS
    frame: LayerFrame

    def __len__(self) -> int:
        return len(self.anchor)


def layer_frame(positions_px: np.ndarray) -> LayerFrame:
    """Layer direction and spacings from the columns' neighbour vectors."""
    pos = np.asarray(positions_px, float)
    if len(pos) < 6:
        raise ValueError(f"need at least 6 columns to find the layers, got {len(pos)}")
    tree = cKDTree(pos)
    dist, idx = tree.query(pos, k=min(9, len(pos)))
    nn = np.median(dist[:, 1])
    vec = (pos[idx[:, 1:]] - pos[:, None, :]).reshape(-1, 2)
    length = np.hypot(*vec.T)
    vec = vec[np.abs(length - nn) < 0.2 * nn]
    ang = np.arctan2(vec[:, 1], vec[:, 0]) % np.pi  # fold ±
    hist, edges = np.histogram(ang, bins=180, range=(0, np.pi))
    hist = hist + np.roll(hist, 1) + np.roll(hist, -1)
    a0 = 0.5 * (edges[np.argmax(hist)] + edges[np.argmax(hist) + 1])
    close = np.abs(((ang - a0 + np.pi / 2) % np.pi) - np.pi / 2) < np.deg2rad(8)
    # circular mean of doubled angles
    a = 0.5 * np.arctan2(np.mean(np.sin(2 * ang[close])), np.mean(np.cos(2 * ang[close])))
    e1 = np.array([np.cos(a), np.sin(a)])
    if e1[0] < 0 or (e1[0] == 0 and e1[1] < 0):
        e1 = -e1
    e2 = np.array([-e1[1], e1[0]])
    spacing = float(np.median(np.abs(vec[close] @ e1)))
    # Interlayer spacing: smallest clearly-positive normal offset per column.
    dist, idx = tree.query(pos, k=min(16, len(pos)))
    off = (pos[idx[:, 1:]] - pos[:, None, :]) @ e2
    off = np.where(off > 0.5 * spacing, off, np.inf)
    h = np.min(off, axis=1)
    h = h[np.isfinite(h)]
    if len(h) == 0:
        raise ValueError("columns form a single layer: no stacking direction found")
    return LayerFrame(e1, e2, spacing, float(np.median(h)))


def classify_variants(m_over_n: np.ndarray, *, tolerance: float = 0.06) -> np.ndarray:
    """Variant index per cell: I if m/n < 1 - tol, II if > 1 + tol, else O1."""
    r = np.asarray(m_over_n, float)
    return np.where(r < 1 - tolerance, 0, np.where(r > 1 + tolerance, 1, 2))


def unit_cells(positions_px: np.ndarray, *, frame: LayerFrame | None = None, match_tol: float = 0.3,
               variant_tolerance: float = 0.06) -> CellTable:
    """Projected unit cells of the TM sublattice and their metrics.

    Parameters
    ----------
    positions_px : (N, 2) array
        Refined TM column positions (x, y).
    frame : LayerFrame, optional
        Default :func:`layer_frame` of the positions.
    match_tol : float
        A neighbour is accepted within ``match_tol`` × the in-layer spacing of
        where the lattice puts it.
    variant_tolerance : float
        See :func:`classify_variants`.
    """
    pos = np.asarray(positions_px, float)
    fr = frame if frame is not None else layer_frame(pos)
    tree = cKDTree(pos)
    d = fr.spacing_px
    t1 = fr.e1 * d
    dR, R = tree.query(pos + t1)
    has_R = dR < match_tol * d
    # Up: among columns about one interlayer spacing above, the one with the
    # smallest lateral offset (|offset| ≤ d/2 by construction).
    cand = tree.query_ball_point(pos + fr.e2 * fr.layer_spacing_px, r=0.75 * d)
    U = np.full(len(pos), -1)
    for i, c in enumerate(cand):
        if not c:
            continue
        c = np.asarray(c)
        rel = pos[c] - pos[i]
        normal = rel @ fr.e2
        lateral = np.abs(rel @ fr.e1)
        ok = (np.abs(normal - fr.layer_spacing_px) < 0.35 * fr.layer_spacing_px) & (lateral <= 0.5 * d)
        if np.any(ok):
            U[i] = c[ok][np.argmin(lateral[ok])]
    has_U = U >= 0
    UR = np.full(len(pos), -1)
    UR[has_U] = np.where(has_R[U[has_U]], R[U[has_U]], -1)
    ok = has_R & has_U & (UR >= 0)
    i0 = np.flatnonzero(ok)
    p0, pR, pU, pUR = pos[i0], pos[R[i0]], pos[U[i0]], pos[UR[i0]]
    m = np.hypot(*(pU - pR).T)
    n = np.hypot(*(pUR - p0).T)
    v1 = pR - p0
    v2 = pU - p0
    cosang = np.abs(np.sum(v1 * v2, 1)) / (np.hypot(*v1.T) * np.hypot(*v2.T))
    angle = np.degrees(np.arccos(np.clip(cosang, 0, 1)))
    centre = 0.25 * (p0 + pR + pU + pUR)
    mn = m / n
    return CellTable(
        anchor=i0, right=R[i0], up=U[i0], up_right=UR[i0],
        centre_x_px=centre[:, 0], centre_y_px=centre[:, 1], m_px=m, n_px=n, m_over_n=mn,
        angle_deg=angle, inplane_spacing_px=np.hypot(*v1.T),
        interlayer_spacing_px=np.abs(v2 @ fr.e2), variant=classify_variants(mn, tolerance=variant_tolerance),
        frame=fr,
    )
