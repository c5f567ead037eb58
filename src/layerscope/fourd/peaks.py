"""Bragg-peak lists as an input to phase and orientation mapping.

Many groups keep a reduced 4D-STEM scan as one list of Bragg peaks (qx, qy,
intensity) per probe position. py4DSTEM stores them as a ``PointListArray``: an
HDF5 group with ``emd_group_type`` 3 / ``py4dstem_class`` "PointListArray" holding a
(scan y, scan x) dataset ``data`` of variable-length compound records (``qx``,
``qy``, ``intensity``). It is read here with h5py alone (py4DSTEM is GPL and not a
dependency). Peaks are in Å⁻¹ when the list is calibrated (py4DSTEM names these
``..._cal...``); an uncalibrated list (pixels) needs ``pixel_inv_angstrom``.

To index, every position's peaks (the direct beam, |q| < ``beam_q``, excluded) are
rendered as discs onto a virtual detector (:func:`peak_geometry`: ``k_max`` over 60
pixels from the centre) and matched against the templates exactly like a measured
pattern. Positions with fewer than ``min_peaks`` Bragg peaks are "not indexed"
(phase code of :attr:`layerscope.fourd.index.Matcher.not_indexed_code`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope.fourd.detector import DetectorGeometry, render_spots

__all__ = ["BraggPeaks", "read_bragg_peaks", "is_bragg_peak_file", "peak_geometry", "render_peaks",
           "index_peaks"]


@dataclass(frozen=True)
class BraggPeaks:
    """Per position (scan y, scan x) an (n, 3) array of qx, qy (Å⁻¹) and intensity."""

    peaks: np.ndarray          # object array (ny, nx) of (n, 3) float arrays
    source: str
    calibrated: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.peaks.shape

    def counts(self, beam_q: float = 0.05) -> np.ndarray:
        """Number of Bragg peaks per position, the direct beam (|q| < beam_q) excluded."""
        return np.vectorize(lambda p: int(np.sum(np.hypot(p[:, 0], p[:, 1]) >= beam_q)), otypes=[int])(self.peaks)


def _find_pointlistarray(f):
    import h5py

    hits = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype == object and obj.ndim == 2:
            base = obj.id.get_type()
            try:
                names = base.get_super().dtype.names if hasattr(base, "get_super") else None
            except Exception:
                names = None
            if names and {"qx", "qy"} <= set(names):
                hits.append(name)

    f.visititems(visit)
    return hits


def is_bragg_peak_file(path) -> bool:
    """True for an HDF5 file holding a py4DSTEM PointListArray of (qx, qy, …) peaks."""
    import h5py

    from layerscope._h5guard import check_hdf5

    check_hdf5(path)  # a damaged HDF5 file can hang or crash libhdf5 (issue 15 fuzzing)
    try:
        with h5py.File(path, "r") as f:
            return bool(_find_pointlistarray(f))
    except OSError:
        return False


def read_bragg_peaks(path, *, dataset: str | None = None, pixel_inv_angstrom: float | None = None) -> BraggPeaks:
    """Read a py4DSTEM Bragg-peak list (see the module docstring)."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such Bragg-peak file")
    from layerscope._h5guard import check_hdf5

    check_hdf5(path)  # a damaged HDF5 file can hang or crash libhdf5 (issue 15 fuzzing)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"an HDF5 file ({exc})", path=path) from None
    with f:
        names = [dataset] if dataset else _find_pointlistarray(f)
        if not names or names[0] not in f:
            raise InputError("a py4DSTEM PointListArray: a 2-D dataset of variable-length (qx, qy, intensity) "
                             "records", path=path)
        name = names[0]
        ds = f[name]
        raw = ds[()]
    calibrated = "cal" in name.split("/")[-2 if name.endswith("/data") else -1].lower()
    scale = 1.0
    if not calibrated:
        if pixel_inv_angstrom is None:
            raise InputError(f"a calibrated peak list (py4DSTEM '..._cal...') or a pixel size: {name!r} looks "
                             "uncalibrated (pixels); give pixel_inv_angstrom / --pixel-size", path=path)
        scale = float(pixel_inv_angstrom)
    out = np.empty(raw.shape, object)
    for idx in np.ndindex(raw.shape):
        rec = raw[idx]
        if rec.dtype.names is None or not {"qx", "qy"} <= set(rec.dtype.names):
            raise InputError("records with fields qx, qy (and intensity)", path=path, where=f"{name}{list(idx)}")
        inten = rec["intensity"] if "intensity" in rec.dtype.names else np.ones(len(rec))
        out[idx] = np.stack([rec["qx"] * scale, rec["qy"] * scale, inten], 1).astype(float).reshape(-1, 3)
    return BraggPeaks(out, f"{path}:{name}", calibrated)


def peak_geometry(k_max: float, *, pixels: int = 128, disc_radius_px: float = 1.5) -> DetectorGeometry:
    """Virtual detector for rendering peaks: |q| = k_max lands 60 px from the centre of a 128² grid."""
    return DetectorGeometry((pixels, pixels), k_max / (pixels / 2 - 4), (pixels / 2.0, pixels / 2.0), disc_radius_px)


def render_peaks(peaks: BraggPeaks, geometry: DetectorGeometry, *, beam_q: float = 0.05,
                 counts_per_unit: float = 1e4) -> np.ndarray:
    """(ny, nx, ky, kx) float32 patterns: every Bragg peak (direct beam excluded) as a disc.

    The direct beam is drawn as one disc of the summed intensity of the Bragg peaks so that
    the scattered fraction of a position with peaks is 0.5 (a position without peaks is vacuum).
    """
    ny, nx = peaks.shape
    out = np.zeros((ny, nx, *geometry.shape), np.float32)
    k_max = geometry.g_max_inv_angstrom
    for iy in range(ny):
        for ix in range(nx):
            p = peaks.peaks[iy, ix]
            q = np.hypot(p[:, 0], p[:, 1])
            sel = (q >= beam_q) & (q <= k_max) & (p[:, 2] > 0)
            g = np.concatenate([p[sel, :2], [[0.0, 0.0]]])
            w = np.concatenate([p[sel, 2], [max(p[sel, 2].sum(), 1e-12)]]) * counts_per_unit
            out[iy, ix] = render_spots(g, w, geometry)
    return out


def index_peaks(peaks: BraggPeaks, matcher, *, min_peaks: int = 5, beam_q: float = 0.05):
    """Phase/orientation maps of a peak list; positions with fewer than ``min_peaks`` Bragg peaks
    are "not indexed". Returns (OrientationMaps, peak counts)."""
    from layerscope.fourd.maps import OrientationMaps, index_scan

    pats = render_peaks(peaks, matcher.library.geometry, beam_q=beam_q)
    maps = index_scan(pats, matcher)
    n = peaks.counts(beam_q)
    few = n < min_peaks
    fields = maps.fields.copy()
    fields[few, 0] = matcher.not_indexed_code
    fields[few, 1] = -1
    fields[few, 2:4] = 0
    fields[few, 5:7] = np.nan
    from layerscope.fourd.maps import maps_from_fields

    out = maps_from_fields(fields, matcher)
    assert isinstance(out, OrientationMaps)
    return out, n
