"""Readers (and a writer) for plain-text powder-diffraction patterns.

Formats:

* GSAS ``.gsa/.gss/.gsas/.gda/.fxye/.gs`` (:func:`read_gsas`): time of flight or
  constant wavelength, BINTYP ``CONST``/``SLOG``/``RALF``, data TYPE
  ``FXYE``/``FXY``/``ESD``/``STD``/``ALT``, several banks per file, including
  the header variants written by Mantid's ``SaveGSS``;
* FullProf ``.dat`` (:func:`read_fullprof`): free-format x y [σ] columns with
  header lines (INSTRM = 10, with or without the ``XYDATA`` keyword block) and
  the 2θ start/step/end + counts-in-rows form (INSTRM = 0);
* ``.xye``, ``.xy``, ``.csv``, ``.txt`` columns (:func:`read_xye`);
* :func:`write_gsas_fxye` writes a TOF FXYE file (CONST or SLOG bins) that
  :func:`read_powder` reads back to the same numbers.

These readers are written by hand because the field has no maintained Python
library for them (the design decision "write readers only for the plain text
powder formats"); binary and HDF5 formats go through rosettasciio/h5py
elsewhere.

Every reader checks what it returns: finite x, y and σ, σ > 0, strictly
increasing x, and as many points as the file promises. Anything else raises
``ValueError`` naming the file, the line and what was expected; no point is
silently dropped.
"""

from __future__ import annotations

import contextvars
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layerscope.diffraction import _gsas_format as _g
from layerscope._errors import reader as _input_reader  # noqa: E402

__all__ = [
    "PowderData",
    "read_powder",
    "read_gsas",
    "read_fullprof",
    "read_xye",
    "write_gsas_fxye",
]

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


# --------------------------------------------------------------------------- dispatch


#: read_powder(zero_sigma="keep") lets the format readers accept σ = 0 (weight-0 points, GSAS-II's reading)
_ZERO_SIGMA_OK: contextvars.ContextVar[bool] = contextvars.ContextVar("zero_sigma_ok", default=False)


@_input_reader
def read_powder(path, *, bank: int | None = None, kind: str | None = None, zero_sigma: str = "error",
                **options) -> PowderData:
    """Read a powder pattern in any supported plain-text format.

    Parameters
    ----------
    path : str or Path
        GSAS ``.gsa/.gss/.gsas/.gda/.fxye/.gs``, FullProf ``.dat``, or columns
        ``.xye/.xy/.csv/.txt``. Other extensions are recognised by content
        (a BANK record means GSAS).
    bank : int, optional
        GSAS bank number (IBANK of the BANK record). Required when the file
        holds more than one bank; single-pattern formats accept only None.
    kind : {"tof", "cw"}, optional
        Force time of flight or constant wavelength. By default it is taken
        from the file (GSAS BINTYP/header, column names) or from the x range
        (x > 180 cannot be 2θ in degrees).
    zero_sigma : {"error", "keep"}
        Points whose σ is 0 in the file: an error (default), or kept so that a refinement gives
        them weight 0 (GSAS-II's reading). A negative σ is always an error.
    **options
        Passed to the format reader, e.g. ``bin_width_normalise`` and
        ``x_is_bin_lower_edge`` for :func:`read_gsas`.

    Returns
    -------
    PowderData

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unknown, wrong or damaged format; the message names the file, the line
        and what was expected.
    """
    if zero_sigma not in ("error", "keep"):
        raise ValueError(f"zero_sigma must be 'error' or 'keep', got {zero_sigma!r}")
    token = _ZERO_SIGMA_OK.set(zero_sigma == "keep")
    try:
        p, lines = _read_lines(path)
        ext = p.suffix.lower()
        if ext in _CIF_EXT or _looks_like_cif(lines):
            raise _cif_error(p)
        has_bank = any(ln.startswith("BANK") for ln in lines)
        if ext in _GSAS_EXT or has_bank:
            return read_gsas(p, bank=bank, kind=kind, **options)
        if ext == ".dat":
            return read_fullprof(p, bank=bank, kind=kind, **options)
        return read_xye(p, bank=bank, kind=kind, **options)
    finally:
        _ZERO_SIGMA_OK.reset(token)


# --------------------------------------------------------------------------- GSAS


@_input_reader
def read_gsas(
    path,
    *,
    bank: int | None = None,
    kind: str | None = None,
    bin_width_normalise: bool | None = None,
    x_is_bin_lower_edge: bool = True,
) -> PowderData:
    """Read one bank of a GSAS powder data file.

    Parameters
    ----------
    path : str or Path
    bank : int, optional
        IBANK of the bank to read; may be omitted when the file has one bank.
        An absent bank raises ``ValueError`` listing the banks in the file.
    kind : {"tof", "cw"}, optional
        ``SLOG`` and ``RALF`` bins are always TOF. ``CONST`` files are TOF when
        the header mentions TOF/time-of-flight/DIFC or x exceeds 18000
        (centidegrees), else CW; pass ``kind`` to override.
    bin_width_normalise : bool or None
        Divide y and σ by the bin width Δt and move x to the bin centre.
        ``None`` (default) does so exactly when the header says "with Y
        multiplied by the bin widths" (Mantid ``SaveGSS``) **and** the BINTYP is
        ``SLOG`` -- what GSAS-II does on import, so that intensities and Rwp are
        on GSAS-II's scale. ``True`` forces it for any BINTYP, ``False``
        keeps the file's numbers.
    x_is_bin_lower_edge : bool
        When normalising, treat the x column as the lower edge of each bin and
        report x + Δt/2 (GSAS-II's convention, the default). Note: Mantid's
        ``SaveGSS`` actually writes the bin centre 0.5·(X_i + X_{i+1}); with
        ``False`` x is left as written and only y, σ are divided by Δt. The two
        differ by Δt/2, i.e. a relative TOF offset of BCOEF3/2 (2·10⁻⁴ for
        POWGEN), which a refined difC/Zero absorbs.

    Returns
    -------
    PowderData
        x in µs (TOF) or degrees 2θ (CW). ``meta`` holds ``title``,
        ``header`` (lines before the first BANK), ``bank_comments``,
        ``bank_record`` (the BANK line), ``bintyp``, ``data_type``,
        ``bcoef``, ``banks_in_file``, ``header_says_y_times_bin_width``,
        ``bin_width_normalised`` and, when normalised, ``bin_width_source``,
        ``bin_width_first`` (Δt of the first bin, file x units),
        ``bin_width_max_rel_mismatch`` and ``bin_width_mismatch_intervals``
        (indices i of the intervals x_i -> x_{i+1} whose spacing differs from
        the BANK-line width by more than 10⁻⁶ relative).

    Notes
    -----
    Bin width (lower-edge convention): SLOG Δt_i = BCOEF3·x_i, because
    consecutive bins grow by (1 + BCOEF3); CONST Δt = BCOEF2; RALF as in
    :mod:`layerscope.diffraction._gsas_format`. The width is taken from the
    BANK record (so the last point, which has no successor, gets one too) and
    checked against the spacing of the x column: a median mismatch above
    10⁻³ is an error. Mantid clips the last SLOG bin at the run's maximum TOF,
    so in its files the last interval alone may differ (3.7 % in PG3_22048);
    such intervals are listed in ``meta``.

    References
    ----------
    A. C. Larson & R. B. Von Dreele, GSAS manual, LAUR 86-748 (2004);
    B. H. Toby & R. B. Von Dreele, J. Appl. Cryst. 46, 544 (2013) (GSAS-II).
    """
    p, lines = _read_lines(path)
    where = str(p)
    if _looks_like_cif(lines):
        raise _cif_error(p)
    header, banks = _g.split_banks(lines, where)
    if not banks:
        raise ValueError(
            f"{p}: no 'BANK' record found; expected a GSAS powder file (title line, optional "
            "'#' comments, then 'BANK IBANK NCHAN NREC BINTYP ... TYPE' and the data)"
        )
    available = [b.ibank for b in banks]
    if bank is None:
        if len(banks) > 1:
            raise ValueError(f"{p}: file holds banks {available}; choose one with bank=")
        rec = banks[0]
    else:
        chosen = [b for b in banks if b.ibank == int(bank)]
        if not chosen:
            raise ValueError(f"{p}: no bank {bank}; the file holds banks {available}")
        if len(chosen) > 1:
            raise ValueError(f"{p}: bank {bank} appears {len(chosen)} times (lines "
                             f"{[b.line_no for b in chosen]}); expected one BANK record per bank")
        rec = chosen[0]
    if not rec.data:
        raise ValueError(
            f"{p}, line {rec.line_no}: BANK {rec.ibank} promises {rec.nchan} points but has no data lines"
        )

    comments = [h for h in header if h.startswith("#")] + list(rec.comments)
    meta: dict = {
        "format": "GSAS",
        "title": header[0].strip() if header else "",
        "header": list(header),
        "bank_comments": list(rec.comments),
        "bank_record": lines[rec.line_no - 1].strip(),
        "bintyp": rec.bintyp,
        "data_type": rec.dtype,
        "bcoef": list(rec.coeffs),
        "banks_in_file": available,
        "nchan": rec.nchan,
        "nrec": rec.nrec,
    }

    # ---- kind
    if kind is not None:
        if kind not in ("tof", "cw"):
            raise ValueError(f"kind must be 'tof' or 'cw', got {kind!r}")
        if kind == "cw" and rec.bintyp != "CONST":
            raise ValueError(f"{p}, line {rec.line_no}: BINTYP {rec.bintyp} is time-of-flight binning; "
                             "kind='cw' needs CONST bins")
        meta["kind_source"] = "argument"
    elif rec.bintyp in ("SLOG", "RALF") or rec.dtype == "ALT":
        kind = "tof"
        meta["kind_source"] = f"BINTYP {rec.bintyp}" if rec.dtype != "ALT" else "data TYPE ALT"
    elif any(_g.TOF_HINT.search(h) for h in header + list(rec.comments)):
        kind = "tof"
        meta["kind_source"] = "header mentions time of flight"

    # ---- numbers in file units
    if rec.dtype == "FXYE":
        arr, line_nos = _g.read_columns(rec, 3, where)
        x, y, sigma = arr[:, 0], arr[:, 1], arr[:, 2]
        meta["sigma_source"] = "file (FXYE esd column)"
    elif rec.dtype == "FXY":
        arr, line_nos = _g.read_columns(rec, 2, where)
        x, y = arr[:, 0], arr[:, 1]
        sigma = None
        meta["sigma_source"] = "sqrt(max(y, 1)) (FXY has no esd)"
    elif rec.dtype == "ALT":
        x, y, sigma, line_nos = _g.read_alt(rec, where)
        meta["sigma_source"] = "file (ALT esd field)"
    elif rec.dtype == "ESD":
        y, sigma, line_nos, fixed = _g.read_esd(rec, where)
        x = None
        meta["sigma_source"] = "file (ESD esd field)"
        meta["fixed_width_records"] = fixed
    else:  # STD
        y, nctr, line_nos, fixed = _g.read_std(rec, where)
        x = None
        sigma = None
        meta["fixed_width_records"] = fixed
        meta["sigma_source"] = "sqrt(max(y, 1) / NCTR) (GSAS STD)"

    n = y.size
    if n > rec.nchan and rec.dtype in ("STD", "ESD", "ALT"):
        # fixed-width records fill the last line: GSAS writers pad it with zero records beyond
        # the promised count (PBSO4.XRA). Padding is dropped; real surplus data stays an error.
        extra = slice(rec.nchan, None)
        pad = (line_nos[extra] == line_nos[rec.nchan - 1]) & (y[extra] == 0)
        after = line_nos[extra] > line_nos[rec.nchan - 1]
        if np.all(pad | after):
            # zero padding of the last record line, and/or whole lines after the promised count
            # (PBSO4.CWN repeats its last line): GSAS reads NCHAN points and stops; so do we, and say so
            meta["padding_records_dropped"] = int(np.sum(pad))
            if np.any(after):
                meta["surplus_lines_ignored"] = sorted({int(v) for v in line_nos[extra][after]})
            y, line_nos = y[: rec.nchan], line_nos[: rec.nchan]
            x = None if x is None else x[: rec.nchan]
            sigma = None if sigma is None else sigma[: rec.nchan]
            if rec.dtype == "STD":
                nctr = nctr[: rec.nchan]
            n = rec.nchan
    last_line = int(line_nos[-1]) if n else rec.line_no
    if n < rec.nchan:
        raise ValueError(
            f"{p}, line {last_line}: truncated bank {rec.ibank}: the BANK record (line {rec.line_no}) "
            f"promises {rec.nchan} points, the data end after {n}"
        )
    if n > rec.nchan:
        raise ValueError(
            f"{p}, line {int(line_nos[rec.nchan])}: bank {rec.ibank} has {n} points, more than the "
            f"{rec.nchan} its BANK record (line {rec.line_no}) promises"
        )
    if x is None:
        x = _g.bin_grid(rec, n)
    if sigma is None:
        if rec.dtype == "STD":
            sigma = np.sqrt(np.maximum(y, 1.0) / nctr)
        else:
            sigma = _poisson_sigma(y)

    _check_points(p, x, y, sigma, line_nos)
    if kind is None:  # CONST without hint: centidegrees never exceed 18000
        kind = "tof" if float(np.max(x)) > 18000.0 else "cw"
        meta["kind_source"] = "x range (CONST bins; x > 18000 cannot be centidegrees)"

    # ---- bin-width normalisation (GSAS-II convention)
    says = _g.header_says_y_times_bin_width(header + list(rec.comments))
    meta["header_says_y_times_bin_width"] = says
    if bin_width_normalise is None:
        normalise = says and rec.bintyp == "SLOG"
        meta["bin_width_normalise_source"] = "auto (header phrase and SLOG bins)"
    else:
        normalise = bool(bin_width_normalise)
        meta["bin_width_normalise_source"] = "argument"
    meta["bin_width_normalised"] = normalise
    if normalise:
        dx = _g.bin_widths(rec, x)
        if not np.all(dx > 0):
            raise ValueError(
                f"{p}, line {rec.line_no}: BANK {rec.bintyp} coefficients {list(rec.coeffs)} give a "
                "non-positive bin width; cannot divide by the bin width"
            )
        if n >= 2:
            rel = np.abs(np.diff(x) / dx[:-1] - 1.0)
            med = float(np.median(rel))
            if med > 1e-3:
                raise ValueError(
                    f"{p}, line {rec.line_no}: the BANK record's {rec.bintyp} bins (BCOEF "
                    f"{list(rec.coeffs)}) do not match the x column (median relative mismatch of the "
                    f"bin width {med:.3g}); expected them to agree within 1e-3 before dividing by Δt"
                )
            meta["bin_width_max_rel_mismatch"] = float(rel.max())
            meta["bin_width_mismatch_intervals"] = [int(i) for i in np.flatnonzero(rel > 1e-6)]
        meta["bin_width_source"] = {
            "SLOG": "BANK BCOEF3 * x (Δt/t)",
            "CONST": "BANK BCOEF2 (constant step)",
            "RALF": "BANK BCOEF2/32 below BCOEF3/32, BCOEF4 * x above",
        }[rec.bintyp]
        meta["bin_width_first"] = float(dx[0])
        meta["x_is_bin_lower_edge"] = bool(x_is_bin_lower_edge)
        y = y / dx
        sigma = sigma / dx
        if x_is_bin_lower_edge:
            x = x + 0.5 * dx

    if kind == "cw":
        x = x / 100.0  # centidegrees -> degrees
        meta["x_unit"] = "deg 2theta"
    else:
        meta["x_unit"] = "us"
    meta["comments"] = comments
    return PowderData(x=x, y=y, sigma=sigma, kind=kind, bank=rec.ibank, source=str(p), meta=meta)


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


# --------------------------------------------------------------------------- writer


def _fmt(v: float) -> str:
    # 17 significant digits: the decimal text maps back to the same float.
    return f"{v:23.16e}"


def write_gsas_fxye(path, data: PowderData, *, bank: int = 1, title: str | None = None) -> Path:
    """Write a TOF pattern as a GSAS FXYE file (one bank).

    The BINTYP is ``CONST`` when the x steps are equal and ``SLOG`` when the
    ratios x_{i+1}/x_i are equal (relative tolerance 10⁻⁹); other grids raise
    ``ValueError``. y and σ are written as given (no bin-width factor, and the
    header says so), with 17 significant digits, so that
    ``read_powder(path)`` returns the same x, y and σ. The file is written to a
    temporary name and renamed, so a reader never sees half a file.

    Parameters
    ----------
    path : str or Path
    data : PowderData
        ``kind`` must be ``"tof"`` (x in µs, > 0 for SLOG).
    bank : int
        IBANK written on the BANK record.
    title : str, optional
        First line of the file (default: from ``data.meta["title"]`` or the
        source name). Must not start with ``BANK``.

    Returns
    -------
    Path
        The written file.
    """
    p = Path(path)
    if data.kind != "tof":
        raise ValueError(f"{p}: write_gsas_fxye writes time-of-flight data; got kind={data.kind!r}")
    x, y, s = data.x, data.y, data.sigma
    n = x.size
    if n < 2:
        raise ValueError(f"{p}: need at least 2 points to write a GSAS bank, got {n}")
    _check_points(Path(data.source or "<PowderData>"), x, y, s, None)
    if not (isinstance(bank, (int, np.integer)) and 0 <= bank <= 99):
        raise ValueError(f"{p}: bank must be an integer 0..99 (GSAS), got {bank!r}")
    dx = np.diff(x)
    ratio = x[1:] / x[:-1]
    if np.allclose(dx, dx[0], rtol=1e-9, atol=0):
        bintyp, coeffs = "CONST", f"{x[0]:.10g} {dx[0]:.10g} 0 0"
    elif x[0] > 0 and np.allclose(ratio, ratio[0], rtol=1e-9, atol=0):
        bintyp, coeffs = "SLOG", f"{x[0]:.10g} {x[-1]:.10g} {ratio[0] - 1.0:.10g} 0"
    else:
        raise ValueError(
            f"{p}: x grid is neither constant-step (CONST) nor constant Δt/t (SLOG); GSAS FXYE "
            "needs one of them -- rebin the pattern first"
        )
    if title is None:
        title = str(data.meta.get("title") or Path(data.source).name or "layerscope pattern")
    title = title.replace("\n", " ").strip()[:80]
    if title.startswith("BANK") or title.startswith("#"):
        title = "title: " + title
    out = [
        title,
        "# written by layerscope.diffraction.readers.write_gsas_fxye",
        "# TOF in microseconds; Y and E are as given, without any bin-width factor",
        f"BANK {bank} {n} {n} {bintyp} {coeffs} FXYE",
    ]
    out.extend(f"{_fmt(a)}  {_fmt(b)}  {_fmt(c)}" for a, b, c in zip(x, y, s))
    text = "\n".join(out) + "\n"
    from layerscope._io import write_text

    write_text(p, text, encoding="ascii")
    return p
