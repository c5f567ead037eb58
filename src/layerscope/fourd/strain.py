"""Bragg-disk detection and strain mapping (nanobeam electron diffraction).

1. Disks: every pattern is cross-correlated with a probe template (the vacuum /
   direct-beam disc, or a disc of the convergence radius) by FFT; local maxima above
   ``threshold`` × the strongest one are disks. Each is refined to sub-pixel by the
   background-subtracted centroid of the pattern inside the disc (a disc's centroid
   is its centre; pixelation errors average out over the ~30 pixels of a disc).
2. Lattice: the reference region's mean pattern gives two short non-collinear
   reciprocal vectors g1, g2 (detector x, y, px). At every position each disk is
   indexed as the nearest integer (h, k) of q = h g1 + k g2, and G = [g1 g2] is
   fitted to all indexed disks by (intensity-weighted) least squares.
3. Strain: with real-space lattice A = G⁻ᵀ, the deformation from the reference
   lattice G0 is F = A A0⁻¹ = G⁻ᵀ G0ᵀ; ε = ½(F + Fᵀ) − I (εxx, εyy, εxy, infinitesimal
   strain) and the rotation ω = atan2(F10 − F01, F00 + F11) (rad, counter-clockwise
   from +x towards +y). Components are in the detector frame; with a scan rotation θ
   (calibration) they are rotated into the scan frame, ε_scan = R(θ)ᵀ ε R(θ).
   Positions where fewer than ``min_disks`` disks are indexed are NaN (flag map).

Written by hand (py4DSTEM does the same and is GPL); the FFT correlation is scipy's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

__all__ = ["disc_template", "find_disks", "reference_lattice", "fit_lattice", "StrainMaps", "strain_map",
           "plot_strain_maps", "write_strain_maps"]


def disc_template(radius_px: float, *, oversample: int = 4) -> np.ndarray:
    """Anti-aliased disc of ``radius_px`` (unit sum)."""
    from layerscope.fourd.detector import _disc_kernel

    return _disc_kernel(radius_px, oversample)


def find_disks(pattern, template, *, threshold: float = 0.1, min_distance: int | None = None,
               radius_px: float | None = None, edge_px: int | None = None) -> np.ndarray:
    """Disks of one pattern: (n, 3) rows of (x, y, intensity), strongest first, sub-pixel positions."""
    from skimage.feature import peak_local_max

    p = np.asarray(pattern, float)
    t = np.asarray(template, float)
    if radius_px is None:
        radius_px = np.sqrt((t > 0.5 * t.max()).sum() / np.pi)
    xc = signal.fftconvolve(p, t[::-1, ::-1], mode="same")
    md = int(max(2, round(min_distance if min_distance is not None else 2 * radius_px)))
    edge = int(np.ceil(radius_px + 2)) if edge_px is None else edge_px
    pk = peak_local_max(xc, min_distance=md, threshold_abs=threshold * xc.max(), exclude_border=edge)
    if len(pk) == 0:
        return np.zeros((0, 3))
    yy, xx = np.indices(p.shape)
    out = []
    rr = radius_px + 1.5
    for y, x in pk:
        y0, y1, x0, x1 = (max(0, int(y - rr - 3)), int(y + rr + 4), max(0, int(x - rr - 3)), int(x + rr + 4))
        sub, sy, sx = p[y0:y1, x0:x1], yy[y0:y1, x0:x1], xx[y0:y1, x0:x1]
        cy, cx = float(y), float(x)
        for _ in range(3):
            d2 = (sy - cy) ** 2 + (sx - cx) ** 2
            ring = (d2 > rr ** 2) & (d2 <= (rr + 2) ** 2)
            bg = np.median(sub[ring]) if ring.any() else 0.0
            w = np.clip(sub - bg, 0, None) * (d2 <= rr ** 2)
            s = w.sum()
            if s <= 0:
                break
            cy, cx = float((w * sy).sum() / s), float((w * sx).sum() / s)
        out.append((cx, cy, float(xc[y, x])))
    out = np.array(out)
    return out[np.argsort(-out[:, 2])]


def reference_lattice(disks: np.ndarray, origin, *, min_len: float = 3.0) -> np.ndarray:
    """Two short non-collinear reciprocal vectors (2×2, columns g1, g2, detector x/y px) from one disk list."""
    q = disks[:, :2] - np.asarray(origin, float)[::-1]
    n = np.hypot(q[:, 0], q[:, 1])
    q, n = q[n > min_len], n[n > min_len]
    if len(q) < 2:
        raise ValueError("fewer than two Bragg disks besides the direct beam: no lattice")
    def cross(a, b):
        return a[0] * b[1] - a[1] * b[0]

    order = np.argsort(n)
    g1 = q[order[0]]
    for j in order[1:]:
        c = abs(cross(g1, q[j])) / (np.linalg.norm(g1) * n[j])
        if c > 0.3:  # more than ~17° from collinear
            g2 = q[j]
            break
    else:
        raise ValueError("all Bragg disks are collinear: no 2-D lattice")
    if cross(g1, g2) < 0:
        g2 = -g2
    return np.stack([g1, g2], 1)


def fit_lattice(disks: np.ndarray, origin, g0: np.ndarray, *, tol: float = 0.2, min_disks: int = 4,
                max_residual_px: float = 1.0):
    """Least-squares lattice G (2×2) through the disks indexed on ``g0``; (G, number indexed) or (NaN, n).

    Disks within ``tol`` (fraction of the lattice) of a lattice point are indexed; after a first
    intensity-weighted fit, disks further than ``max_residual_px`` from their fitted lattice
    point (noise peaks, other grains) are dropped and G is fitted again.
    """
    q = disks[:, :2] - np.asarray(origin, float)[::-1]
    hk = np.linalg.solve(g0, q.T).T
    r = np.rint(hk)
    ok = np.all(np.abs(hk - r) < tol, axis=1) & np.any(r != 0, axis=1)
    w = np.sqrt(np.clip(disks[:, 2], 1e-12, None))
    g = np.full((2, 2), np.nan)
    for _ in range(2):
        if ok.sum() < min_disks or np.linalg.matrix_rank(r[ok]) < 2:
            return np.full((2, 2), np.nan), int(ok.sum())
        g = np.linalg.lstsq(r[ok] * w[ok, None], q[ok] * w[ok, None], rcond=None)[0].T     # q = hk @ Gᵀ
        res = np.hypot(*(q - r @ g.T).T)
        ok &= res <= max_residual_px
    return g, int(ok.sum())


@dataclass(frozen=True)
class StrainMaps:
    """Per position: εxx, εyy, εxy (infinitesimal strain), rotation (deg), lattice G (…, 2, 2), disks indexed."""

    exx: np.ndarray
    eyy: np.ndarray
    exy: np.ndarray
    rotation_deg: np.ndarray
    lattice: np.ndarray
    n_indexed: np.ndarray
    reference_lattice: np.ndarray
    frame: str


def strain_map(data, *, reference, probe_radius_px: float, origins=None, threshold: float = 0.1,
               min_disks: int = 4, scan_rotation_deg: float | None = None) -> StrainMaps:
    """Strain of a (ny, nx, ky, kx) scan relative to the ``reference`` region (boolean (ny, nx) mask).

    ``origins`` (ny, nx, 2) are the direct-beam centres (y, x) per position (default: the pattern
    centre); see the module docstring for the method and conventions.
    """
    data = np.asarray(data)
    ny, nx, ky, kx = data.shape
    ref = np.asarray(reference, bool)
    if ref.shape != (ny, nx) or not ref.any():
        raise ValueError("reference must be a non-empty boolean (ny, nx) mask")
    if origins is None:
        origins = np.broadcast_to(np.array([(ky - 1) / 2, (kx - 1) / 2]), (ny, nx, 2))
    tmpl = disc_template(probe_radius_px)
    disks = np.empty((ny, nx), object)
    for iy in range(ny):
        for ix in range(nx):
            disks[iy, ix] = find_disks(data[iy, ix], tmpl, threshold=threshold, radius_px=probe_radius_px)
    # reference lattice from the mean (origin-aligned) reference pattern, then refined on every reference position
    centre = np.mean(origins[ref], axis=0)
    mean = np.mean([ndimage.shift(data[iy, ix].astype(float), centre - origins[iy, ix], order=1)
                    for iy, ix in zip(*np.nonzero(ref))], axis=0)
    g0 = reference_lattice(find_disks(mean, tmpl, threshold=threshold, radius_px=probe_radius_px), centre)
    lat = np.full((ny, nx, 2, 2), np.nan)
    nidx = np.zeros((ny, nx), int)
    for iy in range(ny):
        for ix in range(nx):
            lat[iy, ix], nidx[iy, ix] = fit_lattice(disks[iy, ix], origins[iy, ix], g0, min_disks=min_disks)
    g_ref = np.nanmedian(lat[ref], axis=0)
    if not np.all(np.isfinite(g_ref)):
        raise ValueError("the reference region has no position with an indexed lattice")
    # F = G^-T G0^T
    f = np.einsum("...ji,kj->...ik", np.linalg.inv(np.where(np.isfinite(lat), lat, np.eye(2))), g_ref)
    f[~np.isfinite(lat).all(axis=(-1, -2))] = np.nan
    frame = "detector"
    if scan_rotation_deg is not None:
        t = np.radians(scan_rotation_deg)
        r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        f = np.einsum("ji,...jk,kl->...il", r, f, r)
        frame = "scan"
    eps = 0.5 * (f + np.swapaxes(f, -1, -2)) - np.eye(2)
    rot = np.degrees(np.arctan2(f[..., 1, 0] - f[..., 0, 1], f[..., 0, 0] + f[..., 1, 1]))
    return StrainMaps(eps[..., 0, 0], eps[..., 1, 1], eps[..., 0, 1], rot, lat, nidx, g_ref, frame)


def plot_strain_maps(sm: StrainMaps):
    """εxx, εyy, εxy (%) and the rotation (degrees) as one Matplotlib figure (no pyplot).

    Parameters
    ----------
    sm : StrainMaps
        The result of :func:`strain_map`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 3.4))
    axs = fig.subplots(1, 4)
    lim = max(float(np.nanpercentile(np.abs(np.stack([sm.exx, sm.eyy, sm.exy])), 98)) * 100, 1e-3)
    for ax, (name, v) in zip(axs, (("εxx (%)", sm.exx * 100), ("εyy (%)", sm.eyy * 100), ("εxy (%)", sm.exy * 100),
                                   ("rotation (°)", sm.rotation_deg))):
        vmax = lim if "%" in name else max(float(np.nanmax(np.abs(v))), 1e-3)
        im = ax.imshow(v, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"{name}, {sm.frame} frame", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def write_strain_maps(sm: StrainMaps, out, *, source: str = "", reference=None) -> dict:
    """Write ``strain.h5`` (the maps, the lattices and the convention) and ``strain.png`` into ``out``.

    Parameters
    ----------
    sm : StrainMaps
        The result of :func:`strain_map`.
    out : str or Path
        The output folder (created if missing).
    source : str
        The scan file, recorded in ``strain.h5``.
    reference : (int, int, int, int), optional
        The reference region (y0, y1, x0, x1) in scan positions, recorded in ``strain.h5``.

    Returns
    -------
    dict of str to Path
        ``h5`` and ``png``.
    """
    from pathlib import Path

    import h5py

    from layerscope._io import atomic_path, save_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "strain.h5", ".h5") as tmp, h5py.File(tmp, "w") as f:
        for k in ("exx", "eyy", "exy", "rotation_deg", "lattice", "n_indexed", "reference_lattice"):
            f.create_dataset(k, data=getattr(sm, k))
        f.attrs.update({"frame": sm.frame, "source": str(source),
                        "convention": "F = G^-T G0^T; eps = (F + F^T)/2 - I; rotation = atan2(F10 - F01, F00 + F11)"})
        if reference is not None:
            f.attrs["reference_y0_y1_x0_x1"] = list(reference)
    png = save_figure(plot_strain_maps(sm), out / "strain.png", dpi=110, bbox_inches="tight")
    return {"h5": out / "strain.h5", "png": png}
