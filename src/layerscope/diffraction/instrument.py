"""TOF instrument parameters: GSAS-II ``.instprm`` files and a GPPD-like default.

The terms mean what GSAS-II means by them (see :mod:`layerscope.diffraction.tof_profile`
for the formulas): ``difC`` (µs/Å), ``difA`` (µs/Å²), ``difB`` (µs·Å), ``Zero`` (µs),
``alpha`` (µs⁻¹·Å), ``beta-0`` (µs⁻¹), ``beta-1`` (µs⁻¹·Å⁴), ``beta-q`` (µs⁻¹·Å²),
``sig-0`` (µs²), ``sig-1`` (µs²/Å²), ``sig-2`` (µs²/Å⁴), ``sig-q`` (µs²/Å), ``X`` (µs/Å),
``Y`` (µs/Å²), ``Z`` (µs), ``2-theta`` (deg), ``fltPath`` (m).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from layerscope._errors import reader as _input_reader  # noqa: E402

__all__ = ["TOFInstrument", "read_instprm", "write_instprm", "gppd_like", "GPPD_TOF_RANGE_US"]

# instprm key -> dataclass field
_KEYS = {
    "difC": "difc", "difA": "difa", "difB": "difb", "Zero": "zero", "alpha": "alpha",
    "beta-0": "beta0", "beta-1": "beta1", "beta-q": "betaq", "sig-0": "sig0", "sig-1": "sig1",
    "sig-2": "sig2", "sig-q": "sigq", "X": "x", "Y": "y", "Z": "z", "2-theta": "two_theta",
    "fltPath": "flight_path_m",
}
_REQUIRED = ("difC", "alpha", "beta-0", "beta-1", "sig-0", "sig-1", "sig-2")


@dataclass(frozen=True)
class TOFInstrument:
    """One TOF detector bank, GSAS-II parameter meanings."""

    difc: float
    difa: float = 0.0
    difb: float = 0.0
    zero: float = 0.0
    alpha: float = 0.1
    beta0: float = 0.02
    beta1: float = 0.05
    betaq: float = 0.0
    sig0: float = 0.0
    sig1: float = 100.0
    sig2: float = 0.0
    sigq: float = 0.0
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    two_theta: float = 90.0
    flight_path_m: float = 60.0
    source: str = ""

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name != "source" and not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"{self.source or 'instrument'}: {f.name} must be a finite number, got {v!r}")
        if self.difc <= 0:
            raise ValueError(f"{self.source or 'instrument'}: difC must be > 0 µs/Å, got {self.difc}")

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if k != "source"}

    def replace(self, **kw) -> "TOFInstrument":
        return replace(self, **kw)

    def d_from_tof(self, tof_us):
        """Invert the calibration (Newton iterations on t(d); exact for difA = difB = 0)."""
        import numpy as np

        t = np.asarray(tof_us, dtype=float)
        d = (t - self.zero) / self.difc
        for _ in range(30):
            f = self.zero + self.difc * d + self.difa * d**2 + self.difb / d - t
            df = self.difc + 2 * self.difa * d - self.difb / d**2
            d = d - f / df
        return d


@_input_reader
def read_instprm(path: str | os.PathLike, *, bank: int | None = None) -> TOFInstrument:
    """Read a GSAS-II instrument parameter file (TOF).

    Raises ``ValueError`` naming the file and the line/key when the file is not a TOF
    ``.instprm``, a value is not a number, or a required key (difC, alpha, beta-0, beta-1,
    sig-0, sig-1, sig-2) is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: instrument parameter file not found")
    vals: dict[str, float] = {}
    typ = None
    banks_seen = set()
    for n, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if ":" not in line:
            raise ValueError(f"{path}, line {n}: expected 'key:value', got {line[:60]!r}")
        key, val = (s.strip() for s in line.split(":", 1))
        if key.lower() == "bank":
            banks_seen.add(val)
            continue
        if key == "Type":
            typ = val
            continue
        if key in _KEYS:
            try:
                vals[key] = float(val)
            except ValueError:
                raise ValueError(f"{path}, line {n}: {key} must be a number, got {val!r}") from None
    if typ is not None and not typ.startswith("PNT"):
        raise ValueError(f"{path}: Type {typ!r} is not a TOF neutron instrument (expected 'PNT')")
    missing = [k for k in _REQUIRED if k not in vals]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)} (a TOF .instprm needs {', '.join(_REQUIRED)})")
    kw = {_KEYS[k]: v for k, v in vals.items()}
    return TOFInstrument(**kw, source=str(path))


def write_instprm(inst: TOFInstrument, path: str | os.PathLike) -> Path:
    """Write a GSAS-II TOF ``.instprm`` file (atomically)."""
    path = Path(path)
    inv = {v: k for k, v in _KEYS.items()}
    lines = ["#GSAS-II instrument parameter file; do not add/delete items!", "Type:PNT"]
    for k, v in inst.as_dict().items():
        lines.append(f"{inv[k]}:{v!r}")
    from layerscope._io import write_text

    return write_text(path, "\n".join(lines) + "\n")


def gppd_like() -> TOFInstrument:
    """A 90° bank like those of the GPPD diffractometer at CSNS (illustrative values).

    2θ = 90°, total flight path 31.5 m ⇒ difC = 252.777·L·2 sin θ ≈ 11 260 µs/Å, so the
    TOF range 5 000–56 000 µs covers d ≈ 0.45–5.0 Å: the O3' (001)/O3 (003) layer
    reflection near 4.75 Å and the graphite/LiC12/LiC6 (00l) lines at 3.3–3.7 Å, which
    the paper separates "in the high d-value region", are inside it. Gaussian width
    σ_t/t ≈ 0.12 % (Δd/d ≈ 0.3 % FWHM), moderate exponential tails. These are not
    calibrated GPPD values; they give simulated patterns the paper's look and resolution.
    """
    two_theta, flight = 90.0, 31.5
    difc = 252.777 * flight * 2 * math.sin(math.radians(two_theta / 2))
    return TOFInstrument(difc=round(difc, 3), difa=0.0, difb=0.0, zero=0.0, alpha=0.10, beta0=0.02,
                         beta1=0.008, betaq=0.0, sig0=4.0, sig1=183.0, sig2=1.0, sigq=0.0, x=0.0, y=0.0,
                         two_theta=two_theta, flight_path_m=flight, source="gppd-like default")


#: default TOF range (µs) for the GPPD-like bank
GPPD_TOF_RANGE_US = (5000.0, 56000.0)
