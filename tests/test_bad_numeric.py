"""Numeric bad input (issue 15): CIF atoms on top of each other, constant and NaN images."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from layerscope import InputError

HEAD = ("data_t\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M '{sg}'\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
        "_atom_site_fract_z\n_atom_site_occupancy\n_atom_site_U_iso_or_equiv\n")


def _cif(tmp_path, atoms, sg="P 1"):
    p = tmp_path / "t.cif"
    p.write_text(HEAD.format(sg=sg) + atoms)
    return p


def test_overlapping_atoms_are_refused_naming_both_sites(tmp_path):
    from layerscope.crystal.cif import read_cif

    # 0.2 Å apart (0.05 of a 4 Å cell), both fully occupied: two atoms cannot be there
    with pytest.raises(InputError, match=r"sites 'Mn1' and 'O1' are 0.200 Å apart .*add(ing)? up to 2 > 1"):
        read_cif(_cif(tmp_path, "Mn1 Mn 0 0 0 1 0.01\nO1 O 0.05 0 0 1 0.01\n"))
    # across the cell edge (x = 0.98 is 0.08 Å from x = 0): periodic images count
    with pytest.raises(InputError, match=r"sites 'Mn1' and 'O1' are 0.080 Å apart"):
        read_cif(_cif(tmp_path, "Mn1 Mn 0 0 0 1 0.01\nO1 O 0.98 0 0 1 0.01\n"))
    # an atom 0.12 Å off a mirror (P m m m) overlaps its own image
    with pytest.raises(InputError, match=r"site 'Mn1' is 0.240 Å from a symmetry image of itself"):
        read_cif(_cif(tmp_path, "Mn1 Mn 0.03 0 0 1 0.01\n", sg="P m m m"))


def test_mixed_sites_and_split_positions_are_legal(tmp_path):
    from layerscope.crystal.cif import read_cif

    # species sharing one site (same coordinates): a mixed site, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ph = read_cif(_cif(tmp_path, "Li1 Li 0 0 0 0.9 0.01\nNi1 Ni 0 0 0 0.1 0.01\nO1 O 0.5 0.5 0.5 1 0.01\n"))
    assert len(ph.sites) == 2 and dict(ph.sites[0].species) == {"Li": 0.9, "Ni": 0.1}
    # a split (disordered) position: two half-occupied positions 0.4 Å apart, kept with a warning
    with pytest.warns(UserWarning, match=r"sites 'Li1' and 'Li2' are 0.400 Å apart.*split"):
        ph = read_cif(_cif(tmp_path, "Li1 Li 0 0 0 0.5 0.01\nLi2 Li 0.1 0 0 0.5 0.01\n"))
    assert len(ph.sites) == 2
    # 0.5 Å and more apart: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_cif(_cif(tmp_path, "Mn1 Mn 0 0 0 1 0.01\nO1 O 0.125 0 0 1 0.01\n"))


@pytest.mark.parametrize("image, message", [(np.full((96, 96), 7.0), "constant"),
                                            (np.zeros((96, 96)), "constant")])
def test_haadf_constant_image_is_a_clear_error(tmp_path, capsys, image, message):
    from layerscope.cli import main

    np.save(tmp_path / "img.npy", image)
    assert main(["haadf", str(tmp_path / "img.npy"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_haadf_nan_pixels_are_an_input_error_naming_the_count(tmp_path):
    from layerscope.stem.io import read_image

    img = np.random.default_rng(0).normal(100, 5, (64, 64))
    img[3, 4] = np.nan
    img[10, 11] = np.inf
    np.save(tmp_path / "img.npy", img)
    with pytest.raises(InputError, match=r"img.npy: image contains 2 NaN/inf pixels"):
        read_image(tmp_path / "img.npy")
    np.save(tmp_path / "c.npy", np.ones((8, 8), complex))
    with pytest.raises(InputError, match="expected real pixel values"):
        read_image(tmp_path / "c.npy")
