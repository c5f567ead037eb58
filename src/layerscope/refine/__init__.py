"""Rietveld refinement: parameters with symmetry constraints, a Levenberg–Marquardt engine
with autodiff Jacobians and esds, staged strategies, FullProf .pcr input, results
(CIF, summary.json, plots) and difference-Fourier maps.
"""

from layerscope.refine.engine import Evaluator, FitResult, FitStats, fit_stats, least_squares
from layerscope.refine.parameters import (
    Constraint, FreeSet, Layout, cell_columns, free_set, make_layout, site_shift_basis,
)

__all__ = ["Evaluator", "FitResult", "FitStats", "fit_stats", "least_squares", "Constraint", "FreeSet", "Layout",
           "cell_columns", "free_set", "make_layout", "site_shift_basis"]
