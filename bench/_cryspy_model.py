"""cryspy 0.18 input written from layerscope Phase objects and a TOF instrument (test/bench only).

Shared by ``bench/bench_refine.py`` and ``tests/test_refine_peer.py``; it maps the same model
as the table in ``bench/bench_pattern.py`` (GSAS-II TOF names → cryspy's ``tof`` block):

* calibration Zero + difC·d + difA·d² → zero + dtt1·d + dtt2·d² (cryspy has no difB term);
* α(d) = alpha/d → alpha0 = 0, alpha1; β(d) = beta-0 + beta-1/d⁴ → beta0, beta1 (no beta-q);
* σ²(d) = sig-0 + sig-1·d² + sig-2·d⁴ → sigma0..2 (no sig-q); γ = X·d + Y·d² → gamma1, gamma2;
* isotropic size/microstrain (Lorentzian) → size_l = 1e-4·difC/size_µm, strain_l = 1e-6·difC·µstrain
  (one value per experiment in cryspy);
* intensity S·m·|F|²·d⁴/V² (b in fm) → phase scale S/V²·100/sin θ_bank (b in 10⁻¹² cm);
* anisotropic sites (``Site.uani``) → ``_atom_site_adp_type Uani`` + an ``_atom_site_aniso_U_*``
  loop (cryspy turns U_ij into β_ij itself), isotropic ones → ``Biso``.

cryspy 0.18 bug worked around here (:func:`fix_tof_d_root`, applied by :func:`parse`): its d(t),
the inverse of t = zero + dtt1·d + dtt2·d², takes the *negative* root when dtt2 > 0
(``(-sqrt(dtt1² + 4·dtt2·(t − zero)) − dtt1)/(2·dtt2)``; right for dtt2 < 0, and dtt2 = 0 takes
another branch). Both the reflection range (sinθ/λ from d at the first and last time) and the
per-point d of the peak widths come from it, so a bank with positive difA (POWGEN: 0.61) gets a
negative d range and *no reflections at all*, silently. The fix replaces that function, in the
two cryspy modules that hold it, by the stable form d = 2(t − zero)/(dtt1 + sqrt(dtt1² + 4·dtt2·
(t − zero))), the same root for dtt2 ≤ 0 and the physical one for dtt2 > 0.

Refined quantities are written with cryspy's ``()`` flag. Nothing here is imported by the package.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np


def _d_by_time(time, zero, dtt1, dtt2):
    """Positive root d of zero + dtt1·d + dtt2·d² = time, any sign of dtt2 (cancellation-free)."""
    dt = time - zero
    return 2.0 * dt / (dtt1 + np.sqrt(np.square(dtt1) + 4.0 * dtt2 * dt))


def fix_tof_d_root() -> None:
    """Replace cryspy 0.18's d(t) for thermal neutrons (negative root when dtt2 > 0, see above)."""
    from cryspy.A_functions_base import powder_diffraction_tof as pdt
    from cryspy.procedure_rhochi import rhochi_tof as rt

    # calc_d_min_max_by_time_thermal_neutrons looks the name up in pdt's globals
    pdt.calc_d_by_time_for_thermal_neutrons = _d_by_time
    rt.calc_d_by_time_for_thermal_neutrons = _d_by_time


def _v(x, refine: bool) -> str:
    return f"{float(x)!r}()" if refine else f"{float(x)!r}"


def crystal_block(phase, refine: tuple[str, ...] = (), aniso: bool = True) -> str:
    """``data_`` block of one phase. ``refine``: ``"cell"`` and/or ``"biso[LABEL]"`` / ``"biso"``.

    ``aniso``: sites with ``uani`` are written as Uani (else as Biso = B_eq, the site's ``biso``).
    """
    sg = phase.space_group
    a, b, c, al, be, ga = phase.cell
    rc = "cell" in refine
    lines = [f"data_{phase.name}", f"_space_group_IT_number {sg.number}"]
    if sg.ext == "2":  # origin choice 2 (e.g. spinel 'F d -3 m:2')
        lines.append("_space_group_IT_coordinate_system_code 2")
    # cryspy applies the crystal system's constraints itself (cubic: one refined a)
    lines += [f"_cell_length_a {_v(a, rc)}", f"_cell_length_b {_v(b, rc)}", f"_cell_length_c {_v(c, rc)}",
              f"_cell_angle_alpha {al!r}", f"_cell_angle_beta {be!r}", f"_cell_angle_gamma {ga!r}",
              "loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x",
              "_atom_site_fract_y", "_atom_site_fract_z", "_atom_site_occupancy",
              "_atom_site_adp_type", "_atom_site_B_iso_or_equiv"]
    aniso_rows = []
    for site in phase.sites:
        x, y, z = (float(v) for v in site.xyz)
        rb = "biso" in refine or f"biso[{site.label}]" in refine
        uani = aniso and site.uani is not None
        if uani and rb:
            raise ValueError(f"site {site.label!r}: Biso refinement of an anisotropic site is not mapped")
        for species, occ in site.species:
            label = f"{site.label}_{species}"
            lines.append(f"{label} {species} {x!r} {y!r} {z!r} {float(occ)!r} {'Uani' if uani else 'Biso'} "
                         f"{_v(site.biso, rb)}")
            if uani:
                aniso_rows.append(label + " " + " ".join(repr(float(u)) for u in site.uani))
    if aniso_rows:
        lines += ["loop_", "_atom_site_aniso_label"] + [f"_atom_site_aniso_U_{ij}" for ij in
                                                        ("11", "22", "33", "12", "13", "23")]
        lines += aniso_rows
    return "\n".join(lines)


def tof_input(phases, tof, inst, scales, y, sigma, *, background=None, n_cosine: int = 0,
              refine_scales=(), refine_cells=(), refine_biso=(), gauss: bool = False,
              size_um: float = np.inf, mustrain: float = 0.0, aniso: bool = True,
              cryspy_scales: dict | None = None) -> str:
    """Full cryspy input: one crystal block per phase and a ``tof`` experiment with data.

    ``scales`` are layerscope phase scales S_p ("phase" convention). Background: either a fixed
    curve ``background`` (sampled at 200 points, linearly interpolated by cryspy) or, with
    ``n_cosine`` > 0, cryspy's refined cosine series (``_tof_background_coeff1..n``).
    ``cryspy_scales`` gives cryspy's own phase scales instead (``scales`` is then ignored).
    """
    if inst.difb != 0 or inst.betaq != 0 or inst.sigq != 0 or inst.z != 0:
        raise ValueError("cryspy has no difB, beta-q, sig-q or Z term: set them to 0 in both codes")
    sin_th = np.sin(np.radians(inst.two_theta / 2))
    blocks = []
    for p in phases:
        ref = (("cell",) if p.name in refine_cells else ()) + (("biso",) if p.name in refine_biso else ())
        blocks.append(crystal_block(p, ref, aniso=aniso))
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
              f"_tof_profile_size_l {1e-4 * inst.difc / size_um!r}",
              f"_tof_profile_strain_l {1e-6 * inst.difc * mustrain!r}"]
    t += [f"_range_time_min {float(tof[0]) - 1e-3!r}", f"_range_time_max {float(tof[-1]) + 1e-3!r}",
          "loop_", "_phase_label", "_phase_scale"]
    for p in phases:
        c = cryspy_scales[p.name] if cryspy_scales is not None else scales[p.name] / p.volume**2 * 100.0 / sin_th
        t.append(f"{p.name} {_v(c, p.name in refine_scales)}")
    if n_cosine:
        t.append(f"_tof_background_time_max {float(tof[-1]) + 1e-3!r}")
        t += [f"_tof_background_coeff{k + 1} {_v(float(np.median(y)) if k == 0 else 0.0, True)}"
              for k in range(n_cosine)]
    else:
        idx = np.unique(np.linspace(0, len(tof) - 1, 200).round().astype(int))
        t += ["loop_", "_tof_backgroundpoint_time", "_tof_backgroundpoint_intensity"]
        t += [f"{float(tof[i])!r} {float(background[i])!r}" for i in idx]
    t += ["loop_", "_tof_meas_time", "_tof_meas_intensity", "_tof_meas_intensity_sigma"]
    t += [f"{float(a)!r} {float(b)!r} {float(c)!r}" for a, b, c in zip(tof, y, sigma)]
    return "\n\n".join(blocks) + "\n\n" + "\n".join(t) + "\n"


def parse(text: str):
    """cryspy GlobalN object from input text (cryspy prints symmetry tables while parsing)."""
    import cryspy

    fix_tof_d_root()
    with contextlib.redirect_stdout(io.StringIO()):
        return cryspy.str_to_globaln(text)


def refine(obj, callback=None) -> dict:
    """cryspy's own refinement (scipy BFGS on χ²); returns its output dictionary."""
    import cryspy

    with contextlib.redirect_stdout(io.StringIO()):
        return cryspy.rhochi_rietveld_refinement(obj, callback=callback)


def phase_scale_to_layerscope(cryspy_scale: float, phase, inst) -> float:
    """Inverse of the scale mapping: cryspy phase scale → layerscope S_p."""
    sin_th = np.sin(np.radians(inst.two_theta / 2))
    return float(cryspy_scale) * phase.volume**2 / 100.0 * sin_th


def _reciprocal_lengths(cell) -> np.ndarray:
    a, b, c, al, be, ga = cell
    ca, cb, cg = (np.cos(np.radians(v)) for v in (al, be, ga))
    g = np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])
    return np.sqrt(np.diag(np.linalg.inv(g)))


def _cell_volume(cell) -> float:
    a, b, c, al, be, ga = cell
    ca, cb, cg = (np.cos(np.radians(v)) for v in (al, be, ga))
    return float(a * b * c * np.sqrt(1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg))


class PhasePatterns:
    """cryspy's Bragg pattern of each phase on its own, for a least-squares driver outside cryspy.

    One single-phase ``tof`` experiment per phase (cryspy's size/strain broadening belongs to the
    experiment, so this is how each phase gets its own microstrain, as in layerscope), no
    background, cryspy's peak cutoff ``cutoff_fwhm`` (``profile_cutoff_fwhm``). The reflection list
    of each phase is generated once by cryspy (``calc_index_hkl_multiplicity_in_range``) on the
    same d range layerscope's ``build_model`` uses (3 % beyond the first and last TOF point) and
    kept while the cell moves, as layerscope keeps its list through a refinement.

    ``pattern(name, cell, mustrain)`` returns the phase's pattern per unit layerscope scale S
    (cryspy scale 100/(V²·sin θ_bank) at the current cell volume), so that Σ_p S_p·pattern_p is
    layerscope's Bragg pattern. The atoms' β_ij follow the cell (U_ij fixed, as in layerscope).
    """

    def __init__(self, phases, tof, inst, *, size_um: float = 1.0, cutoff_fwhm: float = 10.0,
                 aniso: bool = True, pad: float = 0.03):
        from cryspy.A_functions_base.structure_factor import calc_index_hkl_multiplicity_in_range
        from cryspy.procedure_rhochi.rhochi_tof import calc_chi_sq_for_tof_by_dictionary

        self._calc = calc_chi_sq_for_tof_by_dictionary
        tof = np.asarray(tof, dtype=float)
        n = len(tof)
        text = tof_input(phases, tof, inst, None, np.zeros(n), np.ones(n), background=np.zeros(n),
                         size_um=size_um, mustrain=0.0, aniso=aniso, cryspy_scales={p.name: 1.0 for p in phases})
        d = parse(text).get_dictionary()
        base = {k: v for k, v in d["tof_bank"].items()
                if k not in ("background_time", "background_intensity", "flags_background_intensity")}
        base["profile_cutoff_fwhm"] = float(cutoff_fwhm)
        self.difc = float(inst.difc)
        self.sin_th = float(np.sin(np.radians(inst.two_theta / 2)))
        args = (np.array(inst.zero), np.array(inst.difc), np.array(inst.difa))
        d_lo = float(_d_by_time(max(tof[0] * (1 - pad), 1.0), *args))
        d_hi = float(_d_by_time(tof[-1] * (1 + pad), *args))
        self.names = [p.name for p in phases]
        self._exp, self._cryst, self._hkl, self._beta0, self._rec0 = {}, {}, {}, {}, {}
        for i, p in enumerate(phases):
            e = dict(base)
            for k in ("phase_name", "phase_scale", "flags_phase_scale", "phase_ig", "flags_phase_ig"):
                e[k] = base[k][i:i + 1]
            for k in ("phase_resolution_parameters", "flags_phase_resolution_parameters"):
                if k in base:
                    e[k] = base[k][:, i:i + 1]
            cr = dict(d[f"crystal_{p.name.lower()}"])
            hkl, mult = calc_index_hkl_multiplicity_in_range(
                0.5 / d_hi, 0.5 / d_lo, cr["unit_cell_parameters"], cr["reduced_symm_elems"],
                cr["translation_elems"], cr["centrosymmetry"])
            self._exp[p.name], self._cryst[p.name], self._hkl[p.name] = e, cr, (hkl, mult)
            self._beta0[p.name] = np.array(cr["atom_beta"])
            self._rec0[p.name] = _reciprocal_lengths(p.cell)

    def n_reflections(self) -> dict:
        return {n: int(h.shape[1]) for n, (h, _) in self._hkl.items()}

    def pattern(self, name: str, cell, mustrain: float) -> np.ndarray:
        cell = tuple(float(v) for v in cell)
        cr, e = self._cryst[name], self._exp[name]
        cr["unit_cell_parameters"] = np.array(cell[:3] + tuple(np.radians(cell[3:])))
        r = _reciprocal_lengths(cell) / self._rec0[name]
        ratio = np.array([r[0] * r[0], r[1] * r[1], r[2] * r[2], r[0] * r[1], r[0] * r[2], r[1] * r[2]])
        cr["atom_beta"] = self._beta0[name] * ratio[:, None]
        e["profile_strain_l"] = np.array([1e-6 * self.difc * float(mustrain)])
        key = f"dict_in_out_{name.lower()}"
        hkl, mult = self._hkl[name]
        store = {key: {"index_hkl": hkl, "multiplicity_hkl": mult}}
        self._calc(e, [cr], dict_in_out=store, flag_use_precalculated_data=True)
        out = store[key]
        return (out["signal_plus"] + out["signal_minus"]) * (100.0 / (_cell_volume(cell) ** 2 * self.sin_th))
