"""``layerscope zone-axis``, ``layerscope fourd`` and ``layerscope simulate fourd``."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _phase(spec: str):
    from layerscope.crystal import load_phases

    phases = load_phases([spec])
    if len(phases) != 1:
        raise ValueError(f"{spec!r} names {len(phases)} phases; give one (e.g. lrm-pristine:O3p)")
    return phases[0][0]


def _zone_axis(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from layerscope.diffraction import electron as el

    phase = _phase(args.phase)
    uvw = (args.u, args.v, args.w)
    twin = None
    if args.twin:
        laws = el.paper_twin_laws(phase)
        if args.twin not in laws:
            raise ValueError(f"unknown twin {args.twin!r}; choose one of {sorted(laws)}")
        twin = laws[args.twin]
    pat = el.zone_axis_pattern(phase, uvw, twin=twin, kv=args.kv, precession_deg=args.precession,
                               thickness_nm=args.thickness, g_max_inv_angstrom=args.gmax)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.set_facecolor("black")
    rel = pat.intensity / pat.intensity.max()
    for v, colour in ((0, "white"), (1, "orange")):
        s = pat.variant == v
        ax.scatter(pat.g_xy[s, 0], pat.g_xy[s, 1], s=300 * np.sqrt(rel[s]), c=colour, alpha=0.85, linewidths=0)
    ax.scatter([0], [0], s=300, c="white")
    if args.labels:
        for (x, y), h, r in zip(pat.g_xy[pat.variant == 0], pat.hkl[pat.variant == 0], rel[pat.variant == 0]):
            if r > 0.02:
                ax.annotate("".join(f"{int(round(i))}" if i >= 0 else f"-{-int(round(i))}" for i in h), (x, y),
                            color="cyan", fontsize=6, ha="center", va="bottom")
    lim = args.gmax * 1.05
    ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
    ax.set_xlabel("g_x (1/Å)"), ax.set_ylabel("g_y (1/Å)")
    title = f"{phase.name} [{' '.join(str(i) for i in uvw)}]  {args.kv:g} kV, precession {args.precession:g}°"
    ax.set_title(title + (f"\n+ {twin.name} (orange)" if twin else ""), fontsize=9)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {out} ({len(pat.hkl)} spots)")
    return 0


def _fourd(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from layerscope.diffraction.electron import paper_twin_laws
    from layerscope.fourd import (
        build_library, disc_mask, index_scan, ipf_colours, paper_detector, prepare_matcher, read_scan,
        virtual_image, write_maps,
    )
    from layerscope.fourd.detector import DetectorGeometry
    from layerscope.fourd.maps import twin_map

    scan = read_scan(args.scan, chunk_positions=args.chunk,
                     scan_shape=tuple(args.scan_shape) if args.scan_shape else None)
    ky, kx = scan.data.shape[2:]
    paper = paper_detector(kv=args.kv, convergence_mrad=args.convergence, pixels=ky)
    pix = args.pixel_size or scan.pixel_inv_angstrom or paper.pixel_inv_angstrom
    geo = DetectorGeometry((ky, kx), pix, (ky / 2.0, kx / 2.0), paper.disc_radius_px * paper.pixel_inv_angstrom / pix)
    phases = [_phase(p) for p in args.phase]
    lib = build_library(phases, geo, spacing_deg=args.spacing, kv=args.kv, precession_deg=args.precession)
    matcher = prepare_matcher(lib)
    maps = index_scan(scan.data, matcher, scheduler=args.scheduler)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vbf = virtual_image(scan.data, disc_mask((ky, kx), geo.centre_px, 2 * geo.disc_radius_px)).compute()
    extra = {"vbf": vbf}
    for code, ph in enumerate(phases, start=2):
        if ph.space_group.number in (12, 166):
            for name, law in paper_twin_laws(ph).items():
                extra[f"twin_{ph.name}_{name.strip('(){}')}"] = twin_map(maps, code, law, lib.symmetry[code - 2])
    write_maps(out / "maps.h5", maps, extra=extra,
               attrs={"source": str(args.scan), "library_spacing_deg": args.spacing, "kv": args.kv,
                      "pixel_inv_angstrom": pix})
    plt.imsave(out / "vbf.png", vbf, cmap="gray")
    cmap = plt.get_cmap("tab10")
    colours = np.array([[0, 0, 0]] + [cmap(i)[:3] for i in range(9)])
    plt.imsave(out / "phase_map.png", colours[np.clip(maps.phase, 0, 9)])
    plt.imsave(out / "orientation_map.png", ipf_colours(maps, {c: s for c, s in enumerate(lib.symmetry, start=2)}))
    counts = {n: int((maps.phase == i).sum()) for i, n in enumerate(maps.phase_names)}
    print(f"indexed {maps.phase.size} patterns against {len(lib)} templates: {counts}; wrote {out}")
    return 0


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


def register(sub) -> None:
    z = sub.add_parser("zone-axis", help="kinematic zone-axis electron diffraction pattern of a phase")
    z.add_argument("phase", help="preset phase (e.g. lrm-pristine:O3p) or CIF file")
    for k in "uvw":
        z.add_argument(k, type=int)
    z.add_argument("--out", required=True, help="PNG file")
    z.add_argument("--kv", type=float, default=200.0)
    z.add_argument("--precession", type=float, default=0.8, help="precession angle (deg)")
    z.add_argument("--thickness", type=float, default=30.0, help="specimen thickness (nm)")
    z.add_argument("--gmax", type=float, default=1.2, help="largest |g| shown (1/Å)")
    z.add_argument("--twin", help="overlay a twin variant of Supp. Fig. 18: '(001)' or '{012}'")
    z.add_argument("--labels", action="store_true", help="label spots with hkl")
    z.set_defaults(func=_zone_axis)

    f = sub.add_parser("fourd", help="4D-STEM phase / orientation / twin maps by template matching")
    f.add_argument("scan", help=".npy, .h5/.hdf5/.emd (Dectris/Arina), .hspy, .zspy, .mib or .blo")
    f.add_argument("--phase", nargs="+", required=True, help="phases to match (preset names or CIF files)")
    f.add_argument("--out", required=True, help="output folder")
    f.add_argument("--spacing", type=float, default=1.0, help="template library spacing (deg)")
    f.add_argument("--kv", type=float, default=200.0)
    f.add_argument("--convergence", type=float, default=1.5, help="convergence semi-angle (mrad)")
    f.add_argument("--precession", type=float, default=0.8, help="precession angle (deg)")
    f.add_argument("--pixel-size", type=float, help="detector calibration (1/Å per pixel)")
    f.add_argument("--scan-shape", type=int, nargs=2, help="scan (y, x) for 3-D frame stacks")
    f.add_argument("--chunk", type=int, default=32, help="probe positions per chunk side")
    f.add_argument("--scheduler", help="dask.distributed scheduler address (default: local threads)")
    f.set_defaults(func=_fourd)


def register_simulate(sim_sub) -> None:
    s = sim_sub.add_parser("fourd", help="4D-STEM scan of an LRM particle with ground truth")
    s.add_argument("--out", required=True, help="output folder (scan.h5 with truth_* datasets)")
    s.add_argument("--scan", type=int, nargs=2, default=(40, 40), help="probe positions (y x)")
    s.add_argument("--step", type=float, default=2.0, help="step size (nm)")
    s.add_argument("--core", choices=("O3p", "O3"), default="O3p")
    s.add_argument("--twins", action="store_true", help="(001) twin lamellae in an O3 core")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_simulate)
