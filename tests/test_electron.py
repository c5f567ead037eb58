"""Kinematic electron diffraction: scattering factors, structure factors, zone-axis geometry, twins."""

import gemmi
import numpy as np
import pytest

from layerscope.crystal import preset_phase, write_cif
from layerscope.diffraction import electron as el

PHASES = ["lrm-pristine:O3p", "lrm-100-cycles:O3", "lrm-pristine:S"]

# Supp. Fig. 5 zone axes (a-c O3'; d, f, g O3; e, h spinel)
SUPP_FIG5 = [("lrm-pristine:O3p", (1, 1, 0)), ("lrm-pristine:O3p", (-1, 0, 0)), ("lrm-pristine:O3p", (1, -1, 0)),
             ("lrm-100-cycles:O3", (2, 1, 0)), ("lrm-100-cycles:O3", (1, 0, 0)), ("lrm-100-cycles:O3", (3, 1, 0)),
             ("lrm-pristine:S", (1, 1, 2)), ("lrm-pristine:S", (1, 0, 1))]


def test_wavelength_200kv():
    # Williams & Carter, Table 1.1: 200 kV -> 0.02508 Å (relativistic)
    assert el.electron_wavelength_angstrom(200) == pytest.approx(0.025079, abs=2e-6)
    assert el.electron_wavelength_angstrom(100) == pytest.approx(0.037014, abs=2e-6)
    with pytest.raises(ValueError, match="kV"):
        el.electron_wavelength_angstrom(-5)


def test_scattering_factor_matches_gemmi_table():
    # gemmi's c4322 is Peng et al. 1996 / ITC Table 4.3.2.2; the CSV is an export of it.
    s = np.linspace(0, 2, 9)
    for sym in ["Li", "O", "Mn", "Co", "Ni"]:
        c = gemmi.Element(sym).c4322
        ref = np.array([c.calculate_sf(float(x * x)) for x in s])
        assert np.allclose(el.electron_scattering_factor(sym, s), ref, rtol=1e-4)
    # f_e(0) of O is 1.98 Å in Peng's table (sum of a_i)
    assert el.electron_scattering_factor("O", 0.0) == pytest.approx(1.9834, abs=1e-3)
    with pytest.raises(ValueError, match="Xx"):
        el.electron_scattering_factor("Xx", 0.1)


@pytest.mark.parametrize("name", PHASES)
def test_structure_factors_match_gemmi(name, tmp_path):
    """|F| equals gemmi's StructureFactorCalculatorE (independent summation) to 1e-5."""
    p = preset_phase(name)
    ss = gemmi.read_small_structure(str(write_cif(p, tmp_path / "p.cif")))
    ss.setup_cell_images()
    for site in ss.sites:
        # gemmi sums every symmetry operation per site: divide by the site-stabiliser order
        site.occ = site.occ / (1 + ss.cell.is_special_position(site.fract, 0.1))
    hkl = el.reflections_within(p, 1.0)
    calc = gemmi.StructureFactorCalculatorE(ss.cell)
    ref = np.array([calc.calculate_sf_from_small_structure(ss, [int(v) for v in h]) for h in hkl])
    ours = el.structure_factors(p, hkl)
    assert np.max(np.abs(np.abs(ours) - np.abs(ref))) < 1e-5 * np.abs(ref).max()


def test_occupancy_and_debye_waller():
    p = preset_phase("lrm-pristine:S")
    hkl = np.array([[4, 0, 0]])
    f0 = abs(el.structure_factors(p, hkl)[0])
    from dataclasses import replace
    hot = replace(p, sites=tuple(replace(s, biso=s.biso + 2.0) for s in p.sites))
    d = 8.067 / 4
    # raising every B by 2 Å² multiplies F by exp(-2 s²), s = 1/2d
    assert abs(el.structure_factors(hot, hkl)[0]) == pytest.approx(f0 * np.exp(-2.0 / (4 * d * d)), rel=1e-9)
    empty = replace(p, sites=tuple(replace(s, species=tuple((sym, 0.0) for sym, _ in s.species)) for s in p.sites))
    assert abs(el.structure_factors(empty, hkl)[0]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name,uvw", SUPP_FIG5)
def test_zone_axis_geometry(name, uvw):
    """Every ZOLZ spot satisfies h·[uvw] = 0 and lies at |g| = 1/d of its reflection."""
    p = preset_phase(name)
    pat = el.zone_axis_pattern(p, uvw, g_max_inv_angstrom=1.5)
    assert len(pat.hkl) >= 8
    assert np.all(np.abs(pat.hkl @ np.array(uvw)) < 1e-9)
    from layerscope.crystal import d_spacing
    d = d_spacing(p.cell, pat.hkl)
    assert np.allclose(np.linalg.norm(pat.g_xy, axis=1), 1.0 / d, rtol=1e-9)
    # Friedel pairs: the pattern is centrosymmetric
    pos = {tuple(np.round(g, 6)): i for g, i in zip(pat.g_xy, pat.intensity)}
    for g, i in zip(pat.g_xy, pat.intensity):
        assert pos[tuple(np.round(-g, 6))] == pytest.approx(i, rel=1e-9)


def test_o3p_domains_distinguished_by_superlattice():
    """Supp. Fig. 5a-c: [110] and [-100] of O3' share the subcell spots but differ in superlattice rows."""
    p = preset_phase("lrm-pristine:O3p")
    a = el.zone_axis_pattern(p, (1, 1, 0), g_max_inv_angstrom=1.2)
    b = el.zone_axis_pattern(p, (-1, 0, 0), g_max_inv_angstrom=1.2)
    ga, gb = np.linalg.norm(a.g_xy, axis=1), np.linalg.norm(b.g_xy, axis=1)
    # both contain the 001 layer reflection at 1/d001 = 1/(c sin β)
    inv_d001 = 1 / (p.cell[2] * np.sin(np.radians(p.cell[4])))
    assert np.any(np.isclose(ga, inv_d001, rtol=1e-6)) and np.any(np.isclose(gb, inv_d001, rtol=1e-6))
    # O3 disordered [210] has no spots between the 00l rows that O3' [110] has (Li@TM6 ordering)
    o3 = el.zone_axis_pattern(preset_phase("lrm-100-cycles:O3"), (2, 1, 0), g_max_inv_angstrom=1.2)
    assert len(a.hkl) > len(o3.hkl)


def test_precession_and_shape_factor():
    p = preset_phase("lrm-100-cycles:O3")
    u = el.zone_axis_rotation(p, (1, 0, 0))
    still = el.kinematic_pattern(p, u, precession_deg=0.0, thickness_nm=50, min_relative_intensity=0)
    prec = el.kinematic_pattern(p, u, precession_deg=0.8, thickness_nm=50, min_relative_intensity=0)
    f2 = np.abs(el.structure_factors(p, still.hkl)) ** 2
    # stationary beam: I = |F|² sinc²(π t s) exactly
    x = np.pi * 500.0 * still.excitation_error
    assert np.allclose(still.intensity, f2 * np.sinc(x / np.pi) ** 2, rtol=1e-9)
    # precession brings ZOLZ reflections with g < 2φ/λ = 1.11 Å⁻¹ onto the Ewald sphere; a stationary
    # beam misses them (s = -λg²/2)
    zolz = np.abs(still.hkl @ np.array([1, 0, 0])) < 1e-9
    outer = zolz & (1 / still.d_angstrom > 0.6) & (1 / still.d_angstrom < 1.05)
    assert np.median(prec.intensity[outer] / f2[outer]) > 10 * np.median(still.intensity[outer] / f2[outer])
    lor = el.kinematic_pattern(p, u, precession_deg=0.0, thickness_nm=50, shape="lorentzian", min_relative_intensity=0)
    assert np.allclose(lor.intensity, f2 / (1 + x**2), rtol=1e-9)
    with pytest.raises(ValueError, match="shape"):
        el.kinematic_pattern(p, u, shape="box")


def test_twin_patterns_supp_fig18():
    """(001) and {012} twins viewed along [100]_O3: the twin spots are the mirror image of the parent's."""
    p = preset_phase("lrm-100-cycles:O3")
    laws = el.paper_twin_laws(p)
    for law in laws.values():
        m = law.matrix
        assert np.allclose(m @ m.T, np.eye(3)) and np.linalg.det(m) == pytest.approx(1.0)
        pat = el.zone_axis_pattern(p, (1, 0, 0), twin=law, g_max_inv_angstrom=1.2)
        par, tw = pat.g_xy[pat.variant == 0], pat.g_xy[pat.variant == 1]
        assert len(tw) == len(par) > 0
        # the twin plane contains the beam, so the twin pattern is the parent mirrored across its trace
        n = (el.zone_axis_rotation(p, (1, 0, 0)) @ law.matrix)  # unused orientation sanity
        assert n.shape == (3, 3)
        plane = {"(001) twin": (0, 0, 1), "{012} twin": (0, 1, 2)}[law.name]
        g_n = (el.zone_axis_rotation(p, (1, 0, 0)) @ el.reciprocal_basis(p) @ np.array(plane, float))[:2]
        g_n /= np.linalg.norm(g_n)
        mirrored = par - 2 * np.outer(par @ g_n, g_n)
        dist = np.min(np.linalg.norm(tw[:, None] - mirrored[None], axis=2), axis=1)
        assert np.all(dist < 1e-9)
    # the (001) twin is not a symmetry of R-3m: twin spots fall where the parent has none
    pat = el.zone_axis_pattern(p, (1, 0, 0), twin=laws["(001)"], g_max_inv_angstrom=1.2)
    par, tw = pat.g_xy[pat.variant == 0], pat.g_xy[pat.variant == 1]
    dist = np.min(np.linalg.norm(tw[:, None] - par[None], axis=2), axis=1)
    assert np.sum(dist > 1e-3) >= 4


def test_proper_point_groups():
    assert [len(el.proper_point_group(preset_phase(n))) for n in PHASES] == [2, 6, 24]


def test_bad_zone_axis():
    with pytest.raises(ValueError, match="zone axis"):
        el.zone_axis_rotation(preset_phase("lrm-pristine:S"), (0, 0, 0))
