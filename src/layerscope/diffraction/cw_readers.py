"""Readers for constant-wavelength (2θ) powder patterns.

* GSAS raw files with ``CONST`` bins in ``STD``, ``ESD`` or ``ALT`` form (:func:`read_gsas_cw`), as
  ``PBSO4.XRA``/``PBSO4.CWN``; ``FXYE``/``FXY`` banks go to :func:`layerscope.diffraction.readers.read_gsas`.
* ``.xye``/``.xy``/``.csv`` columns in 2θ degrees (:func:`read_cw_columns`).
* PANalytical ``.xrdml`` (XML; :func:`read_xrdml`), with the anode wavelengths it records.

Everything returns :class:`layerscope.diffraction.readers.PowderData` with ``kind="cw"``,
x = 2θ in degrees. The fixed-record GSAS forms (GSAS manual, LAUR 86-748, "raw data file"):

``STD``  ten 8-character fields per line: I2 number of counters n (blank = 1) and F6 counts c;
         y = c, σ² = c / n (GSAS-II's convention). x_i = BCOEF1/100 + i·BCOEF2/100.
``ESD``  five (F8 y, F8 σ) pairs per line, same x.
``ALT``  four (F8 x·3200, F7 y·1000, F5 σ·1000) triplets per line, as GSAS-II scales them
         (not checked against a real ALT file here).

A record may be padded past the promised point count (``PBSO4.XRA``'s last line has 9 zero fields
after its 6001st point): fields beyond NCHAN are not data and are left out (their number is
reported in ``meta["padding_fields_ignored"]``); a non-blank, non-zero field there is an error.
Points with y ≤ 0 get GSAS-II's weight 0 in GSAS-II; PowderData needs σ > 0, so they get
σ = sqrt(1/n) and are listed in ``meta["nonpositive_points"]``.

Written by hand (the GSAS records and the xrdml schema are small; no maintained library reads the
former, and the stdlib XML parser reads the latter).
"""

from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from layerscope._errors import InputError
from layerscope.diffraction.readers import PowderData, read_gsas, read_xye

__all__ = ["read_gsas_cw", "read_cw_columns", "read_xrdml", "read_cw_powder", "load_cw_histogram"]


def _lines(path) -> tuple[Path, list[str]]:
    p = Path(path)
    if not p.is_file():
        raise InputError("no such powder-data file", path=p)
    raw = p.read_bytes()
    if not raw.strip():
        raise InputError("file is empty; expected a powder pattern", path=p)
    return p, raw.decode("latin-1").splitlines()


def _field(text: str, a: int, b: int, p, n, what) -> float | None:
    s = text[a:b].strip()
    if not s:
        return None
    try:
        return float(s)
    except ValueError:
        raise InputError(f"{what} {s!r} (columns {a + 1}-{b}) is not a number", path=p, where=f"line {n}") from None


def read_gsas_cw(path, *, bank: int | None = None) -> PowderData:
    """Read one CONST-bin bank of a GSAS raw CW file (STD, ESD, ALT; FXYE/FXY delegated)."""
    p, lines = _lines(path)
    banks = [(i, ln) for i, ln in enumerate(lines) if ln.startswith("BANK")]
    if not banks:
        raise InputError("no 'BANK' record; expected a GSAS raw file (title line, then 'BANK IBANK NCHAN NREC "
                         "CONST BCOEF1 BCOEF2 ... [STD|ESD|ALT]')", path=p)
    ids = []
    for i, ln in banks:
        t = ln.split()
        try:
            ids.append(int(t[1]))
        except (IndexError, ValueError):
            raise InputError(f"BANK record without an integer bank number: {ln.strip()!r}", path=p,
                             where=f"line {i + 1}") from None
    if bank is None:
        if len(banks) > 1:
            raise InputError(f"file holds banks {ids}; pass bank=", path=p)
        k = 0
    else:
        if bank not in ids:
            raise InputError(f"no bank {bank}; the file holds banks {ids}", path=p)
        k = ids.index(bank)
    i0, rec = banks[k]
    t = rec.split()
    where = f"line {i0 + 1}"
    if len(t) < 7:
        raise InputError(f"BANK record too short: {rec.strip()!r}; expected 'BANK IBANK NCHAN NREC CONST BCOEF1 "
                         "BCOEF2 ...'", path=p, where=where)
    try:
        nchan, nrec = int(t[2]), int(t[3])
    except ValueError:
        raise InputError(f"NCHAN/NREC must be integers: {rec.strip()!r}", path=p, where=where) from None
    bintyp = t[4].upper()
    dtype = t[-1].upper() if t[-1].upper() in ("STD", "ESD", "ALT", "FXYE", "FXY") else "STD"
    if bintyp not in ("CONST", "CONS") and dtype != "ALT":
        raise InputError(f"BINTYP {t[4]!r} is time-of-flight binning, not a constant-wavelength 2θ scan (expected "
                         "CONST)", path=p, where=where)
    if dtype in ("FXYE", "FXY"):
        try:
            return read_gsas(p, bank=bank, kind="cw")
        except InputError:
            raise
        except ValueError as e:
            raise InputError(str(e)) from None
    end = banks[k + 1][0] if k + 1 < len(banks) else len(lines)
    body = [(n + 1, lines[n]) for n in range(i0 + 1, end) if not lines[n].startswith("#")]
    meta: dict = {"format": f"GSAS {dtype}", "title": lines[0].strip(), "bank_record": rec.strip(),
                  "bintyp": bintyp, "data_type": dtype, "nchan": nchan, "nrec": nrec}
    if len(body) > nrec:
        extra = [n for n, text in body[nrec:] if text.strip()]
        body = body[:nrec]
        if extra:
            msg = (f"{len(extra)} line(s) after the {nrec} records the BANK record promises (lines "
                   f"{extra[0]}-{extra[-1]}) are not read, as GSAS reads NREC records")
            meta["extra_records_ignored"] = msg
            warnings.warn(f"{p}: {msg}", stacklevel=2)
    x, y, s, line_of, pad = [], [], [], [], 0
    width = {"STD": 8, "ESD": 16, "ALT": 20}[dtype]
    per_line = 80 // width
    for n, text in body:
        text = text.rstrip("\r\n").ljust(80)
        for j in range(per_line):
            a = j * width
            if len(y) >= nchan:
                fld = text[a:a + width]
                vals = [v for v in fld.split()]
                try:
                    nonzero = any(float(v) != 0.0 for v in vals)
                except ValueError:
                    nonzero = True
                if nonzero:
                    raise InputError(f"data beyond the {nchan} points the BANK record ({where}) promises: "
                                     f"{fld.strip()!r}", path=p, where=f"line {n}")
                pad += bool(vals)
                continue
            if dtype == "STD":
                nc = _field(text, a, a + 2, p, n, "counter number")
                c = _field(text, a + 2, a + 8, p, n, "count")
                if c is None:
                    if text[a:].strip():
                        raise InputError("blank count field among data", path=p, where=f"line {n}")
                    break
                nc = 1.0 if (nc is None or nc <= 0) else nc
                y.append(c)
                s.append(math.sqrt(c / nc) if c > 0 else math.sqrt(1.0 / nc))
                x.append(t[5])
            elif dtype == "ESD":
                yi = _field(text, a, a + 8, p, n, "intensity")
                ei = _field(text, a + 8, a + 16, p, n, "esd")
                if yi is None:
                    break
                if ei is None or (ei <= 0 and yi > 0):
                    raise InputError(f"esd {ei!r} for intensity {yi}; expected a positive esd", path=p,
                                     where=f"line {n}")
                y.append(yi)
                s.append(ei if ei > 0 else 1.0)
            else:  # ALT
                xi = _field(text, a, a + 8, p, n, "position")
                if not xi:
                    break
                yi = _field(text, a + 8, a + 15, p, n, "intensity") or 0.0
                ei = _field(text, a + 15, a + 20, p, n, "esd") or 0.0
                x.append(xi / 3200.0)
                y.append(yi / 1000.0)
                s.append(ei / 1000.0 if ei > 0 else 1.0)
            line_of.append(n)
    if len(y) < nchan:
        last = body[-1][0] if body else i0 + 1
        raise InputError(f"bank {ids[k]} has {len(y)} points, fewer than the {nchan} its BANK record ({where}) "
                         "promises", path=p, where=f"line {last}")
    y = np.asarray(y, dtype=float)
    if dtype == "ALT":
        x = np.asarray(x, dtype=float)
    else:
        try:
            start, step = float(t[5]) / 100.0, float(t[6]) / 100.0
        except ValueError:
            raise InputError(f"BCOEF1/BCOEF2 (start, step in centidegrees) not numbers: {rec.strip()!r}", path=p,
                             where=where) from None
        if not step > 0:
            raise InputError(f"BCOEF2 (step) = {t[6]} must be > 0 centidegrees", path=p, where=where)
        x = start + step * np.arange(nchan)
        meta["start_deg"], meta["step_deg"] = start, step
    sig = np.asarray(s, dtype=float)
    nonpos = np.flatnonzero(y <= 0)
    meta["padding_fields_ignored"] = pad
    meta["nonpositive_points"] = nonpos.tolist()
    meta["sigma_source"] = {"STD": "sqrt(counts / counters) (GSAS-II)", "ESD": "file", "ALT": "file"}[dtype]
    if nonpos.size:
        meta["nonpositive_note"] = ("points with y <= 0 have weight 0 in GSAS-II; here sigma = sqrt(1/counters) "
                                    "(STD) or 1")
    if x.min() <= 0 or x.max() >= 180:
        raise InputError(f"2θ runs from {x.min():g} to {x.max():g}°, outside (0, 180)", path=p, where=where)
    return PowderData(x=x, y=y, sigma=sig, kind="cw", bank=ids[k], source=str(p), meta=meta)


def read_cw_columns(path) -> PowderData:
    """2θ (degrees), y[, σ] columns (``.xye``, ``.xy``, ``.csv``); σ = sqrt(max(y, 1)) when absent."""
    p = Path(path)
    d = read_xye(p, kind="cw")
    if d.x.min() <= 0 or d.x.max() >= 180:
        raise InputError(f"first column runs from {d.x.min():g} to {d.x.max():g}; expected 2θ in degrees "
                         "(0-180)", path=p)
    return d


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(node, name):
    for ch in node.iter():
        if _local(ch.tag) == name:
            return ch
    return None


def read_xrdml(path, *, scan: int = 0) -> PowderData:
    """Read one 2θ scan of a PANalytical ``.xrdml`` file.

    The 2θ axis is ``positions axis="2Theta"`` (``listPositions`` or ``startPosition``/``endPosition``
    spread evenly over the points); y is ``counts``, or ``intensities`` (counts/s) multiplied by
    ``commonCountingTime`` when that is given. σ = sqrt(max(counts, 1)) (Poisson), divided by the
    counting time when y stays in counts/s. ``meta`` holds the wavelengths (``usedWavelength``:
    kAlpha1, kAlpha2, kBeta, ratioKAlpha2KAlpha1), the anode, the scan axis and mode.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", path=p)
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as e:
        raise InputError(f"not well-formed XML ({e}); expected a PANalytical .xrdml file", path=p) from None
    except LookupError as e:  # an XML declaration naming an encoding Python does not know
        raise InputError(f"XML declaration: {e}; expected a PANalytical .xrdml file (UTF-8)",
                         path=p, where="line 1") from None
    if _local(root.tag) != "xrdMeasurements":
        raise InputError(f"root element <{_local(root.tag)}>; expected <xrdMeasurements>", path=p)
    scans = [e for e in root.iter() if _local(e.tag) == "scan"]
    if not scans:
        raise InputError("no <scan> element", path=p)
    if scan >= len(scans):
        raise InputError(f"scan {scan} requested; the file holds {len(scans)}", path=p)
    sc = scans[scan]
    meta: dict = {"format": "xrdml", "scan_axis": sc.get("scanAxis"), "scan_mode": sc.get("mode"),
                  "n_scans": len(scans)}
    wl = _find(root, "usedWavelength")
    if wl is not None:
        for ch in wl:
            try:
                meta[_local(ch.tag)] = float(ch.text)
            except (TypeError, ValueError):
                pass
    anode = _find(root, "anodeMaterial")
    if anode is not None:
        meta["anode"] = (anode.text or "").strip()
    dp = _find(sc, "dataPoints")
    if dp is None:
        raise InputError(f"scan {scan} has no <dataPoints>", path=p)
    pos = [e for e in dp if _local(e.tag) == "positions" and e.get("axis") == "2Theta"]
    if not pos:
        raise InputError(f"scan {scan}: no <positions axis=\"2Theta\">", path=p)
    ydat = None
    per_second = False
    for e in dp:
        if _local(e.tag) == "counts":
            ydat = e
        elif _local(e.tag) == "intensities" and ydat is None:
            ydat, per_second = e, True
    if ydat is None or not (ydat.text or "").split():
        raise InputError(f"scan {scan}: no <counts> or <intensities>", path=p)
    try:
        y = np.array([float(v) for v in ydat.text.split()])
    except ValueError:
        raise InputError(f"scan {scan}: <{_local(ydat.tag)}> holds a non-number", path=p) from None
    n = y.size
    ps = pos[0]
    lst = _find(ps, "listPositions")
    try:
        if lst is not None and (lst.text or "").split():
            x = np.array([float(v) for v in lst.text.split()])
        else:
            a, b = float(_find(ps, "startPosition").text), float(_find(ps, "endPosition").text)
            x = np.linspace(a, b, n)
    except (AttributeError, TypeError, ValueError):
        raise InputError(f"scan {scan}: 2Theta positions need listPositions or startPosition/endPosition numbers",
                         path=p) from None
    if x.size != n:
        raise InputError(f"scan {scan}: {x.size} 2θ positions for {n} intensities", path=p)
    t_el = _find(dp, "commonCountingTime")
    try:
        t = float(t_el.text) if t_el is not None and t_el.text else None
    except ValueError:
        raise InputError(f"scan {scan}: <commonCountingTime> {t_el.text.strip()[:40]!r} is not a number",
                         path=p) from None
    meta["counting_time_s"] = t
    if per_second:
        if t is not None:
            counts = y * t
            meta["y_unit"] = "counts (intensities x commonCountingTime)"
            y = counts
            sig = np.sqrt(np.maximum(counts, 1.0))
        else:
            sig = np.sqrt(np.maximum(y, 1.0))
            meta["y_unit"] = "counts/s (no counting time: sigma = sqrt(max(y, 1)) is a guess)"
    else:
        sig = np.sqrt(np.maximum(y, 1.0))
        meta["y_unit"] = "counts"
    meta["sigma_source"] = "Poisson sqrt(max(counts, 1))"
    if np.any(np.diff(x) <= 0):
        if np.all(np.diff(x) < 0):
            x, y, sig = x[::-1], y[::-1], sig[::-1]
        else:
            raise InputError(f"scan {scan}: 2θ positions are not monotonic", path=p)
    return PowderData(x=x, y=y, sigma=sig, kind="cw", bank=None, source=str(p), meta=meta)


def read_cw_powder(path, *, bank: int | None = None) -> PowderData:
    """Read a CW pattern by extension/content: GSAS raw, xrdml, or 2θ columns."""
    p, lines = _lines(path)
    ext = p.suffix.lower()
    if ext == ".xrdml" or (lines and lines[0].lstrip().startswith("<?xml")):
        return read_xrdml(p)
    if any(ln.startswith("BANK") for ln in lines[:50]):
        return read_gsas_cw(p, bank=bank)
    if bank is not None:
        raise InputError("bank= applies only to GSAS files", path=p)
    return read_cw_columns(p)


def load_cw_histogram(data_path, instrument_path, *, bank: int | None = None, reading: str = "gsas2"):
    """Read a CW pattern and its instrument file together; a TOF file on either side, or an
    instrument whose wavelength contradicts the one the data file records (xrdml), stops with an
    :class:`InputError` naming both files and the mismatch. Returns (PowderData, CWInstrument)."""
    from layerscope.diffraction.cw_instrument import read_cw_instrument

    both = f"data {data_path} with instrument {instrument_path}"
    try:
        inst = read_cw_instrument(instrument_path, reading=reading, bank=bank or 1)
    except InputError as e:
        if "time-of-flight" in str(e):
            raise InputError(f"{both}: the instrument file is time-of-flight but the pattern is read as constant-"
                             f"wavelength 2θ ({e.detail})", path=instrument_path, where=e.where) from None
        raise
    try:
        data = read_cw_powder(data_path, bank=bank)
    except InputError as e:
        raise InputError(f"{both}: the instrument is constant-wavelength ({inst.type_code}) but the data file "
                         f"cannot be read as a 2θ pattern ({e.detail})", path=data_path, where=e.where) from None
    lam = data.meta.get("kAlpha1") if data.meta.get("format") == "xrdml" else None
    if lam is not None and abs(lam - inst.lam1) > 2e-3:
        raise InputError(f"{both}: the data file records Kα1 = {lam} Å, the instrument file λ1 = {inst.lam1} Å",
                         path=data_path)
    return data, inst
