"""Fourier maps of nuclear scattering density from a Rietveld refinement.

The scattering-length density of a phase is the Fourier series of its structure factors
(fm per cell; International Tables Vol. B, §1.3.4)::

    ρ(r) = (1/V) Σ_h F(h) exp(−2πi h·r)                      (fm/Å³)

From a powder pattern only |F_obs| is measured, through Rietveld intensity partitioning
(:mod:`layerscope.refine.partition`); the phases are taken from the model, so the
difference map is::

    Δρ(r) = (1/V) Σ_h (|F_obs(h)| − |F_calc(h)|) exp(iφ_calc(h)) exp(−2πi h·r)

Each measured reflection is expanded to all its symmetry equivalents (h·R for the point
group, and Friedel mates), with F_calc computed for each and |F_obs| shared by the whole
powder group. The sum is evaluated with one FFT on a grid fine enough for the highest
index (no aliasing). Neutron scattering lengths can be negative, so missing Li (b = −1.90 fm)
shows up as a *negative* peak of Δρ — the reading of the paper's Supp. Fig. 3.

Maps are written as X-PLOR text maps (readable by VESTA, PyMOL, Chimera) and isosurfaces as
Wavefront OBJ meshes (marching cubes from scikit-image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft as sfft

from layerscope._io import write_text

from layerscope.crystal.geometry import orthogonalisation_matrix as _orth
from layerscope.crystal.phase import Phase, symmetry_operations
from layerscope.diffraction.structure_factors import structure_factors
from layerscope.refine.partition import ReflectionIntensities, partition_phase

__all__ = ["FourierMap", "fourier_map", "difference_fourier", "difference_fourier_from_result", "expand_reflections", "map_slice", "map_extrema",
           "write_xplor", "write_isosurface_obj"]


@dataclass(frozen=True)
class FourierMap:
    """Scattering-length density (fm/Å³) on a grid over one unit cell (axis order a, b, c)."""

    density: np.ndarray
    cell: tuple[float, float, float, float, float, float]
    kind: str
    phase: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.density.shape

    def value_at(self, frac) -> float:
        """Density at the grid point nearest to fractional coordinates ``frac``."""
        idx = tuple(int(round(float(f) % 1.0 * n)) % n for f, n in zip(frac, self.shape))
        return float(self.density[idx])


def expand_reflections(phase: Phase, hkl) -> tuple[np.ndarray, np.ndarray]:
    """All distinct symmetry equivalents (with Friedel mates) of each reflection.

    Returns (hkl_all (n, 3) int, parent (n,) index into ``hkl``).
    """
    rot, _ = symmetry_operations(phase.spacegroup)
    rots = np.unique(np.rint(rot).astype(int), axis=0)
    out, parent = [], []
    for i, h in enumerate(np.asarray(hkl, dtype=int)):
        eq = np.einsum("j,gjk->gk", h, rots)
        eq = np.unique(np.concatenate([eq, -eq]), axis=0)
        out.append(eq)
        parent.append(np.full(len(eq), i))
    return np.concatenate(out), np.concatenate(parent)


def _grid_shape(hkl_all, cell, step_angstrom):
    hmax = np.max(np.abs(hkl_all), axis=0)
    shape = []
    for i in range(3):
        n = max(2 * int(hmax[i]) + 2, int(np.ceil(cell[i] / step_angstrom)))
        shape.append(sfft.next_fast_len(n))
    return tuple(shape)


def fourier_map(phase: Phase, hkl_all, coeffs, *, step_angstrom: float = 0.15, kind: str = "",
                shape=None) -> FourierMap:
    """ρ(r) = (1/V) Σ_h C(h) exp(−2πi h·r) from complex coefficients (fm) on a grid."""
    hkl_all = np.asarray(hkl_all, dtype=int)
    shape = tuple(shape) if shape is not None else _grid_shape(hkl_all, phase.cell, step_angstrom)
    if np.any(2 * np.max(np.abs(hkl_all), axis=0) >= np.asarray(shape)):
        raise ValueError(f"grid {shape} is too coarse for indices up to {np.max(np.abs(hkl_all), axis=0)}")
    x = np.zeros(shape, dtype=complex)
    idx = tuple((hkl_all % np.asarray(shape)).T)
    np.add.at(x, idx, np.asarray(coeffs, dtype=complex))
    # fftn: Σ_k X_k exp(−2πi k·n/N) with k = h mod N and r = n/N
    rho = sfft.fftn(x).real / phase.volume
    return FourierMap(rho, tuple(phase.cell), kind, phase.name)


def difference_fourier(phase: Phase, intensities: ReflectionIntensities, *, kind: str = "difference",
                       step_angstrom: float = 0.15) -> FourierMap:
    """Difference (|F_obs| − |F_calc|), observed (|F_obs|) or calculated Fourier map of a phase.

    ``intensities`` is the phase's partitioning (:func:`layerscope.refine.partition.partition_phase`)
    computed with the same ``phase`` (its refined structure gives φ_calc).
    """
    if kind not in ("difference", "observed", "calculated"):
        raise ValueError(f"kind must be 'difference', 'observed' or 'calculated', got {kind!r}")
    ok = intensities.i_calc > 0
    hkl = intensities.hkl[ok]
    if len(hkl) == 0:
        raise ValueError(f"phase {phase.name!r}: no reflections with calculated intensity to build a map from")
    ratio = np.sqrt(np.clip(intensities.i_obs[ok], 0, None) / intensities.i_calc[ok])
    hkl_all, parent = expand_reflections(phase, hkl)
    f_calc = structure_factors(phase, hkl_all)
    if kind == "calculated":
        coeffs = f_calc
    else:
        scale = ratio[parent] if kind == "observed" else ratio[parent] - 1.0
        coeffs = f_calc * scale   # (|F_obs| − |F_calc|)·exp(iφ_calc) = F_calc·(√(I_obs/I_calc) − 1)
    return fourier_map(phase, hkl_all, coeffs, step_angstrom=step_angstrom, kind=kind)


def difference_fourier_from_result(res, phase_name: str, *, kind: str = "difference",
                                   step_angstrom: float = 0.15) -> FourierMap:
    """The Fourier map of one phase of a :class:`~layerscope.refine.rietveld.RietveldResult`."""
    from layerscope.refine.parameters import make_layout

    names = [p.name for p in res.phases]
    if phase_name not in names:
        raise ValueError(f"no phase {phase_name!r} in the refinement (phases: {', '.join(names)})")
    i = names.index(phase_name)
    tree = make_layout(res.model).unflatten(np.asarray(res.full))
    ri = partition_phase(res.model, tree, i, res.y_obs, res.y_calc, res.background)
    return difference_fourier(res.phases[i], ri, kind=kind, step_angstrom=step_angstrom)


def map_slice(fmap: FourierMap, axis: str = "c", position: float = 0.0) -> np.ndarray:
    """2-D section of the map at fractional ``position`` along ``axis`` ('a', 'b' or 'c')."""
    k = "abc".index(axis)
    n = fmap.shape[k]
    i = int(round(position % 1.0 * n)) % n
    return np.take(fmap.density, i, axis=k)


def map_extrema(fmap: FourierMap, n: int = 5, *, sign: int = -1) -> list[tuple[tuple[float, float, float], float]]:
    """The ``n`` deepest minima (sign −1) or highest maxima (sign +1): (fractional xyz, fm/Å³)."""
    from scipy.ndimage import maximum_filter

    d = sign * fmap.density
    peak = (d == maximum_filter(d, size=3, mode="wrap")) & (d > 0)
    idx = np.argwhere(peak)
    vals = d[peak]
    order = np.argsort(-vals)[:n]
    shape = np.asarray(fmap.shape)
    return [(tuple(float(v) for v in idx[j] / shape), float(sign * vals[j])) for j in order]


def write_xplor(fmap: FourierMap, path) -> Path:
    """X-PLOR/CNS formatted map of one cell (sections along c, a fastest)."""
    path = Path(path)
    na, nb, nc = fmap.shape
    rows = ["", "       1 !NTITLE", f" REMARKS layerscope {fmap.kind} Fourier map of {fmap.phase} (fm/A^3)",
            "".join(f"{v:8d}" for v in (na, 0, na - 1, nb, 0, nb - 1, nc, 0, nc - 1)),
            "".join(f"{v:12.5E}" for v in fmap.cell), "ZYX"]
    for k in range(nc):
        rows.append(f"{k:8d}")
        sec = fmap.density[:, :, k].T.ravel()  # a fastest, then b
        for j in range(0, len(sec), 6):
            rows.append("".join(f"{v:12.5E}" for v in sec[j:j + 6]))
    rows += [f"{-9999:8d}", f"{fmap.density.mean():12.4E}{fmap.density.std():12.4E}"]
    return write_text(path, "\n".join(rows) + "\n")


def write_isosurface_obj(fmap: FourierMap, path, level: float) -> Path:
    """Isosurface Δρ = ``level`` (fm/Å³; negative for holes) as a Wavefront OBJ mesh in Å."""
    from skimage.measure import marching_cubes

    d = fmap.density
    if not (d.min() < level < d.max()):
        raise ValueError(f"level {level} lies outside the map range [{d.min():.4g}, {d.max():.4g}] fm/Å³")
    # periodic: close the cell by repeating the first layer on each axis
    dp = np.pad(d, ((0, 1), (0, 1), (0, 1)), mode="wrap")
    verts, faces, _, _ = marching_cubes(dp, level=level)
    frac = verts / np.asarray(d.shape)
    cart = frac @ _orth(fmap.cell).T
    lines = [f"# layerscope {fmap.kind} Fourier isosurface of {fmap.phase} at {level} fm/A^3"]
    lines += [f"v {x:.5f} {y:.5f} {z:.5f}" for x, y, z in cart]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    return write_text(Path(path), "\n".join(lines) + "\n")
