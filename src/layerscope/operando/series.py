"""An operando series on disk: a folder of pattern files plus ``series.csv``.

``series.csv`` has one row per pattern — ``file``, ``start_s``, ``end_s`` (seconds from the
cycler log's time zero) and optional ``bank`` — and is the one place where the time of each
pattern lives (beamlines name and stamp files in many ways). The first row is the reference
pattern (the long uncharged one in the paper's protocol).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SeriesEntry", "read_manifest", "read_series_patterns"]


@dataclass(frozen=True)
class SeriesEntry:
    file: Path
    start_s: float
    end_s: float
    bank: int | None = None

    @property
    def mid_h(self) -> float:
        return 0.5 * (self.start_s + self.end_s) / 3600.0


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
            f = series_dir / row["file"]
            if not f.is_file():
                raise FileNotFoundError(f"{path}, line {n}: pattern file {f} not found")
            bank = row.get("bank") or None
            out.append(SeriesEntry(f, t0, t1, int(bank) if bank else None))
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
