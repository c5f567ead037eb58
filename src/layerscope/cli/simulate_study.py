"""``layerscope simulate study --out DIR``: a complete simulated study (every modality, four states)."""

from __future__ import annotations

from pathlib import Path


def _simulate(args) -> int:
    from layerscope.simulate.study import simulate_study

    path = simulate_study(args.out, seed=args.seed, every=args.every, quick=args.quick)
    print(f"wrote {path}; run it with: layerscope run {path} --out {Path(args.out) / 'results'}")
    return 0


def register_simulate(sub) -> None:
    p = sub.add_parser("study", help="a complete simulated study (every modality, four states) + study.toml")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=2, help="keep every n-th 30-min operando pattern (1: all 33)")
    p.add_argument("--quick", action="store_true", help="smaller datasets, no operando series (for tests)")
    p.set_defaults(func=_simulate)
