"""``layerscope demo``: the main job on built-in data (:mod:`layerscope.demo`)."""

from __future__ import annotations

from pathlib import Path


def _demo(args) -> int:
    import time

    from layerscope.demo import run_demo
    from layerscope.simulate.study import simulate_study
    from layerscope.study.runner import run_study
    from layerscope.study.schema import read_study

    t0 = time.perf_counter()
    out = Path(args.out)
    res = run_demo(out / "pattern")
    print(f"[demo] pouch-cell pattern: {res['csv']}")
    toml = simulate_study(out / "data", seed=args.seed, every=args.every, quick=args.quick)
    print(f"[demo] simulated study (every modality, four states): {toml} ({time.perf_counter() - t0:.0f} s)")
    study = read_study(toml)
    run = run_study(study, out)
    n_ok, n_val = run["checks"]
    print(f"[demo] report {run['report']}; results {run['results']}; {n_ok}/{n_val} checks against the "
          f"simulation's ground truth within tolerance")
    print(f"[demo] done in {time.perf_counter() - t0:.0f} s")
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on built-in demo data")
    p.add_argument("--out", default="demo-out", help="output folder (default ./demo-out)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated experiment")
    p.add_argument("--every", type=int, default=2,
                   help="keep every n-th 30-min operando pattern (default 2; 1: all 33)")
    p.add_argument("--quick", action="store_true", help="smaller datasets and no operando series (a fast look)")
    p.set_defaults(func=_demo)
