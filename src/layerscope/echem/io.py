"""One entry point for every supported cycler file: :func:`read_cycler`."""

from __future__ import annotations

from pathlib import Path

from layerscope.echem._table import CyclerLog

_READERS = {
    ".mpr": ("layerscope.echem.biologic", "read_mpr"),
    ".nda": ("layerscope.echem.neware", "read_neware"),
    ".ndax": ("layerscope.echem.neware", "read_neware"),
    ".res": ("layerscope.echem.arbin", "read_arbin_res"),
    ".csv": ("layerscope.echem.tabular", "read_table"),
    ".tsv": ("layerscope.echem.tabular", "read_table"),
    ".txt": ("layerscope.echem.tabular", "read_table"),
    ".xlsx": ("layerscope.echem.tabular", "read_table"),
    ".xls": ("layerscope.echem.tabular", "read_table"),
}

SUPPORTED = tuple(sorted(_READERS))


def read_cycler(path) -> CyclerLog:
    """Read a cycler file into layerscope's tidy :class:`CyclerLog`.

    The format is chosen by extension: BioLogic ``.mpr``, Neware ``.nda`` /
    ``.ndax``, Arbin ``.res``, or a table (``.csv``, ``.tsv``, ``.txt``,
    ``.xlsx``, ``.xls``) in layerscope's CSV form or as exported by Neware,
    Landt/LANHE, Arbin or BioLogic software.
    """
    import importlib

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such cycler file")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a cycler file")
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise ValueError(f"{path}: unsupported cycler file type {suffix!r} "
                         f"(supported: {', '.join(SUPPORTED)})")
    module, func = _READERS[suffix]
    return getattr(importlib.import_module(module), func)(path)
