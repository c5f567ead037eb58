"""``layerscope refine DATA --instprm FILE --phase PHASE... [--strategy STAGES.toml] --out DIR``."""

from __future__ import annotations

from pathlib import Path


def refine_files(data_path, instprm, phase_specs, *, strategy=None, tmin=None, tmax=None, n_background=6,
                 cycles=None, progress=None):
    """Read a pattern, its instrument and phases; refine them (linear start, then the staged strategy).

    Shared by ``layerscope refine`` and the study pipeline's ex-situ neutron analysis."""
    from layerscope.crystal.load import load_phases
    from layerscope.diffraction.instrument import read_instprm
    from layerscope.diffraction.readers import read_powder
    from layerscope.refine.rietveld import linear_start, refine_pattern
    from layerscope.refine.strategy import default_strategy, read_strategy

    data = read_powder(data_path)
    inst = read_instprm(instprm)
    loaded = load_phases(phase_specs)
    phases = [p for p, _ in loaded]
    scales = {p.name: s for p, s in loaded}
    x, y, s = data.x, data.y, data.sigma
    lo = tmin if tmin is not None else x[0]
    hi = tmax if tmax is not None else x[-1]
    m = (x >= lo) & (x <= hi)
    if m.sum() < 20:
        raise ValueError(f"{data_path}: fewer than 20 points between {lo} and {hi} µs")
    strat = read_strategy(strategy) if strategy else default_strategy([p.name for p in phases])
    if cycles:
        from dataclasses import replace

        strat = replace(strat, max_cycles=cycles)
    background = None
    if strat.scale_model == "phase":
        # a linear least-squares estimate of the scales and the background is the usual first step
        scales, background = linear_start(phases, x[m], y[m], s[m], inst, scales, n_background)
    return refine_pattern(x[m], y[m], s[m], phases, inst, strat, scales=scales, n_background=n_background,
                          background=background, progress=progress)


def _refine(args) -> int:
    from layerscope.refine.output import write_outputs

    if args.pcr:
        return _refine_pcr(args)
    if not args.data or not args.instprm or not args.phase:
        raise ValueError("refine needs DATA, --instprm FILE and at least one --phase (or --pcr FILE.pcr)")

    def progress(name, fr):
        print(f"stage {name!r}: Rwp {fr.stats.rwp:.2f} %  chi2 {fr.stats.chi2:.3f}  cycles {fr.n_cycles}"
              f"  {'converged' if fr.converged else 'NOT converged'}")

    res = refine_files(args.data, args.instprm, args.phase, strategy=args.strategy, tmin=args.tmin,
                       tmax=args.tmax, n_background=args.nbkg, cycles=args.cycles, progress=progress)
    files = write_outputs(res, args.out, plot=not args.no_plot)
    for w in res.warnings:
        print("warning:", w)
    st = res.final.stats
    print(f"Rwp {st.rwp:.2f} %  Rp {st.rp:.2f} %  Rexp {st.rexp:.2f} %  chi2 {st.chi2:.3f}  -> {files['summary']}")
    return 0 if res.converged else 3


def _refine_pcr(args) -> int:
    """``layerscope refine --pcr FILE.pcr [--data FILE] --out DIR``: re-run a FullProf TOF job."""
    import numpy as np

    from layerscope.diffraction.readers import read_powder
    from layerscope.refine.output import write_outputs
    from layerscope.refine.pcr import read_pcr
    from layerscope.refine.rietveld import linear_start, refine_pattern

    job = read_pcr(args.pcr, data=args.data_file or args.data)
    if not job.data_file.is_file():
        raise FileNotFoundError(f"{job.data_file}: data file named by {args.pcr} not found (give it with --data)")
    data = read_powder(job.data_file, kind="tof")
    x, y, s = data.x, data.y, data.sigma
    lo, hi = job.tof_range_us
    lo = args.tmin if args.tmin is not None else lo
    hi = args.tmax if args.tmax is not None else hi
    m = (x >= lo) & (x <= hi)
    for a, b in job.excluded_us:
        m &= ~((x >= a) & (x <= b))
    if m.sum() < 20:
        raise ValueError(f"{job.data_file}: fewer than 20 points between {lo} and {hi} µs")
    strategy = job.strategy
    if args.cycles:
        from dataclasses import replace

        strategy = replace(strategy, max_cycles=args.cycles)
    scales, background = linear_start(list(job.phases), x[m], y[m], s[m], job.instrument, job.scales,
                                      job.n_background)
    res = refine_pattern(x[m], y[m], s[m], list(job.phases), job.instrument, strategy, scales=scales,
                         n_background=job.n_background, background=np.asarray(background),
                         absorption=job.absorption, progress=_progress)
    files = write_outputs(res, args.out, plot=not args.no_plot)
    for w in res.warnings:
        print("warning:", w)
    st = res.final.stats
    print(f"{job.title}: Rwp {st.rwp:.2f} %  Rp {st.rp:.2f} %  Rexp {st.rexp:.2f} %  chi2 {st.chi2:.3f}"
          f"  -> {files['summary']}")
    return 0 if res.converged else 3


def _progress(name, fr):
    print(f"stage {name!r}: Rwp {fr.stats.rwp:.2f} %  chi2 {fr.stats.chi2:.3f}  cycles {fr.n_cycles}"
          f"  {'converged' if fr.converged else 'NOT converged'}")


def register(sub) -> None:
    p = sub.add_parser("refine", help="Rietveld refinement of a TOF powder pattern")
    p.add_argument("data", nargs="?", help="powder pattern (.gsa/.fxye, FullProf .dat, .xye)")
    p.add_argument("--instprm", help="GSAS-II .instprm instrument file")
    p.add_argument("--phase", action="append", help="phase: preset, CIF, NAME=SOURCE:SCALE (repeat)")
    p.add_argument("--strategy", help="TOML file with [[stage]] tables (default: scales+bkg, cells, zero, Biso+xyz)")
    p.add_argument("--pcr", help="FullProf TOF .pcr file (instead of DATA/--instprm/--phase)")
    p.add_argument("--data", dest="data_file", help="pattern for --pcr (default: the pcr's DAT-file)")
    p.add_argument("--out", required=True, type=Path, help="output folder (summary.json, PHASE.cif, fit.png)")
    p.add_argument("--tmin", type=float, help="lowest TOF (µs) to fit")
    p.add_argument("--tmax", type=float, help="highest TOF (µs) to fit")
    p.add_argument("--nbkg", type=int, default=6, help="number of Chebyshev background terms (default 6)")
    p.add_argument("--cycles", type=int, help="maximum cycles per stage (overrides the strategy)")
    p.add_argument("--no-plot", action="store_true", help="do not write fit.png")
    p.set_defaults(func=_refine)
