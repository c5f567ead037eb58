"""Constant-wavelength (CW) instrument parameters: GSAS-II ``.instprm`` and GSAS-I ``.prm`` files.

The terms mean what GSAS-II means by them (formulas in :mod:`layerscope.diffraction.cw_profile`):
``Lam`` or ``Lam1``/``Lam2`` (Å) with ``I(L2)/I(L1)``, ``Zero`` (degrees 2θ), ``Polariz.``
(fraction), ``Azimuth`` (degrees), ``U``, ``V``, ``W`` (centideg², Gaussian variance),
``X``, ``Y``, ``Z`` (centideg, Lorentzian FWHM), ``SH/L`` (S/L + H/L, Finger–Cox–Jephcoat axial
divergence). ``Type`` is ``PXC`` (X-ray) or ``PNC`` (neutron).

GSAS-I instrument files (``INS`` records; A. C. Larson & R. B. Von Dreele, GSAS manual, LAUR
86-748) are read with one of two conventions, and the convention is recorded in
:attr:`CWInstrument.reading`:

``"as_written"``
    ``ICONS``: λ1, λ2 (λ2 = 0: one wavelength), zero (centidegrees, converted to degrees),
    polarization (5th value), I(L2)/I(L1) (7th value). ``PRCF1``: profile function type.
    Type 3/4 (pseudo-Voigt + FCJ): GU GV GW GP / LX LY S/L H/L → U V W, X = LX, Y = LY,
    SH/L = S/L + H/L; GP (a Gaussian term ∝ 1/cos²θ that GSAS-II's CW model has no place for)
    is dropped with a warning naming its value. Type 1/2 (Gaussian/Rietveld-asymmetry forms):
    GU GV GW → U V W, X = Y = 0, SH/L = 0.002 (GSAS-II's default), any non-zero
    type-1/2 asymmetry dropped with a warning.
``"gsas2"``
    What GSAS-II (commit 013259a, ``GSASIIfiles``) does: it compares the profile type read as
    a *string* with the integer 3, so every type — 3 included — gets X = Y = Z = 0 and
    SH/L = 0.002; U, V, W, λ, zero, polarization and the Kα2 ratio are read as written. The
    PbSO4 regression values of GSAS-II depend on this reading
    (``shared/data/gsas2-reference/README.md``).

Written by hand: no maintained library reads these small key/value and fixed-record files.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from layerscope._errors import InputError

__all__ = ["CWInstrument", "read_cw_instprm", "read_gsas_prm", "read_cw_instrument", "write_cw_instprm",
           "PRM_READINGS"]

PRM_READINGS = ("gsas2", "as_written")
_SHL_DEFAULT = 0.002


@dataclass(frozen=True)
class CWInstrument:
    """One constant-wavelength histogram's instrument, GSAS-II parameter meanings.

    ``lam2`` is None for a single wavelength; then ``ratio`` (I(L2)/I(L1)) is 0.
    ``radiation`` is ``"xray"`` (Type PXC) or ``"neutron"`` (PNC). ``reading`` says how the file
    was read ("instprm", "gsas2", "as_written"); ``notes`` lists every value that was assumed or
    dropped while reading it.
    """

    radiation: str
    lam1: float
    lam2: float | None = None
    ratio: float = 0.0
    zero: float = 0.0
    polariz: float = 0.0
    azimuth: float = 0.0
    u: float = 0.0
    v: float = 0.0
    w: float = 1.0
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    shl: float = _SHL_DEFAULT
    source: str = ""
    reading: str = "instprm"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.radiation not in ("xray", "neutron"):
            raise ValueError(f"{self.source or 'instrument'}: radiation must be 'xray' or 'neutron', "
                             f"got {self.radiation!r}")
        for name in ("lam1", "ratio", "zero", "polariz", "azimuth", "u", "v", "w", "x", "y", "z", "shl"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"{self.source or 'instrument'}: {name} must be a finite number, got {v!r}")
        if self.lam1 <= 0:
            raise ValueError(f"{self.source or 'instrument'}: wavelength must be > 0 Å, got {self.lam1}")
        if self.lam2 is not None and not (self.lam2 > 0 and math.isfinite(self.lam2)):
            raise ValueError(f"{self.source or 'instrument'}: Lam2 must be > 0 Å, got {self.lam2}")

    @property
    def type_code(self) -> str:
        return "PXC" if self.radiation == "xray" else "PNC"

    @property
    def wavelength(self) -> float:
        """The (Kα1) wavelength in Å used for positions and d_min."""
        return self.lam1

    def as_dict(self) -> dict:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d

    def replace(self, **kw) -> "CWInstrument":
        return replace(self, **kw)


def _float(val: str, path, where, key):
    try:
        v = float(val)
    except ValueError:
        raise InputError(f"{key} must be a number, got {val!r}", path=path, where=where) from None
    if not math.isfinite(v):
        raise InputError(f"{key} must be finite, got {val!r}", path=path, where=where)
    return v


_INSTPRM_KEYS = {"Lam": "lam1", "Lam1": "lam1", "Lam2": "lam2", "I(L2)/I(L1)": "ratio", "Zero": "zero",
                 "Polariz.": "polariz", "Azimuth": "azimuth", "U": "u", "V": "v", "W": "w", "X": "x",
                 "Y": "y", "Z": "z", "SH/L": "shl"}


def read_cw_instprm(path: str | os.PathLike) -> CWInstrument:
    """Read a GSAS-II CW instrument parameter file (``Type:PXC`` or ``Type:PNC``).

    ``key:value`` pairs, one per line or several separated by ``;``. Required: Type, Lam (or
    Lam1 and Lam2 and I(L2)/I(L1)), Zero, U, V, W, X, Y, SH/L, and Polariz. for X-rays.
    Optional: Z (0), Azimuth (0). Raises :class:`InputError` naming the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("instrument parameter file not found", path=p)
    vals: dict[str, float] = {}
    lines_of: dict[str, int] = {}
    typ = None
    typ_line = None
    for n, raw in enumerate(p.read_text(errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for item in line.split(";"):
            item = item.strip()
            if not item:
                continue
            if ":" not in item:
                raise InputError(f"expected 'key:value', got {item[:60]!r}", path=p, where=f"line {n}")
            key, val = (s.strip() for s in item.split(":", 1))
            if key == "Type":
                typ, typ_line = val, n
            elif key in _INSTPRM_KEYS:
                if key in ("Lam", "Lam1") and "lam1" in vals:
                    raise InputError(f"a second wavelength key {key!r} (the file already gave one)", path=p,
                                     where=f"line {n}")
                vals[_INSTPRM_KEYS[key]] = _float(val, p, f"line {n}", key)
                lines_of[key] = n
    if typ is None:
        raise InputError("no 'Type:' line; a GSAS-II CW .instprm starts with Type:PXC or Type:PNC", path=p)
    if typ.startswith("PNT") or typ.startswith("PXT"):
        raise InputError(f"Type {typ!r} is a time-of-flight instrument; a constant-wavelength pattern needs "
                         "Type PXC (X-ray) or PNC (neutron)", path=p, where=f"line {typ_line}")
    if not (typ.startswith("PXC") or typ.startswith("PNC")):
        raise InputError(f"Type {typ!r} is not supported; expected PXC (CW X-ray) or PNC (CW neutron)",
                         path=p, where=f"line {typ_line}")
    radiation = "xray" if typ.startswith("PXC") else "neutron"
    required = ["lam1", "zero", "u", "v", "w", "x", "y", "shl"] + (["polariz"] if radiation == "xray" else [])
    if "lam2" in vals:
        required.append("ratio")
        if "Lam1" not in lines_of:
            raise InputError("Lam2 given without Lam1", path=p, where=f"line {lines_of['Lam2']}")
    inv = {v: k for k, v in _INSTPRM_KEYS.items() if k != "Lam"}
    missing = [("Lam or Lam1" if k == "lam1" else inv[k]) for k in required if k not in vals]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (a CW .instprm needs Type, Lam or Lam1/Lam2/"
                         "I(L2)/I(L1), Zero, Polariz. (X-ray), U, V, W, X, Y, SH/L)", path=p)
    if "Lam1" in lines_of and "lam2" not in vals:
        raise InputError("Lam1 given without Lam2; write Lam for one wavelength", path=p,
                         where=f"line {lines_of['Lam1']}")
    notes = []
    if "z" not in vals:
        notes.append("Z absent: taken as 0")
    if radiation == "neutron":
        vals.pop("polariz", None)
    try:
        return CWInstrument(radiation=radiation, source=str(p), reading="instprm", notes=tuple(notes), **vals)
    except ValueError as e:  # the instrument's own checks (wavelengths > 0 ...)
        raise InputError(f"{str(e).split(': ', 1)[-1]}; expected a physical instrument", path=p,
                         where="Lam/Lam1/Lam2 values") from None


def _ins_records(p: Path) -> dict[str, tuple[int, str]]:
    recs: dict[str, tuple[int, str]] = {}
    for n, raw in enumerate(p.read_text(errors="replace").splitlines(), 1):
        if not raw.startswith("INS"):
            continue
        line = raw.rstrip()
        key = line[:12]
        recs.setdefault(key, (n, line[12:]))
    return recs


def _ins_numbers(recs, key, p, count, what):
    if key not in recs:
        raise InputError(f"no '{key.strip()}' record ({what})", path=p)
    n, text = recs[key]
    toks = text.split()
    if len(toks) < count:
        raise InputError(f"'{key.strip()}' needs {count} numbers ({what}), found {len(toks)}: {text.strip()!r}",
                         path=p, where=f"line {n}")
    return [_float(t, p, f"line {n}", f"{key.strip()} value {i + 1}") for i, t in enumerate(toks[:count])], n


def read_gsas_prm(path: str | os.PathLike, *, bank: int = 1, reading: str = "gsas2") -> CWInstrument:
    """Read one bank of a GSAS-I CW instrument parameter file (``INS`` records).

    ``reading`` is ``"gsas2"`` (GSAS-II's reading, default, needed to reproduce GSAS-II's
    numbers) or ``"as_written"`` (the file's profile terms; see the module docstring). Each value
    assumed or dropped is listed in ``notes`` and, for ``as_written``, warned about.
    """
    if reading not in PRM_READINGS:
        raise ValueError(f"reading must be one of {PRM_READINGS}, got {reading!r}")
    p = Path(path)
    if not p.is_file():
        raise InputError("instrument parameter file not found", path=p)
    recs = _ins_records(p)
    if not recs:
        raise InputError("no 'INS' records; expected a GSAS instrument parameter (.prm) file", path=p)
    if "INS   HTYPE " not in recs:
        raise InputError("no 'INS   HTYPE' record (expected PXCR or PNCR)", path=p)
    n_ht, ht = recs["INS   HTYPE "]
    htype = ht.split()[0] if ht.split() else ""
    if len(htype) < 3 or htype[0] != "P" or htype[1] not in "XN" or htype[2] not in "CT":
        raise InputError(f"HTYPE {htype!r} not understood; expected PXCR/PNCR (CW X-ray/neutron)", path=p,
                         where=f"line {n_ht}")
    if htype[2] == "T":
        raise InputError(f"HTYPE {htype!r} is a time-of-flight instrument; a CW pattern needs PXC or PNC", path=p,
                         where=f"line {n_ht}")
    radiation = "xray" if htype[1] == "X" else "neutron"
    b = f"{bank:2d}"
    icons, n_ic = _ins_numbers(recs, f"INS {b} ICONS", p, 3, "λ1 λ2 zero [pol] [ratio]")
    ic_text = recs[f"INS {b} ICONS"][1]
    toks = ic_text.split()
    lam1, lam2, zero_cdeg = icons[:3]
    polariz = _float(toks[4], p, f"line {n_ic}", "ICONS polarization (5th value)") if len(toks) > 4 else None
    ratio = _float(toks[6], p, f"line {n_ic}", "ICONS I(L2)/I(L1) (7th value)") if len(toks) > 6 else None
    notes: list[str] = []
    if radiation == "xray" and polariz is None:
        raise InputError("ICONS has no polarization (5th value), needed for X-rays", path=p, where=f"line {n_ic}")
    if lam2 > 0 and ratio is None:
        raise InputError("ICONS gives two wavelengths but no I(L2)/I(L1) (7th value)", path=p, where=f"line {n_ic}")
    (ptype_f, nterms_f), n_pt = _ins_numbers(recs, f"INS {b}PRCF1 ", p, 2, "profile type and term count")
    ptype = int(ptype_f)
    g1, n_g1 = _ins_numbers(recs, f"INS {b}PRCF11", p, 4, "GU GV GW and a 4th term")
    n_g2, g2_text = recs.get(f"INS {b}PRCF12", (None, ""))
    g2 = [_float(t, p, f"line {n_g2}", f"PRCF12 value {i + 1}") for i, t in enumerate(g2_text.split()[:4])]
    g2 += [0.0] * (4 - len(g2))
    u, v, w = g1[:3]
    x = y = z = 0.0
    shl = _SHL_DEFAULT
    if reading == "gsas2":
        notes.append(f"read as GSAS-II (commit 013259a) does: profile type {ptype} -> X = Y = Z = 0, SH/L = 0.002 "
                     "(GSAS-II compares the type string with the integer 3)")
        if ptype in (3, 4):
            notes.append(f"file's X(LX) = {g2[0]}, Y(LY) = {g2[1]}, S/L + H/L = {g2[2] + g2[3]}, GP = {g1[3]} not used")
    else:
        if ptype in (3, 4):
            x, y = g2[0], g2[1]
            shl = g2[2] + g2[3]
            if g2[2] != g2[3]:
                notes.append(f"S/L = {g2[2]} and H/L = {g2[3]} differ; GSAS-II's FCJ uses S/L = H/L = (S/L + H/L)/2")
            if g1[3] != 0.0:
                notes.append(f"GP = {g1[3]} centideg² (GSAS-I Gaussian 1/cos²θ term, line {n_g1}) dropped: "
                             "GSAS-II's CW model has no such term")
        elif ptype in (1, 2):
            notes.append(f"profile type {ptype}: X = Y = Z = 0, SH/L = 0.002 (GSAS-II defaults)")
            if g1[3] != 0.0:
                notes.append(f"type-{ptype} asymmetry {g1[3]} (line {n_g1}) dropped: no GSAS-II equivalent")
        else:
            raise InputError(f"profile function type {ptype} not supported for CW (expected 1, 2, 3 or 4)", path=p,
                             where=f"line {n_pt}")
        for note in notes:
            warnings.warn(f"{p}: {note}", stacklevel=2)
    single = not lam2
    try:
        return CWInstrument(radiation=radiation, lam1=lam1, lam2=None if single else lam2,
                            ratio=0.0 if single else float(ratio), zero=zero_cdeg / 100.0,
                            polariz=0.0 if polariz is None else float(polariz),
                            u=u, v=v, w=w, x=x, y=y, z=z, shl=shl, source=str(p), reading=reading, notes=tuple(notes))
    except ValueError as e:  # the instrument's own checks (wavelengths > 0 ...)
        raise InputError(f"{str(e).split(': ', 1)[-1]}; expected a physical instrument", path=p,
                         where=f"line {n_ic} (INS {b} ICONS)") from None


def read_cw_instrument(path: str | os.PathLike, *, reading: str = "gsas2", bank: int = 1) -> CWInstrument:
    """Read a CW instrument file by its content: GSAS-II ``.instprm`` or GSAS-I ``.prm``."""
    p = Path(path)
    if not p.is_file():
        raise InputError("instrument parameter file not found", path=p)
    text = p.read_text(errors="replace")
    if any(ln.startswith("INS ") for ln in text.splitlines()):
        return read_gsas_prm(p, bank=bank, reading=reading)
    return read_cw_instprm(p)


def write_cw_instprm(inst: CWInstrument, path: str | os.PathLike) -> Path:
    """Write a GSAS-II CW ``.instprm`` (atomically); the reading and notes go in comments."""
    from layerscope._io import write_text

    lines = ["#GSAS-II instrument parameter file; do not add/delete items!",
             f"#written by layerscope from {inst.source or 'parameters'} (reading: {inst.reading})"]
    lines += [f"#note: {n}" for n in inst.notes]
    lines.append(f"Type:{inst.type_code}")
    if inst.lam2 is None:
        lines.append(f"Lam:{inst.lam1!r}")
    else:
        lines += [f"Lam1:{inst.lam1!r}", f"Lam2:{inst.lam2!r}", f"I(L2)/I(L1):{inst.ratio!r}"]
    for key, attr in (("Zero", "zero"), ("Polariz.", "polariz"), ("U", "u"), ("V", "v"), ("W", "w"), ("X", "x"),
                      ("Y", "y"), ("Z", "z"), ("SH/L", "shl"), ("Azimuth", "azimuth")):
        lines.append(f"{key}:{getattr(inst, attr)!r}")
    return write_text(path, "\n".join(lines) + "\n")
