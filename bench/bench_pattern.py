"""Time one evaluation of the pristine pouch-cell TOF pattern: layerscope (JAX) vs cryspy (NumPy).

The pattern: seven crystalline phases of the uncharged pouch cell, O3' (C2/m) and spinel
(Fd-3m) from ``preset("lrm-uncharged-cell")`` plus the Al and Cu current collectors and
graphite, LiC12, LiC6 from the anode, and a smooth background (the "eight components" of the
foundation issue), on a log-spaced TOF grid (default 6 000 points, 8 000–60 000 µs) of the
``gppd_like()`` bank. Each code evaluates the full pattern y(t) = Σ_p Σ_hkl I_hkl·P(t − t_hkl)
+ B(t) once per call; the reflection lists are generated once beforehand in both (ours in
``build_model``, cryspy's through its ``index_hkl`` cache), so each timed call computes the
structure factors, peak positions and widths, every back-to-back-exponential ⊗ pseudo-Voigt
profile (Gaussian and complex-E1 Lorentzian parts) and the sum.

The same physical model in cryspy 0.18 (``tof`` block, ``calc_chi_sq_for_tof_by_dictionary``):

=====================  ===================================  =====================================
term                   layerscope (GSAS-II names)           cryspy
=====================  ===================================  =====================================
calibration            Zero + difC·d + difA·d² (+ difB/d)   zero + dtt1·d + dtt2·d²  (difB = 0 here)
rise α(d)              alpha/d                              alpha0 + alpha1/d  (alpha0 = 0)
decay β(d)             beta-0 + beta-1/d⁴                   beta0 + beta1/d⁴
Gaussian σ²(d)         sig-0 + sig-1·d² + sig-2·d⁴          sigma0 + sigma1·d² + sigma2·d⁴
Lorentzian γ(d)        X·d + Y·d² + size/strain terms       gamma1·d + gamma2·d² + size_l·d² + strain_l·d
size / microstrain     per phase: 1e-4·difC·d²/size_µm,     per experiment (one value for all phases):
                       1e-6·difC·d·µstrain (mx = 1)          size_l = 1e-4·difC/size_µm, strain_l = 1e-6·difC·µstrain
pseudo-Voigt           TCH FWHM and η, both parts at FWHM   same (FullProf/CrysFML convention)
intensity              S·m·|F|²·d⁴/V²  (b in fm)            scale·sin θ_bank·m·|F|²·d⁴ (b in 10⁻¹² cm)
peak tails             window per phase (≥ ±25 FWHM)         none (default) or ±c·(FWHM + 1/α + 1/β)
background             Chebyshev, 6 terms                   points, linearly interpolated
=====================  ===================================  =====================================

Differences that remain, and how they are bridged here:

* cryspy's size/strain broadening belongs to the experiment, not the phase, so every phase
  gets the same size (1 µm) and microstrain (1000 × 10⁻⁶), Lorentzian (mx = 1) in both codes.
* cryspy scale = S / V² · 100 / sin θ_bank makes the intensities identical in absolute
  units (the 100 converts b² from fm² to (10⁻¹² cm)²); the fitted global scale printed below
  is therefore expected to be ≈ 1.
* cryspy has no Chebyshev background: it gets the same curve sampled at 200 points and
  interpolated linearly (sub-0.01 % difference for a 6-term polynomial).
* Each code uses its own table of neutron scattering lengths.
* Peak tails: ours keep each peak on a fixed window (Lorentzian tails beyond ±25 FWHM,
  ≲ 1 % of the Lorentzian area, are dropped); cryspy by default evaluates every peak on every
  point (n_points × n_hkl matrix). cryspy's own cutoff (the ``profile_cutoff_fwhm`` key of its
  experiment dictionary, FullProf's WDT; not reachable from its CIF input in 0.18) is the
  closest analogue of our windows and is cryspy's fastest route to the same pattern: the
  headline ratio uses it. The default (no cutoff) is timed too and printed as a second ratio.

Both run on the CPU of this machine; JAX may use every core, cryspy's NumPy/SciPy ufuncs one.

Where layerscope's time goes: the Lorentzian part needs Im[e^z E1(z)] at two complex arguments
per point. It is evaluated region by region (``expint.im_exp_e1_regions``): a 14-term asymptotic
series on the whole window, the 75-term power series and the 16-level continued fraction only
on per-row sub-windows where |z| < 23, and the Gaussian part only where it exceeds e^-41 of its
scale (``tof_profile.tof_peak_rows``); the result equals the all-branches complex evaluation to
~1e-9 of each peak's maximum (tests/test_diffraction.py, tests/test_pattern.py).

``--profile gauss`` times the same pattern without any Lorentzian term (no size/strain broadening;
cryspy's "Gauss" peak shape, layerscope's ``lorentz=False`` path): it isolates the cost of the
complex-E1 Lorentzian part of the profile, which dominates layerscope's time on the CPU.

Run: ``.venv/bin/python bench/bench_pattern.py [--repeats N] [--points N] [--profile gauss]``
(needs cryspy).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

import numpy as np

from layerscope.crystal import preset, preset_phase
from layerscope.diffraction import gppd_like
from layerscope.diffraction.background import chebyshev_basis
from layerscope.diffraction.pattern import build_model, initial_params, make_pattern_function

ANODE_AND_COLLECTORS = ("Al", "Cu", "graphite", "LiC12", "LiC6")
# volume-fraction-like scales S_p (layerscope's meaning: S ∝ volume fraction)
SCALES = {"O3p": 0.40, "S": 0.012, "Al": 0.10, "Cu": 0.06, "graphite": 0.20, "LiC12": 0.05, "LiC6": 0.05}
SIZE_UM = 1.0
MUSTRAIN = 1000.0
# background relative to the mean Bragg intensity, Chebyshev coefficients c_0..c_5
BKG_SHAPE = np.array([0.8, -0.25, 0.10, -0.04, 0.02, -0.01])
N_BKG_POINTS = 200


def pouch_cell_phases():
    return list(preset("lrm-uncharged-cell").phases) + [preset_phase(n) for n in ANODE_AND_COLLECTORS]


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


# ---------------------------------------------------------------------------------------------
# cryspy input, written from the same Phase objects and instrument


def _cryspy_crystal(phase) -> str:
    sg = phase.space_group
    a, b, c, al, be, ga = phase.cell
    lines = [f"data_{phase.name}", f"_space_group_IT_number {sg.number}"]
    if sg.ext == "2":  # origin choice 2 (e.g. spinel 'F d -3 m:2')
        lines.append("_space_group_IT_coordinate_system_code 2")
    lines += [f"_cell_length_a {a!r}", f"_cell_length_b {b!r}", f"_cell_length_c {c!r}",
              f"_cell_angle_alpha {al!r}", f"_cell_angle_beta {be!r}", f"_cell_angle_gamma {ga!r}",
              "loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x",
              "_atom_site_fract_y", "_atom_site_fract_z", "_atom_site_occupancy",
              "_atom_site_adp_type", "_atom_site_B_iso_or_equiv"]
    for site in phase.sites:
        x, y, z = (float(v) for v in site.xyz)
        for species, occ in site.species:
            lines.append(f"{site.label}_{species} {species} {x!r} {y!r} {z!r} {float(occ)!r} Biso {float(site.biso)!r}")
    return "\n".join(lines)


def cryspy_input(phases, tof, inst, scales, bkg_curve, gauss: bool = False) -> str:
    if inst.difb != 0 or inst.betaq != 0 or inst.sigq != 0 or inst.z != 0:
        raise ValueError("cryspy has no difB, beta-q, sig-q or Z term: this bench needs them at 0")
    sin_th = np.sin(np.radians(inst.two_theta / 2))
    blocks = [_cryspy_crystal(p) for p in phases]
    t = ["data_bank",
         f"_tof_parameters_zero {inst.zero!r}", f"_tof_parameters_dtt1 {inst.difc!r}",
         f"_tof_parameters_dtt2 {inst.difa!r}", f"_tof_parameters_2theta_bank {inst.two_theta!r}",
         f"_tof_profile_peak_shape {'Gauss' if gauss else 'pseudo-Voigt'}",
         "_tof_profile_alpha0 0.0", f"_tof_profile_alpha1 {inst.alpha!r}",
         f"_tof_profile_beta0 {inst.beta0!r}", f"_tof_profile_beta1 {inst.beta1!r}",
         f"_tof_profile_sigma0 {inst.sig0!r}", f"_tof_profile_sigma1 {inst.sig1!r}",
         f"_tof_profile_sigma2 {inst.sig2!r}"]
    if not gauss:
        t += ["_tof_profile_gamma0 0.0", f"_tof_profile_gamma1 {inst.x!r}", f"_tof_profile_gamma2 {inst.y!r}",
              f"_tof_profile_size_l {1e-4 * inst.difc / SIZE_UM!r}",
              f"_tof_profile_strain_l {1e-6 * inst.difc * MUSTRAIN!r}"]
    t += [f"_range_time_min {float(tof[0]) - 1e-3!r}", f"_range_time_max {float(tof[-1]) + 1e-3!r}",
         "loop_", "_phase_label", "_phase_scale"]
    for p in phases:
        # S·|F|²/V² (b in fm)  ==  scale·sin θ·|F|² (b in 10⁻¹² cm; 0.5·plus + 0.5·minus)
        t.append(f"{p.name} {float(scales[p.name] / p.volume**2 * 100.0 / sin_th)!r}")
    idx = np.unique(np.linspace(0, len(tof) - 1, N_BKG_POINTS).round().astype(int))
    t += ["loop_", "_tof_backgroundpoint_time", "_tof_backgroundpoint_intensity"]
    t += [f"{float(tof[i])!r} {float(bkg_curve[i])!r}" for i in idx]
    t += ["loop_", "_tof_meas_time", "_tof_meas_intensity", "_tof_meas_intensity_sigma"]
    t += [f"{float(v)!r} 1.0 1.0" for v in tof]
    return "\n\n".join(blocks) + "\n\n" + "\n".join(t) + "\n"


class CryspyPattern:
    """One cryspy TOF pattern evaluation with the reflection lists cached (like ours)."""

    def __init__(self, text: str, cutoff_fwhm: float = 0.0):
        import cryspy
        from cryspy.procedure_rhochi.rhochi_tof import calc_chi_sq_for_tof_by_dictionary

        self._calc = calc_chi_sq_for_tof_by_dictionary
        with contextlib.redirect_stdout(io.StringIO()):  # cryspy prints symmetry tables while parsing
            d = cryspy.str_to_globaln(text).get_dictionary()
        self.crystals = [d[k] for k in d if k.startswith("crystal_")]
        (self.tof_key,) = [k for k in d if k.startswith("tof_")]
        self.dict_tof = dict(d[self.tof_key])
        self.dict_tof["profile_cutoff_fwhm"] = float(cutoff_fwhm)
        self.hkl_cache = None
        self.phase_names = [str(n).lower() for n in self.dict_tof["phase_name"]]

    def __call__(self, cache_hkl: bool = True):
        store = {}
        if cache_hkl and self.hkl_cache is not None:
            for name, (hkl, mult) in self.hkl_cache.items():
                store[f"dict_in_out_{name}"] = {"index_hkl": hkl, "multiplicity_hkl": mult}
        self._calc(self.dict_tof, self.crystals, dict_in_out=store, flag_use_precalculated_data=cache_hkl)
        if self.hkl_cache is None:
            self.hkl_cache = {n: (store[f"dict_in_out_{n}"]["index_hkl"], store[f"dict_in_out_{n}"]["multiplicity_hkl"])
                              for n in self.phase_names}
        parts = np.array([store[f"dict_in_out_{n}"]["signal_plus"] + store[f"dict_in_out_{n}"]["signal_minus"]
                          for n in self.phase_names])
        return parts.sum(axis=0) + store["signal_background"], parts, store["signal_background"]

    def n_reflections(self):
        return {n: h.shape[1] for n, (h, _) in self.hkl_cache.items()}


# ---------------------------------------------------------------------------------------------


def similarity(ref, other):
    """Pearson r, global scale k (least squares of ``other`` onto ``ref``) and Rwp after it."""
    ref, other = np.asarray(ref), np.asarray(other)
    k = float(ref @ other / (other @ other))
    w = 1.0 / np.maximum(ref, 1e-12 * ref.max())  # Poisson-like weights of the reference
    rwp = float(np.sqrt(np.sum(w * (ref - k * other) ** 2) / np.sum(w * ref**2)))
    r = float(np.corrcoef(ref, other)[0, 1])
    return r, k, rwp


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (default 5)")
    ap.add_argument("--points", type=int, default=6000, help="TOF points (default 6000)")
    ap.add_argument("--tof-range", type=float, nargs=2, default=(8000.0, 60000.0), metavar=("T0", "T1"),
                    help="TOF range in µs, log-spaced grid (default 8000 60000)")
    ap.add_argument("--cryspy-cutoff", type=float, default=10.0,
                    help="cryspy peak cutoff c in ±c·(FWHM + 1/α + 1/β) for the headline timing (default 10)")
    ap.add_argument("--profile", choices=("pseudo-voigt", "gauss"), default="pseudo-voigt",
                    help="peak shape: b2b-exp ⊗ pseudo-Voigt with Lorentzian size/strain (default), or b2b-exp ⊗"
                         " Gaussian with no Lorentzian term (cryspy 'Gauss'; layerscope lorentz=False)")
    ap.add_argument("--full-repeats", type=int, default=None,
                    help="repeats of cryspy without cutoff (default: --repeats, 3 if one call takes > 5 s;"
                         " 0 skips it)")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.points < 10:
        ap.error("--repeats must be ≥ 1 and --points ≥ 10")

    import cryspy

    t_start = time.perf_counter()
    phases = pouch_cell_phases()
    names = [p.name for p in phases]
    inst = gppd_like()
    gauss = args.profile == "gauss"
    size_um = {n: (np.inf if gauss else SIZE_UM) for n in names}
    mustrain = {n: (0.0 if gauss else MUSTRAIN) for n in names}
    tof = np.geomspace(args.tof_range[0], args.tof_range[1], args.points)
    print(f"pattern: {len(phases)} phases ({', '.join(names)}) + Chebyshev background, "
          f"{args.points} TOF points {tof[0]:.0f}-{tof[-1]:.0f} us (log-spaced), instrument "
          f"'{inst.source}' (difC {inst.difc:.1f} us/A, 2theta {inst.two_theta:g} deg), "
          + ("b2b-exp x Gaussian, no Lorentzian term" if gauss else
             f"b2b-exp x pseudo-Voigt, size {SIZE_UM:g} um + microstrain {MUSTRAIN:g}e-6 (Lorentzian) on every phase"))

    # ---- layerscope -------------------------------------------------------------------------
    t0 = time.perf_counter()
    model = build_model(phases, tof, inst, n_background=len(BKG_SHAPE),
                        size_um=size_um, mustrain=mustrain)
    t_build = time.perf_counter() - t0
    f = make_pattern_function(model)
    p0 = initial_params(model, scales=SCALES, size_um=size_um, mustrain=mustrain)
    t0 = time.perf_counter()
    bragg = np.asarray(f(p0)[0])  # first call: trace + XLA compile + one evaluation
    t_compile = time.perf_counter() - t0
    bkg_coef = BKG_SHAPE * float(bragg.mean())
    params = initial_params(model, scales=SCALES, background=bkg_coef, size_um=size_um,
                            mustrain=mustrain)
    bkg_curve = bkg_coef @ chebyshev_basis(tof, len(bkg_coef), model.t_range)

    def ours():
        out = f(params)
        out[0].block_until_ready()
        return out

    ours()
    total, parts, bkg = (np.asarray(a) for a in ours())
    n_ours = {s.phase.name: len(s.hkl) for s in model.phases}
    print(f"layerscope build_model (reflection lists, windows): {t_build:.3f} s; "
          f"reflections {sum(n_ours.values())} ({', '.join(f'{k} {v}' for k, v in n_ours.items())}); "
          f"window points/peak {min(s.window for s in model.phases)}-{max(s.window for s in model.phases)}; "
          f"Lorentzian term {'on' if model.lorentz else 'off'}; profile sub-windows "
          f"{model.profile_widths} (Gaussian part; Lorentzian series/continued-fraction regions)")
    print(f"layerscope first call (JIT trace + compile + 1 eval): {t_compile:.2f} s")

    # ---- cryspy -----------------------------------------------------------------------------
    text = cryspy_input(phases, tof, inst, SCALES, bkg_curve, gauss=gauss)
    t0 = time.perf_counter()
    cp_cut = CryspyPattern(text, cutoff_fwhm=args.cryspy_cutoff)
    t_parse = time.perf_counter() - t0
    t0 = time.perf_counter()
    cp_cut(cache_hkl=False)  # fills the reflection-list cache
    t_first = time.perf_counter() - t0
    cp_cut()
    # interleave the two codes' repeats so that both see the same (shared-machine) load
    times_ours, times_cut = [], []
    for _ in range(args.repeats):
        times_ours.append(median_time(ours, 1)[0])
        times_cut.append(median_time(cp_cut, 1)[0])
    t_ours, t_cut = statistics.median(times_ours), statistics.median(times_cut)
    c_total, c_parts, c_bkg = cp_cut()
    n_cry = cp_cut.n_reflections()
    print(f"cryspy {cryspy.__version__} parse + dictionary: {t_parse:.2f} s; first call incl. reflection "
          f"lists: {t_first:.2f} s; reflections {sum(n_cry.values())} "
          f"({', '.join(f'{k} {v}' for k, v in n_cry.items())})")
    print(f"layerscope (JAX, CPU, jitted) one evaluation: median {1e3 * t_ours:.1f} ms over {args.repeats} repeats"
          f" (min {1e3 * min(times_ours):.1f} ms)")
    print(f"cryspy (NumPy, CPU), cutoff +-{args.cryspy_cutoff:g}*(FWHM+1/alpha+1/beta), one evaluation: "
          f"median {1e3 * t_cut:.1f} ms over {args.repeats} repeats"
          f" (min {1e3 * min(times_cut):.1f} ms; repeats interleaved with layerscope's)")

    full_total = None
    if args.full_repeats != 0:
        cp_full = CryspyPattern(text, cutoff_fwhm=0.0)
        cp_full.hkl_cache = cp_cut.hkl_cache
        t0 = time.perf_counter()
        full_total = cp_full()[0]
        t_one = time.perf_counter() - t0
        n_full = args.full_repeats or (min(args.repeats, 3) if t_one > 5 else args.repeats)
        extra = max(n_full - 1, 0)
        _, times = median_time(cp_full, extra) if extra else (None, [])
        t_full = statistics.median([t_one] + times)
        note = (" (--full-repeats)" if args.full_repeats else " (fewer repeats: > 5 s per call)") \
            if n_full < args.repeats else ""
        print(f"cryspy (NumPy, CPU), default (no cutoff: every peak on every point), one evaluation: "
              f"median {1e3 * t_full:.1f} ms over {n_full} repeats{note}")

    # ---- same computation? ------------------------------------------------------------------
    r, k, rwp = similarity(total, c_total)
    print(f"similarity, total pattern (layerscope vs cryspy cutoff): Pearson r = {r:.6f}, fitted global "
          f"scale {k:.5f} (1 = identical absolute intensities), Rwp after scale {100 * rwp:.3f} %")
    per = []
    for name, a, b in zip(names, parts, c_parts):
        rp, kp, rwpp = similarity(a + 1e-9 * a.max(), b + 1e-9 * a.max())
        per.append(f"{name} r={rp:.5f} k={kp:.4f}")
    print("similarity per phase (Bragg part): " + "; ".join(per))
    print(f"similarity, background (Chebyshev vs {N_BKG_POINTS}-point linear): max rel. diff "
          f"{np.abs(bkg - c_bkg).max() / np.abs(bkg).max():.1e}")
    if full_total is not None:
        rf, kf, rwpf = similarity(total, full_total)
        _, _, rwp_cc = similarity(full_total, c_total)
        print(f"similarity vs cryspy without cutoff: Pearson r = {rf:.6f}, scale {kf:.5f}, Rwp {100 * rwpf:.3f} % "
              f"(cryspy cutoff vs cryspy full: Rwp {100 * rwp_cc:.4f} %)")
        print(f"ratio vs cryspy default (no cutoff) (cryspy / layerscope): {t_full / t_ours:.1f}x")
    print(f"total bench wall time {time.perf_counter() - t_start:.0f} s")
    print(f"ratio (cryspy / layerscope): {t_cut / t_ours:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
