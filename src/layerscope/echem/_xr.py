"""xarray views of the per-cycle tables (units from the column names, as in ``cycles.csv``)."""

from __future__ import annotations

import numpy as np

#: column-name suffix → unit
_UNITS = (("_mAh_g", "mAh/g"), ("_Wh_kg", "Wh/kg"), ("_mWh", "mWh"), ("_mAh", "mAh"), ("_mA", "mA"),
          ("_V", "V"), ("ce", "1"), ("retention", "1"))


def _unit(name: str) -> str:
    for suffix, unit in _UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def summary_dataset(summary):
    """A :class:`CycleSummary` as an ``xarray.Dataset`` over ``cycle``; NaN cycles keep their note."""
    import xarray as xr

    cols = summary.columns()
    cycle = np.asarray(cols.pop("cycle"))
    data = {}
    for k, v in cols.items():
        arr = np.asarray(v, dtype=str if k == "note" else float)
        data[k] = ("cycle", arr, {"units": _unit(k)} if _unit(k) else {})
    return xr.Dataset(data, coords={"cycle": cycle},
                      attrs={"convention": summary.convention, "mass_mg": summary.mass_mg or float("nan"),
                             "notes": "\n".join(summary.notes)})
