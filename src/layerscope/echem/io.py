"""One entry point for every supported cycler file: :func:`read_cycler`.

The format is recognised from the file's first bytes where it has a signature
(BioLogic ``.mpr`` / ``.mpt``, Neware ``.nda`` / ``.ndax``, Arbin ``.res``, Maccor text),
otherwise from the extension (CSV/TSV/TXT/XLSX tables exported by Neware, Arbin,
Landt/LANHE, Novonix or written by layerscope). After reading, every step's capacity is
checked against the charge recomputed from current × time
(:func:`layerscope.echem._checks.crosscheck_capacity`); the comparison is kept in
``log.meta['step_check']``.
"""

from __future__ import annotations

import re
from pathlib import Path

from layerscope._errors import InputError, reader
from layerscope.echem._table import CyclerLog

_READERS = {
    "mpr": ("layerscope.echem.biologic", "read_mpr"),
    "mpt": ("layerscope.echem.biologic_text", "read_mpt"),
    "neware": ("layerscope.echem.neware", "read_neware"),
    "arbin": ("layerscope.echem.arbin", "read_arbin_res"),
    "maccor": ("layerscope.echem.maccor", "read_maccor"),
    "table": ("layerscope.echem.tabular", "read_table"),
}
_BY_SUFFIX = {".mpr": "mpr", ".mpt": "mpt", ".nda": "neware", ".ndax": "neware", ".res": "arbin",
              ".csv": "table", ".tsv": "table", ".txt": "table", ".xlsx": "table", ".xls": "table"}

SUPPORTED = tuple(sorted(_BY_SUFFIX)) + (".001-.999 (Maccor)",)
FORMATS = ("BioLogic EC-Lab .mpr and .mpt", "Neware .nda/.ndax and .csv/.xlsx exports",
           "Arbin .res and .csv/.xlsx exports", "Maccor text exports and channel files (.txt, "
           ".001-.999)", "Landt/LANHE and Novonix .csv/.xlsx exports", "layerscope cycler CSV")


def detect_format(path: Path) -> str:
    """The reader key for ``path`` (signature first, then extension) or InputError."""
    suffix = path.suffix.lower()
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"BIO-LOGIC MODULAR FILE"):
        return "mpr"
    if head.startswith(b"EC-Lab ASCII FILE") or head.startswith(b"BT-Lab ASCII FILE"):
        return "mpt"
    if head.startswith(b"NEWARE"):
        return "neware"
    if head[4:19] == b"Standard Jet DB":
        return "arbin"
    if suffix in (".txt", ".csv", ".tsv") or re.fullmatch(r"\.\d{3}", suffix):
        from layerscope.echem.maccor import is_maccor_text

        if is_maccor_text(path):
            return "maccor"
        if re.fullmatch(r"\.\d{3}", suffix):
            return "maccor"  # its reader explains what is wrong (binary raw, no Rec# line)
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    raise InputError(f"unsupported cycler file type {suffix!r}: not recognised from its "
                     f"first bytes or extension (supported: {'; '.join(FORMATS)})", path=path)


def _check_order(log: CyclerLog, path: Path) -> None:
    """Time must not go backwards (InputError at the first such row); rows repeated exactly (every
    column equal to the row before) are kept but counted and noted (``meta['duplicate_rows']``)."""
    import numpy as np

    from layerscope.echem._table import COLUMNS

    back = np.flatnonzero(np.diff(log.time_s) < 0)
    if back.size:
        k = int(back[0])
        raise InputError(f"time goes backwards: {float(log.time_s[k + 1])!r} s after {float(log.time_s[k])!r} s "
                         f"({back.size} such place(s); two runs spliced, or a clock reset?); expected "
                         "non-decreasing test time", path=path, where=f"data row {k + 2}")
    cols = [getattr(log, c) for c in COLUMNS]
    dup = np.flatnonzero(np.logical_and.reduce([c[1:] == c[:-1] for c in cols]))
    log.meta["duplicate_rows"] = int(dup.size)
    if dup.size:
        log.meta["notes"].append(f"{dup.size} row(s) repeat the row before in every column (first: data row "
                                 f"{int(dup[0]) + 2}); kept as they are (they add no charge)")


@reader
def read_cycler(path, *, check: bool = True) -> CyclerLog:
    """Read a cycler file into layerscope's tidy :class:`CyclerLog`.

    Parameters
    ----------
    path : str or Path
        The cycler file (the formats of the module docstring).
    check : bool
        Cross-check every step's capacity against ∫ I dt (see the module docstring);
        a disagreement beyond 1 % plus the sampling allowance raises InputError.

    Returns
    -------
    CyclerLog
        One row per record: time (s), voltage (V), current (mA), capacity (mAh), cycle and step
        numbers, with the file's conventions and source in its metadata.

    Examples
    --------
    >>> import layerscope as ls                                   # doctest: +SKIP
    >>> ls.cycle_summary(ls.read_cycler("cell.ndax"))             # doctest: +SKIP
    """
    import importlib

    from layerscope.echem._checks import crosscheck_capacity

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such cycler file")
    if path.is_dir():
        raise InputError("is a folder, expected a cycler file", path=path)
    if path.stat().st_size == 0:
        raise InputError("file is empty, expected a cycler file", path=path)
    module, func = _READERS[detect_format(path)]
    log = getattr(importlib.import_module(module), func)(path)
    log.meta.setdefault("notes", [])
    _check_order(log, path)
    if check:
        fc, fs = log.meta.get("file_cycle"), log.meta.get("file_step")
        labels = None
        if fc is not None and fs is not None:
            def labels(row):
                return int(fc[row]), int(fs[row])
        log.meta["step_check"] = crosscheck_capacity(log, path=path, labels=labels)
    return log
