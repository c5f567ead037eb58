"""Bench: the GSAS-II staged NAC refinement (background → phase fraction → cells → microstrain) on
PG3_22048, layerscope beside the same job on cryspy 0.18's pattern calculation, in one run.

The job (GSAS-II's regression protocol, layerscope's ``gsas_nac_strategy``): NAC (I 2₁3,
anisotropic U from the CIF) + CaF2 (Fm-3m) on POWGEN bank 2, TOF 11 000–100 000 µs, default
Lorentzian size 1 µm and microstrain 1000 on both phases; four cumulative stages, each to
convergence:

1. 6 Chebyshev background terms + histogram scale h
2. + NAC phase fraction (CaF2's stays at its start, as in GSAS-II)
3. + NAC and CaF2 cells (cubic: a)
4. + NAC microstrain

cryspy has no difB or sig-q term, so *both* codes run with difB = sig-q = 0 (the instrument
file's values are 43.7 and 42.6); Rwp values therefore differ from GSAS-II's.

The peer. cryspy 0.18 computes the pattern (``bench/_cryspy_model.py``: the same ``Phase``
objects and instrument written as cryspy input, Uani included; one single-phase cryspy
experiment per phase, since cryspy's microstrain belongs to the experiment and layerscope frees the
NAC microstrain only; cryspy's peak cutoff 10·(FWHM + 1/α + 1/β), its fastest route, as in
``bench_pattern.py``). The staged job on it is driven by ``scipy.optimize.least_squares``
(MINPACK Levenberg–Marquardt, finite-difference Jacobian, stop on a relative χ² change < 1e-8 —
about shift/esd ≈ 0.01 here, layerscope's rule), with the same free parameters, the same start,
the same Chebyshev background and the same scale model y = B + h·Σ s_p·I_p. The driver is
generous to cryspy: a phase's pattern is cached by its nonlinear parameters (cell, microstrain), so
the Jacobian columns of the background and scales cost no cryspy call and a CaF2 cell step
recomputes only CaF2; each phase's reflection list is generated once per run. cryspy's own
refinement (scipy BFGS on χ² with numerical gradients, ``rhochi_rietveld_refinement``) is not
used: it stalled on this job.

cryspy 0.18 needed one fix to compute this pattern at all: its d(t) takes the negative root of
t = zero + dtt1·d + dtt2·d² when dtt2 (difA) > 0 (POWGEN: +0.61), so the reflection range was
negative and it generated *no reflections* (the earlier "stalled" cryspy runs fitted the
background only); ``_cryspy_model.fix_tof_d_root`` replaces that function.

Checks printed: the patterns of both codes at the same parameters (layerscope's stage-4 optimum:
Pearson r and the fitted global scale per phase), then per stage χ² (Σ over points), NAC and
CaF2 a with esds, and their differences.

Timing: ``--repeats`` rounds, each one layerscope run and one cryspy run (interleaved, so both
see the same load on a shared machine). The first layerscope run is cold (traces and compiles
the kernels); later runs are warm (compiled kernels cached per model shape). cryspy's time
includes parsing its input and generating its reflection lists (like layerscope's
``build_model`` inside ``refine_pattern``), not the import. Headline ratio: median cryspy /
median warm layerscope. GSAS-II is timed if importable.

Run: .venv/bin/python bench/bench_refine.py [--repeats N] [--cryspy-cutoff C]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
D = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "powgen-nac"
SIZE_UM, MUSTRAIN = 1.0, 1000.0
N_BKG = 6
# cumulative free sets of the peer, named as layerscope's layout names them
STAGES = (("background", [f"bkg.{k}" for k in range(N_BKG)] + ["hscale"]),
          ("+ phase fraction", ["NAC.scale"]),
          ("+ cells", ["NAC.a", "CaF2.a"]),
          ("+ microstrain", ["NAC.mustrain"]))


def load(aniso: bool = True):
    """PG3_22048 cut to 11 000–100 000 µs, POWGEN_2665 with difB = sig-q = 0, NAC and CaF2.

    ``aniso=False`` drops the CIF's anisotropic U (each site keeps B = 8π²·U_eq).
    """
    from layerscope.crystal import read_cif
    from layerscope.diffraction.instrument import read_instprm
    from layerscope.diffraction.readers import read_powder

    data = read_powder(D / "PG3_22048.gsa")
    m = (data.x >= 11000) & (data.x <= 100000)
    inst = replace(read_instprm(D / "POWGEN_2665.instprm"), difb=0.0, sigq=0.0)
    phases = [read_cif(D / "NAC.cif", name="NAC"), read_cif(D / "CaF2.cif", name="CaF2")]
    if not aniso:
        phases = [replace(p, sites=tuple(replace(s, uani=None) for s in p.sites)) for p in phases]
    return data.x[m], data.y[m], data.sigma[m], inst, phases


def run_layerscope(x, y, s, inst, phases):
    from layerscope.refine.rietveld import refine_pattern
    from layerscope.refine.strategy import gsas_nac_strategy

    return refine_pattern(x, y, s, phases, inst, gsas_nac_strategy(), lorentz=True)


class CryspyJob:
    """The staged job on cryspy's pattern, least squares by scipy (see the module docstring)."""

    def __init__(self, x, y, s, inst, phases, cutoff: float = 10.0):
        import _cryspy_model as cm

        self.x, self.y, self.s = x, y, s
        self.phases = {p.name: p for p in phases}
        self.pp = cm.PhasePatterns(phases, x, inst, size_um=SIZE_UM, cutoff_fwhm=cutoff)
        u = 2.0 * (x - x[0]) / (x[-1] - x[0]) - 1.0
        self.basis = np.polynomial.chebyshev.chebvander(u, N_BKG - 1)  # (N, 6)
        sin_t = np.sin(np.radians(inst.two_theta / 2))
        self.names = [f"bkg.{k}" for k in range(N_BKG)] + ["hscale", "NAC.scale", "NAC.a", "CaF2.a", "NAC.mustrain"]
        # GSAS-II's start (layerscope's "gsas" scale model): h = 1, s_p = V_p·sinθ, background 0
        self.start = np.array([0.0] * N_BKG + [1.0, phases[0].volume * sin_t, phases[0].cell[0],
                                               phases[1].cell[0], MUSTRAIN])
        self.s_caf2 = phases[1].volume * sin_t
        self._cache: dict = {}
        self.n_cryspy = 0
        self.n_resid = 0

    def _phase(self, name, a, mu):
        key = (name, float(a), float(mu))
        if key not in self._cache:
            if len(self._cache) > 16:
                self._cache.clear()
            self.n_cryspy += 1
            self._cache[key] = self.pp.pattern(name, (a, a, a, 90.0, 90.0, 90.0), mu)
        return self._cache[key]

    def calc(self, p):
        b, h, s_nac, a_nac, a_caf2, mu = p[:N_BKG], p[N_BKG], p[N_BKG + 1], p[N_BKG + 2], p[N_BKG + 3], p[N_BKG + 4]
        return self.basis @ b + h * (s_nac * self._phase("NAC", a_nac, mu)
                                     + self.s_caf2 * self._phase("CaF2", a_caf2, MUSTRAIN))

    def run(self):
        from scipy.optimize import least_squares

        p = self.start.copy()
        free: list[int] = []
        out = []
        for stage, names in STAGES:
            free += [self.names.index(n) for n in names]
            n0 = self.n_resid

            def resid(q, free=tuple(free)):
                self.n_resid += 1
                pf = p.copy()
                pf[list(free)] = q
                return (self.y - self.calc(pf)) / self.s

            r = least_squares(resid, p[free], method="lm", x_scale="jac", ftol=1e-8, xtol=1e-10, gtol=1e-10,
                              diff_step=1e-7)
            p[free] = r.x
            chi2 = float(r.fun @ r.fun)
            dof = len(self.y) - len(free)
            cov = np.linalg.pinv(r.jac.T @ r.jac) * chi2 / dof
            esd = dict(zip([self.names[i] for i in free], np.sqrt(np.diag(cov))))
            out.append(dict(stage=stage, chi2=chi2, nfev=self.n_resid - n0, status=r.status,
                            values={n: float(p[i]) for i, n in enumerate(self.names)}, esd=esd))
        return out


def run_cryspy(x, y, s, inst, phases, cutoff):
    job = CryspyJob(x, y, s, inst, phases, cutoff)
    return job.run(), job


def pattern_agreement(res, x, inst, phases, cutoff) -> list[str]:
    """cryspy's phase patterns at layerscope's refined stage-4 parameters vs layerscope's."""
    import _cryspy_model as cm

    full = dict(zip(res.layout_names, res.full))
    pp = cm.PhasePatterns(phases, x, inst, size_um=SIZE_UM, cutoff_fwhm=cutoff)
    lines = []
    for p in phases:
        n = p.name
        ours = np.asarray(res.phase_patterns[n])
        a = full[f"{n}.a"]
        c = full["hscale"] * full[f"{n}.scale"] * pp.pattern(n, (a, a, a, 90.0, 90.0, 90.0), full[f"{n}.mustrain"])
        k = float(ours @ c / (c @ c))
        r = float(np.corrcoef(ours, c)[0, 1])
        lines.append(f"{n}: Pearson r {r:.6f}, scale layerscope/cryspy {k:.5f}, max |diff| after it "
                     f"{np.abs(ours - k * c).max() / ours.max():.1e} of the maximum "
                     f"(reflections: layerscope {len(res.model.phases[[q.phase.name for q in res.model.phases].index(n)].hkl)}"
                     f" merged, cryspy {pp.n_reflections()[n]})")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds (layerscope's first is cold)")
    ap.add_argument("--cryspy-cutoff", type=float, default=10.0, help="cryspy peak cutoff c (default 10)")
    args = ap.parse_args(argv)
    if args.repeats < 2:
        ap.error("--repeats must be >= 2 (the first layerscope run is cold)")
    x, y, s, inst, phases = load()
    print(f"PG3_22048: {len(x)} points, TOF {x[0]:.0f}-{x[-1]:.0f} us; difB = sig-q = 0 in both codes; "
          f"NAC with anisotropic U")
    try:
        import GSASII  # noqa: F401
        print("GSAS-II: importable but not wired into this bench")
    except ImportError:
        print("GSAS-II: skipped: not importable")
    try:
        import cryspy
    except ImportError:
        cryspy = None
        print("cryspy: not importable, no peer")

    t_ls, t_cry = [], []
    res = cry = None
    for _ in range(args.repeats):
        t = time.perf_counter()
        res = run_layerscope(x, y, s, inst, phases)
        t_ls.append(time.perf_counter() - t)
        if cryspy is not None:
            t = time.perf_counter()
            cry, job = run_cryspy(x, y, s, inst, phases, args.cryspy_cutoff)
            t_cry.append(time.perf_counter() - t)

    n = len(x)
    print("layerscope stages (chi2 = sum over points of ((y - calc)/sigma)^2):")
    for k, (name, fr) in enumerate(res.stages):
        v = lambda q: f"{fr.value(q):.6f}({1e6 * fr.esd(q):.0f}e-6)"  # noqa: E731
        extra = f", NAC a {v('NAC.a')}, CaF2 a {v('CaF2.a')}" if k >= 2 else ""
        extra += f", NAC mustrain {fr.value('NAC.mustrain'):.1f}({fr.esd('NAC.mustrain'):.1f})" if k >= 3 else ""
        print(f"  {k + 1} {name}: chi2 {fr.stats.chi2 * (n - fr.stats.n_params):.1f}, Rwp {fr.stats.rwp:.3f} %, "
              f"{fr.n_cycles} cycles{extra}")
    print(f"layerscope 4 stages: cold {t_ls[0]:.1f} s (first run: traces and compiles), "
          f"warm {statistics.median(t_ls[1:]):.1f} s (median of {len(t_ls) - 1}: {', '.join(f'{v:.1f}' for v in t_ls[1:])})")
    if cryspy is None:
        return 0

    print(f"cryspy {cryspy.__version__} stages (scipy least_squares LM on cryspy's pattern, cutoff {args.cryspy_cutoff:g}):")
    for k, (st, (_, fr)) in enumerate(zip(cry, res.stages)):
        chi_ls = fr.stats.chi2 * (n - fr.stats.n_params)
        val, esd = st["values"], st["esd"]
        extra = ""
        if k >= 2:
            extra = "".join(f", {q} {val[f'{q}.a']:.6f}({1e6 * esd[f'{q}.a']:.0f}e-6) "
                            f"[diff {1e6 * (val[f'{q}.a'] - fr.value(f'{q}.a')):+.1f}e-6 = "
                            f"{(val[f'{q}.a'] - fr.value(f'{q}.a')) / fr.esd(f'{q}.a'):+.2f} esd]" for q in ("NAC", "CaF2"))
        if k >= 3:
            extra += f", NAC mustrain {val['NAC.mustrain']:.1f}({esd['NAC.mustrain']:.1f})"
        print(f"  {k + 1} {st['stage']}: chi2 {st['chi2']:.1f} ({100 * (st['chi2'] / chi_ls - 1):+.2f} % vs layerscope), "
              f"{st['nfev']} residual evaluations (Jacobian columns included){extra}")
    print(f"cryspy pattern calls in the last run: {job.n_cryspy} (one phase each; reflections "
          f"{job.pp.n_reflections()})")
    print(f"cryspy 4 stages: median {statistics.median(t_cry):.1f} s ({', '.join(f'{v:.1f}' for v in t_cry)})")
    print("same parameters (layerscope's stage-4 optimum), cryspy's pattern vs layerscope's:")
    for line in pattern_agreement(res, x, inst, phases, args.cryspy_cutoff):
        print("  " + line)
    print(f"ratio vs cold layerscope (cryspy / layerscope first run): {statistics.median(t_cry) / t_ls[0]:.1f}x")
    print(f"ratio (cryspy / layerscope warm, medians): {statistics.median(t_cry) / statistics.median(t_ls[1:]):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
