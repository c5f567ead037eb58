"""Crystal phases with mixed-occupancy sites.

A :class:`Phase` is plain, immutable data: a space group (any symbol gemmi
understands, including settings such as ``"F d -3 m:2"`` and ``"R -3 m:H"``),
a cell, and a list of :class:`Site` objects. Several species may share one site
(``Li``/``Ni``/``Mn``/``Co`` on the 2b site of Li2MnO3-like O3', table S1 of the
paper), each with its own occupancy; the site carries one isotropic
displacement parameter ``biso`` (Å²), as FullProf and the paper's tables do.

Symmetry (operations, centring, systematic absences, Wyckoff expansion) comes
from gemmi; nothing here hand-writes space-group tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import gemmi
import numpy as np

from layerscope.crystal.scattering import atomic_weight, b_coh_fm, normalise_species

__all__ = ["Site", "Phase", "ExpandedSites", "space_group", "symmetry_operations"]

_AVOGADRO = 6.02214076e23


def space_group(symbol: str) -> gemmi.SpaceGroup:
    """Return the gemmi space group for a Hermann–Mauguin symbol or number.

    Raises ``ValueError`` naming the symbol when gemmi does not know it.
    """
    try:
        sg = gemmi.SpaceGroup(str(symbol))
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"unknown space group {symbol!r}: {exc}") from None
    return sg


def symmetry_operations(symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """All symmetry operations (including centring) as arrays.

    Returns
    -------
    rot : (n_ops, 3, 3) float array acting on fractional coordinates
    trans : (n_ops, 3) float array, fractional translations
    """
    ops = list(space_group(symbol).operations())
    rot = np.array([op.rot for op in ops], dtype=float) / gemmi.Op.DEN
    trans = np.array([op.tran for op in ops], dtype=float) / gemmi.Op.DEN
    return rot, trans


@dataclass(frozen=True)
class Site:
    """One crystallographic site, possibly shared by several species.

    Parameters
    ----------
    label : site label (unique within a phase)
    xyz : fractional coordinates
    species : ((symbol, occupancy), ...); occupancy is the fraction of the site's
        positions occupied by that species (0..1)
    biso : isotropic displacement parameter B in Å² (B = 8π²U)
    wyckoff : Wyckoff letter with multiplicity (e.g. ``"4g"``), informational
    """

    label: str
    xyz: tuple[float, float, float]
    species: tuple[tuple[str, float], ...]
    biso: float = 0.0
    wyckoff: str | None = None

    def __post_init__(self):
        xyz = tuple(float(v) for v in self.xyz)
        if len(xyz) != 3 or not all(np.isfinite(xyz)):
            raise ValueError(f"site {self.label!r}: xyz must be three finite numbers, got {self.xyz!r}")
        object.__setattr__(self, "xyz", xyz)
        if not self.species:
            raise ValueError(f"site {self.label!r}: no species given")
        species = []
        for sym, occ in self.species:
            occ = float(occ)
            if not np.isfinite(occ) or occ < 0 or occ > 1 + 1e-9:
                raise ValueError(f"site {self.label!r}: occupancy of {sym} must lie in [0, 1], got {occ}")
            species.append((normalise_species(sym), occ))
        object.__setattr__(self, "species", tuple(species))
        if not np.isfinite(self.biso) or self.biso < 0:
            raise ValueError(f"site {self.label!r}: Biso must be a finite number >= 0 Å², got {self.biso}")
        total = sum(o for _, o in species)
        if total > 1 + 1e-5:
            raise ValueError(f"site {self.label!r}: occupancies sum to {total:.6f} > 1")

    @property
    def b_mean_fm(self) -> float:
        """Occupancy-weighted coherent scattering length of the site (fm)."""
        return sum(b_coh_fm(s) * o for s, o in self.species)

    def occupancy(self, symbol: str) -> float:
        """Occupancy of one species on this site (0 if absent)."""
        key = normalise_species(symbol)
        return sum(o for s, o in self.species if s == key)


@dataclass(frozen=True)
class ExpandedSites:
    """All symmetry-equivalent positions of every site in the unit cell.

    ``frac[i]`` belongs to ``phase.sites[site_index[i]]``.
    """

    frac: np.ndarray
    site_index: np.ndarray


@dataclass(frozen=True)
class Phase:
    """A crystalline phase: space group, cell (Å, degrees) and sites.

    Examples
    --------
    >>> al = Phase("Al", "F m -3 m", (4.0495, 4.0495, 4.0495, 90, 90, 90),
    ...            (Site("Al", (0, 0, 0), (("Al", 1.0),), 0.8, "4a"),))
    >>> round(al.density_g_cm3, 3)
    2.698
    """

    name: str
    spacegroup: str
    cell: tuple[float, float, float, float, float, float]
    sites: tuple[Site, ...] = field(default_factory=tuple)
    z: int | None = None

    def __post_init__(self):
        cell = tuple(float(v) for v in self.cell)
        if len(cell) != 6:
            raise ValueError(f"phase {self.name!r}: cell needs a, b, c, alpha, beta, gamma; got {self.cell!r}")
        if not all(np.isfinite(cell)) or min(cell[:3]) <= 0 or not all(0 < x < 180 for x in cell[3:]):
            raise ValueError(f"phase {self.name!r}: impossible cell {cell}")
        object.__setattr__(self, "cell", cell)
        object.__setattr__(self, "sites", tuple(self.sites))
        space_group(self.spacegroup)  # validates the symbol
        labels = [s.label for s in self.sites]
        if len(set(labels)) != len(labels):
            raise ValueError(f"phase {self.name!r}: duplicate site labels {labels}")
        if self.volume <= 0:
            raise ValueError(f"phase {self.name!r}: cell angles give no volume {cell}")

    # --- geometry -----------------------------------------------------------------
    @property
    def gemmi_cell(self) -> gemmi.UnitCell:
        return gemmi.UnitCell(*self.cell)

    @property
    def volume(self) -> float:
        """Cell volume in Å³."""
        a, b, c, al, be, ga = self.cell
        ca, cb, cg = np.cos(np.radians([al, be, ga]))
        return float(a * b * c * np.sqrt(max(1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg, 0.0)))

    @property
    def metric_tensor(self) -> np.ndarray:
        """Direct metric tensor G (Å²)."""
        return metric_tensor(self.cell)

    @property
    def space_group(self) -> gemmi.SpaceGroup:
        return space_group(self.spacegroup)

    # --- composition ----------------------------------------------------------------
    @cached_property
    def _expanded(self) -> ExpandedSites:
        rot, trans = symmetry_operations(self.spacegroup)
        frac, idx = [], []
        for i, s in enumerate(self.sites):
            pos = unique_positions(np.asarray(s.xyz), rot, trans)
            frac.append(pos)
            idx.append(np.full(len(pos), i))
        if not frac:
            return ExpandedSites(np.zeros((0, 3)), np.zeros(0, dtype=int))
        return ExpandedSites(np.concatenate(frac), np.concatenate(idx))

    def expand(self) -> ExpandedSites:
        """Every symmetry-equivalent position in the cell (through gemmi's operations)."""
        return self._expanded

    def site_multiplicities(self) -> np.ndarray:
        """Number of positions per site in the conventional cell."""
        return np.bincount(self._expanded.site_index, minlength=len(self.sites))

    def cell_contents(self) -> dict[str, float]:
        """Atoms of each species per unit cell (occupancy-weighted)."""
        mult = self.site_multiplicities()
        out: dict[str, float] = {}
        for m, s in zip(mult, self.sites):
            for sym, occ in s.species:
                out[sym] = out.get(sym, 0.0) + m * occ
        return out

    @property
    def formula_units(self) -> int:
        """Z, formula units per cell: ``z`` when given, else the greatest common divisor of
        the site multiplicities. Weight fractions do not depend on this choice; molar
        fractions do (presets give the conventional Z, e.g. 6 x Li1.2TM0.8O2 for O3')."""
        return int(self.z) if self.z else _formula_units(self)

    @property
    def formula(self) -> dict[str, float]:
        """Formula per formula unit (cell contents / Z)."""
        z = self.formula_units
        return {k: v / z for k, v in self.cell_contents().items()}

    @property
    def formula_mass(self) -> float:
        """Mass of one formula unit in g/mol."""
        return sum(atomic_weight(k) * v for k, v in self.formula.items())

    @property
    def cell_mass(self) -> float:
        """Mass of the cell contents in g/mol (Z × formula mass)."""
        return sum(atomic_weight(k) * v for k, v in self.cell_contents().items())

    @property
    def density_g_cm3(self) -> float:
        """Crystallographic density in g/cm³."""
        return self.cell_mass / _AVOGADRO / (self.volume * 1e-24)

    # --- convenience ----------------------------------------------------------------
    def with_cell(self, cell) -> "Phase":
        return replace(self, cell=tuple(cell))

    def with_name(self, name: str) -> "Phase":
        return replace(self, name=name)

    def site_count(self, element: str) -> float:
        """Positions per cell of the sites that host ``element`` (any isotope), whatever their
        occupancy: e.g. the O framework (12 O sites in O3') or the C atoms of LiC6 (6)."""
        return float(sum(m for m, st in zip(self.site_multiplicities(), self.sites)
                         if any(sym.lstrip("0123456789") == element for sym, _ in st.species)))

    def site(self, label: str) -> Site:
        for s in self.sites:
            if s.label == label:
                return s
        raise KeyError(f"phase {self.name!r} has no site {label!r} (sites: {[s.label for s in self.sites]})")


def metric_tensor(cell) -> np.ndarray:
    """Direct-space metric tensor G_ij = a_i·a_j for (a, b, c, α, β, γ)."""
    a, b, c, al, be, ga = cell
    ca, cb, cg = np.cos(np.radians([al, be, ga]))
    return np.array([[a * a, a * b * cg, a * c * cb],
                     [a * b * cg, b * b, b * c * ca],
                     [a * c * cb, b * c * ca, c * c]])


def unique_positions(xyz: np.ndarray, rot: np.ndarray, trans: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """Distinct images of ``xyz`` under the operations, wrapped into [0, 1)."""
    img = np.einsum("nij,j->ni", rot, xyz) + trans
    img = np.mod(img, 1.0)
    img[np.isclose(img, 1.0, atol=tol)] = 0.0
    out: list[np.ndarray] = []
    for p in img:
        if not any(np.all(np.abs(((p - q) + 0.5) % 1.0 - 0.5) < tol) for q in out):
            out.append(p)
    return np.array(out)


def _formula_units(phase: Phase) -> int:
    mult = phase.site_multiplicities()
    if len(mult) == 0:
        return 1
    # Z = gcd of the multiplicities of the sites (Wyckoff counts), a standard choice when
    # the formula is written per smallest repeating set of sites.
    return int(np.gcd.reduce(mult.astype(int)))
