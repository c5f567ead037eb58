"""Soft XAS (O K edge): normalisation and integrated intensity per state (Supp. Fig. 14).

Normalisation: a straight line fitted over the pre-edge region is subtracted
and the spectrum divided by its mean over a post-edge region, so that the
pre-edge is 0 and the post-edge 1 (the usual edge-step normalisation; e.g.
Stöhr, *NEXAFS Spectroscopy*, 1992, ch. 7). The O-K integral over 525–535 eV
then measures the O 2p – TM 3d hole states.

Energy calibration: beamline energy scales drift between runs; a shift per state (measured on a
reference recorded with it, e.g. a foil or a standard's peak) is added with ``shifts`` in
:func:`state_integrals` and written with the results. A state whose spectrum does not cover the
windows after the shift raises a ValueError naming the state.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import trapezoid


def normalize(energy_eV, mu, *, pre_edge_eV=(515.0, 524.0), post_edge_eV=(545.0, 555.0)):
    """Edge-step normalised absorption (pre-edge line removed, post-edge mean = 1)."""
    e = np.asarray(energy_eV, float)
    y = np.asarray(mu, float)
    if e.shape != y.shape or e.ndim != 1:
        raise ValueError(f"energy and mu must be 1-D of equal length, got {e.shape}, {y.shape}")
    pre = (e >= pre_edge_eV[0]) & (e <= pre_edge_eV[1])
    post = (e >= post_edge_eV[0]) & (e <= post_edge_eV[1])
    if pre.sum() < 2 or post.sum() < 1:
        raise ValueError(f"spectrum ({e.min():.1f}–{e.max():.1f} eV) does not cover the pre-edge "
                         f"{pre_edge_eV} and post-edge {post_edge_eV} windows")
    line = np.polyval(np.polyfit(e[pre], y[pre], 1), e)
    y = y - line
    step = y[post].mean()
    if not step > 0:
        raise ValueError("edge step is not positive; check the normalisation windows")
    return y / step


def integrated_intensity(energy_eV, mu_norm, window_eV=(525.0, 535.0)) -> float:
    """Trapezoid integral of the normalised spectrum over ``window_eV`` (eV)."""
    e = np.asarray(energy_eV, float)
    m = (e >= window_eV[0]) & (e <= window_eV[1])
    if m.sum() < 2:
        raise ValueError(f"window {window_eV} eV is outside the spectrum")
    return float(trapezoid(np.asarray(mu_norm, float)[m], e[m]))


def state_integrals(spectra: dict, window_eV=(525.0, 535.0), *, shifts=None, **norm_kwargs) -> dict:
    """``{state: (energy_eV, mu)}`` -> ``{state: integral of the normalised spectrum}``.

    ``shifts`` maps a state to the energy shift (eV) added to its axis before normalising.
    """
    shifts = shifts or {}
    unknown = set(shifts) - set(spectra)
    if unknown:
        raise ValueError(f"shifts given for unknown states {sorted(unknown)}")
    out = {}
    for state, (e, mu) in spectra.items():
        e = np.asarray(e, float) + float(shifts.get(state, 0.0))
        try:
            out[state] = integrated_intensity(e, normalize(e, mu, **norm_kwargs), window_eV)
        except ValueError as exc:
            raise ValueError(f"state {state!r}: {exc}") from None
    return out
