"""Each text reader fed the same record in other units (A/Ah, µA/µAh, mV, hours, h:mm:ss,
coulombs, per-step or per-cycle counters) gives the same cycle table; a capacity whose unit
contradicts the current is refused, naming the file and the step."""

import numpy as np
import pytest

from layerscope import InputError
from layerscope.echem import cycle_summary, read_cycler
from layerscope.echem.tabular import write_csv
from layerscope.simulate.cycler import lrm_half_cell

COLS = ("charge_mAh", "discharge_mAh", "ce", "avg_charge_V", "avg_discharge_V", "energy_mWh")


@pytest.fixture(scope="module")
def sim():
    return lrm_half_cell("coated", rates_C=(0.1, 1.0), dt_s=600.0)


def _counters(log, per):
    """Unsigned charge and discharge counters that restart every step or every cycle."""
    dq = np.r_[0.0, np.diff(log.capacity_mAh)]
    block = log.step if per == "step" else log.cycle
    new = np.r_[True, block[1:] != block[:-1]]
    ch, dis = np.zeros(len(dq)), np.zeros(len(dq))
    for k in range(len(dq)):
        ch[k] = (0.0 if new[k] else ch[k - 1]) + max(dq[k], 0.0)
        dis[k] = (0.0 if new[k] else dis[k - 1]) + max(-dq[k], 0.0)
    return ch, dis


def _hms(t):
    return [f"{int(x // 3600)}:{int(x % 3600 // 60):02d}:{x % 60:09.6f}" for x in t]


def _write_variants(log, d):
    import pandas as pd

    ch_s, dis_s = _counters(log, "step")
    ch_c, dis_c = _counters(log, "cycle")
    step_cap = ch_s + dis_s
    files = {}
    # Arbin-style CSV: A, Ah, hours, counters that restart every cycle
    files["arbin.csv"] = pd.DataFrame({
        "Data_Point": np.arange(1, len(log) + 1), "Test_Time(h)": log.time_s / 3600,
        "Step_Index": log.step, "Cycle_Index": log.cycle, "Current(A)": log.current_mA * 1e-3,
        "Voltage(V)": log.voltage_V, "Charge_Capacity(Ah)": ch_c * 1e-3,
        "Discharge_Capacity(Ah)": dis_c * 1e-3})
    # Neware-style CSV: µA, mV, h:mm:ss text, one unsigned per-step counter in µAh
    files["neware.csv"] = pd.DataFrame({
        "Cycle Index": log.cycle, "Step Index": log.step, "Total Time": _hms(log.time_s),
        "Current(uA)": log.current_mA * 1e3, "Voltage(mV)": log.voltage_V * 1e3,
        "Capacity(uAh)": step_cap * 1e3})
    # Landt-style workbook: minutes, µA, mV, mAh per step
    files["landt.xlsx"] = pd.DataFrame({
        "Index": np.arange(len(log)), "TestTime/min": log.time_s / 60, "Step": log.step,
        "Cycle": log.cycle, "Current/µA": log.current_mA * 1e3, "Voltage/mV": log.voltage_V * 1e3,
        "Capacity/mAh": step_cap})
    for name, df in files.items():
        if name.endswith(".xlsx"):
            df.to_excel(d / name, index=False)
        else:
            df.to_csv(d / name, index=False, float_format="%.12g")
    # Novonix: a [Summary] block, then hours, A, V, Ah per step, no step column
    body = pd.DataFrame({"Cycle Number": log.cycle, "Run Time (h)": log.time_s / 3600,
                         "Current (A)": log.current_mA * 1e-3, "Potential (V)": log.voltage_V,
                         "Capacity (Ah)": step_cap * 1e-3}).to_csv(index=False, float_format="%.12g")
    (d / "novonix.csv").write_text("[Summary]\nCell: sim\n[End Summary]\n[Data]\n" + body)
    # Maccor channel file: mA (mAmps) and mAh (mAmp-hr), test time as 'Nd HH:MM:SS.s'
    state = np.where(log.current_mA > 0, "C", np.where(log.current_mA < 0, "D", "R"))
    lines = ["Today's Date 01/01/2026  Date of Test:\t01/01/2026\t Filename:\tsim.001",
             "Rec#\tCyc#\tStep\tTestTime\tmAmp-hr\tmAmps\tVolts\tState\tES"]
    for k in range(len(log)):
        t = log.time_s[k]
        lines.append(f"{k + 1}\t{log.cycle[k]}\t{log.step[k]}\t  {int(t // 86400)}d "
                     f"{int(t % 86400 // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:.6f}\t"
                     f"{step_cap[k]:.12g}\t{abs(log.current_mA[k]):.12g}\t{log.voltage_V[k]:.12g}"
                     f"\t{state[k]}\t0")
    (d / "sim_000001.001").write_text("\r\n".join(lines) + "\r\n")
    # EC-Lab text export: A for the current, coulombs for (Q-Qo), mV for Ewe
    head = ["EC-Lab ASCII FILE", "Nb header lines : 4", "", "time/s\tEwe/mV\t<I>/A\t(Q-Qo)/C"]
    rows = [f"{t:.12g}\t{v * 1e3:.12g}\t{i * 1e-3:.12g}\t{q * 3.6:.12g}"
            for t, v, i, q in zip(log.time_s, log.voltage_V, log.current_mA, log.capacity_mAh)]
    (d / "eclab.mpt").write_text("\n".join(head + rows) + "\n")
    return ["arbin.csv", "neware.csv", "landt.xlsx", "novonix.csv", "sim_000001.001", "eclab.mpt"]


def test_every_text_reader_gives_the_same_cycle_table_in_other_units(sim, tmp_path):
    ref = cycle_summary(read_cycler(write_csv(sim, tmp_path / "log.csv")))
    for k in COLS:  # the layerscope CSV itself reproduces the truth
        np.testing.assert_allclose(getattr(ref, k), sim.meta["truth"][k], rtol=5e-3)
    for name in _write_variants(sim, tmp_path):
        s = cycle_summary(read_cycler(tmp_path / name))
        np.testing.assert_array_equal(s.cycle, ref.cycle, err_msg=name)
        for k in COLS:
            np.testing.assert_allclose(getattr(s, k), getattr(ref, k), rtol=1e-6,
                                       err_msg=f"{name}: {k}")


def test_capacity_unit_contradicting_the_current_is_refused(sim, tmp_path):
    import pandas as pd

    ch, dis = _counters(sim, "step")
    # capacities written in Ah but labelled mAh: 1000x off the current x time
    pd.DataFrame({"Test_Time(s)": sim.time_s, "Step_Index": sim.step, "Cycle_Index": sim.cycle,
                  "Current(mA)": sim.current_mA, "Voltage(V)": sim.voltage_V,
                  "Charge_Capacity(mAh)": ch * 1e-3, "Discharge_Capacity(mAh)": dis * 1e-3}
                 ).to_csv(tmp_path / "wrong.csv", index=False)
    with pytest.raises(InputError, match=r"wrong\.csv.*cycle 1 step 1.*current x time"):
        read_cycler(tmp_path / "wrong.csv")


def test_missing_units_and_bad_indices_are_refused(tmp_path):
    p = tmp_path / "nounit.csv"
    p.write_text("time_s,voltage_V,Current,capacity_mAh\n0,3.0,0.1,0\n10,3.1,0.1,0.0003\n")
    with pytest.raises(InputError, match=r"nounit\.csv.*'Current' has no unit"):
        read_cycler(p)
    p = tmp_path / "nancycle.csv"
    p.write_text("Test_Time(s),Current(A),Voltage(V),Cycle_Index\n0,0.001,3.0,1\n10,0.001,3.1,\n")
    with pytest.raises(InputError, match=r"nancycle\.csv.*data row 2.*Cycle_Index.*whole numbers"):
        read_cycler(p)
