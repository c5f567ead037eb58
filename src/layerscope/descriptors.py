"""Structural descriptors of Li-rich layered oxides (the paper's eq. 1–3 and Fig. 2c).

For the O3' (C2/m, Li2MnO3-like) phase, with Occ(X, w) the occupancy of species X on
the Wyckoff site w and TM = every species other than Li and O:

    DoO (Li@TM6) = Occ(Li, 2b) / [Occ(Li, 2b) + 2·Occ(Li, 4g)]                       (eq. 1)
    DoD (LiO2)   = 2·Occ(TM, 4h) / [2·Occ(TM, 4h) + 2·Occ(TM, 4g) + Occ(TM, 2b)]       (eq. 2)

(2b and 4g form the TMO2 slab, 4h and 2c the Li slab; the factors 2 are the site
multiplicity ratios). Oxygen vacancy of a phase is 1 − the multiplicity-weighted mean O
occupancy, and for the electrode (eq. 3)

    O vacancy = O_vac(O3')·frac(O3') + O_vac(O3)·frac(O3)

with frac the phase fractions as refined (the paper's "at %", i.e. FullProf's weight
fractions, normalised over all LRM phases including spinel).

d_inter and d_intra follow the Fig. 2c caption (:mod:`layerscope.crystal.settings`).
Every descriptor comes with an esd propagated to first order from a covariance of the
occupancies / cell parameters / fractions when one is given (σ² = J C Jᵀ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope.crystal.phase import Phase, Site
from layerscope.crystal.settings import d_inter_layer, d_intra_layer

__all__ = ["doo", "dod", "o_vacancy_phase", "o_vacancy", "find_o3p_sites", "Descriptor", "descriptors",
           "layer_spacings", "phase_descriptors"]

_NON_TM = {"Li", "O", "6Li", "7Li", "H", "2H", "F"}


@dataclass(frozen=True)
class Descriptor:
    value: float
    esd: float = float("nan")


def _is_tm(symbol: str) -> bool:
    return symbol not in _NON_TM


def _occ(site: Site, which: str) -> float:
    if which == "Li":
        return sum(o for s, o in site.species if s.lstrip("0123456789") == "Li")
    return sum(o for s, o in site.species if _is_tm(s))


def find_o3p_sites(phase: Phase) -> dict[str, Site]:
    """The 2b, 4g, 4h and 2c cation sites of an O3' (C2/m) phase.

    Uses the sites' Wyckoff letters when present, else their positions in the standard
    C 1 2/m 1 setting (2b: 0,½,0; 4g: 0,y,0; 4h: 0,y,½; 2c: 0,0,½).
    """
    if phase.space_group.number != 12:
        raise ValueError(f"phase {phase.name!r} ({phase.space_group.xhm()}) is not O3' (C2/m): "
                         "DoO/DoD are defined on its 2b/4g/4h sites")
    out: dict[str, Site] = {}
    for s in phase.sites:
        if all(sym == "O" for sym, _ in s.species):
            continue
        w = (s.wyckoff or "").strip()
        key = w if w in ("2b", "4g", "4h", "2c") else _wyckoff_from_position(s.xyz)
        if key:
            if key in out:
                raise ValueError(f"phase {phase.name!r}: two cation sites on Wyckoff {key}: "
                                 f"{out[key].label!r} and {s.label!r}")
            out[key] = s
    missing = [k for k in ("2b", "4g", "4h") if k not in out]
    if missing:
        raise ValueError(f"phase {phase.name!r} has no cation site on Wyckoff {', '.join(missing)} "
                         "(expected the Li2MnO3-like O3' sites 2b, 4g, 4h)")
    return out


def _wyckoff_from_position(xyz) -> str | None:
    x, y, z = (v % 1.0 for v in xyz)

    def near(a, b):
        return abs(((a - b) + 0.5) % 1.0 - 0.5) < 1e-3

    if near(x, 0) and near(z, 0):
        return "2b" if near(y, 0.5) else ("2a" if near(y, 0) else "4g")
    if near(x, 0) and near(z, 0.5):
        return "2c" if near(y, 0) else ("2d" if near(y, 0.5) else "4h")
    return None


def _propagate(func, x0: np.ndarray, cov):
    import jax

    jax.config.update("jax_enable_x64", True)
    value = float(func(x0))
    if cov is None:
        return Descriptor(value)
    jac = np.asarray(jax.grad(func)(np.asarray(x0, dtype=float)))
    var = float(jac @ np.asarray(cov, dtype=float) @ jac)
    return Descriptor(value, float(np.sqrt(max(var, 0.0))))


def doo(occ_li_2b: float, occ_li_4g: float, cov=None) -> Descriptor:
    """Degree of honeycomb Li@TM6 ordering, eq. (1), as a fraction (×100 for %).

    ``cov``: 2×2 covariance of (Occ(Li,2b), Occ(Li,4g)).
    """
    return _propagate(lambda v: v[0] / (v[0] + 2.0 * v[1]), np.array([occ_li_2b, occ_li_4g]), cov)


def dod(occ_tm_4h: float, occ_tm_4g: float, occ_tm_2b: float, cov=None) -> Descriptor:
    """Degree of TM disorder into the Li slab, eq. (2), as a fraction.

    ``cov``: 3×3 covariance of (Occ(TM,4h), Occ(TM,4g), Occ(TM,2b)).
    """
    return _propagate(lambda v: 2.0 * v[0] / (2.0 * v[0] + 2.0 * v[1] + v[2]),
                      np.array([occ_tm_4h, occ_tm_4g, occ_tm_2b]), cov)


def o_vacancy_phase(phase: Phase) -> float:
    """1 − multiplicity-weighted mean O occupancy of the phase's O sites."""
    mult = phase.site_multiplicities()
    num = den = 0.0
    for m, s in zip(mult, phase.sites):
        o = sum(occ for sym, occ in s.species if sym == "O")
        if any(sym == "O" for sym, _ in s.species):
            num += m * o
            den += m
    if den == 0:
        raise ValueError(f"phase {phase.name!r} has no O site")
    return 1.0 - num / den


def o_vacancy(o_vac_o3p: float, frac_o3p: float, o_vac_o3: float = 0.0, frac_o3: float = 0.0,
              cov=None) -> Descriptor:
    """Electrode O vacancy, eq. (3). ``cov``: 4×4 covariance of the four inputs."""
    return _propagate(lambda v: v[0] * v[1] + v[2] * v[3],
                      np.array([o_vac_o3p, frac_o3p, o_vac_o3, frac_o3]), cov)


def layer_spacings(phase: Phase) -> dict[str, float]:
    """d_inter and d_intra (Å) of an O3' or O3 phase (Fig. 2c caption)."""
    return {"d_inter": d_inter_layer(phase), "d_intra": d_intra_layer(phase)}


def phase_descriptors(phase: Phase) -> dict[str, float]:
    """DoO, DoD (O3' only), O vacancy and layer spacings of one phase, values only.

    Table S1 gives DoO = 0.561/(0.561 + 2·0.021) = 93.0 % and DoD = 0.17 %.
    """
    out: dict[str, float] = {"phase": phase.name}
    sg = phase.space_group.number
    if sg == 12:
        sites = find_o3p_sites(phase)
        out["DoO"] = doo(_occ(sites["2b"], "Li"), _occ(sites["4g"], "Li")).value
        out["DoD"] = dod(_occ(sites["4h"], "TM"), _occ(sites["4g"], "TM"), _occ(sites["2b"], "TM")).value
    if sg in (12, 166):
        out.update(layer_spacings(phase))
    out["O_vacancy"] = o_vacancy_phase(phase)
    return out


def descriptors(phases) -> dict[str, dict[str, float]]:
    """Structural descriptors (:func:`phase_descriptors`) of every phase, by phase name.

    For the O3' (C2/m) phase, with Occ(X, w) the occupancy of species X on Wyckoff site w:

    .. math::

       \\mathrm{DoO} = \\frac{Occ(Li, 2b)}{Occ(Li, 2b) + 2\\,Occ(Li, 4g)} \\quad (1)

       \\mathrm{DoD} = \\frac{2\\,Occ(TM, 4h)}{2\\,Occ(TM, 4h) + 2\\,Occ(TM, 4g) + Occ(TM, 2b)} \\quad (2)

    and the O vacancy of a phase is 1 − the multiplicity-weighted mean O occupancy (the electrode's,
    eq. 3, is :func:`o_vacancy`). Eq. 1–3 and the layer spacings follow Yang et al. (the paper this
    package reproduces; Fig. 2c caption for d_inter and d_intra).

    Parameters
    ----------
    phases : Phase, str, path, refinement result, or a list of these
        A preset or CIF specification (``lrm-pristine``, ``lrm-pristine:O3p``, ``NAC.cif``) or a
        refinement result (its refined phases).

    Returns
    -------
    dict
        ``{phase name: {"phase", "DoO", "DoD", "d_inter", "d_intra", "O_vacancy"}}``: DoO, DoD and
        O_vacancy as fractions (×100 for %), d_inter and d_intra in Å; DoO and DoD only for a C2/m
        phase, the spacings only for C2/m and R-3m phases.

    Examples
    --------
    >>> import layerscope as ls
    >>> d = ls.descriptors("lrm-pristine:O3p")["O3p"]
    >>> round(d["DoO"], 4), round(d["d_inter"], 3)          # table S1: 0.561/(0.561 + 2·0.021)
    (0.9303, 4.744)
    """
    import os

    from layerscope.crystal.load import load_phases

    items = phases if isinstance(phases, (list, tuple)) else [phases]
    out: dict[str, dict[str, float]] = {}
    for item in items:
        if isinstance(item, Phase):
            found = [item]
        elif isinstance(item, (str, os.PathLike)):
            found = [p for p, _ in load_phases([os.fspath(item)])]
        elif hasattr(item, "phases"):
            found = list(item.phases)
        else:
            raise TypeError(f"expected a Phase, a preset/CIF specification or a result with phases, got {item!r}")
        for p in found:
            out[p.name] = phase_descriptors(p)
    return out


class _CallableDescriptors(__import__("types").ModuleType):
    """``layerscope.descriptors(phases)`` calls :func:`descriptors`; the module stays a module."""

    def __call__(self, phases):
        return descriptors(phases)


__import__("sys").modules[__name__].__class__ = _CallableDescriptors
