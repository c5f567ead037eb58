"""Electrochemistry: cycler files, per-cycle analysis, dQ/dV, figures.

``read_cycler`` turns BioLogic ``.mpr``, Neware ``.nda``/``.ndax``, Arbin ``.res``
and CSV/XLSX exports into layerscope's tidy :class:`CyclerLog`;
``cycle_summary`` gives capacities, Coulombic efficiency (cathode convention,
discharge/charge), average voltages (∫V dQ / Q) and energies per cycle.
"""

from layerscope.echem._table import CyclerLog, make_log
from layerscope.echem.analysis import (CycleSummary, c_rate, cycle_summary, half_cycle,
                                       rate_table, step_table)
from layerscope.echem.dqdv import dqdv
from layerscope.echem.io import read_cycler

__all__ = ["CyclerLog", "CycleSummary", "c_rate", "cycle_summary", "dqdv", "half_cycle",
           "make_log", "rate_table", "read_cycler", "step_table"]
