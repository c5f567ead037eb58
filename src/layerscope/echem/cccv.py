"""Constant-current / constant-voltage split of each half cycle.

A CC–CV charge (the operando protocol of the paper: 500 mA to 4.5 V, then a 4.5 V hold)
passes part of its charge at constant voltage. The rows of a half cycle that belong to a
CV phase are found as follows (written by hand; no library does this on cycler tables):

* a whole step is CV when its voltage stays within ``v_tol_V`` while its current changes by
  more than ``i_drop`` (cyclers that log the hold as its own step: Neware ``CV_Chg``,
  Arbin, Maccor, layerscope's simulated cells);
* otherwise, inside a step that holds both phases (EC-Lab GCPL), the trailing rows whose
  voltage stays within ``v_tol_V`` of the step's last voltage while ``|I|`` has fallen below
  ``(1 − i_drop)`` of the step's initial (median of its first quarter) current.

The charge of a row is the increment of ``capacity_mAh`` over the interval ending at it,
as in :func:`layerscope.echem.analysis.cycle_summary`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope.echem._table import CyclerLog


@dataclass(frozen=True)
class CCCVSplit:
    """Per cycle: charge passed at constant current and at constant voltage (mAh)."""

    cycle: np.ndarray
    charge_cc_mAh: np.ndarray
    charge_cv_mAh: np.ndarray
    discharge_cc_mAh: np.ndarray
    discharge_cv_mAh: np.ndarray
    cv_rows: np.ndarray  # boolean mask over the log's rows


def cv_rows(log: CyclerLog, *, v_tol_V: float = 0.005, i_drop: float = 0.1) -> np.ndarray:
    """Boolean mask of the rows that belong to a constant-voltage phase."""
    st = log.step
    starts = np.flatnonzero(np.r_[True, st[1:] != st[:-1]])
    ends = np.r_[starts[1:], len(st)]
    mask = np.zeros(len(st), bool)
    i_abs = np.abs(log.current_mA)
    for a, b in zip(starts, ends):
        v, i = log.voltage_V[a:b], i_abs[a:b]
        if b - a < 3 or np.all(i == 0):
            continue
        if np.ptp(v) <= v_tol_V and i.max() > 0 and i.min() < (1 - i_drop) * i.max():
            mask[a:b] = True
            continue
        i0 = np.median(i[: max((b - a) // 4, 1)])
        tail = (np.abs(v - v[-1]) <= v_tol_V) & (i < (1 - i_drop) * i0)
        # only the trailing run counts
        k = len(tail)
        while k > 0 and tail[k - 1]:
            k -= 1
        if len(tail) - k >= 2:
            mask[a + k:b] = True
    return mask


def cccv_split(log: CyclerLog, *, v_tol_V: float = 0.005, i_drop: float = 0.1) -> CCCVSplit:
    """Charge passed at constant current and at constant voltage, per cycle and half."""
    cv = cv_rows(log, v_tol_V=v_tol_V, i_drop=i_drop)
    dq = np.r_[0.0, np.diff(log.capacity_mAh)]
    cycles = log.cycles
    idx = np.searchsorted(cycles, log.cycle)
    n = len(cycles)

    def book(sel):
        return np.bincount(idx, weights=np.where(sel, np.abs(dq), 0.0), minlength=n)

    pos, neg = dq > 0, dq < 0
    return CCCVSplit(cycles, book(pos & ~cv), book(pos & cv), book(neg & ~cv), book(neg & cv), cv)
