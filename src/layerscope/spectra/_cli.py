"""``layerscope eels FILE --out DIR``: Mn L3/L2, valence and O-K pre-edge of a spectrum or line scan.

Writes ``DIR/eels.csv`` (one row per spectrum: ``index``, ``position_nm``,
``l3_over_l2``, ``valence``, ``o_pre_edge_ratio``; NaN where an edge is outside
the recorded range) and ``DIR/eels.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerscope._io import atomic_path


def run_eels(args) -> int:
    from matplotlib.figure import Figure

    from layerscope.spectra.eels import line_profile
    from layerscope.spectra.io import read_spectrum

    spec = read_spectrum(args.file)
    counts = np.atleast_2d(spec.counts)
    prof = line_profile(spec.energy_eV, counts, spec.position_nm,
                        mn_background_eV=tuple(args.mn_bg), o_background_eV=tuple(args.o_bg),
                        step_width_eV=args.step_width)
    if np.all(np.isnan(prof.l3_over_l2)) and np.all(np.isnan(prof.o_pre_edge_ratio)):
        raise ValueError(f"{args.file}: energy range {spec.energy_eV.min():.0f}–"
                         f"{spec.energy_eV.max():.0f} eV covers neither the Mn L2,3 "
                         f"({args.mn_bg[0]:.0f}–685 eV) nor the O K ({args.o_bg[0]:.0f}–545 eV) "
                         f"analysis range")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = np.column_stack([np.arange(len(counts)), prof.position_nm, prof.l3_over_l2,
                             prof.valence, prof.o_pre_edge_ratio])
    with atomic_path(out / "eels.csv") as tmp:
        np.savetxt(tmp, table, delimiter=",", comments="",
                   header="index,position_nm,l3_over_l2,valence,o_pre_edge_ratio",
                   fmt=["%d", "%.6g", "%.6g", "%.6g", "%.6g"])
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(spec.energy_eV, counts.T, lw=0.8)
    ax1.set_xlabel("energy loss (eV)")
    ax1.set_ylabel("counts")
    ax2.plot(prof.position_nm, prof.l3_over_l2, "o-", label="Mn L3/L2")
    ax2.set_xlabel("position (nm)" if spec.position_nm is not None else "spectrum")
    ax2.set_ylabel("L3/L2")
    fig.savefig(out / "eels.png", dpi=120)
    first = prof.l3_over_l2[0]
    print(f"{args.file}: {len(counts)} spectra; L3/L2 = {first:.3f}, valence "
          f"{prof.valence[0]:.2f} (first spectrum); wrote {out / 'eels.csv'}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eels", help="Mn L3/L2 ratio, Mn valence and O-K pre-edge of EELS "
                                           "spectra (.dm3/.dm4/.msa/.csv)")
    p.add_argument("file", help="spectrum or line scan")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mn-bg", nargs=2, type=float, default=(600.0, 632.0), metavar=("LO", "HI"),
                   help="power-law background window below Mn L3 (eV)")
    p.add_argument("--o-bg", nargs=2, type=float, default=(490.0, 522.0), metavar=("LO", "HI"),
                   help="power-law background window below O K (eV)")
    p.add_argument("--step-width", type=float, default=1.0,
                   help="arctangent width of the continuum steps (eV)")
    p.set_defaults(func=run_eels)
