"""BioLogic EC-Lab ``.mpr`` files, read without GPL code.

Written by hand because the maintained reader (galvani) is GPL-3 and may only
be an optional extra of this BSD-3 package. The layout relied on here was
read off EC-Lab files (``biologic_gcpl_5cycles.mpr`` in the shared data) and is
checked against galvani in ``tests/test_echem_peer.py``:

* File header: the 48-byte text ``BIO-LOGIC MODULAR FILE\\x1a`` padded with
  blanks, then 4 zero bytes (52 bytes in all).
* Then modules, each with a 57-byte header: ``MODULE`` (6 bytes), short name
  (10 bytes, e.g. ``VMP data``), long name (25 bytes), data length (uint32 LE),
  module version (uint32 LE), date (8 ASCII bytes, ``mm/dd/yy``); then
  ``length`` bytes of module data. EC-Lab ≥ 11.50 writes a 65-byte header instead,
  recognised by 0xFFFFFFFF where the length would be: that field ("max length"),
  then the length, the version, 4 more bytes and the date.
* The ``VMP data`` module data: number of points (uint32), number of columns
  (uint8), the column ids, zero padding, then the records packed row by row.
  Module version 2: uint16 ids, records from byte 405; version 3: uint16 ids,
  records from byte 406; version 0: uint8 ids with records from byte 100, or (EC-Lab
  ≥ 11.50) uint8 ids each followed by a zero byte with records from byte 1007.
  (Layouts as galvani documents them; only version 3 is in the shared data, the
  others are checked on rewritten copies of it.) Ids 1, 2, 3, 21, 31, 65 are bit flags that EC-Lab
  packs into a single leading byte (mode = bits 0–1: 1 galvanostatic,
  2 potentiostatic, 3 rest; ox/red = bit 2); other ids each take their own
  field of the size given in :data:`_COLUMNS`.

Only the column ids in :data:`_COLUMNS` are decoded. Ids not in that table
(newer EC-Lab versions, PEIS columns) are skipped and reported in
``meta['notes']`` when they form one contiguous run, whose size is then the record
size left over; unknown ids at several places cannot be told apart and raise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope.echem._checks import as_index
from layerscope.echem._table import CyclerLog, assign_cycles, make_log, steps_from_current

_MAGIC = b"BIO-LOGIC MODULAR FILE\x1a"
_FILE_HEADER = 52
_MODULE_HEADER = 57

#: Flag ids packed into the single leading ``flags`` byte.
_FLAG_IDS = {1, 2, 3, 21, 31, 65}

#: Column id -> (numpy dtype, EC-Lab column name). Ids marked (*) were seen
#: in the shared example file; the others are EC-Lab's current columns, whose
#: sizes are checked by the record-size consistency test on reading.
_COLUMNS = {
    4: ("<f8", "time/s"),  # *
    5: ("<f4", "control/V/mA"),  # *
    6: ("<f4", "Ewe/V"),  # *
    7: ("<f8", "dq/mA.h"),  # *
    8: ("<f4", "I/mA"),
    11: ("<f8", "<I>/mA"),
    13: ("<f8", "(Q-Qo)/mA.h"),  # *
    39: ("<u2", "I Range"),  # *
    70: ("<f4", "P/W"),  # *
    131: ("<u2", "Ns"),  # *
    467: ("<f8", "Q charge/discharge/mA.h"),  # *
    468: ("<u4", "half cycle"),  # *
}


def _modules(buf: bytes, path: Path):
    pos = _FILE_HEADER
    while pos < len(buf):
        if buf[pos:pos + 6] != b"MODULE":
            raise ValueError(f"{path}: expected a 'MODULE' header at byte {pos} of the .mpr file, "
                             f"found {buf[pos:pos + 6]!r}")
        if pos + _MODULE_HEADER > len(buf):
            raise ValueError(f"{path}: .mpr file is truncated inside a module header at byte {pos}")
        short = buf[pos + 6:pos + 16].decode("ascii", "replace").strip()
        if buf[pos + 41:pos + 45] == b"\xff\xff\xff\xff":  # EC-Lab >= 11.50 module header
            length = int.from_bytes(buf[pos + 45:pos + 49], "little")
            version = int.from_bytes(buf[pos + 49:pos + 53], "little")
            start = pos + _MODULE_HEADER + 8
        else:
            length = int.from_bytes(buf[pos + 41:pos + 45], "little")
            version = int.from_bytes(buf[pos + 45:pos + 49], "little")
            start = pos + _MODULE_HEADER
        if start + length > len(buf):
            raise ValueError(f"{path}: .mpr module {short!r} declares {length} bytes but the file "
                             f"ends {len(buf) - start} bytes after its header (truncated file?)")
        yield short, version, buf[start:start + length]
        pos = start + length


def read_mpr_columns(path) -> dict[str, np.ndarray]:
    """Raw columns of the ``VMP data`` module of a BioLogic ``.mpr`` file.

    Returns
    -------
    dict
        EC-Lab column name -> array; the packed flags come back as ``mode``
        (1 galvanostatic, 2 potentiostatic, 3 rest) and ``ox/red``; ``_skipped_ids``
        lists the unknown column ids that were skipped.
    """
    path = Path(path)
    buf = path.read_bytes()
    if len(buf) == 0:
        raise ValueError(f"{path}: file is empty, expected a BioLogic .mpr file")
    if not buf.startswith(_MAGIC):
        raise ValueError(f"{path}: not a BioLogic .mpr file (expected the header "
                         f"'BIO-LOGIC MODULAR FILE', found {buf[:24]!r})")
    data_mod = None
    for short, version, body in _modules(buf, path):
        if short == "VMP data":
            data_mod = (version, body)
    if data_mod is None:
        raise ValueError(f"{path}: .mpr file has no 'VMP data' module")
    version, body = data_mod
    if len(body) < 5:
        raise ValueError(f"{path}: 'VMP data' module is too short ({len(body)} bytes)")
    n_points = int.from_bytes(body[0:4], "little")
    n_cols = body[4]
    if version in (2, 3):
        ids = np.frombuffer(body, "<u2", count=n_cols, offset=5).tolist()
        offset = 405 if version == 2 else 406
    elif version == 0 and len(body) > 5 and body[5]:
        ids = np.frombuffer(body, "u1", count=n_cols, offset=5).tolist()
        offset = 100
    elif version == 0:
        ids = np.frombuffer(body, "u1", count=2 * n_cols, offset=5)[1::2].tolist()
        offset = 1007
    else:
        raise ValueError(f"{path}: 'VMP data' module version {version} is not known to "
                         f"layerscope's reader (known: 0, 2, 3)")
    if n_points and (len(body) - offset) % n_points:
        raise ValueError(f"{path}: 'VMP data' holds {len(body) - offset} bytes of records, not a "
                         f"whole number of {n_points} records (truncated file or unsupported "
                         f".mpr version {version})")
    record = (len(body) - offset) // n_points if n_points else 0
    fields = []
    if any(i in _FLAG_IDS for i in ids):
        fields.append(("flags", "u1"))
    unknown_runs: list[list[int]] = []
    prev_unknown = False
    for cid in ids:
        if cid in _FLAG_IDS:
            continue
        if cid not in _COLUMNS:
            if prev_unknown:
                unknown_runs[-1].append(cid)
            else:
                unknown_runs.append([cid])
                fields.append((f"_unknown{len(unknown_runs)}", None))
            prev_unknown = True
            continue
        prev_unknown = False
        dtype, name = _COLUMNS[cid]
        fields.append((name, dtype))
    known = sum(np.dtype(d).itemsize for _, d in fields if d is not None)
    if len(unknown_runs) > 1 or (unknown_runs and record - known <= 0):
        flat = [c for run in unknown_runs for c in run]
        raise ValueError(f"{path}: .mpr column ids {flat} are not known to layerscope's reader "
                         f"and their sizes cannot be told apart (known ids: {sorted(_COLUMNS)}); "
                         f"install the optional 'galvani' package to inspect them")
    if unknown_runs:
        fields = [(n, d if d is not None else f"V{record - known}") for n, d in fields]
    elif n_points and record != known:
        raise ValueError(f"{path}: 'VMP data' record layout does not add up ({record} bytes per "
                         f"record, the columns {ids} need {known}): unsupported .mpr version "
                         f"{version}")
    dtype = np.dtype(fields)
    unknown = [c for run in unknown_runs for c in run]
    rec = np.frombuffer(body, dtype, count=n_points, offset=offset)
    out = {name: rec[name].copy() for name in rec.dtype.names
           if name != "flags" and not name.startswith("_unknown")}
    out["_skipped_ids"] = unknown
    if "flags" in rec.dtype.names:
        out["mode"] = (rec["flags"] & 0x03).astype(np.int8)
        out["ox/red"] = ((rec["flags"] & 0x04) >> 2).astype(np.int8)
    return out


def read_mpr(path) -> CyclerLog:
    """Read a BioLogic ``.mpr`` cycling file into the tidy :class:`CyclerLog`.

    Current is EC-Lab's ``I/mA`` when logged; otherwise the mean current over
    each logging interval, ``I_i = 3600 · dq_i / (t_i − t_{i−1})`` (mA, from
    ``dq/mA.h``). ``capacity_mAh`` is EC-Lab's ``(Q-Qo)/mA.h`` (net charge
    since the start), or the running sum of ``dq``. Steps are the blocks of
    constant ``Ns`` (technique sequence) and half cycle; cycles are assigned
    charge-then-discharge by :func:`assign_cycles`.
    """
    path = Path(path)
    cols = read_mpr_columns(path)
    skipped = cols.pop("_skipped_ids", [])
    notes = [f"skipped .mpr column ids {skipped} (not known to layerscope's reader)"] if skipped else []
    return columns_to_log(cols, path, {"format": "BioLogic .mpr", "notes": notes})


def columns_to_log(cols: dict, path: Path, meta: dict) -> CyclerLog:
    """EC-Lab columns (names as EC-Lab writes them, units already mA / mA.h / s / V) -> log."""
    with np.errstate(invalid="ignore"):  # a signalling NaN of a damaged float32 column: refused below
        cols = {k: (np.asarray(v, float) if np.asarray(v).dtype.kind == "f" else v) for k, v in cols.items()}
    for need in ("time/s", "Ewe/V"):
        if need not in cols:
            raise ValueError(f"{path}: EC-Lab data has no {need!r} column; found {sorted(cols)}")
    t = np.asarray(cols["time/s"], float)
    if len(t) == 0:
        raise ValueError(f"{path}: EC-Lab file holds no data points")
    if "(Q-Qo)/mA.h" in cols:
        q = np.asarray(cols["(Q-Qo)/mA.h"], float)
    elif "dq/mA.h" in cols:
        q = np.cumsum(np.asarray(cols["dq/mA.h"], float))
    else:
        raise ValueError(f"{path}: EC-Lab data has neither '(Q-Qo)/mA.h' nor 'dq/mA.h'")
    for name, arr in (("time/s", t), ("charge (Q-Qo)/mA.h", q), ("Ewe/V", np.asarray(cols["Ewe/V"], float))):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise InputError(f"column {name!r} holds {bad.size} value(s) that are not finite numbers "
                             f"(first {float(arr[bad[0]])!r}); damaged file?", path=path,
                             where=f"data point {int(bad[0]) + 1}")
    if "I/mA" in cols:
        i_mA = np.asarray(cols["I/mA"], float)
    else:
        dq = np.r_[0.0, np.diff(q)]
        dt = np.r_[0.0, np.diff(t)]
        with np.errstate(over="ignore", invalid="ignore"):  # a non-finite result is refused below
            i_mA = np.divide(3600.0 * dq, dt, out=np.zeros_like(dq), where=dt > 0)
        if not np.all(np.isfinite(i_mA)):
            k = int(np.flatnonzero(~np.isfinite(i_mA))[0])
            raise InputError("time or charge not finite (or a step too large to be a current): "
                             f"cannot derive the current from dq/dt; time {t[k]!r} s, (Q-Qo) {q[k]!r} mAh",
                             path=path, where=f"data point {k + 1}")
        meta.setdefault("notes", []).append(
            "no current column: current is the mean over each logging interval from dq/dt "
            "(the current x time check is then not independent)")
    key = np.zeros(len(t), dtype=np.int64)
    for name in ("Ns", "half cycle"):
        if name in cols:
            key = key * 100003 + as_index(cols[name], path=path, column=name)
    if not any(name in cols for name in ("Ns", "half cycle")):
        key = steps_from_current(i_mA)  # no sequence columns: steps from the current's sign
    step = np.r_[1, 1 + np.cumsum(key[1:] != key[:-1])]
    cycle = assign_cycles(i_mA, step)
    meta = {**meta, "cycle_source": "assigned"}
    return make_log(t - t[0], np.asarray(cols["Ewe/V"], float), i_mA, q - q[0], cycle, step,
                    source=str(path), meta=meta)
