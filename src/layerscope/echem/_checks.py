"""Checks every reader applies to what it read: integer indices and charge = ∫ I dt per step.

Written by hand (no library checks a cycler record against itself):

* :func:`as_index` turns a cycle/step column into int64 or raises
  :class:`~layerscope.InputError` naming the file, the column and the first bad row (a
  missing value cast to int64 gives −9223372036854775808; a fractional one is truncated).
* :func:`crosscheck_capacity` compares, for every step, the charge the file's own
  capacity column says was passed with the charge recomputed from the logged current
  and time, and raises when they differ by more than the tolerance. This catches a
  capacity summed twice (a counter already cumulative within the step taken as
  increments), a unit read wrongly (A as mA, Ah as mAh, h as s) and a sign error.

The recomputed charge of a step is the trapezoid rule over the intervals that end at
the step's points (the interval ending at a step's first point uses that point's
current: the step started inside it). Where the current changes between two samples
the true integral lies between the left and right Riemann sums; half their spread,
``½ Σ |I_i − I_{i−1}| Δt``, plus ``|I_first| Δt_first`` for the interval in which the
step began, is the sampling allowance added to the relative tolerance (1 %), together
with a floor of 1e-4 of the file's largest step capacity (counter resolution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope._errors import InputError


def _as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def as_index(values, *, path, column: str) -> np.ndarray:
    """Integer cycle/step numbers, or :class:`InputError` at the first missing/fractional one."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError, OverflowError):
        arr = None
    if arr is None:
        import pandas as pd

        try:
            arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
        except OverflowError:  # an integer beyond float range: each value on its own
            arr = np.array([_as_float(v) for v in values], float)
    with np.errstate(invalid="ignore", over="ignore"):  # inf/NaN are caught by isfinite
        bad = ~np.isfinite(arr) | (np.abs(arr) > 2.0**53) | (np.abs(arr - np.round(arr)) > 1e-9)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(f"column {column!r} must hold whole numbers (cycle/step index); "
                         f"found {values[k]!r}", path=path, where=f"data row {k + 1}")
    return np.round(arr).astype(np.int64)


@dataclass(frozen=True)
class StepCheck:
    """Per step: charge from the file's capacity and from ∫ I dt (mAh, signed)."""

    first_row: np.ndarray
    last_row: np.ndarray
    q_file_mAh: np.ndarray
    q_current_mAh: np.ndarray
    allowance_mAh: np.ndarray
    sampling_mAh: np.ndarray  # the part of the allowance that comes from the sampling

    @property
    def rel_mismatch(self) -> np.ndarray:
        scale = np.maximum(np.abs(self.q_file_mAh), np.abs(self.q_current_mAh))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(scale > 0, np.abs(self.q_file_mAh - self.q_current_mAh) / scale, 0.0)


def step_charges(time_s, current_mA, capacity_mAh, step, *, rel_tol: float = 0.01) -> StepCheck:
    """Charge passed in each step from the capacity column and from the current (see module doc)."""
    t = np.asarray(time_s, float)
    i = np.asarray(current_mA, float)
    q = np.asarray(capacity_mAh, float)
    step = np.asarray(step)
    first = np.r_[True, step[1:] != step[:-1]]
    block = np.cumsum(first) - 1
    dt = np.r_[0.0, np.diff(t)]
    dq = np.r_[0.0, np.diff(q)]
    iprev = np.r_[i[0], i[:-1]]
    imid = np.where(first, i, 0.5 * (i + iprev))
    spread = np.where(first, np.abs(i), 0.5 * np.abs(i - iprev)) * dt / 3600.0
    q_cur = np.bincount(block, weights=imid * dt / 3600.0)
    q_file = np.bincount(block, weights=dq)
    sampling = np.bincount(block, weights=spread)
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:] - 1, len(t) - 1]
    floor = 1e-4 * max(float(np.max(np.abs(q_file))) if len(q_file) else 0.0, 1e-300)
    allow = sampling + rel_tol * np.maximum(np.abs(q_file), np.abs(q_cur)) + floor
    return StepCheck(starts, ends, q_file, q_cur, allow, sampling)


def crosscheck_capacity(log, *, path, rel_tol: float = 0.01, labels=None) -> StepCheck:
    """Raise :class:`InputError` when a step's capacity disagrees with ∫ I dt beyond tolerance.

    ``labels`` (optional) maps a row to the file's own (cycle, step) numbers for the
    message. Returns the per-step comparison (stored by the readers in ``meta``).
    """
    chk = step_charges(log.time_s, log.current_mA, log.capacity_mAh, log.step, rel_tol=rel_tol)
    bad = np.abs(chk.q_file_mAh - chk.q_current_mAh) > chk.allowance_mAh
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        r0, r1 = int(chk.first_row[k]), int(chk.last_row[k])
        cyc, st = (labels(r0) if labels else (int(log.cycle[r0]), int(log.step[r0])))
        raise InputError(
            f"cycle {cyc} step {st} (data rows {r0 + 1}-{r1 + 1}): the file's capacity says "
            f"{chk.q_file_mAh[k]:.6g} mAh passed, its current x time gives "
            f"{chk.q_current_mAh[k]:.6g} mAh ({100 * chk.rel_mismatch[k]:.2f} % apart, more than "
            f"{100 * rel_tol:g} % plus the sampling allowance); the capacity or current column's "
            f"unit or cumulation is not what its header says", path=path,
            where=f"cycle {cyc} step {st}")
    return chk
