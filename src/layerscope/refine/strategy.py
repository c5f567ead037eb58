"""Staged refinement strategies (what is freed at each stage), read from a small TOML file.

A strategy file::

    [refine]
    max_cycles = 30          # per stage (GSAS-II's "cycles"); tol = 0.01 max shift/esd
    scale_model = "gsas"     # "phase" (FullProf: one scale per phase) or "gsas"
                             # (histogram scale × phase fraction, all phase fractions 1 at start)

    [[stage]]
    name = "background"
    free = ["background", "hscale"]

    [[stage]]
    name = "phase fraction"
    free = ["NAC.scale"]                 # stages are cumulative, as in GSAS-II and FullProf
    fix = []                             # names to take out of the free set again

    [[stage]]
    name = "microstrain"
    free = ["NAC.mustrain"]
    start = { "NAC.mustrain" = 1000.0 }  # starting values set before the stage
    min_phase_fraction = 0.02            # phases below 2 wt% keep these fixed in this stage

    [[constraint]]                       # Σ coeff·p = value (value omitted: keep the current sum)
    terms = { "NMC.occ[M3b:Li]" = 1.0, "NMC.occ[M3b:Ni]" = 1.0 }

    [[tie]]                              # equal values (one Biso for a group of sites)
    params = ["NMC.biso[O1]", "NMC.biso[O2]"]

    [conventions]                        # optional; each overrides the instrument file's default
    lorentz = "gsas2"                    # "exact" | "gsas2"   (TOF Lorentzian, see refine.conventions)
    scattering = "gsas2"                 # "sears1992" | "gsas2"
    reflections = "gsas2"                # "tails" | "gsas2"   (d ≥ low TOF limit / difC)
    zero_counts = "exclude"              # "fit" | "exclude"   (GSAS-II: weight 0)
    start_broadening = "gsas2"           # "gsas2" (1 µm, 1000e-6) | "none"

``[refine]`` also takes ``revert_worse = true`` (a stage that leaves χ² higher than it found it is
undone and its parameters are fixed again; on in the default strategy) and ``align_cells = true``
(before least squares, each phase's cell is scaled along a grid of ±``align_range`` (default
0.007) to the best profile match, so a literature cell 0.3–0.5 % off starts in the right basin).

Parameter names are those of :mod:`layerscope.refine.parameters`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layerscope.refine.parameters import Constraint
from layerscope._errors import reader as _input_reader  # noqa: E402

__all__ = ["Stage", "Strategy", "read_strategy", "parse_strategy", "default_strategy", "gsas_nac_strategy"]


@dataclass(frozen=True)
class Stage:
    name: str
    free: tuple[str, ...]
    fix: tuple[str, ...] = ()
    start: dict = field(default_factory=dict)
    max_cycles: int | None = None
    #: parameters of a phase whose weight fraction is below this at the start of the stage stay
    #: fixed in it (a 3 % impurity does not determine its atoms; the log says so)
    min_phase_fraction: float = 0.0


@dataclass(frozen=True)
class Strategy:
    stages: tuple[Stage, ...]
    constraints: tuple[Constraint, ...] = ()
    max_cycles: int = 30
    tol: float = 0.01
    scale_model: str = "phase"
    bounds: dict = field(default_factory=dict)
    #: "layerscope" or "gsas2" (GSAS-II's HessianLSQ cycle rules, see ``engine.least_squares``)
    schedule: str = "layerscope"
    #: relative χ² drop below which a "gsas2" cycle counts as converged (GSAS-II's min dM/M)
    ftol: float = 1e-3
    #: TOF Lorentzian: "exact" or "gsas2" (GSAS-II's EPSVOIGT, ``tof_profile.tof_peak_rows``)
    lorentz_convention: str = "exact"
    #: cell derivatives: "exact", or "gsas2" (GSAS-II's derivative of a cubic/tetragonal/hexagonal
    #: cell, ``parameters.gsas2_cell_direction``)
    cell_jacobian: str = "exact"
    #: undo a stage that leaves χ² higher than it found it (and fix its parameters again)
    revert_worse: bool = False
    #: scale each phase's cell on a grid (±align_range) to the best profile match before least squares
    align_cells: bool = False
    align_range: float = 0.007
    #: conventions the strategy file sets explicitly (``[conventions]``), overriding the instrument's
    conventions: dict = field(default_factory=dict)


class StagedRun:
    """Accessors shared by the results of a staged multi-histogram refinement (``CWRun``, ``JointRun``).

    The subclass provides ``stages`` ([(name, FitResult, [FitStats per histogram])]), ``reverted``
    ([(name, FitResult, message)]), ``notes`` and ``evaluator`` (its ``names`` index ``FitResult.full``).
    """

    @property
    def final(self):
        """The FitResult of the last stage."""
        return self.stages[-1][1]

    @property
    def final_hist_stats(self):
        """FitStats of each histogram at the last stage."""
        return self.stages[-1][2]

    @property
    def converged(self) -> bool:
        return bool(self.final.converged)

    @property
    def warnings(self) -> tuple:
        out = list(self.notes)
        for name, fr, _ in self.stages:
            out += [f"[{name}] {w}" for w in fr.warnings]
        out += [msg for _, _, msg in self.reverted]
        return tuple(out)

    @property
    def rwp(self) -> float:
        """Rwp (%) of all histograms together at the final stage."""
        return float(self.final.stats.rwp)

    @property
    def rwp_by_histogram(self) -> list[float]:
        """Rwp (%) of each histogram at the final stage, in the order given."""
        return [float(s.rwp) for s in self.final_hist_stats]

    def value(self, name: str) -> float:
        return float(self.final.full[list(self.evaluator.names).index(name)])

    def esd(self, name: str) -> float:
        return float(self.final.esd_full[list(self.evaluator.names).index(name)])


def parse_strategy(doc: dict, source: str = "strategy") -> Strategy:
    """Strategy from a parsed TOML document; errors name the source and the item."""
    try:
        return _parse_strategy(doc, source)
    except (TypeError, AttributeError, KeyError) as exc:
        # a value of the wrong TOML type (a number where a list or table is expected, ...)
        raise ValueError(f"{source}: malformed strategy: a value has the wrong type ({exc}); see the "
                         "strategy file format in layerscope.refine.strategy") from None


def _parse_strategy(doc: dict, source: str) -> Strategy:
    if not isinstance(doc, dict) or "stage" not in doc:
        raise ValueError(f"{source}: expected at least one [[stage]] table with a 'free' list")
    glob = doc.get("refine", {})
    stages = []
    for i, st in enumerate(doc["stage"]):
        if not isinstance(st, dict) or not isinstance(st.get("free", []), list):
            raise ValueError(f"{source}: stage {i + 1} needs 'free = [\"...\"]' (a list of parameter names)")
        start = st.get("start", {})
        if not all(isinstance(v, (int, float)) for v in start.values()):
            raise ValueError(f"{source}: stage {i + 1}: 'start' values must be numbers")
        mpf = st.get("min_phase_fraction", 0.0)
        if not isinstance(mpf, (int, float)) or not 0 <= mpf < 1:
            raise ValueError(f"{source}: stage {i + 1}: min_phase_fraction must be a number in [0, 1)")
        stages.append(Stage(str(st.get("name", f"stage {i + 1}")), tuple(st.get("free", [])),
                            tuple(st.get("fix", [])), dict(start), st.get("max_cycles"), float(mpf)))
    cons = []
    for c in doc.get("constraint", []):
        terms = c.get("terms")
        if not isinstance(terms, dict) or not terms:
            raise ValueError(f"{source}: a [[constraint]] needs 'terms = {{ NAME = coefficient, ... }}'")
        cons.append(Constraint({k: float(v) for k, v in terms.items()}, c.get("value")))
    for t in doc.get("tie", []):
        ps = t.get("params", [])
        if len(ps) < 2:
            raise ValueError(f"{source}: a [[tie]] needs 'params' with at least two names")
        for other in ps[1:]:
            cons.append(Constraint({ps[0]: 1.0, other: -1.0}, 0.0))
    scale_model = glob.get("scale_model", "phase")
    if scale_model not in ("phase", "gsas"):
        raise ValueError(f"{source}: scale_model must be 'phase' or 'gsas', got {scale_model!r}")
    bounds = {k: tuple(float(x) for x in v) for k, v in doc.get("bounds", {}).items()}
    schedule = glob.get("schedule", "layerscope")
    if schedule not in ("layerscope", "gsas2"):
        raise ValueError(f"{source}: schedule must be 'layerscope' or 'gsas2', got {schedule!r}")
    conv = glob.get("lorentz_convention", "exact")
    if conv not in ("exact", "gsas2"):
        raise ValueError(f"{source}: lorentz_convention must be 'exact' or 'gsas2', got {conv!r}")
    cell_jac = glob.get("cell_jacobian", "exact")
    if cell_jac not in ("exact", "gsas2"):
        raise ValueError(f"{source}: cell_jacobian must be 'exact' or 'gsas2', got {cell_jac!r}")
    from layerscope.refine.conventions import OPTIONS

    convs = doc.get("conventions", {})
    if not isinstance(convs, dict):
        raise ValueError(f"{source}: [conventions] must be a table of option = value")
    for k, v in convs.items():
        if k not in OPTIONS:
            raise ValueError(f"{source}: [conventions] {k!r} is not a convention (known: {', '.join(OPTIONS)})")
        if v not in OPTIONS[k]:
            raise ValueError(f"{source}: [conventions] {k} must be one of {', '.join(OPTIONS[k])}, got {v!r}")
    convs = dict(convs)
    if "lorentz_convention" in glob:
        convs.setdefault("lorentz", conv)
    conv = convs.get("lorentz", conv)
    for key in ("revert_worse", "align_cells"):
        if not isinstance(glob.get(key, False), bool):
            raise ValueError(f"{source}: [refine] {key} must be true or false")
    def num(key, default, kind=float):
        v = glob.get(key, default)
        ok = (not isinstance(v, bool) and isinstance(v, (int, float)) and v == v and abs(v) < 1e15
              and v >= 0 and (kind is float or float(v).is_integer()))
        if not ok:
            raise ValueError(f"{source}: [refine] {key} must be a {'whole' if kind is int else 'finite'} "
                             f"number >= 0, got {v!r}")
        return kind(v)

    return Strategy(tuple(stages), tuple(cons), num("max_cycles", 30, int), num("tol", 0.01),
                    scale_model, bounds, schedule, num("ftol", 1e-3), conv, cell_jac,
                    bool(glob.get("revert_worse", False)), bool(glob.get("align_cells", False)),
                    num("align_range", 0.007), convs)


@_input_reader
def read_strategy(path) -> Strategy:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: strategy file not found")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    from layerscope._toml import check_ints

    check_ints(doc, path)
    return parse_strategy(doc, str(path))


def default_strategy(phase_names, *, n_background: int = 6, calibrate=(), atoms: bool = True,
                     occupancies=()) -> Strategy:
    """The default a Rietveld user expects, in GSAS-II's usual order.

    scales + background → cells → (instrument ``calibrate`` terms, only when asked: a sample
    measurement is not a calibration, so difC and Zero stay at the instrument file's values) →
    sample broadening: isotropic microstrain, then crystallite size, of every phase, from GSAS-II's
    defaults 1 µm / 1000·10⁻⁶ that the model starts with → atoms (coordinates and Uiso/B; occupancies only
    for the ``occupancies`` patterns given). Before least squares every cell is aligned on a grid
    (``align_cells``), and a stage that makes the fit worse is undone (``revert_worse``). Phases
    below 2 % (microstrain) and 10 % (size, atoms) by weight keep those parameters fixed.
    """
    scales = [f"{p}.scale" for p in phase_names]
    cells = [f"{p}.cell" for p in phase_names]
    stages = [Stage("scales + background", ("background", *scales)), Stage("cells", tuple(cells))]
    calibrate = tuple(calibrate or ())
    for c in calibrate:
        if c not in ("zero", "difc", "difa", "difb"):
            raise ValueError(f"calibrate: {c!r} is not an instrument calibration term (zero, difc, difa, difb)")
    if calibrate:
        stages.append(Stage("instrument calibration", tuple(f"inst.{c}" for c in calibrate)))
    stages.append(Stage("microstrain", tuple(f"{p}.mustrain" for p in phase_names), min_phase_fraction=0.02))
    stages.append(Stage("crystallite size", tuple(f"{p}.inv_size" for p in phase_names), min_phase_fraction=0.10))
    if atoms:
        stages.append(Stage("atoms", tuple(f"{p}.xyz" for p in phase_names) + tuple(f"{p}.biso" for p in phase_names),
                            min_phase_fraction=0.10))
    if occupancies:
        stages.append(Stage("occupancies", tuple(occupancies)))
    # broadening bounded just above 0 (1e-6 strain, 10 mm size: nothing a pattern can see), where the
    # Lorentzian still has a derivative and the esd stays defined
    return Strategy(tuple(stages), bounds={"*.mustrain": (1.0, 1e5), "*.inv_size": (1e-4, 1e3)},
                    revert_worse=True, align_cells=True)


def gsas_nac_strategy(max_cycles: int | None = None, *, protocol: str = "layerscope") -> Strategy:
    """GSAS-II's regression job for PG3_22048 (see /shared/data/README.md).

    ``protocol="layerscope"`` runs each stage to convergence with layerscope's engine and the
    exact TOF profile. ``protocol="gsas2"`` re-runs GSAS-II's own job: 2 cycles per stage with
    GSAS-II's cycle rules (``schedule="gsas2"``), its TOF Lorentzian convention and its
    derivative of a cubic cell (``cell_jacobian="gsas2"``: the h² term of d⁻² only; with two
    cycles per stage the path through the unconverged stages depends on it).

    GSAS-II refines the histogram scale by default, so the first stage frees it with the
    background; its phase fraction of CaF2 stays at the starting value 1. Every phase a
    GSAS-II histogram links starts with its default sample broadening — isotropic size
    1 µm and microstrain 1000 × 10⁻⁶, both Lorentzian (mixing 1) — and keeps it in every
    stage; the last stage frees the NAC microstrain from that value.
    """
    if protocol not in ("layerscope", "gsas2"):
        raise ValueError(f"protocol must be 'layerscope' or 'gsas2', got {protocol!r}")
    stages = (
        Stage("background", ("background", "hscale"), start={"*.mustrain": 1000.0, "*.inv_size": 1.0}),
        Stage("+ phase fraction", ("NAC.scale",)),
        Stage("+ cells", ("NAC.cell", "CaF2.cell")),
        Stage("+ microstrain", ("NAC.mustrain",)),
    )
    if protocol == "gsas2":
        return Strategy(stages, max_cycles=max_cycles or 2, scale_model="gsas", schedule="gsas2",
                        lorentz_convention="gsas2", cell_jacobian="gsas2")
    return Strategy(stages, max_cycles=max_cycles or 30, scale_model="gsas")


def stage_bounds(layout, strategy: Strategy):
    from layerscope.refine.parameters import default_bounds

    lo, hi = default_bounds(layout)
    for name, (a, b) in strategy.bounds.items():
        for i in layout.match(name):
            lo[i], hi[i] = a, b
    return lo, hi


def _np(x):
    return np.asarray(x, dtype=float)
