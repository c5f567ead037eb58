"""The outputs of a several-bank operando run: every bank in ``operando.h5`` and the figures, one
``--instprm BANK=FILE`` per bank on the command line, and resume from the checkpoint.

The series is test_operando_banks.py's simulated two-bank series (2θ 90° and 150°, different
resolution, zero, scale and background), two time steps, with bank 2 cut to a shorter TOF range
than bank 1 so that the banks' grids differ in length; its instrument files are given on the
command line (moved out of the series folder). The outputs are checked by
``test_operando_banks.check_bank_outputs`` (each bank's calculated patterns against an
independent evaluation at the refined vector read back from ``checkpoint.json``).

The refinement makes these tests ~80 s (2-core machine): they are ``extended`` (run by hand);
CI checks the same outputs in test_operando_banks.py's slow test (its series through the Python
API) and the command line's refusals here (fast: they stop before any pattern is read).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from layerscope.cli import main
from layerscope.diffraction.instrument import gppd_like, read_instprm, write_instprm

from test_operando_banks import _simulate, _write_series, check_bank_outputs

CUT = slice(150, 1250)       # bank 2 keeps 1100 of its 1400 points


@pytest.fixture(scope="module")
def two_bank_run(tmp_path_factory):
    """The CLI on the two-step, two-bank series with ``--instprm 1=… --instprm 2=…`` (the files moved
    out of the series folder, so the default *bank<N>*.instprm lookup cannot find them)."""
    root = tmp_path_factory.mktemp("banks")
    patterns, truth, insts, phases = _simulate(n_steps=2)
    patterns = [(n, [t[0], t[1][CUT]], [y[0], y[1][CUT]], [s[0], s[1][CUT]]) for n, t, y, s in patterns]
    series = _write_series(root, patterns, insts)
    inst_dir = root / "instruments"
    inst_dir.mkdir()
    files = {1: inst_dir / "ninety.instprm", 2: inst_dir / "backscattering.instprm"}
    for b, f in files.items():
        shutil.move(series / f"sim_bank{b}.instprm", f)
    out = root / "out"
    args = ["operando", str(series), "--cycler", str(root / "cycler.csv"), "--model", "lrm-100-cycles",
            "--strategy", str(root / "protocol.toml"), "--instprm", f"1={files[1]}", "--instprm", f"2={files[2]}",
            "--out", str(out)]
    assert main(args) == 0
    return {"root": root, "series": series, "out": out, "args": args, "files": files, "patterns": patterns,
            "phases": phases}


@pytest.mark.extended
def test_operando_h5_holds_every_bank_and_matches_an_independent_evaluation(two_bank_run):
    run, out = two_bank_run, two_bank_run["out"]
    fulls = [np.array(r["full"]) for r in json.loads((out / "checkpoint.json").read_text())["records"]]
    check_bank_outputs(out, run["patterns"], run["phases"], run["files"], fulls)


@pytest.mark.extended
def test_resume_of_a_two_bank_run_gives_the_same_results(two_bank_run, tmp_path, capsys):
    """Run part (the checkpoint cut after the first time step, as a kill leaves it), rerun: the
    same rows and the same stored patterns."""
    import xarray as xr

    out = two_bank_run["out"]
    before = (out / "timeseries.csv").read_text()

    def banks(folder):
        out = {}
        for b in (1, 2):
            with xr.open_dataset(folder / "operando.h5", group=f"bank{b}", engine="h5netcdf") as ds:
                out.update({f"{b}/{v}": ds[v].values.copy() for v in ("y_obs", "y_calc", "background", "rwp")})
        return out

    ref = banks(out)
    part = tmp_path / "part"
    part.mkdir()
    doc = json.loads((out / "checkpoint.json").read_text())
    doc["records"] = doc["records"][:1]
    (part / "checkpoint.json").write_text(json.dumps(doc))
    args = list(two_bank_run["args"])
    args[args.index("--out") + 1] = str(part)
    assert main(args) == 0
    assert (part / "timeseries.csv").read_text() == before
    got = banks(part)
    for k, v in ref.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)
    assert len(json.loads((part / "checkpoint.json").read_text())["records"]) == 2
    # another instrument file for bank 2 on the same folder starts no mixed resume
    other = tmp_path / "other.instprm"
    inst = read_instprm(two_bank_run["files"][2])
    write_instprm(inst.replace(difc=inst.difc + 1.0), other)
    args[args.index(f"2={two_bank_run['files'][2]}")] = f"2={other}"
    assert main(args) == 2
    assert "checkpoint belongs to another series, protocol or instrument" in capsys.readouterr().err


def _dummy_series(tmp_path, banks=(1, 2)):
    """A series folder whose manifest lists ``banks`` per time step (files empty: the instrument
    checks come before any pattern is read)."""
    series = tmp_path / "series"
    series.mkdir()
    rows = ["file,start_s,end_s" + (",bank" if banks else "")]
    for k in range(2):
        for b in banks or (None,):
            f = f"p{k}_{b}.gsa"
            (series / f).write_text("")
            rows.append(f"{f},{1800 * k},{1800 * (k + 1)}" + (f",{b}" if b else ""))
    (series / "series.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "cycler.csv").write_text("time_s,voltage_V,current_mA,capacity_mAh\n0,3,1,0\n3600,3.1,1,1\n")
    for name in ("a", "b", "c"):
        write_instprm(gppd_like(), tmp_path / f"{name}.instprm")
    return series


@pytest.mark.parametrize("instprm, what", [
    (["1={a}"], r"series.csv: bank\(s\) \[2\] of the series have no instrument"),
    (["1={a}", "2={b}", "3={c}"], r"series.csv: an instrument is given for bank\(s\) \[3\], which the series does "
                                  r"not list"),
    (["{a}"], "series.csv: the series has banks \\[1, 2\\] per time step: give one instrument per bank"),
    (["{a}", "2={b}"], "every instrument needs its bank, as BANK=FILE"),
    (["1={a}", "1={b}"], "bank 1 is given twice"),
])
def test_cli_refuses_instruments_that_do_not_match_the_banks(tmp_path, capsys, instprm, what):
    series = _dummy_series(tmp_path)
    opts = sum((["--instprm", v.format(a=tmp_path / "a.instprm", b=tmp_path / "b.instprm",
                                       c=tmp_path / "c.instprm")] for v in instprm), [])
    rc = main(["operando", str(series), "--cycler", str(tmp_path / "cycler.csv"), *opts, "--out",
               str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert pytest.importorskip("re").search(what, err), err


def test_one_bank_series_refuses_a_bank_number_and_keeps_plain_instprm(tmp_path, capsys):
    from layerscope._errors import InputError
    from layerscope.operando.instruments import parse_instprm_args, series_instruments

    series = _dummy_series(tmp_path, banks=())
    rc = main(["operando", str(series), "--cycler", str(tmp_path / "cycler.csv"), "--instprm",
               f"1={tmp_path / 'a.instprm'}", "--out", str(tmp_path / "out")])
    assert rc == 2 and "one pattern per time step" in capsys.readouterr().err
    # the plain form: one file, as before
    assert parse_instprm_args([str(tmp_path / "a.instprm")]) == str(tmp_path / "a.instprm")
    insts, files = series_instruments(str(tmp_path / "a.instprm"), series, [])
    assert files == {None: str((tmp_path / "a.instprm").resolve())} and insts[None].difc == gppd_like().difc
    # a study file's table: bank numbers as text keys
    insts, files = series_instruments({"2": tmp_path / "b.instprm", "1": tmp_path / "a.instprm"}, series, [1, 2])
    assert list(insts) == [1, 2] and files[2] == str((tmp_path / "b.instprm").resolve())
    with pytest.raises(InputError, match="instrument key 'x'"):
        series_instruments({"x": tmp_path / "a.instprm"}, series, [1, 2])


def test_study_operando_instprm_takes_one_file_per_bank(tmp_path):
    from layerscope.study.schema import StudyError, read_study

    series = _dummy_series(tmp_path)
    text = ('[[operando]]\nname = "cell"\nseries = "series"\ncycler = "cycler.csv"\n'
            'instprm = {{1 = "a.instprm", 2 = "{b}"}}\n')
    (tmp_path / "study.toml").write_text(text.format(b="b.instprm"))
    ds = read_study(tmp_path / "study.toml").datasets[0]
    assert ds.options["instprm"] == {1: (tmp_path / "a.instprm").resolve(), 2: (tmp_path / "b.instprm").resolve()}
    (tmp_path / "study.toml").write_text(text.format(b="missing.instprm"))
    with pytest.raises(StudyError, match=r"key 'instprm'.2: file not found: missing.instprm"):
        read_study(tmp_path / "study.toml")
    (tmp_path / "study.toml").write_text(text.format(b="b.instprm").replace("2 =", "two ="))
    with pytest.raises(StudyError, match="bank numbers as keys"):
        read_study(tmp_path / "study.toml")
    assert series.is_dir()
