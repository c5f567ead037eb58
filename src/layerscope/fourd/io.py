"""Reading 4D-STEM scans lazily (dask) so that scans larger than memory work.

* ``.npy`` — memory-mapped with NumPy, wrapped in a dask array;
* ``.h5`` / ``.hdf5`` / ``.emd`` / Dectris or Arina master files — h5py: the first
  4-D dataset (scan y, scan x, ky, kx), or a 3-D stack of frames (Dectris
  ``entry/data/data_*``) reshaped with ``scan_shape``; layerscope's own files carry
  ``pixel_inv_angstrom`` and ``step_nm`` attributes;
* ``.hspy``, ``.zspy``, ``.mib``, ``.blo`` — rosettasciio's readers with ``lazy=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np

__all__ = ["Scan4D", "read_scan", "write_scan"]


@dataclass(frozen=True)
class Scan4D:
    """A lazily loaded scan: ``data`` is a dask array (scan y, scan x, ky, kx)."""

    data: da.Array
    source: str
    pixel_inv_angstrom: float | None = None
    step_nm: float | None = None


def _chunks(shape, chunk_positions):
    return (min(shape[0], chunk_positions), min(shape[1], chunk_positions), shape[2], shape[3])


def read_scan(path, *, scan_shape=None, chunk_positions: int = 32, dataset: str | None = None) -> Scan4D:
    """Open a 4D-STEM scan lazily; see the module docstring for the formats."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such 4D-STEM scan")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r")
        except ValueError as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc})") from None
        # chunk the memory map directly: each task reads only its own block of patterns
        chunks = _chunks(arr.shape, chunk_positions) if arr.ndim == 4 else (max(1, chunk_positions**2), -1, -1)
        if arr.ndim not in (3, 4):
            raise ValueError(f"{path}: expected a 4-D array (scan y, scan x, ky, kx), got shape {arr.shape}")
        return Scan4D(_as_4d(da.from_array(arr, chunks=chunks), path, scan_shape, chunk_positions), str(path))
    if suffix in (".h5", ".hdf5", ".emd", ".nxs"):
        return _read_h5(path, scan_shape, chunk_positions, dataset)
    if suffix in (".hspy", ".zspy", ".mib", ".blo"):
        return _read_rsciio(path, suffix, scan_shape, chunk_positions)
    raise ValueError(f"{path}: unknown 4D-STEM format {suffix!r} (expected .npy, .h5, .hdf5, .emd, .hspy, "
                     ".zspy, .mib or .blo)")


def _as_4d(arr: da.Array, path, scan_shape, chunk_positions) -> da.Array:
    if arr.ndim == 3:
        if scan_shape is None:
            n = int(round(np.sqrt(arr.shape[0])))
            if n * n != arr.shape[0]:
                raise ValueError(f"{path}: {arr.shape[0]} frames do not form a square scan; give scan_shape")
            scan_shape = (n, n)
        if int(np.prod(scan_shape)) != arr.shape[0]:
            raise ValueError(f"{path}: scan_shape {tuple(scan_shape)} does not match {arr.shape[0]} frames")
        arr = arr.reshape(*scan_shape, *arr.shape[1:])
    if arr.ndim != 4:
        raise ValueError(f"{path}: expected a 4-D array (scan y, scan x, ky, kx), got shape {arr.shape}")
    if min(arr.shape) < 1:
        raise ValueError(f"{path}: empty scan, shape {arr.shape}")
    return arr.rechunk(_chunks(arr.shape, chunk_positions))


def _read_h5(path, scan_shape, chunk_positions, dataset) -> Scan4D:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from None
    found: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim in (3, 4) and obj.size > 0:
            found.append(name)

    if dataset is None:
        f.visititems(visit)
        four = [n for n in found if f[n].ndim == 4]
        if not (four or found):
            raise ValueError(f"{path}: no 3-D or 4-D dataset found (expected e.g. 'data' or 'entry/data/data_000001')")
        dataset = (four or found)[0]
    elif dataset not in f:
        raise ValueError(f"{path}: dataset {dataset!r} not found")
    ds = f[dataset]
    arr = _as_4d(da.from_array(ds, chunks=ds.chunks or -1), path, scan_shape, chunk_positions)
    pix = ds.attrs.get("pixel_inv_angstrom", f.attrs.get("pixel_inv_angstrom"))
    step = ds.attrs.get("step_nm", f.attrs.get("step_nm"))
    return Scan4D(arr, f"{path}:{dataset}", float(pix) if pix is not None else None,
                  float(step) if step is not None else None)


def _read_rsciio(path, suffix, scan_shape, chunk_positions) -> Scan4D:
    import importlib

    mod = {".hspy": "rsciio.hspy", ".zspy": "rsciio.zspy", ".mib": "rsciio.quantumdetector",
           ".blo": "rsciio.blockfile"}[suffix]
    try:
        reader = importlib.import_module(mod).file_reader
        sigs = reader(str(path), lazy=True)
    except Exception as exc:  # rosettasciio raises many types for corrupt files
        raise ValueError(f"{path}: rosettasciio could not read it as {suffix} ({type(exc).__name__}: {exc})") from None
    sig = next((s for s in sigs if np.ndim(s["data"]) in (3, 4)), None)
    if sig is None:
        raise ValueError(f"{path}: no 3-D or 4-D signal inside")
    data = sig["data"] if isinstance(sig["data"], da.Array) else da.from_array(sig["data"])
    axes = sig.get("axes", [])
    pix = None
    sig_axes = [a for a in axes if a.get("navigate") is False]
    if sig_axes and sig_axes[-1].get("units") in ("1/Å", "1/A", "Å^-1"):
        pix = float(sig_axes[-1]["scale"])
    elif sig_axes and sig_axes[-1].get("units") in ("1/nm", "nm^-1"):
        pix = float(sig_axes[-1]["scale"]) / 10
    return Scan4D(_as_4d(data, path, scan_shape, chunk_positions), str(path), pix)


def write_scan(path, data, *, pixel_inv_angstrom: float | None = None, step_nm: float | None = None,
               extra: dict | None = None) -> Path:
    """Write a scan as HDF5 (dataset ``data``, chunked per pattern) atomically; ``extra`` arrays
    go to datasets of their own (e.g. ground truth)."""
    import h5py

    from layerscope._io import atomic_path

    path = Path(path)
    with atomic_path(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        ds = f.create_dataset("data", data=data, chunks=(1, 1, *np.shape(data)[2:]), compression="lzf")
        if pixel_inv_angstrom is not None:
            ds.attrs["pixel_inv_angstrom"] = pixel_inv_angstrom
        if step_nm is not None:
            ds.attrs["step_nm"] = step_nm
        for k, v in (extra or {}).items():
            f.create_dataset(k, data=v)
    return path
