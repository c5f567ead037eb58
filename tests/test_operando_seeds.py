"""The operando refinement's accuracy over the whole simulated first cycle, four noise seeds.

Issue 17's "done means": the four seeds keep the accuracy they had (fractions within 2 %
absolute, O3'/O3 cells within 5e-4 Å while that phase is ≥ 20 % of the cathode, DoO within 5 %
and DoD within 0.3 % on every refined pattern, nothing flagged). Seed 2 runs in CI
(``test_operando.py::test_full_series_keeps_the_spinel_seed2``, which also checks its bridged
hold); the other three seeds take ~1 min each and are run by hand (``-m extended``), e.g. after
a change to the engine or the series logic.
"""

from __future__ import annotations

import csv

import pytest

from layerscope.cli import main
from layerscope.simulate.operando import simulate_operando


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def check_first_cycle(got, truth):
    """The issue-4/17 tolerances at every pattern; returns the largest errors seen."""
    assert len(got) == len(truth) == 33
    worst = {"frac": 0.0, "O3p_cell": 0.0, "O3_cell": 0.0, "DoO": 0.0, "DoD": 0.0}
    n_refined = 0
    for g, t in zip(got, truth):
        assert g["converged"] == "True", (g["pattern"], g["flag"])
        assert not g["flag"] or g["flag"].startswith("recovered by a cell scan"), (g["pattern"], g["flag"])
        err = {k: abs(float(g[k]) - float(t[k])) for k in t if k in g and k != "time_h"}
        worst["frac"] = max(worst["frac"], *(err[f"frac_{p}"] for p in ("O3p", "O3", "S")))
        if float(t["frac_O3p"]) >= 0.2:
            worst["O3p_cell"] = max(worst["O3p_cell"], *(err[f"O3p_{c}"] for c in "abc"))
        if float(t["frac_O3"]) >= 0.2:
            worst["O3_cell"] = max(worst["O3_cell"], *(err[f"O3_{c}"] for c in "ac"))
        if not g["held"]:
            n_refined += 1
            worst["DoO"] = max(worst["DoO"], err["DoO"])
            worst["DoD"] = max(worst["DoD"], err["DoD"])
    assert n_refined >= 15
    assert worst["frac"] < 0.02 and worst["DoO"] < 0.05 and worst["DoD"] < 0.003, worst
    assert worst["O3p_cell"] < 5e-4 and worst["O3_cell"] < 5e-4, worst
    return worst


@pytest.mark.extended
@pytest.mark.parametrize("seed", [0, 1, 3])
def test_first_cycle_accuracy(tmp_path, seed, capsys):
    simulate_operando(tmp_path, seed=seed)
    out = tmp_path / "res"
    assert main(["operando", str(tmp_path / "series"), "--cycler", str(tmp_path / "cycler.csv"),
                 "--out", str(out)]) == 0
    worst = check_first_cycle(_rows(out / "timeseries.csv"), _rows(tmp_path / "truth.csv"))
    with capsys.disabled():
        print(f"\nseed {seed}: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
