"""``layerscope operando`` (sequential refinement of an operando series) and
``layerscope simulate operando`` (the digital twin of the experiment)."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def run_operando(series_dir, cycler, out_dir, *, model="lrm-pouch", strategy=None, instprm=None,
                 reverse=False, truth=None, quiet=False, tof_range=None) -> dict:
    import numpy as np

    from layerscope.diffraction.instrument import read_instprm
    from layerscope.echem.io import read_cycler
    from layerscope.operando.align import align_to_cycler
    from layerscope.operando.model import load_series_model
    from layerscope.operando.outputs import plot_operando, write_dataset, write_html, write_timeseries
    from layerscope.operando.series import read_manifest, read_series_patterns
    from layerscope.refine.sequential import default_series_protocol, read_series_protocol, refine_series

    series_dir, out = Path(series_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = read_manifest(series_dir)
    if instprm is None:
        found = sorted(series_dir.glob("*.instprm"))
        if len(found) != 1:
            raise ValueError(f"{series_dir}: give --instprm (found {len(found)} .instprm files in the series folder)")
        instprm = found[0]
    inst = read_instprm(instprm)
    smodel = load_series_model(model)
    phases, fractions = list(smodel.phases), dict(smodel.fractions)
    log = read_cycler(cycler)
    times = align_to_cycler(entries, log)
    if not quiet:
        for e, tm in zip(entries, times):
            if tm.get("note"):
                print(f"note: {e.file.name}: {tm['note']}", file=sys.stderr)
    patterns = read_series_patterns(entries, tof_range)
    protocol = read_series_protocol(strategy) if strategy else default_series_protocol()
    t0 = time.perf_counter()

    def progress(k, n, rec):
        if quiet:
            return
        r = rec.row
        bar = "#" * int(30 * (k + 1) / n)
        state = "ok" if r["converged"] else ("FLAGGED" if r.get("flag") else "not converged")
        nd = [k.removeprefix("determined_") for k, v in r.items() if k.startswith("determined_") and not v]
        if nd:
            state += f"; not determined: {', '.join(nd)}"
        print(f"\r[{bar:<30}] {k + 1}/{n} {rec.name} t={r.get('time_h', float('nan')):.2f} h "
              f"Rwp {r['rwp']:.2f} % {state} ({time.perf_counter() - t0:.0f} s)", end="\n", file=sys.stderr)

    def bridged(rec, note):
        if quiet:
            return
        what = f"forward result kept ({note})" if note else f"Rwp {rec.row['rwp']:.2f} %"
        print(f"bridged hold: {rec.name} t={rec.row.get('time_h', float('nan')):.2f} h, held values interpolated "
              f"in time; {what} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    records, model_obj, layout = refine_series(patterns, phases, inst, protocol=protocol, out_dir=out,
                                               reverse=reverse, progress=progress, times=times,
                                               start_fractions=fractions, bridge_progress=bridged)
    rows = [r.row for r in records]
    ts = write_timeseries(rows, out / "timeseries.csv")
    h5 = write_dataset(rows, patterns, out / "operando.h5",
                       provenance={"series": series_dir.resolve(), "cycler": Path(cycler).resolve(),
                                   "model": smodel.source, "strategy": protocol.source,
                                   "strategy_sha256": protocol.digest,
                                   "instrument": Path(instprm).resolve(),
                                   "determined_if": f"fraction esd <= {protocol.max_relative_esd:g} of the value "
                                                    f"and Bragg signal >= {protocol.min_signal:g} sigma",
                                   "convergence": f"shift/esd < {protocol.series.tol:g}"
                                                  + (f" or relative chi2 change < {protocol.chi2_tol:g}"
                                                     if protocol.chi2_tol else "")})
    truth_cols = None
    if truth:
        import csv

        with open(truth) as fh:
            trows = list(csv.DictReader(fh))
        truth_cols = {k: np.array([float(r[k]) for r in trows]) for k in trows[0]}
    figs = plot_operando(rows, patterns, inst, out, truth=truth_cols)
    page = write_html(out, rows, figs, title="layerscope operando refinement",
                      notes=f"{len(rows)} patterns from {series_dir}; model {smodel.source}; strategy "
                            f"{protocol.source}; a phase is determined when its fraction's esd is at most "
                            f"{protocol.max_relative_esd:g} of the value and its Bragg signal at least "
                            f"{protocol.min_signal:g} sigma (values that depend on an undetermined phase are "
                            "drawn as open squares off the line, and shown in brackets below)")
    n_flag = sum(1 for r in rows if not r["converged"])
    n_undet = sum(1 for r in rows if r.get("undetermined"))
    return {"timeseries": ts, "dataset": h5, "figures": figs, "html": page, "n_flagged": n_flag,
            "n_undetermined": n_undet, "rows": rows, "records": records, "model": model_obj, "layout": layout,
            "patterns": patterns, "instrument": inst}


def _operando(args) -> int:
    from layerscope._lock import output_lock

    with output_lock(args.out, "operando"):  # a second `operando` on the same --out stops here
        if len(args.series) > 1 or args.scheduler:
            return _many(args)
        res = run_operando(args.series[0], args.cycler, args.out, model=args.model, strategy=args.strategy,
                           instprm=args.instprm, reverse=args.reverse, truth=args.truth)
    print(f"wrote {res['timeseries']}, {res['dataset']}, {res['html']} ({res['n_flagged']} pattern(s) flagged, "
          f"{res['n_undetermined']} with a phase not determined)")
    return 0


def _many(args) -> int:
    """Independent series (cells, banks, datasets) in parallel on Dask: local threads by default,
    a distributed scheduler with --scheduler ADDRESS."""
    import dask

    if args.cycler and len(args.cycler.split(",")) not in (1, len(args.series)):
        raise ValueError("--cycler takes one log, or one per series separated by commas")
    logs = args.cycler.split(",")
    logs = logs * len(args.series) if len(logs) == 1 else logs
    tasks = [dask.delayed(run_operando)(s, c, Path(args.out) / Path(s).name, model=args.model,
                                        strategy=args.strategy, instprm=args.instprm, reverse=args.reverse,
                                        quiet=True) for s, c in zip(args.series, logs)]
    if args.scheduler:
        from dask.distributed import Client

        with Client(args.scheduler) as client:
            results = client.compute(tasks, sync=True)
    else:
        results = dask.compute(*tasks, scheduler="threads")
    for s, r in zip(args.series, results):
        print(f"{s}: wrote {r['timeseries']} ({r['n_flagged']} flagged)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("operando", help="sequential Rietveld refinement of an operando TOF series")
    p.add_argument("series", nargs="+", help="series folder(s): pattern files + series.csv (file,start_s,end_s)")
    p.add_argument("--cycler", required=True, help="cycler log (layerscope CSV or any supported cycler file)")
    p.add_argument("--model", default="lrm-pouch",
                   help="preset model (default lrm-pouch) or a TOML model file: a [phases] table of "
                        "name = \"preset phase or CIF path\" (paths relative to the model file), optional "
                        "[fractions] of starting weight fractions")
    p.add_argument("--strategy", help="series protocol TOML (default: the built-in operando_lrm.toml)")
    p.add_argument("--instprm", help="GSAS-II .instprm (default: the one in the series folder)")
    p.add_argument("--reverse", action="store_true", help="refine the series from the last pattern back")
    p.add_argument("--truth", help="truth.csv of a simulated series, drawn as dashed lines in the figures")
    p.add_argument("--scheduler", help="Dask scheduler address for several series (default: local threads)")
    p.add_argument("--out", required=True, help="output folder (holds checkpoint.json: re-run to resume)")
    p.set_defaults(func=_operando)
    m = sub.add_parser("operando-manifest", help="write an operando series' series.csv from the pattern files' "
                                                 "header times")
    m.add_argument("series", help="series folder holding the pattern files")
    m.add_argument("--time-zero", help="ISO date-time of the cycler log's t = 0 (needed when the headers hold "
                                       "absolute date-times)")
    m.add_argument("--glob", default="*.gsa", help="pattern files to list (default *.gsa)")
    m.add_argument("--duration-s", type=float, help="counting time when a header gives no end or duration")
    m.add_argument("--bank", type=int, help="bank to read from each file (multi-bank files)")
    m.set_defaults(func=_manifest)


def _manifest(args) -> int:
    from layerscope.operando.series import build_manifest

    entries = build_manifest(args.series, pattern=args.glob, time_zero=args.time_zero, duration_s=args.duration_s,
                             bank=args.bank)
    print(f"wrote {Path(args.series) / 'series.csv'}: {len(entries)} patterns, "
          f"{entries[0].start_s:.0f}-{entries[-1].end_s:.0f} s")
    return 0


