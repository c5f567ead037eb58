"""Phase and orientation indexing of 4D-STEM patterns by template matching.

For every pattern and every template the score is the normalised cross-correlation
of the pattern with the template rotated in-plane by α,

    C(α) = Σ_{r,φ} P(r, φ) T(r, φ − α) / (‖P‖ ‖T‖),

evaluated in polar coordinates, where a rotation is a shift along φ. By the
correlation theorem, C(α) = irfft_φ[Σ_r P̂_r(k) T̂_r(k)*] / (‖P‖‖T‖), so the best
in-plane angle of a template costs one inverse FFT (Rauch & Dupuy, Arch. Metall.
Mater. 50, 87 (2005) for template matching; Cautaerts et al., Ultramicroscopy 237,
113517 (2022) for the polar/in-plane search used by pyxem).

Two stages keep this fast for libraries of ~10⁴ templates:

1. Screening. By Cauchy–Schwarz, max_α C(α) ≤ Σ_{r,k} c_k |P̂_r(k)||T̂_r(k)| / (n_φ‖P‖‖T‖)
   (c_0 = 1, c_k = 2): a rotation-invariant bound that is one matrix product
   between pattern and template descriptors. It is evaluated with the first
   ``harmonics`` angular harmonics and ranks all templates.
2. Refinement. The ``top_n`` best-ranked templates of every phase get the exact
   C(α) on the full φ grid; the maximum is refined by a parabola through the
   three samples around it.

Templates are kept as spot lists; their angular Fourier coefficients are
analytic (a spot is a Gaussian in r and φ, with angular width σ_r / r).

Per pattern the result holds the phase, the orientation U = R_z(α)·U_template
(crystal Cartesian → lab), the correlation, the phase reliability
100·(1 − C_other phase / C_best) and the orientation reliability
100·(1 − C_second / C_best), where C_second is the best candidate of the same phase
misoriented by more than ``distinct_deg`` (Laue-class symmetry taken into account).
Vacuum (scattered fraction below ``vacuum_fraction``) and amorphous carbon (its
ring template correlates better than any crystal) are phases of their own.

Written by hand: pyxem and py4DSTEM implement template matching, but neither
exposes the two-stage bound/refine kernel as a pure array function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from layerscope.fourd.library import TemplateLibrary, amorphous_carbon_rings

__all__ = ["Matcher", "prepare_matcher", "index_patterns", "FIELDS", "misorientation_deg", "rotation_from_fields"]

#: columns of the per-pattern result vector
FIELDS = ("phase", "template", "alpha_rad", "flip", "correlation", "phase_reliability",
          "orientation_reliability", "scattered_fraction")


@dataclass(frozen=True)
class Matcher:
    """Everything the matching kernel needs, precomputed from a library."""

    library: TemplateLibrary
    polar: sparse.csr_matrix
    r_px: np.ndarray
    n_phi: int
    harmonics: int
    n_k: int
    descriptors: np.ndarray          # (n_templates, n_r*harmonics) float32, /‖T‖
    template_norm: np.ndarray        # (n_templates,)
    top_n: int
    sigma_r_px: float
    amorphous_profile: np.ndarray | None
    vacuum_fraction: float
    distinct_deg: float
    gamma: float

    @property
    def phase_names(self) -> tuple[str, ...]:
        """Names of the phase codes: 0 vacuum, 1 amorphous carbon, then the library's phases."""
        return ("vacuum", "aC", *self.library.phase_names)


def _polar_matrix(geometry, r_px, n_phi) -> sparse.csr_matrix:
    """Bilinear interpolation from the detector grid to (r, φ) samples as a sparse matrix."""
    ky, kx = geometry.shape
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    rr, pp = np.meshgrid(r_px, phi, indexing="ij")
    x = geometry.centre_px[1] + rr * np.cos(pp)
    y = geometry.centre_px[0] + rr * np.sin(pp)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    rows, cols, vals = [], [], []
    row = np.arange(rr.size).reshape(rr.shape)
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < ky) & (xx >= 0) & (xx < kx)
        rows.append(row[ok]), cols.append((yy * kx + xx)[ok]), vals.append(w[ok])
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(rr.size, ky * kx), dtype=np.float32)


def _template_fourier(lib: TemplateLibrary, idx, r_px, n_phi, n_k, sigma_r) -> np.ndarray:
    """Angular Fourier coefficients T̂_r(k), k < n_k, of templates ``idx`` (complex64)."""
    rs, ps, ws = lib.spots_r_px[idx], lib.spots_phi[idx], lib.spots_w[idx]     # (n, s) float32
    radial = np.exp(-0.5 * ((r_px.astype(np.float32)[None, :, None] - rs[:, None, :]) / np.float32(sigma_r)) ** 2)
    sig_phi = np.float32(sigma_r) / np.maximum(rs, np.float32(1.0))
    k = np.arange(n_k, dtype=np.float32)
    amp = (ws * np.float32(n_phi / np.sqrt(2 * np.pi)) * sig_phi)[:, :, None] * \
        np.exp(np.float32(-0.5) * (k[None, None, :] * sig_phi[:, :, None]) ** 2)
    spec = amp * np.exp(np.complex64(-1j) * (k[None, None, :] * ps[:, :, None]))   # (n, s, k) complex64
    return np.matmul(radial.astype(np.complex64), spec)


def _norm_from_fourier(t_hat, n_phi) -> np.ndarray:
    p = np.abs(t_hat) ** 2
    return np.sqrt((p[..., 0].sum(-1) + 2 * p[..., 1:].sum((-1, -2))) / n_phi)


def prepare_matcher(library: TemplateLibrary, *, n_phi: int = 360, harmonics: int = 12, top_n: int = 6,
                    include_amorphous: bool = True, vacuum_fraction: float = 0.01, distinct_deg: float = 5.0,
                    gamma: float = 0.5, batch: int = 2048) -> Matcher:
    """Precompute the polar transform and the screening descriptors of a library.

    ``gamma`` compresses pattern intensities (P^γ) as the templates use √I weights.
    """
    geo = library.geometry
    r_min = max(2.5 * geo.disc_radius_px, 3.0)
    r_max = min(geo.centre_px[0], geo.centre_px[1], geo.shape[0] - 1 - geo.centre_px[0],
                geo.shape[1] - 1 - geo.centre_px[1]) - 1
    r_px = np.arange(r_min, r_max, 1.0)
    sigma_r = 0.6 * geo.disc_radius_px + 0.3
    n_k = n_phi // 2 + 1
    k_use = min(n_k, int(np.ceil(2.5 * r_max / sigma_r)))
    desc, norms = [], []
    kw = np.where(np.arange(harmonics) == 0, 1.0, 2.0) ** 0.5
    for s in range(0, len(library), batch):
        idx = np.arange(s, min(s + batch, len(library)))
        t = _template_fourier(library, idx, r_px, n_phi, k_use, sigma_r)
        nrm = _norm_from_fourier(t, n_phi)
        d = np.abs(t[:, :, :harmonics]) * kw / np.maximum(nrm, 1e-30)[:, None, None]
        desc.append(d.reshape(len(idx), -1).astype(np.float32))
        norms.append(nrm)
    prof = None
    if include_amorphous:
        q, w, a = amorphous_carbon_rings()
        g = r_px * geo.pixel_inv_angstrom
        prof = sum(ai * np.exp(-0.5 * ((g - qi) / wi) ** 2) for qi, wi, ai in zip(q, w, a)) ** gamma
    return Matcher(library, _polar_matrix(geo, r_px, n_phi), r_px, n_phi, harmonics, k_use,
                   np.concatenate(desc), np.concatenate(norms), top_n, sigma_r, prof, vacuum_fraction,
                   distinct_deg, gamma)


def _rot_z(alpha):
    c, s = np.cos(alpha), np.sin(alpha)
    z, o = np.zeros_like(alpha), np.ones_like(alpha)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def misorientation_deg(u1, u2, symmetry, *, friedel: bool = True) -> np.ndarray:
    """Smallest rotation angle (deg) between orientations u1, u2 (…, 3, 3) given crystal symmetry.

    Orientations U map crystal Cartesian → lab; U and U·S are the same for S in
    ``symmetry`` (proper rotations of the Laue class). With ``friedel``, U and
    R_z(180°)·U also count as the same: their zero-order Laue-zone patterns are
    identical because kinematic intensities obey I(g) = I(−g), so no diffraction
    pattern (and no template matcher) can tell them apart.
    """
    u2 = np.asarray(u2, dtype=float)
    cands = [u2, np.einsum("ij,...jk->...ik", np.diag([-1.0, -1.0, 1.0]), u2)] if friedel else [u2]
    best = None
    for v in cands:
        d = np.einsum("...ji,...jk->...ik", v, u1)                # vᵀ u1
        tr = np.einsum("...ij,sji->...s", d, symmetry).max(-1)    # trace(d S)
        best = tr if best is None else np.maximum(best, tr)
    return np.degrees(np.arccos(np.clip((best - 1) / 2, -1, 1)))


_FLIP = np.diag([-1.0, 1.0, -1.0])   # R_y(180°): views the crystal from the other side


def rotation_from_fields(matcher: Matcher, template, alpha, flip=0) -> np.ndarray:
    """Orientation matrices U = R_z(α) [R_y(π)] U_template for result fields (any shape).

    The library holds beam directions of the Laue class's fundamental zone; the
    direction −b (the crystal seen from behind) gives the mirror image of b's
    pattern, so every template is also matched mirrored (``flip = 1``).
    """
    t = np.asarray(template).astype(int)
    u0 = matcher.library.rotation[np.clip(t, 0, None)]
    f = np.asarray(flip)[..., None, None] > 0.5
    u0 = np.where(f, np.einsum("ij,...jk->...ik", _FLIP, u0), u0)
    return np.einsum("...ij,...jk->...ik", _rot_z(np.asarray(alpha, dtype=float)), u0)


def index_patterns(patterns, matcher: Matcher, *, sub_batch: int = 256) -> np.ndarray:
    """Index a stack of patterns (n, ky, kx) → (n, len(FIELDS)) float64 results."""
    pats = np.asarray(patterns, dtype=np.float32)
    if pats.ndim != 3 or pats.shape[1:] != matcher.library.geometry.shape:
        raise ValueError(f"patterns must be (n, {matcher.library.geometry.shape}) arrays, got {pats.shape}")
    if not np.all(np.isfinite(pats)):
        raise ValueError("patterns contain NaN or infinite values")
    out = np.empty((len(pats), len(FIELDS)))
    for s in range(0, len(pats), sub_batch):
        out[s:s + sub_batch] = _index_batch(pats[s:s + sub_batch], matcher)
    return out


def _index_batch(pats: np.ndarray, m: Matcher) -> np.ndarray:
    lib = m.library
    n, n_r = len(pats), len(m.r_px)
    flat = pats.reshape(n, -1)
    total = flat.sum(1)
    polar_raw = (m.polar @ flat.T).T                                     # (n, r*phi)
    ring_area = 2 * np.pi * m.r_px * (1.0)
    scattered = (polar_raw.reshape(n, n_r, m.n_phi).mean(-1) * ring_area).sum(-1) / np.maximum(total, 1e-30)
    polar = np.power(np.maximum(polar_raw, 0), m.gamma).reshape(n, n_r, m.n_phi)
    p_norm = np.sqrt((polar**2).sum((1, 2)))
    p_hat = np.fft.rfft(polar, axis=-1)[:, :, :m.n_k].astype(np.complex64)
    kw = np.where(np.arange(m.harmonics) == 0, 1.0, 2.0) ** 0.5
    dp = (np.abs(p_hat[:, :, :m.harmonics]) * kw).reshape(n, -1).astype(np.float32)
    bound = (dp @ m.descriptors.T) / (m.n_phi * np.maximum(p_norm, 1e-30))[:, None]   # (n, n_templates)

    n_ph = len(lib.phase_names)
    cand = []
    for ip in range(n_ph):
        sel = np.flatnonzero(lib.phase_index == ip)
        k = min(m.top_n, len(sel))
        part = np.argpartition(-bound[:, sel], k - 1, axis=1)[:, :k]
        cand.append(sel[part])
    cand = np.concatenate(cand, axis=1)                                  # (n, n_cand)
    uniq, inv = np.unique(cand, return_inverse=True)
    inv = inv.reshape(cand.shape)
    t_hat = _template_fourier(lib, uniq, m.r_px, m.n_phi, m.n_k, m.sigma_r_px)   # (u, r, k)
    # mirrored template (φ → π − φ): T̂'(k) = (−1)^k conj(T̂(k)), so its cross-spectrum is (−1)^k Σ_r P̂ T̂
    sign = np.where(np.arange(m.n_k) % 2 == 0, 1.0, -1.0).astype(np.float32)
    n_c = cand.shape[1]
    xc = np.empty((n, 2 * n_c, m.n_k), np.complex64)
    for j in range(n_c):  # one candidate slot at a time keeps the gather small
        t_j = t_hat[inv[:, j]]
        xc[:, n_c + j] = sign * (p_hat * t_j).sum(1)
        np.conjugate(t_j, out=t_j)
        xc[:, j] = (p_hat * t_j).sum(1)
    del t_hat
    inv = np.concatenate([inv, inv], axis=1)
    flip = np.concatenate([np.zeros(cand.shape, int), np.ones(cand.shape, int)], axis=1)
    cand = np.concatenate([cand, cand], axis=1)
    t_norm = m.template_norm[uniq]
    c = np.fft.irfft(xc, n=m.n_phi, axis=-1) / (np.maximum(p_norm, 1e-30)[:, None, None] * t_norm[inv][..., None])
    j = np.argmax(c, axis=-1)
    cm, c0, cp = (np.take_along_axis(c, ((j + d) % m.n_phi)[..., None], -1)[..., 0] for d in (-1, 0, 1))
    den = cm - 2 * c0 + cp
    frac = np.where(den < 0, 0.5 * (cm - cp) / np.where(den < 0, den, -1), 0.0)
    alpha = 2 * np.pi * (j + np.clip(frac, -0.5, 0.5)) / m.n_phi
    peak = c0 - 0.25 * (cm - cp) * frac

    cand_phase = lib.phase_index[cand]
    best = np.argmax(peak, axis=1)
    rows = np.arange(n)
    best_c = peak[rows, best]
    best_phase = cand_phase[rows, best]
    other = np.where(cand_phase != best_phase[:, None], peak, -np.inf).max(1)

    # amorphous carbon: rotation-invariant ring template (k = 0 only)
    amorph = np.full(n, -np.inf)
    if m.amorphous_profile is not None:
        prof = m.amorphous_profile
        amorph = (polar.sum(-1) @ prof) / (np.maximum(p_norm, 1e-30) * np.sqrt(m.n_phi) * np.linalg.norm(prof))
    other = np.maximum(other, amorph)

    u_c = rotation_from_fields(m, cand, alpha, flip)                          # (n, n_cand, 3, 3)
    u_b = u_c[rows, best]
    orel = np.zeros(n)
    for ip in range(n_ph):
        sel = best_phase == ip
        if not sel.any():
            continue
        mis = misorientation_deg(u_c[sel], u_b[sel][:, None], lib.symmetry[ip])
        same = cand_phase[sel] == ip
        second = np.where(same & (mis > m.distinct_deg), peak[sel], -np.inf).max(1)
        orel[sel] = np.where(np.isfinite(second), 100 * (1 - second / np.maximum(best_c[sel], 1e-30)), 100.0)

    phase_code = best_phase + 2.0
    is_am = amorph > best_c
    phase_code[is_am] = 1
    is_vac = scattered < m.vacuum_fraction
    phase_code[is_vac] = 0
    corr = np.where(is_am, amorph, best_c)
    prel = 100 * (1 - np.where(is_am, best_c, other) / np.maximum(corr, 1e-30))
    prel[is_vac] = 100.0
    out = np.stack([phase_code, cand[rows, best], alpha[rows, best], flip[rows, best], corr, prel, orel,
                    scattered], axis=1)
    out[is_vac | is_am, 1] = -1
    out[is_vac | is_am, 2:4] = 0.0
    out[is_vac | is_am, 6] = 0.0
    return out
