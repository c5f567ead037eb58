"""``layerscope simulate fourd``: the command line of :mod:`layerscope.simulate.fourd`.

Moved here from ``fourd._cli`` so that the analysis package does not import the simulators above it
(tests/test_architecture.py).
"""

from __future__ import annotations

from pathlib import Path


def _simulate(args) -> int:
    from layerscope.fourd.io import write_scan
    from layerscope.simulate.fourd import simulate_fourd

    sim = simulate_fourd(scan_shape=tuple(args.scan), core=args.core, twins=args.twins, seed=args.seed,
                         step_nm=args.step)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_scan(out / "scan.h5", sim.data, pixel_inv_angstrom=sim.geometry.pixel_inv_angstrom, step_nm=sim.step_nm,
               extra={"truth_phase": sim.phase, "truth_rotation": sim.rotation, "truth_twin": sim.twin,
                      "truth_domain": sim.domain})
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

