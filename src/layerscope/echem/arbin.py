"""Arbin ``.res`` results files (MS Access / Jet 4 databases).

Read with the pure-Python ``access-parser`` package (Apache-2.0), so no system
tool (``mdbtools``) is needed. The record table is ``Channel_Normal_Table``:
``Test_Time`` (s), ``Current`` (A), ``Voltage`` (V), ``Charge_Capacity`` and
``Discharge_Capacity`` (Ah, counters that reset at each new cycle),
``Cycle_Index`` and ``Step_Index``; rows are ordered by ``Data_Point``. The units are
fixed by Arbin's database schema (the columns carry no unit text); the per-step
current × time check of :func:`layerscope.echem.io.read_cycler` confirms that the
current and the capacity counters agree with them. Cycle numbers are Arbin's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope.echem._checks import as_index
from layerscope.echem._table import (CyclerLog, make_log, net_capacity_from_counters,
                                     start_offset_notes)

#: The Jet database signature at byte 4 of every Access .mdb/.res file.
_JET_MAGIC = b"Standard Jet DB"
_TABLE = "Channel_Normal_Table"
_NEED = ("Data_Point", "Test_Time", "Current", "Voltage", "Charge_Capacity",
         "Discharge_Capacity", "Cycle_Index", "Step_Index")


def read_arbin_res(path) -> CyclerLog:
    """Read an Arbin ``.res`` file into the tidy :class:`CyclerLog` (A → mA, Ah → mAh)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    buf = path.read_bytes()
    if len(buf) == 0:
        raise ValueError(f"{path}: file is empty, expected an Arbin .res (MS Access) file")
    if buf[4:4 + len(_JET_MAGIC)] != _JET_MAGIC:
        raise ValueError(f"{path}: not an Arbin .res file (expected an MS Access 'Standard Jet DB' "
                         f"header, found {buf[:20]!r})")
    if len(buf) % 2048 != 0 and len(buf) % 4096 != 0:
        raise ValueError(f"{path}: Arbin .res file size {len(buf)} is not a whole number of "
                         f"database pages (truncated file?)")
    try:
        from access_parser import AccessParser
    except ImportError as exc:
        raise ImportError(f"{path}: reading Arbin .res files needs the pure-Python "
                          f"'access-parser' package (pip install access-parser)") from exc
    try:
        table = AccessParser(str(path)).parse_table(_TABLE)
    except Exception as exc:
        raise ValueError(f"{path}: could not read table {_TABLE!r} from the Arbin .res file "
                         f"({type(exc).__name__}: {exc}); truncated or damaged?") from exc
    missing = [c for c in _NEED if c not in table]
    if missing:
        raise ValueError(f"{path}: {_TABLE} lacks columns {missing}")
    cols = {c: np.asarray(table[c], dtype=float) for c in _NEED}
    if len(cols["Data_Point"]) == 0:
        raise ValueError(f"{path}: {_TABLE} holds no data points")
    order = np.argsort(cols["Data_Point"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    cycle = as_index(cols["Cycle_Index"], path=path, column="Cycle_Index")
    file_step = as_index(cols["Step_Index"], path=path, column="Step_Index")
    for name in ("Test_Time", "Current", "Voltage", "Charge_Capacity", "Discharge_Capacity"):
        bad = ~np.isfinite(cols[name])
        if bad.any():
            raise InputError(f"{_TABLE}.{name} is missing or not a number", path=path,
                             where=f"data point {cols['Data_Point'][np.flatnonzero(bad)[0]]:.0f}")
    step_raw = file_step + 1000 * cycle
    step = np.r_[1, 1 + np.cumsum(step_raw[1:] != step_raw[:-1])]
    q_mAh = net_capacity_from_counters(1e3 * cols["Charge_Capacity"],
                                       1e3 * cols["Discharge_Capacity"], cycle)
    notes, partial = start_offset_notes(1e3 * cols["Charge_Capacity"][0],
                                        1e3 * cols["Discharge_Capacity"][0], int(cycle[0]))
    q_mAh = q_mAh - q_mAh[0]
    t = cols["Test_Time"]
    return make_log(t - t[0], cols["Voltage"], 1e3 * cols["Current"], q_mAh, cycle, step,
                    source=str(path), meta={"format": "Arbin .res", "file_cycle": cycle,
                                             "file_step": file_step, "cycle_source": "file",
                                             "data_point": cols["Data_Point"].astype(np.int64),
                                             "notes": notes, "partial_start": partial})
