"""Two-point energy calibration (offset and dispersion) on synthetic spectra with a known axis error.

The spectra are made on a true energy axis (power-law background, O-K pre-edge and main edge,
Mn/Co/Ni L2,3 white lines on Pearson steps) and stored on an axis that is off by ±10 eV and ±3 %
in dispersion. The reference energies given to the calibration are the features measured (same
definition) on the spectrum made on the true axis, as a user takes literature values of the same
feature; the check features (Co L3, Ni L3) are not used to calibrate.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from layerscope.spectra.analysis import EelsOptions, analyse_eels
from layerscope.spectra.energy_scale import (GAIN_WARN, feature_position, parse_reference_features,
                                             two_point_calibration)
from layerscope.spectra.pipeline import eels_pipeline

E_STORED = 400.0 + 0.25 * np.arange(2600)            # 400-1049.75 eV
WHITE = {"Mn": (641.0, 652.0, 2.6), "Co": (779.5, 794.5, 3.0), "Ni": (855.0, 872.3, 3.2)}
NEAR = {"O-K": 530.0, "Mn-L3": 641.0, "Co-L3": 779.5, "Ni-L3": 855.0}


def _g(e, c, s):
    return np.exp(-0.5 * ((e - c) / s) ** 2)


def model(e):
    """Counts on the true energy axis ``e`` (noise-free)."""
    y = 4e10 * e ** -3.0
    y += 900 * _g(e, 530.0, 0.8) + 1500 * (0.5 + np.arctan((e - 536.0) / 1.5) / np.pi) * np.exp(-(e - 536) / 90)
    y += 700 * _g(e, 541.0, 2.0)
    for el, (l3, l2, ratio) in WHITE.items():
        h = {"Mn": 1.0, "Co": 0.5, "Ni": 0.4}[el]
        y += h * 2000 * (_g(e, l3, 1.1) + _g(e, l2, 1.3) * 1.1 / 1.3 / ratio)
        y += h * 600 * (2 / 3 * (0.5 + np.arctan((e - l3) / 1.0) / np.pi)
                        + 1 / 3 * (0.5 + np.arctan((e - l2) / 1.0) / np.pi)) * np.exp(-(e - l3) / 150)
    return y


def stored(offset, disp, drift=0.0, seed=None):
    """Spectrum on the stored axis: channel at stored E holds the true 600+offset+(1+disp)(E+drift-600)."""
    true = 600.0 + offset + (1.0 + disp) * (E_STORED + drift - 600.0)
    y = model(true)
    return np.random.default_rng(seed).poisson(y).astype(float) if seed is not None else y


@pytest.fixture(scope="module")
def truth():
    y = model(E_STORED)
    return {k: feature_position(E_STORED, y, k, v) for k, v in NEAR.items()}


def test_truth_features_sit_on_the_model(truth):
    # the feature definitions find the model's peaks (the step under L3 moves the maximum a little)
    for k, v in NEAR.items():
        assert abs(truth[k] - v) < 0.3, (k, truth[k])


CASES = [(10.0, 0.03), (-10.0, -0.03), (10.0, -0.03), (-10.0, 0.03)]


@pytest.mark.parametrize("offset,disp", CASES)
def test_two_point_recovers_offset_and_dispersion(truth, offset, disp):
    y = stored(offset, disp)
    refs = {"O-K": truth["O-K"], "Mn-L3": truth["Mn-L3"]}
    tp = two_point_calibration(E_STORED, y, refs)
    assert abs(tp.gain - (1 + disp)) < 1e-4
    ax = tp.gain * E_STORED + tp.offset_eV[0]
    for k in ("Co-L3", "Ni-L3"):   # not used to calibrate
        assert abs(feature_position(ax, y, k, NEAR[k]) - truth[k]) < 0.1, k
    # the whole analysis on the calibrated axis: L3/L2 as on the true axis, within 2 %
    opts = EelsOptions(other_elements=("Co", "Ni"))
    ref = analyse_eels(E_STORED, model(E_STORED), options=opts)
    res = analyse_eels(tp.gain * E_STORED, y, tp.offset_eV, opts)
    assert abs(res.l3_over_l2[0] / ref.l3_over_l2[0] - 1) < 0.02
    for el in ("Co", "Ni"):
        assert abs(res.other[el]["l3_over_l2"][0] / ref.other[el]["l3_over_l2"][0] - 1) < 0.02, el
        assert abs(res.other[el]["l3_eV"][0] - truth[f"{el}-L3"]) < 0.1, el
    assert abs(res.l3_eV[0] - truth["Mn-L3"]) < 0.1 and abs(res.o_pre_edge_eV[0] - truth["O-K"]) < 0.1
    # a shift alone (offset on O-K) leaves the Ni L3 off by the dispersion error: the test can fail
    shift_only = truth["O-K"] - feature_position(E_STORED, y, "O-K", NEAR["O-K"])
    assert abs(feature_position(E_STORED + shift_only, y, "Ni-L3", NEAR["Ni-L3"]) - truth["Ni-L3"]) > 5


@pytest.mark.parametrize("offset,disp", CASES)
def test_two_point_with_poisson_noise_within_its_esd(truth, offset, disp):
    # with noise the feature positions jitter (~0.03 eV O-K, ~0.1 eV Mn L3 here) and the
    # extrapolation to Ni L3 (325 eV beyond O-K) multiplies that by ~3: the axis error there must
    # lie within 4 of the propagated (bootstrap) esds; measured z = |error| / esd over 16 draws:
    # rms 1.3, largest 3.2 (the bootstrap esd of one noisy spectrum is itself uncertain)
    y = stored(offset, disp, seed=4)
    tp = two_point_calibration(E_STORED, y, {"O-K": truth["O-K"], "Mn-L3": truth["Mn-L3"]})
    true = 600.0 + offset + (1.0 + disp) * (E_STORED - 600.0)
    k = int(np.argmin(np.abs(true - 855.0)))
    err = tp.gain * E_STORED[k] + tp.offset_eV[0] - true[k]
    assert 0 < tp.axis_esd_eV(855.0) < 0.5
    assert abs(err) < 4 * tp.axis_esd_eV(855.0)
    assert abs(tp.gain - 1 - disp) < 4 * tp.gain_esd


def test_pipeline_with_zero_loss_drift_and_two_points(truth, tmp_path):
    drifts = np.array([0.0, 0.6, -0.9])
    core = np.array([stored(-8.0, 0.025, d) for d in drifts])   # noise-free: the bookkeeping
    el = -20.0 + 0.25 * np.arange(480)
    low = np.array([1e5 * _g(el, -d, 0.4) + 2e3 * _g(el, 22.0, 5.0) + 5.0 for d in drifts])
    refs = f"O-K={truth['O-K']:.4f},Mn-L3={truth['Mn-L3']:.4f}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, rec = eels_pipeline(E_STORED, core, low_loss=low, low_loss_energy_eV=el,
                                 calibrate_edges=refs, options=EelsOptions(other_elements=("Ni",)))
    assert abs(res.energy_gain - 1.025) < 1e-4
    np.testing.assert_allclose(res.l3_eV, truth["Mn-L3"], atol=0.1)
    np.testing.assert_allclose(res.other["Ni"]["l3_eV"], truth["Ni-L3"], atol=0.1)
    # per-spectrum offsets keep the zero-loss drift, scaled by the gain
    np.testing.assert_allclose(np.diff(res.energy_offset_eV), res.energy_gain * np.diff(drifts), atol=0.02)
    step = rec["calibration"]["steps"][-1]
    assert step["gain"] == pytest.approx(res.energy_gain) and set(step["measured_eV"]) == {"O-K", "Mn-L3"}
    assert rec["calibration"]["energy_gain"] == pytest.approx(res.energy_gain)
    assert any("ΔE(Mn L3 − O K) is set by them" in w for w in rec["warnings"])
    from layerscope.spectra.pipeline import write_eels_outputs
    write_eels_outputs(tmp_path, res, rec)
    import csv
    rows = list(csv.DictReader(open(tmp_path / "eels.csv")))
    assert float(rows[1]["energy_gain"]) == pytest.approx(res.energy_gain, rel=1e-5)
    # energy_gain * E_stored + energy_offset_eV puts Mn L3 where l3_eV says
    assert float(rows[1]["energy_offset_eV"]) == pytest.approx(res.energy_offset_eV[1], abs=1e-4)


def test_implausible_gain_is_warned(truth):
    y = stored(0.0, 0.0)
    # a user who names the Mn L2 maximum (652 eV) "Mn-L3": gain ~0.9
    refs = {"O-K": truth["O-K"], "Mn-L3": truth["O-K"] + 0.9 * (truth["Mn-L3"] - truth["O-K"])}
    tp = two_point_calibration(E_STORED, y, refs)
    assert abs(tp.gain - 0.9) < 2e-3 and abs(tp.gain - 1) > GAIN_WARN
    assert tp.warnings and "implausibly far from 1" in tp.warnings[0]


@pytest.mark.parametrize("text,msg", [("O-K=530", "exactly two"), ("O-K=530,Fe-L3=708", "unknown"),
                                      ("O-K=530,Mn-L3=x", "not a number"), ("O-K=530,Mn-L3=541", "20 eV"),
                                      ("O-K 530,Mn-L3=641", "FEATURE=ENERGY")])
def test_bad_reference_text(text, msg):
    with pytest.raises(ValueError, match=msg):
        parse_reference_features(text)


def test_cli_bad_calibrate_edges_exits_2(tmp_path, capsys):
    from layerscope.cli.main import main
    f = tmp_path / "s.csv"
    np.savetxt(f, np.column_stack([E_STORED, stored(0.0, 0.0)]), delimiter=",", header="energy_eV,counts",
               comments="")
    assert main(["eels", str(f), "--calibrate-edges", "O-K=530", "--out", str(tmp_path / "o")]) == 2
    assert "exactly two" in capsys.readouterr().err
    assert main(["eels", str(f), "--calibrate-edges", "O-K=530,Mn-L3=641", "--align-edge", "O-K",
                 "--out", str(tmp_path / "o")]) == 2
    assert "not both" in capsys.readouterr().err
    # a feature outside the spectrum is named
    assert main(["eels", str(f), "--calibrate-edges", "O-K=530,Ni-L3=1100", "--out", str(tmp_path / "o")]) == 2
    assert "Ni-L3 not found" in capsys.readouterr().err


def test_two_point_with_fourier_ratio_deconvolution(truth):
    """Core-loss and low-loss with the same 2 % dispersion error (one spectrometer setting) and a
    t/λ = 0.8 plasmon: the two-point calibration scales both axes, the deconvolution runs on them,
    and L3/L2 is the single-scattering one of the true axis within 2 %."""
    disp, off = 0.02, -6.0
    single = stored(off, disp)
    el_s = -20.0 + 0.25 * np.arange(800)                  # stored low-loss axis
    el_t = (1 + disp) * el_s                               # its true energies (zero-loss at 0)
    plasmon = el_t * 22.0 ** 2 * 6.0 / ((el_t ** 2 - 22.0 ** 2) ** 2 + (el_t * 6.0) ** 2)
    plasmon = np.where(el_t > 0, plasmon, 0.0)
    plasmon /= plasmon.sum()
    zlp = _g(el_t, 0.0, 0.4)
    zlp /= zlp.sum()
    # Poisson sum of plural plasmon scattering, by direct convolutions in channels
    k0 = int(np.argmin(np.abs(el_t)))
    dist, term = np.zeros(len(el_s)), np.zeros(len(el_s))
    dist[k0] = term[k0] = 1.0
    for n in range(1, 12):
        term = np.convolve(term, plasmon)[k0:k0 + len(el_s)] * 0.8 / n
        dist += term
    low = np.convolve(dist, zlp)[k0:k0 + len(el_s)] * 1e6
    kernel = low[k0 - 40:] / low[el_t < 2.0].sum()
    plural = np.convolve(single, kernel)[40:40 + len(single)]
    refs = {"O-K": truth["O-K"], "Mn-L3": truth["Mn-L3"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dec, rec = eels_pipeline(E_STORED, plural, low_loss=low, low_loss_energy_eV=el_s, calibrate_edges=refs,
                                 options=EelsOptions(deconvolve="fourier-ratio"))
        raw, _ = eels_pipeline(E_STORED, plural, low_loss=low, low_loss_energy_eV=el_s, calibrate_edges=refs)
    ref = analyse_eels(E_STORED, model(E_STORED))
    assert dec.t_over_lambda[0] == pytest.approx(0.8, rel=0.03)
    assert dec.energy_gain == pytest.approx(1 + disp, abs=5e-4)
    # plural scattering spoils the ratio without deconvolution (here the L2 is lost: NaN + flag)
    assert not abs(raw.l3_over_l2[0] / ref.l3_over_l2[0] - 1) <= 0.05, raw.flags
    assert dec.l3_over_l2[0] == pytest.approx(ref.l3_over_l2[0], rel=0.02)
    assert dec.l3_eV[0] == pytest.approx(truth["Mn-L3"], abs=0.15)
