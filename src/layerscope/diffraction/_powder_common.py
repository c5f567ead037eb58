"""What the plain-text powder readers share: :class:`PowderData`, reading the lines of a file, and the
checks every reader applies to what it returns (see :mod:`layerscope.diffraction.readers`)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_GSAS_EXT = {".gsa", ".gss", ".gsas", ".gda", ".fxye", ".gs"}
_COLUMN_EXT = {".xye", ".xy", ".csv", ".txt", ".chi"}
_CIF_EXT = {".cif", ".mcif"}


@dataclass(frozen=True, eq=False)
class PowderData:
    """One measured powder pattern.

    Attributes
    ----------
    x : ndarray
        Time of flight in µs (``kind == "tof"``) or 2θ in degrees
        (``kind == "cw"``), strictly increasing.
    y : ndarray
        Intensity (counts or normalised counts; per µs when a GSAS file was
        divided by its bin widths, see ``meta["bin_width_normalised"]``).
    sigma : ndarray
        Standard uncertainty of ``y``, finite and > 0. Formats without an esd
        get sqrt(max(y, 1)) (Poisson, with 1 count as the floor) and say so in
        ``meta["sigma_source"]``.
    kind : {"tof", "cw"}
    bank : int or None
        Detector bank (GSAS files); None for single-pattern formats.
    source : str
        Path the pattern was read from.
    meta : dict
        Header lines, title, format details, bin information and every
        conversion that was applied.

    The arrays are made read-only so that the frozen dataclass really is
    immutable.
    """

    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    kind: str
    bank: int | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        arrs = []
        for name in ("x", "y", "sigma"):
            a = np.array(getattr(self, name), dtype=float)  # a private copy
            if a.ndim != 1:
                raise ValueError(f"PowderData.{name} must be 1-D, got shape {a.shape}")
            a.flags.writeable = False
            object.__setattr__(self, name, a)
            arrs.append(a)
        if not (arrs[0].size == arrs[1].size == arrs[2].size):
            raise ValueError(
                f"PowderData: x, y, sigma lengths differ ({arrs[0].size}, {arrs[1].size}, {arrs[2].size})"
            )
        if self.kind not in ("tof", "cw"):
            raise ValueError(f"PowderData.kind must be 'tof' or 'cw', got {self.kind!r}")

    def __len__(self) -> int:
        return self.x.size


# --------------------------------------------------------------------------- common helpers


def _read_lines(path) -> tuple[Path, list[str]]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such powder-data file")
    if p.is_dir():
        raise ValueError(f"{p}: is a folder; expected a powder-pattern file")
    raw = p.read_bytes()
    if not raw.strip():
        raise ValueError(f"{p}: file is empty; expected a powder pattern")
    if b"\x00" in raw[:4096]:
        raise ValueError(f"{p}: binary file; expected a plain-text powder pattern (GSAS, FullProf, xye/xy/csv)")
    # latin-1 never fails and keeps the µ/° bytes of old headers readable.
    return p, raw.decode("latin-1").splitlines()


def _looks_like_cif(lines) -> bool:
    head = [ln.strip() for ln in lines[:200]]
    has_block = any(ln.lower().startswith("data_") for ln in head)
    has_tags = sum(1 for ln in head if ln.startswith("_") or ln.lower() == "loop_")
    return has_block and has_tags >= 2


def _cif_error(p: Path) -> ValueError:
    return ValueError(
        f"{p}: this is a CIF (crystal structure) file, not a powder pattern; expected GSAS "
        "(.gsa/.fxye), FullProf (.dat) or x-y-sigma columns (.xye/.xy/.csv). Load structures "
        "with layerscope.crystal instead"
    )


def _check_points(p: Path, x, y, sigma, line_nos) -> None:
    """Finite values, σ > 0, strictly increasing x; name the first bad line."""

    def ln(i):
        return f"line {int(line_nos[i])}" if line_nos is not None else f"point {i}"

    for name, a in (("x", x), ("y", y), ("sigma", sigma)):
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            i = bad[0]
            raise ValueError(
                f"{p}, {ln(i)}: {name} = {float(a[i])!r} is not a finite number ({bad.size} such value(s)); "
                "expected finite numbers"
            )
    bad = np.flatnonzero((sigma < 0) | ((sigma == 0) & (not _ZERO_SIGMA_OK.get())))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"{p}, {ln(i)}: sigma = {float(sigma[i])!r} <= 0 ({bad.size} such value(s)); expected positive "
            "uncertainties (remove or fix those points before reading, or read with zero_sigma='keep' to "
            "give them weight 0 as GSAS-II does)"
        )
    if x.size >= 2:
        bad = np.flatnonzero(np.diff(x) <= 0)
        if bad.size:
            i = bad[0] + 1
            raise ValueError(
                f"{p}, {ln(i)}: x = {float(x[i])!r} does not increase after {float(x[i - 1])!r}; expected "
                "strictly increasing x"
            )


def _poisson_sigma(y):
    return np.sqrt(np.maximum(y, 1.0))


#: read_powder(zero_sigma="keep") lets the format readers accept σ = 0 (weight-0 points, GSAS-II's reading)
_ZERO_SIGMA_OK: contextvars.ContextVar[bool] = contextvars.ContextVar("zero_sigma_ok", default=False)
