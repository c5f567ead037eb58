"""crystal.geometry (the one copy of the cell geometry) against gemmi's UnitCell in the seven
crystal systems, with NumPy and with JAX (jit and gradient)."""

from __future__ import annotations

import numpy as np
import pytest

gemmi = pytest.importorskip("gemmi")

from layerscope.crystal import geometry as geo  # noqa: E402

#: one cell per crystal system (general angles where the system allows them)
CELLS = {
    "triclinic": (5.1, 6.3, 7.7, 81.0, 97.5, 105.2),
    "monoclinic": (4.97, 8.61, 5.03, 90.0, 109.2, 90.0),   # Li2MnO3-like C2/m
    "orthorhombic": (6.96, 8.48, 5.40, 90.0, 90.0, 90.0),
    "tetragonal": (4.59, 4.59, 2.96, 90.0, 90.0, 90.0),
    "trigonal-rhombohedral": (5.43, 5.43, 5.43, 55.3, 55.3, 55.3),
    "hexagonal": (2.86, 2.86, 14.24, 90.0, 90.0, 120.0),  # LiNiO2-like R-3m, hexagonal axes
    "cubic": (8.24, 8.24, 8.24, 90.0, 90.0, 90.0),
}
HKL = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -1, 2], [2, 1, 3], [-3, 2, 1], [0, 4, -5]])


def _gemmi_smat(m):
    return np.array([[m.u11, m.u12, m.u13], [m.u12, m.u22, m.u23], [m.u13, m.u23, m.u33]])


@pytest.mark.parametrize("system", sorted(CELLS))
def test_numpy_geometry_matches_gemmi(system):
    cell = CELLS[system]
    uc = gemmi.UnitCell(*cell)
    np.testing.assert_allclose(geo.metric_tensor(cell), _gemmi_smat(uc.metric_tensor()), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(geo.reciprocal_metric(cell), _gemmi_smat(uc.reciprocal_metric_tensor()),
                               rtol=1e-10, atol=1e-14)
    assert geo.volume(cell) == pytest.approx(uc.volume, rel=1e-12)
    d_ref = [uc.calculate_d(list(map(int, h))) for h in HKL]
    np.testing.assert_allclose(geo.d_spacing(cell, HKL), d_ref, rtol=1e-12)
    np.testing.assert_allclose(geo.inv_d2(cell, HKL), 1 / np.square(d_ref), rtol=1e-12)
    rc = uc.reciprocal()
    np.testing.assert_allclose(geo.reciprocal_lengths(cell), [rc.a, rc.b, rc.c], rtol=1e-12)
    np.testing.assert_allclose(geo.orthogonalisation_matrix(cell), np.array(uc.orth.mat.tolist()), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(geo.cell_from_metric(geo.metric_tensor(cell)), cell, rtol=1e-12)


@pytest.mark.parametrize("system", ["triclinic", "hexagonal"])
def test_jax_geometry_is_the_same_formula_and_differentiable(system):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    cell = np.array(CELLS[system])
    uc = gemmi.UnitCell(*cell)
    d = jax.jit(lambda c: geo.d_spacing(c, HKL, xp=jnp))(jnp.asarray(cell))
    np.testing.assert_allclose(np.asarray(d), [uc.calculate_d(list(map(int, h))) for h in HKL], rtol=1e-12)
    assert float(geo.volume(jnp.asarray(cell), xp=jnp)) == pytest.approx(uc.volume, rel=1e-12)
    np.testing.assert_allclose(np.asarray(geo.orthogonalisation_matrix(jnp.asarray(cell), xp=jnp)),
                               np.array(uc.orth.mat.tolist()), rtol=1e-12, atol=1e-12)
    # dV/da = V/a for every system (V is linear in a): the JAX gradient against that identity
    g = jax.grad(lambda c: geo.volume(c, xp=jnp))(jnp.asarray(cell))
    assert float(g[0]) == pytest.approx(uc.volume / cell[0], rel=1e-12)
    # d(d_100)/da by central differences in NumPy
    eps = 1e-6
    num = (geo.d_spacing(cell + [eps, 0, 0, 0, 0, 0], [1, 0, 0]) - geo.d_spacing(cell - [eps, 0, 0, 0, 0, 0], [1, 0, 0])) / (2 * eps)
    gd = jax.grad(lambda c: geo.d_spacing(c, jnp.array([1.0, 0, 0]), xp=jnp))(jnp.asarray(cell))
    assert float(gd[0]) == pytest.approx(float(num), rel=1e-7)
