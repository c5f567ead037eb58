"""Statistical error of the white-line integrals and of L3/L2, propagated through every step.

Why: on a measured spectrum image the pixel-to-pixel scatter of L3/L2 is several times the error
of the two integration windows alone; most of it comes from the noise of the **background
window**, which the power law carries 10-40 eV forward under the edge, and from the noise of the
post-edge window that sets the continuum step. Neighbouring channels of a CCD/CMOS EELS detector
are also correlated (its point-spread function), so first differences underestimate the noise.

What is computed (written by hand: no library in the dependency set propagates noise through a
power-law extrapolation and a step fit):

1. **Noise model** (:func:`estimate_noise`) from the background window of the spectrum itself:
   the residual of a smooth fit (cubic in ln E, ln I) gives the channel variance, modelled as
   ``var_j = gain * I_j`` (Poisson-like, counts times a detector gain) or, for background-
   subtracted data, a constant; its autocorrelation at lags 1...6 (up to the first lag <= 0)
   gives the channel-to-channel correlation ``rho(k)``.
2. **Linear sensitivities** (:func:`integral_sensitivities`) of I(L3) and I(L2) to every channel:
   the power law is a linear least-squares fit of ln I on ln E, so
   ``d bg(E) / d I_j = bg(E) [1, ln E] X⁺[:, j] / I_j`` (X⁺ the pseudo-inverse of the design
   matrix of the window); the continuum ``h(E) S(E)`` is a linear least-squares fit to the
   post-edge window; the integrals are trapezoid sums. The maxima positions (and so the windows)
   are held at their measured values (their jitter is a second-order effect).
3. ``var(I) = aᵀ C a`` with ``C_jk = sqrt(var_j var_k) rho(|j-k|)``; the ratio's variance is
   ``R² (var3/I3² + var2/I2² − 2 cov/(I3 I2))``.

The linearisation is checked against a Monte Carlo of the full, non-linear analysis
(``tests/test_eels_uncertainty.py``: white Poisson noise, propagated esd 0.063 against a scatter of
0.059; correlated noise with rho(1) = 0.83, 0.062 against 0.067 — the sample autocorrelation of a
~100-channel window is biased low, so with correlated noise the esd tends to be 5-20 % small).
The noise model was checked by hand against the residual of a 3-component PCA reconstruction of
the NMC spectrum image (``shared/data/eels``): gain 4.2 and rho(1) 0.75 there (the interpolation
onto a common axis adds some correlation), against per-pixel estimates of median gain 5.1
(3.1-10.1: a background window with structure reads as more noise, erring on the safe side) and
median rho(1) 0.64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope.spectra.eels import double_step

#: Largest lag of the channel correlation that is estimated.
MAX_LAG = 6


@dataclass(frozen=True)
class NoiseModel:
    """Channel noise: ``var_j = scale * I_j`` ("proportional") or ``scale`` ("constant")."""

    kind: str
    scale: float
    rho: tuple          # correlation at lags 0, 1, ... (rho[0] = 1)
    window_eV: tuple

    def sd(self, counts) -> np.ndarray:
        y = np.asarray(counts, float)
        if self.kind == "proportional":
            return np.sqrt(self.scale * np.clip(y, 0.0, None))
        return np.full(y.shape, np.sqrt(self.scale))

    def as_dict(self) -> dict:
        return {"kind": self.kind, "scale": self.scale, "rho": list(self.rho),
                "window_eV": list(self.window_eV)}


def estimate_noise(energy_eV, counts, window_eV, *, proportional: bool = True) -> NoiseModel:
    """Noise model from the residual of a smooth (cubic) fit over ``window_eV``."""
    e = np.asarray(energy_eV, float)
    y = np.asarray(counts, float)
    m = (e >= window_eV[0]) & (e <= window_eV[1])
    n = int(m.sum())
    if n < 12:
        raise ValueError(f"noise window {window_eV[0]:.0f}-{window_eV[1]:.0f} eV holds {n} channels "
                         f"(12 needed)")
    proportional = proportional and bool(np.all(y[m] > 0))
    if proportional:
        x = np.log(e[m])
        p = np.polyfit(x, np.log(y[m]), 3)
        r = y[m] - np.exp(np.polyval(p, x))
    else:
        x = e[m] - e[m].mean()
        r = y[m] - np.polyval(np.polyfit(x, y[m], 3), x)
    var = float(np.sum(r ** 2) / (n - 4))
    rc = r - r.mean()
    den = float(np.dot(rc, rc))
    rho = [1.0]
    for k in range(1, MAX_LAG + 1):
        v = float(np.dot(rc[:-k], rc[k:]) / den) if den > 0 else 0.0
        if v <= 0:
            break
        rho.append(v)
    scale = var / float(np.mean(y[m])) if proportional else var
    return NoiseModel("proportional" if proportional else "constant", scale, tuple(rho),
                      (float(window_eV[0]), float(window_eV[1])))


def _trapezoid_weights(e, mask) -> np.ndarray:
    w = np.zeros(len(e))
    idx = np.flatnonzero(mask)
    d = np.diff(e[idx])
    w[idx[:-1]] += d / 2
    w[idx[1:]] += d / 2
    return w


def integral_sensitivities(energy_eV, counts, *, background_eV, l3_eV, l2_eV, post_edge_eV,
                           half_window_l3_eV=4.0, half_window_l2_eV=4.0, step_width_eV=1.0,
                           flat=False) -> tuple[np.ndarray, np.ndarray]:
    """``dI(L3)/dI_j`` and ``dI(L2)/dI_j`` for every channel j (see the module docstring).

    ``background_eV`` is the power-law window, or None for data used without background removal.
    """
    e = np.asarray(energy_eV, float)
    y = np.asarray(counts, float)
    mp = (e >= post_edge_eV[0]) & (e <= post_edge_eV[1])
    shape = double_step(e, l3_eV, l2_eV, 1.0, width_eV=step_width_eV)
    basis = shape[:, None] if flat else np.column_stack([shape, e * shape])
    proj = np.linalg.pinv(basis[mp])                     # continuum coefficients from sig[mp]
    out = []
    for centre, half in ((l3_eV, half_window_l3_eV), (l2_eV, half_window_l2_eV)):
        w = _trapezoid_weights(e, (e >= centre - half) & (e <= centre + half))
        a = w.copy()
        a[mp] -= (w @ basis) @ proj                        # d I / d sig
        if background_eV is not None:
            _through_power_law(a, e, y, background_eV)            # sig = y - bg(y)
        out.append(a)
    return out[0], out[1]


def window_sensitivity(energy_eV, counts, window_eV, background_eV=None) -> np.ndarray:
    """``d I / d I_j`` of the integral of the background-subtracted counts over ``window_eV``."""
    e = np.asarray(energy_eV, float)
    y = np.asarray(counts, float)
    a = _trapezoid_weights(e, (e >= window_eV[0]) & (e <= window_eV[1]))
    if background_eV is not None:
        _through_power_law(a, e, y, background_eV)
    return a


def _through_power_law(a, e, y, background_eV) -> None:
    """Add to ``a`` (d I / d sig, in place) the path through the power-law background fitted to
    ``y`` over ``background_eV`` (sig = y - bg(y)), giving d I / d y."""
    b = (e >= background_eV[0]) & (e <= background_eV[1])
    x = np.column_stack([np.ones(b.sum()), np.log(e[b])])
    slope, icpt = np.polyfit(np.log(e[b]), np.log(y[b]), 1)
    bg = np.exp(icpt) * e ** slope
    lmat = np.column_stack([np.ones(len(e)), np.log(e)])
    a[b] -= ((a * bg) @ lmat) @ np.linalg.pinv(x) / y[b]


def quadratic_forms(noise: NoiseModel, counts, vectors) -> np.ndarray:
    """Covariance matrix of the linear functionals ``v @ counts`` for the given vectors."""
    v = np.atleast_2d(np.asarray(vectors, float))
    idx = np.flatnonzero(np.any(v != 0, axis=0))
    sd = noise.sd(np.asarray(counts, float)[idx])
    rho = np.asarray(noise.rho, float)
    dist = np.abs(idx[:, None] - idx[None, :])
    corr = np.where(dist < len(rho), rho[np.minimum(dist, len(rho) - 1)], 0.0)
    vs = v[:, idx] * sd
    cov = vs @ corr @ vs.T
    # a truncated correlation function need not give a positive-definite matrix: if a variance
    # comes out non-positive, the channels are taken as uncorrelated instead
    return vs @ vs.T if np.any(np.diag(cov) <= 0) else cov


def ratio_errors(i_l3, i_l2, cov) -> tuple[float, float]:
    """(esd of I3/I2, signal-to-noise of I3 + I2) from the 2 x 2 covariance of (I3, I2)."""
    v3, v2, c = cov[0, 0], cov[1, 1], cov[0, 1]
    r = i_l3 / i_l2
    var_r = r ** 2 * (v3 / i_l3 ** 2 + v2 / i_l2 ** 2 - 2 * c / (i_l3 * i_l2))
    var_sum = v3 + v2 + 2 * c
    snr = (i_l3 + i_l2) / np.sqrt(var_sum) if var_sum > 0 else np.inf
    return float(np.sqrt(max(var_r, 0.0))), float(snr)
