"""Virtual detectors: bright field, annular dark field, custom masks, centre of mass.

A virtual image is the contraction of every pattern with a detector mask,
``I(y, x) = Σ_k M(k) P(y, x, k)`` (Ophus, Microsc. Microanal. 25, 563 (2019)); the
centre of mass is ``Σ_k k P / Σ_k P`` (pixels, relative to the pattern centre).
Works on NumPy or dask arrays (lazily, chunk by chunk).
"""

from __future__ import annotations

import numpy as np

__all__ = ["annular_mask", "disc_mask", "virtual_image", "centre_of_mass"]


def _radius(shape, centre):
    yy, xx = np.indices(shape, dtype=float)
    return np.hypot(yy - centre[0], xx - centre[1])


def disc_mask(shape, centre, radius_px: float) -> np.ndarray:
    """Bright-field detector: 1 inside a disc of ``radius_px`` around ``centre`` (y, x)."""
    return (_radius(shape, centre) <= radius_px).astype(np.float32)


def annular_mask(shape, centre, inner_px: float, outer_px: float) -> np.ndarray:
    """Annular dark-field detector between ``inner_px`` and ``outer_px``."""
    if not 0 <= inner_px < outer_px:
        raise ValueError(f"annulus needs 0 <= inner < outer, got {inner_px}, {outer_px}")
    r = _radius(shape, centre)
    return ((r >= inner_px) & (r < outer_px)).astype(np.float32)


def virtual_image(data, mask):
    """``Σ_k mask(k) · data(…, k)`` over the last two axes (NumPy or dask)."""
    mask = np.asarray(mask, dtype=np.float32)
    if data.shape[-2:] != mask.shape:
        raise ValueError(f"mask shape {mask.shape} does not match the pattern shape {data.shape[-2:]}")
    return (data * mask).sum(axis=(-2, -1))


def centre_of_mass(data, centre=None):
    """Centre of mass (y, x) of every pattern in pixels relative to ``centre`` (default: geometric centre).

    Returns an array of shape (..., 2) (NumPy or dask).
    """
    ky, kx = data.shape[-2:]
    centre = ((ky - 1) / 2, (kx - 1) / 2) if centre is None else centre
    yy, xx = np.indices((ky, kx), dtype=np.float32)
    total = data.sum(axis=(-2, -1))
    cy = (data * yy).sum(axis=(-2, -1)) / total - centre[0]
    cx = (data * xx).sum(axis=(-2, -1)) / total - centre[1]
    stack = np.stack if isinstance(cy, np.ndarray) else __import__("dask.array").array.stack
    return stack([cy, cx], axis=-1)
