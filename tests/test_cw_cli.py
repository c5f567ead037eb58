"""``layerscope refine`` on constant-wavelength data: routing, mismatch errors, CW strategy files, and the
PbSO4 joint X-ray + neutron refinement from the command line against GSAS-II's staged Rwp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layerscope._errors import InputError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PBSO4 = DATA / "gsas2-pbso4"
REF = DATA / "gsas2-reference"
TOF_INST = REF / "instrument" / "POWGEN_2665.instprm"
TOF_DATA = DATA / "powgen-nac" / "PG3_22048.gsa"
pytestmark = pytest.mark.skipif(not (PBSO4 / "PBSO4.XRA").is_file() or not TOF_INST.is_file(),
                                reason="shared PbSO4 / GSAS-II reference data absent")


def _cli(args, capsys):
    from layerscope.cli import main

    rc = main(["refine", *map(str, args)])
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def test_cw_data_with_tof_instrument_names_both_files(tmp_path, capsys):
    rc, msg = _cli([PBSO4 / "PBSO4.XRA", "--instprm", TOF_INST, "--phase", PBSO4 / "PbSO4-Wyckoff.cif",
                    "--out", tmp_path], capsys)
    assert rc == 2
    assert "PBSO4.XRA" in msg and "POWGEN_2665.instprm" in msg and "time-of-flight" in msg


@pytest.mark.skipif(not TOF_DATA.is_file(), reason="powgen-nac data absent")
def test_tof_data_with_cw_instrument_names_both_files(tmp_path, capsys):
    rc, msg = _cli([TOF_DATA, "--instprm", PBSO4 / "INST_XRY.PRM", "--phase", PBSO4 / "PbSO4-Wyckoff.cif",
                    "--out", tmp_path], capsys)
    assert rc == 2
    assert "PG3_22048.gsa" in msg and "INST_XRY.PRM" in msg and "constant-wavelength" in msg


@pytest.mark.skipif(not TOF_DATA.is_file(), reason="powgen-nac data absent")
def test_mixed_and_multi_tof_histograms_route_to_the_joint_refinement():
    from layerscope.refine.cw_run import route

    assert route([PBSO4 / "PBSO4.XRA", TOF_DATA], [PBSO4 / "INST_XRY.PRM", TOF_INST]) == "joint"
    assert route([TOF_DATA, TOF_DATA], [TOF_INST, TOF_INST]) == "joint"
    with pytest.raises(InputError, match=r"2 pattern\(s\) .* 1 instrument file"):
        route([PBSO4 / "PBSO4.XRA", PBSO4 / "PBSO4.CWN"], [PBSO4 / "INST_XRY.PRM"])
    assert route([TOF_DATA], [TOF_INST]) == "tof"
    assert route([PBSO4 / "PBSO4.XRA", PBSO4 / "PBSO4.CWN"], [PBSO4 / "INST_XRY.PRM", PBSO4 / "inst_d1a.prm"]) == "cw"


GSAS2_PROTOCOL = """
[refine]
max_cycles = 3
schedule = "gsas2"
texture_order = 2

[[stage]]
name = "scale + background"
free = ["hist0.scale", "hist0.background", "hist1.scale", "hist1.background"]

[[stage]]
name = "cell, neutron hydrostatic strain"
free = ["PbSO4.cell", "PbSO4@hist1.hstrain"]

[[stage]]
name = "microstrain, shift, displacement, atoms"
free = ["PbSO4@hist0.mustrain", "hist0.shift", "hist1.displace", "PbSO4.xyz", "PbSO4.biso"]

[[stage]]
name = "texture"
free = ["PbSO4@hist0.texture"]
"""


def test_cw_strategy_file_parses_and_names_are_checked(tmp_path):
    from layerscope.refine.cw_run import _read_strategy_doc, _texture_in, check_cw_names, expand_cw_free

    f = tmp_path / "cw.toml"
    f.write_text(GSAS2_PROTOCOL)
    strat, order = _read_strategy_doc(f)
    assert order == 2 and strat.max_cycles == 3 and strat.schedule == "gsas2"
    assert [s.free for s in strat.stages][3] == ("PbSO4@hist0.texture",)
    for st in strat.stages:
        check_cw_names(st.free, 2, ["PbSO4"], source=str(f), stage=st.name)
    assert _texture_in(strat, 2, ["PbSO4"], ["Bragg-Brentano", "Debye-Scherrer"]) == [0]
    assert expand_cw_free(["background", "PbSO4.mustrain", "PbSO4.texture"], 2, ["PbSO4"], [0]) == [
        "hist0.background", "hist1.background", "PbSO4@hist0.mustrain", "PbSO4@hist1.mustrain", "PbSO4@hist0.texture"]
    with pytest.raises(InputError, match=r"cw.toml, stage 'x': 'hist2.shift': there are 2 histogram"):
        check_cw_names(["hist2.shift"], 2, ["PbSO4"], source=str(f), stage="x")
    with pytest.raises(InputError, match=r"'PbSO4@hist0.tilt' is not a constant-wavelength parameter"):
        check_cw_names(["PbSO4@hist0.tilt"], 2, ["PbSO4"], source=str(f), stage="x")
    with pytest.raises(InputError, match=r"'NAC.cell' is not"):
        check_cw_names(["NAC.cell"], 2, ["PbSO4"], source=str(f), stage="x")
    bad = tmp_path / "bad.toml"
    bad.write_text(GSAS2_PROTOCOL.replace("texture_order = 2", "texture_order = 3"))
    with pytest.raises(InputError, match="texture_order must be an even integer"):
        _read_strategy_doc(bad)


def test_default_cw_strategy_order():
    from layerscope.refine.cw_run import default_cw_strategy

    s = default_cw_strategy(["P", "Q"], ["Bragg-Brentano", "Debye-Scherrer"])
    assert [st.name for st in s.stages] == ["scales + background", "cells", "profile + sample", "atoms"]
    assert s.revert_worse
    assert s.stages[0].free == ("hist0.scale", "hist0.background", "hist1.scale", "hist1.background",
                                "Q@hist0.scale", "Q@hist1.scale")
    assert s.stages[1].free == ("P.cell", "Q.cell", "P@hist1.hstrain", "Q@hist1.hstrain")
    assert "hist0.shift" in s.stages[2].free and "hist1.displace" in s.stages[2].free
    t = default_cw_strategy(["P"], ["Bragg-Brentano", "Debye-Scherrer"], texture_hists=[0])
    assert t.stages[-1].name == "texture" and t.stages[-1].free == ("P@hist0.texture",)


# GSAS-II tests/test_scriptref.py: (X-ray, neutron) weighted R of each histogram after each stage
GSAS2_RWP = [(45.811562, 17.864834), (32.475886, 15.02412), (13.40599, 6.36131), (13.16483, 6.38230)]
GSAS2_ANOMALOUS = ["Pb=-4.078031696124835,8.501347904309329", "S=0.33307621566352047,0.5566821954387322",
                   "O=0.04918649398704188,0.03223552702197687"]


@pytest.mark.slow
def test_cli_joint_pbso4_reproduces_gsas2_staged_rwp(tmp_path, capsys):
    """The command line on PBSO4.XRA + PBSO4.CWN with GSAS-II's protocol as a strategy file (3 cycles per stage,
    GSAS-II's cycle rules, its f′/f″ given with --anomalous, its scattering-length table and its .prm reading,
    both the defaults for .prm files). Measured (~3 min on 2 shared cores), X-ray / neutron Rwp %:

    stage                                        layerscope CLI        GSAS-II
    scale + background                           45.81295 / 17.86470   45.811562 / 17.864834
    + cell, neutron hydrostatic strain           32.48285 / 15.02423   32.475886 / 15.02412
    + mustrain, shift, DisplaceX/Y, x, Uiso      13.40458 / 6.37695    13.40599 / 6.36131
    + texture (order 2, X-ray)                   13.16439 / 6.38237    13.16483 / 6.38230

    Asserted: every stage within 0.05 % absolute (the issue's bound is 0.3 %), C(2,0), C(2,2) within 5 %."""
    f = tmp_path / "gsas2.toml"
    f.write_text(GSAS2_PROTOCOL)
    out = tmp_path / "out"
    args = [PBSO4 / "PBSO4.XRA", PBSO4 / "PBSO4.CWN", "--instprm", PBSO4 / "INST_XRY.PRM", PBSO4 / "inst_d1a.prm",
            "--phase", f"PbSO4={PBSO4 / 'PbSO4-Wyckoff.cif'}", "--limits", 16, 110, "--limits", 19, 120, "--nbkg", 6, 3,
            "--strategy", f, "--out", out]
    for a in GSAS2_ANOMALOUS:
        args += ["--anomalous", a]
    rc, log = _cli(args, capsys)
    print(log)
    assert rc in (0, 3), log
    s = json.loads((out / "summary.json").read_text())
    for key in ("rwp", "rp", "rexp", "chi2", "phases", "stages", "conventions", "warnings", "histograms"):
        assert key in s
    assert [h["radiation"] for h in s["histograms"]] == ["xray", "neutron"]
    assert s["conventions"]["instrument_readings"] == ["gsas2", "gsas2"]
    assert s["conventions"]["scattering"] == "gsas2"
    assert len(s["stages"]) == 4
    for st, (gx, gn) in zip(s["stages"], GSAS2_RWP):
        rx, rn = (h["rwp"] for h in st["histograms"])
        print(f"{st['name']}: {rx:.5f} / {rn:.5f} (GSAS-II {gx} / {gn})")
        assert abs(rx - gx) < 0.05 and abs(rn - gn) < 0.05
    for h, st in zip(s["histograms"], s["stages"][-1]["histograms"]):
        assert h["rwp"] == pytest.approx(st["rwp"]) and h["rexp"] > 0 and h["chi2"] > 0
    tex = s["histograms"][0]["refined"]
    print("C(2,0), C(2,2):", tex["PbSO4@hist0.C(2,0)"], tex["PbSO4@hist0.C(2,2)"], "(GSAS-II 0.127404, 0.09406)")
    assert tex["PbSO4@hist0.C(2,0)"]["value"] == pytest.approx(0.127404, rel=0.05)
    assert tex["PbSO4@hist0.C(2,2)"]["value"] == pytest.approx(0.09406, rel=0.05)
    cell = s["phases"]["PbSO4"]["cell"]
    assert all(cell[c]["esd"] and cell[c]["esd"] > 0 for c in "abc")
    assert (out / "PbSO4.cif").is_file() and (out / "fit.png").stat().st_size > 10000
    assert "hist1" in (out / "report.txt").read_text()


def test_cli_cw_synthetic_al_recovers_cell_and_writes_outputs(tmp_path, capsys):
    """Al (preset) simulated on a Cu Kα1/Kα2 Bragg–Brentano grid (GSAS-II .instprm written here, a = 4.0520 Å,
    scale 5, Poisson noise), refined by the default CW strategy from the preset's 4.0495 Å: the cell lands
    within 3 esd of the truth, χ²ν near 1, and every output is written."""
    from dataclasses import replace

    import numpy as np

    from layerscope.crystal.presets import preset_phase
    from layerscope.diffraction import cw_pattern as cw
    from layerscope.diffraction.cw_instrument import read_cw_instprm

    inst_file = tmp_path / "cu.instprm"
    inst_file.write_text("#GSAS-II instrument parameter file\nType:PXC\nLam1:1.5405\nLam2:1.5443\nI(L2)/I(L1):0.5\n"
                         "Zero:0.0\nPolariz.:0.7\nAzimuth:0.0\nU:2.0\nV:-2.0\nW:5.0\nX:0.0\nY:0.0\nZ:0.0\nSH/L:0.002\n")
    al = preset_phase("Al")
    true_phase = replace(al, cell=(4.052, 4.052, 4.052, 90.0, 90.0, 90.0))
    x = np.arange(30.0, 100.0, 0.02)
    m = cw.build_cw_model([true_phase], x, read_cw_instprm(inst_file), n_background=2)
    p = cw.cw_initial_params(m, scale=5.0, background=np.array([50.0, -5.0]))
    y_true = cw.cw_pattern(m, p)["total"]
    rng = np.random.default_rng(3)
    y = rng.poisson(y_true).astype(float)
    data = tmp_path / "al.xye"
    np.savetxt(data, np.column_stack([x, y, np.sqrt(np.maximum(y, 1.0))]), header="2theta I esd")
    out = tmp_path / "out"
    rc, log = _cli([data, "--instprm", inst_file, "--phase", "Al", "--nbkg", 2, "--out", out], capsys)
    assert rc == 0, log
    s = json.loads((out / "summary.json").read_text())
    a = s["phases"]["Al"]["cell"]["a"]
    assert abs(a["value"] - 4.052) < 3 * a["esd"], a
    assert s["chi2"] == pytest.approx(1.0, abs=0.15)
    assert s["histograms"][0]["radiation"] == "xray" and s["histograms"][0]["rwp"] == pytest.approx(s["rwp"])
    for f in ("Al.cif", "report.txt", "fit.png", "fit_hist0.csv"):
        assert (out / f).is_file(), f


@pytest.mark.slow
def test_cli_cw_march_dollase_and_surface_roughness(tmp_path, capsys):
    """Al simulated on Cu Kα Bragg–Brentano with March–Dollase ratio 0.85 along [111] and Suortti
    surface roughness (A 0.4, B 0.3 fixed at truth: they correlate with the Debye–Waller factor): the
    CLI with --march-dollase Al=1,1,1 and a strategy freeing Al@hist0.md recovers the ratio within 3 esd;
    asking for cylinder absorption on this Bragg–Brentano histogram, or md without an axis, is an
    InputError naming the strategy file."""
    import numpy as np

    from layerscope.crystal.presets import preset_phase
    from layerscope.diffraction import cw_pattern as cw
    from layerscope.diffraction.cw_instrument import read_cw_instprm

    inst_file = tmp_path / "cu.instprm"
    inst_file.write_text("#GSAS-II instrument parameter file\nType:PXC\nLam1:1.5405\nLam2:1.5443\nI(L2)/I(L1):0.5\n"
                         "Zero:0.0\nPolariz.:0.7\nAzimuth:0.0\nU:2.0\nV:-2.0\nW:5.0\nX:0.0\nY:0.0\nZ:0.0\nSH/L:0.002\n")
    al = preset_phase("Al")
    x = np.arange(30.0, 140.0, 0.02)
    m = cw.build_cw_model([al], x, read_cw_instprm(inst_file), n_background=2, march_dollase=(1, 1, 1))
    p = cw.cw_initial_params(m, scale=20.0, background=np.array([50.0, -5.0]))
    p["phases"]["Al"]["md"] = 0.85
    p["hist"]["surf_rough_a"], p["hist"]["surf_rough_b"] = 0.4, 0.3
    y_true = cw.cw_pattern(m, p)["total"]
    y = np.random.default_rng(5).poisson(y_true).astype(float)
    data = tmp_path / "al.xye"
    np.savetxt(data, np.column_stack([x, y, np.sqrt(np.maximum(y, 1.0))]), header="2theta I esd")
    strat = tmp_path / "md.toml"
    strat.write_text('[[stage]]\nname = "scale"\nfree = ["hist0.scale", "hist0.background"]\n'
                     '[stage.start]\n"hist0.surf_rough_a" = 0.4\n"hist0.surf_rough_b" = 0.3\n\n'
                     '[[stage]]\nname = "cell, md"\nfree = ["Al.cell", "Al@hist0.md"]\n')
    out = tmp_path / "out"
    rc, log = _cli([data, "--instprm", inst_file, "--phase", "Al", "--nbkg", 2, "--strategy", strat,
                    "--march-dollase", "Al=1,1,1", "--out", out], capsys)
    assert rc == 0, log
    s = json.loads((out / "summary.json").read_text())
    md = s["histograms"][0]["refined"]["Al@hist0.md"]
    assert abs(md["value"] - 0.85) < 3 * md["esd"], md
    rc, log = _cli([data, "--instprm", inst_file, "--phase", "Al", "--strategy", strat, "--out", tmp_path / "o2"],
                   capsys)
    assert rc == 2 and "md.toml" in log and "--march-dollase" in log, log
    strat.write_text('[[stage]]\nname = "abs"\nfree = ["hist0.scale", "hist0.absorption"]\n')
    rc, log = _cli([data, "--instprm", inst_file, "--phase", "Al", "--strategy", strat, "--out", tmp_path / "o3"],
                   capsys)
    assert rc == 2 and "md.toml" in log and "Debye-Scherrer" in log, log
