"""Plural scattering: relative thickness t/λ from the low-loss, Fourier-ratio deconvolution of edges.

* :func:`log_ratio_thickness` — ``t/λ = ln(I_t / I_0)`` (log-ratio method; Malis, Cheng & Egerton,
  J. Electron Microsc. Tech. 8, 193, 1988; Egerton, *Electron Energy-Loss Spectroscopy in the
  Electron Microscope*, 3rd ed., 2011, §5.1): ``I_t`` the whole low-loss spectrum, ``I_0`` the
  zero-loss peak up to the first minimum after it (the elastic-scattering threshold, found on the
  spectrum smoothed over 0.6 eV). Valid only when the low-loss spectrum reaches far enough
  (≳ 5 plasmon energies) and the zero-loss peak is not saturated.
* :func:`fourier_ratio_deconvolve` — the single-scattering core-loss edge from a
  background-subtracted edge ``J`` and the low-loss spectrum ``L`` of the same place (Fourier-ratio
  method, Egerton 2011 §4.3.2, as in Gatan's DigitalMicrograph and exSpy):
  ``K = F⁻¹[ F(J) · F(R) / F(L) ]``, with ``R`` a Gaussian of the zero-loss peak's width and area
  ``I_0`` placed where the zero-loss peak lies in ``L`` (its phase cancels that of ``L``, so the
  energy axis of ``J`` is kept). Both ends of ``J`` and ``L`` are tapered to zero (cosine, over
  ``taper_eV``) and the arrays zero-padded to a power of two ≥ ``len(J) + len(L)``, so the
  circular convolution does not wrap around. ``J`` and ``L`` must share the dispersion.

Fourier-ratio deconvolution removes the plasmon replicas of the white lines (at +Ep ≈ 20-25 eV,
under the post-edge continuum window) and the low-energy tail of the loss function under L2. It
amplifies the noise at high frequencies only up to the width of ``R``; use it where t/λ ≳ 0.3.

Written by hand with numpy's FFT: exSpy's ``fourier_ratio_deconvolution`` works only on its own
signal objects and is GPL (it is used as the independent check in the tests); no permissive
library in the dependency set offers it as an array function.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from layerscope.spectra.calibrate import zlp_position


def elastic_threshold(energy_eV, low_loss) -> float:
    """Energy (eV) of the first minimum after the zero-loss peak (spectrum smoothed over 0.6 eV)."""
    e = np.asarray(energy_eV, float)
    y = np.asarray(low_loss, float)
    de = float(np.median(np.diff(e)))
    ys = gaussian_filter1d(y, max(0.6 / de, 0.5))
    k = int(np.argmax(ys))
    d = np.diff(ys[k:])
    up = np.flatnonzero(d >= 0)
    if not len(up):
        raise ValueError("no minimum after the zero-loss peak (the spectrum only falls)")
    return float(e[k + up[0]])


def log_ratio_thickness(energy_eV, low_loss) -> tuple[np.ndarray, np.ndarray]:
    """``t/λ`` and the elastic threshold (eV) of each low-loss spectrum (rows of ``low_loss``)."""
    e = np.asarray(energy_eV, float)
    s = np.atleast_2d(np.asarray(low_loss, float))
    tl = np.full(len(s), np.nan)
    thr = np.full(len(s), np.nan)
    for i, y in enumerate(s):
        try:
            thr[i] = elastic_threshold(e, y)
        except ValueError:
            continue
        i0 = y[e < thr[i]].sum()
        it = y.sum()
        if i0 > 0 and it >= i0:
            tl[i] = np.log(it / i0)
    return tl, thr


def _taper(y, n_taper: int):
    """Cosine taper to zero over the last ``n_taper`` channels."""
    y = np.array(y, float)
    n = min(int(n_taper), len(y) // 2)
    if n > 1:
        y[-n:] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, n)))
    return y


def zlp_width(energy_eV, low_loss) -> float:
    """Full width at half maximum (eV) of the zero-loss peak, interpolated between channels."""
    e = np.asarray(energy_eV, float)
    y = np.asarray(low_loss, float)
    k = int(np.argmax(y))
    half = y[k] / 2
    lo = k
    while lo > 0 and y[lo] > half:
        lo -= 1
    hi = k
    while hi < len(y) - 1 and y[hi] > half:
        hi += 1
    if y[lo] > half or y[hi] > half:
        raise ValueError("zero-loss peak not resolved (half maximum not reached on both sides)")
    left = np.interp(half, [y[lo], y[lo + 1]], [e[lo], e[lo + 1]])
    right = np.interp(half, [y[hi], y[hi - 1]], [e[hi], e[hi - 1]])
    return float(right - left)


def fourier_ratio_deconvolve(core_energy_eV, edge, low_energy_eV, low_loss, *, fwhm_eV=None,
                             taper_eV: float = 10.0) -> np.ndarray:
    """Single-scattering version of the background-subtracted edge ``edge`` (same axis).

    ``low_loss`` (on ``low_energy_eV``, same dispersion) is the low-loss spectrum of the same
    place; ``fwhm_eV`` the width of the reconvolution Gaussian (default: the zero-loss peak's).
    The reconvolution Gaussian has the area ``I_t`` of the whole low-loss spectrum (not ``I_0``),
    so the result keeps the integral of ``edge``: the electrons of the plural-scattering replicas
    are put back under the single-scattering edge, and the counts stay comparable with the
    background (its noise level, its SNR).
    Raises ValueError for different dispersions or a low-loss without a zero-loss peak.
    """
    j = np.asarray(edge, float)
    taper, n, h = _fr_operator(core_energy_eV, len(j), low_energy_eV, low_loss, fwhm_eV, taper_eV)
    return np.fft.irfft(np.fft.rfft(taper * j, n) * h, n)[:len(j)]


def _fr_operator(core_energy_eV, n_core, low_energy_eV, low_loss, fwhm_eV, taper_eV):
    """The linear map of :func:`fourier_ratio_deconvolve`: ``K = irfft(rfft(taper · J, n) · H)[:len(J)]``."""
    ec = np.asarray(core_energy_eV, float)
    el = np.asarray(low_energy_eV, float)
    low = np.asarray(low_loss, float)
    dc, dl = float(np.median(np.diff(ec))), float(np.median(np.diff(el)))
    if abs(dc - dl) > 1e-4 * dc:
        raise ValueError(f"core-loss ({dc:g} eV/ch) and low-loss ({dl:g} eV/ch) dispersions differ: "
                         f"resample one of them before Fourier-ratio deconvolution")
    e0 = zlp_position(el, low)
    w = zlp_width(el, low) if fwhm_eV is None else float(fwhm_eV)
    n_t = int(round(taper_eV / dc))
    taper = _taper(np.ones(n_core), n_t)
    lt = _taper(low, n_t)
    n = int(2 ** np.ceil(np.log2(n_core + len(lt))))
    x = (np.arange(n) - (e0 - el[0]) / dl)            # channels from the zero-loss centre
    x = (x + n / 2) % n - n / 2                        # wrapped: the Gaussian is whole
    sig = w / (2 * np.sqrt(2 * np.log(2))) / dl
    r = np.exp(-0.5 * (x / sig) ** 2)
    r *= float(low.sum()) / r.sum()
    return taper, n, np.fft.rfft(r, n) / np.fft.rfft(lt, n)


def deconvolve_edge_region(energy_eV, counts, low_energy_eV, low_loss, *, edge: str = "Mn",
                           background: bool = True, fwhm_eV=None) -> tuple[np.ndarray, dict]:
    """``counts`` with everything from the background window of ``edge`` (an L2,3 edge, located as
    in :func:`layerscope.spectra.analysis.mn_edge`) upwards replaced by background + the
    Fourier-ratio-deconvolved edge(s); below that window the spectrum is left as it is (the O-K
    edge of an oxide is not deconvolved). Both axes must be calibrated (zero-loss at 0 eV).

    Returns the new counts and what was done (window, t/λ of the low-loss).
    """
    from layerscope.spectra.analysis import MN_WINDOWS, _edge_setup
    from layerscope.spectra.calibrate import edge_feature
    from layerscope.spectra.eels import fit_power_law

    e = np.asarray(energy_eV, float)
    y = np.asarray(counts, float)
    (lo, hi), _, _ = _edge_setup(edge)
    m3 = edge_feature(e, y, f"{edge}-L3", search_eV=(lo, hi), background=background)
    # the background window of the analysis, 2 eV lower (the half-rise lies below the maximum)
    ws = (m3 + MN_WINDOWS["background"][0] - 4.0, m3 + MN_WINDOWS["background"][1] - 2.0)
    bg = fit_power_law(e, y, ws)(e) if background else np.zeros_like(y)
    above = e >= ws[0]
    net = np.where(above, y - bg, 0.0)
    k = fourier_ratio_deconvolve(e, net, low_energy_eV, low_loss, fwhm_eV=fwhm_eV)
    tl, thr = log_ratio_thickness(low_energy_eV, low_loss)
    return np.where(above, bg + k, y), {"from_eV": float(ws[0]), "background_eV": [float(ws[0]), float(ws[1])],
                                        "t_over_lambda": float(tl[0])}


def edge_region_adjoint(energy_eV, counts, low_energy_eV, low_loss, vectors, *, edge: str = "Mn",
                        background: bool = True, fwhm_eV=None) -> np.ndarray:
    """``vectors`` (rows: d quantity / d deconvolved channel) carried back through
    :func:`deconvolve_edge_region` to d quantity / d raw channel (the transposed Jacobian).

    The map is ``z = y`` below the window and ``bg(y) + C·[above · (y − bg(y))]`` from it up, with
    ``C`` the Fourier-ratio convolution (:func:`_fr_operator`) and ``bg`` the power law fitted to
    ``y``; its transpose applied to ``a`` is ``a·(1 − above) + q + Bᵀ(a·above − q)``,
    ``q = above · Cᵀ(a · above)`` (``Cᵀ``: the correlation with the same kernel, ``conj(H)``) and
    ``Bᵀ`` the transposed Jacobian of the power-law fit. With these vectors the noise of the raw
    spectrum, whose channels are (nearly) independent, gives the variance of a quantity of the
    deconvolved spectrum, whose channels are correlated over a plasmon energy and more.
    """
    from layerscope.spectra.analysis import MN_WINDOWS, _edge_setup
    from layerscope.spectra.calibrate import edge_feature

    e = np.asarray(energy_eV, float)
    y = np.asarray(counts, float)
    (lo, hi), _, _ = _edge_setup(edge)
    m3 = edge_feature(e, y, f"{edge}-L3", search_eV=(lo, hi), background=background)
    ws = (m3 + MN_WINDOWS["background"][0] - 4.0, m3 + MN_WINDOWS["background"][1] - 2.0)
    above = (e >= ws[0]).astype(float)
    taper, n, h = _fr_operator(e, len(e), low_energy_eV, low_loss, fwhm_eV, 10.0)
    out = []
    for a in np.atleast_2d(np.asarray(vectors, float)):
        u = a * above
        q = above * taper * np.fft.irfft(np.fft.rfft(u, n) * np.conj(h), n)[:len(e)]
        w = u - q
        res = a * (1.0 - above) + q
        if background:
            b = (e >= ws[0]) & (e <= ws[1])
            x = np.column_stack([np.ones(b.sum()), np.log(e[b])])
            slope, icpt = np.polyfit(np.log(e[b]), np.log(y[b]), 1)
            bg = np.exp(icpt) * e ** slope
            lmat = np.column_stack([np.ones(len(e)), np.log(e)])
            res[b] += ((w * bg) @ lmat) @ np.linalg.pinv(x) / y[b]     # Bᵀ w
        out.append(res)
    return np.array(out)


def register_navigation(core_map, low_map, *, max_shift: int = 3, min_overlap: float = 0.75):
    """Integer navigation offset ``(dy, dx)`` such that ``low_map[y + dy, x + dx]`` lies on
    ``core_map[y, x]`` (normalised cross-correlation of two thickness proxies, e.g. the core-loss
    counts and the low-loss inelastic counts: both grow with the thickness). Returns
    ``(dy, dx, correlation at that offset, correlation at (0, 0))``.
    """
    a = np.asarray(core_map, float)
    b = np.asarray(low_map, float)
    if a.ndim == 1:
        a, b = a[None, :], b[None, :]
    ny, nx = a.shape
    best = (0, 0, -np.inf)
    c00 = np.nan
    for dy in range(-min(max_shift, ny - 1), min(max_shift, ny - 1) + 1):
        for dx in range(-min(max_shift, nx - 1), min(max_shift, nx - 1) + 1):
            ya, yb = slice(max(0, -dy), ny - max(0, dy)), slice(max(0, dy), ny - max(0, -dy))
            xa, xb = slice(max(0, -dx), nx - max(0, dx)), slice(max(0, dx), nx - max(0, -dx))
            pa, pb = a[ya, xa].ravel(), b[yb, xb].ravel()
            if len(pa) < max(3, min_overlap * a.size) or pa.std() == 0 or pb.std() == 0:
                continue
            c = float(np.corrcoef(pa, pb)[0, 1])
            if dy == 0 and dx == 0:
                c00 = c
            if c > best[2] + 1e-9 or (abs(c - best[2]) <= 1e-9 and abs(dy) + abs(dx) < abs(best[0]) + abs(best[1])):
                best = (dy, dx, c)
    return best[0], best[1], best[2], c00


def paired_index(nav_shape, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat index of the low-loss pixel paired with each core-loss pixel for offset ``(dy, dx)``
    (clipped at the borders) and a mask of the pixels whose partner lies outside the scan."""
    shape = tuple(nav_shape) if len(nav_shape) == 2 else (1, int(np.prod(nav_shape)))
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    ty, tx = yy + dy, xx + dx
    outside = (ty < 0) | (ty >= shape[0]) | (tx < 0) | (tx >= shape[1])
    idx = np.clip(ty, 0, shape[0] - 1) * shape[1] + np.clip(tx, 0, shape[1] - 1)
    return idx.ravel(), outside.ravel()
