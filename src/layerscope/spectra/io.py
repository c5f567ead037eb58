"""Spectrum files: Gatan .dm3/.dm4 and EMSA .msa through rosettasciio; two-column text.

Returns the energy axis (eV, from the file's calibration) and the counts, a
1-D spectrum or a stack (line scan / map flattened to (n_positions, n_channels)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Spectrum:
    """Energy axis (eV) and counts; ``counts`` is (n_channels,) or (n_positions, n_channels)."""

    energy_eV: np.ndarray
    counts: np.ndarray
    position_nm: np.ndarray | None = None
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False)


_UNIT_TO_EV = {"ev": 1.0, "kev": 1e3, "mev": 1e6}
_LEN_TO_NM = {"nm": 1.0, "µm": 1e3, "um": 1e3, "å": 0.1, "a": 0.1, "pm": 1e-3}


def _from_rsciio(path: Path, reader) -> Spectrum:
    try:
        sigs = reader(str(path))
    except Exception as exc:
        raise ValueError(f"{path}: could not read the spectrum ({type(exc).__name__}: {exc}); "
                         f"truncated or not a {path.suffix} file?") from exc
    if not sigs:
        raise ValueError(f"{path}: no signal in the file")
    sig = sigs[0]
    data = np.asarray(sig["data"], float)
    axes = sig["axes"]
    sig_axis = next((a for a in axes if a.get("navigate") is False), axes[-1])
    n = data.shape[-1]
    unit = str(sig_axis.get("units") or "eV").strip().lower()
    scale = _UNIT_TO_EV.get(unit)
    if scale is None:
        raise ValueError(f"{path}: spectral axis unit {unit!r} is not an energy (eV/keV)")
    if "axis" in sig_axis:
        energy = scale * np.asarray(sig_axis["axis"], float)
    else:
        energy = scale * (sig_axis.get("offset", 0.0) + sig_axis.get("scale", 1.0) * np.arange(n))
    position = None
    if data.ndim > 1:
        nav = [a for a in axes if a is not sig_axis]
        data = data.reshape(-1, n)
        if len(nav) == 1:
            u = str(nav[0].get("units") or "").strip().lower()
            f = _LEN_TO_NM.get(u, 1.0)
            position = f * (nav[0].get("offset", 0.0) + nav[0].get("scale", 1.0)
                            * np.arange(data.shape[0]))
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{path}: spectrum contains non-finite values")
    return Spectrum(energy, data, position, str(path), {"rsciio_metadata": sig.get("metadata", {})})


def _from_text(path: Path) -> Spectrum:
    try:
        arr = np.loadtxt(path, delimiter=None if path.suffix.lower() != ".csv" else ",",
                         comments="#", ndmin=2, skiprows=_header_rows(path))
    except ValueError as exc:
        raise ValueError(f"{path}: expected two numeric columns (energy in eV, counts): {exc}") \
            from None
    if arr.shape[1] < 2 or arr.shape[0] < 3:
        raise ValueError(f"{path}: expected at least 3 rows of (energy eV, counts), "
                         f"got shape {arr.shape}")
    return Spectrum(arr[:, 0], arr[:, 1] if arr.shape[1] == 2 else arr[:, 1:].T, None, str(path))


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
    for line in text.splitlines():
        if line.upper().startswith("#NPOINTS"):
            n = int(float(line.split(":", 1)[1]))
            if spec.counts.shape[-1] != n:
                raise ValueError(f"{path}: EMSA header declares {n} points but the file holds "
                                 f"{spec.counts.shape[-1]} (truncated file?)")
    if "#ENDOFDATA" not in text.upper():
        raise ValueError(f"{path}: EMSA file has no '#ENDOFDATA' line (truncated file?)")


def read_spectrum(path) -> Spectrum:
    """Read an EELS/EDS/XAS spectrum (``.dm3``, ``.dm4``, ``.msa``/``.ems``, ``.csv``/``.txt``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such spectrum file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: file is empty, expected a spectrum")
    suffix = path.suffix.lower()
    if suffix in (".dm3", ".dm4"):
        from rsciio.digitalmicrograph import file_reader
        return _from_rsciio(path, file_reader)
    if suffix in (".msa", ".ems", ".mas"):
        with open(path, "rb") as fh:
            head = fh.read(12)
        if not head.startswith(b"#FORMAT"):
            raise ValueError(f"{path}: not an EMSA/MAS file (expected '#FORMAT' first, "
                             f"found {head!r})")
        from rsciio.msa import file_reader
        spec = _from_rsciio(path, file_reader)
        _check_msa_npoints(path, spec)
        return spec
    if suffix in (".csv", ".txt", ".dat"):
        return _from_text(path)
    raise ValueError(f"{path}: unsupported spectrum file type {suffix!r} "
                     f"(supported: .dm3 .dm4 .msa .ems .csv .txt .dat)")
