"""Parsing helpers for the GSAS (GSAS-I / GSAS-II) plain-text powder formats.

Written by hand because no maintained Python library reads these files
outside GSAS-II itself (which is not a library one can depend on). The layout
follows the GSAS manual (Larson & Von Dreele, LAUR 86-748, "GSAS standard
powder data file") as implemented by the GSAS-II importer ``G2pwd_fxye``:

* line 1 is a title; an optional ``Instrument parameter file:`` line and
  ``#`` comment lines may follow, and ``#`` comments may appear between banks;
* each data block starts with a BANK record::

      BANK IBANK NCHAN NREC BINTYP BCOEF1 BCOEF2 BCOEF3 BCOEF4 TYPE

  with BINTYP one of ``CONST``, ``SLOG``, ``RALF`` (``TIME_MAP`` is not
  supported here) and TYPE one of ``FXYE``, ``FXY``, ``ESD``, ``STD``,
  ``ALT`` (no TYPE means ``STD``);
* x units: continuous-wave 2θ in centidegrees, time of flight in µs
  (``RALF`` coefficients and ``ALT`` x values in units of 1/32 µs).

Bin grids (x of point i, file units):

* ``CONST``: x_i = BCOEF1 + i·BCOEF2;
* ``SLOG``:  x_i = BCOEF1·(1 + BCOEF3)^i (BCOEF2 = last x, BCOEF3 = Δt/t);
* ``RALF``:  t_0 = BCOEF1/32; steps of BCOEF2/32 µs while t < BCOEF3/32,
  then logarithmic steps t_{i+1} = t_i·(1 + BCOEF4).

The functions here return raw arrays in file order together with the line
number of every point, so that the public reader can name the line of any
bad value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

#: Data TYPE keywords of a BANK record.
DATA_TYPES = ("FXYE", "FXY", "ESD", "STD", "ALT")
#: Supported BINTYP keywords.
BIN_TYPES = ("CONST", "SLOG", "RALF")

#: Mantid's SaveGSS writes this sentence into the header when Y and E were
#: multiplied by the bin width (``MultiplyByBinWidth=True``).
BIN_WIDTH_PHRASE = re.compile(r"multiplied\s+by\s+(the\s+)?bin\s*widths?", re.IGNORECASE)
_NEGATED_PHRASE = re.compile(r"\bnot\s+multiplied\s+by\s+(the\s+)?bin\s*width", re.IGNORECASE)

#: Header words that mark a CONST-binned file as time of flight.
TOF_HINT = re.compile(r"\b(TOF|time[- ]of[- ]flight|microsec\w*|DIFC)\b", re.IGNORECASE)


@dataclass(frozen=True)
class BankRecord:
    """One parsed BANK line and where its data lines are."""

    ibank: int
    nchan: int
    nrec: int
    bintyp: str
    coeffs: tuple[float, ...]
    dtype: str
    line_no: int  # 1-based line number of the BANK record
    data: tuple[tuple[int, str], ...]  # (1-based line number, text) of each data line
    comments: tuple[str, ...]  # '#' lines that preceded this BANK record

    def coeff(self, i: int) -> float:
        """BCOEF(i), 1-based, 0.0 if the BANK line omitted it."""
        return self.coeffs[i - 1] if len(self.coeffs) >= i else 0.0


def header_says_y_times_bin_width(header_lines) -> bool:
    """True when the header carries Mantid's 'Y multiplied by the bin widths'."""
    for line in header_lines:
        if BIN_WIDTH_PHRASE.search(line) and not _NEGATED_PHRASE.search(line):
            return True
    return False


def parse_bank_line(text: str, line_no: int, where: str) -> tuple:
    """Split a BANK record into (ibank, nchan, nrec, bintyp, coeffs, dtype)."""
    tok = text.split()
    expected = (
        "expected 'BANK IBANK NCHAN NREC BINTYP BCOEF1 .. BCOEF4 TYPE', "
        "e.g. 'BANK 1 4000 4000 SLOG 1000 30000 0.0004 0 FXYE'"
    )
    if len(tok) < 5 or tok[0] != "BANK":
        raise ValueError(f"{where}, line {line_no}: malformed BANK record {text.strip()!r}; {expected}")
    try:
        ibank, nchan, nrec = int(tok[1]), int(tok[2]), int(tok[3])
    except ValueError:
        raise ValueError(
            f"{where}, line {line_no}: BANK record {text.strip()!r} has non-integer "
            f"IBANK/NCHAN/NREC; {expected}"
        ) from None
    bintyp = tok[4].upper()
    if bintyp.startswith("TIME_MAP"):
        raise ValueError(
            f"{where}, line {line_no}: BINTYP TIME_MAP (LANSCE clock-map binning) is not "
            "supported; convert the file to FXYE (e.g. with GSAS-II or Mantid SaveGSS)"
        )
    if bintyp not in BIN_TYPES:
        raise ValueError(
            f"{where}, line {line_no}: unknown BINTYP {tok[4]!r} in BANK record; "
            f"expected one of {', '.join(BIN_TYPES)}"
        )
    coeffs: list[float] = []
    dtype = "STD"  # GSAS default when TYPE is absent
    for t in tok[5:]:
        if t.upper() in DATA_TYPES:
            dtype = t.upper()
            break
        try:
            coeffs.append(float(t))
        except ValueError:
            raise ValueError(
                f"{where}, line {line_no}: BANK record field {t!r} is neither a bin "
                f"coefficient nor a data TYPE ({', '.join(DATA_TYPES)})"
            ) from None
    if nchan <= 0:
        raise ValueError(f"{where}, line {line_no}: BANK record promises NCHAN={nchan} points; expected > 0")
    return ibank, nchan, nrec, bintyp, tuple(coeffs), dtype


def split_banks(lines: list[str], where: str) -> tuple[list[str], list[BankRecord]]:
    """Split a GSAS file into its header lines and its BANK blocks.

    A block's data lines run from the line after its BANK record up to the
    next BANK record, ``#`` comment, or the end of the file. Blank lines carry
    no data and are skipped; any other text between blocks is an error.
    """
    header: list[str] = []
    banks: list[BankRecord] = []
    pending_comments: list[str] = []
    current = None  # (bank fields, line_no, data list, comments)
    in_data = False

    def close():
        if current is not None:
            fields, ln, data, com = current
            banks.append(BankRecord(*fields, line_no=ln, data=tuple(data), comments=tuple(com)))

    for i, raw in enumerate(lines):
        ln = i + 1
        text = raw.rstrip("\r\n")
        if "\x1a" in text:  # DOS end-of-file marker in old GSAS files
            break
        if text.startswith("BANK"):
            close()
            fields = parse_bank_line(text, ln, where)
            current = (fields, ln, [], pending_comments)
            pending_comments = []
            in_data = True
            continue
        if current is None:
            header.append(text)
            continue
        if text.startswith("#"):
            pending_comments.append(text)
            in_data = False
            continue
        if not text.strip():
            continue
        if text.startswith("TIME_MAP"):
            raise ValueError(
                f"{where}, line {ln}: TIME_MAP records are not supported; convert the file to FXYE"
            )
        if not in_data:
            raise ValueError(
                f"{where}, line {ln}: unexpected text {text.strip()[:40]!r} after a '#' comment; "
                "expected a BANK record or another comment"
            )
        current[2].append((ln, text))
    close()
    return header, banks


def _num(field: str, where: str, ln: int, what: str) -> float:
    try:
        return float(field)
    except ValueError:
        raise ValueError(
            f"{where}, line {ln}: cannot read {what} from {field.strip()!r}; expected a number "
            "(is the line cut short?)"
        ) from None


def _fixed_width(lines) -> bool:
    """Fortran fixed-record files fill every line but the last to column ~80."""
    body = [t.rstrip() for _, t in lines[:-1]]
    # a short line or two (a repeated last record, a padded end) does not make the file free-format
    return bool(body) and sum(len(t) > 72 for t in body) >= 0.9 * len(body)


def read_columns(bank: BankRecord, ncol: int, where: str):
    """FXYE (ncol=3) / FXY (ncol=2): one point per line, free format."""
    names = ("x", "y", "esd")[:ncol]
    out = np.empty((len(bank.data), ncol))
    line_nos = np.empty(len(bank.data), dtype=np.int64)
    for k, (ln, text) in enumerate(bank.data):
        tok = text.split()
        if len(tok) != ncol:
            raise ValueError(
                f"{where}, line {ln}: {bank.dtype} data line has {len(tok)} values; expected "
                f"{ncol} ({' '.join(names)}) (is the line cut short?)"
            )
        for j in range(ncol):
            out[k, j] = _num(tok[j], where, ln, names[j])
        line_nos[k] = ln
    return out, line_nos


def read_esd(bank: BankRecord, where: str):
    """ESD: five (intensity F8, esd F8) pairs per 80-column line."""
    ys, es, lns = [], [], []
    fixed = _fixed_width(bank.data)
    for ln, text in bank.data:
        if fixed:
            for k in range(5):
                f1, f2 = text[16 * k : 16 * k + 8], text[16 * k + 8 : 16 * k + 16]
                if not f1.strip() and not f2.strip():
                    break
                ys.append(_num(f1, where, ln, "intensity"))
                es.append(_num(f2, where, ln, "esd"))
                lns.append(ln)
        else:
            tok = text.split()
            if len(tok) % 2:
                raise ValueError(
                    f"{where}, line {ln}: ESD data line has {len(tok)} values; expected "
                    "(intensity, esd) pairs (is the line cut short?)"
                )
            for k in range(0, len(tok), 2):
                ys.append(_num(tok[k], where, ln, "intensity"))
                es.append(_num(tok[k + 1], where, ln, "esd"))
                lns.append(ln)
    return np.array(ys), np.array(es), np.array(lns, dtype=np.int64), fixed


def read_std(bank: BankRecord, where: str):
    """STD: ten (NCTR I2, intensity F6) records per 80-column line.

    The esd of a STD intensity is sqrt(I / NCTR) (GSAS manual); free-format
    lines of plain counts (NCTR = 1) are accepted too.
    """
    ys, ncs, lns = [], [], []
    fixed = _fixed_width(bank.data)
    for ln, text in bank.data:
        if fixed:
            for k in range(10):
                f = text[8 * k : 8 * k + 8]
                if not f.strip():
                    break
                nc = f[:2].strip()
                ncs.append(max(int(_num(nc, where, ln, "NCTR")), 1) if nc else 1)
                ys.append(_num(f[2:], where, ln, "intensity"))
                lns.append(ln)
        else:
            for t in text.split():
                ys.append(_num(t, where, ln, "intensity"))
                ncs.append(1)
                lns.append(ln)
    return np.array(ys), np.array(ncs, dtype=float), np.array(lns, dtype=np.int64), fixed


def read_alt(bank: BankRecord, where: str):
    """ALT: four (x·32 F8, intensity·1000 F7, esd·1000 F5) records per line.

    x is TOF in units of 1/32 µs; intensity and esd are scaled by 1000.
    """
    xs, ys, es, lns = [], [], [], []
    for ln, text in bank.data:
        for k in range(4):
            rec = text[20 * k : 20 * k + 20]
            if not rec.strip():
                break
            xs.append(_num(rec[0:8], where, ln, "x·32"))
            ys.append(_num(rec[8:15], where, ln, "intensity·1000"))
            es.append(_num(rec[15:20], where, ln, "esd·1000"))
            lns.append(ln)
    return (
        np.array(xs) / 32.0,
        np.array(ys) / 1000.0,
        np.array(es) / 1000.0,
        np.array(lns, dtype=np.int64),
    )


def bin_grid(bank: BankRecord, n: int) -> np.ndarray:
    """x of the n points implied by the BANK coefficients (file units, µs for RALF)."""
    i = np.arange(n, dtype=float)
    if bank.bintyp == "CONST":
        return bank.coeff(1) + i * bank.coeff(2)
    if bank.bintyp == "SLOG":
        return bank.coeff(1) * (1.0 + bank.coeff(3)) ** i
    # RALF
    t = np.empty(n)
    t0, step, t_log, ratio = (bank.coeff(1) / 32.0, bank.coeff(2) / 32.0, bank.coeff(3) / 32.0, bank.coeff(4))
    cur = t0
    for k in range(n):
        t[k] = cur
        cur = cur + step if cur < t_log else cur * (1.0 + ratio)
    return t


def bin_widths(bank: BankRecord, x: np.ndarray) -> np.ndarray:
    """Nominal width Δt_i of the bin starting at x_i, from the BANK coefficients.

    SLOG: Δt_i = BCOEF3·x_i; CONST: Δt = BCOEF2; RALF: BCOEF2/32 below
    BCOEF3/32, BCOEF4·x_i above.
    """
    if bank.bintyp == "SLOG":
        return bank.coeff(3) * x
    if bank.bintyp == "CONST":
        return np.full_like(x, bank.coeff(2))
    step, t_log, ratio = bank.coeff(2) / 32.0, bank.coeff(3) / 32.0, bank.coeff(4)
    return np.where(x < t_log, step, ratio * x)
