"""EELS core-loss analysis: power-law background, Mn L3/L2 white-line ratio, O-K pre-edge.

Continuum removal: **Pearson-style double arctangent step** (no Hartree–Slater
cross-sections). Following Pearson et al. (Phys. Rev. B 47, 8471, 1993) the
continuum under the L2,3 white lines is a sum of two steps placed at the L3
and L2 maxima with heights in the 2:1 ratio of the 2p3/2 : 2p1/2 initial-state
multiplicities; each step is broadened as an arctangent (as in Riedl et al.,
Ultramicroscopy 106, 284, 2006) and their sum rises to the continuum level
``h(E)``, a straight line fitted to the spectrum just beyond L2 and
extrapolated back (fitted as ``h(E)·S(E)`` with the step shape ``S``, because
the arctangent steps are not yet saturated there):

    s(E) = h(E) · [⅔ F(E − E_L3) + ⅓ F(E − E_L2)],   F(x) = ½ + arctan(x / w) / π.

The white-line intensities are the integrals of ``signal − s`` over windows
around each maximum, and ``L3/L2 = I_L3 / I_L2``.

Background: ``A·E^(−r)`` fitted by linear least squares of ``ln I`` on
``ln E`` over a pre-edge window (Egerton, *Electron Energy-Loss Spectroscopy in
the Electron Microscope*, 3rd ed., 2011, §4.4.2). These steps are written
here because no maintained library in the dependency set exposes them as
pure array functions (HyperSpy/exSpy do it through signal objects).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.integrate import trapezoid

from layerscope.spectra.calibration import MN_L3L2_TAN2012, ValenceCalibration


@dataclass(frozen=True)
class PowerLaw:
    """Background ``A · E^(−r)`` (counts at energy loss ``E`` in eV)."""

    a: float
    r: float

    def __call__(self, energy_eV) -> np.ndarray:
        return self.a * np.asarray(energy_eV, float) ** (-self.r)


def _window(energy_eV, lo, hi, what="window") -> np.ndarray:
    e = np.asarray(energy_eV, float)
    m = (e >= lo) & (e <= hi)
    if m.sum() < 2:
        raise ValueError(f"{what} {lo}–{hi} eV holds fewer than 2 channels of the spectrum "
                         f"({e.min():.1f}–{e.max():.1f} eV)")
    return m


def fit_power_law(energy_eV, counts, window_eV) -> PowerLaw:
    """Fit ``A·E^(−r)`` to ``counts`` over ``window_eV = (lo, hi)`` (log–log least squares)."""
    e = np.asarray(energy_eV, float)
    y = np.asarray(counts, float)
    m = _window(e, *window_eV, what="background window")
    if np.any(y[m] <= 0):
        raise ValueError(f"background window {window_eV} eV has non-positive counts; "
                         f"a power law cannot be fitted there")
    slope, intercept = np.polyfit(np.log(e[m]), np.log(y[m]), 1)
    return PowerLaw(float(np.exp(intercept)), float(-slope))


def subtract_background(energy_eV, counts, window_eV) -> tuple[np.ndarray, PowerLaw]:
    """Counts minus the power-law background fitted in ``window_eV``."""
    bg = fit_power_law(energy_eV, counts, window_eV)
    return np.asarray(counts, float) - bg(energy_eV), bg


def double_step(energy_eV, l3_eV, l2_eV, height, *, width_eV=1.0) -> np.ndarray:
    """Pearson-style double arctangent continuum step (heights 2:1, total ``height``)."""
    e = np.asarray(energy_eV, float)

    def f(x):
        return 0.5 + np.arctan(x / width_eV) / np.pi

    return np.asarray(height) * (2.0 / 3.0 * f(e - l3_eV) + 1.0 / 3.0 * f(e - l2_eV))


@dataclass(frozen=True)
class WhiteLines:
    """Result of the L3/L2 analysis."""

    l3_over_l2: float
    i_l3: float
    i_l2: float
    l3_eV: float
    l2_eV: float
    continuum_slope: float
    continuum_intercept: float


def white_line_ratio(energy_eV, signal, *, l3_range_eV=(635.0, 648.0),
                     l2_range_eV=(648.0, 660.0), post_edge_eV=(665.0, 685.0),
                     step_width_eV=1.0, half_window_l3_eV=4.0,
                     half_window_l2_eV=4.0, flat: bool = False) -> WhiteLines:
    """L3/L2 ratio of a background-subtracted L2,3 edge (defaults: Mn).

    Parameters
    ----------
    energy_eV, signal : array_like
        Background-subtracted spectrum (see :func:`subtract_background`).
    l3_range_eV, l2_range_eV : (float, float)
        Where to look for the L3 and L2 maxima.
    post_edge_eV : (float, float)
        Continuum window beyond L2 for the straight-line fit of ``h(E)``.
    step_width_eV : float
        Arctangent broadening ``w`` of the steps.
    half_window_l3_eV, half_window_l2_eV : float
        Integration half-widths around the L3 and L2 maxima.
    flat : bool
        Continuum height constant beyond L2 (Pearson et al. 1993's horizontal line) instead of
        the default straight line ``a + bE``.
    """
    e = np.asarray(energy_eV, float)
    y = np.asarray(signal, float)
    if e.shape != y.shape or e.ndim != 1:
        raise ValueError(f"energy and signal must be 1-D of equal length, got {e.shape}, {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("spectrum contains non-finite values")
    m3 = _window(e, *l3_range_eV, what="L3 search range")
    m2 = _window(e, *l2_range_eV, what="L2 search range")
    l3 = _peak_position(e[m3], y[m3])
    l2 = _peak_position(e[m2], y[m2])
    mp = _window(e, *post_edge_eV, what="post-edge window")
    # The arctangent steps are not yet saturated in the post-edge window, so the
    # continuum line h(E) = a + bE is fitted as y = h(E)·S(E) with the known shape S.
    shape = double_step(e, l3, l2, 1.0, width_eV=step_width_eV)
    if flat:
        intercept, slope = float(np.dot(shape[mp], y[mp]) / np.dot(shape[mp], shape[mp])), 0.0
    else:
        basis = np.column_stack([shape[mp], e[mp] * shape[mp]])
        (intercept, slope), *_ = np.linalg.lstsq(basis, y[mp], rcond=None)
    step = (intercept + slope * e) * shape
    net = y - step
    w3 = _window(e, l3 - half_window_l3_eV, l3 + half_window_l3_eV, "L3 window")
    w2 = _window(e, l2 - half_window_l2_eV, l2 + half_window_l2_eV, "L2 window")
    i3 = float(trapezoid(net[w3], e[w3]))
    i2 = float(trapezoid(net[w2], e[w2]))
    if i2 <= 0:
        raise ValueError("L2 white-line intensity is not positive after continuum removal; "
                         "check the edge windows")
    return WhiteLines(i3 / i2, i3, i2, l3, l2, float(slope), float(intercept))


def _peak_position(e, y) -> float:
    """Maximum refined by a parabola through the top three channels."""
    k = int(np.argmax(y))
    if 0 < k < len(y) - 1:
        y0, y1, y2 = y[k - 1], y[k], y[k + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            return float(e[k] + 0.5 * (y0 - y2) / den * (e[k + 1] - e[k]))
    return float(e[k])


def valence_from_ratio(l3_over_l2, calibration: ValenceCalibration = MN_L3L2_TAN2012):
    """Mn valence from the L3/L2 ratio by the calibration curve (piecewise linear)."""
    return calibration.valence(l3_over_l2)


@dataclass(frozen=True)
class PreEdge:
    """O-K pre-edge integral (counts·eV) and its ratio to the main-edge integral."""

    pre_edge: float
    main_edge: float

    @property
    def ratio(self) -> float:
        return self.pre_edge / self.main_edge


def o_k_pre_edge(energy_eV, signal, *, pre_edge_eV=(527.0, 533.0),
                 main_edge_eV=(533.0, 545.0)) -> PreEdge:
    """Integrated O-K pre-edge intensity of a background-subtracted spectrum.

    The pre-edge peak (O 2p – TM 3d hybridised states, ~528–532 eV) is
    integrated over ``pre_edge_eV``; the main edge over ``main_edge_eV`` gives
    a thickness-independent normalisation (Supp. Figs. 4b, 13b).
    """
    e = np.asarray(energy_eV, float)
    y = np.asarray(signal, float)
    mp = _window(e, *pre_edge_eV, what="pre-edge window")
    mm = _window(e, *main_edge_eV, what="main-edge window")
    return PreEdge(float(trapezoid(y[mp], e[mp])), float(trapezoid(y[mm], e[mm])))


@dataclass(frozen=True)
class LineProfile:
    """EELS quantities along a line from the surface to the interior."""

    position_nm: np.ndarray
    l3_over_l2: np.ndarray
    valence: np.ndarray
    o_pre_edge_ratio: np.ndarray


def line_profile(energy_eV, spectra, position_nm=None, *, mn_background_eV=(600.0, 632.0),
                 o_background_eV=(490.0, 522.0), calibration=MN_L3L2_TAN2012,
                 **white_line_kwargs) -> LineProfile:
    """Mn L3/L2, valence and O-K pre-edge ratio for each spectrum of a line scan.

    ``spectra`` has shape (n_positions, n_channels); quantities whose edges
    are outside the energy range come back as NaN. Fixed windows, no energy calibration and no
    edge detection: :func:`layerscope.spectra.analysis.analyse_eels` is the calibrated, flagged
    analysis that ``layerscope eels`` runs.
    """
    e = np.asarray(energy_eV, float)
    s = np.atleast_2d(np.asarray(spectra, float))
    if s.shape[1] != len(e):
        raise ValueError(f"spectra have {s.shape[1]} channels but the energy axis has {len(e)}")
    pos = np.arange(len(s), dtype=float) if position_nm is None else np.asarray(position_nm, float)
    has_mn = e.min() <= mn_background_eV[0] and e.max() >= 685.0
    has_o = e.min() <= o_background_eV[0] and e.max() >= 545.0
    r = np.full(len(s), np.nan)
    v = np.full(len(s), np.nan)
    o = np.full(len(s), np.nan)
    for i, y in enumerate(s):
        try:   # one failing spectrum gives NaN (with a warning naming it), never stops the others
            if has_mn:
                sig, _ = subtract_background(e, y, mn_background_eV)
                r[i] = white_line_ratio(e, sig, **white_line_kwargs).l3_over_l2
                v[i] = calibration.valence(r[i])   # NaN outside the calibration range
            if has_o:
                sig, _ = subtract_background(e, y, o_background_eV)
                o[i] = o_k_pre_edge(e, sig).ratio
        except ValueError as exc:
            warnings.warn(f"spectrum {i}: {exc}; NaN", stacklevel=2)
    return LineProfile(pos, r, v, o)
