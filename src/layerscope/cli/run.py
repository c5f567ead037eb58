"""``layerscope run STUDY.toml --out DIR``: every analysis of a study file → results.h5 + report.html."""

from __future__ import annotations


def _run(args) -> int:
    from layerscope.study.runner import run_study
    from layerscope.study.schema import describe_schema, read_study

    if args.keys:
        print(describe_schema())
        return 0
    if not args.study or not args.out:
        raise ValueError("run needs STUDY.toml and --out DIR (or --keys)")
    study = read_study(args.study)  # every key checked before any work starts
    print(f"[study] {study.title}: {len(study.datasets)} datasets "
          f"({', '.join(sorted({d.kind for d in study.datasets}))})")
    from layerscope._lock import output_lock

    with output_lock(args.out, "run"):  # a second `run` on the same --out stops here
        res = run_study(study, args.out, scheduler=args.scheduler, only=args.only)
    n_ok, n_val = res["checks"]
    return 0 if n_ok == n_val else 4 if args.strict else 0


def register(sub) -> None:
    p = sub.add_parser("run", help="run every analysis of a study file (TOML) and write results.h5 + report.html")
    p.add_argument("study", nargs="?", help="study file (TOML); `layerscope run --keys` lists its keys")
    p.add_argument("--out", help="output folder (a rerun resumes: finished analyses are kept)")
    p.add_argument("--scheduler", help="dask.distributed scheduler address (default: run here, nothing to start)")
    p.add_argument("--only", nargs="+", metavar="KIND_OR_ID",
                   help="run only these kinds (e.g. haadf) or datasets (e.g. haadf/charged-twins)")
    p.add_argument("--strict", action="store_true", help="exit with status 4 when a check against truth fails")
    p.add_argument("--keys", action="store_true", help="print every key a study file may hold and exit")
    p.set_defaults(func=_run)
