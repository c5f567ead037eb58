"""What every study runner shares: reading a CSV table, one truth check, the truth file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

__all__ = ["_rows", "_check", "_check_fraction", "_truth"]


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _check(quantity, value, truth, tolerance, *, relative=False, note="", esd=None) -> dict:
    value, truth = float(value), float(truth)
    err = value - truth
    lim = tolerance * abs(truth) if relative else tolerance
    ok = bool(np.isfinite(err) and abs(err) <= lim)
    return {"quantity": quantity, "value": value, "esd": None if esd is None else float(esd), "truth": truth,
            "error": err, "tolerance": f"{tolerance:g}{' (relative)' if relative else ''}", "ok": ok,
            "note": note}


def _check_fraction(quantity, fraction, minimum, note="") -> dict:
    ok = bool(fraction >= minimum)
    return {"quantity": quantity, "value": float(fraction), "esd": None, "truth": 1.0, "error": float(fraction) - 1,
            "tolerance": f">= {minimum:g}", "ok": ok, "note": note}


def _truth(opts) -> dict | None:
    t = opts.get("truth")
    return json.loads(Path(t).read_text()) if t else None
