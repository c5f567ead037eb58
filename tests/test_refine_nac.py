"""The GSAS-II staged protocol on the POWGEN NAC + CaF2 pattern (../shared/data/powgen-nac).

GSAS-II's regression test (TOF 11 000–100 000 µs, 6-term Chebyshev background; GSAS-II refines
the histogram scale by default; its TOF Lorentzian convention is selected with
lorentz_convention="gsas2") reaches Rwp 27.34 % (background) → 23.27 % (+ NAC phase
fraction) → 20.97 % (+ cells) → 17.20 % (+ NAC microstrain), with 2 cycles per stage, and NAC
a = 10.247985 Å, CaF2 a = 5.461673 Å after the last stage (10.250171 / 5.461553 Å after "+ cells").
Both phases carry GSAS-II's default sample broadening (size 1 µm, microstrain 1000, Lorentzian) in
every stage, and NAC its anisotropic U from NAC.cif (GSAS-II reads the Uani rows).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from layerscope.crystal import read_cif
from layerscope.diffraction.background import chebyshev_basis
from layerscope.diffraction.instrument import read_instprm
from layerscope.diffraction.readers import read_powder
from layerscope.refine.rietveld import gsas2_limits, refine_pattern
from layerscope.refine.strategy import gsas_nac_strategy


def _nac(nac_dir, n_stages):
    data = read_powder(nac_dir / "PG3_22048.gsa")
    m = (data.x >= 11000) & (data.x <= 100000)
    inst = read_instprm(nac_dir / "POWGEN_2665.instprm")
    phases = [read_cif(nac_dir / "NAC.cif", name="NAC"), read_cif(nac_dir / "CaF2.cif", name="CaF2")]
    s = gsas_nac_strategy()
    s = replace(s, stages=s.stages[:n_stages])
    res = refine_pattern(data.x[m], data.y[m], data.sigma[m], phases, inst, s, lorentz=True)
    return res, data.x[m], data.y[m], data.sigma[m]


def _nac_gsas2(nac_dir, last_stage_cycles=None):
    """GSAS-II's own job: its data range (through the first point past 100 000 µs), reflections
    from d = 11 000 µs / difC, ~100-FWHM peak windows, its TOF Lorentzian convention, its cubic
    cell derivative, 2 cycles per stage with its HessianLSQ cycle rules (``last_stage_cycles``:
    the microstrain stage may run longer, still under GSAS-II's rules)."""
    data = read_powder(nac_dir / "PG3_22048.gsa")
    m = gsas2_limits(data.x, 11000, 100000)
    inst = read_instprm(nac_dir / "POWGEN_2665.instprm")
    phases = [read_cif(nac_dir / "NAC.cif", name="NAC"), read_cif(nac_dir / "CaF2.cif", name="CaF2")]
    strat = gsas_nac_strategy(protocol="gsas2")
    if last_stage_cycles:
        strat = replace(strat, stages=strat.stages[:-1] + (replace(strat.stages[-1], max_cycles=last_stage_cycles),))
    return refine_pattern(data.x[m], data.y[m], data.sigma[m], phases, inst, strat,
                          lorentz=True, d_min=11000 / inst.difc, window_margin=4.0)


@pytest.fixture(scope="module")
def nac_gsas2(nac_dir):
    """GSAS-II's protocol, all four stages (~2 min on 2 CPU cores)."""
    return _nac_gsas2(nac_dir)


@pytest.fixture(scope="module")
def nac_linear(nac_dir):
    """The two stages that are linear in their parameters (~20 s)."""
    return _nac(nac_dir, 2)


@pytest.fixture(scope="module")
def nac_full(nac_dir):
    """All four stages, microstrain included (~2.5 min on 2 CPU cores)."""
    return _nac(nac_dir, 4)


def test_phase_fraction_stage_is_the_linear_least_squares_optimum(nac_linear):
    """Stages 1-2 are linear in the scales and background: an independent lstsq gives the same Rwp."""
    res, x, y, s = nac_linear
    assert all(fr.converged for _, fr in res.stages)
    from layerscope.diffraction.pattern import build_model, compute_pattern

    broad = {"mustrain": {"NAC": 1000.0, "CaF2": 1000.0}, "size_um": {"NAC": 1.0, "CaF2": 1.0}}
    model = build_model(list(res.phases), x, res.model.instrument, n_background=6, lorentz=True, **broad)
    pat = compute_pattern(model, **broad)
    a = np.column_stack([pat.phases["NAC"], pat.phases["CaF2"], chebyshev_basis(x, 6).T]) / s[:, None]
    coef = np.linalg.lstsq(a, y / s, rcond=None)[0]
    rwp = 100 * np.sqrt(np.sum((y / s - a @ coef) ** 2) / np.sum((y / s) ** 2))
    assert res.stages[1][1].stats.rwp == pytest.approx(rwp, abs=1e-3)
    # stage 1 (background + histogram scale, both phase fractions 1) is a restricted fit of the same kind
    assert res.stages[0][1].stats.rwp > res.stages[1][1].stats.rwp


@pytest.mark.slow
def test_microstrain_stage_reaches_gsas2(nac_full):
    """Stage 4: Rwp 16.71 % vs GSAS-II 17.20 %; NAC a 10.247832 vs 10.247985 Å (with NAC's Uani).
    The closeness of the two cells is partly a coincidence: GSAS-II's 10.247985 is its 2-cycle stop,
    its converged value (GSAS-II's Lorentzian convention) is 10.246966 Å
    (test_gsas2_job_continued_to_convergence_is_the_16_77_percent_minimum); the exact Lorentzian
    convention used here moves the converged cell up by 8.7e-4 Å."""
    res, *_ = nac_full
    fr = res.stages[3][1]
    assert fr.converged
    assert fr.stats.rwp == pytest.approx(17.20, abs=0.5)
    assert res.value("NAC.a") == pytest.approx(10.247985, abs=2e-4)
    assert res.value("NAC.a") == pytest.approx(res.value("NAC.b"), abs=1e-12)
    # CaF2 is 9.0e-4 Å from GSAS-II's value with the exact profile (4e-6 Å with GSAS-II's
    # Lorentzian convention, test_gsas2_protocol_reproduces_gsas2_background_microstrain_and_caf2)
    assert res.value("CaF2.a") == pytest.approx(5.461673, abs=1e-3)
    assert 200 < res.value("NAC.mustrain") < 600
    assert res.bragg_r["NAC"] < res.bragg_r["CaF2"]


@pytest.mark.slow
def test_gsas2_protocol_reproduces_gsas2_background_microstrain_and_caf2(nac_gsas2):
    """GSAS-II's job re-run: stage 1 (linear, converged in both codes) and the last stage agree
    with GSAS-II's Rwp within 0.5 %, and CaF2 a after the last stage within 2e-4 Å (measured:
    27.341 vs 27.34 %, 17.203 vs 17.20 %, 5.461677 vs 5.461673 Å). The exact profile gives 26.12 %
    in stage 1 and CaF2 a = 5.46257 Å: GSAS-II's Lorentzian convention is the difference."""
    res = nac_gsas2
    assert [fr.n_cycles for _, fr in res.stages] == [2, 2, 2, 2]
    assert res.stages[0][1].converged  # linear: one Gauss-Newton step, the second changes nothing
    assert res.stages[0][1].stats.rwp == pytest.approx(27.34, abs=0.5)
    assert res.stages[3][1].stats.rwp == pytest.approx(17.20, abs=0.5)
    assert res.value("CaF2.a") == pytest.approx(5.461673, abs=2e-4)
    assert any("not converged after 2 cycles" in w for w in res.stages[1][1].warnings)


@pytest.mark.slow
def test_gsas2_protocol_unconverged_stages_match_gsas2(nac_gsas2):
    """Stages 2-3 stop after 2 cycles far from convergence, so they match GSAS-II only on its own
    path: with NAC's Uani (which decides the Marquardt branch of stage 2's second cycle, a λ = 0.01
    step raising χ² by ~0.1 % against the 0.1 % allowance) and GSAS-II's cubic cell derivative (the
    h² term only, ``cell_jacobian="gsas2"``; with the exact derivative stage 3 ends at 18.12 % and
    NAC a = 10.247488 Å). Measured: 23.272 vs 23.27 %, 20.951 vs 20.97 %; after "+ cells" NAC a
    10.250158 vs 10.250171 Å, CaF2 a 5.461557 vs 5.461553 Å; after the last stage NAC a 10.247986
    vs 10.247985 Å."""
    res = nac_gsas2
    assert res.stages[1][1].stats.rwp == pytest.approx(23.27, abs=0.5)
    assert res.stages[2][1].stats.rwp == pytest.approx(20.97, abs=0.5)
    cells = res.stages[2][1]
    assert cells.value("NAC.a") == pytest.approx(10.250171, abs=2e-4)
    assert cells.value("CaF2.a") == pytest.approx(5.461553, abs=2e-4)
    assert res.value("NAC.a") == pytest.approx(10.247985, abs=2e-4)
    assert res.value("NAC.a") == pytest.approx(res.value("NAC.c"), abs=1e-12)
    # NAC's refined phase keeps the CIF's anisotropic U
    assert res.phases[0].site("Na1").uani == pytest.approx((0.0255, 0.0255, 0.0255, -0.0074, -0.0074, -0.0074))


@pytest.mark.slow
def test_gsas2_job_continued_to_convergence_is_the_16_77_percent_minimum(nac_dir):
    """GSAS-II's 10.247985 Å is the cell after 2 cycles of its microstrain stage, not a minimum: the
    same job (reproduced above to 1e-6 Å at 2 cycles) continued under GSAS-II's own cycle rules
    stops by its χ² rule at Rwp 16.765 % ("GSAS-II converged with microstrain: 16.77 %", issue 22)
    with NAC a = 10.246966 Å, CaF2 a = 5.461700 Å, NAC microstrain 419 (measured, 6 cycles). This
    is the reference the default refinement is compared with (tests/test_refine_defaults.py);
    layerscope's own engine, all four stages converged with GSAS-II's conventions, lands at
    10.246929 Å / 16.772 %. (~1 min after the module's other GSAS-II re-run, 2 CPU cores.)"""
    res = _nac_gsas2(nac_dir, last_stage_cycles=40)
    fr = res.stages[3][1]
    assert fr.n_cycles < 40 and fr.stop_rule == "chi2 change", (fr.n_cycles, fr.stop_rule)
    assert fr.stats.rwp == pytest.approx(16.77, abs=0.02)
    assert res.value("NAC.a") == pytest.approx(10.246966, abs=3e-5)
    # the 2-cycle value is a point on the way: 1.0e-3 Å (≈ 15 esd) above the converged cell
    assert res.value("NAC.a") < 10.247985 - 8e-4


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="layerscope's own protocol (converged stages, exact profile) fits "
                   "better than GSAS-II's 2-cycle stages 1-3 (26.12/20.33/17.99 % vs 27.34/23.27/20.97 %) and puts "
                   "CaF2 a at 5.46257 Å: GSAS-II's EPSVOIGT mirrors the rise term of the Lorentzian part, which "
                   "shifts the CaF2 peaks (microstrain 1000) relative to the exact convolution; see the gsas2 tests")
def test_earlier_stages_and_caf2_match_gsas2(nac_full):
    res, *_ = nac_full
    assert res.stages[0][1].stats.rwp == pytest.approx(27.34, abs=0.5)
    assert res.stages[1][1].stats.rwp == pytest.approx(23.27, abs=0.5)
    assert res.stages[2][1].stats.rwp == pytest.approx(20.97, abs=0.5)
    assert res.value("CaF2.a") == pytest.approx(5.461673, abs=2e-4)


@pytest.mark.parametrize("sg,cell,name,col,k", [
    ("I 21 3", (10.25,) * 3 + (90,) * 3, "NAC.a", (1, 1, 1, 0, 0, 0), 0),
    ("P 42/m n m", (4.59, 4.59, 2.96, 90, 90, 90), "R.a", (1, 1, 0, 0, 0, 0), 0),
    ("P 42/m n m", (4.59, 4.59, 2.96, 90, 90, 90), "R.c", (0, 0, 1, 0, 0, 0), 2),
    ("P 63/m m c", (3.2, 3.2, 5.2, 90, 90, 120), "M.a", (1, 1, 0, 0, 0, 0), 0),
])
def test_gsas2_cell_derivative_is_the_first_a_term_only(sg, cell, name, col, k):
    """GSAS-II differentiates a cubic/tetragonal/hexagonal cell by A0 (or A2) alone
    (GSASIIstrMath.cellVaryDerv: ``[[pfx+'A0', dpdA[0]]]``): along gsas2_cell_direction d⁻² of every
    reflection moves by ∂A_k/∂q · (h², k², l², hk, hl, kl)_k, i.e. h² (or l²) only."""
    from layerscope.diffraction.reflections import d_spacings
    from layerscope.refine.parameters import _gsas_a, gsas2_cell_direction

    u = gsas2_cell_direction(sg, cell, np.asarray(col, float), name)
    hkl = np.array([[1, 0, 0], [1, 1, 0], [2, 1, 1], [3, 2, 1], [1, 2, 3], [0, 0, 2], [4, 1, 3]], float)
    terms = np.column_stack([hkl[:, 0] ** 2, hkl[:, 1] ** 2, hkl[:, 2] ** 2, hkl[:, 0] * hkl[:, 1],
                             hkl[:, 0] * hkl[:, 2], hkl[:, 1] * hkl[:, 2]])
    eps = 1e-6
    c0 = np.asarray(cell, float)
    got = (d_spacings(c0 + eps * u, hkl) ** -2.0 - d_spacings(c0 - eps * u, hkl) ** -2.0) / (2 * eps)
    da_k = (np.asarray(_gsas_a(c0 + eps * np.asarray(col))) - np.asarray(_gsas_a(c0 - eps * np.asarray(col))))[k] / (2 * eps)
    np.testing.assert_allclose(got, da_k * terms[:, k], rtol=1e-6, atol=1e-12)
    # the exact direction moves d⁻² by the sum over the tied terms (a = b [= c]); an untied c is exact
    exact = (d_spacings(c0 + eps * np.asarray(col), hkl) ** -2.0
             - d_spacings(c0 - eps * np.asarray(col), hkl) ** -2.0) / (2 * eps)
    assert np.allclose(exact, got) == (k == 2)


def test_cell_jacobian_option_is_checked():
    from layerscope.refine.strategy import parse_strategy

    with pytest.raises(ValueError, match="cell_jacobian must be 'exact' or 'gsas2'"):
        parse_strategy({"refine": {"cell_jacobian": "fast"}, "stage": [{"free": ["background"]}]}, "s.toml")
    assert parse_strategy({"refine": {"cell_jacobian": "gsas2"}, "stage": [{"free": ["background"]}]}).cell_jacobian \
        == "gsas2"
    assert gsas_nac_strategy(protocol="gsas2").cell_jacobian == "gsas2"
    assert gsas_nac_strategy().cell_jacobian == "exact"
