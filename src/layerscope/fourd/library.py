"""Template libraries: kinematic patterns over each phase's orientation fundamental zone.

Beam directions are spread near-uniformly over the sphere (a Fibonacci lattice,
González, Math. Geosci. 42, 49 (2010)) at the requested angular spacing and
reduced to the Dirichlet cell of the Laue group's proper rotations around a
generic direction (one representative per symmetry-equivalent set). The
low-index zone axes (|u|,|v|,|w| ≤ ``max_index``) are added, because zone-axis
orientations are the ones the paper maps. The in-plane rotation is not sampled:
the matcher finds it by correlation in polar coordinates.

Each template keeps its spots as (radius px, azimuth rad, weight) — a sparse form
from which the matcher builds angular Fourier coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope.crystal import Phase
from layerscope.diffraction import electron as el
from layerscope.fourd.detector import DetectorGeometry

__all__ = ["TemplateLibrary", "build_library", "beam_directions", "amorphous_carbon_rings"]

#: Peaks of the structure factor of amorphous carbon, s = Q/2π (Å⁻¹): Q ≈ 2.9 and 5.3 Å⁻¹
#: (e.g. Gilkes et al., J. Non-Cryst. Solids 187, 1995).
_AC_RINGS = ((0.46, 0.84), (0.06, 0.08), (1.0, 0.6))


def amorphous_carbon_rings():
    """(q Å⁻¹, width Å⁻¹, amplitude) of the diffuse rings of amorphous carbon."""
    return _AC_RINGS


@dataclass(frozen=True)
class TemplateLibrary:
    """Spot templates for several phases.

    ``spots_r_px``, ``spots_phi``, ``spots_w`` are (n_templates, n_max) arrays padded
    with zero weight; ``rotation[t]`` is the crystal → lab rotation of template t
    at zero in-plane angle; ``phase_index[t]`` indexes ``phase_names``.
    ``symmetry[p]`` holds the proper rotations of phase p's Laue class.
    """

    phase_names: tuple[str, ...]
    phase_index: np.ndarray
    rotation: np.ndarray
    spots_r_px: np.ndarray
    spots_phi: np.ndarray
    spots_w: np.ndarray
    symmetry: tuple[np.ndarray, ...]
    geometry: DetectorGeometry
    spacing_deg: float

    def __len__(self) -> int:
        return len(self.phase_index)


def beam_directions(phase: Phase, spacing_deg: float, *, max_index: int = 3) -> np.ndarray:
    """Unit beam directions (crystal Cartesian) covering the Laue group's fundamental zone."""
    if not (0.05 <= spacing_deg <= 30):
        raise ValueError(f"library spacing must lie in 0.05..30 degrees, got {spacing_deg}")
    n = int(np.ceil(4 * np.pi / np.radians(spacing_deg) ** 2))
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    v = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], axis=1)
    r = np.arange(-max_index, max_index + 1)
    uvw = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    uvw = uvw[np.any(uvw != 0, axis=1)]
    za = uvw @ el.direct_basis(phase).T
    za /= np.linalg.norm(za, axis=1, keepdims=True)
    sym = el.proper_point_group(phase)
    laue = np.concatenate([sym, -sym])  # Friedel: the beam direction and its opposite are alike
    ref = np.array([0.8716, 0.3712, 0.3202])
    ref /= np.linalg.norm(ref)

    def to_fz(vec):
        imgs = np.einsum("sij,nj->nsi", laue, vec)
        return imgs[np.arange(len(vec)), np.argmax(imgs @ ref, axis=1)]

    # grid points already inside the Dirichlet cell around ref; zone axes mapped into it
    inside = v[np.all(np.einsum("sij,nj->nsi", laue, v) @ ref <= (v @ ref)[:, None] + 1e-12, axis=1)]
    best = np.concatenate([to_fz(za), inside])
    key = np.round(best, 5)
    _, first = np.unique(key, axis=0, return_index=True)
    return best[np.sort(first)]


def _frame(beam: np.ndarray) -> np.ndarray:
    """Rotation taking crystal Cartesian ``beam`` to lab +z with a fixed in-plane reference."""
    hint = np.array([0.0, 0.0, 1.0]) if abs(beam[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    z = beam / np.linalg.norm(beam)
    x = hint - (hint @ z) * z
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def build_library(phases, geometry: DetectorGeometry, *, spacing_deg: float = 1.0, kv: float = 200.0,
                  thickness_nm: float = 30.0, precession_deg: float = 0.8, n_azimuth: int = 24,
                  max_spots: int = 64, max_index: int = 3, g_min_px: float = 4.0) -> TemplateLibrary:
    """Kinematic templates for every phase over its fundamental zone at ``spacing_deg``.

    Spot weights are √I (intensities compressed as in pyxem's template matching);
    only the ``max_spots`` strongest spots inside the detector are kept.
    """
    geometry_gmax = geometry.g_max_inv_angstrom
    names, pidx, rots, rr, pp, ww, syms = [], [], [], [], [], [], []
    for ip, phase in enumerate(phases):
        names.append(phase.name)
        syms.append(el.proper_point_group(phase))
        hkl = el.reflections_within(phase, geometry_gmax)
        f2 = np.abs(el.structure_factors(phase, hkl)) ** 2
        keep = f2 > 1e-6 * f2.max()
        hkl, f2 = hkl[keep], f2[keep]
        gcry = hkl @ el.reciprocal_basis(phase).T
        for beam in beam_directions(phase, spacing_deg, max_index=max_index):
            u = _frame(beam)
            g_lab = gcry @ u.T
            # only reflections that the precessing Ewald sphere can reach (|s| within a few 1/t)
            reach = np.abs(g_lab[:, 2]) < np.linalg.norm(g_lab[:, :2], axis=1) * np.radians(precession_deg) * 1.2 + \
                0.02 + np.sum(g_lab**2, axis=1) * 0.02
            pat = el.kinematic_pattern(phase, u, kv=kv, thickness_nm=thickness_nm, precession_deg=precession_deg,
                                       n_azimuth=n_azimuth, hkl=hkl[reach], _f2=f2[reach],
                                       min_relative_intensity=1e-3)
            r = np.linalg.norm(pat.g_xy, axis=1) / geometry.pixel_inv_angstrom
            ok = (r >= g_min_px) & (r <= geometry_gmax / geometry.pixel_inv_angstrom)
            order = np.argsort(-pat.intensity[ok])[:max_spots]
            r_s = r[ok][order]
            phi_s = np.arctan2(pat.g_xy[ok, 1], pat.g_xy[ok, 0])[order]
            w_s = np.sqrt(pat.intensity[ok][order])
            pad = max_spots - len(r_s)
            rr.append(np.pad(r_s, (0, pad)))
            pp.append(np.pad(phi_s, (0, pad)))
            ww.append(np.pad(w_s, (0, pad)))
            rots.append(u)
            pidx.append(ip)
    return TemplateLibrary(tuple(names), np.array(pidx), np.array(rots), np.array(rr, dtype=np.float32),
                           np.array(pp, dtype=np.float32), np.array(ww, dtype=np.float32), tuple(syms),
                           geometry, float(spacing_deg))
