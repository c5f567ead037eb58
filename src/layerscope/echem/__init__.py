"""Electrochemistry: cycler files, per-cycle analysis, dQ/dV, dV/dQ, CC–CV, GITT, figures.

``read_cycler`` turns BioLogic ``.mpr``/``.mpt``, Neware ``.nda``/``.ndax``, Arbin ``.res``,
Maccor text files and Neware/Arbin/Landt/Novonix CSV/XLSX exports into layerscope's tidy
:class:`CyclerLog` (units from the file, every step's capacity checked against current ×
time); ``cycle_summary`` gives capacities, Coulombic efficiency (cathode, anode or
full-cell convention), average voltages (∫V dQ / Q) and energies per cycle.
"""

from layerscope.echem._table import CyclerLog, make_log, with_convention
from layerscope.echem.analysis import (CONVENTIONS, CycleSummary, c_rate, cycle_summary,
                                       half_cycle, rate_table, step_table)
from layerscope.echem.cccv import cccv_split
from layerscope.echem.dqdv import dqdv, dvdq
from layerscope.echem.gitt import gitt
from layerscope.echem.io import read_cycler

__all__ = ["CONVENTIONS", "CyclerLog", "CycleSummary", "c_rate", "cccv_split", "cycle_summary",
           "dqdv", "dvdq", "gitt", "half_cycle", "make_log", "rate_table", "read_cycler",
           "step_table", "with_convention"]
