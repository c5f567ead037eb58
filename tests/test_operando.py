"""The simulated operando experiment, the sequential refinement against its truth, and resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from layerscope.cli import main
from layerscope.operando.bridge import BRIDGED
from layerscope.simulate.operando import Protocol, cell_state, cycler_log, simulate_operando, truth_row


def test_protocol_and_cycler_log_are_consistent():
    p = Protocol()
    log = cycler_log(p, step_s=30.0)
    # capacity is the integral of the current (trapezoid on a 30 s grid)
    q = np.concatenate([[0], np.cumsum(0.5 * (log["current_mA"][1:] + log["current_mA"][:-1])
                                       * np.diff(log["time_s"]) / 3600.0)])
    np.testing.assert_allclose(log["capacity_mAh"], q, atol=6.0)
    assert log["voltage_V"].max() == pytest.approx(4.5)
    assert log["voltage_V"][-1] == pytest.approx(2.5, abs=0.01)
    assert cell_state(p.t_cc_end_h + 0.5, p).step == "cv_charge"
    # first-cycle Coulombic efficiency of the simulated cell ≈ 85 % (cathode convention)
    assert p.q_discharge_mAh / p.q_charge_mAh == pytest.approx(0.854, abs=0.01)


def test_truth_follows_the_paper_narrative():
    p = Protocol()
    early, t45, top, end = (truth_row(t, p) for t in (0.5, p.rest_h + 3.5, p.t_cv_end_h, p.t_end_h - 0.01))
    # DoD reaches ~1 % at 4.5 h before DoO leaves 93 %; DoO then ~50 % and stays on discharge
    assert t45["DoD"] == pytest.approx(0.010, abs=0.001)
    assert early["DoO"] == pytest.approx(0.930, abs=0.001) and t45["DoO"] == pytest.approx(0.930, abs=0.001)
    assert top["DoO"] == pytest.approx(0.50, abs=0.01) and end["DoO"] == pytest.approx(0.50, abs=0.01)
    # O3' -> O3 almost complete at 4.5 V, about half back on discharge; spinel grows
    assert top["frac_O3"] > 0.85 and 0.4 < end["frac_O3"] < 0.5
    assert end["frac_S"] > early["frac_S"]
    # d_inter up, d_intra down on charge
    assert top["d_inter_O3p"] > early["d_inter_O3p"] + 0.05 and top["d_intra_O3p"] < early["d_intra_O3p"] - 0.02
    # anode: graphite -> LiC12 -> LiC6
    assert early["frac_graphite"] == 1 and top["frac_LiC6"] > 0.5


def test_counting_statistics_are_table_s2s(tmp_path):
    """The simulated flux gives the 60-min reference table S2's Rexp = 0.36 % and the 30-min
    patterns √2 more; an explicit Bragg level instead of Rexp still works; bad levels are named."""
    from layerscope.diffraction.readers import read_powder

    def rexp(path):
        d = read_powder(path)
        return 100.0 * np.sqrt(len(d.y) / np.sum((d.y / d.sigma) ** 2))

    simulate_operando(tmp_path / "s2", seed=3, every=40, n_points=1500)
    r0, r1 = rexp(tmp_path / "s2/series/PATTERN_000.gsa"), rexp(tmp_path / "s2/series/PATTERN_001.gsa")
    assert r0 == pytest.approx(0.36, rel=0.01)
    assert r1 / r0 == pytest.approx(2**0.5, rel=0.03)
    simulate_operando(tmp_path / "weak", seed=3, every=40, n_points=1500, reference_rexp_percent=None,
                      mean_counts_per_bin=1000.0)
    assert rexp(tmp_path / "weak/series/PATTERN_000.gsa") == pytest.approx(1.30, rel=0.03)
    with pytest.raises(ValueError, match="exactly one"):
        simulate_operando(tmp_path / "x", mean_counts_per_bin=1000.0)
    with pytest.raises(ValueError, match="positive"):
        simulate_operando(tmp_path / "x", reference_rexp_percent=-1.0)


@pytest.fixture(scope="module")
def short_series(tmp_path_factory):
    """The reference + the first 30-min patterns of the simulated experiment (seed 1)."""
    out = tmp_path_factory.mktemp("op")
    simulate_operando(out, seed=1, n_points=3000)
    series = out / "series"
    rows = list(csv.DictReader(open(series / "series.csv")))
    keep = rows[:5]
    with open(series / "series.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    for r in rows[5:]:
        (series / r["file"]).unlink()
    return out


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.extended  # CI: test_full_series_keeps_the_spinel_seed2 checks the same outputs on a whole cycle
def test_sequential_refinement_recovers_truth(short_series, tmp_path):
    out = tmp_path / "res"
    rc = main(["operando", str(short_series / "series"), "--cycler", str(short_series / "cycler.csv"),
               "--out", str(out)])
    assert rc == 0
    got = _rows(out / "timeseries.csv")
    truth = _rows(short_series / "truth.csv")
    assert len(got) == 5
    header = list(got[0])
    for col in ("time_h", "voltage_V", "capacity_mAh", "rwp", "frac_O3p", "frac_O3p_esd", "d_inter_O3p",
                "d_intra_O3p_esd", "DoO", "DoO_esd", "DoD_esd", "O_vacancy_esd", "O3p_a"):
        assert col in header
    for g, t in zip(got, truth[:5]):
        assert g["converged"] == "True", g["flag"]
        assert abs(float(g["time_h"]) - float(t["time_h"])) < 1e-9
        for k in ("frac_O3p", "frac_O3", "frac_S"):
            assert abs(float(g[k]) - float(t[k])) < 0.02, k
        for k in ("O3p_a", "O3p_b", "O3p_c"):
            assert abs(float(g[k]) - float(t[k])) < 5e-4, k
        assert abs(float(g["DoO"]) - float(t["DoO"])) < 0.05
        assert abs(float(g["DoD"]) - float(t["DoD"])) < 0.003
    assert (out / "operando.h5").exists() and (out / "index.html").exists()
    assert not (out / "cif").exists()   # CIFs per pattern only when asked (--cif-per-pattern)
    for f in ("fig2a_contour.png", "fig2b_fractions.png", "fig2c_spacings.png", "fig2d_descriptors.png"):
        assert (out / f).stat().st_size > 5000
    import xarray as xr

    ds = xr.open_dataset(out / "operando.h5", engine="h5netcdf")
    assert ds["d_inter_O3p"].attrs["units"] == "Å" and ds.sizes["pattern"] == 5
    np.testing.assert_allclose(ds["DoO"].values, [float(g["DoO"]) for g in got], rtol=1e-7)


@pytest.mark.extended  # CI runs tests/test_kill_resume.py::test_kill_resume_operando (10 random kills) instead
def test_kill_and_resume_gives_identical_results(short_series, tmp_path):
    """One kill after two checkpointed patterns, then a rerun: the same timeseries.csv."""
    args = [sys.executable, "-m", "layerscope", "operando", str(short_series / "series"), "--cycler",
            str(short_series / "cycler.csv")]
    ref = tmp_path / "uninterrupted"
    subprocess.run(args + ["--out", str(ref)], check=True, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpt = out / "checkpoint.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if ckpt.exists() and ckpt.read_text().count('"name"') >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "timeseries.csv").exists()
    n_done = ckpt.read_text().count('"name"')
    assert 2 <= n_done < 5
    subprocess.run(args + ["--out", str(out)], check=True, capture_output=True)
    a, b = (ref / "timeseries.csv").read_text(), (out / "timeseries.csv").read_text()
    assert a == b


def test_manifest_errors_name_file_and_line(tmp_path):
    from layerscope.operando.series import read_manifest

    s = tmp_path / "series"
    s.mkdir()
    with pytest.raises(FileNotFoundError, match="series.csv: missing manifest"):
        read_manifest(s)
    (s / "series.csv").write_text("file,start_s,end_s\nA.gsa,0,10\n")

    with pytest.raises(FileNotFoundError, match=r"line 2: pattern file .*A\.gsa not found"):
        read_manifest(s)
    (s / "A.gsa").write_text("x")
    (s / "series.csv").write_text("file,start_s,end_s\nA.gsa,abc,10\n")
    with pytest.raises(ValueError, match="line 2: start_s/end_s must be numbers"):
        read_manifest(s)
    (s / "series.csv").write_text("file,start\nA.gsa,0\n")
    with pytest.raises(ValueError, match="missing column"):
        read_manifest(s)


def test_series_protocol_errors(tmp_path):
    from layerscope.operando.protocol import read_series_protocol

    p = tmp_path / "s.toml"
    p.write_text("[series]\nmin_fraction = 0.1\n")
    with pytest.raises(ValueError, match=r"needs \[\[reference.stage\]\]"):
        read_series_protocol(p)
    p.write_text("[[reference.stage]]\nfree=['background']\n[[series.stage]]\nfree=['background']\n"
                 "[series]\nmin_fraction = 2\n")
    with pytest.raises(ValueError, match="min_fraction"):
        read_series_protocol(p)


def test_manifest_rebuilt_from_file_headers(tmp_path):
    """series.csv written by `layerscope operando-manifest` from the files' header times equals
    the simulator's own manifest (the truth of each counting interval)."""
    from layerscope.operando.series import build_manifest, read_manifest
    from layerscope.simulate.operando import EXPERIMENT_START, pattern_times

    simulate_operando(tmp_path, seed=5, n_points=300, every=6)
    series = tmp_path / "series"
    want = read_manifest(series)
    (series / "series.csv").unlink()
    with pytest.raises(ValueError, match="time zero"):
        build_manifest(series)
    assert main(["operando-manifest", str(series), "--time-zero", EXPERIMENT_START]) == 0
    got = read_manifest(series)
    assert [e.file.name for e in got] == [e.file.name for e in want]
    np.testing.assert_allclose([(e.start_s, e.end_s) for e in got], [(e.start_s, e.end_s) for e in want])
    # the reference is the 60-min pattern at t = 0, the others 30-min patterns of the protocol
    t = pattern_times()
    assert (got[0].start_s, got[0].end_s) == t[0] and (got[2].start_s, got[2].end_s) == t[7]
    # a different clock: cycler started 10 min after the first run
    shifted = build_manifest(series, time_zero="2024-05-06T09:10:00", write=False)
    assert shifted[0].start_s == -600.0


def test_manifest_header_forms_and_errors(tmp_path):
    from layerscope.diffraction.readers import PowderData, write_gsas_fxye
    from layerscope.operando.series import build_manifest

    x = np.geomspace(5000, 50000, 50)

    def write(name, title):
        write_gsas_fxye(tmp_path / name, PowderData(x=x, y=np.ones(50), sigma=np.ones(50), kind="tof"), title=title)

    # relative seconds, a run_start with a duration in minutes, and start only (back to back)
    write("b.gsa", "run 2 run_start: 2024-01-01 10:30:00 duration=30 min")
    write("a.gsa", "run 1 start_s=0 end_s=3600")
    write("c.gsa", "run 3 Start Time = 2024-01-01T11:00:00")
    with pytest.raises(ValueError, match=r"c\.gsa: no end time or duration"):
        build_manifest(tmp_path, time_zero="2024-01-01T09:30:00")
    got = build_manifest(tmp_path, time_zero="2024-01-01T09:30:00", duration_s=900)
    assert [(e.file.name, e.start_s, e.end_s) for e in got] == [("a.gsa", 0, 3600), ("b.gsa", 3600, 5400),
                                                                 ("c.gsa", 5400, 6300)]
    write("d.gsa", "no times here")
    with pytest.raises(ValueError, match=r"d\.gsa: no start time"):
        build_manifest(tmp_path, time_zero="2024-01-01T09:30:00")
    with pytest.raises(ValueError, match="ISO-8601"):
        build_manifest(tmp_path, time_zero="yesterday")


def test_series_protocol_new_keys_and_errors(tmp_path):
    from layerscope.operando.protocol import default_series_protocol, read_series_protocol

    proto = default_series_protocol()
    assert proto.keep == pytest.approx(proto.min_fraction / 4) and proto.max_cell_step == 0.005
    assert proto.hold and proto.hold[0][0] == "O3p" and "O3p.occ[M2b:Li]" in proto.hold[0][2]
    assert proto.n_background == 12 and proto.bridge_holds
    base = "[[reference.stage]]\nfree=['background']\n[[series.stage]]\nfree=['background']\n[series]\n"
    p = tmp_path / "s.toml"
    for body, msg in (("min_fraction = 0.02\nkeep_fraction = 0.05\n", "keep_fraction"),
                      ("max_cell_step = 0.5\n", "max_cell_step"),
                      ("[[series.hold]]\nphase = 'O3p'\nbelow = 0.3\n", r"series\.hold\]\] needs"),
                      ("[[series.hold]]\nphase = 'O3p'\nbelow = 1.5\nparams = ['x']\n", "below must lie"),
                      ("n_background = 'many'\n", "n_background must be an integer"),
                      ("n_background = 60\n", "n_background must be an integer"),
                      ("[[series.window]]\nparam = 'Al.a'\n", r"series\.window\]\] needs"),
                      ("[[series.window]]\nparam = 'Al.a'\nwithin = -1\n", "within must be a positive"),
                      ("bridge_holds = 'yes'\n", "bridge_holds must be true or false")):
        p.write_text(base + body)
        with pytest.raises(ValueError, match=msg):
            read_series_protocol(p)


def test_window_holds_the_foil_cell_near_the_reference():
    """[[series.window]]: the Al foil's cell is refined in every series pattern, bounded to
    ± 1e-3 Å of the reference's value (the default protocol); an unknown quantity is named
    before any refinement starts."""
    from dataclasses import replace

    from layerscope.crystal.presets import preset
    from layerscope.diffraction.instrument import gppd_like
    from layerscope.diffraction.pattern import build_model, initial_params
    from layerscope.refine.parameters import default_bounds, make_layout
    from layerscope.operando.guards import _window_bounds
    from layerscope.operando.protocol import default_series_protocol
    from layerscope.operando.sequential import refine_series

    proto = default_series_protocol()
    assert proto.window == (("Al.a", 1e-3),)
    assert "Al.cell" not in proto.series.stages[0].free and "Al.cell" in proto.series.stages[1].free
    m = preset("lrm-pouch")
    model = build_model(list(m.phases), np.geomspace(8000, 50000, 200), gppd_like(), n_background=2)
    layout = make_layout(model)
    ref = np.array(layout.flatten(initial_params(model)))
    ref[layout.index("Al.a")] = 4.0491
    lo, hi = _window_bounds(default_bounds(layout), ref, layout, proto)
    j = layout.index("Al.a")
    assert (lo[j], hi[j]) == pytest.approx((4.0481, 4.0501))
    d_lo, d_hi = default_bounds(layout)
    others = np.arange(len(lo)) != j
    assert np.array_equal(lo[others], np.asarray(d_lo)[others]) and np.array_equal(hi[others], np.asarray(d_hi)[others])
    bad = replace(proto, window=(("Zn.a", 1e-3),))
    tof = np.geomspace(8000, 50000, 200)
    with pytest.raises(ValueError, match="'Zn.a' is not a quantity of this model"):
        refine_series([("p0", tof, np.ones(200), np.ones(200))], list(m.phases), gppd_like(), protocol=bad)


def test_weight_fractions_follow_the_refined_composition_and_cell():
    """Hill–Howard weight fractions W = S ρ / Σ S ρ with ρ = cell mass / volume of the *current*
    occupancies and cell (Li leaves the cathode on charge): the sequential engine's fractions
    equal diffraction.fractions.weight_fractions of the modified phases."""
    from dataclasses import replace

    from layerscope.crystal.presets import preset
    from layerscope.diffraction.fractions import weight_fractions
    from layerscope.diffraction.instrument import gppd_like
    from layerscope.diffraction.pattern import build_model, initial_params
    from layerscope.refine.parameters import make_layout
    from layerscope.operando.observables import _lrm_fractions
    from layerscope.operando.protocol import default_series_protocol

    proto = default_series_protocol()
    phases = list(preset("lrm-pouch").phases)
    model = build_model(phases, np.geomspace(8000, 50000, 200), gppd_like(), n_background=2)
    layout = make_layout(model)
    scales = {"O3p": 0.6, "S": 0.05, "O3": 0.4}
    full = np.array(layout.flatten(initial_params(model, scales=scales)))
    by = {p.name: p for p in phases}
    # charge: Li out of the O3' and O3 Li slabs, cells changed
    o3p = by["O3p"]
    sites = tuple(replace(s, species=tuple((e, 0.2 if e == "Li" else o) for e, o in s.species))
                  if s.label in ("Li4h", "Li2c") else s for s in o3p.sites)
    cell = (4.88, 8.43, 5.12, 90.0, 109.25, 90.0)
    changed = {"O3p": replace(o3p, sites=sites, cell=cell), "O3": by["O3"], "S": by["S"]}
    for lab in ("Li4h", "Li2c"):
        full[layout.index(f"O3p.occ[{lab}:Li]")] = 0.2
    full[layout.index("O3p.a"):layout.index("O3p.a") + 6] = cell
    got = _lrm_fractions(full, layout, model, proto)
    want = weight_fractions([scales[p] for p in ("O3p", "O3", "S")], [changed[p] for p in ("O3p", "O3", "S")])
    np.testing.assert_allclose([got[p] for p in ("O3p", "O3", "S")], want, rtol=1e-12)
    # the starting (uncharged) densities would overstate O3' by > 1 % absolute here
    stale = weight_fractions([scales[p] for p in ("O3p", "O3", "S")], [by[p] for p in ("O3p", "O3", "S")])
    assert stale[0] - want[0] > 0.01


def test_active_phases_hysteresis_and_held_parameters():
    """A phase refined before keeps its cell free down to keep_fraction; a new one needs
    min_fraction; O3' exchange/migration occupancies are held while O3' is a minority."""
    from layerscope.operando.guards import active_phases, held_params
    from layerscope.operando.protocol import default_series_protocol

    proto = default_series_protocol()   # min_fraction 0.02, keep 0.005
    fr = {"O3p": 0.96, "O3": 0.015, "S": 0.012}
    assert active_phases(fr, None, proto) == {"O3p"}
    assert active_phases(fr, frozenset({"O3p", "S"}), proto) == {"O3p", "S"}
    assert active_phases({"O3p": 0.99, "O3": 0.0, "S": 0.004}, frozenset({"O3p", "S"}), proto) == {"O3p"}
    assert held_params({"O3p": 0.5, "O3": 0.45, "S": 0.05}, proto) == set()
    held = held_params({"O3p": 0.2, "O3": 0.75, "S": 0.05}, proto)
    assert "O3p.occ[M2b:Li]" in held and "O3p.occ[Li4h:Li]" not in held and "O3p.occ[O1:O]" not in held


@pytest.mark.slow
def test_full_series_keeps_the_spinel_seed2(tmp_path, capsys):
    """Issue 4's accuracy over the whole first cycle (seed 2, which once lost the spinel: its
    fraction went to 0 within four patterns, the cell frozen below min_fraction while the true
    cell shrank). At every pattern: fractions within 2 % absolute; O3' and O3 cells within
    5e-4 Å while that phase is ≥ 20 % of the cathode; DoO within 5 % and DoD within 0.3 %
    wherever they are refined (not held); nothing flagged, the spinel never lost.

    Measured at table S2's counting statistics, Al foil cell windowed, held stretch bridged
    (2 cores): fractions ≤ 0.51 %, O3' cells ≤ 2.7e-4 Å, O3 cells ≤ 2.3e-4 Å, DoO ≤ 2.0 %,
    DoD ≤ 0.08 % on the 19 refined patterns, 0 flagged (1 recovered by a cell scan). (At a 13× weaker source, Rexp 1.3 %, the O3' b error reached
    1.1e-3 Å and the esds sat at the tolerances.)
    """
    simulate_operando(tmp_path, seed=2)
    out = tmp_path / "res"
    assert main(["operando", str(tmp_path / "series"), "--cycler", str(tmp_path / "cycler.csv"),
                 "--out", str(out)]) == 0
    got, truth = _rows(out / "timeseries.csv"), _rows(tmp_path / "truth.csv")
    assert len(got) == len(truth) == 33
    # the outputs a user reads: columns, operando.h5 with units, the Fig. 2 panels, no CIFs unasked
    for col in ("time_h", "voltage_V", "capacity_mAh", "rwp", "frac_O3p", "frac_O3p_esd", "d_inter_O3p",
                "d_intra_O3p_esd", "DoO", "DoO_esd", "DoD_esd", "O_vacancy_esd", "O3p_a"):
        assert col in got[0]
    assert (out / "index.html").exists() and not (out / "cif").exists()
    for f in ("fig2a_contour.png", "fig2b_fractions.png", "fig2c_spacings.png", "fig2d_descriptors.png"):
        assert (out / f).stat().st_size > 5000
    import xarray as xr

    with xr.open_dataset(out / "operando.h5", engine="h5netcdf") as ds:
        assert ds["d_inter_O3p"].attrs["units"] == "Å" and ds.sizes["pattern"] == 33
        np.testing.assert_allclose(ds["DoO"].values, [float(g["DoO"]) for g in got], rtol=1e-7)
    n_refined = 0
    for g, t in zip(got, truth):
        # a row whose first fit failed the checks and whose refit from a cell scan passed them is
        # converged (its flag says "recovered by a cell scan"); anything else flagged fails
        assert g["converged"] == "True", (g["pattern"], g["flag"])
        assert not g["flag"] or g["flag"].startswith("recovered by a cell scan"), (g["pattern"], g["flag"])
        err = {k: abs(float(g[k]) - float(t[k])) for k in t if k in g and k not in ("time_h",)}
        assert max(err[f"frac_{p}"] for p in ("O3p", "O3", "S")) < 0.02, (g["pattern"], err)
        assert float(g["frac_S"]) > 0.015, g["pattern"]
        if float(t["frac_O3p"]) >= 0.2:
            assert max(err[f"O3p_{c}"] for c in "abc") < 5e-4, (g["pattern"], err)
        if float(t["frac_O3"]) >= 0.2:
            assert max(err[f"O3_{c}"] for c in "ac") < 5e-4, (g["pattern"], err)
        if not g["held"]:
            n_refined += 1
            assert err["DoO"] < 0.05 and err["DoD"] < 0.003, (g["pattern"], err)
    assert n_refined >= 15
    # the held stretch (O3' < 30 %) is bridged: its DoO/DoD follow the refined values on either
    # side, interpolated in time (DoO exactly: its denominator is the conserved slab Li; DoD to
    # 2 % of the step), and DoO is closer to the truth than the value carried forward
    held = [k for k, g in enumerate(got) if g["held"]]
    assert held and all("interpolated in time" in got[k]["held"] for k in held)
    assert capsys.readouterr().err.count("bridged hold: ") == len(held)   # the progress report
    a, b = held[0] - 1, held[-1] + 1
    carried = float(got[a]["DoO"])
    for k in held:
        w = (float(got[k]["time_h"]) - float(got[a]["time_h"])) / (float(got[b]["time_h"]) - float(got[a]["time_h"]))
        for q in ("DoO", "DoD"):
            expect = float(got[a][q]) + w * (float(got[b][q]) - float(got[a][q]))
            span = abs(float(got[b][q]) - float(got[a][q]))
            assert float(got[k][q]) == pytest.approx(expect, abs=0.02 * span + 1e-5), (got[k]["pattern"], q)
    assert (np.mean([abs(float(got[k]["DoO"]) - float(truth[k]["DoO"])) for k in held])
            < np.mean([abs(carried - float(truth[k]["DoO"])) for k in held]))
    # interrupted inside the bridging pass (its last two entries lost), a rerun redoes just those
    # and writes the same table
    ck = out / "checkpoint.json"
    doc = json.loads(ck.read_text())
    bridged = [k for k, r in enumerate(doc["records"]) if r["name"].endswith(BRIDGED)]
    assert len(bridged) == len(held)
    doc["records"] = doc["records"][:bridged[-2]]
    ck.write_text(json.dumps(doc))
    before = (out / "timeseries.csv").read_text()
    assert main(["operando", str(tmp_path / "series"), "--cycler", str(tmp_path / "cycler.csv"),
                 "--out", str(out)]) == 0
    assert (out / "timeseries.csv").read_text() == before


def test_collapse_and_trust_region_are_flagged():
    """A well-determined phase losing > 3/4 of its fraction in one pattern, or a cell running
    to the per-pattern trust limit (which scales with the time between patterns), is flagged."""
    from types import SimpleNamespace

    from layerscope.crystal.presets import preset
    from layerscope.diffraction.instrument import gppd_like
    from layerscope.diffraction.pattern import build_model, initial_params
    from layerscope.refine.parameters import default_bounds, make_layout
    from layerscope.operando.guards import _implausible, _trust_bounds
    from layerscope.operando.observables import _lrm_fractions
    from layerscope.operando.protocol import default_series_protocol

    proto = default_series_protocol()
    m = preset("lrm-pouch")
    model = build_model(list(m.phases), np.geomspace(8000, 50000, 200), gppd_like(), n_background=2)
    layout = make_layout(model)
    prev = np.array(layout.flatten(initial_params(model, scales={"O3p": 1.0, "S": 0.03, "O3": 0.0})))
    fr0 = _lrm_fractions(prev, layout, model, proto)
    row = {f"frac_{p}": f for p, f in fr0.items()} | {f"frac_{p}_esd": 0.003 for p in fr0}
    fit = SimpleNamespace(diverged=False, stats=SimpleNamespace(rwp=3.0, gof=1.0))
    assert _implausible(prev, fit, 1.0, prev, layout, model, proto, row) == ""
    # a jump is judged on GoF, which does not depend on the counting time: after the 60-min
    # reference (Rwp √2 lower) a 30-min pattern's Rwp rises by √2 with an unchanged GoF
    half_time = SimpleNamespace(diverged=False, stats=SimpleNamespace(rwp=3.0 * 2**0.5, gof=1.05))
    assert _implausible(prev, half_time, 1.0, prev, layout, model, proto, row) == ""
    worse = SimpleNamespace(diverged=False, stats=SimpleNamespace(rwp=3.0, gof=1.4))
    assert "GoF rose from 1.00 to 1.40" in _implausible(prev, worse, 1.0, prev, layout, model, proto, row)
    now = prev.copy()
    now[layout.index("S.scale")] *= 0.2
    assert "S fraction collapsed" in _implausible(now, fit, 1.0, prev, layout, model, proto, row)
    # an unresolved phase (esd comparable to its fraction) may vanish without a flag
    row_weak = row | {"frac_S_esd": 0.01}
    assert "collapsed" not in _implausible(now, fit, 1.0, prev, layout, model, proto, row_weak)
    # trust region: ± 0.5 % per 30 min, 2 % for patterns 2 h apart
    i = layout.index("O3p.c")
    lo, hi = _trust_bounds(default_bounds(layout), prev, layout, model, proto, proto.cell_limit(2.0))
    assert hi[i] == pytest.approx(prev[i] * 1.02) and lo[i] == pytest.approx(prev[i] * 0.98)
    assert proto.cell_limit(0.5) == proto.cell_limit(None) == 0.005
    now = prev.copy()
    now[i] *= 1.005
    assert "O3p cell moved by 0.50 %" in _implausible(now, fit, 1.0, prev, layout, model, proto, row)
    assert "O3p cell" not in _implausible(now, fit, 1.0, prev, layout, model, proto, row, 0.02)
