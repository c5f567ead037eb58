"""EELS energy calibration, detection flags, valence methods and outputs on synthetic spectra."""

import json

import numpy as np
import pytest

from layerscope.cli import main
from layerscope.simulate.spectra import mn_l23_eels, mn_o_eels, zero_loss_peak
from layerscope.spectra.analysis import EelsOptions, analyse_eels
from layerscope.spectra.calibrate import edge_shifts, zlp_position, zlp_shifts
from layerscope.spectra.calibration import (MN_L3L2_TAN2012, ValenceCalibration,
                                            calibration_from_references)
from layerscope.spectra.io import from_signal, spectrum_from_arrays
from layerscope.spectra.pipeline import eels_pipeline

pytestmark = pytest.mark.filterwarnings("ignore:energy axis used as stored")


def test_calibration_table_numbers_and_citation_pinned():
    cal = MN_L3L2_TAN2012
    assert cal.valences == (2.0, 8.0 / 3.0, 3.0, 4.0)
    assert cal.ratios == (3.95, 2.90, 2.60, 1.95)
    assert cal.compounds == ("MnO", "Mn3O4", "Mn2O3", "MnO2")
    assert "Ultramicroscopy 116, 24-33 (2012)" in cal.source and "Tan" in cal.source
    assert "10.1016/j.ultramic.2012.03.002" in cal.source
    # the numbers are not yet compared with the publication's table: the status must say so,
    # and say what was checked (compounds, valences) and why the values were not
    assert "not checked" in cal.status
    assert "formal valences" in cal.status and "without a table/figure number" in cal.status
    assert cal.as_dict()["status"] == cal.status


def test_valence_outside_calibration_is_nan_never_extrapolated():
    cal = MN_L3L2_TAN2012
    assert np.isnan(cal.valence(1.5)) and np.isnan(cal.valence(4.5))
    assert "outside the calibration range" in cal.check(4.5)
    assert cal.check(2.3) == ""
    assert cal.valence(2.275) == pytest.approx(3.5)
    own = calibration_from_references([4.0, 3.0], [2.0, 2.7], compounds=["Li2MnO3", "LiMnO2"])
    assert own.valences == (3.0, 4.0) and own.status == "measured"
    assert own.valence(2.35) == pytest.approx(3.5)


@pytest.mark.parametrize("offset", [-10.0, -3.3, 0.0, 4.7, 10.0])
def test_zlp_calibration_recovers_ratio_within_2_percent(offset):
    e, y, truth = mn_o_eels(offset_eV=offset, l3_over_l2=2.6)
    el, yl, _ = zero_loss_peak(centre_eV=offset)
    res, rec = eels_pipeline(e, y, low_loss=yl, low_loss_energy_eV=el)
    assert res.shift_eV[0] == pytest.approx(-offset, abs=0.02)
    assert res.l3_over_l2[0] == pytest.approx(2.6, rel=0.02)
    assert res.l3_eV[0] == pytest.approx(642.0, abs=0.3)
    assert res.o_pre_edge_eV[0] == pytest.approx(530.0, abs=0.3)
    assert res.flags == ("",)
    assert rec["calibration"]["shift_eV_median"] == pytest.approx(-offset, abs=0.02)


@pytest.mark.parametrize("offset", [-10.0, 10.0])
def test_zlp_calibration_with_poisson_noise(offset):
    for seed in range(3):
        e, y, _ = mn_o_eels(offset_eV=offset, l3_over_l2=2.6, noise=True, seed=seed, scale=300)
        el, yl, _ = zero_loss_peak(centre_eV=offset, noise=True, seed=seed)
        res, _ = eels_pipeline(e, y, low_loss=yl, low_loss_energy_eV=el)
        assert res.shift_eV[0] == pytest.approx(-offset, abs=0.02)
        assert res.l3_over_l2[0] == pytest.approx(2.6, rel=0.02)
        # the propagated esd; a Monte Carlo of this dose gives a ratio scatter of 0.011
        # (tests/test_eels_uncertainty.py checks the propagation against one)
        assert 0.008 < res.l3_over_l2_stat_err[0] < 0.015


def test_zlp_position_sub_channel_and_no_peak():
    e = np.arange(-10, 30, 0.3)
    _, y, _ = zero_loss_peak(e, centre_eV=1.234)
    assert zlp_position(e, y) == pytest.approx(1.234, abs=0.01)
    with pytest.raises(ValueError, match="no zero-loss peak"):
        zlp_position(e, np.ones_like(e))
    # pixel 1 has no peak: median shift of the others, and a flag naming it
    s = zlp_shifts(e, np.array([y, np.ones_like(e), y]))
    assert s.shift_eV[1] == pytest.approx(-1.234, abs=0.01) and "median" in s.flags[1]


@pytest.mark.parametrize("offset", [-10.0, 6.0])
def test_edge_alignment(offset):
    e, y, _ = mn_o_eels(offset_eV=offset, l3_over_l2=2.3)
    s = edge_shifts(e, y, "O-K")
    assert s.shift_eV[0] == pytest.approx(-offset, abs=0.1)
    # Mn-L3 half-rise: a convention (640 eV); it must follow the offset one to one
    e0, y0, _ = mn_o_eels(offset_eV=0.0, l3_over_l2=2.3)
    d = edge_shifts(e, y, "Mn-L3").shift_eV[0] - edge_shifts(e0, y0, "Mn-L3").shift_eV[0]
    assert d == pytest.approx(-offset, abs=0.1)
    res, _ = eels_pipeline(e, y, align_edge="O-K")
    assert res.l3_over_l2[0] == pytest.approx(2.3, rel=0.02)
    res, rec = eels_pipeline(e, y, shift_eV=-offset)
    assert res.l3_eV[0] == pytest.approx(642.0, abs=0.3)
    assert rec["calibration"]["explicit_shift_eV"] == -offset


def test_line_scan_without_edge_is_nan_with_flag_and_never_aborts():
    e = np.arange(470.0, 720.0, 0.25)
    rows, truth = [], []
    for k, r in enumerate([2.2, None, 2.6, 4.6, 3.0]):
        _, y, _ = mn_o_eels(e, l3_over_l2=r or 2.5, mn=r is not None, noise=True, seed=k, scale=50)
        rows.append(y)
    bad = rows[0].copy()
    bad[:] = -1.0       # a broken spectrum: the power law cannot be fitted
    rows.append(bad)
    res = analyse_eels(e, np.array(rows))
    assert res.l3_over_l2[0] == pytest.approx(2.2, rel=0.03)
    assert res.l3_over_l2[2] == pytest.approx(2.6, rel=0.03)
    assert np.isnan(res.valence[1]) and "spectrum 1" in res.flags[1] and "no Mn" in res.flags[1]
    assert np.isnan(res.valence[3]) and "outside the calibration range" in res.flags[3]
    assert res.l3_over_l2[3] == pytest.approx(4.6, rel=0.03)   # the ratio is kept, the valence not
    assert np.isnan(res.valence[5]) and "spectrum 5" in res.flags[5]
    assert res.flags[0] == res.flags[2] == res.flags[4] == ""
    assert np.all(np.isfinite(res.valence[[0, 2, 4]]))


def test_presubtracted_spectrum_with_background_none():
    e, y, _ = mn_l23_eels(np.arange(600.0, 720.0, 0.2), l3_over_l2=2.4, bg_a=0.0)
    res = analyse_eels(e, y, options=EelsOptions(background="none"))
    assert res.l3_over_l2[0] == pytest.approx(2.4, rel=0.02)


def test_mlls_and_chemical_shift_valences():
    e = np.arange(470.0, 720.0, 0.25)
    _, r3, _ = mn_o_eels(e, l3_over_l2=2.6, l3_eV=641.5, l2_eV=652.5)
    _, r4, _ = mn_o_eels(e, l3_over_l2=1.95, l3_eV=643.0, l2_eV=654.0)
    mix = 0.5 * (r3 + r4)
    shift_cal = ValenceCalibration((3.0, 4.0), (111.4, 113.1), quantity="dE eV")
    opts = EelsOptions(references={3.0: (e, r3), 4.0: (e, r4)}, shift_calibration=shift_cal)
    res = analyse_eels(e, np.array([r3, r4, mix]), options=opts)
    np.testing.assert_allclose(res.valence_mlls, [3.0, 4.0, 3.5], atol=0.03)
    np.testing.assert_allclose(res.delta_e_eV[:2], [111.5, 113.0], atol=0.3)
    assert res.valence_shift[0] == pytest.approx(3.0, abs=0.2)
    assert res.valence_shift[1] == pytest.approx(4.0, abs=0.2)


def test_any_axis_order_and_signal_in_memory():
    e, y, _ = mn_o_eels(l3_over_l2=2.5)
    cube = np.stack([y, 1.1 * y, 0.9 * y])            # (3 positions, channels)
    axes = [{"units": "eV", "offset": float(e[0]), "scale": 0.25, "index_in_array": 0},
            {"units": "nm", "offset": 0.0, "scale": 2.0, "index_in_array": 1}]
    spec = spectrum_from_arrays(cube.T, axes)          # energy FIRST
    assert spec.counts.shape == (3, len(e)) and spec.nav_shape == (3,)
    np.testing.assert_allclose(spec.position_nm, [0, 2, 4])
    np.testing.assert_allclose(spec.counts[1], 1.1 * y)
    with pytest.raises(ValueError, match="no axis in energy units"):
        spectrum_from_arrays(cube, [{"units": "nm"}, {"units": "µm"}])

    class Ax:   # the attributes of a HyperSpy DataAxis that from_signal reads
        def __init__(self, units, axis, idx, nav):
            self.units, self.axis, self.index_in_array, self.navigate = units, axis, idx, nav
            self.offset, self.scale = axis[0], axis[1] - axis[0]

    class Sig:
        data = np.stack([cube, cube])                  # (2, 3, channels): HyperSpy order
        axes_manager = type("AM", (), {"_axes": [Ax("nm", np.arange(2.0), 0, True),
                                                 Ax("nm", np.arange(3.0), 1, True),
                                                 Ax("eV", e, 2, False)]})()
    s = from_signal(Sig())
    assert s.nav_shape == (2, 3) and s.counts.shape == (6, len(e))
    from layerscope.spectra.pipeline import analyse_signal
    maps = analyse_signal(Sig())
    assert maps["l3_over_l2"].shape == (2, 3)
    np.testing.assert_allclose(maps["l3_over_l2"], 2.5, rtol=0.02)


def test_cli_writes_shift_flags_and_record(tmp_path):
    e, y, _ = mn_o_eels(offset_eV=7.0, l3_over_l2=2.6, noise=True, scale=100)
    e2, y2, _ = mn_o_eels(offset_eV=7.0, mn=False, noise=True, seed=1, scale=100)
    core = tmp_path / "core.csv"
    np.savetxt(core, np.column_stack([e, y, y2]), delimiter=",", header="energy_eV,a,b", comments="")
    el, yl, _ = zero_loss_peak(centre_eV=7.0)
    low = tmp_path / "low.csv"
    np.savetxt(low, np.column_stack([el, yl, yl]), delimiter=",", header="energy_eV,a,b", comments="")
    out = tmp_path / "out"
    assert main(["eels", str(core), "--low-loss", str(low), "--out", str(out)]) == 0
    import csv
    with open(out / "eels.csv", newline="") as fh:
        rd = csv.DictReader(fh)
        names = rd.fieldnames
        rows = list(rd)
    assert names[:5] == ["index", "position_nm", "l3_over_l2", "valence", "o_pre_edge_ratio"]
    assert {"shift_eV", "flag", "valence_shift", "valence_mlls"} <= set(names)
    np.testing.assert_allclose([float(r["shift_eV"]) for r in rows], -7.0, atol=0.02)
    assert float(rows[0]["l3_over_l2"]) == pytest.approx(2.6, rel=0.02)
    assert np.isnan(float(rows[1]["valence"])) and "spectrum 1" in rows[1]["flag"]
    rec = json.loads((out / "record.json").read_text())
    assert rec["calibration"]["steps"][0]["method"] == "zero-loss peak to 0 eV"
    assert rec["methods"]["white_line_calibration"]["source"] == MN_L3L2_TAN2012.source
    assert rec["windows_example"]["mn"]["l3"][0] == pytest.approx(638.0, abs=0.5)
    assert (out / "eels.png").stat().st_size > 0


def test_co_and_ni_l23_ratios_and_uncertain_ratio_flagged():
    e = np.arange(560.0, 940.0, 0.25)
    _, mn, _ = mn_l23_eels(e, l3_over_l2=2.3)
    _, co, _ = mn_l23_eels(e, l3_over_l2=3.1, l3_eV=779.0, l2_eV=794.0, bg_a=0.0)
    _, ni, _ = mn_l23_eels(e, l3_over_l2=3.4, l3_eV=855.0, l2_eV=872.3, bg_a=0.0)
    res = analyse_eels(e, mn + co + ni, options=EelsOptions(other_elements=("Co", "Ni")))
    assert res.l3_over_l2[0] == pytest.approx(2.3, rel=0.02)
    assert res.other["Co"]["l3_over_l2"][0] == pytest.approx(3.1, rel=0.03)
    assert res.other["Ni"]["l3_over_l2"][0] == pytest.approx(3.4, rel=0.03)
    # a weak, noisy edge: detected, but its ratio too uncertain to report
    _, weak, _ = mn_l23_eels(e, l3_over_l2=2.3, i_l2=1000.0, continuum=333.0,
                             continuum_slope_per_eV=0, noise=True, seed=3, bg_a=4.0e12)
    res = analyse_eels(e, weak)
    assert res.snr[0] > 5                                   # detected ...
    assert res.l3_over_l2_stat_err[0] > 0.1 * 2.3           # ... but too uncertain to report
    assert np.isnan(res.valence[0]) and "too uncertain" in res.flags[0]


def test_hspy_line_scan_through_the_cli(tmp_path):
    import rsciio.hspy

    e, y, _ = mn_o_eels(offset_eV=-4.0, l3_over_l2=2.5)
    sig = {"data": np.stack([y, 1.1 * y, 0.9 * y]),
           "axes": [{"name": "x", "size": 3, "offset": 0.0, "scale": 1.5, "units": "nm", "navigate": True},
                    {"name": "Energy loss", "size": len(e), "offset": float(e[0]), "scale": 0.25,
                     "units": "eV", "navigate": False}],
           "metadata": {"General": {"title": "t"}, "Signal": {"signal_type": "EELS"}},
           "original_metadata": {}, "attributes": {"_lazy": False}, "tmp_parameters": {},
           "learning_results": {}, "models": {}, "package_info": {"name": "test", "version": "0"}}
    path = tmp_path / "scan.hspy"
    rsciio.hspy.file_writer(str(path), sig)
    out = tmp_path / "out"
    assert main(["eels", str(path), "--shift-eV", "4", "--out", str(out)]) == 0
    import csv
    with open(out / "eels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    np.testing.assert_allclose([float(r["position_nm"]) for r in rows], [0.0, 1.5, 3.0])
    np.testing.assert_allclose([float(r["l3_over_l2"]) for r in rows], 2.5, rtol=0.02)
    np.testing.assert_allclose([float(r["l3_eV"]) for r in rows], 642.0, atol=0.3)


def test_sxas_state_shifts():
    from layerscope.simulate.spectra import o_k_xas
    from layerscope.spectra import xas

    e, mu, _ = o_k_xas()
    ref = xas.state_integrals({"a": (e, mu)}, pre_edge_eV=(510, 524), post_edge_eV=(550, 559))["a"]
    # the same spectrum recorded 1.5 eV high and corrected by its shift gives the same integral
    got = xas.state_integrals({"a": (e + 1.5, mu)}, shifts={"a": -1.5}, pre_edge_eV=(510, 524),
                              post_edge_eV=(550, 559))["a"]
    assert got == pytest.approx(ref, rel=1e-3)
    with pytest.raises(ValueError, match="state 'a'"):
        xas.state_integrals({"a": (e, mu)}, shifts={"a": 30.0})


def test_cli_bad_calibration_inputs_exit_2(tmp_path, capsys):
    e, y, _ = mn_o_eels(l3_over_l2=2.5)
    core = tmp_path / "core.csv"
    np.savetxt(core, np.column_stack([e, y]), delimiter=",", header="energy_eV,a", comments="")
    flat = tmp_path / "flat.csv"
    np.savetxt(flat, np.column_stack([np.arange(-10, 30, 0.5), np.ones(80)]), delimiter=",")
    assert main(["eels", str(core), "--low-loss", str(flat), "--out", str(tmp_path / "o")]) == 2
    assert "flat.csv" in capsys.readouterr().err
    short = tmp_path / "short.csv"
    m = e > 600
    np.savetxt(short, np.column_stack([e[m], y[m]]), delimiter=",")
    assert main(["eels", str(short), "--align-edge", "O-K", "--out", str(tmp_path / "o")]) == 2
    assert "short.csv" in capsys.readouterr().err


def test_cli_own_calibration_from_reference_spectra(tmp_path):
    e = np.arange(470.0, 720.0, 0.25)
    files = []
    for v, r, l3 in ((3.0, 2.7, 641.5), (4.0, 2.0, 643.0)):
        _, y, _ = mn_o_eels(e, l3_over_l2=r, l3_eV=l3, l2_eV=l3 + 11.0)
        p = tmp_path / f"ref{v:g}.csv"
        np.savetxt(p, np.column_stack([e, y]), delimiter=",")
        files.append(f"{v:g}={p}")
    _, mix, _ = mn_o_eels(e, l3_over_l2=2.35, l3_eV=642.25, l2_eV=653.25)
    core = tmp_path / "x.csv"
    np.savetxt(core, np.column_stack([e, mix]), delimiter=",")
    out = tmp_path / "out"
    assert main(["eels", str(core), "--reference", files[0], "--reference", files[1],
                 "--calibration", "references", "--out", str(out)]) == 0
    rec = json.loads((out / "record.json").read_text())
    cal = rec["methods"]["white_line_calibration"]
    assert cal["status"] == "measured" and cal["valences"] == [3.0, 4.0]
    np.testing.assert_allclose(cal["values"], [2.7, 2.0], rtol=0.02)
    import csv
    with open(out / "eels.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["valence"]) == pytest.approx(3.5, abs=0.05)
    assert float(row["valence_mlls"]) == pytest.approx(3.5, abs=0.1)


def test_every_calibration_number_carries_its_citation():
    """Each L3/L2 point names publication and place, and says it was NOT compared with it."""
    from layerscope.spectra.calibration import (LITERATURE_CHECK, MN_DE_CALIBRATION, MN_DE_STATUS,
                                                CalibrationPoint)
    cal = MN_L3L2_TAN2012
    expected = [("MnO", 2.0, 3.95), ("Mn3O4", 8.0 / 3.0, 2.90), ("Mn2O3", 3.0, 2.60),
                ("MnO2", 4.0, 1.95)]
    assert [(p.compound, p.valence, p.value) for p in cal.points] == expected
    for p in cal.points:
        assert "Ultramicroscopy 116, 24-33 (2012)" in p.publication and "Tan" in p.publication
        assert "not identified" in p.location        # no table/figure number was read
        assert "be07efc" in p.location               # where the number entered layerscope
        assert p.checked is False                     # no number verified against the paper
    d = cal.as_dict()["points"]
    assert [q["value"] for q in d] == [3.95, 2.90, 2.60, 1.95]
    assert all(q["checked"] is False for q in d)
    # points that do not repeat the table are refused
    with pytest.raises(ValueError, match="repeat"):
        ValenceCalibration((3.0, 4.0), (2.6, 1.95), ("Mn2O3", "MnO2"),
                           points=(CalibrationPoint("Mn2O3", 3.0, 2.7, "x", "Table 1"),
                                   CalibrationPoint("MnO2", 4.0, 1.95, "x", "Table 1")))
    # no ΔE table could be read from Zhang et al. 2010: no built-in one, and the record says why
    assert MN_DE_CALIBRATION is None
    assert "Zhang" in MN_DE_STATUS and "1741-1746 (2010)" in MN_DE_STATUS
    assert all(not c["numbers_verified"] for c in LITERATURE_CHECK)
    assert any("Zhang" in c["publication"] for c in LITERATURE_CHECK)
    assert any("Riedl" in c["publication"] for c in LITERATURE_CHECK)


def test_valence_shift_nan_without_table_and_record_says_why():
    from layerscope.spectra.calibration import MN_DE_STATUS
    e = np.arange(470.0, 720.0, 0.25)
    _, y, _ = mn_o_eels(e, l3_over_l2=2.6, l3_eV=641.5, l2_eV=652.5)
    with pytest.warns(UserWarning):
        res, rec = eels_pipeline(e, y[None, :], shift_eV=0.0)
    assert np.isfinite(res.delta_e_eV[0])             # ΔE is measured ...
    assert np.isnan(res.valence_shift[0])             # ... but not turned into a valence
    assert rec["methods"]["shift_calibration"] == {"status": MN_DE_STATUS}
    assert any(MN_DE_STATUS in w for w in rec["warnings"])
