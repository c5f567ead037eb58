"""Synthetic galvanostatic cycling with exactly known capacities and voltages.

Each cycle is a constant-current charge of ``charge_mAh[k]`` followed by a
rest and a constant-current discharge of ``discharge_mAh[k]``. The voltage is
an open-circuit curve of the state of charge ``x = Q / Q_ref`` plus the ohmic
drop ``I·R``:

    V(x) = V_mid + slope·(x − ½) + a·ln(x / (1 − x)) + I·R,

a Nernst-like curve with a sloping part (x clipped to [x_min, 1 − x_min]).
Every half cycle ends exactly at its capacity (the last sample is placed on
the end time), so capacities, CE, ``∫V dQ`` and average voltages have exact
values: :func:`ocv_V` integrates in closed form (:func:`ocv_integral_VmAh`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope.echem._table import CyclerLog, make_log


@dataclass(frozen=True)
class CellModel:
    """Open-circuit curve and resistance of the synthetic cell."""

    q_ref_mAh: float = 1.0
    v_mid_V: float = 3.7
    slope_V: float = 0.6
    a_V: float = 0.05
    r_ohm: float = 5.0
    x_min: float = 1e-3


def ocv_V(x, cell: CellModel) -> np.ndarray:
    """Open-circuit voltage at state of charge ``x`` (clipped to ``[x_min, 1-x_min]``)."""
    x = np.clip(np.asarray(x, float), cell.x_min, 1 - cell.x_min)
    return cell.v_mid_V + cell.slope_V * (x - 0.5) + cell.a_V * np.log(x / (1 - x))


def ocv_integral_VmAh(x0: float, x1: float, cell: CellModel) -> float:
    """``∫ V_ocv dQ`` from ``x0`` to ``x1`` in V·mAh (both inside the clip range)."""

    def prim(x):
        return (cell.v_mid_V * x + cell.slope_V * (0.5 * x * x - 0.5 * x)
                + cell.a_V * (x * np.log(x) + (1 - x) * np.log(1 - x)))

    return float(cell.q_ref_mAh * (prim(x1) - prim(x0)))


def galvanostatic_cycles(charge_mAh, discharge_mAh, *, current_mA: float = 0.5,
                         discharge_current_mA=None, dt_s: float = 30.0, rest_s: float = 600.0,
                         x0: float = 0.05, cell: CellModel = CellModel(),
                         noise_V: float = 0.0, seed: int = 0) -> CyclerLog:
    """Simulate cycles with known capacities.

    Parameters
    ----------
    charge_mAh, discharge_mAh : sequence of float
        Capacity of each cycle's charge and discharge (mAh).
    current_mA : float
        Charge current (> 0).
    discharge_current_mA : float or sequence, optional
        Magnitude of the discharge current per cycle (default ``current_mA``);
        a sequence gives a rate test.
    dt_s, rest_s : float
        Logging interval and rest after each half cycle (s).
    x0 : float
        Initial state of charge.
    noise_V : float
        Gaussian voltage noise (V); the truth below is for ``noise_V = 0``.

    Returns
    -------
    CyclerLog
        With ``meta['truth']`` holding, per cycle, ``charge_mAh``,
        ``discharge_mAh``, ``charge_energy_mWh`` and ``energy_mWh`` (exact,
        ``∫(V_ocv ± I·R) dQ``) and the state of charge at every point.
    """
    qc = np.asarray(charge_mAh, float)
    qd = np.asarray(discharge_mAh, float)
    if qc.shape != qd.shape or np.any(qc <= 0) or np.any(qd <= 0):
        raise ValueError("charge_mAh and discharge_mAh must be positive sequences of equal length")
    idis = np.broadcast_to(np.asarray(current_mA if discharge_current_mA is None
                                      else discharge_current_mA, float), qc.shape)
    rng = np.random.default_rng(seed)
    t_parts, i_parts, q_parts, cyc_parts, step_parts = [], [], [], [], []
    truth = {k: [] for k in ("charge_mAh", "discharge_mAh", "charge_energy_mWh", "energy_mWh")}
    t, q, step = 0.0, 0.0, 0
    q_abs0 = x0 * cell.q_ref_mAh

    def segment(i_mA, dq_mAh, cycle):
        nonlocal t, q, step
        step += 1
        dur = 3600.0 * abs(dq_mAh / i_mA) if i_mA else rest_s
        n = max(int(np.ceil(dur / dt_s)), 1)
        tt = np.r_[np.arange(1, n) * dt_s, dur]
        t_parts.append(t + tt)
        i_parts.append(np.full(n, i_mA))
        q_parts.append(q + i_mA * tt / 3600.0)
        cyc_parts.append(np.full(n, cycle))
        step_parts.append(np.full(n, step))
        t += dur
        q += i_mA * dur / 3600.0

    t_parts.append(np.zeros(1)); i_parts.append(np.zeros(1)); q_parts.append(np.zeros(1))
    cyc_parts.append(np.ones(1, int)); step_parts.append(np.zeros(1, int))
    for k in range(len(qc)):
        x_start = (q_abs0 + q) / cell.q_ref_mAh
        segment(current_mA, qc[k], k + 1)
        x_mid = (q_abs0 + q) / cell.q_ref_mAh
        segment(0.0, 0.0, k + 1)
        segment(-idis[k], qd[k], k + 1)
        x_end = (q_abs0 + q) / cell.q_ref_mAh
        segment(0.0, 0.0, k + 1)
        if min(x_start, x_mid, x_end) < cell.x_min or max(x_start, x_mid, x_end) > 1 - cell.x_min:
            raise ValueError("cycling drives the state of charge outside (0, 1); lower the "
                             "capacities or raise q_ref_mAh")
        r_drop = 1e-3 * cell.r_ohm  # V per mA
        truth["charge_mAh"].append(qc[k])
        truth["discharge_mAh"].append(qd[k])
        truth["charge_energy_mWh"].append(ocv_integral_VmAh(x_start, x_mid, cell)
                                          + r_drop * current_mA * qc[k])
        truth["energy_mWh"].append(-ocv_integral_VmAh(x_mid, x_end, cell)
                                   - r_drop * idis[k] * qd[k])
    time_s = np.concatenate(t_parts)
    i = np.concatenate(i_parts)
    qq = np.concatenate(q_parts)
    x = (q_abs0 + qq) / cell.q_ref_mAh
    v = ocv_V(x, cell) + 1e-3 * cell.r_ohm * i
    if noise_V:
        v = v + rng.normal(0.0, noise_V, v.shape)
    step_arr = np.concatenate(step_parts)
    step_arr[0] = 1
    meta = {"format": "simulated", "truth": {k: np.array(val) for k, val in truth.items()},
            "x": x, "cell": cell}
    return make_log(time_s, v, i, qq, np.concatenate(cyc_parts), step_arr,
                    source="simulate.cycler", meta=meta)
