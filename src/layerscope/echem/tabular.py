"""Cycler logs as text or spreadsheet tables: layerscope CSV, Neware/Landt/Arbin exports.

layerscope's own CSV has the columns ``time_s``, ``voltage_V``, ``current_mA``,
``capacity_mAh`` and optional ``cycle``, ``step`` (see :mod:`._table`).
Exports from cycler software name their columns in many ways; the header is
matched against the aliases below (case, blanks and punctuation ignored) and
the unit read from the header (``(A)``/``/A`` vs ``(mA)``, ``Ah`` vs ``mAh``,
``h``/``min``/``s``; ``h:mm:ss`` time strings are accepted too).

Units are never assumed: a current, capacity or voltage column without a unit in its
header, or a numeric time column without one, is an error naming the column (a time
written as ``h:mm:ss`` text needs none). Cycle and step columns must hold whole
numbers.

A capacity column that is never negative and restarts at zero every step or every
cycle is an unsigned counter (Neware, Landt, Novonix and Arbin exports write it so);
it is turned into the net charge of the tidy table with the sign of each step's
current, and where a counter at a step start could be a restart or a continuation,
the one that agrees with the current × time of that interval is taken. A signed
column is taken as the net charge already. Novonix exports (a ``[Summary]`` block
ending in ``[Data]``) are read from the line after ``[Data]``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope._io import atomic_path
from layerscope.echem._checks import as_index
from layerscope.echem._table import (COLUMNS, CyclerLog, make_log,
                                     net_capacity_from_counters, steps_from_current)

# (quantity, alias stems). A header matches when its normalised stem (unit part
# removed) equals one of the stems; the first quantity/alias that matches wins.
_ALIASES = {
    "time": ("times", "totaltime", "testtime", "time", "elapsedtime", "runtime", "relativetime"),
    "voltage": ("voltagev", "voltage", "ewe", "potential", "cellvoltage", "v"),
    "current": ("currentma", "current", "i"),
    "capacity": ("capacitymah", "capacity", "cap", "netcapacity"),
    "charge_capacity": ("chargecapacity", "chgcapacity", "chgcap"),
    "discharge_capacity": ("dischargecapacity", "dchgcapacity", "dchgcap"),
    "cycle": ("cycle", "cycleindex", "cycleid", "cyclenumber"),
    "step": ("step", "stepindex", "stepid", "stepnumber"),
}
_UNIT_SCALE = {
    "time": {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "hr": 3600.0, "": None},
    "voltage": {"v": 1.0, "mv": 1e-3},
    "current": {"ma": 1.0, "a": 1e3, "ua": 1e-3, "na": 1e-6},
    "capacity": {"mah": 1.0, "ah": 1e3, "uah": 1e-3},
}


def _split_header(name: str) -> tuple[str, str]:
    """``'Current(mA)'`` -> ``('current', 'ma')``; ``'voltage_V'`` -> ``('voltage', 'v')``."""
    raw = str(name).strip().lower()
    m = re.match(r"^(.*?)[\s_]*[\(\[/]\s*([a-zμµ.]+)\s*[\)\]]?$", raw)
    if m:
        stem, unit = m.group(1), m.group(2)
    else:
        m = re.match(r"^(.*?)_(s|v|mv|ma|a|ua|mah|ah|uah|h|min)$", raw)
        stem, unit = (m.group(1), m.group(2)) if m else (raw, "")
    unit = unit.replace("μ", "u").replace("µ", "u").replace(".", "")
    return re.sub(r"[^a-z]", "", stem), unit


def _match_columns(headers, path: Path) -> dict[str, tuple[str, float]]:
    found: dict[str, tuple[str, float]] = {}
    parsed = [(h, *_split_header(h)) for h in headers]
    for qty, stems in _ALIASES.items():
        for stem in stems:
            hit = next((p for p in parsed if p[1] == stem and p[0] not in
                        {v[0] for v in found.values()}), None)
            if hit is None:
                continue
            kind = "capacity" if "capacity" in qty else qty
            scale = 1.0
            if kind in _UNIT_SCALE:
                unit = hit[2]
                if unit not in _UNIT_SCALE[kind]:
                    what = "has no unit" if not unit else f"unit {unit!r} not understood"
                    raise InputError(f"column {hit[0]!r} {what} for {kind} (expected one of "
                                     f"{sorted(u for u in _UNIT_SCALE[kind] if u)} in its "
                                     f"header, e.g. '{hit[0]}(mA)')", path=path)
                scale = _UNIT_SCALE[kind][unit]
            found[qty] = (hit[0], scale)
            break
    return found


def _to_seconds(values, path: Path, column: str) -> tuple[np.ndarray, bool]:
    try:
        return np.asarray(values, dtype=float), False
    except (TypeError, ValueError):
        pass
    out = np.empty(len(values))
    for i, v in enumerate(values):
        parts = str(v).strip().split(":")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{path}: column {column!r} row {i + 1}: cannot read time {v!r} "
                             f"(expected seconds or h:mm:ss)") from None
        s = 0.0
        for x in nums:
            s = 60.0 * s + x
        out[i] = s
    return out, True


def table_to_log(columns: dict[str, np.ndarray], path) -> CyclerLog:
    """Convert named columns (header -> values) of an export into a :class:`CyclerLog`."""
    path = Path(path)
    found = _match_columns(list(columns), path)
    missing = [q for q in ("time", "voltage", "current") if q not in found]
    if missing:
        raise ValueError(f"{path}: no column found for {missing}; expected e.g. "
                         f"{', '.join(COLUMNS[:4])} (layerscope CSV) or a cycler export with "
                         f"time, voltage, current and capacity columns; found {list(columns)}")

    def col(q):
        name, scale = found[q]
        vals = columns[name]
        if q == "time":
            secs, was_text = _to_seconds(vals, path, name)
            if scale is None and not was_text:
                raise InputError(f"time column {name!r} has no unit (expected s, min or h in "
                                 f"its header, or h:mm:ss text)", path=path)
            with np.errstate(over="ignore"):  # a value beyond float range: inf, refused below
                return secs if scale is None else scale * secs
        try:
            arr = np.asarray(vals, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: column {name!r} holds non-numeric values") from None
        with np.errstate(over="ignore"):
            return scale * arr

    t, v, i_mA = col("time"), col("voltage"), col("current")
    n = len(t)
    for q, arr in (("time", t), ("voltage", v), ("current", i_mA)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(f"{path}: column {found[q][0]!r} has a missing, non-numeric or out-of-range "
                             f"value at data row {int(np.flatnonzero(bad)[0]) + 1}")
    if n == 0:
        raise InputError("table holds no data rows", path=path)
    file_step = (as_index(columns[found["step"][0]], path=path, column=found["step"][0])
                 if "step" in found else None)
    file_cycle = (as_index(columns[found["cycle"][0]], path=path, column=found["cycle"][0])
                  if "cycle" in found else None)
    step = file_step if file_step is not None else steps_from_current(i_mA)
    if file_cycle is not None:
        step = step + 1_000_000 * file_cycle
    step = np.r_[1, 1 + np.cumsum(step[1:] != step[:-1])]
    cycle = file_cycle
    # Signed I·Δt of the interval ending at each row: decides restart vs continuation.
    with np.errstate(over="ignore", invalid="ignore"):
        expected = i_mA * np.r_[0.0, np.diff(t)] / 3600.0
    if not np.all(np.isfinite(expected)):
        row = int(np.flatnonzero(~np.isfinite(expected))[0]) + 1
        raise InputError(f"current × time step beyond floating-point range at data row {row}: a value of "
                         f"{found['current'][0]!r} or {found['time'][0]!r} far beyond any real cycler's",
                         path=path, where=f"data row {row}")
    if "charge_capacity" in found and "discharge_capacity" in found:
        q = net_capacity_from_counters(col("charge_capacity"), col("discharge_capacity"), step,
                                       expected_mAh=expected)
    elif "capacity" in found:
        cap = col("capacity")
        if found["capacity"][0] != "capacity_mAh" and _is_step_counter(cap, i_mA, step):
            sign = _step_sign(i_mA, step)
            q = net_capacity_from_counters(np.where(sign > 0, cap, 0.0),
                                           np.where(sign < 0, cap, 0.0), step,
                                           expected_mAh=expected)
        else:
            q = cap - cap[0]
    else:
        q = np.r_[0.0, np.cumsum(0.5 * (i_mA[1:] + i_mA[:-1]) * np.diff(t))] / 3600.0
    q = q - q[0]
    meta = {"format": "table", "columns": {k: c for k, (c, _) in found.items()},
            "units": {k: f"{c} x {sc} -> layerscope units" for k, (c, sc) in found.items()},
            "notes": []}
    if file_cycle is not None:
        meta.update(file_cycle=file_cycle, cycle_source="file")
    if file_step is not None:
        meta["file_step"] = file_step
    return make_log(t - t[0], v, i_mA, q, cycle, step, source=str(path), meta=meta)


def _novonix_data_line(path: Path) -> int:
    """Lines to skip in a Novonix export (its ``[Summary]`` block up to ``[Data]``), else 0."""
    with open(path, "rb") as fh:
        head = fh.read(65536).decode("utf-8", "replace").splitlines()
    if not head or not head[0].strip().startswith("[Summary]"):
        return 0
    for k, line in enumerate(head):
        if line.strip().startswith("[Data]"):
            return k + 1
    raise InputError("Novonix export: a '[Summary]' block without a '[Data]' line", path=path)


def _is_step_counter(cap: np.ndarray, current_mA: np.ndarray, step: np.ndarray) -> bool:
    """True when ``cap`` is unsigned and restarts near zero at every active step."""
    if np.any(cap < 0) or not np.any(np.diff(cap) < 0):
        return False
    starts = np.flatnonzero(np.r_[True, step[1:] != step[:-1]])
    active = _step_sign(current_mA, step)[starts] != 0
    # Near zero: below what the step's first logging interval could have passed.
    tol = 0.05 * np.max(cap) + 1e-12
    return bool(np.all(cap[starts[active]] <= tol))


def _step_sign(current_mA: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Per-row sign of the mean current of the step the row belongs to."""
    starts = np.r_[True, step[1:] != step[:-1]]
    block = np.cumsum(starts) - 1
    total = np.bincount(block, weights=current_mA)
    return np.sign(total)[block]


def read_table(path) -> CyclerLog:
    """Read a CSV/TSV/TXT or XLSX/XLS cycler table into a :class:`CyclerLog`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: file is empty, expected a cycler table with a header row")
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xls"):
            with open(path, "rb") as fh:
                head = fh.read(4)
            if suffix == ".xlsx" and head != b"PK\x03\x04":
                raise ValueError(f"{path}: not an .xlsx workbook (expected a zip archive)")
            try:
                sheets = pd.read_excel(path, sheet_name=None)
            except ImportError as exc:
                raise ImportError(f"{path}: reading Excel files needs 'openpyxl' "
                                  f"(pip install openpyxl)") from exc
            # The record sheet is the one with the most rows that has a voltage column.
            best = None
            for name, df in sheets.items():
                if any(_split_header(c)[0] in _ALIASES["voltage"] for c in df.columns):
                    if best is None or len(df) > len(best):
                        best = df
            if best is None:
                raise ValueError(f"{path}: no sheet with a voltage column "
                                 f"(sheets: {list(sheets)})")
            df = best
        else:
            skip = _novonix_data_line(path)
            df = pd.read_csv(path, sep=None, engine="python", comment=None if skip else "#",
                             skiprows=skip)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: could not parse the table ({type(exc).__name__}: {exc})") from exc
    if len(df) == 0:
        raise ValueError(f"{path}: table has a header but no data rows")
    return table_to_log({c: df[c].to_numpy() for c in df.columns}, path)


def write_csv(log: CyclerLog, path) -> Path:
    """Write a :class:`CyclerLog` as layerscope CSV (atomically)."""
    path = Path(path)
    data = np.column_stack([log.time_s, log.voltage_V, log.current_mA, log.capacity_mAh,
                            log.cycle, log.step])
    with atomic_path(path) as tmp:
        np.savetxt(tmp, data, delimiter=",", header=",".join(COLUMNS), comments="",
                   fmt=["%.6f", "%.6f", "%.9g", "%.9g", "%d", "%d"])
    return path
