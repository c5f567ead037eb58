"""The study file's [[eels]] task: low_loss, low_loss_offset, deconvolve, calibrate_edges, align_edge."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from layerscope.study import StudyError, read_study
from layerscope.study import tasks as study_tasks
from test_eels_energy_scale import E_STORED, _g, feature_position, model, stored


@pytest.fixture()
def files(tmp_path):
    drifts = np.array([0.0, 0.5])
    core = np.array([stored(-8.0, 0.02, d) for d in drifts])        # axis off by -8 eV and 2 %
    el = -20.0 + 0.25 * np.arange(480)
    low = np.array([1e5 * _g(el, -d, 0.4) + 2e3 * _g(el, 22.0, 5.0) + 5.0 for d in drifts])
    np.savetxt(tmp_path / "core.csv", np.column_stack([E_STORED, *core]), delimiter=",",
               header="energy_eV,a,b", comments="")
    np.savetxt(tmp_path / "low.csv", np.column_stack([el, *low]), delimiter=",", header="energy_eV,a,b",
               comments="")
    return tmp_path


def _write(tmp_path, extra: str):
    p = tmp_path / "study.toml"
    p.write_text(f'[[eels]]\nname = "e"\nspectrum = "core.csv"\n{extra}')
    return p


def test_study_eels_runs_with_low_loss_and_two_point_calibration(files):
    y0 = model(E_STORED)
    ok, mn = feature_position(E_STORED, y0, "O-K", 530.0), feature_position(E_STORED, y0, "Mn-L3", 641.0)
    study = read_study(_write(files, f'low_loss = "low.csv"\nlow_loss_offset = "0,0"\n'
                                     f'calibrate_edges = {{ "O-K" = {ok:.4f}, "Mn-L3" = {mn:.4f} }}\n'))
    opts = study.of_kind("eels")[0].options
    assert opts["calibrate_edges"] == pytest.approx({"O-K": ok, "Mn-L3": mn})
    out = files / "out"
    out.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = study_tasks.run_eels(opts, out)
    cal = rec["eels_record"]["calibration"]
    assert [s["method"] for s in cal["steps"]] == ["zero-loss peak to 0 eV",
                                                   "two-point energy calibration (offset and dispersion)"]
    assert cal["energy_gain"] == pytest.approx(1.02, abs=1e-4)
    import csv
    rows = list(csv.DictReader(open(out / "eels.csv")))
    assert [abs(float(r["l3_eV"]) - mn) < 0.1 for r in rows] == [True, True]
    assert not list(out.glob("record.json"))     # the runner writes its own record.json


@pytest.mark.parametrize("extra, message", [
    ('calibrate_edges = { "O-K" = 530.0 }\n', "key 'calibrate_edges': two-point calibration needs exactly two"),
    ('calibrate_edges = { "O-K" = 530.0, "Fe-L3" = 708.0 }\n', "unknown calibration feature 'Fe-L3'"),
    ('calibrate_edges = { "O-K" = "530", "Mn-L3" = 641.0 }\n', r"calibrate_edges'.O-K: expected a number"),
    ('calibrate_edges = { "O-K" = 530.0, "Mn-L3" = 641.0 }\nalign_edge = "O-K"\n', "not both"),
    ('deconvolve = "fourier-ratio"\n', "needs 'low_loss'"),
    ('deconvolve = "richardson-lucy"\nlow_loss = "low.csv"\n', "expected one of 'none'"),
    ('low_loss = "low.csv"\nlow_loss_offset = "1;2"\n', "expected 'auto' or 'DY,DX'"),
    ('low_loss = "missing.csv"\n', "key 'low_loss': file not found"),
])
def test_study_eels_keys_are_checked_before_any_work(files, extra, message):
    with pytest.raises(StudyError, match=message):
        read_study(_write(files, extra))


def test_study_eels_keys_are_listed():
    from layerscope.study.schema import describe_schema
    text = describe_schema()
    eels = text[text.index("[[eels]]"):].split("\n[[")[0]
    for k in ("low_loss", "low_loss_offset", "deconvolve", "calibrate_edges", "align_edge", "shift_eV"):
        assert f"  {k}:" in eels, k
