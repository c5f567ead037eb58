"""Tests of the plain-text powder readers and the GSAS FXYE writer.

Truth used here: the numbers written in the real POWGEN file (read back
independently with numpy.loadtxt), GSAS-II's bin-width convention for Mantid
SLOG files (shared/data README), and synthetic files whose every value is
known because the test wrote it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from layerscope.diffraction.readers import (
    PowderData,
    read_fullprof,
    read_gsas,
    read_powder,
    read_xye,
    write_gsas_fxye,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shared_data() -> Path:
    d = (REPO_ROOT / ".." / "shared" / "data").resolve()
    if not d.is_dir():
        pytest.skip(f"real data folder {d} is absent (expected ../shared/data next to the repo)")
    return d


@pytest.fixture(scope="module")
def pg3(shared_data) -> Path:
    f = shared_data / "powgen-nac" / "PG3_22048.gsa"
    if not f.is_file():
        pytest.skip(f"{f} is absent")
    return f


@pytest.fixture(scope="module")
def pg3_columns(pg3):
    """The file's own numbers, read independently of layerscope."""
    lines = pg3.read_text().splitlines()
    ibank = next(i for i, ln in enumerate(lines) if ln.startswith("BANK"))
    bank = lines[ibank].split()
    cols = np.loadtxt(pg3, skiprows=ibank + 1)
    return int(bank[2]), float(bank[7]), cols, ibank + 1


# --------------------------------------------------------------------------- real POWGEN file


def test_pg3_point_count_and_range_follow_bank_record(pg3, pg3_columns):
    nchan, c3, cols, _ = pg3_columns
    d = read_powder(pg3)
    assert nchan == 6825
    assert len(d) == nchan == cols.shape[0]
    assert d.kind == "tof" and d.bank == 2
    # x is moved from the lower bin edge to the bin centre: x + c3*x/2
    assert d.x[0] == pytest.approx(6777.081541902 * (1 + c3 / 2), rel=1e-12)
    assert d.x[-1] == pytest.approx(103815.513456395 * (1 + c3 / 2), rel=1e-12)
    assert np.all(d.sigma > 0)
    assert np.all(np.diff(d.x) > 0)


def test_pg3_first_bin_width_normalisation_like_gsas2(pg3):
    d = read_powder(pg3)
    dt = 6779.792374519 - 6777.081541902  # x[1] - x[0] in the file
    assert d.meta["bin_width_normalised"] is True
    assert d.meta["header_says_y_times_bin_width"] is True
    assert d.meta["bin_width_first"] == pytest.approx(dt, rel=1e-9)
    assert d.x[0] == pytest.approx(6777.0815 + dt / 2, abs=1e-4)
    assert d.y[0] == pytest.approx(117.1389 / dt, rel=1e-6)
    assert d.sigma[0] == pytest.approx(5.252800403 / dt, rel=1e-9)


def test_pg3_bin_widths_checked_against_x_column(pg3, pg3_columns):
    nchan, c3, cols, _ = pg3_columns
    d = read_powder(pg3)
    x = cols[:, 0]
    dt = c3 * x
    np.testing.assert_allclose(d.y, cols[:, 1] / dt, rtol=1e-14)
    np.testing.assert_allclose(d.sigma, cols[:, 2] / dt, rtol=1e-14)
    # Mantid clips the last SLOG bin at the maximum TOF: only that interval differs
    assert d.meta["bin_width_mismatch_intervals"] == [nchan - 2]
    assert d.meta["bin_width_max_rel_mismatch"] == pytest.approx(
        (x[-1] - x[-2]) / (c3 * x[-2]) - 1, rel=1e-9
    )


def test_pg3_without_normalisation_returns_file_numbers(pg3, pg3_columns):
    _, _, cols, _ = pg3_columns
    d = read_gsas(pg3, bin_width_normalise=False)
    np.testing.assert_array_equal(d.x, cols[:, 0])
    np.testing.assert_array_equal(d.y, cols[:, 1])
    np.testing.assert_array_equal(d.sigma, cols[:, 2])
    assert d.meta["bin_width_normalised"] is False


def test_pg3_centre_convention_keeps_x(pg3, pg3_columns):
    _, c3, cols, _ = pg3_columns
    d = read_gsas(pg3, x_is_bin_lower_edge=False)
    np.testing.assert_array_equal(d.x, cols[:, 0])
    np.testing.assert_allclose(d.y, cols[:, 1] / (c3 * cols[:, 0]), rtol=1e-14)


def test_pg3_missing_bank_lists_available(pg3):
    with pytest.raises(ValueError, match=r"PG3_22048\.gsa.*no bank 1.*\[2\]"):
        read_powder(pg3, bank=1)
    assert read_powder(pg3, bank=2).bank == 2


def test_pg3_round_trip_through_writer(pg3, tmp_path):
    d = read_powder(pg3)
    # Mantid's clipped last bin breaks the constant Δt/t; the rest is SLOG
    cut = PowderData(d.x[:-1], d.y[:-1], d.sigma[:-1], "tof", 2, d.source, dict(d.meta))
    out = write_gsas_fxye(tmp_path / "pg3_copy.gsa", cut, bank=2)
    back = read_powder(out, bank=2)
    np.testing.assert_array_equal(back.x, cut.x)
    np.testing.assert_array_equal(back.y, cut.y)
    np.testing.assert_array_equal(back.sigma, cut.sigma)
    assert back.meta["bintyp"] == "SLOG" and back.meta["bin_width_normalised"] is False
    assert back.meta["bcoef"][2] == pytest.approx(4e-4, rel=1e-8)


@pytest.mark.parametrize("keep_lines", [20, 3000, 6838])
def test_pg3_truncated_copy_names_line_and_promise(pg3, tmp_path, keep_lines):
    lines = pg3.read_text().splitlines(keepends=True)
    bad = tmp_path / "PG3_cut.gsa"
    bad.write_text("".join(lines[:keep_lines]))
    with pytest.raises(ValueError, match=rf"PG3_cut\.gsa, line {keep_lines}: truncated.*promises 6825"):
        read_powder(bad)


def test_pg3_cut_mid_number(pg3, tmp_path):
    text = pg3.read_text()
    lines = text.splitlines(keepends=True)
    head = "".join(lines[:500])
    cut = head + lines[500][:32]  # stops inside the y column of line 501
    bad = tmp_path / "PG3_mid.gsa"
    bad.write_text(cut)
    with pytest.raises(ValueError, match=r"PG3_mid\.gsa, line 501: FXYE data line has 2 values; expected 3"):
        read_powder(bad)


def test_real_cif_is_refused(shared_data, tmp_path):
    cif = shared_data / "powgen-nac" / "NAC.cif"
    if not cif.is_file():
        pytest.skip(f"{cif} is absent")
    with pytest.raises(ValueError, match=r"NAC\.cif: this is a CIF"):
        read_powder(cif)
    renamed = tmp_path / "NAC.gsa"
    renamed.write_text(cif.read_text())
    with pytest.raises(ValueError, match=r"NAC\.gsa: this is a CIF.*not a powder pattern"):
        read_powder(renamed)


# --------------------------------------------------------------------------- writer round trips


def _slog_data(n=500, t0=5000.0, dtt=5e-4, seed=1):
    rng = np.random.default_rng(seed)
    x = t0 * (1 + dtt) ** np.arange(n)
    y = 100 + 50 * np.exp(-0.5 * ((x - x[n // 2]) / 20) ** 2) + rng.normal(0, 1, n)
    return PowderData(x, y, np.sqrt(y), "tof", None, "", {"title": "synthetic SLOG"})


def test_round_trip_slog(tmp_path):
    d = _slog_data()
    f = write_gsas_fxye(tmp_path / "s.gsa", d, bank=3, title="operando 001")
    back = read_powder(f)
    assert back.bank == 3 and back.kind == "tof" and back.meta["title"] == "operando 001"
    assert back.meta["bintyp"] == "SLOG" and back.meta["data_type"] == "FXYE"
    for a, b in ((back.x, d.x), (back.y, d.y), (back.sigma, d.sigma)):
        np.testing.assert_array_equal(a, b)


def test_round_trip_const_tof(tmp_path):
    x = 2000.0 + 4.0 * np.arange(300)
    y = np.linspace(10, 40, 300)
    d = PowderData(x, y, np.full(300, 0.5), "tof")
    f = write_gsas_fxye(tmp_path / "c.fxye", d)
    back = read_powder(f)
    assert back.meta["bintyp"] == "CONST" and back.kind == "tof"
    assert back.meta["kind_source"] == "header mentions time of flight"
    np.testing.assert_array_equal(back.x, x)
    np.testing.assert_array_equal(back.y, y)
    np.testing.assert_array_equal(back.sigma, d.sigma)


def test_writer_refuses_irregular_grid_and_cw(tmp_path):
    x = np.array([1000.0, 1001.0, 1003.0, 1010.0])
    with pytest.raises(ValueError, match=r"neither constant-step \(CONST\) nor constant Δt/t \(SLOG\)"):
        write_gsas_fxye(tmp_path / "i.gsa", PowderData(x, np.ones(4), np.ones(4), "tof"))
    with pytest.raises(ValueError, match="time-of-flight"):
        write_gsas_fxye(tmp_path / "w.gsa", PowderData([10.0, 10.1], [1, 1], [1, 1], "cw"))
    assert not (tmp_path / "i.gsa").exists()


def test_round_trip_multibank(tmp_path):
    a = _slog_data(seed=2)
    b = _slog_data(n=200, t0=9000.0, dtt=1e-3, seed=3)
    fa = write_gsas_fxye(tmp_path / "a.gsa", a, bank=1).read_text().splitlines()
    fb = write_gsas_fxye(tmp_path / "b.gsa", b, bank=5).read_text().splitlines()
    both = tmp_path / "two.gsa"
    both.write_text("\n".join(fa + ["# second bank"] + fb[3:]) + "\n")
    np.testing.assert_array_equal(read_powder(both, bank=1).y, a.y)
    r5 = read_powder(both, bank=5)
    np.testing.assert_array_equal(r5.x, b.x)
    assert r5.meta["bank_comments"] == ["# second bank"]
    with pytest.raises(ValueError, match=r"two\.gsa: file holds banks \[1, 5\]; choose one with bank="):
        read_powder(both)
    with pytest.raises(ValueError, match=r"no bank 2; the file holds banks \[1, 5\]"):
        read_powder(both, bank=2)


# --------------------------------------------------------------------------- other GSAS types


def test_gsas_fxye_cw_centidegrees(tmp_path):
    f = tmp_path / "cw.gsa"
    f.write_text(
        "CW test\nBANK 1 3 3 CONST 1000 5 0 0 FXYE\n"
        "1000.0 10.0 1.0\n1005.0 20.0 2.0\n1010.0 30.0 3.0\n"
    )
    d = read_powder(f)
    assert d.kind == "cw"
    np.testing.assert_allclose(d.x, [10.0, 10.05, 10.10], rtol=1e-15)
    np.testing.assert_array_equal(d.y, [10, 20, 30])


def test_gsas_esd_const_fixed_width(tmp_path):
    # 7 points, 5 (I, esd) pairs of F8 per 80-column line, 2θ from BCOEF in centidegrees
    vals = [(100.0 + k, 10.0 + k / 10) for k in range(7)]
    recs = "".join(f"{y:8.1f}{e:8.2f}" for y, e in vals)
    body = recs[:80] + "\n" + recs[80:] + "\n"
    f = tmp_path / "esd.gsa"
    f.write_text("ESD test\nBANK 1 7 2 CONST 500.0 2.0 0 0 ESD\n" + body)
    d = read_powder(f)
    np.testing.assert_allclose(d.x, (500.0 + 2.0 * np.arange(7)) / 100, rtol=1e-15)
    np.testing.assert_array_equal(d.y, [v[0] for v in vals])
    np.testing.assert_allclose(d.sigma, [v[1] for v in vals], rtol=1e-15)
    assert d.meta["fixed_width_records"] is True


def test_gsas_std_fixed_width_with_counters(tmp_path):
    # STD records: NCTR (I2) + intensity (F6); esd = sqrt(I / NCTR)
    vals = [(2, 400.0), (1, 100.0), (4, 900.0)] * 4  # 12 points, 10 per line
    recs = "".join(f"{n:2d}{y:6.0f}" for n, y in vals)
    f = tmp_path / "std.gsa"
    f.write_text("STD test\nBANK 1 12 2 SLOG 1000 2000 0.01 0 STD\n" + recs[:80] + "\n" + recs[80:] + "\n")
    d = read_powder(f)
    assert d.kind == "tof"
    np.testing.assert_allclose(d.x, 1000 * 1.01 ** np.arange(12), rtol=1e-14)
    np.testing.assert_allclose(d.sigma, [np.sqrt(y / n) for n, y in vals], rtol=1e-15)


def test_gsas_std_free_format_counts(tmp_path):
    # the layout users post from Jade exports: counts separated by spaces, no TYPE
    f = tmp_path / "jade.gsa"
    f.write_text("scan\nBANK 1 12 2 CONST 400 1\n20 21 26 29 30 36 18 21 25 25\n0 16\n")
    d = read_powder(f)
    assert d.kind == "cw" and d.meta["data_type"] == "STD"
    np.testing.assert_allclose(d.x, 4.0 + 0.01 * np.arange(12), rtol=1e-14)
    np.testing.assert_array_equal(d.y[-2:], [0, 16])
    np.testing.assert_allclose(d.sigma[-2:], [1.0, 4.0])  # sqrt(max(y, 1))


def test_gsas_fxy_sigma_from_counts(tmp_path):
    f = tmp_path / "fxy.gsa"
    f.write_text("t\nBANK 4 3 3 SLOG 1000 1002.001 0.001 0 FXY\n1000 16\n1001 0\n1002.001 9\n")
    d = read_powder(f)
    np.testing.assert_array_equal(d.sigma, [4.0, 1.0, 3.0])
    assert "no esd" in d.meta["sigma_source"] and d.bank == 4


def test_gsas_ralf_alt(tmp_path):
    # ALT: x*32 (F8), y*1000 (F7), esd*1000 (F5), four records per line
    pts = [(1500.25, 23.551, 0.375), (1502.25, 22.825, 0.367), (1504.25, 22.372, 0.363),
           (1506.25, 22.947, 0.369), (1508.25, 22.798, 0.367)]
    recs = "".join(f"{x * 32:8.0f}{y * 1000:7.0f}{e * 1000:5.0f}" for x, y, e in pts)
    f = tmp_path / "alt.gss"
    f.write_text("Si\nBANK 1 5 2 RALF 48008 64 48008 0.0010 ALT\n" + recs[:80] + "\n" + recs[80:] + "\n")
    d = read_powder(f)
    np.testing.assert_allclose(d.x, [p[0] for p in pts], rtol=1e-15)
    np.testing.assert_allclose(d.y, [p[1] for p in pts], rtol=1e-12)
    np.testing.assert_allclose(d.sigma, [p[2] for p in pts], rtol=1e-12)


def test_gsas_ralf_esd_grid_switches_to_log(tmp_path):
    # steps of 64/32 = 2 µs until t >= 2010 µs (BCOEF3/32), then Δt/t = 0.001
    n = 10
    recs = "".join(f"{10.0:8.1f}{1.0:8.2f}" for _ in range(n))
    lines = [recs[i:i + 80] for i in range(0, len(recs), 80)]
    f = tmp_path / "ralf.gsa"
    f.write_text("r\nBANK 1 10 2 RALF 64128 64 64320 0.001 ESD\n" + "\n".join(lines) + "\n")
    d = read_powder(f)
    expect = [2004.0, 2006.0, 2008.0, 2010.0]
    t = 2010.0
    for _ in range(6):
        t *= 1.001
        expect.append(t)
    np.testing.assert_allclose(d.x, expect, rtol=1e-14)


def test_forced_normalisation_const(tmp_path):
    f = tmp_path / "c.gsa"
    f.write_text("# TOF data\nt\nBANK 1 3 3 CONST 1000 4 0 0 FXYE\n1000 8 4\n1004 8 4\n1008 12 4\n")
    assert read_powder(f).meta["bin_width_normalised"] is False  # no header phrase
    d = read_gsas(f, bin_width_normalise=True)
    np.testing.assert_allclose(d.x, [1002, 1006, 1010])
    np.testing.assert_allclose(d.y, [2, 2, 3])
    np.testing.assert_allclose(d.sigma, [1, 1, 1])


def test_slog_coefficients_contradicting_x_column(tmp_path):
    f = tmp_path / "bad_slog.gsa"
    f.write_text("t\n# with Y multiplied by the bin widths.\nBANK 1 3 3 SLOG 1000 1020 0.0004 0 FXYE\n"
                 "1000 8 4\n1010 8 4\n1020.1 8 4\n")
    with pytest.raises(ValueError, match=r"bad_slog\.gsa, line 3: the BANK record's SLOG bins .* do not match"):
        read_powder(f)
    assert len(read_gsas(f, bin_width_normalise=False)) == 3


def test_more_points_than_promised(tmp_path):
    f = tmp_path / "long.gsa"
    f.write_text("t\nBANK 1 2 2 SLOG 1000 1001 0.001 0 FXYE\n1000 1 1\n1001 1 1\n1002.001 1 1\n")
    with pytest.raises(ValueError, match=r"long\.gsa, line 5: bank 1 has 3 points, more than the 2"):
        read_powder(f)


@pytest.mark.parametrize(
    "bad_line, line_no, what",
    [("1001 nan 1", 4, r"y = nan is not a finite"),
     ("1001 1 inf", 4, r"sigma = inf is not a finite"),
     ("1001 1 0", 4, r"sigma = 0.0 <= 0"),
     ("1001 1 -2", 4, r"sigma = -2.0 <= 0"),
     ("999 1 1", 4, r"x = 999.0 does not increase after 1000.0"),
     ("1001 1 1.2.3", 4, r"cannot read esd from '1.2.3'")],
)
def test_gsas_bad_values_name_the_line(tmp_path, bad_line, line_no, what):
    f = tmp_path / "bad.gsa"
    f.write_text(f"t\nBANK 1 3 3 CONST 1000 1 0 0 FXYE\n1000 1 1\n{bad_line}\n1002 1 1\n")
    with pytest.raises(ValueError, match=rf"bad\.gsa, line {line_no}: {what}"):
        read_gsas(f, kind="tof")


def test_gsas_structural_errors(tmp_path):
    f = tmp_path / "nobank.gsa"
    f.write_text("title\n1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match=r"nobank\.gsa: no 'BANK' record found"):
        read_powder(f)
    f.write_text("t\nBANK 1 x 3 SLOG 1 2 3 0 FXYE\n")
    with pytest.raises(ValueError, match=r"line 2: BANK record .* non-integer"):
        read_powder(f)
    f.write_text("t\nBANK 1 3 3 TIME_MAP 1 FXYE\n")
    with pytest.raises(ValueError, match=r"line 2: BINTYP TIME_MAP .* not supported"):
        read_powder(f)
    f.write_text("t\nBANK 1 3 3 SLOG 1000 1002 0.001 0 FXYE\n")
    with pytest.raises(ValueError, match=r"line 2: BANK 1 promises 3 points but has no data"):
        read_powder(f)


# --------------------------------------------------------------------------- FullProf


def test_fullprof_xydata(tmp_path):
    f = tmp_path / "p.dat"
    f.write_text("XYDATA\nINTER 1.0 1.0 0\nTEMP 300.0\n! my sample\n"
                 "10.00 100 10\n10.05 121 11\n10.10 144 12\n")
    d = read_fullprof(f)
    assert d.kind == "cw" and d.meta["xydata_header"] and d.meta["keywords"]["TEMP"] == ["300.0"]
    np.testing.assert_array_equal(d.y, [100, 121, 144])
    np.testing.assert_array_equal(d.sigma, [10, 11, 12])


def test_fullprof_start_step_end(tmp_path):
    counts = np.arange(1, 24, dtype=float)  # 23 points: (15.5 - 4.5)/0.5 + 1
    rows = "\n".join(" ".join(f"{c:.0f}" for c in counts[i:i + 10]) for i in range(0, 23, 10))
    f = tmp_path / "ins0.dat"
    f.write_text("LaB6 test scan\n4.5 0.5 15.5  D2B data\n" + rows + "\n")
    d = read_powder(f)
    assert d.meta["variant"].startswith("INSTRM=0")
    np.testing.assert_allclose(d.x, 4.5 + 0.5 * np.arange(23), rtol=1e-15)
    np.testing.assert_array_equal(d.y, counts)
    np.testing.assert_allclose(d.sigma, np.sqrt(counts))
    # one count missing: neither a start/step/end file nor a column file
    f.write_text("LaB6 test scan\n4.5 0.5 15.5\n" + rows[: rows.rfind(" ")] + "\n")
    with pytest.raises(ValueError, match=r"ins0\.dat, line 2: looks like a FullProf 'start step end'"):
        read_powder(f)


def test_fullprof_tof_columns(tmp_path):
    f = tmp_path / "tof.dat"
    f.write_text("NAC bank 2\n  5000.0  10.0  1.0\n  5002.0  11.0  1.1\n  5004.0  12.0  1.2\n")
    d = read_powder(f)
    assert d.kind == "tof" and d.meta["variant"].startswith("INSTRM=10")
    np.testing.assert_array_equal(d.x, [5000, 5002, 5004])


# --------------------------------------------------------------------------- columns


def test_csv_with_names_selects_columns(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("sigma,tof_us,intensity\n1.5,1000,10\n2.5,1010,20\n")
    d = read_powder(f)
    assert d.kind == "tof"
    np.testing.assert_array_equal(d.x, [1000, 1010])
    np.testing.assert_array_equal(d.y, [10, 20])
    np.testing.assert_array_equal(d.sigma, [1.5, 2.5])


def test_xy_two_columns_2theta(tmp_path):
    f = tmp_path / "p.xy"
    f.write_text("# 2theta I\n10.0 0.0\n10.1 25.0\n# comment in data\n\n10.2 4.0\n")
    d = read_xye(f)
    assert d.kind == "cw" and d.meta["kind_source"] == "header names 2theta"
    np.testing.assert_array_equal(d.sigma, [1.0, 5.0, 2.0])
    assert d.meta["sigma_source"].startswith("sqrt(max(y, 1))")


def test_xye_headerless_kind_from_range(tmp_path):
    f = tmp_path / "p.xye"
    f.write_text("2000 5 1\n2001 6 1\n")
    assert read_powder(f).kind == "tof"
    assert read_powder(f, kind="cw").kind == "cw"


@pytest.mark.parametrize(
    "body, msg",
    [("10 1 1\n11 2\n12 3 1\n", r"line 2: 2 values; expected 3 like line 1"),
     ("10 1 1\n11 2 x\n", r"line 2: cannot read 'x' as a number"),
     ("10 1 1\n9 2 1\n", r"line 2: x = 9.0 does not increase"),
     ("10 1 1\n11 nan 1\n", r"line 2: y = nan is not a finite"),
     ("10 1 1\n11 2 0\n", r"line 2: sigma = 0.0 <= 0"),
     ("10 1 1 1\n11 2 1 1\n", r"line 1: 4 data columns; expected 2 or 3")],
)
def test_xye_bad_input_names_line(tmp_path, body, msg):
    f = tmp_path / "bad.xye"
    f.write_text(body)
    with pytest.raises(ValueError, match=rf"bad\.xye, {msg}"):
        read_powder(f)


def test_file_level_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.xye"):
        read_powder(tmp_path / "nope.xye")
    e = tmp_path / "empty.gsa"
    e.write_text("  \n")
    with pytest.raises(ValueError, match=r"empty\.gsa: file is empty"):
        read_powder(e)
    b = tmp_path / "bin.xy"
    b.write_bytes(b"\x00\x01\x02abc")
    with pytest.raises(ValueError, match=r"bin\.xy: binary file"):
        read_powder(b)
    t = tmp_path / "words.xy"
    t.write_text("just some\ntext here\n")
    with pytest.raises(ValueError, match=r"words\.xy: no numeric data found"):
        read_powder(t)
    c = tmp_path / "s.xy"
    c.write_text("data_x\n_cell_length_a 4.0\n_cell_length_b 4.0\nloop_\n_atom_site_label\nO1 0 0 0\n")
    with pytest.raises(ValueError, match=r"s\.xy: this is a CIF"):
        read_powder(c)
    with pytest.raises(ValueError, match=r"bank= applies only to GSAS"):
        read_powder(_write(tmp_path / "two.xy", "1 2\n2 3\n"), bank=1)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_powderdata_is_immutable_and_checked():
    d = PowderData([1.0, 2.0], [3.0, 4.0], [1.0, 1.0], "tof")
    with pytest.raises(ValueError):
        d.x[0] = 5.0
    with pytest.raises(AttributeError):
        d.kind = "cw"
    with pytest.raises(ValueError, match="lengths differ"):
        PowderData([1.0, 2.0], [3.0], [1.0, 1.0], "tof")
    with pytest.raises(ValueError, match="kind must be"):
        PowderData([1.0], [3.0], [1.0], "neutron")


def test_gsas_content_in_dat_file_and_kind_conflict(tmp_path):
    f = tmp_path / "gsas_named.dat"
    f.write_text("t\nBANK 1 2 2 SLOG 1000 1001 0.001 0 FXYE\n1000 4 2\n1001 9 3\n")
    d = read_powder(f)  # a BANK record makes it GSAS whatever the extension
    assert d.meta["format"] == "GSAS" and d.kind == "tof"
    np.testing.assert_array_equal(d.sigma, [2, 3])
    with pytest.raises(ValueError, match=r"gsas_named\.dat, line 2: BINTYP SLOG is time-of-flight"):
        read_powder(f, kind="cw")
