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


# ------------------------------------------------------------------------ Li-rich (LRM) cells
#
# State: the fraction u ∈ (0, 1) of the cell's reversible window Y (mAh). Charge moves u up
# along the charge branch V_ch(u), discharge moves it down along V_dis(u) < V_ch(u) (the
# hysteresis of Li-rich oxides); a fraction 1 − eff of the charge current feeds side
# reactions and does not move u (so CE ≈ eff in steady cycling). The first charge of a
# pristine cell runs on its own branch over its own capacity (the sloping transition-metal
# region, then the ~4.5 V oxygen-redox plateau); after it, the part that is not lost
# irreversibly enters the window. The terminal voltage adds η(t) = I·(R_ohm + R_diff·(1 −
# e^{−t/τ})) (ohmic + a diffusion-like RC term, t from the start of the CC step). A CC step
# ends at its voltage limit (brentq) or after its duration; a CV hold follows
# du/dt = eff·I/(3600·Y) with I = (V_hold − V_ocv(u))/R (solve_ivp, rtol 1e-11) until the
# current falls below its limit; a rest relaxes η as e^{−t/τ}. Every number's truth comes
# from the model itself (charge I·T or Y·Δu/eff, energy ∫V dQ by quad), never from the
# logged samples the analysis reads; the log keeps a point every dt or every 5 mV.

@dataclass(frozen=True)
class Branch:
    """Open-circuit voltage against ``u`` ∈ (0, 1) (rises with u):

    ``V(u) = v_mid + slope·(u − ½) + a·ln(u/(1 − u)) − plateau_V·e^{−u/plateau_w}``.
    The last term makes the sloping region that ends in the plateau of a first LRM charge.
    """

    v_mid: float
    slope: float
    a: float
    plateau_V: float = 0.0
    plateau_w: float = 0.12

    def __call__(self, u):
        u = np.clip(np.asarray(u, float), 1e-13, 1 - 1e-13)
        v = self.v_mid + self.slope * (u - 0.5) + self.a * np.log(u / (1 - u))
        return v - self.plateau_V * np.exp(-u / self.plateau_w) if self.plateau_V else v

    def shifted(self, dv: float) -> "Branch":
        from dataclasses import replace

        return replace(self, v_mid=self.v_mid + dv)


@dataclass(frozen=True)
class Polarisation:
    """Overpotential ``η = |I|·(R_ohm + R_diff·(1 − e^{−t/τ}) + R_sand·√(t / 1 h))`` (ohm, s):
    ohmic, a relaxing (RC) term and, on discharge only (Li diffusing back into the
    delithiated oxide, the rate-limiting process of LRM discharge), a semi-infinite-diffusion
    term growing as √t that makes the capacity fall with rate."""

    r_ohm: float
    r_diff: float
    tau_s: float = 600.0
    r_sand: float = 0.0

    def r_total(self, t_s, i_mA: float = 1.0):
        t = np.asarray(t_s, float)
        r = self.r_ohm + self.r_diff * (1 - np.exp(-t / self.tau_s))
        return r + self.r_sand * np.sqrt(t / 3600.0) if i_mA < 0 else r

    def eta_V(self, i_mA, t_s):
        return 1e-3 * abs(i_mA) * self.r_total(t_s, i_mA)

    def scaled(self, f: float) -> "Polarisation":
        return Polarisation(self.r_ohm * f, self.r_diff * f, self.tau_s, self.r_sand * f)


def _integral(f, T: float) -> float:
    """∫_0^T f dt by 24-point Gauss–Legendre on 256 cosine-spaced pieces (dense at both ends,
    where the voltage moves fastest); agrees with adaptive quadrature to ~1e-12 here."""
    x, w = np.polynomial.legendre.leggauss(24)
    edges = T * (0.5 - 0.5 * np.cos(np.pi * np.linspace(0.0, 1.0, 257)))
    a, b = edges[:-1, None], edges[1:, None]
    t = 0.5 * (b - a) * x[None, :] + 0.5 * (a + b)
    return float(np.sum(0.5 * (b - a) * w[None, :] * f(t)))


class _Cell:
    """Runs steps, logs points and books the exact truth per cycle."""

    def __init__(self, dt_s: float, dv_log_V: float = 0.005):
        self.dt, self.dv = dt_s, dv_log_V
        self.t = self.q = 0.0
        self.rows: list[np.ndarray] = []
        self.step = 0
        self.truth: dict[int, dict] = {}
        self.v_last = None

    def _book(self, cycle, sgn, q_mAh, e_mWh, cv=0.0):
        tr = self.truth.setdefault(cycle, dict.fromkeys(
            ("charge_mAh", "discharge_mAh", "charge_energy_mWh", "energy_mWh", "cv_charge_mAh"), 0.0))
        k = ("charge_mAh", "charge_energy_mWh") if sgn > 0 else ("discharge_mAh", "energy_mWh")
        tr[k[0]] += q_mAh
        tr[k[1]] += e_mWh
        tr["cv_charge_mAh"] += cv

    def _log(self, tt, v, i, q_rel, cycle, watch):
        # A point each time the clock crosses a multiple of dt or the watched value
        # (voltage, or current in a CV hold) a multiple of dv, as cyclers log; and the last.
        tick = np.floor(tt / self.dt)
        level = np.floor(np.asarray(watch) / self.dv)
        new = np.r_[True, (tick[1:] != tick[:-1]) | (level[1:] != level[:-1])]
        new[-1] = True
        keep = np.flatnonzero(new)
        self.step += 1
        if not self.rows:  # the record opens at t = 0, the first step's start
            i0 = float(np.broadcast_to(np.asarray(i, float), tt.shape)[0])
            self.rows.append(np.array([[0.0, v[0], i0, 0.0, cycle, self.step]]))
        n = len(keep)
        self.rows.append(np.column_stack([self.t + tt[keep], v[keep],
                                          np.broadcast_to(np.asarray(i, float), tt.shape)[keep],
                                          self.q + q_rel[keep], np.full(n, cycle), np.full(n, self.step)]))
        self.v_last = float(v[-1])

    def cc(self, cycle, br: Branch, Y, u0, i_mA, pol: Polarisation, *, eff=1.0, v_stop=None,
           duration_s=None):
        """Constant current (mA, > 0 charge); returns (u_end, T_s, terminal V at the end)."""
        from scipy.optimize import brentq

        sgn = 1.0 if i_mA > 0 else -1.0
        rate = (eff if sgn > 0 else 1.0) * abs(i_mA) / (3600.0 * Y)

        def v_term(t):
            return br(u0 + sgn * rate * t) + sgn * pol.eta_V(i_mA, t)

        room = (1 - u0) if sgn > 0 else u0
        t_room = room / rate * (1 - 1e-14)
        T = t_room if duration_s is None else min(duration_s, t_room)
        if v_stop is not None and sgn * (v_term(T) - v_stop) >= 0:
            if sgn * (v_term(0.0) - v_stop) >= 0:
                raise ValueError(f"CC step at {i_mA} mA starts beyond its limit {v_stop} V")
            T = brentq(lambda t: v_term(t) - v_stop, 0.0, T, xtol=1e-10, rtol=1e-15)
        elif duration_s is None:
            raise ValueError("a CC step needs a voltage limit it reaches or a duration")
        s = np.linspace(0.0, 1.0, 6001)[1:]
        tt = np.unique(np.r_[min(1.0, 0.5 * T), T * (0.5 - 0.5 * np.cos(np.pi * s))])
        v = v_term(tt)
        self._log(tt, v, i_mA, i_mA * tt / 3600.0, cycle, v)
        e = _integral(v_term, T)
        self._book(cycle, sgn, abs(i_mA) * T / 3600.0, abs(i_mA) * e / 3600.0)
        self.t += T
        self.q += i_mA * T / 3600.0
        return u0 + sgn * rate * T, T, float(v_term(T))

    def cv(self, cycle, br: Branch, Y, u0, v_hold, r_ohm_total, i_stop_mA, *, eff=1.0):
        """Hold ``v_hold`` on charge until the current falls below ``i_stop_mA``; returns (u_end, |I| end)."""
        from scipy.integrate import solve_ivp

        def current(u):
            return 1e3 * (v_hold - br(u)) / r_ohm_total

        def done(t, y):
            return current(y[0]) - i_stop_mA
        done.terminal = True
        sol = solve_ivp(lambda t, y: [eff * current(y[0]) / (3600.0 * Y)], (0.0, 1e8), [u0],
                        events=done, dense_output=True, rtol=1e-11, atol=1e-14, method="LSODA")
        T = float(sol.t_events[0][0])
        tt = np.unique(np.r_[np.geomspace(min(1.0, 0.5 * T), T, 4000), T])
        u = sol.sol(tt)[0]
        i = current(u)
        q_rel = Y * (u - u0) / eff
        self._log(tt, np.full(len(tt), float(v_hold)), i, q_rel, cycle, v_hold + 1e-3 * i / max(abs(i[0]), 1e-300))
        dq = Y * (float(sol.sol(T)[0]) - u0) / eff
        self._book(cycle, 1.0, dq, v_hold * dq, cv=dq)
        self.t += T
        self.q += dq
        return float(sol.sol(T)[0]), float(current(sol.sol(T)[0]))

    def rest(self, cycle, v_ocv, eta_end_V, duration_s, tau_s):
        s = np.linspace(0.0, 1.0, 801)[1:]
        tt = duration_s * s ** 2
        v = v_ocv + eta_end_V * np.exp(-tt / tau_s)
        self._log(tt, v, 0.0, np.zeros_like(tt), cycle, v)
        self.t += duration_s

    def finish(self, source: str, extra: dict) -> CyclerLog:
        rows = np.concatenate(self.rows)
        cycles = sorted(self.truth)
        tr = {k: np.array([self.truth[c][k] for c in cycles]) for k in self.truth[cycles[0]]}
        tr["ce"] = tr["discharge_mAh"] / tr["charge_mAh"]
        tr["avg_charge_V"] = tr["charge_energy_mWh"] / tr["charge_mAh"]
        tr["avg_discharge_V"] = tr["energy_mWh"] / tr["discharge_mAh"]
        tr["cycle"] = np.array(cycles)
        meta = {"format": "simulated", "truth": tr, "cycle_source": "file", **extra}
        return make_log(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4].astype(int),
                        rows[:, 5].astype(int), source=source, meta=meta)


@dataclass(frozen=True)
class LRMCell:
    """Branches, polarisation and ageing of a simulated LRM cell (capacities per cell, mAh)."""

    first_charge: Branch
    charge: Branch
    discharge: Branch
    y_first_mAh: float  # capacity of the first-charge branch (pristine cell)
    y_window_mAh: float  # reversible window after activation
    pol: Polarisation
    eff: float = 0.995  # share of the charge current that moves the state (CE in steady cycling)
    fade_per_cycle: float = 0.0  # relative loss of the window per cycle
    decay_V_per_cycle: float = 0.0  # downward shift of both branches per cycle (voltage decay)
    r_growth_per_cycle: float = 0.0


def _first_cycle(cell_sim: _Cell, m: LRMCell, charge_steps, v_max, v_min, i_dis_mA, ice, *,
                 cv_stop_mA=None, rest_s=1800.0):
    """Pristine first charge (CC steps [, CV]), rest, discharge to ``v_min``; the irreversible
    loss is solved so that the first-cycle CE is ``ice`` exactly. Returns u after discharge."""
    from scipy.optimize import brentq

    u, pol, t_cc, v_end, i_last = 0.0, m.pol, 0.0, None, None
    for i_mA, dur in charge_steps:
        u, t_cc, v_end = cell_sim.cc(1, m.first_charge, m.y_first_mAh, u, i_mA, pol,
                                     v_stop=v_max, duration_s=dur)
        i_last = i_mA
    r_tot = float(pol.r_total(t_cc))
    eta = 1e-3 * i_last * r_tot
    if cv_stop_mA is not None:
        u, i_end = cell_sim.cv(1, m.first_charge, m.y_first_mAh, u, v_max, r_tot, cv_stop_mA)
        eta = 1e-3 * i_end * r_tot
    q_c1 = cell_sim.truth[1]["charge_mAh"]
    cell_sim.rest(1, float(m.first_charge(u)), eta, rest_s, pol.tau_s)
    # discharge capacity from a window state u_top: Y·(u_top − u_bottom(cutoff))
    dis = m.discharge

    def q_dis(u_top):
        probe = _Cell(1e9)
        u_end, T, _ = probe.cc(1, dis, m.y_window_mAh, u_top, -abs(i_dis_mA), pol, v_stop=v_min)
        return abs(i_dis_mA) * T / 3600.0

    target = ice * q_c1
    u_top = brentq(lambda x: q_dis(x) - target, 0.3, 1 - 1e-9, xtol=1e-15, rtol=1e-15)
    u, t_d, _ = cell_sim.cc(1, dis, m.y_window_mAh, u_top, -abs(i_dis_mA), pol, v_stop=v_min)
    cell_sim.rest(1, float(dis(u)), -pol.eta_V(i_dis_mA, t_d), rest_s, pol.tau_s)
    return u


def _cycles(cell_sim: _Cell, m: LRMCell, u, first_cycle_no, n, *, i_ch_mA, i_dis_mA, v_max, v_min,
            rest_s=600.0, cv_stop_mA=None):
    """``n`` activated cycles from state ``u``; currents may be sequences (rate tests)."""
    i_dis = np.broadcast_to(np.asarray(i_dis_mA, float), (n,))
    i_ch = np.broadcast_to(np.asarray(i_ch_mA, float), (n,))
    for j in range(n):
        k = first_cycle_no + j
        age = k - 2 if first_cycle_no >= 2 else k - 1
        age = max(age, 0)
        y = m.y_window_mAh * (1 - m.fade_per_cycle) ** age
        u = min(u * (m.y_window_mAh * (1 - m.fade_per_cycle) ** max(age - 1, 0)) / y, 1 - 1e-9)
        pol = m.pol.scaled(1 + m.r_growth_per_cycle * age)
        ch = m.charge.shifted(-m.decay_V_per_cycle * age)
        dis = m.discharge.shifted(-m.decay_V_per_cycle * age)
        u, t_cc, _ = cell_sim.cc(k, ch, y, u, abs(i_ch[j]), pol, eff=m.eff, v_stop=v_max)
        r_tot = float(pol.r_total(t_cc))
        eta = 1e-3 * abs(i_ch[j]) * r_tot
        if cv_stop_mA is not None:
            u, i_end = cell_sim.cv(k, ch, y, u, v_max, r_tot, cv_stop_mA, eff=m.eff)
            eta = 1e-3 * i_end * r_tot
        cell_sim.rest(k, float(ch(u)), eta, rest_s, pol.tau_s)
        u, t_d, _ = cell_sim.cc(k, dis, y, u, -abs(i_dis[j]), pol, v_stop=v_min)
        eta = -pol.eta_V(i_dis[j], t_d)
        cell_sim.rest(k, float(dis(u)), eta, rest_s, pol.tau_s)
    return u


#: LRM half-cell vs Li per gram of active material (1C = 250 mA/g): first charge of the
#: pristine oxide (sloping TM region, ~4.5 V plateau) and the activated branches.
_HALF_FIRST = Branch(4.46, 0.10, 0.02, plateau_V=0.75, plateau_w=0.12)
_HALF_CHARGE = Branch(3.85, 0.60, 0.05)
_HALF_DISCHARGE = Branch(3.55, 1.60, 0.03)
#: first-cycle CE of the spinel-coated and uncoated LRM half-cells (the paper, Supp. Fig. 2a)
HALF_CELL_ICE = {"coated": 0.91, "u-LRM": 0.85}


def lrm_half_cell(kind: str = "coated", *, mass_mg: float = 10.0,
                  rates_C=(0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 0.1), cycles_per_rate: int = 1,
                  dt_s: float = 300.0) -> CyclerLog:
    """A Li-rich cathode half-cell (vs Li) with the first cycle and a rate test (Supp. Fig. 2a, b).

    Cycle 1: charge at C/10 (1C = 250 mA/g) to 4.8 V through the ~4.5 V plateau, discharge
    at C/10 to 2.0 V with first-cycle CE ``HALF_CELL_ICE[kind]`` (91 % coated, 85 % u-LRM).
    Then ``cycles_per_rate`` cycles at each discharge rate in ``rates_C`` (charge at C/10).
    ``meta['truth']`` holds every per-cycle number (capacities, energies, CE, average
    voltages) from the model, ``meta['nominal_mAh']`` the C/10 capacity basis (1C).

    Parameters
    ----------
    kind : str
        ``"coated"`` or ``"u-LRM"`` (uncoated): sets the first-cycle CE.
    mass_mg : float
        Active mass (mg); with 250 mA/g it sets 1C (mA).
    rates_C : sequence of float
        Discharge rates of the rate test (C).
    cycles_per_rate : int
        Cycles at each rate.
    dt_s : float
        Sampling interval of the record (s).

    Returns
    -------
    CyclerLog
        Time (s), voltage (V), current (mA), capacity (mAh), cycle and step of every record,
        with the model's per-cycle truth in ``meta['truth']``.

    Examples
    --------
    >>> import layerscope as ls                                          # doctest: +SKIP
    >>> ls.cycle_summary(ls.simulate.lrm_half_cell(mass_mg=8.0))         # doctest: +SKIP
    """
    if kind not in HALF_CELL_ICE:
        raise ValueError(f"kind must be one of {sorted(HALF_CELL_ICE)}, got {kind!r}")
    g = mass_mg * 1e-3
    one_c = 250.0 * g  # mA
    m = LRMCell(_HALF_FIRST, _HALF_CHARGE, _HALF_DISCHARGE, y_first_mAh=320.0 * g,
                y_window_mAh=300.0 * g, pol=Polarisation(0.2 / g, 0.4 / g, 900.0, 2.0 / g),
                eff=0.995, fade_per_cycle=0.002, decay_V_per_cycle=0.002)
    sim = _Cell(dt_s)
    u = _first_cycle(sim, m, [(0.1 * one_c, None)], 4.8, 2.0, 0.1 * one_c, HALF_CELL_ICE[kind])
    rates = np.repeat(np.asarray(rates_C, float), cycles_per_rate)
    _cycles(sim, m, u, 2, len(rates), i_ch_mA=0.1 * one_c, i_dis_mA=rates * one_c, v_max=4.8,
            v_min=2.0)
    return sim.finish(f"simulate.cycler.lrm_half_cell({kind})",
                      {"mass_mg": mass_mg, "nominal_mAh": one_c, "window_V": (2.0, 4.8),
                       "rates_C": np.r_[0.1, rates], "kind": kind, "ice": HALF_CELL_ICE[kind]})


#: graphite || LRM pouch cell (4 Ah): full-cell branches (cathode minus ~0.1 V graphite)
_POUCH_FIRST = Branch(4.40, 0.12, 0.03, plateau_V=0.9, plateau_w=0.15)
_POUCH_CHARGE = Branch(3.78, 0.60, 0.05)
_POUCH_DISCHARGE = Branch(3.55, 0.90, 0.06)
POUCH_NOMINAL_mAh = 4000.0


def lrm_pouch_cell(protocol: str = "cycling", *, n_cycles: int = 100, dt_s: float = 120.0,
                   ice: float = 0.86) -> CyclerLog:
    """The 4 Ah graphite || LRM pouch cell of the paper.

    ``protocol`` is one of:

    * ``"formation"``: charge at 250 mA (2 h), 500 mA (2 h), then 1000 mA to 4.5 V; rest;
      discharge at 500 mA to 2.5 V (first-cycle CE ``ice``);
    * ``"operando"``: the operando first cycle, 500 mA to 4.5 V, a 4.5 V CV hold until the
      current falls below 100 mA, rest, 500 mA discharge to 2.5 V;
    * ``"cycling"``: after formation, ``n_cycles`` cycles at 4 A (1C) in 2.5–4.5 V with
      capacity fade and average-voltage decay (the branches shift down 1.5 mV per cycle,
      the resistance grows 0.4 % per cycle).

    ``meta['truth']`` holds every per-cycle number from the model (``cv_charge_mAh``: the
    charge passed in CV holds).

    Parameters
    ----------
    protocol : str
        ``"formation"``, ``"operando"`` or ``"cycling"`` (above).
    n_cycles : int
        Cycles of the ``"cycling"`` protocol.
    dt_s : float
        Sampling interval of the record (s).
    ice : float
        First-cycle coulombic efficiency (0-1).

    Returns
    -------
    CyclerLog
        Time (s), voltage (V), current (mA), capacity (mAh), cycle and step of every record,
        with the model's per-cycle truth in ``meta['truth']``.
    """
    m = LRMCell(_POUCH_FIRST, _POUCH_CHARGE, _POUCH_DISCHARGE, y_first_mAh=5400.0,
                y_window_mAh=4200.0, pol=Polarisation(0.025, 0.035, 600.0, 0.02), eff=0.998,
                fade_per_cycle=0.001, decay_V_per_cycle=0.0015, r_growth_per_cycle=0.003)
    sim = _Cell(dt_s)
    if protocol == "formation":
        _first_cycle(sim, m, [(250.0, 7200.0), (500.0, 7200.0), (1000.0, None)], 4.5, 2.5, 500.0, ice)
    elif protocol == "operando":
        _first_cycle(sim, m, [(500.0, None)], 4.5, 2.5, 500.0, ice, cv_stop_mA=100.0)
    elif protocol == "cycling":
        if n_cycles < 1:
            raise ValueError("n_cycles must be >= 1")
        # start where a 4 A discharge to 2.5 V leaves the formed cell (a probe, not logged)
        u0, _, _ = _Cell(1e9).cc(0, m.discharge, m.y_window_mAh, 0.9, -4000.0, m.pol, v_stop=2.5)
        _cycles(sim, m, u0, 1, n_cycles, i_ch_mA=4000.0, i_dis_mA=4000.0, v_max=4.5, v_min=2.5)
    else:
        raise ValueError(f"protocol must be 'formation', 'operando' or 'cycling', got {protocol!r}")
    return sim.finish(f"simulate.cycler.lrm_pouch_cell({protocol})",
                      {"nominal_mAh": POUCH_NOMINAL_mAh, "window_V": (2.5, 4.5), "protocol": protocol})
