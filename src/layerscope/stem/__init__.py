"""Atomic-resolution HAADF-STEM analysis of layered oxides (paper Fig. 4, Supp. Figs. 17, 19, 20, 22).

Pipeline: :func:`read_image` → :func:`denoise` → :func:`find_columns` (minimum
separation from the image's FFT) → :func:`refine_columns` (batched JAX 2D
Gaussians with neighbours' tails and per-column esd) → :func:`unit_cells`
(m/n, stacking angle, spacings, twin variants) → :func:`gpa` strain and
:func:`find_pores`.
"""

from layerscope.stem.cells import CellTable, LayerFrame, classify_variants, layer_frame, unit_cells
from layerscope.stem.columns import FFTLattice, fft_lattice, find_columns, sublattice_between
from layerscope.stem.denoise import denoise
from layerscope.stem.fit import ColumnFit, refine_columns
from layerscope.stem.io import STEMImage, as_image, read_image

__all__ = [
    "CellTable", "ColumnFit", "FFTLattice", "LayerFrame", "STEMImage", "as_image",
    "classify_variants", "denoise", "fft_lattice", "find_columns", "layer_frame",
    "read_image", "refine_columns", "sublattice_between", "unit_cells",
]
