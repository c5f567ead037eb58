"""A complete, self-consistent simulated study: every modality, four electrochemical states.

``simulate_study(out)`` writes the data of the paper's kinds of experiment, each with its ground
truth, and a ``study.toml`` that names them all, so ``layerscope run out/study.toml`` reproduces
every figure and table with known answers (this is what ``layerscope demo`` does):

============  ===========================================================================
state         datasets
============  ===========================================================================
pristine      ex-situ TOF pattern of the powder (table S1 model), 4D-STEM scan of an O3'
              particle with A/B/C domains and a spinel shell, <210> HAADF image with O3'
              domains, particle-edge image with a spinel shell, EELS line scan (Mn4+),
              O-K sXAS; half-cell cycling (Supp. Fig. 2)
first cycle   operando TOF series of the graphite || LRM pouch cell with its cycler log
charged 4.5V  <100> HAADF image with twin variants, O1 lamella and a pore; 4D-STEM of an
              O3 particle; EELS line scan; O-K sXAS
discharged    O-K sXAS
100 cycles    ex-situ TOF pattern (table S3 model), low-magnification HAADF image with
              defects per particle (table S4), 4D-STEM with (001) twin lamellae, O-K sXAS,
              100-cycle capacity log (Supp. Fig. 15a)
============  ===========================================================================

Ex-situ refinements start from CIFs whose cells are 0.2 % off and whose displacement
parameters are 30 % off the truth, so the checks test the refinement, not the start. The
neutron patterns have the paper's counting statistics: Rexp 0.14 % (table S1) and 0.27 %
(table S3) ex situ, 0.36 % for the 60-min operando reference (table S2).
Everything is deterministic for a given seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=1))
    return path


#: Rexp (%) of the paper's ex-situ refinements (tables S1 and S3): the simulated ex-situ patterns
#: get the same counting statistics
EX_SITU_REXP_PERCENT = {"lrm-pristine": 0.14, "lrm-100-cycles": 0.27}


def _powder(phases, weights, path: Path, *, seed: int, rexp_percent: float, n_points: int = 3000):
    """Ex-situ TOF pattern on the GPPD-like bank with Poisson noise; returns the instrument file.

    The flux is set so that the pattern's expected Rexp = √(N / Σ counts) is ``rexp_percent``
    (the background a third of the mean Bragg signal)."""
    from layerscope.diffraction.fractions import scales_from_weight_fractions
    from layerscope.diffraction.instrument import GPPD_TOF_RANGE_US, gppd_like, write_instprm
    from layerscope.diffraction.pattern import build_model, initial_params, make_pattern_function
    from layerscope.diffraction.readers import PowderData, write_gsas_fxye

    inst = gppd_like()
    lo, hi = GPPD_TOF_RANGE_US
    tof = np.geomspace(max(lo, 8000.0), min(hi, 50000.0), n_points)
    bin_us = tof * (np.log(tof[-1] / tof[0]) / (n_points - 1))
    model = build_model(phases, tof, inst, n_background=0)
    fn = make_pattern_function(model)
    s = scales_from_weight_fractions(weights, phases)
    _, parts, _ = fn(initial_params(model, scales={p.name: v for p, v in zip(phases, s)}))
    bragg = np.asarray(parts).sum(axis=0) * bin_us
    shape = bragg / bragg.mean() + 0.3 * (1 + 0.4 * np.exp(-tof / 12000.0))
    expected = shape * n_points / (shape.sum() * (rexp_percent / 100.0) ** 2)
    c = np.random.default_rng(seed).poisson(expected).astype(float)
    data = PowderData(x=tof, y=c / bin_us, sigma=np.sqrt(np.maximum(c, 1.0)) / bin_us, kind="tof", bank=1,
                      source=path.name, meta={})
    write_gsas_fxye(path, data, title=f"layerscope simulated ex-situ pattern {path.stem}")
    return write_instprm(inst, path.with_suffix(".instprm"))


def _start_cif(phase, path: Path, *, cell_factor=1.002, biso_factor=1.3):
    """A starting model off the truth: cell ×1.002 (angles kept), Biso ×1.3."""
    from dataclasses import replace

    from layerscope.crystal.cif import write_cif

    a, b, c, al, be, ga = phase.cell
    start = replace(phase, cell=(a * cell_factor, b * cell_factor, c * cell_factor, al, be, ga),
                    sites=tuple(replace(s, biso=max(s.biso, 0.1) * biso_factor) for s in phase.sites))
    return write_cif(start, path)


def _neutron(out: Path, name: str, preset_name: str, seed: int) -> dict:
    from layerscope.crystal.presets import preset

    model = preset(preset_name)
    phases = list(model.phases)
    w = [model.fractions[p.name] for p in phases]
    d = out / "npd"
    d.mkdir(parents=True, exist_ok=True)
    pattern = d / f"{name}.gsa"
    instprm = _powder(phases, w, pattern, seed=seed, rexp_percent=EX_SITU_REXP_PERCENT[preset_name])
    specs = []
    for p in phases:
        cif = _start_cif(p, d / f"{name}_{p.name}_start.cif")
        specs.append(f"{p.name}={cif.relative_to(out)}:{model.fractions[p.name]:.4g}")
    truth = {"phases": {p.name: {"cell": dict(zip(("a", "b", "c"), p.cell[:3])) | (
        {"beta": p.cell[4]} if p.space_group.number == 12 else {}), "weight_fraction": model.fractions[p.name]}
        for p in phases}}
    _json(d / f"{name}_truth.json", truth)
    # the paper's ex-situ protocol (tables S1/S3 refine every phase's cell, coordinates and B; the
    # simulated powder has no sample broadening), written as the study's strategy file
    names = [p.name for p in phases]
    strategy = d / f"{name}_strategy.toml"
    strategy.write_text("\n".join([
        "# ex-situ Rietveld protocol of the simulated study (tables S1/S3)",
        "[refine]", "revert_worse = true", "align_cells = true", "",
        "[[stage]]", 'name = "scales + background"', f"free = {_toml_value(['background'] + [n + '.scale' for n in names])}", "",
        "[[stage]]", 'name = "cells"', f"free = {_toml_value([n + '.cell' for n in names])}", "",
        "[[stage]]", 'name = "atoms"', f"free = {_toml_value([n + '.biso' for n in names] + [n + '.xyz' for n in names])}",
        ""]))
    # simulated with layerscope's own pattern model: refine in the same conventions
    return {"pattern": pattern.relative_to(out), "instprm": instprm.relative_to(out), "phases": specs,
            "strategy": strategy.relative_to(out), "conventions": "layerscope",
            "truth": (d / f"{name}_truth.json").relative_to(out)}


def _haadf(out: Path, name: str, scene: str, seed: int, size: int, **kw) -> dict:
    from layerscope.simulate.haadf.files import write_haadf_simulation

    d = out / "haadf" / name
    shell_nm = kw.get("shell_nm", (2.0, 5.0))
    res = write_haadf_simulation(d, scene=scene, size=size, pixel_size_nm=kw.get("pixel_size_nm"),
                                 dose=kw.get("dose", 4.0e4), shell_nm=shell_nm, seed=seed)
    print(res["message"])
    truth = {"scene": scene, "pixel_size_nm": res["pixel_size_nm"], "shape": res["shape"]}
    if scene == "shell":
        truth["shell_mean_nm"] = float(np.mean(shell_nm))
    _json(d / "truth.json", truth)
    return {"image": (d / "image.tif").relative_to(out), "truth": (d / "truth.json").relative_to(out)}


def _fourd(out: Path, name: str, core: str, twins: bool, seed: int, scan: int) -> dict:
    from layerscope.simulate.fourd import write_fourd_simulation

    d = out / "fourd" / name
    sim = write_fourd_simulation(d, scan_shape=(scan, scan), step_nm=2.0, core=core, twins=twins, seed=seed)
    print(f"wrote {d / 'scan.h5'}: {sim.data.shape} patterns; truth phases {sim.phase_names}")
    return {"scan": (d / "scan.h5").relative_to(out)}


def _eels(out: Path, name: str, ratios, seed: int) -> dict:
    from layerscope.simulate.spectra import mn_l23_eels

    d = out / "eels"
    d.mkdir(parents=True, exist_ok=True)
    cols = []
    e = None
    for k, r in enumerate(ratios):
        # each spectrum the sum over one segment of the line scan: 3e6 counts in L2 (1000× the
        # simulator's single-pixel default), so Poisson noise leaves L3/L2 within ~0.5 % (1 σ)
        e, y, _ = mn_l23_eels(l3_over_l2=r, i_l2=3.0e6, continuum=8.0e5, bg_a=4.0e15, noise=True, seed=seed + k)
        cols.append(y)
    path = d / f"{name}.csv"
    np.savetxt(path, np.column_stack([e] + cols), delimiter=",", fmt="%.6g",
               header="energy_eV," + ",".join(f"spectrum_{k}" for k in range(len(cols))), comments="")
    _json(d / f"{name}_truth.json", {"l3_over_l2": [float(r) for r in ratios]})
    return {"spectrum": path.relative_to(out), "truth": (d / f"{name}_truth.json").relative_to(out)}


#: O-K pre-edge peak areas per state (the 529.5 eV TM-O hybrid peak grows on charge, fades on
#: discharge and after cycling, as in Supp. Fig. 14)
XAS_STATES = {"pristine": (1.2, 0.4), "charged-4.5V": (1.6, 0.7), "discharged-2.5V": (1.3, 0.45),
              "100-cycles": (0.9, 0.3)}


def _xas(out: Path) -> dict:
    from layerscope.simulate.spectra import o_k_xas

    d = out / "xas"
    d.mkdir(parents=True, exist_ok=True)
    files, truth = {}, {}
    fine = np.linspace(525.0, 535.0, 20001)
    for state, (a1, a2) in XAS_STATES.items():
        e, mu, t = o_k_xas(peak_areas=(a1, a2, 2.0))
        path = d / f"{state}.csv"
        np.savetxt(path, np.column_stack([e, mu]), delimiter=",", fmt="%.8g", header="energy_eV,mu", comments="")
        files[state] = str(path.relative_to(out))
        _, _, tf = o_k_xas(fine, peak_areas=(a1, a2, 2.0))
        truth[state] = float(np.trapezoid(tf["normalised"], fine))
    _json(d / "truth.json", {"integrals": truth})
    return {"spectra": files, "truth": str((d / "truth.json").relative_to(out))}


def _cycler(out: Path, name: str, log) -> dict:
    """Write a simulated cycler log (simulate.cycler.lrm_half_cell / lrm_pouch_cell) and its truth."""
    from layerscope.echem.tabular import write_csv

    d = out / "cycler"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.csv"
    write_csv(log, path)
    truth = {k: [float(v) for v in log.meta["truth"][k]]
             for k in ("charge_mAh", "discharge_mAh", "ce", "avg_charge_V", "avg_discharge_V", "energy_mWh")}
    _json(d / f"{name}_truth.json", truth)
    return {"file": path.relative_to(out), "truth": (d / f"{name}_truth.json").relative_to(out)}


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + " }"
    return json.dumps(str(v))


def write_study_toml(path: Path, head: dict, entries: list[tuple[str, dict]]) -> Path:
    lines = ["# written by `layerscope simulate study`: every dataset below is simulated with known truth", "",
             "[study]"] + [f"{k} = {_toml_value(v)}" for k, v in head.items()]
    for kind, e in entries:
        lines += ["", f"[[{kind}]]"] + [f"{k} = {_toml_value(v)}" for k, v in e.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def simulate_study(out_dir, *, seed: int = 0, every: int = 2, quick: bool = False, log=print) -> Path:
    """Write the simulated study (see the module docstring) and return the path of its study.toml.

    ``every`` keeps every n-th 30-min operando pattern (1: all 33); ``quick`` makes every
    dataset smaller (for tests).
    """
    from layerscope.simulate.operando import simulate_operando

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scan = 16 if quick else 24
    size = 256 if quick else 384
    entries: list[tuple[str, dict]] = []
    log("[simulate] operando series of the first cycle")
    if not quick:
        sim = simulate_operando(out / "operando", seed=seed, every=every)
        entries.append(("operando", {"name": "first-cycle", "state": "first cycle",
                                     "series": str(sim["series"].relative_to(out)),
                                     "cycler": str(sim["cycler"].relative_to(out)),
                                     "truth_series": str(sim["truth"].relative_to(out))}))
    log("[simulate] ex-situ neutron patterns")
    entries.append(("neutron", {"name": "pristine", "state": "pristine", "table": "S1",
                                **_neutron(out, "pristine", "lrm-pristine", seed + 11)}))
    entries.append(("neutron", {"name": "100-cycles", "state": "100-cycles", "table": "S3",
                                **_neutron(out, "100-cycles", "lrm-100-cycles", seed + 12)}))
    log("[simulate] HAADF images")
    entries.append(("haadf", {"name": "charged-twins", "state": "charged-4.5V", "mode": "atomic",
                              **_haadf(out, "charged-twins", "twins", seed + 21, size)}))
    entries.append(("haadf", {"name": "pristine-domains", "state": "pristine", "mode": "domains",
                              **_haadf(out, "pristine-domains", "domains", seed + 22, size)}))
    entries.append(("haadf", {"name": "pristine-shell", "state": "pristine", "mode": "shell",
                              **_haadf(out, "pristine-shell", "shell", seed + 23, size, shell_nm=(2.0, 5.0))}))
    entries.append(("haadf", {"name": "100-cycles-lowmag", "state": "100-cycles", "mode": "lowmag",
                              **_haadf(out, "100-cycles-lowmag", "lowmag", seed + 24, size)}))
    log("[simulate] 4D-STEM scans")
    lib = ["lrm-pristine:O3p", "lrm-pristine:S"]
    entries.append(("fourd", {"name": "pristine", "state": "pristine", "phases": lib, "spacing_deg": 2.0,
                              **_fourd(out, "pristine", "O3p", False, seed + 31, scan)}))
    lib3 = ["lrm-100-cycles:O3", "lrm-100-cycles:S"]
    entries.append(("fourd", {"name": "100-cycles", "state": "100-cycles", "phases": lib3, "spacing_deg": 2.0,
                              **_fourd(out, "100-cycles", "O3", True, seed + 32, scan)}))
    log("[simulate] EELS, sXAS and cycler logs")
    entries.append(("eels", {"name": "pristine", "state": "pristine",
                             **_eels(out, "pristine", [2.2, 2.25, 2.3, 2.35], seed + 41)}))
    entries.append(("eels", {"name": "charged-4.5V", "state": "charged-4.5V",
                             **_eels(out, "charged-4.5V", [2.25, 2.35, 2.45, 2.6], seed + 42)}))
    entries.append(("xas", {"name": "o-k", "state": "all states", **_xas(out)}))
    from layerscope.simulate.cycler import lrm_half_cell, lrm_pouch_cell

    # coated-LRM half-cell 2.0-4.8 V (first charge through the 4.5 V plateau, ICE 91 %, rate steps)
    entries.append(("cycler", {"name": "half-cell", "state": "formation", "role": "half-cell", "mass_mg": 10.0,
                               "nominal_mAh": 2.5, **_cycler(out, "half-cell", lrm_half_cell("coated", mass_mg=10.0))}))
    # the 4 Ah graphite || LRM pouch cell, 1C (4 A) in 2.5-4.5 V: capacity fade and voltage decay
    n = 20 if quick else 100
    entries.append(("cycler", {"name": "100-cycles", "state": "100-cycles", "role": "cycling", "nominal_mAh": 4000.0,
                               **_cycler(out, "100-cycles", lrm_pouch_cell("cycling", n_cycles=n))}))
    entries.append(("kinematic", {"name": "zone-axes", "state": "simulation",
                                  "phases": ["lrm-pristine:O3p", "lrm-100-cycles:O3", "lrm-pristine:S"]}))
    head = {"title": "Simulated LRM study: pristine, first cycle, charged, discharged and 100 cycles",
            "material": "Li1.2Mn0.54Ni0.13Co0.13O2 (LRM), simulated with ground truth",
            "description": f"written by layerscope simulate study (seed {seed}); every number with a truth "
                           "is checked at the end of the report"}
    return write_study_toml(out / "study.toml", head, entries)
