"""Any-crystal HAADF/ABF analysis on real images with published reference values (issue 20).

Data in ../shared/data (GPL-3.0 test data, read only, never copied):
haadf/Cropped_PTO-SRO_Aligned.hspy + the 465 A-site positions of its original
analysis (TEMUL), haadf/nsmo_110_haadf.tif (18.4 pm/px, not in the file) and
the ADF/ABF pair of the same SrTiO3 area from Atomap's test set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import Delaunay, cKDTree

from layerscope.cli import main
from layerscope.stem import read_image
from layerscope.stem.analysis import analyse_crystal, detect_contrast, recognise_layered
from layerscope.stem.columns import find_columns
from layerscope.stem.lattice import lattice_parameters

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _need(*parts):
    p = DATA.joinpath(*parts)
    if not p.is_file():
        pytest.skip(f"real data not present: {p}")
    return p


def _check_lattice(res, tol=0.005):
    ag = res.agreement
    assert abs(ag["a_rel"]) < tol and abs(ag["b_rel"]) < tol, ag


def test_pto_sro_a_sites_match_the_published_positions():
    img = read_image(_need("haadf", "Cropped_PTO-SRO_Aligned.hspy"))
    ref = np.load(_need("haadf", "PTO-SRO_A_site_positions_px.npy"))
    x1 = img.data.shape[1]  # the whole image: a crop's FFT lattice is less precise than 0.5 %
    res = analyse_crystal(img.data)
    _check_lattice(res)
    a = res.positions0
    r = ref[(ref[:, 0] > 8) & (ref[:, 0] < x1 - 9)]
    d, _ = cKDTree(a).query(r)
    assert np.mean(d < 2) >= 0.98, np.mean(d < 2)
    # no extra A-site columns: every A column inside the published set's area is one of its columns
    inside = Delaunay(r).find_simplex(a) >= 0
    d2, _ = cKDTree(r).query(a[inside])
    assert inside.sum() >= 0.95 * len(r) and d2.max() < 3.5
    # the B (Ti/Ru) columns are the second sublattice, at the centre of the A cell
    assert np.sum(res.sublattice == 1) > 0.7 * len(r)
    f = res.site_frac[1]
    assert np.allclose(f, 0.5, atol=0.08), f
    ok, why = recognise_layered(find_columns(img.data), img.pixel_size_nm)
    assert not ok and "not a layered-oxide" in why


@pytest.fixture(scope="module")
def sto_pair():
    adf = read_image(_need("atomap-sto-adf", "test_ADF_cropped.hdf5"))
    abf = read_image(_need("atomap-sto-adf", "test_ABF_cropped.hdf5"))
    return adf, abf


def test_abf_columns_land_on_the_adf_columns(sto_pair):
    adf, abf = sto_pair
    assert detect_contrast(adf.data, period_px=21.1)[0] == "bright-atoms"
    assert detect_contrast(abf.data, period_px=21.1)[0] == "dark-atoms"
    r_adf = analyse_crystal(adf.data)
    r_abf = analyse_crystal(abf.data.max() - abf.data)
    for res in (r_adf, r_abf):
        _check_lattice(res)
        # SrTiO3 [110]: a x a/sqrt2 = 0.3905 x 0.276 nm
        la, lb, _ = lattice_parameters(res.lattice.basis_px)
        assert np.sort([la, lb]) * adf.pixel_size_nm == pytest.approx([0.2761, 0.3905], rel=0.01)
    A, B = r_adf.positions0, r_abf.positions0
    assert len(A) == len(B) == 117
    d, j = cKDTree(A).query(B)
    shift = np.mean(B - A[j], axis=0)  # the two images' relative registration
    res = B - shift - A[j]
    err_A = np.hypot(*res.T) * adf.pixel_size_nm * 10
    assert np.sqrt(np.mean(err_A**2)) < 0.05 and err_A.max() < 0.15, (np.sqrt(np.mean(err_A**2)), err_A.max())


def test_nsmo_uncalibrated_real_image_pixel_units_no_layered_output(tmp_path):
    img = read_image(_need("haadf", "nsmo_110_haadf.tif"))
    assert img.pixel_size_nm is None
    crop = img.data[:256, :256]
    np.save(tmp_path / "nsmo.npy", crop)
    with pytest.warns(UserWarning, match="no pixel calibration"):
        assert main(["haadf", str(tmp_path / "nsmo.npy"), "--out", str(tmp_path / "o"), "--no-figures",
                     "--denoise", "gaussian"]) == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["units"] == "px" and s["warnings"]
    for k in ("a_rel", "b_rel"):
        assert abs(s["lattice_agreement"][k]) < 0.005
    # 18.4 pm/px (README): pseudo-cubic cell ~0.39 nm
    a = sorted([s["lattice_positions"]["a_px"], s["lattice_positions"]["b_px"]])
    assert np.array(a) * 0.0184 == pytest.approx([0.388, 0.392], abs=0.006)
    for name in ("cells.csv", "boundaries.csv", "defects.csv", "domains.csv"):
        assert not (tmp_path / "o" / name).exists(), name
    assert s["zone"] is None and "variant_fractions" not in s
