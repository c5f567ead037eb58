"""``layerscope simulate fourd``: the command line of :mod:`layerscope.simulate.fourd`."""

from __future__ import annotations

from pathlib import Path


def _simulate(args) -> int:
    from layerscope.simulate.fourd import write_fourd_simulation

    out = Path(args.out)
    sim = write_fourd_simulation(out, scan_shape=tuple(args.scan), core=args.core, twins=args.twins, seed=args.seed,
                                 step_nm=args.step)
    print(f"wrote {out / 'scan.h5'}: {sim.data.shape} patterns; truth phases {sim.phase_names}")
    return 0


def register_simulate(sim_sub) -> None:
    s = sim_sub.add_parser("fourd", help="4D-STEM scan of an LRM particle with ground truth")
    s.add_argument("--out", required=True, help="output folder (scan.h5 with truth_* datasets)")
    s.add_argument("--scan", type=int, nargs=2, default=(40, 40), help="probe positions (y x)")
    s.add_argument("--step", type=float, default=2.0, help="step size (nm)")
    s.add_argument("--core", choices=("O3p", "O3"), default="O3p")
    s.add_argument("--twins", action="store_true", help="(001) twin lamellae in an O3 core")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_simulate)

