"""Several detector banks per time step: the banks of one time step are refined together
(layerscope.refine.banks; shared structures, cells and phase fractions, each bank its own
instrument, background and histogram scale) by the sequential loop.

The simulated series: the 100-cycle LRM (O3 + spinel, table S3's structures) measured on two
banks that differ in everything a bank can — 2θ 90° and 150° (difC 11 260 and 15 381 µs/Å), TOF
range, resolution, zero, histogram scale (1 and 0.45) and background — at four time steps
0.5 h apart while the O3 fraction falls from 72 to 60 % and the cells drift (O3 a −0.1 %/step,
c +0.1 %/step, spinel a −0.05 %/step). Poisson noise, seeded.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from layerscope.crystal.presets import preset
from layerscope.diffraction.fractions import scales_from_weight_fractions
from layerscope.diffraction.instrument import gppd_like
from layerscope.diffraction.pattern import build_model, initial_params, make_pattern_function
from layerscope.operando.protocol import _parse_protocol
from layerscope.refine.banks import BankEvaluator, bank_count, expand_bank_keys
from layerscope.refine.parameters import default_bounds

PROTOCOL = """
[series]
n_background = 4
min_fraction = 0.02
lrm_phases = ["O3", "S"]
anode_phases = []
[reference.refine]
max_cycles = 20
[[reference.stage]]
name = "scales + background"
free = ["background", "O3.scale", "S.scale"]
[[reference.stage]]
name = "cells"
free = ["O3.cell", "S.cell"]
[series.refine]
max_cycles = 20
[[series.stage]]
name = "scales + background + cells"
free = ["background", "O3.scale", "S.scale", "O3.cell", "S.cell"]
"""


def _banks():
    b90 = gppd_like()
    difc = 252.777 * 31.5 * 2 * math.sin(math.radians(75.0))
    b150 = b90.replace(difc=round(difc, 3), two_theta=150.0, zero=3.0, sig1=90.0, sig0=2.0, alpha=0.12,
                       source="150-degree bank")
    return [b90, b150], [np.geomspace(6000.0, 54000.0, 1400), np.geomspace(8000.0, 60000.0, 1400)]


def _truth(k):
    """Phases (cells at time step k) and the O3 weight fraction."""
    o3, s = preset("lrm-100-cycles").phases
    a, c = 2.84 * (1 - 0.001 * k), 14.539 * (1 + 0.001 * k)
    sa = 8.173 * (1 - 0.0005 * k)
    w = 0.72 - 0.04 * k
    return [o3.with_cell((a, a, c, 90.0, 90.0, 120.0)), s.with_cell((sa, sa, sa, 90.0, 90.0, 90.0))], w


def _simulate(seed=7, n_steps=4):
    insts, tofs = _banks()
    rng = np.random.default_rng(seed)
    ref_phases = list(preset("lrm-100-cycles").phases)
    models = [build_model(ref_phases, t, inst, n_background=0) for t, inst in zip(tofs, insts)]
    fns = [make_pattern_function(m) for m in models]
    patterns, truth = [], []
    for k in range(n_steps):
        phases, w = _truth(k)
        sc = scales_from_weight_fractions([w, 1 - w], phases)
        ys, ss = [], []
        for b, (m, fn, t) in enumerate(zip(models, fns, tofs)):
            params = initial_params(m, scales={"O3": sc[0], "S": sc[1]})
            for pp, ph in zip(params["phases"], phases):
                pp["cell"] = np.asarray(ph.cell, dtype=float)
            bragg = np.asarray(fn(params)[1]).sum(axis=0)
            level = (1.0, 0.45)[b] * 3000.0 / bragg.mean()
            bkg = (400.0, 250.0)[b] * (1.0 + 0.4 * np.exp(-t / (15000.0, 25000.0)[b]))
            counts = rng.poisson(bragg * level + bkg).astype(float)
            ys.append(counts)
            ss.append(np.sqrt(np.maximum(counts, 1.0)))
        patterns.append((f"step{k}", list(tofs), ys, ss))
        truth.append({"frac_O3": w, "O3_a": phases[0].cell[0], "O3_c": phases[0].cell[2], "S_a": phases[1].cell[0]})
    return patterns, truth, insts, ref_phases


def test_bank_layout_names_keys_and_bounds():
    insts, tofs = _banks()
    phases = list(preset("lrm-100-cycles").phases)
    ev = BankEvaluator([build_model(phases, t, i, n_background=3) for t, i in zip(tofs, insts)], labels=[1, 5])
    lay = ev.layout
    assert bank_count(lay) == 2 and ev.labels == [1, 5]
    # bank 0 keeps the single-bank names; bank 1 adds only its own instrument/background/scale
    assert lay.names[:len(ev.layouts[0].names)] == ev.layouts[0].names
    extra = lay.names[len(ev.layouts[0].names):]
    assert "bank1.hscale" in extra and "bank1.bkg.2" in extra and "bank1.inst.difc" in extra
    assert not any(n.startswith("bank1.O3") or n.startswith("bank1.S") for n in extra)
    # the shared entries gather to the same place for both banks
    i = lay.index("O3.a")
    assert ev.gathers[0][ev.layouts[0].index("O3.a")] == i == ev.gathers[1][ev.layouts[1].index("O3.a")]
    assert ev.gathers[1][ev.layouts[1].index("hscale")] == lay.index("bank1.hscale")
    keys = expand_bank_keys(["background", "O3.cell", "S.scale", "inst.zero"], lay)
    assert keys[:4] == ["background", "O3.cell", "S.scale", "inst.zero"]
    assert set(keys[4:]) == {"bank1.bkg.*", "bank1.inst.zero", "bank1.hscale"}
    assert expand_bank_keys(["O3.cell"], lay) == ["O3.cell"]           # no scale freed: no bank scale
    assert expand_bank_keys(["background"], ev.layouts[0]) == ["background"]  # one bank: unchanged
    lo, _ = default_bounds(lay)
    assert lo[lay.index("bank1.hscale")] == 0.0 == lo[lay.index("hscale")]


def _write_series(folder, patterns, insts):
    """The simulated steps as a series folder in DESIGN.md's conventions: one FXYE file per bank and
    time step, series.csv with a bank column (the banks of a step share its counting window), one
    .instprm per bank, a cycler log and the protocol."""
    from layerscope.diffraction.instrument import write_instprm
    from layerscope.diffraction.readers import PowderData, write_gsas_fxye

    series = folder / "series"
    series.mkdir(parents=True)
    rows = ["file,start_s,end_s,bank"]
    for k, (name, tofs, ys, ss) in enumerate(patterns):
        for b, (t, y, s) in enumerate(zip(tofs, ys, ss), 1):
            f = f"{name}_b{b}.gsa"
            write_gsas_fxye(series / f, PowderData(x=t, y=y, sigma=s, kind="tof", bank=b, source=f, meta={}),
                            bank=b, title=f"two-bank test {name} bank {b}")
            rows.append(f"{f},{1800 * k},{1800 * (k + 1)},{b}")
    (series / "series.csv").write_text("\n".join(rows) + "\n")
    for b, inst in enumerate(insts, 1):
        write_instprm(inst, series / f"sim_bank{b}.instprm")
    t = np.arange(0, 1800 * len(patterns) + 1, 60.0)
    (folder / "cycler.csv").write_text("time_s,voltage_V,current_mA,capacity_mAh\n" + "\n".join(
        f"{v:g},{3.0 + v / 1e5:.5f},1.0,{v / 3600:.5f}" for v in t) + "\n")
    (folder / "protocol.toml").write_text(PROTOCOL)
    return series


def test_manifest_banks_group_into_time_steps(tmp_path):
    from layerscope._errors import InputError
    from layerscope.operando.series import group_time_steps, read_manifest

    for f in ("a1", "a2", "b1", "b2", "c1"):
        (tmp_path / f).write_text("")
    (tmp_path / "series.csv").write_text("file,start_s,end_s,bank\na2,0,10,2\na1,0,10,1\nb1,10,20,1\nb2,10,20,2\n")
    steps = group_time_steps(read_manifest(tmp_path))
    assert [[e.file.name for e in st] for st in steps] == [["a1", "a2"], ["b1", "b2"]]
    (tmp_path / "series.csv").write_text("file,start_s,end_s,bank\na1,0,10,1\na2,0,10,2\nc1,10,20,1\n")
    with pytest.raises(InputError, match=r"has banks \[1\], the first time step \[1, 2\]"):
        group_time_steps(read_manifest(tmp_path))
    (tmp_path / "series.csv").write_text("file,start_s,end_s,bank\na1,0,10,1\na2,0,10,\n")
    with pytest.raises(InputError, match="a2 shares its counting window"):
        group_time_steps(read_manifest(tmp_path))
    (tmp_path / "series.csv").write_text("file,start_s,end_s\na1,0,10\nb1,10,20\n")
    assert [len(st) for st in group_time_steps(read_manifest(tmp_path))] == [1, 1]   # one bank: as before


@pytest.mark.slow
def test_two_banks_per_time_step_refined_jointly(tmp_path):
    """Through ``ls.refine_series`` on a series folder with two banks per time step: cells and the
    O3 fraction within 4 esd of the truth at every time step (and within 2e-4 Å, 0.5 %: measured
    ≤ 7e-5 Å, 0.04 %), one row per time step with each bank's Rwp, and the joint esds smaller
    than either bank's alone — the inverse-variance combination of the two
    (1/σ² = 1/σ₁² + 1/σ₂²) within 15 % (measured: O3 a 4.2e-6 Å joint, 6.2e-6 and 5.6e-6 Å
    alone)."""
    import layerscope as ls
    from layerscope.operando.api import write_series
    from layerscope.operando.sequential import refine_series

    patterns, truth, insts, phases = _simulate()
    series = _write_series(tmp_path, patterns, insts)
    res = ls.refine_series(series, cycler=tmp_path / "cycler.csv", model="lrm-100-cycles",
                           strategy=tmp_path / "protocol.toml", derived={"O3_ca": "O3_c / O3_a",
                                                                         "O3_a2": "2 * O3_a - p(\"O3.a\")"})
    recs, layout = res.records, res.layout
    assert len(res.rows) == len(patterns) and sorted(res.bank_patterns) == [1, 2]
    assert res.instruments[2].difc == pytest.approx(insts[1].difc)
    for rec, tr in zip(recs, truth):
        r = rec.row
        assert r["converged"] and not r["flag"], (rec.name, r["flag"], r["stages"])
        assert {"rwp_bank1", "rwp_bank2"} <= set(r)
        assert 0 < r["rwp_bank1"] < 10 and 0 < r["rwp_bank2"] < 10
        assert r["gof"] < 1.3, (rec.name, r["gof"])
        for k, tol in (("O3_a", 2e-4), ("O3_c", 2e-4), ("S_a", 2e-4), ("frac_O3", 0.005)):
            err = abs(r[k] - tr[k])
            assert err < tol and err < 4 * r[f"{k}_esd"], (rec.name, k, r[k], tr[k], r[f"{k}_esd"])
        # GSAS-II's sequential-table extras: a derived quantity with its esd, the convergence columns
        assert r["O3_ca"] == pytest.approx(r["O3_c"] / r["O3_a"], rel=1e-12)
        assert r["O3_a2"] == pytest.approx(r["O3_a"], rel=1e-12)
        assert r["O3_a2_esd"] == pytest.approx(r["O3_a_esd"], rel=1e-9)
        assert abs(r["O3_ca"] - tr["O3_c"] / tr["O3_a"]) < 4 * r["O3_ca_esd"]
        assert np.isfinite(r["max_shift_esd"]) and abs(r["chi2_change"]) < 1e-3, (r["max_shift_esd"],
                                                                                   r["chi2_change"])
    assert "O3_ca = O3_c / O3_a" in res.provenance["derived"]
    # the second bank's own histogram scale was refined (0.45 of bank 1's counting level)
    h2 = recs[-1].full[layout.index("bank1.hscale")] / recs[-1].full[layout.index("hscale")]
    assert 0.3 < h2 < 0.6, h2
    ds = res.to_xarray()
    assert ds["rwp_bank2"].attrs["units"] == "%" and ds.sizes["pattern"] == len(patterns)
    assert ds["O3_ca"].attrs["units"] == "unspecified"      # no unit given: none inferred
    assert any("no unit given for O3_ca, O3_a2" in note for _, note in res.notes)
    # one CIF per time step (banks refined jointly): the O3 cell as the row gives it
    import gemmi

    from tests.test_operando_cif import printed_as

    cifs = res.write_cifs(tmp_path / "cif")
    assert len(cifs) == len(patterns)
    for path, rec in zip(cifs, recs):
        blk = gemmi.cif.read(str(path))[f"{path.stem}_O3"]
        assert printed_as(blk.find_value("_cell_length_a"), rec.row["O3_a"], rec.row["O3_a_esd"])
    # operando.h5 and the figures hold both banks; bank 2's calculated patterns equal an independent
    # evaluation at the refined values
    write_series(res, tmp_path / "out")
    check_bank_outputs(tmp_path / "out", patterns, phases, {b: series / f"sim_bank{b}.instprm" for b in (1, 2)},
                       [np.asarray(r.full) for r in recs])
    # each bank alone: the same series through the single-bank path
    times = [{"time_h": 0.25 + 0.5 * k} for k in range(len(patterns))]
    proto = _parse_protocol(PROTOCOL, "two-bank test protocol")
    alone = [refine_series([(n, t[b], y[b], s[b]) for n, t, y, s in patterns], phases, insts[b], protocol=proto,
                           times=times, start_fractions={"O3": 0.7202, "S": 0.2798})[0] for b in (0, 1)]
    assert "rwp_bank1" not in alone[0][0].row
    for k in ("O3_a", "O3_c", "S_a", "frac_O3"):
        for j, a1, a2 in zip(recs, alone[0], alone[1]):
            e, e1, e2 = j.row[f"{k}_esd"], a1.row[f"{k}_esd"], a2.row[f"{k}_esd"]
            assert e < 0.95 * min(e1, e2), (j.name, k, e, e1, e2)
            assert e == pytest.approx((e1 ** -2 + e2 ** -2) ** -0.5, rel=0.15), (j.name, k, e, e1, e2)


def check_bank_outputs(out, patterns, phases, files, fulls):
    """What ``write_series`` wrote for a two-bank series: ``operando.h5`` holds each bank's
    observed, calculated, background and difference patterns on its own grid (group ``bank<N>``)
    with the instrument file used for it; each bank's calculated pattern equals an independent
    evaluation — the bank's own single-bank pattern function (``make_pattern_function``) at the
    refined vector ``fulls[k]``, gathered here by the naming rule banks.py documents, not by the
    package's gather — to 1e-9 of its maximum (measured ≤ 2.2e-16); each bank's Rwp from the
    stored patterns is its ``rwp_bank<N>``; the figures have a panel per bank."""
    import h5py
    import xarray as xr
    from PIL import Image

    from layerscope.diffraction.instrument import read_instprm
    from layerscope.diffraction.pattern import make_pattern_function
    from layerscope.refine.parameters import make_layout

    n_steps, n_bkg = len(patterns), _parse_protocol(PROTOCOL, "test").n_background
    h5 = out / "operando.h5"
    with h5py.File(h5) as f:
        assert {"bank1", "bank2"} <= set(f) and f.attrs["bank_groups"] == "bank1, bank2"
        assert "y_obs" not in f                     # a several-bank file keeps its patterns in the groups
        for b in (1, 2):
            n = len(patterns[0][1][b - 1])
            for v in ("y_obs", "sigma_obs", "y_calc", "background", "diff"):
                assert f[f"bank{b}/{v}"].shape == (n_steps, n), (b, v)
            np.testing.assert_array_equal(f[f"bank{b}/tof"][:], patterns[0][1][b - 1])
            np.testing.assert_array_equal(f[f"bank{b}/y_obs"][-1], patterns[-1][2][b - 1])
    insts = {b: read_instprm(f) for b, f in files.items()}
    models = [build_model(list(phases), patterns[0][1][k], insts[k + 1], n_background=n_bkg) for k in (0, 1)]
    lay = [make_layout(m) for m in models]
    own = lambda n: n.startswith(("inst.", "bkg.")) or n in ("absorption", "hscale")   # noqa: E731
    idx = {n: i for i, n in enumerate(list(lay[0].names) + [f"bank1.{n}" for n in lay[1].names if own(n)])}
    assert len(idx) == len(fulls[0])
    root = xr.open_dataset(h5, engine="h5netcdf")
    for b in (1, 2):
        fn = make_pattern_function(models[b - 1])
        with xr.open_dataset(h5, group=f"bank{b}", engine="h5netcdf") as ds:
            assert ds.attrs["bank"] == b and ds.attrs["instrument"] == str(Path(files[b]).resolve())
            assert root.attrs[f"instrument_bank{b}"] == str(Path(files[b]).resolve())
            for k, full in enumerate(fulls):
                local = [full[idx[f"bank1.{n}" if b == 2 and own(n) else n]] for n in lay[b - 1].names]
                ref = np.asarray(fn(lay[b - 1].unflatten(np.asarray(local)))[0])
                yc, y, s = ds["y_calc"].values[k], ds["y_obs"].values[k], ds["sigma_obs"].values[k]
                assert np.max(np.abs(yc - ref)) < 1e-9 * np.max(ref), (b, k, np.max(np.abs(yc - ref)))
                np.testing.assert_allclose(ds["diff"].values[k], y - yc, rtol=0, atol=1e-9 * np.max(y))
                assert np.all(ds["background"].values[k] <= yc + 1e-9)
                rwp = 100 * np.sqrt(np.sum(((y - yc) / s) ** 2) / np.sum((y / s) ** 2))
                assert rwp == pytest.approx(float(root[f"rwp_bank{b}"].values[k]), rel=1e-6)
                assert rwp == pytest.approx(float(ds["rwp"].values[k]), rel=1e-6) and rwp < 5
    root.close()
    # fig_fits.png: a row of panels per bank (3.2 in at 110 dpi), a column per drawn step (first, last);
    # fig2a: a contour panel per bank beside the voltage (4 + 6 in per bank at 120 dpi)
    with Image.open(out / "fig_fits.png") as im:
        assert im.size == (2 * 6 * 110, round(2 * 3.2 * 110)), im.size
    with Image.open(out / "fig2a_contour.png") as im:
        assert im.size[0] == (4 + 6 * 2) * 120, im.size
    page = (out / "index.html").read_text()
    assert "fig_fits.png" in page and "banks 1, 2 refined together" in page and "<th>rwp_bank2</th>" in page
    assert str(Path(files[2]).resolve()) in page
