"""Spherical-harmonics preferred orientation with cylindrical sample symmetry (GSAS-II "SH" in a
histogram's phase terms) and Stephens's generalized microstrain, for the CW model.

Stephens (J. Appl. Cryst. 32, 281 (1999)) as GSAS-II writes it: the microstrain of h is
μ_h = d_h² √(Σ_i S_i m_i(h)) with the Laue-class monomials m_i of GSAS-II ``MustrainCoeff``
(:func:`stephens_monomials`); it replaces the isotropic microstrain in the Lorentzian/Gaussian
strain width M_g = 0.018 μ_h tanθ/π.

    POcorr(h) = 1 + Σ_{L even ≤ order} Σ_N C(L,N) · (4π/(2L+1)) · K_L^N(φ_h, β_h) · k_L(ψ)

K_L^N is the real symmetrised harmonic of the crystal direction of h (φ = angle of h* to c*, or
to the unique axis / [111] as GSAS-II ``CrsAng`` chooses; β its azimuth), k_L(ψ) the M = 0
sample harmonic at the angle ψ between the scattering vector and the sample axis (GSAS-II
``SamAng``: Bragg–Brentano flat plate with coupled ω and 2θ, ψ = 0 for a symmetric scan;
Debye–Scherrer: the cylinder axis). Both use Bunge's normalised associated Legendre functions
written as Fourier series in the angle (GSAS ``PLMPSI``/``APLMS``/``QLMN``: P̄_L^M(ψ) =
Σ_s A′(L,M,s) cos sψ for even M, Σ_s A′ sin sψ for odd M, A′ from Q(L,M,s) Q(L,0,s), Q the
Wigner d^L_{MN}(π/2) from its factorial sum) times 1/√(2π) (and √2 for N ≠ 0). The coefficient
names C(L,N) follow GSAS-II ``GenSHCoeff``/``OdfChk`` for the phase's Laue class (cubic classes,
whose harmonics are combinations tabulated by GSAS-II, are not supported here).
H. J. Bunge, *Texture Analysis in Materials Science* (1982); R. B. Von Dreele, J. Appl. Cryst.
30, 517 (1997).
"""

from __future__ import annotations

import math
from functools import lru_cache

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.crystal.geometry import reciprocal_metric  # noqa: E402
from layerscope.crystal.phase import space_group  # noqa: E402

__all__ = ["laue_class", "sh_terms", "plmpsi", "plm_cos", "crystal_angles", "crystal_direction", "sample_psi",
           "sh_po_correction", "stephens_terms", "stephens_monomials"]

_RPD = math.pi / 180.0


def laue_class(spacegroup: str) -> str:
    """GSAS-II's Laue-class name for a space group ('mmm', '4/mmm', '6/mmm', '3m1', '31m', …)."""
    sg = space_group(spacegroup)
    laue = sg.laue_str()
    if laue in ("m-3", "m-3m"):
        return {"m-3": "m3", "m-3m": "m3m"}[laue]
    if laue in ("-3", "-3m"):
        # GSAS-II's 3R/3mR are the rhombohedral axes (a = b = c, α = β = γ); an R lattice on
        # hexagonal axes (gemmi ext 'H', the usual setting of layered oxides) is 3 / 3m1 there
        if sg.ext == "R":
            return "3R" if laue == "-3" else "3mR"
        if laue == "-3":
            return "3"
        # -3m1 vs -31m: the mirror normal along a (3m1) or along a + 2b (31m)
        return "31m" if sg.hm.replace(" ", "").endswith("1m") else "3m1"
    return laue


def _odfchk(laue: str, L: int, M: int) -> bool:
    if L % 2 or abs(M) > L:
        return False
    if laue == "0":
        return M == 0
    if laue == "-1":
        return True
    if laue == "2/m":
        return abs(M) % 2 == 0
    if laue == "mmm":
        return abs(M) % 2 == 0 and M >= 0
    if laue == "4/m":
        return abs(M) % 4 == 0
    if laue == "4/mmm":
        return abs(M) % 4 == 0 and M >= 0
    if laue in ("3R", "3"):
        return abs(M) % 3 == 0
    if laue in ("3mR", "3m1", "31m"):
        return abs(M) % 3 == 0 and M >= 0
    if laue == "6/m":
        return abs(M) % 6 == 0
    if laue == "6/mmm":
        return abs(M) % 6 == 0 and M >= 0
    raise ValueError(f"spherical-harmonics texture: Laue class {laue!r} (cubic) is not supported")


def sh_terms(laue: str, order: int) -> list[tuple[int, int]]:
    """(L, N) of the coefficients C(L,N) for cylindrical sample symmetry up to ``order``."""
    return [(L, n) for L in range(2, order + 1, 2) for n in range(-L, L + 1) if _odfchk(laue, L, n)]


def _factln(n: int) -> float:
    return math.lgamma(n + 1)


@lru_cache(maxsize=None)
def _qlmn(L: int, mm: int, nn: int) -> float:
    m, n = abs(mm), abs(nn)
    if n > m:
        m, n = n, m
    temp = 0.5 * (_factln(L + n) + _factln(L + m) + _factln(L - m) + _factln(L - n))
    s = 0.0
    for i in range(0, L - n + 1):
        if L - m - i >= 0 and m + n + i >= 0:
            t = math.exp(temp - _factln(i) - _factln(L - m - i) - _factln(L - n - i) - _factln(m + n + i))
            s += -t if i % 2 else t
    q = s / 2.0**L
    if (L - m - n) % 2:
        q = -q
    if mm < 0 and (L + nn) % 2:
        q = -q
    if nn < 0 and (L + mm) % 2:
        q = -q
    return q


@lru_cache(maxsize=None)
def _aplms(L: int, M: int, s: int) -> float:
    lnorm = math.sqrt((2.0 * L + 1.0) / 2.0)
    alm0s = _qlmn(L, M, s) * _qlmn(L, 0, s)
    if abs(M) % 2 == 0:
        ap = alm0s * lnorm * (1.0 if s == 0 else 2.0)
        if abs(M) % 4 == 2:
            ap = -ap
    else:
        ap = 0.0 if s == 0 else 2.0 * alm0s * lnorm
        if abs(M) % 4 == 1:
            ap = -ap
    return 0.0 if abs(ap) < 1e-12 else ap


def plmpsi(L: int, M: int, psi_deg, xp=jnp):
    """Bunge's normalised P̄_L^M at the angle ψ (degrees), as its Fourier series (GSAS PLMPSI)."""
    if abs(M) % 2 == 0:
        return sum(_aplms(L, M, s) * xp.cos(s * psi_deg * _RPD) for s in range(0, L + 1, 2))
    return sum(_aplms(L, M, s) * xp.sin(s * psi_deg * _RPD) for s in range(2, L + 1, 2))


def _cheb(s: int, c, xp):
    """T_s(c) and U_{s-1}(c) (U_{-1} = 0)."""
    t0, t1 = xp.ones_like(c), c
    u0, u1 = xp.zeros_like(c), xp.ones_like(c)  # U_{-1}, U_0
    if s == 0:
        return t0, u0
    for _ in range(s - 1):
        t0, t1 = t1, 2.0 * c * t1 - t0
        u0, u1 = u1, 2.0 * c * u1 - u0
    return t1, u1


def plm_cos(L: int, M: int, c, xp=jnp):
    """P̄_L^M as a function of c = cos ψ (smooth at c = ±1, for autodiff): cos sψ = T_s(c),
    sin sψ = sin ψ·U_{s−1}(c)."""
    if abs(M) % 2 == 0:
        return sum(_aplms(L, M, s) * _cheb(s, c, xp)[0] for s in range(0, L + 1, 2))
    one_m = 1.0 - c * c
    sin_psi = xp.sqrt(xp.where(one_m > 0, one_m, 1.0)) * (one_m > 0)
    return sum(_aplms(L, M, s) * sin_psi * _cheb(s, c, xp)[1] for s in range(2, L + 1, 2))


def crystal_direction(hkl, cell, laue: str, unique_axis: str = "b", xp=jnp):
    """cos φ and e^{iβ} of :func:`crystal_angles`, written to stay differentiable at φ = 0."""
    h = xp.asarray(hkl, dtype=float)
    a, b, c, al, be, ga = (cell[i] for i in range(6))
    ca, cb, cg = xp.cos(al * _RPD), xp.cos(be * _RPD), xp.cos(ga * _RPD)
    gs = reciprocal_metric(cell, xp)
    if laue == "2/m":
        ref = {"a": [1.0, 0, 0], "b": [0, 1.0, 0], "c": [0, 0, 1.0]}[unique_axis]
    elif laue in ("3R", "3mR"):
        ref = [1.0, 1.0, 1.0]
    else:
        ref = [0, 0, 1.0]
    r = xp.asarray(ref)
    dh = xp.einsum("ni,ij,nj->n", h, gs, h)
    cphi = xp.clip((h @ gs @ r) / xp.sqrt((r @ gs @ r) * dh), -1.0, 1.0)
    ba, bb = _beta_parts(h, a, b, c, al, ca, cb, cg, laue, unique_axis, xp)
    r2 = ba * ba + bb * bb
    ok = r2 > 1e-24
    rr = xp.sqrt(xp.where(ok, r2, 1.0))
    e = xp.where(ok, bb / rr, 1.0) + 1j * xp.where(ok, ba / rr, 0.0)
    return cphi, e


def _beta_parts(h, a, b, c, al, ca, cb, cg, laue, unique_axis, xp):
    H0, H1, H2 = h[:, 0], h[:, 1], h[:, 2]
    if laue == "-1" or (laue == "2/m" and unique_axis == "c"):
        return H1 * a / (b - H0 * cg), H0 * (1.0 - cg**2)
    if laue == "2/m" and unique_axis == "a":
        return H2 * b / (c - H1 * ca), H1 * (1.0 - ca**2)
    if laue == "2/m":
        return H0 * c / (a - H2 * cb), H2 * (1.0 - cb**2)
    if laue in ("mmm", "4/m", "4/mmm"):
        return H1 * a, H0 * b
    if laue in ("3R", "3mR"):
        return H0 + H1 - 2.0 * H2, 1.732050807569 * (H0 - H1)
    return H0 + 2.0 * H1, 1.732050807569 * H0


def crystal_angles(hkl, cell, laue: str, unique_axis: str = "b", xp=jnp):
    """GSAS-II ``CrsAng``: polar angle φ of h to the reference axis and azimuth β (degrees)."""
    h = xp.asarray(hkl, dtype=float)
    a, b, c, al, be, ga = (cell[i] for i in range(6))
    ca, cb, cg = xp.cos(al * _RPD), xp.cos(be * _RPD), xp.cos(ga * _RPD)
    gs = reciprocal_metric(cell, xp)
    if laue == "2/m":
        ref = {"a": [1.0, 0, 0], "b": [0, 1.0, 0], "c": [0, 0, 1.0]}[unique_axis]
    elif laue in ("3R", "3mR"):
        ref = [1.0, 1.0, 1.0]
    else:
        ref = [0, 0, 1.0]
    r = xp.asarray(ref)
    dh = xp.einsum("ni,ij,nj->n", h, gs, h)
    dr = r @ gs @ r
    dhr = (h @ gs @ r) / xp.sqrt(dr * dh)
    phi = xp.where(dhr <= 1.0, xp.arccos(xp.clip(dhr, -1.0, 1.0)) / _RPD, 0.0)
    H0, H1, H2 = h[:, 0], h[:, 1], h[:, 2]
    if laue == "-1" or (laue == "2/m" and unique_axis == "c"):
        ba, bb = H1 * a / (b - H0 * cg), H0 * xp.sin(ga * _RPD) ** 2
    elif laue == "2/m" and unique_axis == "a":
        ba, bb = H2 * b / (c - H1 * ca), H1 * xp.sin(al * _RPD) ** 2
    elif laue == "2/m":
        ba, bb = H0 * c / (a - H2 * cb), H2 * xp.sin(be * _RPD) ** 2
    elif laue in ("mmm", "4/m", "4/mmm"):
        ba, bb = H1 * a, H0 * b
    elif laue in ("3R", "3mR"):
        ba, bb = H0 + H1 - 2.0 * H2, 1.732050807569 * (H0 - H1)
    else:
        ba, bb = H0 + 2.0 * H1, 1.732050807569 * H0
    beta = xp.arctan2(ba, bb) / _RPD
    return phi, beta


def sample_psi(theta_deg, geometry: str, azimuth: float = 0.0, xp=jnp):
    """GSAS-II ``SamAng`` ψ (degrees) for SH texture: Bragg–Brentano (goniometer φ, χ, ω = 0, 90, 0,
    ω coupled to θ) or Debye–Scherrer (0, 0, 0, uncoupled); sample-angle zeros 0."""
    bragg = geometry.lower().startswith("bragg")
    chi = 90.0 if bragg else 0.0
    om = theta_deg if bragg else 0.0 * theta_deg
    so, co = xp.sin(om * _RPD), xp.cos(om * _RPD)
    st, ct = xp.sin(theta_deg * _RPD), xp.cos(theta_deg * _RPD)
    ca_, sa_ = math.cos(azimuth * _RPD), math.sin(azimuth * _RPD)
    sc, cc = math.sin(chi * _RPD), math.cos(chi * _RPD)
    at = -st * co + ct * ca_ * so
    bt = st * so + ct * ca_ * co
    ct_ = -ct * sa_ * sc
    dt = -ct * sa_ * cc
    del at, dt  # with goniometer φ = 0 and sample zeros 0, ψ = acos(CT + BT·cos χ)
    bc = ct_ + bt * cc
    return xp.arccos(xp.clip(bc, -1.0, 1.0)) / _RPD


def sh_po_correction(terms, coeffs, hkl, cell, laue: str, theta_deg, geometry: str, azimuth: float = 0.0,
                     xp=jnp):
    """1 + Σ C(L,N)·(4π/(2L+1))·K_L^N(φ, β)·k_L(ψ) (GSAS-II ``SHPOcal``)."""
    cphi, e = crystal_direction(hkl, cell, laue, xp=xp)
    cpsi = xp.cos(sample_psi(theta_deg, geometry, azimuth, xp) * _RPD)
    out = 1.0
    for k, (L, n) in enumerate(terms):
        kcl = plm_cos(L, n, cphi, xp) / math.sqrt(2.0 * math.pi)
        if n:
            kcl = kcl * math.sqrt(2.0)
        en = e**n
        # GSAS-II's list reads 'R3mR', so '3mR' takes the cos + sin form like the other classes
        if laue in ("3m1", "31m") and n % 6 == 3:
            kcl = kcl * xp.imag(en)
        elif laue in ("mmm", "4/mmm", "6/mmm", "3m1", "31m"):
            kcl = kcl * xp.real(en)
        else:
            kcl = kcl * (xp.real(en) + xp.imag(en))
        ksl = plm_cos(L, 0, cpsi, xp) / math.sqrt(2.0 * math.pi)
        out = out + coeffs[k] * (4.0 * math.pi / (2.0 * L + 1.0)) * kcl * ksl
    return out


# --------------------------------------------------------------------------- Stephens microstrain

def stephens_terms(laue: str, unique_axis: str = "b") -> tuple[str, ...]:
    """Names of the generalized-microstrain coefficients S_HKL for a Laue class (GSAS-II order)."""
    if laue in ("m3", "m3m"):
        return ("S400", "S220")
    if laue in ("6/m", "6/mmm", "3m1"):
        return ("S400", "S004", "S202")
    if laue in ("31m", "3"):
        return ("S400", "S004", "S202", "S211")
    if laue in ("3R", "3mR"):
        return ("S400", "S220", "S310", "S211")
    if laue in ("4/m", "4/mmm"):
        return ("S400", "S004", "S220", "S202")
    base = ("S400", "S040", "S004", "S220", "S202", "S022")
    if laue == "mmm":
        return base
    if laue == "2/m":
        return base + {"a": ("S013", "S031", "S211"), "b": ("S301", "S103", "S121"),
                       "c": ("S130", "S310", "S112")}[unique_axis]
    return base + ("S310", "S103", "S031", "S130", "S301", "S013", "S211", "S121", "S112")


def stephens_monomials(hkl, laue: str, unique_axis: str = "b", xp=np):
    """(n_refl, n_terms) hkl monomials of Stephens's model as GSAS-II ``MustrainCoeff`` writes them."""
    h = xp.asarray(hkl, dtype=float)
    H, K, L = h[:, 0], h[:, 1], h[:, 2]
    if laue in ("m3", "m3m"):
        t = [H**4 + K**4 + L**4, 3.0 * ((H * K) ** 2 + (H * L) ** 2 + (K * L) ** 2)]
    elif laue in ("6/m", "6/mmm", "3m1", "31m", "3"):
        t = [H**4 + K**4 + 2.0 * K * H**3 + 2.0 * H * K**3 + 3.0 * (H * K) ** 2, L**4,
             3.0 * ((H * L) ** 2 + (K * L) ** 2 + H * K * L**2)]
        if laue in ("31m", "3"):
            t.append(4.0 * H * K * L * (H + K))
    elif laue in ("3R", "3mR"):
        t = [H**4 + K**4 + L**4, 3.0 * ((H * K) ** 2 + (H * L) ** 2 + (K * L) ** 2),
             2.0 * (H * L**3 + L * K**3 + K * H**3) + 2.0 * (L * H**3 + K * L**3 + L * K**3),
             4.0 * (K * L * H**2 + H * L * K**2 + H * K * L**2)]
    elif laue in ("4/m", "4/mmm"):
        t = [H**4 + K**4, L**4, 3.0 * (H * K) ** 2, 3.0 * ((H * L) ** 2 + (K * L) ** 2)]
    else:
        t = [H**4, K**4, L**4, 3.0 * (H * K) ** 2, 3.0 * (H * L) ** 2, 3.0 * (K * L) ** 2]
        if laue == "2/m":
            t += {"a": [2.0 * K * L**3, 2.0 * L * K**3, 4.0 * K * L * H**2],
                  "b": [2.0 * L * H**3, 2.0 * H * L**3, 4.0 * H * L * K**2],
                  "c": [2.0 * H * K**3, 2.0 * K * H**3, 4.0 * H * K * L**2]}[unique_axis]
        elif laue not in ("mmm",):
            t += [2.0 * K * H**3, 2.0 * H * L**3, 2.0 * L * K**3, 2.0 * H * K**3, 2.0 * L * H**3, 2.0 * K * L**3,
                  4.0 * K * L * H**2, 4.0 * H * L * K**2, 4.0 * K * H * L**2]
    return xp.stack(t, axis=1)
