"""FullProf TOF background types (``Nba``) as layerscope's Chebyshev background.

layerscope's background is a Chebyshev series of the first kind over the fitted TOF range
(:mod:`layerscope.diffraction.background`). A FullProf background is a linear combination
Σ_j B_j f_j(T) of fixed functions; each f_j is written as Chebyshev coefficients M[:, j] over the
fitted range, the start is c₀ = M·B, and the coefficients FullProf refines span the only directions
in which the Chebyshev coefficients may move: one linear constraint (value kept) per direction
orthogonal to the refined columns of M. The refinement then has exactly FullProf's background
model and number of free background parameters.

=====  ==============================================  ===========================================
Nba    FullProf background                              translation
=====  ==============================================  ===========================================
0      Σ_{j=0}^{5} B_j (T/Bkpos − 1)^j                  exact: a degree-5 polynomial is a 6-term
                                                        Chebyshev series
−3     Σ_{j=0}^{11} B_j (T/Bkpos − 1)^j (two lines of   exact: 12-term Chebyshev series
       six coefficients, each with a code line)
−4     Σ_{j=0}^{n−1} B_j cos(j π T / T_max), n = 12 or   exact to < 1e-9 of max |f_j|: each cosine is
       18 (two or three lines of six, each with codes)   an entire function, its Chebyshev series
                                                        is truncated where it has converged
−5     Σ_{n=0}^{N−1} B_n T_n(x), x = 2(T − T_min)/       exact: T_n(x(T)) is a polynomial of degree n
       (T_max − T_min) − 1, N ≤ 24 (up to four lines     in T, re-expanded over the fitted range
       of six, each with codes)
≥ 2    linear interpolation between Nba points           approximated (piecewise-linear hats are not
       (T_i, B_i, code)                                 polynomials): a 48-term Chebyshev least-
                                                        squares fit per hat, with a warning giving
                                                        the largest deviation
=====  ==============================================  ===========================================

T_max of the cosine series, and T_min, T_max of the Chebyshev series, are the pattern's TOF-min and
TOF-max on the ``NCY ... TOF-min <Step> TOF-max`` line (cryspy's re-implementation of FullProf's
``Nba = −4`` uses ``cos(π j T/T_max)`` with j from 0). Checked against FullProf 8.40's own background
column in the ``.prf`` files of two jobs it refined (FullProf's Examples as vendored in enhantica/edi,
commit cfed024): cecoal (POLARIS, Nba = −5, 12 coefficients, TOF 3001.5891–19004.6582 µs) and
arg_si_ic (SEPD, Nba = −4, 7 coefficients, TOF 2000–29995 µs). With these ranges the series minus
the .prf column is one constant over each pattern (5692.4 ± 0.4 counts at 3 002–18 900 µs; 30.1 ±
0.04 at 2 000–2 865 µs), in both background types. Where that constant comes from is not documented
(a shift of the .prf column, or a constant FullProf adds); a refined constant term absorbs it, and both
jobs refine theirs, so a job with a fixed constant term may differ from FullProf by such a constant.
Mapping the Chebyshev series over 3001.5891–19000 µs (the excluded-region edge) instead makes the
difference drift by 6 counts; a cosine T_max of 40 000 µs makes it drift by 7.
Other types (1: from a ``.bac`` file, −1: Debye-like, −2: Fourier filtering, …) have no exact
counterpart and are refused by the reader. Hand-written: no library translates FullProf backgrounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope.refine.parameters import Constraint

__all__ = ["FullProfBackground", "chebyshev_coefficients"]

#: Chebyshev terms used for the piecewise-linear (Nba ≥ 2) approximation
N_HAT_TERMS = 48


@dataclass(frozen=True)
class FullProfBackground:
    """A FullProf background: ``kind`` ("polynomial", "cosine" or "points"), its coefficients
    (heights for "points"), their refinement codes, and Bkpos / T_max / the points' TOF."""

    kind: str
    values: tuple[float, ...]
    codes: tuple[float, ...]
    bkpos: float = 1.0
    t_max: float = 1.0
    t_points: tuple[float, ...] = ()
    t_min: float = 0.0

    @property
    def refined(self) -> tuple[int, ...]:
        return tuple(j for j, c in enumerate(self.codes) if c)

    def functions(self, t) -> np.ndarray:
        """(n_coefficients, len(t)) values of the basis functions f_j at TOF ``t`` (µs)."""
        t = np.asarray(t, dtype=float)
        n = len(self.values)
        if self.kind == "polynomial":
            x = t / self.bkpos - 1.0
            return np.stack([x**j for j in range(n)])
        if self.kind == "cosine":
            return np.stack([np.cos(j * np.pi * t / self.t_max) for j in range(n)])
        if self.kind == "chebyshev":
            x = 2.0 * (t - self.t_min) / (self.t_max - self.t_min) - 1.0
            return np.polynomial.chebyshev.chebvander(x, n - 1).T
        if self.kind == "points":
            tp = np.asarray(self.t_points)
            return np.stack([np.interp(t, tp, np.eye(n)[j]) for j in range(n)])
        raise ValueError(f"unknown background kind {self.kind!r}")

    def __call__(self, t) -> np.ndarray:
        return np.asarray(self.values) @ self.functions(t)

    def chebyshev(self, t_range, t_eval=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(M, c₀, notes): Chebyshev coefficients over ``t_range`` of every basis function
        (columns of M) and of the background as given (c₀ = M·B)."""
        notes = []
        if self.kind == "polynomial":
            m = chebyshev_coefficients(self.functions, t_range, len(self.values))
        elif self.kind == "chebyshev":
            # T_n(x(T)) has degree n in T: exact with as many terms as the highest term used (+1)
            used = [j for j in range(len(self.values)) if self.values[j] != 0 or self.codes[j]]
            n_terms = (max(used) if used else 0) + 1
            m = chebyshev_coefficients(self.functions, t_range, n_terms)
            m[:, n_terms:] = 0.0  # unused higher terms (value 0, fixed) contribute nothing
        elif self.kind == "cosine":
            n = len(self.values)
            used = [j for j in range(n) if self.values[j] != 0 or self.codes[j]]
            top = max(used) if used else 0
            m = None
            for n_terms in range(top + 2, 200):
                m = chebyshev_coefficients(self.functions, t_range, n_terms)
                if _max_error(self.functions, m, t_range) < 1e-9:
                    break
            else:  # pragma: no cover - cos(17π t/T) converges long before 200 terms
                raise ValueError("cosine background: no Chebyshev series of < 200 terms reproduces it")
        else:
            m = chebyshev_coefficients(self.functions, t_range, N_HAT_TERMS, nodes=t_eval)
            err = _max_error(self.functions, m, t_range, t_eval)
            scale = max(np.max(np.abs(self.values)), 1e-300)
            notes.append(f"FullProf's linear interpolation between {len(self.values)} background points is "
                         f"approximated by a {N_HAT_TERMS}-term Chebyshev series (largest deviation of one "
                         f"interpolation function {err:.3g} of its height, ≈ {err * scale:.3g} counts)")
        c0 = m @ np.asarray(self.values, dtype=float)
        return m, c0, notes

    def constraints(self, m: np.ndarray) -> tuple[Constraint, ...]:
        """Linear constraints that keep the Chebyshev coefficients in c₀ + span(M[:, refined]).

        Written as c_d = Σ_i G_di c_i for every d ≥ r, with i < r (r = number of refined
        coefficients): the first r Chebyshev coefficients carry the free directions and each
        constraint eliminates its own c_d with coefficient 1, which keeps the elimination in
        :func:`~layerscope.refine.parameters.free_set` (last-named column first) exact and stable.
        """
        n = m.shape[0]
        refined = list(self.refined)
        r = len(refined)
        if r == 0:
            return ()
        lead = m[:r, refined]
        if np.linalg.cond(lead) > 1e8:
            raise ValueError(f"{self.kind} background: the refined terms {refined} are not determined by the "
                             f"first {r} Chebyshev coefficients (condition number {np.linalg.cond(lead):.3g})")
        g = np.linalg.solve(lead.T, m[r:, refined].T).T  # (n − r, r): c_D = G c_R'
        out = []
        for k in range(n - r):
            terms = {f"bkg.{i}": -float(g[k, i]) for i in range(r) if g[k, i] != 0}
            terms[f"bkg.{r + k}"] = 1.0
            out.append(Constraint(terms))
        return tuple(out)


def chebyshev_coefficients(funcs, t_range, n_terms: int, nodes=None) -> np.ndarray:
    """(n_terms, n_functions) Chebyshev coefficients over ``t_range`` of the rows of ``funcs(t)``:
    interpolation at Chebyshev points (exact for polynomials of degree < n_terms), or a least-squares
    fit at ``nodes`` when given."""
    t0, t1 = float(t_range[0]), float(t_range[1])
    if nodes is None:
        k = np.arange(n_terms)
        x = np.cos(np.pi * (k + 0.5) / n_terms)
    else:
        x = 2.0 * (np.asarray(nodes, dtype=float) - t0) / (t1 - t0) - 1.0
    t = t0 + (x + 1.0) * (t1 - t0) / 2.0
    basis = np.polynomial.chebyshev.chebvander(x, n_terms - 1)  # (len(x), n_terms)
    return np.linalg.lstsq(basis, np.asarray(funcs(t)).T, rcond=None)[0]


def _max_error(funcs, m, t_range, t_eval=None) -> float:
    """Largest deviation of the Chebyshev series from the functions, relative to each one's maximum."""
    t = np.linspace(t_range[0], t_range[1], 4001) if t_eval is None else np.asarray(t_eval, dtype=float)
    x = 2.0 * (t - t_range[0]) / (t_range[1] - t_range[0]) - 1.0
    approx = np.polynomial.chebyshev.chebvander(x, m.shape[0] - 1) @ m
    exact = np.asarray(funcs(t)).T
    scale = np.maximum(np.max(np.abs(exact), axis=0), 1e-300)
    return float(np.max(np.abs(approx - exact) / scale))
