"""The functions ``import layerscope as ls`` offers that are not a science module's own function.

``layerscope/__init__.py`` maps each public name lazily (module ``__getattr__``) to the function
that does the work; this module holds the few that adapt arguments (paths or loaded objects).
"""

from __future__ import annotations

import os

__all__ = ["load_phases", "read_instrument", "cycle_summary", "run_study"]


def load_phases(specs, *, scales: bool = False):
    """Phases from presets (``lrm-pristine``, ``lrm-pristine:O3p``, ``Al``) or CIF files (``NAC.cif``,
    ``NAME=PATH:SCALE``); one specification or a list. Returns a list of
    :class:`~layerscope.crystal.Phase`, or (Phase, starting scale) pairs with ``scales=True``."""
    from layerscope.crystal.load import load_phases as _load

    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    out = _load([os.fspath(s) for s in specs])
    return out if scales else [p for p, _ in out]


def read_instrument(path, *, bank: int | None = None):
    """A TOF instrument (GSAS-II ``.instprm``, Type PNT) → :class:`~layerscope.diffraction.instrument.TOFInstrument`
    with its calibration (difC µs/Å, difA, Zero µs) and profile terms; ``source`` names the file."""
    from layerscope.diffraction.instrument import read_instprm

    return read_instprm(path, bank=bank)


def cycle_summary(log, *, mass_mg: float | None = None, convention: str = "cathode"):
    """One row per cycle of a cycler record (``ls.read_cycler(path)`` or a path): capacities (mAh),
    Coulombic efficiency in the ``convention`` ("cathode", "anode", "full"), average voltages (V),
    energies (mWh); specific values with ``mass_mg``. Cycles the reader assigned from the current are
    re-assigned discharge-first for an anode (as ``layerscope echem --convention anode``).
    Returns :class:`~layerscope.echem.analysis.CycleSummary` (``.columns()``, ``.to_xarray()``)."""
    from layerscope.echem._table import with_convention
    from layerscope.echem.analysis import cycle_summary as _summary
    from layerscope.echem.io import read_cycler

    if isinstance(log, (str, os.PathLike)):
        log = read_cycler(log)
    return _summary(with_convention(log, convention), mass_mg=mass_mg, convention=convention)


def run_study(study, out_dir, *, scheduler: str | None = None, only=None, log=print) -> dict:
    """Run a study (a ``study.toml`` path or a :class:`~layerscope.study.schema.Study`) into ``out_dir``:
    every dataset's analysis, ``results.h5`` and the report. Returns {"records", "results", "report",
    "checks"}."""
    from layerscope.study.runner import run_study as _run
    from layerscope.study.schema import read_study

    if isinstance(study, (str, os.PathLike)):
        study = read_study(study)
    return _run(study, out_dir, scheduler=scheduler, only=only, log=log)
