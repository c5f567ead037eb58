"""Simulated 4D-STEM scans of an LRM particle with ground truth (paper Fig. 1b, Fig. 3, Supp. Fig. 11/16).

The particle is an ellipse in the scan plane: an O3' core (C2/m) made of the
A/B/C structural domains of Fig. 1e — the same layer stacking seen along [110],
[-100] and [1-10], i.e. variants related by 120° about c* — wrapped in a spinel
shell 2–5 nm thick (``[110]_S ∥ [010]_O3'``, ``(1-11)_S ∥ (001)_O3'``, Supp.
Fig. 1), lying on amorphous carbon, surrounded by vacuum. Optionally the core is
cycled O3 seen along ⟨100⟩ with lamellae of the (001) twin of Supp. Fig. 18
(Fig. 3c: mirror-related patterns).

Each probe position records the precession-averaged kinematic pattern of the
phase at the probe centre (``layerscope.diffraction.electron``), rendered with
discs of the convergence angle on the paper's detector (200 kV, 1.5 mrad,
124.5 mrad over 128 px), scaled by the projected thickness, plus the direct
beam, with Poisson noise for the electron dose (200 pA × 3 ms ≈ 3.7·10⁶ e⁻).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerscope.crystal import preset_phase
from layerscope.diffraction import electron as el
from layerscope.fourd.detector import DetectorGeometry, paper_detector, render_rings, render_spots
from layerscope.fourd.library import amorphous_carbon_rings

__all__ = ["FourDSimulation", "simulate_fourd", "write_fourd_simulation", "PHASE_CODES"]

#: phase codes of the truth maps (same order as :attr:`layerscope.fourd.index.Matcher.phase_names`
#: for a library of (core phase, spinel))
PHASE_CODES = ("vacuum", "aC", "core", "S")


@dataclass(frozen=True)
class FourDSimulation:
    """A simulated scan and its truth.

    data : (ny, nx, ky, kx) float32 counts
    phase : (ny, nx) int codes into ``phase_names``
    rotation : (ny, nx, 3, 3) crystal → lab orientation (identity where not crystalline)
    twin : (ny, nx) int, 1 inside twin lamellae, 0 parent, −1 not the core phase
    domain : (ny, nx) int, O3' domain 0/1/2 (A/B/C), −1 elsewhere
    """

    data: np.ndarray
    phase: np.ndarray
    phase_names: tuple[str, ...]
    rotation: np.ndarray
    twin: np.ndarray
    domain: np.ndarray
    geometry: DetectorGeometry
    step_nm: float
    kv: float
    phases: tuple


def simulate_fourd(*, scan_shape=(40, 40), step_nm: float = 2.0, core: str = "O3p", twins: bool = False,
                   particle_radius_nm=None, shell_nm=(2.0, 5.0), in_plane_deg: float = 17.0,
                   kv: float = 200.0, convergence_mrad: float = 1.5, precession_deg: float = 0.8,
                   pixels: int = 128, electrons_per_pattern: float = 3.7e6, max_thickness_nm: float = 60.0,
                   scattered_fraction: float = 0.3, seed: int = 0) -> FourDSimulation:
    """Simulate a scan; see the module docstring for the model.

    ``core`` is ``"O3p"`` (pristine, Table S1, with A/B/C domains) or ``"O3"``
    (100 cycles, Table S3, ⟨100⟩ zone, (001) twins when ``twins``).

    Parameters
    ----------
    scan_shape : (int, int)
        Probe positions (y, x).
    step_nm : float
        Scan step (nm).
    core : str
        ``"O3p"`` or ``"O3"`` (above).
    twins : bool
        (001) twin lamellae in an O3 core.
    particle_radius_nm : (float, float), optional
        Semi-axes of the particle (nm); default from the scan size.
    shell_nm : (float, float)
        Thinnest and thickest spinel shell (nm).
    in_plane_deg : float
        In-plane rotation of the crystal (degrees).
    kv : float
        Accelerating voltage (kV).
    convergence_mrad : float
        Probe convergence semi-angle (mrad).
    precession_deg : float
        Precession angle (degrees).
    pixels : int
        Detector side (pixels).
    electrons_per_pattern : float
        Dose per probe position (electrons).
    max_thickness_nm : float
        Thickness at the particle centre (nm).
    scattered_fraction : float
        Fraction of the dose scattered into the Bragg discs per 60 nm of thickness.
    seed : int
        Seed of the Poisson noise.

    Returns
    -------
    FourDSimulation
        The scan (ny, nx, ky, kx) counts, the detector geometry and the truth maps: phase codes,
        orientations (rotation matrices), twin and domain labels.
    """
    if core not in ("O3p", "O3"):
        raise ValueError(f"core must be 'O3p' or 'O3', got {core!r}")
    ny, nx = scan_shape
    if ny < 4 or nx < 4:
        raise ValueError(f"scan must be at least 4×4 positions, got {scan_shape}")
    rng = np.random.default_rng(seed)
    geo = paper_detector(kv=kv, convergence_mrad=convergence_mrad, pixels=pixels)
    core_phase = preset_phase("lrm-pristine:O3p" if core == "O3p" else "lrm-100-cycles:O3")
    spinel = preset_phase("lrm-pristine:S" if core == "O3p" else "lrm-100-cycles:S")

    y, x = (np.indices(scan_shape) - (np.array(scan_shape) - 1)[:, None, None] / 2) * step_nm
    if particle_radius_nm is None:  # an ellipse filling ~70 % of the field of view
        particle_radius_nm = (0.36 * nx * step_nm, 0.30 * ny * step_nm)
    ra, rb = particle_radius_nm
    rho = np.hypot(x / ra, y / rb)
    theta = np.arctan2(y, x)
    shell = shell_nm[0] + (shell_nm[1] - shell_nm[0]) * 0.5 * (1 + np.sin(3 * theta))
    r_edge = 1 - shell / min(ra, rb)
    inside = rho <= 1
    is_core = rho <= r_edge
    is_shell = inside & ~is_core
    carbon = ~inside & (y > 0.45 * ny * step_nm / 2 - 0.3 * x)
    thickness = np.where(inside, np.sqrt(np.clip(1 - rho**2, 0.05, 1)), 0.25)

    rot0 = el._rot_z(in_plane_deg)
    phase = np.zeros(scan_shape, int)
    phase[carbon] = 1
    phase[is_core] = 2
    phase[is_shell] = 3
    rotation = np.broadcast_to(np.eye(3), (*scan_shape, 3, 3)).copy()
    domain = np.full(scan_shape, -1)
    twin = np.full(scan_shape, -1)
    orients: dict[tuple, np.ndarray] = {}
    if core == "O3p":
        # A/B/C: [110], [-100], [1-10] with the layer normal c* along the same lab direction
        zones = [(1, 1, 0), (-1, 0, 0), (1, -1, 0)]
        band = np.floor((x * np.cos(0.4) + y * np.sin(0.4)) / 14.0).astype(int) % 3
        for d, z in enumerate(zones):
            u = rot0 @ el.zone_axis_rotation(core_phase, z, x_hkl=(0, 0, 1))
            sel = is_core & (band == d)
            domain[sel] = d
            twin[sel] = 0
            rotation[sel] = u
            orients[("core", d)] = u
        c_lab = rot0 @ el.zone_axis_rotation(core_phase, zones[0], x_hkl=(0, 0, 1))
    else:
        u = rot0 @ el.zone_axis_rotation(core_phase, (1, 0, 0), x_hkl=(0, 0, 3))
        rotation[is_core] = u
        twin[is_core] = 0
        orients[("core", 0)] = u
        if twins:
            law = el.paper_twin_laws(core_phase)["(001)"]
            ut = u @ law.matrix.T
            lam = np.floor((x * np.cos(np.radians(in_plane_deg)) + y * np.sin(np.radians(in_plane_deg))) / 12.0)
            sel = is_core & (lam.astype(int) % 2 == 1)
            rotation[sel] = ut
            twin[sel] = 1
            orients[("core", 1)] = ut
        c_lab = u
    # spinel shell: [110]_S along the beam, (1-11)_S along the lab direction of the core's layer normal
    c_dir = c_lab @ el.reciprocal_basis(core_phase) @ np.array([0.0, 0.0, 1.0])
    ang = np.degrees(np.arctan2(c_dir[1], c_dir[0]))
    us = el._rot_z(ang) @ el.zone_axis_rotation(spinel, (1, 1, 0), x_hkl=(1, -1, 1))
    rotation[is_shell] = us
    orients[("S", 0)] = us

    # one rendered pattern per distinct orientation
    images = {}
    for key, u in orients.items():
        ph = core_phase if key[0] == "core" else spinel
        pat = el.kinematic_pattern(ph, u, kv=kv, g_max_inv_angstrom=geo.g_max_inv_angstrom, thickness_nm=30.0,
                                   precession_deg=precession_deg, n_azimuth=60)
        img = render_spots(pat.g_xy, pat.intensity, geo)
        images[key] = img / img.sum()
    q, w, a = amorphous_carbon_rings()
    ring = render_rings(q, w, a, geo)
    direct = render_spots(np.zeros((1, 2)), [1.0], geo)

    data = np.empty((ny, nx, *geo.shape), np.float32)
    for iy in range(ny):
        for ix in range(nx):
            code = phase[iy, ix]
            t = thickness[iy, ix]
            if code == 0:
                frac, scat = 0.0, 0.0
            elif code == 1:
                frac, scat = 0.15, ring
            else:
                key = ("S", 0) if code == 3 else ("core", domain[iy, ix] if core == "O3p" else max(twin[iy, ix], 0))
                frac = scattered_fraction * t * max_thickness_nm / 60.0
                scat = images[key] + 0.1 * ring * (1 if code == 3 else 0.5)
                scat = scat / scat.sum()
            mean = electrons_per_pattern * ((1 - frac) * direct + frac * scat)
            data[iy, ix] = rng.poisson(mean)
    names = ("vacuum", "aC", core, "S")
    return FourDSimulation(data, phase, names, rotation, twin, domain, geo, step_nm, kv, (core_phase, spinel))


def simulate_ring_pattern(*, shape=(256, 256), pixel_inv_angstrom: float = 0.012, ellipticity: float = 1.04,
                          ellipse_angle_deg: float = 25.0, centre=(131.3, 124.6), ring_width_inv_angstrom=0.006,
                          counts: float = 2e7, standard=None, beam_radius_px: float = 4.0,
                          seed: int | None = 0, rings=None) -> np.ndarray:
    """Diffraction pattern of a polycrystalline film (default Au) with a known elliptical distortion.

    A detector offset d (x, y) is circularised by the area-preserving map of
    :func:`layerscope.fourd.calibrate.circularise_matrix`; a ring of |g| lies at
    |M d|·pixel = |g| with intensity ∝ Σ m|F|²/|g|² (kinematic powder), Gaussian in
    |g|, over a smooth diffuse background and a direct-beam disc; Poisson noise when
    ``seed`` is not None.
    """
    from layerscope.fourd.calibrate import circularise_matrix, gold, ring_standard

    g, w, _ = rings or ring_standard(standard or gold(), g_max=3.0)
    yy, xx = np.indices(shape, dtype=float)
    m = circularise_matrix(ellipticity, ellipse_angle_deg)
    dx, dy = xx - centre[1], yy - centre[0]
    q = np.hypot(m[0, 0] * dx + m[0, 1] * dy, m[1, 0] * dx + m[1, 1] * dy) * pixel_inv_angstrom
    img = sum(wk / gk ** 2 * np.exp(-0.5 * ((q - gk) / ring_width_inv_angstrom) ** 2) for gk, wk in zip(g, w))
    img = img / img.max() + 0.3 / (1 + (q / 0.3) ** 2)
    beam = np.clip(beam_radius_px + 0.5 - np.hypot(dx, dy), 0, 1)  # anti-aliased disc
    img = img / img.sum() * 0.6 * counts + beam * 0.4 * counts / beam.sum()
    return np.random.default_rng(seed).poisson(img).astype(np.float32) if seed is not None else img


def simulate_calibration_scan(*, scan_shape=(16, 16), shape=(128, 128), pixel_inv_angstrom: float = 0.024,
                              ellipticity: float = 1.035, ellipse_angle_deg: float = -30.0,
                              scan_rotation_deg: float = 17.0, descan_px_per_step=(0.12, -0.08),
                              centre=(63.2, 65.7), deflection_px: float = 1.5, counts: float = 2e6,
                              seed: int = 0):
    """A scan of an Au film with descan, elliptical distortion and a rotated DPC deflection field.

    The beam (and the whole pattern) at probe (iy, ix) is centred at ``centre`` + descan
    plane + R(θ)·D, with D = deflection_px·∇φ/max|∇φ| in the scan frame and φ a few
    Gaussian bumps of projected potential; the dark-field counts scale with φ.
    Returns (data (ny, nx, ky, kx) float32, truth dict).
    """
    from layerscope.fourd.calibrate import gold, ring_standard

    rings = ring_standard(gold(), g_max=3.0)
    rng = np.random.default_rng(seed)
    ny, nx = scan_shape
    iy, ix = np.indices(scan_shape, dtype=float)
    phi = np.zeros(scan_shape)
    for _ in range(5):
        y0, x0, s = rng.uniform(0, ny), rng.uniform(0, nx), rng.uniform(2.0, 4.0)
        phi += np.exp(-((iy - y0) ** 2 + (ix - x0) ** 2) / (2 * s * s))
    gy, gx = np.gradient(phi)
    norm = deflection_px / np.hypot(gy, gx).max()
    t = np.radians(scan_rotation_deg)
    ddx = (np.cos(t) * gx - np.sin(t) * gy) * norm          # R(θ) (scan → detector), (x, y)
    ddy = (np.sin(t) * gx + np.cos(t) * gy) * norm
    oy = centre[0] + descan_px_per_step[0] * (iy - ny / 2) + 0.03 * (ix - nx / 2)
    ox = centre[1] + descan_px_per_step[1] * (ix - nx / 2) - 0.02 * (iy - ny / 2)
    data = np.empty((ny, nx, *shape), np.float32)
    for a in range(ny):
        for b in range(nx):
            img = simulate_ring_pattern(shape=shape, pixel_inv_angstrom=pixel_inv_angstrom,
                                        ellipticity=ellipticity, ellipse_angle_deg=ellipse_angle_deg,
                                        centre=(oy[a, b] + ddy[a, b], ox[a, b] + ddx[a, b]),
                                        counts=counts * (1 + 0.5 * phi[a, b]), beam_radius_px=3.0, seed=None,
                                        rings=rings)
            data[a, b] = rng.poisson(img)
    truth = {"origin_px": np.stack([oy, ox], -1), "deflection_px": np.stack([ddy, ddx], -1), "potential": phi,
             "pixel_inv_angstrom": pixel_inv_angstrom, "ellipticity": ellipticity,
             "ellipse_angle_deg": ellipse_angle_deg, "scan_rotation_deg": scan_rotation_deg}
    return data, truth


def simulate_strain_scan(*, scan_shape=(10, 12), shape=(96, 96), g0_px=((19.0, -4.0), (5.0, 17.0)),
                         disc_radius_px: float = 3.0, amplitude: float = 0.01, counts: float = 4e5,
                         seed: int = 0):
    """Nanobeam patterns of a 2-D lattice under a known smooth strain field.

    The real-space deformation at probe (iy, ix) is F = I + ε + ω (ε symmetric, ω
    antisymmetric, ``amplitude`` ~ 1 %), zero in the reference rows iy < 2; the
    reciprocal lattice is G = F⁻ᵀ G0 (columns g1, g2 in detector x, y px). Disks are
    anti-aliased discs with Poisson noise. Returns (data, truth dict with exx, eyy, exy,
    rotation_deg, reference mask).
    """
    from scipy import ndimage

    from layerscope.fourd.detector import _disc_kernel

    rng = np.random.default_rng(seed)
    ny, nx = scan_shape
    iy, ix = np.indices(scan_shape, dtype=float)
    s = np.clip((iy - 1.5) / (ny - 2), 0, None)                   # 0 in the reference rows
    exx = amplitude * s * np.sin(2 * np.pi * ix / nx)
    eyy = -0.6 * amplitude * s * np.cos(np.pi * ix / nx)
    exy = 0.4 * amplitude * s ** 2
    w = 0.3 * amplitude * s * (ix / nx - 0.5)                      # rotation (rad)
    g0 = np.array(g0_px, float).T                                  # columns g1, g2
    hk = np.array([(h, k) for h in range(-4, 5) for k in range(-4, 5) if (h, k) != (0, 0)], float)
    intens = rng.uniform(0.3, 1.0, len(hk)) * np.exp(-0.02 * np.sum((hk @ g0.T) ** 2, 1) ** 0.5)
    kern = _disc_kernel(disc_radius_px)
    cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    data = np.empty((ny, nx, *shape), np.float32)
    for a in range(ny):
        for b in range(nx):
            f = np.eye(2) + np.array([[exx[a, b], exy[a, b] - w[a, b]], [exy[a, b] + w[a, b], eyy[a, b]]])
            g = np.linalg.inv(f).T @ g0
            q = np.concatenate([[[0.0, 0.0]], hk @ g.T])
            inten = np.concatenate([[3.0], intens])
            img = np.zeros(shape)
            x, y = cx + q[:, 0], cy + q[:, 1]
            x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
            fx, fy = x - x0, y - y0
            for dy, dx, ww in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)),
                               (1, 1, fy * fx)):
                yy, xx = y0 + dy, x0 + dx
                ok = (yy >= 0) & (yy < shape[0]) & (xx >= 0) & (xx < shape[1])
                np.add.at(img, (yy[ok], xx[ok]), (inten * ww)[ok])
            img = ndimage.convolve(img, kern, mode="constant")
            data[a, b] = rng.poisson(img / img.sum() * counts + 0.5)
    truth = {"exx": exx, "eyy": eyy, "exy": exy, "rotation_deg": np.degrees(w), "reference": iy < 2}
    return data, truth


def write_fourd_simulation(out, *, scan_shape=(40, 40), step_nm: float = 2.0, core: str = "O3p", twins: bool = False,
                           seed: int = 0) -> FourDSimulation:
    """:func:`simulate_fourd` written as ``out/scan.h5`` (calibrated, with ``truth_*`` datasets): what
    ``layerscope simulate fourd`` runs."""
    from pathlib import Path

    from layerscope.fourd.io import write_scan

    sim = simulate_fourd(scan_shape=tuple(scan_shape), core=core, twins=twins, seed=seed, step_nm=step_nm)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_scan(out / "scan.h5", sim.data, pixel_inv_angstrom=sim.geometry.pixel_inv_angstrom, step_nm=sim.step_nm,
               extra={"truth_phase": sim.phase, "truth_rotation": sim.rotation, "truth_twin": sim.twin,
                      "truth_domain": sim.domain})
    return sim
