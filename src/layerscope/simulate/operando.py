"""A digital twin of the paper's operando experiment, with ground truth.

The 16-layer, 4 Ah graphite || LRM pouch cell of Supp. Fig. 7 on a GPPD-like TOF bank:
the protocol of the Methods (after formation: charge to 4.5 V at 500 mA, constant-voltage
hold at 4.5 V, discharge to 2.5 V at 500 mA), one 60-minute uncharged reference pattern
during the opening rest, then one pattern per 30 minutes with Poisson noise. The counting
statistics are the paper's: the flux is set so that the 60-min reference pattern has the
expected R-factor of table S2's refinement of the uncharged cell, Rexp = 0.36 % (30-min
patterns then ~0.51 %), with the electrolyte/separator hydrogen background twice the mean
Bragg signal.

Ground truth (shaped like Fig. 2b–d, the numbers are the simulator's, not the paper's):

* O3' → O3 on charge, almost complete at 4.5 V, about half back on discharge; the spinel
  grows irreversibly; phase fractions are weight fractions of the LRM phases.
* cells: d_inter up and d_intra down on charge, slowing above 4.4 V (written as functions
  of the Li extracted), partly reversed on discharge.
* O3' occupancies (the LRM parameterisation of ``OPERANDO_STRATEGY``):

  - Li-slab lithiation λ: Li on 4h/2c (and on 3a of O3) follows the Li content;
  - Li/TM exchange e in the TMO2 slab (Li 2b ↔ Mn 4g): DoO stays at table S2's 93 % until
    DoD reaches ~1 % (t ≈ 4.5 h), then falls to ~50 % by the top of charge and stays;
  - TM migration m (Ni 2b → 4h, the Li slab): DoD rises to ~1 % at 4.5 h;
  - O occupancy o of O3' and O3: vacancies form before TM migration, slightly refilled on
    discharge (eq. 3).

* anode: graphite → LiC12 → LiC6 with the anode's state of charge (N/P = 1.1).

Everything is a pure function of time; :func:`simulate_operando` writes the series (GSAS
FXYE files + .instprm + ``series.csv`` manifest), the cycler log and ``truth.csv``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from layerscope._io import atomic_path
from layerscope.crystal.phase import Phase, Site
from layerscope.crystal.presets import preset, preset_phase
from layerscope.crystal.settings import d_inter_layer, d_intra_layer
from layerscope.diffraction.fractions import scales_from_weight_fractions

__all__ = ["Protocol", "CellState", "cell_state", "cycler_log", "lrm_phases_at", "simulate_operando", "truth_row", "all_phases_at",
           "pattern_times", "TRUTH_COLUMNS", "LRM_PHASES", "EXPERIMENT_START"]

LRM_PHASES = ("O3p", "O3", "S")
CELL_COMPONENTS = ("Al", "Cu", "graphite", "LiC12", "LiC6")


@dataclass(frozen=True)
class Protocol:
    """Cycling protocol of the operando experiment (after formation)."""

    rest_h: float = 1.0               # opening rest: the 60-min uncharged reference pattern
    current_mA: float = 500.0         # CC charge and discharge current
    q_cc_mAh: float = 3600.0          # charge passed in CC until 4.5 V
    cv_tau_h: float = 1.19            # CV current decay constant
    cv_cutoff_mA: float = 80.0        # CV ends at C/50
    q_discharge_mAh: float = 3500.0   # discharge capacity to 2.5 V (ICE ≈ 85 %)
    v_max: float = 4.5
    v_min: float = 2.5
    pattern_min: float = 30.0
    reference_min: float = 60.0

    @property
    def t_cc_end_h(self) -> float:
        return self.rest_h + self.q_cc_mAh / self.current_mA

    @property
    def t_cv_end_h(self) -> float:
        return self.t_cc_end_h + self.cv_tau_h * math.log(self.current_mA / self.cv_cutoff_mA)

    @property
    def q_charge_mAh(self) -> float:
        return self.q_cc_mAh + self.current_mA * self.cv_tau_h * (1 - self.cv_cutoff_mA / self.current_mA)

    @property
    def t_end_h(self) -> float:
        return self.t_cv_end_h + self.q_discharge_mAh / self.current_mA


@dataclass(frozen=True)
class CellState:
    """Electrochemical state of the cell at one time."""

    time_h: float
    voltage_V: float
    current_mA: float
    capacity_mAh: float     # net charge passed since t = 0 (positive on charge)
    step: str               # rest / cc_charge / cv_charge / cc_discharge
    charge_progress: float  # 0 → 1 over charge (by charge passed)
    discharge_progress: float  # 0 → 1 over discharge


def _v_charge(q):
    return 3.6 + 0.85 * np.tanh(q / 0.25) + 0.05 * q**2


def _v_discharge(u):
    return 4.3 - 1.0 * u - 0.8 * u**8


def cell_state(t_h: float, proto: Protocol = Protocol()) -> CellState:
    """Voltage, current and capacity of the cell at time ``t_h`` (hours from t = 0)."""
    p = proto
    if t_h < p.rest_h:
        return CellState(t_h, 3.02, 0.0, 0.0, "rest", 0.0, 0.0)
    if t_h < p.t_cc_end_h:
        q = p.current_mA * (t_h - p.rest_h)
        return CellState(t_h, float(_v_charge(q / p.q_cc_mAh)), p.current_mA, q, "cc_charge",
                         q / p.q_charge_mAh, 0.0)
    if t_h < p.t_cv_end_h:
        dt = t_h - p.t_cc_end_h
        i = p.current_mA * math.exp(-dt / p.cv_tau_h)
        q = p.q_cc_mAh + p.current_mA * p.cv_tau_h * (1 - math.exp(-dt / p.cv_tau_h))
        return CellState(t_h, p.v_max, i, q, "cv_charge", q / p.q_charge_mAh, 0.0)
    dt = min(t_h, p.t_end_h) - p.t_cv_end_h
    qd = p.current_mA * dt
    u = qd / p.q_discharge_mAh
    return CellState(t_h, float(_v_discharge(u)), -p.current_mA if t_h <= p.t_end_h else 0.0,
                     p.q_charge_mAh - qd, "cc_discharge", 1.0, u)


def cycler_log(proto: Protocol = Protocol(), step_s: float = 60.0) -> dict[str, np.ndarray]:
    """The cycler log in layerscope's CSV form: time_s, voltage_V, current_mA, capacity_mAh, cycle, step."""
    t = np.arange(0.0, proto.t_end_h * 3600 + step_s, step_s)
    states = [cell_state(v / 3600.0, proto) for v in t]
    steps = {"rest": 0, "cc_charge": 1, "cv_charge": 2, "cc_discharge": 3}
    return {
        "time_s": t,
        "voltage_V": np.array([s.voltage_V for s in states]),
        "current_mA": np.array([s.current_mA for s in states]),
        "capacity_mAh": np.array([s.capacity_mAh for s in states]),
        "cycle": np.ones(len(t), dtype=int),
        "step": np.array([steps[s.step] for s in states]),
    }


def pattern_times(proto: Protocol = Protocol()) -> list[tuple[float, float]]:
    """(start_s, end_s) of each pattern: the reference during the rest, then back-to-back 30-min patterns."""
    ref = proto.reference_min * 60.0
    out = [(0.0, ref)]
    t = max(ref, proto.rest_h * 3600.0)
    step = proto.pattern_min * 60.0
    while t + step <= proto.t_end_h * 3600.0 + 1e-6:
        out.append((t, t + step))
        t += step
    return out


def _smoothstep(x, a, b):
    s = np.clip((x - a) / (b - a), 0.0, 1.0)
    return s * s * (3 - 2 * s)


@dataclass(frozen=True)
class _Truth:
    lithiation: float     # λ: Li on the Li slab sites
    exchange: float       # e: Li(2b) ↔ Mn(4g)
    migration: float      # m: Ni 2b → 4h
    o_occ: float          # O occupancy of O3' and O3
    frac: dict            # LRM weight fractions O3p, O3, S
    d_inter: dict         # by phase O3p, O3
    d_intra: dict
    a_spinel: float
    anode: dict           # C-atom fractions graphite, LiC12, LiC6


def _truth(st: CellState, proto: Protocol) -> _Truth:
    t = st.time_h
    c, u = st.charge_progress, st.discharge_progress
    li_out = 0.80 * c * (1 - 0.85 * u)          # Li removed from the Li slab (λ0 = 0.956)
    lam = 0.956 - li_out
    # TM migration (DoD) starts with the O plateau, ~1 % at t ≈ 4.5 h
    t_45 = proto.rest_h + 3.5
    mig = 0.0105 * _smoothstep(t, proto.rest_h + 1.0, t_45) + 0.008 * _smoothstep(t, t_45, proto.t_cv_end_h)
    # Li/TM exchange (DoO 93 % → 50 %) after DoD reaches ~1 %
    t_ex0 = t_45
    exch = 0.2595 * _smoothstep(t, t_ex0, proto.t_cc_end_h + 0.5)
    # O vacancies form first (from the slope region on), slightly refilled on discharge
    o_occ = 0.995 - 0.022 * _smoothstep(t, proto.rest_h + 1.0, proto.t_cc_end_h) + 0.004 * u
    # phases: spinel grows, O3' → O3 on charge, half back on discharge
    s_frac = 0.0284 + 0.025 * _smoothstep(c, 0.2, 1.0)
    o3 = (1 - s_frac) * 0.93 * _smoothstep(c, 0.2, 0.97) * (1 - 0.5 * u)
    frac = {"O3p": 1 - s_frac - o3, "O3": o3, "S": s_frac}
    # layer spacings: d_inter up / d_intra down with Li removed, slowing above 4.4 V
    x = li_out / 0.8
    shape = (1 - np.exp(-x / 0.32)) / (1 - np.exp(-1 / 0.32))
    # O3 forms with the expanded interlayer spacing of the cycled material (table S3:
    # d_inter 4.846, d_intra 2.4595 Å at the onset), resolved from O3' by the (003)/(001) split
    d_inter = {"O3p": 4.7478 + 0.085 * shape, "O3": 4.846 + 0.04 * (shape - 0.5)}
    d_intra = {"O3p": 2.4700 - 0.032 * shape, "O3": 2.4595 - 0.016 * (shape - 0.5)}
    a_s = 8.091 - 0.06 * shape
    # anode: lithiation y of the graphite electrode (N/P = 1.1)
    y = (st.capacity_mAh / proto.q_charge_mAh) / 1.1 * 0.98
    if y <= 0.5:
        anode = {"graphite": 1 - 2 * y, "LiC12": 2 * y, "LiC6": 0.0}
    else:
        anode = {"graphite": 0.0, "LiC12": 2 * (1 - y), "LiC6": 2 * y - 1}
    return _Truth(lam, exch, mig, o_occ, frac, d_inter, d_intra, a_s, anode)


def _o3p_cell(ref: Phase, d_inter: float, d_intra: float):
    a, b, c, al, be, ga = ref.cell
    kx = d_intra / d_intra_layer(ref)
    kz = d_inter / d_inter_layer(ref)
    return (a * kx, b * kx, c * kz, al, be, ga)


def _with_occ(site: Site, **occ) -> Site:
    species = tuple((s, float(occ.get(s, o))) for s, o in site.species)
    return replace(site, species=species)


def lrm_phases_at(tr: _Truth) -> dict[str, Phase]:
    """The O3', O3 and spinel structures of the truth state."""
    base = preset("lrm-uncharged-cell")
    o3p0 = base.phase("O3p")
    e, m, lam, o = tr.exchange, tr.migration, tr.lithiation, tr.o_occ
    sites = []
    for s in o3p0.sites:
        if s.label in ("O1", "O2"):
            s = _with_occ(s, O=o)
        elif s.label == "M2b":
            s = _with_occ(s, Li=0.561 - e, Mn=0.053 + e, Ni=0.385 - 2 * m)
        elif s.label == "TM4g":
            s = _with_occ(s, Li=0.021 + e / 2, Mn=0.784 - e / 2)
        elif s.label == "Li4h":
            s = _with_occ(s, Li=lam, Ni=0.001 + m)
        elif s.label == "Li2c":
            s = _with_occ(s, Li=lam)
        sites.append(s)
    o3p = replace(o3p0, cell=_o3p_cell(o3p0, tr.d_inter["O3p"], tr.d_intra["O3p"]), sites=tuple(sites))
    o3_0 = preset("lrm-100-cycles").phase("O3")
    a_h = 2 * tr.d_intra["O3"] / math.sqrt(3)
    o3_sites = []
    for s in o3_0.sites:
        if s.label == "O":
            s = _with_occ(s, O=o)
        elif s.label == "Li3a":
            s = _with_occ(s, Li=lam)
        o3_sites.append(s)
    o3 = replace(o3_0, cell=(a_h, a_h, 3 * tr.d_inter["O3"], 90.0, 90.0, 120.0), sites=tuple(o3_sites))
    s0 = base.phase("S")
    sp = replace(s0, cell=(tr.a_spinel,) * 3 + (90.0,) * 3)
    return {"O3p": o3p, "O3": o3, "S": sp}


#: weight fractions of the crystalline components in the beam (cell design, Supp. Fig. 7)
_BEAM_WEIGHT = {"LRM": 0.45, "carbon": 0.41, "Al": 0.05, "Cu": 0.09}

TRUTH_COLUMNS = (
    ["time_h", "voltage_V", "current_mA", "capacity_mAh"]
    + [f"frac_{p}" for p in LRM_PHASES]
    + [f"{p}_{c}" for p in ("O3p",) for c in ("a", "b", "c", "beta")]
    + [f"{p}_{c}" for p in ("O3",) for c in ("a", "c")]
    + ["S_a"]
    + [f"d_inter_{p}" for p in ("O3p", "O3")] + [f"d_intra_{p}" for p in ("O3p", "O3")]
    + ["DoO", "DoD", "O_vacancy"]
    + [f"frac_{p}" for p in ("graphite", "LiC12", "LiC6")]
)


def truth_row(t_h: float, proto: Protocol = Protocol()) -> dict:
    """The ground-truth row (same column names as the refinement's timeseries.csv)."""
    from layerscope.descriptors import o_vacancy_phase, phase_descriptors

    st = cell_state(t_h, proto)
    tr = _truth(st, proto)
    ph = lrm_phases_at(tr)
    desc = phase_descriptors(ph["O3p"])
    f = tr.frac
    ov = o_vacancy_phase(ph["O3p"]) * f["O3p"] + o_vacancy_phase(ph["O3"]) * f["O3"]
    row = {"time_h": t_h, "voltage_V": st.voltage_V, "current_mA": st.current_mA, "capacity_mAh": st.capacity_mAh}
    row.update({f"frac_{k}": v for k, v in f.items()})
    a, b, c, _, be, _ = ph["O3p"].cell
    row.update({"O3p_a": a, "O3p_b": b, "O3p_c": c, "O3p_beta": be})
    row.update({"O3_a": ph["O3"].cell[0], "O3_c": ph["O3"].cell[2], "S_a": ph["S"].cell[0]})
    row.update({"d_inter_O3p": d_inter_layer(ph["O3p"]), "d_inter_O3": d_inter_layer(ph["O3"]),
                "d_intra_O3p": d_intra_layer(ph["O3p"]), "d_intra_O3": d_intra_layer(ph["O3"])})
    row.update({"DoO": desc["DoO"], "DoD": desc["DoD"], "O_vacancy": ov})
    row.update({f"frac_{k}": v for k, v in tr.anode.items()})
    return row


def all_phases_at(t_h: float, proto: Protocol = Protocol()) -> tuple[list[Phase], dict[str, float]]:
    """Every crystalline phase in the beam at ``t_h`` and its scale (∝ volume in the beam).

    Conservation fixes the amounts: the cathode keeps its O framework (number of O sites,
    whatever their occupancy), the anode its carbon atoms, the foils their metal; only how
    they divide between phases changes. LRM phase fractions are weight fractions.
    """
    st = cell_state(t_h, proto)
    tr = _truth(st, proto)
    lrm = lrm_phases_at(tr)
    comps = {n: preset_phase(n) for n in CELL_COMPONENTS}
    phases = [lrm[n] for n in LRM_PHASES] + [comps[n] for n in CELL_COMPONENTS]
    ref_lrm = [p for p in preset("lrm-uncharged-cell").phases]
    ref_scales = scales_from_weight_fractions([_BEAM_WEIGHT["LRM"] * f for f in (0.9716, 0.0284)]
                                              + [_BEAM_WEIGHT["carbon"], _BEAM_WEIGHT["Al"], _BEAM_WEIGHT["Cu"]],
                                              ref_lrm + [comps["graphite"], comps["Al"], comps["Cu"]])
    n_o = sum(s * p.site_count("O") / p.volume for s, p in zip(ref_scales[:2], ref_lrm))
    n_c = ref_scales[2] * comps["graphite"].site_count("C") / comps["graphite"].volume
    scales = {"Al": ref_scales[3], "Cu": ref_scales[4]}
    # LRM: weight fractions w_p → volumes ∝ w_p/ρ_p, normalised to the O-site total
    v = {n: tr.frac[n] / (lrm[n].cell_mass / lrm[n].volume) for n in LRM_PHASES}
    k = n_o / sum(v[n] * lrm[n].site_count("O") / lrm[n].volume for n in LRM_PHASES)
    scales.update({n: k * v[n] for n in LRM_PHASES})
    # anode: C-atom fractions → volumes, normalised to the C total
    for n in ("graphite", "LiC12", "LiC6"):
        scales[n] = tr.anode[n] * n_c * comps[n].volume / comps[n].site_count("C")
    return phases, {p.name: float(scales[p.name]) for p in phases}


#: wall-clock date-time of the cycler log's t = 0 in the simulated experiment (the pattern files'
#: headers carry start_time/end_time on this clock, as a beamline's run records do)
EXPERIMENT_START = "2024-05-06T09:00:00"


#: Rexp (%) of the 60-min uncharged-cell pattern in table S2 (FullProf, GPPD): the counting
#: statistics of the real experiment, which the simulator reproduces by default
REFERENCE_REXP_PERCENT = 0.36


def simulate_operando(out_dir, *, seed: int = 0, proto: Protocol = Protocol(), n_points: int = 4000,
                      reference_rexp_percent: float | None = REFERENCE_REXP_PERCENT,
                      mean_counts_per_bin: float | None = None, background_level: float = 2.0,
                      every: int = 1, experiment_start: str = EXPERIMENT_START,
                      cathode_signal=None) -> dict:
    """Write the simulated experiment to ``out_dir``.

    Files: ``series/PATTERN_nnn.gsa`` (FXYE, y in counts/µs with Poisson σ), ``series/series.csv``
    (file, start_s, end_s), ``series/gppd_like.instprm``, ``cycler.csv`` and ``truth.csv`` (the truth
    at each pattern's mid-time).

    Counting statistics: by default the neutron flux is chosen so that the reference pattern's
    expected Rexp = √(N / Σ counts) equals ``reference_rexp_percent`` (table S2's 0.36 %: about
    1.3·10⁴ Bragg counts per bin in 30 min on 4000 bins, the strongest peaks a few 10⁵).
    ``mean_counts_per_bin`` (the mean Bragg signal of a 30-min pattern in counts per TOF bin)
    sets the flux directly instead (then ``reference_rexp_percent`` must be None); 1000 gives
    Rexp ≈ 1.3 % for the reference, a 13× weaker source than the paper's.
    ``background_level`` sets the incoherent background of the electrolyte/separator hydrogen
    relative to the mean Bragg signal. ``every`` keeps every
    n-th operando pattern (for quick demos). Each file's title line records its counting
    interval as ``start_time=… end_time=…`` (ISO date-times, t = 0 at ``experiment_start``),
    from which :func:`layerscope.operando.series.build_manifest` rebuilds ``series.csv``.
    ``cathode_signal`` (one factor per written pattern, the reference first; default all 1)
    multiplies the cathode (O3', O3, spinel) scales of each pattern: 0 leaves only the cell
    components and the background, a cathode signal faded to noise (e.g. the beam off the
    cathode stack). The truth is unchanged (the phases' state), ``truth.csv`` gains the factor
    as ``cathode_signal``.
    Deterministic for a given seed.

    Parameters
    ----------
    out_dir : str or Path
        The output folder.
    seed : int
        Seed of the Poisson noise.
    proto : Protocol
        The cycling protocol (currents in mA, durations in h).
    n_points : int
        TOF bins per pattern.
    reference_rexp_percent : float or None
        Expected Rexp (%) of the reference pattern, which sets the flux.
    mean_counts_per_bin : float or None
        Mean Bragg counts per TOF bin of a 30-min pattern (instead of ``reference_rexp_percent``).
    background_level : float
        Incoherent background relative to the mean Bragg signal.
    every : int
        Keep every n-th operando pattern.
    experiment_start : str
        ISO date-time of t = 0.
    cathode_signal : sequence of float, optional
        Factor on the cathode scales of each written pattern (default all 1).

    Returns
    -------
    dict
        ``series`` (the folder of patterns with ``series.csv``), ``cycler`` and ``truth`` (CSV
        paths) and ``n_patterns``.
    """
    from datetime import datetime, timedelta

    from layerscope.diffraction.instrument import GPPD_TOF_RANGE_US, gppd_like, write_instprm
    from layerscope.diffraction.pattern import build_model, initial_params, make_pattern_function
    from layerscope.diffraction.readers import PowderData, write_gsas_fxye

    if (reference_rexp_percent is None) == (mean_counts_per_bin is None):
        raise ValueError("give exactly one of reference_rexp_percent and mean_counts_per_bin")
    level = reference_rexp_percent if mean_counts_per_bin is None else mean_counts_per_bin
    if not (np.isfinite(level) and level > 0):
        raise ValueError(f"counting level must be positive and finite, got {level!r}")
    out = Path(out_dir)
    series = out / "series"
    series.mkdir(parents=True, exist_ok=True)
    inst = gppd_like()
    write_instprm(inst, series / "gppd_like.instprm")
    tof = np.geomspace(*GPPD_TOF_RANGE_US, n_points)
    bin_us = tof * (np.log(tof[-1] / tof[0]) / (n_points - 1))
    rng = np.random.default_rng(seed)
    times = pattern_times(proto)
    times = [times[0]] + times[1:][::max(1, int(every))]
    if cathode_signal is None:
        cathode_signal = [1.0] * len(times)
    cathode_signal = [float(v) for v in cathode_signal]
    if len(cathode_signal) != len(times) or not all(np.isfinite(v) and v >= 0 for v in cathode_signal):
        raise ValueError(f"cathode_signal: expected {len(times)} factors >= 0 (one per pattern), "
                         f"got {len(cathode_signal)}")
    model = None
    rows = []
    manifest = []
    for i, (t0, t1) in enumerate(times):
        mid_h = 0.5 * (t0 + t1) / 3600.0
        phases, scales = all_phases_at(mid_h, proto)
        scales = {k: v * (cathode_signal[i] if k in LRM_PHASES else 1.0) for k, v in scales.items()}
        if model is None:
            model = build_model(phases, tof, inst, n_background=0)
            fn = make_pattern_function(model)
        params = initial_params(model, scales=scales)
        params = _with_structures(params, model, phases)
        _, parts, _ = fn(params)
        bragg = np.asarray(parts).sum(axis=0) * bin_us
        if i == 0:
            # fixed flux from the reference pattern on: mean Bragg counts per bin in 30 min
            shape_bkg = background_level * (1.0 + 0.5 * np.exp(-tof / 15000.0)) / 1.2
            if mean_counts_per_bin is None:
                # Rexp² = N / Σ counts for Poisson σ; counts ∝ mean_counts · (Bragg/mean + bkg)
                unit = np.sum((bragg / bragg.mean() + shape_bkg) * ((t1 - t0) / 1800.0))
                mean_counts = n_points / (unit * (reference_rexp_percent / 100.0) ** 2)
            else:
                mean_counts = float(mean_counts_per_bin)
            k_norm = mean_counts / bragg.mean()
        bkg = mean_counts * shape_bkg
        expected = (bragg * k_norm + bkg) * ((t1 - t0) / 1800.0)
        counts = rng.poisson(expected).astype(float)
        y = counts / bin_us / ((t1 - t0) / 1800.0)
        sig = np.sqrt(np.maximum(counts, 1.0)) / bin_us / ((t1 - t0) / 1800.0)
        name = f"PATTERN_{i:03d}.gsa"
        data = PowderData(x=tof, y=y, sigma=sig, kind="tof", bank=1, source=name,
                          meta={"title": f"simulated operando pattern {i} t={mid_h:.3f} h"})
        t_zero = datetime.fromisoformat(experiment_start)
        iso0, iso1 = ((t_zero + timedelta(seconds=v)).isoformat(timespec="seconds") for v in (t0, t1))
        write_gsas_fxye(series / name, data, title=f"sim pouch {i:03d} start_time={iso0} end_time={iso1}")
        manifest.append({"file": name, "start_s": t0, "end_s": t1, "bank": 1})
        rows.append({**truth_row(mid_h, proto), "cathode_signal": cathode_signal[i]})
    _write_csv(series / "series.csv", manifest, ["file", "start_s", "end_s", "bank"])
    log = cycler_log(proto)
    _write_csv(out / "cycler.csv", [dict(zip(log, vals)) for vals in zip(*log.values())], list(log))
    _write_csv(out / "truth.csv", rows, list(TRUTH_COLUMNS) + ["cathode_signal"])
    return {"series": series, "cycler": out / "cycler.csv", "truth": out / "truth.csv", "n_patterns": len(times)}


def _with_structures(params, model, phases):
    """Put each phase's own cell/occupancies into the parameter pytree (the model's reflection
    list comes from the first time step; d-ranges have margins, hkl sets are the same)."""
    import jax.numpy as jnp

    from layerscope.diffraction.structure_factors import site_tables

    new = []
    for setup, pp, ph in zip(model.phases, params["phases"], phases):
        t = site_tables(ph, setup.hkl[:1])
        q = dict(pp)
        q["cell"] = jnp.asarray(ph.cell)
        q["occ"] = jnp.asarray(t.occ)
        q["xyz"] = jnp.asarray(t.xyz)
        q["biso"] = jnp.asarray(t.biso)
        new.append(q)
    out = dict(params)
    out["phases"] = new
    return out


def _write_csv(path: Path, rows, columns):
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items() if k in columns})
