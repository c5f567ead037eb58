"""Batched refinement of a series: one Levenberg–Marquardt problem over many patterns.

An operando series is many patterns on one TOF grid with one model: the same compiled
pattern and Jacobian kernels (:mod:`layerscope.refine.engine`) serve every pattern, only the
parameter vector and the counts differ. :func:`refine_batched` refines all of them at once:
the patterns, Jacobians and normal matrices of a chunk of ``batch_size`` patterns come from
one ``jax.vmap`` of the engine's kernels (on JAX's default backend — the GPU when there is
one, else the CPU), and every pattern keeps its own damped Gauss–Newton state:

* its own Marquardt λ (÷10 after an accepted step, ×10 after a rejected one) and its own
  convergence test, max |δq_j| / esd_j < ``tol``, exactly as :func:`~layerscope.refine.engine.least_squares`;
* a converged pattern (or one that ran out of cycles) leaves the batch: later calls evaluate
  only the patterns still moving (padded to a few fixed batch sizes so that the compiled
  functions are reused);
* bounds: the step of every pattern is first solved without them (batched
  ``jnp.linalg.solve`` of the Marquardt-scaled normal equations); a pattern whose step would
  take a model quantity across a bound is re-solved by the engine's active-set step
  (:func:`~layerscope.refine.engine._bounded_step`, the quantity pinned on its bound) and
  reports the quantity, as the per-pattern engine does.

The result of each pattern is a :class:`~layerscope.refine.engine.FitResult` (esds from
H⁻¹ scaled by that pattern's own reduced χ², singular-matrix and correlation warnings, bound
hits), the same as ``least_squares`` would give from the same free set and start.

The Jacobian is the engine's (:func:`~layerscope.refine.evaluator._nonlinear_kernel`: chain rule
through the reflections, the profiles' partial derivatives analytic, every column in one pass),
mapped over the patterns like the pattern kernel, so it is the exact Jacobian of every pattern.

Memory: per chunk the Jacobian needs batch_size × n_points × n_free floats; ``batch_size``
bounds it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.diffraction.pattern import PatternModel  # noqa: E402
from layerscope.refine.engine import FitResult, _bounded_step, _gauss_newton_shift, finish_fit  # noqa: E402
from layerscope.refine.evaluator import (  # noqa: E402
    _BUCKETS, Evaluator, _bucket, _calc_kernel, _linear_indices, _nonlinear_kernel, _structure_moved)
from layerscope.refine.parameters import FreeSet, Layout  # noqa: E402

__all__ = ["BatchedFit", "refine_batched", "device_summary"]


def device_summary() -> str:
    """JAX's default backend and device, e.g. ``cpu: TFRT_CPU_0`` or ``gpu: cuda:0 (NVIDIA H100)``."""
    d = jax.devices()[0]
    kind = getattr(d, "device_kind", "")
    return f"{jax.default_backend()}: {d}" + (f" ({kind})" if kind and kind.lower() != "cpu" else "")


# --- device kernels (mapped over the patterns of a chunk) ----------------------------------
def _over(mode, fn, live, args, empty):
    """``fn`` over the leading axis of ``args``: ``jax.vmap`` (``mode == "vmap"``: accelerators,
    every pattern of the batch computed at once) or ``jax.lax.map`` (``"map"``: the CPU, one
    pattern after the other inside one compiled loop — a vmapped scatter is slower per pattern
    on the CPU than the single-pattern kernel). Patterns with ``live`` False are skipped in the
    loop (``lax.cond``) and return ``empty(*args_of_one)``."""
    def one(a):
        lv, rest = a[0], a[1:]
        if mode == "map":
            return jax.lax.cond(lv, lambda r: fn(*r), lambda r: empty(*r), rest)
        return fn(*rest)
    if mode == "map":
        return jax.lax.map(one, (live,) + tuple(args))
    return jax.vmap(lambda *a: one(a))(live, *args)


def _chi2_kernel(spec, lk, leaves, mode, V, live, idx, Y, SW):
    """χ² of each pattern ``idx`` of the chunk at the full vectors ``V``."""
    def one(v, y, sw):
        r = (y - _calc_kernel(spec, lk, leaves, v)[0]) * sw
        return r @ r
    return _over(mode, one, live, (V, Y[idx], SW[idx]), lambda v, y, sw: jnp.zeros(()))


def _calc_batch_kernel(spec, lk, leaves, mode, V, live):
    def one(v):
        return _calc_kernel(spec, lk, leaves, v)[0]

    shape = jax.eval_shape(one, V[0])
    return _over(mode, one, live, (V,), lambda v: jnp.zeros(shape.shape, shape.dtype))


def _normal_kernel(spec, lk, leaves, mode, moved, fallback, has_nl, V, live, Anl, Alin, idx, Y, SW, basis, perm):
    """Normal matrix JᵀWJ, gradient JᵀW(y − y_calc), χ² of each pattern (columns in ``perm``
    order), and whether its profiles fit the sub-windows (if not, and ``fallback`` is False, its
    Jacobian is not valid: the caller computes it again with ``fallback``)."""
    i_bkg, i_h, i_scale = _linear_indices(lk.layout)
    k = perm.shape[0]

    def one(v, anl, alin, y, sw):
        total, _, _, unit, fits = _calc_kernel(spec, lk, leaves, v)
        lin_rows = jnp.concatenate([basis, (v[i_scale] @ unit)[None], v[i_h] * unit])
        cols = [lin_rows.T @ alin]
        if has_nl:
            jn = _nonlinear_kernel(spec, lk, leaves, moved, fallback, v, anl)
            if len(i_bkg):
                jn = jn + basis.T @ anl[i_bkg]
            cols.append(jn)
        jw = jnp.concatenate(cols, axis=1)[:, perm] * sw[:, None]
        r = (y - total) * sw
        return jw.T @ jw, jw.T @ r, r @ r, fits

    return _over(mode, one, live, (V, Anl, Alin, Y[idx], SW[idx]),
                 lambda *a: (jnp.zeros((k, k)), jnp.zeros(k), jnp.zeros(()), jnp.asarray(True)))


def _lm_solve(hs, gs, lam, dead):
    """Batched Marquardt steps (Ĥ + λI) δ̂ = ĝ; dead parameters (zero diagonal) do not move."""
    k = hs.shape[-1]
    eye = jnp.eye(k)
    keep = ~dead
    m = jnp.where(keep[:, :, None] & keep[:, None, :], hs, 0.0) + jnp.where(dead[:, :, None], eye, 0.0)
    m = m + lam[:, None, None] * eye
    return jnp.linalg.solve(m, jnp.where(keep, gs, 0.0)[..., None])[..., 0]


_chi2_jit = jax.jit(_chi2_kernel, static_argnums=(0, 1, 3))
_calc_batch_jit = jax.jit(_calc_batch_kernel, static_argnums=(0, 1, 3))
_normal_jit = jax.jit(_normal_kernel, static_argnums=(0, 1, 3, 4, 5, 6))
_lm_solve_jit = jax.jit(_lm_solve)


# --- result --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchedFit:
    """Per-pattern results of :func:`refine_batched` (each a :class:`FitResult`) and the device used."""

    results: tuple[FitResult, ...]
    device: str

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i) -> FitResult:
        return self.results[i]

    @property
    def full(self) -> np.ndarray:
        """Refined full vectors (n_patterns, n_full)."""
        return np.stack([r.full for r in self.results])

    @property
    def esd_full(self) -> np.ndarray:
        return np.stack([r.esd_full for r in self.results])

    @property
    def q(self) -> np.ndarray:
        return np.stack([r.q for r in self.results])

    @property
    def esd_q(self) -> np.ndarray:
        return np.stack([r.esd_q for r in self.results])

    @property
    def chi2(self) -> np.ndarray:
        """Reduced χ² of each pattern."""
        return np.array([r.stats.chi2 for r in self.results])

    @property
    def rwp(self) -> np.ndarray:
        return np.array([r.stats.rwp for r in self.results])

    @property
    def converged(self) -> np.ndarray:
        return np.array([r.converged for r in self.results])

    @property
    def n_cycles(self) -> np.ndarray:
        return np.array([r.n_cycles for r in self.results])

    @property
    def warnings(self) -> list[tuple[str, ...]]:
        return [r.warnings for r in self.results]


# --- the batched least squares -------------------------------------------------------------
class _Batch:
    """Device state of one refine_batched call: model, free-set structure, data of one chunk."""

    def __init__(self, ev: Evaluator, fsets: list[FreeSet]):
        self.ev = ev
        self.spec, self.leaves, self.lk = ev._spec, ev._leaves, ev._lk
        i_bkg, i_h, i_scale = ev._i_bkg, ev._i_h, ev._i_scale
        self.lin_entries = np.concatenate([i_bkg, [i_h], i_scale]).astype(int)
        ja = np.stack([f.jacobian_columns for f in fsets])
        k = ja.shape[2]
        touched = np.any(np.abs(ja) > 0, axis=0)
        lin_col = ~np.any(touched & ~ev._linear[:, None], axis=0)
        self.lin_cols = np.where(lin_col)[0]
        self.nl_cols = np.where(~lin_col)[0]
        self.k = k
        self.kb = _bucket(len(self.nl_cols), _BUCKETS) if len(self.nl_cols) else 0
        order = np.concatenate([self.lin_cols, self.nl_cols])
        self.perm = np.argsort(order)  # position of free column j in [linear cols, nonlinear cols (padded)]
        self.basis = jnp.asarray(ev._basis)
        # atoms moved by some pattern's nonlinear columns (static for the Jacobian kernel)
        self.moved = _structure_moved(ev.layout, np.any(np.abs(ja[:, :, self.nl_cols]) > 0, axis=0))

    def columns(self, fsets, sel):
        ja = np.stack([fsets[i].jacobian_columns for i in sel])
        alin = ja[:, self.lin_entries][:, :, self.lin_cols]
        anl = np.zeros((len(sel), ja.shape[1], max(self.kb, 1)))
        anl[:, :, :len(self.nl_cols)] = ja[:, :, self.nl_cols]
        return anl, alin


def _sizes(mode, size):
    """Batch sizes the compiled functions see: on the CPU (``map``) one, the skipped patterns
    cost nothing; with ``vmap`` every padded pattern is computed, so a few sizes (÷4)."""
    if mode == "map":
        return [size]
    out, b = [], int(size)
    while b > 1:
        out.append(b)
        b = b // 4
    return sorted(set(out + [1]))


def refine_batched(ev_or_model, layout: Layout | None, free: FreeSet, Y, S, start=None, *, bounds=None,
                   max_cycles: int = 30, tol: float = 0.01, lam0: float = 1e-3, batch_size: int = 32,
                   lam_converge: float = 1e-2, cond_max: float = 1e12, correlation_warn: float = 0.95,
                   vectorize: str = "auto") -> BatchedFit:
    """Refine ``n`` patterns on one TOF grid with one free set, as one batched problem.

    Parameters
    ----------
    ev_or_model : :class:`~layerscope.refine.evaluator.Evaluator`, or a
        :class:`~layerscope.diffraction.pattern.PatternModel` (then ``layout`` is required)
    layout : the model's layout (ignored when an Evaluator is given)
    free : the free set (same parameters and linear constraints for every pattern), or a
        sequence of ``n`` free sets with the same parameter names (each pattern's own
        linearised constraints, e.g. conservation coefficients at its own cell)
    Y, S : (n, N) observations and σ on the model's grid
    start : full vector (F,) for every pattern or (n, F) one per pattern; None: ``free.x0``.
        With one free set, the entries it moves are projected onto its affine subspace
        (x0 + A q, least squares): a start that breaks one of its constraints is moved to the
        nearest point that satisfies it, with a warning on that pattern
    bounds : (lower, upper) on the full vector, (F,) or (n, F); default: the free set's
    max_cycles, tol, lam0, lam_converge, cond_max, correlation_warn : as in
        :func:`~layerscope.refine.engine.least_squares` (layerscope schedule)
    batch_size : patterns evaluated together (bounds the memory: the Jacobian alone is
        batch_size × N × P floats)
    vectorize : "vmap" (all patterns of a chunk at once: accelerators), "map" (one compiled
        loop over the patterns: the CPU, where a vmapped scatter costs more per pattern than
        the single-pattern kernel) or "auto" (vmap unless JAX's default backend is the CPU)

    Returns
    -------
    :class:`BatchedFit` — one :class:`~layerscope.refine.engine.FitResult` per pattern (its
    ``free`` carries that pattern's x0) and the JAX device used.

    Raises ValueError naming the pattern when its data are not finite or σ ≤ 0.
    """
    if isinstance(ev_or_model, Evaluator):
        ev = ev_or_model
    elif isinstance(ev_or_model, PatternModel):
        if layout is None:
            raise ValueError("refine_batched: a PatternModel needs its layout (make_layout(model))")
        ev = Evaluator(ev_or_model, layout)
    else:
        raise TypeError(f"refine_batched: expected an Evaluator or a PatternModel, got {type(ev_or_model).__name__}")
    n_grid = ev.model.tof_us.shape[0]
    Y = np.asarray(Y, dtype=float)
    S = np.asarray(S, dtype=float)
    if Y.ndim != 2 or Y.shape[1] != n_grid or S.shape != Y.shape:
        raise ValueError(f"Y {Y.shape} and S {S.shape} must both be (n_patterns, {n_grid}) on the model's TOF grid")
    for i in range(Y.shape[0]):
        if not (np.all(np.isfinite(Y[i])) and np.all(np.isfinite(S[i])) and np.all(S[i] > 0)):
            bad = np.where(~np.isfinite(Y[i]) | ~np.isfinite(S[i]) | ~(S[i] > 0))[0]
            raise ValueError(f"pattern {i}: observations must be finite with σ > 0 at every point "
                             f"({len(bad)} bad point(s), first at index {bad[0]})")
    n = Y.shape[0]
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    if vectorize not in ("auto", "vmap", "map"):
        raise ValueError(f"vectorize must be 'auto', 'vmap' or 'map', got {vectorize!r}")
    mode = ("map" if jax.default_backend() == "cpu" else "vmap") if vectorize == "auto" else vectorize
    sizes = _sizes(mode, min(batch_size, n))
    fsets, q0, pre_warn = _pattern_free_sets(free, start, bounds, n)
    k = fsets[0].n
    if k == 0:
        raise ValueError("refine_batched: nothing is free")
    results: list[FitResult] = []
    batch = _Batch(ev, fsets)
    for c0 in range(0, n, batch_size):
        sel = np.arange(c0, min(n, c0 + batch_size))
        results.extend(_refine_chunk(batch, [fsets[i] for i in sel], q0[sel], Y[sel], S[sel], max_cycles, tol, lam0,
                                     lam_converge, mode, sizes, cond_max, correlation_warn, [pre_warn[i] for i in sel]))
    return BatchedFit(tuple(results), f"{device_summary()}, {mode}")


def _pattern_free_sets(free, start, bounds, n):
    """One FreeSet per pattern (x0 = that pattern's start) and the starting q of each."""
    if isinstance(free, FreeSet):
        base = [free] * n
        common = True
    else:
        base = list(free)
        if len(base) != n:
            raise ValueError(f"refine_batched: {len(base)} free sets for {n} patterns")
        if len({f.names for f in base}) != 1:
            raise ValueError("refine_batched: every pattern's free set must have the same parameter names")
        common = False
    nf = len(base[0].x0)
    if bounds is not None:
        lo, hi = (np.broadcast_to(np.asarray(b, dtype=float), (n, nf)) for b in bounds)
        base = [dataclasses.replace(f, lower=lo[i].copy(), upper=hi[i].copy()) for i, f in enumerate(base)]
    warn = [[] for _ in range(n)]
    if start is None:
        return base, np.zeros((n, base[0].n)), warn
    st = np.asarray(start, dtype=float)
    if st.ndim == 1:
        st = np.broadcast_to(st, (n, nf))
    if st.shape != (n, nf):
        raise ValueError(f"start must be ({nf},) or ({n}, {nf}), got {st.shape}")
    if not np.all(np.isfinite(st)):
        i = int(np.where(~np.all(np.isfinite(st), axis=1))[0][0])
        raise ValueError(f"pattern {i}: the start vector is not finite")
    out, q0 = [], np.zeros((n, base[0].n))
    for i, f in enumerate(base):
        moved = np.any(f.A != 0, axis=1)
        if common:
            q = f.q_of(st[i])
            x0 = np.where(moved, f.x0, st[i])
            off = np.abs(x0 + f.A @ q - st[i])[moved]
            if np.any(off > 1e-9 * np.maximum(1.0, np.abs(st[i][moved]))):
                warn[i].append("the start does not satisfy the free set's constraints: moved to the nearest point "
                               f"that does (largest change {off.max():.3g})")
            out.append(dataclasses.replace(f, x0=x0))
            q0[i] = q
        else:
            out.append(dataclasses.replace(f, x0=np.where(moved, f.x0, st[i])))
            q0[i] = f.q_of(st[i]) if np.any(np.abs(st[i] - f.x0)[moved] > 0) else 0.0
    return out, q0, warn


def _refine_chunk(batch: _Batch, fsets, q0, Y, S, max_cycles, tol, lam0, lam_converge, mode, sizes, cond_max, corr_warn, pre_warn):
    b, k = len(fsets), batch.k
    Yd, SWd = jax.device_put(Y), jax.device_put(1.0 / S)
    X0 = np.stack([f.x0 for f in fsets])
    A = np.stack([f.A for f in fsets])
    anl_all, alin_all = batch.columns(fsets, range(b))
    anl_d, alin_d = jnp.asarray(anl_all), jnp.asarray(alin_all)
    moved = np.any(A != 0, axis=2)
    lo = np.stack([f.lower for f in fsets])
    hi = np.stack([f.upper for f in fsets])
    btol = 1e-12 * np.maximum(1.0, np.maximum(np.where(np.isfinite(lo), np.abs(lo), 0),
                                              np.where(np.isfinite(hi), np.abs(hi), 0)))

    def full_of(q, sel):
        return X0[sel] + np.einsum("bfk,bk->bf", A[sel], q)

    def padded(sel):
        m = next(s for s in sizes if s >= len(sel))
        live = np.arange(m) < len(sel)
        return np.concatenate([sel, np.full(m - len(sel), sel[0])]).astype(int), jnp.asarray(live)

    def chi2_of(V, sel):
        p, live = padded(sel)
        Vp = np.concatenate([V, np.repeat(V[:1], len(p) - len(sel), axis=0)])
        return np.asarray(_chi2_jit(batch.spec, batch.lk, batch.leaves, mode, jnp.asarray(Vp), live, jnp.asarray(p),
                                    Yd, SWd))[:len(sel)]

    def normal(q, sel):
        p, live = padded(sel)
        Vd = jnp.asarray(full_of(q[p], p))
        pd = jnp.asarray(p)
        args = (Vd, live, anl_d[pd], alin_d[pd], pd, Yd, SWd, batch.basis, jnp.asarray(batch.perm))
        has_nl = batch.kb > 0
        # profiles inside their sub-windows (the usual case): the Jacobian kernel without the
        # dense fallback branch; again with it when a pattern's profiles do not fit
        h, g, chi2, fits = _normal_jit(batch.spec, batch.lk, batch.leaves, mode, batch.moved, False, has_nl, *args)
        if has_nl and not bool(np.all(np.asarray(fits)[:len(sel)])):
            h, g, chi2, _ = _normal_jit(batch.spec, batch.lk, batch.leaves, mode, batch.moved, True, has_nl, *args)
        return np.array(h)[:len(sel)], np.array(g)[:len(sel)], np.array(chi2)[:len(sel)]

    q = q0.astype(float).copy()
    allp = np.arange(b)
    H, G, chi2 = normal(q, allp)
    history = [[float(c)] for c in chi2]
    lam = np.full(b, lam0)
    converged = np.zeros(b, bool)
    diverged = ~np.isfinite(chi2)
    cycles = np.zeros(b, int)
    hits = np.zeros((b, X0.shape[1]), bool)
    shift_esd = np.full(b, np.inf)
    warns = [list(w) for w in pre_warn]
    for i in np.where(diverged)[0]:
        warns[i].append("the starting model gives a non-finite pattern (check the starting values)")
    active = ~diverged & (cycles < max_cycles)
    eye = np.eye(k)
    while np.any(active):
        idx = np.where(active)[0]
        d = np.einsum("bii->bi", H[idx]).copy()
        dead = d <= 1e-300 * np.maximum(d.max(axis=1, keepdims=True), 1e-300)
        d[dead] = 1.0
        s = 1.0 / np.sqrt(d)
        hs = H[idx] * s[:, :, None] * s[:, None, :]
        gs = G[idx] * s
        dq = np.zeros((len(idx), k))
        bad = np.zeros((len(idx), X0.shape[1]), bool)
        chi2_t = np.full(len(idx), np.nan)
        accepted = np.zeros(len(idx), bool)
        pending = np.arange(len(idx))
        while len(pending):
            ii = idx[pending]
            ds = np.asarray(_lm_solve_jit(jnp.asarray(hs[pending]), jnp.asarray(gs[pending]), jnp.asarray(lam[ii]),
                                          jnp.asarray(dead[pending])))
            step = ds * s[pending]
            step[dead[pending]] = 0.0
            new = full_of(q[ii] + step, ii)
            cross = np.any(moved[ii] & ((new < lo[ii] - btol[ii]) | (new > hi[ii] + btol[ii])), axis=1)
            bad[pending] = False
            for j in np.where(cross)[0]:
                pj = pending[j]
                step[j], bad[pj] = _bounded_step(fsets[ii[j]], q[ii[j]], hs[pj] + lam[ii[j]] * eye, gs[pj], s[pj],
                                                 dead[pj])
            dq[pending] = step
            ct = chi2_of(full_of(q[ii] + step, ii), ii)
            chi2_t[pending] = ct
            ok = np.isfinite(ct) & (ct <= chi2[ii] * (1 + 1e-12))
            accepted[pending[ok]] = True
            lam[ii[~ok]] *= 10.0
            pending = pending[~ok & (lam[ii] < 1e10)]
        # no step lowers χ²: at the minimum to numerical precision
        stuck = idx[~accepted]
        converged[stuck] = True
        active[stuck] = False
        acc = np.where(accepted)[0]
        if not len(acc):
            break
        ia = idx[acc]
        cycles[ia] += 1
        hits[ia] |= bad[acc]
        q[ia] = q[ia] + dq[acc]
        chi2_new = chi2_t[acc]
        lam_step = lam[ia].copy()
        H[ia], G[ia], chi2_j = normal(q, ia)
        chi2[ia] = chi2_new
        for j, i in enumerate(ia):
            history[i].append(float(chi2_new[j]))
        lam[ia] = np.maximum(lam[ia] / 10.0, 1e-9)
        dof = max(Y.shape[1] - k, 1)
        hin = np.linalg.pinv(hs[acc], rcond=1e-14)
        esd = np.sqrt(np.clip(np.einsum("bii->bi", hin), 0, None) * chi2_new[:, None] / dof) * s[acc]
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.nanmax(np.where(esd > 0, np.abs(dq[acc]) / esd, 0.0), axis=1)
        shift_esd[ia] = se
        done = se < tol
        # a heavily damped step is short because of λ: judge by the undamped step (as least_squares)
        for j in np.where(done & (lam_step > lam_converge))[0]:
            i = ia[j]
            shift_esd[i] = _gauss_newton_shift(fsets[i], q[i], H[i], G[i], chi2[i], dof)
            done[j] = shift_esd[i] < tol
        converged[ia[done]] = True
        active[ia[done]] = False
        active &= cycles < max_cycles
    # final point: patterns and statistics
    V = full_of(q, allp)
    yc_all = []
    for c0 in range(0, b, max(sizes)):
        sel = allp[c0:c0 + max(sizes)]
        p, live = padded(sel)
        Vp = np.concatenate([V[sel], np.repeat(V[sel[:1]], len(p) - len(sel), axis=0)])
        yc_all.append(np.asarray(_calc_batch_jit(batch.spec, batch.lk, batch.leaves, mode, jnp.asarray(Vp),
                                                 live))[:len(sel)])
    yc_all = np.concatenate(yc_all)
    out = []
    for i in range(b):
        out.append(finish_fit(fsets[i], q[i], H[i], chi2[i], yc_all[i], Y[i], S[i], converged=bool(converged[i]),
                              diverged=bool(diverged[i]), cycles=int(cycles[i]), hits=hits[i],
                              not_converged=f"max shift/esd {shift_esd[i]:.3g} > {tol}", cond_max=cond_max,
                              correlation_warn=corr_warn, warnings=warns[i], history=history[i]))
    return out
