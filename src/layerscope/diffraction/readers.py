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

from pathlib import Path

import numpy as np

from layerscope.diffraction import _gsas_format as _g
from layerscope._errors import reader as _input_reader  # noqa: E402
from layerscope.diffraction._powder_common import (  # noqa: F401 (PowderData and the checks are used here too)
    _CIF_EXT, _COLUMN_EXT, _GSAS_EXT, _ZERO_SIGMA_OK, PowderData, _check_points, _cif_error, _looks_like_cif,
    _poisson_sigma, _read_lines,
)
from layerscope.diffraction.readers_columns import read_fullprof, read_xye

__all__ = [
    "PowderData",
    "read_powder",
    "read_gsas",
    "read_fullprof",
    "read_xye",
    "write_gsas_fxye",
]

# --------------------------------------------------------------------------- dispatch




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
