"""EELS, EDS and sXAS analysis against synthetic spectra with known truth."""

import numpy as np
import pytest

from layerscope.cli import main
from layerscope.simulate.spectra import eds_spectrum, mn_l23_eels, o_k_eels, o_k_xas
from layerscope.spectra import MN_L3L2_TAN2012, ValenceCalibration, read_spectrum
from layerscope.spectra import eds, xas
from layerscope.spectra.eels import (fit_power_law, line_profile, o_k_pre_edge,
                                     subtract_background, white_line_ratio)


def test_power_law_recovered_exactly():
    e = np.linspace(500, 700, 400)
    bg = fit_power_law(e, 3e11 * e ** -2.7, (520, 600))
    assert bg.r == pytest.approx(2.7, rel=1e-10)
    assert bg.a == pytest.approx(3e11, rel=1e-8)


@pytest.mark.parametrize("ratio", [1.95, 2.3, 2.6, 3.0, 4.0])
def test_l3_l2_ratio_recovered_within_2_percent(ratio):
    e, y, truth = mn_l23_eels(l3_over_l2=ratio)
    sig, _ = subtract_background(e, y, (600, 632))
    w = white_line_ratio(e, sig)
    assert w.l3_over_l2 == pytest.approx(truth["l3_over_l2"], rel=0.02)
    assert w.l3_eV == pytest.approx(642.0, abs=0.2)
    assert w.l2_eV == pytest.approx(653.0, abs=0.2)


def test_l3_l2_ratio_with_poisson_noise():
    rs = []
    for seed in range(5):
        e, y, _ = mn_l23_eels(l3_over_l2=2.5, noise=True, seed=seed, i_l2=3e5, continuum=8e4,
                              continuum_slope_per_eV=-200, bg_a=4e14)
        sig, _ = subtract_background(e, y, (600, 632))
        rs.append(white_line_ratio(e, sig).l3_over_l2)
    assert np.mean(rs) == pytest.approx(2.5, rel=0.02)
    assert np.std(rs) < 0.05 * 2.5


def test_valence_calibration_reproduces_its_points():
    cal = MN_L3L2_TAN2012
    np.testing.assert_allclose(cal.valence(np.array(cal.ratios)), cal.valences, rtol=1e-12)
    # Half-way between Mn3+ and Mn4+ points on the ratio axis is Mn3.5+ (linear segment).
    mid = 0.5 * (cal.ratios[2] + cal.ratios[3])
    assert cal.valence(mid) == pytest.approx(3.5, abs=1e-12)
    custom = ValenceCalibration((3.0, 4.0), (2.7, 2.0))
    assert custom.valence(2.35) == pytest.approx(3.5)
    with pytest.raises(ValueError, match="monotonic"):
        ValenceCalibration((2.0, 3.0, 4.0), (3.0, 3.5, 2.0))


def test_o_k_pre_edge_integral():
    e, y, truth = o_k_eels(pre_edge_area=400.0)
    sig, _ = subtract_background(e, y, (490, 522))
    p = o_k_pre_edge(e, sig)
    assert p.pre_edge == pytest.approx(truth["pre_edge_integral"], rel=0.01)
    assert p.main_edge == pytest.approx(truth["main_edge_integral"], rel=0.01)
    # A stronger pre-edge gives a proportionally larger ratio (Supp. Fig. 4b trend).
    e2, y2, t2 = o_k_eels(pre_edge_area=800.0)
    p2 = o_k_pre_edge(e2, subtract_background(e2, y2, (490, 522))[0])
    assert p2.ratio / p.ratio == pytest.approx(t2["pre_edge_integral"] / truth["pre_edge_integral"]
                                               * truth["main_edge_integral"]
                                               / t2["main_edge_integral"], rel=0.02)


def test_line_profile_surface_to_interior():
    ratios = np.linspace(3.0, 2.2, 6)  # reduced Mn at the surface (spinel shell)
    e = np.arange(480.0, 700.0, 0.2)
    stack = []
    for r in ratios:
        _, mn, _ = mn_l23_eels(e, l3_over_l2=r)
        _, ok, _ = o_k_eels(e)
        stack.append(mn + ok)
    prof = line_profile(e, np.array(stack), np.arange(6) * 2.0)
    np.testing.assert_allclose(prof.l3_over_l2, ratios, rtol=0.02)
    np.testing.assert_allclose(prof.valence, MN_L3L2_TAN2012.valence(ratios), atol=0.06)
    assert np.all(np.isfinite(prof.o_pre_edge_ratio))


def test_eds_k_lines_and_cliff_lorimer():
    areas = {"Mn": 5.4e4, "Co": 1.3e4, "Ni": 1.3e4}
    e, y, truth = eds_spectrum(areas=areas)
    res = eds.k_line_intensities(e, y, ("Mn", "Co", "Ni"))
    np.testing.assert_allclose(res.kalpha, [areas[k] for k in res.elements], rtol=1e-6)
    # With Poisson noise the overlapping Co Kβ / Ni Kα are still separated within 3 %.
    e, y, _ = eds_spectrum(areas=areas, noise=True, seed=1)
    res = eds.k_line_intensities(e, y, ("Mn", "Co", "Ni"))
    np.testing.assert_allclose(res.kalpha, [areas[k] for k in res.elements], rtol=0.03)
    k = {"Mn": 1.0, "Co": 1.1, "Ni": 1.2}
    c = eds.cliff_lorimer({el: areas[el] for el in areas}, k)
    total = 5.4e4 + 1.1 * 1.3e4 + 1.2 * 1.3e4
    assert c["Mn"] == pytest.approx(5.4e4 / total, rel=1e-12)
    assert sum(c.values()) == pytest.approx(1.0)
    defect = eds.cliff_lorimer({"Mn": 4.0e4, "Co": 1.3e4, "Ni": 1.3e4}, k)
    assert eds.region_ratio(defect, c)["Mn"] < 1.0
    with pytest.raises(ValueError, match="k-factor"):
        eds.cliff_lorimer({"Mn": 1.0, "Fe": 1.0}, {"Mn": 1.0})


def test_sxas_normalisation_and_integral():
    e, mu, truth = o_k_xas()
    n = xas.normalize(e, mu, pre_edge_eV=(510, 524), post_edge_eV=(550, 559))
    exact = xas.integrated_intensity(e, truth["normalised"])
    assert xas.integrated_intensity(e, n) == pytest.approx(exact, rel=0.01)
    states = {"OCV": o_k_xas(peak_areas=(1.2, 0.0, 2.0))[:2],
              "C-4.5V": o_k_xas(peak_areas=(1.2, 0.5, 2.0))[:2]}
    ints = xas.state_integrals(states, pre_edge_eV=(510, 524), post_edge_eV=(550, 559))
    assert ints["C-4.5V"] - ints["OCV"] == pytest.approx(0.5, rel=0.02)


def test_cli_eels_on_msa_line_scan(tmp_path):
    import rsciio.msa

    e, y, truth = mn_l23_eels(l3_over_l2=2.6)
    path = tmp_path / "mn.msa"
    rsciio.msa.file_writer(str(path), {
        "data": y, "axes": [{"name": "Energy", "size": len(e), "offset": float(e[0]),
                             "scale": 0.2, "units": "eV", "navigate": False}],
        "metadata": {"General": {"title": "mn"}, "Signal": {"signal_type": "EELS"}},
        "original_metadata": {}})
    spec = read_spectrum(path)
    np.testing.assert_allclose(spec.energy_eV, e, atol=1e-6)
    assert main(["eels", str(path), "--out", str(tmp_path / "out")]) == 0
    rows = np.genfromtxt(tmp_path / "out" / "eels.csv", delimiter=",", names=True)
    assert float(rows["l3_over_l2"]) == pytest.approx(2.6, rel=0.02)
    assert float(rows["valence"]) == pytest.approx(MN_L3L2_TAN2012.valence(2.6), abs=0.05)


@pytest.mark.parametrize("suffix", [".msa", ".dm3", ".dm4", ".csv"])
def test_bad_spectrum_files_name_the_file(tmp_path, suffix):
    empty = tmp_path / ("empty" + suffix)
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=f"empty{suffix}.*empty"):
        read_spectrum(empty)
    bad = tmp_path / ("bad" + suffix)
    bad.write_bytes(b"not a spectrum at all\n\x00\x01\x02" * 10)
    with pytest.raises(ValueError, match=f"bad\\{suffix}"):
        read_spectrum(bad)


def test_truncated_msa_names_the_file(tmp_path):
    import rsciio.msa

    e, y, _ = mn_l23_eels()
    full = tmp_path / "full.msa"
    rsciio.msa.file_writer(str(full), {
        "data": y, "axes": [{"name": "Energy", "size": len(e), "offset": float(e[0]),
                             "scale": 0.2, "units": "eV", "navigate": False}],
        "metadata": {"General": {"title": "mn"}, "Signal": {"signal_type": "EELS"}},
        "original_metadata": {}})
    cut = tmp_path / "cut.msa"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut\.msa"):
        read_spectrum(cut)


def test_nan_spectrum_rejected():
    e, y, _ = mn_l23_eels()
    y[100] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        white_line_ratio(e, y)
