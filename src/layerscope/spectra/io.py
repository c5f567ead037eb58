"""Spectrum files through rosettasciio, two-column text, and HyperSpy signals in memory.

Formats: Gatan ``.dm3``/``.dm4``, EMSA ``.msa``/``.ems``, HyperSpy ``.hspy``/``.zspy``, Velox/
NCEM ``.emd`` (all read by rosettasciio) and ``.csv``/``.txt``/``.dat`` text (first column the
energy in eV, one further column per spectrum). Spectrum images and line scans may store their
axes in any order: the energy axis is the one whose unit is an energy (eV, keV, meV), whatever
rosettasciio's ``navigate`` flag says (DM files written by some acquisition scripts mark the
energy axis as navigation). A file with no axis in energy units is refused, never guessed.

The counts come back as ``(n_spectra, n_channels)`` with the navigation shape kept in
:attr:`Spectrum.nav_shape`, so results can be put back on a map (``values.reshape(nav_shape)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layerscope._errors import InputError, reader as _reader


@dataclass(frozen=True)
class Spectrum:
    """Energy axis (eV) and counts; ``counts`` is (n_channels,) or (n_spectra, n_channels).

    ``nav_shape`` is the navigation shape of a line scan or spectrum image (row-major, the
    order of the rows of ``counts``); ``()`` for a single spectrum.
    """

    energy_eV: np.ndarray
    counts: np.ndarray
    position_nm: np.ndarray | None = None
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False)
    nav_shape: tuple = ()


_UNIT_TO_EV = {"ev": 1.0, "kev": 1e3, "mev": 1e-3}
_LEN_TO_NM = {"nm": 1.0, "µm": 1e3, "μm": 1e3, "um": 1e3, "å": 0.1, "a": 0.1, "pm": 1e-3,
              "mm": 1e6, "m": 1e9}


def _unit(ax) -> str:
    u = ax.get("units") if isinstance(ax, dict) else getattr(ax, "units", None)
    return str(u or "").strip().lower()


def _axis_values(ax, n) -> np.ndarray:
    get = ax.get if isinstance(ax, dict) else (lambda k, d=None: getattr(ax, k, d))
    if get("axis") is not None:
        return np.asarray(get("axis"), float)
    return float(get("offset", 0.0) or 0.0) + float(get("scale", 1.0) or 1.0) * np.arange(n)


def spectrum_from_arrays(data, axes, *, source="", meta=None) -> Spectrum:
    """Build a :class:`Spectrum` from an array and rosettasciio-style axis dicts.

    ``axes[k]`` describes array dimension ``index_in_array`` (or ``k`` when absent) with
    ``units``, ``offset``, ``scale`` or ``axis``. The energy axis is chosen by its unit.
    """
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite values are refused below
        data = np.asarray(data, float)
    if data.size and not np.all(np.isfinite(data)):
        bad = ~np.isfinite(data)
        raise InputError(f"{int(bad.sum())} of {data.size} data values are not finite numbers (NaN/inf; "
                         f"first at index {tuple(int(i) for i in np.argwhere(bad)[0])}); damaged file?",
                         path=source or None)
    axes = list(axes)
    if len(axes) != data.ndim:
        raise InputError(f"{data.ndim}-D data but {len(axes)} axis descriptions", path=source or None)
    dims = [int(a.get("index_in_array", k)) if isinstance(a, dict) else k for k, a in enumerate(axes)]
    energy_axes = [k for k, a in enumerate(axes) if _unit(a) in _UNIT_TO_EV]
    if not energy_axes:
        units = ", ".join(repr(_unit(a)) for a in axes)
        raise InputError(f"no axis in energy units (eV/keV) among the axes' units {units}; "
                         f"cannot tell which axis is the spectrum", path=source or None)
    if len(energy_axes) > 1:
        # prefer the one rosettasciio marks as signal, else the longest
        sig = [k for k in energy_axes if isinstance(axes[k], dict) and axes[k].get("navigate") is False]
        energy_axes = sig[:1] or [max(energy_axes, key=lambda k: data.shape[dims[k]])]
    ke = energy_axes[0]
    de = dims[ke]
    n = data.shape[de]
    energy = _UNIT_TO_EV[_unit(axes[ke])] * _axis_values(axes[ke], n)
    data = np.moveaxis(data, de, -1)
    nav = [(dims[k], axes[k]) for k in range(len(axes)) if k != ke]
    nav.sort(key=lambda t: t[0])
    nav_shape = tuple(data.shape[:-1])
    counts = data.reshape(-1, n) if data.ndim > 1 else data
    position = None
    if len(nav) == 1:
        ax = nav[0][1]
        f = _LEN_TO_NM.get(_unit(ax))
        if f is not None:
            position = f * _axis_values(ax, counts.shape[0])
    if not np.all(np.isfinite(counts)):
        bad = np.argwhere(~np.isfinite(np.atleast_2d(counts)))[0]
        raise InputError(f"non-finite value in spectrum {bad[0]}, channel {bad[1]}",
                         path=source or None)
    if len(energy) > 1 and not (np.all(np.diff(energy) > 0)):
        raise InputError("energy axis is not increasing", path=source or None)
    return Spectrum(energy, counts, position, str(source), dict(meta or {}), nav_shape)


def _from_rsciio(path: Path, reader) -> Spectrum:
    if path.suffix.lower() in (".hspy", ".emd"):
        from layerscope._h5guard import check_hdf5

        check_hdf5(path)  # a damaged HDF5 file can hang or crash libhdf5 (issue 15 fuzzing)
    try:
        sigs = reader(str(path))
    except Exception as exc:
        raise InputError(f"could not read the spectrum ({type(exc).__name__}: {exc}); "
                         f"truncated or not a {path.suffix} file?", path=path) from exc
    if not sigs:
        raise InputError("no signal in the file", path=path)
    # a file may hold images next to spectra (EMD, hspy): take the first signal with an energy axis
    sig = next((s for s in sigs if any(_unit(a) in _UNIT_TO_EV for a in s["axes"])), sigs[0])
    from layerscope.spectra.acquisition import spectrometer_settings

    return spectrum_from_arrays(sig["data"], sig["axes"], source=str(path),
                                meta={"rsciio_metadata": sig.get("metadata", {}),
                                      "acquisition": spectrometer_settings(sig.get("original_metadata", {}))})


def from_signal(signal) -> Spectrum:
    """A HyperSpy ``Signal1D`` (or exSpy ``EELSSpectrum``) in memory as a :class:`Spectrum`.

    HyperSpy stores navigation axes first (reversed) and the signal axis last; the navigation
    shape of the result is ``signal.data.shape[:-1]``, so ``values.reshape(spec.nav_shape)``
    lines up with ``signal.axes_manager.navigation_shape[::-1]``.
    """
    am = getattr(signal, "axes_manager", None)
    if am is None:
        raise InputError("expected a HyperSpy Signal1D (an object with axes_manager)")
    data = np.asarray(signal.data, float)
    axes = []
    for ax in am._axes:
        axes.append({"units": getattr(ax, "units", ""), "offset": getattr(ax, "offset", 0.0),
                     "scale": getattr(ax, "scale", 1.0), "index_in_array": ax.index_in_array,
                     "axis": np.asarray(ax.axis, float), "navigate": ax.navigate})
    title = getattr(getattr(signal, "metadata", None), "General", None)
    from layerscope.spectra.acquisition import spectrometer_settings

    om = getattr(signal, "original_metadata", None)
    return spectrum_from_arrays(data, axes, source=str(getattr(title, "title", "") or "signal"),
                                meta={"acquisition": spectrometer_settings(om) if om is not None else {}})


def _from_text(path: Path) -> Spectrum:
    try:
        arr = np.loadtxt(path, delimiter=None if path.suffix.lower() != ".csv" else ",",
                         comments="#", ndmin=2, skiprows=_header_rows(path))
    except ValueError as exc:
        raise InputError(f"expected numeric columns (energy in eV, counts...): {exc}", path=path) \
            from None
    if arr.shape[1] < 2 or arr.shape[0] < 3:
        raise InputError(f"expected at least 3 rows of (energy eV, counts), got shape {arr.shape}",
                         path=path)
    if not np.all(np.isfinite(arr)):
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise InputError("non-finite value", path=path, where=f"data row {row + 1}")
    return Spectrum(arr[:, 0], arr[:, 1] if arr.shape[1] == 2 else arr[:, 1:].T, None, str(path),
                    {}, () if arr.shape[1] == 2 else (arr.shape[1] - 1,))


def _header_rows(path: Path) -> int:
    with open(path, errors="replace") as fh:
        first = fh.readline()
    try:
        [float(x) for x in first.replace(",", " ").split()]
        return 0
    except ValueError:
        return 1


def _check_msa_npoints(path: Path, spec: Spectrum) -> None:
    """An EMSA file states its channel count (#NPOINTS); a cut file holds fewer."""
    with open(path, errors="replace") as fh:
        text = fh.read()
    for k, line in enumerate(text.splitlines()):
        if line.upper().startswith("#NPOINTS"):
            n = int(float(line.split(":", 1)[1]))
            if spec.counts.shape[-1] != n:
                raise InputError(f"EMSA header declares {n} points but the file holds "
                                 f"{spec.counts.shape[-1]} (truncated file?)", path=path,
                                 where=f"line {k + 1}")
    if "#ENDOFDATA" not in text.upper():
        raise InputError("EMSA file has no '#ENDOFDATA' line (truncated file?)", path=path)


_RSCIIO = {".dm3": "digitalmicrograph", ".dm4": "digitalmicrograph", ".hspy": "hspy",
           ".zspy": "zspy", ".emd": "emd"}


@_reader
def read_spectrum(path) -> Spectrum:
    """Read an EELS/EDS/XAS spectrum, line scan or spectrum image.

    Supported: ``.dm3`` ``.dm4`` ``.msa``/``.ems`` ``.hspy`` ``.zspy`` ``.emd`` (rosettasciio) and
    ``.csv``/``.txt``/``.dat`` columns. Raises :class:`~layerscope.InputError` naming the file.

    Parameters
    ----------
    path : str or Path
        The spectrum file.

    Returns
    -------
    Spectrum
        Energy axis (eV, from the file's calibration), counts ((n_channels,) or (n_spectra,
        n_channels)), the probe positions (nm) of a line scan, the navigation shape and the file's
        metadata.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such spectrum file")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError("file is empty, expected a spectrum", path=path)
    suffix = path.suffix.lower()
    if suffix in _RSCIIO:
        import importlib
        try:
            reader = importlib.import_module(f"rsciio.{_RSCIIO[suffix]}").file_reader
        except ImportError as exc:
            raise InputError(f"reading {suffix} needs an optional package that is not installed "
                             f"({exc}); for .zspy: pip install zarr", path=path) from None
        return _from_rsciio(path, reader)
    if suffix in (".msa", ".ems", ".mas"):
        with open(path, "rb") as fh:
            head = fh.read(12)
        if not head.startswith(b"#FORMAT"):
            raise InputError(f"not an EMSA/MAS file (expected '#FORMAT' first, found {head!r})",
                             path=path, where="line 1")
        from rsciio.msa import file_reader
        spec = _from_rsciio(path, file_reader)
        _check_msa_npoints(path, spec)
        return spec
    if suffix in (".csv", ".txt", ".dat"):
        return _from_text(path)
    raise InputError(f"unsupported spectrum file type {suffix!r} (supported: .dm3 .dm4 .msa .ems "
                     f".hspy .zspy .emd .csv .txt .dat)", path=path)
