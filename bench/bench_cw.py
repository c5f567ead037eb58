"""Bench: one constant-wavelength X-ray Rietveld refinement, layerscope beside cryspy 0.18 on the same
input, in one run.

Input (``shared/data/gsas2-pbso4``): ``PBSO4.XRA`` (Cu Kα, Bragg–Brentano, 16–110° 2θ, 3 761 points),
``INST_XRY.PRM``, ``PbSO4-Wyckoff.cif``. The job, three cumulative stages each to convergence (the first
three stages of GSAS-II's PbSO4 regression test, X-ray histogram alone):

1. 6 Chebyshev background terms + histogram scale
2. + cell (a, b, c)
3. + every atom's free coordinates (11) and B_iso (5)

cryspy is fed from files only: ``pbso4_xray.rcif`` is written here from the CIF (read with gemmi, not
with layerscope), the instrument file's numbers (read here from its INS lines) and the data columns.
Mapping of GSAS-II's terms (U, V, W in centidegree², X, Y in centidegrees; σ² = U tan²θ + V tanθ + W,
γ = X/cosθ + Y tanθ) to cryspy's FullProf-style ones (FWHM_G² = U tan²θ + V tanθ + W in degree²,
FWHM_L = X tanθ + Y/cosθ in degrees): U, V, W ×8 ln2/10⁴; cryspy X = GSAS Y/100, cryspy Y = GSAS X/100.
What cryspy's CW powder model lacks and layerscope's uses here: the Kα2 line (cryspy computes Kα1 only,
so its fit is worse on these data) and the Finger–Cox–Jephcoat axial asymmetry (SH/L; cryspy has
Bérar–Baldinozzi terms, set 0). Both codes use the same Chebyshev background and scale model, the
same free parameters and the same start.

The peer's driver (as ``bench_refine.py``): ``scipy.optimize.least_squares`` (MINPACK LM,
finite-difference Jacobian) on y = B_cheb + h·I_cryspy(cell, xyz, B), where I_cryspy is cryspy's
Bragg pattern (``calc_chi_sq_for_pd_by_dictionary``, background points 0, its phase scale 1) —
generous to cryspy: the background and scale columns cost no cryspy call. cryspy's own refinement
(scipy BFGS on χ² with numerical gradients) is not used and not timed here.

layerscope's three stages share one evaluator (``refine_cw(..., evaluator=ev)``), so its two kernels
(the pattern, and the profiles with their position/width partials for the chain-rule Jacobian) are
compiled once per run; no persistent compilation cache is used here (the command line has one).

Timing: ``--repeats`` interleaved rounds; the first layerscope run is cold (JAX compilation), the rest
warm. cryspy's time includes parsing its .rcif. Printed: per stage Rwp of both codes, the refined
cell of both, the medians, the 1-minute load average before and after, and the ratio cryspy /
layerscope (warm medians), in wall time and in process CPU time (all threads; steadier on a shared
machine). Measured 2026-12-03 on 2 shared cores at load 9-14 (layerscope and cryspy run separately):
layerscope 7.9 s CPU cold, 6.6-7.5 s warm (18-23 s wall); cryspy 132 s CPU (827 s wall), 871
pattern calls: CPU ratio ~19x warm, ~17x cold (before the chain-rule Jacobian: 23-27 s CPU, ~5x).
In one run, ``--repeats 2``, same day, load 6.7 -> 3.2: layerscope 7.6 / 7.3 s CPU, cryspy 139.2 / 116.2 s
CPU: CPU ratio 17.4x warm, 16.7x cold (wall 17.6x).

Run: PYTHONPATH=src /tmp/civenv/bin/python bench/bench_cw.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsas2-pbso4"
LIMITS = (16.0, 110.0)
N_BKG = 6


# ----------------------------------------------------------------------------- inputs for cryspy (files only)

def read_prm_values(path: Path) -> dict:
    """ICONS (λ1, λ2, zero, polarization, ratio) and PRCF1 profile terms from a GSAS-I .prm."""
    v = {}
    for line in path.read_text().splitlines():
        if line[6:12].strip() == "ICONS":
            f = line[12:].split()
            v.update(lam1=float(f[0]), lam2=float(f[1]), zero=float(f[2]), polariz=float(f[4]), ratio=float(f[6]))
        elif line[6:12].strip() == "PRCF11":
            v.update(zip(("u", "v", "w", "x"), (float(t) for t in line[12:].split())))
        elif line[6:12].strip() == "PRCF12":
            v.update(zip(("y", "z", "sl", "hl"), (float(t) for t in line[12:].split())))
    return v


def crystal_block_from_cif(path: Path) -> str:
    import gemmi

    b = gemmi.cif.read(str(path)).sole_block()
    cell = [float(b.find_value(f"_cell_{k}")) for k in ("length_a", "length_b", "length_c", "angle_alpha",
                                                          "angle_beta", "angle_gamma")]
    sg = gemmi.find_spacegroup_by_name(gemmi.cif.as_string(b.find_value("_symmetry_space_group_name_H-M")))
    t = b.find("_atom_site_", ["label", "type_symbol", "fract_x", "fract_y", "fract_z", "occupancy",
                               "U_iso_or_equiv"])
    lines = ["data_pbso4", f"_space_group_IT_number {sg.number}",
             f"_cell_length_a {cell[0]}()", f"_cell_length_b {cell[1]}()", f"_cell_length_c {cell[2]}()",
             f"_cell_angle_alpha {cell[3]}", f"_cell_angle_beta {cell[4]}", f"_cell_angle_gamma {cell[5]}",
             "loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y",
             "_atom_site_fract_z", "_atom_site_occupancy", "_atom_site_adp_type", "_atom_site_B_iso_or_equiv"]
    for r in t:
        biso = float(8 * np.pi**2 * float(r[6]))
        lines.append(f"{r[0]} {r[1]} {r[2]} {r[3]} {r[4]} {r[5]} Biso {biso!r}")
    return "\n".join(lines)


def rcif_text(x, y, s) -> str:
    v = read_prm_values(DATA / "INST_XRY.PRM")
    k = float(8 * np.log(2) / 1e4)
    x, y, s = (np.asarray(a, float).tolist() for a in (x, y, s))
    # GSAS-II "Polariz." P at azimuth 0: pola = P + (1 − P)·cos²2θ; cryspy: 1 − k + k·cthm·cos²2θ, so
    # k = 1 − P with cthm = 1 gives the same factor
    k_pol = 1.0 - v["polariz"]
    e = ["data_xray", f"_setup_wavelength {v['lam1']}", "_setup_radiation X-rays", f"_setup_offset_2theta {v['zero'] / 100}",
         f"_setup_k {k_pol!r}", "_setup_cthm 1.0",
         f"_pd_instr_resolution_u {v['u'] * k!r}", f"_pd_instr_resolution_v {v['v'] * k!r}",
         f"_pd_instr_resolution_w {v['w'] * k!r}", f"_pd_instr_resolution_x {v['y'] / 100!r}",
         f"_pd_instr_resolution_y {v['x'] / 100!r}",
         "_pd_instr_reflex_asymmetry_p1 0.0", "_pd_instr_reflex_asymmetry_p2 0.0",
         "_pd_instr_reflex_asymmetry_p3 0.0", "_pd_instr_reflex_asymmetry_p4 0.0",
         f"_range_2theta_min {x[0] - 1e-3!r}", f"_range_2theta_max {x[-1] + 1e-3!r}",
         "loop_", "_pd_background_2theta", "_pd_background_intensity", f"{x[0] - 1.0!r} 0.0", f"{x[-1] + 1.0!r} 0.0",
         "_chi2_sum True", "_chi2_diff False", "_chi2_up False", "_chi2_down False",
         "loop_", "_phase_label", "_phase_scale", "pbso4 1.0",
         "loop_", "_pd_meas_2theta", "_pd_meas_intensity", "_pd_meas_intensity_sigma"]
    e += [f"{a!r} {b!r} {c!r}" for a, b, c in zip(x, y, s)]
    return crystal_block_from_cif(DATA / "PbSO4-Wyckoff.cif") + "\n\n" + "\n".join(e) + "\n"


def load_data():
    from layerscope.diffraction.cw_pattern import computed_range
    from layerscope.diffraction.cw_readers import read_cw_powder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = read_cw_powder(DATA / "PBSO4.XRA")
    sl = computed_range(d.x, LIMITS)
    return d.x[sl], d.y[sl], d.sigma[sl]


def chebyshev(x, n):
    t = 2.0 * (x - x[0]) / (x[-1] - x[0]) - 1.0
    return np.polynomial.chebyshev.chebvander(t, n - 1)


# ----------------------------------------------------------------------------- cryspy driver

class CryspyJob:
    def __init__(self, rcif_path: Path, x, y, s):
        import cryspy
        from cryspy.procedure_rhochi.rhochi_pd import calc_chi_sq_for_pd_by_dictionary

        self._calc = calc_chi_sq_for_pd_by_dictionary
        with contextlib.redirect_stdout(io.StringIO()):
            obj = cryspy.file_to_globaln(str(rcif_path))
        d = obj.get_dictionary()
        self.exp = d["pd_xray"]
        self.cr = d["crystal_pbso4"]
        self.x, self.y, self.s = x, y, s
        self.cheb = chebyshev(x, N_BKG)
        self.n_calls = 0
        # free coordinates: those not fixed by the Wyckoff position (y = 1/4 of the 4c sites)
        self.xyz0 = np.array(self.cr["atom_fract_xyz"], float).copy()
        self.xyz_free = [(i, j) for j in range(self.xyz0.shape[1]) for i in range(3)
                         if not abs(self.xyz0[i, j] - 0.25) < 1e-9 or i != 1]
        self.b0 = np.array(self.cr["atom_b_iso"], float).copy()
        self.cell0 = np.array(self.cr["unit_cell_parameters"], float).copy()

    def bragg(self, cell, xyz, biso):
        cr = self.cr
        cr["unit_cell_parameters"] = np.concatenate([cell, self.cell0[3:]])
        cr["atom_fract_xyz"] = xyz
        cr["atom_b_iso"] = biso
        out = {}
        self.n_calls += 1
        self._calc(self.exp, [cr], dict_in_out=out, flag_use_precalculated_data=False)
        return out["signal_plus"] + out["signal_minus"]

    def run(self):
        from scipy.optimize import least_squares

        cell, xyz, biso = self.cell0[:3].copy(), self.xyz0.copy(), self.b0.copy()
        lin = np.zeros(N_BKG + 1)
        lin[0], lin[1] = 1.0, np.median(self.y)
        w = 1.0 / self.s
        stages, out = (("lin",), ("lin", "cell"), ("lin", "cell", "atoms")), []
        for free in stages:
            def unpack(q, free=free):
                c, xx, b = cell.copy(), xyz.copy(), biso.copy()
                k = N_BKG + 1
                if "cell" in free:
                    c = q[k:k + 3]
                    k += 3
                if "atoms" in free:
                    for n, (i, j) in enumerate(self.xyz_free):
                        xx[i, j] = q[k + n]
                    k += len(self.xyz_free)
                    b = q[k:k + len(biso)]
                return q[:N_BKG + 1], c, xx, b

            cache = {}

            def resid(q, free=free):
                ql, c, xx, b = unpack(q)
                key = (tuple(c), xx.tobytes(), tuple(b))
                if key not in cache:
                    cache.clear()
                    cache[key] = self.bragg(c, xx, b)
                return (self.cheb @ ql[1:] + ql[0] * cache[key] - self.y) * w

            q0 = [lin]
            if "cell" in free:
                q0.append(cell)
            if "atoms" in free:
                q0 += [np.array([xyz[i, j] for i, j in self.xyz_free]), biso]
            q0 = np.concatenate(q0)
            r = least_squares(resid, q0, method="lm", ftol=1e-8, xtol=1e-10)
            lin, cell, xyz, biso = unpack(r.x)
            rw = resid(r.x)
            out.append(100 * np.sqrt(np.sum(rw**2) / np.sum((self.y * w) ** 2)))
        return out, cell


def run_cryspy(x, y, s, folder: Path):
    path = folder / "pbso4_xray.rcif"
    path.write_text(rcif_text(x, y, s))
    job = CryspyJob(path, x, y, s)
    rwp, cell = job.run()
    return rwp, cell, job.n_calls


# ----------------------------------------------------------------------------- layerscope

def run_layerscope():
    from layerscope.crystal.cif import read_cif
    from layerscope.diffraction import cw_pattern as cw
    from layerscope.diffraction.cw_instrument import read_gsas_prm
    from layerscope.diffraction.cw_readers import read_cw_powder
    from layerscope.refine.cw import refine_cw

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph = read_cif(DATA / "PbSO4-Wyckoff.cif")
        data = read_cw_powder(DATA / "PBSO4.XRA")
        inst = read_gsas_prm(DATA / "INST_XRY.PRM")
    m = cw.build_cw_model([ph], data.x, inst, limits=LIMITS, n_background=N_BKG)
    sl = cw.computed_range(data.x, LIMITS)
    y, s = data.y[sl], data.sigma[sl]
    bg = np.zeros(N_BKG)
    bg[0] = np.median(y)
    params = cw.cw_initial_params(m, background=bg)
    pn = ph.name
    free, start, rwp, ev = [], None, [], None
    for add in (["hist0.scale", "hist0.background"], [f"{pn}.cell"], [f"{pn}.xyz", f"{pn}.biso"]):
        free = free + add
        res, hs, ev = refine_cw([m], [params], [y], [s], free, start=start, max_cycles=50, evaluator=ev)
        start = res.full
        rwp.append(hs[0].rwp)
    names = list(ev.names)
    return rwp, [res.full[names.index(f"{pn}.{c}")] for c in "abc"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if args.repeats < 2:
        ap.error("--repeats must be >= 2 (the first layerscope run is cold)")
    x, y, s = load_data()
    import cryspy

    load0 = os.getloadavg()[0]
    t_ls, t_cry, c_ls, c_cry = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            rwp_ls, cell_ls = run_layerscope()
            t_ls.append(time.perf_counter() - t0)
            c_ls.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            rwp_cry, cell_cry, calls = run_cryspy(x, y, s, Path(tmp))
            t_cry.append(time.perf_counter() - t0)
            c_cry.append(time.process_time() - c0)
    load1 = os.getloadavg()[0]
    print(f"PbSO4 Cu Kα X-ray, {len(x)} points {LIMITS[0]}-{LIMITS[1]}°, 3 stages (bkg+scale, +cell, +xyz+Biso)")
    print(f"{'stage':>6} {'layerscope Rwp %':>17} {'cryspy Rwp %':>13}")
    for i, (a, b) in enumerate(zip(rwp_ls, rwp_cry)):
        print(f"{i + 1:>6} {a:17.4f} {b:13.4f}")
    print("cell layerscope  " + " ".join(f"{v:.5f}" for v in cell_ls))
    print("cell cryspy      " + " ".join(f"{v:.5f}" for v in cell_cry) + "  (Kα1 only, no FCJ asymmetry)")
    print(f"cryspy {cryspy.__version__}: {calls} pattern calls in the last run")
    print(f"layerscope runs (s): {', '.join(f'{v:.1f}' for v in t_ls)} (first cold)")
    print(f"cryspy runs (s):     {', '.join(f'{v:.1f}' for v in t_cry)}")
    print(f"load average (1 min) before/after: {load0:.1f} / {load1:.1f} on {os.cpu_count()} CPUs")
    print(f"ratio vs cold layerscope: {statistics.median(t_cry) / t_ls[0]:.1f}x")
    print(f"ratio (cryspy / layerscope warm, medians): {statistics.median(t_cry) / statistics.median(t_ls[1:]):.1f}x")
    # CPU time of the process (all threads): steadier than wall time on a loaded machine
    print(f"CPU s layerscope: {', '.join(f'{v:.1f}' for v in c_ls)}; cryspy: {', '.join(f'{v:.1f}' for v in c_cry)}")
    print(f"CPU ratio (cryspy / layerscope warm, medians): {statistics.median(c_cry) / statistics.median(c_ls[1:]):.1f}x"
          f"; vs cold: {statistics.median(c_cry) / c_ls[0]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
