"""Simulated LRM cells (half-cell and 4 Ah pouch) against their truth; dV/dQ, CC–CV split, GITT.

The truth of a simulated cell comes from the model (charge I·T or Y·Δu, energy ∫V dQ by
Gauss–Legendre quadrature); the analysis reads only the logged samples. Tolerance 0.5 %.
"""

import numpy as np
import pytest

from layerscope.echem import cycle_summary, dqdv, half_cycle, rate_table, step_table
from layerscope.echem.cccv import cccv_split
from layerscope.echem.dqdv import dvdq
from layerscope.echem.gitt import gitt
from layerscope.echem._table import make_log
from layerscope.simulate.cycler import (HALF_CELL_ICE, POUCH_NOMINAL_mAh, _integral, lrm_half_cell,
                                        lrm_pouch_cell)

KEYS = ("charge_mAh", "discharge_mAh", "ce", "avg_charge_V", "avg_discharge_V", "energy_mWh",
        "charge_energy_mWh")


def _assert_truth(log, rtol=0.005):
    s = cycle_summary(log)
    tr = log.meta["truth"]
    np.testing.assert_array_equal(s.cycle, tr["cycle"])
    for k in KEYS:
        np.testing.assert_allclose(getattr(s, k), tr[k], rtol=rtol, err_msg=k)
    return s


@pytest.fixture(scope="module")
def half():
    return {k: lrm_half_cell(k) for k in HALF_CELL_ICE}


@pytest.fixture(scope="module")
def pouch():
    return {p: lrm_pouch_cell(p) for p in ("formation", "operando", "cycling")}


@pytest.mark.parametrize("kind", ["coated", "u-LRM"])
def test_half_cell_truth_window_plateau_and_ice(half, kind):
    log = half[kind]
    s = _assert_truth(log)
    # 2.0-4.8 V window, first cycle CE 91 % (coated) / 85 % (u-LRM)
    assert log.voltage_V.min() == pytest.approx(2.0, abs=1e-6)
    assert log.voltage_V.max() == pytest.approx(4.8, abs=1e-6)
    assert s.initial_ce == pytest.approx(HALF_CELL_ICE[kind], rel=0.005)
    spec = s.charge_mAh / (log.meta["mass_mg"] * 1e-3)
    assert 280 < spec[0] < 340  # mAh/g, first charge of a Li-rich oxide
    # the first charge has the ~4.5 V plateau: its dQ/dV peak is at 4.45-4.6 V and most of
    # its charge passes above 4.4 V; the second charge has neither
    q1, v1 = half_cycle(log, 1, "charge")
    d1 = dqdv(q1, v1, dv_V=0.005, window_V=0.05)
    assert 4.45 <= d1.voltage_V[np.argmax(d1.dqdv_mAh_per_V)] <= 4.6
    assert (q1[-1] - np.interp(4.4, v1, q1)) / q1[-1] > 0.5
    q2, v2 = half_cycle(log, 2, "charge")
    assert (q2[-1] - np.interp(4.4, v2, q2)) / q2[-1] < 0.1
    d2 = dqdv(q2, v2, dv_V=0.005, window_V=0.05)
    assert d2.voltage_V[np.argmax(d2.dqdv_mAh_per_V)] < 4.2
    # the large voltage hysteresis of Li-rich oxides
    assert np.all(s.hysteresis_V[1:] > 0.2)


def test_half_cell_rate_steps(half):
    log = half["coated"]
    rt = rate_table(cycle_summary(log), nominal_mAh=log.meta["nominal_mAh"])
    np.testing.assert_allclose(rt.c_rate, [0.1, 0.2, 0.5, 1, 2, 5, 0.1], rtol=1e-6)
    # capacity falls with rate and comes back at C/10
    assert np.all(np.diff(rt.discharge_mAh[1:6]) < 0)
    assert rt.discharge_mAh[5] < 0.7 * rt.discharge_mAh[1]
    assert rt.discharge_mAh[-1] > 0.97 * rt.discharge_mAh[1]


def test_pouch_cycling_fade_and_voltage_decay(pouch):
    log = pouch["cycling"]
    s = _assert_truth(log)
    assert len(s.cycle) == 100
    assert log.voltage_V.min() == pytest.approx(2.5, abs=1e-6)
    assert log.voltage_V.max() == pytest.approx(4.5, abs=1e-6)
    st = step_table(log)
    np.testing.assert_allclose(np.abs(st.current_mA[st.kind != "rest"]), 4000.0, rtol=1e-12)
    assert 0.85 * POUCH_NOMINAL_mAh < s.discharge_mAh[0] < 1.05 * POUCH_NOMINAL_mAh
    ret = s.retention()
    assert np.all(np.diff(ret[1:]) < 0) and 0.7 < ret[-1] < 0.95
    decay = s.voltage_decay_V()
    assert np.all(np.diff(s.avg_discharge_V[1:]) < 0)  # average voltage decays every cycle
    assert decay[-1] < -0.08
    np.testing.assert_allclose(decay, log.meta["truth"]["avg_discharge_V"]
                               - log.meta["truth"]["avg_discharge_V"][0], atol=2e-3)


def test_pouch_formation_and_operando_first_cycle(pouch):
    form = pouch["formation"]
    _assert_truth(form)
    st = step_table(form)
    ch = st.kind == "charge"
    np.testing.assert_allclose(st.current_mA[ch], [250, 500, 1000], rtol=1e-12)
    assert st.v_end_V[ch][-1] == pytest.approx(4.5, abs=1e-9)
    op = pouch["operando"]
    s = _assert_truth(op)
    assert op.voltage_V.max() <= 4.5 + 1e-9 and op.voltage_V.min() == pytest.approx(2.5, abs=1e-9)
    assert s.initial_ce == pytest.approx(0.86, rel=0.005)
    sp = cccv_split(op)
    cv_true = op.meta["truth"]["cv_charge_mAh"][0]
    assert cv_true > 100
    assert sp.charge_cv_mAh[0] == pytest.approx(cv_true, rel=0.005)
    assert sp.charge_cc_mAh[0] + sp.charge_cv_mAh[0] == pytest.approx(s.charge_mAh[0], rel=1e-9)
    assert np.all(op.voltage_V[sp.cv_rows] == pytest.approx(4.5, abs=1e-9))


def test_quadrature_truth_against_scipy_quad():
    from scipy.integrate import quad

    def f(t):
        return 3.7 + 0.2 * np.log1p(t) + 0.05 * np.sin(t / 50.0)

    assert _integral(f, 3600.0) == pytest.approx(quad(f, 0, 3600.0, limit=500, epsrel=1e-13)[0],
                                                 rel=1e-11)


def test_cccv_split_on_neware_cv_steps():
    from pathlib import Path

    from layerscope.echem import read_cycler

    p = Path(__file__).resolve().parents[2] / "shared" / "data" / "cycler" / "neware_TestFile.nda"
    if not p.exists():
        pytest.skip("shared cycler data absent")
    sp = cccv_split(read_cycler(p))
    # NewareNDA's CV_Chg steps hold 155.93712 and 155.23410 mAh (reference table)
    np.testing.assert_allclose(sp.charge_cv_mAh, [0, 155.93712, 155.23410], rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(sp.charge_cc_mAh, [0, 5655.088, 5659.8564], rtol=1e-4, atol=1e-9)


def test_dvdq_of_known_curve():
    # V = 3.5 + 0.4 (q/Q) + 0.3 (q/Q)^2 → dV/dQ = (0.4 + 0.6 q/Q)/Q
    Q = 2.0
    q = np.linspace(0, Q, 400)
    v = 3.5 + 0.4 * q / Q + 0.3 * (q / Q) ** 2
    d = dvdq(q, v)
    mid = (d.capacity_mAh > 0.1) & (d.capacity_mAh < 1.9)
    np.testing.assert_allclose(d.dvdq_V_per_mAh[mid], (0.4 + 0.6 * d.capacity_mAh[mid] / Q) / Q,
                               rtol=1e-3)


def _planar_gitt(D, L, tau, n_pulses=6, rest_s=4000.0, i_mA=0.05, dE_s=0.004, R=20.0):
    """GITT of a film of thickness L (cm), constant flux at one face, exact series solution
    (Crank, The Mathematics of Diffusion, 2nd ed., eq. 4.54 with constant flux)."""
    n = np.arange(1, 400)

    def resp(t):  # surface concentration rise per unit (k F0 / l) for constant flux from t=0
        t = np.maximum(np.asarray(t, float), 0.0)
        series = np.sum(np.exp(-D * (n[:, None] * np.pi) ** 2 * t[None, :] / L ** 2) / n[:, None] ** 2, 0)
        return t + L ** 2 / D * (1 / 3 - 2 / np.pi ** 2 * series)

    k = dE_s / tau  # volts per unit of (F0 t / l): the relaxed step is dE_s per pulse
    rows, t0, e0 = [], 0.0, 3.7
    rows.append((0.0, e0, 0.0))
    for j in range(n_pulses):
        tp = np.linspace(1.0, tau, int(tau))
        ts = t0 + tp
        surf = sum(resp(ts - (t0 - m * (tau + rest_s))) - resp(ts - (t0 - m * (tau + rest_s) + tau))
                   for m in range(1, j + 1)) if j else 0.0
        v = e0 + k * (resp(tp) + surf) + 1e-3 * i_mA * R
        rows += [(t, vv, i_mA) for t, vv in zip(ts, v)]
        tr = np.linspace(10.0, rest_s, int(rest_s / 10))
        ts = t0 + tau + tr
        vr = e0 + k * sum(resp(ts - (t0 - m * (tau + rest_s))) - resp(ts - (t0 - m * (tau + rest_s) + tau))
                          for m in range(0, j + 1))
        rows += [(t, vv, 0.0) for t, vv in zip(ts, vr)]
        t0 += tau + rest_s
    t, v, i = map(np.array, zip(*rows))
    q = np.r_[0.0, np.cumsum(np.diff(t) * i[1:] / 3600.0)]
    return make_log(t, v, i, q)


def test_gitt_recovers_the_diffusion_coefficient():
    D, L = 1e-11, 2e-4  # cm2/s, cm: L^2/D = 4000 s
    res = gitt(_planar_gitt(D, L, tau=60.0), length_cm=L)
    assert len(res.D_cm2_s) == 6
    assert np.all(res.flag == "")
    np.testing.assert_allclose(res.D_cm2_s, D, rtol=0.01)  # measured: within 0.02 %
    np.testing.assert_allclose(res.dE_s_V, 0.004, rtol=1e-3)
    # a pulse as long as the diffusion time breaks tau << L^2/D: NaN with a flag
    long = gitt(_planar_gitt(D, L, tau=4000.0, n_pulses=2, rest_s=20000.0), length_cm=L)
    assert np.all(np.isnan(long.D_cm2_s)) and all(long.flag)


def test_cli_gitt_writes_the_diffusion_coefficients(tmp_path):
    import csv

    from layerscope.cli import main
    from layerscope.echem.tabular import write_csv

    write_csv(_planar_gitt(1e-11, 2e-4, tau=60.0, n_pulses=3), tmp_path / "gitt_log.csv")
    assert main(["echem", str(tmp_path / "gitt_log.csv"), "--gitt-length-um", "2",
                 "--out", str(tmp_path / "o")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "o" / "gitt.csv")))
    assert len(rows) == 3
    np.testing.assert_allclose([float(r["D_cm2_s"]) for r in rows], 1e-11, rtol=0.01)
