"""Synthetic constant-wavelength patterns of the paper's phases (tables S1 and S3, layerscope's
presets) with known preferred orientation and anisotropic microstrain, refined back.

Each case simulates one histogram with the GSAS-II instrument files of ``shared/data/gsas2-pbso4``
(Cu Kα1/Kα2 Bragg–Brentano ``INST_XRY.PRM``, D1A neutrons ``inst_d1a.prm``, Debye–Scherrer), a
spherical-harmonics texture and Stephens coefficients set to an anisotropic multiple of the
isotropic μ = 2500 form, adds Poisson noise and refines scale, background, cell, every Stephens
S_HKL and every C(L,N) from a displaced start (cell off by +0.03 %, texture 0, Stephens isotropic).
The check is statistical: z = (refined − true)/esd over noise seeds.

* CI (:func:`test_cw_synthetic_recovery_few_seeds`): the X-ray O3 case, 3 seeds; every |z| < 3.5
  and the mean z² over all parameters and seeds in [0.4, 2.0] (esds off by ×1.5 either way fail).
* By hand (``-m extended``, :func:`test_cw_synthetic_recovery_20_seeds`): 40 seeds per case;
  each parameter within 2 esd in >= 85 % of seeds and the scatter over seeds within 30 % of the
  mean esd (the issue's criterion; the scatter of 20 seeds is itself uncertain by ~16 %, hence 40).
  Measured 2026-12-03: xray-S3-O3 (40 seeds) within 2 esd 0.90-1.00, scatter/esd 0.73 (scale), 0.74
  (C(4,3)), 0.81-1.06 the rest; neutron-S3-O3 (40) 0.93-1.00, scatter/esd 0.84-1.22; xray-S1-O3p
  (40) 0.90-1.00, scatter/esd 0.94-1.15 over scale, a, b, c, β and nine S_HKL, 0.78-0.83 for the three
  C(2,N) (the texture esds run ~20 % above the scatter in every case: within the bound, not explained).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PBSO4 = DATA / "gsas2-pbso4"
pytestmark = pytest.mark.skipif(not (PBSO4 / "INST_XRY.PRM").is_file(), reason="shared gsas2-pbso4 data absent")

#: case -> (preset phase, instrument file, 2θ grid (start, stop, step), SH order, true C(L,N),
#: Stephens multipliers of the isotropic form, histogram scale, background)
CASES = {
    "xray-S1-O3p": ("lrm-pristine:O3p", "INST_XRY.PRM", (12.0, 120.0, 0.02), 2, [0.15, 0.30, -0.20],
                    [1.5, 1.0, 2.5, 1.0, 1.2, 0.8, 1.0, 1.0, 1.0], 30.0, [2000.0, -200.0, 100.0]),
    "xray-S3-O3": ("lrm-100-cycles:O3", "INST_XRY.PRM", (12.0, 120.0, 0.02), 4, [-0.50, 0.10, 0.05],
                   [1.0, 3.0, 1.4], 100.0, [1500.0, -100.0, 50.0]),
    "neutron-S3-O3": ("lrm-100-cycles:O3", "inst_d1a.prm", (10.0, 150.0, 0.05), 4, [0.25, 0.08, -0.05],
                      [1.0, 2.5, 1.3], 1.0e5, [4000.0, -250.0, 150.0]),
}


def _setup(case: str, simulate: bool = True):
    from layerscope.crystal.presets import preset_phase
    from layerscope.diffraction import cw_pattern as cw
    from layerscope.diffraction.cw_instrument import read_gsas_prm
    from layerscope.refine.cw import CWJointEvaluator, cw_free_set

    name, prm, grid, order, sh, st_mult, scale, bkg = CASES[case]
    ph = preset_phase(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inst = read_gsas_prm(PBSO4 / prm)
    x = np.arange(grid[0], grid[1] + grid[2] / 2, grid[2])
    mu = {ph.name: 2500.0}
    # peak windows wide enough for the broadest true line (Stephens multipliers up to 3 on μ²)
    m = cw.build_cw_model([ph], x, inst, n_background=len(bkg), sh_order=order, stephens=True,
                          mustrain={ph.name: 2500.0 * 2.0})
    p = cw.cw_initial_params(m, scale=scale, background=np.array(bkg), mustrain=mu)
    pn = ph.name
    s_iso = p["phases"][pn]["stephens"].copy()
    p["phases"][pn]["stephens"] = s_iso * np.asarray(st_mult)
    p["phases"][pn]["sh"] = np.asarray(sh, float)
    ev = CWJointEvaluator([m], [p])
    names = list(ev.names)
    true = ev.x0.copy()
    y_true = ev.calc(true)[0] if simulate else None
    start = true.copy()
    for c in ("a", "b", "c"):
        start[names.index(f"{pn}.{c}")] *= 1.0003
    for nm, v in zip(m.phases[0].stephens, s_iso):
        start[names.index(f"{pn}@hist0.{nm}")] = v
    for L, n in m.phases[0].sh_terms:
        start[names.index(f"{pn}@hist0.C({L},{n})")] = 0.0
    start[names.index("hist0.scale")] *= 0.9
    fs = cw_free_set(ev, ["hist0.scale", "hist0.background", f"{pn}.cell", f"{pn}@hist0.stephens",
                          f"{pn}@hist0.texture"], x0=start)
    watch = [nm for nm in fs.names if not nm.startswith("hist0.bkg")]
    return {"ev": ev, "fs": fs, "y": y_true, "true": true, "watch": watch}


def _run(case: str, seeds) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """z-scores (seed × parameter), esds, the parameter names and the true values."""
    from layerscope.refine.engine import least_squares

    s = _setup(case)
    ev, fs = s["ev"], s["fs"]
    # free-column values: the true vector projected on the free columns (unit columns for these keys,
    # except the cell, whose columns tie equal axes: the value of a column is its first entry's)
    a = np.asarray(fs.A)
    tv = np.array([s["true"][int(np.flatnonzero(a[:, j])[0])] for j in range(a.shape[1])])
    col = {nm: j for j, nm in enumerate(fs.names)}
    zs, es = [], []
    for seed in seeds:
        y = np.random.default_rng(seed).poisson(s["y"]).astype(float)
        res = least_squares(ev, fs, y, np.sqrt(np.maximum(y, 1.0)), max_cycles=50)
        assert res.converged, (case, seed, res.stop_rule, res.history[-5:], res.warnings)
        v = np.array([res.full[int(np.flatnonzero(a[:, col[w]])[0])] for w in s["watch"]])
        e = np.array([res.esd_q[list(res.names).index(w)] for w in s["watch"]])
        zs.append((v - tv[[col[w] for w in s["watch"]]]) / e)
        es.append(e)
    return np.array(zs), np.array(es), s["watch"], tv[[col[w] for w in s["watch"]]]


def test_synthetic_cases_are_textured_and_anisotropic():
    """The simulated truth is what the cases claim: (00l) lines enhanced by the texture (all factors
    positive) and broadened most by the Stephens terms (S004 ×3), hk0 lines at the isotropic width."""
    from layerscope.diffraction import cw_pattern as cw

    s = _setup("xray-S3-O3", simulate=False)
    m, ev = s["ev"].models[0], s["ev"]
    pn = m.phase_names[0]
    tab = cw.cw_reflection_table(m, ev.unpack(s["true"])[0])[pn]
    p_iso = ev.unpack(s["fs"].x0)[0]  # the start: Stephens isotropic, texture 0
    gam_iso = cw.cw_reflection_table(m, p_iso)[pn]["gam"]
    hkl, ratio = np.asarray(tab["hkl"]), np.asarray(tab["gam"]) / gam_iso
    l_only = (hkl[:, 0] == 0) & (hkl[:, 1] == 0)
    hk0 = hkl[:, 2] == 0
    assert ratio[l_only].min() > 1.3 and np.allclose(ratio[hk0], 1.0, atol=0.05)
    assert tab["POcorr"].min() > 0 and tab["POcorr"][l_only].min() > 1.2
    np.testing.assert_allclose(cw.cw_reflection_table(m, p_iso)[pn]["POcorr"], 1.0)


def test_cw_synthetic_recovery_few_seeds():
    """Table S3 O3 on Cu Kα Bragg–Brentano, 3 seeds (the other cases: ``-m extended``)."""
    z, _, watch, _ = _run("xray-S3-O3", seeds=(11, 12, 13))
    assert np.all(np.abs(z) < 3.5), dict(zip(watch, np.abs(z).max(axis=0).round(2)))
    mz2 = float(np.mean(z**2))
    assert 0.4 < mz2 < 2.0, mz2


#: seeds of the by-hand run: the scatter of n seeds is uncertain by ~1/√(2(n−1)) (20: 16 %, 40: 11 %),
#: so 30 % is a 2.7σ test at 40 seeds
N_SEEDS = 40


@pytest.mark.extended
@pytest.mark.parametrize("case", list(CASES))
def test_cw_synthetic_recovery_20_seeds(case):
    z, e, watch, tv = _run(case, seeds=range(100, 100 + N_SEEDS))
    within = np.mean(np.abs(z) < 2.0, axis=0)
    ratio = z.std(axis=0, ddof=1)  # scatter / esd (the esd barely varies between seeds)
    for w, t, wi, r, em in zip(watch, tv, within, ratio, e.mean(axis=0)):
        print(f"{case:14s} {w:28s} true {t:12.6g} esd {em:10.3g} within2esd {wi:4.2f} scatter/esd {r:4.2f}")
    assert np.all(within >= 0.85), dict(zip(watch, within))
    assert np.all(np.abs(ratio - 1.0) < 0.3), dict(zip(watch, ratio.round(2)))
