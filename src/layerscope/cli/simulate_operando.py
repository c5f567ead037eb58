"""``layerscope simulate operando``: the command line of :mod:`layerscope.simulate.operando`."""

from __future__ import annotations


def _simulate(args) -> int:
    from layerscope.simulate.operando import simulate_operando

    res = simulate_operando(args.out, seed=args.seed, every=args.every)
    print(f"wrote {res['n_patterns']} patterns to {res['series']}, {res['cycler']} and {res['truth']}")
    return 0


def register_simulate(sub) -> None:
    p = sub.add_parser("operando", help="simulate the operando pouch-cell experiment with ground truth")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=1, help="keep every n-th 30-min pattern (default 1)")
    p.set_defaults(func=_simulate)

