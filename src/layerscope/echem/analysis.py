"""Per-cycle analysis of a galvanostatic record, in the convention the user sets.

Conventions (``convention=``):

* always: charge = current > 0 (the cell's voltage rises), discharge = current < 0;
* ``"cathode"`` (default; a cathode half-cell vs Li, the paper's Supp. Fig. 2) and
  ``"full"`` (a full cell): a cycle is a charge then a discharge; the reversible
  capacity is the discharge; ``CE = Q_discharge / Q_charge`` of the same cycle;
* ``"anode"`` (an anode half-cell vs Li, e.g. graphite or Si: lithiation of the working
  electrode is the discharge and comes first): a cycle is a discharge then a charge;
  the reversible capacity is the charge (delithiation); ``CE = Q_charge / Q_discharge``;
* a cycle that lacks one of its halves gets NaN (not 0) for that half's capacity,
  energy and average voltage, and for CE and retention, with a note saying what is
  missing (``CycleSummary.notes``, the ``note`` column of ``cycles.csv``);
* the initial CE (ICE) is that of the first cycle with both halves;
* average voltage of a half cycle ``V̄ = ∫ V dQ / Q`` and its energy
  ``E = ∫ V dQ`` (mWh from V·mAh), integrated by the trapezoid rule over the
  logged points;
* retention = reversible capacity / that of a reference cycle (default the first
  cycle with both halves); voltage decay = ``V̄_dis − V̄_dis(ref)``;
  hysteresis = ``V̄_ch − V̄_dis``;
* C-rate = |I| / nominal capacity (1C discharges the nominal capacity in 1 h).

The charge passed between two logged points is the increment of the tidy
table's ``capacity_mAh`` (the instrument's own integration where the file
carries it); increments > 0 count as charge, < 0 as discharge, and each is
booked to the cycle of the later point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope.echem._table import CyclerLog, _direction


@dataclass(frozen=True)
class CycleSummary:
    """One entry per cycle (arrays of equal length). Capacities in mAh, V in volts."""

    cycle: np.ndarray
    charge_mAh: np.ndarray
    discharge_mAh: np.ndarray
    ce: np.ndarray
    avg_charge_V: np.ndarray
    avg_discharge_V: np.ndarray
    energy_mWh: np.ndarray
    charge_energy_mWh: np.ndarray
    charge_current_mA: np.ndarray
    discharge_current_mA: np.ndarray
    mass_mg: float | None = None
    convention: str = "cathode"
    notes: tuple = ()

    @property
    def hysteresis_V(self) -> np.ndarray:
        """Average charge minus average discharge voltage."""
        return self.avg_charge_V - self.avg_discharge_V

    @property
    def charge_mAh_g(self) -> np.ndarray:
        """Specific charge capacity (mAh per g of active material)."""
        return self.charge_mAh / self._mass_g()

    @property
    def discharge_mAh_g(self) -> np.ndarray:
        """Specific discharge capacity (mAh per g of active material)."""
        return self.discharge_mAh / self._mass_g()

    @property
    def energy_Wh_kg(self) -> np.ndarray:
        """Specific discharge energy (Wh per kg of active material = mWh/g)."""
        return self.energy_mWh / self._mass_g()

    def _mass_g(self) -> float:
        if not self.mass_mg:
            raise ValueError("specific values need the active mass (mass_mg)")
        return self.mass_mg * 1e-3

    @property
    def reversible_mAh(self) -> np.ndarray:
        """The capacity that counts for retention: discharge (cathode/full) or charge (anode)."""
        return self.charge_mAh if self.convention == "anode" else self.discharge_mAh

    @property
    def initial_ce(self) -> float:
        """CE of the first cycle that has both a charge and a discharge."""
        full = self.full_cycles()
        return float(self.ce[full][0]) if full.any() else float("nan")

    def full_cycles(self) -> np.ndarray:
        """Boolean mask of cycles with both a charge and a discharge."""
        with np.errstate(invalid="ignore"):
            return (self.charge_mAh > 0) & (self.discharge_mAh > 0)

    def retention(self, ref_cycle: int | None = None) -> np.ndarray:
        """Reversible capacity relative to ``ref_cycle`` (default: first full cycle).

        NaN for a cycle that lacks its reversible half."""
        return self.reversible_mAh / self.reversible_mAh[self._ref(ref_cycle)]

    def voltage_decay_V(self, ref_cycle: int | None = None) -> np.ndarray:
        """Average discharge voltage minus that of ``ref_cycle``."""
        return self.avg_discharge_V - self.avg_discharge_V[self._ref(ref_cycle)]

    def _ref(self, ref_cycle):
        if ref_cycle is None:
            full = np.flatnonzero(self.full_cycles())
            if not len(full):
                raise ValueError("no cycle has both a charge and a discharge")
            return full[0]
        hit = np.flatnonzero(self.cycle == ref_cycle)
        if not len(hit):
            raise ValueError(f"reference cycle {ref_cycle} not in the record "
                             f"(cycles {self.cycle.min()}–{self.cycle.max()})")
        return hit[0]

    def columns(self) -> dict[str, np.ndarray]:
        """The table written to ``cycles.csv`` (the CLI's promised columns first)."""
        out = {
            "cycle": self.cycle, "charge_mAh": self.charge_mAh,
            "discharge_mAh": self.discharge_mAh, "ce": self.ce,
            "avg_charge_V": self.avg_charge_V, "avg_discharge_V": self.avg_discharge_V,
            "energy_mWh": self.energy_mWh, "charge_energy_mWh": self.charge_energy_mWh,
            "hysteresis_V": self.hysteresis_V,
            "charge_current_mA": self.charge_current_mA,
            "discharge_current_mA": self.discharge_current_mA,
        }
        if self.full_cycles().any():
            out["retention"] = self.retention()
            out["voltage_decay_V"] = self.voltage_decay_V()
        if self.mass_mg:
            out["charge_mAh_g"] = self.charge_mAh_g
            out["discharge_mAh_g"] = self.discharge_mAh_g
            out["energy_Wh_kg"] = self.energy_Wh_kg
        out["note"] = np.array([n for n in self.cycle_notes()], dtype=object)
        return out

    def to_xarray(self):
        """The per-cycle table (``columns()``) as an xarray Dataset over ``cycle``, units in attrs."""
        from layerscope.echem._xr import summary_dataset

        return summary_dataset(self)

    def __repr__(self) -> str:
        full = self.full_cycles()
        q = self.reversible_mAh[full]
        return (f"CycleSummary: {len(self.cycle)} cycles ({int(full.sum())} with charge and discharge), "
                f"{self.convention} convention; initial CE {self.initial_ce:.4f}"
                + (f"; reversible {q[0]:.5g} → {q[-1]:.5g} mAh" if len(q) else "")
                + "".join(f"\n  note: {n}" for n in self.notes))

    def cycle_notes(self) -> list[str]:
        """Per cycle: what is missing ('' for a complete cycle)."""
        out = []
        for qc, qd in zip(self.charge_mAh, self.discharge_mAh):
            miss = [k for k, q in (("charge", qc), ("discharge", qd)) if not (q > 0)]
            out.append(f"no {' and no '.join(miss)} in this cycle: its values are NaN"
                       if miss else "")
        return out


def _increments(log: CyclerLog):
    dq = np.r_[0.0, np.diff(log.capacity_mAh)]
    vmid = np.r_[log.voltage_V[0], 0.5 * (log.voltage_V[1:] + log.voltage_V[:-1])]
    dt = np.r_[0.0, np.diff(log.time_s)]
    return dq, vmid, dt


CONVENTIONS = ("cathode", "anode", "full")


def cycle_summary(log: CyclerLog, *, mass_mg: float | None = None,
                  convention: str = "cathode") -> CycleSummary:
    """Per-cycle capacities, CE, average voltages and energies of a record.

    Parameters
    ----------
    log : CyclerLog
    mass_mg : float, optional
        Active-material mass (mg) for specific capacities (mAh/g) and energy.
    convention : {"cathode", "anode", "full"}
        Which half is reversible and how CE is defined (module docstring).

    Returns
    -------
    CycleSummary
        See the module docstring for the definitions; a half cycle that is
        absent gives NaN capacity, energy, average voltage, CE and retention.
    """
    from layerscope._errors import InputError

    if mass_mg is not None and not (np.isfinite(mass_mg) and mass_mg > 0):
        raise InputError(f"active mass must be a positive number of mg, got {mass_mg}")
    if convention not in CONVENTIONS:
        raise InputError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    dq, vmid, dt = _increments(log)
    cycles = log.cycles
    idx = np.searchsorted(cycles, log.cycle)
    n = len(cycles)
    pos, neg = dq > 0, dq < 0
    qc = np.bincount(idx, weights=np.where(pos, dq, 0.0), minlength=n)
    qd = np.bincount(idx, weights=np.where(neg, -dq, 0.0), minlength=n)
    ec = np.bincount(idx, weights=np.where(pos, vmid * dq, 0.0), minlength=n)
    ed = np.bincount(idx, weights=np.where(neg, -vmid * dq, 0.0), minlength=n)
    tc = np.bincount(idx, weights=np.where(pos, dt, 0.0), minlength=n)
    td = np.bincount(idx, weights=np.where(neg, dt, 0.0), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        num, den = (qc, qd) if convention == "anode" else (qd, qc)
        ce = np.where((num > 0) & (den > 0), num / np.where(den > 0, den, 1.0), np.nan)
        vc = np.where(qc > 0, ec / np.where(qc > 0, qc, 1.0), np.nan)
        vd = np.where(qd > 0, ed / np.where(qd > 0, qd, 1.0), np.nan)
        ic = np.where(tc > 0, 3600.0 * qc / np.where(tc > 0, tc, 1.0), np.nan)
        idis = np.where(td > 0, 3600.0 * qd / np.where(td > 0, td, 1.0), np.nan)
    keep = (qc > 0) | (qd > 0)  # cycles holding only rest points carry no information
    if not keep.any():
        raise ValueError(f"{log.source or 'cycler log'}: no charge or discharge in the record")
    ed = np.where(qd > 0, ed, np.nan)
    ec = np.where(qc > 0, ec, np.nan)
    qc = np.where(qc > 0, qc, np.nan)
    qd = np.where(qd > 0, qd, np.nan)
    cols = [a[keep] for a in (cycles, qc, qd, ce, vc, vd, ed, ec, ic, idis)]
    s = CycleSummary(*cols, mass_mg, convention)
    notes = [f"cycle {c}: {n}" for c, n in zip(s.cycle, s.cycle_notes()) if n]
    partial = log.meta.get("partial_start")
    if partial is not None and np.any(cols[0] == partial):
        j = int(np.flatnonzero(cols[0] == partial)[0])
        cols[3] = cols[3].copy()
        cols[3][j] = np.nan
        notes.append(f"cycle {partial}: it began before the first record, so its CE is not "
                     f"determined (NaN)")
        s = CycleSummary(*cols, mass_mg, convention)
    full = np.flatnonzero(s.full_cycles())
    if len(full) and convention != "anode":
        k = full[0]
        # the first step of the cycle that carries > 1 % of its charge says which half opens it
        rows = log.cycle == s.cycle[k]
        _, blk = np.unique(log.step[rows], return_inverse=True)
        per_step = np.bincount(blk, weights=dq[rows])
        big = np.flatnonzero(np.abs(per_step) > 0.01 * np.sum(np.abs(dq[rows])))
        opens_with_discharge = bool(len(big)) and per_step[big[0]] < 0
        if s.ce[k] > 1.0 and opens_with_discharge and s.cycle[k] == s.cycle[0]:
            notes.append(f"the first cycle opens with a discharge and its CE is {s.ce[k]:.4f} > 1 in "
                         f"the {convention} convention: if this is an anode half-cell (lithiation "
                         f"first), use the anode convention")
    return CycleSummary(*cols, mass_mg, convention, tuple(notes))


def c_rate(current_mA, nominal_mAh: float) -> np.ndarray:
    """C-rate ``|I| / C_nominal`` (1/h) of a current for a nominal capacity in mAh."""
    if not (np.isfinite(nominal_mAh) and nominal_mAh > 0):
        raise ValueError(f"nominal capacity must be a positive number of mAh, got {nominal_mAh}")
    return np.abs(np.asarray(current_mA, float)) / nominal_mAh


@dataclass(frozen=True)
class StepTable:
    """One entry per step: the record's segments (formation protocols, rate tests)."""

    step: np.ndarray
    cycle: np.ndarray
    kind: np.ndarray  # 'charge' | 'discharge' | 'rest'
    current_mA: np.ndarray  # mean current during the step
    duration_s: np.ndarray
    capacity_mAh: np.ndarray  # |charge passed| in the step
    v_start_V: np.ndarray
    v_end_V: np.ndarray


def step_table(log: CyclerLog) -> StepTable:
    """Summarise each step: kind, mean current, duration, capacity, start/end voltage.

    Formation protocols (Supp. Fig. 8: charge to 4.5 V at 250, 500 and
    1000 mA) appear as successive charge steps of increasing current.
    """
    starts = np.r_[True, log.step[1:] != log.step[:-1]]
    block = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:] - 1, len(log) - 1]
    dq, _, dt = _increments(log)
    # The interval ending at a step's first point belongs to that step (cyclers
    # log the first point of a step after it has started).
    q = np.bincount(block, weights=dq)
    dur = np.bincount(block, weights=dt)
    i_mean = np.bincount(block, weights=log.current_mA) / np.bincount(block)
    d = _direction(i_mean, 1e-6 * max(np.max(np.abs(log.current_mA)), 1e-300))
    kind = np.array(["rest", "charge", "discharge"], dtype=object)[np.where(d < 0, 2, d)]
    return StepTable(log.step[first], log.cycle[first], kind, i_mean, dur, np.abs(q),
                     log.voltage_V[first], log.voltage_V[last])


@dataclass(frozen=True)
class RateTable:
    """Rate capability: discharge capacity grouped by C-rate (Supp. Fig. 2b)."""

    c_rate: np.ndarray
    n_cycles: np.ndarray
    first_cycle: np.ndarray
    discharge_mAh: np.ndarray  # mean over the cycles at that rate
    discharge_std_mAh: np.ndarray


def rate_table(summary: CycleSummary, nominal_mAh: float, *, rel_tol: float = 0.05) -> RateTable:
    """Group consecutive cycles at the same discharge C-rate (within ``rel_tol``)."""
    rate = c_rate(summary.discharge_current_mA, nominal_mAh)
    ok = np.isfinite(rate) & (summary.discharge_mAh > 0)
    groups: list[list[int]] = []
    for i in np.flatnonzero(ok):
        if groups and abs(rate[i] - rate[groups[-1][0]]) <= rel_tol * rate[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return RateTable(
        np.array([np.mean(rate[g]) for g in groups]), np.array([len(g) for g in groups]),
        np.array([summary.cycle[g[0]] for g in groups]),
        np.array([np.mean(summary.discharge_mAh[g]) for g in groups]),
        np.array([np.std(summary.discharge_mAh[g]) for g in groups]))


def half_cycle(log: CyclerLog, cycle: int, kind: str):
    """Capacity passed (mAh, from 0) and voltage of one half cycle.

    Returns
    -------
    q_mAh, v_V : ndarray
        The rows of ``cycle`` whose current has the sign of ``kind``
        (``'charge'`` or ``'discharge'``), with the charge passed since the
        start of that half cycle.
    """
    if kind not in ("charge", "discharge"):
        raise ValueError(f"kind must be 'charge' or 'discharge', got {kind!r}")
    sign = 1 if kind == "charge" else -1
    dq, _, _ = _increments(log)
    mask = (log.cycle == cycle) & (np.sign(dq) == sign)
    rows = np.flatnonzero(mask)
    if not len(rows):
        return np.zeros(0), np.zeros(0)
    # Include the point just before the first increment: the half cycle's start.
    rows = np.r_[max(rows[0] - 1, 0), rows]
    q = np.r_[0.0, np.cumsum(sign * dq[rows[1:]])]
    return q, log.voltage_V[rows]
