"""The operando series protocol: which stages refine the reference and the series patterns, and
the rules the sequential loop (:mod:`layerscope.operando.sequential`) applies between patterns.

The protocol (a TOML file, default ``layerscope/data/operando_lrm.toml``) has a
``[reference]`` part — stages for the first, long uncharged pattern — and a ``[series]``
part for every following pattern, plus shared ``[[constraint]]``/``[[tie]]`` tables. The
``[series]`` table also carries the series rules: ``min_fraction``/``keep_fraction`` (which
phases' cells and structures refine), ``max_cell_step``/``cell_step_hours`` (the trust region
of the cells), ``[[series.hold]]`` groups, ``[[series.window]]`` quantities, ``bridge_holds``,
the determination thresholds (``max_relative_esd``, ``min_signal``) and GSAS-II's χ² rule
(``chi2_tol``). Each is described where it is used (:mod:`layerscope.operando.guards`,
:mod:`layerscope.operando.bridge`, :mod:`layerscope.operando.sequential`).
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from layerscope._errors import reader
from layerscope.refine.strategy import Strategy, parse_strategy

__all__ = ["SeriesProtocol", "read_series_protocol", "default_series_protocol"]


@dataclass(frozen=True)
class SeriesProtocol:
    reference: Strategy
    series: Strategy
    min_fraction: float = 0.03
    lrm_phases: tuple[str, ...] = ("O3p", "O3", "S")
    anode_phases: tuple[str, ...] = ("graphite", "LiC12", "LiC6")
    fixed_scales: tuple[str, ...] = ()
    keep_ratio: tuple[tuple[str, str], ...] = ()
    conserve: tuple[tuple[tuple[str, ...], str], ...] = ()
    source: str = ""
    digest: str = ""
    #: a phase whose cell is being refined keeps it free down to this fraction (hysteresis;
    #: None: min_fraction / 4)
    keep_fraction: float | None = None
    #: largest relative change of a lattice parameter between consecutive patterns (the cell
    #: bounds of each pattern: previous value ± this)
    max_cell_step: float = 0.005
    cell_step_hours: float = 0.5
    #: (phase, fraction, params): params refined only while the phase's LRM fraction is at
    #: least ``fraction``, held at their last values below it
    hold: tuple[tuple[str, float, tuple[str, ...]], ...] = ()
    #: Chebyshev background terms of every pattern (None: refine_series' argument)
    n_background: int | None = None
    #: (param, within): a quantity the series refines inside ± ``within`` (its own units) of
    #: the reference pattern's refined value — one that does not change during the experiment
    #: but that the reference alone determines poorly (the Al foil's cell)
    window: tuple[tuple[str, float], ...] = ()
    #: re-refine stretches of held patterns with the held values interpolated in time between
    #: the refined patterns on either side (see the module docstring)
    bridge_holds: bool = False
    #: a phase is not determined in a pattern when its fraction's esd exceeds this fraction of
    #: the value, or its Bragg signal is below ``min_signal`` σ (layerscope.refine.determined)
    max_relative_esd: float = 0.5
    min_signal: float = 5.0
    #: GSAS-II's convergence rule besides shift/esd: a stage also ends when χ² falls by less
    #: than this (relative) over an undamped cycle (None: shift/esd only)
    chi2_tol: float | None = 1e-4
    #: (name, formula): derived quantities reported with esds (:mod:`layerscope.operando.derived`)
    derived: tuple[tuple[str, str], ...] = ()
    #: (name, unit or None) of each derived quantity, in the order of ``derived``
    derived_units: tuple[tuple[str, str | None], ...] = ()

    def cell_limit(self, dt_h: float | None) -> float:
        """Largest relative cell change allowed between patterns ``dt_h`` hours apart."""
        if dt_h is None or not np.isfinite(dt_h):
            return self.max_cell_step
        return self.max_cell_step * max(1.0, abs(dt_h) / self.cell_step_hours)

    @property
    def keep(self) -> float:
        return self.min_fraction / 4 if self.keep_fraction is None else self.keep_fraction


def _parse_protocol(text: str, source: str) -> SeriesProtocol:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML ({exc})") from None
    from layerscope._toml import check_ints

    check_ints(doc, source)
    for key in ("reference", "series"):
        if key not in doc or "stage" not in doc[key]:
            raise ValueError(f"{source}: needs [[{key}.stage]] tables (stages for the "
                             f"{'reference pattern' if key == 'reference' else 'series patterns'})")
    shared = {k: doc[k] for k in ("constraint", "tie", "bounds") if k in doc}
    ref_doc = dict(doc["reference"])
    ref_refine = dict(ref_doc.get("refine", {}))
    keep_ratio = tuple(tuple(x) for x in ref_refine.pop("keep_ratio", []))
    if any(len(x) != 2 for x in keep_ratio):
        raise ValueError(f"{source}: reference.refine.keep_ratio takes pairs of phase names")
    ref_doc["refine"] = ref_refine
    ref = parse_strategy({**shared, **ref_doc}, f"{source} [reference]")
    ser_doc = {k: v for k, v in doc["series"].items()
               if k not in ("min_fraction", "lrm_phases", "anode_phases", "fixed_scales", "conserve",
                           "keep_fraction", "max_cell_step", "cell_step_hours", "hold", "n_background",
                           "window", "bridge_holds", "max_relative_esd", "min_signal", "chi2_tol",
                           "derived")}
    ser = parse_strategy({**shared, **ser_doc}, f"{source} [series]")
    s = doc["series"]
    mf = float(s.get("min_fraction", 0.03))
    if not 0 <= mf < 1:
        raise ValueError(f"{source}: series.min_fraction must lie in [0, 1), got {mf}")
    kf = s.get("keep_fraction")
    if kf is not None and not 0 <= float(kf) <= mf:
        raise ValueError(f"{source}: series.keep_fraction must lie in [0, min_fraction = {mf}], got {kf}")
    step = float(s.get("max_cell_step", 0.005))
    if not 0 < step < 0.1:
        raise ValueError(f"{source}: series.max_cell_step must lie in (0, 0.1), got {step}")
    step_h = float(s.get("cell_step_hours", 0.5))
    if not step_h > 0:
        raise ValueError(f"{source}: series.cell_step_hours must be > 0, got {step_h}")
    nb = s.get("n_background")
    if nb is not None and (isinstance(nb, bool) or not isinstance(nb, int) or not 0 <= nb <= 36):
        raise ValueError(f"{source}: series.n_background must be an integer in [0, 36], got {nb!r}")
    conserve = []
    for g in s.get("conserve", []):
        if not isinstance(g, dict) or not g.get("phases") or not g.get("element"):
            raise ValueError(f"{source}: each series.conserve entry needs 'phases = [...]' and 'element = \"O\"'")
        conserve.append((tuple(g["phases"]), str(g["element"])))
    hold = []
    for h in s.get("hold", []):
        if not isinstance(h, dict) or "phase" not in h or "below" not in h or not h.get("params"):
            raise ValueError(f"{source}: each [[series.hold]] needs phase = \"NAME\", below = FRACTION and "
                             "params = [...]")
        if not 0 <= float(h["below"]) < 1:
            raise ValueError(f"{source}: [[series.hold]] {h['phase']}: below must lie in [0, 1), got {h['below']}")
        hold.append((str(h["phase"]), float(h["below"]), tuple(str(x) for x in h["params"])))
    window = []
    for w in s.get("window", []):
        if not isinstance(w, dict) or "param" not in w or "within" not in w:
            raise ValueError(f"{source}: each [[series.window]] needs param = \"PHASE.NAME\" and within = VALUE")
        if not (isinstance(w["within"], (int, float)) and not isinstance(w["within"], bool)
                and np.isfinite(w["within"]) and w["within"] > 0):
            raise ValueError(f"{source}: [[series.window]] {w['param']}: within must be a positive number, "
                             f"got {w['within']!r}")
        window.append((str(w["param"]), float(w["within"])))
    bridge = s.get("bridge_holds", False)
    if not isinstance(bridge, bool):
        raise ValueError(f"{source}: series.bridge_holds must be true or false, got {bridge!r}")
    mre, msig = s.get("max_relative_esd", 0.5), s.get("min_signal", 5.0)
    for key, v in (("max_relative_esd", mre), ("min_signal", msig)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (np.isfinite(v) and v > 0):
            raise ValueError(f"{source}: series.{key} must be a positive number, got {v!r}")
    ctol = s.get("chi2_tol", 1e-4)
    if ctol is not None and (isinstance(ctol, bool) or not isinstance(ctol, (int, float))
                             or not (np.isfinite(ctol) and 0 <= ctol < 1)):
        raise ValueError(f"{source}: series.chi2_tol must be a number in [0, 1) (0: shift/esd only), got {ctol!r}")
    derived, units = [], []
    for k, d in enumerate(s.get("derived", []), 1):
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("expr"), str):
            raise ValueError(f"{source}: each [[series.derived]] needs name = \"NAME\" and expr = \"FORMULA\"")
        from layerscope._errors import InputError
        from layerscope.operando.derived import check_unit, parse_derived

        where = f"[[series.derived]] #{k} ({d['name']!r})"
        extra = sorted(set(d) - {"name", "expr", "unit"})
        if extra:
            raise InputError(f"unknown key(s) {', '.join(map(repr, extra))} (a derived quantity takes name, expr "
                             "and unit)", path=source, where=where)
        parse_derived(d["name"], d["expr"], _AnyName(), _AnyName(), f"{source} [[series.derived]]")
        derived.append((d["name"], d["expr"]))
        units.append((d["name"], None if "unit" not in d else check_unit(d["unit"], path=source, where=where)))
    return SeriesProtocol(ref, ser, mf, tuple(s.get("lrm_phases", ("O3p", "O3", "S"))),
                          tuple(s.get("anode_phases", ("graphite", "LiC12", "LiC6"))),
                          tuple(s.get("fixed_scales", ())), keep_ratio, tuple(conserve), source,
                          hashlib.sha256(text.encode()).hexdigest()[:16],
                          None if kf is None else float(kf), step, step_h, tuple(hold), nb, tuple(window), bridge,
                          float(mre), float(msig), float(ctol) if ctol else None, tuple(derived),
                          tuple(units))


class _AnyName:
    """Accepts every name: a protocol's formulas are checked for syntax when read, and against
    the model's quantities when a series is refined."""

    def __contains__(self, name) -> bool:
        return True


@reader
def read_series_protocol(path) -> SeriesProtocol:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: strategy file not found")
    return _parse_protocol(path.read_text(), str(path))


def default_series_protocol() -> SeriesProtocol:
    text = resources.files("layerscope.data").joinpath("operando_lrm.toml").read_text()
    return _parse_protocol(text, "operando_lrm.toml (built in)")
