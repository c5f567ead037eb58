"""The main job on built-in data (what ``layerscope demo`` runs; the command is :mod:`layerscope.cli.demo`).

1. the TOF neutron pattern of the uncharged graphite || LRM pouch cell — LRM O3' +
   spinel (table S2), Al and Cu current collectors, graphite, LiC12 and LiC6 — on the
   GPPD-like bank (CSV + PNG + .instprm + CIFs);
2. a complete simulated study (``layerscope simulate study``: operando series, ex-situ
   patterns, HAADF images, 4D-STEM scans, EELS, sXAS and cycler logs of the pristine,
   charged, discharged and cycled states, each with its ground truth) run end to end by the
   study pipeline (``layerscope run``): results.h5, report.html mirroring the paper's figures
   and tables, and every number with a truth checked against it.
Weight fractions in the beam follow the cell design of Supp. Fig. 7 (cathode
17.8 mg/cm², anode 16.0 mg/cm² on both sides of each foil; ~15 µm Al and ~8 µm Cu foil).
"""

from __future__ import annotations

from pathlib import Path

#: weight fractions of the uncharged pouch cell's crystalline components in the beam
POUCH_WEIGHT_FRACTIONS = {"O3p": 0.437, "S": 0.0127, "Al": 0.05, "Cu": 0.09, "graphite": 0.41,
                          "LiC12": 0.0, "LiC6": 0.0}


def pouch_cell_phases():
    from layerscope.crystal.presets import preset, preset_phase

    lrm = preset("lrm-uncharged-cell")
    return list(lrm.phases) + [preset_phase(n) for n in ("Al", "Cu", "graphite", "LiC12", "LiC6")]


def run_demo(out_dir: str | Path) -> dict:
    from layerscope.diffraction.pattern_output import compute_and_write_pattern
    from layerscope.diffraction.fractions import scales_from_weight_fractions
    from layerscope.diffraction.instrument import gppd_like, write_instprm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    phases = pouch_cell_phases()
    w = [POUCH_WEIGHT_FRACTIONS[p.name] for p in phases]
    scales = scales_from_weight_fractions(w, phases)
    inst = gppd_like()
    instprm = write_instprm(inst, out / "gppd_like.instprm")
    cifs = []
    from layerscope.crystal.cif import write_cif

    for p in phases:
        cifs.append(write_cif(p, out / f"{p.name}.cif"))
    spec_strings = [f"{p.name}={c}:{s:.10g}" for p, c, s in zip(phases, cifs, scales)]
    res = compute_and_write_pattern(spec_strings, out / "pouch_cell_pattern.csv", instprm=instprm,
                                    title="uncharged graphite || LRM pouch cell (GPPD-like 90° bank)")
    return res
