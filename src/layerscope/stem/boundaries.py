"""Twin boundaries traced on the per-cell variant map, and frustration regions (Fig. 4b–f, Supp. Fig. 18).

Viewed along <100>_O3 every projected cell has two kinds of neighbours: the
next cell along its TM layer (``right``) and the cell of the next layer
(``up``). Where two neighbouring cells carry different variants (I, II, O1)
a boundary passes between them:

* the variant changes from one layer to the next → an *interlayer* edge;
  a row of them parallel to the layers is the coherent (001)_O3 twin or
  O1/O3 boundary (Fig. 4c regions I, II);
* the variant changes inside one layer → an *intralayer* edge; a chain of
  them is the incoherent {012}_O3 boundary, whose projected trace along
  [100] makes ``atan(2 c_hex/3 / (a√3/2) · 1/2 ...)`` ≈ 71° with the layers
  (plane (012): intercepts b and c/2, trace ``c/2 - b`` → 71.3° for
  a = 2.840 Å, c = 14.539 Å). Where twin variants meet inside a layer the
  stacking is frustrated (paper: "when adjacent twinning variants meet at
  TB, structural frustration forms").

Edges are grouped into boundary segments by single linkage in the lattice
frame (distances in units of the in-layer spacing along the layers and of
the interlayer spacing across them); interlayer edges that lie on an
intralayer chain belong to that inclined boundary. Each segment's
orientation is the principal axis of its edge midpoints, measured from the
layer direction; segments within ``coherent_max_deg`` of the layers are
coherent (001), the others incoherent {012}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial import cKDTree

from layerscope.stem.cells import VARIANTS, CellTable

__all__ = ["BoundaryTable", "trace_boundaries", "nearest_boundary", "BOUNDARY_KINDS", "trace_angle_012_deg"]

BOUNDARY_KINDS = ("coherent (001)", "incoherent {012}")


def trace_angle_012_deg(a_angstrom: float = 2.840, c_angstrom: float = 14.539) -> float:
    """Angle between the layers and the projected trace of (012)_hex viewed along [100]."""
    return float(np.degrees(np.arctan2(c_angstrom / 2, a_angstrom * np.sqrt(3) / 2)))


@dataclass(frozen=True)
class BoundaryTable:
    """Boundary edges between cells and the segments they form (pixel units).

    Edge arrays (length E): ``cell_a``, ``cell_b`` (rows of the CellTable),
    ``mid_x_px``, ``mid_y_px``, ``intralayer`` (bool), ``segment``.
    Segment arrays (length S): ``kind`` (index into BOUNDARY_KINDS),
    ``angle_deg`` (0–90°, from the layers), ``n_edges``, ``length_px``,
    ``centre_x_px``, ``centre_y_px``, ``variants`` (e.g. ``"I|O1"``).
    ``frustrated`` (length = number of cells): cells touching an intralayer
    boundary edge between two different O3 variants, or where three
    variants meet.
    """

    cell_a: np.ndarray
    cell_b: np.ndarray
    mid_x_px: np.ndarray
    mid_y_px: np.ndarray
    intralayer: np.ndarray
    segment: np.ndarray
    kind: np.ndarray
    angle_deg: np.ndarray
    n_edges: np.ndarray
    length_px: np.ndarray
    centre_x_px: np.ndarray
    centre_y_px: np.ndarray
    variants: tuple
    frustrated: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)


def _clusters(points: np.ndarray, threshold: float) -> np.ndarray:
    if len(points) == 0:
        return np.zeros(0, int)
    if len(points) == 1:
        return np.zeros(1, int)
    return fcluster(linkage(points, "single"), threshold, criterion="distance") - 1


def _principal_angle_deg(pts_frame: np.ndarray, d: float, h: float) -> float:
    """Angle (0..90°) of the principal axis of points given as (along, across) in px."""
    if len(pts_frame) < 2:
        return np.nan
    c = pts_frame - pts_frame.mean(axis=0)
    w, v = np.linalg.eigh(c.T @ c)
    ax = v[:, -1]
    return float(np.degrees(np.arctan2(abs(ax[1]), abs(ax[0]))))


def trace_boundaries(
    cells: CellTable,
    *,
    link: float = 1.5,
    link_intralayer: float = 2.5,
    coherent_max_deg: float = 35.0,
    min_edges: int = 2,
) -> BoundaryTable:
    """Trace and classify boundaries between variant regions.

    Parameters
    ----------
    cells : CellTable
        From :func:`layerscope.stem.unit_cells`.
    link : float
        Linkage distance for edges of one segment, in lattice units
        (``sqrt((Δu/d)² + (Δw/h)²)``, d in-layer spacing, h interlayer spacing).
    link_intralayer : float
        The same for intralayer edges: one per layer along an inclined
        boundary, each placed to within ~d/2 by the discrete cells.
    coherent_max_deg : float
        Segments closer than this to the layer direction are coherent (001).
    min_edges : int
        Segments with fewer edges are dropped (isolated misclassified cells).
    """
    fr = cells.frame
    d, h = fr.spacing_px, fr.layer_spacing_px
    n = len(cells)
    centres = np.stack([cells.centre_x_px, cells.centre_y_px], axis=1)
    va = cells.variant
    # Neighbours from cell centres in the lattice frame (u/d, w/h): the next
    # cell along the layer (within 5.5 d, so a frustrated gap or a pore where no cell
    # could be built is bridged) and the cell of the next layer.
    cf = np.stack([centres @ fr.e1 / d, centres @ fr.e2 / h], axis=1) if n else np.zeros((0, 2))
    tree_c = cKDTree(cf) if n else None
    ea, eb, intra = [], [], []
    for i in range(n):
        best_r, best_u = None, None
        for j in tree_c.query_ball_point(cf[i], r=5.6):
            du, dw = cf[j] - cf[i]
            if 0.5 < du < 5.5 and abs(dw) < 0.4 and (best_r is None or du < best_r[1]):
                best_r = (j, du)
            if 0.6 < dw < 1.4 and abs(du) < 0.75 and (best_u is None or abs(du) < best_u[1]):
                best_u = (j, abs(du))
        for nb, is_intra in ((best_r, True), (best_u, False)):
            if nb is not None and va[i] != va[nb[0]]:
                ea.append(i)
                eb.append(nb[0])
                intra.append(is_intra)
    ea, eb, intra = np.asarray(ea, int), np.asarray(eb, int), np.asarray(intra, bool)
    mid = 0.5 * (centres[ea] + centres[eb]) if len(ea) else np.zeros((0, 2))
    frame_xy = np.stack([mid @ fr.e1 / d, mid @ fr.e2 / h], axis=1) if len(mid) else np.zeros((0, 2))
    seg = np.full(len(ea), -1)
    # Inclined chains first (intralayer edges), then interlayer edges that
    # sit on them; the remaining interlayer edges form (001) segments.
    lab_i = _clusters(frame_xy[intra], link_intralayer)
    seg[np.flatnonzero(intra)] = lab_i
    n_seg = int(lab_i.max()) + 1 if len(lab_i) else 0
    inter = np.flatnonzero(~intra)
    if len(inter) and np.any(intra):
        tree = cKDTree(frame_xy[intra])
        dist, j = tree.query(frame_xy[inter])
        on = dist < 0.75
        seg[inter[on]] = lab_i[j[on]]
        inter = inter[~on]
    lab_c = _clusters(frame_xy[inter], link)
    seg[inter] = lab_c + n_seg
    # Segment properties.
    out_seg = np.full(len(ea), -1)
    kinds, angles, counts, lengths, cxs, cys, pairs = [], [], [], [], [], [], []
    for s in np.unique(seg):
        sel = seg == s
        if sel.sum() < min_edges:
            continue
        pts = np.stack([mid[sel] @ fr.e1, mid[sel] @ fr.e2], axis=1)
        ang = _principal_angle_deg(pts, d, h)
        if not np.isfinite(ang):
            ang = 90.0 if intra[sel].mean() > 0.5 else 0.0
        out_seg[sel] = len(kinds)
        kinds.append(0 if ang < coherent_max_deg else 1)
        angles.append(ang)
        counts.append(int(sel.sum()))
        span = pts - pts.mean(axis=0)
        lengths.append(float(np.ptp(span @ np.array([np.cos(np.radians(ang)), np.sin(np.radians(ang))])))
                       if len(pts) > 1 else 0.0)
        cxs.append(float(mid[sel, 0].mean()))
        cys.append(float(mid[sel, 1].mean()))
        vv = sorted({VARIANTS[v] for v in np.concatenate([va[ea[sel]], va[eb[sel]]])}, key=VARIANTS.index)
        pairs.append("|".join(vv))
    # Frustration: intralayer contact of two O3 variants (I/II), or junctions
    # where cells of three variants lie within one link distance.
    frustrated = np.zeros(n, bool)
    o3_meet = intra & (va[ea] != 2) & (va[eb] != 2) if len(ea) else np.zeros(0, bool)
    frustrated[ea[o3_meet]] = True
    frustrated[eb[o3_meet]] = True
    if n:
        for i, nb in enumerate(tree_c.query_ball_point(cf, r=link)):
            if len(set(va[nb])) >= 3:
                frustrated[i] = True
    keep = out_seg >= 0
    return BoundaryTable(
        cell_a=ea[keep], cell_b=eb[keep], mid_x_px=mid[keep, 0] if len(mid) else np.zeros(0),
        mid_y_px=mid[keep, 1] if len(mid) else np.zeros(0), intralayer=intra[keep], segment=out_seg[keep],
        kind=np.asarray(kinds, int), angle_deg=np.asarray(angles), n_edges=np.asarray(counts, int),
        length_px=np.asarray(lengths), centre_x_px=np.asarray(cxs), centre_y_px=np.asarray(cys),
        variants=tuple(pairs), frustrated=frustrated,
    )


def nearest_boundary(x_px, y_px, boundaries: BoundaryTable) -> tuple[np.ndarray, np.ndarray]:
    """Nearest boundary segment (index, −1 if none) and its distance (px) for points.

    Used to tell whether pores sit on {012} boundaries (paper: "pore-like
    structures form at the {012}_O3 twinning interface").
    """
    pts = np.stack([np.atleast_1d(x_px), np.atleast_1d(y_px)], axis=1).astype(float)
    if len(boundaries.segment) == 0:
        return np.full(len(pts), -1), np.full(len(pts), np.inf)
    tree = cKDTree(np.stack([boundaries.mid_x_px, boundaries.mid_y_px], axis=1))
    dist, j = tree.query(pts)
    return boundaries.segment[j], dist
