"""EELS workflow: read -> calibrate the energy axis -> (optional PCA) -> analyse -> outputs.

:func:`eels_pipeline` chains :mod:`~layerscope.spectra.calibrate` and
:mod:`~layerscope.spectra.analysis` and returns the result with a ``record`` (calibration,
windows, methods, warnings) that :func:`write_eels_outputs` writes as ``record.json`` next to
``eels.csv`` and ``eels.png``. :func:`analyse_signal` does the same for a HyperSpy signal in
memory and gives maps shaped like its navigation axes.

PCA denoising (optional, ``pca=K``): the spectra, moved onto one common energy axis with their
own shifts, are decomposed by a singular value decomposition after Poisson scaling (each channel
and each spectrum divided by the square root of its mean; Keenan & Kotula, Surf. Interface Anal.
36, 203, 2004) and rebuilt from the first K components. K is the user's choice: the singular
values are written to ``record.json`` so that it can be judged (a scree plot).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope._io import save_figure, write_csv, write_text
from layerscope.spectra.analysis import MN_SEARCH_EV, EelsOptions, EelsResult, analyse_eels
from layerscope.spectra.calibrate import edge_shifts, zlp_shifts
from layerscope.spectra.calibration import MN_DE_STATUS

#: Range (eV) in which the Mn L3 maximum of Mn oxides lies on a correct absolute scale
#: (MnO ~640 eV to MnO2 ~644 eV); a calibrated maximum outside it is reported as a warning.
MN_L3_EXPECTED_EV = (638.0, 646.0)
#: Median t/λ above which a run without Fourier-ratio deconvolution is warned about (at t/λ ~ 1 the
#: NMC spectrum image's L3/L2 drops by ~0.4 when deconvolved).
PLURAL_TL_WARN = 0.5
#: Range (eV) of the O-K pre-edge peak (O 2p - TM 3d) of layered/spinel/rock-salt TM oxides on a
#: correct absolute scale; a calibrated pre-edge outside it is reported as a warning.
O_PRE_EDGE_EXPECTED_EV = (527.0, 533.0)

COLUMNS = ["index", "position_nm", "l3_over_l2", "valence", "o_pre_edge_ratio", "shift_eV", "flag",
           "valence_shift", "valence_mlls", "delta_e_eV", "l3_eV", "o_pre_edge_eV", "snr", "l3_over_l2_stat_err",
           "valence_esd", "t_over_lambda", "energy_gain", "energy_offset_eV"]


def pca_denoise(spectra, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild ``spectra`` (n, channels) from ``k`` Poisson-scaled principal components.

    Returns the rebuilt spectra and the normalised singular values (first = 1).
    """
    x = np.asarray(spectra, float)
    if not 1 <= k < min(x.shape):
        raise ValueError(f"PCA needs 1 <= K < {min(x.shape)}, got {k}")
    xc = np.clip(x, 0.0, None)
    g = np.sqrt(xc.mean(axis=0))
    h = np.sqrt(xc.mean(axis=1))[:, None]
    g[g == 0] = 1.0
    h[h == 0] = 1.0
    u, sv, vt = np.linalg.svd(x / (g * h), full_matrices=False)
    return (u[:, :k] * sv[:k]) @ vt[:k] * (g * h), sv / sv[0]


def _common_axis(energy, spectra, shift):
    ref = float(np.median(shift))
    out = np.array([np.interp(energy + ref, energy + shift[i], y) for i, y in enumerate(spectra)])
    return out, ref


def eels_pipeline(energy_eV, spectra, *, low_loss=None, low_loss_energy_eV=None, align_edge=None,
                  align_energy_eV=None, shift_eV: float = 0.0, options: EelsOptions | None = None,
                  pca: int | None = None, source: str = "", acquisition: dict | None = None,
                  low_loss_acquisition: dict | None = None, nav_shape: tuple = (),
                  low_loss_offset=None, calibrate_edges=None) -> tuple[EelsResult, dict]:
    """Calibrate and analyse; returns the per-spectrum result and the record for ``record.json``.

    ``acquisition`` / ``low_loss_acquisition``: the files' acquisition settings
    (:func:`~layerscope.spectra.acquisition.spectrometer_settings`), recorded and compared
    (:func:`~layerscope.spectra.acquisition.pairing_notes`: a low-loss from a separate acquisition
    is named in the warnings).

    ``low_loss_offset``: how core-loss pixels are paired with low-loss pixels of a separate
    acquisition: ``None`` same index; ``"auto"`` the navigation offset estimated by
    :func:`~layerscope.spectra.plural.register_navigation` (core-loss counts vs. low-loss t/λ,
    both growing with the thickness); ``(dy, dx)`` given. The estimate is always recorded, and a
    non-zero one that is not applied is warned about.

    ``calibrate_edges``: ``{feature: energy_eV}`` or ``"O-K=530,Mn-L3=641"``: two-point calibration
    of offset and dispersion after the zero-loss step
    (:func:`~layerscope.spectra.energy_scale.two_point_calibration`); excludes ``align_edge``.
    The analysis then runs on ``gain × E_stored + energy_offset_eV`` per spectrum.
    """
    opts = options or EelsOptions()
    e = np.asarray(energy_eV, float)
    s = np.atleast_2d(np.asarray(spectra, float))
    n = len(s)
    notes = []
    calib = {"steps": [], "explicit_shift_eV": float(shift_eV)}
    shift = np.zeros(n)
    if low_loss is not None:
        ll = np.atleast_2d(np.asarray(low_loss, float))
        if len(ll) not in (1, n):
            raise InputError(f"low-loss data hold {len(ll)} spectra, the core-loss data {n}: "
                             f"expected the same number (DualEELS) or one")
        z = zlp_shifts(low_loss_energy_eV, ll)
        pair, reg = _pair_low_loss(s, ll, low_loss_energy_eV, nav_shape, low_loss_offset, notes)
        shift = shift + (np.repeat(z.shift_eV, n) if len(ll) == 1 else z.shift_eV[pair])
        calib["steps"].append({"method": "zero-loss peak to 0 eV", **z.detail,
                               "flagged": [f for f in z.flags if f]})
        if reg:
            calib["low_loss_registration"] = reg
        from layerscope.spectra.acquisition import pairing_notes
        for msg in pairing_notes(acquisition or {}, low_loss_acquisition or {}):
            warnings.warn(msg, stacklevel=2)
            notes.append(msg)
    gain, two_point = 1.0, None
    if calibrate_edges is not None and align_edge is not None:
        raise InputError("give either a two-point calibration (--calibrate-edges) or an edge "
                         "alignment (--align-edge), not both")
    if calibrate_edges is not None:
        from layerscope.spectra.energy_scale import two_point_calibration
        try:
            two_point = two_point_calibration(e, s, calibrate_edges, base_shift=shift, options=opts)
        except ValueError as exc:
            raise InputError(f"two-point energy calibration: {exc}") from None
        gain, shift = two_point.gain, two_point.offset_eV.copy()
        calib["steps"].append(two_point.as_dict())
        if low_loss is not None:
            calib["steps"][-1]["low_loss_axis"] = (
                "scaled by the same gain for t/λ and the deconvolution (one spectrometer dispersion "
                "for both acquisitions assumed); the zero-loss shifts were measured on its stored axis")
        for msg in two_point.warnings:
            warnings.warn(msg, stacklevel=2)
            notes.append(msg)
        if {"O-K", "Mn-L3"} <= set(two_point.target_eV):
            notes.append("the calibration puts the summed spectra's O-K pre-edge and Mn L3 maximum at "
                         "the energies given, so the mean ΔE(Mn L3 − O K) is set by them, not measured: "
                         "delta_e_eV and valence_shift carry only the differences between spectra")
    if align_edge is not None:
        a = edge_shifts(e, s, align_edge, target_eV=align_energy_eV, base_shift=shift,
                        background=opts.background != "none")
        calib["steps"].append({"method": a.method, **a.detail,
                               "correction_eV": float(np.median(a.shift_eV - shift))})
        shift = a.shift_eV
    shift = shift + float(shift_eV)
    if low_loss is None and align_edge is None and calibrate_edges is None and shift_eV == 0.0:
        msg = ("energy axis used as stored (no --low-loss, --align-edge or --shift-eV): absolute "
               "edge energies are as good as the spectrometer calibration")
        warnings.warn(msg, stacklevel=2)
        notes.append(msg)
    # the axis the analysis runs on: E'_i = gain * e + shift_i (gain 1 without a two-point calibration)
    e_an = gain * e
    le_an = None if low_loss is None else gain * np.asarray(low_loss_energy_eV, float)
    data = s
    t_over_lambda = np.full(n, np.nan)
    if low_loss is not None:
        from layerscope.spectra.plural import log_ratio_thickness
        tl, _ = log_ratio_thickness(low_loss_energy_eV, ll)
        t_over_lambda = np.repeat(tl, n) if len(ll) == 1 else tl[pair]
    if opts.deconvolve == "fourier-ratio":
        if low_loss is None:
            raise InputError("Fourier-ratio deconvolution needs the low-loss spectra of the same "
                             "pixels (--low-loss)")
        dc, dl = float(np.median(np.diff(e))), float(np.median(np.diff(low_loss_energy_eV)))  # stored
        if abs(dc - dl) > 1e-4 * dc:
            raise InputError(f"Fourier-ratio deconvolution needs one dispersion: core-loss {dc:g} eV/ch, "
                             f"low-loss {dl:g} eV/ch (resample one of them first)")
        data, frd_flags, through = _deconvolve_all(e_an, s, shift, ll, le_an,
                                                   np.zeros(n, int) if len(ll) == 1 else pair, opts)
    elif opts.deconvolve != "none":
        raise InputError(f"unknown deconvolution {opts.deconvolve!r} (none, fourier-ratio)")
    data_raw = data
    if opts.deconvolve != "fourier-ratio":
        through = None
    pca_info = None
    if pca:
        data, ref = _common_axis(e_an, data, shift)
        data, sv = pca_denoise(data, int(pca))
        shift_for_analysis = np.full(n, ref)
        pca_info = {"components": int(pca), "singular_values_normalised": [float(v) for v in sv[:20]],
                    "scaling": "Poisson (Keenan & Kotula 2004)",
                    "note": "spectra interpolated onto one axis with their own shifts first",
                    "errors": "l3_over_l2_stat_err, valence_esd and snr are those of the raw spectra "
                              "(an upper bound for the denoised values)"}
    else:
        shift_for_analysis = shift
    res = analyse_eels(e_an, data, shift_for_analysis, opts, through=None if pca else through)
    # shift_eV: E' - E_stored (at the first reference feature's energy with a two-point calibration)
    t_ref = next(iter(two_point.target_eV.values())) if two_point is not None else 0.0
    shift_out = shift if two_point is None else t_ref - (t_ref - shift) / gain
    res = replace(res, shift_eV=shift_out, t_over_lambda=t_over_lambda, energy_gain=gain,
                  energy_offset_eV=shift.copy())
    if opts.deconvolve == "fourier-ratio" and any(frd_flags):
        res = replace(res, flags=tuple((f + "; " if f else f"spectrum {i}: ") + g if g else f
                                       for i, (f, g) in enumerate(zip(res.flags, frd_flags))))
    if pca:
        # a rebuilt spectrum always looks clean (vacuum pixels get the mean edge): detection and
        # its flags come from the raw spectra, only the values from the denoised ones
        raw = analyse_eels(e_an, s if opts.deconvolve == "none" else data_raw, shift, opts, through=through)
        res = _mask_undetected(res, raw, opts)
        pca_info["raw_valence"] = _summary(raw.valence)
        pca_info["denoised_valence"] = _summary(res.valence)
    l3 = res.l3_eV[np.isfinite(res.l3_eV)]
    if len(l3):
        med = float(np.median(l3))
        if not MN_L3_EXPECTED_EV[0] <= med <= MN_L3_EXPECTED_EV[1]:
            msg = (f"after calibration the Mn L3 maximum lies at {med:.1f} eV (median), outside "
                   f"{MN_L3_EXPECTED_EV[0]:g}-{MN_L3_EXPECTED_EV[1]:g} eV where Mn oxides have it: the "
                   f"absolute energy scale is doubtful (L3/L2 and ΔE do not depend on it; MLLS does)")
            warnings.warn(msg, stacklevel=2)
            notes.append(msg)
    if opts.shift_calibration is None:
        notes.append(f"valence_shift is NaN: {MN_DE_STATUS}; delta_e_eV holds the measured ΔE")
    if not opts.references:
        notes.append("valence_mlls is NaN: no reference spectra given (--reference VALENCE=FILE)")
    if opts.calibration.status not in ("checked", "measured", "user-given"):
        notes.append(f"white-line calibration: {opts.calibration.status}")
    tl_edge = t_over_lambda[np.isfinite(res.l3_over_l2) & np.isfinite(t_over_lambda)]
    if opts.deconvolve == "none" and len(tl_edge) and np.median(tl_edge) > PLURAL_TL_WARN:
        msg = (f"median t/λ {np.median(tl_edge):.2f} of the spectra with an L3/L2 ratio: plural scattering "
               f"(plasmon replicas of the white lines under the post-edge continuum window, the loss "
               f"tail under L2) raises L3/L2; --deconvolve fourier-ratio removes it")
        warnings.warn(msg, stacklevel=2)
        notes.append(msg)
    o_pre = res.o_pre_edge_eV[np.isfinite(res.o_pre_edge_eV)]
    if len(o_pre):
        med = float(np.median(o_pre))
        if not O_PRE_EDGE_EXPECTED_EV[0] <= med <= O_PRE_EDGE_EXPECTED_EV[1]:
            msg = (f"after calibration the O-K pre-edge peak lies at {med:.1f} eV (median), outside "
                   f"{O_PRE_EDGE_EXPECTED_EV[0]:g}-{O_PRE_EDGE_EXPECTED_EV[1]:g} eV where transition-metal "
                   f"oxides have it: the absolute energy scale is off by about "
                   f"{np.mean(O_PRE_EDGE_EXPECTED_EV) - med:+.0f} eV (--align-edge O-K corrects it)")
            warnings.warn(msg, stacklevel=2)
            notes.append(msg)
    record = {"source": source, "n_spectra": n,
              "acquisition": {"core_loss": acquisition or {}, "low_loss": low_loss_acquisition or {}},
              "calibration": {**calib, "shift_eV_median": float(np.median(shift_out)),
                              "shift_eV_min": float(shift_out.min()), "shift_eV_max": float(shift_out.max()),
                              "energy_gain": gain,
                              "energy_offset_eV_median": float(np.median(shift)),
                              "axis": "E_calibrated = energy_gain * E_stored + energy_offset_eV (per "
                                      "spectrum, eels.csv)"
                                      + ("; shift_eV is E_calibrated - E_stored at the first reference "
                                         "feature's energy" if two_point is not None else "")},
              "methods": opts.as_dict(), "pca": pca_info,
              "windows_example": {"index": res.example.get("index"),
                                  "mn": res.example.get("windows"),
                                  "o": (res.example.get("o") or {}).get("windows")},
              "mn_search_eV": list(MN_SEARCH_EV),
              "noise_model_example": (res.example["noise"].as_dict() if res.example.get("noise")
                                      else None),
              "n_flagged": int(sum(bool(f) for f in res.flags)),
              "n_valence": int(np.isfinite(res.valence).sum()),
              "valence_weighted_mean": weighted_mean(res.valence, res.valence_esd),
              "warnings": notes}
    return res, record


def _pair_low_loss(core, low, low_energy, nav_shape, offset, notes):
    """Which low-loss spectrum belongs to each core-loss spectrum (see ``low_loss_offset``)."""
    n = len(core)
    if len(low) != n or not nav_shape or len(nav_shape) > 2:
        return np.zeros(n, int) if len(low) == 1 else np.arange(n), None
    from layerscope.spectra.plural import log_ratio_thickness, paired_index, register_navigation
    tl, _ = log_ratio_thickness(low_energy, low)
    shape = tuple(nav_shape) if len(nav_shape) == 2 else (1, n)
    if not np.all(np.isfinite(tl)):
        return np.arange(n), {"estimated_offset_px": None, "note": "t/λ not measurable in every pixel"}
    dy, dx, c, c0 = register_navigation(core.sum(axis=1).reshape(shape), tl.reshape(shape))
    reg = {"estimated_offset_px": [dy, dx], "correlation": c, "correlation_at_0": c0,
           "method": "normalised cross-correlation of the core-loss counts and the low-loss t/λ "
                     "maps; low-loss pixel (y+dy, x+dx) pairs with core-loss pixel (y, x)"}
    if offset is None:
        applied = (0, 0)
        if (dy, dx) != (0, 0):
            msg = (f"the low-loss map appears displaced by (dy, dx) = ({dy}, {dx}) pixels from the "
                   f"core-loss map (thickness correlation {c:.3f} against {c0:.3f} unshifted): pixels "
                   f"are paired by index as asked; low_loss_offset='auto' (--low-loss-offset auto) "
                   f"pairs the same places")
            warnings.warn(msg, stacklevel=3)
            notes.append(msg)
    elif isinstance(offset, str):
        if offset != "auto":
            raise InputError(f"low-loss offset {offset!r}: expected 'auto' or two integers DY DX")
        applied = (dy, dx)
    else:
        applied = tuple(int(v) for v in offset)
    idx, outside = paired_index(shape, *applied)
    reg["applied_offset_px"] = list(applied)
    reg["n_paired_at_border"] = int(outside.sum())
    return idx, reg


def _deconvolve_all(e, spectra, shift, low, low_energy, pair, opts):
    """Fourier-ratio deconvolution of each spectrum's L2,3 region; failures keep the raw spectrum.

    Also returns, per spectrum, the ``through`` callable of :func:`~layerscope.spectra.analysis.mn_edge`
    that carries the error propagation back to the raw spectrum (None where not deconvolved).
    """
    from layerscope.spectra.plural import deconvolve_edge_region
    out = np.array(spectra, float)
    flags = [""] * len(out)
    through = [None] * len(out)
    for i, y in enumerate(spectra):
        try:
            out[i], _ = deconvolve_edge_region(e + shift[i], y, low_energy + shift[i], low[pair[i]],
                                               background=opts.background != "none")
            through[i] = _raw_noise_path(e + shift[i], y, low_energy + shift[i], low[pair[i]], opts)
        except (ValueError, FloatingPointError) as exc:
            flags[i] = f"not deconvolved ({exc})"
    return out, flags, through


def _raw_noise_path(e, y, low_energy, low, opts):
    """``through`` for a deconvolved spectrum: the raw spectrum's noise model (estimated in the same
    window) and the sensitivities carried back through the deconvolution
    (:func:`~layerscope.spectra.plural.edge_region_adjoint`)."""
    from layerscope.spectra.plural import edge_region_adjoint
    from layerscope.spectra.uncertainty import estimate_noise
    use_bg = opts.background != "none"

    def through(window, vectors):
        noise = estimate_noise(e, y, window, proportional=use_bg)
        return noise, y, edge_region_adjoint(e, y, low_energy, low, vectors, background=use_bg)
    return through


def weighted_mean(values, esd) -> dict | None:
    """Inverse-variance mean of the reported values, its esd and chi²/dof of the values about it.

    chi²/dof near 1: the values scatter as their esds say (one valence within the noise); well above
    1: real differences between spectra (or esds too small).
    """
    v = np.asarray(values, float)
    s = np.asarray(esd, float) if esd is not None else np.full(v.shape, np.nan)
    ok = np.isfinite(v) & np.isfinite(s) & (s > 0)
    if ok.sum() < 2:
        return None
    w = 1.0 / s[ok] ** 2
    m = float(np.sum(w * v[ok]) / np.sum(w))
    chi2 = float(np.sum(w * (v[ok] - m) ** 2) / (ok.sum() - 1))
    return {"n": int(ok.sum()), "mean": m, "esd": float(1.0 / np.sqrt(np.sum(w))),
            "chi2_per_dof": chi2,
            "n_beyond_2_esd": int(np.sum(np.abs(v[ok] - m) > 2 * s[ok]))}


def _summary(v) -> dict:
    f = v[np.isfinite(v)]
    return {"n": int(len(f)), **({"min": float(f.min()), "median": float(np.median(f)),
                                  "max": float(f.max())} if len(f) else {})}


def _mask_undetected(res: EelsResult, raw: EelsResult, opts: EelsOptions) -> EelsResult:
    no_mn = np.array([("Mn L2,3" in f) or ("Mn L3/L2" in f and "too uncertain" in f) for f in raw.flags])
    no_o = ~np.isfinite(raw.o_pre_edge_ratio)
    arrays = {}
    for k in ("l3_over_l2", "valence", "delta_e_eV", "valence_shift", "valence_mlls", "l3_eV"):
        arrays[k] = np.where(no_mn, np.nan, getattr(res, k))
    for k in ("o_pre_edge_ratio", "o_pre_edge_eV"):
        arrays[k] = np.where(no_o, np.nan, getattr(res, k))
    arrays["other"] = {el: {k: np.where(np.isfinite(raw.other[el]["l3_over_l2"]), v, np.nan)
                            for k, v in d.items()} for el, d in res.other.items()}
    arrays["delta_e_eV"] = np.where(no_o, np.nan, arrays["delta_e_eV"])
    arrays["valence_shift"] = np.where(no_o, np.nan, arrays["valence_shift"])
    # keep the raw spectra's detection flags (no edge, not analysed, too uncertain), not their
    # out-of-range remarks: the values reported are the denoised ones, checked on their own
    keep = ("no ", "not analysed", "too uncertain", "another feature")
    def parts(text, i):
        return [x for x in text.removeprefix(f"spectrum {i}: ").split("; ") if x]

    merged = ([x for x in parts(r, i) if any(k in x for k in keep)] + parts(d, i)
              for i, (r, d) in enumerate(zip(raw.flags, res.flags)))
    flags = tuple(f"spectrum {i}: " + "; ".join(p) if p else "" for i, p in enumerate(merged))
    # the denoised values keep the raw spectra's statistical errors (an upper bound: PCA removes
    # part of the noise, by an amount that is not known per pixel)
    arrays["valence_esd"] = np.where(np.isfinite(arrays["valence"]), opts.calibration.valence_esd(
        arrays["l3_over_l2"], raw.l3_over_l2_stat_err), np.nan)
    return replace(res, snr=raw.snr, l3_over_l2_stat_err=raw.l3_over_l2_stat_err, flags=flags, **arrays)


def result_rows(res: EelsResult, position_nm=None) -> list[dict]:
    n = len(res.flags)
    pos = np.full(n, np.nan) if position_nm is None else np.asarray(position_nm, float)
    extra = [{f"{el.lower()}_{k}": v[i] for el, d in res.other.items() for k, v in d.items()
              if k != "snr"} for i in range(n)]
    return [{**extra[i], "index": i, "position_nm": pos[i], "l3_over_l2": res.l3_over_l2[i],
             "valence": res.valence[i], "o_pre_edge_ratio": res.o_pre_edge_ratio[i],
             "shift_eV": res.shift_eV[i], "flag": res.flags[i], "valence_shift": res.valence_shift[i],
             "valence_mlls": res.valence_mlls[i], "delta_e_eV": res.delta_e_eV[i],
             "l3_eV": res.l3_eV[i], "o_pre_edge_eV": res.o_pre_edge_eV[i], "snr": res.snr[i],
             "l3_over_l2_stat_err": res.l3_over_l2_stat_err[i],
             "valence_esd": (res.valence_esd[i] if res.valence_esd is not None else np.nan),
             "t_over_lambda": (res.t_over_lambda[i] if res.t_over_lambda is not None else np.nan),
             "energy_gain": res.energy_gain,
             "energy_offset_eV": (res.energy_offset_eV[i] if res.energy_offset_eV is not None
                                  else res.shift_eV[i])}
            for i in range(n)]


def write_eels_outputs(out, res: EelsResult, record: dict, *, position_nm=None, nav_shape=()) -> None:
    """``eels.csv`` (one row per spectrum), ``record.json`` and ``eels.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cols = COLUMNS + [f"{el.lower()}_{k}" for el in res.other for k in ("l3_over_l2", "l3_eV")]
    write_csv(out / "eels.csv", result_rows(res, position_nm), cols, fmt=".6g")
    write_text(out / "record.json", json.dumps({**record, "nav_shape": list(nav_shape)}, indent=1,
                                               default=_json_default))
    from layerscope.spectra._figure import eels_figure
    save_figure(eels_figure(res, position_nm), out / "eels.png", dpi=110)


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def analyse_signal(signal, *, low_loss=None, **kwargs) -> dict:
    """Analyse a HyperSpy ``Signal1D`` (and optional low-loss signal) in memory.

    Returns a dict of arrays shaped like the navigation data shape (``signal.data.shape[:-1]``):
    ``l3_over_l2``, ``valence``, ``valence_shift``, ``valence_mlls``, ``o_pre_edge_ratio``,
    ``valence_esd``, ``l3_over_l2_stat_err``,
    ``shift_eV``, ``flag`` and the ``record``; each map can be wrapped back into a HyperSpy signal
    with ``signal._deepcopy_with_new_data(...)`` or ``hs.signals.Signal2D(map)``.
    """
    from layerscope.spectra.io import from_signal
    spec = from_signal(signal)
    ll = from_signal(low_loss) if low_loss is not None else None
    res, record = eels_pipeline(spec.energy_eV, spec.counts, low_loss=None if ll is None else ll.counts,
                                low_loss_energy_eV=None if ll is None else ll.energy_eV,
                                acquisition=spec.meta.get("acquisition"),
                                low_loss_acquisition=None if ll is None else ll.meta.get("acquisition"),
                                nav_shape=tuple(spec.nav_shape), **kwargs)
    shape = spec.nav_shape or ()
    maps = {k: np.asarray(getattr(res, k)).reshape(shape) for k in
            ("l3_over_l2", "valence", "valence_shift", "valence_mlls", "o_pre_edge_ratio", "shift_eV",
             "valence_esd", "l3_over_l2_stat_err", "t_over_lambda")}
    maps["flag"] = np.array(res.flags, dtype=object).reshape(shape)
    maps["record"] = record
    return maps
