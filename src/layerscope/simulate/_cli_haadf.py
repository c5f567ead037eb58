"""``layerscope simulate haadf``: the command line of :mod:`layerscope.simulate.haadf`.

Moved here from ``stem._cli`` so that the analysis package does not import the simulators above it
(tests/test_architecture.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from layerscope.stem._cli import _write_csv


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
    import tifffile

    from layerscope.simulate.haadf import (
        VARIANT_NAMES, domain_scene, simulate_haadf, simulate_particles_lowmag, twin_scene, uniform_scene,
    )

    if args.pixel_size_nm is None:
        args.pixel_size_nm = {"lowmag": 1.0, "shell": 0.03}.get(args.scene, 0.015)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.scene == "lowmag":
        return _simulate_lowmag(args, out, simulate_particles_lowmag)
    extent = args.size * args.pixel_size_nm * 10
    probe = 0.035
    if args.scene == "twins":
        scene = twin_scene((extent, extent))
    elif args.scene == "shell":
        from layerscope.simulate.haadf import shell_scene

        scene, _ = shell_scene((extent, extent / 2), shell_nm=tuple(args.shell_nm))
        probe = 0.05
    elif args.scene in ("domains", "disordered"):
        scene = domain_scene((extent, extent), order=1.0 if args.scene == "domains" else 0.0)
    else:
        scene = uniform_scene((extent, extent), args.scene)
    shape = (args.size // 2, args.size) if args.scene == "shell" else (args.size, args.size)
    sim = simulate_haadf(scene, pixel_size_nm=args.pixel_size_nm, dose_e_per_A2=args.dose, seed=args.seed,
                         shape=shape, probe_sigma_nm=probe)
    region_names = {"domains": ("A", "B", "C"), "disordered": ("A", "B", "C"),
                    "shell": ("layered", "spinel", "vacuum")}.get(args.scene, VARIANT_NAMES)
    tifffile.imwrite(out / "image.tif", sim.image.astype(np.float32), imagej=True,
                     resolution=(1 / args.pixel_size_nm, 1 / args.pixel_size_nm), metadata={"unit": "nm"})
    px = args.pixel_size_nm
    names = ("TM", "O", "Li")
    _write_csv(
        out / "truth_columns.csv", ["x_px", "y_px", "x_nm", "y_nm", "sublattice", "variant", "layer"],
        zip(sim.columns_px[:, 0], sim.columns_px[:, 1], sim.columns_px[:, 0] * px, sim.columns_px[:, 1] * px,
            [names[s] for s in sim.sublattice], [region_names[v] for v in sim.variant], sim.layer),
    )
    import h5py

    with h5py.File(out / "truth.h5", "w") as f:
        f["variant_map"] = sim.variant_map
        f["pore_mask"] = sim.pore_mask
        f["expected_counts"] = sim.expected
        f.attrs["variant_names"] = list(region_names)
        f.attrs["metadata"] = json.dumps(sim.metadata, default=str)
    print(f"{int(np.sum(sim.sublattice == 0))} TM columns, image {sim.image.shape} → {out}")
    return 0


def _simulate_lowmag(args, out: Path, simulate) -> int:
    import h5py
    import tifffile

    px = args.pixel_size_nm
    sim = simulate(pixel_size_nm=px, seed=args.seed)
    tifffile.imwrite(out / "image.tif", sim.image.astype(np.float32), imagej=True,
                     resolution=(1 / px, 1 / px), metadata={"unit": "nm"})
    with h5py.File(out / "truth.h5", "w") as f:
        f["particle_labels"] = sim.particle_labels
        f["defect_labels"] = sim.defect_labels
        f["defect_particle"] = sim.defect_particle
        f["defects_per_particle"] = np.asarray(sim.defects_per_particle)
    print(f"{len(sim.defects_per_particle)} particles with {list(sim.defects_per_particle)} defects → {out}")
    return 0

