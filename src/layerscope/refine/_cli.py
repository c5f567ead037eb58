"""``layerscope refine DATA --instprm FILE --phase PHASE... [--strategy STAGES.toml] --out DIR``."""

from __future__ import annotations

from pathlib import Path


def refine_files(data_path, instprm, phase_specs, *, strategy=None, tmin=None, tmax=None, n_background=6,
                 cycles=None, progress=None, conventions=None, calibrate=(), align=None, log=print):
    """Read a pattern, its instrument and phases; refine them (linear start, then the staged strategy).

    Shared by ``layerscope refine`` and the study pipeline's ex-situ neutron analysis.

    The conventions (``refine.conventions``) default to those of the instrument file's code (a
    GSAS-II ``.instprm``: GSAS-II's), then the strategy file's ``[conventions]``, then
    ``conventions`` (a dict of options given by the user) override them; the result records them.
    ``calibrate`` adds instrument terms (``zero``, ``difc``) to the default strategy; ``align``
    switches the cell alignment before least squares on/off (default: the strategy's).
    """
    from dataclasses import replace

    import numpy as np

    from layerscope.crystal.load import load_phases
    from layerscope.diffraction.instrument import read_instprm
    from layerscope.diffraction.readers import read_powder
    from layerscope.refine.conventions import conventions_for
    from layerscope.refine.rietveld import linear_start, refine_pattern
    from layerscope.refine.strategy import default_strategy, read_strategy

    from layerscope._errors import InputError

    say = log or (lambda msg: None)
    data = read_powder(data_path, zero_sigma="keep")
    if data.kind != "tof":
        raise InputError(f"the pattern is {data.kind!r} (2θ) data but {instprm} is a time-of-flight instrument "
                         "file; give a TOF pattern, or a constant-wavelength instrument for this one",
                         path=data_path)
    try:
        inst = read_instprm(instprm)
    except ValueError as exc:
        if "is not a TOF" in str(exc):
            raise InputError(f"{exc}; the pattern {data_path} is time-of-flight data, which needs a TOF "
                             "instrument file (Type PNT)", path=instprm) from None
        raise
    loaded = load_phases(phase_specs)
    phases = [p for p, _ in loaded]
    scales = {p.name: s for p, s in loaded}
    strat = read_strategy(strategy) if strategy else default_strategy([p.name for p in phases], calibrate=calibrate)
    conv = conventions_for(instprm)
    conv = conv.with_options(origin=f"strategy file {strategy}", **strat.conventions)
    if isinstance(conventions, str):
        from layerscope.refine.conventions import PRESETS

        if conventions not in PRESETS:
            raise ValueError(f"conventions must be one of {', '.join(PRESETS)} or a table of options, "
                             f"got {conventions!r}")
        conv = replace(PRESETS[conventions], origin=f"conventions = {conventions!r} (user)")
    else:
        conv = conv.with_options(origin="user", **(conventions or {}))
    strat = replace(strat, lorentz_convention=conv.lorentz)
    if cycles:
        strat = replace(strat, max_cycles=cycles)
    if align is not None:
        strat = replace(strat, align_cells=bool(align))
    say(conv.describe())
    x, y, s = data.x, data.y, data.sigma
    lo = tmin if tmin is not None else x[0]
    hi = tmax if tmax is not None else x[-1]
    m = (x >= lo) & (x <= hi)
    if int(np.sum(m & (s > 0))) < 10:
        from layerscope import InputError

        raise InputError(f"the fit range {lo:g}-{hi:g} holds {int(np.sum(m & (s > 0)))} usable point(s) (data span "
                         f"{float(x[0]):g}-{float(x[-1]):g}); expected a range with at least 10 points of "
                         "positive sigma (check --tmin/--tmax)", path=data_path)
    n_zero_sigma = int(np.sum(m & (s <= 0)))
    m &= s > 0
    if n_zero_sigma:
        say(f"{n_zero_sigma} point(s) with σ = 0 in {data_path}: weight 0 (left out of the fit)")
    n_zero = 0
    if conv.zero_counts == "exclude":
        n_zero = int(np.sum(m & (y <= 0)))
        m &= y > 0
        if n_zero:
            say(f"{n_zero} point(s) with zero counts: weight 0 (convention zero_counts = exclude, as GSAS-II)")
    if m.sum() < 20:
        raise ValueError(f"{data_path}: fewer than 20 points between {lo} and {hi} µs")
    d_min = None
    if conv.reflections == "gsas2":
        d_min = float(inst.d_from_tof(x[m][0]))
    mustrain = size_um = None
    if conv.start_broadening == "gsas2":
        mustrain = {p.name: 1000.0 for p in phases}
        size_um = {p.name: 1.0 for p in phases}
    background = None
    if strat.scale_model == "phase":
        # a linear least-squares estimate of the scales and the background is the usual first step
        scales, background = linear_start(phases, x[m], y[m], s[m], inst, scales, n_background,
                                          scattering=conv.scattering, mustrain=mustrain, size_um=size_um,
                                          lorentz_convention=conv.lorentz, d_min=d_min)
    record = conv.as_dict() | {"d_min_angstrom": d_min, "n_zero_sigma_points": n_zero_sigma,
                               "n_zero_count_points_excluded": n_zero}
    return refine_pattern(x[m], y[m], s[m], phases, inst, strat, scales=scales, n_background=n_background,
                          background=background, progress=progress, mustrain=mustrain, size_um=size_um,
                          d_min=d_min, scattering=conv.scattering, conventions=record, log=say)


def _refine(args) -> int:
    from layerscope.refine.output import write_outputs

    if args.pcr:
        return _refine_pcr(args)
    if not args.data or not args.instprm or not args.phase:
        raise ValueError("refine needs DATA, --instprm FILE and at least one --phase (or --pcr FILE.pcr)")

    def progress(name, fr):
        print(f"stage {name!r}: Rwp {fr.stats.rwp:.2f} %  chi2 {fr.stats.chi2:.3f}  cycles {fr.n_cycles}"
              f"  {'converged' if fr.converged else 'NOT converged'}")

    conventions = args.conventions or {"lorentz": args.lorentz, "scattering": args.scattering, "reflections": args.reflections,
                   "zero_counts": args.zero_counts, "start_broadening": args.start_broadening}
    calibrate = tuple(c.strip() for c in (args.calibrate or "").split(",") if c.strip())
    res = refine_files(args.data, args.instprm, args.phase, strategy=args.strategy, tmin=args.tmin,
                       tmax=args.tmax, n_background=args.nbkg, cycles=args.cycles, progress=progress,
                       conventions=conventions, calibrate=calibrate, align=False if args.no_align else None)
    files = write_outputs(res, args.out, plot=not args.no_plot)
    for w in res.warnings:
        print("warning:", w)
    st = res.final.stats
    print(f"Rwp {st.rwp:.2f} %  Rp {st.rp:.2f} %  Rexp {st.rexp:.2f} %  chi2 {st.chi2:.3f}  -> {files['summary']}")
    return 0 if res.converged else 3


def _refine_pcr(args) -> int:
    """``layerscope refine --pcr FILE.pcr [--data FILE] --out DIR``: re-run a FullProf TOF job with
    FullProf's conventions (exact TOF Lorentzian, Sears 1992 lengths, no starting sample broadening)."""
    from dataclasses import replace

    from layerscope._io import write_text
    from layerscope.refine.conventions import FULLPROF
    from layerscope.refine.output import write_outputs
    from layerscope.refine.pcr import read_pcr
    from layerscope.refine.pcr_run import refine_pcr_job

    job = read_pcr(args.pcr, data=args.data_file or args.data)
    conv = replace(FULLPROF, origin=f"FullProf .pcr {args.pcr}")
    said = []

    def log(msg):
        print(("warning: " if msg.startswith("pcr translation:") else "") + msg)
        said.append(msg)

    res = refine_pcr_job(job, tmin=args.tmin, tmax=args.tmax, cycles=args.cycles, conventions=conv,
                         progress=_progress, log=log)
    files = write_outputs(res, args.out, plot=not args.no_plot)
    # the translation's assumptions (FullProf -> layerscope) are part of the result
    write_text(Path(args.out) / "pcr-translation.txt",
               f"FullProf job {args.pcr} ({job.title})\n" + "".join(f"{m}\n" for m in said))
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
    p.add_argument("--strategy", help="TOML file with [[stage]] tables (default: scales+bkg, cells, sample "
                   "broadening, atoms xyz+Uiso; see the README's 'Strategy files')")
    p.add_argument("--pcr", help="FullProf TOF .pcr file (instead of DATA/--instprm/--phase)")
    p.add_argument("--data", dest="data_file", help="pattern for --pcr (default: the pcr's DAT-file)")
    p.add_argument("--out", required=True, type=Path, help="output folder (summary.json, PHASE.cif, fit.png)")
    p.add_argument("--tmin", type=float, help="lowest TOF (µs) to fit")
    p.add_argument("--tmax", type=float, help="highest TOF (µs) to fit")
    p.add_argument("--nbkg", type=int, default=6, help="number of Chebyshev background terms (default 6)")
    p.add_argument("--cycles", type=int, help="maximum cycles per stage (overrides the strategy)")
    p.add_argument("--no-plot", action="store_true", help="do not write fit.png")
    g = p.add_argument_group("conventions (default: those of the instrument file's code; GSAS-II for .instprm)")
    g.add_argument("--conventions", choices=("gsas2", "fullprof", "layerscope"),
                   help="a named set of all the conventions below (layerscope: those of its simulators)")
    g.add_argument("--lorentz", choices=("exact", "gsas2"), help="TOF Lorentzian: exact convolution or GSAS-II's")
    g.add_argument("--scattering", choices=("sears1992", "gsas2"), help="neutron scattering-length table")
    g.add_argument("--reflections", choices=("tails", "gsas2"),
                   help="reflection cut-off: tails below the first point kept, or d >= low limit / difC (GSAS-II)")
    g.add_argument("--zero-counts", choices=("fit", "exclude"), help="points with zero counts: fitted or weight 0")
    g.add_argument("--start-broadening", choices=("gsas2", "none"),
                   help="starting sample broadening: GSAS-II's 1 µm / 1000e-6, or none")
    p.add_argument("--calibrate", help="instrument terms to refine as a calibration stage, e.g. 'zero' or "
                   "'zero,difc' (default: none: difC and Zero stay at the instrument file's values)")
    p.add_argument("--no-align", action="store_true",
                   help="do not align the cells on a grid before least squares")
    p.set_defaults(func=_refine)
