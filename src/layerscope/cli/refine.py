"""``layerscope refine DATA --instprm FILE --phase PHASE... [--strategy STAGES.toml] --out DIR``."""

from __future__ import annotations

from pathlib import Path

from layerscope._errors import InputError


def refine_files(data_path, instprm, phase_specs, *, strategy=None, tmin=None, tmax=None, n_background=6,
                 cycles=None, progress=None, conventions=None, calibrate=(), align=None, log=print):
    """Read a pattern, its instrument and phases; refine them (linear start, then the staged strategy).

    A thin wrapper of :func:`layerscope.refine.api.refine` (which also takes loaded objects), kept
    for ``layerscope refine`` and the study pipeline's ex-situ neutron analysis.
    """
    from layerscope.refine.api import refine

    return refine(data_path, instrument=instprm, phases=phase_specs, strategy=strategy, conventions=conventions,
                  tmin=tmin, tmax=tmax, n_background=n_background, cycles=cycles, progress=progress,
                  calibrate=calibrate, align=align, log=log)


def _md_axes(specs):
    """``PHASE=H,K,L`` → {phase: (h, k, l)}; InputError-style ValueError naming the bad value."""
    out = {}
    for spec in specs or ():
        name, _, axis = spec.partition("=")
        try:
            ax = tuple(float(v) for v in axis.split(","))
        except ValueError:
            ax = ()
        if not name or len(ax) != 3 or not any(ax):
            raise InputError(f"--march-dollase {spec!r}: expected PHASE=H,K,L (three numbers, not all 0)")
        out[name] = ax
    return out or None


def _refine(args) -> int:
    from layerscope.refine.output import write_outputs

    if args.pcr:
        return _refine_pcr(args)
    if not args.data or not args.instprm or not args.phase:
        raise InputError("refine needs DATA, --instprm FILE and at least one --phase (or --pcr FILE.pcr)")
    from layerscope.refine.cw_run import route

    kind = route(args.data, args.instprm)
    if kind == "cw":
        return _refine_cw(args)
    if kind == "joint":
        return _refine_joint(args)
    if args.limits or args.texture or args.anomalous or args.march_dollase:
        raise InputError("--limits, --texture, --march-dollase and --anomalous apply to constant-wavelength data only "
                         "(a TOF range is --tmin/--tmax)")
    args.data, args.instprm = args.data[0], args.instprm[0]
    if len(args.nbkg) != 1:
        raise InputError("--nbkg: one number for a TOF pattern")
    args.nbkg = args.nbkg[0]

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


def _refine_cw(args) -> int:
    """Constant-wavelength histograms, one instrument file each, refined jointly (``refine.cw_run``)."""
    from layerscope.refine.cw_output import write_cw_outputs
    from layerscope.refine.cw_run import refine_cw_files

    limits = args.limits
    if not limits and (args.tmin is not None or args.tmax is not None):
        limits = [(args.tmin if args.tmin is not None else -1e9, args.tmax if args.tmax is not None else 1e9)]
        print(f"--tmin/--tmax read as the 2θ range {args.tmin}-{args.tmax}° of every histogram")
        limits = [(max(lo, 0.0), min(hi, 180.0)) for lo, hi in limits]
    anomalous = {}
    for spec in args.anomalous or ():
        try:
            el, vals = spec.split("=")
            f1, f2 = (float(v) for v in vals.split(","))
        except ValueError:
            raise InputError(f"--anomalous {spec!r}: expected ELEMENT=FPRIME,FDOUBLEPRIME (e.g. Pb=-4.078,8.501)") \
                from None
        anomalous[el.strip()] = (f1, f2)

    scattering = args.scattering
    if args.conventions and not scattering:
        from layerscope.refine.conventions import PRESETS

        scattering = PRESETS[args.conventions].scattering
    tof_only = [o for o, v in (("--lorentz", args.lorentz), ("--reflections", args.reflections),
                               ("--zero-counts", args.zero_counts), ("--start-broadening", args.start_broadening),
                               ("--calibrate", args.calibrate), ("--no-align", args.no_align)) if v]
    if tof_only:
        print(f"note: {', '.join(tof_only)} apply to TOF refinements only; not used for these CW histograms")

    run = refine_cw_files(args.data, args.instprm, args.phase, strategy=args.strategy, limits=limits,
                          n_background=args.nbkg, cycles=args.cycles, texture=args.texture, anomalous=anomalous,
                          scattering=scattering, prm_reading=args.prm_reading, progress=_print_stage,
                          march_dollase=_md_axes(args.march_dollase))
    files = write_cw_outputs(run, args.out, plot=not args.no_plot)
    return _report_run(run, files)


def _print_stage(name, fr, hs):
    """Progress line of one stage of a multi-histogram refinement (total and per-histogram Rwp)."""
    print(f"stage {name!r}: Rwp {fr.stats.rwp:.3f} % (" + " / ".join(f"{s.rwp:.3f}" for s in hs)
          + f")  chi2 {fr.stats.chi2:.3f}  cycles {fr.n_cycles}  {'converged' if fr.converged else 'NOT converged'}")


def _report_run(run, files) -> int:
    """Warnings and the final line of a multi-histogram refinement (a StagedRun); the exit code."""
    for w in run.warnings:
        print("warning:", w)
    st = run.final.stats
    per = "  ".join(f"hist{i} {r:.3f} %" for i, r in enumerate(run.rwp_by_histogram))
    print(f"Rwp {st.rwp:.3f} % ({per})  Rexp {st.rexp:.3f} %  chi2 {st.chi2:.3f}  -> {files['summary']}")
    return 0 if run.converged else 3


def _refine_pcr(args) -> int:
    """``layerscope refine --pcr FILE.pcr [--data FILE] --out DIR``: re-run a FullProf TOF job with
    FullProf's conventions (exact TOF Lorentzian, Sears 1992 lengths, no starting sample broadening)."""
    from dataclasses import replace

    from layerscope._io import write_text
    from layerscope.refine.conventions import FULLPROF
    from layerscope.refine.output import write_outputs
    from layerscope.refine.pcr import read_pcr
    from layerscope.refine.pcr_run import refine_pcr_job

    job = read_pcr(args.pcr, data=args.data_file or (args.data[0] if args.data else None))
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
    p = sub.add_parser("refine", help="Rietveld refinement of a TOF pattern, or of constant-wavelength "
                       "histograms (X-ray, neutron) refined jointly")
    p.add_argument("data", nargs="*", help="powder pattern(s): TOF (.gsa/.fxye, FullProf .dat, .xye), or CW in 2θ "
                   "(GSAS STD/ESD/ALT raw, .xye/.xy/.csv, .xrdml); several patterns (CW histograms and/or TOF banks) are "
                   "refined jointly against one structure")
    p.add_argument("--instprm", nargs="+", help="instrument file per pattern, same order: GSAS-II .instprm "
                   "(TOF PNT, CW PXC/PNC) or GSAS-I .prm (CW)")
    p.add_argument("--phase", action="append", help="phase: preset, CIF, NAME=SOURCE:SCALE (repeat)")
    p.add_argument("--strategy", help="TOML file with [[stage]] tables (default: scales+bkg, cells, sample "
                   "broadening, atoms xyz+Uiso; see the README's 'Strategy files')")
    p.add_argument("--pcr", help="FullProf TOF .pcr file (instead of DATA/--instprm/--phase)")
    p.add_argument("--data", dest="data_file", help="pattern for --pcr (default: the pcr's DAT-file)")
    p.add_argument("--out", required=True, type=Path, help="output folder (summary.json, PHASE.cif, fit.png)")
    p.add_argument("--tmin", type=float, help="lowest TOF (µs) to fit")
    p.add_argument("--tmax", type=float, help="highest TOF (µs) to fit")
    p.add_argument("--nbkg", type=int, nargs="+", default=[6],
                   help="number of Chebyshev background terms (default 6; CW: one per histogram allowed)")
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
    c = p.add_argument_group("constant-wavelength data")
    c.add_argument("--limits", nargs=2, type=float, action="append", metavar=("LOW", "HIGH"),
                   help="2θ range (degrees) of a histogram; once per histogram in order, or once for all "
                   "(default: the whole pattern; --tmin/--tmax are read as 2θ here); with TOF banks among the "
                   "histograms, a TOF bank's LOW HIGH is in µs and --limits is given once per histogram")
    c.add_argument("--texture", type=int, metavar="ORDER",
                   help="add a spherical-harmonics preferred-orientation stage of this even order on every "
                   "Bragg-Brentano (X-ray) histogram (default: none)")
    c.add_argument("--march-dollase", action="append", metavar="PHASE=H,K,L",
                   help="March-Dollase preferred orientation of PHASE along the reciprocal axis H,K,L (repeat per "
                   "phase; refine it with PHASE@histN.md in a strategy stage)")
    c.add_argument("--anomalous", action="append", metavar="EL=F1,F2",
                   help="X-ray f' and f'' of an element (repeat; default gemmi's Cromer-Liberman at Kα1)")
    c.add_argument("--prm-reading", choices=("gsas2", "as_written"), default="gsas2",
                   help="read GSAS-I .prm files as GSAS-II does (default) or as written")
    p.set_defaults(func=_refine)


def _refine_joint(args) -> int:
    """Several TOF banks, or TOF and CW histograms, refined jointly (``refine.joint_run``)."""
    from layerscope.refine.joint_run import refine_joint_files, write_joint_outputs

    if args.texture or args.anomalous or args.march_dollase:
        raise InputError("--texture, --anomalous and --march-dollase are not available yet for a refinement with "
                         "time-of-flight banks among the histograms")

    run = refine_joint_files(args.data, args.instprm, args.phase, strategy=args.strategy, limits=args.limits,
                             n_background=args.nbkg, cycles=args.cycles, prm_reading=args.prm_reading,
                             progress=_print_stage)
    files = write_joint_outputs(run, args.out)
    return _report_run(run, files)
