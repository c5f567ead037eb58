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
  ``length`` bytes of module data.
* The ``VMP data`` module data: number of points (uint32), number of columns
  (uint8), the column ids (uint16 each), zero padding, then the records packed
  row by row from offset ``0x196`` (module version ≥ 2) or ``0x195`` (version
  0/1) of the module data. Ids 1, 2, 3, 21, 31, 65 are bit flags that EC-Lab
  packs into a single leading byte (mode = bits 0–1: 1 galvanostatic,
  2 potentiostatic, 3 rest; ox/red = bit 2); other ids each take their own
  field of the size given in :data:`_COLUMNS`.

Only the column ids in :data:`_COLUMNS` are decoded; a file holding any other
id raises a ``ValueError`` naming it (the record size would be unknown).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerscope.echem._table import CyclerLog, assign_cycles, make_log

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
        (1 galvanostatic, 2 potentiostatic, 3 rest) and ``ox/red``.
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
    ids = np.frombuffer(body, "<u2", count=n_cols, offset=5).tolist()
    fields = []
    if any(i in _FLAG_IDS for i in ids):
        fields.append(("flags", "u1"))
    for cid in ids:
        if cid in _FLAG_IDS:
            continue
        if cid not in _COLUMNS:
            raise ValueError(f"{path}: .mpr column id {cid} is not supported by layerscope's reader "
                             f"(known ids: {sorted(_COLUMNS)}); install the optional 'galvani' "
                             f"package to inspect it")
        dtype, name = _COLUMNS[cid]
        fields.append((name, dtype))
    dtype = np.dtype(fields)
    offset = 0x196 if version >= 2 else 0x195
    need = offset + n_points * dtype.itemsize
    if need > len(body):
        raise ValueError(f"{path}: 'VMP data' declares {n_points} points of {dtype.itemsize} bytes "
                         f"but holds only {len(body) - offset} bytes of records (truncated file?)")
    if need != len(body):
        raise ValueError(f"{path}: 'VMP data' record layout does not add up ({len(body)} bytes, "
                         f"expected {need} for {n_points} records of {dtype.itemsize} bytes): "
                         f"unsupported .mpr version {version}")
    rec = np.frombuffer(body, dtype, count=n_points, offset=offset)
    out = {name: rec[name].copy() for name in rec.dtype.names if name != "flags"}
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
    for need in ("time/s", "Ewe/V"):
        if need not in cols:
            raise ValueError(f"{path}: .mpr data has no {need!r} column; found {sorted(cols)}")
    t = cols["time/s"].astype(float)
    if len(t) == 0:
        raise ValueError(f"{path}: .mpr file holds no data points")
    if "(Q-Qo)/mA.h" in cols:
        q = cols["(Q-Qo)/mA.h"].astype(float)
    elif "dq/mA.h" in cols:
        q = np.cumsum(cols["dq/mA.h"].astype(float))
    else:
        raise ValueError(f"{path}: .mpr data has neither '(Q-Qo)/mA.h' nor 'dq/mA.h'")
    if "I/mA" in cols:
        i_mA = cols["I/mA"].astype(float)
    else:
        dq = np.r_[0.0, np.diff(q)]
        dt = np.r_[0.0, np.diff(t)]
        i_mA = np.divide(3600.0 * dq, dt, out=np.zeros_like(dq), where=dt > 0)
    key = np.zeros(len(t), dtype=np.int64)
    for name in ("Ns", "half cycle"):
        if name in cols:
            key = key * 100003 + cols[name].astype(np.int64)
    step = np.r_[1, 1 + np.cumsum(key[1:] != key[:-1])]
    cycle = assign_cycles(i_mA, step)
    return make_log(t - t[0], cols["Ewe/V"].astype(float), i_mA, q - q[0], cycle, step,
                    source=str(path), meta={"format": "BioLogic .mpr"})
