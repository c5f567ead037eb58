"""``layerscope echem FILE [--convention cathode|anode|full] [--mass-mg M] [--nominal-mAh C] --out DIR``.

``--convention`` says which half cycle is reversible and how CE is defined
(:mod:`layerscope.echem.analysis`): ``cathode`` (default) and ``full``: charge then
discharge, CE = Q_dis/Q_ch; ``anode`` (anode half-cell vs Li): discharge
(lithiation) then charge, CE = Q_ch/Q_dis. What the reader had to assume or could not
count, and every cycle that lacks a half, is printed and written to ``DIR/notes.txt``.

Writes ``DIR/cycles.csv`` (one row per cycle; the columns ``cycle``,
``charge_mAh``, ``discharge_mAh``, ``ce``, ``avg_charge_V``,
``avg_discharge_V``, ``energy_mWh`` come first, further columns after them),
``DIR/steps.csv``, ``DIR/log.csv`` (the tidy cycler table), ``DIR/rate.csv``
when a nominal capacity is given, and the figures ``gcd.png``,
``cycling.png``, ``dqdv.png``, ``voltage_time.png`` (and ``rate.png``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def run_echem(args) -> int:
    """Parse → :func:`layerscope.echem.report.write_echem` → print what it found."""
    from layerscope.echem.report import write_echem

    gitt_len = getattr(args, "gitt_length_um", None)
    convention = getattr(args, "convention", None) or "cathode"
    res = write_echem(args.file, args.out, mass_mg=args.mass_mg, nominal_mAh=args.nominal_mAh,
                      convention=convention, gitt_length_um=gitt_len)
    out, g, log, summary = Path(args.out), res["gitt"], res["log"], res["summary"]
    if g is not None:
        print(f"GITT: {len(g.tau_s)} pulses, {int(np.isfinite(g.D_cm2_s).sum())} with a diffusion "
              f"coefficient (Weppner-Huggins, L = {gitt_len} um); wrote {out / 'gitt.csv'}")
    for n in res["notes"][1:]:
        print(f"note: {n}")
    full = summary.full_cycles()
    print(f"{args.file}: {len(log)} points, {len(summary.cycle)} cycles "
          f"({int(full.sum())} with charge and discharge); initial CE "
          f"({convention} convention) {summary.initial_ce:.4f}; wrote {out / 'cycles.csv'}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "echem", help="summarise a cycler file (BioLogic .mpr/.mpt, Neware .nda/.ndax, Arbin "
                      ".res, Maccor text, Neware/Arbin/Landt/Novonix CSV/XLSX) per cycle")
    p.add_argument("file", help="cycler file")
    p.add_argument("--convention", choices=("cathode", "anode", "full"), default="cathode",
                   help="cathode half-cell (default; charge first, CE = discharge/charge), "
                        "anode half-cell (discharge first, CE = charge/discharge) or full cell")
    p.add_argument("--mass-mg", type=float, default=None, dest="mass_mg",
                   help="active-material mass in mg (adds mAh/g and Wh/kg columns)")
    p.add_argument("--nominal-mAh", type=float, default=None, dest="nominal_mAh",
                   help="nominal capacity in mAh (adds C-rates and a rate table)")
    p.add_argument("--gitt-length-um", type=float, default=None, dest="gitt_length_um",
                   help="GITT: diffusion length L in um (film thickness, or r/3 for spheres); "
                        "writes gitt.csv with the Weppner-Huggins D of every pulse")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run_echem)
