"""GSAS-II sequential-table extras: user-defined derived quantities (pseudo-variables) with esds
propagated through the covariance, and the convergence columns."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from layerscope.operando.derived import add_derived, parse_derived
from layerscope.operando.observables import _evaluate_observables
from layerscope.operando.protocol import _parse_protocol


def test_derived_values_and_esds_match_the_analytic_propagation():
    """f = A·B / z and g = √A + π at a known covariance: the esd is √(gᵀCg) with the gradient
    written out by hand (σ_f² = Σ ∂f/∂x_i ∂f/∂x_j C_ij), not by the autodiff under test."""
    layout = SimpleNamespace(names=("x.a", "x.b", "z", "free"))
    obs = {"A": lambda v: v[0], "B": lambda v: 2.0 * v[1]}
    obs = add_derived(obs, [("prod", "A * B / p(\"z\")"), ("g", "sqrt(A) + pi"), ("h", "-prod ** 2")], layout)
    v = np.array([2.0, 3.0, 4.0, 0.5])
    c = np.array([[0.04, 0.01, 0.002, 0.0], [0.01, 0.09, -0.003, 0.0], [0.002, -0.003, 0.01, 0.0],
                  [0.0, 0.0, 0.0, 0.0]])
    out = _evaluate_observables(obs, v, c)
    a, b, z = v[0], 2 * v[1], v[2]
    assert out["prod"] == pytest.approx(a * b / z)
    grad = np.array([b / z, a * 2 / z, -a * b / z ** 2, 0.0])
    assert out["prod_esd"] == pytest.approx(np.sqrt(grad @ c @ grad), rel=1e-12)
    assert out["g"] == pytest.approx(np.sqrt(a) + np.pi)
    assert out["g_esd"] == pytest.approx(0.5 / np.sqrt(a) * np.sqrt(c[0, 0]), rel=1e-12)
    f = a * b / z
    assert out["h"] == pytest.approx(-f * f)
    assert out["h_esd"] == pytest.approx(2 * f * np.sqrt(grad @ c @ grad), rel=1e-12)
    # a quantity of parameters this pattern did not refine has no esd (NaN, as every column)
    obs2 = add_derived({"A": lambda v: v[0]}, [("k", "2 * p(\"free\")")], layout)
    assert np.isnan(_evaluate_observables(obs2, v, c)["k_esd"])


@pytest.mark.parametrize("name, expr, what", [
    ("bad name", "A", "identifier"),
    ("x", "A +", "not a formula"),
    ("x", "__import__('os')", "not allowed"),
    ("x", "A.real", "not allowed"),
    ("x", "C * 2", "unknown name 'C'"),
    ("x", "p('nope')", "not a parameter"),
    ("x", "exp(A, 2)", "not allowed"),
    ("A", "2", "already a reported quantity"),
])
def test_derived_formula_errors_name_the_quantity(name, expr, what):
    layout = SimpleNamespace(names=("x.a",))
    with pytest.raises(ValueError, match=what):
        add_derived({"A": lambda v: v[0]}, [(name, expr)], layout, "proto.toml")


#: a protocol with one background stage each, for the [[series.derived]] tables
_BASE = """
[[reference.stage]]
name = "s"
free = ["background"]
[[series.stage]]
name = "s"
free = ["background"]
"""


def test_protocol_derived_tables():
    base = _BASE
    p = _parse_protocol(base + '[[series.derived]]\nname = "ab"\nexpr = "O3p_a * O3p_b"\n', "p.toml")
    assert p.derived == (("ab", "O3p_a * O3p_b"),)
    with pytest.raises(ValueError, match=r"p.toml \[\[series.derived\]\]: 'ab': .* is not a formula"):
        _parse_protocol(base + '[[series.derived]]\nname = "ab"\nexpr = "O3p_a *"\n', "p.toml")
    with pytest.raises(ValueError, match="needs name"):
        _parse_protocol(base + '[[series.derived]]\nexpr = "1"\n', "p.toml")
    assert parse_derived("v", "p(\"O3p.a\") * 2", {"A"}, {"O3p.a"})[2] == {"O3p.a"}


def _trend_rows(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(12):
        t = 0.5 * k
        e = 2e-4 * (1 + 0.5 * (k % 3))
        rows.append({"pattern": f"P{k}", "time_h": t, "O3p_c": 14.25 + 0.012 * t - 0.001 * t * t + rng.normal(0, e),
                     "O3p_c_esd": e, "converged": True, "determined_O3p": True})
    rows[3].update({"O3p_c": 99.0, "determined_O3p": False})     # an undetermined outlier
    rows[5].update({"O3p_c_esd": float("nan")})                   # held: not refined
    rows[8].update({"O3p_c": -5.0, "converged": False})           # flagged
    return rows


def test_trend_fit_leaves_out_unmeasured_rows_and_matches_numpy():
    from layerscope.operando.trends import fit_trend

    rows = _trend_rows()
    fit = fit_trend(rows, "O3p_c", "time_h", degree=2)
    assert [p for p, _ in fit.excluded] == ["P3", "P5", "P8"] and fit.n_used == 9
    # the truth within 3 esd; the same numbers as numpy's own weighted polyfit (unscaled covariance)
    for c, e, true in zip(fit.coefficients, fit.esd, (14.25, 0.012, -0.001)):
        assert abs(c - true) < 3 * e, (c, e, true)
    keep = [r for r in rows if r["pattern"] not in ("P3", "P5", "P8")]
    x = np.array([r["time_h"] for r in keep])
    y = np.array([r["O3p_c"] for r in keep])
    w = 1 / np.array([r["O3p_c_esd"] for r in keep])
    ref, cov = np.polyfit(x, y, 2, w=w, cov="unscaled")
    assert np.allclose(fit.coefficients, ref[::-1], rtol=0, atol=1e-10)
    assert np.allclose(fit.covariance, cov[::-1, ::-1], rtol=1e-8)
    assert 0.1 < fit.chi2_reduced < 4   # chi2 with 6 degrees of freedom (seeds 0-19: 0.23-3.4)
    assert fit(2.0) == pytest.approx(np.polyval(ref, 2.0))
    with pytest.raises(ValueError, match="usable row"):
        fit_trend(rows[:2], "O3p_c", degree=2)
    with pytest.raises(ValueError, match="no column 'nope'"):
        fit_trend(rows, "nope")


# --- units of derived quantities -----------------------------------------------------------------


def test_derived_units_in_the_protocol_and_the_api(tmp_path):
    from layerscope import InputError
    from layerscope.operando.derived import UNSPECIFIED, derived_units, split_derived
    from layerscope.operando.protocol import read_series_protocol

    p = _parse_protocol(_BASE + '[[series.derived]]\nname = "V"\nexpr = "O3p_a * O3p_b * O3p_c"\nunit = "Å^3"\n'
                        '[[series.derived]]\nname = "r_c"\nexpr = "O3p_c / O3p_a"\n', "p.toml")
    assert p.derived == (("V", "O3p_a * O3p_b * O3p_c"), ("r_c", "O3p_c / O3p_a"))
    assert p.derived_units == (("V", "Å^3"), ("r_c", None))
    # unknown key, or a unit that is not a string: an InputError naming the file and the table
    f = tmp_path / "proto.toml"
    f.write_text(_BASE + '[[series.derived]]\nname = "V"\nexpr = "O3p_a"\nunits = "A"\n')
    with pytest.raises(InputError, match=r"proto.toml, \[\[series.derived\]\] #1 \('V'\): unknown key\(s\) 'units'"):
        read_series_protocol(f)
    f.write_text(_BASE + '[[series.derived]]\nname = "V"\nexpr = "O3p_a"\nunit = 3\n')
    with pytest.raises(InputError, match=r"proto.toml, \[\[series.derived\]\] #1 \('V'\): unit must be a string"):
        read_series_protocol(f)
    # refine_series(derived=): a formula, or a table with expr and unit
    formulas, units = split_derived({"a2": "O3p_a ** 2", "V": {"expr": "O3p_a ** 3", "unit": " Å^3 "}})
    assert formulas == {"a2": "O3p_a ** 2", "V": "O3p_a ** 3"} and units == {"a2": None, "V": "Å^3"}
    with pytest.raises(InputError, match="derived quantity 'V': unknown key"):
        split_derived({"V": {"expr": "O3p_a ** 3", "uint": "Å^3"}})
    with pytest.raises(InputError, match="non-empty"):
        split_derived({"V": {"expr": "O3p_a ** 3", "unit": ""}})
    # no unit: "unspecified", never one inferred from a formula of cell lengths; one note names them
    got, note = derived_units(["a2", "V", "r_c"], {"V": "Å^3", "a2": None})
    assert got == {"a2": UNSPECIFIED, "V": "Å^3", "r_c": UNSPECIFIED}
    assert note.startswith("no unit given for a2, r_c: recorded as 'unspecified'")
    assert derived_units(["V"], {"V": "Å^3"}) == ({"V": "Å^3"}, "")


def test_derived_units_reach_the_dataset():
    """operando.h5's units attributes: the given unit, and 'unspecified' for a derived quantity
    whose name the built-in table would have read as a cell length (…_c: Å)."""
    from layerscope.operando.outputs import series_dataset

    rows = [{"pattern": "P0", "time_h": 0.0, "rwp": 3.0, "gof": 1.1, "converged": True, "flag": "", "held": "",
             "note": "", "undetermined": "", "O3p_c": 14.2, "O3p_c_esd": 1e-4, "V": 200.1, "V_esd": 0.02,
             "r_c": 2.87, "r_c_esd": 1e-5}]
    pats = [("P0", np.linspace(1, 2, 5), np.ones(5), np.ones(5))]
    ds = series_dataset(rows, pats, units={"V": "Å^3", "r_c": "unspecified"})
    assert ds["V"].attrs["units"] == ds["V_esd"].attrs["units"] == "Å^3"
    assert ds["r_c"].attrs["units"] == ds["r_c_esd"].attrs["units"] == "unspecified"
    assert ds["O3p_c"].attrs["units"] == "Å"               # a refined cell length keeps its unit
    assert series_dataset(rows, pats)["r_c"].attrs["units"] == "Å"   # what the table alone would infer
