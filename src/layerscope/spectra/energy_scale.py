"""Two-point energy calibration of EELS spectra: offset AND dispersion from two named features.

A zero-loss peak fixes the spectrometer's zero, and one edge fixes an offset; neither corrects a
dispersion (eV per channel) that is off by a few per cent, which moves edges by an amount that
grows with the energy loss (on the NMC spectrum image of ``shared/data/eels``, calibrated on its
separately acquired zero-loss image, the O-K pre-edge sits ~8 eV low and the Ni L3 maximum ~17 eV
low). :func:`two_point_calibration` measures two features that the user names, with their
reference energies, and maps the axis linearly through both:

    E' = T1 + g · (E − M1),      g = (T2 − T1) / (M2 − M1),

``E`` the axis after the earlier steps (zero-loss peak per pixel; the stored axis without them),
``M1, M2`` the measured feature positions and ``T1, T2`` the user's reference energies. Per
spectrum ``i`` with its earlier shift ``s_i`` this is ``E'_i = g · E_stored + c_i`` with
``c_i = T1 + g (s_i − M1)``: the gain multiplies the stored axis, the per-pixel drift of the
zero-loss peaks is kept (scaled by ``g``).

Feature definitions (the same ones that give the ``o_pre_edge_eV``, ``l3_eV`` and ``co_l3_eV`` /
``ni_l3_eV`` columns, so a reference energy is compared with what the analysis reports):

* ``O-K``: the O-K pre-edge peak maximum (O 2p – TM 3d), found by
  :func:`layerscope.spectra.calibrate.edge_feature` (power-law background subtracted, smoothed
  over 0.3 eV, the first peak above 20 % of the edge maximum, refined by a parabola through three
  channels);
* ``Mn-L3``, ``Co-L3``, ``Ni-L3``: the L3 white-line maximum of the background-subtracted edge,
  refined by a parabola through its three top channels
  (:func:`layerscope.spectra.analysis.l3_maximum`, the ``l3_eV`` of
  :func:`~layerscope.spectra.analysis.mn_edge`).

Each is measured once, on the sum of all spectra moved onto one axis with their earlier shifts,
and looked for within ``±search_half_width_eV`` of its reference energy on that axis. There are
no default reference energies: they depend on the compound and on the feature definition (e.g.
the Mn L3 maximum lies at ~640 eV in MnO and ~644 eV in MnO2), so the user names them. A gain
more than :data:`GAIN_WARN` from 1 is warned about (a spectrometer's dispersion is not that far
off: more likely a feature was misidentified).

Written by hand: a linear map through two points; no library offers EELS feature positions as
array functions (exSpy's ``align1D``/``estimate_shift1D`` give one shift, not a dispersion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Features a two-point calibration can use.
FEATURES = ("O-K", "Mn-L3", "Co-L3", "Ni-L3")
#: How each feature is defined (written to record.json).
FEATURE_DEFINITIONS = {
    "O-K": "O-K pre-edge peak maximum (power-law background, 0.3 eV smoothing, first peak above 20 % "
           "of the edge maximum, parabola through three channels)",
    "L3": "L3 white-line maximum of the background-subtracted edge (parabola through the three top "
          "channels), as the l3_eV column"}
#: |gain − 1| above which the calibration is warned about.
GAIN_WARN = 0.05
#: Tabulated edge energies (eV) used only to look for, and judge, the check features: the EELS Atlas
#: L3 edge energies (Ahn & Krivanek 1983, as :data:`layerscope.spectra.analysis.L23_EDGES_EV`) and
#: the O-K pre-edge convention of :data:`layerscope.spectra.calibrate.EDGE_TARGETS_EV`.
TABULATED_EV = {"O-K": 530.0, "Mn-L3": 640.0, "Co-L3": 779.0, "Ni-L3": 855.0}
TABULATED_SOURCE = "EELS Atlas L3 edge energies (Ahn & Krivanek 1983) and O-K pre-edge at 530 eV"
#: A check feature farther than this (eV) from its tabulated energy after calibration is warned about
#: (L3 maxima of oxides of one metal spread over ~4 eV with the valence).
CHECK_WARN_EV = 4.0
#: Noisy copies used to estimate the esd of each measured feature position.
N_BOOTSTRAP = 30
#: Features are looked for within this distance (eV) of their reference energy.
SEARCH_HALF_WIDTH_EV = 25.0


@dataclass(frozen=True)
class TwoPoint:
    """Result of :func:`two_point_calibration`: ``E'_i = gain · E_stored + offset_eV[i]``."""

    gain: float
    offset_eV: np.ndarray
    measured_eV: dict
    target_eV: dict
    warnings: tuple
    measured_esd_eV: dict = None
    check_eV: dict = None

    def axis_esd_eV(self, energy_eV):
        """Statistical esd (eV) of the calibrated axis at calibrated energy ``energy_eV``, from the
        esds of the two measured positions: ``g² [(1−u)² σ1² + u² σ2²]``, u = (E − T1)/(T2 − T1)."""
        (n1, t1), (n2, t2) = self.target_eV.items()
        s1, s2 = (self.measured_esd_eV or {}).get(n1, np.nan), (self.measured_esd_eV or {}).get(n2, np.nan)
        u = (np.asarray(energy_eV, float) - t1) / (t2 - t1)
        return self.gain * np.sqrt((1 - u) ** 2 * s1 ** 2 + u ** 2 * s2 ** 2)

    @property
    def gain_esd(self) -> float:
        (n1, _), (n2, _) = self.target_eV.items()
        s1, s2 = (self.measured_esd_eV or {}).get(n1, np.nan), (self.measured_esd_eV or {}).get(n2, np.nan)
        return float(self.gain * np.hypot(s1, s2) / abs(self.measured_eV[n2] - self.measured_eV[n1]))

    def as_dict(self) -> dict:
        f = list(self.target_eV)
        return {"method": "two-point energy calibration (offset and dispersion)",
                "formula": "E_calibrated = T1 + gain * (E - M1) on the axis of the earlier steps; per "
                           "spectrum E_calibrated = gain * E_stored + energy_offset_eV",
                "features": f, "reference_eV": dict(self.target_eV), "measured_eV": dict(self.measured_eV),
                "gain": self.gain, "gain_esd": self.gain_esd,
                "measured_esd_eV": dict(self.measured_esd_eV or {}),
                "esd_method": (f"parametric bootstrap: {N_BOOTSTRAP} copies of the summed spectrum with "
                               f"added Gaussian noise of the variance estimated below each feature "
                               f"(gain x counts, channels taken as uncorrelated: with correlated "
                               f"detector noise the esds are low)"),
                "axis_esd_eV_at": {f"{v:g}": float(self.axis_esd_eV(v)) for v in
                                   (500.0, 530.0, 640.0, 780.0, 855.0, 1000.0)},
                "dispersion_correction_percent": 100.0 * (self.gain - 1.0),
                "energy_offset_eV_median": float(np.median(self.offset_eV)),
                "feature_definitions": {k: FEATURE_DEFINITIONS["O-K" if k == "O-K" else "L3"] for k in f},
                "check_features_eV": dict(self.check_eV or {}),
                "check_features_note": (f"features not used to calibrate, on the calibrated summed spectra; "
                                        f"compare with {TABULATED_SOURCE}: {TABULATED_EV}"),
                "measured_on": "sum of all spectra on one axis (earlier per-spectrum shifts applied)",
                "search_half_width_eV": SEARCH_HALF_WIDTH_EV}


def parse_reference_features(text) -> dict:
    """``"O-K=530.0,Mn-L3=641.0"`` (or a dict) → ``{"O-K": 530.0, "Mn-L3": 641.0}``.

    Raises ValueError unless exactly two known features with finite, distinct energies are given.
    """
    if isinstance(text, dict):
        items = [(str(k), v) for k, v in text.items()]
    else:
        items = []
        for part in str(text).split(","):
            name, sep, val = part.strip().partition("=")
            if not sep:
                raise ValueError(f"expected FEATURE=ENERGY_eV, got {part.strip()!r}")
            items.append((name.strip(), val))
    out = {}
    for name, val in items:
        if name not in FEATURES:
            raise ValueError(f"unknown calibration feature {name!r}; known: {', '.join(FEATURES)}")
        try:
            v = float(val)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: energy {val!r} is not a number") from None
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name}: energy {v} eV is not a positive finite energy loss")
        if name in out:
            raise ValueError(f"{name} given twice")
        out[name] = v
    if len(out) != 2:
        raise ValueError(f"two-point calibration needs exactly two features, got {len(out)} ({list(out)})")
    a, b = out.values()
    if abs(a - b) < 20.0:
        raise ValueError(f"the two reference energies ({a:g}, {b:g} eV) are less than 20 eV apart: "
                         f"the dispersion would be determined poorly")
    return out


def feature_position(energy_eV, counts, feature: str, near_eV: float, *, options=None) -> float:
    """Position (eV, on the axis given) of ``feature`` within ±SEARCH_HALF_WIDTH_EV of ``near_eV``."""
    from layerscope.spectra.analysis import EelsOptions, l3_maximum
    from layerscope.spectra.calibrate import edge_feature
    opts = options or EelsOptions()
    search = (near_eV - SEARCH_HALF_WIDTH_EV, near_eV + SEARCH_HALF_WIDTH_EV)
    if feature == "O-K":
        return edge_feature(energy_eV, counts, "O-K", search_eV=search,
                            background=opts.background != "none")
    if feature not in FEATURES:
        raise ValueError(f"unknown calibration feature {feature!r}")
    return float(l3_maximum(np.asarray(energy_eV, float), np.asarray(counts, float), opts,
                            feature.split("-")[0], search_eV=search))


def two_point_calibration(energy_eV, spectra, references, *, base_shift=None, options=None) -> TwoPoint:
    """Gain and per-spectrum offsets that put the two ``references`` features at their energies.

    ``references``: ``{feature: energy_eV}`` (two of :data:`FEATURES`, see
    :func:`parse_reference_features`); ``base_shift``: the earlier per-spectrum shifts (zero-loss
    peaks), applied before the features are measured. Raises ValueError if a feature is not found.
    """
    refs = parse_reference_features(references)
    e = np.asarray(energy_eV, float)
    s = np.atleast_2d(np.asarray(spectra, float))
    base = np.broadcast_to(np.zeros(len(s)) if base_shift is None else np.asarray(base_shift, float),
                           (len(s),)).astype(float)
    ref = float(np.median(base))
    total = np.sum([np.interp(e + ref, e + base[i], y) for i, y in enumerate(s)], axis=0)
    measured = {}
    for name, target in refs.items():
        try:
            measured[name] = feature_position(e + ref, total, name, target, options=options)
        except ValueError as exc:
            raise ValueError(f"calibration feature {name} not found within ±{SEARCH_HALF_WIDTH_EV:g} eV "
                             f"of {target:g} eV on the summed spectra: {exc}") from None
    esd = {name: _position_esd(e + ref, total, name, target, options)
           for name, target in refs.items()}
    (n1, t1), (n2, t2) = refs.items()
    m1, m2 = measured[n1], measured[n2]
    if (t2 - t1) * (m2 - m1) <= 0 or abs(m2 - m1) < 1.0:
        raise ValueError(f"{n1} measured at {m1:.2f} eV and {n2} at {m2:.2f} eV: not in the order of "
                         f"their reference energies {t1:g}, {t2:g} eV (a feature was misidentified)")
    gain = (t2 - t1) / (m2 - m1)
    notes = []
    if abs(gain - 1.0) > GAIN_WARN:
        notes.append(f"two-point energy calibration: gain {gain:.4f} ({100 * (gain - 1):+.1f} % "
                     f"dispersion correction) is implausibly far from 1 (more than {100 * GAIN_WARN:g} %): "
                     f"check that {n1} ({m1:.2f} eV) and {n2} ({m2:.2f} eV) are the features named")
    offsets = t1 + gain * (base - m1)
    checks, off = {}, []
    for name in FEATURES:
        if name in refs:
            continue
        tab = TABULATED_EV[name]
        try:   # looked for near its tabulated energy mapped back to the measured axis
            pos = t1 + gain * (feature_position(e + ref, total, name, m1 + (tab - t1) / gain,
                                                options=options) - m1)
        except ValueError:
            continue
        checks[name] = float(pos)
        if abs(pos - tab) > CHECK_WARN_EV:
            off.append(f"{name} at {pos:.1f} eV (tabulated {tab:g})")
    if off:
        notes.append(f"two-point energy calibration on {n1} and {n2}: features not used to calibrate lie "
                     f"far from their tabulated energies: {', '.join(off)}; the energy axis may not be "
                     f"linear (or those features are misidentified): absolute energies away from "
                     f"{n1}-{n2} are doubtful")
    return TwoPoint(float(gain), offsets, measured, dict(refs), tuple(notes), esd, checks)


def _position_esd(e, y, name, target, options, seed: int = 0) -> float:
    """esd (eV) of :func:`feature_position` by a parametric bootstrap (see ``TwoPoint.as_dict``)."""
    from layerscope.spectra.analysis import EelsOptions
    from layerscope.spectra.uncertainty import estimate_noise
    opts = options or EelsOptions()
    lo = target - SEARCH_HALF_WIDTH_EV
    try:
        noise = estimate_noise(e, y, (lo - 30.0, lo - 2.0), proportional=opts.background != "none")
    except ValueError:
        return float("nan")
    sd = noise.sd(y)
    rng = np.random.default_rng(seed)
    pos = []
    for _ in range(N_BOOTSTRAP):
        try:
            pos.append(feature_position(e, y + rng.normal(0.0, 1.0, len(y)) * sd, name, target, options=opts))
        except ValueError:
            continue
    return float(np.std(pos, ddof=1)) if len(pos) >= N_BOOTSTRAP // 2 else float("nan")
