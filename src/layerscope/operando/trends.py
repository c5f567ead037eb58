"""Fits of a series column against time, capacity or any other column (GSAS-II's sequential
"parametric fitting", for polynomials).

:func:`fit_trend` fits ``value = Σ_k c_k x^k`` by weighted least squares (weights 1/esd²) over
the rows that measured the value: rows whose value or esd is not finite (held, fixed below
``min_fraction``, not refined: NaN esd), whose esd is 0, that a check flagged (``converged``
False) or that depend on a phase the pattern did not determine
(:func:`~layerscope.operando.observables.undetermined_keys`) are left out and listed. The
coefficients' covariance is (AᵀWA)⁻¹; with ``scale_by_gof`` it is multiplied by χ²/ν when that
exceeds 1 (the scatter about the trend is larger than the esds say), as GSAS-II scales its
esds by the goodness of fit. Written here: a weighted polynomial is a few lines of NumPy, and the
exclusion rules are layerscope's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TrendFit", "fit_trend"]


@dataclass(frozen=True)
class TrendFit:
    """A polynomial trend of one column: ``coefficients[k]`` multiplies ``x**k``."""

    column: str
    against: str
    coefficients: np.ndarray
    covariance: np.ndarray
    chi2_reduced: float
    n_used: int
    #: (pattern, why) of the rows left out
    excluded: tuple

    @property
    def esd(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))

    def __call__(self, x):
        return np.polynomial.polynomial.polyval(np.asarray(x, dtype=float), self.coefficients)

    def __repr__(self) -> str:
        terms = ", ".join(f"c{k} = {c:.6g}({e:.2g})" for k, (c, e) in enumerate(zip(self.coefficients, self.esd)))
        return (f"TrendFit({self.column} vs {self.against}: {terms}; chi2/nu {self.chi2_reduced:.3g}, "
                f"{self.n_used} rows used, {len(self.excluded)} left out)")


def fit_trend(rows, column: str, against: str = "time_h", degree: int = 1, *, scale_by_gof: bool = False) -> TrendFit:
    """Weighted polynomial fit of ``column`` against ``against`` (see the module docstring)."""
    from layerscope.operando.observables import undetermined_keys

    if not isinstance(degree, int) or isinstance(degree, bool) or degree < 0:
        raise ValueError(f"degree must be a whole number >= 0, got {degree!r}")
    if not rows or column not in rows[0]:
        raise ValueError(f"no column {column!r} in the series (columns: {', '.join(rows[0]) if rows else 'none'})")
    if against not in rows[0]:
        raise ValueError(f"no column {against!r} to fit against (e.g. time_h, capacity_mAh)")
    xs, ys, ws, excluded = [], [], [], []
    for r in rows:
        name = r.get("pattern", "?")
        x, y, e = (float(r.get(k, np.nan)) for k in (against, column, f"{column}_esd"))
        why = ("not finite" if not (np.isfinite(x) and np.isfinite(y)) else
               "no esd (not refined in this pattern)" if not (np.isfinite(e) and e > 0) else
               "flagged by the checks" if not r.get("converged", True) else
               "depends on an undetermined phase" if column in undetermined_keys(r) else "")
        if why:
            excluded.append((name, why))
            continue
        xs.append(x)
        ys.append(y)
        ws.append(1.0 / e)
    n = len(xs)
    if n <= degree:
        raise ValueError(f"{column} vs {against}: {n} usable row(s) for a degree-{degree} polynomial "
                         f"({len(excluded)} left out: {excluded[:3]})")
    a = np.vander(np.asarray(xs), degree + 1, increasing=True) * np.asarray(ws)[:, None]
    b = np.asarray(ys) * np.asarray(ws)
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    cov = np.linalg.inv(a.T @ a)
    r = b - a @ coef
    dof = n - degree - 1
    chi2 = float(r @ r / dof) if dof > 0 else float("nan")
    if scale_by_gof and np.isfinite(chi2) and chi2 > 1:
        cov = cov * chi2
    return TrendFit(column, against, coef, cov, chi2, n, tuple(excluded))
