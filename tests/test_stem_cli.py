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
    assert main(["haadf", str(tmp_path / "a.tif"), "--out", str(tmp_path / "o")]) == 1
    assert "a.tif" in capsys.readouterr().err
    rng = np.random.default_rng(1)
    np.save(tmp_path / "noise.npy", rng.poisson(30.0, (128, 128)).astype(float))
    assert main(["haadf", str(tmp_path / "noise.npy"), "--out", str(tmp_path / "o")]) == 1
    assert "no lattice" in capsys.readouterr().err
    np.save(tmp_path / "nan.npy", np.full((64, 64), np.nan))
    assert main(["haadf", str(tmp_path / "nan.npy"), "--out", str(tmp_path / "o")]) == 1
    assert "NaN" in capsys.readouterr().err
