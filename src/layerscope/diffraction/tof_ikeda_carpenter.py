"""FullProf's TOF profile function #3 (``Npr = 13``): the Ikeda–Carpenter moderator function
convolved with a Thompson–Cox–Hastings pseudo-Voigt, in NumPy.

The moderator pulse (S. Ikeda & J. M. Carpenter, Nucl. Instrum. Methods A 239 (1985) 536) is

    IC(t) = (α/2) [ (1 − R)(αt)² e^{−αt} + 2R α²β/(α − β)³ (e^{−βt} − e^{−αt}(1 + (α − β)t + ½(α − β)²t²)) ],

t ≥ 0, with FullProf's wavelength dependence of the ``alph0 beta0 alph1 kappa`` line
(FullProf manual; as restated in Mantid's ``IkedaCarpenterPV`` documentation):

    α = 1/(alph0 + λ·alph1),   β = 1/beta0,   R = exp(−81.799/(kappa·λ²)),   λ = 2 d sin θ (Å).

FullProf convolves it with the TCH pseudo-Voigt of the pattern's σ² and γ (the same H and η as
for Npr = 9, :func:`layerscope.diffraction.tof_profile.tch_fwhm_eta`) analytically after writing
(αt)²e^{−αt} as the second difference [e^{−α(1−k)t} − 2e^{−αt} + e^{−α(1+k)t}]/k² with k = 0.05
(J. Rodríguez-Carvajal, "Using FullProf to analyze time of flight neutron powder diffraction data",
panels 13–17; the same expansion in Mantid's ``IkedaCarpenterPV``): a sum of four decaying
exponentials (α(1 − k), α(1 + k), α, β) each convolved with the Gaussian (e^u erfc y) and the
Lorentzian (−(2/π) Im[e^z E₁(z)]), weighted N_u, N_v, N_s, N_r and normalised by
N = α(1 − k²)/(4k²). FullProf's 8.40 listing of the job that uses it says "Ikeda-Carpenter function
convoluted with pseudo-Voigt: Omega(DT) = (1+delta(t)*R) <*> TCH-Pseudo-Voigt".

Checked against FullProf 8.40 itself (``tests/test_pcr_fullprof.py``): its calculated Si 111 peak of
the arg_si_ic job (SEPD, 2θ = 144.845°, FullProf's ``.prf``) is reproduced from the ``.pcr``'s own
parameters to 3.3e-5 of the peak height (0.6 counts in 19 560). Hand-written: no library offers this
convolution outside Mantid (GPL, C++).

Not yet in the refinement engine (:mod:`layerscope.diffraction.pattern`): a ``.pcr`` with Npr = 13 is
still refused by :func:`layerscope.refine.pcr.read_pcr`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc, erfcx, exp1

from layerscope.diffraction.tof_profile import EIGHT_LN2, tch_fwhm_eta

__all__ = ["ic_parameters", "ikeda_carpenter_pv", "K_EXPANSION"]

#: FullProf's step of the second-difference expansion of (αt)²e^{−αt}
K_EXPANSION = 0.05
#: E (meV) = 81.799 / λ² (Å): the neutron energy of wavelength λ
MEV_A2 = 81.799


def ic_parameters(d, two_theta, alph0, alph1, beta0, kappa):
    """(α, β, R, λ) of FullProf's Ikeda–Carpenter function at d-spacing ``d`` (Å) on a bank at
    ``two_theta`` (degrees): α = 1/(alph0 + λ·alph1), β = 1/beta0 (µs⁻¹), R = exp(−81.799/(κλ²)),
    λ = 2 d sin θ."""
    lam = 2.0 * np.asarray(d, dtype=float) * np.sin(np.radians(two_theta) / 2.0)
    alpha = 1.0 / (alph0 + lam * alph1)
    beta = np.full_like(lam, 1.0 / beta0)
    r = np.exp(-MEV_A2 / (kappa * lam**2))
    return alpha, beta, r, lam


def _decay_gauss(a, dt, s2):
    """e^u erfc(y), u = a(a s² − 2Δt)/2, y = (a s² − Δt)/√(2s²): a decay exp(−a t) ⊗ Gaussian, ×2/a."""
    y = (a * s2 - dt) / np.sqrt(2.0 * s2)
    gauss = np.exp(-dt * dt / (2.0 * s2))
    with np.errstate(over="ignore", invalid="ignore"):
        direct = np.exp(0.5 * a * (a * s2 - 2.0 * dt)) * erfc(y)
    return np.where(y >= 0, gauss * erfcx(np.abs(y)), direct)


def _decay_lorentz(a, dt, fwhm):
    """Im[e^z E₁(z)], z = −aΔt + i a H/2: a decay exp(−a t) ⊗ Lorentzian (FWHM H), × −π/(2·…)."""
    z = -a * dt + 0.5j * a * fwhm
    return np.imag(np.exp(z) * exp1(z))


def ikeda_carpenter_pv(dt, alpha, beta, r, sig2, gam, k: float = K_EXPANSION):
    """FullProf's Npr = 13 profile at Δt = t − t_h (µs): the Ikeda–Carpenter function (α, β, R)
    convolved with the TCH pseudo-Voigt of Gaussian variance ``sig2`` (µs²) and Lorentzian FWHM
    ``gam`` (µs). Arguments broadcast; unit area up to the k-expansion (measured 0.996 for SEPD's Si 111)."""
    dt = np.asarray(dt, dtype=float)
    fwhm, eta = tch_fwhm_eta(np.asarray(sig2, dtype=float), np.maximum(np.asarray(gam, dtype=float), 1e-12),
                             xp=np)
    s2 = fwhm**2 / float(EIGHT_LN2)
    am, ap = alpha * (1.0 - k), alpha * (1.0 + k)
    x, y, z = am - beta, alpha - beta, ap - beta
    norm = 0.25 * alpha * (1.0 - k * k) / (k * k)
    weights = ((1.0 - r * am / x, am), (1.0 - r * ap / z, ap), (-2.0 * (1.0 - r * alpha / y), alpha),
               (2.0 * r * alpha**2 * beta * k * k / (x * y * z), beta))
    g = sum(n * _decay_gauss(a, dt, s2) for n, a in weights)
    lor = -(2.0 / np.pi) * sum(n * _decay_lorentz(a, dt, fwhm) for n, a in weights)
    return norm * ((1.0 - eta) * g + eta * lor)
