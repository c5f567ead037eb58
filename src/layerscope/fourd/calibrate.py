"""Detector calibration of 4D-STEM data: ring/ellipse fit, reciprocal pixel size, descan, scan rotation.

A ``Calibration`` (saved as ``calibration.json``) holds

* ``center_px`` (y, x): the diffraction-pattern origin (mean over the scan);
* ``ellipticity`` = a/b ≥ 1, the ratio of the axes of the ellipse a circle of
  constant |g| makes on the detector, and ``ellipse_angle_deg``, the direction of
  its major axis (degrees from detector +x towards +y). Patterns are circularised
  by the area-preserving map d' = R(θ)·diag(√(b/a), √(a/b))·R(−θ)·d, so a ring of
  axes a, b becomes a circle of radius √(ab);
* ``pixel_inv_angstrom``: Å⁻¹ per pixel of the circularised pattern;
* per probe position (scans): ``origin_px`` (y, x), the direct-beam centre from a
  plane fitted to the measured centres (descan is linear in the probe position),
  and ``scan_rotation_deg`` (+ ``scan_flip``), the rotation taking scan-frame vectors
  to the detector frame.

Methods (written by hand; py4DSTEM and pyxem do the same steps but are GPL and
would be runtime dependencies):

* rings: azimuthal profile → ring radii; for every ring and 180 azimuths the
  sub-pixel ring position (background-subtracted centroid along the ray); one
  least-squares fit (scipy) of a shared centre, ellipticity and angle to all rings;
  resampled with the fitted ellipse and fitted again;
* pixel size: the circularised ring radii are matched to the standard's reflection
  list (|g| of reflections with non-zero structure factor, from
  :mod:`layerscope.diffraction.electron`): every (ring, reflection) pair proposes a
  scale, the one matching most rings (within 0.6 %) wins, refined by least squares;
  at least two rings must match;
* origin per position: the centroid of the direct beam inside a disc around the
  previous estimate (three passes), then a robust plane fit;
* scan rotation: the deflection rotated by −θ into the scan frame must be curl-free
  (it is ∝ ∇φ of the projected potential, as in py4DSTEM's DPC calibration); θ
  minimises the spatial variance of the curl of the measured centres (descan, being
  linear, has a uniform curl that the variance ignores), with and without a transpose
  (flip). The 180° ambiguity is resolved by the sign that makes the
  integrated potential correlate positively with the virtual dark-field image
  (thicker / heavier → more scattering and more potential); when that correlation
  is weak (|r| < 0.2) ``scan_rotation_ambiguous_180`` is set.

The flat-detector approximation |g| = r·pixel is used (at 300 kV and |g| = 2 Å⁻¹ the
Ewald-sphere correction is 2·10⁻⁴ relative).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage, optimize, signal

from layerscope._errors import InputError

__all__ = ["Calibration", "AssumedCalibrationWarning", "fit_rings", "calibrate_pattern", "calibrate_scan",
           "ring_standard", "beam_origins", "scan_rotation", "circularise_matrix", "gold", "calibration_figure"]


class AssumedCalibrationWarning(UserWarning):
    """A detector calibration was assumed rather than measured or given."""


@dataclass
class Calibration:
    """Detector calibration; see the module docstring for the conventions."""

    pixel_inv_angstrom: float | None
    center_px: tuple[float, float]
    ellipticity: float = 1.0
    ellipse_angle_deg: float = 0.0
    scan_rotation_deg: float | None = None
    scan_flip: bool = False
    scan_rotation_ambiguous_180: bool = False
    origin_px: list | None = None            # (ny, nx, 2) measured direct-beam centre (y, x) per position
    origin_plane: list | None = None          # descan plane [[y0, dy/diy, dy/dix], [x0, dx/diy, dx/dix]]
    origin_residual_rms_px: float | None = None
    ring_radii_px: list | None = None
    ring_hkl: list | None = None
    ring_residual_percent: float | None = None
    kv: float | None = None
    pixel_mrad: float | None = None
    standard: str | None = None
    source: str | None = None
    assumed: bool = False
    notes: list = field(default_factory=list)

    def to_json(self, path) -> Path:
        from layerscope._io import write_text

        d = asdict(self)
        return write_text(Path(path), json.dumps(_plain(d), indent=1) + "\n")

    @classmethod
    def from_json(cls, path) -> "Calibration":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"a calibration.json written by 'layerscope fourd-calibrate' ({exc})", path=path) \
                from None
        if not isinstance(d, dict) or "pixel_inv_angstrom" not in d or "center_px" not in d:
            raise InputError("a JSON object with at least 'pixel_inv_angstrom' and 'center_px'", path=path)
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        cal = cls(**known)
        pix = cal.pixel_inv_angstrom
        if pix is not None and not (np.isfinite(pix) and pix > 0):
            raise InputError(f"a positive pixel_inv_angstrom, got {pix}", path=path)
        if not cal.ellipticity >= 1 - 1e-9:
            raise InputError(f"ellipticity = major/minor axis >= 1, got {cal.ellipticity}", path=path)
        cal.center_px = tuple(float(v) for v in cal.center_px)
        return cal

    def distortion(self) -> np.ndarray:
        """2×2 matrix (x, y order) taking detector offsets to circularised offsets."""
        return circularise_matrix(self.ellipticity, self.ellipse_angle_deg)


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def circularise_matrix(ellipticity: float, angle_deg: float) -> np.ndarray:
    """R(θ)·diag(√(1/e), √e)·R(−θ): detector (x, y) offsets → circularised offsets (area preserving)."""
    t = np.radians(angle_deg)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return r @ np.diag([ellipticity ** -0.5, ellipticity ** 0.5]) @ r.T


def gold():
    """Au (Fm-3m, a = 4.0782 Å), the usual polycrystalline calibration standard."""
    from layerscope.crystal import Phase, Site

    return Phase("Au", "F m -3 m", (4.0782,) * 3 + (90.0,) * 3, (Site("Au", (0, 0, 0), (("Au", 1.0),), 0.6, "4a"),))


def ring_standard(phase, g_max: float = 2.5, *, merge: float = 2e-3):
    """Ring list of a polycrystalline standard: (|g| Å⁻¹, relative intensity Σ m|F|², hkl label)."""
    from layerscope.diffraction import electron as el

    hkl = el.reflections_within(phase, g_max)
    f2 = np.abs(el.structure_factors(phase, hkl)) ** 2
    g = np.linalg.norm(hkl @ el.reciprocal_basis(phase).T, axis=1)
    keep = f2 > 1e-6 * f2.max()
    hkl, f2, g = hkl[keep], f2[keep], g[keep]
    order = np.argsort(g)
    rings: list[list] = []
    for i in order:
        if rings and g[i] - rings[-1][0] < merge * g[i]:
            rings[-1][1] += f2[i]
            continue
        rings.append([g[i], f2[i], tuple(int(v) for v in np.abs(hkl[i]))])
    gs = np.array([r[0] for r in rings])
    w = np.array([r[1] for r in rings])
    return gs, w / w.max(), [r[2] for r in rings]


def _initial_centre(img: np.ndarray) -> np.ndarray:
    """(y, x): the direct beam (brightest smoothed spot) when it stands out, else the intensity centroid."""
    sm = ndimage.gaussian_filter(img.astype(float), 2.0)
    peak = np.unravel_index(np.argmax(sm), sm.shape)
    if sm[peak] > 5 * np.percentile(sm, 99):
        yy, xx = np.indices(sm.shape)
        w = np.where((yy - peak[0]) ** 2 + (xx - peak[1]) ** 2 < 36, sm, 0)
        return np.array([(w * yy).sum(), (w * xx).sum()]) / w.sum()
    w = np.clip(sm - np.median(sm), 0, None)
    if w.sum() <= 0:  # featureless: the geometric centre
        return (np.array(img.shape, float) - 1) / 2
    return np.array(ndimage.center_of_mass(w))


def _rays(img, centre, m_inv, radii, phis):
    """Image sampled at centre + M⁻¹ (r cosφ, r sinφ): (n_phi, n_r)."""
    u = np.stack([np.cos(phis)[:, None] * radii[None], np.sin(phis)[:, None] * radii[None]])  # (2, φ, r)
    d = np.einsum("ij,j...->i...", m_inv, u)
    coords = np.stack([centre[0] + d[1], centre[1] + d[0]])
    return ndimage.map_coordinates(img, coords, order=1, mode="constant", cval=np.nan)


def _ring_points(img, centre, m_inv, ring_r, half_width, n_az=180):
    """Sub-pixel radius of each ring along n_az rays: (n_ring, n_az) (NaN where not found)."""
    phis = 2 * np.pi * (np.arange(n_az) + 0.5) / n_az
    out = np.full((len(ring_r), n_az), np.nan)
    for j, (r0, hw) in enumerate(zip(ring_r, half_width)):
        radii = np.arange(r0 - hw, r0 + hw + 1e-9, 0.25)
        prof = _rays(img, centre, m_inv, radii, phis)
        # straight baseline through the window ends, then centroid of the positive part around the max
        base = prof[:, :1] + (prof[:, -1:] - prof[:, :1]) * (radii - radii[0]) / (radii[-1] - radii[0])
        p = np.clip(prof - base, 0, None)
        ok = np.isfinite(p).all(1) & (p.max(1) > 0)
        k = np.argmax(np.nan_to_num(p), axis=1)
        win = np.abs(np.arange(len(radii))[None] - k[:, None]) <= max(2, int(0.5 * hw / 0.25))
        w = np.where(win, np.nan_to_num(p), 0)
        s = w.sum(1)
        out[j, ok & (s > 0)] = ((w * radii).sum(1) / np.maximum(s, 1e-30))[ok & (s > 0)]
    return out, phis


def fit_rings(img, *, centre=None, n_rings: int = 6, r_min: float | None = None, iterations: int = 3) -> dict:
    """Fit concentric elliptical rings of one pattern.

    Returns ``center_px`` (y, x), ``ellipticity`` (a/b ≥ 1), ``ellipse_angle_deg`` (major axis from +x
    towards +y), ``radii_px`` (circularised radius √(ab) of every ring, increasing) and the rms residual.
    """
    img = np.asarray(img, dtype=float)
    if img.ndim != 2 or min(img.shape) < 16:
        raise ValueError(f"a ring pattern must be a 2-D image of at least 16×16 pixels, got shape {img.shape}")
    c = np.asarray(_initial_centre(img) if centre is None else centre, dtype=float)
    r_max = min(c[0], c[1], img.shape[0] - 1 - c[0], img.shape[1] - 1 - c[1]) - 2
    r_min = 0.08 * min(img.shape) if r_min is None else r_min
    if r_max <= r_min + 5:
        raise ValueError(f"the pattern centre {tuple(np.round(c, 1))} leaves no room for rings")
    radii = np.arange(0, r_max, 0.5)
    prof = np.nanmean(_rays(img, c, np.eye(2), radii, 2 * np.pi * np.arange(360) / 360), axis=0)
    prof = prof - ndimage.minimum_filter1d(ndimage.uniform_filter1d(prof, 5), 41)  # local baseline
    prof[radii < r_min] = 0
    pk, props = signal.find_peaks(prof, prominence=0.05 * prof.max(), distance=6)
    if len(pk) < 1:
        raise ValueError("no rings found in the pattern")
    pk = np.sort(pk[np.argsort(props["prominences"])[::-1][:n_rings]])
    ring_r = radii[pk]
    gaps = np.diff(np.concatenate([[r_min], ring_r, [r_max]]))
    half = np.clip(0.45 * np.minimum(gaps[:-1], gaps[1:]), 2.0, 0.06 * ring_r + 3)
    ell, ang = 1.0, 0.0
    for _ in range(iterations):
        m = circularise_matrix(ell, ang)
        pts, phis = _ring_points(img, c, np.linalg.inv(m), ring_r, half)
        good = np.isfinite(pts).sum(1) >= 20           # rings found along at least 20 of 180 rays
        if good.sum() < 1:
            raise ValueError("no ring could be followed around the pattern")
        pts, ring_r, half = pts[good], np.asarray(ring_r)[good], np.asarray(half)[good]
        # detector offsets of the ring points
        u = np.stack([np.cos(phis)[None] * pts, np.sin(phis)[None] * pts])
        d = np.einsum("ij,j...->i...", np.linalg.inv(m), u)
        ok = np.isfinite(pts)
        ring_idx = np.broadcast_to(np.arange(len(ring_r))[:, None], pts.shape)[ok]
        dx, dy = d[0][ok] + c[1], d[1][ok] + c[0]

        def resid(p):
            mm = circularise_matrix(1 + p[2] ** 2, np.degrees(p[3]))
            v = mm @ np.stack([dx - p[1], dy - p[0]])
            return np.hypot(v[0], v[1]) - p[4:][ring_idx]

        p0 = np.concatenate([c, [np.sqrt(max(ell - 1, 1e-6)), np.radians(ang)], np.nanmedian(pts, axis=1)])
        sol = optimize.least_squares(resid, p0, loss="soft_l1", f_scale=0.5, x_scale="jac")
        c = sol.x[:2]
        ell, ang = 1 + sol.x[2] ** 2, np.degrees(sol.x[3]) % 180
        ring_r = sol.x[4:]
    rms = float(np.sqrt(np.mean(sol.fun ** 2)))
    # circularised azimuthal profile with a local baseline removed (for matching a standard)
    radii = np.arange(r_min, r_max * min(1.0, np.sqrt(min(ell, 1 / ell))), 0.5)
    prof = np.nanmean(_rays(img, c, np.linalg.inv(circularise_matrix(ell, ang)), radii,
                            2 * np.pi * np.arange(360) / 360), axis=0)
    prof = prof - ndimage.minimum_filter1d(ndimage.uniform_filter1d(prof, 5), 41)
    return {"profile_r": radii, "profile": prof,"center_px": (float(c[0]), float(c[1])), "ellipticity": float(ell), "ellipse_angle_deg": float(ang),
            "radii_px": ring_r.tolist(), "residual_rms_px": rms, "points": int(ok.sum())}


def match_standard(radii_px, standard_g, standard_w, profile_r, profile, *, tol: float = 6e-3):
    """Scale (Å⁻¹/px) matching circularised ring radii to a standard's |g| list.

    Every (ring, reflection) pair proposes a scale s; each is scored by the correlation of the
    circularised radial ``profile`` with the standard's rings drawn at |g|/s (weights
    ``standard_w``, width 1.5 px), so that a scale must explain the strong rings, not just line
    up a few weak ones. The best is refined by least squares over the rings it matches within
    ``tol`` (relative). Returns (scale, matched ring indices, matched reflection indices, rms).
    """
    r = np.asarray(radii_px, float)
    g = np.asarray(standard_g, float)
    w = np.asarray(standard_w, float)
    pr = np.asarray(profile, float)
    pr = (pr - pr.mean()) / max(pr.std(), 1e-30)
    best = None
    for s in np.unique(np.round([gk / ri for ri in r for gk in g], 7)):
        rel = np.abs(g[None] / (r[:, None] * s) - 1)
        if (rel.min(1) < tol).sum() < 2:
            continue
        pos = g / s
        inside = pos < profile_r[-1]
        model = (w[inside, None] * np.exp(-0.5 * ((profile_r[None] - pos[inside, None]) / 1.5) ** 2)).sum(0)
        if model.std() == 0:
            continue
        score = float(np.mean(pr * (model - model.mean()) / model.std()))
        if best is None or score > best[0]:
            best = (score, s)
    if best is None:
        raise ValueError(f"the ring radii {np.round(r, 2).tolist()} px match no two reflections of the standard "
                         "(wrong standard, or rings not found)")
    s = best[1]
    rel = np.abs(g[None] / (r[:, None] * s) - 1)
    kk = np.argmin(rel, axis=1)
    m = rel[np.arange(len(r)), kk] < tol
    s2 = np.sum(r[m] * g[kk[m]]) / np.sum(r[m] ** 2)
    rms = float(np.sqrt(np.mean((r[m] * s2 / g[kk[m]] - 1) ** 2)))
    return float(s2), np.flatnonzero(m), kk[m], rms


def calibrate_pattern(img, standard, *, kv: float | None = None, centre=None, source: str | None = None) -> Calibration:
    """Calibration (centre, ellipse, pixel size) from one ring pattern of a polycrystalline standard."""
    fit = fit_rings(img, centre=centre)
    g, w, hkl = ring_standard(standard, g_max=3.0)
    scale, ri, gi, rms = match_standard(fit["radii_px"], g, w, fit["profile_r"], fit["profile"])
    cal = Calibration(float(scale), fit["center_px"], fit["ellipticity"], fit["ellipse_angle_deg"],
                      ring_radii_px=[fit["radii_px"][i] for i in ri], ring_hkl=[list(hkl[k]) for k in gi],
                      ring_residual_percent=100 * rms, kv=kv, standard=standard.name, source=source)
    if kv:
        from layerscope.diffraction.electron import electron_wavelength_angstrom

        cal.pixel_mrad = float(scale * electron_wavelength_angstrom(kv) * 1e3)
    cal.notes.append(f"{len(ri)} of {len(fit['radii_px'])} rings matched {standard.name}; ring fit rms "
                     f"{fit['residual_rms_px']:.3f} px over {fit['points']} points")
    return cal


def beam_origins(data, *, radius_px: float | None = None, passes: int = 3) -> np.ndarray:
    """Direct-beam centre (y, x) of every pattern of (ny, nx, ky, kx) data: (ny, nx, 2)."""
    data = np.asarray(data)
    ny, nx, ky, kx = data.shape
    mean = data.reshape(-1, ky, kx)[:: max(1, ny * nx // 256)].astype(float).mean(0)
    c0 = _initial_centre(mean)
    if radius_px is None:  # twice the radius of the half-maximum disc of the mean direct beam
        sm = ndimage.gaussian_filter(mean, 1.0)
        lab, _ = ndimage.label(sm > 0.5 * sm[int(round(c0[0])), int(round(c0[1]))])
        area = (lab == lab[int(round(c0[0])), int(round(c0[1]))]).sum()
        radius_px = max(3.0, 2 * np.sqrt(area / np.pi))
    yy, xx = np.indices((ky, kx), dtype=np.float32)
    out = np.empty((ny, nx, 2))
    for iy in range(ny):
        p = data[iy].astype(np.float32)                                    # (nx, ky, kx)
        c = np.broadcast_to(c0, (nx, 2)).copy()
        for _ in range(passes):
            r2 = (yy[None] - c[:, :1, None]) ** 2 + (xx[None] - c[:, 1:, None]) ** 2
            ann = (r2 > radius_px ** 2) & (r2 <= (1.5 * radius_px) ** 2)
            bg = (p * ann).sum((1, 2)) / np.maximum(ann.sum((1, 2)), 1)       # diffuse background under the beam
            w = np.clip(p - bg[:, None, None], 0, None) * (r2 <= radius_px ** 2)
            s = np.maximum(w.sum((1, 2)), 1e-30)
            c = np.stack([(w * yy).sum((1, 2)) / s, (w * xx).sum((1, 2)) / s], 1)
        out[iy] = c
    return out


def fit_plane(origins: np.ndarray):
    """Least-squares plane through per-position origins: (plane (ny, nx, 2), coefficients (2, 3), rms px).

    Descan is linear in the probe position; the linear part of a deflection field (a uniform
    potential gradient) cannot be told from it and goes into the plane too (a plain, not a
    robust fit: the residual of a gradient field then stays curl-free for the rotation fit).
    """
    ny, nx = origins.shape[:2]
    iy, ix = np.indices((ny, nx))
    a = np.stack([np.ones(ny * nx), iy.ravel(), ix.ravel()], 1)
    coef = np.stack([np.linalg.lstsq(a, origins[..., j].ravel(), rcond=None)[0] for j in range(2)])
    plane = np.stack([(a @ coef[j]).reshape(ny, nx) for j in range(2)], -1)
    return plane, coef, float(np.sqrt(np.mean(np.sum((origins - plane) ** 2, -1))))


def _curl_energy(d, theta, flip):
    """Mean squared curl of a detector-frame vector field (ny, nx, 2 as y, x) taken into the scan frame."""
    dy, dx = (d[..., 1], d[..., 0]) if flip else (d[..., 0], d[..., 1])
    c, s = np.cos(theta), np.sin(theta)
    sx, sy = c * dx + s * dy, -s * dx + c * dy             # R(−θ)
    curl = (np.gradient(sx, axis=0) - np.gradient(sy, axis=1))[1:-1, 1:-1]
    # low-pass the curl (not the field: smoothing a field at the scan edges would add curl): the
    # deflection is smooth, the measurement noise is not; the curl of the right rotation is zero
    # everywhere, smoothed or not
    curl = ndimage.gaussian_filter(curl, 1.0, mode="nearest") if min(curl.shape) >= 6 else curl
    return float(np.var(curl))  # a linear (descan) field has uniform curl: its variance ignores it


def _integrate(gy, gx):
    """Potential whose gradient is (gy, gx) (Fourier integration, mirror-padded)."""
    ny, nx = gy.shape
    gy2 = np.concatenate([np.concatenate([gy, gy[:, ::-1]], 1), -np.concatenate([gy, gy[:, ::-1]], 1)[::-1]], 0)
    gx2 = np.concatenate([np.concatenate([gx, -gx[:, ::-1]], 1), np.concatenate([gx, -gx[:, ::-1]], 1)[::-1]], 0)
    ky = np.fft.fftfreq(2 * ny)[:, None]
    kx = np.fft.fftfreq(2 * nx)[None]
    k2 = ky ** 2 + kx ** 2
    k2[0, 0] = 1
    phi = np.fft.ifft2((np.fft.fft2(gy2) * ky + np.fft.fft2(gx2) * kx) / (2j * np.pi * k2)).real
    return phi[:ny, :nx]


def scan_rotation(deflection, dark_field=None):
    """(rotation deg, flip, ambiguous_180, curl ratio) of the scan relative to the detector.

    ``deflection`` (ny, nx, 2) detector-frame (y, x) beam deflections; see the module docstring.
    """
    d = np.asarray(deflection, float)
    d = d - np.nanmean(d, axis=(0, 1))
    best = None
    for flip in (False, True):
        grid = np.radians(np.arange(0, 180, 1.0))
        e = [_curl_energy(d, t, flip) for t in grid]
        t0 = grid[int(np.argmin(e))]
        r = optimize.minimize_scalar(lambda t: _curl_energy(d, t, flip), bracket=(t0 - 0.02, t0, t0 + 0.02),
                                     tol=1e-10)
        if best is None or r.fun < best[0]:
            best = (r.fun, float(r.x) % np.pi, flip, float(np.mean(e)))
    _, theta, flip, e_mean = best
    ambiguous = True
    if dark_field is not None:
        dy, dx = (d[..., 1], d[..., 0]) if flip else (d[..., 0], d[..., 1])
        c, s = np.cos(theta), np.sin(theta)
        phi = _integrate(-s * dx + c * dy, c * dx + s * dy)
        df = np.asarray(dark_field, float)
        corr = np.corrcoef(phi.ravel(), df.ravel())[0, 1]
        if np.isfinite(corr) and abs(corr) >= 0.2:
            ambiguous = False
            if corr < 0:
                theta += np.pi
    return float(np.degrees(theta) % 360), bool(flip), ambiguous, best[0] / max(e_mean, 1e-30)


def shift_to_origin(img, origin, centre):
    """Pattern shifted so that ``origin`` (y, x) lands on ``centre`` (bilinear)."""
    return ndimage.shift(np.asarray(img, float), (centre[0] - origin[0], centre[1] - origin[1]), order=1,
                         mode="constant")


def calibrate_scan(data, standard=None, *, kv: float | None = None, source: str | None = None,
                   max_patterns: int = 1024) -> Calibration:
    """Calibration of a scan: descan origins, scan rotation and — with a ring ``standard`` — the ellipse
    and pixel size from the descan-corrected mean pattern."""
    data = np.asarray(data)
    if data.ndim != 4:
        raise ValueError(f"a scan must be (scan y, scan x, ky, kx), got shape {data.shape}")
    ny, nx, ky, kx = data.shape
    meas = beam_origins(data)
    plane, coef, rms = fit_plane(meas)
    centre = plane.reshape(-1, 2).mean(0)
    cal = Calibration(None, (float(centre[0]), float(centre[1])), origin_px=meas, origin_plane=coef,
                      origin_residual_rms_px=rms, kv=kv, source=source)
    if ny >= 4 and nx >= 4:
        total = data.reshape(ny, nx, -1).sum(-1).astype(float)
        yy, xx = np.indices((ky, kx))
        bf = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= (0.15 * min(ky, kx)) ** 2)
        dark = total - np.einsum("abij,ij->ab", data, bf, dtype=float)
        rot, flip, amb, ratio = scan_rotation(meas, dark)
        cal.scan_rotation_deg, cal.scan_flip, cal.scan_rotation_ambiguous_180 = rot, flip, amb
        cal.notes.append(f"scan rotation: curl of the rotated deflection field {100 * ratio:.1f} % of its mean "
                         "over angles" + ("; 180° ambiguous (dark field does not fix the sign)" if amb else ""))
    if standard is not None:
        idx = np.linspace(0, ny * nx - 1, min(ny * nx, max_patterns)).astype(int)
        mean = np.mean([shift_to_origin(data.reshape(-1, ky, kx)[i], meas.reshape(-1, 2)[i], centre) for i in idx],
                       axis=0)
        ring = calibrate_pattern(mean, standard, kv=kv, centre=centre)
        for k in ("pixel_inv_angstrom", "ellipticity", "ellipse_angle_deg", "ring_radii_px", "ring_hkl",
                  "ring_residual_percent", "pixel_mrad", "standard"):
            setattr(cal, k, getattr(ring, k))
        shift = np.subtract(ring.center_px, centre)
        cal.notes += ring.notes + [f"ring centre differs from the mean beam origin by {np.hypot(*shift):.2f} px"]
    return cal


def assumed(pixel_inv_angstrom: float, shape, *, why: str) -> Calibration:
    """A calibration that is assumed, not measured: warns loudly and records it."""
    msg = (f"ASSUMED detector calibration {pixel_inv_angstrom:.5g} 1/Å per pixel, centre at the pattern centre, "
           f"no ellipticity ({why}); measure it with 'layerscope fourd-calibrate' or give --calibration / "
           "--pixel-size")
    warnings.warn(msg, AssumedCalibrationWarning, stacklevel=2)
    return Calibration(float(pixel_inv_angstrom), (shape[0] / 2.0, shape[1] / 2.0), assumed=True, notes=[msg],
                       source="ASSUMED")


def recentre(data, origins: np.ndarray, centre, *, path=None, min_spread_px: float = 0.1):
    """Shift every pattern of a (dask) scan so that its origin lands on ``centre`` (descan correction).

    Returns ``data`` unchanged when the origins spread by less than ``min_spread_px``.
    """
    import dask.array as da

    origins = np.asarray(origins, float)
    if origins.shape != (*data.shape[:2], 2):
        raise InputError(f"per-position origins for a {data.shape[0]}×{data.shape[1]} scan, got shape "
                         f"{origins.shape[:2]} (calibrated on another scan?)", path=path)
    if np.ptp(origins[..., 0]) < min_spread_px and np.ptp(origins[..., 1]) < min_spread_px:
        return data
    arr = data if isinstance(data, da.Array) else da.from_array(data, chunks=(16, 16, -1, -1))
    arr = arr.rechunk((arr.chunksize[0], arr.chunksize[1], -1, -1))

    def shift_block(block, block_info=None):
        (y0, _), (x0, _) = block_info[0]["array-location"][:2]
        out = np.empty(block.shape, np.float32)
        for i in range(block.shape[0]):
            for j in range(block.shape[1]):
                o = origins[y0 + i, x0 + j]
                out[i, j] = ndimage.shift(np.asarray(block[i, j], np.float32),
                                          (centre[0] - o[0], centre[1] - o[1]), order=1, mode="constant")
        return out

    return arr.map_blocks(shift_block, dtype=np.float32)


def calibration_figure(cal, pattern):
    """The (mean) ring pattern on a log scale with the fitted rings (orange) and their hkl.

    Parameters
    ----------
    cal : Calibration
        The calibration (centre and ring radii in px, ellipse).
    pattern : array (ky, kx)
        The pattern it was fitted to (counts).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure list

    fig = Figure(figsize=(5.5, 5.5))
    ax = fig.subplots()
    ax.imshow(np.log1p(np.clip(pattern, 0, None)), cmap="gray")
    if cal.ring_radii_px:
        t = np.linspace(0, 2 * np.pi, 361)
        minv = np.linalg.inv(cal.distortion())
        for r, hkl in zip(cal.ring_radii_px, cal.ring_hkl):
            d = minv @ np.stack([r * np.cos(t), r * np.sin(t)])
            ax.plot(cal.center_px[1] + d[0], cal.center_px[0] + d[1], lw=0.6, color="orange")
            ax.annotate("".join(str(v) for v in hkl), (cal.center_px[1] + d[0, 0], cal.center_px[0] + d[1, 0]),
                        color="cyan", fontsize=7)
    ax.set_title(f"{cal.pixel_inv_angstrom or float('nan'):.5g} 1/Å/px, ellipticity {cal.ellipticity:.4f} at "
                 f"{cal.ellipse_angle_deg:.1f}°", fontsize=9)
    return fig
