"""Defects: pores along {012} boundaries at atomic resolution; particles and defects per particle
at low magnification (table S4), against simulated truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from layerscope.simulate.haadf import TABLE_S4_DEFECTS, simulate_haadf, simulate_particles_lowmag, twin_scene
from layerscope.stem import denoise, find_columns, refine_columns
from layerscope.stem.defects import (
    defects_per_particle, find_lowmag_defects, find_pores, segment_particles,
)


def _fit(sim):
    return refine_columns(sim.image, find_columns(denoise(sim.image, "du"))).positions_px


def test_pore_on_012_boundary_found_where_the_simulator_put_it():
    sim = simulate_haadf(seed=1)
    pores = find_pores(_fit(sim), image_shape=sim.image.shape)
    lab, n = ndimage.label(sim.pore_mask)
    assert n == 1 and len(pores) == 1
    cy, cx = ndimage.center_of_mass(sim.pore_mask)
    # centroid of the missing columns within 0.1 nm of the pore's centroid
    dist_nm = np.hypot(pores.centre_x_px[0] - cx, pores.centre_y_px[0] - cy) * sim.pixel_size_nm
    assert dist_nm < 0.1
    # the pore (semi-axes 6.5 Å x 3.2 Å) removes 5-8 TM columns over three layers
    assert 5 <= pores.n_missing[0] <= 8
    # every missing site lies inside (or within one column radius of) the true pore
    edt = ndimage.distance_transform_edt(~sim.pore_mask)
    iy, ix = np.rint(pores.missing_px[:, 1]).astype(int), np.rint(pores.missing_px[:, 0]).astype(int)
    assert np.all(edt[iy, ix] * sim.pixel_size_nm < 0.12)


def test_no_pores_in_twins_without_pores():
    # frustration gaps where variants I and II meet in one layer are not pores
    sim = simulate_haadf(twin_scene((57.6, 57.6), pores=False), seed=2)
    assert len(find_pores(_fit(sim), image_shape=sim.image.shape, min_missing=1)) == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_lowmag_particles_and_defects_per_particle_table_s4(seed):
    sim = simulate_particles_lowmag(seed=seed)
    lab = segment_particles(sim.image)
    assert lab.max() == 5
    for k in range(1, 6):
        t = np.bincount(sim.particle_labels[lab == k]).argmax()
        a, b = lab == k, sim.particle_labels == t
        assert (a & b).sum() / (a | b).sum() > 0.95  # IoU with the true particle
    d = find_lowmag_defects(sim.image, lab)
    # table S4: 6, 5, 4, 4, 6 defects in five particles
    found = defects_per_particle(d, 5)
    truth = [TABLE_S4_DEFECTS[np.bincount(sim.particle_labels[lab == k]).argmax() - 1] for k in range(1, 6)]
    np.testing.assert_array_equal(found, truth)
    # every detected defect sits on a true one (no false positives), centroid within 2 nm
    tl, n = sim.defect_labels, sim.defect_labels.max()
    tc = np.array(ndimage.center_of_mass(tl > 0, tl, range(1, n + 1)))
    for x, y in zip(d.centre_x_px, d.centre_y_px):
        assert np.min(np.hypot(tc[:, 1] - x, tc[:, 0] - y)) * sim.pixel_size_nm < 2.0
    # trenches are 12-22 nm long
    assert np.all((d.length_px * sim.pixel_size_nm > 8) & (d.length_px * sim.pixel_size_nm < 26))


def test_touching_particles_are_split():
    yy, xx = np.mgrid[0:200, 0:300].astype(float)
    t = np.zeros_like(xx)
    for cx in (100.0, 190.0):
        r2 = ((xx - cx) ** 2 + (yy - 100) ** 2) / 50.0**2
        t = np.maximum(t, np.where(r2 < 1, 100 * np.sqrt(np.clip(1 - r2, 0, None)), 0))
    img = np.random.default_rng(0).poisson(10 + t).astype(float)
    lab = segment_particles(img)
    assert lab.max() == 2
    assert abs(np.sum(lab == 1) - np.sum(lab == 2)) < 0.05 * np.sum(lab > 0)


def test_lowmag_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no particles"):
        segment_particles(rng.poisson(20.0, (128, 128)).astype(float))
    with pytest.raises(ValueError, match="NaN"):
        segment_particles(np.full((64, 64), np.nan))
    with pytest.raises(ValueError, match="shape"):
        find_lowmag_defects(np.ones((64, 64)) + np.eye(64), np.zeros((32, 32), int))
