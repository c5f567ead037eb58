"""Per-pattern time of the sequential (operando) refinement, a fresh process's first pattern,
and the same patterns refined one at a time from scratch in GSAS-II-like settings (optionally cryspy).

The series: the simulated graphite || LRM pouch-cell experiment (``layerscope simulate operando``,
seed 0, 4 000 log-spaced TOF points of the ``gppd_like()`` bank, 8 phases), its 60-min reference
pattern and the first ``--patterns`` series patterns (every ``--every``-th 30-min pattern).

layerscope: :func:`layerscope.operando.sequential.refine_series` with the built-in protocol
(``operando_lrm.toml``) exactly as ``layerscope operando`` runs it — the reference refined fully,
then per pattern stage 1 (12 Chebyshev background terms, histogram scale, the six LRM/anode
scales, the O3', O3 and spinel cells; O3 below 2 % keeps its cell fixed) and stage 2 (+ the Al
cell and twelve O3'/O3 occupancies reduced by the protocol's constraints/ties), with the
O-conservation constraint, the per-pattern cell trust region, the plausibility checks, the
observables with esds and the determination flags. Each pattern's wall and CPU time
(``time.process_time``: all threads of this process, so a loaded machine inflates wall time
but much less CPU time) come from the progress callback. The median skips the first series
pattern (it compiles the series' two stage Jacobians).

The first pattern of a fresh process, compilation included: this process is fresh, with JAX's
persistent compilation cache (``layerscope._jaxcache``, as the command line enables it) pointed
at an empty folder (``--cache-dir``, default a temporary one): everything is compiled ("cold").
A child process then refines the reference and the first series pattern again with that folder
filled ("warm": what every later ``layerscope operando`` run on the machine sees; tracing is
still paid, the XLA compilation is read from disk). Printed: time from the child's start
(imports included) to the reference's result, the reference alone, and the first series pattern.

GSAS-II-like baseline (``--baseline-patterns``, default all): each series pattern refined on its
own as a new job, started from the previous pattern's sequential result (GSAS-II's sequential
refinement with "copy results to next histogram"; started from the reference instead, patterns
1.5 h later fall out of the least-squares basin: χ²/N 500-700), with the same two stages, constraints,
bounds and O-conservation, but GSAS-II's cycle schedule (``least_squares(schedule="gsas2")``:
plain Gauss–Newton, Marquardt λ only after a χ² rise, converged when χ² falls by less than
0.1 % in a cycle) and none of the series logic (no predictor, trust region, min_fraction
hysteresis, checks or retries). It runs in this process after the series (kernels warm), so its
times are what one refinement per pattern costs; a GSAS-II job per pattern would add its own
setup. cryspy (``--cryspy-patterns N``, default 0; cryspy's Rietveld path for TOF, scipy BFGS
with numerical derivatives, peak cutoff 10, stopped when an iteration lowers χ² by < 0.01 or
at ``--cap`` s) refines the same patterns from the previous layerscope result with the same six
scales and the O3' (a, b, c, β) and spinel (a) cells free; it has no occupancy stage,
Chebyshev background or multi-parameter constraints, so it does less work
(``_cryspy_model``/``bench_pattern.cryspy_input`` write its input from the same ``Phase`` objects).

The load average of the machine (``os.getloadavg``) is printed before and after: the timings
mean little without it on a shared machine.

Run: ``.venv/bin/python bench/bench_operando.py [--patterns 6] [--every 2] [--cryspy-patterns 0]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_T0 = (time.perf_counter(), time.process_time())

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_pattern as bp  # noqa: E402  (cryspy input writer from the same Phase objects)

from layerscope.crystal import preset  # noqa: E402
from layerscope.diffraction.instrument import read_instprm  # noqa: E402
from layerscope.echem.io import read_cycler  # noqa: E402
from layerscope.operando.align import align_to_cycler  # noqa: E402
from layerscope.operando.series import read_manifest, read_series_patterns  # noqa: E402
from layerscope.operando.sequential import refine_series  # noqa: E402
from layerscope.simulate.operando import simulate_operando  # noqa: E402

CRYSPY_CELLS = {"O3p": (0, 1, 2, 4), "S": (0,)}
CRYSPY_SCALES = ("O3p", "S", "O3", "graphite", "LiC12", "LiC6")


def _load(series_dir: Path, n: int):
    entries = read_manifest(series_dir / "series")[:1 + n]
    patterns = read_series_patterns(entries)
    inst = read_instprm(series_dir / "series" / "gppd_like.instprm")
    times = align_to_cycler(entries, read_cycler(series_dir / "cycler.csv"))
    return patterns, inst, times


def layerscope_run(patterns, phases, inst, times, fractions):
    """refine_series with per-pattern (wall, CPU) times from its progress callback."""
    stamps = [(time.perf_counter(), time.process_time())]

    def progress(k, n, rec):
        stamps.append((time.perf_counter(), time.process_time()))

    records, model, layout = refine_series(patterns, phases, inst, times=times, start_fractions=fractions,
                                           progress=progress)
    st = np.array(stamps)
    return records, model, layout, np.diff(st[:, 0]), np.diff(st[:, 1])


def baseline_run(records, patterns, model, layout, phases, fractions):
    """Each series pattern refined alone from the reference's refined values, GSAS-II's schedule
    (see the module docstring). Returns [(name, wall s, CPU s, FitResult, stage rules)]."""
    from layerscope.refine.engine import Evaluator
    from layerscope.refine.parameters import free_set
    from layerscope.operando.guards import _window_bounds
    from layerscope.operando.protocol import default_series_protocol
    from layerscope.operando.stages import conservation_totals, refine_one, stop_rules
    from layerscope.refine.strategy import stage_bounds

    protocol = default_series_protocol()
    ref = np.array(records[0].full)
    totals = conservation_totals(ref, layout, model, protocol)
    bounds = _window_bounds(stage_bounds(layout, protocol.series), ref, layout, protocol)
    union = list(dict.fromkeys(f for st in protocol.series.stages for f in st.free))
    out = []
    for k, (name, _, y, s) in enumerate(patterns[1:], start=1):
        # a new refinement job per pattern; its compiled kernels are those of the series (shared
        # by shape), so the times compare the refinements, not compilations
        ev = Evaluator(model, layout)
        ev.share_kernels(free_set(layout, ref, union).jacobian_columns)
        t0, c0 = time.perf_counter(), time.process_time()
        full, fr, log = refine_one(ev, layout, model, np.array(records[k - 1].full), y, s, protocol.series, protocol,
                                   bounds, totals, schedule="gsas2")
        out.append((name, time.perf_counter() - t0, time.process_time() - c0, fr, stop_rules(log)))
    return out


def child(series_dir: str) -> int:
    """A fresh process (its cache folder from the environment): reference + first series pattern."""
    from layerscope._jaxcache import enable_compilation_cache

    enable_compilation_cache()
    patterns, inst, times = _load(Path(series_dir), 1)
    m = preset("lrm-pouch")
    start_wall, start_cpu = time.perf_counter() - _T0[0], time.process_time()
    _, _, _, wall, cpu = layerscope_run(patterns, list(m.phases), inst, times, m.fractions)
    print(json.dumps({"imports_s": start_wall, "imports_cpu_s": start_cpu, "wall": list(wall), "cpu": list(cpu)}))
    return 0


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


def _load_text() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patterns", type=int, default=6, help="series patterns refined (default 6)")
    ap.add_argument("--every", type=int, default=2, help="take every n-th 30-min pattern (default 2)")
    ap.add_argument("--baseline-patterns", type=int, default=None,
                    help="series patterns refined one at a time in GSAS-II-like settings (default: all)")
    ap.add_argument("--cryspy-patterns", type=int, default=0, help="series patterns refined by cryspy (default 0)")
    ap.add_argument("--cap", type=float, default=600.0, help="cryspy wall-time cap per pattern, s (default 600)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cryspy-cutoff", type=float, default=10.0,
                    help="cryspy peak cutoff c in ±c·(FWHM + 1/α + 1/β), 0 = every peak on every point (default 10)")
    ap.add_argument("--cache-dir", default=None,
                    help="JAX compilation cache folder (default: a new temporary one, i.e. a cold start)")
    ap.add_argument("--no-child", action="store_true", help="skip the warm-cache fresh-process run")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child)
    from layerscope._jaxcache import enable_compilation_cache

    load0 = _load_text()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache_dir) if args.cache_dir else Path(tmp) / "jax-cache"
        os.environ["LAYERSCOPE_JAX_CACHE"] = str(cache)
        cold = not (cache.exists() and any(cache.iterdir()))
        enable_compilation_cache()
        imports_s = time.perf_counter() - _T0[0]
        simulate_operando(tmp, seed=args.seed, every=args.every)
        patterns, inst, times = _load(Path(tmp), args.patterns)
        m = preset("lrm-pouch")
        phases = list(m.phases)
        print(f"series: reference + {len(patterns) - 1} patterns (every {args.every}th), {len(patterns[0][1])} TOF "
              f"points, {len(phases)} phases; load average {load0} (1, 5, 15 min) on {os.cpu_count()} CPUs")
        records, model, layout, wall, cpu = layerscope_run(patterns, phases, inst, times, m.fractions)
        print(f"fresh process, {'cold' if cold else 'warm'} compilation cache: imports {imports_s:.1f} s; "
              f"reference {wall[0]:.1f} s (CPU {cpu[0]:.1f} s), first series pattern {wall[1]:.1f} s "
              f"(CPU {cpu[1]:.1f} s)")
        for k in range(1, len(wall)):
            r = records[k].row
            print(f"layerscope {records[k].name}: {wall[k]:.2f} s (CPU {cpu[k]:.2f} s)  Rwp {r['rwp']:.2f} %  "
                  f"χ²/N {r['gof'] ** 2:.3f}  {r['stages']}")
        later = slice(2, None) if len(wall) > 2 else slice(1, None)
        ls_med, ls_cpu = statistics.median(wall[later]), statistics.median(cpu[later])
        print(f"layerscope median per pattern: {ls_med:.2f} s wall, {ls_cpu:.2f} s CPU (over {len(wall[later])}, "
              "the first series pattern left out)")
        if not args.no_child:
            env = {**os.environ, "LAYERSCOPE_JAX_CACHE": str(cache)}
            r = subprocess.run([sys.executable, __file__, "--child", tmp], env=env, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"warm-cache child process failed:\n{r.stderr[-2000:]}")
            else:
                c = json.loads(r.stdout.strip().splitlines()[-1])
                print(f"fresh process, warm caches: start to reference result "
                      f"{c['imports_s'] + c['wall'][0]:.1f} s wall, {c['imports_cpu_s'] + c['cpu'][0]:.1f} s CPU "
                      f"(start-up and imports {c['imports_s']:.1f} s, CPU {c['imports_cpu_s']:.1f} s; reference "
                      f"{c['wall'][0]:.1f} s, CPU {c['cpu'][0]:.1f} s); first series pattern {c['wall'][1]:.1f} s "
                      f"(CPU {c['cpu'][1]:.1f} s)")
        nb = len(patterns) - 1 if args.baseline_patterns is None else min(args.baseline_patterns, len(patterns) - 1)
        base = baseline_run(records, patterns[:1 + nb], model, layout, phases, m.fractions) if nb else []
        for (name, w, c, fr, rules), rec in zip(base, records[1:]):
            print(f"GSAS-II-like {name}: {w:.2f} s (CPU {c:.2f} s)  Rwp {fr.stats.rwp:.2f} %  χ²/N "
                  f"{fr.stats.gof ** 2:.3f} (sequential {rec.row['gof'] ** 2:.3f})  {rules}")
        if base:
            b_med = statistics.median([b[1] for b in base])
            b_cpu = statistics.median([b[2] for b in base])
            print(f"GSAS-II-like median per pattern: {b_med:.2f} s wall, {b_cpu:.2f} s CPU (over {len(base)}); "
                  f"ratio to layerscope's sequential refinement {b_med / ls_med:.1f}x wall, {b_cpu / ls_cpu:.1f}x CPU")
        cr, capped = [], False
        for k in range(1, 1 + min(args.cryspy_patterns, len(patterns) - 1)):
            name, tof, y, s = patterns[k]
            dt, chi0, chi_n, it, why = cryspy_refine(np.array(records[k - 1].full), layout, model, phases, inst, tof,
                                                     y, s, args.cap, args.cryspy_cutoff)
            capped |= why.startswith("cap")
            cr.append(dt)
            print(f"cryspy     {name}: {dt:.2f} s  χ²/N {chi0:.3f} -> {chi_n:.3f}  {it} BFGS iterations, stopped: {why}")
        if cr:
            cr_med = statistics.median(cr)
            print(f"cryspy median per pattern {cr_med:.2f} s (over {len(cr)}); ratio (cryspy / layerscope): "
                  f"{'≥ ' if capped else ''}{cr_med / ls_med:.1f}x")
    print(f"load average after: {_load_text()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
