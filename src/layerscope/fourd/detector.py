"""Detector geometry of a 4D-STEM experiment and rendering of spot patterns onto it.

The paper's settings (Methods, 4D-STEM): 200 kV, 1.5 mrad convergence semi-angle,
124.5 mrad diffraction size over a 512×512 Dectris Quadro binned by 4 to 128×128.
A reciprocal-space vector g (Å⁻¹) lands at ``g / pixel_inv_angstrom`` pixels from
the direct beam; a disc of radius α/λ (Å⁻¹) surrounds every spot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from layerscope.diffraction.electron import disc_radius_inv_angstrom, electron_wavelength_angstrom

__all__ = ["DetectorGeometry", "paper_detector", "render_spots", "render_rings"]


@dataclass(frozen=True)
class DetectorGeometry:
    """Pattern shape (ky, kx), calibration (Å⁻¹ per pixel), direct-beam centre (px, (y, x))
    and CBED disc radius (px); optionally the elliptical distortion of the detector
    (``ellipticity`` = major/minor axis, ``ellipse_angle_deg`` of the major axis from +x
    towards +y; see :mod:`layerscope.fourd.calibrate`), which the matcher undoes when it
    resamples patterns to polar coordinates."""

    shape: tuple[int, int]
    pixel_inv_angstrom: float
    centre_px: tuple[float, float]
    disc_radius_px: float
    ellipticity: float = 1.0
    ellipse_angle_deg: float = 0.0

    def __post_init__(self):
        if self.pixel_inv_angstrom <= 0 or not np.isfinite(self.pixel_inv_angstrom):
            raise ValueError(f"detector calibration must be a positive Å⁻¹/pixel, got {self.pixel_inv_angstrom}")
        if not (1.0 <= self.ellipticity < 1.5):
            raise ValueError(f"ellipticity (major/minor axis) must lie in [1, 1.5), got {self.ellipticity}")

    def undistort_inverse(self) -> np.ndarray:
        """2×2 (x, y) matrix taking circularised offsets back to detector offsets."""
        from layerscope.fourd.calibrate import circularise_matrix

        return np.linalg.inv(circularise_matrix(self.ellipticity, self.ellipse_angle_deg))

    @property
    def g_max_inv_angstrom(self) -> float:
        """Largest |g| fully inside the detector (Å⁻¹)."""
        cy, cx = self.centre_px
        r = min(cy, cx, self.shape[0] - 1 - cy, self.shape[1] - 1 - cx)
        return r * self.pixel_inv_angstrom / np.sqrt(self.ellipticity)


def paper_detector(*, kv: float = 200.0, convergence_mrad: float = 1.5, diffraction_mrad: float = 124.5,
                   pixels: int = 128) -> DetectorGeometry:
    """The paper's detector: ``diffraction_mrad`` spread over ``pixels`` (full width)."""
    lam = electron_wavelength_angstrom(kv)
    pix = diffraction_mrad * 1e-3 / pixels / lam
    return DetectorGeometry((pixels, pixels), pix, (pixels / 2.0, pixels / 2.0),
                            disc_radius_inv_angstrom(convergence_mrad, kv) / pix)


def _disc_kernel(radius_px: float, oversample: int = 4) -> np.ndarray:
    half = int(np.ceil(radius_px)) + 1
    fine = (np.arange(-half * oversample, (half + 1) * oversample) + 0.5) / oversample - 0.5 / oversample
    yy, xx = np.meshgrid(fine, fine, indexing="ij")
    inside = (yy**2 + xx**2 <= radius_px**2).astype(float)
    n = 2 * half + 1
    k = inside[: n * oversample, : n * oversample].reshape(n, oversample, n, oversample).mean(axis=(1, 3))
    return k / k.sum()


def render_spots(g_xy_inv_angstrom, intensity, geometry: DetectorGeometry) -> np.ndarray:
    """Image of spots (each a uniform disc of the convergence radius) on the detector.

    Spot intensities are split bilinearly over the four nearest pixels, then
    convolved with the disc, so the integrated intensity of each spot is kept.
    Image rows are detector y, columns x; g_x runs along columns.
    """
    img = np.zeros(geometry.shape)
    g = np.asarray(g_xy_inv_angstrom, dtype=float).reshape(-1, 2)
    w = np.asarray(intensity, dtype=float).ravel()
    x = geometry.centre_px[1] + g[:, 0] / geometry.pixel_inv_angstrom
    y = geometry.centre_px[0] + g[:, 1] / geometry.pixel_inv_angstrom
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dy, dx, ww in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < img.shape[0]) & (xx >= 0) & (xx < img.shape[1])
        np.add.at(img, (yy[ok], xx[ok]), (w * ww)[ok])
    return ndimage.convolve(img, _disc_kernel(geometry.disc_radius_px), mode="constant")


def render_rings(q_inv_angstrom, width_inv_angstrom, amplitude, geometry: DetectorGeometry) -> np.ndarray:
    """Diffuse rings (amorphous scattering): Σ A exp(−(|g| − q)² / 2w²), normalised to unit sum."""
    yy, xx = np.indices(geometry.shape, dtype=float)
    r = np.hypot(yy - geometry.centre_px[0], xx - geometry.centre_px[1]) * geometry.pixel_inv_angstrom
    img = sum(a * np.exp(-0.5 * ((r - q) / w) ** 2) for q, w, a in zip(q_inv_angstrom, width_inv_angstrom, amplitude))
    img = np.where(r > 2 * geometry.disc_radius_px * geometry.pixel_inv_angstrom, img, 0.0)
    return img / img.sum()
