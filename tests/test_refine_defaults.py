"""The default refinement on data no one here shaped for it (issue 22).

* Synthetic: the table S1 O3' + spinel pattern simulated with GSAS-II's default sample
  broadening (1 µm, 1000·10⁻⁶, Lorentzian) in either TOF Lorentzian convention, with Poisson
  noise, written to files; refined with ``layerscope refine``'s default strategy from CIFs whose
  cells are 0.5 % off and with no broadening in the starting model. The cells must come back
  within 2 esd and χ²ν ≤ 1.1 (three seeds per convention, slow).
* Real: PG3_22048 (NAC + CaF2) with nothing but the files: Rwp ≤ 16.8 % (GSAS-II converged with
  microstrain: 16.77 %) and NAC a within 3e-4 Å of that converged run's (10.246966 Å; GSAS-II's
  10.247985 Å is its 2-cycle stop, see test_refine_nac.py), no instrument term refined, conventions
  recorded.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from layerscope.cli import main
from layerscope.crystal.cif import write_cif
from layerscope.crystal.presets import preset
from layerscope.diffraction.instrument import read_instprm, write_instprm
from layerscope.diffraction.pattern import build_model, compute_pattern
from layerscope.diffraction.readers import PowderData, write_gsas_fxye


def _simulate(tmp_path, shared_data, convention, seed, *, counts=60000.0):
    inst = read_instprm(shared_data / "powgen-nac" / "POWGEN_2665.instprm")
    tof = 15000.0 * np.exp(4e-4 * np.arange(4600))  # SLOG grid, 15 000 - 94 800 µs
    model = preset("lrm-pristine")
    phases = list(model.phases)
    broad = {"mustrain": {p.name: 1000.0 for p in phases}, "size_um": {p.name: 1.0 for p in phases}}
    pm = build_model(phases, tof, inst, n_background=3, lorentz=True, lorentz_convention=convention,
                     scattering="gsas2", **broad)
    scales = {p.name: model.fractions[p.name] * 2e5 * 1e4 / p.volume for p in phases}
    pat = compute_pattern(pm, scales=scales, background=np.array([30.0, 6.0, -2.0]), **broad)
    rng = np.random.default_rng(seed)
    k = counts / np.max(pat.total)
    n = rng.poisson(pat.total * k)
    y, s = n / k, np.sqrt(np.maximum(n, 1)) / k
    data = tmp_path / "sim.gsa"
    write_gsas_fxye(data, PowderData(x=tof, y=y, sigma=s, kind="tof", source="simulated"))
    write_instprm(inst, tmp_path / "inst.instprm")
    cifs = []
    for p, f in zip(phases, (1.005, 0.995)):
        a, b, c, al, be, ga = p.cell
        off = replace(p, cell=(a * f, b * f, c * f, al, be, ga))
        cifs.append(str(write_cif(off, tmp_path / f"{p.name}.cif")))
    return data, tmp_path / "inst.instprm", cifs, {p.name: p.cell for p in phases}


@pytest.mark.slow
@pytest.mark.parametrize("convention", ["exact", "gsas2"])
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.extended),
                                  pytest.param(2, marks=pytest.mark.extended)])
def test_default_refinement_recovers_cells_from_half_percent_off(tmp_path, shared_data, convention, seed):
    data, inst, cifs, truth = _simulate(tmp_path, shared_data, convention, seed)
    out = tmp_path / "out"
    rc = main(["refine", str(data), "--instprm", str(inst), *sum((["--phase", c] for c in cifs), []),
               "--out", str(out), "--no-plot", "--lorentz", convention, "--start-broadening", "none"])
    assert rc == 0
    summ = json.loads((out / "summary.json").read_text())
    assert summ["conventions"]["lorentz"] == convention and summ["conventions"]["start_broadening"] == "none"
    assert summ["chi2"] <= 1.1, summ["chi2"]
    for name, cell in truth.items():
        for i, c in enumerate(("a", "b", "c")):
            v = summ["phases"][name]["cell"][c]
            assert abs(v["value"] - cell[i]) <= 2 * v["esd"], (name, c, v, cell[i])
    assert [a["phase"] for a in summ["alignment"]] == ["O3p", "S"]


@pytest.mark.slow
def test_nac_with_nothing_but_the_files_reaches_gsas2(tmp_path, nac_dir):
    out = tmp_path / "nac"
    rc = main(["refine", str(nac_dir / "PG3_22048.gsa"), "--instprm", str(nac_dir / "POWGEN_2665.instprm"),
               "--phase", str(nac_dir / "NAC.cif"), "--phase", str(nac_dir / "CaF2.cif"), "--out", str(out),
               "--no-plot"])
    assert rc == 0
    summ = json.loads((out / "summary.json").read_text())
    # The reference is GSAS-II's run *converged* with microstrain (16.77 %): its job continued under its own
    # cycle rules lands at NAC a = 10.246966 Å (test_refine_nac.py::test_gsas2_job_continued_to_convergence_is_
    # the_16_77_percent_minimum). GSAS-II's 10.247985 Å is its 2-cycle stop at 17.20 %, 1.0e-3 Å short of that
    # minimum (its "+ cells" stop, 10.250171, is 3.7e-3 short of the converged 10.246427).
    # Measured, stage by stage (2 cores; gsas2 conventions from the .instprm, whole file 6 776-103 816 µs):
    # alignment ×0.99939 -> 10.245010; scales+background 16.42 % 10.245010; cells 15.97 % 10.246422;
    # microstrain 15.04 % 10.246936; size 14.20 % 10.246739 (0.17 µm, microstrain -> its bound, flagged);
    # atoms 14.17 % 10.246718(64) Å: 2.5e-4 from 10.246966. No stage after "cells" moves NAC a by more than
    # 5e-4 Å; fitting 11 000-100 000 µs instead, or skipping the alignment, leaves "cells" at 10.24643.
    # The exact TOF Lorentzian gives 10.247744 Å at 14.34 % (GSAS-II's convention moves broad peaks).
    assert summ["rwp"] <= 16.8
    assert abs(summ["phases"]["NAC"]["cell"]["a"]["value"] - 10.246966) < 3e-4
    conv = summ["conventions"]
    assert conv["lorentz"] == "gsas2" and conv["scattering"] == "gsas2" and "GSAS-II" in conv["origin"]
    # a sample measurement is not a calibration: no instrument term is refined by default
    assert not any(n.startswith("inst.") for s in summ["stages"] for n in s["free"])
    assert "conventions" in (out / "NAC.cif").read_text().split("_refine_special_details")[1][:400]
    assert "Rwp" in (out / "report.txt").read_text()


def test_cw_pattern_with_a_tof_instrument_names_both_files(tmp_path, nac_dir, capsys):
    cw = tmp_path / "cw.xye"
    two_theta = np.linspace(10, 120, 500)
    np.savetxt(cw, np.column_stack([two_theta, 100 + 0 * two_theta, 10 + 0 * two_theta]))
    rc = main(["refine", str(cw), "--instprm", str(nac_dir / "POWGEN_2665.instprm"), "--phase", "Al",
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "cw.xye" in err and "POWGEN_2665.instprm" in err and "time-of-flight" in err
    cwinst = tmp_path / "cw.instprm"
    cwinst.write_text("#GSAS-II instrument parameter file\nType:PXC\nLam:1.5406\nZero:0\nU:2\nV:-2\nW:5\n")
    data = tmp_path / "tof.gsa"
    write_gsas_fxye(data, PowderData(x=np.geomspace(10000, 20000, 200), y=np.ones(200), sigma=np.ones(200),
                                     kind="tof", source="t"))
    rc = main(["refine", str(data), "--instprm", str(cwinst), "--phase", "Al", "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert rc == 2 and "cw.instprm" in err and "tof.gsa" in err
