"""Reading STEM images with their pixel calibration.

Formats: Gatan .dm3/.dm4, Velox/NCEM .emd, FEI TIA .ser, HyperSpy .hspy/.hdf5
(all through rosettasciio), .tif/.tiff (tifffile, ImageJ or resolution-tag
calibration), .npy (NumPy, no calibration) and in-memory arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
import struct
from pathlib import Path

import numpy as np

from layerscope._errors import reader

__all__ = ["STEMImage", "read_image", "as_image"]

_TO_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0,
    "Å": 0.1, "Å": 0.1, "A": 0.1, "angstrom": 0.1, "angstroms": 0.1,
    "pm": 1e-3, "µm": 1e3, "μm": 1e3, "um": 1e3, "micron": 1e3, "m": 1e9,
}


@dataclass(frozen=True)
class STEMImage:
    """A 2D image and its calibration.

    Attributes
    ----------
    data : (ny, nx) float64 array
    pixel_size_nm : float or None
        Pixel size along x (and y, assumed square) in nm; None if unknown.
    source : str
        File name or ``"<array>"``.
    units_assumed : bool
        True when the file gave a scale without a unit and nm was assumed
        (HyperSpy's convention for STEM images).
    """

    data: np.ndarray
    pixel_size_nm: float | None
    source: str = "<array>"
    units_assumed: bool = False


def _validate(data, source: str) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.dtype == np.uint8:
        arr = arr[..., :3].mean(axis=-1)  # an RGB export: take the luminance
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ValueError(f"{source}: expected a single 2D image, got data of shape {np.shape(data)}")
    if arr.size == 0:
        raise ValueError(f"{source}: the image is empty")
    if arr.dtype.kind not in "buif":
        raise ValueError(f"{source}: expected real pixel values, got {arr.dtype} data")
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf of any width: counted just below
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        n = np.count_nonzero(~np.isfinite(arr))
        raise ValueError(f"{source}: image contains {n} NaN/inf pixels")
    return arr


def as_image(data, pixel_size_nm: float | None = None) -> STEMImage:
    """Wrap an array (or pass a :class:`STEMImage` through)."""
    if isinstance(data, STEMImage):
        return data
    return STEMImage(_validate(data, "<array>"), pixel_size_nm)


def _scale_nm(axis: dict) -> tuple[float | None, bool]:
    scale = axis.get("scale")
    if scale is None:
        return None, False
    units = axis.get("units")
    if units in (None, "", "<undefined>", "undefined"):
        return float(scale), True
    factor = _TO_NM.get(str(units).strip())
    if factor is None:
        return None, False  # e.g. 1/nm or px: not a real-space calibration
    return float(scale) * factor, False


def _read_rsciio(path: Path, reader) -> STEMImage:
    try:
        items = reader(str(path))
    except Exception as exc:  # rsciio raises many types for a corrupt file
        raise ValueError(f"{path}: cannot be read as {path.suffix} ({type(exc).__name__}: {exc})") from exc
    images = [it for it in items if np.ndim(it.get("data")) >= 2]
    if not images:
        raise ValueError(f"{path}: no image dataset in the file")
    it = images[0]
    data = _validate(it["data"], str(path))
    axes = [a for a in it.get("axes", []) if a.get("navigate") is not True]
    px, assumed = (None, False)
    if axes:
        px, assumed = _scale_nm(axes[-1])
    return STEMImage(data, px, str(path), assumed)


def _read_hdf5_hyperspy(path: Path) -> STEMImage:
    from rsciio.hspy import file_reader

    from layerscope._h5guard import check_hdf5

    check_hdf5(path)  # a damaged HDF5 file can hang or crash libhdf5 (issue 15 fuzzing)
    return _read_rsciio(path, file_reader)


def _read_tiff(path: Path) -> STEMImage:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            data = tf.asarray()
            page = tf.pages[0]
            px = None
            ij = tf.imagej_metadata or {}
            tags = page.tags
            if "XResolution" in tags:
                num, den = tags["XResolution"].value
                if num:
                    per_px = den / num  # units per pixel
                    unit = ij.get("unit")
                    if unit is not None:
                        unit = {"micron": "µm", "\\u00B5m": "µm"}.get(unit, unit)
                        f = _TO_NM.get(unit)
                        px = per_px * f if f else None
    except (tifffile.TiffFileError, ValueError, OSError, struct.error, IndexError, KeyError, TypeError) as exc:
        # TypeError: tag values of the wrong type in a damaged header (tifffile or the resolution unpacking)
        raise ValueError(f"{path}: not a readable TIFF file ({exc})") from exc
    return STEMImage(_validate(data, str(path)), px, str(path))


@reader
def read_image(path, *, pixel_size_nm: float | None = None) -> STEMImage:
    """Read a STEM image and its pixel size.

    Parameters
    ----------
    path : str or Path
        .dm3, .dm4, .emd, .ser, .hspy, .hdf5/.h5 (HyperSpy), .tif/.tiff or .npy.
    pixel_size_nm : float, optional
        Pixel size in nm; overrides the file's calibration (or supplies one where it is missing).

    Returns
    -------
    STEMImage
        The (ny, nx) float image, its pixel size (nm, or None when neither the file nor the
        caller gives one) and its source.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Unknown extension, unreadable file, no 2D image, NaNs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    ext = path.suffix.lower()
    if ext in (".dm3", ".dm4"):
        from rsciio.digitalmicrograph import file_reader

        img = _read_rsciio(path, file_reader)
    elif ext == ".emd":
        from rsciio.emd import file_reader

        from layerscope._h5guard import check_hdf5

        check_hdf5(path)  # a damaged HDF5 file can hang or crash libhdf5 (issue 15 fuzzing)
        img = _read_rsciio(path, file_reader)
    elif ext == ".ser":
        from rsciio.tia import file_reader

        img = _read_rsciio(path, file_reader)
    elif ext in (".hspy", ".hdf5", ".h5"):
        img = _read_hdf5_hyperspy(path)
    elif ext in (".tif", ".tiff"):
        img = _read_tiff(path)
    elif ext == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ValueError(f"{path}: not a NumPy .npy file ({exc})") from exc
        img = STEMImage(_validate(arr, str(path)), None, str(path))
    else:
        raise ValueError(
            f"{path}: unsupported image format {ext!r}; expected .dm3, .dm4, .emd, .ser, "
            ".hspy, .hdf5, .tif or .npy"
        )
    if pixel_size_nm is not None:
        img = STEMImage(img.data, float(pixel_size_nm), img.source, False)
    return img
