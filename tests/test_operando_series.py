"""End to end: an operando series folder written in exactly DESIGN.md's conventions (TOML model
with relative CIF paths, a 60-min reference from -3600 to 0 s before the cycler log), and a
simulated series whose cathode signal fades to noise (per-phase flags, figures)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from layerscope.cli import main
from layerscope.crystal import preset_phase
from layerscope.crystal.cif import write_cif
from layerscope.operando.outputs import drawn_as_measurement
from layerscope.simulate.operando import simulate_operando

N_POINTS = 3000   # the grid of tests/test_operando.py: one set of compiled kernels


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _write(path, rows, cols):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _keep(series, n):
    rows = _rows(series / "series.csv")
    for r in rows[n:]:
        (series / r["file"]).unlink()
    return rows[:n]


def _design_folder(root):
    """The simulated experiment rewritten in DESIGN.md's conventions: the cycler log starts when
    cycling starts (t = 0), the 60-min uncharged reference was counted before it (-3600..0 s);
    the phases come from a TOML model whose cathode phases are CIF files beside it."""
    sim = root / "sim"
    simulate_operando(sim, seed=1, n_points=N_POINTS)
    shift = 3600.0
    series = root / "beamtime" / "series"
    series.mkdir(parents=True)
    rows = _keep(sim / "series", 3)
    for r in rows:
        (sim / "series" / r["file"]).rename(series / r["file"])
        r["start_s"], r["end_s"] = float(r["start_s"]) - shift, float(r["end_s"]) - shift
    _write(series / "series.csv", rows, ["file", "start_s", "end_s"])
    (sim / "series" / "gppd_like.instprm").rename(series / "gppd_like.instprm")
    log = [r for r in _rows(sim / "cycler.csv") if float(r["time_s"]) >= shift]
    for r in log:
        r["time_s"] = float(r["time_s"]) - shift
    _write(root / "beamtime" / "cycler.csv", log, list(log[0]))
    truth = _rows(sim / "truth.csv")[:3]
    for r in truth:
        r["time_h"] = float(r["time_h"]) - shift / 3600
    model = root / "models"
    (model / "cif").mkdir(parents=True)
    for name in ("O3p", "O3"):
        write_cif(preset_phase(f"lrm-pouch:{name}"), model / "cif" / f"{name}.cif")
    (model / "pouch.toml").write_text(
        "# graphite || LRM pouch cell: the cathode phases from CIF files (relative to this file)\n"
        "[phases]\n"
        'O3p = "cif/O3p.cif"\nS = "lrm-pouch:S"\nO3 = "cif/O3.cif"\n'
        'Al = "Al"\nCu = "Cu"\ngraphite = "graphite"\nLiC12 = "LiC12"\nLiC6 = "LiC6"\n\n'
        "[fractions]   # the uncharged cathode (table S2)\nO3p = 0.9716\nS = 0.0284\n")
    return root / "beamtime", model / "pouch.toml", truth


def test_design_conventions_series_end_to_end(tmp_path, monkeypatch, capsys):
    beam, model, truth = _design_folder(tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)   # CIF paths are resolved against the model file, not here
    out = tmp_path / "res"
    # the built-in protocol with two derived quantities: the O3' cell volume with its unit, and a
    # ratio named like a cell length without one (recorded 'unspecified', not inferred as Å)
    from importlib import resources

    strategy = tmp_path / "strategy.toml"
    strategy.write_text(resources.files("layerscope.data").joinpath("operando_lrm.toml").read_text()
                        + '\n[[series.derived]]\nname = "O3p_V"\n'
                          'expr = "O3p_a * O3p_b * O3p_c * sin(deg2rad(O3p_beta))"\nunit = "Å^3"\n'
                          '[[series.derived]]\nname = "ratio_c"\nexpr = "O3p_c / O3p_a"\n')
    rc = main(["operando", str(beam / "series"), "--cycler", str(beam / "cycler.csv"), "--model", str(model),
               "--strategy", str(strategy), "--out", str(out), "--cif-per-pattern"])
    assert rc == 0
    err = capsys.readouterr().err
    assert err.count("no unit given for ratio_c: recorded as 'unspecified'") == 1
    assert "PATTERN_000.gsa: recorded before the cycler log starts" in err
    got = _rows(out / "timeseries.csv")
    assert len(got) == 3
    ref = got[0]
    # the reference: refined, mid-time -0.5 h, no electrochemistry, the note says why
    assert float(ref["time_h"]) == pytest.approx(-0.5)
    assert math.isnan(float(ref["voltage_V"])) and math.isnan(float(ref["voltage_V_mid"]))
    assert "before the cycler log" in ref["note"]
    # the others: cycler values averaged over the exposure window (independent fine-grid mean
    # of the log), mid-time value beside it
    log = _rows(beam / "cycler.csv")
    t = np.array([float(r["time_s"]) for r in log])
    v = np.array([float(r["voltage_V"]) for r in log])
    man = _rows(beam / "series" / "series.csv")
    for g, m in zip(got[1:], man[1:]):
        tt = np.linspace(float(m["start_s"]), float(m["end_s"]), 20001)
        assert float(g["voltage_V"]) == pytest.approx(np.trapezoid(np.interp(tt, t, v), tt) / (tt[-1] - tt[0]),
                                                      abs=2e-4)
        assert float(g["voltage_V_mid"]) == pytest.approx(np.interp(tt.mean(), t, v), abs=1e-6)
        assert g["note"] == ""
    # accuracy against the truth (today's tolerances), every pattern refined and determined
    for g, tr in zip(got, truth):
        assert g["converged"] == "True", g["flag"]
        assert abs(float(g["time_h"]) - float(tr["time_h"])) < 1e-9
        for k in ("frac_O3p", "frac_S"):
            assert abs(float(g[k]) - float(tr[k])) < 0.02, k
        for k in ("O3p_a", "O3p_b", "O3p_c"):
            assert abs(float(g[k]) - float(tr[k])) < 5e-4, k
        assert abs(float(g["DoO"]) - float(tr["DoO"])) < 0.05
        assert abs(float(g["DoD"]) - float(tr["DoD"])) < 0.003
        assert g["determined_O3p"] == "True" and g["determined_S"] == "True", g["undetermined"]
        assert g["determined_O3"] == "False"          # no O3 yet: its fraction is not a measurement
        assert "cycles)" in g["stages"] and any(r in g["stages"] for r in ("shift/esd", "chi2 change"))
    _check_cifs(out, got, man)
    import xarray as xr

    with xr.open_dataset(out / "operando.h5", engine="h5netcdf") as ds:
        assert str(model.resolve()) in ds.attrs["model"]
        assert "Bragg signal" in ds.attrs["determined_if"] and "chi2" in ds.attrs["convergence"]
        assert "before the cycler log" in str(ds["note"].values[0])
        assert ds["O3p_V"].attrs["units"] == ds["O3p_V_esd"].attrs["units"] == "Å^3"
        assert ds["ratio_c"].attrs["units"] == ds["ratio_c_esd"].attrs["units"] == "unspecified"
        assert "O3p_V = O3p_a * O3p_b * O3p_c * sin(deg2rad(O3p_beta)) [Å^3]" in ds.attrs["derived"]


def _check_cifs(out, got, man):
    """--cif-per-pattern: one CIF per pattern whose cells, fractions and esds are the run's
    timeseries.csv columns to their printed precision (read with gemmi); the phases a pattern did not
    determine (O3, not yet formed, and the anode's LiC12/LiC6) are left out of its file and named
    in its pattern block."""
    import gemmi

    from tests.test_operando_cif import parse_esd, printed_as

    files = sorted((out / "cif").iterdir())
    assert [f.name for f in files] == [m["file"].replace(".gsa", ".cif") for m in man]
    for f, g, m in zip(files, got, man):
        doc = gemmi.cif.read(str(f))
        pat = doc[0]
        assert gemmi.cif.as_string(pat.find_value("_layerscope_pattern_name")) == g["pattern"]
        assert float(pat.find_value("_layerscope_pattern_start_s")) == float(m["start_s"])
        assert float(pat.find_value("_layerscope_pattern_end_s")) == float(m["end_s"])
        assert float(pat.find_value("_pd_proc_ls_prof_wR_factor")) == pytest.approx(float(g["rwp"]) / 100, rel=1e-5)
        blocks = [b.name for b in doc]
        assert f"{f.stem}_O3p" in blocks and f"{f.stem}_S" in blocks and f"{f.stem}_O3" not in blocks
        undetermined = [k.removeprefix("determined_") for k, v in g.items() if k.startswith("determined_")
                        and v == "False"]
        assert "O3" in undetermined and "O3p" not in undetermined
        assert [gemmi.cif.as_string(r[0]) for r in pat.find("_layerscope_omitted_phase_", ["name"])] == undetermined
        o3p = doc[f"{f.stem}_O3p"]
        for c in ("a", "b", "c"):
            text = o3p.find_value(f"_cell_length_{c}")
            assert printed_as(text, float(g[f"O3p_{c}"]), float(g[f"O3p_{c}_esd"])), (c, text)
        # the cell volume's esd (central differences of V through the cell's covariance) against the
        # derived quantity O3p_V (autodiff of the formula through the full covariance)
        assert printed_as(o3p.find_value("_cell_volume"), float(g["O3p_V"]), float(g["O3p_V_esd"]))
        assert printed_as(o3p.find_value("_layerscope_phase_fraction"), float(g["frac_O3p"]),
                          float(g["frac_O3p_esd"]))
        ss = gemmi.make_small_structure_from_block(o3p)
        assert ss.cell.b == pytest.approx(float(g["O3p_b"]), abs=1e-4) and len(ss.sites) > 10
        occ = [parse_esd(r[0]) for r in o3p.find("_atom_site_", ["occupancy"])]
        assert all(0 <= v <= 1 for v, _ in occ)
        # occupancies carry esds where this pattern's final fit refined them — as DoO does (the
        # reference's last stage does not: DoO_esd is NaN there, and no occupancy has an esd)
        assert any(e is not None for _, e in occ) == math.isfinite(float(g["DoO_esd"])), g["pattern"]


@pytest.mark.slow
def test_cathode_signal_fading_to_noise_is_flagged_per_phase(tmp_path):
    """Reference and one pattern at full cathode signal, then the cathode's Bragg signal gone
    (the cell components stay): those patterns must say that O3', O3 and the spinel are not
    determined, and no figure may draw their values as measurements."""
    sim = tmp_path / "sim"
    from layerscope.simulate.operando import pattern_times

    n_all = len(pattern_times())
    simulate_operando(sim, seed=2, n_points=N_POINTS, cathode_signal=[1.0, 1.0, 0.0] + [0.0] * (n_all - 3))
    keep = _keep(sim / "series", 3)
    _write(sim / "series" / "series.csv", keep, list(keep[0]))
    out = tmp_path / "res"
    assert main(["operando", str(sim / "series"), "--cycler", str(sim / "cycler.csv"), "--out", str(out)]) == 0
    got = _rows(out / "timeseries.csv")
    for g in got[:2]:
        assert g["determined_O3p"] == "True" and g["determined_S"] == "True", g["undetermined"]
        assert float(g["signal_O3p"]) > 100
    faded = got[2]
    for p in ("O3p", "O3", "S"):
        assert faded[f"determined_{p}"] == "False"
        assert f"{p}: " in faded["undetermined"]
        assert float(faded[f"signal_{p}"]) < 5
    assert faded["determined_graphite"] == "True"   # the anode is still seen
    rows = [{k: (v if k.startswith(("determined_", "pattern", "flag", "note", "held", "undetermined", "stages"))
                 else float(v) if v not in ("", "True", "False") else v) for k, v in r.items()} for r in got]
    for key in ("frac_O3p", "frac_S", "O3p_a", "d_inter_O3p", "DoO", "DoD"):
        drawn = drawn_as_measurement(rows, key)
        assert not drawn[2], key
        assert drawn[1], key
    page = (out / "index.html").read_text()
    assert 'class="nd"' in page
