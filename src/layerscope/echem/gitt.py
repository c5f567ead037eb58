"""Galvanostatic intermittent titration (GITT): a chemical diffusion coefficient per pulse.

Weppner & Huggins (J. Electrochem. Soc. 124, 1569, 1977), for a pulse of constant current
short against the diffusion time (``τ ≪ L²/D``):

.. math::

    D = \\frac{4}{\\pi \\tau} \\left(\\frac{V_M m_B}{M_B S}\\right)^2
        \\left(\\frac{\\Delta E_s}{\\Delta E_\\tau}\\right)^2
      = \\frac{4 L^2}{\\pi \\tau} \\left(\\frac{\\Delta E_s}{\\Delta E_\\tau}\\right)^2

with ``L = V_M m_B / (M_B S)`` the diffusion length (the film thickness; for spheres of
radius r, r/3), ``ΔE_s`` the change of the relaxed (steady-state) voltage over the pulse
and its rest and ``ΔE_τ`` the change of the voltage during the pulse without the IR
step. ``ΔE_τ`` is taken from a straight-line fit of V against √t over the pulse (slope ×
√τ; the intercept absorbs the IR step), which is the short-time solution the equation
rests on; the fit's R² is reported. A pulse whose result the method cannot determine is
NaN with a flag: the voltage not linear in √t (R² < ``min_r2``), or the computed D
breaking the assumption (``τ·D/L² > max_tau_ratio``), or a rest that is not relaxed
(the voltage still moves more than ``relax_tol_V`` over its last 10 %).
Written by hand: no maintained Python library implements GITT analysis on cycler tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope._errors import InputError
from layerscope.echem._table import CyclerLog, _direction


@dataclass(frozen=True)
class GITTResult:
    """One entry per pulse."""

    t_start_s: np.ndarray
    tau_s: np.ndarray
    current_mA: np.ndarray
    charge_mAh: np.ndarray  # capacity_mAh at the end of the pulse (net charge since start)
    dE_s_V: np.ndarray
    dE_tau_V: np.ndarray
    r2: np.ndarray
    D_cm2_s: np.ndarray
    flag: np.ndarray  # '' or why D is NaN


def gitt(log: CyclerLog, *, length_cm: float, min_r2: float = 0.98,
         max_tau_ratio: float = 0.1, relax_tol_V: float = 1e-3) -> GITTResult:
    """Weppner–Huggins diffusion coefficient of every pulse (a CC step between two rests).

    Parameters
    ----------
    log : CyclerLog
    length_cm : float
        Diffusion length L (cm): ``V_M m_B / (M_B S)``, the film thickness, or r/3 for
        spherical particles of radius r.
    min_r2, max_tau_ratio, relax_tol_V : float
        Limits beyond which a pulse's D is NaN with a flag (module docstring).
    """
    if not (np.isfinite(length_cm) and length_cm > 0):
        raise InputError(f"diffusion length must be a positive number of cm, got {length_cm}")
    st = log.step
    starts = np.flatnonzero(np.r_[True, st[1:] != st[:-1]])
    ends = np.r_[starts[1:], len(st)]
    kind = np.array([_direction(np.array([np.mean(log.current_mA[a:b])]),
                                1e-6 * max(np.max(np.abs(log.current_mA)), 1e-300))[0]
                     for a, b in zip(starts, ends)])
    out = {k: [] for k in GITTResult.__dataclass_fields__}
    for j in range(1, len(starts) - 1):
        if kind[j] == 0 or kind[j - 1] != 0 or kind[j + 1] != 0:
            continue
        a, b = starts[j], ends[j]
        ra, rb = starts[j - 1], ends[j - 1]
        na, nb = starts[j + 1], ends[j + 1]
        t0 = log.time_s[rb - 1]  # the pulse starts after the last rest point
        t = log.time_s[a:b] - t0
        v = log.voltage_V[a:b]
        tau = float(t[-1])
        e0, e1 = log.voltage_V[rb - 1], log.voltage_V[nb - 1]
        flag = ""
        if len(t) < 4:
            flag = "fewer than 4 points in the pulse"
        x = np.sqrt(t)
        if not flag:
            A = np.column_stack([x, np.ones_like(x)])
            coef, *_ = np.linalg.lstsq(A, v, rcond=None)
            fit = A @ coef
            ss = np.sum((v - v.mean()) ** 2)
            r2 = 1 - np.sum((v - fit) ** 2) / ss if ss > 0 else 0.0
            d_tau = coef[0] * np.sqrt(tau)
        else:
            r2, d_tau = np.nan, np.nan
        d_s = e1 - e0
        with np.errstate(divide="ignore", invalid="ignore"):
            D = 4 * length_cm ** 2 / (np.pi * tau) * (d_s / d_tau) ** 2
        for ra_, rb_ in ((ra, rb), (na, nb)):
            tail = log.voltage_V[ra_ + int(0.9 * (rb_ - ra_)):rb_]
            if not flag and len(tail) > 1 and np.ptp(tail) > relax_tol_V:
                flag = "rest not relaxed"
        if not flag and r2 < min_r2:
            flag = f"voltage not linear in sqrt(t) during the pulse (R2 {r2:.3f})"
        if not flag and tau * D / length_cm ** 2 > max_tau_ratio:
            flag = f"pulse not short against the diffusion time (tau D / L^2 = {tau * D / length_cm ** 2:.2f})"
        out["t_start_s"].append(t0)
        out["tau_s"].append(tau)
        out["current_mA"].append(float(np.mean(log.current_mA[a:b])))
        out["charge_mAh"].append(float(log.capacity_mAh[b - 1]))
        out["dE_s_V"].append(d_s)
        out["dE_tau_V"].append(d_tau)
        out["r2"].append(r2)
        out["D_cm2_s"].append(np.nan if flag else D)
        out["flag"].append(flag)
    return GITTResult(**{k: np.array(v, dtype=object if k == "flag" else float) for k, v in out.items()})
