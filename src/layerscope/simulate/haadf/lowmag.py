"""Low-magnification HAADF images: particles with pore/trench defects (Supp. Fig. 20, table S4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Paper, table S4: defects counted in five particles after 100 cycles.
TABLE_S4_DEFECTS = (6, 5, 4, 4, 6)


@dataclass(frozen=True)
class LowMagSimulation:
    """A low-magnification HAADF image of several particles and its truth.

    Attributes
    ----------
    image : (ny, nx) array
        Detector counts; intensity ∝ projected thickness of oxide.
    pixel_size_nm : float
    particle_labels : (ny, nx) int array
        0 = vacuum, ``k`` = particle ``k`` (1-based).
    defect_labels : (ny, nx) int array
        0 = no defect, ``j`` = defect ``j`` (1-based).
    defect_particle : (n_defects,) int array
        Particle (1-based) that holds defect ``j``.
    defects_per_particle : tuple of int
    expected : (ny, nx) array
        Noiseless expected counts.
    """

    image: np.ndarray
    pixel_size_nm: float
    particle_labels: np.ndarray
    defect_labels: np.ndarray
    defect_particle: np.ndarray
    defects_per_particle: tuple
    expected: np.ndarray


def simulate_particles_lowmag(
    defects_per_particle=TABLE_S4_DEFECTS,
    *,
    shape: tuple[int, int] = (448, 640),
    pixel_size_nm: float = 1.0,
    semi_axes_nm: tuple[float, float] = (55.0, 80.0),
    trench_length_nm: tuple[float, float] = (12.0, 22.0),
    trench_width_nm: float = 3.0,
    trench_depth: float = 0.6,
    counts_per_nm: float = 1.5,
    background_counts: float = 20.0,
    blur_nm: float = 1.0,
    noise: bool = True,
    seed: int | None = 0,
) -> LowMagSimulation:
    """Low-magnification HAADF image of particles with trench-like defects.

    Each particle is an ellipsoid (random semi-axes in ``semi_axes_nm``,
    random in-plane orientation) whose HAADF signal is proportional to its
    projected thickness ``t(x, y)`` (incoherent imaging of a thin specimen).
    Each defect is a pore/trench (Fig. 4e,f; Supp. Figs. 20, 22): an
    elongated elliptical region inside the particle, oriented at random,
    where the thickness is reduced by the fraction ``trench_depth``.
    Particles are placed on a grid of cells so they do not touch.

    Parameters
    ----------
    defects_per_particle : sequence of int
        Number of defects in each particle (default: table S4, 6 5 4 4 6).
    trench_depth : float
        Fractional loss of thickness inside a trench (0..1).
    counts_per_nm : float
        Expected counts per nm of projected thickness.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    n_p = len(defects_per_particle)
    n_cols = int(np.ceil(np.sqrt(n_p * nx / ny)))
    n_rows = int(np.ceil(n_p / n_cols))
    cw, ch = nx / n_cols, ny / n_rows
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    thickness = np.zeros(shape)
    plabels = np.zeros(shape, int)
    dlabels = np.zeros(shape, int)
    dpart = []
    r_max = 0.5 * min(cw, ch) * pixel_size_nm - 4.0
    for k, n_def in enumerate(defects_per_particle):
        cy = (k // n_cols + 0.5) * ch + rng.uniform(-0.05, 0.05) * ch
        cx = (k % n_cols + 0.5) * cw + rng.uniform(-0.05, 0.05) * cw
        a_nm, b_nm = np.sort(rng.uniform(*semi_axes_nm, 2))[::-1]
        a_nm, b_nm = min(a_nm, r_max), min(b_nm, r_max)
        th = rng.uniform(0, np.pi)
        c, s = np.cos(th), np.sin(th)
        X, Y = (xx - cx) * pixel_size_nm, (yy - cy) * pixel_size_nm
        U, V = c * X + s * Y, -s * X + c * Y
        rho2 = (U / a_nm) ** 2 + (V / b_nm) ** 2
        inside = rho2 < 1
        t = np.where(inside, 2 * b_nm * np.sqrt(np.clip(1 - rho2, 0, None)), 0.0)
        placed = []
        tries = 0
        while len(placed) < n_def and tries < 2000:
            tries += 1
            r = np.sqrt(rng.uniform(0, 0.55))
            phi = rng.uniform(0, 2 * np.pi)
            du, dv = r * a_nm * np.cos(phi), r * b_nm * np.sin(phi)
            if any(np.hypot(du - p[0], dv - p[1]) < 2.2 * trench_length_nm[1] / 2 + 2 for p in placed):
                continue
            placed.append((du, dv))
        for du, dv in placed:
            length = rng.uniform(*trench_length_nm)
            ang = rng.uniform(0, np.pi)
            tu, tv = U - du, V - dv
            ca, sa = np.cos(ang), np.sin(ang)
            along, across = ca * tu + sa * tv, -sa * tu + ca * tv
            trench = ((along / (length / 2)) ** 2 + (across / (trench_width_nm / 2)) ** 2 < 1) & inside
            t = np.where(trench, t * (1 - trench_depth), t)
            dlabels[trench] = len(dpart) + 1
            dpart.append(k + 1)
        thickness += t
        plabels[inside] = k + 1
    from scipy.ndimage import gaussian_filter

    expected = background_counts + counts_per_nm * gaussian_filter(thickness, blur_nm / pixel_size_nm)
    image = rng.poisson(expected).astype(float) if noise else expected.copy()
    counts = tuple(int(np.sum(np.asarray(dpart) == k + 1)) for k in range(n_p))
    return LowMagSimulation(image, pixel_size_nm, plabels, dlabels, np.asarray(dpart, int), counts, expected)
