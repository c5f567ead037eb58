"""Per-reflection windows of the TOF pattern model (:mod:`layerscope.diffraction.pattern`): the
window of K grid points around each reflection, the unit-area profiles on it computed a few rows
at a time, and the per-phase patterns (and directional derivatives through the profiles)
accumulated from them. Moved out of ``pattern.py`` unchanged; ``pattern`` re-exports every name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from layerscope.diffraction import tof_profile as tp

if TYPE_CHECKING:
    from layerscope.diffraction.pattern import PatternModel

__all__ = ["peak_windows", "peak_profiles", "phase_patterns", "profile_derivative_patterns", "profiles_fit",
           "scatter_rows"]


_CHUNK_ROWS = 16


def _profiles_in_chunks(delta, alpha, beta, sig2, gam, lorentz, widths=None, convention="exact",
                        fallback=True):
    """Profiles of all peaks, computed a few rows at a time.

    The Lorentzian part builds many temporaries per point; evaluating 16 peaks at a
    time keeps them in cache (2.5x faster on CPU than one (n_peaks, K) block) while a
    single traced copy of the kernel keeps the compile time independent of the phase count.
    The expensive regions of the Lorentzian kernel are evaluated on sub-windows of the
    ``widths`` (``tof_profile.tof_peak_rows``).
    """
    n_rows = delta.shape[0]
    pad = (-n_rows) % _CHUNK_ROWS
    cols = [jnp.pad(a, (0, pad), constant_values=1.0) for a in (alpha, beta, sig2, gam)]
    d = jnp.pad(delta, ((0, pad), (0, 0)))

    def one(args):
        dd, a, b, s2, g = args
        return tp.tof_peak_rows(dd, a[:, None], b[:, None], s2[:, None], g[:, None], lorentz=lorentz,
                                widths=widths, lorentz_convention=convention, fallback=fallback)

    shaped = [x.reshape((-1, _CHUNK_ROWS) + x.shape[1:]) for x in [d] + cols]
    out = jax.lax.map(one, tuple(shaped))
    return out.reshape(-1, delta.shape[1])[:n_rows]


def peak_windows(model: PatternModel, th):
    """Window of K grid points of every reflection (all phases, in model order) around its
    position ``th``: (indices (n_refl, K), Δ = t − t_h on them). The indices are piecewise
    constant in ``th`` (no derivative flows through them)."""
    tof = jnp.asarray(model.tof_us)
    n = tof.shape[0]
    k = max(s.window for s in model.phases)
    left = np.concatenate([np.full(len(s.hkl), s.left) for s in model.phases])
    centre = jnp.searchsorted(tof, th)
    start = jnp.clip(centre - jnp.asarray(left), 0, n - k)
    idx = start[:, None] + jnp.arange(k)[None, :]
    return idx, tof[idx] - th[:, None]


def peak_profiles(model: PatternModel, delta, alpha, beta, sig2, gam, *, fallback: bool = True):
    """Unit-area profiles (n_refl, K) of every reflection on its window (Δ from :func:`peak_windows`).
    ``fallback=False``: no dense branch (only where :func:`profiles_fit` is True)."""
    return _profiles_in_chunks(delta, alpha, beta, sig2, gam, model.lorentz, model.profile_widths,
                               model.lorentz_convention, fallback)


def _add_windows(acc, rows, lead, start):
    """acc[lead_i : lead_i + m, start_i : start_i + K] += rows[:, i] for every row i of rows
    (m, r, K), in order: each reflection's window is contiguous, so this is r in-place slice
    updates instead of a scatter of m·r·K elements."""
    for i in range(rows.shape[1]):
        at = (lead[i], start[i])
        blk = jax.lax.dynamic_slice(acc, at, (rows.shape[0], rows.shape[2]))
        acc = jax.lax.dynamic_update_slice(acc, blk + rows[:, i], at)
    return acc


def _windows_in_chunks(fn, acc, lead, start, arrays):
    """Σ over reflections of fn's rows on their windows, accumulated into ``acc`` (m', N).

    ``fn(*chunk)`` maps one chunk of ``_CHUNK_ROWS`` rows of ``arrays`` (each with the reflections
    on its leading axis) to (rows (m, r, K), flag); row i is added at (lead[i], start[i]). Returns
    (acc, all flags). The pattern is accumulated in the loop, so the (m, n_refl, K) rows are
    never stored (writing them out and scattering them cost more than the profiles). Reflections
    are padded to whole chunks by repeating the last one (same sub-window needs): its rows must
    be zero there, which ``fn`` ensures through zero intensities/coefficients in the padding.
    """
    n_rows = start.shape[0]
    pad = (-n_rows) % _CHUNK_ROWS

    def padded(a, value=None):
        width = [(0, pad)] + [(0, 0)] * (a.ndim - 1)
        return jnp.pad(a, width, mode="edge") if value is None else jnp.pad(a, width, constant_values=value)

    def chunks(a):
        return a.reshape((-1, _CHUNK_ROWS) + a.shape[1:])

    def body(carry, xs):
        acc, ok = carry
        lead_c, start_c, args = xs
        rows, fits = fn(*args)
        return (_add_windows(acc, rows, lead_c, start_c), ok & fits), None

    xs = (chunks(padded(lead)), chunks(padded(start)), tuple(chunks(padded(a, v)) for a, v in arrays))
    (acc, ok), _ = jax.lax.scan(body, (acc, jnp.asarray(True)), xs)
    return acc, ok


def phase_patterns(model: PatternModel, idx, inten, delta, alpha, beta, sig2, gam):
    """Per-phase patterns (n_phase, N) = Σ_h I_h P_h of every reflection's profile on its window
    (``idx``, ``delta`` from :func:`peak_windows`), and whether every profile fit the model's
    sub-windows (:func:`profiles_fit`; the chunks that did not were evaluated densely)."""
    n = model.tof_us.shape[0]
    owner = jnp.asarray(np.concatenate([np.full(len(s.hkl), i) for i, s in enumerate(model.phases)]))

    def fn(dd, a, b, s2, g, w):
        prof, fits = tp.tof_peak_rows(dd, a[:, None], b[:, None], s2[:, None], g[:, None], lorentz=model.lorentz,
                                      widths=model.profile_widths, lorentz_convention=model.lorentz_convention,
                                      with_fit=True)
        return (w[:, None] * prof)[None], fits

    acc = jnp.zeros((len(model.phases), n), dtype=delta.dtype)
    arrays = ((delta, None), (alpha, None), (beta, None), (sig2, None), (gam, None), (inten, 0.0))
    return _windows_in_chunks(fn, acc, owner, idx[:, 0], arrays)


def profile_derivative_patterns(model: PatternModel, idx, delta, alpha, beta, sig2, gam, coef, *,
                                fallback: bool = True):
    """(k, N): Σ_h scatter[coef[j, 0, h]·P_h + Σ_q coef[j, 1 + q, h]·∂P_h/∂x_q] over the reflections'
    windows (``idx``, ``delta`` from :func:`peak_windows`), x = (Δ, α, β, σ², γ), for k rows of
    per-reflection coefficients ``coef`` (k, 6, n_refl): k directional derivatives of the pattern
    through the profiles at once (``tof_profile.tof_peak_rows_derivatives``), in the row chunks of
    :func:`peak_profiles`. ``fallback=False``: no dense branch (only where :func:`profiles_fit`)."""
    k = coef.shape[0]
    n = model.tof_us.shape[0]

    def fn(dd, a, b, s2, g, cc):
        cc = jnp.moveaxis(cc, 0, 2)[..., None]  # (k, 6, r, 1)
        return tp.tof_peak_rows_derivatives(dd, a[:, None], b[:, None], s2[:, None], g[:, None], cc,
                                            lorentz=model.lorentz, widths=model.profile_widths,
                                            lorentz_convention=model.lorentz_convention,
                                            fallback=fallback), jnp.asarray(True)

    arrays = ((delta, None), (alpha, None), (beta, None), (sig2, None), (gam, None),
              (jnp.moveaxis(coef, 2, 0), 0.0))
    lead = jnp.zeros(idx.shape[0], dtype=idx.dtype)
    return _windows_in_chunks(fn, jnp.zeros((k, n), dtype=delta.dtype), lead, idx[:, 0], arrays)[0]


def profiles_fit(model: PatternModel, delta, alpha, beta, sig2, gam):
    """True when every reflection's profile regions fit the model's sub-window widths."""
    return tp.rows_fit_subwindows(delta, alpha[:, None], beta[:, None], sig2[:, None], gam[:, None],
                                  lorentz=model.lorentz, widths=model.profile_widths)


def scatter_rows(model: PatternModel, idx, rows):
    """Per-phase patterns (n_phase, N) from per-reflection rows (n_refl, K) on windows ``idx``."""
    n = model.tof_us.shape[0]
    n_phase = len(model.phases)
    owner = np.concatenate([np.full(len(s.hkl), i) for i, s in enumerate(model.phases)])
    flat = (jnp.asarray(owner * n)[:, None] + idx).ravel()
    return jnp.zeros(n_phase * n, dtype=rows.dtype).at[flat].add(rows.ravel()).reshape(n_phase, n)
