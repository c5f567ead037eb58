"""Differential capacity dQ/dV and differential voltage dV/dQ of a half cycle.

The logged ``Q(V)`` of a galvanostatic half cycle is resampled onto a uniform
voltage grid (``V`` made monotonic by a running maximum/minimum, so that noise
reversals do not fold the curve) by linear interpolation of ``Q`` against
``V``, then differentiated with a Savitzky–Golay filter (Savitzky & Golay,
Anal. Chem. 36, 1627, 1964; ``scipy.signal.savgol_filter``), which smooths
and differentiates in one pass. The smoothing is set by ``window_V`` (the
width of the local polynomial fit in volts) and ``polyorder``: a peak narrower than
the window is broadened, one wider is reproduced.

dV/dQ (:func:`dvdq`, the differential-voltage analysis of full cells, e.g. Bloom et
al., J. Power Sources 139, 295, 2005) is the same operation with the roles swapped:
``V`` resampled onto a uniform charge grid (``dq_mAh`` apart; the charge of a half
cycle only grows) and differentiated by Savitzky–Golay over ``window_mAh``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import savgol_filter


@dataclass(frozen=True)
class DQDV:
    """Differential capacity on a uniform voltage grid."""

    voltage_V: np.ndarray
    dqdv_mAh_per_V: np.ndarray


def dqdv(q_mAh, v_V, *, dv_V: float = 0.005, window_V: float = 0.05,
         polyorder: int = 2) -> DQDV:
    """dQ/dV of one half cycle (charge or discharge).

    Parameters
    ----------
    q_mAh, v_V : array_like
        Charge passed since the start of the half cycle and the voltage
        (e.g. from :func:`layerscope.echem.analysis.half_cycle`).
    dv_V : float
        Spacing of the uniform voltage grid (V).
    window_V : float
        Width of the Savitzky–Golay window (V); the smoothing length.
    polyorder : int
        Order of the local polynomial.

    Returns
    -------
    DQDV
        ``dqdv_mAh_per_V`` is |dQ/dV| (positive for charge and discharge).
    """
    q = np.asarray(q_mAh, float)
    v = np.asarray(v_V, float)
    if q.shape != v.shape or q.ndim != 1:
        raise ValueError(f"q and v must be 1-D arrays of equal length, got {q.shape}, {v.shape}")
    if len(q) < 3 or not np.all(np.isfinite(q)) or not np.all(np.isfinite(v)):
        raise ValueError("dQ/dV needs at least 3 finite points")
    rising = v[-1] >= v[0]
    vm = np.maximum.accumulate(v) if rising else np.minimum.accumulate(v)
    if not rising:
        vm, q = vm[::-1], q[::-1]
    # Keep the last Q at each repeated voltage so that interpolation is defined.
    keep = np.r_[np.diff(vm) > 0, True]
    vm, q = vm[keep], q[keep]
    if len(vm) < 3:
        raise ValueError("voltage does not change over the half cycle")
    grid = np.arange(vm[0], vm[-1], dv_V)
    qg = np.interp(grid, vm, q)
    window = max(int(round(window_V / dv_V)) | 1, polyorder + 2 | 1)
    if window > len(grid):
        window = len(grid) if len(grid) % 2 else len(grid) - 1
    if window <= polyorder:
        raise ValueError("voltage range too small for the requested smoothing window")
    d = savgol_filter(qg, window, polyorder, deriv=1, delta=dv_V, mode="interp")
    return DQDV(grid, np.abs(d))


@dataclass(frozen=True)
class DVDQ:
    """Differential voltage on a uniform charge grid."""

    capacity_mAh: np.ndarray
    dvdq_V_per_mAh: np.ndarray


def dvdq(q_mAh, v_V, *, dq_mAh: float | None = None, window_mAh: float | None = None,
         polyorder: int = 2) -> DVDQ:
    """dV/dQ of one half cycle against the charge passed since its start.

    Parameters
    ----------
    q_mAh, v_V : array_like
        Charge passed since the start of the half cycle (grows) and the voltage.
    dq_mAh : float, optional
        Spacing of the uniform charge grid (default: total / 1000).
    window_mAh : float, optional
        Width of the Savitzky–Golay window (default: 2 % of the half cycle's charge).
    polyorder : int
        Order of the local polynomial.

    Returns
    -------
    DVDQ
        ``dvdq_V_per_mAh`` is |dV/dQ| (positive for charge and discharge).
    """
    q = np.asarray(q_mAh, float)
    v = np.asarray(v_V, float)
    if q.shape != v.shape or q.ndim != 1:
        raise ValueError(f"q and v must be 1-D arrays of equal length, got {q.shape}, {v.shape}")
    if len(q) < 3 or not np.all(np.isfinite(q)) or not np.all(np.isfinite(v)):
        raise ValueError("dV/dQ needs at least 3 finite points")
    keep = np.r_[np.diff(q) > 0, True]
    q, v = q[keep], v[keep]
    total = q[-1] - q[0]
    if len(q) < 3 or total <= 0:
        raise ValueError("no charge passes in the half cycle")
    dq = dq_mAh or total / 1000.0
    grid = np.arange(q[0], q[-1], dq)
    vg = np.interp(grid, q, v)
    window = max(int(round((window_mAh or 0.02 * total) / dq)) | 1, polyorder + 2 | 1)
    if window > len(grid):
        window = len(grid) if len(grid) % 2 else len(grid) - 1
    if window <= polyorder:
        raise ValueError("charge range too small for the requested smoothing window")
    d = savgol_filter(vg, window, polyorder, deriv=1, delta=dq, mode="interp")
    return DVDQ(grid - q[0], np.abs(d))
