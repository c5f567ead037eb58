"""Every file in shared/data/cycler/ against the reference numbers of the projects that read it.

* Neware .nda: NewareNDA's own parsed tables (reference/*_NewareNDA.csv): row count,
  cycles, and per cycle the maxima of its per-step counters (capacities to 0.01 %);
  a cycle's charge is the sum over its charge steps (CC + CV).
* Arbin .res (cellpy's test file): 10 261 rows, 18 cycles, 103 steps, cycle 1 ends at data
  point 1457, and cellpy's per-cycle summary (Ah) in the anode (discharge-first) convention.
* Maccor: cellpy's text export (6 704 rows; 61 tab-separated columns in the file, where cellpy
  reports 63 after its loader adds its own, e.g. split charge/discharge capacity) and BEEP's channel
  files (333 and 2 165 rows of 38 columns), per-step capacities against the file's own
  Amp-hr counters read with pandas.
* Every file: the capacity of every step agrees with current x time within 1 % (plus the
  sampling allowance) — read_cycler raises otherwise; the largest mismatch is checked here.
"""

from pathlib import Path

import numpy as np
import pytest

from layerscope import InputError
from layerscope.echem import cycle_summary, read_cycler, step_table

CYCLER = Path(__file__).resolve().parents[2] / "shared" / "data" / "cycler"
REF = CYCLER / "reference"
ALL = ["arbin_cellpy_test001.res", "arbin_example.res", "biologic_gcpl_5cycles.mpr",
       "maccor_beep_000109.010", "maccor_beep_000151.052", "maccor_cellpy_001.txt",
       "new_nda_file.nda", "neware_TestFile.nda", "neware_test.ndax"]


@pytest.fixture
def cycler_dir():
    if not CYCLER.is_dir():
        pytest.skip(f"real cycler data not found at {CYCLER}")
    return CYCLER


@pytest.mark.parametrize("name", ALL)
def test_every_step_capacity_agrees_with_current_times_time(cycler_dir, name, recwarn):
    log = read_cycler(cycler_dir / name)
    chk = log.meta["step_check"]
    big = np.abs(chk.q_file_mAh) > 1e-3 * np.max(np.abs(chk.q_file_mAh))
    # Every step within its allowance (read_cycler raised otherwise) ...
    assert np.all(np.abs(chk.q_file_mAh - chk.q_current_mAh) <= chk.allowance_mAh)
    # ... and within 1 % wherever the samples pin ∫ I dt down to better than 1 %. The
    # exceptions are steps whose current changes faster than it is logged: the 30 s-sampled
    # CV steps of BEEP's 000109 (1.66 %, sampling bound 5 %) and the 0.1 s current ramp
    # that opens new_nda_file (1.05 %, bound 3 %).
    sharp = chk.sampling_mAh < 0.01 * np.abs(chk.q_file_mAh)
    assert np.max(chk.rel_mismatch[big & sharp], initial=0.0) < 0.01
    assert np.max(chk.rel_mismatch[big]) < 0.02
    assert log.cycle.dtype == np.int64 and log.cycle.min() >= 0
    # a step is a charge in steps.csv exactly when its charge counts as charge in cycles.csv
    st = step_table(log)
    kind_sign = np.where(st.kind == "charge", 1, np.where(st.kind == "discharge", -1, 0))
    np.testing.assert_array_equal(kind_sign[big], np.sign(chk.q_file_mAh[big]))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def _neware_reference(name):
    import pandas as pd

    ref = pd.read_csv(REF / f"{Path(name).stem}_NewareNDA.csv")
    per_step = ref.groupby(["Cycle", "Step"])[["Charge_Capacity(mAh)",
                                               "Discharge_Capacity(mAh)"]].max()
    return ref, per_step


@pytest.mark.parametrize("name", ["neware_TestFile.nda", "new_nda_file.nda"])
def test_neware_matches_newarenda_reference_tables(cycler_dir, name):
    ref, per_step = _neware_reference(name)
    log = read_cycler(cycler_dir / name)
    assert len(log) == len(ref)
    np.testing.assert_array_equal(log.cycle, ref["Cycle"])
    np.testing.assert_allclose(log.voltage_V, ref["Voltage"], rtol=1e-6)
    np.testing.assert_allclose(log.current_mA, ref["Current(mA)"], rtol=1e-6, atol=1e-9)
    st = step_table(log)
    for kind, col in (("charge", "Charge_Capacity(mAh)"), ("discharge", "Discharge_Capacity(mAh)")):
        for c in np.unique(ref["Cycle"]):
            want = per_step.loc[c, col]
            mine = st.capacity_mAh[(st.cycle == c) & (st.kind == kind)]
            # the largest step of the cycle (NewareNDA's per-cycle maximum) ...
            assert (mine.max() if len(mine) else 0.0) == pytest.approx(want.max(), rel=1e-4,
                                                                      abs=1e-9)
            # ... and the cycle's total = the sum over its steps
            s = cycle_summary(log)
            total = (s.charge_mAh if kind == "charge" else s.discharge_mAh)[s.cycle == c]
            assert np.nan_to_num(total[0]) == pytest.approx(want.sum(), rel=1e-4, abs=1e-9)


def test_neware_testfile_readme_numbers(cycler_dir):
    log = read_cycler(cycler_dir / "neware_TestFile.nda")
    assert len(log) == 6670 and list(log.cycles) == [1, 2, 3]
    st = step_table(log)
    qmax = {k: [st.capacity_mAh[(st.cycle == c) & (st.kind == k)].max(initial=0.0)
                for c in (1, 2, 3)] for k in ("charge", "discharge")}
    np.testing.assert_allclose(qmax["charge"], [0, 5655.09, 5659.86], rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(qmax["discharge"], [3790.17, 5806.65, 0], rtol=1e-4, atol=1e-9)
    s = cycle_summary(log)
    # cycle 1 has no charge, cycle 3 no discharge: NaN and a note, not 0
    assert np.isnan(s.charge_mAh[0]) and np.isnan(s.ce[0])
    assert np.isnan(s.discharge_mAh[2]) and np.isnan(s.ce[2]) and np.isnan(s.retention()[2])
    assert "no discharge" in s.cycle_notes()[2] and s.cycle_notes()[1] == ""
    assert s.charge_mAh[1] == pytest.approx(5655.088 + 155.93712, rel=1e-5)


def test_arbin_res_matches_cellpy_golden_values(cycler_dir):
    import csv

    log = read_cycler(cycler_dir / "arbin_cellpy_test001.res")
    assert len(log) == 10261
    assert len(log.cycles) == 18
    assert len(np.unique(log.step)) == 103
    assert log.meta["data_point"][log.cycle == 1].max() == 1457
    ref = list(csv.DictReader(open(REF / "arbin_cellpy_test001_summary.csv")))
    s = cycle_summary(log, convention="anode")
    np.testing.assert_array_equal(s.cycle, [int(r["cycle_num"]) for r in ref])
    qc = np.array([float(r["charge_capacity"]) for r in ref]) * 1e3  # Ah -> mAh
    qd = np.array([float(r["discharge_capacity"]) for r in ref]) * 1e3
    np.testing.assert_allclose(np.nan_to_num(s.charge_mAh), qc, rtol=1e-4)
    np.testing.assert_allclose(s.discharge_mAh, qd, rtol=1e-4)
    assert s.charge_mAh[0] == pytest.approx(1.6254, rel=1e-4)
    assert s.discharge_mAh[0] == pytest.approx(1.7551, rel=1e-4)
    # anode half-cell: CE = delithiation (charge) / lithiation (discharge), as cellpy's
    ce = np.array([float(r["coulombic_efficiency"]) for r in ref]) / 100
    np.testing.assert_allclose(s.ce[:-1], ce[:-1], rtol=1e-4)
    assert np.isnan(s.ce[-1]) and np.isnan(s.charge_mAh[-1])  # cellpy writes 0 there
    assert s.initial_ce == pytest.approx(0.926108, rel=1e-4)
    # in the cathode convention the same file gives the inverse, and says so
    cath = cycle_summary(log)
    assert cath.initial_ce == pytest.approx(1 / 0.926108, rel=1e-4)
    assert any("use the anode convention" in n for n in cath.notes)
    assert not any("anode convention" in n for n in s.notes)


def _maccor_step_maxima(path):
    import pandas as pd

    with open(path, encoding="latin-1") as fh:
        skip = next(k for k, line in enumerate(fh) if line.startswith("Rec#"))
    df = pd.read_csv(path, sep="\t", skiprows=skip)
    key = (df["Cyc#"].astype(str) + "/" + df["Step"].astype(str)).to_numpy()
    blk = np.cumsum(np.r_[True, key[1:] != key[:-1]]) - 1
    first = np.r_[0, np.flatnonzero(np.diff(blk)) + 1]
    qmax = 1e3 * df["Amp-hr"].groupby(blk).max().to_numpy()
    q0 = 1e3 * df["Amp-hr"].to_numpy()[first]
    return df, qmax, q0, df["State"].to_numpy()[first]


@pytest.mark.parametrize("name, rows, ncols", [("maccor_cellpy_001.txt", 6704, 61),
                                               ("maccor_beep_000151.052", 333, 38),
                                               ("maccor_beep_000109.010", 2165, 38)])
def test_maccor_rows_columns_and_step_capacities(cycler_dir, name, rows, ncols):
    log = read_cycler(cycler_dir / name)
    assert len(log) == rows
    assert log.meta["n_columns"] == ncols
    df, qmax, q0, state = _maccor_step_maxima(cycler_dir / name)
    assert len(df) == rows
    st = step_table(log)
    assert len(st.step) == len(qmax)
    # a step cut by the start of the file counts only what the record holds
    expect = np.where(np.isin(state, ["C", "D"]), qmax - np.r_[q0[0], np.zeros(len(q0) - 1)],
                      0.0)
    np.testing.assert_allclose(st.capacity_mAh, expect, rtol=1e-4, atol=1e-9)
    kinds = {"C": "charge", "D": "discharge"}
    for k, s_ in zip(st.kind, state):
        assert k == kinds.get(s_, "rest")


def test_maccor_cellpy_export_cycles_and_currents(cycler_dir):
    log = read_cycler(cycler_dir / "maccor_cellpy_001.txt")
    # the file's Cyc# is 0 throughout: cycles were assigned (a note says so)
    assert any("cycle column is constant" in n for n in log.meta["notes"])
    s = cycle_summary(log)
    np.testing.assert_array_equal(s.cycle, [0, 1, 2, 3, 4])
    # discharge rates of the rate test: 0.5, 0.5, 2.5, 5, 10 A (unsigned Amps, sign from State)
    np.testing.assert_allclose(s.discharge_current_mA, [500, 500, 2500, 5000, 10000], rtol=2e-3)
    assert s.discharge_mAh[1] == pytest.approx(4544.03, rel=1e-5)
    assert log.time_s[-1] == pytest.approx(2 * 86400 + 2 * 3600 + 52 * 60 + 51.57, abs=0.01)


def test_maccor_beep_partial_step_note(cycler_dir):
    log = read_cycler(cycler_dir / "maccor_beep_000151.052")
    assert any("began before the first record" in n for n in log.meta["notes"])
    s = cycle_summary(log)
    assert s.discharge_mAh[0] == pytest.approx(1e3 * (0.0236350 - 0.0191580), rel=1e-3)


def test_binary_maccor_and_unknown_files_name_the_formats(tmp_path):
    raw = tmp_path / "cell_000001.001"
    raw.write_bytes(b"\x00\x01MACCOR\x00" * 100)
    with pytest.raises(InputError, match=r"cell_000001\.001.*binary raw.*export it as text"):
        read_cycler(raw)
    odd = tmp_path / "cell.dat"
    odd.write_bytes(b"hello")
    with pytest.raises(InputError, match=r"cell\.dat.*Neware.*Arbin.*Maccor"):
        read_cycler(odd)


def test_cli_convention_notes_and_nan_cycles(cycler_dir, tmp_path):
    import csv

    from layerscope.cli import main

    assert main(["echem", str(cycler_dir / "neware_TestFile.nda"), "--convention", "anode",
                 "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "cycles.csv")))
    # anode convention: CE = charge / discharge of the same cycle
    assert float(rows[1]["ce"]) == pytest.approx(5811.0250 / 5806.646, rel=1e-5)
    assert rows[0]["charge_mAh"] == "nan" and rows[0]["ce"] == "nan"
    assert rows[2]["discharge_mAh"] == "nan" and rows[2]["ce"] == "nan"
    assert "no charge" in rows[0]["note"] and "no discharge" in rows[2]["note"]
    notes = (tmp_path / "notes.txt").read_text()
    assert "convention: anode" in notes and "cycle 3: no discharge" in notes
    # an unknown file: exit code 2 with the supported formats named
    bad = tmp_path / "x.abc"
    bad.write_text("nothing")
    assert main(["echem", str(bad), "--out", str(tmp_path / "o")]) == 2


def test_cli_simulated_operando_cell_cccv_and_gitt(tmp_path):
    import csv
    import json

    from layerscope.cli import main

    assert main(["simulate", "cycler", "--model", "lrm-pouch-operando",
                 "--out", str(tmp_path / "op.csv")]) == 0
    truth = json.loads((tmp_path / "op_truth.json").read_text())
    assert main(["echem", str(tmp_path / "op.csv"), "--convention", "full", "--nominal-mAh", "4000",
                 "--out", str(tmp_path / "o")]) == 0
    row = next(csv.DictReader(open(tmp_path / "o" / "cycles.csv")))
    assert float(row["charge_cv_mAh"]) == pytest.approx(truth["cv_charge_mAh"][0], rel=5e-3)
    assert float(row["discharge_mAh"]) == pytest.approx(truth["discharge_mAh"][0], rel=5e-3)
    assert (tmp_path / "o" / "dvdq.png").stat().st_size > 1000


def test_mpr_unknown_column_is_skipped_and_reported(cycler_dir, tmp_path):
    buf = bytearray((cycler_dir / "biologic_gcpl_5cycles.mpr").read_bytes())
    mod = buf.find(b"MODULEVMP data")
    body = mod + 57
    n_cols = buf[body + 4]
    ids = np.frombuffer(bytes(buf[body + 5:body + 5 + 2 * n_cols]), "<u2").tolist()
    k = ids.index(70)  # P/W, a 4-byte float: pretend EC-Lab wrote a column id we do not know
    buf[body + 5 + 2 * k:body + 7 + 2 * k] = (999).to_bytes(2, "little")
    p = tmp_path / "unknown_column.mpr"
    p.write_bytes(bytes(buf))
    log = read_cycler(p)
    assert any("999" in n for n in log.meta["notes"])
    ref = cycle_summary(read_cycler(cycler_dir / "biologic_gcpl_5cycles.mpr"))
    np.testing.assert_array_equal(cycle_summary(log).discharge_mAh, ref.discharge_mAh)


def test_record_starting_mid_step_leaves_that_cycles_ce_undetermined(cycler_dir):
    log = read_cycler(cycler_dir / "maccor_beep_000109.010")
    s = cycle_summary(log)
    # cycle 86's charge began 270.67 mAh before the record: its CE is NaN with a note
    assert s.cycle[0] == 86 and np.isnan(s.ce[0]) and np.isnan(s.initial_ce)
    assert any("cycle 86" in n and "not determined" in n for n in s.notes)
    assert np.all(np.isfinite(s.ce[1:]))


def _rewrite_mpr(buf: bytes, *, new_header: bool, data_version: int | None = None) -> bytes:
    """The shared .mpr with EC-Lab >= 11.50 module headers and/or another data-module version."""
    from layerscope.echem.biologic import _modules

    out = bytearray(buf[:52])
    pos = 52
    for short, version, body in _modules(buf, Path("x")):
        head = buf[pos:pos + 57]
        if short == "VMP data" and data_version == 2:
            body, version = body[:405] + body[406:], 2  # version 3 has one more byte before the data
        length = len(body).to_bytes(4, "little")
        ver = version.to_bytes(4, "little")
        if new_header:
            out += head[:41] + b"\xff\xff\xff\xff" + length + ver + b"\x0b\x00\x00\x00" + head[49:57]
        else:
            out += head[:41] + length + ver + head[49:57]
        out += body
        pos += 57 + len(buf[pos + 57:pos + 57 + int.from_bytes(head[41:45], "little")])
    return bytes(out)


@pytest.mark.parametrize("new_header, data_version", [(True, None), (False, 2), (True, 2)])
def test_mpr_layout_variants_read_the_same(cycler_dir, tmp_path, new_header, data_version):
    src = cycler_dir / "biologic_gcpl_5cycles.mpr"
    p = tmp_path / "variant.mpr"
    p.write_bytes(_rewrite_mpr(src.read_bytes(), new_header=new_header, data_version=data_version))
    ref = cycle_summary(read_cycler(src))
    s = cycle_summary(read_cycler(p))
    np.testing.assert_array_equal(s.charge_mAh, ref.charge_mAh)
    np.testing.assert_array_equal(s.discharge_mAh, ref.discharge_mAh)
