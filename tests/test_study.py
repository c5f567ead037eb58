"""The study pipeline: study-file validation, a simulated study run end to end against its truth,
resume after an interruption, results.h5 and the HTML report in a real headless browser."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from layerscope.cli import main
from layerscope.study import StudyError, read_study, run_study
from layerscope.study import tasks as study_tasks

FAST_KINDS = ["haadf", "eels", "xas", "cycler", "kinematic"]


# ------------------------------------------------------------------------------------ validation

def _study(tmp_path, body: str) -> Path:
    (tmp_path / "img.tif").write_bytes(b"not really an image")
    p = tmp_path / "study.toml"
    p.write_text(body)
    return p


@pytest.mark.parametrize("body, message", [
    ('[[haadf]]\nname = "a"\nimgae = "img.tif"\n', r"haadf\[0\] \('a'\): unknown key 'imgae' \(did you mean 'image'\?\)"),
    ('[[haadf]]\nname = "a"\nimage = "missing.tif"\n', r"haadf\[0\] \('a'\) key 'image': file not found: missing.tif"),
    ('[[haadf]]\nname = "a"\nimage = "img.tif"\npixel_size_nm = "0.1"\n',
     r"key 'pixel_size_nm': expected a number, got str '0.1'"),
    ('[[haadf]]\nname = "a"\nimage = "img.tif"\nmode = "tilted"\n', r"key 'mode': expected one of 'atomic'"),
    ('[[hadf]]\nname = "a"\n', r"unknown section 'hadf' \(did you mean 'haadf'\?\)"),
    ('[[haadf]]\nname = "a"\n', r"haadf\[0\] \('a'\): missing required key 'image'"),
    ('[[haadf]]\nname = "a"\nimage = "img.tif"\n[[haadf]]\nname = "a"\nimage = "img.tif"\n',
     r"haadf\[1\] \('a'\): duplicate name 'a'"),
    ('[[fourd]]\nname = "a"\nscan = "img.tif"\nphases = ["lrm-pristine:O3p", "nonsense"]\n',
     r"fourd\[0\] \('a'\) key 'phases': 'nonsense' is neither a preset"),
    ('[[eels]]\nname = 3\nspectrum = "img.tif"\n', r"eels\[0\] key 'name': expected a string"),
    ('[study]\ntitel = "x"\n[[eels]]\nname = "e"\nspectrum = "img.tif"\n', r"\[study\] unknown key 'titel'"),
    ('[study]\ntitle = "x"\n', r"no datasets"),
    ('[[xas]]\nname = "x"\nspectra = { a = "img.tif", b = "nope.csv" }\n', r"key 'spectra'.b: file not found"),
    ('[[neutron]\nname = "x"\n', r"not valid TOML"),
])
def test_study_file_errors_name_the_key(tmp_path, body, message):
    with pytest.raises(StudyError, match=message):
        read_study(_study(tmp_path, body))


def test_run_rejects_a_bad_study_before_any_work(tmp_path, capsys):
    p = _study(tmp_path, '[[haadf]]\nname = "a"\nimage = "img.tif"\n[[eels]]\nname = "e"\nspectrum = "gone.csv"\n')
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out)]) == 2
    assert "key 'spectrum': file not found: gone.csv" in capsys.readouterr().err
    assert not out.exists()  # nothing was started


def test_keys_are_listed():
    from layerscope.study.schema import describe_schema

    text = describe_schema()
    for kind in ("operando", "neutron", "haadf", "fourd", "eels", "xas", "cycler", "kinematic"):
        assert f"[[{kind}]]" in text


# ------------------------------------------------------------------------- simulated study, run

@pytest.fixture(scope="module")
def sim_study(tmp_path_factory):
    from layerscope.simulate.study import simulate_study

    d = tmp_path_factory.mktemp("study")
    return simulate_study(d / "data", seed=0, quick=True, log=lambda *a: None)


@pytest.fixture(scope="module")
def fast_run(sim_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    res = run_study(read_study(sim_study), out, only=FAST_KINDS, log=lambda *a: None)
    return out, res


def _checks(records):
    return [(r["kind"], r["name"], v) for r in records for v in r["validation"]]


def test_simulated_study_recovers_its_truth(fast_run):
    """Every number with a ground truth in the HAADF, EELS, sXAS and cycler analyses is within the
    tolerance of the issue that built the analysis."""
    out, res = fast_run
    checks = _checks(res["records"])
    kinds = {k for k, _, _ in checks}
    assert {"haadf", "eels", "xas", "cycler"} <= kinds
    assert len(checks) >= 25
    bad = [f"{k}/{n}: {v['quantity']} = {v['value']:.5g} vs {v['truth']:.5g} ({v['tolerance']})"
           for k, n, v in checks if not v["ok"]]
    assert not bad, bad
    # table S4's defect counts are recovered particle by particle
    lowmag = next(r for r in res["records"] if r["name"] == "100-cycles-lowmag")
    assert sorted(lowmag["summary"]["defects_per_particle"]) == [4, 4, 5, 6, 6]


def test_results_file_has_units_and_provenance(fast_run, sim_study):
    import xarray as xr

    out, res = fast_run
    path = out / "results.h5"
    root = xr.open_dataset(path, engine="h5netcdf")
    assert "haadf/charged-twins" in json.loads(root.attrs["analyses"])
    val = xr.open_dataset(path, engine="h5netcdf", group="validation")
    assert val.sizes["check"] == len(_checks(res["records"])) and bool(val["ok"].all())
    cols = xr.open_dataset(path, engine="h5netcdf", group="haadf/charged-twins/columns")
    assert cols["x_nm"].attrs["units"] == "nm" and cols["x_px"].attrs["units"] == "px"
    prov = json.loads(cols.attrs["provenance"])
    image = sim_study.parent / "haadf" / "charged-twins" / "image.tif"
    assert prov["input_sha256"]["image"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert prov["parameters"]["mode"] == "atomic" and "numpy" in prov["packages"]
    cyc = xr.open_dataset(path, engine="h5netcdf", group="cycler/half-cell/cycles")
    assert cyc["charge_mAh"].attrs["units"] == "mAh"
    truth = json.loads((sim_study.parent / "cycler" / "half-cell_truth.json").read_text())
    np.testing.assert_allclose(cyc["charge_mAh"].values[:2], truth["charge_mAh"][:2], rtol=5e-3)


def test_report_sections_mirror_the_paper(fast_run):
    out, _ = fast_run
    page = (out / "report.html").read_text()
    for sid in ("fig1a", "fig1b", "fig1cd", "fig2", "fig3", "fig4", "sfig2", "sfig4", "sfig5", "sfig14",
                "sfig15", "sfig16", "sfig17", "tables", "tableS4", "checks"):
        assert f'id="{sid}"' in page
    assert page.count("<img") >= 15
    assert "no data for this figure in this study" in page  # fig1a: neutron not run in this subset
    assert re.search(r"\d+ of \d+ checks within tolerance", page)


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes_without_redoing_work(sim_study, fast_run, tmp_path, monkeypatch):
    """Kill part way (an exception in the 4th analysis), run again: finished analyses are not run
    again and the results equal those of the uninterrupted run."""
    ref_out, _ = fast_run
    study = read_study(sim_study)
    calls = []
    real = dict(study_tasks.RUNNERS)

    def wrap(kind, fail_at=None):
        def run(opts, out):
            calls.append((kind, opts["name"]))
            if fail_at is not None and len(calls) == fail_at:
                raise _Interrupt("killed")
            return real[kind](opts, out)
        return run

    monkeypatch.setattr(study_tasks, "RUNNERS", {k: wrap(k, fail_at=4) for k in real})
    with pytest.raises(_Interrupt):
        run_study(study, tmp_path, only=FAST_KINDS, log=lambda *a: None)
    done_first = calls[:3]
    assert not (tmp_path / "report.html").exists()
    calls.clear()
    monkeypatch.setattr(study_tasks, "RUNNERS", {k: wrap(k) for k in real})
    run_study(study, tmp_path, only=FAST_KINDS, log=lambda *a: None)
    assert not set(done_first) & set(calls)  # nothing finished is redone
    assert len(calls) == len([d for d in study.datasets if d.kind in FAST_KINDS]) - 3
    assert (tmp_path / "report.html").read_bytes() == (ref_out / "report.html").read_bytes()
    for rel in ("haadf/charged-twins/columns.csv", "eels/pristine/eels.csv", "xas/o-k/xas.csv"):
        assert (tmp_path / rel).read_bytes() == (ref_out / rel).read_bytes()
    # a changed input invalidates only its own analysis
    calls.clear()
    xas = sim_study.parent / "xas" / "pristine.csv"
    backup = xas.read_bytes()
    try:
        run_study(study, tmp_path, only=FAST_KINDS, log=lambda *a: None)
        assert calls == []  # unchanged: everything kept
        xas.write_bytes(backup + b"560.0,5.0\n")
        run_study(read_study(sim_study), tmp_path, only=FAST_KINDS, log=lambda *a: None)
        assert calls == [("xas", "o-k")]
    finally:
        xas.write_bytes(backup)


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    return None


def render_in_chromium(page: Path, tmp_path: Path):
    """Load a page in headless Chromium; returns (body data attributes, console lines)."""
    exe = _chromium()
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", p.stdout)
    assert body, "no <body> in the rendered DOM"
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    console = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln]
    return attrs, console


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(fast_run, tmp_path):
    out, _ = fast_run
    # the check itself can fail: a page with a script error and a broken figure is caught
    bad = tmp_path / "bad.html"
    page = (out / "report.html").read_text()
    bad.write_text(page.replace("</body>", '<img src="data:image/png;base64,AAAA"><script>nope();</script></body>'))
    attrs, console = render_in_chromium(bad, tmp_path)
    assert int(attrs["errors"]) >= 1 and int(attrs["figures-rendered"]) < int(attrs["figures"])
    assert any("nope is not defined" in c for c in console)
    attrs, console = render_in_chromium(out / "report.html", tmp_path)
    assert console == []
    assert attrs["errors"] == "0"
    assert int(attrs["figures"]) >= 15 and attrs["figures-rendered"] == attrs["figures"]


@pytest.mark.extended  # CI: test_demo_runs_the_full_simulated_study checks these analyses' truth too
def test_neutron_and_fourd_analyses_of_the_simulated_study(sim_study, tmp_path):
    """Ex-situ Rietveld (tables S1, S3) from off-truth starting models and 4D-STEM maps (Figs. 1b, 3)."""
    res = run_study(read_study(sim_study), tmp_path, only=["neutron", "fourd"], log=lambda *a: None)
    checks = _checks(res["records"])
    assert {k for k, _, _ in checks} == {"neutron", "fourd"}
    bad = [f"{k}/{n}: {v['quantity']} = {v['value']:.6g} vs {v['truth']:.6g} ({v['tolerance']})"
           for k, n, v in checks if not v["ok"]]
    assert not bad, bad
    page = (tmp_path / "report.html").read_text()
    assert "Table S1" in page and "Table S3" in page


def test_scheduler_sends_the_work_to_a_dask_cluster(sim_study, fast_run, tmp_path):
    """--scheduler ADDRESS: the analyses run on the cluster's workers; same results as locally."""
    from dask.distributed import LocalCluster

    ref_out, _ = fast_run
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        res = run_study(read_study(sim_study), tmp_path, only=["xas", "cycler"], scheduler=cluster.scheduler_address,
                        log=lambda *a: None)
    assert {r["kind"] for r in res["records"]} == {"xas", "cycler"}
    for rel in ("xas/o-k/xas.csv", "cycler/half-cell/cycles.csv"):
        assert (tmp_path / rel).read_bytes() == (ref_out / rel).read_bytes()
    assert res["checks"][0] == res["checks"][1] > 0


@pytest.mark.slow
def test_kill_9_and_rerun_keeps_finished_work(sim_study, fast_run, tmp_path):
    """`layerscope run` killed with SIGKILL after two analyses finished: the rerun keeps them
    (their records are untouched) and ends with the report of an uninterrupted run."""
    import os
    import signal
    import sys
    import time

    ref_out, _ = fast_run
    # the report gives input paths relative to the output folder: this one sits as deep as ref_out
    out = tmp_path
    cmd = [sys.executable, "-m", "layerscope", "run", str(sim_study), "--out", str(out), "--only", *FAST_KINDS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    while len(list(out.glob("*/*/record.json"))) < 2:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() - t0 < 300
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("*/*/record.json")}
    assert 2 <= len(kept) < 10 and not (out / "report.html").exists()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("done before, kept") == len(kept)
    assert all(q.stat().st_mtime_ns == t for q, t in kept.items())
    assert (out / "report.html").read_bytes() == (ref_out / "report.html").read_bytes()


@pytest.mark.slow
def test_demo_runs_the_full_simulated_study(tmp_path):
    """The README's first command: pouch-cell pattern + the complete simulated study (every modality,
    four states, operando series every 2nd pattern as by default) through `layerscope run`.
    Run under umask 022: no output may keep mkstemp's private mode 0600 (issue 15)."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        assert main(["demo", "--out", str(tmp_path)]) == 0
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    private = sorted(str(p.relative_to(tmp_path)) for p in files if stat.S_IMODE(p.stat().st_mode) & 0o044 != 0o044)
    assert len(files) > 100 and not private, private[:10]
    assert (tmp_path / "pattern" / "pouch_cell_pattern.csv").exists()
    page = (tmp_path / "report.html").read_text()
    for sid in ("fig1a", "sfig3", "fig2", "sfig10", "fig3", "fig4", "tables", "tableS4", "checks"):
        assert f'id="{sid}"' in page
    assert "Table S1" in page and "Table S2" in page and "Table S3" in page
    assert "no data for this figure in this study" not in page  # every section is filled
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/*/record.json"))]
    assert {r["kind"] for r in records} == {"operando", "neutron", "haadf", "fourd", "eels", "xas", "cycler",
                                            "kinematic"}
    op = next(r for r in records if r["kind"] == "operando")
    assert op["summary"]["patterns"] == 17 and op["summary"]["flagged"] == 0
    # every truth-checked number is within its issue's tolerance (measured: 67 of 67, the operando
    # series at table S2's counting statistics; DoO worst 4.3 % where O3' is 22 %)
    bad = [f"{k}/{n}: {v['quantity']} = {v['value']:.6g} vs {v['truth']:.6g}" for k, n, v in _checks(records)
           if not v["ok"]]
    assert not bad, bad
    assert sum(1 for _ in _checks(records)) >= 60
