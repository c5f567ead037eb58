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


class _CallableRefine(__import__("types").ModuleType):
    """``layerscope.refine(data, *, instrument, phases, ...)`` calls :func:`layerscope.refine.api.refine`
    while ``layerscope.refine`` stays this package (the only effect: this module object's class)."""

    def __call__(self, data, **kwargs):
        from layerscope.refine.api import refine

        return refine(data, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableRefine
