"""Boundaries traced on the variant map: coherent (001) vs incoherent {012}, frustration, pores on TBs."""

from __future__ import annotations

import numpy as np
import pytest

from layerscope.simulate.haadf import simulate_haadf, twin_scene
from layerscope.stem import denoise, find_columns, refine_columns, unit_cells
from layerscope.stem.boundaries import BOUNDARY_KINDS, nearest_boundary, trace_angle_012_deg, trace_boundaries
from layerscope.stem.defects import find_pores

H_A = 14.539 / 3  # interlayer spacing of O3 (table S3), Å


@pytest.fixture(scope="module")
def wide_twin():
    """96 Å twin scene: I / O1 / II bands over a band split by a {012} boundary with a pore."""
    side = 96.0
    sim = simulate_haadf(twin_scene((side, side)), seed=1)
    pos = refine_columns(sim.image, find_columns(denoise(sim.image, "du"))).positions_px
    cells = unit_cells(pos)
    return sim, pos, cells, trace_boundaries(cells), side


def test_012_trace_angle():
    # (012)_hex viewed along [100]: trace c/2 - b → atan((c/2)/(a√3/2)) = 71.3° from the layers
    assert trace_angle_012_deg() == pytest.approx(71.31, abs=0.01)


def test_boundaries_classified_coherent_and_incoherent(wide_twin):
    sim, _, cells, b, side = wide_twin
    kinds = [BOUNDARY_KINDS[k] for k in b.kind]
    coh = [i for i, k in enumerate(b.kind) if k == 0]
    inc = [i for i, k in enumerate(b.kind) if k == 1]
    # the scene has three (001) boundaries (I|O1, O1|II, and II over I) and one {012} boundary
    assert len(coh) == 3 and len(inc) == 1, kinds
    assert {b.variants[i] for i in coh} == {"I|II", "I|O1", "II|O1"}
    assert b.variants[inc[0]] == "I|II"
    assert np.all(b.angle_deg[coh] < 3.0)
    assert b.angle_deg[inc[0]] == pytest.approx(trace_angle_012_deg(), abs=6.0)
    # coherent boundaries sit at the truth layers: the cell rows where the variant changes
    px_A = sim.pixel_size_nm * 10
    w0, k1 = 2.0, int(round(side / 3 / H_A))
    k3 = int(round(2 * side / 3 / H_A))
    # (the II-over-I boundary is not anchored coherently in the scene: the first cell row
    # with the +1/3 shift of variant I is row k3 - 1 or k3 depending on the scene size)
    truth_w = {"I|O1": [w0 + (k1 - 1) * H_A], "II|O1": [w0 + (k1 + 1) * H_A],
               "I|II": [w0 + (k3 - 1) * H_A, w0 + k3 * H_A]}
    for i in coh:
        assert min(abs(b.centre_y_px[i] * px_A - t) for t in truth_w[b.variants[i]]) < 0.5 * H_A
    # the {012} boundary passes through (W/2, w0 + k3 h) at 71.3°: edge midpoints within 1.5 columns of it
    sel = b.segment == inc[0]
    u, w = b.mid_x_px[sel] * px_A, b.mid_y_px[sel] * px_A
    line_u = side / 2 + (w - (w0 + k3 * H_A)) / np.tan(np.radians(71.3))
    assert np.max(np.abs(u - line_u)) < 1.5 * 2.459


def test_frustration_only_along_the_012_boundary(wide_twin):
    sim, _, cells, b, side = wide_twin
    px_A = sim.pixel_size_nm * 10
    fr = b.frustrated
    assert 4 <= fr.sum() <= 30
    k3 = int(round(2 * side / 3 / H_A))
    u, w = cells.centre_x_px[fr] * px_A, cells.centre_y_px[fr] * px_A
    line_u = side / 2 + (w - (2.0 + k3 * H_A)) / np.tan(np.radians(71.3))
    assert np.all(np.abs(u - line_u) < 4 * 2.459)
    assert np.all(w > 2.0 + (k3 - 1) * H_A)


def test_pore_lies_on_the_incoherent_boundary(wide_twin):
    sim, pos, _, b, _ = wide_twin
    pores = find_pores(pos, image_shape=sim.image.shape)
    assert len(pores) == 1
    seg, dist = nearest_boundary(pores.centre_x_px, pores.centre_y_px, b)
    assert b.kind[seg[0]] == 1
    assert dist[0] * sim.pixel_size_nm < 0.5
