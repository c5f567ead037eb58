"""Differential capacity dQ/dV of a half cycle.

The logged ``Q(V)`` of a galvanostatic half cycle is resampled onto a uniform
voltage grid (``V`` made monotonic by a running maximum/minimum, so that noise
reversals do not fold the curve) by linear interpolation of ``Q`` against
``V``, then differentiated with a Savitzky–Golay filter (Savitzky & Golay,
Anal. Chem. 36, 1627, 1964; ``scipy.signal.savgol_filter``), which smooths
and differentiates in one pass.
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
