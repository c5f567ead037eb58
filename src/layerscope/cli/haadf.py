"""``layerscope haadf IMAGE --out DIR``: parse → :func:`layerscope.stem.haadf.analyze_haadf` → write."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from layerscope._io import write_text


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "haadf", help="atomic-resolution HAADF-STEM: columns, unit-cell m/n, variants, GPA strain"
    )
    p.add_argument("image", nargs="+",
                   help="image file(s) (.dm3/.dm4/.emd/.ser/.hspy/.hdf5/.tif/.npy); several images are a batch: "
                        "each one's results go to OUT/<file name without extension>/, and a rerun keeps the "
                        "images finished before (their record.json) and does the rest")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--pixel-size-nm", type=float, default=None, help="override the file's calibration")
    p.add_argument("--denoise", default="du", choices=["du", "wiener", "gaussian", "nlm", "none"])
    p.add_argument("--separation-nm", type=float, default=None,
                   help="minimum column separation for the layered --zone 100 analysis (default: from the "
                        "image's FFT; the any-crystal analysis takes it from the averaged unit cell)")
    p.add_argument("--second-sublattice", action="store_true",
                   help="layered --zone 100 analysis: also fit a second sublattice at midpoints of the first "
                        "(Atomap-style; the any-crystal analysis finds all sublattices itself)")
    p.add_argument("--zone", choices=["100", "210"], default=None,
                   help="the image is a layered oxide along <100>_O3 (twin variants, m/n, boundaries, pores) or "
                        "<210>_O3 (O3' domains A/B/C, Li/TM order). Default: lattice-agnostic analysis of any "
                        "crystal; the <100> layered analyses run only if the lattice is recognised as that "
                        "projection (tolerances in layerscope.stem.analysis.LAYERED_TOLERANCE)")
    p.add_argument("--contrast", choices=["auto", "bright-atoms", "dark-atoms"], default="auto",
                   help="bright-atoms (HAADF/ADF) or dark-atoms (ABF/BF: the image is inverted so that columns "
                        "land on atoms); auto: from the skewness of the band-passed image")
    p.add_argument("--spacing-nm", type=float, default=None,
                   help="calibrate from a known lattice: length of the shortest lattice vector of sublattice 0, nm")
    p.add_argument("--cell", type=float, nargs="+", default=None, metavar="NM",
                   help="calibrate from the known projected 2D cell: A B [GAMMA_DEG] (nm, nm, degrees)")
    p.add_argument("--max-sublattices", type=int, default=4, help="most sublattices (sites of the cell) to fit")
    p.add_argument("--intensity-classes", default=None, metavar="N|auto",
                   help="Gaussian-mixture classes of column intensities per sublattice (StatSTEM-style)")
    p.add_argument("--lowmag", action="store_true",
                   help="low-magnification image: segment particles and count pore/trench defects per particle")
    p.add_argument("--shell", action="store_true",
                   help="particle edge: layered vs spinel map and the surface spinel shell thickness (shell.csv)")
    p.add_argument("--no-figures", action="store_true")
    p.set_defaults(func=_haadf)


def _haadf(args) -> int:
    """One image into --out, or a batch (one folder per image, resumable), holding the folder's lock."""
    from argparse import Namespace

    from layerscope._lock import output_lock

    images = args.image if isinstance(args.image, list) else [args.image]
    with output_lock(args.out, "haadf"):  # one command at a time per output folder
        if len(images) == 1:
            return _run_haadf(Namespace(**{**vars(args), "image": images[0]}))
        return _run_batch(args, images)


def _run_batch(args, images) -> int:
    """Every image of a batch into OUT/<stem>/; ``record.json`` (written last) marks an image done.

    A rerun keeps an image whose record holds the same fingerprint (SHA-256 of the image file,
    the options, the layerscope version), so a batch killed part way resumes where it stopped."""
    import hashlib
    from argparse import Namespace

    from layerscope import __version__
    from layerscope._errors import InputError
    from layerscope._io import file_in

    out = Path(args.out)
    names = [Path(i).stem for i in images]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"images of a batch need distinct file names (their output folders): {dup} repeat")
    plain = (str, int, float, bool, list, type(None))
    opts = {k: v for k, v in sorted(vars(args).items())
            if k not in ("image", "out", "func", "command") and isinstance(v, plain)}
    done = 0
    for k, (img, name) in enumerate(zip(images, names), start=1):
        sub = file_in(out, name)
        try:
            sha = hashlib.sha256(Path(img).read_bytes()).hexdigest()
        except OSError as exc:
            raise InputError(f"an image file ({exc.strerror})", path=img) from None
        fp = hashlib.sha256(json.dumps({"sha256": sha, "options": opts, "layerscope": __version__},
                                       sort_keys=True).encode()).hexdigest()
        rec = sub / "record.json"
        try:
            kept = json.loads(rec.read_text()).get("fingerprint") == fp
        except (OSError, ValueError, AttributeError):
            kept = False
        if kept:
            print(f"[haadf] {k}/{len(images)} {img}: done before, kept")
            done += 1
            continue
        print(f"[haadf] {k}/{len(images)} {img}")
        _run_haadf(Namespace(**{**vars(args), "image": str(img), "out": str(sub)}))
        write_text(rec, json.dumps({"image": str(img), "sha256": sha, "options": opts, "layerscope": __version__,
                                    "fingerprint": fp}, indent=1))
    print(f"[haadf] {len(images)} images ({done} kept from before) → {out}")
    return 0


def _run_haadf(args) -> int:
    """Parse → :func:`layerscope.stem.haadf.analyze_haadf` → :func:`~layerscope.stem.haadf_output.write_haadf`."""
    from layerscope.stem.haadf import analyze_haadf
    from layerscope.stem.haadf_output import write_haadf

    mode = "lowmag" if args.lowmag else "shell" if args.shell else "atomic"
    res = analyze_haadf(args.image, mode=mode, zone=args.zone, pixel_size_nm=args.pixel_size_nm,
                        denoise=args.denoise, separation_nm=args.separation_nm,
                        second_sublattice=args.second_sublattice, contrast=args.contrast, spacing_nm=args.spacing_nm,
                        cell=args.cell, max_sublattices=args.max_sublattices,
                        intensity_classes=args.intensity_classes)
    for w in res.warnings:
        print(f"layerscope haadf: warning: {w}", file=sys.stderr)
    for f in res.flags:
        if f not in res.warnings and not f.startswith("GPA skipped"):
            print(f"layerscope haadf: {f}")
    out = Path(args.out)
    write_haadf(res, out, figures=not args.no_figures)
    s = res.summary
    if res.analysis == "lowmag":
        print(f"{s['particles']} particles, defects per particle {s['defects_per_particle']} → {out}")
    elif res.analysis == "shell":
        print(f"spinel shell {s['shell_thickness_nm']['mean']:.2f} nm mean over {len(res.metrics['shell']['thickness_nm'])} "
              f"stations → {out}")
    elif res.analysis == "zone-210":
        print(f"{s['columns']} columns, {s['cells']} cells, order modulation {s['order_modulation']:.3f} → {out}")
    elif res.analysis == "crystal":
        ag = s["lattice_agreement"]
        print(f"{s['columns']} columns in {len(s['columns_per_sublattice'])} sublattice(s), {s['cells']} cells; "
              f"positions vs FFT lattice {100 * ag['a_rel']:+.2f} % / {100 * ag['b_rel']:+.2f} % → {out}")
    else:
        print(f"{s['columns']} columns, {s['cells']} cells → {out}")
    return 0
