"""Constant-wavelength peak positions, widths and profile in GSAS-II's terms.

Positions (degrees 2θ; GSAS-II ``GetReflPos``; ``R`` = goniometer radius in mm, Shift and the
displacements in µm, Transparency in 1/cm as GSAS-II keeps them)::

    pos = 2·asin(λ/2d)·180/π + Zero − c·[4·Shift·cos(pos/2) + 100·Transparency·sin(pos)]   Bragg–Brentano
    pos = 2·asin(λ/2d)·180/π + Zero − c·[DisplaceX·cos(pos) + DisplaceY·sin(pos)]          Debye–Scherrer
    c = 0.09/(π·R),   Kα2: pos₂ = pos + (360/π)·(λ₂ − λ₁)/λ₁·tan(pos/2)

Widths (θ = pos/2; sig = Gaussian variance in centideg², gam = Lorentzian FWHM in centideg)::

    sig = max(0.001, U tan²θ + V tanθ + W + ((1−mx_s)S_g)²/(8 ln2) + ((1−mx_m)M_g)²/(8 ln2))
    gam = max(0.001, X/cosθ + Y tanθ + Z + mx_s S_g + mx_m M_g)
    S_g = 1.8 λ/(π size_µm cosθ),   M_g = 0.018 microstrain tanθ/π

Profile: the pseudo-Voigt of Thompson, Cox & Hastings (J. Appl. Cryst. 20, 79 (1987)) with both
components at the TCH total FWHM (GSAS ``PSVOIGT``), convolved with the Finger–Cox–Jephcoat
axial-divergence function (J. Appl. Cryst. 27, 892 (1994)) by Gauss–Legendre quadrature over
2φ from 2φ_min to 2θ, as GSAS ``PSVFCJO`` with S/L = H/L = SH/L/2 (GSAS-II ``getFCJVoigt3``)::

    cos 2φ_min = √(1 + (S/L+H/L)²)·cos 2θ
    P(Δ) = Σ_k w_k G_k pV(Δ + 2θ − δ_k) / Σ_k w_k G_k,    δ_k = 2φ_min + (2θ − 2φ_min)·x_k
    G_k = (−1 + (S/L+H/L)·F_k)/cos δ_k,   F_k = |cos 2θ| / √(sin²2θ − sin²δ_k)

with x_k, w_k the positive half of an n-point Gauss–Legendre rule; n is GSAS's choice, the
smallest of (2, 4, …, 30, 40, …, 120, 140, …, 300, 400) ≥ int(300·|2θ − 2φ_min|/gam)
(:func:`fcj_nodes`). P has unit area in centidegrees. ``convention="gsas2"`` also keeps GSAS's
Lorentzian normalisation constant π ≈ 3.1415292654 (a 2·10⁻⁵ relative difference in the
Lorentzian part) and its 2.35482005, 2.506628275 and the −20 floor of the Gaussian exponent.

These are pure JAX functions (float64); the refinement differentiates them by autodiff. The
quadrature nodes are chosen in numpy for given positions and widths and then held fixed.
"""

from __future__ import annotations

import math

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["two_theta_position", "ka2_position", "cw_sig_gam", "tch_pseudo_voigt", "fcj_nodes", "fcj_profile",
           "polarization", "lorentz_factor", "gsas2_window", "SHL_MIN"]

SHL_MIN = 0.002
_RPD = math.pi / 180.0
_NTERMS = np.array([2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120,
                    140, 160, 180, 200, 220, 240, 260, 280, 300, 400])
_GSAS_PI = 3.1415292654
_STOFW = 2.35482005
_SQ2PI = 2.506628275
_COFT = (1.0, 2.69269, 2.42843, 4.47163, 0.07842, 1.0)
_COFN = (1.36603, -0.47719, 0.11116)


def two_theta_position(d, lam, zero=0.0, *, geometry="Bragg-Brentano", shift=0.0, transparency=0.0,
                       displace_x=0.0, displace_y=0.0, gonio_radius=200.0, xp=jnp):
    """Peak position (degrees 2θ) of d (Å) at wavelength λ (Å), GSAS-II's sample terms."""
    pos = 2.0 * xp.arcsin(lam / (2.0 * d)) / _RPD + zero
    c = 0.09 / (math.pi * gonio_radius)
    if geometry.lower().startswith("bragg"):
        pos = pos - c * (4.0 * shift * xp.cos(pos * _RPD / 2.0) + 100.0 * transparency * xp.sin(pos * _RPD))
    else:
        pos = pos - c * (displace_x * xp.cos(pos * _RPD) + displace_y * xp.sin(pos * _RPD))
    return pos


def ka2_position(pos, lam1, lam2, xp=jnp):
    """Kα2 position: pos + (360/π)(λ₂ − λ₁)/λ₁·tan(pos/2)."""
    return pos + 360.0 / math.pi * (lam2 - lam1) / lam1 * xp.tan(pos * _RPD / 2.0)


def cw_sig_gam(pos, lam, u, v, w, x, y, z, size_um=np.inf, mustrain=0.0, mx_size=1.0, mx_strain=1.0, xp=jnp):
    """GSAS-II's sig (centideg²) and gam (centideg) at 2θ = pos (degrees)."""
    th = pos * _RPD / 2.0
    tn, cs = xp.tan(th), xp.cos(th)
    sig = u * tn**2 + v * tn + w
    gam = x / cs + y * tn + z
    s_g = 1.8 * lam / (math.pi * size_um * cs)
    m_g = 0.018 * mustrain * tn / math.pi
    gam = gam + mx_size * s_g + mx_strain * m_g
    sig = sig + (((1.0 - mx_size) * s_g) ** 2 + ((1.0 - mx_strain) * m_g) ** 2) / (8.0 * math.log(2.0))
    return xp.maximum(sig, 0.001), xp.maximum(gam, 0.001)


def tch_pseudo_voigt(dx, sig, gam, *, convention="gsas2"):
    """TCH pseudo-Voigt of GSAS ``PSVOIGT`` at dx (centideg); sig centideg², gam centideg FWHM."""
    gsas = convention == "gsas2"
    stofw = _STOFW if gsas else math.sqrt(8.0 * math.log(2.0))
    sq2pi = _SQ2PI if gsas else math.sqrt(2.0 * math.pi)
    pi = _GSAS_PI if gsas else math.pi
    fg = stofw * jnp.maximum(jnp.sqrt(sig), 0.001)
    c = _COFT
    f5 = (c[0] * fg**5 + c[1] * fg**4 * gam + c[2] * fg**3 * gam**2 + c[3] * fg**2 * gam**3
          + c[4] * fg * gam**4 + c[5] * gam**5)
    fwhm = f5 ** 0.2
    q = gam / fwhm
    eta = _COFN[0] * q + _COFN[1] * q**2 + _COFN[2] * q**3
    tl = 2.0 * fwhm / pi / (fwhm**2 + 4.0 * dx**2)
    sigp = (fwhm / stofw) ** 2
    ex = -0.5 * dx**2 / sigp
    if gsas:
        ex = jnp.maximum(ex, -20.0)
    tg = stofw * jnp.exp(ex) / (sq2pi * fwhm)
    return eta * tl + (1.0 - eta) * tg


def _emin_deg(tth_deg, shl, xp=np):
    c2 = xp.cos(tth_deg * _RPD)
    t = xp.sqrt(1.0 + shl**2) * c2
    inside = xp.abs(t) <= 1.0
    em = xp.arccos(xp.clip(t, -1.0, 1.0)) / _RPD
    return xp.where(inside, em, xp.where(t > 0, 0.0, 180.0))


def fcj_nodes(tth_deg, gam, shl) -> tuple[np.ndarray, np.ndarray]:
    """GSAS's Gauss–Legendre nodes for each peak: (x, w) of shape (n_peaks, H), zero-padded.

    x ∈ (0, 1) are the positive half of the n-point rule that GSAS ``PSVFCJO`` picks for that
    peak's 2θ, gam and SH/L; H is the largest half-size among the peaks.
    """
    tth = np.atleast_1d(np.asarray(tth_deg, dtype=float))
    gam = np.broadcast_to(np.asarray(gam, dtype=float), tth.shape)
    shl = np.broadcast_to(np.asarray(shl, dtype=float), tth.shape)
    span = np.abs(tth - _emin_deg(tth, shl))
    k = np.where(gam > 0, np.floor(300.0 * span / np.where(gam > 0, gam, 1.0)), np.floor(span * 200.0))
    idx = np.minimum(np.searchsorted(_NTERMS, k, side="left"), len(_NTERMS) - 1)
    ngt = _NTERMS[idx]
    half = int(ngt.max()) // 2 if ngt.size else 1
    xs = np.zeros((tth.size, half))
    ws = np.zeros((tth.size, half))
    cache = {}
    for i, n in enumerate(ngt):
        if n not in cache:
            xg, wg = np.polynomial.legendre.leggauss(int(n))
            cache[n] = (xg[n // 2:], wg[n // 2:])
        xg, wg = cache[n]
        xs[i, :n // 2] = xg
        ws[i, :n // 2] = wg
    return xs, ws


def fcj_profile(dx, tth_deg, sig, gam, shl, xq, wq, *, convention="gsas2"):
    """FCJ-convolved TCH pseudo-Voigt (1/centideg) at dx = x − pos (degrees).

    Shapes: ``dx`` (..., K) for peaks (...,); ``tth_deg``, ``sig``, ``gam``, ``shl`` (...,);
    ``xq``, ``wq`` (..., H) from :func:`fcj_nodes` (zero weights are padding).
    """
    shl = jnp.maximum(shl, SHL_MIN)
    c2 = jnp.cos(tth_deg * _RPD)
    s2 = jnp.sin(tth_deg * _RPD)
    t = jnp.sqrt(1.0 + shl**2) * c2
    emin = jnp.where(jnp.abs(t) <= 1.0, jnp.arccos(jnp.clip(t, -1.0, 1.0)) / _RPD, jnp.where(t > 0, 0.0, 180.0))
    delta = emin[..., None] + (tth_deg - emin)[..., None] * xq                   # (..., H) degrees
    cd, sd = jnp.cos(delta * _RPD), jnp.sin(delta * _RPD)
    low = (tth_deg <= 45.0)[..., None]
    tmp = jnp.where(low, s2[..., None] ** 2 - sd**2, cd**2 - c2[..., None] ** 2)
    pos_tmp = tmp > 0
    f = jnp.where(pos_tmp, jnp.abs(c2)[..., None] / jnp.sqrt(jnp.where(pos_tmp, tmp, 1.0)), 1.0)
    g = (-1.0 + shl[..., None] * f) / cd
    wg = wq * g                                                                   # (..., H)
    arg = (dx[..., :, None] + (tth_deg[..., None, None] - delta[..., None, :])) * 100.0   # (..., K, H) centideg
    r = tch_pseudo_voigt(arg, sig[..., None, None], gam[..., None, None], convention=convention)
    return jnp.sum(r * wg[..., None, :], axis=-1) / jnp.sum(wg, axis=-1)[..., None]


def polarization(pos, polariz, azimuth=0.0, xp=jnp):
    """GSAS-II's X-ray polarization factor at 2θ = pos (degrees); P = Polariz., A = Azimuth."""
    c2 = xp.cos(pos * _RPD) ** 2
    ca, sa = math.cos(azimuth * _RPD) ** 2, math.sin(azimuth * _RPD) ** 2
    return ((1 - polariz) * ca + polariz * sa) * c2 + (1 - polariz) * sa + polariz * ca


def lorentz_factor(pos, xp=jnp):
    """1/(2 sin²θ cosθ), θ = pos/2 (GSAS-II's CW Lorentz factor)."""
    th = pos * _RPD / 2.0
    return 1.0 / (2.0 * xp.sin(th) ** 2 * xp.cos(th))


def gsas2_window(x, pos, sig, gam, shl) -> tuple[np.ndarray, np.ndarray]:
    """GSAS-II's peak window on grid x: indices [iBeg, iFin) from pos − 50(FWHM + SH/L|cos pos|) to
    pos + 75·FWHM (sides swapped above 90°), FWHM = 2.355√sig/100 + gam/100 degrees."""
    pos, sig, gam = (np.asarray(a, dtype=float) for a in (pos, sig, gam))
    fwhm = 2.355 * np.sqrt(sig) / 100.0 + gam / 100.0
    fmin = 50.0 * (fwhm + np.maximum(shl, SHL_MIN) * np.abs(np.cos(pos * _RPD)))
    fmax = 75.0 * fwhm
    hi = pos > 90.0
    fmin, fmax = np.where(hi, fmax, fmin), np.where(hi, fmin, fmax)
    return np.searchsorted(x, pos - fmin), np.searchsorted(x, pos + fmax)
