"""Refinement engine: symmetry-derived parameters, ties, synthetic recovery, ill-posed flags, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layerscope.crystal import Phase, Site, preset_phase
from layerscope.diffraction.instrument import gppd_like, write_instprm
from layerscope.diffraction.pattern import build_model, initial_params
from layerscope.refine import Constraint, Evaluator, free_set, least_squares, make_layout
from layerscope.refine.parameters import cell_columns, site_shift_basis
from layerscope.refine.rietveld import refine_pattern
from layerscope.refine.strategy import Stage, Strategy, parse_strategy, read_strategy


# --- symmetry -------------------------------------------------------------------------
def test_wyckoff_shift_basis_follows_site_symmetry():
    # NAC I2_13: 8a (x, x, x) on a 3-fold axis moves only along (1, 1, 1)
    b = site_shift_basis("I 21 3", (0.4675, 0.4675, 0.4675))
    assert b.shape == (3, 1) and np.allclose(b[:, 0], [1, 1, 1])
    # general position: three free coordinates
    assert site_shift_basis("I 21 3", (0.13, 0.27, 0.41)).shape == (3, 3)
    # Fm-3m 4a and 8c: no freedom
    assert site_shift_basis("F m -3 m", (0, 0, 0)).shape == (3, 0)
    assert site_shift_basis("F m -3 m", (0.25, 0.25, 0.25)).shape == (3, 0)
    # C2/m 4i (x, 0, z): x and z; 4g (0, y, 0): y only
    b = site_shift_basis("C 1 2/m 1", (0.22, 0.0, 0.77))
    assert b.shape == (3, 2) and np.allclose(b.T, [[1, 0, 0], [0, 0, 1]])
    b = site_shift_basis("C 1 2/m 1", (0.0, 0.167, 0.0))
    assert b.shape == (3, 1) and np.allclose(b[:, 0], [0, 1, 0])


def test_cell_columns_by_crystal_system():
    cols, names = cell_columns("F m -3 m")
    assert names == ("a",) and np.allclose(cols[:, 0], [1, 1, 1, 0, 0, 0])
    assert cell_columns("R -3 m:H")[1] == ("a", "c")
    assert cell_columns("P 63/m m c")[1] == ("a", "c")
    assert cell_columns("C 1 2/m 1")[1] == ("a", "b", "c", "beta")
    assert cell_columns("P n m a")[1] == ("a", "b", "c")
    assert len(cell_columns("P -1")[1]) == 6


# --- synthetic data ---------------------------------------------------------------------
def _two_phase(al_biso=0.8):
    al = preset_phase("Al")
    cu = preset_phase("Cu")
    return [al, cu]


def _simulate(phases, scales, *, seed=0, counts=2000.0, n=1500):
    inst = gppd_like()
    tof = np.geomspace(16000, 60000, n)
    model = build_model(phases, tof, inst, n_background=3)
    p = initial_params(model, scales=scales, background=[0.2 * counts, 0.0, 0.0])
    lay = make_layout(model)
    ev = Evaluator(model, lay)
    truth = lay.flatten(p)
    yc = ev.calc(truth)[0]
    ymax = yc.max()
    rng = np.random.default_rng(seed)
    k = counts / ymax
    y = rng.poisson(yc * k) / k
    sigma = np.sqrt(np.maximum(yc * k, 1.0)) / k
    return inst, tof, y, sigma, truth, lay, model


def test_synthetic_recovery_within_esds():
    """Al + Cu with Poisson noise: cells, scales and Biso come back within 3 esd from perturbed starts."""
    phases = _two_phase()
    inst, tof, y, sigma, truth, lay, model = _simulate(phases, {"Al": 1.0e4, "Cu": 0.5e4})
    ev = Evaluator(model, lay)
    rng = np.random.default_rng(7)
    names = ["Al.a", "Cu.a", "Al.scale", "Cu.scale", "Al.biso[Al]", "Cu.biso[Cu]"]
    free = ["background", "Al.scale", "Cu.scale", "Al.cell", "Cu.cell", "Al.biso", "Cu.biso"]
    n_ok = 0
    for trial in range(3):
        start = truth.copy()
        for nm in ("Al.a", "Cu.a"):
            i = lay.index(nm)
            start[i] *= 1 + rng.uniform(-0.005, 0.005)
            start[i + 1] = start[i + 2] = start[i]
        for nm in ("Al.scale", "Cu.scale"):
            start[lay.index(nm)] *= 1 + rng.uniform(-0.3, 0.3)
        for nm in ("Al.biso[Al]", "Cu.biso[Cu]"):
            start[lay.index(nm)] *= 1 + rng.uniform(-0.5, 0.5)
        fr = least_squares(ev, free_set(lay, start, free), y, sigma, max_cycles=40)
        assert fr.converged, fr.warnings
        z = [(fr.value(n) - truth[lay.index(n)]) / fr.esd(n) for n in names]
        n_ok += all(abs(v) < 3 for v in z)
        # cubic: a = b = c after refinement
        i = lay.index("Al.a")
        assert fr.full[i] == pytest.approx(fr.full[i + 1]) == pytest.approx(fr.full[i + 2])
        assert fr.stats.chi2 == pytest.approx(1.0, abs=0.15)
    assert n_ok >= 2


def test_occupancy_sum_constraint_is_kept():
    # rock salt (Ni,Mn)O: F = 4(b_M + b_O) for h, k, l even and 4(b_M − b_O) for odd, so the
    # Ni/Mn ratio is determined independently of the scale
    ph = Phase("mix", "F m -3 m", (4.15,) * 3 + (90.0,) * 3,
               (Site("M", (0, 0, 0), (("Ni", 0.6), ("Mn", 0.4)), 0.5, "4a"),
                Site("O", (0.5, 0.5, 0.5), (("O", 1.0),), 0.6, "4b")))
    inst, tof, y, sigma, truth, lay, model = _simulate([ph], {"mix": 1e4})
    start = truth.copy()
    start[lay.index("mix.occ[M:Ni]")] = 0.5
    start[lay.index("mix.occ[M:Mn]")] = 0.5
    con = Constraint({"mix.occ[M:Ni]": 1.0, "mix.occ[M:Mn]": 1.0}, 1.0)
    fs = free_set(lay, start, ["background", "mix.scale", "mix.occ[M]"], constraints=[con])
    assert fs.names == ("bkg.0", "bkg.1", "bkg.2", "mix.scale", "mix.occ[M:Ni]")
    fr = least_squares(Evaluator(model, lay), fs, y, sigma)
    ni, mn = fr.value("mix.occ[M:Ni]"), fr.value("mix.occ[M:Mn]")
    assert ni + mn == pytest.approx(1.0, abs=1e-12)
    assert abs(ni - 0.6) < 3 * fr.esd("mix.occ[M:Ni]")
    # the tied partner carries the same esd
    assert fr.esd("mix.occ[M:Mn]") == pytest.approx(fr.esd("mix.occ[M:Ni]"))


def test_ill_posed_refinement_is_flagged():
    """Two copies of one phase (fully correlated scales) and an occupancy with no contrast."""
    al = preset_phase("Al")
    twin = al.with_name("Al2")
    inst, tof, y, sigma, truth, lay, model = _simulate([al, twin], {"Al": 5e3, "Al2": 5e3})
    fr = least_squares(Evaluator(model, lay), free_set(lay, truth, ["background", "Al.scale", "Al2.scale"]),
                       y, sigma)
    assert fr.singular and not fr.converged
    assert any("singular" in w and "Al.scale" in w and "Al2.scale" in w for w in fr.warnings)
    assert np.isnan(fr.esd_q[3]) and np.isnan(fr.esd_q[4])
    # and so are the model quantities they move (not 0, which would read as exact)
    assert np.isnan(fr.esd("Al.scale")) and np.isnan(fr.esd("Al2.scale"))
    assert np.isfinite(fr.esd("bkg.0")) and fr.esd("Al.a") == 0.0
    # the same element twice on one site with a fixed total: no scattering contrast
    ph = Phase("nc", "F m -3 m", (4.05,) * 3 + (90.0,) * 3,
               (Site("M", (0, 0, 0), (("Al", 0.5), ("Al", 0.5)), 0.5, "4a"),))
    inst, tof, y, sigma, truth, lay, model = _simulate([ph], {"nc": 1e4})
    names = [n for n in lay.names if n.startswith("nc.occ")]
    con = Constraint({names[0]: 1.0, names[1]: 1.0})
    fr = least_squares(Evaluator(model, lay), free_set(lay, truth, ["background", "nc.scale", "nc.occ"],
                                                       constraints=[con]), y, sigma)
    assert fr.singular and not fr.converged
    assert any("does not depend on" in w for w in fr.warnings)


# --- strategies, bad input ---------------------------------------------------------------
def test_strategy_toml_and_errors(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[refine]\nmax_cycles = 5\n[[stage]]\nname = "bkg"\nfree = ["background"]\n'
                 '[[stage]]\nfree = ["Al.cell"]\nstart = { "Al.mustrain" = 500.0 }\n'
                 '[[tie]]\nparams = ["A.biso[x]", "A.biso[y]"]\n')
    s = read_strategy(p)
    assert [st.name for st in s.stages] == ["bkg", "stage 2"] and s.max_cycles == 5
    assert s.constraints[0].terms == {"A.biso[x]": 1.0, "A.biso[y]": -1.0}
    bad = tmp_path / "bad.toml"
    bad.write_text("[[stage]\nfree = [")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        read_strategy(bad)
    with pytest.raises(ValueError, match="at least one \\[\\[stage\\]\\]"):
        parse_strategy({"refine": {}}, "x.toml")
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        read_strategy(tmp_path / "nope.toml")


def test_bad_observations_and_names_raise():
    inst, tof, y, sigma, truth, lay, model = _simulate([preset_phase("Al")], {"Al": 1e4}, n=300)
    ev = Evaluator(model, lay)
    with pytest.raises(ValueError, match="nothing to refine matches 'Al.cel'"):
        free_set(lay, truth, ["Al.cel"])
    s2 = sigma.copy()
    s2[5] = np.nan
    with pytest.raises(ValueError, match="finite with σ > 0"):
        least_squares(ev, free_set(lay, truth, ["background"]), y, s2)
    with pytest.raises(ValueError, match="must match the model grid"):
        least_squares(ev, free_set(lay, truth, ["background"]), y[:-1], sigma[:-1])


def test_cli_refine_writes_summary(tmp_path):
    from layerscope.cli import main

    inst, tof, y, sigma, truth, lay, model = _simulate([preset_phase("Al")], {"Al": 1e4}, n=800)
    data = tmp_path / "al.xye"
    np.savetxt(data, np.column_stack([tof, y, sigma]))
    write_instprm(inst, tmp_path / "inst.instprm")
    strat = tmp_path / "s.toml"
    strat.write_text('[[stage]]\nfree = ["background", "Al.scale"]\n[[stage]]\nfree = ["Al.cell", "Al.biso"]\n')
    rc = main(["refine", str(data), "--instprm", str(tmp_path / "inst.instprm"), "--phase", "Al",
               "--strategy", str(strat), "--nbkg", "3", "--out", str(tmp_path / "out"), "--no-plot"])
    assert rc == 0
    summ = json.loads((tmp_path / "out" / "summary.json").read_text())
    for key in ("rwp", "rp", "rexp", "chi2", "converged", "warnings"):
        assert key in summ
    cell = summ["phases"]["Al"]["cell"]
    assert abs(cell["a"]["value"] - 4.0495) < 3 * cell["a"]["esd"]
    assert summ["phases"]["Al"]["weight_fraction"]["value"] == pytest.approx(1.0)
    assert summ["chi2"] == pytest.approx(1.0, abs=0.2)
    assert (tmp_path / "out" / "Al.cif").is_file()
    # missing inputs: one clear line, exit 1
    assert main(["refine", str(data), "--out", str(tmp_path / "o2")]) == 2


def test_refine_pattern_reports_fractions():
    phases = _two_phase()
    inst, tof, y, sigma, truth, lay, model = _simulate(phases, {"Al": 1.0e4, "Cu": 0.5e4}, seed=3)
    strategy = Strategy((Stage("s", ("background", "Al.scale", "Cu.scale")),
                         Stage("c", ("Al.cell", "Cu.cell"))))
    res = refine_pattern(tof, y, sigma, phases, inst, strategy, scales={"Al": 0.8e4, "Cu": 0.6e4}, n_background=3,
                         background=[400.0, 0, 0])
    from layerscope.diffraction.fractions import weight_fractions

    w_true = weight_fractions([1.0e4, 0.5e4], phases)
    assert abs(res.weight_fraction["Al"] - w_true[0]) < 3 * res.weight_fraction_esd["Al"]
    assert res.weight_fraction_esd["Al"] == pytest.approx(res.weight_fraction_esd["Cu"])
    assert all(0 < r < 10 for r in res.bragg_r.values())


def test_bounds_hold_for_parameters_made_dependent_by_a_constraint():
    """Li fixed at 0.3, Ni + Mn = 0.7 on one site with Mn the dependent (eliminated) occupancy.

    The data are simulated with Li 0.25, Ni 0.75 and no Mn, so with Li at 0.3 the unconstrained
    optimum has Ni ≈ 0.74 and Mn < 0.
    The refinement must hold Mn on its bound 0 (Ni = 0.7), report it, and still converge;
    its Rwp is the lowest among feasible Ni values (checked on a grid).
    """
    sim = Phase("lnm", "F m -3 m", (4.15,) * 3 + (90.0,) * 3,
                (Site("M", (0, 0, 0), (("Li", 0.25), ("Ni", 0.75), ("Mn", 0.0)), 0.5, "4a"),
                 Site("O", (0.5, 0.5, 0.5), (("O", 1.0),), 0.6, "4b")))
    inst, tof, y, sigma, truth, lay, model = _simulate([sim], {"lnm": 1e4})
    i_ni, i_mn = lay.index("lnm.occ[M:Ni]"), lay.index("lnm.occ[M:Mn]")
    start = truth.copy()
    start[lay.index("lnm.occ[M:Li]")] = 0.3
    start[i_ni], start[i_mn] = 0.45, 0.25
    start[lay.index("lnm.biso[O]")] *= 1.3
    con = Constraint({"lnm.occ[M:Ni]": 1.0, "lnm.occ[M:Mn]": 1.0}, 0.7)
    fs = free_set(lay, start, ["background", "lnm.biso[O]", "lnm.cell", "lnm.occ[M:Ni]", "lnm.occ[M:Mn]"],
                  constraints=[con])
    assert "lnm.occ[M:Mn]" not in fs.names  # dependent on Ni through the constraint
    ev = Evaluator(model, lay)
    fr = least_squares(ev, fs, y, sigma, max_cycles=40)
    assert fr.full[i_mn] >= -1e-12 and fr.full[i_mn] == pytest.approx(0.0, abs=1e-9)
    assert fr.full[i_ni] == pytest.approx(0.7, abs=1e-9)
    assert "lnm.occ[M:Mn]" in fr.bound_hits
    assert any("lnm.occ[M:Mn] reached its bound" in w for w in fr.warnings)
    assert fr.converged and fr.n_cycles < 40
    # (the scale stays at its true value: with it free, F_odd = 4(b_M − b_O) has a second root b_O²/b_M)
    # independent check: with Ni fixed on a grid below the bound (Biso, cell, background refit),
    # Rwp only rises as Ni moves away from 0.7
    chi = []
    for ni in (0.7, 0.68, 0.66):
        x = fr.full.copy()
        x[i_ni], x[i_mn] = ni, 0.7 - ni
        chi.append(least_squares(ev, free_set(lay, x, ["background", "lnm.biso[O]", "lnm.cell"]), y, sigma).stats.rwp)
    assert fr.stats.rwp == pytest.approx(chi[0], rel=1e-6)
    assert chi[0] < chi[1] < chi[2]


def test_gsas2_schedule_gauss_newton_cycles():
    """schedule="gsas2" (GSAS-II's HessianLSQ rules): plain Gauss–Newton solves a linear problem in
    one cycle; a 2-cycle stage from a perturbed cell stops unconverged and says so; with enough
    cycles it reaches the default schedule's optimum."""
    phases = _two_phase()
    inst, tof, y, sigma, truth, lay, model = _simulate(phases, {"Al": 1.0e4, "Cu": 0.5e4}, seed=3)
    ev = Evaluator(model, lay)
    start = truth.copy()
    for nm in ("Al.scale", "Cu.scale"):
        start[lay.index(nm)] *= 1.3
    lin = ["background", "Al.scale", "Cu.scale"]
    ref = least_squares(ev, free_set(lay, start, lin), y, sigma, max_cycles=40, tol=1e-6)
    gn = least_squares(ev, free_set(lay, start, lin), y, sigma, max_cycles=40, schedule="gsas2", ftol=1e-6)
    assert gn.converged and ref.converged
    assert gn.history[1] == pytest.approx(ref.history[-1], rel=1e-9)  # one Gauss–Newton step reaches the minimum
    for n in ("Al.scale", "Cu.scale"):
        assert gn.value(n) == pytest.approx(ref.value(n), rel=1e-9)
    # nonlinear: cell 0.3 % off
    start2 = truth.copy()
    for nm in ("Al.a", "Cu.a"):
        i = lay.index(nm)
        start2[i:i + 3] *= 1.003
    free = ["background", "Al.scale", "Cu.scale", "Al.cell", "Cu.cell"]
    short = least_squares(ev, free_set(lay, start2, free), y, sigma, max_cycles=2, schedule="gsas2", ftol=1e-6)
    assert short.n_cycles == 2 and not short.converged
    assert any("still falling" in w for w in short.warnings), short.warnings
    full = least_squares(ev, free_set(lay, start2, free), y, sigma, max_cycles=60, schedule="gsas2")
    best = least_squares(ev, free_set(lay, start2, free), y, sigma, max_cycles=60)
    assert full.converged and best.converged
    for n in ("Al.a", "Cu.a", "Al.scale", "Cu.scale"):
        assert abs(full.value(n) - best.value(n)) < 0.1 * best.esd(n)
    with pytest.raises(ValueError, match="schedule must be"):
        least_squares(ev, free_set(lay, start, lin), y, sigma, schedule="fullprof")


# --- Jacobian path ----------------------------------------------------------------------
@pytest.mark.slow
def test_chain_rule_jacobian_matches_finite_differences_and_single_columns():
    """The Evaluator's Jacobian (linear columns from unit-scale patterns; nonlinear ones by the
    chain rule through the reflections, with the per-reflection directions of several columns
    shared by one profile JVP) against central finite differences of the pattern, and each
    column computed alone (no sharing) against the same column computed with all the others.
    A monoclinic phase (C2/m: four cell columns, coordinates) and a cubic one with Lorentzian
    microstrain, so positions, widths, intensities and the Lorentzian kernel all move.
    (~30 s on 2 cores: compiles two Jacobian buckets.)"""
    o3p = preset_phase("lrm-pristine:O3p")
    al = preset_phase("Al")
    inst = gppd_like()
    tof = np.geomspace(9000, 50000, 1200)
    broad = {"mustrain": {"Al": 1500.0}}
    model = build_model([o3p, al], tof, inst, n_background=3, lorentz=True, **broad)
    lay = make_layout(model)
    full = lay.flatten(initial_params(model, scales={"O3p": 1.0, "Al": 0.3}, background=[5.0, 1.0, 0.5], **broad))
    ev = Evaluator(model, lay)
    # eight nonlinear columns (one compiled bucket): cells move positions, widths and intensities,
    # microstrain the Lorentzian width, Biso and x only the intensities
    fs = free_set(lay, full, ["background", "hscale", "O3p.scale", "O3p.cell", "Al.cell", "Al.mustrain",
                              "O3p.biso[O1]", "O3p.x[O1]"])
    assert sum(np.any(np.abs(fs.A[~ev._linear]) > 0, axis=0)) == 8
    _, jac = ev.calc_jac(full, fs.A)
    assert np.all(np.isfinite(jac)) and jac.shape == (len(tof), fs.n)
    for j, name in enumerate(fs.names):
        col = fs.A[:, j]
        h = 1e-6 * max(np.max(np.abs(full[col != 0])), 1.0) / np.max(np.abs(col))
        fd = (ev.calc(full + h * col)[0] - ev.calc(full - h * col)[0]) / (2 * h)
        scale = np.max(np.abs(fd))
        assert scale > 0, name
        assert np.max(np.abs(jac[:, j] - fd)) < 2e-5 * scale, name
    # each column alone (its own profile direction, no sharing), four at a time in one bucket
    for j0 in range(0, fs.n, 4):
        alone = np.column_stack([ev.calc_jac(full, fs.A[:, j:j + 1])[1][:, 0] for j in range(j0, min(j0 + 4, fs.n))])
        part = jac[:, j0:j0 + alone.shape[1]]
        assert np.max(np.abs(alone - part)) < 1e-9 * np.max(np.abs(part)), fs.names[j0:j0 + 4]
    # a kernel shared with a superset of phases and structure leaves (Evaluator.share_kernels, as
    # a sequential refinement does) gives the same columns as the subset's own kernel
    shared = Evaluator(model, lay)
    shared.share_kernels(fs.A)
    sub = free_set(lay, full, ["Al.cell", "O3p.x[O1]"]).A
    np.testing.assert_allclose(shared.calc_jac(full, sub)[1], ev.calc_jac(full, sub)[1], rtol=0,
                               atol=1e-10 * np.max(np.abs(jac)))
