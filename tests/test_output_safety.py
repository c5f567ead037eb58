"""Outputs stay where the user put them (issue 15): a second ``run`` / ``operando`` on an output
folder in use stops with a clear message (a lock), and names taken from input or study files
(dataset names, phase names) never place a file outside ``--out``."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerscope import InputError
from layerscope._io import file_in, safe_name
from layerscope._lock import LOCK_NAME, OutputInUse, output_lock
from layerscope.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _study(tmp_path: Path, name: str = "cell") -> Path:
    (tmp_path / "log.csv").write_text("time_s,voltage_V,current_mA,capacity_mAh\n0,3,1,0\n3600,4,1,1\n")
    p = tmp_path / "study.toml"
    p.write_text(f'[[cycler]]\nname = "{name}"\nfile = "log.csv"\n')
    return p


def test_second_run_on_a_folder_in_use_stops(tmp_path, capsys):
    out = tmp_path / "out"
    study = _study(tmp_path)
    with output_lock(out, "run"):  # another command holds the folder
        rc = main(["run", str(study), "--out", str(out)])
        assert rc == 2
        err = capsys.readouterr().err
        assert "in use by another layerscope command" in err and str(out) in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written
        rc = main(["operando", str(tmp_path), "--cycler", str(tmp_path / "log.csv"), "--out", str(out)])
        assert rc == 2 and "in use" in capsys.readouterr().err
    # released: the lock can be taken again (and is released by the OS if the holder dies)
    with output_lock(out, "run"):
        pass


def test_lock_is_exclusive_between_holders(tmp_path):
    with output_lock(tmp_path, "run"):
        with pytest.raises(OutputInUse, match="give another --out"):
            with output_lock(tmp_path, "operando"):
                pass
    assert issubclass(OutputInUse, InputError)


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../b", "..", ".hidden", "a\\b", "x\x00y", ""])
def test_names_from_files_stay_inside_out(tmp_path, name):
    out = tmp_path / "out"
    p = file_in(out, name, ".cif")
    assert p.parent == out and "/" not in p.name and "\x00" not in p.name and not p.name.startswith(".")
    assert safe_name("NAC") == "NAC" and safe_name("lrm-pristine:O3p") == "lrm-pristine:O3p"


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".x", "a\\b"])
def test_study_dataset_names_that_are_paths_are_refused(tmp_path, name):
    from layerscope.study.schema import read_study

    with pytest.raises(InputError, match="cannot be used as a folder name"):
        read_study(_study(tmp_path, name.replace("\\", "\\\\")))



def test_empty_fit_range_is_a_clear_error(tmp_path):
    """A fit range outside the data (or reversed) stops before any fitting, naming the range (issue 15)."""
    from layerscope.cli.refine import refine_files

    d = SHARED / "powgen-nac"
    if not (d / "PG3_22048.gsa").is_file():
        pytest.skip("shared data absent")
    for lo, hi in ((200000.0, 300000.0), (50000.0, 40000.0)):
        with pytest.raises(InputError, match=rf"PG3_22048.gsa: the fit range {lo:g}-{hi:g} holds 0 usable point"):
            refine_files(d / "PG3_22048.gsa", d / "POWGEN_2665.instprm", [str(d / "NAC.cif")], tmin=lo, tmax=hi)
