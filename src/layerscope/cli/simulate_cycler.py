"""``layerscope simulate cycler ...``: synthetic cycler records with known capacities.

The command line of :mod:`layerscope.simulate.cycler`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def register_simulate(subparsers) -> None:
    p = subparsers.add_parser("cycler", help="synthetic galvanostatic cycling with known capacities")
    p.add_argument("--cycles", type=int, default=5)
    p.add_argument("--charge-mAh", type=float, default=0.5, dest="charge_mAh")
    p.add_argument("--fade", type=float, default=0.01, help="relative capacity loss per cycle")
    p.add_argument("--ce", type=float, default=0.95, help="Coulombic efficiency of every cycle")
    p.add_argument("--model", default="simple",
                   choices=("simple", "lrm-half-coated", "lrm-half-u", "lrm-pouch-formation",
                            "lrm-pouch-operando", "lrm-pouch-cycling"),
                   help="simple: the sloping cell set by --charge-mAh/--ce/--fade; lrm-*: the "
                        "Li-rich half-cell (coated or uncoated) or the 4 Ah graphite||LRM pouch "
                        "cell (formation, operando first cycle, --cycles cycles at 4 A); the "
                        "truth is written to OUT with the suffix _truth.json")
    p.add_argument("--out", required=True, help="output CSV file (layerscope cycler CSV)")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args) -> int:
    from layerscope.echem.tabular import write_csv
    from layerscope.simulate.cycler import CellModel, galvanostatic_cycles

    from layerscope._errors import InputError
    from layerscope._io import write_text
    from layerscope.simulate.cycler import lrm_half_cell, lrm_pouch_cell

    if args.cycles < 1 or not (0 < args.ce <= 1) or args.charge_mAh <= 0:
        raise InputError("need --cycles >= 1, 0 < --ce <= 1 and --charge-mAh > 0")
    model = getattr(args, "model", "simple")
    if model == "simple":
        qc = args.charge_mAh * (1 - args.fade) ** np.arange(args.cycles)
        log = galvanostatic_cycles(qc, args.ce * qc, current_mA=args.charge_mAh / 5,
                                   cell=CellModel(q_ref_mAh=4 * args.charge_mAh))
    elif model.startswith("lrm-half"):
        log = lrm_half_cell("coated" if model.endswith("coated") else "u-LRM")
    else:
        log = lrm_pouch_cell(model.rsplit("-", 1)[1], n_cycles=args.cycles)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(log, out)
    import json

    truth = {k: np.asarray(v).tolist() for k, v in log.meta["truth"].items()}
    write_text(out.with_name(out.stem + "_truth.json"), json.dumps(truth, indent=1))
    print(f"wrote {out}: {len(log.cycles)} cycles ({model}); truth in {out.stem}_truth.json")
    return 0
