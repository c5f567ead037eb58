"""Built-in crystal models typed from the paper and from the literature.

LRM phases come from the paper's supplementary tables (Yang et al., "Twinning
mediated intralayer frustration governs structural degradation ..."):

* ``lrm-pristine`` — table S1: O3' (C2/m) 97.27 % + spinel (Fd-3m, origin 2) 2.73 %
* ``lrm-uncharged-cell`` — table S2: the same phases refined from the uncharged pouch cell
* ``lrm-100-cycles`` — table S3: O3 (R-3m, hexagonal axes) 72.02 % + spinel 27.98 %

Where a table gives one Biso per species on a shared site (S3, 3b site: 3.603 for
Ni and 3.600 for the others) one value per site is kept, the majority value (3.600).

The pouch-cell components use room-temperature literature structures:

* Al, Fm-3m, a = 4.0495 Å; Cu, Fm-3m, a = 3.6149 Å — R. W. G. Wyckoff, *Crystal
  Structures* vol. 1, 2nd ed. (Interscience, 1963).
* graphite, P6_3/mmc, a = 2.464 Å, c = 6.711 Å — P. Trucano & R. Chen, Nature 258,
  136 (1975).
* LiC6, P6/mmm, a = 4.305 Å, c = 3.706 Å (Li 1a, C 6k x = 1/3) and LiC12 (stage 2),
  P6/mmm, a = 4.288 Å, c = 7.065 Å (Li 1a, C 12n x = 1/3, z from the LiC6 Li–C
  layer distance) — D. Guérard & A. Hérold, Carbon 13, 337 (1975).

The phase fractions quoted in the paper ("at %") are stored with each model as
``fractions``; see :mod:`layerscope.diffraction.fractions` for the convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from layerscope.crystal.phase import Phase, Site

__all__ = ["Model", "preset", "preset_phase", "list_presets", "PRESET_DESCRIPTIONS"]

_TM_SPINEL = (("Mn", 2 / 3), ("Co", 1 / 6), ("Ni", 1 / 6))


@dataclass(frozen=True)
class Model:
    """A named set of phases with the fractions the source reports (may be empty)."""

    name: str
    phases: tuple[Phase, ...]
    fractions: dict[str, float] = field(default_factory=dict)
    description: str = ""
    source: str = ""

    def phase(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(f"model {self.name!r} has no phase {name!r} (phases: {[p.name for p in self.phases]})")


def _o3p(*, a, b, c, beta, o8j, o4i, occ_o8j, b_o, tm4g, y4g, b4g, s2b, b2b, s4h, y4h, b4h, s2c, b2c):
    return Phase(
        "O3p", "C 1 2/m 1", (a, b, c, 90.0, beta, 90.0),
        (
            Site("O1", o8j, (("O", occ_o8j),), b_o, "8j"),
            Site("O2", o4i, (("O", 1.0),), b_o, "4i"),
            Site("TM4g", (0.0, y4g, 0.0), tm4g, b4g, "4g"),
            Site("M2b", (0.0, 0.5, 0.0), s2b, b2b, "2b"),
            Site("Li4h", (0.0, y4h, 0.5), s4h, b4h, "4h"),
            Site("Li2c", (0.0, 0.0, 0.5), s2c, b2c, "2c"),
        ),
        z=6,  # 6 x (Li,TM)2O2 per cell, i.e. formula per O2 as Li1.2TM0.8O2
    )


def _spinel(*, a, x_o, occ_o, b_o, b16d, occ_li, b8a):
    return Phase(
        "S", "F d -3 m:2", (a, a, a, 90.0, 90.0, 90.0),
        (
            Site("O", (x_o, x_o, x_o), (("O", occ_o),), b_o, "32e"),
            Site("TM16d", (0.5, 0.5, 0.5), _TM_SPINEL, b16d, "16d"),
            Site("Li8a", (0.125, 0.125, 0.125), (("Li", occ_li),), b8a, "8a"),
        ),
    )


def _lrm_pristine() -> Model:
    o3p = _o3p(a=4.940, b=8.550, c=5.028, beta=109.333,
               o8j=(0.251, 0.323, 0.224), o4i=(0.219, 0.0, 0.224), occ_o8j=0.997, b_o=0.437,
               tm4g=(("Mn", 0.783), ("Li", 0.021), ("Co", 0.194), ("Ni", 0.001)), y4g=0.169, b4g=1.692,
               s2b=(("Li", 0.561), ("Ni", 0.385), ("Mn", 0.053), ("Co", 0.001)), b2b=4.439,
               s4h=(("Li", 0.998), ("Ni", 0.001), ("Mn", 0.001)), y4h=0.662, b4h=1.011,
               s2c=(("Li", 0.998), ("Ni", 0.001), ("Mn", 0.001)), b2c=1.389)
    s = _spinel(a=8.067, x_o=0.250, occ_o=1.0, b_o=1.871, b16d=0.569, occ_li=1.0, b8a=0.868)
    return Model("lrm-pristine", (o3p, s), {"O3p": 0.9727, "S": 0.0273},
                 "pristine LRM powder, O3' + spinel", "paper, Supplementary Table 1")


def _lrm_uncharged() -> Model:
    o3p = _o3p(a=4.947, b=8.544, c=5.029, beta=109.25,
               o8j=(0.256, 0.324, 0.223), o4i=(0.216, 0.0, 0.223), occ_o8j=0.995, b_o=0.252,
               tm4g=(("Mn", 0.784), ("Li", 0.021), ("Co", 0.194), ("Ni", 0.001)), y4g=0.167, b4g=2.059,
               s2b=(("Li", 0.561), ("Ni", 0.385), ("Mn", 0.053), ("Co", 0.001)), b2b=5.667,
               s4h=(("Li", 0.956), ("Ni", 0.001), ("Mn", 0.001)), y4h=0.662, b4h=0.786,
               s2c=(("Li", 0.956), ("Ni", 0.001), ("Mn", 0.001)), b2c=0.956)
    s = _spinel(a=8.091, x_o=0.246, occ_o=1.0, b_o=0.831, b16d=1.121, occ_li=1.0, b8a=0.175)
    return Model("lrm-uncharged-cell", (o3p, s), {"O3p": 0.9716, "S": 0.0284},
                 "LRM in the uncharged pouch cell, O3' + spinel", "paper, Supplementary Table 2")


def _lrm_100_cycles() -> Model:
    o3 = Phase(
        "O3", "R -3 m:H", (2.840, 2.840, 14.539, 90.0, 90.0, 120.0),
        (
            Site("O", (0.0, 0.0, 0.736), (("O", 0.997),), 1.467, "6c"),
            Site("Li3a", (0.0, 0.0, 0.0), (("Li", 0.431), ("Ni", 0.002)), 3.603, "3a"),
            Site("TM3b", (0.0, 0.0, 0.5), (("Ni", 0.127), ("Li", 0.082), ("Mn", 0.539), ("Co", 0.130)),
                 3.600, "3b"),
        ),
    )
    s = _spinel(a=8.173, x_o=0.233, occ_o=0.978, b_o=0.213, b16d=0.220, occ_li=0.728, b8a=0.579)
    return Model("lrm-100-cycles", (o3, s), {"O3": 0.7202, "S": 0.2798},
                 "LRM after 100 cycles, O3 + spinel", "paper, Supplementary Table 3")


def _al() -> Phase:
    return Phase("Al", "F m -3 m", (4.0495,) * 3 + (90.0,) * 3,
                 (Site("Al", (0, 0, 0), (("Al", 1.0),), 0.80, "4a"),))


def _cu() -> Phase:
    return Phase("Cu", "F m -3 m", (3.6149,) * 3 + (90.0,) * 3,
                 (Site("Cu", (0, 0, 0), (("Cu", 1.0),), 0.55, "4a"),))


def _graphite() -> Phase:
    return Phase("graphite", "P 63/m m c", (2.464, 2.464, 6.711, 90.0, 90.0, 120.0),
                 (Site("C1", (0, 0, 0.25), (("C", 1.0),), 0.40, "2b"),
                  Site("C2", (1 / 3, 2 / 3, 0.25), (("C", 1.0),), 0.40, "2c")))


def _lic6() -> Phase:
    return Phase("LiC6", "P 6/m m m", (4.305, 4.305, 3.706, 90.0, 90.0, 120.0),
                 (Site("Li", (0, 0, 0), (("Li", 1.0),), 1.0, "1a"),
                  Site("C", (1 / 3, 0, 0.5), (("C", 1.0),), 0.5, "6k")))


def _lic12() -> Phase:
    z = (3.706 / 2) / 7.065
    return Phase("LiC12", "P 6/m m m", (4.288, 4.288, 7.065, 90.0, 90.0, 120.0),
                 (Site("Li", (0, 0, 0), (("Li", 1.0),), 1.0, "1a"),
                  Site("C", (1 / 3, 0, z), (("C", 1.0),), 0.5, "12n")))


def _cell_components() -> tuple[Phase, ...]:
    return (_al(), _cu(), _graphite(), _lic12(), _lic6())


def _lrm_pouch() -> Model:
    lrm = _lrm_uncharged()
    o3 = _lrm_100_cycles().phase("O3")
    return Model("lrm-pouch", lrm.phases + (o3,) + _cell_components(), {"O3p": 0.9716, "S": 0.0284},
                 "graphite || LRM pouch cell: O3', spinel, O3 and the cell components",
                 "tables S2/S3 + literature cell components")


_MODELS = {
    "lrm-pristine": _lrm_pristine,
    "lrm-uncharged-cell": _lrm_uncharged,
    "lrm-100-cycles": _lrm_100_cycles,
    "lrm-pouch": _lrm_pouch,
}
_PHASES = {"Al": _al, "Cu": _cu, "graphite": _graphite, "LiC12": _lic12, "LiC6": _lic6}

PRESET_DESCRIPTIONS = {
    "lrm-pristine": "pristine LRM powder: O3' (C2/m) 97.27 % + spinel 2.73 % [table S1]",
    "lrm-uncharged-cell": "LRM in the uncharged pouch cell: O3' 97.16 % + spinel 2.84 % [table S2]",
    "lrm-100-cycles": "LRM after 100 cycles: O3 (R-3m) 72.02 % + spinel 27.98 % [table S3]",
    "lrm-pouch": "pouch cell: O3', spinel, O3 + Al, Cu, graphite, LiC12, LiC6",
    "Al": "aluminium current collector, Fm-3m, a = 4.0495 Å [Wyckoff 1963]",
    "Cu": "copper current collector, Fm-3m, a = 3.6149 Å [Wyckoff 1963]",
    "graphite": "graphite anode, P6_3/mmc, a = 2.464, c = 6.711 Å [Trucano & Chen 1975]",
    "LiC12": "stage-2 lithiated graphite, P6/mmm, a = 4.288, c = 7.065 Å [Guérard & Hérold 1975]",
    "LiC6": "stage-1 lithiated graphite, P6/mmm, a = 4.305, c = 3.706 Å [Guérard & Hérold 1975]",
}


def list_presets() -> list[str]:
    """Names of every built-in model and single phase."""
    return list(_MODELS) + list(_PHASES)


def preset(name: str) -> Model:
    """A built-in model by name (a single-phase preset gives a one-phase model)."""
    if name in _MODELS:
        return _MODELS[name]()
    if name in _PHASES:
        p = _PHASES[name]()
        return Model(name, (p,), {}, PRESET_DESCRIPTIONS[name], "literature")
    raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(list_presets())}")


def preset_phase(name: str) -> Phase:
    """One phase: a single-phase preset (``"Al"``) or ``"model:phase"`` (``"lrm-pristine:O3p"``)."""
    if ":" in name:
        model, ph = name.split(":", 1)
        return preset(model).phase(ph)
    m = preset(name)
    if len(m.phases) != 1:
        raise KeyError(f"preset {name!r} has several phases ({[p.name for p in m.phases]}); "
                       f"name one as '{name}:PHASE'")
    return m.phases[0]
