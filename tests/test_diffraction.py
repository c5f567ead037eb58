"""Reflections, structure factors and the TOF profile against independent calculations."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest
from scipy import integrate
from scipy.special import exp1

from layerscope.crystal import preset, preset_phase, read_cif
from layerscope.diffraction import reflections, structure_factors
from layerscope.diffraction import tof_profile as tp
from layerscope.diffraction.expint import exp_e1

ALL_PRESET_PHASES = [(m, p.name) for m in ("lrm-pristine", "lrm-uncharged-cell", "lrm-100-cycles", "lrm-pouch")
                     for p in preset(m).phases]


def _gemmi_f2(phase, hkl):
    """|F|² from gemmi's own neutron structure-factor calculator (Neutron92 = Sears 1992)."""
    st = gemmi.SmallStructure()
    st.cell = gemmi.UnitCell(*phase.cell)
    st.spacegroup_hm = phase.space_group.xhm()
    for s in phase.sites:
        for sym, occ in s.species:
            site = gemmi.SmallStructure.Site()
            site.label = s.label + sym
            site.element = gemmi.Element(sym)
            site.fract = gemmi.Fractional(*s.xyz)
            site.occ = occ
            site.u_iso = s.biso / (8 * np.pi**2)
            if s.uani is not None:  # NAC.cif's Uani (gemmi applies R U Rᵀ per image)
                site.aniso = gemmi.SMat33d(*s.uani)
            st.add_site(site)
    st.determine_and_set_spacegroup("1")
    st.setup_cell_images()
    st.change_occupancies_to_crystallographic()
    calc = gemmi.StructureFactorCalculatorN(st.cell)
    return np.array([abs(calc.calculate_sf_from_small_structure(st, [int(v) for v in h])) ** 2 for h in hkl])


@pytest.mark.parametrize("model,name", ALL_PRESET_PHASES)
def test_structure_factors_match_gemmi(model, name):
    ph = preset(model).phase(name)
    r = reflections(ph, d_min=0.5)
    ours = np.abs(structure_factors(ph, r.hkl)) ** 2
    ref = _gemmi_f2(ph, r.hkl)
    big = ref > 1e-8 * ref.max()
    np.testing.assert_allclose(ours[big], ref[big], rtol=1e-4)
    np.testing.assert_allclose(ours[~big], ref[~big], atol=1e-6 * ref.max())


def test_structure_factors_real_nac(nac_dir):
    nac = read_cif(nac_dir / "NAC.cif", name="NAC")
    r = reflections(nac, d_min=0.6)
    np.testing.assert_allclose(np.abs(structure_factors(nac, r.hkl)) ** 2, _gemmi_f2(nac, r.hkl), rtol=1e-4)


def test_systematic_absences():
    s = preset_phase("lrm-pristine:S")  # Fd-3m: F centring and d-glide
    present = {tuple(h) for h in reflections(s, d_min=0.8).hkl}
    assert (1, 1, 1) in present and (2, 2, 0) in present and (4, 0, 0) in present
    assert (2, 0, 0) not in present and (1, 1, 0) not in present and (4, 2, 0) not in present
    o3p = preset_phase("lrm-pristine:O3p")  # C2/m: h + k even
    r = reflections(o3p, d_min=0.8)
    assert np.all((r.hkl[:, 0] + r.hkl[:, 1]) % 2 == 0)
    o3 = preset_phase("lrm-100-cycles:O3")  # R-3m obverse: -h + k + l = 3n
    r = reflections(o3, d_min=0.8)
    assert np.all((-r.hkl[:, 0] + r.hkl[:, 1] + r.hkl[:, 2]) % 3 == 0)


def test_multiplicities_sum_to_all_lattice_points():
    # every allowed hkl in the sphere belongs to exactly one orbit
    al = preset_phase("Al")
    r = reflections(al, d_min=0.7)
    n_fcc = 0
    m = 9
    for h in range(-m, m + 1):
        for k in range(-m, m + 1):
            for l in range(-m, m + 1):
                if (h, k, l) != (0, 0, 0) and len({h % 2, k % 2, l % 2}) == 1:
                    if 4.0495 / np.sqrt(h * h + k * k + l * l) >= 0.7:
                        n_fcc += 1
    assert r.multiplicity.sum() == n_fcc
    assert dict(zip(map(tuple, r.hkl[:4].tolist()), r.multiplicity[:4])) == {
        (1, 1, 1): 8, (2, 0, 0): 6, (2, 2, 0): 12, (3, 1, 1): 24}


def _gemmi_orbit_size(ops, hkl):
    images = set()
    for op in ops.sym_ops:
        h = tuple(op.apply_to_hkl(list(hkl)))
        images.add(h)
        images.add(tuple(-v for v in h))
    return len(images)


@pytest.mark.parametrize("model,name", ALL_PRESET_PHASES[:3] + ALL_PRESET_PHASES[-5:])
def test_d_multiplicity_and_absences_match_gemmi(model, name):
    """d from gemmi's UnitCell, absences from gemmi's GroupOps, orbit sizes from gemmi's operations."""
    ph = preset(model).phase(name)
    d_min = 0.9
    ours = reflections(ph, d_min=d_min)
    cell, ops = ph.gemmi_cell, ph.space_group.operations()
    np.testing.assert_allclose(ours.d_angstrom, [cell.calculate_d(list(map(int, h))) for h in ours.hkl], rtol=1e-10)
    assert list(ours.multiplicity) == [_gemmi_orbit_size(ops, h) for h in ours.hkl]
    # every allowed hkl of the sphere is in exactly one of our orbits
    hmax = [int(x / d_min) + 1 for x in ph.cell[:3]]
    n_allowed = 0
    for h in range(-hmax[0], hmax[0] + 1):
        for k in range(-hmax[1], hmax[1] + 1):
            for l in range(-hmax[2], hmax[2] + 1):
                if (h, k, l) != (0, 0, 0) and cell.calculate_d([h, k, l]) >= d_min \
                        and not ops.is_systematically_absent([h, k, l]):
                    n_allowed += 1
    assert ours.multiplicity.sum() == n_allowed


@pytest.mark.peer
@pytest.mark.parametrize("model,name", [("lrm-pristine", "O3p"), ("lrm-pristine", "S"),
                                        ("lrm-100-cycles", "O3"), ("lrm-pouch", "graphite"),
                                        ("lrm-pouch", "LiC12"), ("lrm-pouch", "Cu")])
def test_d_spacings_match_pymatgen(tmp_path, model, name):
    """Every neutron peak pymatgen finds is at one of our d-spacings (1e-6 relative).

    (pymatgen's peak multiplicities count systematically absent members of a family,
    e.g. 12 for (101) of R-3m where the allowed orbit has 6, so only d is compared.)
    """
    pytest.importorskip("pymatgen")
    import warnings

    from pymatgen.analysis.diffraction.neutron import NDCalculator
    from pymatgen.core import Structure

    from layerscope.crystal import write_cif

    ph = preset(model).phase(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = Structure.from_file(write_cif(ph, tmp_path / "p.cif"))
        pat = NDCalculator(wavelength=1.0).get_pattern(st, two_theta_range=(0, 70))
    ours = reflections(ph, d_min=1.0 / (2 * np.sin(np.radians(35))) * 1.0001)
    for d in pat.d_hkls:
        j = np.argmin(np.abs(ours.d_angstrom - d))
        assert ours.d_angstrom[j] == pytest.approx(d, rel=1e-6)


# --- the TOF profile ------------------------------------------------------------------------------

def test_exp_e1_against_scipy_over_profile_range():
    # arguments of the profile: Re in ±(α,β)·window ≲ ±500, Im = (α,β)·F/2 in (1e-3, 200)
    re = np.concatenate([-np.logspace(-3, 2.7, 60), np.logspace(-3, 2.7, 60)])
    im = np.logspace(-3, 2.3, 40)
    z = (re[:, None] + 1j * im[None, :]).ravel()
    with np.errstate(all="ignore"):
        ref = np.exp(z) * exp1(z)
    ok = np.isfinite(ref)  # scipy overflows e^z for Re z ≳ 700 only
    got = np.asarray(exp_e1(z))
    np.testing.assert_allclose(got[ok], ref[ok], rtol=5e-11)
    assert ok.mean() > 0.99


def test_exp_e1_whole_plane_against_mpmath():
    mpmath = pytest.importorskip("mpmath")
    r = np.logspace(-4, 4, 60)
    th = np.linspace(-np.pi * 0.999, np.pi * 0.999, 61)
    z = (r[:, None] * np.exp(1j * th[None, :])).ravel()
    ref = np.array([complex(mpmath.exp(v) * mpmath.e1(v)) for v in z])
    np.testing.assert_allclose(np.asarray(exp_e1(z)), ref, rtol=5e-11)


def _tail_corrected_area(delta, prof, eta, fwhm):
    area = integrate.trapezoid(prof, delta)
    # beyond ±X the profile is the Lorentzian tail η·(F/2π)/Δ² on both sides: add η·F/(π X)
    return area + eta * fwhm / (np.pi * delta[-1])


def test_profile_unit_area_over_instrument_range():
    # POWGEN terms over d = 0.45-5 Å, with extra Lorentzian broadening up to 60 µs
    import jax

    core = np.arange(-3000.0, 3000.0 + 0.25, 0.25)
    tail = np.geomspace(3000.5, 2e5, 4000)
    x = np.concatenate([-tail[::-1], core, tail])
    f = jax.jit(lambda a, b, s2, g: tp.tof_peak(x, a, b, s2, g))
    for d in (0.45, 0.8, 1.5, 3.0, 5.0):
        for extra in (0.0, 5.0, 60.0):
            a = tp.alpha_tof(d, 0.114)
            b = tp.beta_tof(d, 0.0192, 0.0696)
            s2 = tp.sigma2_tof(d, 359.6, -316.07, 84.53, 42.62)
            g = max(tp.gamma_tof(d, 0.0, 0.0) + extra, 1e-8)
            fwhm, eta = (float(v) for v in tp.tch_fwhm_eta(s2, g))
            # a 0.25 µs core grid resolves every peak here (FWHM ≥ 12 µs): trapezoid error ≪ 1e-4
            area = _tail_corrected_area(x, np.asarray(f(a, b, s2, g)), eta, fwhm)
            assert area == pytest.approx(1.0, abs=1e-4), (d, extra)


def _brute_force_profile(delta, a, b, s2, g):
    """Independent evaluation: numerical convolution of b2b exponentials with the TCH pseudo-Voigt."""
    fwhm, eta = (float(v) for v in tp.tch_fwhm_eta(s2, g))
    sig2 = fwhm**2 / (8 * np.log(2))
    n = a * b / (a + b)

    def pv(x):
        gauss = np.exp(-x**2 / (2 * sig2)) / np.sqrt(2 * np.pi * sig2)
        lor = (fwhm / (2 * np.pi)) / (x**2 + fwhm**2 / 4)
        return (1 - eta) * gauss + eta * lor

    # integrate over the exponential with breakpoints where the pseudo-Voigt peaks
    w = 40 * fwhm
    rise = integrate.quad(lambda s: n * np.exp(-a * s) * pv(delta + s), 0, max(-delta, 0) + w,
                          points=[max(-delta, 0)] if delta < 0 else None, limit=500, epsabs=0, epsrel=1e-10)[0]
    rise += integrate.quad(lambda s: n * np.exp(-a * s) * pv(delta + s), max(-delta, 0) + w, np.inf, limit=200)[0]
    decay = integrate.quad(lambda s: n * np.exp(-b * s) * pv(delta - s), 0, max(delta, 0) + w,
                           points=[max(delta, 0)] if delta > 0 else None, limit=500, epsabs=0, epsrel=1e-10)[0]
    decay += integrate.quad(lambda s: n * np.exp(-b * s) * pv(delta - s), max(delta, 0) + w, np.inf, limit=200)[0]
    return rise + decay


@pytest.mark.parametrize("a,b,s2,g", [(0.076, 0.033, 128.0, 0.0), (0.076, 0.033, 128.0, 12.0),
                                      (0.3, 0.2, 20.0, 3.0), (0.02, 0.02, 900.0, 80.0)])
def test_profile_against_numerical_convolution(a, b, s2, g):
    fwhm = float(tp.tch_fwhm_eta(s2, max(g, 1e-8))[0])
    deltas = np.array([-3, -1, -0.3, 0, 0.2, 0.7, 1.5, 4, 10]) * fwhm
    ours = np.asarray(tp.tof_peak(deltas, a, b, s2, g))
    ref = np.array([_brute_force_profile(x, a, b, s2, max(g, 1e-8)) for x in deltas])
    np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=1e-9 * ref.max())
    # the pattern kernel's region-wise evaluation (one row, sub-windows from the same terms)
    row = deltas[None, :]
    terms = [np.array([[v]]) for v in (a, b, s2, g)]
    fast = np.asarray(tp.tof_peak_rows(row, *terms, widths=tp.profile_subwindows(row, *terms)))[0]
    np.testing.assert_allclose(fast, ref, rtol=2e-5, atol=1e-9 * ref.max())


def test_profile_terms_hand_computed():
    # POWGEN_2665.instprm at d = 1.5 Å, GSAS-II formulas computed by hand
    d = 1.5
    assert float(tp.tof_from_d(d, -51.9252236832, 22598.5929189, 0.608482413519, 43.7163363246)) == pytest.approx(
        -51.9252236832 + 33897.88937835 + 1.36908543042 + 29.1442242164, rel=1e-12)
    assert float(tp.alpha_tof(d, 0.113971083793)) == pytest.approx(0.0759807225287, rel=1e-10)
    assert float(tp.beta_tof(d, 0.0192205621316, 0.0695794246829)) == pytest.approx(
        0.0192205621316 + 0.0695794246829 / 5.0625, rel=1e-12)
    assert float(tp.sigma2_tof(d, 359.628514515, -316.074927848, 84.5341148902, 42.6229689423)) == pytest.approx(
        359.628514515 - 316.074927848 * 2.25 + 84.5341148902 * 5.0625 + 42.6229689423 * 1.5, rel=1e-12)
    # GSAS-II microstrain: Γ = 1e-6·difC·d·μ, all Lorentzian at mx = 1
    ds2, dg = tp.sample_broadening(d, 22598.5929189, np.inf, 1000.0, 1.0, 1.0)
    assert float(dg) == pytest.approx(1e-6 * 22598.5929189 * 1.5 * 1000.0, rel=1e-12)
    assert float(ds2) == 0.0


def test_profile_width_limits():
    # sharp exponentials: the profile tends to the pseudo-Voigt, whose FWHM is the TCH value
    s2, g = 100.0, 0.0
    x = np.linspace(-30, 30, 60_001)
    prof = np.asarray(tp.tof_peak(x, 1e4, 1e4, s2, g))
    half = prof >= prof.max() / 2
    assert x[half][-1] - x[half][0] == pytest.approx(np.sqrt(8 * np.log(2) * s2), rel=1e-3)
    prof = np.asarray(tp.tof_peak(x, 1e4, 1e4, 1e-6, 10.0))
    half = prof >= prof.max() / 2
    assert x[half][-1] - x[half][0] == pytest.approx(10.0, rel=2e-3)
    # TCH mixing: pure Gaussian η = 0, pure Lorentzian η = 1
    assert float(tp.tch_fwhm_eta(100.0, 1e-12)[1]) == pytest.approx(0.0, abs=1e-12)
    assert float(tp.tch_fwhm_eta(1e-12, 10.0)[1]) == pytest.approx(1.0, abs=1e-4)


def test_im_exp_e1_regions_against_mpmath():
    """The pattern kernel's region-wise Im[e^z E1(z)] (series / continued fraction / asymptotic,
    real and complex-Horner kernels) over the upper half-plane, the branch cut included:
    absolute error < 1.5e-9 (the profile multiplies it by αβ/(π(α+β)) ≲ the peak maximum)."""
    mpmath = pytest.importorskip("mpmath")
    from layerscope.diffraction.expint import im_exp_e1

    r = np.geomspace(1e-3, 1e3, 70)
    th = np.concatenate([np.linspace(1e-4, np.pi * (1 - 1e-4), 50), np.pi - np.geomspace(1e-4, 0.3, 12)])
    z = (r[:, None] * np.exp(1j * th[None, :])).ravel()
    ref = np.array([complex(mpmath.exp(v) * mpmath.e1(v)).imag for v in z])
    got = np.asarray(im_exp_e1(z.real, z.imag))
    assert np.abs(got - ref).max() < 1.5e-9
    # and against the complex exp_e1 (5e-11 relative) on the profile's own argument range
    re = np.concatenate([-np.logspace(-3, 2.7, 60), np.logspace(-3, 2.7, 60)])
    im = np.logspace(-3, 2.3, 40)
    zz = (re[:, None] + 1j * im[None, :]).ravel()
    np.testing.assert_allclose(np.asarray(im_exp_e1(zz.real, zz.imag)), np.asarray(exp_e1(zz)).imag, rtol=0, atol=1.5e-9)


def test_erfcx_against_scipy():
    from scipy.special import erfcx

    t = np.concatenate([np.linspace(0, 12, 20001), np.geomspace(12, 1e8, 300)])
    np.testing.assert_allclose(np.asarray(tp._erfcx_pos(t)), erfcx(t), rtol=1e-14)


def _rows(a, b, s2, g, k=700, step=None):
    """Rows of increasing Δ (one peak per row) around each of the given peak terms."""
    a, b, s2, g = (np.asarray(v, dtype=float)[:, None] for v in (a, b, s2, g))
    fwhm = np.asarray(tp.tch_fwhm_eta(s2, np.maximum(g, 1e-8), np)[0])
    step = fwhm / 12 if step is None else step
    delta = (np.arange(k)[None, :] - 0.45 * k) * step
    return delta, a, b, s2, g


def test_tof_peak_rows_matches_exact_profile():
    """tof_peak_rows (region-wise kernel, sub-windows, dense fallback) equals tof_peak (complex
    exp_e1, every branch everywhere) within 1e-8 of each peak's maximum, over POWGEN and GPPD-like
    terms with Lorentzian broadening from none to dominant."""
    import jax

    d = np.repeat([0.5, 0.8, 1.5, 3.0, 5.0], 4)
    extra = np.tile([0.0, 3.0, 25.0, 150.0], 5)
    a = tp.alpha_tof(d, 0.114)
    b = tp.beta_tof(d, 0.0192, 0.0696)
    s2 = tp.sigma2_tof(d, 359.6, -316.07, 84.53, 42.62)
    g = tp.gamma_tof(d, 0.0, 0.0) + extra + 1e-6 * 22598.6 * d * 800
    delta, a, b, s2, g = _rows(a, b, s2, g)
    exact = np.asarray(tp.tof_peak(delta, a, b, s2, g))
    widths = tp.profile_subwindows(delta, a, b, s2, g)
    assert widths[0] < delta.shape[1] and max(widths[1:]) < delta.shape[1]  # the sub-windows save work
    f = jax.jit(lambda w, *x: tp.tof_peak_rows(*x, widths=w), static_argnums=0)
    fast = np.asarray(f(widths, delta, a, b, s2, g))
    dense = np.asarray(jax.jit(lambda *x: tp.tof_peak_rows(*x))(delta, a, b, s2, g))
    too_small = np.asarray(f((8, 8, 8, 8, 8), delta, a, b, s2, g))  # regions outgrow them: dense fallback
    peak = exact.max(axis=1, keepdims=True)
    assert np.all(np.abs(fast - exact) <= 1e-8 * peak)
    np.testing.assert_allclose(fast, dense, rtol=0, atol=1e-15 * peak.max())
    np.testing.assert_allclose(too_small, dense, rtol=0, atol=1e-15 * peak.max())
    # Gaussian-only rows
    fast_g = np.asarray(jax.jit(lambda *x: tp.tof_peak_rows(*x, lorentz=False, widths=widths[:1]))(delta, a, b, s2, g))
    np.testing.assert_allclose(fast_g, np.asarray(tp.b2b_gauss(delta, a, b, np.asarray(
        tp.tch_fwhm_eta(s2, g, np)[0]) ** 2 / (8 * np.log(2)))), rtol=0, atol=1e-15 * peak.max())


def test_tof_peak_rows_derivatives_match_autodiff():
    """The hand-written directional derivatives of the row profiles (tof_peak_rows_derivatives:
    analytic partials of the Gaussian and Lorentzian parts, TCH chain) equal forward-mode autodiff
    of tof_peak_rows along random per-row directions: sub-windows, dense fallback, no Lorentzian,
    and GSAS-II's Lorentzian convention."""
    import jax
    import jax.numpy as jnp

    d = np.repeat([0.5, 1.5, 3.0, 5.0], 4)
    extra = np.tile([0.0, 3.0, 25.0, 150.0], 4)
    a = tp.alpha_tof(d, 0.114)
    b = tp.beta_tof(d, 0.0192, 0.0696)
    s2 = tp.sigma2_tof(d, 359.6, -316.07, 84.53, 42.62)
    g = tp.gamma_tof(d, 0.0, 0.0) + extra + 1e-6 * 22598.6 * d * 800
    delta, a, b, s2, g = (jnp.asarray(x) for x in _rows(a, b, s2, g))
    widths = tp.profile_subwindows(delta, a, b, s2, g)
    rng = np.random.default_rng(3)
    scales = np.array([1.0, 30.0, 1e-3, 1e-3, 20.0, 5.0])[None, :, None, None]
    coef = jnp.asarray(rng.normal(size=(3, 6, delta.shape[0], 1)) * scales)
    cases = [dict(widths=widths, fallback=False), dict(widths=(8, 8, 8, 8, 8)), dict(widths=None),
             dict(widths=widths[:1], lorentz=False), dict(widths=widths, lorentz_convention="gsas2")]
    for kw in cases:
        def ref(c, kw=kw):
            p, t = jax.jvp(lambda *x: tp.tof_peak_rows(*x, **kw), (delta, a, b, s2, g),
                           (jnp.broadcast_to(c[1], delta.shape), c[2], c[3], c[4], c[5]))
            return c[0] * p + t
        want = np.asarray(jax.jit(jax.vmap(ref))(coef))
        got = np.asarray(jax.jit(lambda c, kw=kw: tp.tof_peak_rows_derivatives(delta, a, b, s2, g, c, **kw))(coef))
        scale = np.abs(want).max(axis=(1, 2), keepdims=True)
        assert np.all(np.abs(got - want) <= 1e-10 * scale), kw
