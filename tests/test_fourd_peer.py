"""Peer: pyxem's template matching (test-only dependency) on the same simulated scan and orientation grid.

pyxem indexes the scan's crystalline positions against diffsims templates simulated
at layerscope's own library orientations (``layerscope.fourd._peer`` hands over the
data and converts conventions). The scan is the cycled particle of Fig. 3c: an O3
core along ⟨100⟩ with (001) twin lamellae (mirror-related patterns) in a spinel shell.
"""

import warnings

import numpy as np
import pytest

from layerscope.fourd import build_library, index_scan, misorientation_deg, prepare_matcher
from layerscope.simulate.fourd import simulate_fourd

pytest.importorskip("pyxem")
pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def scan_and_maps():
    sim = simulate_fourd(scan_shape=(16, 16), core="O3", twins=True, seed=1)
    lib = build_library(sim.phases, sim.geometry, spacing_deg=5.0)
    maps = index_scan(sim.data, prepare_matcher(lib))
    return sim, lib, maps


def _pyxem(sim, lib, phases, positions):
    from layerscope.fourd._peer import pyxem_index, pyxem_signal, pyxem_simulation

    keep = np.isin(lib.phase_index, phases)
    sub = type(lib)(tuple(lib.phase_names[p] for p in phases), np.searchsorted(phases, lib.phase_index[keep]),
                    lib.rotation[keep], lib.spots_r_px[keep], lib.spots_phi[keep], lib.spots_w[keep],
                    tuple(lib.symmetry[p] for p in phases), lib.geometry, lib.spacing_deg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        polar = pyxem_signal(sim.data[positions], sim.geometry, n_azimuth=720)
        ph, u = pyxem_index(polar, pyxem_simulation(sub, [sim.phases[p] for p in phases], kv=sim.kv),
                            np.bincount(sub.phase_index, minlength=len(phases)))
    return np.asarray(phases)[ph], u


@pytest.mark.slow
def test_pyxem_orientations_agree_with_layerscope_in_the_twinned_core(scan_and_maps):
    """Given the phase, pyxem's orientation is within 1° of layerscope's (Laue symmetry and Friedel
    pairs taken into account) at >= 95 % of the O3 positions, both twin variants included."""
    sim, lib, maps = scan_and_maps
    pos = (maps.phase == 2) & (sim.phase == 2)
    assert pos.sum() >= 20 and set(np.unique(sim.twin[pos])) == {0, 1}
    _, u = _pyxem(sim, lib, [0], pos)
    mis = misorientation_deg(u, maps.rotation[pos], lib.symmetry[0])
    assert np.mean(mis < 1.0) >= 0.95, np.median(mis)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="pyxem disagrees on the spinel shell. With both phases its spot-sum score "
                   "calls the shell O3 (with the coherent orientation relationship the O3 <100> spots coincide "
                   "with part of the spinel [110] spots); with the spinel library alone it picks <310>-type "
                   "templates 26.6° from [110]. layerscope and the simulated truth agree: S along [110].")
def test_pyxem_phase_and_orientation_agree_with_layerscope_everywhere(scan_and_maps):
    sim, lib, maps = scan_and_maps
    pos = maps.phase >= 2
    ph, u = _pyxem(sim, lib, [0, 1], pos)
    same = ph + 2 == maps.phase[pos]
    ok = np.zeros(len(ph), bool)
    for p in (0, 1):
        sel = same & (ph == p)
        ok[sel] = misorientation_deg(u[sel], maps.rotation[pos][sel], lib.symmetry[p]) < 1.0
    assert np.mean(ok) >= 0.95
