"""Maccor text files: the ``MaccorExport`` text export and the per-channel data files (``.0xx``).

Both are tab-separated text: a header block (one line in the channel files, e.g.
``Today's Date ... Procedure: ... Comment/Barcode: ...``; several lines in the export,
``Today's Date:``, ``Filename:``, ``Procedure:``), then the column line that starts with
``Rec#`` and one row per record. The layout was read off the files in the shared data
(cellpy's ``maccor_cellpy_001.txt``, BEEP's ``000151.052`` and ``000109.010``), and the
conventions are Maccor's as BEEP and cellpy apply them:

* ``Cyc#``, ``Step``: cycle and step numbers (integers); ``State``: ``C`` charge,
  ``D`` discharge, ``R`` rest, ``O`` other; ``ES`` the end status (≥ 128 marks a step's
  last record).
* ``Amps``, ``Volts``, ``Amp-hr``, ``Watt-hr``: A, V, Ah, Wh (units from the column names;
  ``mAmps`` / ``mAmp-hr`` style names are read as mA / mAh). ``Amp-hr`` restarts at 0 at
  every step and only grows inside it; some exports write ``Amps`` unsigned, others
  signed: the sign is taken from ``State`` and a signed column that contradicts the
  state is an error.
* Test time: ``Test (Sec)`` in seconds, or ``TestTime`` as ``Nd HH:MM:SS.s`` text.

Maccor's binary raw files (before export) have no maintained open reader; they are
refused with an error that asks for a text export. Written by hand because the readers
that exist (cellpy, BEEP) pull in large dependency trees for a 60-line text format.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope.echem._checks import as_index
from layerscope.echem._table import CyclerLog, assign_cycles, make_log, net_capacity_from_counters

_CURRENT_UNITS = {"amps": 1e3, "amp": 1e3, "a": 1e3, "mamps": 1.0, "ma": 1.0, "current(a)": 1e3,
                  "current(ma)": 1.0}
_CAPACITY_UNITS = {"amp-hr": 1e3, "ah": 1e3, "mamp-hr": 1.0, "mah": 1.0, "capacity(ah)": 1e3,
                   "capacity(mah)": 1.0}
_VOLT_UNITS = {"volts": 1.0, "v": 1.0, "mvolts": 1e-3, "mv": 1e-3, "voltage(v)": 1.0}
_TIME_SECONDS = ("test (sec)", "test(sec)", "testtime(s)")
_TIME_TEXT = ("testtime", "test time")


def is_maccor_text(path: Path) -> bool:
    """True when one of the first 30 lines starts with ``Rec#`` (Maccor's column line)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    if b"\x00" in head[:4096]:
        return False
    return any(line.lstrip().startswith(b"Rec#") for line in head.splitlines()[:30])


def _header_line(path: Path) -> tuple[int, list[str]]:
    with open(path, encoding="latin-1") as fh:
        for k, line in enumerate(fh):
            if line.lstrip().startswith("Rec#"):
                return k, [c.strip() for c in line.rstrip("\r\n").split("\t")]
            if k > 30:
                break
    raise InputError("no Maccor column line starting with 'Rec#' in the first 30 lines",
                     path=path)


def _pick(cols: list[str], table: dict, what: str, path: Path) -> tuple[str, float]:
    for c in cols:
        if c.lower() in table:
            return c, table[c.lower()]
    raise InputError(f"no {what} column (expected one of {sorted(table)}); found {cols}",
                     path=path)


_DHMS = re.compile(r"^\s*(?:(\d+)d\s+)?(\d+):(\d+):(\d+(?:\.\d*)?)\s*$")


def _dhms_seconds(values, path: Path, column: str) -> np.ndarray:
    out = np.empty(len(values))
    for k, v in enumerate(values):
        m = _DHMS.match(str(v))
        if not m:
            raise InputError(f"cannot read test time {v!r} (expected 'Nd HH:MM:SS.s')", path=path,
                             where=f"column {column!r}, data row {k + 1}")
        d, h, mi, s = m.groups()
        try:
            out[k] = 86400.0 * int(d or 0) + 3600.0 * int(h) + 60.0 * int(mi) + float(s)
        except OverflowError:
            raise InputError(f"test time {v!r} is too large to be a time", path=path,
                             where=f"column {column!r}, data row {k + 1}") from None
    return out


def read_maccor_columns(path):
    """The Maccor record table as a pandas DataFrame, plus the header block's lines."""
    import pandas as pd

    path = Path(path)
    k, cols = _header_line(path)
    with open(path, encoding="latin-1") as fh:
        header = [next(fh).rstrip("\r\n") for _ in range(k)]
    try:
        df = pd.read_csv(path, sep="\t", skiprows=k, encoding="latin-1", dtype=str,
                         keep_default_na=False)
    except Exception as exc:
        raise InputError(f"could not parse the Maccor table ({type(exc).__name__}: {exc})",
                         path=path, where=f"line {k + 1}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    return df, header


def read_maccor(path) -> CyclerLog:
    """Read a Maccor text export or per-channel data file into the tidy :class:`CyclerLog`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError("file is empty, expected a Maccor text file", path=path)
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if b"\x00" in head:
        raise InputError("this looks like a Maccor binary raw file, which layerscope cannot read "
                         "(no maintained open reader exists): export it as text with Maccor's "
                         "MaccorExport and read that", path=path)
    df, header = read_maccor_columns(path)
    if len(df) == 0:
        raise InputError("Maccor table has a column line but no data rows", path=path)
    cols = list(df.columns)
    low = {c.lower(): c for c in cols}
    for need in ("rec#", "cyc#", "step", "state"):
        if need not in low:
            raise InputError(f"Maccor column {need!r} missing; found {cols}", path=path)
    i_col, i_scale = _pick(cols, _CURRENT_UNITS, "current (Amps)", path)
    q_col, q_scale = _pick(cols, _CAPACITY_UNITS, "capacity (Amp-hr)", path)
    v_col, v_scale = _pick(cols, _VOLT_UNITS, "voltage (Volts)", path)

    def num(c):
        import pandas as pd

        arr = pd.to_numeric(df[c].str.strip(), errors="coerce").to_numpy(float)
        bad = ~np.isfinite(arr)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise InputError(f"column {c!r} holds {df[c].iloc[k]!r}, expected a number",
                             path=path, where=f"data row {k + 1}")
        return arr

    t_col = next((low[c] for c in _TIME_SECONDS if c in low), None)
    if t_col is not None:
        t = num(t_col)
    else:
        t_col = next((low[c] for c in _TIME_TEXT if c in low), None)
        if t_col is None:
            raise InputError(f"no test-time column ('Test (Sec)' or 'TestTime'); found {cols}",
                             path=path)
        t = _dhms_seconds(df[t_col].to_numpy(), path, t_col)
    rec = as_index(num(low["rec#"]), path=path, column="Rec#")
    cyc_file = as_index(num(low["cyc#"]), path=path, column="Cyc#")
    step_file = as_index(num(low["step"]), path=path, column="Step")
    state = df[low["state"]].str.strip().str.upper().to_numpy()
    amps = num(i_col) * i_scale
    volts = num(v_col) * v_scale
    cap = num(q_col) * q_scale
    sign = np.where(state == "C", 1.0, np.where(state == "D", -1.0, 0.0))
    active = sign != 0
    if np.any(amps < 0):  # signed export: it must agree with the state
        wrong = active & (np.sign(amps) * sign < 0) & (np.abs(amps) > 0)
        if wrong.any():
            k = int(np.flatnonzero(wrong)[0])
            raise InputError(f"current {amps[k] / i_scale:g} ({i_col}) has the wrong sign for "
                             f"state {state[k]!r}", path=path, where=f"record {rec[k]}")
    i_mA = np.abs(amps) * sign
    step_key = cyc_file * 100000 + step_file
    step = np.r_[1, 1 + np.cumsum(step_key[1:] != step_key[:-1])]
    notes = []
    # Amp-hr restarts at each step: at a record's first row it is an offset (charge passed
    # before the file began), not an increment of the record.
    charge = np.where(sign > 0, cap, 0.0)
    discharge = np.where(sign < 0, cap, 0.0)
    q = net_capacity_from_counters(charge, discharge, step)
    q = q - q[0]
    partial = None
    if active[0] and cap[0] > 0:
        notes.append(f"cycle {cyc_file[0]} step {step_file[0]} began before the first record: "
                     f"{cap[0]:.6g} mAh had passed and is not counted")
        partial = int(cyc_file[0])
    cycle = cyc_file
    if len(np.unique(cyc_file)) == 1 and np.count_nonzero(np.diff(sign[active]) != 0) >= 2:
        cycle = assign_cycles(i_mA, step)
        notes.append(f"the file's cycle column is constant ({cyc_file[0]}): cycles were assigned "
                     f"from the current (a charge then a discharge)")
    meta = {"format": "Maccor text", "header": header, "columns": cols, "n_columns": len(cols),
            "units": {"current": f"{i_col} x {i_scale:g} -> mA", "capacity":
                      f"{q_col} x {q_scale:g} -> mAh", "voltage": f"{v_col} x {v_scale:g} -> V",
                      "time": t_col},
            "file_cycle": cyc_file, "file_step": step_file, "notes": notes,
            "cycle_source": "file" if cycle is cyc_file else "assigned",
            "partial_start": None if partial is None else int(cycle[0])}
    return make_log(t - t[0], volts, i_mA, q, cycle, step, source=str(path), meta=meta)
