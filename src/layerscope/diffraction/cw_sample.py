"""Sample intensity corrections in GSAS-II's forms: March–Dollase preferred orientation, cylinder
absorption (constant wavelength, and time-of-flight with μR ∝ λ) and Bragg–Brentano surface
roughness.

* **March–Dollase** (W. A. Dollase, J. Appl. Cryst. 19, 267 (1986); GSAS-II ``GetPrefOri``): with the
  ratio r along a reciprocal-lattice axis **a** (``[0, 0, 1]``: the c* normal of the (00l) planes),
  POcorr(h) = ⟨(r² cos²P + sin²P / r)^(−3/2)⟩ over the symmetry-equivalent reflections h′ of h,
  P the angle between h′ and **a** in the reciprocal metric. r = 1: no texture; r < 1: plates lying
  with **a** along the scattering vector of a symmetric flat-plate scan (their (00l) lines enhanced);
  r > 1: needles.
* **Cylinder absorption** (Debye–Scherrer; GSAS-II ``Absorb('Cylinder', μR, 2θ)``): the transmission
  interpolation of A. Lobanov & L. Alte da Veiga (6th European Powder Diffraction Conference,
  abstract P12-16, 1998), a polynomial in μR for μR ≤ 3 and a rational form above, with coefficients
  in sin²θ. For time of flight GSAS-II scales μR with each reflection's wavelength λ = 2 d sin θ_bank
  (``Absorption`` is then μR at 1 Å): :func:`tof_cylinder_absorption`.
* **Surface roughness** (P. Suortti, J. Appl. Cryst. 5, 325 (1972); GSAS-II ``SurfaceRough``) for
  Bragg–Brentano: (A + (1 − A) e^(−B/sin θ)) / (A + (1 − A) e^(−B)), 1 at 2θ = 180°; A = B = 0 is 1.

These are short closed forms, written here (jax.numpy, differentiable) from the publications' and
GSAS-II's formulas; no library provides them for a JAX model.
"""

from __future__ import annotations

import math

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.crystal.geometry import reciprocal_metric  # noqa: E402

__all__ = ["equivalent_reflections", "march_dollase", "cylinder_absorption", "tof_cylinder_absorption",
           "surface_roughness"]

_RPD = math.pi / 180.0


def equivalent_reflections(hkl, rotations) -> tuple[np.ndarray, np.ndarray]:
    """All distinct h·R of each reflection (Friedel mates included), padded: (n, k, 3) and a (n, k)
    0/1 mask. ``rotations``: the space group's rotation matrices (acting on fractional coordinates;
    reciprocal vectors transform as h′ = h R)."""
    hkl = np.asarray(hkl, dtype=int)
    rots = np.asarray(rotations, dtype=int)
    rows = []
    for h in hkl:
        eq = {tuple(int(v) for v in h @ r) for r in rots}
        eq |= {tuple(-v for v in e) for e in eq}
        rows.append(sorted(eq))
    k = max(len(r) for r in rows)
    out = np.zeros((len(hkl), k, 3), dtype=float)
    mask = np.zeros((len(hkl), k), dtype=float)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
        mask[i, :len(r)] = 1.0
    return out, mask


def march_dollase(ratio, axis, equivalents, mask, cell, xp=jnp):
    """GSAS-II's March–Dollase factor of each reflection (see the module docstring)."""
    gs = reciprocal_metric(cell, xp)
    ax = xp.asarray(axis, dtype=float)
    h = xp.asarray(equivalents)
    hg = xp.einsum("nki,ij->nkj", h, gs)
    hh = xp.einsum("nkj,nkj->nk", hg, h)
    ha = hg @ ax
    aa = ax @ gs @ ax
    c2 = ha * ha / (xp.where(hh > 0, hh, 1.0) * aa)
    c2 = xp.clip(c2, 0.0, 1.0)
    a = (ratio * ratio * c2 + (1.0 - c2) / ratio) ** -1.5
    m = xp.asarray(mask)
    return xp.sum(a * m, axis=1) / xp.sum(m, axis=1)


def cylinder_absorption(mur, two_theta_deg, xp=jnp):
    """Relative transmission of a fully bathed cylinder of radius R (Lobanov & Alte da Veiga as
    GSAS-II ``Absorb`` writes it); 1 at μR = 0."""
    s2 = xp.sin(two_theta_deg * _RPD / 2.0) ** 2
    mur = mur * xp.ones_like(s2)
    t0 = 16.0 / (3.0 * math.pi)
    t1 = (25.99978 - 0.01911 * s2**0.25) * xp.exp(-0.024551 * s2) + 0.109561 * xp.sqrt(s2) - 26.04556
    t2 = -0.02489 - 0.39499 * s2 + 1.219077 * s2**1.5 - 1.31268 * s2**2 + 0.871081 * s2**2.5 - 0.2327 * s2**3
    t3 = 0.003045 + 0.018167 * s2 - 0.03305 * s2**2
    low_mur = xp.minimum(mur, 3.0)
    under = xp.exp(-t0 * low_mur - t1 * low_mur**2 - t2 * low_mur**3 - t3 * low_mur**4)
    u1 = 1.433902 + 11.07504 * s2 - 8.77629 * s2 * s2 + 10.02088 * s2**3 - 3.36778 * s2**4
    u2 = (0.013869 - 0.01249 * s2) * xp.exp(3.27094 * s2) + (0.337894 + 13.77317 * s2) / (1.0 + 11.53544 * s2) ** 1.555039
    u3 = 1.933433 / (1.0 + 23.12967 * s2) ** 1.686715 - 0.13576 * xp.sqrt(s2) + 1.163198
    u4 = 0.044365 - 0.04259 / (1.0 + 0.41051 * s2) ** 148.4202
    high_mur = xp.maximum(mur, 3.0)
    over = ((u1 - u4) / (1.0 + u2 * (high_mur - 3.0)) ** u3 + u4) / 100.0
    return xp.where(mur <= 3.0, under, over)


def tof_cylinder_absorption(mur_1a, d, two_theta_bank_deg, xp=jnp):
    """Time of flight: μR = ``mur_1a``·λ with λ = 2 d sin θ_bank (Å), at the bank's 2θ (GSAS-II)."""
    lam = 2.0 * xp.asarray(d) * math.sin(abs(two_theta_bank_deg) * _RPD / 2.0)
    return cylinder_absorption(mur_1a * lam, abs(two_theta_bank_deg) * xp.ones_like(lam), xp)


def hewat_cylinder_absorption(mur, two_theta_deg, xp=jnp):
    """Hewat's approximation of the relative transmission of a cylinder of radius R (A. W. Hewat,
    Acta Cryst. A35 (1979) 248), the one FullProf uses (its TOF ``Iabscor = 2``):
    A = exp(−(1.7133 − 0.0368 sin²θ)·μR + (0.0927 + 0.375 sin²θ)·(μR)²); 1 at μR = 0, for μR ≲ 1.
    It reproduces the CORR column of FullProf 8.40's reflection lists to their 6 printed digits
    (``tests/test_pcr_fullprof.py``); GSAS-II's Lobanov form differs by up to 1e-3 there."""
    s2 = xp.sin(two_theta_deg * _RPD / 2.0) ** 2
    return xp.exp(-(1.7133 - 0.0368 * s2) * mur + (0.0927 + 0.375 * s2) * mur * mur)


def tof_hewat_absorption(mur_1a, d, two_theta_bank_deg, xp=jnp):
    """Time of flight, FullProf's ``Iabscor = 2``: Hewat's cylinder at μR = ``mur_1a``·λ, λ = 2 d sin θ_bank."""
    lam = 2.0 * xp.asarray(d) * math.sin(abs(two_theta_bank_deg) * _RPD / 2.0)
    return hewat_cylinder_absorption(mur_1a * lam, abs(two_theta_bank_deg) * xp.ones_like(lam), xp)


def tof_extinction(ext, f2_fullprof, lam, volume):
    """FullProf's TOF extinction factor E = (1 + Ext·|F|²·λ²/V²)^(−1/2) (|F|² in 10⁻²⁴ cm², λ = 2 d sin θ
    in Å, V in Å³), the form of Sabine's x = (λ·F·l/V)² with Ext in the role of l². Read off and checked
    against the CORR column of FullProf 8.40's reflection list of its arg_si_ic job (Si, SEPD, Extinc
    4.03, with Hewat's absorption): at the Extinc the listing implies (4.0337; final 4.0301(2.69)) all 26
    listed CORR agree within 2.5e-6 (``tests/test_pcr_fullprof.py``). Only that bank (2θ = 144.8°) was
    checked, so a pure sin θ factor would go unnoticed."""
    return (1.0 + ext * f2_fullprof * lam * lam / (volume * volume)) ** -0.5


def surface_roughness(sra, srb, two_theta_deg, xp=jnp):
    """Suortti's Bragg–Brentano surface-roughness factor (GSAS-II ``SurfaceRough``)."""
    sth = xp.sin(two_theta_deg * _RPD / 2.0)
    return (sra + (1.0 - sra) * xp.exp(-srb / sth)) / (sra + (1.0 - sra) * xp.exp(-srb))
