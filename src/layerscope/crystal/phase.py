"""Crystal phases with mixed-occupancy sites.

A :class:`Phase` is plain, immutable data: a space group (any symbol gemmi
understands, including settings such as ``"F d -3 m:2"`` and ``"R -3 m:H"``),
a cell, and a list of :class:`Site` objects. Several species may share one site
(``Li``/``Ni``/``Mn``/``Co`` on the 2b site of Li2MnO3-like O3', table S1 of the
paper), each with its own occupancy; the site carries one isotropic
displacement parameter ``biso`` (Å²), as FullProf and the paper's tables do, or an
anisotropic U (``uani``, the CIF's ``_atom_site_aniso_U_ij``, as GSAS-II refines them).

The ADP algebra (Cartesian U, U_eq, the symmetry-allowed U of a special position from
its stabiliser, the isotropic tensor) is a few lines of NumPy written here, following
Grosse-Kunstleve & Adams, J. Appl. Cryst. 35, 477 (2002).

Symmetry (operations, centring, systematic absences, Wyckoff expansion) comes
from gemmi; nothing here hand-writes space-group tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import gemmi
import numpy as np

from layerscope.crystal.geometry import metric_tensor, reciprocal_lengths, reciprocal_metric, volume as _volume
from layerscope.crystal.scattering import atomic_weight, b_coh_fm, normalise_species

__all__ = ["Site", "Phase", "ExpandedSites", "space_group", "symmetry_operations", "U_COMPONENTS", "u_matrix",
           "u_cartesian", "u_isotropic", "adp_basis", "symmetrize_uani"]

_AVOGADRO = 6.02214076e23
_EIGHT_PI2 = 8.0 * np.pi**2
#: order of the six independent components of an anisotropic U (CIF, gemmi's SMat33)
U_COMPONENTS = ("U11", "U22", "U33", "U12", "U13", "U23")
_U_IJ = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


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
    biso : isotropic displacement parameter B in Å² (B = 8π²U); for an anisotropic site
        the phase sets it to B_eq = 8π²U_eq of ``uani``
    wyckoff : Wyckoff letter with multiplicity (e.g. ``"4g"``), informational
    uani : anisotropic displacement parameters (U11, U22, U33, U12, U13, U23) in Å², CIF
        convention (Debye–Waller factor exp(−2π² Σ_ij h_i h_j a*_i a*_j U_ij)); None for an
        isotropic site. The matrix must be positive definite.
    """

    label: str
    xyz: tuple[float, float, float]
    species: tuple[tuple[str, float], ...]
    biso: float = 0.0
    wyckoff: str | None = None
    uani: tuple[float, float, float, float, float, float] | None = None

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
        if self.uani is not None:
            u = tuple(float(v) for v in np.ravel(self.uani))
            if len(u) != 6 or not all(np.isfinite(u)):
                raise ValueError(f"site {self.label!r}: uani must be six finite numbers "
                                 f"(U11, U22, U33, U12, U13, U23) in Å², got {self.uani!r}")
            # U_cart = M U Mᵀ with M nonsingular: U is positive definite iff the displacement
            # ellipsoid is (Sylvester's law of inertia), whatever the cell
            eig = np.linalg.eigvalsh(u_matrix(u))
            if eig[0] <= 0:
                raise ValueError(f"site {self.label!r}: anisotropic U {u} is not positive definite "
                                 f"(eigenvalues {np.round(eig, 6).tolist()} Å²)")
            object.__setattr__(self, "uani", u)

    @property
    def is_anisotropic(self) -> bool:
        return self.uani is not None

    def u_equiv(self, cell) -> float:
        """U_eq in Å²: a third of the trace of the Cartesian U for an anisotropic site
        (Fischer & Tillmanns 1988), B/8π² for an isotropic one."""
        if self.uani is None:
            return self.biso / _EIGHT_PI2
        return float(np.trace(u_cartesian(self.uani, cell)) / 3.0)

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
        if any(s.uani is not None for s in self.sites):
            object.__setattr__(self, "sites", tuple(self._checked_aniso(s) for s in self.sites))

    def _checked_aniso(self, s: Site) -> Site:
        """An anisotropic site with B = B_eq, after checking its U against the site symmetry."""
        if s.uani is None:
            return s
        sym = symmetrize_uani(self.spacegroup, s.xyz, self.cell, s.uani)
        dev = np.max(np.abs(np.asarray(sym) - s.uani))
        # CIF values rounded to 1e-4 Å² break the symmetry by ~1e-4; a wrong tensor by far more
        if dev > 5e-4 + 0.01 * max(s.uani[:3]):
            raise ValueError(
                f"phase {self.name!r}: site {s.label!r} at {s.xyz}: uani {s.uani} breaks the site symmetry "
                f"of {self.spacegroup} by {dev:.2e} Å² (the symmetric tensor is {tuple(round(v, 6) for v in sym)})")
        return replace(s, biso=_EIGHT_PI2 * s.u_equiv(self.cell))

    # --- geometry -----------------------------------------------------------------
    @property
    def gemmi_cell(self) -> gemmi.UnitCell:
        return gemmi.UnitCell(*self.cell)

    @property
    def volume(self) -> float:
        """Cell volume in Å³."""
        return float(_volume(self.cell))

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


def u_matrix(uani) -> np.ndarray:
    """The symmetric 3×3 matrix of (U11, U22, U33, U12, U13, U23)."""
    u = np.asarray(uani, dtype=float)
    return np.array([[u[0], u[3], u[4]], [u[3], u[1], u[5]], [u[4], u[5], u[2]]])


def _u_vector(m: np.ndarray) -> np.ndarray:
    return np.array([m[i, j] for i, j in _U_IJ])


def u_cartesian(uani, cell) -> np.ndarray:
    """Cartesian displacement tensor (Å²): O N U N Oᵀ, O = gemmi's orthogonalisation matrix,
    N = diag(a*, b*, c*) (Grosse-Kunstleve & Adams 2002, eq. 3)."""
    o = np.array(gemmi.UnitCell(*cell).orth.mat.tolist())
    n = np.diag(reciprocal_lengths(cell))
    return o @ n @ u_matrix(uani) @ n @ o.T


def u_isotropic(u_iso: float, cell) -> tuple[float, ...]:
    """The CIF U_ij of an isotropic displacement U: U_ij = U G*_ij / (a*_i a*_j)."""
    gs = reciprocal_metric(cell)
    ast = np.sqrt(np.diag(gs))
    return tuple(float(v) for v in _u_vector(u_iso * gs / np.outer(ast, ast)))


def _stabiliser_rotations(spacegroup: str, xyz, tol: float = 1e-4) -> np.ndarray:
    """Rotation parts of the operations (R, t) with R x + t ≡ x (mod 1)."""
    rot, trans = symmetry_operations(spacegroup)
    x = np.asarray(xyz, dtype=float)
    d = np.einsum("gij,j->gi", rot, x) + trans - x
    return rot[np.all(np.abs(d - np.round(d)) < tol, axis=1)]


def _adp_maps(spacegroup: str, xyz, cell) -> list[np.ndarray]:
    """6×6 matrices of U ↦ T U Tᵀ, T = N⁻¹ R N, for each stabiliser rotation R.

    An atom's fractional displacement covariance N U N turns into R (N U N) Rᵀ at its image
    under (R, t); U is allowed on the site iff that leaves it unchanged for the stabiliser.
    """
    n = reciprocal_lengths(cell)
    maps = []
    for r in _stabiliser_rotations(spacegroup, xyz):
        t = r * n[None, :] / n[:, None]
        cols = []
        for c in range(6):
            e = np.zeros(6)
            e[c] = 1.0
            cols.append(_u_vector(t @ u_matrix(e) @ t.T))
        maps.append(np.stack(cols, axis=1))
    return maps


def adp_basis(spacegroup: str, xyz, cell) -> np.ndarray:
    """Symmetry-allowed anisotropic U of a site: (6, k) basis over (U11, ..., U23), k = 1..6.

    The null space of the stacked (T − I) of the site's stabiliser (see ``_adp_maps``), in
    reduced row echelon form so that the columns read like the usual tables (a 3-fold axis
    along [111]: U11 = U22 = U33 and U12 = U13 = U23 gives (1, 1, 1, 0, 0, 0) and
    (0, 0, 0, 1, 1, 1)). Written here with NumPy over gemmi's operations; gemmi's
    ``adp_symmetry_constraints`` gives the same for the whole point group.
    """
    m = np.concatenate([t - np.eye(6) for t in _adp_maps(spacegroup, xyz, cell)], axis=0)
    _, s, vt = np.linalg.svd(m)
    null = vt[int(np.sum(s > 1e-8)):]
    # reduced row echelon form of the null-space rows
    a = null.copy()
    r = 0
    for c in range(6):
        if r >= len(a):
            break
        piv = r + int(np.argmax(np.abs(a[r:, c])))
        if abs(a[piv, c]) < 1e-9:
            continue
        a[[r, piv]] = a[[piv, r]]
        a[r] /= a[r, c]
        for i in range(len(a)):
            if i != r:
                a[i] -= a[i, c] * a[r]
        r += 1
    a[np.abs(a) < 1e-12] = 0.0
    return a[:r].T


def symmetrize_uani(spacegroup: str, xyz, cell, uani) -> tuple[float, ...]:
    """U averaged over the site's stabiliser (the nearest symmetry-allowed tensor)."""
    u = np.asarray(uani, dtype=float)
    maps = _adp_maps(spacegroup, xyz, cell)
    return tuple(float(v) for v in sum(t @ u for t in maps) / len(maps))


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
