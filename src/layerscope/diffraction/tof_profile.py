"""Time-of-flight calibration and peak profile (GSAS-II / FullProf TOF conventions).

Calibration (GSAS-II ``Zero``, ``difC``, ``difA``, ``difB``; FullProf Zero, Dtt1, Dtt2, Dtt_1overd)::

    t_us = Zero + difC·d + difA·d² + difB/d

Profile: back-to-back exponentials (rise α, decay β) convolved with a pseudo-Voigt
(Von Dreele, Jorgensen & Windsor, J. Appl. Cryst. 15, 581 (1982); the pseudo-Voigt
of Thompson, Cox & Hastings, J. Appl. Cryst. 20, 79 (1987)) — GSAS's EPSVOIGT, GSAS-II
TOF peaks and FullProf Npr = 9/10. As functions of d (Å), GSAS-II's instrument terms::

    α(d)  = alpha / d                                          (µs⁻¹)
    β(d)  = beta-0 + beta-1 / d⁴ + beta-q / d²                 (µs⁻¹)
    σ²(d) = sig-0 + sig-1·d² + sig-2·d⁴ + sig-q·d              (µs²)
    γ(d)  = X·d + Y·d²                                          (µs, Lorentzian FWHM)

Sample broadening (GSAS-II isotropic model; size in µm, microstrain in 10⁻⁶, mixing
``mx`` = Lorentzian fraction, default 1)::

    Γ_size   = 1e-4 · difC · d² / size_um
    Γ_strain = 1e-6 · difC · d · mustrain
    γ  += mx_size·Γ_size + mx_strain·Γ_strain
    σ² += ((1-mx_size)·Γ_size)² / (8 ln 2) + ((1-mx_strain)·Γ_strain)² / (8 ln 2)

TCH pseudo-Voigt: total FWHM F from the Gaussian FWHM √(8 ln2 σ²) and γ, and
η = 1.36603 q − 0.47719 q² + 0.11116 q³ with q = γ/F; both components are taken
at the same FWHM F. With Δ = t − t_h, N = αβ / (2(α+β)), s² = F²/(8 ln 2)::

    G(Δ) = N [e^u erfc(y) + e^v erfc(z)]
        u = α(α s² + 2Δ)/2, y = (α s² + Δ)/√(2 s²), v = β(β s² − 2Δ)/2, z = (β s² − Δ)/√(2 s²)
    L(Δ) = −(2N/π) Im[ e^{p} E1(p) + e^{q} E1(q) ],  p = αΔ + iαF/2,  q = −βΔ + iβF/2
    profile(Δ) = (1 − η) G(Δ) + η L(Δ)              (unit area in µs)

``e^u erfc(y)`` is evaluated as ``exp(−Δ²/2s²)·erfcx(y)`` when y > 0 so that it never
overflows. Everything here is a pure JAX function of arrays (float64).
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from jax.scipy.special import erfc  # noqa: E402

from layerscope.diffraction.expint import exp_e1  # noqa: E402

__all__ = [
    "tof_from_d", "alpha_tof", "beta_tof", "sigma2_tof", "gamma_tof", "sample_broadening",
    "tch_fwhm_eta", "b2b_gauss", "b2b_lorentz", "tof_peak", "EIGHT_LN2",
]

EIGHT_LN2 = 8.0 * jnp.log(2.0)
_SQRT2 = jnp.sqrt(2.0)


def tof_from_d(d, zero, difc, difa=0.0, difb=0.0):
    """TOF (µs) of d (Å): Zero + difC·d + difA·d² + difB/d."""
    return zero + difc * d + difa * d**2 + difb / d


def alpha_tof(d, alpha):
    """Rise constant α(d) = alpha/d in µs⁻¹ (GSAS-II)."""
    return alpha / d


def beta_tof(d, beta0, beta1, betaq=0.0):
    """Decay constant β(d) = beta-0 + beta-1/d⁴ + beta-q/d² in µs⁻¹ (GSAS-II)."""
    return beta0 + beta1 / d**4 + betaq / d**2


def sigma2_tof(d, sig0, sig1, sig2, sigq=0.0):
    """Gaussian variance σ²(d) = sig-0 + sig-1·d² + sig-2·d⁴ + sig-q·d in µs² (GSAS-II)."""
    return sig0 + sig1 * d**2 + sig2 * d**4 + sigq * d


def gamma_tof(d, x, y, z=0.0):
    """Lorentzian FWHM γ(d) = Z + X·d + Y·d² in µs (GSAS-II)."""
    return z + x * d + y * d**2


def sample_broadening(d, difc, size_um, mustrain, mx_size=1.0, mx_strain=1.0):
    """Isotropic size/microstrain broadening (GSAS-II): returns (Δσ² µs², Δγ µs).

    ``size_um`` = ∞ and ``mustrain`` = 0 give no broadening.
    """
    g_size = 1e-4 * difc * d**2 / size_um
    g_strain = 1e-6 * difc * d * mustrain
    dgam = mx_size * g_size + mx_strain * g_strain
    dsig2 = (((1.0 - mx_size) * g_size) ** 2 + ((1.0 - mx_strain) * g_strain) ** 2) / EIGHT_LN2
    return dsig2, dgam


def tch_fwhm_eta(sig2, gam):
    """Thompson–Cox–Hastings total FWHM (µs) and Lorentzian fraction η."""
    fg = jnp.sqrt(EIGHT_LN2 * sig2)
    fl = gam
    f5 = (fg**5 + 2.69269 * fg**4 * fl + 2.42843 * fg**3 * fl**2 + 4.47163 * fg**2 * fl**3
          + 0.07842 * fg * fl**4 + fl**5)
    fwhm = f5 ** 0.2
    q = fl / fwhm
    eta = 1.36603 * q - 0.47719 * q**2 + 0.11116 * q**3
    return fwhm, jnp.clip(eta, 0.0, 1.0)


def _exp_erfc(a, y):
    """e^a · erfc(y) where a − y² = −Δ²/(2s²) (no overflow for large a)."""
    y_pos = jnp.where(y > 0, y, 0.0)
    # erfcx(y) = exp(y²) erfc(y); for y >= 0 use exp(a - y²) * erfcx(y)
    erfcx_y = _erfcx_pos(y_pos)
    pos = jnp.exp(a - y_pos**2) * erfcx_y
    a_neg = jnp.where(y > 0, 0.0, a)
    neg = jnp.exp(a_neg) * erfc(jnp.where(y > 0, 0.0, y))
    return jnp.where(y > 0, pos, neg)


def _erfcx_pos(y):
    """Scaled complementary error function exp(y²)·erfc(y) for y ≥ 0, float64 accurate.

    Uses erfc directly for y < 5 (no overflow there) and the Laplace continued fraction
    beyond (Abramowitz & Stegun 7.1.14), which converges quickly for y ≥ 5.
    """
    small = y < 5.0
    ys = jnp.where(small, y, 0.0)
    direct = jnp.exp(ys**2) * erfc(ys)
    yl = jnp.where(small, 5.0, y)
    acc = yl
    for n in range(40, 0, -1):
        acc = yl + (n / 2.0) / acc
    cf = 1.0 / (jnp.sqrt(jnp.pi) * acc)
    return jnp.where(small, direct, cf)


def b2b_gauss(delta, alpha, beta, sig2):
    """Back-to-back exponentials ⊗ Gaussian (variance ``sig2``), unit area in Δ (µs)."""
    s = jnp.sqrt(2.0 * sig2)
    norm = alpha * beta / (2.0 * (alpha + beta))
    u = 0.5 * alpha * (alpha * sig2 + 2.0 * delta)
    y = (alpha * sig2 + delta) / s
    v = 0.5 * beta * (beta * sig2 - 2.0 * delta)
    z = (beta * sig2 - delta) / s
    return norm * (_exp_erfc(u, y) + _exp_erfc(v, z))


def b2b_lorentz(delta, alpha, beta, fwhm):
    """Back-to-back exponentials ⊗ Lorentzian (FWHM ``fwhm``), unit area in Δ (µs)."""
    norm = alpha * beta / (2.0 * (alpha + beta))
    p = alpha * delta + 1j * alpha * fwhm / 2.0
    q = -beta * delta + 1j * beta * fwhm / 2.0
    # two separate calls: stacking p and q into one array defeats XLA's fusion (2.7x slower)
    return -(2.0 * norm / jnp.pi) * (jnp.imag(exp_e1(p)) + jnp.imag(exp_e1(q)))


def tof_peak(delta, alpha, beta, sig2, gam, *, lorentz: bool = True):
    """The TOF profile at ``delta = t − t_h`` (µs), normalised to unit area.

    Parameters broadcast against ``delta``. ``lorentz=False`` skips the Lorentzian
    term (exactly right when γ = 0, since then η = 0).
    """
    gam = jnp.maximum(gam, 1e-8)
    fwhm, eta = tch_fwhm_eta(sig2, gam)
    s2 = fwhm**2 / EIGHT_LN2
    g = b2b_gauss(delta, alpha, beta, s2)
    if not lorentz:
        return g  # η ≈ 1e-8/F when γ = 0: the Lorentzian term is below float precision
    lor = b2b_lorentz(delta, alpha, beta, fwhm)
    return (1.0 - eta) * g + eta * lor
