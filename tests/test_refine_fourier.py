"""Difference-Fourier maps (paper Supp. Fig. 3): Li missing from the model appears as a
negative nuclear-density peak at its site (b_Li = −1.90 fm)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from layerscope.crystal import Site, preset_phase
from layerscope.diffraction.instrument import gppd_like
from layerscope.diffraction.pattern import build_model, compute_pattern, initial_params
from layerscope.refine.fourier import (difference_fourier, expand_reflections, fourier_map, map_extrema,
                                       map_slice, write_isosurface_obj, write_xplor)
from layerscope.refine.parameters import make_layout
from layerscope.refine.partition import partition_phase
from layerscope.refine.rietveld import linear_start
from layerscope.crystal.phase import symmetry_operations, unique_positions


def _without_li(phase, label):
    sites = []
    for s in phase.sites:
        if s.label == label:
            s = Site(s.label, s.xyz, tuple((e, 0.0 if e == "Li" else o) for e, o in s.species), s.biso, s.wyckoff)
        sites.append(s)
    return replace(phase, sites=tuple(sites))


def _dist_to_orbit(phase, frac, site_xyz):
    rot, trans = symmetry_operations(phase.spacegroup)
    orbit = unique_positions(np.asarray(site_xyz, float), rot, trans)
    d = (np.asarray(frac) - orbit + 0.5) % 1.0 - 0.5
    from layerscope.refine.fourier import _orth

    return float(np.min(np.linalg.norm(d @ _orth(phase.cell).T, axis=1)))


@pytest.fixture(scope="module")
def li_maps():
    truth = preset_phase("lrm-pristine:O3p")
    inst = gppd_like()
    tof = np.geomspace(7000, 56000, 3000)
    model = build_model([truth], tof, inst, n_background=2)
    pat = compute_pattern(model, scales={"O3p": 1.0}, background=[0.0, 0.0])
    k = 5000.0 / pat.total.max()
    rng = np.random.default_rng(1)
    y = rng.poisson(k * pat.total + 200.0).astype(float)
    sigma = np.sqrt(np.maximum(y, 1.0))
    out = {}
    for name, ph in (("wrong", _without_li(truth, "Li2c")), ("right", truth)):
        scales, bkg = linear_start([ph], tof, y, sigma, inst, n_background=2)
        m = build_model([ph], tof, inst, n_background=2)
        params = initial_params(m, scales=scales, background=bkg)
        calc = compute_pattern(m, params)
        tree = make_layout(m).unflatten(make_layout(m).flatten(params))
        ri = partition_phase(m, tree, 0, y, calc.total, calc.background)
        out[name] = (ph, ri, difference_fourier(ph, ri, step_angstrom=0.2))
    return out


def test_missing_li_gives_the_deepest_negative_peak_at_its_site(li_maps):
    ph, ri, fmap = li_maps["wrong"]
    li2c = ph.site("Li2c").xyz
    (pos, val), *_ = map_extrema(fmap, 3, sign=-1)
    assert val < 0
    assert _dist_to_orbit(ph, pos, li2c) < 0.3  # Å: within about one grid step (0.2 Å)
    # the hole is far deeper than any feature of the correct model's map
    right = li_maps["right"][2]
    # (measured: −4.02 fm/Å³ at Li2c; the correct model's map has −0.06 there and −1.91 at its deepest
    # series-termination/noise ripple)
    assert fmap.value_at(li2c) == pytest.approx(val)
    assert val < 1.5 * np.min(right.density)
    assert abs(right.value_at(li2c)) < 0.1 * abs(val)


def test_calculated_map_reproduces_scattering_lengths():
    """ρ_calc integrates to Σ b over the cell (F(000) left out ⇒ mean 0) and peaks at the atoms."""
    al = preset_phase("Al")
    hkl = np.array([[h, k, l] for h in range(-6, 7) for k in range(-6, 7) for l in range(-6, 7)
                    if (h, k, l) != (0, 0, 0) and (h % 2 == k % 2 == l % 2)])
    from layerscope.diffraction.structure_factors import structure_factors

    fmap = fourier_map(al, hkl, structure_factors(al, hkl), step_angstrom=0.2)
    assert abs(fmap.density.mean()) < 1e-12
    (pos, val), *_ = map_extrema(fmap, 1, sign=+1)  # Al b = +3.449 fm
    assert _dist_to_orbit(al, pos, (0, 0, 0)) < 1e-9
    # Friedel + point group expansion: the 48 images of a general (h, k, l)
    hkl_all, parent = expand_reflections(al, [[1, 2, 3]])
    assert len(hkl_all) == 48 and np.all(parent == 0)


def test_map_outputs(li_maps, tmp_path):
    ph, ri, fmap = li_maps["wrong"]
    sl = map_slice(fmap, "c", 0.5)
    assert sl.shape == fmap.shape[:2]
    xp = write_xplor(fmap, tmp_path / "diff.xplor")
    lines = xp.read_text().splitlines()
    assert lines[1].strip().endswith("!NTITLE") and lines[5] == "ZYX"
    assert [int(v) for v in lines[3].split()][::3] == list(fmap.shape)
    vmin = fmap.density.min()
    obj = write_isosurface_obj(fmap, tmp_path / "hole.obj", 0.5 * vmin)
    txt = obj.read_text()
    assert txt.count("\nv ") > 10 and txt.count("\nf ") > 10
    with pytest.raises(ValueError, match="outside the map range"):
        write_isosurface_obj(fmap, tmp_path / "x.obj", 10 * abs(vmin) + 1)
    with pytest.raises(ValueError, match="kind must be"):
        difference_fourier(ph, ri, kind="fobs")
