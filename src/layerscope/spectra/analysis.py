"""Mn L2,3 and O-K analysis of many spectra: windows placed on each edge, flags, several valences.

One call, :func:`analyse_eels`, takes calibrated spectra (energy axis + shift per spectrum, see
:mod:`layerscope.spectra.calibrate`) and returns an :class:`EelsResult` with, per spectrum:

* ``l3_over_l2`` and ``valence`` — white-line ratio (:func:`layerscope.spectra.eels.white_line_ratio`:
  power-law background, Pearson double-arctangent continuum step) mapped by a
  :class:`~layerscope.spectra.calibration.ValenceCalibration`; NaN + flag outside its range;
* ``delta_e_eV`` and ``valence_shift`` — the chemical shift ΔE = E(Mn L3 maximum) −
  E(O-K pre-edge maximum) (Zhang et al., Am. Mineral. 95, 1741, 2010, whose abstract calls ΔE vs.
  valence the most valence-sensitive calibration method for Mn3+-Mn4+); a difference between two edges of the same spectrum, so it does not depend on the
  energy calibration. It becomes a valence only through a user-given ΔE calibration table (no
  published table could be verified, so there is no default:
  :data:`~layerscope.spectra.calibration.MN_DE_STATUS`);
* ``valence_mlls`` — multiple linear least squares (non-negative) of the Mn L2,3 edge against
  user-given reference spectra of known valence, ``v = Σ a_k v_k / Σ a_k`` (on the absolute,
  calibrated energy axis: the references must be calibrated the same way);
* ``o_pre_edge_ratio`` — O-K pre-edge / main-edge integral; NaN + flag when the O-K edge is not
  detected (its integral below ``snr_min`` times its propagated noise) or, in a scan, when the
  peak taken for the pre-edge lies more than :data:`O_PRE_EDGE_TOLERANCE_EV` from the scan's
  median (another feature, e.g. the main-edge maximum of a noisy pixel);
* ``flag`` — why a value is NaN (or doubtful); an error in one spectrum is caught, named with its
  index, and never stops the others.

Windows (defaults, eV, relative to the L3 maximum ``m3`` found in :data:`MN_SEARCH_EV` on the
calibrated axis, or to the O-K pre-edge peak ``p``): background ``m3−42…m3−10``, L3 search
``m3±3``, L2 search ``m3+6…m3+16``, integration ±4 around each maximum, post-edge continuum
``m3+23…m3+43``; O-K background ``p−40…p−8``, pre-edge ``p−3…p+3``, main edge ``p+3…p+15``. For
``m3 = 642`` and ``p = 530`` these are the fixed windows used before (600–632, 665–685, 490–522,
527–533, 533–545 eV). A fixed background window can be given instead.

Detection and statistical error (:mod:`layerscope.spectra.uncertainty`): the noise of each
spectrum is estimated in its own background window (variance proportional to the counts, with the
channel-to-channel correlation of the detector) and propagated through the whole chain — the
power-law fit *and its extrapolation under the edge*, the continuum-step fit beyond L2 and the two
integrals — to ``l3_over_l2_stat_err`` and ``snr = (I_L3 + I_L2) / esd``. A spectrum whose ``snr``
is below ``snr_min`` (default 5, the Rose criterion) is "no edge": NaN and a flag. The L2 maximum
must follow the L3 maximum by the 2p spin-orbit splitting (±2 eV). An L3/L2 whose propagated esd
exceeds ``max_rel_err`` (10 %) of the ratio is *undetermined by the noise*: NaN and a flag.
``valence_esd`` is that esd carried through the calibration's slope. Not included: the jitter
of the maxima positions (second order), and any systematic error of the background model (a
power law that does not describe the true background) or of the calibration table itself.

On the NMC spectrum image (``shared/data/eels``, its own zero-loss data) the propagated esd is
0.06-0.22 in L3/L2 (0.11-0.34 in valence); the scatter of the 39 ratios about their weighted mean
gives chi²/dof = 1.9, i.e. it is ~1.4 x the propagated esd: the noise accounts for most of the
pixel-to-pixel scatter. The esd was checked against a Monte Carlo of the full analysis (white
Poisson noise: within 5 %; correlated noise: 5-20 % low, from the bias of a 100-channel
autocorrelation estimate).

After Fourier-ratio deconvolution (``deconvolve="fourier-ratio"``) the channels of the deconvolved
spectrum are correlated over a plasmon energy and more, which a noise model estimated on that
spectrum does not see (its esd was 0.70-0.96 of the Monte-Carlo scatter for t/λ 1.5-0.5). The
error is therefore propagated from the **raw** spectrum: its noise model, and the sensitivities
carried back through the deconvolution (:func:`layerscope.spectra.plural.edge_region_adjoint`,
the transposed Jacobian of the power-law subtraction and the Fourier-ratio convolution). Checked
by Monte Carlo (``tests/test_eels_plural.py``; 100 Poisson draws): esd / scatter 1.02 (t/λ 1.5),
0.99 (1.0), 1.05 (0.5); the Poisson noise of the low-loss (2.5e4-1e6 counts) is not propagated and
changed the scatter by < 10 %. Not included: errors of the low-loss itself (a separately acquired,
displaced or saturated zero-loss peak). On the NMC spectrum image (its separately acquired, 34 %
saturated zero-loss image, pixels paired with the offset found) the median L3/L2 esd after
deconvolution is 0.073 and the 39 ratios scatter about their weighted mean with chi²/dof = 3.1:
real differences between pixels and those low-loss errors, not the counting noise.

Co and Ni L2,3 (``other_elements``) go through the same steps with their own edge energies
(:data:`L23_EDGES_EV`) and give L3/L2 only (no valence table).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import nnls

from layerscope.spectra.calibrate import EDGE_SEARCH_EV, edge_feature
from layerscope.spectra.calibration import MN_DE_STATUS, MN_L3L2_TAN2012, ValenceCalibration
from layerscope.spectra.eels import double_step, fit_power_law, o_k_pre_edge, white_line_ratio
from layerscope.spectra.uncertainty import (estimate_noise, integral_sensitivities, quadratic_forms,
                                            ratio_errors, window_sensitivity)

#: L2,3 edges (EELS Atlas edge energies, Ahn & Krivanek 1983, eV): L3, L2. The L3 maximum is looked
#: for in L3-14 ... L3+20 eV of the calibrated axis (room for a calibration off by ~10 eV); the
#: L2 maximum must follow it by the 2p spin-orbit splitting (L2-L3) within +-2 eV.
L23_EDGES_EV = {"Mn": (640.0, 651.0), "Co": (779.0, 794.0), "Ni": (855.0, 872.0)}
#: Where the Mn L3 maximum is looked for on the calibrated axis (eV).
MN_SEARCH_EV = (626.0, 660.0)
#: Windows relative to the L3 maximum (eV), for Mn; for Co and Ni the L2 search and post-edge
#: windows move with the larger splitting (L2 search = split-5...split+5, post-edge = split+12...split+32).
MN_WINDOWS = {"background": (-42.0, -10.0), "l3_search": (-3.0, 3.0), "l2_search": (6.0, 16.0),
              "half_window_l3": 4.0, "half_window_l2": 4.0, "post_edge": (23.0, 43.0)}


def _edge_setup(element: str) -> tuple:
    if element not in L23_EDGES_EV:
        raise ValueError(f"no L2,3 edge data for {element!r}; known: {sorted(L23_EDGES_EV)}")
    l3, l2 = L23_EDGES_EV[element]
    split = l2 - l3
    w = dict(MN_WINDOWS, l2_search=(split - 5.0, split + 5.0), post_edge=(split + 12.0, split + 32.0))
    return (l3 - 14.0, l3 + 20.0), (split - 2.0, split + 2.0), w
#: How ``l3_over_l2_stat_err``, ``valence_esd`` and ``snr`` are obtained (written to record.json).
STAT_ERROR_METHOD = (
    "noise of each spectrum estimated in its own background window (residual of a cubic fit in "
    "ln E, ln I: variance = gain x counts, channel-to-channel correlation up to lag 6) and "
    "propagated linearly through the power-law fit and its extrapolation, the continuum-step fit "
    "and both integrals (layerscope.spectra.uncertainty); the L3/L2 maxima positions are held "
    "fixed; valence_esd = |d valence / d ratio| x l3_over_l2_stat_err of the calibration segment; "
    "snr = (I_L3 + I_L2) / its esd")
#: Largest distance (eV) of a spectrum's O-K pre-edge peak from the median of its scan: the
#: pre-edge of TM oxides moves by ~1-2 eV between valences/phases; farther means that another
#: feature (the main-edge maximum) was taken for it.
O_PRE_EDGE_TOLERANCE_EV = 3.0
#: Windows relative to the O-K pre-edge peak (eV).
O_WINDOWS = {"background": (-40.0, -8.0), "pre_edge": (-3.0, 3.0), "main_edge": (3.0, 15.0)}


@dataclass(frozen=True)
class EelsOptions:
    """Settings of :func:`analyse_eels` (all written to ``record.json``)."""

    background: str = "power-law"          # or "none" (data already background-subtracted)
    step: str = "linear"                   # continuum height: "linear" a+bE, or "flat" (Pearson)
    step_width_eV: float = 1.0
    mn_background_eV: tuple | None = None  # fixed background window instead of the relative one
    o_background_eV: tuple | None = None
    snr_min: float = 5.0
    max_rel_err: float = 0.10              # statistical error of L3/L2 above this: NaN + flag
    calibration: ValenceCalibration = MN_L3L2_TAN2012
    shift_calibration: ValenceCalibration | None = None
    references: dict = field(default_factory=dict)   # valence -> (energy_eV, counts)
    other_elements: tuple = ()             # further L2,3 ratios (no valence): "Co", "Ni"
    deconvolve: str = "none"               # or "fourier-ratio" (needs the low-loss of each spectrum)

    def as_dict(self) -> dict:
        return {"background": self.background,
                "continuum_step": {"model": "Pearson double arctangent, heights 2:1 (L3:L2)",
                                   "height": self.step, "width_eV": self.step_width_eV},
                "mn_windows_relative_to_L3_max_eV": MN_WINDOWS,
                "mn_background_eV": list(self.mn_background_eV) if self.mn_background_eV else "relative",
                "o_windows_relative_to_pre_edge_peak_eV": O_WINDOWS,
                "o_background_eV": list(self.o_background_eV) if self.o_background_eV else "relative",
                "mn_search_eV": list(MN_SEARCH_EV), "snr_min": self.snr_min,
                "max_relative_statistical_error_of_L3_L2": self.max_rel_err,
                "statistical_error": STAT_ERROR_METHOD,
                "white_line_calibration": self.calibration.as_dict(),
                "shift_calibration": (self.shift_calibration.as_dict() if self.shift_calibration
                                      else {"status": MN_DE_STATUS}),
                "mlls_references": sorted(float(v) for v in self.references),
                "other_l23_elements": list(self.other_elements),
                "plural_scattering": ("Fourier-ratio deconvolution of the L2,3 region (from the Mn "
                                      "background window up) with each spectrum's own low-loss, "
                                      "reconvolved with a Gaussian of the zero-loss width; O-K not "
                                      "deconvolved (layerscope.spectra.plural)"
                                      if self.deconvolve == "fourier-ratio" else "not removed"),
                "l23_edges_eV": {k: L23_EDGES_EV[k] for k in ("Mn", *self.other_elements)}}


@dataclass(frozen=True)
class EelsResult:
    """Per-spectrum results (arrays of length n_spectra) and the plot details of one spectrum."""

    shift_eV: np.ndarray
    l3_over_l2: np.ndarray
    valence: np.ndarray
    delta_e_eV: np.ndarray
    valence_shift: np.ndarray
    valence_mlls: np.ndarray
    o_pre_edge_ratio: np.ndarray
    l3_eV: np.ndarray
    o_pre_edge_eV: np.ndarray
    snr: np.ndarray
    l3_over_l2_stat_err: np.ndarray
    flags: tuple
    example: dict
    other: dict = field(default_factory=dict)   # element -> {"l3_over_l2", "l3_eV", "snr"} arrays
    valence_esd: np.ndarray | None = None       # esd of ``valence`` from l3_over_l2_stat_err
    t_over_lambda: np.ndarray | None = None     # log-ratio t/λ of the paired low-loss (NaN without)
    energy_gain: float = 1.0                    # calibrated axis: energy_gain * E_stored + energy_offset_eV
    energy_offset_eV: np.ndarray | None = None


def _subtract(e, y, window, kind):
    if kind == "none":
        return y.copy(), np.zeros_like(y)
    bg = fit_power_law(e, y, window)(e)
    return y - bg, bg


def l3_region(e, y, opts: EelsOptions, element: str = "Mn", search_eV=None) -> tuple:
    """``(m3, background window, signal, background)``: the L3 edge of one spectrum located (the
    half-rise point, then the channel of the maximum within 8 eV of it) and the power law fitted
    in the window relative to it subtracted. Raises ValueError with the reason if impossible.

    ``search_eV``: where the L3 edge is looked for (default: tabulated L3 −14 … +20 eV).
    """
    (lo, hi), _, w = _edge_setup(element)
    if search_eV is not None:
        lo, hi = (float(v) for v in search_eV)
    if e[0] > lo - (30 if opts.background != "none" else 0) or e[-1] < hi + 25:
        raise ValueError(f"energy range {e[0]:.0f}-{e[-1]:.0f} eV does not cover {element} L2,3 "
                         f"({lo - 30:.0f}-{hi + 25:.0f} eV needed)")
    m3 = edge_feature(e, y, f"{element}-L3", search_eV=(lo, hi),
                      background=opts.background != "none")
    # edge_feature gives the half-rise point; the maximum follows within a few eV
    fixed_bg = opts.mn_background_eV if element == "Mn" else None
    bgw = fixed_bg or (m3 + w["background"][0] - 2, m3 + w["background"][1] - 2)
    sig, bg = _subtract(e, y, bgw, opts.background)
    mm = (e >= m3 - 1) & (e <= m3 + 8)
    m3 = float(e[mm][np.argmax(sig[mm])])
    if fixed_bg is None and opts.background != "none":
        bgw = (m3 + w["background"][0], m3 + w["background"][1])
        sig, bg = _subtract(e, y, bgw, opts.background)
    return m3, bgw, sig, bg


def l3_maximum(e, y, opts: EelsOptions, element: str = "Mn", search_eV=None) -> float:
    """The L3 white-line maximum (eV) as :func:`mn_edge` reports it (``l3_eV``): a parabola through
    the three top channels of the background-subtracted signal within ±3 eV of the top channel."""
    from layerscope.spectra.eels import _peak_position
    m3, _, sig, _ = l3_region(e, y, opts, element, search_eV)
    w = _edge_setup(element)[2]["l3_search"]
    m = (e >= m3 + w[0]) & (e <= m3 + w[1])
    return _peak_position(e[m], sig[m])


def mn_edge(e, y, opts: EelsOptions, element: str = "Mn", search_eV=None, through=None) -> dict:
    """White lines of one calibrated spectrum; raises ValueError with the reason if impossible.

    ``search_eV``: where the L3 edge is looked for (default: tabulated L3 −14 … +20 eV).
    ``through``: for a spectrum made from another by a linear(ised) map (Fourier-ratio
    deconvolution), ``through(noise_window, vectors) -> (noise model, counts, vectors)`` of the
    spectrum it was made from, so the statistical error is propagated from that spectrum's noise.
    """
    _, split_ok, w = _edge_setup(element)
    m3, bgw, sig, bg = l3_region(e, y, opts, element, search_eV)
    wl = white_line_ratio(e, sig, l3_range_eV=(m3 + w["l3_search"][0], m3 + w["l3_search"][1]),
                          l2_range_eV=(m3 + w["l2_search"][0], m3 + w["l2_search"][1]),
                          post_edge_eV=(m3 + w["post_edge"][0], m3 + w["post_edge"][1]),
                          step_width_eV=opts.step_width_eV, half_window_l3_eV=w["half_window_l3"],
                          half_window_l2_eV=w["half_window_l2"], flat=opts.step == "flat")
    split = wl.l2_eV - wl.l3_eV
    if not split_ok[0] <= split <= split_ok[1]:
        raise ValueError(f"no {element} L2,3 white lines: maxima {split:.1f} eV apart (2p spin-orbit "
                         f"splitting accepted {split_ok[0]:g}-{split_ok[1]:g} eV)")
    noise_win = tuple(bgw) if opts.background != "none" else (m3 - 25, m3 - 8)
    noise = estimate_noise(e, y, noise_win, proportional=opts.background != "none")
    post = (m3 + w["post_edge"][0], m3 + w["post_edge"][1])
    a3, a2 = integral_sensitivities(
        e, y, background_eV=tuple(bgw) if opts.background != "none" else None, l3_eV=wl.l3_eV,
        l2_eV=wl.l2_eV, post_edge_eV=post, half_window_l3_eV=w["half_window_l3"],
        half_window_l2_eV=w["half_window_l2"], step_width_eV=opts.step_width_eV,
        flat=opts.step == "flat")
    y_noise = y
    if through is not None:
        noise, y_noise, (a3, a2) = through(noise_win, [a3, a2])
    r_err, snr = ratio_errors(wl.i_l3, wl.i_l2, quadratic_forms(noise, y_noise, [a3, a2]))
    step = (wl.continuum_intercept + wl.continuum_slope * e) * double_step(
        e, wl.l3_eV, wl.l2_eV, 1.0, width_eV=opts.step_width_eV)
    return {"wl": wl, "snr": float(snr), "ratio_err": r_err, "noise": noise, "signal": sig,
            "background": bg, "step": step,
            "windows": {"background": list(bgw) if opts.background != "none" else None,
                        "l3": [wl.l3_eV - 4, wl.l3_eV + 4], "l2": [wl.l2_eV - 4, wl.l2_eV + 4],
                        "post_edge": [m3 + w["post_edge"][0], m3 + w["post_edge"][1]]}}


def o_edge(e, y, opts: EelsOptions) -> dict:
    """O-K pre-edge/main-edge ratio of one calibrated spectrum, with the SNR of the whole edge."""
    p = edge_feature(e, y, "O-K", background=opts.background != "none")
    w = O_WINDOWS
    bgw = opts.o_background_eV or (p + w["background"][0], p + w["background"][1])
    sig, bg = _subtract(e, y, bgw, opts.background)
    pre_w = (p + w["pre_edge"][0], p + w["pre_edge"][1])
    main_w = (p + w["main_edge"][0], p + w["main_edge"][1])
    pe = o_k_pre_edge(e, sig, pre_edge_eV=pre_w, main_edge_eV=main_w)
    # detection: the O-K integral (pre-edge + main edge) against its noise, propagated through
    # the background extrapolation like the Mn white lines
    use_bg = opts.background != "none"
    noise = estimate_noise(e, y, tuple(bgw) if use_bg else (p - 25, p - 8), proportional=use_bg)
    a = window_sensitivity(e, y, (pre_w[0], main_w[1]), tuple(bgw) if use_bg else None)
    var = float(quadratic_forms(noise, y, [a])[0, 0])
    total = pe.pre_edge + pe.main_edge
    snr = total / np.sqrt(var) if var > 0 else np.inf
    return {"peak_eV": p, "ratio": pe.ratio, "background": bg, "snr": float(snr),
            "windows": {"background": list(bgw), "pre_edge": list(pre_w), "main": list(main_w)}}


def mlls_valence(e, sig, m3, references, opts: EelsOptions) -> tuple[float, str]:
    """Non-negative least squares of the edge on reference edges; valence = weighted mean."""
    fit = (e >= m3 - 10) & (e <= m3 + 25)
    cols, vals = [], []
    for v, (er, yr) in sorted(references.items()):
        er = np.asarray(er, float)
        yr = np.asarray(yr, float)
        r3 = edge_feature(er, yr, "Mn-L3", search_eV=MN_SEARCH_EV, background=opts.background != "none")
        rsig, _ = _subtract(er, yr, (r3 - 40, r3 - 10), opts.background)
        if er[0] > e[fit][0] or er[-1] < e[fit][-1]:
            raise ValueError(f"reference of valence {v:g} ({er[0]:.0f}-{er[-1]:.0f} eV) does not "
                             f"cover the fit range {e[fit][0]:.0f}-{e[fit][-1]:.0f} eV")
        cols.append(np.interp(e[fit], er, rsig))
        vals.append(float(v))
    a = np.column_stack(cols)
    coef, _ = nnls(a, sig[fit])
    if coef.sum() <= 0:
        return np.nan, "MLLS: no reference weight"
    model = a @ coef
    r2 = 1 - np.sum((sig[fit] - model) ** 2) / np.sum((sig[fit] - sig[fit].mean()) ** 2)
    flag = f"MLLS: poor fit R2={r2:.2f}" if r2 < 0.9 else ""
    return float(np.dot(coef, vals) / coef.sum()), flag


def _check_o_positions(out, flags) -> None:
    """In a scan, an O-K "pre-edge" far from the others is another feature: NaN + flag."""
    p = out["p"]
    ok = np.isfinite(p)
    if ok.sum() < 3:
        return
    med = float(np.median(p[ok]))
    for i in np.flatnonzero(ok & (np.abs(p - med) > O_PRE_EDGE_TOLERANCE_EV)):
        flags[i].append(f"O-K pre-edge found at {p[i]:.1f} eV, {p[i] - med:+.1f} eV from the scan's "
                        f"median {med:.1f} eV: another feature taken (O-K values not reported)")
        for k in ("o", "p", "de", "vs"):
            out[k][i] = np.nan


def analyse_eels(energy_eV, spectra, shift_eV=0.0, options: EelsOptions | None = None,
                 through=None) -> EelsResult:
    """Analyse every spectrum; failures become NaN with a flag naming the spectrum index.

    ``through``: one callable (or None) per spectrum, see :func:`mn_edge` (used for the L2,3 edges).
    """
    opts = options or EelsOptions()
    e0 = np.asarray(energy_eV, float)
    s = np.atleast_2d(np.asarray(spectra, float))
    n = len(s)
    if s.shape[1] != len(e0):
        raise ValueError(f"spectra have {s.shape[1]} channels but the energy axis has {len(e0)}")
    shift = np.broadcast_to(np.asarray(shift_eV, float), (n,)).astype(float)
    out = {k: np.full(n, np.nan) for k in ("r", "v", "de", "vs", "vm", "o", "l3", "p", "snr", "err")}
    flags = []
    example, best = {}, -np.inf
    other = {el: {k: np.full(n, np.nan) for k in ("l3_over_l2", "l3_eV", "snr")}
             for el in opts.other_elements}
    for i, y in enumerate(s):
        e = e0 + shift[i]
        f = []
        mn = ok = None
        try:
            mn = mn_edge(e, y, opts, through=None if through is None else through[i])
            out["snr"][i] = mn["snr"]
            out["err"][i] = mn["ratio_err"]
            if not mn["snr"] >= opts.snr_min:
                f.append(f"no Mn L2,3 edge (SNR {mn['snr']:.1f} < {opts.snr_min:g})")
                mn = None
            elif not mn["ratio_err"] <= opts.max_rel_err * abs(mn["wl"].l3_over_l2):
                f.append(f"Mn L3/L2 {mn['wl'].l3_over_l2:.3f} too uncertain: undetermined by the "
                         f"noise (propagated esd {mn['ratio_err']:.3f} > {100 * opts.max_rel_err:g} % "
                         f"of the ratio)")
                mn = None
        except Exception as exc:  # one spectrum never stops the others
            f.append(f"Mn L2,3 not analysed ({exc})")
        if mn is not None:
            wl = mn["wl"]
            out["r"][i], out["l3"][i] = wl.l3_over_l2, wl.l3_eV
            out["v"][i] = opts.calibration.valence(wl.l3_over_l2)
            if c := opts.calibration.check(wl.l3_over_l2):
                f.append(f"{c}, L3/L2 esd {mn['ratio_err']:.3f}")
            if opts.references:
                try:
                    out["vm"][i], c = mlls_valence(e, mn["signal"], wl.l3_eV, opts.references, opts)
                    if c:
                        f.append(c)
                except Exception as exc:
                    f.append(f"MLLS not done ({exc})")
        o_lo, o_hi = EDGE_SEARCH_EV["O-K"]
        if e[0] <= o_lo - (30 if opts.background != "none" else 0) and e[-1] >= o_hi:
            try:   # (spectra that do not cover the O-K edge at all are not flagged for it)
                ok = o_edge(e, y, opts)
                if not ok["snr"] >= opts.snr_min:
                    f.append(f"no O-K edge (SNR {ok['snr']:.1f} < {opts.snr_min:g})")
                    ok = None
                else:
                    out["o"][i], out["p"][i] = ok["ratio"], ok["peak_eV"]
            except Exception as exc:
                f.append(f"O-K not analysed ({exc})")
        if mn is not None and ok is not None:
            out["de"][i] = out["l3"][i] - out["p"][i]
            if opts.shift_calibration is not None:
                out["vs"][i] = opts.shift_calibration.valence(out["de"][i])
                if c := opts.shift_calibration.check(out["de"][i]):
                    f.append(c)
        for el in opts.other_elements:
            try:
                r = mn_edge(e, y, opts, el, through=None if through is None else through[i])
                other[el]["snr"][i] = r["snr"]
                if r["snr"] < opts.snr_min:
                    f.append(f"no {el} L2,3 edge (SNR {r['snr']:.1f} < {opts.snr_min:g})")
                elif not r["ratio_err"] <= opts.max_rel_err * abs(r["wl"].l3_over_l2):
                    f.append(f"{el} L3/L2 {r['wl'].l3_over_l2:.2f} too uncertain (statistical error "
                             f"{r['ratio_err']:.2f})")
                else:
                    other[el]["l3_over_l2"][i] = r["wl"].l3_over_l2
                    other[el]["l3_eV"][i] = r["wl"].l3_eV
            except Exception as exc:
                f.append(f"{el} L2,3 not analysed ({exc})")
        if mn is not None and mn["snr"] > best:
            best = mn["snr"]
            example = {"index": i, "energy_eV": e, "counts": y, **mn, "o": ok}
        flags.append(f)
    _check_o_positions(out, flags)
    flags = [f"spectrum {i}: " + "; ".join(f) if f else "" for i, f in enumerate(flags)]
    v_esd = np.where(np.isfinite(out["v"]), opts.calibration.valence_esd(out["r"], out["err"]), np.nan)
    return EelsResult(shift, out["r"], out["v"], out["de"], out["vs"], out["vm"], out["o"],
                      out["l3"], out["p"], out["snr"], out["err"], tuple(flags), example,
                      other, v_esd)
