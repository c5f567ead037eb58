"""Imaging a scene: incoherent Z-contrast columns, probe, scan distortions and detector noise.

The image is an incoherent Z-contrast image: every atomic column contributes a
2D Gaussian whose integrated intensity is proportional to
``sum(occupancy * Z**1.7)`` of the atoms in it (the Rutherford-like power law of
HAADF contrast, Pennycook & Jesson 1991; exponent 1.7 after Hartel et al. 1996).
Transition-metal (TM) columns are bright, oxygen columns faint, lithium
columns practically invisible. The probe is a Gaussian core plus an optional
broad tail; the detector adds Poisson (shot) noise and Gaussian read noise; the
scan adds linear drift (a shear of the raster) and optional line jitter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from layerscope.simulate.haadf.structures import VARIANT_NAMES, HAADFScene, ideal_m_over_n, twin_scene

@dataclass(frozen=True)
class HAADFSimulation:
    """A simulated image and its truth.

    Attributes
    ----------
    image : (ny, nx) float64 array
        Detector counts (Poisson + read noise), or the noiseless expectation.
    pixel_size_nm : float
    columns_px : (N, 2) array
        True column centres (x, y) in pixels, in the recorded (drifted) frame.
    sublattice, variant, layer, weights : (N,) arrays
        Truth labels per column (sublattice 0 TM, 1 O, 2 Li; variant index
        into ``VARIANT_NAMES``).
    variant_map : (ny, nx) int array
        Variant region of every pixel.
    pore_mask : (ny, nx) bool array
        Pixels inside pores/trenches.
    sigma_px : float
        Gaussian width of one column image (probe and thermal smearing).
    expected : (ny, nx) array
        Noiseless expected counts.
    metadata : dict
        Parameters used.
    """

    image: np.ndarray
    pixel_size_nm: float
    columns_px: np.ndarray
    sublattice: np.ndarray
    variant: np.ndarray
    layer: np.ndarray
    weights: np.ndarray
    variant_map: np.ndarray
    pore_mask: np.ndarray
    sigma_px: float
    expected: np.ndarray
    metadata: dict = field(default_factory=dict)


def render_haadf(
    positions_px: np.ndarray, weights: np.ndarray, shape: tuple[int, int], sigma_px: float
) -> np.ndarray:
    """Sum of unit-peak-height Gaussian columns sampled at pixel centres.

    Column ``j`` contributes ``weights[j] * exp(-|r - r_j|^2 / (2 sigma^2))``
    (so the integrated intensity is ``2 pi sigma^2 weights[j]``); pixel (iy, ix)
    has its centre at x = ix, y = iy.
    """
    ny, nx = shape
    r = int(np.ceil(5 * sigma_px))
    off = np.arange(-r, r + 1)
    cx = np.rint(positions_px[:, 0]).astype(int)
    cy = np.rint(positions_px[:, 1]).astype(int)
    X = cx[:, None, None] + off[None, None, :]
    Y = cy[:, None, None] + off[None, :, None]
    g = np.exp(
        -((X - positions_px[:, 0, None, None]) ** 2 + (Y - positions_px[:, 1, None, None]) ** 2)
        / (2 * sigma_px**2)
    ) * weights[:, None, None]
    X, Y = np.broadcast_to(X, g.shape), np.broadcast_to(Y, g.shape)
    ok = (X >= 0) & (X < nx) & (Y >= 0) & (Y < ny)
    flat = (Y[ok] * nx + X[ok]).astype(np.int64)
    return np.bincount(flat, weights=g[ok], minlength=nx * ny).reshape(ny, nx)


def simulate_haadf(
    scene: HAADFScene | None = None,
    *,
    pixel_size_nm: float = 0.015,
    shape: tuple[int, int] | None = None,
    probe_sigma_nm: float = 0.035,
    probe_tail_fraction: float = 0.05,
    probe_tail_sigma_nm: float = 0.3,
    dose_e_per_A2: float = 4.0e4,
    haadf_fraction: float = 0.05,
    background_fraction: float = 0.004,
    read_noise_counts: float = 2.0,
    drift_px_per_line: tuple[float, float] = (0.0, 0.0),
    line_jitter_px: float = 0.0,
    rotation_deg: float = 0.0,
    noise: bool = True,
    seed: int | None = 0,
) -> HAADFSimulation:
    """Simulate a HAADF-STEM image of ``scene`` with its ground truth.

    Parameters
    ----------
    scene : HAADFScene, optional
        Columns in Å; default :func:`twin_scene` filling the field of view.
    pixel_size_nm : float
        Sampling (0.015 nm = 0.15 Å: typical for atomic-resolution frames).
    shape : (ny, nx), optional
        Image size; default from the scene extent.
    probe_sigma_nm : float
        Gaussian width of a column image (probe ⊗ thermal smearing); 0.035 nm
        is a ~0.8 Å FWHM column, as for a Cs-corrected 200 kV probe.
    probe_tail_fraction, probe_tail_sigma_nm : float
        Fraction of the intensity in the probe's broad tail, and its width.
    dose_e_per_A2 : float
        Electron dose; ``dose * pixel_area`` electrons hit each pixel.
    haadf_fraction : float
        Fraction of the incident electrons that a TM column scatters onto the
        detector at its peak; other columns scale by their Z**1.7 weight.
    background_fraction : float
        Fraction scattered onto the detector everywhere (amorphous layer).
    read_noise_counts : float
        Gaussian read noise (σ, counts).
    drift_px_per_line : (dx, dy)
        Linear specimen drift per scan line (a shear of the recorded image);
        the truth positions include it, since it is in the recorded frame.
    line_jitter_px : float
        σ of a random horizontal offset per scan line (flyback noise).
    rotation_deg : float
        Rotation of the lattice in the image (about the image centre).
    noise : bool
        If False, return the expected counts.
    seed : int or None
        Seed of the NumPy random generator.

    Returns
    -------
    HAADFSimulation
        The image (counts), its pixel size (nm) and the truth: column centres (px), sublattice,
        variant and layer labels, the variant and pore maps.
    """
    if scene is None:
        px_A = pixel_size_nm * 10
        scene = twin_scene((384 * px_A, 384 * px_A))
    px_A = pixel_size_nm * 10.0
    W, H = scene.extent_angstrom
    if shape is None:
        shape = (int(round(H / px_A)), int(round(W / px_A)))
    ny, nx = shape
    rng = np.random.default_rng(seed)
    pos = scene.positions_angstrom / px_A
    centre = np.array([(nx - 1) / 2, (ny - 1) / 2])
    th = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    pos = (pos - centre) @ rot.T + centre
    # Linear drift: the probe reaches row y at time ∝ y, so a column at row y
    # is recorded displaced by y * drift.
    drift = np.asarray(drift_px_per_line, float)
    pos = pos + pos[:, 1:2] * drift[None, :]
    sigma_px = probe_sigma_nm / pixel_size_nm
    core = render_haadf(pos, scene.weights, shape, sigma_px)
    if line_jitter_px > 0:
        from scipy.ndimage import shift as nd_shift

        jit = rng.normal(0.0, line_jitter_px, ny)
        core = np.stack([nd_shift(core[i], jit[i], order=1, mode="nearest") for i in range(ny)])
    if probe_tail_fraction > 0:
        from scipy.ndimage import gaussian_filter

        tail = gaussian_filter(core, probe_tail_sigma_nm / pixel_size_nm, mode="reflect")
        core = (1 - probe_tail_fraction) * core + probe_tail_fraction * tail
    electrons_per_px = dose_e_per_A2 * px_A**2
    expected = electrons_per_px * (haadf_fraction * core + background_fraction)
    if noise:
        image = rng.poisson(expected).astype(np.float64)
        image += rng.normal(0.0, read_noise_counts, image.shape)
    else:
        image = expected.copy()
    # Truth maps on the pixel grid (undo rotation/drift to find the scene point).
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
    pts = pts - pts[:, 1:2] * drift[None, :] / (1 + drift[1])
    pts = (pts - centre) @ rot + centre
    u, w = pts[:, 0] * px_A, pts[:, 1] * px_A
    vmap = np.asarray(scene.region_fn(u, w)).reshape(ny, nx)
    pmask = (
        np.asarray(scene.pore_mask_fn(u, w)).reshape(ny, nx)
        if scene.pore_mask_fn is not None
        else np.zeros((ny, nx), bool)
    )
    meta = dict(
        pixel_size_nm=pixel_size_nm, probe_sigma_nm=probe_sigma_nm,
        probe_tail_fraction=probe_tail_fraction, probe_tail_sigma_nm=probe_tail_sigma_nm,
        dose_e_per_A2=dose_e_per_A2, haadf_fraction=haadf_fraction,
        background_fraction=background_fraction, read_noise_counts=read_noise_counts,
        drift_px_per_line=tuple(drift), line_jitter_px=line_jitter_px,
        rotation_deg=rotation_deg, seed=seed,
        m_over_n={VARIANT_NAMES[i]: ideal_m_over_n(m) for i, m in enumerate(scene.motifs)},
    )
    return HAADFSimulation(
        image, pixel_size_nm, pos, scene.sublattice, scene.variant, scene.layer,
        scene.weights, vmap, pmask, sigma_px, expected, meta,
    )
