"""Synthetic EELS, XAS and EDS spectra with known edge ratios and line intensities.

* Mn L2,3 EELS: power-law background ``A·E^(−r)`` + the Pearson-style double
  arctangent continuum of :func:`layerscope.spectra.eels.double_step` + two
  Gaussian white lines whose areas have the requested ``L3/L2`` ratio.
* O-K EELS / XAS: a pre-edge Gaussian of known area below a main-edge peak
  and an edge step broadened by a Gaussian (an error function, which unlike an
  arctangent leaves no tail in the background and normalisation windows).
* EDS: Gaussian Kα/Kβ lines of known area (detector resolution law of
  :func:`layerscope.spectra.eds.fwhm_eV`) on a smooth bremsstrahlung.

Optional Poisson noise uses a seeded generator; the truths are exact for the
noise-free spectrum.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from layerscope.spectra.eds import K_LINES_KEV, fwhm_eV
from layerscope.spectra.eels import double_step


def _gauss(x, centre, sigma, area):
    return area * np.exp(-0.5 * ((x - centre) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


def mn_l23_eels(energy_eV=None, *, l3_over_l2=2.5, i_l2=3000.0, l3_eV=642.0, l2_eV=653.0,
                sigma_eV=1.0, continuum=800.0, continuum_slope_per_eV=-2.0, step_width_eV=1.0,
                bg_a=4.0e12, bg_r=3.0, noise=False, seed=0):
    """Mn L2,3 core-loss spectrum with a known white-line ratio.

    Parameters
    ----------
    energy_eV : array, optional
        Energy axis (eV); default 590-700 eV in 0.2 eV steps.
    l3_over_l2 : float
        White-line area ratio L3/L2.
    i_l2 : float
        L2 white-line area (counts·eV).
    l3_eV, l2_eV : float
        White-line energies (eV).
    sigma_eV : float
        Gaussian width of the white lines (eV).
    continuum, continuum_slope_per_eV : float
        Height (counts) of the double-step continuum at L2 and its slope (counts/eV).
    step_width_eV : float
        Width of the arctangent steps (eV).
    bg_a, bg_r : float
        Power-law background A·E^(−r) (E in eV).
    noise : bool
        Draw Poisson counts (the truths stay those of the noise-free spectrum).
    seed : int
        Seed of the noise.

    Returns
    -------
    energy_eV, counts : ndarray
        The energy axis (eV) and the counts.
    truth : dict
        ``l3_over_l2``, ``i_l3``, ``i_l2`` (areas, counts·eV), ``l3_eV``, ``l2_eV``.

    Examples
    --------
    >>> e, y, truth = mn_l23_eels(l3_over_l2=2.8)
    >>> truth["l3_over_l2"]
    2.8
    """
    e = np.arange(590.0, 700.0, 0.2) if energy_eV is None else np.asarray(energy_eV, float)
    h = continuum + continuum_slope_per_eV * (e - l2_eV)
    y = (bg_a * e ** (-bg_r) + double_step(e, l3_eV, l2_eV, h, width_eV=step_width_eV)
         + _gauss(e, l3_eV, sigma_eV, l3_over_l2 * i_l2) + _gauss(e, l2_eV, sigma_eV, i_l2))
    if noise:
        y = np.random.default_rng(seed).poisson(y).astype(float)
    truth = {"l3_over_l2": l3_over_l2, "i_l3": l3_over_l2 * i_l2, "i_l2": i_l2,
             "l3_eV": l3_eV, "l2_eV": l2_eV}
    return e, y, truth


def o_k_eels(energy_eV=None, *, pre_edge_area=400.0, pre_edge_eV=530.0, main_area=3000.0,
             main_eV=540.0, step=150.0, bg_a=2.0e12, bg_r=3.0, noise=False, seed=0):
    """O-K core-loss spectrum with a pre-edge peak of known area (counts·eV).

    Parameters
    ----------
    energy_eV : array, optional
        Energy axis (eV); default 480-580 eV in 0.2 eV steps.
    pre_edge_area, main_area : float
        Areas of the pre-edge and main-edge Gaussians (counts·eV).
    pre_edge_eV, main_eV : float
        Their centres (eV).
    step : float
        Height of the edge step (counts; an error function at 535 eV).
    bg_a, bg_r : float
        Power-law background A·E^(−r) (E in eV).
    noise : bool
        Draw Poisson counts (the truths stay those of the noise-free spectrum).
    seed : int
        Seed of the noise.

    Returns
    -------
    energy_eV, counts : ndarray
        The energy axis (eV) and the counts.
    truth : dict
        ``pre_edge_area``, ``main_area`` and the background-free integrals over the default
        pre-edge (527-533 eV) and main-edge (533-545 eV) windows (counts·eV).
    """
    e = np.arange(480.0, 580.0, 0.2) if energy_eV is None else np.asarray(energy_eV, float)
    def edge(x):
        return (step * 0.5 * (1.0 + erf((x - 535.0) / (np.sqrt(2.0) * 1.0)))
                + _gauss(x, pre_edge_eV, 0.8, pre_edge_area) + _gauss(x, main_eV, 2.5, main_area))

    y = bg_a * e ** (-bg_r) + edge(e)
    if noise:
        y = np.random.default_rng(seed).poisson(y).astype(float)
    # Exact window integrals of the edge (background-free) part, for the default windows.
    fine = np.linspace(527.0, 533.0, 60001)
    main = np.linspace(533.0, 545.0, 120001)
    return e, y, {"pre_edge_area": pre_edge_area, "main_area": main_area,
                  "pre_edge_integral": float(np.trapezoid(edge(fine), fine)),
                  "main_edge_integral": float(np.trapezoid(edge(main), main))}


def o_k_xas(energy_eV=None, *, peak_areas=(1.2, 0.4, 2.0), peak_eV=(529.5, 531.5, 533.5),
            edge_eV=537.0, slope_pre=0.002, offset=0.3, scale=5.0):
    """O-K absorption spectrum: pre-edge line + ``scale``·(peaks + unit erf edge step).

    The normalised spectrum is ``Σ Gaussians + arctan step`` of unit height, so
    the truth for the 525–535 eV integral is computed from it exactly.
    """
    e = np.arange(510.0, 560.0, 0.05) if energy_eV is None else np.asarray(energy_eV, float)
    norm = sum(_gauss(e, c, 0.6, a) for c, a in zip(peak_eV, peak_areas))
    norm = norm + 0.5 * (1.0 + erf((e - edge_eV) / (np.sqrt(2.0) * 0.5)))
    mu = offset + slope_pre * (e - 510.0) + scale * norm
    return e, mu, {"normalised": norm}


def eds_spectrum(energy_keV=None, *, areas=None, fwhm_mnka_eV=130.0, kbeta_fraction=0.13,
                 bremsstrahlung=200.0, noise=False, seed=0):
    """EDS spectrum of K lines with known Kα areas (counts) on a smooth background.

    ``areas`` maps element -> Kα area; the Kβ area is ``kbeta_fraction`` of it.

    Parameters
    ----------
    energy_keV : array, optional
        Energy axis (keV); default 0-10 keV in 10 eV steps.
    areas : dict of str to float, optional
        Kα area (counts) per element (default Mn 5e4, Co 1.2e4, Ni 1.2e4).
    fwhm_mnka_eV : float
        Detector resolution at Mn Kα (eV).
    kbeta_fraction : float
        Kβ area as a fraction of Kα.
    bremsstrahlung : float
        Background level (counts per channel).
    noise : bool
        Draw Poisson counts (the truths stay those of the noise-free spectrum).
    seed : int
        Seed of the noise.

    Returns
    -------
    energy_keV, counts : ndarray
        The energy axis (keV) and the counts per channel.
    truth : dict
        ``kalpha``: the Kα areas by element.
    """
    areas = {"Mn": 5.0e4, "Co": 1.2e4, "Ni": 1.2e4} if areas is None else areas
    e = np.arange(0.0, 10.0, 0.01) if energy_keV is None else np.asarray(energy_keV, float)
    de = float(np.median(np.diff(e)))
    y = bremsstrahlung * (1.0 + 0.3 * (e - 7.0) / 3.0 - 0.05 * ((e - 7.0) / 3.0) ** 2)
    for el, area in areas.items():
        for centre, a in zip(K_LINES_KEV[el], (area, kbeta_fraction * area)):
            sig = 1e-3 * fwhm_eV(1e3 * centre, fwhm_mnka_eV) / (2 * np.sqrt(2 * np.log(2)))
            y = y + _gauss(e, centre, sig, a) * de
    if noise:
        y = np.random.default_rng(seed).poisson(y).astype(float)
    return e, y, {"kalpha": dict(areas)}


def zero_loss_peak(energy_eV=None, *, centre_eV=0.0, fwhm_eV=1.0, area=1.0e6, plasmon_eV=22.0,
                   noise=False, seed=0):
    """Low-loss spectrum: a Gaussian zero-loss peak at ``centre_eV`` plus a weak broad plasmon.

    A stored axis whose zero-loss peak sits at ``centre_eV`` is off by ``centre_eV``: the
    core-loss edges of the same acquisition appear ``centre_eV`` above their true energies.

    Parameters
    ----------
    energy_eV : array, optional
        Energy axis (eV); default −20-80 eV in 0.1 eV steps.
    centre_eV : float
        Position of the zero-loss peak on the stored axis (eV).
    fwhm_eV : float
        Its full width at half maximum (eV).
    area : float
        Its area (counts·eV); the plasmon has 0.3 of it.
    plasmon_eV : float
        Plasmon energy above the zero-loss peak (eV).
    noise : bool
        Draw Poisson counts (the truths stay those of the noise-free spectrum).
    seed : int
        Seed of the noise.

    Returns
    -------
    energy_eV, counts : ndarray
        The energy axis (eV) and the counts.
    truth : dict
        ``zlp_eV``: the zero-loss position (eV).
    """
    e = np.arange(-20.0, 80.0, 0.1) if energy_eV is None else np.asarray(energy_eV, float)
    sigma = fwhm_eV / (2 * np.sqrt(2 * np.log(2)))
    y = _gauss(e, centre_eV, sigma, area) + _gauss(e, centre_eV + plasmon_eV, 5.0, 0.3 * area) + 1.0
    if noise:
        y = np.random.default_rng(seed).poisson(y).astype(float)
    return e, y, {"zlp_eV": centre_eV}


def mn_o_eels(energy_eV=None, *, offset_eV=0.0, l3_over_l2=2.5, mn=True, l3_eV=642.0,
              l2_eV=653.0, noise=False, seed=0, scale=1.0):
    """Core-loss spectrum with an O-K edge (pre-edge at 530 eV) and, if ``mn``, Mn L2,3.

    All edges are placed ``offset_eV`` above their true energies (a miscalibrated axis).
    """
    e = np.arange(470.0, 720.0, 0.25) if energy_eV is None else np.asarray(energy_eV, float)
    _, o, _ = o_k_eels(e - offset_eV, bg_a=2.0e12 * scale, pre_edge_area=400.0 * scale,
                       main_area=3000.0 * scale, step=150.0 * scale)
    y = o
    truth = {"offset_eV": offset_eV, "l3_over_l2": l3_over_l2 if mn else None}
    if mn:
        _, m, t = mn_l23_eels(e - offset_eV, l3_over_l2=l3_over_l2, l3_eV=l3_eV, l2_eV=l2_eV,
                              bg_a=0.0, i_l2=3000.0 * scale, continuum=800.0 * scale,
                              continuum_slope_per_eV=-2.0 * scale)
        y = y + m
        truth.update(t)
    if noise:
        y = np.random.default_rng(seed).poisson(np.clip(y, 0, None)).astype(float)
    return e, y, truth
