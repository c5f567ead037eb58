"""Bench: the GSAS-II staged NAC refinement (background → phase fraction → cells → NAC microstrain,
GSAS-II's default Lorentzian size/strain broadening throughout) on PG3_22048.

Prints the median wall time of layerscope's four stages (compile included on the first
repeat, reported separately). The peer side (cryspy) is not wired up yet: cryspy needs the
POWGEN calibration and profile translated into its own TOF model, which is still to do.
Run: .venv/bin/python bench/bench_refine.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

D = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "powgen-nac"


def run_layerscope():
    from layerscope.crystal import read_cif
    from layerscope.diffraction.instrument import read_instprm
    from layerscope.diffraction.readers import read_powder
    from layerscope.refine.rietveld import refine_pattern
    from layerscope.refine.strategy import gsas_nac_strategy

    data = read_powder(D / "PG3_22048.gsa")
    m = (data.x >= 11000) & (data.x <= 100000)
    inst = read_instprm(D / "POWGEN_2665.instprm")
    phases = [read_cif(D / "NAC.cif", name="NAC"), read_cif(D / "CaF2.cif", name="CaF2")]
    return refine_pattern(data.x[m], data.y[m], data.sigma[m], phases, inst, gsas_nac_strategy(), lorentz=True)


def main():
    times = []
    for _ in range(3):
        t = time.perf_counter()
        res = run_layerscope()
        times.append(time.perf_counter() - t)
    print(f"layerscope NAC 4 stages: first {times[0]:.1f} s (with JIT compile), median of rest "
          f"{statistics.median(times[1:]):.1f} s; Rwp {[round(fr.stats.rwp, 2) for _, fr in res.stages]}")
    try:
        import cryspy  # noqa: F401
        print("cryspy is installed, but the same TOF job is not set up in cryspy yet: no ratio printed")
    except ImportError:
        print("cryspy not importable: no peer timing")


if __name__ == "__main__":
    main()
