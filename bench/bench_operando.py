"""Per-pattern time of the sequential (operando) refinement: layerscope vs cryspy on the same patterns.

The series: the simulated graphite || LRM pouch-cell experiment (``layerscope simulate operando``,
seed 0, 4 000 log-spaced TOF points of the ``gppd_like()`` bank), its 60-min reference pattern
and the first series patterns (every ``--every``-th 30-min pattern).

layerscope: :func:`layerscope.refine.sequential.refine_series` with the built-in protocol
(``operando_lrm.toml``) exactly as ``layerscope operando`` runs it — the reference refined fully,
then per pattern stage 1 (background 6 Chebyshev terms, histogram scale, the six LRM/anode
scales, the O3' and spinel cells; O3 below 2 % keeps its cell fixed) and stage 2 (+ twelve O3'/O3
occupancies reduced by the protocol's constraints/ties to four degrees of freedom), with the
O-conservation constraint, the per-pattern cell trust region and the plausibility checks.
The time of each pattern is taken from the progress callback; the first series pattern also
compiles the stage Jacobians, so the median is over the later ones.

cryspy 0.18 (``rhochi_rietveld_refinement_by_dictionary``, scipy BFGS on χ² with numerical
derivatives — cryspy's Rietveld path for TOF data): the same phases and instrument, written
from the same ``Phase`` objects by ``bench_pattern.cryspy_input`` (term-by-term mapping in that
script's docstring; here Gaussian profiles, as the bank has no Lorentzian term and the phases
no size/strain broadening). Each pattern starts, as in the sequential refinement, from the
previous pattern's result (layerscope's: cells, scales, background curve). Free in cryspy: the same six phase scales (Al and Cu fixed) and the
O3' (a, b, c, β) and spinel (a) cells.

What cryspy does not do, and is therefore left out on its side (so cryspy does less work):

* no linear constraints between several parameters (cryspy 0.18 ties one parameter to one
  other): the occupancy stage, its four constrained degrees of freedom and the
  O-conservation constraint are not refined by cryspy;
* no Chebyshev background: the reference's background curve is fixed as 200 points, not
  refined (layerscope refines 6 coefficients + the histogram scale per pattern);
* no cross-pattern logic (trust region, min_fraction hysteresis, retries).

cryspy evaluates each pattern with its peak cutoff ``profile_cutoff_fwhm`` (default 10, the
closest analogue of our per-peak windows and its fastest route, as in ``bench_pattern.py``);
with the cells free it regenerates the reflection lists at every evaluation.

Stopping: layerscope stops at max |shift|/esd < 0.01 (FullProf/GSAS-II criterion); cryspy's
BFGS (default gtol) is stopped by its progress callback when one iteration lowers χ² by less
than 0.01 (absolute, in χ² units — a 1-esd shift of one parameter changes χ² by 1), or at the
``--cap`` wall time per pattern (the ratio is then a lower bound, printed with '≥'). The final
χ²/N of both codes on each pattern is printed; their models differ slightly (scattering-length
tables, peak-tail windows), so equal χ² is not expected to better than ~1 %.

Prints the per-pattern times, the medians and ``ratio (cryspy / layerscope): X.Xx`` (target ≥ 10×).

Run: ``.venv/bin/python bench/bench_operando.py [--patterns 4] [--cryspy-patterns 2] [--cap 600]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_pattern as bp  # noqa: E402  (cryspy input writer from the same Phase objects)

from layerscope.crystal import preset  # noqa: E402
from layerscope.diffraction.instrument import read_instprm  # noqa: E402
from layerscope.echem.io import read_cycler  # noqa: E402
from layerscope.operando.align import align_to_cycler  # noqa: E402
from layerscope.operando.series import read_manifest, read_series_patterns  # noqa: E402
from layerscope.refine.sequential import refine_series  # noqa: E402
from layerscope.simulate.operando import simulate_operando  # noqa: E402

CRYSPY_CELLS = {"O3p": (0, 1, 2, 4), "S": (0,)}
CRYSPY_SCALES = ("O3p", "S", "O3", "graphite", "LiC12", "LiC6")


def layerscope_run(patterns, phases, inst, times, fractions):
    stamps = []
    t0 = time.perf_counter()

    def progress(k, n, rec):
        stamps.append(time.perf_counter())

    records, model, layout = refine_series(patterns, phases, inst, times=times, start_fractions=fractions,
                                           progress=progress)
    per = np.diff([t0] + stamps)
    return records, model, layout, per


def _phases_at(full, layout, phases):
    from dataclasses import replace

    out = []
    for p in phases:
        i0 = layout.index(f"{p.name}.a")
        out.append(replace(p, cell=tuple(float(v) for v in full[i0:i0 + 6])))
    return out


def cryspy_refine(start_full, layout, model, phases, inst, tof, y, sigma, cap_s, cutoff=10.0):
    import cryspy
    from cryspy.procedure_rhochi.rhochi_by_dictionary import rhochi_rietveld_refinement_by_dictionary

    from layerscope.refine.engine import Evaluator

    ev = Evaluator(model, layout)
    _, _, bkg = ev.calc(start_full)
    h = start_full[layout.index("hscale")]
    scales = {p.name: h * start_full[layout.index(f"{p.name}.scale")] for p in phases}
    text = bp.cryspy_input(_phases_at(start_full, layout, phases), tof, inst, scales, bkg, gauss=True)
    with contextlib.redirect_stdout(io.StringIO()):
        d = cryspy.str_to_globaln(text).get_dictionary()
    (tk,) = [k for k in d if k.startswith("tof_")]
    d[tk]["signal_exp"] = np.vstack([y, sigma])
    d[tk]["profile_cutoff_fwhm"] = float(cutoff)  # cryspy's fastest route (see bench_pattern.py)
    names = [str(n) for n in d[tk]["phase_name"]]
    for p in CRYSPY_SCALES:
        d[tk]["flags_phase_scale"][names.index(p)] = True
    for p, comps in CRYSPY_CELLS.items():
        for j in comps:
            d[f"crystal_{p.lower()}"]["flags_unit_cell_parameters"][j] = True
    from cryspy.procedure_rhochi.rhochi_by_dictionary import rhochi_calc_chi_sq_by_dictionary

    chi_start = float(rhochi_calc_chi_sq_by_dictionary(d, dict_in_out={})[0]) / len(y)  # untimed
    state = {"t0": time.perf_counter(), "chi": None, "it": 0, "why": "BFGS converged"}

    def progress(info):
        state["it"] = info["iteration"]
        prev, state["chi"] = state["chi"], info["chi_sq"]
        if prev is not None and prev - info["chi_sq"] < 0.01:
            state["why"] = "Δχ² < 0.01"
            return False
        if time.perf_counter() - state["t0"] > cap_s:
            state["why"] = f"cap {cap_s:.0f} s"
            return False
        return True

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        chi_sq, _, _, _ = rhochi_rietveld_refinement_by_dictionary(d, progress_callback=progress)
    dt = time.perf_counter() - t0
    return dt, chi_start, float(chi_sq) / len(y), state["it"], state["why"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patterns", type=int, default=4, help="series patterns refined by layerscope (default 4)")
    ap.add_argument("--cryspy-patterns", type=int, default=2, help="of those, refined by cryspy (default 2)")
    ap.add_argument("--every", type=int, default=2, help="take every n-th 30-min pattern (default 2)")
    ap.add_argument("--cap", type=float, default=600.0, help="cryspy wall-time cap per pattern, s (default 600)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cryspy-cutoff", type=float, default=10.0,
                    help="cryspy peak cutoff c in ±c·(FWHM + 1/α + 1/β), 0 = every peak on every point (default 10)")
    args = ap.parse_args(argv)
    import cryspy

    with tempfile.TemporaryDirectory() as tmp:
        simulate_operando(tmp, seed=args.seed, every=args.every)
        series = Path(tmp) / "series"
        entries = read_manifest(series)[:1 + args.patterns]
        patterns = read_series_patterns(entries)
        inst = read_instprm(series / "gppd_like.instprm")
        times = align_to_cycler(entries, read_cycler(Path(tmp) / "cycler.csv"))
    m = preset("lrm-pouch")
    phases = list(m.phases)
    print(f"series: reference + {args.patterns} patterns (every {args.every}th), {len(patterns[0][1])} TOF points, "
          f"{len(phases)} phases; layerscope {sys.modules['layerscope'].__dict__.get('__version__', '?')}, "
          f"cryspy {cryspy.__version__}")
    records, model, layout, per = layerscope_run(patterns, phases, inst, times, m.fractions)
    print(f"layerscope reference pattern (incl. JIT compile): {per[0]:.1f} s")
    for k in range(1, len(per)):
        r = records[k].row
        print(f"layerscope {records[k].name}: {per[k]:.2f} s  Rwp {r['rwp']:.2f} %  χ²/N {r['gof'] ** 2:.3f}"
              + ("  (first series pattern: compiles stage Jacobians)" if k == 1 else ""))
    ls_times = list(per[2:]) if len(per) > 2 else list(per[1:])
    ls_med = statistics.median(ls_times)
    cr = []
    capped = False
    for k in range(1, 1 + min(args.cryspy_patterns, args.patterns)):
        name, tof, y, s = patterns[k]
        dt, chi0, chi_n, it, why = cryspy_refine(np.array(records[k - 1].full), layout, model, phases, inst, tof, y, s, args.cap,
                                           args.cryspy_cutoff)
        capped |= why.startswith("cap")
        cr.append(dt)
        print(f"cryspy     {name}: {dt:.2f} s  χ²/N {chi0:.3f} -> {chi_n:.3f}  {it} BFGS iterations, stopped: {why}")
    cr_med = statistics.median(cr)
    print(f"median per pattern: layerscope {ls_med:.2f} s (over {len(ls_times)}), cryspy {cr_med:.2f} s (over {len(cr)})")
    print(f"ratio (cryspy / layerscope): {'≥ ' if capped else ''}{cr_med / ls_med:.1f}x  (target ≥ 10x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
