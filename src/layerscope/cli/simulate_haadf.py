"""``layerscope simulate haadf``: the command line of :mod:`layerscope.simulate.haadf`."""

from __future__ import annotations


def register_simulate(subparsers) -> None:
    p = subparsers.add_parser("haadf", help="HAADF image of a layered oxide with twin variants and its truth")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=384, help="image size, pixels (square; lowmag is 448×640)")
    p.add_argument("--pixel-size-nm", type=float, default=None,
                   help="sampling, nm/px (default 0.015; 1.0 for --scene lowmag)")
    p.add_argument("--dose", type=float, default=4.0e4, help="electron dose, e/Å²")
    p.add_argument("--shell-nm", type=float, nargs=2, default=(2.0, 5.0), metavar=("START", "END"),
                   help="--scene shell: spinel shell thickness along the surface, nm (paper: 2-5 pristine, "
                        "5-10 charged)")
    p.add_argument("--scene", choices=["twins", "I", "II", "O1", "domains", "disordered", "lowmag", "shell"],
                   default="twins",
                   help="twins (Fig. 4), single variant, O3' domains A/B/C along <210> (Fig. 1d), "
                        "disordered O3 along <210> (Supp. Fig. 16b), or low-mag particles with defects (table S4), or a particle edge with a spinel shell (Supp. Fig. 1)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_simulate)


def _run_simulate(args) -> int:
    from layerscope.simulate.haadf.files import write_haadf_simulation

    res = write_haadf_simulation(args.out, scene=args.scene, size=args.size, pixel_size_nm=args.pixel_size_nm,
                                 dose=args.dose, shell_nm=args.shell_nm, seed=args.seed)
    print(res["message"])
    return 0
