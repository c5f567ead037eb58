"""Refinable parameters: a free vector mapped affinely onto the pattern-model pytree.

Every quantity of the pattern model (:func:`layerscope.diffraction.pattern.initial_params`)
is one entry of a flat *full* vector with a readable name::

    inst.zero, inst.difc, ...            calibration and profile terms (GSAS-II meanings)
    bkg.0 ... bkg.5                      Chebyshev background coefficients
    absorption                           μ of the wavelength-linear absorption term
    hscale                               histogram scale multiplying every phase scale
    NAC.scale                            phase scale (∝ volume fraction, see diffraction.fractions)
    NAC.a NAC.b NAC.c NAC.alpha ...      cell (Å, degrees)
    NAC.x[Ca1] NAC.y[Ca1] NAC.z[Ca1]     fractional coordinates of a site
    NAC.occ[Ca1:Ca]                      occupancy of one species on a site
    NAC.biso[Ca1]                        Biso (Å²) of a site (B_eq of an anisotropic one)
    NAC.U11[Ca1] ... NAC.U23[Ca1]        anisotropic U (Å², CIF convention) of an anisotropic site
    NAC.inv_size NAC.mustrain NAC.mx     sample broadening (1/µm, 10⁻⁶, Lorentzian mixing)

A refinement moves a small *free* vector q with ``full = x0 + A q``. The columns of A
come from the symmetry of each phase, so that a refined structure never breaks it:

* cell: only the components the crystal system leaves free (cubic: one column moving
  a = b = c; tetragonal/hexagonal: a = b and c; monoclinic: a, b, c and the angle
  between the two axes normal to the 2-fold axis; ...);
* coordinates: the allowed shifts of a site are the null space of the stacked
  (R − I) over its stabiliser {(R, t) : R x + t ≡ x (mod 1)} (a site on a 3-fold axis
  (x, x, x) moves along (1, 1, 1));
* anisotropic U (``PHASE.uani[SITE]``): the symmetry-allowed U of the site
  (:func:`layerscope.crystal.phase.adp_basis`, U11 = U22 = U33 and U12 = U13 = U23 on a
  3-fold axis); each column also moves the site's Biso entry by 8π² ΔU_eq, so that entry
  stays B_eq. ``PHASE.biso[SITE]`` of an anisotropic site scales U along the isotropic
  tensor (ΔU_ij = ΔB/8π² · G*_ij/(a*_i a*_j)), as GSAS-II's Uiso-of-Uani would;
* user ties: linear equalities ``Σ c_i p_i = value`` (occupancies of a site summing to a
  constant, one Biso for a group of sites, a metal's total held across sites) are
  imposed by eliminating one free column per constraint (row echelon on C·A).

Everything is linear, so the Jacobian of the pattern with respect to q is J_full·A;
it is obtained exactly by forward-mode autodiff of the kernel (no finite differences).
The free-vector bookkeeping and the Wyckoff null space are written here by hand: they
are a few lines of linear algebra over gemmi's symmetry operations.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.crystal.geometry import reciprocal_metric  # noqa: E402
from layerscope.crystal.phase import (  # noqa: E402
    U_COMPONENTS, adp_basis, space_group, symmetry_operations, u_cartesian, u_isotropic,
)
from layerscope.diffraction.pattern import INSTRUMENT_KEYS, PatternModel  # noqa: E402

__all__ = ["Layout", "make_layout", "FreeSet", "free_set", "cell_columns", "site_shift_basis", "Constraint",
           "default_bounds", "gsas2_cell_direction"]

_CELL = ("a", "b", "c", "alpha", "beta", "gamma")
_EIGHT_PI2 = 8.0 * np.pi**2
_XYZ = ("x", "y", "z")


@dataclass(frozen=True)
class Layout:
    """Names and positions of every model quantity in the full vector."""

    names: tuple[str, ...]
    n_background: int
    phase_names: tuple[str, ...]
    site_labels: tuple[tuple[str, ...], ...]
    spec_site: tuple[np.ndarray, ...]
    spec_symbol: tuple[tuple[str, ...], ...]
    spacegroups: tuple[str, ...]
    offsets: tuple[dict, ...] = field(repr=False, default=())
    #: labels of the anisotropic sites of each phase (their U follow the Biso entries)
    aniso_labels: tuple[tuple[str, ...], ...] = ()

    def index(self, name: str) -> int:
        try:
            return self._lookup[name]
        except KeyError:
            raise ValueError(f"unknown parameter {name!r}; e.g. {', '.join(self.names[:4])}, "
                             f"{self.phase_names[0] + '.a' if self.phase_names else ''}") from None

    @property
    def _lookup(self) -> dict:
        d = self.__dict__.get("_lk")
        if d is None:
            d = {n: i for i, n in enumerate(self.names)}
            object.__setattr__(self, "_lk", d)
        return d

    def match(self, pattern: str) -> list[int]:
        """Indices of names matching a glob pattern (``NAC.biso[*]``)."""
        if pattern in self._lookup:
            return [self._lookup[pattern]]
        pat = pattern.replace("[", "\x00").replace("]", "\x01")
        pat = fnmatch.translate(pat).replace("\x00", r"\[").replace("\x01", r"\]")
        rx = re.compile(pat)
        return [i for i, n in enumerate(self.names) if rx.match(n)]

    # --- pytree <-> vector -------------------------------------------------------------
    def flatten(self, params: dict, hscale: float = 1.0) -> np.ndarray:
        parts = [np.array([float(params["instrument"][k]) for k in INSTRUMENT_KEYS]),
                 np.asarray(params["background"], dtype=float).ravel(),
                 np.array([float(params["absorption"]), float(hscale)])]
        for pp in params["phases"]:
            parts += [np.atleast_1d(float(pp["scale"])), np.asarray(pp["cell"], dtype=float),
                      np.asarray(pp["xyz"], dtype=float).ravel(), np.asarray(pp["occ"], dtype=float),
                      np.asarray(pp["biso"], dtype=float), np.asarray(pp.get("uani", ()), dtype=float).ravel(),
                      np.array([float(pp["inv_size"]), float(pp["mustrain"]), float(pp["mx"])])]
        return np.concatenate(parts)

    def unflatten(self, v):
        """Pattern-model pytree from a full vector (JAX-traceable); hscale multiplies the scales."""
        ni = len(INSTRUMENT_KEYS)
        nb = self.n_background
        inst = {k: v[i] for i, k in enumerate(INSTRUMENT_KEYS)}
        bkg = v[ni:ni + nb]
        absorption = v[ni + nb]
        hscale = v[ni + nb + 1]
        phases = []
        for off, labels, ss in zip(self.offsets, self.site_labels, self.spec_site):
            ns, nsp = len(labels), len(ss)
            o = off["scale"]
            na = off.get("n_aniso", 0)
            ob = o + 7 + 4 * ns + nsp  # end of the Biso entries
            pp = {
                "scale": hscale * v[o],
                "cell": v[o + 1:o + 7],
                "xyz": v[o + 7:o + 7 + 3 * ns].reshape(ns, 3),
                "occ": v[o + 7 + 3 * ns:o + 7 + 3 * ns + nsp],
                "biso": v[o + 7 + 3 * ns + nsp:ob],
                "inv_size": v[ob + 6 * na],
                "mustrain": v[ob + 6 * na + 1],
                "mx": v[ob + 6 * na + 2],
            }
            if na:
                pp["uani"] = v[ob:ob + 6 * na].reshape(na, 6)
            phases.append(pp)
        return {"instrument": inst, "background": bkg, "absorption": absorption, "phases": phases}


def make_layout(model: PatternModel) -> Layout:
    names = [f"inst.{k}" for k in INSTRUMENT_KEYS]
    names += [f"bkg.{i}" for i in range(model.n_background)]
    names += ["absorption", "hscale"]
    offsets, labels_all, ss_all, sym_all, sgs, aniso_all = [], [], [], [], [], []
    for s in model.phases:
        p = s.phase.name
        labels = tuple(site.label for site in s.phase.sites)
        t = s.tables
        aniso = tuple(labels[i] for i in t.aniso_site)
        offsets.append({"scale": len(names), "n_aniso": len(aniso)})
        names.append(f"{p}.scale")
        names += [f"{p}.{c}" for c in _CELL]
        names += [f"{p}.{ax}[{lab}]" for lab in labels for ax in _XYZ]
        seen: dict = {}
        for i, sym in zip(t.spec_site, t.spec_symbol):
            key = f"{labels[i]}:{sym}"
            seen[key] = seen.get(key, 0) + 1
            names.append(f"{p}.occ[{key}]" if seen[key] == 1 else f"{p}.occ[{key}#{seen[key]}]")
        names += [f"{p}.biso[{lab}]" for lab in labels]
        names += [f"{p}.{u}[{lab}]" for lab in aniso for u in U_COMPONENTS]
        names += [f"{p}.inv_size", f"{p}.mustrain", f"{p}.mx"]
        labels_all.append(labels)
        ss_all.append(np.asarray(t.spec_site))
        sym_all.append(tuple(t.spec_symbol))
        sgs.append(s.phase.spacegroup)
        aniso_all.append(aniso)
    if len(set(names)) != len(names):
        raise ValueError("parameter names are not unique (duplicate phase names or site labels?)")
    return Layout(tuple(names), model.n_background, tuple(model.phase_names), tuple(labels_all), tuple(ss_all),
                  tuple(sym_all), tuple(sgs), tuple(offsets), tuple(aniso_all))


# --- symmetry ---------------------------------------------------------------------------
def _rref_rows(m: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Reduced row echelon form (rows) — gives readable basis vectors such as (1, 2, 0)."""
    a = np.array(m, dtype=float)
    r = 0
    rows, cols = a.shape
    for c in range(cols):
        if r >= rows:
            break
        piv = r + int(np.argmax(np.abs(a[r:, c])))
        if abs(a[piv, c]) < tol:
            continue
        a[[r, piv]] = a[[piv, r]]
        a[r] /= a[r, c]
        for i in range(rows):
            if i != r:
                a[i] -= a[i, c] * a[r]
        r += 1
    a[np.abs(a) < tol] = 0.0
    return a[:r]


def site_shift_basis(spacegroup: str, xyz, tol: float = 1e-4) -> np.ndarray:
    """Allowed coordinate shifts of a Wyckoff position: (3, k) basis, k = 0..3.

    The stabiliser of x is every operation (R, t) with R x + t ≡ x (mod 1); a shift δ keeps
    the site on its position iff (R − I) δ = 0 for all of them, i.e. δ lies in the null
    space of the stacked (R − I).
    """
    rot, trans = symmetry_operations(spacegroup)
    x = np.asarray(xyz, dtype=float)
    img = np.einsum("gij,j->gi", rot, x) + trans
    d = img - x
    stab = np.all(np.abs(d - np.round(d)) < tol, axis=1)
    m = np.concatenate([rot[g] - np.eye(3) for g in np.where(stab)[0]], axis=0)
    u, s, vt = np.linalg.svd(m)
    rank = int(np.sum(s > 1e-8))
    null = vt[rank:]
    if len(null) == 0:
        return np.zeros((3, 0))
    basis = _rref_rows(null)
    return basis.T


def cell_columns(spacegroup: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """(6, k) columns of the free cell components and their names.

    Crystal system from gemmi; for monoclinic groups the unique axis is the 2-fold axis
    found among the operations, and the free angle is the one between the other two axes.
    """
    sg = space_group(spacegroup)
    system = sg.crystal_system_str()
    e = np.eye(6)
    if system == "cubic":
        return (e[0] + e[1] + e[2])[:, None], ("a",)
    if system in ("tetragonal", "hexagonal") or (system == "trigonal" and sg.ext != "R"):
        return np.stack([e[0] + e[1], e[2]], axis=1), ("a", "c")
    if system == "trigonal":  # rhombohedral axes
        return np.stack([e[0] + e[1] + e[2], e[3] + e[4] + e[5]], axis=1), ("a", "alpha")
    if system == "orthorhombic":
        return e[:, :3], ("a", "b", "c")
    if system == "monoclinic":
        rot, _ = symmetry_operations(spacegroup)
        axis = 1
        for r in rot:
            rr = r if np.linalg.det(r) > 0 else -r
            if not np.allclose(rr, np.eye(3)):
                w, v = np.linalg.eig(rr)
                k = int(np.argmin(np.abs(w - 1)))
                axis = int(np.argmax(np.abs(np.real(v[:, k]))))
                break
        ang = 3 + axis
        return np.stack([e[0], e[1], e[2], e[ang]], axis=1), ("a", "b", "c", _CELL[ang])
    return e, _CELL


# --- free sets ------------------------------------------------------------------------
@dataclass(frozen=True)
class Constraint:
    """Linear equality Σ coeffs[name]·p[name] = value (value None: keep the current value)."""

    terms: dict
    value: float | None = None


def default_bounds(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Physical bounds: occupancies in [0, 1], Biso, scales, broadening and μ ≥ 0."""
    lo = np.full(len(layout.names), -np.inf)
    hi = np.full(len(layout.names), np.inf)
    for i, n in enumerate(layout.names):
        if ".occ[" in n:
            lo[i], hi[i] = 0.0, 1.0
        elif ".biso[" in n or ".U11[" in n or ".U22[" in n or ".U33[" in n or n.endswith((".scale", ".inv_size", ".mustrain")) or n.rsplit(".", 1)[-1] in ("hscale", "absorption"):
            lo[i] = 0.0
        elif n.endswith(".mx"):
            lo[i], hi[i] = 0.0, 1.0
        elif n.split(".")[-1] in ("a", "b", "c"):
            lo[i] = 0.5
    return lo, hi


@dataclass(frozen=True)
class FreeSet:
    """``full = x0 + A q``: the free columns of one refinement stage."""

    x0: np.ndarray
    A: np.ndarray
    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    full_names: tuple[str, ...] = ()
    #: directions along which the Jacobian is taken, when they differ from A (GSAS-II's cell
    #: derivatives, ``free_set(cell_jacobian="gsas2")``); None: A itself (the exact Jacobian)
    jac_A: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.A.shape[1]

    @property
    def jacobian_columns(self) -> np.ndarray:
        """Full-vector directions of the Jacobian columns (A unless ``jac_A`` is given)."""
        return self.A if self.jac_A is None else self.jac_A

    def full(self, q) -> np.ndarray:
        return self.x0 + self.A @ np.asarray(q)

    def q_of(self, full) -> np.ndarray:
        """Least-squares q of a full vector (exact when it lies in the stage's subspace)."""
        return np.linalg.lstsq(self.A, np.asarray(full) - self.x0, rcond=None)[0]


def _group_columns(layout: Layout, key: str, x_full: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Columns (name, vector over the full layout) for one 'free' specification."""
    n = len(layout.names)
    cols = []

    def unit(idx, name, vec=None):
        c = np.zeros(n)
        if vec is None:
            c[idx] = 1.0
        else:
            c[idx] = vec
        cols.append((name, c))

    if key in ("background", "bkg"):
        for i in range(layout.n_background):
            unit(layout.index(f"bkg.{i}"), f"bkg.{i}")
        return cols
    aniso_all = layout.aniso_labels or ((),) * len(layout.phase_names)
    for p, labels, sg, aniso in zip(layout.phase_names, layout.site_labels, layout.spacegroups, aniso_all):
        if not (key == p or key.startswith(p + ".") or fnmatch.fnmatch(p, key.split(".")[0])):
            continue
        rest = key[len(key.split(".")[0]) + 1:] if "." in key else ""
        if rest == "cell":
            a_cols, cnames = cell_columns(sg)
            i0 = layout.index(f"{p}.a")
            for j, cn in enumerate(cnames):
                vec = np.zeros(n)
                vec[i0:i0 + 6] = a_cols[:, j]
                cols.append((f"{p}.{cn}", vec))
            return cols
        m = re.fullmatch(r"(xyz|biso|occ|uani)(?:\[(.*)\])?", rest)
        if m:
            what, sel = m.group(1), m.group(2) or "*"
            i_cell = layout.index(f"{p}.a")
            cell = x_full[i_cell:i_cell + 6]
            for si, lab in enumerate(labels):
                site_sel, _, spec_sel = sel.partition(":")
                if not fnmatch.fnmatch(lab, site_sel):
                    continue
                if what == "uani" and lab not in aniso:
                    if site_sel == lab:
                        raise ValueError(f"{p}.uani[{lab}]: site {lab!r} is isotropic (no anisotropic U in the "
                                         f"phase); refine {p}.biso[{lab}] or give the site uani")
                    continue
                if what in ("uani", "biso") and lab in aniso:
                    i_b = layout.index(f"{p}.biso[{lab}]")
                    i_u = layout.index(f"{p}.U11[{lab}]")
                    if what == "biso":
                        vec = np.zeros(n)
                        vec[i_u:i_u + 6] = np.asarray(u_isotropic(1.0 / _EIGHT_PI2, cell))
                        vec[i_b] = 1.0
                        cols.append((f"{p}.biso[{lab}]", vec))
                        continue
                    i_x = layout.index(f"{p}.x[{lab}]")
                    basis = adp_basis(sg, x_full[i_x:i_x + 3], cell)
                    # U_eq is linear in U: 8π² ∂U_eq/∂U_c keeps the Biso entry at B_eq
                    d_beq = np.array([_EIGHT_PI2 * np.trace(u_cartesian(e, cell)) / 3.0 for e in np.eye(6)])
                    for j in range(basis.shape[1]):
                        vec = np.zeros(n)
                        vec[i_u:i_u + 6] = basis[:, j]
                        vec[i_b] = d_beq @ basis[:, j]
                        k = int(np.argmax(np.abs(basis[:, j]) > 0))
                        cols.append((f"{p}.{U_COMPONENTS[k]}[{lab}]", vec))
                    continue
                if what == "xyz":
                    i0 = layout.index(f"{p}.x[{lab}]")
                    basis = site_shift_basis(sg, x_full[i0:i0 + 3])
                    for j in range(basis.shape[1]):
                        vec = np.zeros(n)
                        vec[i0:i0 + 3] = basis[:, j]
                        k = int(np.argmax(np.abs(basis[:, j])))
                        cols.append((f"{p}.{_XYZ[k]}[{lab}]", vec))
                elif what == "biso":
                    unit(layout.index(f"{p}.biso[{lab}]"), f"{p}.biso[{lab}]")
                else:
                    for nm in layout.names:
                        if nm.startswith(f"{p}.occ[{lab}:") and fnmatch.fnmatch(nm[len(f"{p}.occ[{lab}:"):-1],
                                                                                 spec_sel or "*"):
                            unit(layout.index(nm), nm)
            if what == "uani" and not any(fnmatch.fnmatch(lab, sel.partition(":")[0]) for lab in aniso):
                raise ValueError(f"{key}: phase {p!r} has no anisotropic site matching {sel!r} "
                                 f"(anisotropic sites: {list(aniso)}); refine {p}.biso instead")
            return cols
    idx = layout.match(key)
    if not idx:
        raise ValueError(f"nothing to refine matches {key!r} (try e.g. 'background', 'hscale', "
                         f"'{layout.phase_names[0] if layout.phase_names else 'PHASE'}.cell', 'PHASE.xyz', "
                         "'PHASE.occ[SITE]', 'PHASE.biso', 'PHASE.uani', 'PHASE.scale', 'inst.zero')")
    for i in idx:
        unit(i, layout.names[i])
    return cols


def _gsas_a(cell):
    """GSAS-II's cell variables A = (G*11, G*22, G*33, 2G*12, 2G*13, 2G*23) (Å⁻²)."""
    gs = reciprocal_metric(cell, xp=jnp)
    return jnp.array([gs[0, 0], gs[1, 1], gs[2, 2], 2 * gs[0, 1], 2 * gs[0, 2], 2 * gs[1, 2]])


def gsas2_cell_direction(spacegroup: str, cell, column: np.ndarray, name: str) -> np.ndarray:
    """The cell direction along which GSAS-II takes the derivative of a free cell column.

    GSAS-II refines A = G* components; for cubic, tetragonal and hexagonal cells its derivative
    of the shared A0 (= A1 [= A2]) is that of A0 alone, the h² term of d⁻² (``cellVaryDerv`` in
    GSASIIstrMath: ``[[pfx+'A0', dpdA[0]]]``), not the sum over the tied components. In cell
    coordinates that is ∂cell/∂A_k (the other A fixed) times dA_k/dq of the column, with k = 0
    for ``a`` and 2 for ``c``; other crystal systems (and rhombohedral axes, where GSAS-II sums
    the tied terms) take the exact direction, the column itself.
    """
    sg = space_group(spacegroup)
    system = sg.crystal_system_str()
    quirk = system in ("cubic", "tetragonal", "hexagonal") or (system == "trigonal" and sg.ext != "R")
    k = {"a": 0, "c": 2}.get(name.rsplit(".", 1)[-1])
    if not quirk or k is None:
        return np.asarray(column, dtype=float)
    m = np.asarray(jax.jacfwd(_gsas_a)(jnp.asarray(cell, dtype=float)))  # ∂A/∂cell (6, 6)
    dcell_dak = np.linalg.solve(m, np.eye(6)[:, k])  # ∂cell/∂A_k, the other A fixed
    return dcell_dak * float(m[k] @ column)


def free_set(layout: Layout, x_full: np.ndarray, free: list[str], *, constraints=(), bounds=None,
             cell_jacobian: str = "exact") -> FreeSet:
    """Build ``full = x0 + A q`` for the named free groups and the linear constraints.

    Parameters
    ----------
    layout : :func:`make_layout` of the model
    x_full : current full vector (the refinement starts from it: q = 0)
    free : group names — ``background``, ``hscale``, ``absorption``, ``inst.zero``, ``PHASE.scale``,
        ``PHASE.cell``, ``PHASE.xyz[SITE]``, ``PHASE.occ[SITE:SPECIES]``, ``PHASE.biso[SITE]``,
        ``PHASE.uani[SITE]`` (symmetry-allowed U of anisotropic sites),
        ``PHASE.mustrain``, ``PHASE.inv_size`` (glob patterns allowed in phase and site names)
    constraints : :class:`Constraint` ties among free parameters
    bounds : (lower, upper) on the full vector; default :func:`default_bounds`
    cell_jacobian : "exact", or "gsas2" to take the Jacobian of cubic/tetragonal/hexagonal cell
        columns along GSAS-II's directions (:func:`gsas2_cell_direction`; the step still moves
        the symmetric cell) — for re-running a GSAS-II job cycle by cycle
    """
    if cell_jacobian not in ("exact", "gsas2"):
        raise ValueError(f"cell_jacobian must be 'exact' or 'gsas2', got {cell_jacobian!r}")
    x_full = np.asarray(x_full, dtype=float)
    cols: list[tuple[str, np.ndarray]] = []
    seen = set()
    for key in free:
        for name, c in _group_columns(layout, key, x_full):
            if name not in seen:
                seen.add(name)
                cols.append((name, c))
    # an anisotropic site's U columns span its isotropic direction: drop its Biso column then
    u_sites = {nm.split(".", 1)[0] + nm[nm.index("["):] for nm, _ in cols
               if re.fullmatch(r"[^.]+\.U(11|22|33|12|13|23)\[.*\]", nm)}
    cols = [(nm, c) for nm, c in cols if not (".biso[" in nm and nm.replace(".biso", "", 1) in u_sites)]
    names = [c[0] for c in cols]
    A = np.stack([c[1] for c in cols], axis=1) if cols else np.zeros((len(layout.names), 0))
    jac_a = None
    if cell_jacobian == "gsas2":
        jac_a = A.copy()
        for p, sg in zip(layout.phase_names, layout.spacegroups):
            i0 = layout.index(f"{p}.a")
            for j, nm in enumerate(names):
                in_cell = np.any(A[i0:i0 + 6, j]) and not np.any(np.delete(A[:, j], range(i0, i0 + 6)))
                if nm in (f"{p}.a", f"{p}.c") and in_cell:
                    jac_a[i0:i0 + 6, j] = gsas2_cell_direction(sg, x_full[i0:i0 + 6], A[i0:i0 + 6, j], nm)
    x0 = x_full.copy()
    for con in constraints:
        crow = np.zeros(len(layout.names))
        for nm, coef in con.terms.items():
            crow[layout.index(nm)] += float(coef)
        target = float(crow @ x_full) if con.value is None else float(con.value)
        ca = crow @ A
        nz = np.where(np.abs(ca) > 1e-12)[0]
        if len(nz) == 0:
            if abs(crow @ x0 - target) > 1e-9:
                raise ValueError(f"constraint {con.terms} = {target} involves no free parameter "
                                 f"and is not satisfied by the fixed values")
            continue
        piv = nz[-1]  # eliminate the last-named column, keep the first ones readable
        # q_piv = (target − c·x0 − Σ_{j≠piv} ca_j q_j) / ca_piv
        x0 = x0 + A[:, piv] * (target - crow @ x0) / ca[piv]
        A = A - np.outer(A[:, piv], ca) / ca[piv]
        A = np.delete(A, piv, axis=1)
        if jac_a is not None:
            jac_a = np.delete(jac_a - np.outer(jac_a[:, piv], ca) / ca[piv], piv, axis=1)
        del names[piv]
    lo, hi = default_bounds(layout) if bounds is None else bounds
    return FreeSet(x0, A, tuple(names), np.asarray(lo), np.asarray(hi), layout.names, jac_a)


def layout_vector(layout: Layout, params: dict, hscale: float = 1.0) -> np.ndarray:
    return layout.flatten(params, hscale)


def pytree(layout: Layout, full) -> dict:
    return layout.unflatten(jnp.asarray(full))
