"""O3 (R-3m, hexagonal axes) <-> O3' (C2/m) setting relations and layer spacings.

The paper's Fig. 2c caption relates the two settings by reflection indices:

    (0 0 3)_O3 ≡ (0 0 1)_O3'      (1 0 0)_O3 ≡ (1 3 -1/3)_O3'
    (0 1 0)_O3 ≡ (-1 3 1/3)_O3'   (1 -1 0)_O3 ≡ (2 0 -2/3)_O3'

i.e. h_O3' = h_O3 · M with the rows of ``M`` the O3' indices of (100), (010) and
(001) of O3 (the last is (003)/3). The caption's first printing writes the third
in-plane reflection as (-1 -1 0)_O3; that reflection has d = a/2, not the
intralayer spacing, and is not the image of (2 0 -2/3)_O3' under the same linear
map (which sends (1 -1 0)_O3 there), so the corrected (1 -1 0) form printed later
in the same caption is used: it gives d_intra(O3) = a√3/2 = 2.460 Å for table S3.

Layer spacings (caption of Fig. 2c):

* d_inter = d(003)_O3 = c/3, or d(001)_O3' = c·sin β;
* d_intra = mean of d(100), d(010), d(1-10) in O3, or of d(1 3 -1/3), d(-1 3 1/3),
  d(2 0 -2/3) in O3'.
"""

from __future__ import annotations

import numpy as np

from layerscope.crystal.geometry import cell_from_metric, d_spacing, reciprocal_metric
from layerscope.crystal.phase import Phase

__all__ = [
    "O3_TO_O3P", "o3_to_o3p_indices", "o3p_to_o3_indices", "o3p_cell_from_o3", "o3_cell_from_o3p",
    "d_spacing", "d_inter_layer", "d_intra_layer", "cell_from_metric",
]

#: rows: O3' indices of the O3 reciprocal basis (100), (010), (001)
O3_TO_O3P = np.array([[1.0, 3.0, -1.0 / 3.0],
                      [-1.0, 3.0, 1.0 / 3.0],
                      [0.0, 0.0, 1.0 / 3.0]])

_INTRA_O3 = np.array([[1, 0, 0], [0, 1, 0], [1, -1, 0]], dtype=float)
_INTRA_O3P = _INTRA_O3 @ O3_TO_O3P


def o3_to_o3p_indices(hkl) -> np.ndarray:
    """O3 (hexagonal) Miller indices -> O3' (C2/m) indices (possibly fractional)."""
    return np.asarray(hkl, dtype=float) @ O3_TO_O3P


def o3p_to_o3_indices(hkl) -> np.ndarray:
    """O3' (C2/m) indices -> O3 (hexagonal) indices."""
    return np.asarray(hkl, dtype=float) @ np.linalg.inv(O3_TO_O3P)


def o3_cell_from_o3p(cell) -> tuple[float, ...]:
    """Pseudo-hexagonal O3 cell equivalent to an O3' cell.

    Reciprocal bases obey A*_O3 = M A*_O3', so G*_O3 = M G*_O3' Mᵀ.
    """
    gstar = O3_TO_O3P @ reciprocal_metric(cell) @ O3_TO_O3P.T
    return cell_from_metric(np.linalg.inv(gstar))


def o3p_cell_from_o3(cell) -> tuple[float, ...]:
    """O3' (C2/m) cell equivalent to an O3 hexagonal cell (inverse of :func:`o3_cell_from_o3p`)."""
    minv = np.linalg.inv(O3_TO_O3P)
    gstar = minv @ reciprocal_metric(cell) @ minv.T
    return cell_from_metric(np.linalg.inv(gstar))


def _is_o3p(phase_or_cell, setting):
    if setting is not None:
        if setting not in ("O3", "O3p"):
            raise ValueError(f"setting must be 'O3' or 'O3p', got {setting!r}")
        return setting == "O3p"
    if isinstance(phase_or_cell, Phase):
        sg = phase_or_cell.space_group
        if sg.number == 12:
            return True
        if sg.number == 166:
            return False
        raise ValueError(f"phase {phase_or_cell.name!r} ({sg.xhm()}) is neither O3' (C2/m) nor O3 (R-3m); "
                         "pass setting='O3' or 'O3p'")
    raise ValueError("a bare cell needs setting='O3' or setting='O3p'")


def _cell(phase_or_cell):
    return phase_or_cell.cell if isinstance(phase_or_cell, Phase) else tuple(phase_or_cell)


def d_inter_layer(phase_or_cell, setting: str | None = None) -> float:
    """Inter-layer spacing (Å): c/3 for O3, c·sin β for O3' (Fig. 2c caption)."""
    hkl = [0, 0, 1] if _is_o3p(phase_or_cell, setting) else [0, 0, 3]
    return float(d_spacing(_cell(phase_or_cell), hkl))


def d_intra_layer(phase_or_cell, setting: str | None = None) -> float:
    """Intra-layer spacing (Å): mean d of the three in-plane reflections of Fig. 2c."""
    hkls = _INTRA_O3P if _is_o3p(phase_or_cell, setting) else _INTRA_O3
    return float(np.mean(d_spacing(_cell(phase_or_cell), hkls)))
