"""The notebook API, used as a scientist would: ``import layerscope as ls`` and nothing else.

Each test asserts the numbers the command-line tests assert on the same shared files or simulated
inputs (test_refine_nac.py, test_echem_files.py, test_eels_real.py, test_descriptors.py,
test_stem_cli.py, test_fourd.py, test_operando.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import layerscope as ls

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# the analyses warn (UserWarning) about what they assume, as the CLI prints it; the tests check the record
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _data(sub: str) -> Path:
    d = DATA / sub
    if not d.is_dir():
        pytest.skip(f"{d} is absent")
    return d


def test_import_is_light_and_lists_the_api():
    code = ("import sys, layerscope as ls; "
            "heavy = [m for m in ('jax', 'matplotlib', 'numpy', 'scipy', 'layerscope.refine') if m in sys.modules]; "
            "print(heavy, sorted(ls.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[]"), out
    for name in ("load_phases", "read_powder", "read_instrument", "read_cycler", "read_image", "read_spectrum",
                 "read_fourd", "refine", "descriptors", "cycle_summary", "analyze_eels", "run_study", "simulate",
                 "refine_series", "write_series", "analyze_haadf", "write_haadf", "plot_haadf", "index_fourd",
                 "write_fourd", "plot_fourd", "refine_joint"):
        assert name in ls.__all__ and name in dir(ls)
        assert getattr(ls, name) is not None
    assert "spectra" in dir(ls.simulate)
    with pytest.raises(AttributeError, match="no attribute 'refine_sereis'"):
        ls.refine_sereis


def test_descriptors_of_a_preset():
    """Table S1: DoO = 0.561/(0.561 + 2·0.021) = 93.0 %, DoD = 0.17 %, d_inter 4.744 Å (as the CLI test)."""
    d = ls.descriptors("lrm-pristine:O3p")["O3p"]
    assert d["DoO"] == pytest.approx(0.561 / (0.561 + 2 * 0.021), rel=1e-12)
    assert round(100 * d["DoD"], 2) == 0.17
    assert round(d["d_inter"], 3) == 4.744
    (o3p,) = [p for p in ls.load_phases("lrm-pristine") if p.name == "O3p"]
    assert ls.descriptors(o3p)["O3p"] == d
    assert set(ls.descriptors("lrm-pristine")) == {"O3p", "S"}   # O3' + spinel


def test_cycle_summary_one_row_per_cycle():
    """cellpy's golden values of arbin_cellpy_test001.res (anode half-cell) and NewareNDA's of neware_TestFile.nda."""
    d = _data("cycler")
    s = ls.cycle_summary(ls.read_cycler(d / "arbin_cellpy_test001.res"), convention="anode")
    assert len(s.cycle) == 18
    assert s.charge_mAh[0] == pytest.approx(1.6254, rel=1e-4)
    assert s.discharge_mAh[0] == pytest.approx(1.7551, rel=1e-4)
    assert s.initial_ce == pytest.approx(0.926108, rel=1e-4)
    assert ls.cycle_summary(d / "arbin_cellpy_test001.res").initial_ce == pytest.approx(1 / 0.926108, rel=1e-4)
    ds = s.to_xarray()
    assert ds.sizes["cycle"] == 18 and ds["charge_mAh"].attrs["units"] == "mAh"
    assert float(ds["discharge_mAh"].sel(cycle=1)) == pytest.approx(1.7551, rel=1e-4)
    assert np.isnan(float(ds["charge_mAh"].sel(cycle=18))) and "no charge" in str(ds["note"].sel(cycle=18).values)
    assert "18 cycles" in repr(s) and "initial CE 0.9261" in repr(s)
    n = ls.cycle_summary(ls.read_cycler(d / "neware_TestFile.nda"))
    assert np.isnan(n.charge_mAh[0]) and np.isnan(n.ce[0])       # no charge in cycle 1: NaN, not 0
    assert n.charge_mAh[1] == pytest.approx(5655.088 + 155.93712, rel=1e-5)


def test_simulated_spectrum_gives_back_its_ratio():
    """A simulated Mn L2,3 edge with L3/L2 = 2.6 (its truth) analysed through the API: within 2 %, as
    test_spectra.py's CLI test (and the valence of Tan 2012's calibration within 0.05)."""
    e, counts, truth = ls.simulate.spectra.mn_l23_eels(l3_over_l2=2.6)
    r = ls.analyze_eels((e, counts))
    assert r.l3_over_l2[0] == pytest.approx(truth["l3_over_l2"], rel=0.02)
    assert r.valence[0] == pytest.approx(r.options.calibration.valence(2.6), abs=0.05)


def test_eels_ratio_and_valence():
    """exspy's core-loss spectrum aligned on Mn L3 (edges ~7 eV high) and the NMC Mn edge already
    background-subtracted: valence ranges of test_eels_real.py."""
    d = _data("eels")
    r = ls.analyze_eels(ls.read_spectrum(d / "exspy_coreloss_spectrum.msa"), align_edge="Mn-L3")
    assert len(r.valence) == 1
    assert 2.8 <= r.valence[0] <= 3.8
    assert r.shift_eV[0] == pytest.approx(-6.4, abs=1.0)
    assert np.isfinite(r.l3_over_l2[0]) and r.l3_over_l2[0] > 1
    assert "L3/L2 in 1" in repr(r)
    m = ls.analyze_eels(d / "Mn_edge.msa", background="none")
    assert 3.5 <= m.valence[0] <= 4.0
    ds = m.to_xarray()
    assert ds["shift_eV"].attrs["units"] == "eV" and float(ds["valence"][0]) == m.valence[0]


def test_eels_spectrum_image_on_its_zero_loss(tmp_path):
    d = _data("eels")
    r = ls.analyze_eels(d / "TM+O_EELS_Spectrum_Image.dm3", low_loss=d / "ZLP_EELS_Spectrum_Image.dm3", pca=3)
    assert r.nav_shape == (2, 21) and len(r.valence) == 42
    assert np.all((r.shift_eV > 2.8) & (r.shift_eV < 3.5))
    edge = np.isfinite(r.valence)
    # the vacuum pixels 0, 22 and the thin surface pixel 21 (L3/L2 undetermined by the noise): NaN + flag
    assert set(np.flatnonzero(~edge)) == {0, 21, 22}
    assert "spectrum 0" in r.flags[0] and "too uncertain" in r.flags[21]
    assert np.all((r.valence[edge] >= 3.5) & (r.valence[edge] <= 4.0))
    assert any("Mn L3 maximum lies at" in w for w in r.record["warnings"])   # scale still ~10 eV low
    r.write(tmp_path)
    assert (tmp_path / "eels.csv").is_file() and (tmp_path / "record.json").is_file()


def test_readers_return_data_with_metadata():
    nac = _data("powgen-nac")
    pat = ls.read_powder(nac / "PG3_22048.gsa")
    assert pat.kind == "tof" and pat.source.endswith("PG3_22048.gsa") and len(pat.x) == len(pat.y)
    inst = ls.read_instrument(nac / "POWGEN_2665.instprm")
    assert inst.difc > 0 and inst.source.endswith("POWGEN_2665.instprm")
    names = [p.name for p in ls.load_phases([nac / "NAC.cif", nac / "CaF2.cif"])]
    assert names == ["NAC", "CaF2"]


@pytest.mark.slow
def test_nac_refinement_reaches_gsas2_first_two_stages():
    """GSAS-II's regression protocol on PG3_22048 (TOF 11 000–100 000 µs), its first two stages with
    GSAS-II's conventions and 2-cycle rules: Rwp 27.34 % (background) → 23.27 % (+ NAC phase fraction);
    measured 27.344 / 23.276 % (61 s on a loaded 2-core machine, most of it JAX compilation)."""
    d = _data("powgen-nac")
    strategy = {"refine": {"scale_model": "gsas", "max_cycles": 2, "schedule": "gsas2", "lorentz_convention": "gsas2"},
                "stage": [{"name": "background", "free": ["background", "hscale"],
                           "start": {"*.mustrain": 1000.0, "*.inv_size": 1.0}},
                          {"name": "+ phase fraction", "free": ["NAC.scale"]}]}
    res = ls.refine(d / "PG3_22048.gsa", instrument=d / "POWGEN_2665.instprm",
                    phases=[d / "NAC.cif", d / "CaF2.cif"], strategy=strategy, conventions="gsas2",
                    tmin=11000, tmax=100000)
    assert res.stages[0][1].stats.rwp == pytest.approx(27.34, abs=0.5)
    assert res.stages[1][1].stats.rwp == pytest.approx(23.27, abs=0.5)
    assert res.conventions["lorentz"] == "gsas2"
    assert res.weight_fraction["NAC"] + res.weight_fraction["CaF2"] == pytest.approx(1.0)
    text = repr(res)
    assert "Rwp 23.2" in text and "NAC (I 21 3)" in text and "wt fraction 0.9" in text
    assert "not converged after 2 cycles" in text                 # GSAS-II's 2 cycles: flagged, not hidden
    assert "<b>RietveldResult" in res._repr_html_()
    ds = res.to_xarray()
    assert ds["y_calc"].sizes["tof_us"] == res.final.stats.n_points and ds.attrs["rwp_percent"] == res.final.stats.rwp
    assert bool(ds["refined"].sel(parameter="NAC.scale")) and not bool(ds["refined"].sel(parameter="NAC.a"))
    assert float(ds["value"].sel(parameter="NAC.a")) == pytest.approx(10.2512, abs=1e-3)   # the CIF's, not refined
    w = 1 / ds["sigma"].values ** 2                                 # Rwp again from the tabulated pattern
    rwp = 100 * np.sqrt(np.sum(w * (ds["y_obs"] - ds["y_calc"]).values ** 2) / np.sum(w * ds["y_obs"].values ** 2))
    assert rwp == pytest.approx(res.final.stats.rwp, rel=1e-9)


def test_haadf_analysis_of_a_simulated_twinned_image(tmp_path):
    """A simulated <100>_O3 image with twin variants (seed 3, as test_stem_cli.py's round trip):
    TM column positions within 2 pm RMS of the truth, m/n medians 0.874 (I) and 1.144 (II)."""
    h = ls.simulate.haadf
    px = 0.015
    sim = h.simulate_haadf(h.twin_scene((384 * px * 10,) * 2), pixel_size_nm=px, dose_e_per_A2=4.0e4, seed=3,
                           shape=(384, 384), probe_sigma_nm=0.035)
    r = ls.analyze_haadf(sim.image.astype(np.float32), pixel_size_nm=px)
    assert r.analysis == "layered-100" and r.calibration == {"pixel_size_nm": px, "units": "nm"}
    cols = r.to_dataframe("columns")
    assert list(cols.columns) == ["x_px", "y_px", "x_nm", "y_nm", "amplitude", "sigma_px", "position_esd_px",
                                  "sublattice"]
    from scipy.spatial import cKDTree

    truth = sim.columns_px[sim.sublattice == 0] * px
    d, _ = cKDTree(truth).query(cols[["x_nm", "y_nm"]].to_numpy())
    assert np.sqrt(np.mean(d[d < 0.05] ** 2) / 2) < 0.002          # nm
    cells = r.to_xarray("cells")
    assert cells["inplane_spacing_nm"].attrs["units"] == "nm" and cells.sizes["cells"] == r.summary["cells"]
    mn, var = cells["m_over_n"].values, cells["variant"].values
    assert np.median(mn[var == "I"]) == pytest.approx(0.874, abs=0.01)
    assert np.median(mn[var == "II"]) == pytest.approx(1.144, abs=0.01)
    assert set(var) == {"I", "II", "O1"}
    assert "layered-100 analysis" in repr(r) and "variant_fractions" in repr(r)
    figs = ls.plot_haadf(r)
    assert set(figs) == {"m_over_n", "variants", "strain"}
    written = ls.write_haadf(r, tmp_path, figures=False)
    assert {"columns", "cells", "boundaries", "defects", "strain", "summary"} <= set(written)
    assert (tmp_path / "cells.csv").read_text().splitlines()[0].startswith("centre_x_px,centre_y_px,")


def test_fourd_indexing_of_a_simulated_scan(tmp_path):
    """A simulated 12 × 12 scan of a pristine particle (as test_fourd.py's command-line test):
    > 90 % of the positions get their true phase; Euler angles and quaternions per position."""
    sim = ls.simulate.fourd.simulate_fourd(scan_shape=(12, 12))
    m = ls.index_fourd(sim.data, phases=["lrm-pristine:O3p", "lrm-pristine:S"], spacing_deg=8,
                       pixel_size=sim.geometry.pixel_inv_angstrom)
    assert np.mean(m.phase == sim.phase) > 0.9
    ds = m.to_xarray()
    assert ds["euler_bunge_deg"].shape == (12, 12, 3) and ds["quaternion_xyzw"].shape == (12, 12, 4)
    assert ds["phase_reliability"].attrs["units"] == "%" and "O3p" in ds.attrs["phase_names"]
    assert m.attrs["calibration_source"] == "--pixel-size" and not m.attrs["calibration_assumed"]
    assert "FourDMaps(patterns of <array>: 12×12 positions" in repr(m)
    assert {"vbf", "phase_map", "orientation_map"} == set(ls.plot_fourd(m))
    ls.write_fourd(m, tmp_path)
    assert (tmp_path / "maps.h5").is_file() and (tmp_path / "calibration.json").is_file()


@pytest.mark.slow
def test_short_operando_series_recovers_its_truth(tmp_path):
    """The reference + the first pattern of the simulated experiment (seed 1, as test_operando.py's
    command-line test): fractions within 0.02, O3' cell within 5e-4 Å, DoO within 0.05, DoD 0.003."""
    import csv

    ls.simulate.operando.simulate_operando(tmp_path, seed=1, n_points=3000)
    series = tmp_path / "series"
    with open(series / "series.csv") as fh:
        rows = list(csv.DictReader(fh))
    with open(series / "series.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[:2])
    res = ls.refine_series(series, cycler=tmp_path / "cycler.csv")
    with open(tmp_path / "truth.csv") as fh:
        truth = list(csv.DictReader(fh))[:2]
    ds = res.to_xarray()
    assert ds.sizes["pattern"] == 2 and ds["d_inter_O3p"].attrs["units"] == "Å"
    assert ds["O3p_a"].attrs["units"] == "Å" and ds["time_h"].attrs["units"] == "h"
    for k in ("frac_O3p_esd", "d_intra_O3p_esd", "DoO_esd", "DoD_esd", "O_vacancy_esd"):
        assert ds[k].attrs["units"] == ds[k.removesuffix("_esd")].attrs["units"], k
    assert bool(ds["converged"].all()), list(ds["flag"].values)
    for i, t in enumerate(truth):
        assert float(ds["time_h"][i]) == pytest.approx(float(t["time_h"]), abs=1e-9)
        for k in ("frac_O3p", "frac_O3", "frac_S"):
            assert float(ds[k][i]) == pytest.approx(float(t[k]), abs=0.02), k
        for k in ("O3p_a", "O3p_b", "O3p_c"):
            assert float(ds[k][i]) == pytest.approx(float(t[k]), abs=5e-4), k
        assert float(ds["DoO"][i]) == pytest.approx(float(t["DoO"]), abs=0.05)
        assert float(ds["DoD"][i]) == pytest.approx(float(t["DoD"]), abs=0.003)
    assert "SeriesResult(2 patterns" in repr(res) and "frac_O3p" in repr(res)
    assert list(res.to_dataframe().index) == [r["pattern"] for r in res.rows]


def test_importing_the_library_leaves_the_matplotlib_backend_alone():
    """Library manners: no module chooses a Matplotlib backend on import (only ``layerscope.cli.main``
    may, and only where the user set none), and no library code calls ``matplotlib.use``."""
    code = ("import importlib, pkgutil, sys, matplotlib, layerscope\n"
            "names = [m.name for m in pkgutil.walk_packages(layerscope.__path__, 'layerscope.') "
            "if not m.name.endswith('__main__')]\n"
            "for n in names:\n"
            "    importlib.import_module(n)\n"
            "print(len(names), matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n")
    import os

    env = {**os.environ, "MPLBACKEND": "template"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    n, backend, pyplot = out.split()
    assert int(n) > 100 and backend == "template" and pyplot == "False", out
    src = Path(ls.__file__).parent
    users = [p.relative_to(src).as_posix() for p in src.rglob("*.py") if "matplotlib.use(" in p.read_text()]
    assert users == [], users
