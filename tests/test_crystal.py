"""Crystal core: presets from the paper's tables, settings, CIF round trip, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from layerscope.crystal import (
    Phase, Site, b_coh_fm, d_inter_layer, d_intra_layer, list_presets, o3_cell_from_o3p, o3_to_o3p_indices,
    o3p_cell_from_o3, o3p_to_o3_indices, preset, preset_phase, read_cif, write_cif,
)
from layerscope.crystal.settings import d_spacing


def test_table_s1_layer_spacing_o3p():
    # Fig. 2c caption: d_inter(O3') = d(001) = c sin(beta); table S1 c = 5.028 Å, beta = 109.333°
    o3p = preset_phase("lrm-pristine:O3p")
    assert d_inter_layer(o3p) == pytest.approx(5.028 * np.sin(np.radians(109.333)), rel=1e-12)
    assert round(d_inter_layer(o3p), 3) == 4.744


def test_table_s3_layer_spacings_o3():
    o3 = preset_phase("lrm-100-cycles:O3")
    assert d_inter_layer(o3) == pytest.approx(14.539 / 3, rel=1e-12)
    assert round(d_inter_layer(o3), 3) == 4.846
    assert d_intra_layer(o3) == pytest.approx(2.840 * np.sqrt(3) / 2, rel=1e-12)
    assert round(d_intra_layer(o3), 3) == 2.460


def test_fig2c_index_correspondence():
    got = o3_to_o3p_indices([[0, 0, 3], [1, 0, 0], [0, 1, 0], [1, -1, 0]])
    want = [[0, 0, 1], [1, 3, -1 / 3], [-1, 3, 1 / 3], [2, 0, -2 / 3]]
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(o3p_to_o3_indices(want), [[0, 0, 3], [1, 0, 0], [0, 1, 0], [1, -1, 0]], atol=1e-12)


def test_equivalent_reflections_have_equal_d_after_cell_transform():
    # an O3 cell mapped into the O3' setting keeps every d-spacing of corresponding reflections
    o3 = preset_phase("lrm-100-cycles:O3")
    mono = o3p_cell_from_o3(o3.cell)
    hkl_h = np.array([[0, 0, 3], [1, 0, 0], [0, 1, 0], [1, -1, 0], [1, 0, 4], [0, 1, 5]])
    np.testing.assert_allclose(d_spacing(mono, o3_to_o3p_indices(hkl_h)), d_spacing(o3.cell, hkl_h), rtol=1e-12)
    back = o3_cell_from_o3p(mono)
    np.testing.assert_allclose(back, o3.cell, atol=1e-9)
    # the monoclinic image of the hexagonal cell is a ≈ √3 a_h, b = 3 a_h, c sin β = c_h / 3
    assert mono[1] == pytest.approx(3 * o3.cell[0], rel=1e-12)
    assert mono[0] == pytest.approx(np.sqrt(3) * o3.cell[0], rel=1e-12)


def test_o3p_and_o3_intra_layer_agree_for_pseudo_hexagonal_cell():
    o3p = preset_phase("lrm-pristine:O3p")
    hexcell = o3_cell_from_o3p(o3p.cell)
    assert d_intra_layer(hexcell, setting="O3") == pytest.approx(d_intra_layer(o3p), rel=2e-3)


def test_presets_listed_and_fractions():
    names = list_presets()
    for n in ("lrm-pristine", "lrm-uncharged-cell", "lrm-100-cycles", "Al", "Cu", "graphite", "LiC12", "LiC6"):
        assert n in names
    assert preset("lrm-pristine").fractions == {"O3p": 0.9727, "S": 0.0273}
    assert preset("lrm-100-cycles").fractions == {"O3": 0.7202, "S": 0.2798}


def test_table_s1_site_occupancies():
    o3p = preset_phase("lrm-pristine:O3p")
    assert o3p.site("M2b").occupancy("Li") == 0.561
    assert o3p.site("TM4g").occupancy("Li") == 0.021
    assert o3p.site("M2b").biso == 4.439
    np.testing.assert_array_equal(o3p.site_multiplicities(), [8, 4, 4, 2, 4, 2])
    # Li1.2TM0.8O2 per formula unit (Z = 6): the 2b/4g/4h/2c sites hold 2 cations per O2
    f = o3p.formula
    cations = sum(v for k, v in f.items() if k != "O")
    assert cations == pytest.approx(2 * (0.999 * 4 + 1.0 * 2 + 1.0 * 4 + 1.0 * 2) / 12, abs=1e-3)


def test_densities_against_literature():
    # Al 2.699 g/cm3, Cu 8.935 g/cm3, graphite 2.26 g/cm3 (handbook values)
    assert preset_phase("Al").density_g_cm3 == pytest.approx(2.699, abs=2e-3)
    assert preset_phase("Cu").density_g_cm3 == pytest.approx(8.935, abs=5e-3)
    assert preset_phase("graphite").density_g_cm3 == pytest.approx(2.26, abs=0.01)


def test_spinel_origin_choice_2():
    s = preset_phase("lrm-pristine:S")
    np.testing.assert_array_equal(s.site_multiplicities(), [32, 16, 8])


def test_scattering_lengths_sears():
    assert b_coh_fm("Mn") == -3.73
    assert b_coh_fm("Ni") == 10.3
    assert b_coh_fm("Li") == -1.90
    assert b_coh_fm("7Li") == -2.22
    assert b_coh_fm("6Li") == 2.00
    assert b_coh_fm("O2-") == 5.803
    with pytest.raises(ValueError, match="isotope"):
        b_coh_fm("99Li")
    with pytest.raises(ValueError, match="not a known element"):
        b_coh_fm("Xx")


@pytest.mark.parametrize("name", ["lrm-pristine", "lrm-100-cycles", "lrm-pouch"])
def test_cif_round_trip_keeps_every_site(tmp_path, name):
    for ph in preset(name).phases:
        path = write_cif(ph, tmp_path / f"{ph.name}.cif")
        back = read_cif(path, name=ph.name)
        assert back.spacegroup == ph.space_group.xhm()
        np.testing.assert_allclose(back.cell, ph.cell, rtol=1e-7)
        assert [s.label for s in back.sites] == [s.label for s in ph.sites]
        for a, b in zip(back.sites, ph.sites):
            np.testing.assert_allclose(a.xyz, b.xyz, atol=1e-8)
            assert a.biso == pytest.approx(b.biso, abs=1e-6)
            assert [sp for sp, _ in a.species] == [sp for sp, _ in b.species]
            np.testing.assert_allclose([o for _, o in a.species], [o for _, o in b.species], atol=1e-8)
            assert a.wyckoff == b.wyckoff


def test_read_real_cifs(nac_dir):
    nac = read_cif(nac_dir / "NAC.cif", name="NAC")
    assert nac.space_group.number == 199  # I2_13
    assert nac.cell[0] == pytest.approx(10.251218)
    np.testing.assert_array_equal(nac.site_multiplicities(), [12, 8, 8, 24, 24, 8])
    # Z = 6 Na2Ca3Al2F14 per cell -> 0.5*(12 Ca ... ) cell contents
    contents = nac.cell_contents()
    assert contents == pytest.approx({"Ca": 12, "Al": 8, "Na": 8, "F": 56})
    assert nac.density_g_cm3 == pytest.approx(2.9975, abs=2e-3)  # the CIF's _exptl_crystal_density_diffrn
    caf2 = read_cif(nac_dir / "CaF2.cif", name="CaF2")
    assert caf2.space_group.number == 225


def test_cif_without_symmetry_names_file_and_items(tmp_path):
    p = tmp_path / "nosym.cif"
    p.write_text("data_x\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n"
                 "_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n_atom_site_label\n_atom_site_fract_x\n"
                 "_atom_site_fract_y\n_atom_site_fract_z\nAl 0 0 0\n")
    with pytest.raises(ValueError, match=r"nosym\.cif.*no symmetry.*_space_group_name_H-M_alt"):
        read_cif(p)


def test_cif_with_negative_occupancy_is_rejected(tmp_path):
    p = tmp_path / "negocc.cif"
    p.write_text("data_x\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n"
                 "_cell_angle_beta 90\n_cell_angle_gamma 90\n_space_group_name_H-M_alt 'F m -3 m'\nloop_\n"
                 "_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
                 "_atom_site_fract_z\n_atom_site_occupancy\nAl1 Al 0 0 0 -0.2\n")
    with pytest.raises(ValueError, match=r"negocc\.cif.*_atom_site_occupancy of 'Al1'.*-0.2"):
        read_cif(p)


def test_not_a_cif(tmp_path):
    p = tmp_path / "x.cif"
    p.write_text("BANK 1 10 10 CONST 1 1 0 0 ESD\n1 2 3\n")
    with pytest.raises(ValueError, match=r"x\.cif"):
        read_cif(p)


def test_impossible_site_and_cell():
    with pytest.raises(ValueError, match="occupancy of Li must lie in"):
        Site("a", (0, 0, 0), (("Li", -0.1),), 1.0)
    with pytest.raises(ValueError, match="sum to"):
        Site("a", (0, 0, 0), (("Li", 0.7), ("Ni", 0.7)), 1.0)
    with pytest.raises(ValueError, match="Biso"):
        Site("a", (0, 0, 0), (("Li", 1.0),), float("nan"))
    with pytest.raises(ValueError, match="impossible cell"):
        Phase("x", "P 1", (1, 1, -1, 90, 90, 90), ())
    with pytest.raises(ValueError, match="unknown space group"):
        Phase("x", "Q 9", (1, 1, 1, 90, 90, 90), ())


def test_cif_unknown_element_and_overfull_site_name_the_site(tmp_path):
    """Numeric/chemical bad input in a CIF (issue 15): an unknown element names the site; two atoms on
    one position whose occupancies sum above 1 are refused; an occupancy > 1 is refused."""
    from layerscope import InputError
    from layerscope.crystal.cif import read_cif

    head = ("data_t\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n"
            "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\n"
            "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
            "_atom_site_fract_z\n_atom_site_occupancy\n_atom_site_U_iso_or_equiv\n")
    cases = {"Qq1 Qq 0 0 0 1 0.01\n": r"site 'Qq1'.*not a known element",
             "Mn1 Mn 0 0 0 0.7 0.01\nNi1 Ni 0 0 0 0.6 0.01\n": r"share one position.*sum to 1.3000 > 1",
             "Mn1 Mn 0 0 0 1.2 0.01\n": r"occupancy of 'Mn1' must lie in \[0, 1\], got 1.2"}
    for i, (atoms, msg) in enumerate(cases.items()):
        p = tmp_path / f"bad{i}.cif"
        p.write_text(head + atoms)
        with pytest.raises(InputError, match=msg):
            read_cif(p)
