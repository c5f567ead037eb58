"""Neutron coherent scattering lengths and atomic weights.

The table lives in ``layerscope/data/neutron_scattering_lengths.csv`` with its
source named in the file header (Sears, Neutron News 3, 26 (1992)). Species
are written as element symbols (``"Li"``, natural abundance) or isotopes with
the mass number first (``"7Li"``, ``"2H"``). Ionic charges in CIF type symbols
(``"Mn3+"``, ``"O2-"``) are stripped: nuclear scattering does not depend on them.

Two tables of b_coh are offered, because two respected codes differ (Li −1.90 vs −1.93 fm,
Mn −3.73 vs −3.75 fm: 0.3–4 % in |F|²):

* ``"sears1992"`` (default for layerscope's own and FullProf-style jobs): Sears, Neutron News 3, 26 (1992);
* ``"gsas2"``: the table GSAS-II uses (Rauch & Waschkowski, ILL Neutron Data Booklet 2003;
  ``layerscope/data/neutron_scattering_lengths_gsas2.csv`` says where each value comes from).
  A refinement that reads a GSAS-II ``.instprm`` defaults to it, so that its |F|² are GSAS-II's.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["b_coh_fm", "atomic_weight", "normalise_species", "known_species", "SCATTERING_TABLES",
           "check_scattering_table"]

#: names of the neutron scattering-length tables
SCATTERING_TABLES = ("sears1992", "gsas2")

_SPECIES_RE = re.compile(r"^\s*(\d*)([A-Za-z]{1,2})(?:\d*[+-]|[+-]\d*)?\s*$")


@dataclass(frozen=True)
class _Entry:
    z: int
    b_coh_fm: float
    b_abs_fm: float
    weight: float


@lru_cache(maxsize=1)
def _table() -> dict[str, _Entry]:
    text = resources.files("layerscope.data").joinpath("neutron_scattering_lengths.csv").read_text()
    rows = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    out = {}
    for rec in csv.DictReader(rows):
        out[rec["symbol"]] = _Entry(int(rec["Z"]), float(rec["b_coh_fm"]), float(rec["b_abs_fm"]),
                                    float(rec["weight"]))
    return out


def normalise_species(symbol: str) -> str:
    """Return the table key for a species symbol.

    ``"MN3+"`` -> ``"Mn"``, ``"li"`` -> ``"Li"``, ``"7li"`` -> ``"7Li"``.
    Raises ``ValueError`` for a symbol that is not an element or tabulated isotope.
    """
    m = _SPECIES_RE.match(symbol)
    if not m:
        raise ValueError(f"species {symbol!r} is not an element symbol (expected e.g. 'Mn', 'O2-', '7Li')")
    mass, el = m.group(1), m.group(2).capitalize()
    key = f"{mass}{el}"
    if key not in _table():
        if mass:
            raise ValueError(f"isotope {symbol!r} has no tabulated scattering length "
                             f"(tabulated: {', '.join(k for k in _table() if k[0].isdigit())})")
        raise ValueError(f"species {symbol!r} is not a known element")
    return key


def known_species() -> list[str]:
    """All tabulated species keys (elements and isotopes)."""
    return list(_table())


@lru_cache(maxsize=1)
def _gsas2_table() -> dict[str, float]:
    text = resources.files("layerscope.data").joinpath("neutron_scattering_lengths_gsas2.csv").read_text()
    rows = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    return {rec["symbol"]: float(rec["b_coh_fm"]) for rec in csv.DictReader(rows)}


def check_scattering_table(table: str) -> str:
    """``table`` if it names a scattering-length table, else a ValueError listing the names."""
    if table not in SCATTERING_TABLES:
        raise ValueError(f"scattering-length table must be one of {', '.join(SCATTERING_TABLES)}, got {table!r}")
    return table


def b_coh_fm(symbol: str, table: str = "sears1992") -> float:
    """Bound coherent neutron scattering length in fm (real part).

    ``table``: ``"sears1992"`` (Sears 1992) or ``"gsas2"`` (GSAS-II's table, ILL Neutron Data
    Booklet 2003); a species the second table lacks keeps its Sears value.
    """
    key = normalise_species(symbol)
    if check_scattering_table(table) == "gsas2":
        g = _gsas2_table()
        if key in g:
            return g[key]
    return _table()[key].b_coh_fm


def atomic_weight(symbol: str) -> float:
    """Atomic weight in g/mol (isotopic mass for an isotope)."""
    return _table()[normalise_species(symbol)].weight


def element_of(symbol: str) -> str:
    """Element symbol of a species (``"7Li"`` -> ``"Li"``)."""
    key = normalise_species(symbol)
    return key.lstrip("0123456789")
