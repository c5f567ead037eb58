"""Anisotropic displacement parameters: site symmetry, U_eq, CIF U_ij, structure factors, refinement.

Peers and known truth: gemmi's neutron structure-factor calculator (its own anisotropic
Debye–Waller per cell image) on GSAS-II's NAC.cif and on a written monoclinic phase; gemmi's
``adp_symmetry_constraints`` for sites whose stabiliser is the whole point group; the isotropic
limit (U_ij = U G*_ij / a*_i a*_j reproduces Biso = 8π²U in any cell); a noise-free simulated
rutile pattern whose U the refinement recovers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from layerscope.crystal import Phase, Site, read_cif, write_cif
from layerscope.crystal.phase import adp_basis, u_cartesian, u_isotropic
from layerscope.crystal.scattering import b_coh_fm
from layerscope.diffraction.reflections import reflections
from layerscope.diffraction.structure_factors import structure_factors

gemmi = pytest.importorskip("gemmi")

EIGHT_PI2 = 8 * np.pi**2


def _gemmi_f(cif_path, hkl):
    """F(hkl) from gemmi's neutron calculator with layerscope's scattering lengths (Sears 1992)."""
    st = gemmi.read_small_structure(str(cif_path))
    st.setup_cell_images()
    st.change_occupancies_to_crystallographic()  # gemmi sums every image of a special position
    calc = gemmi.StructureFactorCalculatorN(st.cell)
    for s in st.sites:
        calc.addends.set(s.element, b_coh_fm(s.element.name) - s.element.neutron92.get_coefs()[0])
    return np.array([calc.calculate_sf_from_small_structure(st, [int(v) for v in h]) for h in hkl])


def _monoclinic():
    """C 2/m with a general-position site (6 free U), a mirror-plane site (U12 = U23 = 0) and a
    2/m site, in a cell with β ≠ 90° (so U ≠ U_cart)."""
    cell = (9.8, 8.9, 5.3, 90, 105.5, 90)
    sites = (
        Site("M1", (0.0, 0.0, 0.0), (("Ni", 0.7), ("Li", 0.3)), wyckoff="2a",
             uani=(0.006, 0.008, 0.007, 0.0, 0.0015, 0.0)),
        Site("O1", (0.22, 0.0, 0.77), (("O", 1.0),), wyckoff="4i", uani=(0.009, 0.012, 0.010, 0.0, 0.002, 0.0)),
        Site("O2", (0.25, 0.32, 0.77), (("O", 1.0),), wyckoff="8j",
             uani=(0.011, 0.009, 0.013, -0.002, 0.003, 0.0015)),
        Site("Mn1", (0.0, 0.333, 0.0), (("Mn", 1.0),), 0.5, "4g"),
    )
    return Phase("mono", "C 1 2/m 1", cell, sites)


def test_nac_structure_factors_match_gemmi_with_uani(nac_dir):
    """GSAS-II's NAC.cif (I2_13, six Uani sites, three on 3-fold axes): |F|² of every reflection
    down to d = 0.4 Å agrees with gemmi to 1e-6 (measured 4e-13); without U_ij (B_eq only) the
    same reflections differ by several %, so the anisotropy is exercised."""
    ph = read_cif(nac_dir / "NAC.cif")
    assert all(s.uani is not None for s in ph.sites)
    hkl = reflections(ph, 0.4, 10.0).hkl
    f_peer = _gemmi_f(nac_dir / "NAC.cif", hkl)
    f2 = np.abs(structure_factors(ph, hkl)) ** 2
    np.testing.assert_allclose(f2, np.abs(f_peer) ** 2, rtol=1e-6)
    iso = replace(ph, sites=tuple(replace(s, uani=None) for s in ph.sites))
    assert np.max(np.abs(np.abs(structure_factors(iso, hkl)) ** 2 / f2 - 1)) > 0.03


def test_written_monoclinic_aniso_phase_matches_gemmi(tmp_path):
    """Our CIF (U_ij loop, mixed site) read by gemmi gives the |F|² we compute, to 1e-6."""
    ph = _monoclinic()
    path = write_cif(ph, tmp_path / "mono.cif")
    hkl = reflections(ph, 0.6, 10.0).hkl
    f_peer = _gemmi_f(path, hkl)
    np.testing.assert_allclose(np.abs(structure_factors(ph, hkl)) ** 2, np.abs(f_peer) ** 2, rtol=1e-6)


def test_isotropic_tensor_reproduces_biso_in_a_triclinic_cell():
    cell = (5.1, 6.3, 7.2, 81.0, 97.0, 112.0)
    b = 1.37
    u = u_isotropic(b / EIGHT_PI2, cell)
    np.testing.assert_allclose(u_cartesian(u, cell), b / EIGHT_PI2 * np.eye(3), atol=1e-15)
    iso = Phase("t", "P -1", cell, (Site("A", (0.1, 0.2, 0.3), (("Fe", 1.0),), b),
                                    Site("B", (0.4, 0.1, 0.8), (("O", 1.0),), 0.4)))
    ani = replace(iso, sites=(replace(iso.sites[0], uani=u), iso.sites[1]))
    assert ani.sites[0].biso == pytest.approx(b, rel=1e-12)  # B_eq of the tensor
    hkl = reflections(iso, 0.5, 10.0).hkl
    np.testing.assert_allclose(structure_factors(ani, hkl), structure_factors(iso, hkl), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sg,xyz", [("P 4/m m m", (0, 0, 0)), ("P 6/m m m", (0, 0, 0)), ("R -3 m:H", (0, 0, 0)),
                                    ("C 1 2/m 1", (0, 0, 0)), ("F m -3 m", (0, 0, 0)), ("P m m m", (0, 0, 0)),
                                    ("P -1", (0, 0, 0))])
def test_site_symmetry_basis_matches_gemmi_point_group_constraints(sg, xyz):
    """At a site whose stabiliser is the whole point group, the allowed U span what gemmi gives."""
    g = gemmi.SpaceGroup(sg)
    cell = {"cubic": (4, 4, 4, 90, 90, 90), "tetragonal": (4, 4, 6, 90, 90, 90),
            "hexagonal": (3, 3, 5, 90, 90, 120), "trigonal": (3, 3, 14, 90, 90, 120),
            "orthorhombic": (4, 5, 6, 90, 90, 90), "monoclinic": (9.8, 8.9, 5.3, 90, 105.5, 90),
            "triclinic": (5.1, 6.3, 7.2, 81, 97, 112)}[g.crystal_system_str()]
    mine = adp_basis(sg, xyz, cell)
    peer = np.array(gemmi.adp_symmetry_constraints(g)).T
    assert mine.shape == peer.shape
    # same column space: projecting one onto the other loses nothing
    proj = mine @ np.linalg.lstsq(mine, peer, rcond=None)[0]
    np.testing.assert_allclose(proj, peer, atol=1e-12)


def test_nac_site_symmetry_of_u():
    """I2_13: 3-fold axis (x,x,x) → U11 = U22 = U33, U12 = U13 = U23; 2-fold axis (x,0,1/4) →
    U12 = U13 = 0; general position → six free U."""
    cell = (10.25,) * 3 + (90,) * 3
    np.testing.assert_allclose(adp_basis("I 21 3", (0.08462,) * 3, cell).T, [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    np.testing.assert_allclose(adp_basis("I 21 3", (0.46652, 0, 0.25), cell).T,
                               [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1]])
    assert adp_basis("I 21 3", (0.13825, 0.30584, 0.12061), cell).shape == (6, 6)


def test_u_equiv_is_a_third_of_the_cartesian_trace(nac_dir):
    ph = read_cif(nac_dir / "NAC.cif")
    ca = ph.site("Ca1")
    assert ca.u_equiv(ph.cell) == pytest.approx((0.0083 + 0.0096 + 0.0080) / 3, rel=1e-12)  # cubic
    assert ca.biso == pytest.approx(EIGHT_PI2 * ca.u_equiv(ph.cell), rel=1e-12)
    # the CIF's U_iso_or_equiv column (GSAS-II writes U_eq to 4 decimals)
    assert ca.u_equiv(ph.cell) == pytest.approx(0.0086, abs=5e-5)
    mono = _monoclinic()
    o2 = mono.site("O2")
    assert o2.u_equiv(mono.cell) == pytest.approx(np.trace(u_cartesian(o2.uani, mono.cell)) / 3)
    assert o2.u_equiv(mono.cell) != pytest.approx(np.mean(o2.uani[:3]), rel=1e-3)  # β ≠ 90°


def test_aniso_cif_round_trip_and_b_and_beta_forms(tmp_path, nac_dir):
    ph = _monoclinic()
    back = read_cif(write_cif(ph, tmp_path / "m.cif"), name="mono")
    for s, t in zip(ph.sites, back.sites):
        assert t.label == s.label and t.species == s.species
        assert (t.uani is None) == (s.uani is None)
        if s.uani is not None:
            np.testing.assert_allclose(t.uani, s.uani, atol=1e-8)
        assert t.biso == pytest.approx(s.biso, abs=1e-6)
    # B_ij = 8π² U_ij and beta_ij = 2π² a*_i a*_j U_ij give the same U
    text = (nac_dir / "NAC.cif").read_text()
    ref = read_cif(nac_dir / "NAC.cif")
    rows = {s.label: s.uani for s in ref.sites}
    b_text = text.replace("_atom_site_aniso_U_", "_atom_site_aniso_B_")
    for lab, u in rows.items():
        line = next(ln for ln in b_text.splitlines() if ln.split() and ln.split()[0] == lab and len(ln.split()) == 7)
        b_text = b_text.replace(line, lab + " " + " ".join(f"{EIGHT_PI2 * v:.10f}" for v in u))
    (tmp_path / "b.cif").write_text(b_text)
    for s in read_cif(tmp_path / "b.cif").sites:
        np.testing.assert_allclose(s.uani, rows[s.label], atol=1e-12)
    ast = 1 / ref.cell[0]
    beta_text = b_text.replace("_atom_site_aniso_B_", "_atom_site_aniso_beta_")
    for lab, u in rows.items():
        line = next(ln for ln in beta_text.splitlines() if ln.split() and ln.split()[0] == lab
                    and len(ln.split()) == 7)
        beta_text = beta_text.replace(line, lab + " " + " ".join(f"{2 * np.pi**2 * ast**2 * v:.12e}" for v in u))
    (tmp_path / "beta.cif").write_text(beta_text)
    for s in read_cif(tmp_path / "beta.cif").sites:
        np.testing.assert_allclose(s.uani, rows[s.label], atol=1e-12)


def test_isotropic_cif_has_no_aniso_loop(tmp_path):
    ph = Phase("Al", "F m -3 m", (4.0495,) * 3 + (90,) * 3, (Site("Al", (0, 0, 0), (("Al", 1.0),), 0.8, "4a"),))
    text = write_cif(ph, tmp_path / "al.cif").read_text()
    assert "aniso" not in text and " Biso 0.800000 " in text


def test_bad_anisotropic_u_is_rejected_naming_the_site():
    with pytest.raises(ValueError, match="site 'O9'.*not positive definite"):
        Site("O9", (0, 0, 0), (("O", 1.0),), uani=(0.01, 0.01, 0.01, 0.02, 0.0, 0.0))
    with pytest.raises(ValueError, match="site 'O9'.*six finite numbers"):
        Site("O9", (0, 0, 0), (("O", 1.0),), uani=(0.01, 0.01, np.nan, 0, 0, 0))
    with pytest.raises(ValueError, match="site 'O9'.*six finite numbers"):
        Site("O9", (0, 0, 0), (("O", 1.0),), uani=(0.01, 0.01, 0.01))
    # U12 ≠ 0 on the 2/m site of C2/m breaks its symmetry
    with pytest.raises(ValueError, match="site 'M1'.*breaks the site symmetry"):
        Phase("m", "C 1 2/m 1", (9.8, 8.9, 5.3, 90, 105.5, 90),
              (Site("M1", (0, 0, 0), (("Ni", 1.0),), uani=(0.006, 0.008, 0.007, 0.003, 0.0015, 0.0)),))


def test_bad_aniso_loop_in_cif_names_file_and_atom(tmp_path, nac_dir):
    text = (nac_dir / "NAC.cif").read_text().replace("Na1    0.0255      0.0255", "Na1    0.0255      abc")
    (tmp_path / "bad.cif").write_text(text)
    with pytest.raises(ValueError, match=r"bad\.cif.*'Na1'"):
        read_cif(tmp_path / "bad.cif")


def test_refinement_recovers_simulated_anisotropic_u():
    """Rutile (P4_2/mnm; Ti 2a and O 4f: U11 = U22, U33, U12 free): a noise-free pattern simulated
    with known U, refined from isotropic U with the same U_eq, returns the true U to 1e-6 Å² and the
    Biso entries stay B_eq of the refined tensors."""
    from layerscope.diffraction.instrument import gppd_like
    from layerscope.diffraction.pattern import build_model, initial_params
    from layerscope.refine import Evaluator, free_set, least_squares, make_layout

    cell = (4.594, 4.594, 2.959, 90, 90, 90)
    u_ti, u_o = (0.0060, 0.0060, 0.0040, 0.0004, 0, 0), (0.0070, 0.0070, 0.0045, -0.0020, 0, 0)
    truth = Phase("TiO2", "P 42/m n m", cell, (Site("Ti", (0, 0, 0), (("Ti", 1.0),), uani=u_ti),
                                                Site("O", (0.3048, 0.3048, 0), (("O", 1.0),), uani=u_o)))
    tof = np.geomspace(6000.0, 40000.0, 3000)
    model = build_model([truth], tof, gppd_like(), n_background=2, lorentz=False)
    lay = make_layout(model)
    ev = Evaluator(model, lay)
    x_true = lay.flatten(initial_params(model))
    x_true[lay.index("TiO2.scale")] = 2000.0 / ev.calc(x_true)[0].max()
    x_true[lay.index("bkg.0")] = 50.0
    y = ev.calc(x_true)[0]
    sigma = np.sqrt(y)
    start = x_true.copy()
    for lab in ("Ti", "O"):
        i = lay.index(f"TiO2.U11[{lab}]")
        start[i:i + 6] = u_isotropic(truth.site(lab).u_equiv(cell), cell)
    fs = free_set(lay, start, ["TiO2.uani"])
    assert fs.names == ("TiO2.U11[Ti]", "TiO2.U33[Ti]", "TiO2.U12[Ti]", "TiO2.U11[O]", "TiO2.U33[O]", "TiO2.U12[O]")
    fr = least_squares(ev, fs, y, sigma, max_cycles=20)
    for lab, u in (("Ti", u_ti), ("O", u_o)):
        i = lay.index(f"TiO2.U11[{lab}]")
        np.testing.assert_allclose(fr.full[i:i + 6], u, atol=1e-6)
        assert fr.full[lay.index(f"TiO2.biso[{lab}]")] == pytest.approx(truth.site(lab).biso, abs=1e-5)
    # 'biso' of an anisotropic site moves U along the isotropic tensor (and is dropped with uani)
    fb = free_set(lay, start, ["TiO2.biso[O]"])
    col = fb.A[:, 0]
    i = lay.index("TiO2.U11[O]")
    np.testing.assert_allclose(col[i:i + 6], u_isotropic(1 / EIGHT_PI2, cell), atol=1e-15)
    assert free_set(lay, start, ["TiO2.biso", "TiO2.uani[O]"]).names == (
        "TiO2.biso[Ti]", "TiO2.U11[O]", "TiO2.U33[O]", "TiO2.U12[O]")
    half = build_model([replace(truth, sites=(replace(truth.sites[0], uani=None), truth.sites[1]))],
                       tof, gppd_like(), n_background=2, lorentz=False)
    hl = make_layout(half)
    with pytest.raises(ValueError, match="site 'Ti' is isotropic"):
        free_set(hl, hl.flatten(initial_params(half)), ["TiO2.uani[Ti]"])
    iso = build_model([replace(truth, sites=tuple(replace(s, uani=None) for s in truth.sites))],
                      tof, gppd_like(), n_background=2, lorentz=False)
    il = make_layout(iso)
    assert not any(".U11[" in n for n in il.names)
    with pytest.raises(ValueError, match="no anisotropic site"):
        free_set(il, il.flatten(initial_params(iso)), ["TiO2.uani"])
