"""Lattice-agnostic HAADF/ABF analysis on synthetic crystals with known truth (issue 20)."""

from __future__ import annotations

import json
import csv

import numpy as np
import pytest

from layerscope.cli import main
from layerscope.stem.analysis import analyse_crystal, detect_contrast, recognise_layered
from layerscope.stem.lattice import image_lattice, lattice_parameters
from layerscope.stem.metrics import intensity_classes


def _read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def perovskite(shape=(192, 200), a=(18.0, 0.6), b=(-0.4, 17.0), *, b_shift=(0.8, 0.0), vacancy=None, sigma=2.4,
               amp_a=400.0, amp_b=180.0, background=40.0, seed=0, dark=False, dim_a=None):
    """A (bright) at cell corners, B (dimmer) at (1/2, 1/2) shifted by ``b_shift`` px; Poisson noise."""
    ny, nx = shape
    A, B = np.array(a), np.array(b)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx]
    img = np.full(shape, background, float)
    cols_a, cols_b, dim_list = [], [], []
    origin = np.array([7.3, 5.9])
    for i in range(-3, int(nx / A[0]) + 4):
        for j in range(-3, int(ny / B[1]) + 4):
            pa = origin + i * A + j * B
            pb = pa + 0.5 * (A + B) + np.asarray(b_shift)
            for p, amp, lst in ((pa, amp_a, cols_a), (pb, amp_b, cols_b)):
                if not (-10 < p[0] < nx + 10 and -10 < p[1] < ny + 10):
                    continue
                if lst is cols_a and vacancy is not None and (i, j) == vacancy:
                    continue
                if lst is cols_a and dim_a is not None and rng.random() < 0.3:
                    amp = dim_a  # a random 30 % of A columns are of a lighter type
                    dim_list.append(p)
                lst.append(p)
                img += amp * np.exp(-((xx - p[0]) ** 2 + (yy - p[1]) ** 2) / (2 * sigma**2))
    if dark:
        img = img.max() + background - img
    out = rng.poisson(img).astype(float), np.array(cols_a), np.array(cols_b)
    return out if dim_a is None else (*out, np.array(dim_list).reshape(-1, 2))


@pytest.fixture(scope="module")
def crystal():
    img, ta, tb = perovskite(vacancy=(4, 5))
    return img, ta, tb, analyse_crystal(img)


def test_lattice_from_fft_and_positions_agree_with_truth(crystal):
    img, ta, tb, res = crystal
    la, lb, gam = lattice_parameters(res.lattice.basis_px)
    true = sorted([np.hypot(18.0, 0.6), np.hypot(-0.4, 17.0)])
    assert sorted([la, lb]) == pytest.approx(true, rel=2e-3)
    lf = sorted(lattice_parameters(res.fft.basis_px)[:2])
    assert lf == pytest.approx(true, rel=3e-3)
    assert abs(res.agreement["a_rel"]) < 0.003 and abs(res.agreement["b_rel"]) < 0.003


def test_sublattices_positions_displacement_and_vacancy(crystal):
    from scipy.spatial import cKDTree

    img, ta, tb, res = crystal
    ny, nx = img.shape
    pos, sub = res.fit.positions_px, res.sublattice
    inner = lambda p: (p[:, 0] > 6) & (p[:, 0] < nx - 7) & (p[:, 1] > 6) & (p[:, 1] < ny - 7)  # noqa: E731
    for s, truth in ((0, ta), (1, tb)):
        t = truth[inner(truth)]
        d, _ = cKDTree(pos[sub == s]).query(t)
        assert np.mean(d < 1.5) > 0.97, s
        assert np.sqrt(np.mean(d[d < 1.5] ** 2)) < 0.3
        d2, _ = cKDTree(t).query(pos[sub == s][inner(pos[sub == s])])
        assert np.all(d2 < 1.5), f"extra columns on sublattice {s}"
    # B is displaced by (+0.8, 0) px from the centre of its A cell
    d = res.displacements[1]
    assert np.median(d["dx_px"]) == pytest.approx(0.8, abs=0.15)
    assert np.median(d["dy_px"]) == pytest.approx(0.0, abs=0.15)
    # the one removed A column, and only it, is a vacancy
    va = res.vacancies[(res.vacancies[:, 0] == 0) & (res.vacancies[:, 3] == 1), 1:3]
    assert np.sum(res.vacancies[:, 3] == 1) == 1
    expect = np.array([7.3, 5.9]) + 4 * np.array([18.0, 0.6]) + 5 * np.array([-0.4, 17.0])
    assert len(va) == 1 and np.hypot(*(va[0] - expect)) < 1.5


def test_strain_from_positions_matches_applied_strain():
    # 1.5 % larger a in the whole image than the reference lattice -> measure against a fixed reference
    img, _, _ = perovskite(a=(18.27, 0.0), b=(0.0, 17.0), b_shift=(0, 0), seed=3)
    res = analyse_crystal(img)
    from layerscope.stem.metrics import cell_metrics

    ref = np.array([[18.0, 0.0], [0.0, 17.0]])
    basis = res.lattice.basis_px
    ref = ref if abs(basis[0, 0]) > abs(basis[0, 1]) else ref[::-1]
    ref = ref * np.sign(np.sum(basis * ref, axis=1))[:, None]
    c = cell_metrics(res.positions0, res.lattice.site_map(), ref)
    assert np.median(c.exx) == pytest.approx(0.015, abs=0.002)
    assert np.median(c.eyy) == pytest.approx(0.0, abs=0.002)
    assert np.median(np.abs(c.exy)) < 0.003


def test_contrast_detection_and_dark_atoms_land_on_atoms(tmp_path):
    img, ta, _ = perovskite(dark=True, seed=5)
    lat = image_lattice(img)
    assert detect_contrast(img, period_px=float(np.linalg.norm(lat.basis_px[0])))[0] == "dark-atoms"
    assert detect_contrast(img.max() - img)[0] == "bright-atoms"
    np.save(tmp_path / "abf.npy", img)
    assert main(["haadf", str(tmp_path / "abf.npy"), "--out", str(tmp_path / "o"), "--no-figures",
                 "--spacing-nm", "0.36"]) == 0
    summ = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert any("dark-atoms" in n for n in summ["notes"])
    cols = [r for r in _read(tmp_path / "o" / "columns.csv") if r["sublattice"] == "0"]
    p = np.array([[float(r["x_px"]), float(r["y_px"])] for r in cols])
    from scipy.spatial import cKDTree

    d, _ = cKDTree(ta).query(p)
    assert np.median(d) < 0.3  # on the atoms, not on the background between them


def test_uncalibrated_image_warns_and_writes_pixel_units(tmp_path, capsys):
    img, _, _ = perovskite(seed=7)
    np.save(tmp_path / "img.npy", img)
    with pytest.warns(UserWarning, match="no pixel calibration"):
        assert main(["haadf", str(tmp_path / "img.npy"), "--out", str(tmp_path / "o"), "--no-figures"]) == 0
    assert "no pixel calibration" in capsys.readouterr().err
    summ = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summ["units"] == "px" and summ["pixel_size_nm"] is None
    assert any("no pixel calibration" in w for w in summ["warnings"])
    cols = _read(tmp_path / "o" / "columns.csv")
    assert all(np.isnan(float(r["x_nm"])) for r in cols)
    assert all(np.isfinite(float(r["x_px"])) for r in cols)
    # a square perovskite is not a layered oxide: no layered outputs, and the reason is given
    for name in ("cells.csv", "boundaries.csv", "defects.csv", "domains.csv"):
        assert not (tmp_path / "o" / name).exists(), name
    assert any("layered-oxide analyses" in n and "skipped" in n for n in summ["notes"])


def test_calibration_from_known_spacing(tmp_path):
    img, _, _ = perovskite(a=(18.0, 0.0), b=(0.0, 17.0), seed=9)
    np.save(tmp_path / "img.npy", img)
    assert main(["haadf", str(tmp_path / "img.npy"), "--out", str(tmp_path / "o"), "--no-figures",
                 "--spacing-nm", "0.3825"]) == 0
    summ = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summ["pixel_size_nm"] == pytest.approx(0.3825 / 17.0, rel=3e-3)
    assert summ["units"] == "nm" and not summ["warnings"]
    assert main(["haadf", str(tmp_path / "img.npy"), "--out", str(tmp_path / "o2"), "--no-figures",
                 "--cell", "0.3825", "0.5", "90"]) == 2  # 0.5/0.3825 does not fit 18/17


def test_intensity_classes_two_populations():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(100, 4, 150), rng.normal(130, 4, 50)])
    lab, means, k = intensity_classes(v)
    assert k == 2 and means == pytest.approx([100, 130], abs=2)
    assert np.mean(lab[:150] == 0) > 0.98 and np.mean(lab[150:] == 1) > 0.98


def test_intensity_classes_of_two_column_types_from_the_command_line(tmp_path):
    from scipy.spatial import cKDTree

    img, ta, _, dim = perovskite(a=(18.0, 0.0), b=(0.0, 17.0), seed=11, dim_a=250.0)
    np.save(tmp_path / "img.npy", img)
    with pytest.warns(UserWarning, match="no pixel calibration"):
        assert main(["haadf", str(tmp_path / "img.npy"), "--out", str(tmp_path / "o"), "--no-figures",
                     "--intensity-classes", "auto"]) == 0
    rows = _read(tmp_path / "o" / "columns.csv")
    p = np.array([[float(r["x_px"]), float(r["y_px"])] for r in rows])
    cls = np.array([int(r["intensity_class"]) for r in rows])
    sub = np.array([int(r["sublattice"]) for r in rows])
    d, _ = cKDTree(dim).query(p[sub == 0])
    expect = np.where(d < 1.5, 0, 1)  # the lighter type is the dimmer class
    assert np.mean(cls[sub == 0] == expect) > 0.97
    summ = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summ["intensity_classes"]["0"]["n_classes"] == 2


def test_layered_recognition_only_for_layered_projection():
    from layerscope.simulate.haadf import simulate_haadf, uniform_scene
    from layerscope.stem import find_columns

    sim = simulate_haadf(uniform_scene((57.6, 57.6), "I"), pixel_size_nm=0.015, shape=(384, 384), seed=2)
    ok, why = recognise_layered(find_columns(sim.image), 0.015)
    assert ok, why
    img, _, _ = perovskite(seed=1)
    ok, why = recognise_layered(find_columns(img), None)
    assert not ok and "not a layered-oxide" in why
    # the same layered columns at a calibration that makes the in-layer spacing 0.49 nm are rejected
    ok, why = recognise_layered(find_columns(sim.image), 0.03)
    assert not ok and "outside" in why
