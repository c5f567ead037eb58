"""Place each pattern's mid-time on the cycler log (voltage, current, capacity, Li content)."""

from __future__ import annotations

import numpy as np

__all__ = ["align_to_cycler"]

_FARADAY_MAH_PER_MOL = 26801.4


def align_to_cycler(entries, log, *, active_mass_g: float | None = None,
                    formula_mass_g_mol: float | None = None) -> list[dict]:
    """Cycler values at the mid-time of each pattern (linear interpolation in time).

    With ``active_mass_g`` and ``formula_mass_g_mol`` the Li extracted per formula unit is
    x = capacity / (F · m / M), the charge passed per mole of cathode.
    Patterns outside the log's time span are an error (a wrong time zero is the usual cause).
    """
    t = np.asarray(log.time_s, dtype=float)
    rows = []
    for e in entries:
        mid = 0.5 * (e.start_s + e.end_s)
        if mid < t[0] - 1e-6 or mid > t[-1] + 1e-6:
            raise ValueError(f"{e.file.name}: mid-time {mid:.0f} s lies outside the cycler log "
                             f"({t[0]:.0f}-{t[-1]:.0f} s): check the manifest's time zero")
        row = {"time_h": mid / 3600.0,
               "voltage_V": float(np.interp(mid, t, log.voltage_V)),
               "current_mA": float(np.interp(mid, t, log.current_mA)),
               "capacity_mAh": float(np.interp(mid, t, log.capacity_mAh))}
        if active_mass_g and formula_mass_g_mol:
            row["li_extracted"] = row["capacity_mAh"] / (_FARADAY_MAH_PER_MOL * active_mass_g / formula_mass_g_mol)
        rows.append(row)
    return rows
