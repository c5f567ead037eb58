"""Cycler files, per-cycle analysis and dQ/dV against exact synthetic truth and real files."""

from pathlib import Path

import numpy as np
import pytest

from layerscope.cli import main
from layerscope.echem import cycle_summary, dqdv, half_cycle, rate_table, read_cycler, step_table
from layerscope.echem.tabular import write_csv
from layerscope.simulate.cycler import CellModel, galvanostatic_cycles

ROOT = Path(__file__).resolve().parents[1]
CYCLER = ROOT.parent / "shared" / "data" / "cycler"
FILES = ["biologic_gcpl_5cycles.mpr", "neware_test.ndax", "neware_TestFile.nda",
         "arbin_example.res"]


@pytest.fixture
def cycler_dir():
    if not CYCLER.is_dir():
        pytest.skip(f"real cycler data not found at {CYCLER}")
    return CYCLER


@pytest.fixture(scope="module")
def sim():
    qc = np.array([0.50, 0.46, 0.455, 0.45])
    qd = np.array([0.43, 0.445, 0.444, 0.442])
    return galvanostatic_cycles(qc, qd, current_mA=0.1, dt_s=20.0,
                                cell=CellModel(q_ref_mAh=1.2, r_ohm=20.0))


def test_synthetic_capacities_ce_and_energy_are_exact(sim):
    s = cycle_summary(sim, mass_mg=4.0)
    tr = sim.meta["truth"]
    np.testing.assert_allclose(s.charge_mAh, tr["charge_mAh"], rtol=1e-12)
    np.testing.assert_allclose(s.discharge_mAh, tr["discharge_mAh"], rtol=1e-12)
    np.testing.assert_allclose(s.ce, tr["discharge_mAh"] / tr["charge_mAh"], rtol=1e-12)
    # Trapezoid ∫V dQ over 20 s points vs the closed-form integral.
    np.testing.assert_allclose(s.energy_mWh, tr["energy_mWh"], rtol=2e-5)
    np.testing.assert_allclose(s.avg_discharge_V, tr["energy_mWh"] / tr["discharge_mAh"], rtol=2e-5)
    np.testing.assert_allclose(s.avg_charge_V, tr["charge_energy_mWh"] / tr["charge_mAh"], rtol=2e-5)
    assert s.initial_ce == pytest.approx(0.43 / 0.50, rel=1e-12)
    np.testing.assert_allclose(s.retention(), tr["discharge_mAh"] / 0.43, rtol=1e-12)
    np.testing.assert_allclose(s.discharge_mAh_g, tr["discharge_mAh"] / 4e-3, rtol=1e-12)
    # Hysteresis of the ohmic drop alone is 2·I·R = 4 mV at equal SOC windows; here it is
    # the exact difference of the averages.
    np.testing.assert_allclose(s.hysteresis_V, tr["charge_energy_mWh"] / tr["charge_mAh"]
                               - tr["energy_mWh"] / tr["discharge_mAh"], atol=1e-4)


def test_csv_roundtrip_and_step_counter_export(sim, tmp_path):
    p = write_csv(sim, tmp_path / "log.csv")
    back = read_cycler(p)
    np.testing.assert_allclose(back.capacity_mAh, sim.capacity_mAh, atol=1e-8)
    np.testing.assert_array_equal(back.cycle, sim.cycle)
    # A Neware-style export: unsigned per-step capacity in Ah, current in A, time in h:mm:ss.
    st_first = np.r_[True, sim.step[1:] != sim.step[:-1]]
    # The counter restarts at the previous step's last point (charge passed since step start).
    start_q = np.maximum.accumulate(np.where(st_first, np.arange(len(sim)) - 1, 0)).clip(0)
    step_cap_Ah = np.abs(sim.capacity_mAh - sim.capacity_mAh[start_q]) * 1e-3
    hms = [f"{int(t // 3600)}:{int(t % 3600 // 60):02d}:{t % 60:06.3f}" for t in sim.time_s]
    import pandas as pd

    pd.DataFrame({"Cycle Index": sim.cycle, "Step Index": sim.step, "Total Time": hms,
                  "Current(A)": sim.current_mA * 1e-3, "Voltage(V)": sim.voltage_V,
                  "Capacity(Ah)": step_cap_Ah}).to_excel(tmp_path / "export.xlsx", index=False)
    s = cycle_summary(read_cycler(tmp_path / "export.xlsx"))
    np.testing.assert_allclose(s.charge_mAh, sim.meta["truth"]["charge_mAh"], rtol=1e-9)
    np.testing.assert_allclose(s.discharge_mAh, sim.meta["truth"]["discharge_mAh"], rtol=1e-9)


def test_dqdv_peak_of_known_curve():
    # V = V_mid + slope (x-1/2) + a ln(x/(1-x)) → dQ/dV = Q_ref / (slope + a/(x(1-x))),
    # largest at x = 1/2 where it equals Q_ref / (slope + 4a).
    cell = CellModel(q_ref_mAh=1.0, slope_V=0.2, a_V=0.05, r_ohm=0.0)
    log = galvanostatic_cycles([0.9], [0.9], current_mA=0.1, dt_s=5.0, x0=0.05, cell=cell)
    q, v = half_cycle(log, 1, "charge")
    d = dqdv(q, v, dv_V=0.002, window_V=0.02)
    k = np.argmax(d.dqdv_mAh_per_V)
    assert d.voltage_V[k] == pytest.approx(3.7, abs=0.003)
    assert d.dqdv_mAh_per_V[k] == pytest.approx(1.0 / (0.2 + 4 * 0.05), rel=0.01)


def test_rate_table_and_steps():
    rates = np.repeat([0.1, 0.2, 0.5], 2)
    qd = np.repeat([0.40, 0.38, 0.33], 2)
    log = galvanostatic_cycles(qd + 0.01, qd, current_mA=0.1, discharge_current_mA=rates,
                               dt_s=30.0, cell=CellModel(q_ref_mAh=1.0))
    rt = rate_table(cycle_summary(log), nominal_mAh=0.5)
    np.testing.assert_allclose(rt.c_rate, [0.2, 0.4, 1.0], rtol=1e-9)
    np.testing.assert_allclose(rt.discharge_mAh, [0.40, 0.38, 0.33], rtol=1e-12)
    np.testing.assert_array_equal(rt.n_cycles, [2, 2, 2])
    st = step_table(log)
    dis = st.kind == "discharge"
    np.testing.assert_allclose(st.capacity_mAh[dis], qd, rtol=1e-12)
    np.testing.assert_allclose(-st.current_mA[dis], rates, rtol=1e-12)


@pytest.mark.parametrize("name", FILES)
def test_every_real_cycler_file_is_summarised(cycler_dir, name):
    log = read_cycler(cycler_dir / name)
    s = cycle_summary(log)
    assert s.full_cycles().any() or name == "neware_test.ndax"
    assert np.all(np.diff(log.time_s) >= -1e-6), "time must run forward"
    # Capacity bookkeeping: total charge minus total discharge is the net charge passed.
    assert np.nansum(s.charge_mAh) - np.nansum(s.discharge_mAh) == pytest.approx(
        log.capacity_mAh[-1] - log.capacity_mAh[0], rel=1e-9, abs=1e-9)


def test_biologic_values(cycler_dir):
    s = cycle_summary(read_cycler(cycler_dir / "biologic_gcpl_5cycles.mpr"))
    # First full cycle (after an initial discharge to 2.0 V) as EC-Lab's counters give it.
    assert s.cycle[1] == 1
    assert s.charge_mAh[1] == pytest.approx(0.98678, rel=1e-4)
    assert s.discharge_mAh[1] == pytest.approx(0.85285, rel=1e-4)
    assert 2.0 < s.avg_discharge_V[1] < s.avg_charge_V[1] < 3.8


def test_cli_echem_writes_cycles_csv(cycler_dir, tmp_path):
    rc = main(["echem", str(cycler_dir / "arbin_example.res"), "--mass-mg", "5",
               "--nominal-mAh", "0.5", "--out", str(tmp_path)])
    assert rc == 0
    import csv

    rows = list(csv.DictReader(open(tmp_path / "cycles.csv")))
    assert list(rows[0])[:7] == ["cycle", "charge_mAh", "discharge_mAh", "ce", "avg_charge_V",
                                 "avg_discharge_V", "energy_mWh"]
    assert float(rows[0]["charge_mAh"]) == pytest.approx(0.48351, rel=1e-4)
    assert float(rows[0]["ce"]) == pytest.approx(float(rows[0]["discharge_mAh"])
                                                 / float(rows[0]["charge_mAh"]), rel=1e-6)
    for fig in ("gcd.png", "cycling.png", "dqdv.png", "voltage_time.png", "rate.png"):
        assert (tmp_path / fig).stat().st_size > 1000


def test_cli_simulate_cycler(tmp_path):
    assert main(["simulate", "cycler", "--cycles", "3", "--ce", "0.9",
                 "--out", str(tmp_path / "sim.csv")]) == 0
    s = cycle_summary(read_cycler(tmp_path / "sim.csv"))
    np.testing.assert_allclose(s.ce, 0.9, rtol=1e-6)


# ---- bad input: truncated, empty, wrong-format files --------------------------------------

@pytest.mark.parametrize("name", FILES)
def test_truncated_and_empty_files_name_the_file(cycler_dir, tmp_path, name):
    data = (cycler_dir / name).read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: len(data) // 2 + 7])
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        read_cycler(cut)
    empty = tmp_path / ("empty_" + name)
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_cycler(empty)


@pytest.mark.parametrize("name", FILES + ["log.csv", "log.xlsx"])
def test_wrong_format_files_name_the_file(tmp_path, name):
    bad = tmp_path / name
    bad.write_bytes(b"this is not a cycler file\n1,2\n" * 4)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        read_cycler(bad)


def test_unsupported_extension_and_nan_column(tmp_path):
    with pytest.raises(ValueError, match="unsupported cycler file type"):
        p = tmp_path / "x.abc"
        p.write_text("1")
        read_cycler(p)
    p = tmp_path / "nan.csv"
    p.write_text("time_s,voltage_V,current_mA,capacity_mAh\n0,3.0,0.1,0\n1,nan,0.1,0.1\n")
    with pytest.raises(ValueError, match=r"nan\.csv.*voltage_V.*row 2"):
        read_cycler(p)
    with pytest.raises(FileNotFoundError):
        read_cycler(tmp_path / "missing.mpr")


# ---- numeric bad input: time going backwards, duplicated rows (issue 15) ------------------------

def _csv_log(tmp_path, rows):
    p = tmp_path / "log.csv"
    p.write_text("time_s,voltage_V,current_mA,capacity_mAh\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return p


def test_time_going_backwards_is_refused_naming_the_row(tmp_path):
    from layerscope import InputError

    rows = [(0, 3.0, 1.0, 0.0), (1800, 3.5, 1.0, 0.5), (900, 3.6, 1.0, 0.75), (3600, 4.0, 1.0, 1.0)]
    with pytest.raises(InputError, match=r"log.csv, data row 3: time goes backwards: 900.0 s after 1800.0 s"):
        read_cycler(_csv_log(tmp_path, rows))


def test_duplicate_rows_are_counted_and_noted(tmp_path):
    rows = [(0, 3.0, 1.0, 0.0), (1800, 3.5, 1.0, 0.5), (1800, 3.5, 1.0, 0.5), (3600, 4.0, 1.0, 1.0)]
    log = read_cycler(_csv_log(tmp_path, rows))
    assert len(log) == 4 and log.meta["duplicate_rows"] == 1
    assert any("data row 3" in n for n in log.meta["notes"])
    clean = read_cycler(_csv_log(tmp_path, [rows[0], rows[1], rows[3]]))
    assert clean.meta["duplicate_rows"] == 0


def test_real_neware_file_keeps_its_one_repeated_row(cycler_dir):
    """neware_TestFile.nda holds one row equal to the row before: kept (NewareNDA's 6 670 rows), noted."""
    log = read_cycler(cycler_dir / "neware_TestFile.nda")
    assert len(log) == 6670 and log.meta["duplicate_rows"] == 1
