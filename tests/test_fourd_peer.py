"""Peer: pyxem's template matching (test-only dependency) on the same simulated scan and orientation grid.

pyxem indexes the scan's crystalline positions against diffsims templates simulated
at layerscope's own library orientations (``layerscope.fourd._peer`` hands over the
structures, data and conventions). The scan is the cycled particle of Fig. 3c: an O3
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


def _agreement(sim, lib, maps):
    """Fraction of crystalline positions where pyxem gives layerscope's phase and, within 1°,
    its orientation (Laue symmetry and Friedel pairs taken into account); per phase too."""
    pos = maps.phase >= 2
    ph, u = _pyxem(sim, lib, [0, 1], pos)
    ok = ph + 2 == maps.phase[pos]
    for p in (0, 1):
        sel = ok & (ph == p)
        ok[sel] = misorientation_deg(u[sel], maps.rotation[pos][sel], lib.symmetry[p]) < 1.0
    return ok.mean(), {p: ok[maps.phase[pos] == p + 2].mean() for p in (0, 1)}


def test_pyxem_assigns_layerscopes_phases_and_orientations(scan_and_maps):
    """Done-means (peer): >= 95 % of the crystalline positions get the same phase and an orientation
    within 1°, the O3 twin lamellae (mirror-related patterns) and the spinel shell included."""
    sim, lib, maps = scan_and_maps
    pos = maps.phase >= 2
    assert set(np.unique(sim.twin[pos & (sim.phase == 2)])) == {0, 1} and (maps.phase == 3).sum() >= 20
    total, per_phase = _agreement(sim, lib, maps)
    assert total >= 0.95, per_phase


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="pyxem puts the pristine O3' core 60° away from layerscope (and the truth): "
                   "it picks another of the A/B/C domain variants, whose patterns share the fundamental spots and "
                   "differ in the weak superlattice reflections")
def test_pyxem_agrees_on_the_pristine_particle_with_abc_domains():
    sim = simulate_fourd(scan_shape=(16, 16), core="O3p", seed=1)
    lib = build_library(sim.phases, sim.geometry, spacing_deg=5.0)
    maps = index_scan(sim.data, prepare_matcher(lib))
    total, per_phase = _agreement(sim, lib, maps)
    assert total >= 0.95, per_phase
