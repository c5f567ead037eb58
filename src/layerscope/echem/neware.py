"""Neware BTS ``.nda`` / ``.ndax`` files through the NewareNDA package (BSD-3).

NewareNDA returns per-step counters ``Charge_Capacity(mAh)`` and
``Discharge_Capacity(mAh)`` (reset at every step), the current in mA and a
``Time`` column that, depending on the file version, is either the test time
or the time within the step. The conversion here makes time continuous from
the wall-clock ``Timestamp`` of each step's first point and builds the net
capacity with :func:`net_capacity_from_counters`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from layerscope.echem._checks import as_index
from layerscope.echem._table import (CyclerLog, make_log, net_capacity_from_counters,
                                     start_offset_notes)

_NDA_MAGIC = b"NEWARE"


def _check_neware(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path}: file is empty, expected a Neware .nda/.ndax file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if path.suffix.lower() == ".ndax":
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path}: not a Neware .ndax file (expected a zip archive, "
                             f"found {head!r}); the file may be truncated")
    elif not head.startswith(_NDA_MAGIC):
        raise ValueError(f"{path}: not a Neware .nda file (expected the header 'NEWARE', "
                         f"found {head!r})")
    else:
        _check_nda_complete(path)


def _check_nda_complete(path: Path) -> None:
    """Truncation check for version-130 ``.nda`` files.

    In these files the data records (fixed length, from byte 1024) are closed
    by a trailer record whose first byte is 0x81; a file cut short has no
    trailer. (Version-29 files have no such marker and are not checked.)
    """
    buf = path.read_bytes()
    if len(buf) < 1030 or buf[14] != 130:
        return
    rec_len = 88
    if buf[1024] == 0x55:
        rec_len = buf.find(buf[1024:1026], 1026) - 1024
        if rec_len <= 0:
            raise ValueError(f"{path}: Neware .nda file has a single data record or none "
                             f"(truncated file?)")
    n = (len(buf) - 1024) // rec_len
    first_bytes = np.frombuffer(buf, np.uint8, count=n * rec_len, offset=1024)[::rec_len]
    if not np.any(first_bytes == 0x81):
        raise ValueError(f"{path}: Neware .nda file has no end-of-data record "
                         f"(truncated file?)")


def _continuous_time_s(time_s: np.ndarray, stamp_s: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Test time from step-relative times and per-step wall-clock starts."""
    if np.all(np.diff(time_s) >= 0):
        return time_s - time_s[0]
    starts = np.r_[True, step[1:] != step[:-1]]
    block = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    offset = (stamp_s[first] - stamp_s[0]) - time_s[first]
    return time_s + offset[block]


def read_neware(path) -> CyclerLog:
    """Read a Neware ``.nda`` or ``.ndax`` file into the tidy :class:`CyclerLog`.

    Cycle numbers are Neware's own; steps are Neware's step indices, made
    unique per contiguous block.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    _check_neware(path)
    try:
        import NewareNDA
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise ImportError("reading Neware files needs the 'NewareNDA' package "
                          "(pip install NewareNDA)") from exc
    import warnings

    try:
        with warnings.catch_warnings():
            # NewareNDA's own pandas deprecations (inplace=...), not about the data.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            df = NewareNDA.read(str(path))
    except Exception as exc:  # NewareNDA raises bare errors on damaged files
        raise ValueError(f"{path}: NewareNDA could not read the file "
                         f"({type(exc).__name__}: {exc}); truncated or damaged?") from exc
    if len(df) == 0:
        raise ValueError(f"{path}: Neware file holds no data points")
    step_raw = as_index(df["Step"].to_numpy(), path=path, column="Step")
    cycle = as_index(df["Cycle"].to_numpy(), path=path, column="Cycle")
    step = np.r_[1, 1 + np.cumsum(step_raw[1:] != step_raw[:-1])]
    stamps = df["Timestamp"]
    stamp_s = (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy(float)
    time_s = _continuous_time_s(df["Time"].to_numpy(float), stamp_s, step)
    qc, qd = df["Charge_Capacity(mAh)"].to_numpy(float), df["Discharge_Capacity(mAh)"].to_numpy(float)
    q = net_capacity_from_counters(qc, qd, step)
    notes, partial = start_offset_notes(qc[0], qd[0], int(cycle[0]))
    q = q - q[0]
    return make_log(time_s, df["Voltage"].to_numpy(float), df["Current(mA)"].to_numpy(float), q,
                    cycle, step, source=str(path),
                    meta={"format": "Neware " + path.suffix.lower(), "file_cycle": cycle,
                          "file_step": step_raw, "cycle_source": "file", "n_rows": len(df),
                          "notes": notes, "partial_start": partial})
