"""The CW evaluator's chain-rule Jacobian (peak profiles and their partial derivatives in position,
width and intensity, contracted with the derivatives of those per-peak terms) against forward-mode
autodiff through the whole pattern (``CWJointEvaluator._fj``), and its sparse-matrix pattern sum
against the jitted kernel (``_f``): PbSO4 X-ray (Bragg–Brentano, texture, Stephens strain) and
neutron (Debye–Scherrer, March–Dollase) jointly, every kind of parameter free."""

import warnings
from pathlib import Path

import numpy as np
import pytest

PBSO4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsas2-pbso4"
pytestmark = pytest.mark.skipif(not PBSO4.is_dir(), reason="shared PbSO4 data absent")


@pytest.mark.slow
def test_chain_rule_jacobian_equals_forward_mode():
    import jax.numpy as jnp

    from layerscope.crystal.cif import read_cif
    from layerscope.diffraction import cw_pattern as cw
    from layerscope.diffraction.cw_instrument import read_gsas_prm
    from layerscope.diffraction.cw_readers import read_cw_powder
    from layerscope.refine.cw import CWJointEvaluator, cw_free_set

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph = read_cif(PBSO4 / "PbSO4-Wyckoff.cif")
        xr, nr = read_cw_powder(PBSO4 / "PBSO4.XRA"), read_cw_powder(PBSO4 / "PBSO4.CWN")
        ix, inn = read_gsas_prm(PBSO4 / "INST_XRY.PRM"), read_gsas_prm(PBSO4 / "inst_d1a.prm")
    mx = cw.build_cw_model([ph], xr.x, ix, limits=(20, 45), n_background=3, sh_order=2, stephens=True)
    mn = cw.build_cw_model([ph], nr.x, inn, limits=(20, 50), n_background=2, march_dollase=(0, 0, 1))
    px = cw.cw_initial_params(mx, background=np.array([100.0, 5.0, 1.0]))
    pn = cw.cw_initial_params(mn, background=np.array([50.0, 2.0]))
    px["phases"][ph.name]["sh"] = np.array([0.1, 0.05])
    pn["phases"][ph.name]["md"] = 0.9
    ev = CWJointEvaluator([mx, mn], [px, pn])
    p = ph.name
    fs = cw_free_set(ev, ["hist0.scale", "hist0.background", "hist0.zero", "hist0.shift", "hist0.transparency",
                          "hist0.surf_rough", "hist1.scale", "hist1.background", "hist1.displace", "hist1.absorption",
                          f"{p}.cell", f"{p}.xyz", f"{p}.biso", f"{p}@hist0.stephens", f"{p}@hist0.texture",
                          f"{p}@hist0.size", f"{p}@hist1.mustrain", f"{p}@hist1.hstrain", f"{p}@hist1.md"])
    q = np.random.default_rng(1).normal(scale=1e-3, size=fs.n)
    full = fs.full(q)
    full[list(ev.names).index("hist0.surf_rough_a")] = 0.2
    full[list(ev.names).index("hist1.absorption")] = 0.5
    y, jac = ev.calc_jac(full, fs.jacobian_columns)
    y_ref, jac_ref = (np.asarray(v) for v in ev._fj(jnp.asarray(full), jnp.asarray(fs.jacobian_columns)))
    yc = ev.calc(full)[0]
    scale = np.abs(y_ref).max()
    assert np.abs(y - y_ref).max() < 1e-12 * scale
    assert np.abs(yc - np.asarray(ev._f(jnp.asarray(full)))).max() < 1e-12 * scale
    col = np.abs(jac_ref).max(axis=0)
    assert np.all(col > 0), [n for n, c in zip(fs.names, col) if c == 0]
    np.testing.assert_array_less(np.abs(jac - jac_ref).max(axis=0), 1e-9 * col)
