"""Propagated statistical error of L3/L2 (spectra.uncertainty) against Monte Carlo.

On the measured NMC spectrum image: tests/test_eels_real.py::test_nmc_raw_pixels_flag_out_of_range.
"""

import numpy as np
import pytest

from layerscope.simulate.spectra import mn_o_eels
from layerscope.spectra.analysis import analyse_eels
from layerscope.spectra.calibration import MN_L3L2_TAN2012
from layerscope.spectra.uncertainty import estimate_noise

KERNEL = np.array([0.25, 0.8, 1.0, 0.8, 0.25]) / np.sqrt(2 * 0.25 ** 2 + 2 * 0.8 ** 2 + 1.0)
# autocorrelation of KERNEL-filtered white noise at lags 0..4
KERNEL_RHO = np.correlate(KERNEL, KERNEL, "full")[len(KERNEL) - 1:]


def _correlated(truth, gain, rng, n):
    """``n`` noisy copies of ``truth``: variance gain*counts, correlated by KERNEL (a detector PSF)."""
    w = rng.standard_normal((n, len(truth) + len(KERNEL) - 1))
    c = np.array([np.convolve(x, KERNEL, "valid") for x in w])
    return truth + np.sqrt(gain * np.clip(truth, 0, None)) * c


def test_esd_matches_monte_carlo_poisson():
    """White Poisson noise: the propagated esd equals the scatter of the full, non-linear analysis."""
    e, y0, _ = mn_o_eels(l3_over_l2=2.6, scale=10)
    ys = np.random.default_rng(3).poisson(np.clip(y0, 0, None), size=(120, len(y0))).astype(float)
    res = analyse_eels(e, ys)
    ok = np.isfinite(res.l3_over_l2)
    assert ok.all()
    mc = np.std(res.l3_over_l2, ddof=1)                     # ~0.06 at this dose
    assert np.mean(res.l3_over_l2_stat_err) == pytest.approx(mc, rel=0.15)
    assert np.mean(res.l3_over_l2) == pytest.approx(2.6, rel=0.02)
    # the integration windows alone would give ~4x less: the background extrapolation dominates
    assert mc > 0.03


def test_esd_matches_monte_carlo_correlated_noise():
    """Channel-correlated noise (rho1 = 0.83): the esd follows the scatter (5-20 % low, documented)."""
    e, y0, _ = mn_o_eels(l3_over_l2=2.2, scale=100)
    ys = _correlated(y0, 4.5, np.random.default_rng(5), 120)
    res = analyse_eels(e, ys)
    mc = np.std(res.l3_over_l2, ddof=1)
    ratio = np.mean(res.l3_over_l2_stat_err) / mc
    assert 0.7 < ratio < 1.15, (ratio, mc)


def test_noise_model_recovers_gain_and_correlation():
    e, y0, _ = mn_o_eels(l3_over_l2=2.2, scale=100)
    ys = _correlated(y0, 4.5, np.random.default_rng(7), 40)
    models = [estimate_noise(e, y, (590.0, 625.0)) for y in ys]
    assert all(m.kind == "proportional" for m in models)
    assert np.mean([m.scale for m in models]) == pytest.approx(4.5, rel=0.1)
    assert np.mean([m.rho[1] for m in models]) == pytest.approx(KERNEL_RHO[1], abs=0.08)
    # background-subtracted data (counts near zero): constant variance
    flat = estimate_noise(e, ys[0] - y0, (590.0, 625.0), proportional=True)
    assert flat.kind == "constant" and flat.scale > 0


def test_valence_esd_uses_the_calibration_slope():
    cal = MN_L3L2_TAN2012
    # Mn2O3 (3+, 2.60) to MnO2 (4+, 1.95): 1/0.65 valence per unit of L3/L2
    assert cal.valence_esd(2.3, 0.1) == pytest.approx(0.1 / 0.65)
    assert cal.valence_esd(2.75, 0.1) == pytest.approx(0.1 * (1 / 3) / 0.30)
    assert np.isnan(cal.valence_esd(1.5, 0.1)) and np.isnan(cal.valence_esd(np.nan, 0.1))


def test_o_k_without_edge_or_with_a_wrong_peak_is_nan_with_flag():
    """A pixel without O-K (vacuum: background only) and one whose pre-edge is missing (the peak
    found is the main-edge maximum, 10 eV higher) give NaN + flag; the others keep their values."""
    from layerscope.simulate.spectra import o_k_eels
    e = np.arange(470.0, 720.0, 0.25)
    rows = [mn_o_eels(e, l3_over_l2=2.4, noise=True, seed=k, scale=50)[1] for k in range(4)]
    vacuum = np.random.default_rng(9).poisson(50 * 2.0e12 * e ** -3.0).astype(float)
    _, no_pre, _ = o_k_eels(e, pre_edge_area=0.0, main_area=3000.0 * 50, step=150.0 * 50,
                            bg_a=2.0e12 * 50, noise=True, seed=11)
    res = analyse_eels(e, np.array(rows + [vacuum, no_pre]))
    assert np.all(np.isfinite(res.o_pre_edge_ratio[:4]))
    np.testing.assert_allclose(res.o_pre_edge_eV[:4], 530.0, atol=0.3)
    assert np.isnan(res.o_pre_edge_ratio[4]) and "no O-K edge" in res.flags[4]
    assert np.isnan(res.o_pre_edge_ratio[5]) and np.isnan(res.o_pre_edge_eV[5])
    assert "another feature" in res.flags[5]
