"""Peer check: the same synthetic refinement in cryspy (independent code, test-only) agrees within esds.

Al on the GPPD-like 90° bank (Gaussian b2b-exp profile, which both codes implement with the
same GSAS-II/FullProf parametrisation), Poisson noise at ~3000 counts in the strongest bin,
constant background known to both. Scale, cell and Biso start perturbed (+20 %, +0.06 %, +40 %)
and are refined by layerscope's Levenberg–Marquardt and by cryspy's BFGS; the two estimates must
differ by less than half of layerscope's esd (the codes use their own scattering-length tables,
and cryspy stops on its own gradient tolerance). The cryspy input is written by
``bench/_cryspy_model.py`` (shared with ``bench/bench_refine.py``).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from layerscope.crystal import preset_phase
from layerscope.diffraction.instrument import gppd_like
from layerscope.diffraction.pattern import build_model, initial_params
from layerscope.refine import Evaluator, free_set, least_squares, make_layout

pytest.importorskip("cryspy")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import _cryspy_model as cm  # noqa: E402

BKG = 200.0


def test_cryspy_gives_the_same_parameters_within_esds():
    ph = preset_phase("Al")
    inst = gppd_like()
    tof = np.geomspace(16000, 50000, 1200)
    model = build_model([ph], tof, inst, n_background=1, lorentz=False)
    lay = make_layout(model)
    ev = Evaluator(model, lay)
    truth = lay.flatten(initial_params(model, scales={"Al": 1.0}, background=[0.0]))
    truth[lay.index("Al.scale")] *= 3000.0 / ev.calc(truth)[0].max()
    truth[lay.index("bkg.0")] = BKG
    rng = np.random.default_rng(5)
    y = rng.poisson(ev.calc(truth)[0]).astype(float)
    sigma = np.sqrt(np.maximum(y, 1.0))
    start = truth.copy()
    start[lay.index("Al.scale")] *= 1.2
    start[lay.index("Al.biso[Al]")] *= 1.4
    for c in "abc":
        start[lay.index(f"Al.{c}")] *= 1.0006

    fr = least_squares(ev, free_set(lay, start, ["Al.scale", "Al.cell", "Al.biso"]), y, sigma)
    assert fr.converged, fr.warnings

    ph0 = replace(ph, cell=tuple(float(start[lay.index(f"Al.{c}")]) for c in ("a", "b", "c", "alpha", "beta", "gamma")),
                  sites=tuple(replace(s, biso=float(start[lay.index(f"Al.biso[{s.label}]")])) for s in ph.sites))
    text = cm.tof_input([ph0], tof, inst, {"Al": float(start[lay.index("Al.scale")])}, y, sigma,
                        background=np.full(len(tof), BKG), refine_scales=("Al",), refine_cells=("Al",),
                        refine_biso=("Al",), gauss=True)
    obj = cm.parse(text)
    out = cm.refine(obj)
    assert len(out["parameter_name"]) == 3
    peer = {
        "Al.a": float(obj.crystal_al.cell.length_a),
        "Al.biso[Al]": float(obj.crystal_al.atom_site.b_iso_or_equiv[0]),
        "Al.scale": cm.phase_scale_to_layerscope(obj.tof_bank.phase.scale[0], ph0, inst),
    }
    for name, v in peer.items():
        assert abs(v - fr.value(name)) < 0.5 * fr.esd(name), (name, v, fr.value(name), fr.esd(name))
        # and both recover the truth
        assert abs(fr.value(name) - truth[lay.index(name)]) < 3 * fr.esd(name)
    # cryspy's χ² (Σ over points) agrees with ours at the two optima
    assert out["chi_sq"] == pytest.approx(fr.stats.chi2 * (len(y) - 3), rel=0.01)
