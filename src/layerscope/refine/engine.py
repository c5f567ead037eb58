"""Damped Gauss–Newton (Levenberg–Marquardt) least squares with exact Jacobians.

Minimises χ² = Σ_i w_i (y_i − y_calc,i(q))², w_i = 1/σ_i², over the free vector q of a
:class:`~layerscope.refine.parameters.FreeSet` (``full = x0 + A q``). Each cycle solves
the Marquardt-scaled normal equations (Marquardt, J. SIAM 11, 431 (1963))::

    (Ĥ + λ I) δ̂ = ĝ,   Ĥ_ij = H_ij / √(H_ii H_jj),  H = JᵀWJ,  g = JᵀW(y − y_calc)

with J = ∂y_calc/∂q exact: columns that move only scales and background coefficients (in
which the pattern is linear) from the unit-scale phase patterns, every other column by the
chain rule through the per-reflection quantities (intensity, position, α, β, σ², γ):
forward-mode autodiff of the structure factors and peak terms, the profile's partial
derivatives written out by hand (see :class:`Evaluator`).
λ is divided by 10 after an accepted step and multiplied by 10 after a rejected one (a
trial step costs one pattern evaluation; the Jacobian is formed only at accepted points).
Bounds hold for every model quantity the free vector moves, including those a linear
constraint makes dependent: a step that would cross a bound is re-solved with that quantity
pinned on it (active set, :func:`_bounded_step`), and the quantity is reported. Convergence: max |δq_j| / esd_j below ``tol``
(FullProf's and GSAS-II's shift/esd criterion).

Esds: cov(q) = H⁻¹ · χ²_ν with χ²_ν = χ²/(N − P) (Prince, *Mathematical Techniques in
Crystallography*, 2004). A normal matrix with a zero diagonal (a parameter the pattern does
not depend on) or a condition number above 1e12 after scaling is *singular*: the step then
uses the pseudo-inverse, the affected esds are NaN, and the result says which parameters
are involved. Nothing here declares success silently: ``converged`` is True only when the
shift criterion was met with a regular normal matrix and finite χ².
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.diffraction.background import chebyshev_background, chebyshev_basis  # noqa: E402
from layerscope.diffraction.pattern import (  # noqa: E402
    PatternModel, _all_peaks, join_model, peak_windows, phase_patterns, profile_derivative_patterns, split_model)
from layerscope.refine.parameters import FreeSet, Layout  # noqa: E402

__all__ = ["Evaluator", "FitStats", "FitResult", "least_squares", "fit_stats", "linear_scan"]

_BUCKETS = (4, 8, 16, 32, 64, 128, 256, 512)


class _LayoutKey:
    """A :class:`Layout` as a static jit argument: equal when the full vectors mean the same."""

    __slots__ = ("layout", "_key", "_hash")

    def __init__(self, layout: Layout):
        self.layout = layout
        self._key = (type(layout), tuple(layout.names), int(layout.n_background))
        self._hash = hash(self._key)

    def __eq__(self, other):
        return isinstance(other, _LayoutKey) and self._key == other._key

    def __hash__(self):
        return self._hash


def _linear_indices(layout: Layout):
    i_bkg = np.array([layout.index(f"bkg.{k}") for k in range(layout.n_background)], dtype=int)
    i_h = layout.index("hscale")
    i_scale = np.array([layout.index(f"{p}.scale") for p in layout.phase_names], dtype=int)
    return i_bkg, i_h, i_scale


def _calc_kernel(spec, lk, leaves, v):
    """Pattern, phase patterns, background, the unit-scale phase patterns (one profile pass), and
    whether every profile fit the model's sub-windows (the Jacobian kernel's fallback flag)."""
    model = join_model(spec, leaves)
    layout = lk.layout
    tree = layout.unflatten(v)
    tof = jnp.asarray(model.tof_us)
    bkg = chebyshev_background(tof, tree["background"], model.t_range)
    if not model.phases:
        return bkg, jnp.zeros((0, tof.shape[0])), bkg, jnp.zeros((0, tof.shape[0])), jnp.asarray(True)
    # the scales multiply whole phase patterns: one structure-factor pass and one profile pass at
    # unit scale, the phase patterns from them
    scales = jnp.stack([pp["scale"] for pp in tree["phases"]])
    unit_tree = {**tree, "phases": [{**pp, "scale": jnp.ones_like(pp["scale"])} for pp in tree["phases"]]}
    inten_unit, _, _, th, alpha, beta, sig2, gam = _all_peaks(model, unit_tree)
    idx, delta = peak_windows(model, th)
    unit, fits = phase_patterns(model, idx, inten_unit, delta, alpha, beta, sig2, gam)
    phases = scales[:, None] * unit
    return phases.sum(axis=0) + bkg, phases, bkg, unit, fits


_STRUCTURE_LEAVES = ("xyz", "occ", "biso", "uani")


def _structure_moved(layout: Layout, a: np.ndarray) -> tuple[tuple[str, ...], ...]:
    """Per phase: the structure leaves (coordinates, occupancies, Biso, U) that a column of ``a``
    moves."""
    tree = layout.unflatten(np.where(np.any(a != 0, axis=1), 2.0, 1.0))
    return tuple(tuple(k for k in _STRUCTURE_LEAVES if k in pp and np.any(np.asarray(pp[k]) != 1.0))
                 for pp in tree["phases"])


def _phases_moved(layout: Layout, a: np.ndarray) -> tuple[int, ...]:
    """Indices of the phases whose reflections a column of ``a`` moves (all of them when an
    instrument term, the absorption or the histogram scale moves)."""
    tree = layout.unflatten(np.where(np.any(a != 0, axis=1), 2.0, 1.0))
    if any(float(v) != 1.0 for v in tree["instrument"].values()) or float(tree["absorption"]) != 1.0:
        return tuple(range(len(tree["phases"])))
    return tuple(i for i, pp in enumerate(tree["phases"])
                 if any(np.any(np.asarray(v) != 1.0) for v in pp.values()))


def _nonlinear_kernel(spec, lk, leaves, moved, fallback, v, a, sel=None):
    """Jacobian columns (N, k) along the columns of ``a`` by the chain rule through the reflections.

    y = Σ_h I_h P(t − t_h; α_h, β_h, σ²_h, γ_h), so column j is
    Σ_h scatter[∂I_h/∂q_j · P_h + I_h Σ_x ∂P_h/∂x · ∂x_h/∂q_j], x = (t_h, α, β, σ², γ): the
    per-reflection derivatives by forward-mode autodiff of the structure factors and peak terms
    (one JVP per column, cheap), the profile's partial derivatives analytically on every window
    point (:func:`~layerscope.diffraction.pattern.profile_derivative_patterns`: one pass for all
    columns). ``moved`` (static, per phase, :func:`_structure_moved`): the structure leaves that
    some column moves; the others enter as constants, so that forward mode carries no tangents
    through the (reflections × sites × operations) phase factors of a phase whose coordinates no
    column moves (an occupancy column then costs a sum over the sites only). ``fallback`` (static): with the
    dense branch of the profile kernel, needed only where the profiles do not fit the model's
    sub-windows (the flag of :func:`_calc_kernel` at ``v``). ``sel`` (static,
    :func:`_phases_moved`; None: all): the phases whose reflections some column moves; the
    others' are left out of the derivative pass (their rows are zero).
    """
    from dataclasses import replace

    model = join_model(spec, leaves)
    sel = tuple(range(len(model.phases))) if sel is None else sel
    model = replace(model, phases=tuple(model.phases[i] for i in sel))
    layout = lk.layout
    fixed = layout.unflatten(v)

    def peaks(u):
        tree = layout.unflatten(u)
        tree["phases"] = [{**pp, **{key: f[key] for key in _STRUCTURE_LEAVES if key in f and key not in m}}
                          for i, (pp, f, m) in enumerate(zip(tree["phases"], fixed["phases"], moved)) if i in sel]
        inten, _, _, th, alpha, beta, sig2, gam = _all_peaks(model, tree)
        return jnp.stack([inten, th, alpha, beta, sig2, gam])

    rows, tang = jax.vmap(lambda col: jax.jvp(peaks, (v,), (col,)), out_axes=(None, 0))(a.T)
    inten, th, alpha, beta, sig2, gam = rows
    idx, delta = peak_windows(model, th)
    # Δ = t − t_h: a move of t_h is −1 times a move of Δ
    coef = jnp.stack([tang[:, 0], -inten * tang[:, 1], inten * tang[:, 2], inten * tang[:, 3],
                      inten * tang[:, 4], inten * tang[:, 5]], axis=1)
    return profile_derivative_patterns(model, idx, delta, alpha, beta, sig2, gam, coef, fallback=fallback).T


_calc_jit = jax.jit(_calc_kernel, static_argnums=(0, 1))
_nonlinear_jit = jax.jit(_nonlinear_kernel, static_argnums=(0, 1, 3, 4), static_argnames=("sel",))


def _bucket(n, buckets):
    return next((b for b in buckets if b >= n), n)


class Evaluator:
    """Jitted pattern and Jacobian for one model.

    The pattern is linear in the background coefficients and in the phase scales
    (y = Σ_p h·s_p·U_p + Σ_k c_k T_k, with U_p the pattern of phase p at unit scale), so the
    Jacobian columns that move only those entries are formed from the unit-scale phase patterns
    (returned by every pattern evaluation: the profiles do not depend on the scales) and the
    Chebyshev basis — exact, with no autodiff pass.

    Every other column goes through the reflections: y = Σ_h I_h P(t − t_h; α_h, β_h, σ²_h, γ_h),
    so ∂y/∂q = Σ_h [∂I_h/∂q · P_h + I_h ∇P_h · ∂(t_h, α_h, β_h, σ²_h, γ_h)/∂q]. The per-reflection
    derivatives come from forward-mode autodiff of the (cheap) structure factors and peak terms
    (atoms that no column moves held constant); ∇P_h from the analytic partial derivatives of
    the profile kernel (``tof_profile.tof_peak_rows_derivatives``: written by hand because a
    forward-mode pass through the profile kernel cost more than the kernel, for every column),
    evaluated once per window point for all columns and accumulated straight into the Jacobian
    (:func:`_nonlinear_kernel`). The column count is padded to buckets so that the stages of a
    refinement reuse a few compiled functions, and the compiled functions are shared by every
    Evaluator of a model with the same static shape
    (:func:`~layerscope.diffraction.pattern.split_model`): a second refinement of the same data
    does not compile again.
    """

    def __init__(self, model: PatternModel, layout: Layout):
        self.model = model
        self.layout = layout
        self._spec, self._leaves = split_model(model)
        self._lk = _LayoutKey(layout)
        n = len(layout.names)
        self._i_bkg, self._i_h, self._i_scale = _linear_indices(layout)
        self._linear = np.zeros(n, bool)
        self._linear[self._i_bkg] = True
        self._linear[self._i_h] = True
        self._linear[self._i_scale] = True
        self._basis = np.asarray(chebyshev_basis(np.asarray(model.tof_us), layout.n_background, model.t_range))
        self._last = (None, None)
        self._profiled = None  # (full vector, unit-scale phase patterns, fits) of the last kernel call
        #: per phase, structure leaves that Jacobians moving any structure treat as moved (a
        #: superset: see :meth:`share_kernels`)
        self.structure_hint: tuple[tuple[str, ...], ...] | None = None
        #: phases whose reflections every Jacobian with a subset of them moved takes along
        self.phase_hint: tuple[int, ...] | None = None

    def share_kernels(self, a: np.ndarray) -> None:
        """Let every Jacobian whose nonlinear columns move a subset of what the columns ``a``
        move (structure leaves; phases whose reflections move) use the compiled kernel of
        ``a``'s: one compilation instead of one per subset (a sequential refinement whose minor
        phase's cell and occupancies join the free set when it grows would otherwise compile
        its stages again, ~20 s each on two CPU cores). The extra entries get zero tangents;
        the Jacobian is the same."""
        a = np.asarray(a)
        a = a[:, np.any((a != 0) & ~self._linear[:, None], axis=0)]
        self.structure_hint = _structure_moved(self.layout, a)
        self.phase_hint = _phases_moved(self.layout, a)

    def _evaluate(self, full):
        """(pattern, phase patterns, background, unit-scale phase patterns, profiles fit) at ``full``.

        Where ``full`` differs from the last kernel evaluation only in background coefficients and
        scales (the trial steps of a scales-and-background stage), the pattern is formed from that
        evaluation's unit-scale phase patterns and the Chebyshev basis (y = Σ_p h·s_p·U_p + cᵀT,
        exact: nothing else depends on those entries) instead of a new profile pass.
        """
        full = np.asarray(full, dtype=float)
        key = full.tobytes()
        if self._last[0] == key:
            return self._last[1]
        prev = self._profiled
        if prev is not None and np.array_equal(full[~self._linear], prev[0][~self._linear]):
            unit, fits = prev[1], prev[2]
            phases = (full[self._i_h] * full[self._i_scale])[:, None] * unit
            bkg = full[self._i_bkg] @ self._basis if len(self._i_bkg) else np.zeros(unit.shape[1])
            out = (phases.sum(axis=0) + bkg, phases, bkg, unit, fits)
        else:
            res = _calc_jit(self._spec, self._lk, self._leaves, jnp.asarray(full))
            out = tuple(np.asarray(a) for a in res[:4]) + (bool(res[4]),)
            self._profiled = (full.copy(), out[3], out[4])
        self._last = (key, out)
        return out

    def reset_cache(self):
        """Forget the last evaluations. The linear shortcut of :meth:`_evaluate` agrees with a
        profile pass only to rounding, so without a reset a refinement's path (and, within its
        convergence tolerance, its result) would depend on what the Evaluator computed before;
        :func:`least_squares` and :func:`linear_scan` start from a reset cache, which makes each
        of them a function of its inputs alone (a resumed operando series reproduces an
        uninterrupted one bit for bit)."""
        self._last = (None, None)
        self._profiled = None

    def calc(self, full):
        total, phases, bkg, _, _ = self._evaluate(full)
        return total, phases, bkg

    def profiles_fit(self, full) -> bool:
        """Whether every profile fits the model's sub-windows at ``full`` (the pattern kernel's flag)."""
        return self._evaluate(full)[4]

    def linear_jacobian(self, full):
        """Pattern and ∂y/∂x_j for every linear entry j of the full vector: (y, {j: column})."""
        full = np.asarray(full, dtype=float)
        y, _, _, u_p, _ = self._evaluate(full)
        h = full[self._i_h]
        s = full[self._i_scale]
        cols = {int(j): self._basis[k] for k, j in enumerate(self._i_bkg)}
        cols[int(self._i_h)] = s @ u_p
        for k, j in enumerate(self._i_scale):
            cols[int(j)] = h * u_p[k]
        return y, cols

    def calc_jac(self, full, a: np.ndarray):
        """Pattern and Jacobian ∂y/∂q (N, k) for ``full + a q`` at q = 0."""
        full = np.asarray(full, dtype=float)
        k = a.shape[1]
        touched = np.abs(a) > 0
        lin_col = ~np.any(touched & ~self._linear[:, None], axis=0)
        yc, cols = self.linear_jacobian(full)
        jac = np.zeros((len(yc), k))
        for j in np.where(lin_col)[0]:
            for i in np.where(touched[:, j])[0]:
                jac[:, j] += a[i, j] * cols[int(i)]
        nl = np.where(~lin_col)[0]
        if len(nl):
            jac[:, nl] = self._nonlinear_columns(full, a[:, nl])
        return yc, jac

    def _nonlinear_columns(self, full, a):
        """∂y/∂q for columns ``a`` that move nonlinear entries (the chain rule of the class doc)."""
        k = a.shape[1]
        kb = _bucket(k, _BUCKETS)
        ap = np.zeros((a.shape[0], kb))
        ap[:, :k] = a
        fv = jnp.asarray(full)
        moved = _structure_moved(self.layout, a)
        hint = self.structure_hint
        if hint is not None and any(moved) and all(set(m) <= set(h) for m, h in zip(moved, hint)):
            moved = hint
        sel = _phases_moved(self.layout, a)
        if self.phase_hint is not None and set(sel) <= set(self.phase_hint):
            sel = self.phase_hint
        # every profile inside its sub-windows at this point (the usual case; the pattern
        # evaluation there says so): the kernel without the dense fallback branch (the same values
        # and derivatives; half the code to compile)
        fallback = not self.profiles_fit(full)
        jac = _nonlinear_jit(self._spec, self._lk, self._leaves, moved, fallback, fv, jnp.asarray(ap), sel=sel)
        jac = np.asarray(jac)[:, :k]
        # background coefficients a nonlinear column also moves (through a constraint)
        if len(self._i_bkg):
            jac = jac + self._basis.T @ a[self._i_bkg]
        return jac


@dataclass(frozen=True)
class FitStats:
    """Agreement factors (%) and χ² of a fit over N points with P free parameters.

    Rp = Σ|y − y_c| / Σ|y|; Rwp = √(Σ w (y − y_c)² / Σ w y²); Rexp = √((N − P) / Σ w y²);
    χ² = Σ w (y − y_c)² / (N − P); GoF = √χ² (= Rwp / Rexp).
    """

    rp: float
    rwp: float
    rexp: float
    chi2: float
    gof: float
    n_points: int
    n_params: int


def fit_stats(y, yc, sigma, n_params: int) -> FitStats:
    w = 1.0 / np.asarray(sigma) ** 2
    r2 = float(np.sum(w * (y - yc) ** 2))
    swy = float(np.sum(w * y**2))
    dof = max(len(y) - n_params, 1)
    chi2 = r2 / dof
    return FitStats(rp=100 * float(np.sum(np.abs(y - yc)) / np.sum(np.abs(y))), rwp=100 * np.sqrt(r2 / swy),
                    rexp=100 * np.sqrt(dof / swy), chi2=chi2, gof=float(np.sqrt(chi2)), n_points=len(y),
                    n_params=n_params)


@dataclass(frozen=True)
class FitResult:
    """Outcome of one least-squares run (one refinement stage)."""

    free: FreeSet
    q: np.ndarray
    full: np.ndarray
    cov_q: np.ndarray
    esd_q: np.ndarray
    correlation: np.ndarray
    stats: FitStats
    y_calc: np.ndarray
    converged: bool
    n_cycles: int
    singular: bool
    diverged: bool
    bound_hits: tuple[str, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)
    history: tuple[float, ...] = field(default_factory=tuple)
    #: which rule ended the run: "shift/esd", "chi2 change" (GSAS-II's), "no lower chi2",
    #: "max cycles", "diverged", "stuck" (gsas2 schedule), "nothing free"
    stop_rule: str = ""
    #: largest |shift|/esd of the last cycle (GSAS-II's sequential table's shift/esd column)
    max_shift_esd: float = float("nan")

    @property
    def names(self) -> tuple[str, ...]:
        return self.free.names

    @property
    def cov_full(self) -> np.ndarray:
        """Covariance of every model quantity (A cov(q) Aᵀ); zero for fixed ones."""
        c = np.nan_to_num(self.cov_q)
        return self.free.A @ c @ self.free.A.T

    @property
    def esd_full(self) -> np.ndarray:
        """esd of every model quantity: 0 for fixed ones, NaN for those that move with a free
        direction the normal matrix left undetermined (``cov_q`` NaN there; ``cov_full`` sets
        those entries to 0 so that products with it stay finite — an esd of 0 would read as exact)."""
        esd = np.sqrt(np.clip(np.diag(self.cov_full), 0, None))
        if self.cov_q.size:
            bad = ~np.isfinite(np.diag(self.cov_q))
            if np.any(bad):
                esd[np.any(self.free.A[:, bad] != 0, axis=1)] = np.nan
        return esd

    def value(self, name: str) -> float:
        """Refined value of a model quantity by its layout name (``NAC.a``)."""
        return float(self.full[self.free.full_names.index(name)])

    def esd(self, name: str) -> float:
        return float(self.esd_full[self.free.full_names.index(name)])


def _bounded_step(free: FreeSet, q, m, g, s, dead):
    """Marquardt step that keeps every model quantity within its bounds.

    Solves ``m δ̂ = ĝ`` (scaled normal equations, δq = s·δ̂) subject to lower ≤ x0 + A(q + δq) ≤ upper
    for every entry of the full vector that the free columns move — the free parameters *and* the
    ones a linear constraint makes dependent on them (e.g. the last occupancy of a site whose
    occupancies sum to a constant). Active set, rebuilt from empty at every step: an entry whose
    unconstrained step would cross a bound is pinned exactly on it (an equality row of the KKT
    system) and the others are re-solved, until no bound is crossed. Entries sitting on a bound are
    not pinned when the step points back inside, so a parameter can leave its bound again (a
    step *truncation* instead shortens every parameter's move and can stall the fit at a bound).

    Returns (δq, mask of the full entries pinned at a bound).
    """
    full = free.full(q)
    lo, hi = free.lower, free.upper
    a = free.A
    k = len(g)
    moved = np.any(a != 0, axis=1)
    tol = 1e-12 * np.maximum(1.0, np.maximum(np.where(np.isfinite(lo), np.abs(lo), 0),
                                             np.where(np.isfinite(hi), np.abs(hi), 0)))
    pin_lo = np.zeros(len(full), bool)
    pin_hi = np.zeros(len(full), bool)
    eye = np.eye(k)
    dq = np.zeros(k)
    for _ in range(len(full) + 1):
        rows = [eye[i] for i in np.where(dead)[0]]
        rhs = [0.0] * len(rows)
        for j in np.where(pin_lo | pin_hi)[0]:
            rows.append(a[j] * s)
            rhs.append((lo[j] if pin_lo[j] else hi[j]) - full[j])
        if rows:
            c = np.array(rows)
            kkt = np.block([[m, c.T], [c, np.zeros((len(rows), len(rows)))]])
            sol = np.linalg.lstsq(kkt, np.concatenate([g, rhs]), rcond=1e-14)[0]
            ds = sol[:k]
        else:
            ds = np.linalg.lstsq(m, g, rcond=1e-14)[0]
        dq = ds * s
        dq[dead] = 0.0
        new = full + a @ dq
        over_lo = moved & ~pin_lo & ~pin_hi & (new < lo - tol)
        over_hi = moved & ~pin_lo & ~pin_hi & (new > hi + tol)
        if not (np.any(over_lo) or np.any(over_hi)):
            break
        pin_lo |= over_lo
        pin_hi |= over_hi
    new = full + a @ dq
    out = moved & ((new < lo - tol) | (new > hi + tol))
    if np.any(out):
        # pins that cannot all hold at once (more than the free directions): shorten the step to the
        # first bound it crosses so that the model never leaves its physical domain. Entries already
        # on (or, by rounding, a hair past) the bound they move towards are left out: their "room"
        # is ≤ 0 and would shorten the whole step to nothing (a fit then stopped at its start as
        # "converged", with scales pinned at 0)
        step = a @ dq
        inside = np.where(step < 0, full > lo + tol, full < hi - tol)
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(step < 0, (lo - full) / step, np.where(step > 0, (hi - full) / step, np.inf))
        frac = float(np.clip(np.min(np.where(moved & (step != 0) & inside, room, np.inf)), 0.0, 1.0))
        dq = dq * frac
    return dq, pin_lo | pin_hi


def _gauss_newton_shift(free: FreeSet, q, h, g, chi2, dof) -> float:
    """max |δq|/esd of the undamped, bound-respecting Gauss–Newton step from ``q``, given the
    normal matrix ``h`` = JᵀWJ and gradient ``g`` = JᵀW(y − y_calc) there."""
    d = np.diag(h).copy()
    dead = d <= 1e-300 * max(d.max(), 1e-300)
    d[dead] = 1.0
    s = 1.0 / np.sqrt(d)
    hs = h * s[:, None] * s[None, :]
    dq, _ = _bounded_step(free, q, hs, g * s, s, dead)
    esd = np.sqrt(np.clip(np.diag(np.linalg.pinv(hs, rcond=1e-14)), 0, None) * chi2 / dof) * s
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.nanmax(np.where(esd > 0, np.abs(dq) / esd, 0.0)))


def _gauss_newton_gain(free: FreeSet, q, h, g) -> float:
    """χ² decrease that the linearised model predicts for the undamped, bound-respecting
    Gauss–Newton step from ``q`` (2 gᵀδ − δᵀHδ), given ``h`` = JᵀWJ and ``g`` = JᵀW(y − y_calc)."""
    d = np.diag(h).copy()
    dead = d <= 1e-300 * max(d.max(), 1e-300)
    d[dead] = 1.0
    s = 1.0 / np.sqrt(d)
    dq, _ = _bounded_step(free, q, h * s[:, None] * s[None, :], g * s, s, dead)
    return float(2.0 * g @ dq - dq @ h @ dq)


def least_squares(ev: Evaluator, free: FreeSet, y, sigma, *, max_cycles: int = 30, tol: float = 0.01,
                  lam0: float = 1e-3, cond_max: float = 1e12, correlation_warn: float = 0.95,
                  schedule: str = "layerscope", ftol: float = 1e-3, lam_converge: float = 1e-2,
                  chi2_tol: float | None = None) -> FitResult:
    """Refine the free vector of ``free`` against observations ``y`` ± ``sigma``.

    ``max_cycles`` bounds the number of accepted Gauss–Newton cycles (GSAS-II's "cycles").

    ``schedule="layerscope"``: Marquardt λ from ``lam0``, a step is taken only when χ² does not
    rise, convergence on max |shift|/esd < ``tol``. A step accepted with λ > ``lam_converge``
    (on the unit-diagonal scaled normal matrix) is short because it was damped, so there the
    test is made on the undamped Gauss–Newton step from the new point instead (a small step
    taken at λ ~ 10³ after several rejected trials once ended a fit at χ²ν ≈ 700 as
    "converged"). ``schedule="gsas2"`` follows GSAS-II's
    ``HessianLSQ``: plain Gauss–Newton (λ = 0) until a step raises χ² by more than ``ftol``
    (relative; the allowance doubles at each retry), then λ = 10⁻³, ×10 per retry, up to 10
    ("stuck"), ÷10 after a step; a step may raise χ² within the allowance; converged when χ²
    falls by less than ``ftol`` (relative) in a cycle. It is there to re-run a GSAS-II job
    cycle by cycle (a GSAS-II "cycles = 2" stage is often not converged).

    ``chi2_tol`` (``layerscope`` schedule; None: off) adds GSAS-II's second rule: the run also
    converges when an accepted step taken with λ ≤ ``lam_converge`` (nearly undamped, so not
    short because of the damping) lowers χ² by less than ``chi2_tol`` relative to χ², or when a
    damped step does and the undamped Gauss–Newton step from the new point is predicted (by the
    linearised model) to gain less than that too — where overlapping phases make a long, curved
    χ² valley, every undamped step overshoots and the damped ones crawl along it (an 8-phase
    pouch-cell pattern with all cells free took 16 cycles, χ² falling by < 3e-5 relative per
    cycle after the sixth). The rule that ended the run is ``FitResult.stop_rule``.
    """
    if schedule not in ("layerscope", "gsas2"):
        raise ValueError(f"schedule must be 'layerscope' or 'gsas2', got {schedule!r}")
    gsas2 = schedule == "gsas2"
    y = np.asarray(y, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    if y.shape != sigma.shape or y.shape != ev.model.tof_us.shape:
        raise ValueError(f"observations ({y.shape}) and σ ({sigma.shape}) must match the model grid "
                         f"({ev.model.tof_us.shape})")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(sigma)) and np.all(sigma > 0)):
        raise ValueError("observations must be finite with σ > 0 at every point")
    sw = 1.0 / sigma
    ev.reset_cache()
    k = free.n
    names = free.names
    q = np.zeros(k)
    warnings: list[str] = []
    hits = np.zeros(len(free.x0), bool)
    if k == 0:
        yc = ev.calc(free.full(q))[0]
        st = fit_stats(y, yc, sigma, 0)
        return FitResult(free, q, free.full(q), np.zeros((0, 0)), np.zeros(0), np.zeros((0, 0)), st, yc,
                         True, 0, False, False, (), ("nothing is free: pattern evaluated only",), (st.rwp,),
                         "nothing free")
    yc, jac = ev.calc_jac(free.full(q), free.jacobian_columns)
    r = (y - yc) * sw
    chi2 = float(r @ r)
    history = [chi2]
    lam = 0.0 if gsas2 else lam0
    converged = diverged = False
    rule = "max cycles"
    singular_names: list[str] = []
    cycles = 0
    shift_esd = np.inf
    if not np.isfinite(chi2):
        diverged = True
        warnings.append("the starting model gives a non-finite pattern (check the starting values)")
    while not diverged and cycles < max_cycles:
        jw = jac * sw[:, None]
        h = jw.T @ jw
        g = jw.T @ r
        d = np.diag(h).copy()
        dead = d <= 1e-300 * max(d.max(), 1e-300)
        d[dead] = 1.0
        s = 1.0 / np.sqrt(d)
        hs = h * s[:, None] * s[None, :]
        gs = g * s
        accepted = False
        chitol = ftol if gsas2 else 1e-12
        while lam < 1e10:
            dq, bad = _bounded_step(free, q, hs + lam * np.eye(k), gs, s, dead)
            q_try = q + dq
            yc_t = ev.calc(free.full(q_try))[0]
            r_t = (y - yc_t) * sw
            chi2_t = float(r_t @ r_t)
            if np.isfinite(chi2_t) and chi2_t <= chi2 * (1 + chitol):
                accepted = True
                break
            if gsas2:
                lam = 1e-3 if lam == 0 else lam * 10.0
                chitol *= 2.0
                if lam > 10.0:
                    break
            else:
                lam *= 10.0
        if not accepted:
            if gsas2:
                warnings.append("GSAS-II schedule stuck: χ² rose at every Marquardt λ up to 10")
                rule = "stuck"
            else:
                # no step lowers χ²: we are at the minimum to numerical precision
                converged = True
                rule = "no lower chi2"
            break
        cycles += 1
        hits |= bad
        step = q_try - q
        lam_step = lam
        yc_t, jac_t = ev.calc_jac(free.full(q_try), free.jacobian_columns)
        drop = (chi2 - chi2_t) / chi2 if chi2 > 0 else 0.0
        q, yc, jac, r, chi2 = q_try, yc_t, jac_t, r_t, chi2_t
        history.append(chi2)
        lam = lam / 10.0 if gsas2 else max(lam / 10.0, 1e-9)
        dof = max(len(y) - k, 1)
        hin = np.linalg.pinv(hs, rcond=1e-14)
        esd = np.sqrt(np.clip(np.diag(hin), 0, None) * chi2 / dof) * s
        with np.errstate(divide="ignore", invalid="ignore"):
            shift_esd = float(np.nanmax(np.where(esd > 0, np.abs(step) / esd, 0.0)))
        if gsas2:
            if drop < ftol:
                converged = True
                rule = "chi2 change"
                break
        elif shift_esd < tol:
            if lam_step <= lam_converge:
                converged = True
                rule = "shift/esd"
                break
            # a heavily damped step is short because of λ, not because the minimum is near:
            # judge convergence by the undamped (bounded Gauss–Newton) step from the new point
            jw = jac * sw[:, None]
            gn_shift = _gauss_newton_shift(free, q, jw.T @ jw, jw.T @ r, chi2, dof)
            if gn_shift < tol:
                shift_esd = gn_shift
                converged = True
                rule = "shift/esd"
                break
            shift_esd = gn_shift
        if chi2_tol is not None and not gsas2 and 0 <= drop < chi2_tol:
            # GSAS-II's rule on an undamped cycle; after a damped one (λ > lam_converge: the
            # full Gauss–Newton step raised χ², e.g. along a valley of two overlapping phases),
            # when the undamped step from here would gain less than chi2_tol as well
            jw = jac * sw[:, None]
            if lam_step <= lam_converge or _gauss_newton_gain(free, q, jw.T @ jw, jw.T @ r) < chi2_tol * chi2:
                converged = True
                rule = "chi2 change"
                break
    # final normal matrix and esds
    jw = jac * sw[:, None]
    h = jw.T @ jw
    d = np.diag(h).copy()
    dead = d <= 1e-300 * max(d.max(), 1e-300)
    for i in np.where(dead)[0]:
        singular_names.append(names[i])
        warnings.append(f"the pattern does not depend on {names[i]} (no scattering contrast or no "
                        "reflections): its value is undetermined — fix it or constrain it")
    d[dead] = 1.0
    s = 1.0 / np.sqrt(d)
    hs = h * s[:, None] * s[None, :]
    ev_vals, ev_vecs = np.linalg.eigh(hs)
    cond = ev_vals[-1] / max(ev_vals[0], 1e-300)
    singular = bool(np.any(dead) or cond > cond_max)
    if cond > cond_max and not np.any(dead):
        v = ev_vecs[:, 0]
        idx = np.argsort(-np.abs(v))[:4]
        involved = [names[i] for i in idx if abs(v[i]) > 0.1]
        warnings.append("singular normal matrix (condition number %.1e): a combination of %s is not "
                        "determined by the data (fully correlated parameters) — fix one or tie them"
                        % (cond, ", ".join(involved)))
    dof = max(len(y) - k, 1)
    chi2_nu = chi2 / dof
    hin = np.linalg.pinv(hs, rcond=1e-12)
    cov = hin * s[:, None] * s[None, :] * chi2_nu
    if singular:
        bad_dir = np.zeros(k, bool)
        bad_dir |= dead
        small = ev_vals < ev_vals[-1] / cond_max
        for j in np.where(small)[0]:
            bad_dir |= np.abs(ev_vecs[:, j]) > 0.1
        cov[bad_dir, :] = np.nan
        cov[:, bad_dir] = np.nan
    esd = np.sqrt(np.abs(np.diag(cov)))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(esd, esd)
    for i in range(k):
        for j in range(i + 1, k):
            if np.isfinite(corr[i, j]) and abs(corr[i, j]) > correlation_warn:
                warnings.append(f"correlation {corr[i, j]:+.3f} between {names[i]} and {names[j]}")
    bound_names = tuple(n for n, hit in zip(_full_names_of(free), hits) if hit)
    full = free.full(q)
    at_bound = [j for j in range(len(full)) if np.any(free.A[j] != 0)
                and (abs(full[j] - free.lower[j]) < 1e-12 or abs(full[j] - free.upper[j]) < 1e-12)]
    bound_names = tuple(sorted(set(bound_names) | {_full_names_of(free)[j] for j in at_bound}))
    for b in bound_names:
        warnings.append(f"{b} reached its bound and was held there")
    if not np.isfinite(chi2):
        diverged = True
    if diverged:
        rule = "diverged"
    if not converged and not diverged:
        crit = f"χ² still falling by ≥ {ftol:g} per cycle" if gsas2 else f"max shift/esd {shift_esd:.3g} > {tol}"
        warnings.append(f"not converged after {cycles} cycles ({crit})")
    if diverged:
        warnings.append("the refinement diverged")
    stats = fit_stats(y, yc, sigma, k)
    ok = converged and not singular and not diverged
    return FitResult(free, q, full, cov, esd, corr, stats, yc, ok, cycles, singular, diverged, bound_names,
                     tuple(warnings), tuple(history), rule, float(shift_esd))


def linear_scan(ev: Evaluator, x, direction, steps, y, sigma):
    """χ² along a line x + t·direction with the linear parameters solved exactly at every t.

    A local optimiser cannot find a phase whose peaks start more than about one FWHM from where
    they belong (a minor phase whose cell is off by more than the resolution, its reflections
    on the shoulders of the main phase's): the χ² surface has a minimum for every peak it can
    be aligned with. Along one direction (typically the cell of a cubic phase, one column of
    :func:`~layerscope.refine.parameters.free_set`) a grid search finds the right basin: at
    each step the histogram's phase scales (≥ 0) and background coefficients — in which the
    pattern is linear — are solved by bounded linear least squares (one pattern evaluation per
    step), so the comparison between steps is fair.

    Returns (χ² at every step, the full vector at the best step with its scales and background).
    """
    from scipy.optimize import lsq_linear

    x = np.asarray(x, dtype=float)
    direction = np.asarray(direction, dtype=float)
    ev.reset_cache()
    sw = 1.0 / np.asarray(sigma, dtype=float)
    yw = np.asarray(y, dtype=float) * sw
    idx = np.concatenate([ev._i_scale, ev._i_bkg]).astype(int)
    lo = np.concatenate([np.zeros(len(ev._i_scale)), np.full(len(ev._i_bkg), -np.inf)])
    chi2 = np.empty(len(steps))
    best = (np.inf, None)
    for n, t in enumerate(steps):
        xt = x + float(t) * direction
        _, cols = ev.linear_jacobian(xt)
        a = np.stack([cols[int(i)] for i in idx], axis=1) * sw[:, None]
        norm = np.linalg.norm(a, axis=0)
        norm[norm == 0] = 1.0
        sol = lsq_linear(a / norm, yw, bounds=(lo * norm, np.full(len(idx), np.inf)))
        chi2[n] = 2.0 * sol.cost
        if chi2[n] < best[0]:
            xt = xt.copy()
            xt[idx] = sol.x / norm
            best = (chi2[n], xt)
    return chi2, best[1]


def _full_names_of(free: FreeSet) -> tuple[str, ...]:
    return free.full_names or tuple(f"p{j}" for j in range(len(free.x0)))
