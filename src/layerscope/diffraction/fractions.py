"""Phase fractions from Rietveld scale factors (Hill & Howard, J. Appl. Cryst. 20, 467 (1987)).

layerscope's intensity model carries the 1/V² of each phase explicitly
(I_h = S · m_h |F_h|² d⁴ / V² …), so its scale S is proportional to the volume
fraction of the phase. Hill & Howard's relation W_p = S'_p (ZMV)_p / Σ_i S'_i (ZMV)_i
is written for a model without the 1/V² (S' = S/V²); substituting gives

    weight fraction  W_p = S_p ρ_p / Σ_i S_i ρ_i,     ρ = Z·M / V  (cell mass per volume)
    molar fraction   X_p = S_p Z_p / V_p / Σ_i S_i Z_i / V_i   (per formula unit)

On the paper's "at %": the phase fractions in tables S1–S3 were refined with
FullProf, whose phase-fraction output (``Fract(%)``) is the Hill–Howard *weight*
fraction; FullProf prints no atomic fraction. layerscope therefore compares the
paper's "at %" numbers with ``weight_fraction``. (Molar fractions per Li1.2TM0.8O2
formula unit differ from them by a few tenths of a percent for O3'/spinel.)
"""

from __future__ import annotations

import numpy as np

from layerscope.crystal.phase import Phase

__all__ = ["weight_fractions", "molar_fractions", "scales_from_weight_fractions"]


def _density_terms(phases):
    return np.array([p.cell_mass / p.volume for p in phases])


def weight_fractions(scales, phases: list[Phase], scale_cov=None):
    """Weight fractions (and their esds when the scales' covariance is given)."""
    s = np.asarray(scales, dtype=float)
    rho = _density_terms(phases)
    w = s * rho
    total = w.sum()
    frac = w / total
    if scale_cov is None:
        return frac
    # Jacobian dW_p/dS_j = ρ_j (δ_pj − W_p) / Σ
    jac = (np.eye(len(s)) - frac[:, None]) * rho[None, :] / total
    cov = jac @ np.asarray(scale_cov) @ jac.T
    return frac, np.sqrt(np.clip(np.diag(cov), 0, None))


def molar_fractions(scales, phases: list[Phase]):
    """Molar fractions per formula unit (Z of each phase)."""
    s = np.asarray(scales, dtype=float)
    n = s * np.array([p.formula_units / p.volume for p in phases])
    return n / n.sum()


def scales_from_weight_fractions(weights, phases: list[Phase], total_scale: float = 1.0):
    """Scales that give the requested weight fractions (inverse of :func:`weight_fractions`)."""
    w = np.asarray(weights, dtype=float)
    s = w / _density_terms(phases)
    return total_scale * s / s.sum()
