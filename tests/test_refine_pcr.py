"""FullProf .pcr input: a hand-written TOF control file (Job −1, Npr 9) refined end to end on a
pattern simulated from the same model with Poisson noise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layerscope.crystal import Phase, Site, preset_phase
from layerscope.diffraction.instrument import gppd_like
from layerscope.diffraction.pattern import build_model, compute_pattern
from layerscope.refine.pcr import pcr_code, read_pcr

# (Ni0.6Mn0.4)O rock salt + Al, a GPPD-like 90° bank. FullProf's Occ is in units of m/M:
# 4a in Fm-3m (order 192) is full at 4/192 = 0.0208333: Ni 0.6 -> 0.0125, Mn 0.4 -> 0.0083333.
# The start is off from the truth used for the simulation (cells, Ni/Mn ratio, O Biso, zero).
PCR = """COMM (Ni,Mn)O + Al, simulated GPPD-like 90 deg bank
! Current global Chi2 (Bragg contrib.) =      0.000
! Files => DAT-file: nmo_al.dat,  PCR-file: nmo_al
!Job Npr Nph Nba Nex Nsc Nor Dum Iwg Ilo Ias Res Ste Nre Cry Uni Cor Opt Aut
  -1   9   2   0   1   0   0   0   0   0   0   0   0   0   0   0   0   0   1
!
!Ipr Ppl Ioc Mat Pcr Ls1 Ls2 Ls3 NLI Prf Ins Rpa Sym Hkl Fou Sho Ana
   0   0   1   0   1   0   4   0   0   3  10   1   1   0   0   0   0
!
! Bkpos    Wdt    Iabscor (for TOF)
 30000.000  20.000  0
!NCY  Eps  R_at  R_an  R_pr  R_gl     Tof-min       <Step>      Tof-max
  15  0.10  1.00  1.00  1.00  1.00     16000.000     20.0000   60000.000
!  Excluded regions (LowT  HighT) for Pattern#  1
      59000.00    60000.00
!
      13    !Number of refined parameters
!
!  Zero    Code    Dtt1    Code    Dtt2    Code   Dtt_1overD Code  2ThetaBank
    2.5000  71.00  11259.2900  0.00  0.00000  0.00  0.00000  0.00  90.000
!   Background coefficients/codes  for Pattern#  1  (Polynomial of 6th degree)
   380.000   0.000   0.000   0.000   0.000   0.000
     81.00   91.00  101.00  111.00  121.00  131.00
!-------------------------------------------------------------------------------
!  Data for PHASE number:   1  ==> Current R_Bragg for Pattern#  1:     0.00
!-------------------------------------------------------------------------------
NMO
!
!Nat Dis Ang Jbt Isy Str Furth       ATZ    Nvk More
   3   0   0   0   0   0   0       0.000   0   0
!
F m -3 m                  <--Space group symbol
!Atom   Typ       X        Y        Z     Biso       Occ     In Fin N_t Spc /Codes
Ni1    NI       0.00000  0.00000  0.00000  0.5000   0.01146    0   0   0    0
                   0.00     0.00     0.00    0.00      51.00
Mn1    MN       0.00000  0.00000  0.00000  0.5000   0.00937    0   0   0    0
                   0.00     0.00     0.00    0.00     -51.00
O1     O        0.50000  0.50000  0.50000  0.9000   0.02083    0   0   0    0
                   0.00     0.00     0.00   61.00      0.00
!-------> Profile Parameters for Pattern #  1
!  Scale        Extinc      Bov        Str1      Str2      Str3   Strain-Model
  0.10000E-01   0.00000   0.00000   0.00000   0.00000   0.00000       0
     11.00000     0.000     0.000     0.000     0.000     0.000
!  Sigma-2     Sigma-1     Sigma-0     Sigma-Q     Iso-GStrain Iso-GSize   Ani-LSize    Size-Model
     1.000     183.000     4.000       0.000       0.000       0.000       0.000    0
     0.000       0.000     0.000       0.000       0.000       0.000       0.000
!  Gamma-2     Gamma-1     Gamma-0    Iso-LorStrain  Iso-LorSize
     0.000       0.000     0.000       0.000       0.000
     0.000       0.000     0.000       0.000       0.000
!     a          b         c        alpha      beta       gamma      #Cell Info
   4.162000   4.162000   4.162000  90.000000  90.000000  90.000000
   31.00000   31.00000   31.00000    0.00000    0.00000    0.00000
!  Pref1    Pref2    alph0       beta0       alph1       beta1       alphQ       betaQ
   0.00000  0.00000  0.000000    0.020000    0.100000    0.008000    0.000000    0.000000
      0.00     0.00      0.00        0.00        0.00        0.00        0.00        0.00
!-------------------------------------------------------------------------------
!  Data for PHASE number:   2  ==> Current R_Bragg for Pattern#  1:     0.00
!-------------------------------------------------------------------------------
Al
!
!Nat Dis Ang Jbt Isy Str Furth       ATZ    Nvk More
   1   0   0   0   0   0   0       0.000   0   0
!
F m -3 m                  <--Space group symbol
!Atom   Typ       X        Y        Z     Biso       Occ     In Fin N_t Spc /Codes
Al     AL       0.00000  0.00000  0.00000  0.8000   0.02083    0   0   0    0
                   0.00     0.00     0.00    0.00      0.00
!-------> Profile Parameters for Pattern #  1
!  Scale        Extinc      Bov        Str1      Str2      Str3   Strain-Model
  0.50000E-02   0.00000   0.00000   0.00000   0.00000   0.00000       0
     21.00000     0.000     0.000     0.000     0.000     0.000
!  Sigma-2     Sigma-1     Sigma-0     Sigma-Q     Iso-GStrain Iso-GSize   Ani-LSize    Size-Model
     1.000     183.000     4.000       0.000       0.000       0.000       0.000    0
     0.000       0.000     0.000       0.000       0.000       0.000       0.000
!  Gamma-2     Gamma-1     Gamma-0    Iso-LorStrain  Iso-LorSize
     0.000       0.000     0.000       0.000       0.000
     0.000       0.000     0.000       0.000       0.000
!     a          b         c        alpha      beta       gamma      #Cell Info
   4.047000   4.047000   4.047000  90.000000  90.000000  90.000000
   41.00000   41.00000   41.00000    0.00000    0.00000    0.00000
!  Pref1    Pref2    alph0       beta0       alph1       beta1       alphQ       betaQ
   0.00000  0.00000  0.000000    0.020000    0.100000    0.008000    0.000000    0.000000
      0.00     0.00      0.00        0.00        0.00        0.00        0.00        0.00
!  2Th1/TOF1    2Th2/TOF2  Pattern to plot
  16000.000     60000.000       1
"""

TRUTH = {"NMO.a": 4.1700, "Al.a": 4.0495, "ni": 0.6, "o_biso": 0.6, "zero": 0.0}


def _truth_phases():
    nmo = Phase("NMO", "F m -3 m", (TRUTH["NMO.a"],) * 3 + (90.0,) * 3,
                (Site("Ni1", (0, 0, 0), (("Ni", TRUTH["ni"]), ("Mn", 1 - TRUTH["ni"])), 0.5, "4"),
                 Site("O1", (0.5, 0.5, 0.5), (("O", 1.0),), TRUTH["o_biso"], "4")))
    al = preset_phase("Al").with_cell((TRUTH["Al.a"],) * 3 + (90.0,) * 3)
    return [nmo, al]


def _write_job(tmp_path, seed=0):
    inst = gppd_like()
    tof = np.arange(16000.0, 60000.0 + 1e-6, 20.0)
    phases = _truth_phases()
    model = build_model(phases, tof, inst, n_background=1)
    pat = compute_pattern(model, scales={"NMO": 1.0, "Al": 0.5}, background=[0.0])
    k = 3000.0 / pat.total.max()  # peak counts ~3000 above a flat background of ~380
    mu = k * pat.total + 380.0
    rng = np.random.default_rng(seed)
    y = rng.poisson(mu).astype(float)
    np.savetxt(tmp_path / "nmo_al.dat", np.column_stack([tof, y, np.sqrt(np.maximum(y, 1))]),
               header="XYDATA\nsimulated (Ni,Mn)O + Al", comments="", fmt="%.6f")
    (tmp_path / "nmo_al.pcr").write_text(PCR)
    return tmp_path / "nmo_al.pcr"


def test_pcr_code_convention():
    assert pcr_code(0.0) == (0, 0.0)
    assert pcr_code(11.0) == (1, 1.0)
    assert pcr_code(-51.0) == (5, -1.0)
    p, m = pcr_code(21.5)
    assert p == 2 and m == pytest.approx(1.5)


def test_read_pcr_translates_the_job(tmp_path):
    (tmp_path / "nmo_al.pcr").write_text(PCR)
    job = read_pcr(tmp_path / "nmo_al.pcr")
    assert job.data_file == tmp_path / "nmo_al.dat"
    assert [p.name for p in job.phases] == ["NMO", "Al"]
    nmo = job.phases[0]
    site = nmo.site("Ni1")
    # FullProf Occ (m/M units) -> chemical occupancy: 0.01146 * 192 / 4 = 0.55
    assert dict(site.species)["Ni"] == pytest.approx(0.01146 * 48, abs=1e-9)
    assert dict(site.species)["Mn"] == pytest.approx(0.00937 * 48, abs=1e-9)
    assert len(nmo.sites) == 2  # Ni and Mn share one mixed site
    inst = job.instrument
    assert (inst.difc, inst.zero, inst.alpha, inst.beta0, inst.beta1) == (11259.29, 2.5, 0.1, 0.02, 0.008)
    assert (inst.sig0, inst.sig1, inst.sig2) == (4.0, 183.0, 1.0)
    assert job.tof_range_us == (16000.0, 60000.0) and job.excluded_us == ((59000.0, 60000.0),)
    free = set(job.strategy.stages[-1].free)
    assert {"background", "NMO.scale", "Al.scale", "NMO.cell", "Al.cell", "NMO.occ[Ni1:Ni]", "NMO.occ[Ni1:Mn]",
            "NMO.biso[O1]", "inst.zero"} == free
    # codes 51 / -51: Ni and Mn move in opposite directions (their sum is kept)
    (con,) = job.strategy.constraints
    assert con.terms == {"NMO.occ[Ni1:Ni]": pytest.approx(1 / 48), "NMO.occ[Ni1:Mn]": pytest.approx(1 / 48)}
    # the polynomial background 380 is a constant Chebyshev series
    assert job.background((16000, 60000)) == pytest.approx([380, 0, 0, 0, 0, 0], abs=1e-9)


def test_cli_refine_pcr_recovers_the_truth(tmp_path):
    from layerscope.cli import main

    pcr = _write_job(tmp_path)
    rc = main(["refine", "--pcr", str(pcr), "--out", str(tmp_path / "out"), "--no-plot"])
    summ = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert rc == 0, summ["warnings"]
    nmo, al = summ["phases"]["NMO"], summ["phases"]["Al"]
    for cell, truth in ((nmo["cell"]["a"], TRUTH["NMO.a"]), (al["cell"]["a"], TRUTH["Al.a"])):
        assert abs(cell["value"] - truth) < 3 * cell["esd"]
    ni = nmo["occupancies"]["Ni1:Ni"]
    assert abs(ni["value"] - TRUTH["ni"]) < 3 * ni["esd"] and ni["esd"] < 0.02
    # codes 51 / -51 keep the starting sum (0.01146 + 0.00937)·48 = 0.99984, as in FullProf
    assert ni["value"] + nmo["occupancies"]["Ni1:Mn"]["value"] == pytest.approx(0.99984, abs=1e-9)
    assert summ["chi2"] == pytest.approx(1.0, abs=0.15)
    assert (tmp_path / "out" / "pcr-translation.txt").read_text().startswith("FullProf job")


def test_bad_pcr_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pcr"):
        read_pcr(tmp_path / "nope.pcr")
    empty = tmp_path / "empty.pcr"
    empty.write_text("! only a comment\n")
    with pytest.raises(ValueError, match="empty.pcr: empty"):
        read_pcr(empty)
    cut = tmp_path / "cut.pcr"
    cut.write_text(PCR[: PCR.index("Mn1")])
    with pytest.raises(ValueError, match="cut.pcr: file ends where the codes of atom Ni1|cut.pcr: file ends"):
        read_pcr(cut)
    cw = tmp_path / "cw.pcr"
    cw.write_text(PCR.replace("  -1   9   2   0   1", "   1   9   2   0   1"))
    with pytest.raises(ValueError, match="cw.pcr, line 5: Job = 1"):
        read_pcr(cw)
    bad = tmp_path / "bad.pcr"
    bad.write_text(PCR.replace("4.162000   4.162000", "4.162000   x.162000"))
    with pytest.raises(ValueError, match="bad.pcr, line .*a b c alpha beta gamma of phase NMO"):
        read_pcr(bad)
