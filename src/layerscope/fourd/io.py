"""Reading 4D-STEM scans lazily (dask) so that scans larger than memory work.

* ``.npy`` — memory-mapped with NumPy, wrapped in a dask array;
* ``.h5`` / ``.hdf5`` / ``.emd`` / Dectris or Arina master files — h5py (with the
  bitshuffle/LZ4 filters of hdf5plugin): the first 4-D dataset (scan y, scan x, ky,
  kx), or a 3-D stack of frames reshaped with ``scan_shape``. Dectris master files
  link their frames (``entry/data/data_000001``, …) to data files: the links are
  followed and concatenated, the detector's ``pixel_mask`` pixels are zeroed; the
  scan shape of an Arina ``*_master.h5`` comes from its sibling ``*.h5`` "STEM
  Metadata" (NumPixelsY/X) when present. layerscope's own files carry
  ``pixel_inv_angstrom`` and ``step_nm`` attributes;
* ``.hspy``, ``.zspy``, ``.mib``, ``.blo`` — rosettasciio's readers with ``lazy=True``;
  a ``.mib`` is first checked against its header: the frame count its ``.hdr``
  promises (or a partial last frame) must match the file size, else it is truncated;
  RAW (``R64``) frames are refused with a message (:mod:`layerscope.fourd.mib`);
* ``.zip`` — a Merlin bundle (``.mib`` + ``.hdr``): the first (or ``dataset``-named)
  ``.mib`` is extracted to a temporary folder and read as above;
* EMPAD ``.raw`` — (ky, kx + 2) float32 frames, the two trailing rows of each frame
  being metadata (128 × 130 for the EMPAD 1); the scan shape comes from the sibling
  ``.xml`` when present, else ``scan_shape`` or a square scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np

from layerscope._errors import reader

__all__ = ["Scan4D", "read_scan", "write_scan"]


@dataclass(frozen=True)
class Scan4D:
    """A lazily loaded scan: ``data`` is a dask array (scan y, scan x, ky, kx)."""

    data: da.Array
    source: str
    pixel_inv_angstrom: float | None = None
    step_nm: float | None = None


class _Guarded:
    """An array-like view of a file's data whose reads turn the errors of a damaged file (a corrupt
    compressed chunk, a frame cut short) into an :class:`~layerscope.InputError` naming the file:
    the scan is read lazily, so such errors surface only when the patterns are computed."""

    def __init__(self, src, path):
        self.src, self.path = src, path
        self.shape, self.dtype, self.ndim = tuple(src.shape), np.dtype(src.dtype), len(src.shape)

    def __getitem__(self, key):
        import struct

        from layerscope._errors import InputError

        try:
            out = self.src[key]
            if isinstance(out, da.Array):
                out = out.compute(scheduler="synchronous")
            return np.asarray(out)
        except InputError:
            raise
        except (OSError, ValueError, RuntimeError, EOFError, struct.error, IndexError, KeyError, TypeError) as exc:
            raise InputError(f"readable pattern data ({type(exc).__name__}: {exc})", path=self.path) from None


def _guarded(src, path, chunks) -> da.Array:
    return da.from_array(_Guarded(src, path), chunks=chunks, asarray=False)


def _chunks(shape, chunk_positions):
    return (min(shape[0], chunk_positions), min(shape[1], chunk_positions), shape[2], shape[3])


@reader
def read_scan(path, *, scan_shape=None, chunk_positions: int = 32, dataset: str | None = None) -> Scan4D:
    """Open a 4D-STEM scan lazily; see the module docstring for the formats.

    Parameters
    ----------
    path : str or Path
        The scan (``.npy``, ``.h5``/``.hdf5``/``.emd``, ``.hspy``, ``.zspy``, ``.mib``, ``.zip``,
        ``.blo`` or EMPAD ``.raw``).
    scan_shape : (int, int), optional
        Scan (y, x) positions for a 3-D stack of frames (default: from the file).
    chunk_positions : int
        Probe positions per dask chunk side.
    dataset : str, optional
        The HDF5 dataset, or the ``.mib`` inside a ``.zip``, when the file holds several.

    Returns
    -------
    Scan4D
        A dask array (scan y, scan x, ky, kx), its source and, for layerscope's own files, the
        detector calibration (1/Å per pixel) and the scan step (nm).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such 4D-STEM scan")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - a damaged header fails in numpy's parser (ValueError,
            # SyntaxError, tokenize.TokenError, OSError ...): all mean "not a readable .npy"
            from layerscope._errors import InputError

            raise InputError(f"a readable .npy array ({type(exc).__name__}: {exc})", path=path,
                             where="the .npy header") from None
        # chunk the memory map directly: each task reads only its own block of patterns
        chunks = _chunks(arr.shape, chunk_positions) if arr.ndim == 4 else (max(1, chunk_positions**2), -1, -1)
        if arr.ndim not in (3, 4):
            raise ValueError(f"{path}: expected a 4-D array (scan y, scan x, ky, kx), got shape {arr.shape}")
        return Scan4D(_as_4d(da.from_array(arr, chunks=chunks), path, scan_shape, chunk_positions), str(path))
    if suffix in (".h5", ".hdf5", ".emd", ".nxs"):
        from layerscope._errors import InputError

        try:
            return _read_h5(path, scan_shape, chunk_positions, dataset)
        except InputError:
            raise
        except (RuntimeError, OSError, KeyError) as exc:  # h5py on a damaged file's structure
            raise InputError(f"a readable HDF5 file ({type(exc).__name__}: {exc})", path=path) from None
    if suffix == ".mib":
        from layerscope.fourd.mib import check_mib

        check_mib(path)
        return _read_rsciio(path, suffix, scan_shape, chunk_positions)
    if suffix == ".blo":
        _check_blo(path)
    if suffix in (".hspy", ".zspy", ".blo"):
        return _read_rsciio(path, suffix, scan_shape, chunk_positions)
    if suffix == ".zip":
        return _read_zip(path, scan_shape, chunk_positions, dataset)
    if suffix == ".raw":
        return _read_empad(path, scan_shape, chunk_positions)
    raise ValueError(f"{path}: unknown 4D-STEM format {suffix!r} (expected .npy, .h5, .hdf5, .emd, .hspy, "
                     ".zspy, .mib, .zip, .blo or .raw)")


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
        import hdf5plugin  # noqa: F401  (registers bitshuffle/LZ4 and other filters with h5py)
    except ImportError:
        pass
    from layerscope._h5guard import check_hdf5

    check_hdf5(path)  # a damaged HDF5 file can hang or crash libhdf5 (issue 15 fuzzing)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from None
    found: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim in (3, 4) and obj.size > 0:
            found.append(name)

    if dataset is None and "entry/data" in f and any(k.startswith("data_") for k in f["entry/data"]):
        return _read_dectris(f, path, scan_shape, chunk_positions)
    if dataset is None:
        f.visititems(visit)
        four = [n for n in found if f[n].ndim == 4]
        if not (four or found):
            raise ValueError(f"{path}: no 3-D or 4-D dataset found (expected e.g. 'data' or 'entry/data/data_000001')")
        dataset = (four or found)[0]
    elif dataset not in f:
        raise ValueError(f"{path}: dataset {dataset!r} not found")
    ds = f[dataset]
    _check_filters(ds, path, dataset)
    arr = _as_4d(_guarded(ds, path, ds.chunks or -1), path, scan_shape, chunk_positions)
    pix = ds.attrs.get("pixel_inv_angstrom", f.attrs.get("pixel_inv_angstrom"))
    step = ds.attrs.get("step_nm", f.attrs.get("step_nm"))
    return Scan4D(arr, f"{path}:{dataset}", float(pix) if pix is not None else None,
                  float(step) if step is not None else None)


def _check_filters(ds, path, name) -> None:
    """Read one element: a missing HDF5 filter plugin (bitshuffle/LZ4) surfaces here with a clear message."""
    from layerscope._errors import InputError

    try:
        ds[(0,) * ds.ndim]
    except OSError as exc:
        filters = ", ".join(f"{k}" for k in getattr(ds, "_filters", {})) or "unknown"
        raise InputError(f"a dataset this HDF5 installation can decode; its compression filter(s) {filters} "
                         f"(32008 = bitshuffle/LZ4 of Dectris detectors) are not available ({exc}). "
                         "Install hdf5plugin (pip install hdf5plugin)", path=path, where=f"dataset {name}") from None


def _read_dectris(f, path, scan_shape, chunk_positions) -> Scan4D:
    """Dectris/Arina master file: frames linked from data files, concatenated; masked pixels zeroed."""
    from layerscope._errors import InputError

    names = sorted(k for k in f["entry/data"] if k.startswith("data_"))
    parts = []
    for n in names:
        try:
            ds = f["entry/data"][n]
        except KeyError:
            raise InputError(f"the data file that link entry/data/{n} points to "
                             f"({f['entry/data'].get(n, getlink=True)})", path=path) from None
        _check_filters(ds, path, f"entry/data/{n}")
        parts.append(_guarded(ds, path, ds.chunks or -1))
    arr = da.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    mask_name = "entry/instrument/detector/detectorSpecific/pixel_mask"
    if mask_name in f and f[mask_name].shape == arr.shape[1:]:
        arr = arr * (f[mask_name][()] == 0)
    if scan_shape is None and arr.ndim == 3:
        meta = Path(str(path).replace("_master.h5", ".h5"))
        if meta != path and meta.exists():
            import h5py

            from layerscope._h5guard import check_hdf5

            check_hdf5(meta)
            with h5py.File(meta, "r") as m:
                a = m["STEM Metadata"].attrs if "STEM Metadata" in m else {}
                if "NumPixelsY" in a and "NumPixelsX" in a:
                    scan_shape = (int(np.ravel(a["NumPixelsY"])[0]), int(np.ravel(a["NumPixelsX"])[0]))
    return Scan4D(_as_4d(arr, path, scan_shape, chunk_positions), f"{path}:entry/data")


def _read_zip(path, scan_shape, chunk_positions, dataset) -> Scan4D:
    """A Merlin bundle: extract the first (or the named) .mib with its .hdr to a temporary folder."""
    import atexit
    import shutil
    import tempfile
    import zipfile

    from layerscope._errors import InputError

    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InputError(f"a zip archive ({exc})", path=path) from None
    with z:
        mibs = sorted(n for n in z.namelist() if n.lower().endswith(".mib"))
        if dataset is not None:
            mibs = [n for n in mibs if n == dataset or Path(n).name == dataset]
        if not mibs:
            raise InputError("a Merlin .mib file inside the zip" + (f" named {dataset!r}" if dataset else ""),
                             path=path)
        tmp = Path(tempfile.mkdtemp(prefix="layerscope-mib-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        name = mibs[0]
        hdr = name[:-4] + ".hdr"
        for n in [name] + ([hdr] if hdr in z.namelist() else []):
            target = tmp / Path(n).name
            with z.open(n) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    scan = read_scan(tmp / Path(name).name, scan_shape=scan_shape, chunk_positions=chunk_positions)
    # the lazy array reads from the extracted copy, which lives until the interpreter exits
    return Scan4D(scan.data, f"{path}:{name}", scan.pixel_inv_angstrom, scan.step_nm)


def _read_empad(path, scan_shape, chunk_positions) -> Scan4D:
    """EMPAD .raw: float32 frames of (ky, kx + 2) rows, the last two rows metadata."""
    import re

    from layerscope._errors import InputError

    size = path.stat().st_size
    ky = kx = 128
    xml = path.with_suffix(".xml")
    if scan_shape is None and xml.exists():
        text = xml.read_text(errors="replace")
        sx = re.search(r"<scan_parameters[^>]*>.*?<scan_resolution_x>(\d+)<", text, re.S)
        sy = re.search(r"<scan_resolution_y>(\d+)<", text)
        if sx and sy:
            scan_shape = (int(sy.group(1)), int(sx.group(1)))
    frame = ky * (kx + 2) * 4
    if size == 0 or size % frame:
        raise InputError(f"an EMPAD .raw file: a whole number of {kx}×{ky + 2} float32 frames ({frame} bytes "
                         f"each), got {size} bytes", path=path)
    n = size // frame
    if scan_shape is not None and int(np.prod(scan_shape)) != n:
        raise InputError(f"{int(np.prod(scan_shape))} frames for the scan {tuple(scan_shape)}, the file holds {n} "
                         "(truncated?)", path=path)
    mm = np.memmap(path, dtype="<f4", mode="r", shape=(n, ky + 2, kx))
    arr = da.from_array(mm, chunks=(max(1, chunk_positions ** 2), -1, -1))[:, :ky, :]
    return Scan4D(_as_4d(arr, path, scan_shape, chunk_positions), str(path))


def _check_blo(path) -> None:
    """A NanoMegas .blo header's offsets must lie inside the file: rosettasciio reads up to
    ``Data_offset_1`` in one call, so a damaged offset would make it allocate gigabytes."""
    from rsciio.blockfile._api import get_header_dtype_list

    from layerscope._errors import InputError

    size = path.stat().st_size
    dt = np.dtype(get_header_dtype_list("<"))
    if size < dt.itemsize:
        raise InputError(f"a NanoMegas blockfile header of {dt.itemsize} bytes; the file has {size}", path=path)
    with open(path, "rb") as fh:
        head = np.frombuffer(fh.read(dt.itemsize), dtype=dt)[0]
    for key in ("Data_offset_1", "Data_offset_2"):
        if not 0 <= int(head[key]) <= size:
            raise InputError(f"a {key} inside the file ({size} bytes), got {int(head[key])}", path=path,
                             where="header")


def _read_rsciio(path, suffix, scan_shape, chunk_positions) -> Scan4D:
    import importlib

    mod = {".hspy": "rsciio.hspy", ".zspy": "rsciio.zspy", ".mib": "rsciio.quantumdetector",
           ".blo": "rsciio.blockfile"}[suffix]
    if suffix == ".hspy":
        from layerscope._h5guard import check_hdf5

        check_hdf5(path)  # a damaged HDF5 file can hang or crash libhdf5 (issue 15 fuzzing)
    try:
        reader = importlib.import_module(mod).file_reader
        sigs = reader(str(path), lazy=True)
    except Exception as exc:  # rosettasciio raises many types for corrupt files
        raise ValueError(f"{path}: rosettasciio could not read it as {suffix} ({type(exc).__name__}: {exc})") from None
    sig = next((s for s in sigs if np.ndim(s["data"]) in (3, 4)), None)
    if sig is None:
        raise ValueError(f"{path}: no 3-D or 4-D signal inside")
    data = sig["data"] if isinstance(sig["data"], da.Array) else da.from_array(sig["data"])
    size = path.stat().st_size
    if suffix in (".mib", ".blo") and data.nbytes > 8 * size + 2**20:
        # uncompressed frames (1-bit .mib frames unpack to 8×): a header promising more is damaged
        from layerscope._errors import InputError

        raise InputError(f"frames that fit in the file: its header describes {data.shape} {data.dtype} patterns "
                         f"({data.nbytes} bytes), the file holds {size} bytes", path=path)
    data = _guarded(data, path, data.chunks)
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
