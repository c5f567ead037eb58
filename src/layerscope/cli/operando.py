"""``layerscope operando`` (sequential refinement of an operando series: parse →
:func:`layerscope.operando.api.refine_series` → :func:`~layerscope.operando.api.write_series`) and
``layerscope operando-manifest`` (``series.csv`` from the pattern files' headers)."""

from __future__ import annotations

import sys
from pathlib import Path


def run_operando(series_dir, cycler, out_dir, *, model="lrm-pouch", strategy=None, instprm=None,
                 reverse=False, truth=None, quiet=False, tof_range=None, cif_per_pattern=False) -> dict:
    """``layerscope operando`` on one series: :func:`layerscope.operando.api.refine_series` (checkpointed
    in ``out_dir``, progress on stderr) → :func:`~layerscope.operando.api.write_series`.

    ``instprm``: None, one file, the ``--instprm`` values (``FILE``, or ``BANK=FILE`` per bank) or
    a dict {bank: file}."""
    from layerscope.operando.api import refine_series, stderr_progress, write_series
    from layerscope.operando.instruments import parse_instprm_args

    instprm = parse_instprm_args(instprm)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress, bridged = stderr_progress() if not quiet else (None, None)
    res = refine_series(series_dir, cycler=cycler, instrument=instprm, model=model, strategy=strategy,
                        reverse=reverse, tof_range=tof_range, checkpoint_dir=out, progress=progress,
                        bridge_progress=bridged)
    if not quiet:
        for name, note in res.notes:
            print(f"note: {name}: {note}", file=sys.stderr)
    files = write_series(res, out, truth=truth, cif_per_pattern=cif_per_pattern)
    return {**files, "n_flagged": res.n_flagged, "n_undetermined": res.n_undetermined, "rows": res.rows,
            "records": res.records, "model": res.model, "layout": res.layout, "patterns": res.patterns,
            "instrument": res.instrument, "result": res}


def _operando(args) -> int:
    from layerscope._lock import output_lock

    with output_lock(args.out, "operando"):  # a second `operando` on the same --out stops here
        if len(args.series) > 1 or args.scheduler:
            return _many(args)
        res = run_operando(args.series[0], args.cycler, args.out, model=args.model, strategy=args.strategy,
                           instprm=args.instprm, reverse=args.reverse, truth=args.truth,
                           cif_per_pattern=args.cif_per_pattern)
    cifs = f", {len(res['cifs'])} CIFs in {Path(args.out) / 'cif'}" if "cifs" in res else ""
    print(f"wrote {res['timeseries']}, {res['dataset']}, {res['html']}{cifs} ({res['n_flagged']} pattern(s) "
          f"flagged, {res['n_undetermined']} with a phase not determined)")
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
                                        quiet=True, cif_per_pattern=args.cif_per_pattern) for s, c in zip(args.series, logs)]
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
    p.add_argument("--instprm", action="append", metavar="[BANK=]FILE",
                   help="GSAS-II .instprm (default: the one in the series folder). A series with several banks "
                        "per time step: repeat as BANK=FILE, one per bank of series.csv (e.g. --instprm "
                        "1=bank1.instprm --instprm 2=bank2.instprm); default one *bank<N>*.instprm per bank in "
                        "the series folder")
    p.add_argument("--reverse", action="store_true", help="refine the series from the last pattern back")
    p.add_argument("--truth", help="truth.csv of a simulated series, drawn as dashed lines in the figures")
    p.add_argument("--cif-per-pattern", action="store_true",
                   help="also write OUT/cif/<pattern>.cif for every refined pattern: a pattern block and one block "
                        "per determined phase (refined cell, sites, occupancies, Biso with esds)")
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


