"""The compiled pattern and exact Jacobian of one refinement model (:class:`Evaluator`).

What the least-squares engine (:mod:`layerscope.refine.engine`) and the batched series
refinement (:mod:`layerscope.refine.batched`) evaluate: the JAX kernels of the pattern and of
J = ∂y_calc/∂q. Columns that move only scales and background coefficients (in which the
pattern is linear) come from the unit-scale phase patterns; every other column by the chain
rule through the per-reflection quantities (intensity, position, α, β, σ², γ): forward-mode
autodiff of the structure factors and peak terms, the profile's partial derivatives written out
by hand (see :class:`Evaluator`).
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope._device import to_device  # noqa: E402
from layerscope._tracecache import persistent_jit  # noqa: E402
from layerscope.diffraction.background import chebyshev_background, chebyshev_basis  # noqa: E402
from layerscope.diffraction.pattern import (  # noqa: E402
    PatternModel, _all_peaks, join_model, peak_windows, phase_patterns, profile_derivative_patterns, split_model)
from layerscope.refine.parameters import Layout  # noqa: E402

__all__ = ["Evaluator"]


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

    def __trace_digest__(self):
        return self._key


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


# jitted, and kept traced on disk where the command line switched the compilation cache on
_calc_jit = persistent_jit(_calc_kernel, name="tof_calc", static_argnums=(0, 1))
_nonlinear_jit = persistent_jit(_nonlinear_kernel, name="tof_jacobian", static_argnums=(0, 1, 3, 4),
                                static_argnames=("sel",))


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
            res = _calc_jit(self._spec, self._lk, self._leaves, to_device(full))
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
        fv = to_device(full)
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
        jac = _nonlinear_jit(self._spec, self._lk, self._leaves, moved, fallback, fv, to_device(ap), sel=sel)
        jac = np.asarray(jac)[:, :k]
        # background coefficients a nonlinear column also moves (through a constraint)
        if len(self._i_bkg):
            jac = jac + self._basis.T @ a[self._i_bkg]
        return jac
