"""Column readers: ``.xye/.xy/.csv/.txt/.chi`` (:func:`read_xye`) and FullProf ``.dat`` (:func:`read_fullprof`).

Written by hand for the reasons given in :mod:`layerscope.diffraction.readers`; both are reached
through :func:`layerscope.diffraction.readers.read_powder` and checked as every reader is.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from layerscope._errors import reader as _input_reader
from layerscope.diffraction._powder_common import (
    PowderData, _check_points, _cif_error, _looks_like_cif, _poisson_sigma, _read_lines,
)

__all__ = ["read_xye", "read_fullprof"]


# --------------------------------------------------------------------------- columns / FullProf

_SPLIT = re.compile(r"[,;\s]+")
_X_NAMES = re.compile(r"^(x|tof\w*|t|time\w*|2[-_]?th\w*|two[-_]?theta\w*|tth\w*|angle\w*|d(_?spacing\w*)?|q)$", re.I)
_Y_NAMES = re.compile(r"^(y\w*|i|int\w*|counts?|yobs|iobs)$", re.I)
_S_NAMES = re.compile(r"^(sigma\w*|s|esd\w*|e|err\w*|dy|sig\w*|yerr|uncert\w*)$", re.I)
_COMMENT = ("#", "!", "%", "//")


def _tokens(text: str) -> list[str]:
    return [t for t in _SPLIT.split(text.strip()) if t]


def _is_numeric_line(text: str) -> bool:
    tok = _tokens(text)
    if not tok:
        return False
    try:
        for t in tok:
            float(t)
    except ValueError:
        return False
    return True


def _numeric_block(p: Path, lines: list[str]):
    """Split into header lines and the numeric body (must be contiguous).

    Returns header (list), body rows [(line_no, [floats])]. Comment lines
    (#, !, %) and blank lines in the body are skipped; any other text after
    the first numeric line is an error.
    """
    header: list[str] = []
    body: list[tuple[int, list[float]]] = []
    for i, raw in enumerate(lines):
        ln = i + 1
        s = raw.strip()
        if not body:
            if _is_numeric_line(s):
                body.append((ln, [float(t) for t in _tokens(s)]))
            else:
                header.append(raw.rstrip())
            continue
        if not s or s.startswith(_COMMENT):
            continue
        tok = _tokens(s)
        vals = []
        for t in tok:
            try:
                vals.append(float(t))
            except ValueError:
                raise ValueError(
                    f"{p}, line {ln}: cannot read {t!r} as a number; expected numeric data "
                    "columns after the header"
                ) from None
        body.append((ln, vals))
    if not body:
        raise ValueError(f"{p}: no numeric data found; expected a powder pattern (columns x y [sigma])")
    return header, body


def _column_names(header: list[str]) -> list[str] | None:
    """Names from the last header line, if it looks like a row of names."""
    for raw in reversed(header):
        s = raw.strip().lstrip("#!% ").strip()
        if not s:
            continue
        tok = _tokens(s)
        if 2 <= len(tok) <= 8 and all(re.match(r"^[A-Za-z2θ(][\w()/\[\]µθ°.-]*$", t) for t in tok):
            return tok
        return None
    return None


def _pick_columns(p: Path, names, ncol, first_ln):
    """Indices of (x, y, sigma|None) columns."""
    if names is not None and len(names) == ncol:
        base = [re.sub(r"[\(\[].*$", "", n) for n in names]
        xi = next((i for i, n in enumerate(base) if _X_NAMES.match(n)), None)
        yi = next((i for i, n in enumerate(base) if i != xi and _Y_NAMES.match(n)), None)
        si = next((i for i, n in enumerate(base) if i not in (xi, yi) and _S_NAMES.match(n)), None)
        if xi is not None and yi is not None:
            if ncol > 3 or (ncol == 3 and si is None):
                if ncol == 3 and si is None:
                    raise ValueError(
                        f"{p}, line {first_ln}: third column {names[3 - xi - yi]!r} is not an "
                        "uncertainty (sigma/esd/err); expected columns x, y[, sigma]"
                    )
                return xi, yi, si, [n for i, n in enumerate(names) if i not in (xi, yi, si)]
            return xi, yi, si, []
    if ncol == 2:
        return 0, 1, None, []
    if ncol == 3:
        return 0, 1, 2, []
    raise ValueError(
        f"{p}, line {first_ln}: {ncol} data columns; expected 2 or 3 (x, y[, sigma]), or a header "
        "line naming the x, y and sigma columns"
    )


def _guess_kind(x, names, header, kind, meta):
    if kind is not None:
        if kind not in ("tof", "cw"):
            raise ValueError(f"kind must be 'tof' or 'cw', got {kind!r}")
        meta["kind_source"] = "argument"
        return kind
    text = " ".join(names or []) + " " + " ".join(header)
    if re.search(r"\b(tof\w*|time[- ]of[- ]flight|microsec\w*)\b", text, re.I):
        meta["kind_source"] = "header names time of flight"
        return "tof"
    if re.search(r"(2[-_ ]?theta|two[-_ ]?theta|\btth\b|2θ)", text, re.I):
        meta["kind_source"] = "header names 2theta"
        return "cw"
    meta["kind_source"] = "x range (x > 180 cannot be 2theta in degrees)"
    return "tof" if float(np.max(x)) > 180.0 else "cw"


def _columns_to_data(p, header, body, kind, meta, names=None):
    ncols = {len(v) for _, v in body}
    if len(ncols) != 1:
        first = body[0]
        bad = next((ln, v) for ln, v in body if len(v) != len(first[1]))
        raise ValueError(
            f"{p}, line {bad[0]}: {len(bad[1])} values; expected {len(first[1])} like line {first[0]} "
            "(is the line cut short?)"
        )
    ncol = ncols.pop()
    if ncol < 2:
        raise ValueError(f"{p}, line {body[0][0]}: one value per line; expected columns x, y[, sigma]")
    names = _column_names(header) if names is None else names
    xi, yi, si, ignored = _pick_columns(p, names, ncol, body[0][0])
    arr = np.array([v for _, v in body], dtype=float)
    line_nos = np.array([ln for ln, _ in body], dtype=np.int64)
    x, y = arr[:, xi], arr[:, yi]
    if si is None:
        sigma = _poisson_sigma(np.where(np.isfinite(y), y, 1.0))
        sigma = np.where(np.isfinite(y), sigma, np.nan)
        meta["sigma_source"] = "sqrt(max(y, 1)) (no sigma column)"
    else:
        sigma = arr[:, si]
        meta["sigma_source"] = "file (sigma column)"
    if ignored:
        meta["ignored_columns"] = ignored
    meta["column_names"] = names
    _check_points(p, x, y, sigma, line_nos)
    kind = _guess_kind(x, names, header, kind, meta)
    meta["x_unit"] = "us" if kind == "tof" else "deg 2theta"
    return x, y, sigma, kind


@_input_reader
def read_xye(path, *, bank: int | None = None, kind: str | None = None) -> PowderData:
    """Read x, y[, σ] columns (``.xye``, ``.xy``, ``.csv``, ``.txt``).

    Columns are separated by commas, semicolons or white space. Leading lines
    that are not all numbers are header lines; if the last of them is a row
    of names (``tof_us,y,sigma``, ``# 2theta I esd``) they select the x, y and
    σ columns, otherwise the columns are taken as x, y[, σ]. ``#``/``!``/``%``
    comment lines and blank lines are allowed among the data. Without a σ
    column, σ = sqrt(max(y, 1)).
    """
    p, lines = _read_lines(path)
    if bank is not None:
        raise ValueError(f"{p}: a column file holds one pattern; bank= applies only to GSAS files")
    if _looks_like_cif(lines):
        raise _cif_error(p)
    header, body = _numeric_block(p, lines)
    meta: dict = {"format": "columns", "header": header, "title": header[0].strip() if header else ""}
    x, y, sigma, kind = _columns_to_data(p, header, body, kind, meta)
    return PowderData(x=x, y=y, sigma=sigma, kind=kind, bank=None, source=str(p), meta=meta)


@_input_reader
def read_fullprof(path, *, bank: int | None = None, kind: str | None = None) -> PowderData:
    """Read a FullProf ``.dat`` powder pattern.

    Recognised variants (FullProf manual, keyword INSTRM):

    * INSTRM = 10, ``XYDATA`` header: the first line is ``XYDATA``, followed by
      keyword lines (``INTER``, ``TEMP``, ...), ``!`` comments and title text,
      then free-format x y [σ] rows;
    * INSTRM = 10 without the keyword: header text lines, then x y [σ] rows;
    * INSTRM = 0: header text lines, one line ``2θstart step 2θend`` (further
      text on that line is ignored), then the counts in free format, any
      number per row. It is recognised only when the number of counts equals
      (end − start)/step + 1 exactly, so x y σ rows are never mistaken for it.

    Without a σ column, σ = sqrt(max(y, 1)).
    """
    p, lines = _read_lines(path)
    if bank is not None:
        raise ValueError(f"{p}: a FullProf .dat file holds one pattern; bank= applies only to GSAS files")
    if _looks_like_cif(lines):
        raise _cif_error(p)
    if any(ln.startswith("BANK") for ln in lines):
        raise ValueError(f"{p}: has GSAS BANK records; read it with read_gsas / read_powder")
    meta: dict = {"format": "FullProf"}
    xydata = bool(lines) and lines[0].strip().upper().startswith("XYDATA")
    meta["xydata_header"] = xydata

    # INSTRM=0: find a 'start step end' line whose count matches the rest
    for i, raw in enumerate(lines[:20]):
        tok = _tokens(raw)
        if len(tok) < 3:
            continue
        try:
            start, step, end = (float(t) for t in tok[:3])
        except ValueError:
            continue
        if not (step > 0 and end > start):
            continue
        nf = (end - start) / step + 1.0
        npts = int(round(nf))
        if abs(nf - npts) > 1e-3 * max(1.0, step):
            continue
        counts, lns = [], []
        ok = True
        for j in range(i + 1, len(lines)):
            s = lines[j].strip()
            if not s or s.startswith(_COMMENT):
                continue
            try:
                vals = [float(t) for t in _tokens(s)]
            except ValueError:
                ok = False
                break
            counts.extend(vals)
            lns.extend([j + 1] * len(vals))
        if not ok or len(counts) != npts:
            continue
        y = np.array(counts)
        x = start + step * np.arange(npts)
        sigma = _poisson_sigma(np.where(np.isfinite(y), y, 1.0))
        sigma = np.where(np.isfinite(y), sigma, np.nan)
        line_nos = np.array(lns, dtype=np.int64)
        meta.update(
            variant="INSTRM=0 (start step end + counts)",
            header=[ln.rstrip() for ln in lines[:i]],
            title=lines[0].strip() if i > 0 else "",
            start_step_end=(start, step, end),
            sigma_source="sqrt(max(y, 1)) (counts only)",
        )
        _check_points(p, x, y, sigma, line_nos)
        if kind is None:
            kind = "cw" if end <= 180.0 else "tof"
            meta["kind_source"] = "x range (x > 180 cannot be 2theta in degrees)"
        else:
            meta["kind_source"] = "argument"
        meta["x_unit"] = "us" if kind == "tof" else "deg 2theta"
        return PowderData(x=x, y=y, sigma=sigma, kind=kind, bank=None, source=str(p), meta=meta)

    header, body = _numeric_block(p, lines)
    meta.update(
        variant="INSTRM=10 (XYDATA x y sigma)" if xydata else "INSTRM=10 (header + x y [sigma])",
        header=header,
        title=(header[1].strip() if xydata and len(header) > 1 else (header[0].strip() if header else "")),
        keywords={
            t[0].upper(): t[1:] for t in (h.split() for h in header) if t and t[0].upper() in ("INTER", "TEMP", "TITLE")
        },
    )
    if len(body) == 1 or len({len(v) for _, v in body}) != 1:
        # a 'start step end' line whose count did not match, or cut-off rows
        first = body[0]
        if len(first[1]) >= 3 and len(body) > 1 and len(body[1][1]) != len(first[1]):
            raise ValueError(
                f"{p}, line {first[0]}: looks like a FullProf 'start step end' line followed by "
                "counts, but the number of counts does not equal (end - start)/step + 1; the file "
                "is truncated or the header is wrong"
            )
    x, y, sigma, kind = _columns_to_data(p, header, body, kind, meta, names=None if not xydata else [])
    return PowderData(x=x, y=y, sigma=sigma, kind=kind, bank=None, source=str(p), meta=meta)
