"""`layerscope simulate haadf` → `layerscope haadf` round trip against the written truth."""

import csv

import numpy as np
import pytest
from scipy.spatial import cKDTree

from layerscope.cli import main


def _read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_simulate_then_analyse(tmp_path):
    sim_dir, out = tmp_path / "sim", tmp_path / "out"
    assert main(["simulate", "haadf", "--out", str(sim_dir), "--seed", "3"]) == 0
    assert main(["haadf", str(sim_dir / "image.tif"), "--out", str(out)]) == 0
    for name in ("columns.csv", "cells.csv", "strain.h5", "m_over_n.png", "variants.png", "strain.png"):
        assert (out / name).is_file(), name
    cols = _read(out / "columns.csv")
    assert list(cols[0]) == ["x_px", "y_px", "x_nm", "y_nm", "amplitude", "sigma_px", "position_esd_px",
                             "sublattice"]
    truth = [r for r in _read(sim_dir / "truth_columns.csv") if r["sublattice"] == "TM"]
    t = np.array([[float(r["x_nm"]), float(r["y_nm"])] for r in truth])
    p = np.array([[float(r["x_nm"]), float(r["y_nm"])] for r in cols])
    d, _ = cKDTree(t).query(p)
    assert np.sqrt(np.mean(d[d < 0.05] ** 2) / 2) < 0.002  # nm: the calibration survived the TIFF
    cells = _read(out / "cells.csv")
    mn = np.array([float(r["m_over_n"]) for r in cells])
    var = np.array([r["variant"] for r in cells])
    assert np.median(mn[var == "I"]) == pytest.approx(0.874, abs=0.01)
    assert np.median(mn[var == "II"]) == pytest.approx(1.144, abs=0.01)
    assert set(var) == {"I", "II", "O1"}


def test_cli_bad_inputs(tmp_path, capsys):
    (tmp_path / "a.tif").write_text("not a tiff")
    assert main(["haadf", str(tmp_path / "a.tif"), "--out", str(tmp_path / "o")]) == 2
    assert "a.tif" in capsys.readouterr().err
    rng = np.random.default_rng(1)
    np.save(tmp_path / "noise.npy", rng.poisson(30.0, (128, 128)).astype(float))
    assert main(["haadf", str(tmp_path / "noise.npy"), "--out", str(tmp_path / "o")]) == 2
    assert "no lattice" in capsys.readouterr().err
    np.save(tmp_path / "nan.npy", np.full((64, 64), np.nan))
    assert main(["haadf", str(tmp_path / "nan.npy"), "--out", str(tmp_path / "o")]) == 2
    assert "NaN" in capsys.readouterr().err


def test_boundaries_and_pores_written(tmp_path):
    sim_dir, out = tmp_path / "sim", tmp_path / "out"
    assert main(["simulate", "haadf", "--out", str(sim_dir), "--seed", "1", "--size", "640"]) == 0
    assert main(["haadf", str(sim_dir / "image.tif"), "--out", str(out), "--no-figures"]) == 0
    cells = _read(out / "cells.csv")
    # the promised columns stay first; boundary id and frustration flag are appended
    assert list(cells[0])[:9] == ["centre_x_px", "centre_y_px", "centre_x_nm", "centre_y_nm", "m_over_n",
                                  "angle_deg", "inplane_spacing_nm", "interlayer_spacing_nm", "variant"]
    assert list(cells[0])[9:] == ["boundary", "frustrated"]
    b = _read(out / "boundaries.csv")
    kinds = sorted(r["kind"] for r in b)
    assert kinds == ["coherent (001)"] * 3 + ["incoherent {012}"]
    inc = [r for r in b if r["kind"] == "incoherent {012}"][0]
    assert float(inc["angle_to_layers_deg"]) == pytest.approx(71.3, abs=6)
    d = _read(out / "defects.csv")
    assert len(d) == 1 and d[0]["kind"] == "pore" and d[0]["boundary_kind"] == "incoherent {012}"
    assert float(d[0]["distance_to_boundary_nm"]) < 0.5


def test_zone_210_domains(tmp_path):
    sim_dir, out = tmp_path / "sim", tmp_path / "out"
    assert main(["simulate", "haadf", "--scene", "domains", "--out", str(sim_dir), "--size", "427"]) == 0
    assert main(["haadf", str(sim_dir / "image.tif"), "--zone", "210", "--out", str(out)]) == 0
    assert (out / "domains.png").is_file()
    regions = [r for r in _read(out / "domains.csv") if int(r["n_cells"]) > 50]
    # default layout: A upper-left, B upper-right, C lower half
    by = {r["domain"]: (float(r["centre_x_nm"]), float(r["centre_y_nm"])) for r in regions}
    assert sorted(by) == ["A", "B", "C"]
    side = 427 * 0.015
    assert by["A"][0] < side / 2 < by["B"][0] and by["A"][1] < side / 2 and by["C"][1] > side / 2
    import json

    summ = json.loads((out / "summary.json").read_text())
    assert summ["order_modulation"] == pytest.approx(0.34, abs=0.05)


def test_lowmag_defects_per_particle(tmp_path):
    sim_dir, out = tmp_path / "sim", tmp_path / "out"
    assert main(["simulate", "haadf", "--scene", "lowmag", "--out", str(sim_dir)]) == 0
    assert main(["haadf", str(sim_dir / "image.tif"), "--lowmag", "--out", str(out), "--no-figures"]) == 0
    parts = _read(out / "particles.csv")
    # table S4: 6, 5, 4, 4, 6 (particles in reading order, as simulated)
    assert [int(r["n_defects"]) for r in parts] == [6, 5, 4, 4, 6]
    assert len(_read(out / "defects.csv")) == 25


def test_shell_thickness_cli(tmp_path):
    sim_dir, out = tmp_path / "sim", tmp_path / "out"
    assert main(["simulate", "haadf", "--scene", "shell", "--shell-nm", "5", "5", "--size", "600",
                 "--out", str(sim_dir)]) == 0
    assert main(["haadf", str(sim_dir / "image.tif"), "--shell", "--out", str(out)]) == 0
    assert (out / "shell.png").is_file()
    t = np.array([float(r["thickness_nm"]) for r in _read(out / "shell.csv")])
    assert len(t) >= 8 and np.all(np.abs(t - 5.0) < 0.5)
