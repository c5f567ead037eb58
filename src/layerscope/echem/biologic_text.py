"""BioLogic EC-Lab / BT-Lab text exports (``.mpt``).

Layout (EC-Lab's "Export as text"): the first line ``EC-Lab ASCII FILE``, then
``Nb header lines : N``; the N-th line holds the tab-separated column names, each with
its unit after the last ``/`` (``time/s``, ``Ewe/V``, ``I/mA``, ``(Q-Qo)/mA.h``,
``control/V/mA``); the rows follow, with a decimal comma in some locales. Units are
read from the names and converted to EC-Lab's default ones (s, V, mA, mA.h), then the
columns go through the same conversion as the binary ``.mpr``
(:func:`layerscope.echem.biologic.columns_to_log`). A file without the header block
(``Nb header lines`` missing) is read with its first line as the column names.
Written by hand: the maintained reader (galvani) is GPL-3 and only a test-only peer here.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope.echem._table import CyclerLog

#: quantity stem -> (canonical EC-Lab name, {unit: factor to the canonical unit})
_CANON = {
    "time": ("time/s", {"s": 1.0, "ms": 1e-3, "min": 60.0, "h": 3600.0}),
    "ewe": ("Ewe/V", {"v": 1.0, "mv": 1e-3}),
    "ecell": ("Ewe/V", {"v": 1.0, "mv": 1e-3}),  # BT-Lab's name for the cell voltage
    "i": ("I/mA", {"ma": 1.0, "a": 1e3, "ua": 1e-3, "µa": 1e-3, "na": 1e-6}),
    "<i>": ("I/mA", {"ma": 1.0, "a": 1e3, "ua": 1e-3, "µa": 1e-3, "na": 1e-6}),
    "(q-qo)": ("(Q-Qo)/mA.h", {"ma.h": 1.0, "a.h": 1e3, "ua.h": 1e-3, "µa.h": 1e-3,
                               "c": 1 / 3.6, "mc": 1 / 3600.0}),
    "dq": ("dq/mA.h", {"ma.h": 1.0, "a.h": 1e3, "ua.h": 1e-3, "µa.h": 1e-3, "c": 1 / 3.6,
                       "mc": 1 / 3600.0}),
}
_INDEX = {"ns": "Ns", "half cycle": "half cycle"}


def read_mpt(path) -> CyclerLog:
    """Read an EC-Lab text export into the tidy :class:`CyclerLog` (units from the column names)."""
    import pandas as pd

    from layerscope.echem.biologic import columns_to_log

    path = Path(path)
    raw = path.read_bytes()
    text = raw.decode("latin-1")
    lines = text.splitlines()
    m = re.search(r"Nb header lines\s*:\s*(\d+)", "\n".join(lines[:5]))
    skip = int(m.group(1)) - 1 if m else 0
    if skip >= len(lines):
        raise InputError(f"header declares {skip + 1} lines but the file has {len(lines)}",
                         path=path, where="line 2")
    body = "\n".join(lines[skip:])
    first = lines[skip + 1] if skip + 1 < len(lines) else ""
    decimal = "," if re.search(r"\d,\d", first) and "\t" in first else "."
    try:
        df = pd.read_csv(io.StringIO(body), sep="\t", decimal=decimal)
    except Exception as exc:
        raise InputError(f"could not parse the EC-Lab table ({type(exc).__name__}: {exc})",
                         path=path, where=f"line {skip + 1}") from exc
    df = df.loc[:, [c for c in df.columns if not str(c).startswith("Unnamed")]]
    cols: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for c in df.columns:
        name = str(c).strip()
        stem, _, unit = name.rpartition("/") if "/" in name else (name, "", "")
        key = stem.strip().lower()
        if key in _CANON:
            canon, table = _CANON[key]
            u = unit.strip().lower()
            if u not in table:
                raise InputError(f"column {name!r}: unit {unit!r} not understood (expected one "
                                 f"of {sorted(table)})", path=path, where=f"line {skip + 1}")
            if canon in cols and key == "<i>":
                continue  # prefer the instantaneous current
            vals = pd.to_numeric(df[c], errors="coerce").to_numpy(float)
            if not np.all(np.isfinite(vals)):
                k = int(np.flatnonzero(~np.isfinite(vals))[0])
                raise InputError(f"column {name!r} holds {df[c].iloc[k]!r}, expected a number",
                                 path=path, where=f"data row {k + 1}")
            cols[canon] = vals * table[u]
            units[canon] = name
        elif name.lower() in _INDEX:
            cols[_INDEX[name.lower()]] = df[c].to_numpy()
    return columns_to_log(cols, path, {"format": "BioLogic .mpt", "units": units, "notes": []})
