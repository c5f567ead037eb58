"""Layered vs spinel by local periodicity and the surface spinel shell thickness (Supp. Figs. 1, 11, 12)."""

from __future__ import annotations

import numpy as np
import pytest

from layerscope.simulate.haadf import shell_scene, simulate_haadf
from layerscope.stem.phases import layered_spinel_map, shell_thickness

PX_NM = 0.03


def _sim(shell_nm, width_A, seed=0):
    scene, truth = shell_scene((width_A, 75.0), shell_nm=shell_nm)
    return simulate_haadf(scene, pixel_size_nm=PX_NM, probe_sigma_nm=0.05, seed=seed), truth


@pytest.mark.parametrize("shell_nm, width_A", [((2.0, 5.0), 150.0), ((5.0, 10.0), 200.0)])
def test_shell_thickness_within_half_nm(shell_nm, width_A):
    # paper: 2-5 nm spinel shell on pristine particles (Supp. Fig. 1), 5-10 nm when charged (Supp. Fig. 11b)
    sim, truth = _sim(shell_nm, width_A)
    res = shell_thickness(sim.image, PX_NM)
    true_nm = truth.thickness_angstrom(res.station_y_px * PX_NM * 10) / 10
    assert len(res.thickness_nm) >= 10 and np.all(np.isfinite(res.thickness_nm))
    assert np.max(np.abs(res.thickness_nm - true_nm)) < 0.5
    # the surface normal is found: surface u = u0 + 0.1 w → normal (1, -0.1)/|.|
    assert res.normal @ np.array([1.0, -0.1]) / np.hypot(1.0, 0.1) > 0.999


def test_phase_map_pixels_and_layer_spacing():
    sim, truth = _sim((3.0, 3.0), 150.0, seed=2)
    pm = layered_spinel_map(sim.image, PX_NM)
    # layer fringe: c·sinβ of O3' = 4.744 Å
    assert pm.layer_spacing_px * PX_NM * 10 == pytest.approx(4.744, abs=0.05)
    expected = np.choose(sim.variant_map, [1, 2, 0])  # truth 0 layered, 1 spinel, 2 vacuum
    assert np.mean(pm.phase == expected) > 0.95
    # the fringe ratio is about half as large in the spinel as in the layered core
    r_l = np.median(pm.ratio[sim.variant_map == 0])
    r_s = np.median(pm.ratio[sim.variant_map == 1])
    assert 0.4 < r_s / r_l < 0.65


def test_shell_bad_input():
    sim, _ = _sim((3.0, 3.0), 150.0)
    with pytest.raises(ValueError, match="pixel size"):
        layered_spinel_map(sim.image, None)
    crystal_only = sim.image[:, 250:]
    with pytest.raises(ValueError, match="edge"):
        shell_thickness(crystal_only, PX_NM)
