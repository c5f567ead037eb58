"""``layerscope.refine_joint``: two constant-wavelength histograms (Cu Kα X-ray Bragg–Brentano and a
1.9 Å neutron Debye–Scherrer pattern) of one Al phase, simulated with a = 4.0520 Å and Poisson noise,
refined jointly from the preset's 4.0495 Å by the default CW strategy through the notebook entry; a 2θ
pattern given a time-of-flight instrument is refused naming both files; a TOF bank + CW X-ray pair through
the command line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from layerscope._errors import InputError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

XRAY = ("#GSAS-II instrument parameter file\nType:PXC\nLam1:1.5405\nLam2:1.5443\nI(L2)/I(L1):0.5\nZero:0.0\n"
        "Polariz.:0.7\nAzimuth:0.0\nU:2.0\nV:-2.0\nW:5.0\nX:0.0\nY:0.0\nZ:0.0\nSH/L:0.002\n")
NEUTRON = ("#GSAS-II instrument parameter file\nType:PNC\nLam:1.909\nZero:0.0\nAzimuth:0.0\nU:150.0\nV:-300.0\n"
           "W:300.0\nX:0.0\nY:0.0\nZ:0.0\nSH/L:0.002\n")


def _simulate(tmp_path, name, inst_text, x, scale, seed):
    from layerscope.crystal.presets import preset_phase
    from layerscope.diffraction import cw_pattern as cw
    from layerscope.diffraction.cw_instrument import read_cw_instprm

    inst = tmp_path / f"{name}.instprm"
    inst.write_text(inst_text)
    true_phase = replace(preset_phase("Al"), cell=(4.052, 4.052, 4.052, 90.0, 90.0, 90.0))
    m = cw.build_cw_model([true_phase], x, read_cw_instprm(inst), n_background=2)
    p = cw.cw_initial_params(m, scale=scale, background=np.array([50.0, -5.0]))
    y = np.random.default_rng(seed).poisson(cw.cw_pattern(m, p)["total"]).astype(float)
    data = tmp_path / f"{name}.xye"
    np.savetxt(data, np.column_stack([x, y, np.sqrt(np.maximum(y, 1.0))]), header="2theta I esd")
    return data, inst


@pytest.mark.slow
def test_refine_joint_xray_neutron_recovers_cell(tmp_path):
    import layerscope as ls
    from layerscope.refine.cw_run import CWRun

    dx, ix = _simulate(tmp_path, "xray", XRAY, np.arange(30.0, 100.0, 0.02), 5.0, 3)
    dn, inn = _simulate(tmp_path, "neutron", NEUTRON, np.arange(20.0, 140.0, 0.05), 2000.0, 4)
    run = ls.refine_joint([dx, dn], instruments=[ix, inn], phases="Al", n_background=2)
    assert isinstance(run, CWRun)
    assert [h["radiation"] for h in run.histograms] == ["xray", "neutron"]
    a, esd = run.value("Al.a"), run.esd("Al.a")
    assert 0 < esd < 1e-3 and abs(a - 4.052) < 3 * esd, (a, esd)
    assert len(run.rwp_by_histogram) == 2 and run.rwp > 0
    for st in run.final_hist_stats:
        assert st.chi2 == pytest.approx(1.0, abs=0.2)
    assert run.phases[0].cell[0] == pytest.approx(a)


@pytest.mark.skipif(not (DATA / "gsas2-reference" / "instrument" / "POWGEN_2665.instprm").is_file(),
                    reason="shared instrument files absent")
def test_refine_joint_refuses_tof_instrument_naming_files(tmp_path):
    import layerscope as ls

    tof = DATA / "gsas2-reference" / "instrument" / "POWGEN_2665.instprm"
    dx, ix = tmp_path / "p.xye", tmp_path / "x.instprm"
    ix.write_text(XRAY)
    dx.write_text("# 2theta I esd\n" + "\n".join(f"{30 + 0.02 * i:.2f} 100 10" for i in range(1000)) + "\n")
    with pytest.raises(InputError, match=r"p.xye is constant-wavelength .* its instrument .*POWGEN_2665.instprm is "
                                         r"time-of-flight"):
        ls.refine_joint([dx, dx], instruments=[ix, tof], phases="Al")


@pytest.mark.extended
@pytest.mark.skipif(not (DATA / "gsas2-reference" / "instrument" / "POWGEN_2665.instprm").is_file(),
                    reason="shared instrument files absent")
def test_cli_joint_tof_bank_and_cw_xray(tmp_path, capsys):
    """A POWGEN TOF bank (POWGEN_2665.instprm, GSAS-II's conventions: 1 µm / 1000 µstrain start,
    GSAS-II Lorentzian and lengths) and a Cu Kα X-ray pattern of Al (a = 4.0520 Å, Poisson noise),
    refined jointly by ``layerscope refine TOF CW --instprm I_TOF I_CW`` with the default joint
    strategy from the preset's 4.0495 Å: a within 3 esd, χ²ν of each histogram near 1, per-histogram
    Rwp in summary.json and one fit CSV per histogram (~90 s of CPU: extended)."""
    import json

    from layerscope.cli import main
    from layerscope.crystal.presets import preset_phase
    from layerscope.diffraction.instrument import read_instprm
    from layerscope.diffraction.pattern import _pattern, build_model, initial_params

    tof_inst = DATA / "gsas2-reference" / "instrument" / "POWGEN_2665.instprm"
    true_phase = replace(preset_phase("Al"), cell=(4.052, 4.052, 4.052, 90.0, 90.0, 90.0))
    tof = np.linspace(15000.0, 55000.0, 1600)
    inst = read_instprm(tof_inst)
    brd = {"Al": 1000.0}
    size = {"Al": 1.0}
    d_min = float(inst.d_from_tof(tof[0]))
    m = build_model([true_phase], tof, inst, n_background=2, lorentz=True, mustrain=brd, size_um=size, d_min=d_min,
                    lorentz_convention="gsas2", scattering="gsas2")
    p = initial_params(m, scales={"Al": 2000.0}, background=np.array([300.0, -30.0]), mustrain=brd, size_um=size)
    y = np.random.default_rng(7).poisson(np.asarray(_pattern(m, p)[0])).astype(float)
    dt = tmp_path / "bank.xye"
    np.savetxt(dt, np.column_stack([tof, y, np.sqrt(np.maximum(y, 1.0))]), header="tof I esd")
    dx, ix = _simulate(tmp_path, "xray", XRAY, np.arange(30.0, 100.0, 0.02), 5.0, 3)
    out = tmp_path / "out"
    rc = main(["refine", str(dt), str(dx), "--instprm", str(tof_inst), str(ix), "--phase", "Al", "--nbkg", "2",
               "--out", str(out)])
    log = capsys.readouterr().out
    assert rc == 0, log
    s = json.loads((out / "summary.json").read_text())
    assert [h["kind"] for h in s["histograms"]] == ["tof", "cw"]
    a = s["phases"]["Al.a"]
    assert 0 < a["esd"] < 1e-3 and abs(a["value"] - 4.052) < 3 * a["esd"], a
    for h in s["histograms"]:
        assert h["chi2"] == pytest.approx(1.0, abs=0.2), h
        assert h["rwp"] > 0
    assert (out / "fit_hist0.csv").is_file() and (out / "fit_hist1.csv").is_file()
    assert "hist0" in log and "hist1" in log
