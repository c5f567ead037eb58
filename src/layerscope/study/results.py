"""``results.h5``: one xarray group per analysis table, with units and provenance.

Layout (HDF5 via h5netcdf; open a group with ``xarray.open_dataset(path, group=...)``)::

    /                      attrs: study title, material, layerscope version
    /validation            every check against ground truth (quantity, value, truth, ok, ...)
    /<kind>/<name>/<table> one Dataset per CSV table of the analysis (dimension ``row``);
                           attrs: provenance (package versions, input SHA-256, parameters, JSON),
                           summary (JSON), state; variables carry ``units`` from their names

Units come from the column-name suffix convention used throughout layerscope
(``_nm``, ``_px``, ``_deg``, ``_mAh``, ``_V``, ``_s``, ``_h``, ``_us``, ``_eV``, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from layerscope._io import atomic_path

_SUFFIX_UNITS = {
    "_nm": "nm", "_nm2": "nm²", "_px": "px", "_px2": "px²", "_pm": "pm", "_deg": "deg", "_rad": "rad",
    "_mAh": "mAh", "_mA": "mA", "_V": "V", "_s": "s", "_h": "h", "_us": "µs", "_eV": "eV", "_A2": "Å²",
    "_mWh": "mWh", "_mAh_g": "mAh/g", "_Wh_kg": "Wh/kg", "_percent": "%",
}
_NAME_UNITS = {"a": "Å", "b": "Å", "c": "Å", "beta": "deg", "alpha": "deg", "gamma": "deg", "rwp": "%",
               "d_inter": "Å", "d_intra": "Å", "tof_us": "µs", "y_obs": "counts", "y_calc": "counts"}


def unit_of(column: str) -> str:
    base = column.removesuffix("_esd")
    if base in _NAME_UNITS:
        return _NAME_UNITS[base]
    for suf in sorted(_SUFFIX_UNITS, key=len, reverse=True):
        if base.endswith(suf):
            return _SUFFIX_UNITS[suf]
    if base.endswith(("_a", "_b", "_c")) or base.startswith(("d_inter", "d_intra")):
        return "Å"
    return ""


def table_dataset(csv_path: Path, attrs: dict):
    import pandas as pd
    import xarray as xr

    df = pd.read_csv(csv_path)
    ds = xr.Dataset(coords={"row": np.arange(len(df))})
    for c in df.columns:
        col = df[c]
        if col.dtype == object:
            col = col.fillna("").astype(str)
            ds[c] = ("row", col.to_numpy(dtype=object))
        else:
            ds[c] = ("row", col.to_numpy())
            u = unit_of(c)
            if u:
                ds[c].attrs["units"] = u
    ds.attrs.update(attrs)
    return ds


def validation_dataset(records):
    import xarray as xr

    rows = [(r["kind"], r["name"], v) for r in records for v in r.get("validation", [])]
    n = len(rows)
    ds = xr.Dataset(coords={"check": np.arange(n)})
    ds["analysis"] = ("check", np.array([f"{k}/{m}" for k, m, _ in rows], dtype=object))
    for key in ("quantity", "tolerance", "note"):
        ds[key] = ("check", np.array([str(v[key]) for _, _, v in rows], dtype=object))
    for key in ("value", "truth", "error"):
        ds[key] = ("check", np.array([float(v[key]) for _, _, v in rows]))
    ds["esd"] = ("check", np.array([np.nan if v.get("esd") is None else float(v["esd"]) for _, _, v in rows]))
    ds["ok"] = ("check", np.array([bool(v["ok"]) for _, _, v in rows]))
    ds.attrs["description"] = "results compared with the ground truth of simulated datasets"
    return ds


def write_results(study, records, out: Path) -> Path:
    """Write ``out/results.h5`` (atomically) from the task records."""
    out = Path(out)
    path = out / "results.h5"
    with atomic_path(path, ".h5") as tmp:
        _write_results(tmp, study, records, out)
    return path


def _write_results(tmp: Path, study, records: list[dict], out: Path) -> None:
    import xarray as xr

    from layerscope import __version__

    root = xr.Dataset(attrs={"title": study.title, "material": study.material, "layerscope_version": __version__,
                             "study_file": str(study.path.name),
                             "analyses": json.dumps([f"{r['kind']}/{r['name']}" for r in records])})
    root.to_netcdf(tmp, engine="h5netcdf", mode="w")
    validation_dataset(records).to_netcdf(tmp, engine="h5netcdf", mode="a", group="validation")
    for r in records:
        folder = out / r["kind"] / r["name"]
        attrs = {"provenance": json.dumps(r["provenance"], sort_keys=True),
                 "summary": json.dumps(r["summary"], sort_keys=True), "state": r.get("state") or ""}
        for table, rel in r.get("tables", {}).items():
            p = folder / rel
            if not p.is_file() or p.stat().st_size == 0:
                continue
            ds = table_dataset(p, {**attrs, "source_file": f"{r['kind']}/{r['name']}/{rel}"})
            ds.to_netcdf(tmp, engine="h5netcdf", mode="a", group=f"{r['kind']}/{r['name']}/{table}")
