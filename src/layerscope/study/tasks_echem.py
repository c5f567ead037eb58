"""Study runner of the cycler logs (``layerscope echem``); see :mod:`layerscope.study.tasks` for the record."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerscope.study._checks import _check, _truth

__all__ = ["run_cycler"]


# ------------------------------------------------------------------------------------------ cycler

def run_cycler(opts, out: Path) -> dict:
    from layerscope.echem.report import write_echem

    res = write_echem(opts["file"], out, mass_mg=opts["mass_mg"], nominal_mAh=opts["nominal_mAh"])
    cycles = res["cycles"]
    ch = np.asarray(cycles["charge_mAh"], float)
    dis = np.asarray(cycles["discharge_mAh"], float)
    # a cycle without one of its halves has NaN there (echem's cycles.csv): use the full cycles
    full = np.flatnonzero(np.isfinite(ch) & np.isfinite(dis) & (np.nan_to_num(ch) > 0) & (np.nan_to_num(dis) > 0))

    def _num(x):
        return float(x) if np.isfinite(x) else None

    summary = {"cycles": len(ch), "first_charge_mAh": _num(ch[0]), "first_discharge_mAh": _num(dis[0]),
               "initial_ce": float(dis[full[0]] / ch[full[0]]) if len(full) else None,
               "retention_last_over_first": float(dis[full[-1]] / dis[full[0]]) if len(full) else None}
    validation = []
    truth = _truth(opts)
    if truth:
        cols = {"charge_mAh": ch, "discharge_mAh": dis}
        for key in ("ce", "avg_charge_V", "avg_discharge_V", "energy_mWh"):
            if key in truth and key in cycles:
                cols[key] = np.asarray(cycles[key], float)
        for key, v in cols.items():
            if key not in truth:
                continue
            t = np.asarray(truth[key])
            k = int(np.argmax(np.abs(v[:len(t)] - t)))
            validation.append(_check(f"{key} (worst of {len(t)} cycles)", v[k], t[k], 0.005, relative=True,
                                     note="0.5 % (sampling of the log)"))
    figures = {p.stem: p.name for p in sorted(p for p in res["files"].values() if p.suffix == ".png")}
    return {"summary": summary, "tables": {"cycles": "cycles.csv", "steps": "steps.csv"}, "figures": figures,
            "validation": validation}
