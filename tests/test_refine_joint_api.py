"""``layerscope.refine_joint``: two constant-wavelength histograms (Cu Kα X-ray Bragg–Brentano and a
1.9 Å neutron Debye–Scherrer pattern) of one Al phase, simulated with a = 4.0520 Å and Poisson noise,
refined jointly from the preset's 4.0495 Å by the default CW strategy through the notebook entry; and a
time-of-flight instrument among the files is refused naming the pattern and instrument files."""

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
    dx.write_text("# 2theta I esd\n" + "\n".join(f"{20 + 0.02 * i:.2f} 100 10" for i in range(50)) + "\n")
    with pytest.raises(InputError, match=r"p.xye with .*x.instprm \(CW\).*p.xye with .*POWGEN_2665.instprm \(TOF\)"):
        ls.refine_joint([dx, dx], instruments=[ix, tof], phases="Al")
