"""An operando series on disk: a folder of pattern files plus ``series.csv``.

``series.csv`` has one row per pattern — ``file``, ``start_s``, ``end_s`` (seconds from the
cycler log's time zero) and optional ``bank`` — and is the one place where the time of each
pattern lives (beamlines name and stamp files in many ways). The first row is the reference
pattern (the long uncharged one in the paper's protocol).
"""

from __future__ import annotations

from layerscope._errors import MissingFile, reader
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SeriesEntry", "read_manifest", "read_series_patterns", "build_manifest", "group_time_steps"]


@dataclass(frozen=True)
class SeriesEntry:
    file: Path
    start_s: float
    end_s: float
    bank: int | None = None

    @property
    def mid_h(self) -> float:
        return 0.5 * (self.start_s + self.end_s) / 3600.0


@reader
def read_manifest(series_dir) -> list[SeriesEntry]:
    """Read ``SERIES_DIR/series.csv``; errors name the file, the row and what was expected."""
    series_dir = Path(series_dir)
    path = series_dir / "series.csv"
    if not series_dir.is_dir():
        raise FileNotFoundError(f"{series_dir}: series folder not found")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing manifest (expected columns file,start_s,end_s[,bank])")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        missing = [c for c in ("file", "start_s", "end_s") if c not in cols]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (have {cols})")
        out = []
        for n, row in enumerate(reader, 2):
            try:
                t0, t1 = float(row["start_s"]), float(row["end_s"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {n}: start_s/end_s must be numbers, got "
                                 f"{row.get('start_s')!r}, {row.get('end_s')!r}") from None
            if not (np.isfinite(t0) and np.isfinite(t1) and t1 > t0):
                raise ValueError(f"{path}, line {n}: need end_s > start_s, got {t0}, {t1}")
            f = series_dir / (row["file"] or "")
            try:
                found = bool(row["file"]) and f.is_file()
            except (OSError, ValueError):  # a name too long, a NUL byte
                found = False
            if not found:
                raise MissingFile(f"pattern file {f} not found", path=path, where=f"line {n}")
            bank = row.get("bank") or None
            try:
                bank = int(bank) if bank else None
            except ValueError:
                raise ValueError(f"{path}, line {n}: bank must be a whole number, got {bank!r}") from None
            out.append(SeriesEntry(f, t0, t1, bank))
    if not out:
        raise ValueError(f"{path}: no patterns listed")
    return out


def read_series_patterns(entries: list[SeriesEntry], tof_range=None):
    """(name, tof_us, y, sigma) for each entry, cut to ``tof_range`` (µs) when given."""
    from layerscope.diffraction.readers import read_powder

    out = []
    for e in entries:
        d = read_powder(e.file, bank=e.bank) if e.bank is not None else read_powder(e.file)
        if d.kind != "tof":
            raise ValueError(f"{e.file}: expected a TOF pattern, got kind {d.kind!r}")
        sel = np.ones(len(d.x), bool) if tof_range is None else (d.x >= tof_range[0]) & (d.x <= tof_range[1])
        out.append((e.file.name, np.asarray(d.x[sel]), np.asarray(d.y[sel]), np.asarray(d.sigma[sel])))
    return out


# --- building series.csv from the data files' own headers -----------------------------------
_ISO = r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)"
_NUM = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_KEY_START = r"(?:start[ _]?time|run[ _]?start|start[ _]?date[ _]?time|started)"
_KEY_END = r"(?:end[ _]?time|stop[ _]?time|run[ _]?end|run[ _]?stop|ended)"
_KEY_DUR = r"(?:duration|count(?:ing)?[ _]?time|collection[ _]?time|acquisition[ _]?time)"


def _header_times(lines) -> dict:
    """start/end datetimes, start_s/end_s (seconds) and a duration found in header lines.

    Recognised forms (case-insensitive, ``:`` or ``=`` after the key): ``start_time``,
    ``run_start``, ``start time`` … with an ISO-8601 date-time; ``end_time``/``stop_time``/
    ``run_end``; ``start_s``/``end_s`` in seconds from the cycler's time zero; and
    ``duration``/``count time`` in s (or with a unit s, min, h).
    """
    import re
    from datetime import datetime

    out: dict = {}
    text = "\n".join(lines)
    for key, pat in (("start", _KEY_START), ("end", _KEY_END)):
        m = re.search(pat + r"\s*[:=]\s*" + _ISO, text, re.IGNORECASE)
        if m:
            out[key] = datetime.fromisoformat(m.group(1).replace("Z", "+00:00").replace(" ", "T"))
        m = re.search(rf"\b{key}_s\s*[:=]\s*" + _NUM, text, re.IGNORECASE)
        if m:
            out[f"{key}_s"] = float(m.group(1))
    m = re.search(_KEY_DUR + r"\s*[:=]\s*" + _NUM + r"\s*(s|sec|seconds?|min|minutes?|h|hours?)?\b", text,
                  re.IGNORECASE)
    if m:
        unit = (m.group(2) or "s").lower()
        out["duration_s"] = float(m.group(1)) * (3600.0 if unit.startswith("h") else 60.0 if unit.startswith("m")
                                                 else 1.0)
    return out


def _file_header(path: Path) -> list[str]:
    from layerscope.diffraction.readers import read_powder

    meta = read_powder(path).meta
    lines = [str(meta.get("title", ""))]
    for k in ("header", "bank_comments", "comments"):
        lines += [str(x) for x in meta.get(k, []) or []]
    return lines


def build_manifest(series_dir, *, pattern: str = "*.gsa", time_zero=None, duration_s: float | None = None,
                   bank: int | None = None, write: bool = True) -> list[SeriesEntry]:
    """Build ``SERIES_DIR/series.csv`` from the pattern files' own headers.

    Each file matching ``pattern`` is read and its header searched for its counting interval
    (see :func:`_header_times`): absolute start/end date-times (converted to seconds from
    ``time_zero``, the date-time of the cycler log's t = 0 — required for them), or
    ``start_s``/``end_s`` already relative to it. A missing end is start + the header's
    duration, else start + ``duration_s``, else the next pattern's start (back-to-back
    counting; the last one then needs a duration). Rows are sorted by start time, so the first
    is the earliest pattern (the reference of the paper's protocol). The manifest is written
    atomically (columns file, start_s, end_s, bank, start_time) unless ``write`` is False.
    Errors name the file and what is missing.
    """
    import os
    from datetime import datetime, timezone

    series_dir = Path(series_dir)
    if not series_dir.is_dir():
        raise FileNotFoundError(f"{series_dir}: series folder not found")
    files = sorted(p for p in series_dir.glob(pattern) if p.is_file())
    if not files:
        raise ValueError(f"{series_dir}: no files match {pattern!r}")
    if isinstance(time_zero, str):
        try:
            time_zero = datetime.fromisoformat(time_zero.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"time zero {time_zero!r}: expected an ISO-8601 date-time such as "
                             "2024-05-06T09:00:00") from None

    def seconds(dt, f):
        if time_zero is None:
            raise ValueError(f"{f}: the header gives absolute date-times ({dt.isoformat()}); give the cycler "
                             "log's time zero (time_zero / --time-zero) to place them on its clock")
        a, b = dt, time_zero
        if (a.tzinfo is None) != (b.tzinfo is None):
            a, b = a.replace(tzinfo=a.tzinfo or timezone.utc), b.replace(tzinfo=b.tzinfo or timezone.utc)
        return (a - b).total_seconds()

    rows = []
    for f in files:
        h = _header_times(_file_header(f))
        start = h["start_s"] if "start_s" in h else seconds(h["start"], f) if "start" in h else None
        if start is None:
            raise ValueError(f"{f}: no start time in its header (looked for start_time/run_start = ISO date-time "
                             "or start_s = seconds); write series.csv by hand for such files")
        end = h["end_s"] if "end_s" in h else seconds(h["end"], f) if "end" in h else None
        if end is None and (h.get("duration_s") or duration_s):
            end = start + float(h.get("duration_s") or duration_s)
        iso = h["start"].isoformat() if "start" in h else ""
        rows.append({"file": f.name, "start_s": float(start), "end_s": end, "bank": bank, "start_time": iso})
    rows.sort(key=lambda r: r["start_s"])
    for r, nxt in zip(rows, rows[1:] + [None]):
        if r["end_s"] is None:
            if nxt is None:
                raise ValueError(f"{series_dir / r['file']}: no end time or duration in its header and it is the "
                                 "last pattern; give duration_s / --duration-s")
            r["end_s"] = nxt["start_s"]
        if not r["end_s"] > r["start_s"]:
            raise ValueError(f"{series_dir / r['file']}: end ({r['end_s']} s) is not after start ({r['start_s']} s)")
    if write:
        path = series_dir / "series.csv"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["file", "start_s", "end_s", "bank", "start_time"])
            w.writeheader()
            for r in rows:
                w.writerow({**r, "start_s": f"{r['start_s']:.10g}", "end_s": f"{r['end_s']:.10g}",
                            "bank": "" if r["bank"] is None else r["bank"]})
        os.replace(tmp, path)
    return [SeriesEntry(series_dir / r["file"], r["start_s"], r["end_s"], r["bank"]) for r in rows]


def group_time_steps(entries: list[SeriesEntry], source=None) -> list[list[SeriesEntry]]:
    """The manifest's rows grouped into time steps: rows with the same counting window
    (``start_s``, ``end_s``) are the banks of one time step (in the manifest's order of first
    appearance, each step's banks sorted by number). With more than one row per step every row
    needs a ``bank`` and every step the same banks; errors name the manifest and the file."""
    from layerscope._errors import InputError

    steps: dict = {}
    for e in entries:
        steps.setdefault((e.start_s, e.end_s), []).append(e)
    out = list(steps.values())
    if all(len(s) == 1 for s in out):
        return out
    first = None
    for st in out:
        for e in st:
            if e.bank is None:
                raise InputError(f"pattern {e.file.name} shares its counting window ({e.start_s:g}–{e.end_s:g} s) "
                                 "with another row but has no bank number (the banks of one time step need the "
                                 "bank column)", path=source)
        st.sort(key=lambda e: e.bank)
        banks = [e.bank for e in st]
        if len(set(banks)) != len(banks):
            raise InputError(f"time step {st[0].start_s:g}–{st[0].end_s:g} s lists bank(s) twice: "
                             f"{', '.join(e.file.name for e in st)}", path=source)
        if first is None:
            first = banks
        elif banks != first:
            raise InputError(f"time step {st[0].start_s:g}–{st[0].end_s:g} s ({st[0].file.name}) has banks {banks}, "
                             f"the first time step {first}: every time step needs the same banks", path=source)
    return out
