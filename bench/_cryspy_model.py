"""cryspy 0.18 input written from layerscope Phase objects and a TOF instrument (test/bench only).

Shared by ``bench/bench_refine.py`` and ``tests/test_refine_peer.py``; it maps the same model
as the table in ``bench/bench_pattern.py`` (GSAS-II TOF names → cryspy's ``tof`` block):

* calibration Zero + difC·d + difA·d² → zero + dtt1·d + dtt2·d² (cryspy has no difB term);
* α(d) = alpha/d → alpha0 = 0, alpha1; β(d) = beta-0 + beta-1/d⁴ → beta0, beta1 (no beta-q);
* σ²(d) = sig-0 + sig-1·d² + sig-2·d⁴ → sigma0..2 (no sig-q); γ = X·d + Y·d² → gamma1, gamma2;
* isotropic size/microstrain (Lorentzian) → size_l = 1e-4·difC/size_µm, strain_l = 1e-6·difC·µstrain
  (one value per experiment in cryspy);
* intensity S·m·|F|²·d⁴/V² (b in fm) → phase scale S/V²·100/sin θ_bank (b in 10⁻¹² cm).

Refined quantities are written with cryspy's ``()`` flag. Nothing here is imported by the package.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np


def _v(x, refine: bool) -> str:
    return f"{float(x)!r}()" if refine else f"{float(x)!r}"


def crystal_block(phase, refine: tuple[str, ...] = ()) -> str:
    """``data_`` block of one phase. ``refine``: ``"cell"`` and/or ``"biso[LABEL]"`` / ``"biso"``."""
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
    for site in phase.sites:
        x, y, z = (float(v) for v in site.xyz)
        rb = "biso" in refine or f"biso[{site.label}]" in refine
        for species, occ in site.species:
            lines.append(f"{site.label}_{species} {species} {x!r} {y!r} {z!r} {float(occ)!r} Biso "
                         f"{_v(site.biso, rb)}")
    return "\n".join(lines)


def tof_input(phases, tof, inst, scales, y, sigma, *, background=None, n_cosine: int = 0,
              refine_scales=(), refine_cells=(), refine_biso=(), gauss: bool = False,
              size_um: float = np.inf, mustrain: float = 0.0) -> str:
    """Full cryspy input: one crystal block per phase and a ``tof`` experiment with data.

    ``scales`` are layerscope phase scales S_p ("phase" convention). Background: either a fixed
    curve ``background`` (sampled at 200 points, linearly interpolated by cryspy) or, with
    ``n_cosine`` > 0, cryspy's refined cosine series (``_tof_background_coeff1..n``).
    """
    if inst.difb != 0 or inst.betaq != 0 or inst.sigq != 0 or inst.z != 0:
        raise ValueError("cryspy has no difB, beta-q, sig-q or Z term: set them to 0 in both codes")
    sin_th = np.sin(np.radians(inst.two_theta / 2))
    blocks = []
    for p in phases:
        ref = (("cell",) if p.name in refine_cells else ()) + (("biso",) if p.name in refine_biso else ())
        blocks.append(crystal_block(p, ref))
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
        t.append(f"{p.name} {_v(scales[p.name] / p.volume**2 * 100.0 / sin_th, p.name in refine_scales)}")
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
