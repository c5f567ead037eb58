"""The functions ``import layerscope as ls`` offers that are not a science module's own function.

``layerscope/__init__.py`` maps each public name lazily (module ``__getattr__``) to the function
that does the work; this module holds the few that adapt arguments (paths or loaded objects).
"""

from __future__ import annotations

import os

__all__ = ["load_phases", "read_instrument", "cycle_summary", "run_study"]


def load_phases(specs, *, scales: bool = False):
    """Phases from presets or CIF files.

    Parameters
    ----------
    specs : str, path or list of them
        Presets (``lrm-pristine``, ``lrm-pristine:O3p``, ``Al``; ``layerscope phases`` lists them) or CIF
        files (``NAC.cif``), each optionally ``NAME=PATH:SCALE``.
    scales : bool
        Also return each phase's starting scale.

    Returns
    -------
    list of :class:`~layerscope.crystal.Phase`, or of (Phase, scale) pairs with ``scales=True``
        Cells in Å and degrees, fractional coordinates, occupancies, Uiso in Å².

    Examples
    --------
    >>> import layerscope as ls
    >>> [p.name for p in ls.load_phases("lrm-pristine")]
    ['O3p', 'S']
    """
    from layerscope.crystal.load import load_phases as _load

    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    out = _load([os.fspath(s) for s in specs])
    return out if scales else [p for p, _ in out]


def read_instrument(path, *, bank: int | None = None):
    """A time-of-flight instrument from a GSAS-II ``.instprm`` file (Type PNT).

    Parameters
    ----------
    path : str or path
        The instrument parameter file.
    bank : int, optional
        Bank of a multi-bank file.

    Returns
    -------
    :class:`~layerscope.diffraction.instrument.TOFInstrument`
        Calibration (difC in µs/Å, difA in µs/Å², Zero in µs; TOF = difC·d + difA·d² + Zero) and the
        profile terms; ``source`` names the file.

    Examples
    --------
    >>> import layerscope as ls
    >>> inst = ls.read_instrument("POWGEN_2665.instprm")          # doctest: +SKIP
    """
    from layerscope.diffraction.instrument import read_instprm

    return read_instprm(path, bank=bank)


def cycle_summary(log, *, mass_mg: float | None = None, convention: str = "cathode"):
    """One row per cycle of a cycler record.

    Parameters
    ----------
    log : CyclerLog or path
        ``ls.read_cycler(path)`` or the path itself.
    mass_mg : float, optional
        Active mass (mg); adds specific capacities (mAh/g) and energies (mWh/g).
    convention : {"cathode", "anode", "full"}
        Which half-cycle comes first: the Coulombic efficiency is discharge/charge for a cathode or a
        full cell, charge/discharge for an anode. Cycles the reader assigned from the current are
        re-assigned discharge-first for an anode (as ``layerscope echem --convention anode``).

    Returns
    -------
    :class:`~layerscope.echem.analysis.CycleSummary`
        Capacities (mAh), Coulombic efficiency, average voltages (V), energies (mWh) per cycle;
        ``.columns()``, ``.to_xarray()`` (units in ``attrs``). NaN where a half-cycle is missing.

    Examples
    --------
    >>> import layerscope as ls
    >>> s = ls.cycle_summary(ls.simulate.cycler.lrm_half_cell("coated"))
    >>> round(s.initial_ce, 2)
    0.91
    """
    from layerscope.echem._table import with_convention
    from layerscope.echem.analysis import cycle_summary as _summary
    from layerscope.echem.io import read_cycler

    if isinstance(log, (str, os.PathLike)):
        log = read_cycler(log)
    return _summary(with_convention(log, convention), mass_mg=mass_mg, convention=convention)


def run_study(study, out_dir, *, scheduler: str | None = None, only=None, log=print) -> dict:
    """Run every analysis of a study and write ``results.h5`` and the report.

    Parameters
    ----------
    study : path or :class:`~layerscope.study.schema.Study`
        A ``study.toml`` (``layerscope simulate study`` writes one with ground truth).
    out_dir : path
        Output folder; a rerun resumes what is already there.
    scheduler : str, optional
        Address of a Dask scheduler (default: local processes).
    only : list of str, optional
        Keys of the datasets to run (default: all).
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        ``{"records", "results", "report", "checks"}``: per-dataset records, what ``results.h5`` and the
        report were written to, and ``checks`` = (values within tolerance of their truth, values with a
        truth).

    Examples
    --------
    >>> import layerscope as ls
    >>> out = ls.run_study("study.toml", "out/")                  # doctest: +SKIP
    """
    from layerscope.study.runner import run_study as _run
    from layerscope.study.schema import read_study

    if isinstance(study, (str, os.PathLike)):
        study = read_study(study)
    return _run(study, out_dir, scheduler=scheduler, only=only, log=log)
