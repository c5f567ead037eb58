"""The tidy cycler table every supported cycler file converts to.

layerscope's cycler convention (DESIGN.md, "Data conventions"): one row per
logged point with ``time_s`` (seconds from the first point), ``voltage_V``,
``current_mA`` (positive = charge, i.e. oxidation of the cathode),
``capacity_mAh`` and optional ``cycle`` and ``step``.

``capacity_mAh`` is the *net charge passed since the first point*,
``Q(t) = ∫ I dt`` (positive on charge), so it rises through a charge and falls
through a discharge. Per-step counters reported by the cyclers (which reset at
every step or cycle and are integrated by the instrument at its internal rate,
more finely than the logging interval) are converted to this form with
:func:`net_capacity_from_counters`; the per-cycle analysis then takes charge
and discharge capacities from the increments of ``capacity_mAh``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COLUMNS = ("time_s", "voltage_V", "current_mA", "capacity_mAh", "cycle", "step")


@dataclass(frozen=True)
class CyclerLog:
    """A galvanostatic cycling record in layerscope's tidy form.

    Attributes
    ----------
    time_s, voltage_V, current_mA, capacity_mAh : ndarray of float, shape (n,)
        See the module docstring for the sign and reference conventions.
    cycle : ndarray of int, shape (n,)
        Cycle number (1-based as the cycler numbers it, or as assigned by
        :func:`assign_cycles`).
    step : ndarray of int, shape (n,)
        Step number; consecutive rows with the same value belong to one step.
    source : str
        The file (or generator) the record came from, for provenance.
    """

    time_s: np.ndarray
    voltage_V: np.ndarray
    current_mA: np.ndarray
    capacity_mAh: np.ndarray
    cycle: np.ndarray
    step: np.ndarray
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        n = len(self.time_s)
        for name in COLUMNS:
            arr = np.asarray(getattr(self, name))
            if arr.ndim != 1 or len(arr) != n:
                raise ValueError(f"{self.source or 'cycler log'}: column {name!r} has shape "
                                 f"{arr.shape}, expected ({n},)")
            object.__setattr__(self, name, arr)
        if n == 0:
            raise ValueError(f"{self.source or 'cycler log'}: no data points")
        for name in ("time_s", "voltage_V", "current_mA", "capacity_mAh"):
            if not np.all(np.isfinite(getattr(self, name))):
                bad = int(np.flatnonzero(~np.isfinite(getattr(self, name)))[0])
                raise ValueError(f"{self.source or 'cycler log'}: column {name!r} is not finite "
                                 f"at row {bad}")

    def __len__(self) -> int:
        return len(self.time_s)

    @property
    def cycles(self) -> np.ndarray:
        """Sorted unique cycle numbers."""
        return np.unique(self.cycle)


def make_log(time_s, voltage_V, current_mA, capacity_mAh, cycle=None, step=None, *,
             source: str = "", meta: dict | None = None) -> CyclerLog:
    """Build a :class:`CyclerLog`, filling ``step``/``cycle`` when absent.

    Missing steps are numbered from changes of the current's sign (rest,
    charge, discharge); missing cycles come from :func:`assign_cycles`.
    """
    time_s = np.asarray(time_s, dtype=float)
    current_mA = np.asarray(current_mA, dtype=float)
    if step is None:
        step = steps_from_current(current_mA)
    meta = dict(meta or {})
    if cycle is None:
        cycle = assign_cycles(current_mA, np.asarray(step))
        meta.setdefault("cycle_source", "assigned")
    return CyclerLog(time_s, np.asarray(voltage_V, float), current_mA,
                     np.asarray(capacity_mAh, float), np.asarray(cycle, dtype=np.int64),
                     np.asarray(step, dtype=np.int64), source, meta)


def _direction(current_mA: np.ndarray, tol_mA: float | None = None) -> np.ndarray:
    """+1 charge, -1 discharge, 0 rest, with a noise threshold."""
    current_mA = np.asarray(current_mA, float)
    if tol_mA is None:
        scale = np.max(np.abs(current_mA)) if len(current_mA) else 0.0
        tol_mA = 1e-6 * scale
    d = np.zeros(len(current_mA), dtype=np.int8)
    d[current_mA > tol_mA] = 1
    d[current_mA < -tol_mA] = -1
    return d


def steps_from_current(current_mA) -> np.ndarray:
    """Number steps 1, 2, ... at every change of current direction."""
    d = _direction(current_mA)
    return np.concatenate([[1], 1 + np.cumsum(d[1:] != d[:-1])]).astype(np.int64)


def assign_cycles(current_mA, step, *, first: str = "charge") -> np.ndarray:
    """Cycle numbers: a cycle is a charge then a discharge (``first="charge"``, the
    cathode and full-cell convention) or a discharge then a charge (``"discharge"``,
    an anode half-cell).

    The cycle number increases at the first step of the ``first`` kind that follows a
    step of the other kind. A record that opens with the other kind puts it in cycle 0
    (it has no ``first`` half of its own); rests belong to the cycle they fall in.
    """
    if first not in ("charge", "discharge"):
        raise ValueError(f"first must be 'charge' or 'discharge', got {first!r}")
    lead = 1 if first == "charge" else -1
    d = _direction(current_mA)
    step = np.asarray(step)
    cycle = np.empty(len(d), dtype=np.int64)
    first_active = d[d != 0][:1]
    current = 0 if (len(first_active) and first_active[0] == -lead) else 1
    seen_other = False
    prev_step = None
    step_dir = 0
    for i in range(len(d)):
        if step[i] != prev_step:
            prev_step = step[i]
            step_dir = 0
        if d[i] != 0 and step_dir == 0:
            step_dir = d[i]
            if step_dir == lead and seen_other:
                current += 1
                seen_other = False
            elif step_dir == -lead:
                seen_other = True
        cycle[i] = current
    return cycle


def with_convention(log: CyclerLog, convention: str) -> CyclerLog:
    """The log with cycles re-assigned for ``convention`` where the reader assigned them.

    Cycle numbers the file itself holds (Neware, Arbin, Maccor) are kept as they are;
    cycles a reader assigned from the current (``meta['cycle_source'] == 'assigned'``)
    are re-assigned discharge-first for an anode half-cell.
    """
    if convention != "anode" or log.meta.get("cycle_source") != "assigned":
        return log
    from dataclasses import replace

    cycle = assign_cycles(log.current_mA, log.step, first="discharge")
    return replace(log, cycle=cycle, meta={**log.meta, "cycle_convention": "discharge first"})


def net_capacity_from_counters(charge_mAh, discharge_mAh, block, *,
                               expected_mAh=None) -> np.ndarray:
    """Net charge passed since the first point from resetting cycler counters.

    Parameters
    ----------
    charge_mAh, discharge_mAh : array_like
        Non-negative counters as cyclers report them; each may reset to zero at
        the start of a step or of a cycle (``block`` changes) and otherwise only
        grows.
    block : array_like
        Label that changes where the counters may reset (step or cycle number).
    expected_mAh : array_like, optional
        Signed I·Δt of the interval ending at each row (mAh; its positive part is what
        the charge counter should have grown by, its negative part the discharge
        counter). Where given, a counter at a block start that did not drop is read as
        a restart (increment = its value) or a continuation (increment = its
        difference), whichever is closer to that: some
        cyclers restart their counters every step, others every cycle, and an export
        does not say which.

    Returns
    -------
    ndarray
        ``Q(t) = Σ ΔQ_charge − Σ ΔQ_discharge`` in mAh, where within a block the
        increments are the counters' differences and at a block start the
        increment is the counter's value itself (it restarted from zero).
    """
    block = np.asarray(block)
    same = np.r_[False, block[1:] == block[:-1]]
    exp = None if expected_mAh is None else np.asarray(expected_mAh, float)

    def increments(q, exp):
        q = np.asarray(q, float)
        dq = np.r_[q[0], np.diff(q)]
        # Where a counter drops inside a block it restarted from zero: its value is the
        # increment; at a block start it restarted unless the current says otherwise.
        restarted = ~same | (dq < 0)
        if exp is not None:
            cont = ~same & (dq >= 0) & (np.abs(dq - exp) < np.abs(q - exp))
            cont[0] = False
            restarted &= ~cont
        return np.where(restarted, q, dq)

    e_c = None if exp is None else np.maximum(exp, 0.0)
    e_d = None if exp is None else np.maximum(-exp, 0.0)
    return np.cumsum(increments(charge_mAh, e_c) - increments(discharge_mAh, e_d))


def start_offset_notes(charge0_mAh: float, discharge0_mAh: float, cycle0: int):
    """Notes and the partial cycle when a record's counters are not zero at its first row.

    The charge they hold passed before the record began; the tidy table counts charge from
    the first point, so that cycle's half is incomplete (its CE is then not determined)."""
    off = max(float(charge0_mAh), float(discharge0_mAh))
    if not off > 0:
        return [], None
    return [f"cycle {cycle0} began before the first record: {off:.6g} mAh had passed and is not "
            f"counted; that cycle's CE is not determined"], int(cycle0)
