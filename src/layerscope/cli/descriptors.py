"""``layerscope descriptors PHASE_OR_CIF``: DoO, DoD, O vacancy and layer spacings as JSON."""

from __future__ import annotations

import json


def _descriptors(args) -> int:
    from layerscope.crystal.load import load_phases
    from layerscope.descriptors import phase_descriptors

    out = []
    for spec in args.phase:
        for phase, _ in load_phases([spec]):
            d = phase_descriptors(phase)
            if args.percent:
                for k in ("DoO", "DoD", "O_vacancy"):
                    if k in d:
                        d[k] = 100.0 * d[k]
            out.append(d)
    print(json.dumps(out if len(out) > 1 else out[0], indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("descriptors", help="DoO, DoD (eq. 1-2), O vacancy and d_inter/d_intra of a phase")
    p.add_argument("phase", nargs="+", help="preset (e.g. lrm-pristine or lrm-pristine:O3p) or CIF path")
    p.add_argument("--percent", action="store_true", help="report DoO, DoD and O vacancy in %%")
    p.set_defaults(func=_descriptors)
