"""Energy-axis calibration of EELS spectra: zero-loss peak, a known edge, or a given shift.

Every function returns the **shift to add** to the stored energy axis of each spectrum
(``E_true = E_stored + shift``), so one spectrum image may carry a different shift per pixel
(energy drift during a scan).

* :func:`zlp_shifts` — DualEELS / a low-loss acquisition: the maximum of the zero-loss peak of
  each low-loss spectrum is located to a fraction of a channel (a parabola through the logarithm
  of the three top channels, exact for a Gaussian top) and moved to 0 eV; the
  same shift is applied to the core-loss spectrum of the same pixel, as in DualEELS alignment
  (Gubbens et al., Ultramicroscopy 110, 962, 2010).
* :func:`edge_shifts` — a feature of a core-loss edge is moved to a reference energy:
  ``"O-K"``: the O-K pre-edge peak maximum (O 2p–TM 3d states of layered and spinel oxides;
  the first peak of the edge higher than 20 % of its maximum and more prominent than 5x the
  channel noise) to 530.0 eV; ``"Mn-L3"``: the half-rise point of the Mn L3 white line (where the
  background-subtracted signal first reaches half of the L3 maximum) to 640.0 eV, the Mn L3 edge
  energy of the EELS Atlas (Ahn & Krivanek, 1983). Both targets are conventions that the user
  can replace. Aligning on Mn-L3 moves the absolute Mn L3 position to a fixed value, so the
  absolute edge energy no longer carries the valence (MLLS against references on an absolute
  scale is then biased); ΔE(Mn L3 − O K) is a difference within one spectrum and is unaffected.

Written by hand: the peak location is a few lines of numpy and exSpy's ``align_zero_loss_peak``
works only on its own signal objects (and is GPL).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

#: Reference energies (eV) for :func:`edge_shifts` (conventions, see module docs).
EDGE_TARGETS_EV = {"O-K": 530.0, "Mn-L3": 640.0, "Co-L3": 779.0, "Ni-L3": 855.0}
#: Where each feature is looked for on the (calibrated or stored) axis, eV.
EDGE_SEARCH_EV = {"O-K": (512.0, 548.0), "Mn-L3": (626.0, 660.0), "Co-L3": (765.0, 799.0),
                  "Ni-L3": (841.0, 875.0)}
#: An alignment feature must rise this many times the channel noise above the background.
MIN_FEATURE_SNR = 5.0


@dataclass(frozen=True)
class Shifts:
    """Shift (eV, to add to the stored axis) per spectrum, with a note per spectrum ('' if fine)."""

    shift_eV: np.ndarray
    flags: tuple
    method: str
    detail: dict


def zlp_position(energy_eV, counts) -> float:
    """Zero-loss peak centre (eV) of one low-loss spectrum to a fraction of a channel.

    Raises ValueError if the spectrum has no peak that stands clear of its surroundings.
    """
    e = np.asarray(energy_eV, float)
    y = np.asarray(counts, float)
    k = int(np.argmax(y))
    if y[k] <= 0 or k == 0 or k == len(y) - 1:
        raise ValueError("no zero-loss peak (maximum at the end of the axis or not positive)")
    if y[k] < 5 * max(np.median(np.abs(y)), 1e-300):
        raise ValueError(f"no zero-loss peak: maximum {y[k]:.3g} is under 5x the median")
    # the maximum to a fraction of a channel: a parabola through the logarithm of the top three
    # channels (exact for a Gaussian top; a wide tail on one side does not pull it)
    y0, y1, y2 = y[k - 1], y[k], y[k + 1]
    if min(y0, y2) <= 0:
        return float(e[k])
    l0, l1, l2 = np.log([y0, y1, y2])
    den = l0 - 2 * l1 + l2
    if den >= 0:
        return float(e[k])
    x0 = 0.5 * (l0 - l2) / den
    return float(e[k] + np.clip(x0, -0.5, 0.5) * (e[k + 1] - e[k]))


def zlp_shifts(energy_eV, lowloss) -> Shifts:
    """Per-spectrum shift that moves each zero-loss peak to 0 eV (``shift = −E_ZLP``).

    Spectra without a usable peak get the median shift of the others and a flag.
    """
    s = np.atleast_2d(np.asarray(lowloss, float))
    pos = np.full(len(s), np.nan)
    flags = [""] * len(s)
    for i, y in enumerate(s):
        try:
            pos[i] = zlp_position(energy_eV, y)
        except ValueError as exc:
            flags[i] = f"zlp: {exc}"
    ok = np.isfinite(pos)
    if not ok.any():
        raise ValueError("no zero-loss peak found in any low-loss spectrum")
    med = float(np.median(pos[ok]))
    for i in np.flatnonzero(~ok):
        pos[i] = med
        flags[i] += f"; median shift {-med:+.2f} eV used"
    return Shifts(-pos, tuple(flags), "zero-loss peak",
                  {"zlp_eV_median": med, "zlp_eV_min": float(pos.min()), "zlp_eV_max": float(pos.max())})


def _power_law_subtracted(e, y, window):
    m = (e >= window[0]) & (e <= window[1])
    if m.sum() < 4:
        raise ValueError(f"background window {window[0]:.0f}-{window[1]:.0f} eV is outside the spectrum")
    if np.any(y[m] <= 0):
        return y - np.median(y[m])
    slope, icpt = np.polyfit(np.log(e[m]), np.log(y[m]), 1)
    return y - np.exp(icpt) * e ** slope


def edge_feature(energy_eV, counts, edge: str, *, search_eV=None, background: bool = True) -> float:
    """Energy of the alignment feature of ``edge`` ("O-K" pre-edge peak, "Mn-L3" half-rise).

    The search range (default :data:`EDGE_SEARCH_EV`) is on the axis given; a power law fitted
    over 30 eV below it is subtracted first (``background=False`` for pre-subtracted data).
    """
    if edge not in EDGE_TARGETS_EV:
        raise ValueError(f"unknown alignment edge {edge!r}; known: {sorted(EDGE_TARGETS_EV)}")
    e = np.asarray(energy_eV, float)
    y = np.asarray(counts, float)
    lo, hi = EDGE_SEARCH_EV[edge] if search_eV is None else search_eV
    if e[0] > lo - (30 if background else 0) or e[-1] < hi:
        raise ValueError(f"spectrum ({e[0]:.0f}-{e[-1]:.0f} eV) does not cover the {edge} search "
                         f"range {lo:.0f}-{hi:.0f} eV" + (" and 30 eV below it" if background else ""))
    net = _power_law_subtracted(e, y, (lo - 30, lo - 2)) if background else y
    de = float(np.median(np.diff(e)))
    sm = gaussian_filter1d(net, max(0.3 / de, 0.5))
    m = (e >= lo) & (e <= hi)
    es, ys = e[m], sm[m]
    top = ys.max()
    # channel noise from the pre-edge side (first differences: insensitive to slow misfit)
    pre = (e >= lo - (30 if background else 15)) & (e < lo)
    sigma = float(np.std(np.diff(net[pre])) / np.sqrt(2)) if pre.sum() > 3 else 0.0
    if not top > 0 or top < MIN_FEATURE_SNR * sigma:
        raise ValueError(f"no {edge} edge in {lo:.0f}-{hi:.0f} eV (maximum {top:.3g} under "
                         f"{MIN_FEATURE_SNR:g} x channel noise {sigma:.3g})")
    above = np.flatnonzero(ys >= 0.5 * top)
    k = above[0]
    if edge.endswith("-L3"):
        # half-rise point, interpolated between the channels around it
        if k == 0:
            return float(es[0])
        return float(np.interp(0.5 * top, [ys[k - 1], ys[k]], [es[k - 1], es[k]]))
    # O-K: the first peak that rises above 20 % of the edge maximum and stands out of the noise
    from scipy.signal import find_peaks
    peaks, _ = find_peaks(ys, height=0.2 * top, prominence=max(MIN_FEATURE_SNR * sigma, 0.03 * top))
    j = int(peaks[0]) if len(peaks) else int(np.argmax(ys))
    if 0 < j < len(ys) - 1:
        y0, y1, y2 = ys[j - 1], ys[j], ys[j + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            return float(es[j] + 0.5 * (y0 - y2) / den * (es[1] - es[0]))
    return float(es[j])


def edge_shifts(energy_eV, spectra, edge: str, *, target_eV=None, base_shift=None,
                background: bool = True, search_eV=None, per_spectrum: bool = False) -> Shifts:
    """Shift per spectrum that moves the ``edge`` feature to ``target_eV``.

    ``base_shift`` (per spectrum or scalar) is applied first, so an edge alignment can refine a
    zero-loss calibration; the search range is on that pre-shifted axis. By default the feature is
    located once on the sum of all (base-shifted) spectra and the same correction is added to
    every spectrum: the pixel-to-pixel drift stays the one of ``base_shift`` (zero-loss peaks),
    and a pixel whose own edge is weak or changed (a reduced surface) does not get its own,
    unreliable alignment. ``per_spectrum=True`` locates the feature in each spectrum instead;
    spectra where it is not found get the median shift of the others and a flag.
    """
    target = EDGE_TARGETS_EV[edge] if target_eV is None else float(target_eV)
    s = np.atleast_2d(np.asarray(spectra, float))
    e = np.asarray(energy_eV, float)
    base = np.broadcast_to(np.zeros(len(s)) if base_shift is None else np.asarray(base_shift, float),
                           (len(s),))
    search = EDGE_SEARCH_EV[edge] if search_eV is None else search_eV
    if target_eV is not None and search_eV is None:
        search = (target - 14.0, target + 20.0)
    if not per_spectrum:
        ref = float(np.median(base))
        total = sum(np.interp(e + ref, e + base[i], y) for i, y in enumerate(s))
        feat = edge_feature(e + ref, total, edge, search_eV=search, background=background)
        return Shifts(base + (target - feat), ("",) * len(s), f"{edge} edge (summed spectra)",
                      {"edge": edge, "target_eV": target, "search_eV": list(search),
                       "feature_eV_before": feat})
    out = np.full(len(s), np.nan)
    flags = [""] * len(s)
    for i, y in enumerate(s):
        try:
            out[i] = target - edge_feature(e + base[i], y, edge, search_eV=search,
                                           background=background) + base[i]
        except ValueError as exc:
            flags[i] = f"align {edge}: {exc}"
    ok = np.isfinite(out)
    if not ok.any():
        raise ValueError(f"{edge} feature not found in any spectrum ({flags[0]})")
    med = float(np.median(out[ok]))
    for i in np.flatnonzero(~ok):
        out[i] = med
        flags[i] += f"; median shift {med:+.2f} eV used"
    return Shifts(out, tuple(flags), f"{edge} edge",
                  {"edge": edge, "target_eV": target, "search_eV": list(search)})
