"""Kinematic electron diffraction of any :class:`~layerscope.crystal.Phase`.

Physics (all lengths in Å, reciprocal lengths in Å⁻¹ without the 2π):

* Electron scattering factors of neutral atoms, 5-Gaussian fit of Peng, Ren,
  Dudarev & Whelan, Acta Cryst. A52, 257 (1996) (International Tables C,
  Table 4.3.2.2), kept in ``data/electron_scattering_factors.csv``:
  ``f_e(s) = Σ a_i exp(-b_i s²)`` with ``s = sinθ/λ = |g|/2``.
* Structure factor, occupancy-weighted with isotropic Debye–Waller factors:
  ``F(g) = Σ_j occ_j f_j(s) exp(-B_j s²) exp(2πi h·x_j)`` (Å).
* Relativistic wavelength ``λ = h / sqrt(2 m₀ e V (1 + e V / 2 m₀ c²))``.
* Excitation error of reflection g for incident wave vector k (|k| = 1/λ):
  ``s_g = (k² − |k + g|²) / (2k)`` (Williams & Carter, *TEM*, ch. 17), and the
  kinematic intensity ``I_g = |F_g|² S(s_g)`` with the thin-plate shape factor
  ``S = sinc²(π t s)`` (Howie–Whelan, kinematic limit) or a Lorentzian
  ``1 / (1 + (π t s)²)``.
* Precession (Vincent & Midgley, Ultramicroscopy 53, 271 (1994)): the incident
  beam is tilted by the precession angle φ and rotated about the optic axis;
  the recorded intensity is the azimuthal average of ``I_g`` over the cone.

Twin variants (paper, Supp. Fig. 18) are described by a :class:`TwinLaw`: a
proper rotation in the crystal's Cartesian frame. A mirror across a plane
(hkl) is represented by the two-fold rotation about the plane normal; the two
differ by the inversion, which kinematic intensities cannot see (Friedel's law).

The pattern geometry (zone-axis frames, precession sampling) is written here
by hand because no maintained Python library computes precession-averaged
kinematic patterns from a mixed-occupancy phase; gemmi supplies the symmetry
and, in the tests, an independent structure-factor calculation.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import gemmi
import numpy as np

from layerscope.crystal import Phase
from layerscope.crystal.scattering import element_of

__all__ = [
    "electron_wavelength_angstrom", "electron_scattering_factor", "scattering_factor_coefficients",
    "structure_factors", "reciprocal_basis", "direct_basis", "reflections_within", "zone_axis_rotation",
    "kinematic_pattern", "zone_axis_pattern", "DiffractionPattern", "TwinLaw", "twin_mirror", "twin_rotation",
    "paper_twin_laws", "disc_radius_inv_angstrom", "proper_point_group",
]

# CODATA 2018
_H = 6.62607015e-34
_M0 = 9.1093837015e-31
_E = 1.602176634e-19
_C = 299792458.0


def electron_wavelength_angstrom(kv: float) -> float:
    """Relativistic electron wavelength (Å) at accelerating voltage ``kv`` (kV).

    ``λ = h / sqrt(2 m₀ e V (1 + eV / (2 m₀ c²)))``; 200 kV gives 0.02508 Å.
    """
    if not np.isfinite(kv) or kv <= 0:
        raise ValueError(f"accelerating voltage must be a positive number of kV, got {kv}")
    v = kv * 1e3
    p = np.sqrt(2 * _M0 * _E * v * (1 + _E * v / (2 * _M0 * _C**2)))
    return float(_H / p * 1e10)


def disc_radius_inv_angstrom(convergence_mrad: float, kv: float) -> float:
    """Radius of a CBED disc (Å⁻¹): the convergence semi-angle over λ."""
    return convergence_mrad * 1e-3 / electron_wavelength_angstrom(kv)


@lru_cache(maxsize=1)
def _coefficient_table() -> dict[str, np.ndarray]:
    text = resources.files("layerscope").joinpath("data/electron_scattering_factors.csv").read_text()
    rows = [r for r in csv.reader(line for line in text.splitlines() if not line.startswith("#"))]
    header, body = rows[0], rows[1:]
    if header[:1] != ["symbol"] or len(header) != 11:
        raise ValueError("data/electron_scattering_factors.csv: expected columns symbol,a1..a5,b1..b5")
    return {r[0]: np.array([float(v) for v in r[1:]]).reshape(2, 5) for r in body}


def scattering_factor_coefficients(symbol: str) -> np.ndarray:
    """(2, 5) array: Peng et al. (1996) ``a_i`` (Å) and ``b_i`` (Å²) for an element.

    Charges and isotope labels are ignored (neutral-atom factors: ``"Mn3+"`` → Mn).
    """
    el = element_of(symbol).rstrip("+-0123456789")
    table = _coefficient_table()
    if el not in table:
        raise ValueError(f"no electron scattering factor for species {symbol!r} (element {el!r})")
    return table[el]


def electron_scattering_factor(symbol: str, s_inv_angstrom) -> np.ndarray:
    """Elastic electron scattering factor f_e(s) in Å at ``s = sinθ/λ`` (Å⁻¹).

    ``f_e(s) = Σ_{i=1..5} a_i exp(-b_i s²)`` (Peng et al., Acta Cryst. A52, 257 (1996)).
    """
    a, b = scattering_factor_coefficients(symbol)
    s2 = np.asarray(s_inv_angstrom, dtype=float)[..., None] ** 2
    return np.sum(a * np.exp(-b * s2), axis=-1)


def direct_basis(phase: Phase) -> np.ndarray:
    """3×3 matrix whose columns are a, b, c in the crystal Cartesian frame (Å).

    gemmi's orthogonalisation convention: a ∥ x, b in the xy plane.
    """
    return np.array(phase.gemmi_cell.orth.mat.tolist(), dtype=float)


def reciprocal_basis(phase: Phase) -> np.ndarray:
    """3×3 matrix whose columns are a*, b*, c* (Å⁻¹, no 2π): ``g = B @ hkl``."""
    return np.linalg.inv(direct_basis(phase)).T


def structure_factors(phase: Phase, hkl) -> np.ndarray:
    """Kinematic electron structure factors F(hkl) in Å (complex).

    ``F = Σ_j occ_j f_e,j(s) exp(-B_j s²) exp(2πi h·x_j)`` over every position of
    the expanded cell, ``s = 1/(2d)``; ``occ_j`` and ``B_j`` (Biso, Å²) come from
    the phase's sites, so mixed sites scatter with their weighted mean factor.
    """
    h = np.atleast_2d(np.asarray(hkl, dtype=float))
    if h.shape[-1] != 3 or not np.all(np.isfinite(h)):
        raise ValueError(f"hkl must be finite (N, 3) indices, got shape {h.shape}")
    g = h @ reciprocal_basis(phase).T
    s = 0.5 * np.linalg.norm(g, axis=1)
    exp = phase.expand()
    f_site = np.zeros((len(h), len(phase.sites)))
    for i, site in enumerate(phase.sites):
        dw = np.exp(-site.biso * s**2)
        for sym, occ in site.species:
            f_site[:, i] += occ * electron_scattering_factor(sym, s) * dw
    phase_term = np.exp(2j * np.pi * (h @ exp.frac.T))
    return np.einsum("nm,nm->n", f_site[:, exp.site_index], phase_term)


def reflections_within(phase: Phase, g_max_inv_angstrom: float) -> np.ndarray:
    """All integer (h, k, l) ≠ 0 with |g| ≤ g_max that the space group allows (gemmi)."""
    a = np.linalg.norm(direct_basis(phase), axis=0)
    n = np.floor(g_max_inv_angstrom * a).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in n], indexing="ij"), -1).reshape(-1, 3)
    grid = grid[np.any(grid != 0, axis=1)]
    g = np.linalg.norm(grid @ reciprocal_basis(phase).T, axis=1)
    grid = grid[g <= g_max_inv_angstrom]
    ops = phase.space_group.operations()
    allowed = np.array([not ops.is_systematically_absent([int(v) for v in row]) for row in grid], dtype=bool)
    return grid[allowed]


def _orthonormal(z: np.ndarray, x_hint: np.ndarray) -> np.ndarray:
    z = z / np.linalg.norm(z)
    x = x_hint - (x_hint @ z) * z
    if np.linalg.norm(x) < 1e-8:
        x = np.eye(3)[np.argmin(np.abs(z))]
        x = x - (x @ z) * z
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])  # rows: lab axes in crystal coordinates


def zone_axis_rotation(phase: Phase, uvw, *, in_plane_deg: float = 0.0, x_hkl=None) -> np.ndarray:
    """Rotation U (crystal Cartesian → lab) putting direction [uvw] along the beam (+z).

    The lab x axis points along the reciprocal vector ``x_hkl`` projected onto the
    zone plane (default: the shortest allowed reflection with h·[uvw] = 0), then the
    crystal is turned by ``in_plane_deg`` about the beam (counter-clockwise).
    """
    uvw = np.asarray(uvw, dtype=float)
    if uvw.shape != (3,) or not np.any(uvw) or not np.all(np.isfinite(uvw)):
        raise ValueError(f"zone axis must be three numbers, not all zero; got {uvw!r}")
    z = direct_basis(phase) @ uvw
    if x_hkl is None:
        hkl = reflections_within(phase, 1.2)
        hkl = hkl[np.abs(hkl @ uvw) < 1e-9]
        if len(hkl) == 0:
            x_hint = np.array([1.0, 0, 0])
        else:
            g = hkl @ reciprocal_basis(phase).T
            # shortest, then a deterministic tie-break for symmetry-equivalent ones
            key = np.round(np.linalg.norm(g, axis=1), 6)
            order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], key))
            x_hint = g[order[0]]
    else:
        x_hint = reciprocal_basis(phase) @ np.asarray(x_hkl, dtype=float)
    u0 = _orthonormal(z, x_hint)
    return _rot_z(in_plane_deg) @ u0


def _rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class DiffractionPattern:
    """A kinematic spot pattern in the lab frame (beam along +z).

    ``g_xy`` are the spot positions on the (de-scanned) detector in Å⁻¹,
    ``intensity`` is |F|²·⟨S(s)⟩ in Å², ``excitation_error`` is s_g for the
    untilted beam (Å⁻¹), ``variant`` labels the twin variant (0 = parent).
    """

    phase: str
    hkl: np.ndarray
    g_xy: np.ndarray
    intensity: np.ndarray
    excitation_error: np.ndarray
    d_angstrom: np.ndarray
    rotation: np.ndarray
    variant: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.variant is None:
            object.__setattr__(self, "variant", np.zeros(len(self.hkl), dtype=int))


def _shape_factor(s, thickness_angstrom, shape):
    x = np.pi * thickness_angstrom * s
    if shape == "sinc2":
        return np.sinc(x / np.pi) ** 2  # numpy's sinc is sin(πx)/(πx)
    if shape == "lorentzian":
        return 1.0 / (1.0 + x**2)
    raise ValueError(f"shape factor must be 'sinc2' or 'lorentzian', got {shape!r}")


def kinematic_pattern(phase: Phase, rotation, *, kv: float = 200.0, g_max_inv_angstrom: float = 2.0,
                      thickness_nm: float = 30.0, precession_deg: float = 0.8, n_azimuth: int = 90,
                      shape: str = "sinc2", min_relative_intensity: float = 1e-4,
                      hkl: np.ndarray | None = None, _f2: np.ndarray | None = None) -> DiffractionPattern:
    """Precession-averaged kinematic pattern of ``phase`` in orientation ``rotation``.

    Parameters
    ----------
    rotation : (3, 3) crystal-Cartesian → lab rotation; the beam travels along lab +z.
    kv : accelerating voltage (kV) → relativistic λ.
    g_max_inv_angstrom : largest |g| considered.
    thickness_nm : specimen thickness t in the shape factor S(s) (sinc² or Lorentzian).
    precession_deg : precession (beam tilt) angle φ; 0 gives a stationary beam.
    n_azimuth : azimuthal samples of the precession cone.
    min_relative_intensity : spots weaker than this fraction of the strongest are dropped.

    Notes
    -----
    For a tilt φ at azimuth θ, ``k = (sinφ cosθ, sinφ sinθ, cosφ)/λ`` and
    ``s_g = −(2 k·g + g²)/(2|k|)``; the intensity is ``|F|² ⟨S(s_g)⟩_θ``.
    """
    lam = electron_wavelength_angstrom(kv)
    if thickness_nm <= 0 or not np.isfinite(thickness_nm):
        raise ValueError(f"thickness must be a positive number of nm, got {thickness_nm}")
    if hkl is None:
        hkl = reflections_within(phase, g_max_inv_angstrom)
    hkl = np.asarray(hkl, dtype=float)
    f2 = np.abs(structure_factors(phase, hkl)) ** 2 if _f2 is None else _f2
    u = np.asarray(rotation, dtype=float)
    g_lab = hkl @ (u @ reciprocal_basis(phase)).T
    k = 1.0 / lam
    g2 = np.sum(g_lab**2, axis=1)
    phi = np.radians(precession_deg)
    theta = np.linspace(0, 2 * np.pi, n_azimuth, endpoint=False) if phi > 0 else np.zeros(1)
    kvec = k * np.stack([np.sin(phi) * np.cos(theta), np.sin(phi) * np.sin(theta),
                         np.full_like(theta, np.cos(phi))], axis=1)
    s = -(2 * g_lab @ kvec.T + g2[:, None]) / (2 * k)
    shape_avg = _shape_factor(s, thickness_nm * 10.0, shape).mean(axis=1)
    intensity = f2 * shape_avg
    s0 = -(2 * k * g_lab[:, 2] + g2) / (2 * k)
    keep = intensity > min_relative_intensity * max(intensity.max(initial=0.0), 1e-300)
    return DiffractionPattern(phase.name, hkl[keep], g_lab[keep, :2], intensity[keep], s0[keep],
                              1.0 / np.sqrt(g2[keep]), u)


@dataclass(frozen=True)
class TwinLaw:
    """A twin operation as a proper rotation in the crystal Cartesian frame.

    ``matrix`` maps the parent's Cartesian frame onto the twin's: a twin in
    orientation ``U`` (crystal → lab) has orientation ``U @ matrix``.
    """

    name: str
    matrix: np.ndarray


def twin_rotation(phase: Phase, axis_uvw, angle_deg: float = 180.0, name: str | None = None) -> TwinLaw:
    """Twin by rotation of ``angle_deg`` about the direct-lattice axis [uvw]."""
    from scipy.spatial.transform import Rotation

    axis = direct_basis(phase) @ np.asarray(axis_uvw, dtype=float)
    m = Rotation.from_rotvec(np.radians(angle_deg) * axis / np.linalg.norm(axis)).as_matrix()
    return TwinLaw(name or f"{angle_deg:g}° about [{' '.join(f'{v:g}' for v in axis_uvw)}]", m)


def twin_mirror(phase: Phase, plane_hkl, name: str | None = None) -> TwinLaw:
    """Twin by reflection across the plane (hkl), kept as the two-fold about its normal.

    Reflection ``M = I − 2nnᵀ`` and the two-fold ``−M`` differ by the inversion,
    which leaves kinematic intensities unchanged (Friedel's law); the proper
    rotation keeps orientations in SO(3).
    """
    n = reciprocal_basis(phase) @ np.asarray(plane_hkl, dtype=float)
    n /= np.linalg.norm(n)
    return TwinLaw(name or f"mirror ({' '.join(f'{v:g}' for v in plane_hkl)})", 2 * np.outer(n, n) - np.eye(3))


def paper_twin_laws(phase: Phase) -> dict[str, TwinLaw]:
    """The two twin configurations of the paper's Supp. Fig. 18 in the phase's indices.

    Twin 1: twin plane (001)_O3 (interlayer coherent twin); Twin 2: {012}_O3 habit
    plane (intralayer incoherent twin). For O3' (C2/m) the O3 planes are converted
    with :func:`layerscope.crystal.o3_to_o3p_indices`.
    """
    from layerscope.crystal import o3_to_o3p_indices

    planes = {"(001)": np.array([0.0, 0.0, 1.0]), "{012}": np.array([0.0, 1.0, 2.0])}
    if phase.space_group.number == 12:
        planes = {k: o3_to_o3p_indices(v) for k, v in planes.items()}
    return {k: twin_mirror(phase, v, name=f"{k} twin") for k, v in planes.items()}


def zone_axis_pattern(phase: Phase, uvw, *, in_plane_deg: float = 0.0, twin: TwinLaw | None = None,
                      zolz_only: bool = True, **kwargs) -> DiffractionPattern:
    """Kinematic zone-axis pattern for [uvw] (optionally with a twin variant overlaid).

    With ``zolz_only`` only zero-order Laue zone spots (h·[uvw] = 0 for the parent;
    g_z = 0 in the lab for the twin) are kept. Other keywords go to
    :func:`kinematic_pattern`. The twin variant's spots have ``variant == 1``.
    """
    u = zone_axis_rotation(phase, uvw, in_plane_deg=in_plane_deg)
    parts = [kinematic_pattern(phase, u, **kwargs)]
    if twin is not None:
        parts.append(kinematic_pattern(phase, u @ twin.matrix.T, **kwargs))
    out = []
    for v, p in enumerate(parts):
        g_z = (p.hkl @ (p.rotation @ reciprocal_basis(phase)).T)[:, 2]
        keep = np.abs(g_z) < 1e-6 if zolz_only else np.ones(len(g_z), bool)
        out.append((p, keep, v))
    cat = lambda attr: np.concatenate([getattr(p, attr)[k] for p, k, _ in out])  # noqa: E731
    variant = np.concatenate([np.full(k.sum(), v) for _, k, v in out])
    return DiffractionPattern(phase.name, cat("hkl"), cat("g_xy"), cat("intensity"), cat("excitation_error"),
                              cat("d_angstrom"), u, variant)


def proper_point_group(phase: Phase) -> np.ndarray:
    """Proper rotations of the Laue class as (n, 3, 3) matrices in the crystal Cartesian frame.

    These are the crystal symmetries that leave a kinematic pattern unchanged up to
    Friedel's law; they define the orientation fundamental zone.
    """
    a = direct_basis(phase)
    ainv = np.linalg.inv(a)
    mats = {}
    for op in phase.space_group.operations():
        r = np.array(op.rot, dtype=float) / gemmi.Op.DEN
        r = r if np.linalg.det(r) > 0 else -r  # Laue class: add the inversion
        c = a @ r @ ainv
        mats[tuple(np.round(c, 6).ravel())] = c
    return np.array(list(mats.values()))
