"""Geometric phase analysis (Hÿtch, Snoeck & Kilaas, Ultramicroscopy 74, 131, 1998).

For a lattice fringe ``g`` the Bragg-filtered image ``H_g(r)`` (a Gaussian
mask of width ``sigma_g`` around ``g`` in the FFT, transformed back) has the
geometric phase ``P_g(r) = arg H_g(r) - 2π g·r = -2π g·u(r)`` (eq. 11 of the
paper). With two non-collinear ``g1, g2`` the displacement is
``u = -(1/2π) [g1; g2]^-1 [P1; P2]`` (eq. 17) and the distortion tensor
``e_ij = ∂u_i/∂x_j = -(1/2π) Σ_k (G^-1)_ik ∂P_k/∂x_j`` (eq. 19).
Phase gradients are taken as ``Im(conj(e^{iP}) ∇e^{iP})`` so phase wraps do
not matter. ``g`` is refined on a reference region (``P`` flat there), which
defines zero strain.

Strain components: ``exx = e_xx``, ``eyy = e_yy``, ``exy = (e_xy + e_yx)/2``,
rotation ``ω = (e_yx - e_xy)/2`` (radians, counter-clockwise in (x, y)).

Where the maps mean something (``GPAResult.valid``): the Bragg filter averages over a Gaussian
of σ_r = 1/(2π σ_g) px, so within 2σ_r of the image border the phase mixes the tapered edge
and the FFT's wrap-around (errors of several % on an unstrained lattice whose period does not
divide the image); where the Bragg amplitude of either fringe falls below half its median in the
reference region (vacuum, pores, another phase or twin variant) the phase is undefined, and
within σ_r of such pixels it mixes them in (errors of a few 0.1 %, ~0.1 % beyond 2σ_r). Both
bands are masked.
Written with NumPy FFTs (no maintained Python GPA library to build on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.signal import windows

from layerscope.stem.columns import _check_image, fft_lattice

__all__ = ["GPAResult", "gpa"]


@dataclass(frozen=True)
class GPAResult:
    """Strain maps (dimensionless; x = columns, y = rows) and their inputs."""

    exx: np.ndarray
    eyy: np.ndarray
    exy: np.ndarray
    rotation_rad: np.ndarray
    ux_px: np.ndarray
    uy_px: np.ndarray
    phases: np.ndarray  # (2, ny, nx) geometric phases, wrapped
    amplitudes: np.ndarray  # (2, ny, nx) Bragg-filtered amplitudes
    g_per_px: np.ndarray  # (2, 2) refined g vectors (cycles / px)
    reference: tuple  # (y0, y1, x0, x1)
    #: (ny, nx) bool: where the phase (and so the strain) is defined: ≥ 2σ_r from the border and
    #: > σ_r from every pixel whose Bragg amplitudes are below half their median in the reference
    #: region (None: not computed)
    valid: np.ndarray | None = None

    def masked(self, name: str) -> np.ndarray:
        """A map (``"exx"``, ``"eyy"``, ``"exy"``, ``"rotation_rad"``) with NaN where it is not defined."""
        m = np.asarray(getattr(self, name), dtype=float)
        return m if self.valid is None else np.where(self.valid, m, np.nan)


def _bragg(F, gx, gy, g, sigma_g):
    mask = np.exp(-((gx - g[0]) ** 2 + (gy - g[1]) ** 2) / (2 * sigma_g**2))
    return np.fft.ifft2(F * mask)


def _phase_gradient(P):
    z = np.exp(1j * P)
    dzy, dzx = np.gradient(z)
    return np.imag(np.conj(z) * dzx), np.imag(np.conj(z) * dzy)


def gpa(
    image: np.ndarray,
    g_per_px: np.ndarray | None = None,
    *,
    sigma_g: float | None = None,
    reference: tuple[int, int, int, int] | None = None,
) -> GPAResult:
    """Strain maps of an image by geometric phase analysis.

    Parameters
    ----------
    image : (ny, nx) array
    g_per_px : (2, 2) array, optional
        Two non-collinear lattice fringes (gx, gy) in cycles/px; default the
        two strongest spots of :func:`layerscope.stem.fft_lattice`.
    sigma_g : float, optional
        Width of the Gaussian Bragg mask (cycles/px); sets the spatial
        resolution (~ 1/(2π sigma_g) px). Default 0.15 × min |g|.
    reference : (y0, y1, x0, x1), optional
        Region defining zero strain; default the central half of the image.

    Returns
    -------
    GPAResult
        Strain and rotation maps (dimensionless, radians), displacements (px), the refined g
        vectors and the mask of where the maps are defined (``valid``).
    """
    img = _check_image(image)
    ny, nx = img.shape
    if g_per_px is None:
        g_per_px = fft_lattice(img).g_per_px
    G = np.asarray(g_per_px, float).reshape(2, 2)
    if abs(np.linalg.det(G)) < 1e-12:
        raise ValueError("the two g vectors are collinear")
    if sigma_g is None:
        sigma_g = 0.15 * np.min(np.hypot(*G.T))
    if reference is None:
        reference = (ny // 4, 3 * ny // 4, nx // 4, 3 * nx // 4)
    y0, y1, x0, x1 = reference
    # Tukey window: tapers the edges (no FFT wrap-around streaks) while
    # leaving the interior unweighted, so the Bragg filter is not biased
    # towards the image centre.
    win = windows.tukey(ny, 0.25)[:, None] * windows.tukey(nx, 0.25)[None, :]
    F = np.fft.fft2((img - img.mean()) * win)
    gy = np.fft.fftfreq(ny)[:, None]
    gx = np.fft.fftfreq(nx)[None, :]
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    phases, amps, refined = [], [], []
    for g in G:
        # Refine g so that the phase is flat in the reference region (mean
        # phase gradient weighted by the Bragg amplitude), re-centring the
        # mask on the refined g.
        for _ in range(3):
            H = _bragg(F, gx, gy, g, sigma_g)
            P = np.angle(H) - 2 * np.pi * (g[0] * xx + g[1] * yy)
            dPx, dPy = _phase_gradient(P)
            wt = np.abs(H[y0:y1, x0:x1]) ** 2
            dg = np.array([np.sum(wt * dPx[y0:y1, x0:x1]), np.sum(wt * dPy[y0:y1, x0:x1])]) / (
                2 * np.pi * np.sum(wt)
            )
            g = g + dg
        H = _bragg(F, gx, gy, g, sigma_g)
        P = np.angle(H) - 2 * np.pi * (g[0] * xx + g[1] * yy)
        P = np.angle(np.exp(1j * (P - np.angle(np.mean(np.exp(1j * P[y0:y1, x0:x1]))))))
        phases.append(P)
        amps.append(np.abs(H))
        refined.append(g)
    Gr = np.array(refined)
    Ginv = np.linalg.inv(Gr)  # columns: real-space basis a_k with g_j·a_k = δ_jk
    grads = [_phase_gradient(P) for P in phases]  # (dP/dx, dP/dy)
    # e_ij = -(1/2π) Σ_k Ginv[i, k] ∂P_k/∂x_j
    e = np.zeros((2, 2, ny, nx))
    for i in range(2):
        for j in range(2):
            e[i, j] = -sum(Ginv[i, k] * grads[k][j] for k in range(2)) / (2 * np.pi)
    # Displacement from unwrapped-free phases is only defined modulo a
    # lattice vector; report it from the wrapped phases.
    P = np.array(phases)
    u = -np.einsum("ik,kyx->iyx", Ginv, P) / (2 * np.pi)
    # defined: ≥ 2σ_r (the Bragg filter's reach) from the image border, and > σ_r from every
    # pixel without fringes (a Bragg amplitude below half its reference median)
    sigma_r = 1.0 / (2 * np.pi * sigma_g)
    fringes = np.ones((ny, nx), bool)
    for a in amps:
        fringes &= a >= 0.5 * np.median(a[y0:y1, x0:x1])
    border = np.minimum(np.minimum(yy, ny - 1 - yy), np.minimum(xx, nx - 1 - xx))
    valid = (border >= 2 * sigma_r) & (distance_transform_edt(fringes) > sigma_r)
    return GPAResult(
        exx=e[0, 0], eyy=e[1, 1], exy=0.5 * (e[0, 1] + e[1, 0]), rotation_rad=0.5 * (e[1, 0] - e[0, 1]),
        ux_px=u[0], uy_px=u[1], phases=P, amplitudes=np.array(amps), g_per_px=Gr,
        reference=tuple(reference), valid=valid,
    )
