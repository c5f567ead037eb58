"""Whether each phase of a refined pattern is determined, and which reported values that decides.

A fraction such as 1.0e-6 ± 4.2e-6, or 1.00 ± 4.0, is not a measurement: the pattern did not
determine the phase. Each phase with a fraction column gets, per pattern,

* ``signal_<p>``: the significance of its Bragg signal in σ, √Δχ², where Δχ² is how much χ²
  rises when the phase's calculated pattern is removed and the background refitted (linear
  least squares on the Chebyshev terms; every other quantity stays at its refined value). A
  phase whose contribution a smooth background can take over, or that the data do not
  support (Δχ² ≤ 0), has no Bragg signal;
* ``determined_<p>``: False when the esd of its fraction exceeds ``max_relative_esd`` of the
  fraction (a fraction ≤ 0 included), or when ``signal_<p>`` is below ``min_signal``;
* the row's ``undetermined`` column: ``"PHASE: why; …"`` for the phases that are not.

The thresholds are the caller's (defaults 0.5 and 5 σ); a caller writes them to its outputs.
The values stay in the outputs (with their esds); which reported values depend on an
undetermined phase is the caller's to say.

Written here because the quantities (weight fractions of a refined model, the background
model of the pattern) are layerscope's own; the Δχ² test is the usual
likelihood-ratio measure of a component's significance.
"""

from __future__ import annotations

import numpy as np

__all__ = ["phase_signals", "determination", "DEFAULT_MAX_RELATIVE_ESD", "DEFAULT_MIN_SIGNAL"]

DEFAULT_MAX_RELATIVE_ESD = 0.5
DEFAULT_MIN_SIGNAL = 5.0


def phase_signals(ev, full, y, sigma, names) -> dict[str, float]:
    """√Δχ² of each named phase's calculated pattern (see the module docstring). For several
    banks (:class:`~layerscope.refine.banks.BankEvaluator`) Δχ² is the sum over the banks, each
    with its own background refitted."""
    if hasattr(ev, "evaluators"):
        d = {p: 0.0 for p in names}
        for b, e in enumerate(ev.evaluators):
            s = ev.slices[b]
            for p, v in _delta_chi2(e, ev.local(full, b), np.asarray(y)[s], np.asarray(sigma)[s], names).items():
                d[p] += v
    else:
        d = _delta_chi2(ev, full, y, sigma, names)
    return {p: float(np.sqrt(v)) if v > 0 else 0.0 for p, v in d.items()}


def _delta_chi2(ev, full, y, sigma, names) -> dict[str, float]:
    from layerscope.diffraction.background import chebyshev_basis

    model = ev.model
    total, parts, bkg = ev.calc(np.asarray(full, dtype=float))
    total, parts, bkg = np.asarray(total), np.asarray(parts), np.asarray(bkg)
    w = 1.0 / np.asarray(sigma, dtype=float)
    y = np.asarray(y, dtype=float)
    nb = ev.layout.n_background
    basis = np.asarray(chebyshev_basis(np.asarray(model.tof_us), nb, model.t_range)) if nb else np.zeros((0, len(y)))
    # the refits share one design matrix: its orthonormal basis (reduced QR) once, and each refit's
    # residual is z − Q Qᵀ z (an SVD least-squares solve per phase cost ~35 ms, the QR ~1 ms)
    q = np.linalg.qr((basis * w[None, :]).T)[0] if nb else None

    def chi2_refit(rest):
        z = (y - rest) * w
        if q is not None:
            z = z - q @ (q.T @ z)
        return float(z @ z)

    bragg = total - bkg
    with_all = chi2_refit(bragg)
    order = [s.phase.name for s in model.phases]
    out = {}
    for p in names:
        k = order.index(p)
        out[p] = chi2_refit(bragg - parts[k]) - with_all
    return out


def determination(row: dict, signals: dict, *, max_relative_esd: float = DEFAULT_MAX_RELATIVE_ESD,
                  min_signal: float = DEFAULT_MIN_SIGNAL) -> dict:
    """Row columns ``signal_<p>``, ``determined_<p>`` and ``undetermined`` for the phases of
    ``signals`` given the row's ``frac_<p>`` and ``frac_<p>_esd``."""
    out, why_all = {}, []
    for p, sig in signals.items():
        f = row.get(f"frac_{p}", np.nan)
        e = row.get(f"frac_{p}_esd", np.nan)
        why = []
        if np.isfinite(e) and (not np.isfinite(f) or f <= 0 or e > max_relative_esd * f):
            why.append(f"fraction {f:.3g} ± {e:.2g} (esd > {max_relative_esd:g} of the value)")
        if not sig >= min_signal:
            why.append(f"Bragg signal {sig:.1f} σ < {min_signal:g} σ")
        out[f"signal_{p}"] = float(sig)
        out[f"determined_{p}"] = not why
        if why:
            why_all.append(f"{p}: {', '.join(why)}")
    out["undetermined"] = "; ".join(why_all)
    return out
