"""Damped Gauss–Newton (Levenberg–Marquardt) least squares with exact Jacobians.

Minimises χ² = Σ_i w_i (y_i − y_calc,i(q))², w_i = 1/σ_i², over the free vector q of a
:class:`~layerscope.refine.parameters.FreeSet` (``full = x0 + A q``). Each cycle solves
the Marquardt-scaled normal equations (Marquardt, J. SIAM 11, 431 (1963))::

    (Ĥ + λ I) δ̂ = ĝ,   Ĥ_ij = H_ij / √(H_ii H_jj),  H = JᵀWJ,  g = JᵀW(y − y_calc)

with J = ∂y_calc/∂q exact: columns that move only scales and background coefficients (in
which the pattern is linear) from the unit-scale phase patterns, every other column by the
chain rule through the per-reflection quantities (intensity, position, α, β, σ², γ):
forward-mode autodiff of the structure factors and peak terms, the profile's partial
derivatives written out by hand (:class:`~layerscope.refine.evaluator.Evaluator`).
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

import numpy as np

from layerscope.refine.evaluator import Evaluator  # (it sets JAX to 64-bit)
from layerscope.refine.parameters import FreeSet

__all__ = ["Evaluator", "FitStats", "FitResult", "least_squares", "finish_fit", "fit_stats", "linear_scan"]

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


def _scaled_normal(h):
    """Marquardt scaling of a normal matrix: (dead, s, Ĥ) with Ĥ_ij = H_ij s_i s_j, s_i = 1/√H_ii,
    and ``dead`` the parameters the pattern does not depend on (a zero diagonal; s_i = 1 there)."""
    d = np.diag(h).copy()
    dead = d <= 1e-300 * max(d.max(), 1e-300)
    d[dead] = 1.0
    s = 1.0 / np.sqrt(d)
    return dead, s, h * s[:, None] * s[None, :]


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
    dead, s, hs = _scaled_normal(h)
    dq, _ = _bounded_step(free, q, hs, g * s, s, dead)
    esd = np.sqrt(np.clip(np.diag(np.linalg.pinv(hs, rcond=1e-14)), 0, None) * chi2 / dof) * s
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.nanmax(np.where(esd > 0, np.abs(dq) / esd, 0.0)))


def _gauss_newton_gain(free: FreeSet, q, h, g) -> float:
    """χ² decrease that the linearised model predicts for the undamped, bound-respecting
    Gauss–Newton step from ``q`` (2 gᵀδ − δᵀHδ), given ``h`` = JᵀWJ and ``g`` = JᵀW(y − y_calc)."""
    dead, s, hs = _scaled_normal(h)
    dq, _ = _bounded_step(free, q, hs, g * s, s, dead)
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
    cycles = 0
    shift_esd = np.inf
    if not np.isfinite(chi2):
        diverged = True
        warnings.append("the starting model gives a non-finite pattern (check the starting values)")
    while not diverged and cycles < max_cycles:
        jw = jac * sw[:, None]
        dead, s, hs = _scaled_normal(jw.T @ jw)
        gs = (jw.T @ r) * s
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
    if not np.isfinite(chi2):
        diverged = True
    crit = f"χ² still falling by ≥ {ftol:g} per cycle" if gsas2 else f"max shift/esd {shift_esd:.3g} > {tol}"
    jw = jac * sw[:, None]
    return finish_fit(free, q, jw.T @ jw, chi2, yc, y, sigma, converged=converged, diverged=diverged, cycles=cycles,
                      hits=hits, not_converged=crit, cond_max=cond_max, correlation_warn=correlation_warn,
                      warnings=warnings, history=history, rule=rule, max_shift_esd=shift_esd)


def finish_fit(free: FreeSet, q, h, chi2, yc, y, sigma, *, converged: bool, diverged: bool, cycles: int, hits,
               not_converged: str, cond_max: float, correlation_warn: float, warnings=(), history=(),
               rule: str = "", max_shift_esd: float = float("nan")) -> FitResult:
    """The end of every Levenberg–Marquardt run (:func:`least_squares` and each pattern of
    :func:`~layerscope.refine.batched.refine_batched`): esds, singularity, correlations, bounds.

    From the normal matrix ``h`` = JᵀWJ at the final ``q`` (χ² = ``chi2``): cov(q) = H⁻¹ χ²/(N − P)
    (pseudo-inverse of the Marquardt-scaled matrix). A parameter the pattern does not depend on
    (zero diagonal), or a condition number of the scaled matrix above ``cond_max``, makes the
    result *singular*: the covariance rows and columns of the parameters in the ill-determined
    directions (eigenvector components > 0.1) are NaN and a warning names them. Pairs correlated
    beyond ``correlation_warn`` are warned about; model quantities that hit a bound during the
    run (``hits``, over the full vector) or sit on one now are reported as held there.
    ``not_converged`` is the criterion quoted when the run stopped unconverged.
    """
    k = free.n
    names = free.names
    warnings = list(warnings)
    dead, s, hs = _scaled_normal(h)
    for i in np.where(dead)[0]:
        warnings.append(f"the pattern does not depend on {names[i]} (no scattering contrast or no "
                        "reflections): its value is undetermined — fix it or constrain it")
    ev_vals, ev_vecs = np.linalg.eigh(hs)
    cond = ev_vals[-1] / max(ev_vals[0], 1e-300)
    singular = bool(np.any(dead) or cond > cond_max)
    if cond > cond_max and not np.any(dead):
        v = ev_vecs[:, 0]
        involved = [names[i] for i in np.argsort(-np.abs(v))[:4] if abs(v[i]) > 0.1]
        warnings.append("singular normal matrix (condition number %.1e): a combination of %s is not "
                        "determined by the data (fully correlated parameters) — fix one or tie them"
                        % (cond, ", ".join(involved)))
    dof = max(len(y) - k, 1)
    cov = np.linalg.pinv(hs, rcond=1e-12) * s[:, None] * s[None, :] * (chi2 / dof)
    if singular:
        bad_dir = dead.copy()
        for j in np.where(ev_vals < ev_vals[-1] / cond_max)[0]:
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
    fnames = _full_names_of(free)
    full = free.full(q)
    at_bound = [j for j in range(len(full)) if np.any(free.A[j] != 0)
                and (abs(full[j] - free.lower[j]) < 1e-12 or abs(full[j] - free.upper[j]) < 1e-12)]
    bound_names = tuple(sorted({fnames[j] for j in np.where(hits)[0]} | {fnames[j] for j in at_bound}))
    for b in bound_names:
        warnings.append(f"{b} reached its bound and was held there")
    diverged = bool(diverged or not np.isfinite(chi2))
    if diverged:
        rule = "diverged"
    elif not converged:
        warnings.append(f"not converged after {cycles} cycles ({not_converged})")
    if diverged:
        warnings.append("the refinement diverged")
    stats = fit_stats(y, yc, sigma, k)
    ok = bool(converged and not singular and not diverged)
    return FitResult(free, np.asarray(q), full, cov, esd, corr, stats, yc, ok, cycles, singular, diverged, bound_names,
                     tuple(warnings), tuple(history), rule, float(max_shift_esd))


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
