"""Atomic-resolution HAADF/ABF-STEM analysis of any crystal, and of layered oxides (paper Figs. 1d, 4; Supp. Figs. 16, 17, 19, 20, 22; table S4).

Any crystal: :func:`analyse_crystal` — primitive lattice from the FFT
(:func:`image_lattice`), sites of the averaged unit cell, sublattices by
lattice translations, batched refinement, lattice from the refined positions
(:func:`index_columns`) compared with the FFT's, per-cell lattice vectors,
angle and strain (:func:`cell_metrics`), sublattice displacements, vacancies
against the lattice, Gaussian-mixture intensity classes
(:func:`intensity_classes`). ABF/BF images are inverted
(:func:`detect_contrast`). The layered-oxide analyses below run only for a
given zone axis or when :func:`recognise_layered` accepts the lattice.

Pipeline along <100>_O3: :func:`read_image` → :func:`denoise` →
:func:`find_columns` (minimum separation from the image's FFT) →
:func:`refine_columns` (batched JAX 2D Gaussians with neighbours' tails and
per-column esd) → :func:`unit_cells` (m/n, stacking angle, spacings, twin
variants) → :func:`trace_boundaries` (coherent (001) vs incoherent {012},
frustration) → :func:`find_pores` (missing columns) and :func:`gpa` strain.

Along <210>_O3: :func:`classify_domains` (O3' domains A/B/C and the Li/TM
order modulation) on :func:`column_intensity` values.

Low magnification: :func:`segment_particles` → :func:`find_lowmag_defects`
→ :func:`defects_per_particle` (table S4).
"""

from layerscope.stem.analysis import CrystalAnalysis, analyse_crystal, detect_contrast, recognise_layered
from layerscope.stem.boundaries import BoundaryTable, nearest_boundary, trace_boundaries
from layerscope.stem.cells import CellTable, LayerFrame, classify_variants, layer_frame, unit_cells
from layerscope.stem.columns import FFTLattice, fft_lattice, find_columns, sublattice_between
from layerscope.stem.defects import (
    LowMagDefects, PoreTable, defects_per_particle, find_lowmag_defects, find_pores, segment_particles,
)
from layerscope.stem.denoise import denoise
from layerscope.stem.domains import DomainMap, classify_domains, column_intensity
from layerscope.stem.fit import ColumnFit, refine_columns
from layerscope.stem.gpa import GPAResult, gpa
from layerscope.stem.io import STEMImage, as_image, read_image
from layerscope.stem.lattice import ColumnLattice, ImageLattice, image_lattice, index_columns, lattice_agreement
from layerscope.stem.metrics import CellMetrics, cell_metrics, intensity_classes

__all__ = [
    "CellMetrics", "ColumnLattice", "CrystalAnalysis", "ImageLattice", "analyse_crystal", "cell_metrics",
    "detect_contrast", "image_lattice", "index_columns", "intensity_classes", "lattice_agreement",
    "recognise_layered",
    "BoundaryTable", "CellTable", "ColumnFit", "DomainMap", "FFTLattice", "GPAResult", "LayerFrame",
    "LowMagDefects", "PoreTable", "STEMImage", "as_image", "classify_domains", "classify_variants",
    "column_intensity", "defects_per_particle", "denoise", "fft_lattice", "find_columns", "find_lowmag_defects",
    "find_pores", "gpa", "layer_frame", "nearest_boundary", "read_image", "refine_columns", "segment_particles",
    "sublattice_between", "trace_boundaries", "unit_cells",
]
