"""Per-cycle capacities against independent readers of the same files (within 0.1 %).

* BioLogic .mpr: galvani (GPL, test-only) reads the file with its own parser; the
  per-half-cycle maxima of EC-Lab's ``Q charge/discharge`` counter are compared with our
  capacities, which come from our own byte reader and the ``(Q-Qo)`` increments.
* Neware .nda/.ndax: the step counters NewareNDA returns, summed per cycle with pandas.
* Arbin .res: the cycler's own per-cycle counters read back through access-parser, and
  the Arbin ``Channel_Statistic_Table`` charge/discharge times × the logged current.
"""

from pathlib import Path

import numpy as np
import pytest

from layerscope.echem import cycle_summary, read_cycler

CYCLER = Path(__file__).resolve().parents[2] / "shared" / "data" / "cycler"
pytestmark = pytest.mark.peer


@pytest.fixture
def cycler_dir():
    if not CYCLER.is_dir():
        pytest.skip(f"real cycler data not found at {CYCLER}")
    return CYCLER


def test_biologic_mpr_columns_match_galvani(cycler_dir):
    BioLogic = pytest.importorskip("galvani.BioLogic")
    from layerscope.echem.biologic import read_mpr_columns

    path = cycler_dir / "biologic_gcpl_5cycles.mpr"
    ref = BioLogic.MPRfile(str(path)).data
    ours = read_mpr_columns(path)
    for name in ("time/s", "Ewe/V", "(Q-Qo)/mA.h", "dq/mA.h", "half cycle", "Ns"):
        np.testing.assert_array_equal(ours[name], ref[name])


def test_biologic_capacities_match_galvani(cycler_dir):
    BioLogic = pytest.importorskip("galvani.BioLogic")
    path = cycler_dir / "biologic_gcpl_5cycles.mpr"
    ref = BioLogic.MPRfile(str(path)).data
    hc, q = ref["half cycle"], ref["Q charge/discharge/mA.h"]
    charges, discharges = [], []
    for h in np.unique(hc):
        seg = q[hc == h]
        (charges if seg.max() > abs(seg.min()) else discharges).append(np.abs(seg).max())
    s = cycle_summary(read_cycler(path))
    # The file opens with a discharge (cycle 0), then 6 charge/discharge cycles.
    np.testing.assert_allclose(s.charge_mAh[1:], charges, rtol=1e-3)
    np.testing.assert_allclose(s.discharge_mAh, discharges, rtol=1e-3)
    assert len(charges) == 6 and len(discharges) == 7


@pytest.mark.parametrize("name", ["neware_test.ndax", "neware_TestFile.nda"])
def test_neware_capacities_match_neware_counters(cycler_dir, name):
    NewareNDA = pytest.importorskip("NewareNDA")
    df = NewareNDA.read(str(cycler_dir / name))
    per_step = df.groupby(["Cycle", "Step"], observed=True)[
        ["Charge_Capacity(mAh)", "Discharge_Capacity(mAh)"]].max()
    per_cycle = per_step.groupby(level="Cycle").sum()
    s = cycle_summary(read_cycler(cycler_dir / name))
    np.testing.assert_array_equal(s.cycle, per_cycle.index.to_numpy())
    np.testing.assert_allclose(np.nan_to_num(s.charge_mAh), per_cycle["Charge_Capacity(mAh)"], rtol=1e-3)
    np.testing.assert_allclose(np.nan_to_num(s.discharge_mAh), per_cycle["Discharge_Capacity(mAh)"],
                               rtol=1e-3)


def test_arbin_capacities_match_arbin_counters(cycler_dir):
    access_parser = pytest.importorskip("access_parser")
    db = access_parser.AccessParser(str(cycler_dir / "arbin_example.res"))
    t = db.parse_table("Channel_Normal_Table")
    cyc = np.asarray(t["Cycle_Index"])
    qc = np.asarray(t["Charge_Capacity"], float) * 1e3
    qd = np.asarray(t["Discharge_Capacity"], float) * 1e3
    s = cycle_summary(read_cycler(cycler_dir / "arbin_example.res"))
    np.testing.assert_allclose(s.charge_mAh, [qc[cyc == c].max() for c in s.cycle], rtol=1e-3)
    np.testing.assert_allclose(s.discharge_mAh, [qd[cyc == c].max() for c in s.cycle], rtol=1e-3)
    # Independent of the counters: charge time (Channel_Statistic_Table) x constant current.
    stat = db.parse_table("Channel_Statistic_Table")
    i_mA = np.abs(np.asarray(t["Current"], float)) * 1e3
    i_on = np.median(i_mA[i_mA > 0])
    np.testing.assert_allclose(s.charge_mAh, i_on * np.asarray(stat["Charge_Time"]) / 3600,
                               rtol=5e-3)


def test_arbin_res_matches_mdbtools_export(cycler_dir, tmp_path):
    """galvani's res2sqlite (via the mdb-export system tool) as a second Arbin reader."""
    import shutil

    if shutil.which("mdb-export") is None:
        pytest.skip("mdbtools (mdb-export) is not installed")
    res2sqlite = pytest.importorskip("galvani.res2sqlite")
    import sqlite3

    db = tmp_path / "arbin.sqlite"
    res2sqlite.convert_arbin_to_sqlite(str(cycler_dir / "arbin_example.res"), str(db))
    rows = sqlite3.connect(db).execute(
        "SELECT Cycle_Index, MAX(Charge_Capacity), MAX(Discharge_Capacity) "
        "FROM Channel_Normal_Table GROUP BY Cycle_Index").fetchall()
    ref = {int(c): (1e3 * a, 1e3 * b) for c, a, b in rows}
    s = cycle_summary(read_cycler(cycler_dir / "arbin_example.res"))
    for c, qc, qd in zip(s.cycle, s.charge_mAh, s.discharge_mAh):
        assert qc == pytest.approx(ref[int(c)][0], rel=1e-3)
        assert qd == pytest.approx(ref[int(c)][1], rel=1e-3)


@pytest.mark.parametrize("new_header, data_version", [(True, None), (False, 2)])
def test_mpr_layout_variants_match_galvani(cycler_dir, tmp_path, new_header, data_version):
    """galvani reads the rewritten EC-Lab >= 11.50 header / version-2 copies as we do."""
    BioLogic = pytest.importorskip("galvani.BioLogic")
    from test_echem_files import _rewrite_mpr

    from layerscope.echem.biologic import read_mpr_columns

    p = tmp_path / "variant.mpr"
    p.write_bytes(_rewrite_mpr((cycler_dir / "biologic_gcpl_5cycles.mpr").read_bytes(),
                               new_header=new_header, data_version=data_version))
    ref = BioLogic.MPRfile(str(p)).data
    ours = read_mpr_columns(p)
    for name in ("time/s", "Ewe/V", "(Q-Qo)/mA.h", "half cycle", "Ns"):
        np.testing.assert_array_equal(ours[name], ref[name])
