"""Powder reflection lists: unique hkl within a d-range, multiplicities and absences.

For every hkl in the box |h_i| ≤ |a_i|/d_min the d-spacing follows from the
reciprocal metric tensor, 1/d² = h G* hᵀ. Symmetry comes from gemmi's operations
(x' = R x + t; reflections transform as h' = h R):

* systematic absence: some operation has h R = h and h·t ∉ ℤ;
* powder multiplicity: the size of the orbit {±h R} (Friedel pairs merged, as
  nuclear scattering without absorption obeys Friedel's law).

The representative of each orbit is its lexicographically largest member.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope.crystal.geometry import d_spacing as d_spacings, metric_tensor
from layerscope.crystal.phase import Phase, symmetry_operations

__all__ = ["ReflectionList", "reflections", "d_spacings"]


@dataclass(frozen=True)
class ReflectionList:
    """Unique powder reflections of one phase, sorted by decreasing d.

    Attributes
    ----------
    hkl : (n, 3) int
    multiplicity : (n,) int
    d_angstrom : (n,) float
    """

    hkl: np.ndarray
    multiplicity: np.ndarray
    d_angstrom: np.ndarray

    def __len__(self) -> int:
        return len(self.d_angstrom)


def reflections(phase: Phase, d_min: float, d_max: float = np.inf) -> ReflectionList:
    """Allowed unique reflections of ``phase`` with d_min ≤ d ≤ d_max (Å)."""
    if not (d_min > 0) or not (d_max > d_min):
        raise ValueError(f"need 0 < d_min < d_max, got d_min={d_min}, d_max={d_max}")
    g = metric_tensor(phase.cell)
    gstar = np.linalg.inv(g)
    hmax = np.floor(np.sqrt(np.diag(g)) / d_min).astype(int) + 1
    grids = np.meshgrid(*(np.arange(-m, m + 1) for m in hmax), indexing="ij")
    hkl = np.stack([gr.ravel() for gr in grids], axis=1)
    inv_d2 = np.einsum("ni,ij,nj->n", hkl, gstar, hkl)
    with np.errstate(divide="ignore"):
        d = 1.0 / np.sqrt(inv_d2)
    keep = (inv_d2 > 0) & (d >= d_min * (1 - 1e-12)) & (d <= d_max)
    hkl, d = hkl[keep], d[keep]

    rot, trans = symmetry_operations(phase.spacegroup)
    hkl = hkl[~_absent(hkl, rot, trans)]

    # Orbits under the Laue group: images ±hR for the distinct rotations.
    rots = np.unique(np.round(rot).astype(int), axis=0)
    images = np.einsum("ni,gij->ngj", hkl, rots)
    images = np.concatenate([images, -images], axis=1)
    span = int(hmax.max()) * 2 + 3
    off = span // 2
    keys = ((images[..., 0] + off) * span + (images[..., 1] + off)) * span + (images[..., 2] + off)
    canon = keys.max(axis=1)
    uniq, counts = np.unique(canon, return_counts=True)
    rep = np.stack([uniq // (span * span) - off, (uniq // span) % span - off, uniq % span - off], axis=1)
    d_rep = d_spacings(phase.cell, rep)
    order = np.lexsort((rep[:, 2], rep[:, 1], rep[:, 0], -d_rep))
    return ReflectionList(rep[order].astype(int), counts[order].astype(int), d_rep[order])


def _absent(hkl: np.ndarray, rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    absent = np.zeros(len(hkl), dtype=bool)
    hf = hkl.astype(float)
    for r, t in zip(rot, trans):
        invariant = np.all(np.abs(hf @ r - hf) < 1e-9, axis=1)
        phase = hf @ t
        absent |= invariant & (np.abs(phase - np.round(phase)) > 1e-6)
    return absent
