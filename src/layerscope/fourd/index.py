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
   ``harmonics`` angular harmonics and ranks all templates; the ``top_n`` best of
   every phase are the candidates.
2. Refinement. Patterns are taken in groups of 32 (neighbouring probe positions,
   which share most candidates). For the distinct candidates of a group the exact
   T̂_r(k) is built from the spot lists (a spot is a Gaussian in r and φ with
   angular width σ_r / r, so its angular Fourier coefficients are analytic), and
   Σ_r P̂_r(k) T̂_r(k)* is one batched matrix product for all pattern–candidate
   pairs of the group, mirrored templates included (T̂'(k) = (−1)^k conj T̂(k)).
   C(α) follows on the full φ grid by one inverse FFT; its maximum is refined by a
   parabola through the three samples around it.

Both stages are one JAX function each, compiled for a few padded batch shapes, on
JAX's default device (a GPU when JAX sees one, else the CPU). The polar resampling
before them is a sparse matrix product in SciPy: XLA's CPU gathers are several
times slower for it, and on a GPU machine it is the cheap host-side step.
Positions whose scattered fraction marks them as vacuum skip both stages.

Per pattern the result holds the phase, the orientation U = R_z(α)·U_template
(crystal Cartesian → lab), the correlation, the phase reliability
100·(1 − C_other phase / C_best) and the orientation reliability
100·(1 − C_second / C_best), where C_second is the best candidate of the same phase
misoriented by more than ``distinct_deg`` (Laue-class symmetry taken into account).
Vacuum (scattered fraction below ``vacuum_fraction``; its correlation is reported
as 0) and amorphous carbon (its ring template correlates better than any crystal)
are phases of their own.

"Not indexed" is a class of its own too (the last phase code), never a crystal
phase: a position whose best correlation (crystal or amorphous) is below
``min_correlation`` (default 0.25), or whose scattered signal (counts inside the
matching annulus) is below ``min_signal_counts`` (default 20 counts), gets it, with
its correlation kept and its reliabilities NaN. The defaults were set from data:
near-empty frames of a real Merlin detector (hot pixels and single counts, no
diffraction) correlate at 0.07–0.10 with Al templates, the simulated crystalline
patterns at 0.93, amorphous carbon at 1.0; well-indexed experimental patterns
typically correlate at 0.3–0.8. Data not in detector counts (normalised
patterns) need ``min_signal_counts`` set accordingly.

Written by hand: pyxem and py4DSTEM implement template matching, but neither
exposes the two-stage bound/refine kernel as a pure array function.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy import sparse

from layerscope.fourd.library import TemplateLibrary, amorphous_carbon_rings

__all__ = ["Matcher", "prepare_matcher", "index_patterns", "FIELDS", "misorientation_deg", "rotation_from_fields"]

#: columns of the per-pattern result vector
FIELDS = ("phase", "template", "alpha_rad", "flip", "correlation", "phase_reliability",
          "orientation_reliability", "scattered_fraction")

#: name of the class of positions that cannot be indexed (last phase code)
NOT_INDEXED = "not indexed"
#: default thresholds below which a position is "not indexed" (see the module docstring)
MIN_CORRELATION = 0.25
MIN_SIGNAL_COUNTS = 20.0

#: patterns per candidate group of the refinement stage
_GROUP = 32


@dataclass(frozen=True)
class Matcher:
    """Everything the matching kernel needs, precomputed from a library.

    ``descriptors`` rows follow ``template_order`` (templates sorted by phase);
    ``phase_slices[p]`` is the (start, stop) row range of phase p.
    """

    library: TemplateLibrary
    polar: sparse.csr_matrix
    ring_weights: np.ndarray         # (ky·kx,): pattern · ring_weights = intensity in the polar annulus
    r_px: np.ndarray
    n_phi: int
    harmonics: int
    n_k: int
    descriptors: np.ndarray          # (n_templates, n_r*harmonics) float32, /‖T‖
    template_order: np.ndarray       # (n_templates,) template index of each descriptor row
    phase_slices: tuple[tuple[int, int], ...]
    template_norm: np.ndarray        # (n_templates,)
    top_n: int
    sigma_r_px: float
    amorphous_profile: np.ndarray | None
    vacuum_fraction: float
    distinct_deg: float
    gamma: float
    min_correlation: float = MIN_CORRELATION
    min_signal_counts: float = MIN_SIGNAL_COUNTS

    @property
    def phase_names(self) -> tuple[str, ...]:
        """Names of the phase codes: 0 vacuum, 1 amorphous carbon, then the library's phases,
        then "not indexed"."""
        return ("vacuum", "aC", *self.library.phase_names, NOT_INDEXED)

    @property
    def not_indexed_code(self) -> int:
        """Phase code of positions below the correlation or signal thresholds."""
        return len(self.library.phase_names) + 2

    @cached_property
    def _device(self) -> dict:
        """The arrays the kernels read, placed once on JAX's default device."""
        lib = self.library
        prof = np.zeros(len(self.r_px)) if self.amorphous_profile is None else self.amorphous_profile
        return {
            "desc": jnp.asarray(self.descriptors, jnp.float32),
            "order": jnp.asarray(self.template_order, jnp.int32),
            "prof": jnp.asarray(prof / max(np.linalg.norm(prof), 1e-30), jnp.float32),
            "r_s": jnp.asarray(lib.spots_r_px, jnp.float32),
            "phi_s": jnp.asarray(lib.spots_phi, jnp.float32),
            "w_s": jnp.asarray(lib.spots_w, jnp.float32),
            "t_norm": jnp.asarray(self.template_norm, jnp.float32),
            "r_px": jnp.asarray(self.r_px, jnp.float32),
            "trig": jnp.asarray(_trig_table(self.n_k)),
        }


def _polar_matrix(geometry, r_px, n_phi) -> sparse.csr_matrix:
    """Bilinear interpolation from the detector grid to (r, φ) samples as a sparse matrix."""
    ky, kx = geometry.shape
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    rr, pp = np.meshgrid(r_px, phi, indexing="ij")
    m = geometry.undistort_inverse()     # circularised (r, φ) → detector offsets (identity if no ellipse)
    u, v = rr * np.cos(pp), rr * np.sin(pp)
    x = geometry.centre_px[1] + m[0, 0] * u + m[0, 1] * v
    y = geometry.centre_px[0] + m[1, 0] * u + m[1, 1] * v
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


#: azimuth steps of the cos/sin table that spot phases e^{−ikφ_s} are read from (0.044°)
_N_TRIG = 8192


def _trig_table(n_k: int) -> np.ndarray:
    """cos(kφ_q), sin(kφ_q) for φ_q = 2πq/_N_TRIG, k < n_k: (_N_TRIG, 2 n_k) float32."""
    ang = np.outer(2 * np.pi * np.arange(_N_TRIG) / _N_TRIG, np.arange(n_k))
    return np.concatenate([np.cos(ang), np.sin(ang)], axis=1).astype(np.float32)


def _template_hat(r_s, phi_s, w_s, r_px, trig, *, n_phi: int, sigma_r: float):
    """Angular Fourier coefficients T̂_r(k), k < n_k, of spot templates (…, S) → real, imag (…, R, n_k).

    A spot (r_s, φ_s, w_s) is w_s·exp(−(r − r_s)²/2σ_r²)·exp(−(φ − φ_s)²/2σ_φ²) with
    σ_φ = σ_r / r_s; sampled on n_φ angles its DFT is
    w_s n_φ σ_φ/√(2π) · exp(−k²σ_φ²/2) · e^{−ikφ_s}. The phases come from ``trig``
    (:func:`_trig_table`) at φ_s rounded to 0.044°, far below the angular width of
    a spot (σ_φ ≥ 1°); a table read is several times faster than cos/sin on the CPU.
    """
    f32 = jnp.float32
    n_k = trig.shape[1] // 2
    radial = jnp.exp(-0.5 * ((r_px[:, None] - r_s[..., None, :]) / f32(sigma_r)) ** 2)     # (…, R, S)
    sig_phi = f32(sigma_r) / jnp.maximum(r_s, 1.0)
    q = jnp.round(phi_s * f32(_N_TRIG / (2 * np.pi))).astype(jnp.int32) % _N_TRIG
    cs = jnp.take(trig, q, axis=0)                                                        # (…, S, 2k)
    k = jnp.arange(n_k, dtype=f32)
    env = (w_s * f32(n_phi / np.sqrt(2 * np.pi)) * sig_phi)[..., None] * jnp.exp(-0.5 * (k * sig_phi[..., None]) ** 2)
    re = jnp.einsum("...rs,...sk->...rk", radial, env * cs[..., :n_k])
    im = -jnp.einsum("...rs,...sk->...rk", radial, env * cs[..., n_k:])
    return re, im


def _harmonic_weights(harmonics: int):
    return jnp.where(jnp.arange(harmonics) == 0, 1.0, np.sqrt(2.0)).astype(jnp.float32)


@partial(jax.jit, static_argnames=("n_phi", "harmonics", "sigma_r"))
def _template_stats(r_s, phi_s, w_s, r_px, trig, *, n_phi, harmonics, sigma_r):
    """Norms ‖T‖ and screening descriptors c_k^½|T̂_r(k)|/‖T‖ (k < harmonics) of a batch of templates."""
    re, im = _template_hat(r_s, phi_s, w_s, r_px, trig, n_phi=n_phi, sigma_r=sigma_r)
    p = re * re + im * im
    nrm = jnp.sqrt((p[..., 0].sum(-1) + 2 * p[..., 1:].sum((-1, -2))) / n_phi)
    d = jnp.sqrt(p[..., :harmonics]) * _harmonic_weights(harmonics) / jnp.maximum(nrm, 1e-30)[:, None, None]
    return nrm, d.reshape(len(d), -1)


def prepare_matcher(library: TemplateLibrary, *, n_phi: int = 360, harmonics: int = 12, top_n: int = 6,
                    include_amorphous: bool = True, vacuum_fraction: float = 0.01, distinct_deg: float = 5.0,
                    gamma: float = 0.5, batch: int = 512, min_correlation: float = MIN_CORRELATION,
                    min_signal_counts: float = MIN_SIGNAL_COUNTS) -> Matcher:
    """Precompute the polar transform and the screening descriptors of a library.

    ``gamma`` compresses pattern intensities (P^γ) as the templates use √I weights.
    ``min_correlation`` and ``min_signal_counts`` are the "not indexed" thresholds
    (module docstring).
    """
    if not (0 <= min_correlation < 1) or not (min_signal_counts >= 0):
        raise ValueError(f"need 0 <= min_correlation < 1 and min_signal_counts >= 0, got {min_correlation}, "
                         f"{min_signal_counts}")
    geo = library.geometry
    r_min = max(2.5 * geo.disc_radius_px, 3.0)
    r_max = min(geo.centre_px[0], geo.centre_px[1], geo.shape[0] - 1 - geo.centre_px[0],
                geo.shape[1] - 1 - geo.centre_px[1]) / np.sqrt(geo.ellipticity) - 1
    r_px = np.arange(r_min, r_max, 1.0)
    sigma_r = float(0.6 * geo.disc_radius_px + 0.3)
    n_k = min(n_phi // 2 + 1, int(np.ceil(2.5 * r_max / sigma_r)))
    order = np.argsort(library.phase_index, kind="stable")
    ph = library.phase_index[order]
    slices = tuple((int(np.searchsorted(ph, p)), int(np.searchsorted(ph, p, side="right")))
                   for p in range(len(library.phase_names)))
    if any(s == e for s, e in slices):
        raise ValueError("every phase of the template library needs at least one template")
    spots = [jnp.asarray(a, jnp.float32) for a in (library.spots_r_px, library.spots_phi, library.spots_w)]
    r_dev = jnp.asarray(r_px, jnp.float32)
    trig = jnp.asarray(_trig_table(n_k))
    desc, norms = [], []
    for s in range(0, len(library), batch):
        idx = np.arange(s, s + batch) % len(library)        # fixed batch shape: one compilation
        nrm, d = _template_stats(*(a[idx] for a in spots), r_dev, trig, n_phi=n_phi, harmonics=harmonics,
                                 sigma_r=sigma_r)
        m = min(batch, len(library) - s)
        desc.append(np.asarray(d)[:m]), norms.append(np.asarray(nrm, dtype=float)[:m])
    desc, norms = np.concatenate(desc), np.concatenate(norms)
    prof = None
    if include_amorphous:
        q, w, a = amorphous_carbon_rings()
        g = r_px * geo.pixel_inv_angstrom
        prof = sum(ai * np.exp(-0.5 * ((g - qi) / wi) ** 2) for qi, wi, ai in zip(q, w, a)) ** gamma
    polar = _polar_matrix(geo, r_px, n_phi)
    ring = (polar.T @ np.repeat(2 * np.pi * r_px / n_phi, n_phi)).astype(np.float32)
    return Matcher(library, polar, ring, r_px, n_phi, harmonics, n_k, desc[order], order,
                   slices, norms, top_n, sigma_r, prof, vacuum_fraction, distinct_deg, gamma,
                   float(min_correlation), float(min_signal_counts))


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


def _bucket(n: int, *, lo: int, hi: int) -> int:
    """Smallest power-of-two multiple of ``lo`` ≥ n, capped at max(hi, n) (few distinct compiled shapes)."""
    b = lo
    while b < n:
        b *= 2
    return min(b, max(hi, n)) if hi else b


@partial(jax.jit, static_argnames=("gamma", "harmonics", "n_k", "top_n", "phase_slices", "n_r"))
def _screen(polar_t, desc, order, prof, *, gamma, harmonics, n_k, top_n, phase_slices, n_r):
    """Stage 1 on (R·n_φ, n) polar samples: the ``top_n`` candidates of every phase by the bound.

    Returns P̂ as real and imaginary parts stacked in matrix-product layout
    (k, 2n, R), ‖P‖, candidates (n, C) and the amorphous-carbon correlation.
    """
    n = polar_t.shape[1]
    n_phi = polar_t.shape[0] // n_r
    polar = jnp.maximum(polar_t, 0).reshape(n_r, n_phi, n).transpose(2, 0, 1) ** jnp.float32(gamma)
    p_norm = jnp.sqrt(jnp.sum(polar * polar, axis=(1, 2)))
    safe = jnp.maximum(p_norm, 1e-30)
    p_hat = jnp.fft.rfft(polar, axis=-1)[:, :, :n_k]                                 # (n, R, k)
    dp = (jnp.abs(p_hat[:, :, :harmonics]) * _harmonic_weights(harmonics)).reshape(n, -1)
    bound = (dp @ desc.T) / (n_phi * safe)[:, None]
    cand = jnp.concatenate([order[s + jax.lax.top_k(bound[:, s:e], min(top_n, e - s))[1]]
                            for s, e in phase_slices], axis=1)
    amorph = (p_hat[:, :, 0].real @ prof) / (safe * np.sqrt(n_phi))
    pq = jnp.concatenate([p_hat.real, p_hat.imag], axis=0).transpose(2, 0, 1)     # (k, 2n, R)
    return pq, p_norm, cand, amorph


@partial(jax.jit, static_argnames=("n_phi", "sigma_r"))
def _refine(pq, p_norm, tids, inv, r_s, phi_s, w_s, t_norm, r_px, trig, *, n_phi, sigma_r):
    """Stage 2: C(α) of every pattern against its candidates, plain and mirrored.

    ``pq`` is P̂ from :func:`_screen` (k, 2n, R); ``tids`` (G, V) the distinct
    candidates of each group of n/G neighbouring patterns, ``inv`` (n, C) each
    pattern's candidates as positions in its group's row. All pattern–candidate
    pairs of a group are one matrix product per harmonic.
    Returns the peak correlation and its angle α (rad), (n, 2C): plain, then mirrored.
    """
    n_k, n2, n_r = pq.shape
    n, n_c, (n_g, n_v) = n2 // 2, inv.shape[1], tids.shape
    g = n // n_g
    pq = pq.reshape(n_k, 2, n_g, g, n_r).transpose(2, 0, 1, 3, 4).reshape(n_g, n_k, 2 * g, n_r)
    re, im = _template_hat(r_s[tids], phi_s[tids], w_s[tids], r_px, trig, n_phi=n_phi, sigma_r=sigma_r)
    t = jnp.concatenate([re, im], axis=1).transpose(0, 3, 2, 1)                      # (G, k, R, 2V)
    x = pq @ t                                                # (G, k, 2g, 2V): [Re P, Im P] × [Re T, Im T]
    sel = jnp.broadcast_to(inv.reshape(n_g, 1, g, n_c), (n_g, n_k, g, n_c))

    def pick(rows, cols):  # each pattern's own candidates → (G, k, g, C)
        return jnp.take_along_axis(x[:, :, rows, cols], sel, axis=3)

    ac, ad = pick(slice(0, g), slice(0, n_v)), pick(slice(0, g), slice(n_v, None))
    bc, bd = pick(slice(g, None), slice(0, n_v)), pick(slice(g, None), slice(n_v, None))
    sign = jnp.where(jnp.arange(n_k) % 2 == 0, 1.0, -1.0).astype(jnp.float32)[:, None, None]
    plain = jax.lax.complex(ac + bd, bc - ad)                        # Σ_r P̂ T̂*
    mirror = jax.lax.complex(ac - bd, bc + ad) * sign                # Σ_r P̂ T̂'* with T̂' = (−1)^k conj T̂
    xc = jnp.concatenate([plain, mirror], axis=3).transpose(0, 2, 3, 1).reshape(n, 2 * n_c, n_k)
    tn = jnp.take_along_axis(t_norm[tids].reshape(n_g, 1, n_v), inv.reshape(n_g, g, n_c), axis=2)
    denom = jnp.maximum(p_norm, 1e-30)[:, None] * jnp.tile(tn.reshape(n, n_c), (1, 2))
    c = jnp.fft.irfft(xc, n=n_phi, axis=-1) / denom[..., None]
    j = jnp.argmax(c, axis=-1)
    cm, c0, cp = (jnp.take_along_axis(c, ((j + d) % n_phi)[..., None], -1)[..., 0] for d in (-1, 0, 1))
    den = cm - 2 * c0 + cp
    frac = jnp.where(den < 0, 0.5 * (cm - cp) / jnp.where(den < 0, den, -1.0), 0.0)
    alpha = 2 * np.pi * (j + jnp.clip(frac, -0.5, 0.5)) / n_phi
    peak = c0 - 0.25 * (cm - cp) * frac
    return peak, alpha


def _group_unique(cand: np.ndarray, g: int, *, lo: int = 8):
    """Distinct values of each group of ``g`` consecutive rows → uniq (G, V) padded, inv (n, C) into its row."""
    n, n_c = cand.shape
    flat = cand.reshape(n // g, g * n_c)
    order = np.argsort(flat, axis=1, kind="stable")
    srt = np.take_along_axis(flat, order, axis=1)
    new = np.ones(srt.shape, bool)
    new[:, 1:] = srt[:, 1:] != srt[:, :-1]
    rank = np.cumsum(new, axis=1) - 1
    inv = np.empty_like(rank)
    np.put_along_axis(inv, order, rank, axis=1)
    n_u = int(rank[:, -1].max()) + 1
    n_u = _bucket(n_u, lo=lo, hi=g * n_c) if n_u <= 512 else -(-n_u // 256) * 256
    uniq = np.zeros((len(flat), n_u), np.int32)
    uniq[np.nonzero(new)[0], rank[new]] = srt[new]
    return uniq, inv.reshape(n, n_c).astype(np.int32)


def _match(flat: np.ndarray, m: Matcher):
    """Both stages for (n, ky·kx) patterns: candidates (n, C), peaks and angles (n, 2C), amorphous score."""
    n = len(flat)
    nb = -(-n // 64) * 64 if n > 32 else 32            # padded batch: few compiled shapes
    if nb > n:  # pad with copies of the first pattern: no new candidates, results dropped
        flat = np.concatenate([flat, np.broadcast_to(flat[:1], (nb - n, flat.shape[1]))])
    polar_t = m.polar @ np.ascontiguousarray(flat.T)                                   # (R·n_φ, n)
    dev = m._device
    pq, p_norm, cand, amorph = _screen(jnp.asarray(polar_t), dev["desc"], dev["order"], dev["prof"],
                                       gamma=float(m.gamma), harmonics=m.harmonics, n_k=m.n_k, top_n=m.top_n,
                                       phase_slices=m.phase_slices, n_r=len(m.r_px))
    cand = np.asarray(cand)
    # Groups of neighbouring patterns, each correlated with all its group's distinct candidates:
    # one group when the batch shares few candidates (positions in one grain), smaller groups
    # when candidates differ from pattern to pattern. Cost ≈ templates built (each ~60× a
    # pattern–template product) + pattern–template products.
    options = [_group_unique(cand, g, lo=16 if g == nb else 8) for g in (nb, 64, 32, 16, 8) if g <= nb]
    tids, inv = min(options, key=lambda o: o[0].size * (60 + nb // len(o[0])))
    peak, alpha = _refine(pq, p_norm, jnp.asarray(tids), jnp.asarray(inv), dev["r_s"], dev["phi_s"], dev["w_s"],
                          dev["t_norm"], dev["r_px"], dev["trig"], n_phi=m.n_phi, sigma_r=m.sigma_r_px)
    return (cand[:n], np.asarray(peak, dtype=float)[:n], np.asarray(alpha, dtype=float)[:n],
            np.asarray(amorph, dtype=float)[:n])


def _index_batch(pats: np.ndarray, m: Matcher) -> np.ndarray:
    lib = m.library
    n = len(pats)
    flat = pats.reshape(n, -1)
    total = flat.sum(1)
    signal = (flat @ m.ring_weights).astype(float)
    scattered = signal / np.maximum(total, 1e-30)
    out = np.zeros((n, len(FIELDS)))
    out[:, 1] = -1
    out[:, 5] = 100.0
    out[:, 7] = scattered
    live = np.flatnonzero(scattered >= m.vacuum_fraction)
    if live.size == 0:
        return out
    cand, peak, alpha, amorph = _match(flat[live], m)
    n = len(live)
    if m.amorphous_profile is None:
        amorph = np.full(n, -np.inf)

    flip = np.concatenate([np.zeros(cand.shape, int), np.ones(cand.shape, int)], axis=1)
    cand = np.concatenate([cand, cand], axis=1)
    cand_phase = lib.phase_index[cand]
    best = np.argmax(peak, axis=1)
    rows = np.arange(n)
    best_c = peak[rows, best]
    best_phase = cand_phase[rows, best]
    other = np.where(cand_phase != best_phase[:, None], peak, -np.inf).max(1)
    other = np.maximum(other, amorph)

    u_c = rotation_from_fields(m, cand, alpha, flip)                          # (n, n_cand, 3, 3)
    u_b = u_c[rows, best]
    orel = np.zeros(n)
    for ip in range(len(lib.phase_names)):
        sel = best_phase == ip
        if not sel.any():
            continue
        mis = misorientation_deg(u_c[sel], u_b[sel][:, None], lib.symmetry[ip])
        same = cand_phase[sel] == ip
        second = np.where(same & (mis > m.distinct_deg), peak[sel], -np.inf).max(1)
        orel[sel] = np.where(np.isfinite(second), 100 * (1 - second / np.maximum(best_c[sel], 1e-30)), 100.0)

    is_am = amorph > best_c
    phase_code = np.where(is_am, 1.0, best_phase + 2.0)
    corr = np.where(is_am, amorph, best_c)
    prel = 100 * (1 - np.where(is_am, best_c, other) / np.maximum(corr, 1e-30))
    res = np.stack([phase_code, cand[rows, best], alpha[rows, best], flip[rows, best], corr, prel, orel,
                    scattered[live]], axis=1)
    res[is_am, 1] = -1
    res[is_am, 2:4] = 0.0
    res[is_am, 6] = 0.0
    weak = (corr < m.min_correlation) | (signal[live] < m.min_signal_counts)
    res[weak, 0] = m.not_indexed_code
    res[weak, 1] = -1
    res[weak, 2:4] = 0.0
    res[weak, 5:7] = np.nan
    out[live] = res
    return out
