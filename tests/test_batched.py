"""Batched series refinement (refine_batched) against the per-pattern engine and simulated truth.

A small operando-like series: Al foil + graphite + LiC6 on one GPPD-like TOF grid, five states
(cells and amounts move, graphite → LiC6), Poisson noise; the free set is the shape of the
series stage (background, phase scales, cells, one Biso tied to nothing). Every check compares
with ground truth or with :func:`~layerscope.refine.engine.least_squares` run pattern by
pattern with the same free set and start. One Evaluator is shared by the module, so the
compiled kernels are built once.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from layerscope.crystal import preset_phase
from layerscope.diffraction.instrument import gppd_like
from layerscope.diffraction.pattern import build_model, initial_params
from layerscope.refine import Evaluator, free_set, least_squares, make_layout
from layerscope.refine.batched import refine_batched

N_POINTS = 1500
TOF_RANGE = (12000.0, 45000.0)
FREE = ["background", "Al.scale", "graphite.scale", "LiC6.scale", "Al.cell", "graphite.cell", "LiC6.cell",
        "Al.biso[Al]"]
# states of the series: (graphite fraction of the carbon, Al a, graphite c, LiC6 c)
STATES = [(1.00, 4.0495, 6.711, 3.706), (0.80, 4.0500, 6.716, 3.704), (0.55, 4.0490, 6.722, 3.702),
          (0.30, 4.0505, 6.729, 3.700), (0.10, 4.0498, 6.735, 3.698)]
CHECKED = ["Al.scale", "graphite.scale", "LiC6.scale", "Al.a", "graphite.a", "graphite.c", "LiC6.a", "LiC6.c",
           "Al.biso[Al]"]


@pytest.fixture(scope="module")
def series():
    phases = [preset_phase(n) for n in ("Al", "graphite", "LiC6")]
    tof = np.geomspace(*TOF_RANGE, N_POINTS)
    model = build_model(phases, tof, gppd_like(), n_background=4)
    layout = make_layout(model)
    ev = Evaluator(model, layout)
    base = np.array(layout.flatten(initial_params(model, scales={"Al": 1.0, "graphite": 1.0, "LiC6": 1.0})))
    y1 = ev.calc(base)[0]
    k = 3000.0 / y1.max()
    rng = np.random.default_rng(7)
    truths, ys, ss = [], [], []
    for f_g, a_al, c_g, c_l in STATES:
        x = base.copy()
        x[layout.index("Al.scale")] = 0.4 * k
        x[layout.index("graphite.scale")] = f_g * k
        x[layout.index("LiC6.scale")] = (1 - f_g) * 0.9 * k
        x[layout.index("Al.a"):layout.index("Al.a") + 3] = a_al
        x[layout.index("graphite.c")] = c_g
        x[layout.index("LiC6.c")] = c_l
        x[layout.index("bkg.0")] = 400.0
        x[layout.index("bkg.1")] = -60.0
        mu = ev.calc(x)[0]
        counts = rng.poisson(mu).astype(float)
        truths.append(x)
        ys.append(counts)
        ss.append(np.sqrt(np.maximum(counts, 1.0)))
    # a common start: the first state's cells, equal carbon amounts, a flat background
    start = truths[0].copy()
    start[layout.index("graphite.scale")] = start[layout.index("LiC6.scale")] = 0.5 * k
    start[layout.index("bkg.0")] = 350.0
    start[layout.index("bkg.1")] = 0.0
    start[layout.index("Al.biso[Al]")] = 1.2
    return ev, layout, np.array(truths), np.array(ys), np.array(ss), start


def _free_rows(fs):
    return np.any(fs.A != 0, axis=1)


def test_batched_equals_per_pattern_least_squares(series):
    """refine_batched gives least_squares' parameters (≤ 0.05 esd) and χ² (≤ 1e-6 relative) on every
    pattern, from the same free set and start (measured: 1e-9 esd, 1e-13 relative)."""
    ev, layout, truths, ys, ss, start = series
    fs = free_set(layout, start, FREE)
    bf = refine_batched(ev, layout, fs, ys, ss, start, batch_size=4)  # 5 patterns: a chunk of 4 and one of 1
    assert len(bf) == len(ys)
    for i in range(len(ys)):
        ref = least_squares(ev, fs, ys[i], ss[i])
        assert ref.converged and bf[i].converged, (i, ref.warnings, bf[i].warnings)
        assert bf[i].names == ref.names
        np.testing.assert_array_less(np.abs(bf[i].q - ref.q), 0.05 * ref.esd_q)
        np.testing.assert_allclose(bf[i].esd_q, ref.esd_q, rtol=1e-6)
        assert abs(bf[i].stats.chi2 / ref.stats.chi2 - 1) < 1e-6
        assert bf[i].n_cycles == ref.n_cycles


def test_batched_recovers_truth(series):
    """Every refined quantity of every pattern lies within 3 esd of the simulated truth."""
    ev, layout, truths, ys, ss, start = series
    fs = free_set(layout, start, FREE)
    bf = refine_batched(ev, layout, fs, ys, ss, start)
    assert np.all(bf.converged), bf.warnings
    for i, x in enumerate(truths):
        for name in CHECKED:
            j = layout.index(name)
            err = (bf.full[i, j] - x[j]) / bf.esd_full[i, j]
            assert abs(err) < 3.0, (i, name, bf.full[i, j], x[j], err)
        # reduced χ² of a correct model with Poisson noise: 1 ± a few √(2/N)
        assert abs(bf.chi2[i] - 1.0) < 5 * np.sqrt(2.0 / N_POINTS), (i, bf.chi2[i])


def test_converged_patterns_are_masked(series):
    """A pattern started at its own optimum stays there (one cycle, shift ≪ esd) while a pattern
    started far off (cells 0.15 % off, scales ×0.6) converges to the per-pattern engine's answer."""
    ev, layout, truths, ys, ss, start = series
    fs = free_set(layout, start, FREE)
    opt = least_squares(ev, fs, ys[1], ss[1])
    far = truths[3].copy()
    for nm in ("Al.a", "Al.b", "Al.c", "graphite.c", "LiC6.a", "LiC6.b"):
        far[layout.index(nm)] *= 1.0015
    for nm in ("Al.scale", "graphite.scale", "LiC6.scale"):
        far[layout.index(nm)] *= 0.6
    starts = np.stack([opt.full, far])
    bf = refine_batched(ev, layout, fs, ys[[1, 3]], ss[[1, 3]], starts)
    rows = _free_rows(fs)
    assert bf[0].converged and bf[0].n_cycles <= 1
    np.testing.assert_array_less(np.abs(bf.full[0] - opt.full)[rows], 0.01 * opt.esd_full[rows])
    assert bf[1].converged and bf[1].n_cycles > 3
    ref = least_squares(ev, free_set(layout, far, FREE), ys[3], ss[3])
    np.testing.assert_array_less(np.abs(bf.full[1] - ref.full)[rows], 0.05 * ref.esd_full[rows])


def test_bound_is_held_and_flagged(series):
    """An upper bound below the true Al cell holds Al.a on the bound in every pattern, the hit is
    reported, and the result still matches the engine's active-set refinement."""
    ev, layout, truths, ys, ss, start = series
    lo, hi = free_set(layout, start, FREE).lower.copy(), free_set(layout, start, FREE).upper.copy()
    j = layout.index("Al.a")
    hi[j] = 4.0480  # ≥ 1e-3 Å below every state's Al a (≫ its esd, ~1e-5 Å)
    fs = free_set(layout, start, FREE, bounds=(lo, hi))
    bf = refine_batched(ev, layout, fs, ys[:3], ss[:3], start)
    for i in range(3):
        assert bf.full[i, j] == pytest.approx(4.0480, abs=1e-10)
        assert "Al.a" in bf[i].bound_hits
        assert any("Al.a reached its bound" in w for w in bf[i].warnings)
        ref = least_squares(ev, fs, ys[i], ss[i])
        assert "Al.a" in ref.bound_hits
        assert abs(bf[i].stats.chi2 / ref.stats.chi2 - 1) < 1e-6


def test_bounds_argument_overrides_the_free_set(series):
    ev, layout, truths, ys, ss, start = series
    fs = free_set(layout, start, FREE)
    lo, hi = fs.lower.copy(), fs.upper.copy()
    hi[layout.index("Al.a")] = 4.0480
    bf = refine_batched(ev, layout, fs, ys[:1], ss[:1], start, bounds=(lo, hi))
    assert "Al.a" in bf[0].bound_hits


def test_bad_pattern_is_named(series):
    ev, layout, truths, ys, ss, start = series
    fs = free_set(layout, start, FREE)
    y = ys[:3].copy()
    y[2, 100] = np.nan
    with pytest.raises(ValueError, match="pattern 2: observations must be finite"):
        refine_batched(ev, layout, fs, y, ss[:3], start)
    s = ss[:3].copy()
    s[1, 5] = 0.0
    with pytest.raises(ValueError, match="pattern 1:"):
        refine_batched(ev, layout, fs, ys[:3], s, start)
    with pytest.raises(ValueError, match=r"must both be \(n_patterns, 1500\)"):
        refine_batched(ev, layout, fs, ys[0], ss[0], start)
    with pytest.raises(ValueError, match="start must be"):
        refine_batched(ev, layout, fs, ys[:3], ss[:3], np.zeros((2, len(start))))


def test_start_breaking_a_constraint_is_projected(series):
    """With one free set, a per-pattern start that breaks its constraint is moved onto it and warned."""
    from layerscope.refine import Constraint

    ev, layout, truths, ys, ss, start = series
    con = Constraint({"graphite.scale": 1.0, "LiC6.scale": 1.0})  # total carbon kept at the start's
    fs = free_set(layout, start, FREE, constraints=[con])
    bad = start.copy()
    bad[layout.index("LiC6.scale")] *= 1.1
    bf = refine_batched(ev, layout, fs, ys[:2], ss[:2], np.stack([start, bad]), max_cycles=2)
    tot = [bf.full[i, layout.index("graphite.scale")] + bf.full[i, layout.index("LiC6.scale")] for i in range(2)]
    target = start[layout.index("graphite.scale")] + start[layout.index("LiC6.scale")]
    np.testing.assert_allclose(tot, target, rtol=1e-12)
    assert not any("constraints" in w for w in bf[0].warnings)
    assert any("does not satisfy the free set's constraints" in w for w in bf[1].warnings)


def test_per_pattern_free_sets(series):
    """A sequence of free sets (same names) gives each pattern its own x0; equal to least_squares."""
    ev, layout, truths, ys, ss, start = series
    starts = [truths[i].copy() for i in range(2)]
    for s in starts:
        s[layout.index("Al.biso[Al]")] = 1.2
    fsets = [free_set(layout, s, FREE) for s in starts]
    bf = refine_batched(ev, layout, fsets, ys[:2], ss[:2])
    for i in range(2):
        ref = least_squares(ev, fsets[i], ys[i], ss[i])
        assert abs(bf[i].stats.chi2 / ref.stats.chi2 - 1) < 1e-6
        np.testing.assert_array_less(np.abs(bf[i].q - ref.q), 0.05 * ref.esd_q)
    with pytest.raises(ValueError, match="same parameter names"):
        refine_batched(ev, layout, [fsets[0], dataclasses.replace(fsets[1], names=fsets[1].names[::-1])],
                       ys[:2], ss[:2])


def test_heavily_damped_step_is_not_called_converged(series):
    """Started with λ = 10⁵ the first accepted steps are ~10⁻⁵ of the Gauss–Newton step, so their
    shift/esd is below ``tol`` far from the minimum: both engines must go on (judging by the
    undamped step) to the minimum that the usual λ₀ reaches, not stop there as "converged"."""
    ev, layout, truths, ys, ss, start = series
    fs = free_set(layout, start, FREE)
    ref = least_squares(ev, fs, ys[2], ss[2])
    damped = least_squares(ev, fs, ys[2], ss[2], lam0=1e5, max_cycles=60)
    assert ref.converged
    assert damped.converged and damped.n_cycles > 3, (damped.n_cycles, damped.warnings)
    assert abs(damped.stats.chi2 / ref.stats.chi2 - 1) < 1e-6
    np.testing.assert_array_less(np.abs(damped.q - ref.q), 0.05 * ref.esd_q)
    bf = refine_batched(ev, layout, fs, ys[1:3], ss[1:3], start, lam0=1e5, max_cycles=60)
    assert bf[1].converged and bf[1].n_cycles > 3
    assert abs(bf[1].stats.chi2 / ref.stats.chi2 - 1) < 1e-6
    # the old test (shift/esd of the step taken) would have stopped after the first cycle
    stopped = least_squares(ev, fs, ys[2], ss[2], lam0=1e5, lam_converge=np.inf)
    assert stopped.n_cycles == 1 and stopped.stats.chi2 > 1.5 * ref.stats.chi2
