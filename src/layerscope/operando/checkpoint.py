"""One refined pattern of a series (:class:`SeriesRecord`) and the checkpoint of a run.

After every pattern the state (full parameter vector, results row) is appended to
``checkpoint.json`` (written atomically); a run that is killed resumes after the last
completed pattern and produces identical results, because each pattern's refinement is a
deterministic function of its data and its seed vector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SeriesRecord"]


@dataclass(frozen=True)
class SeriesRecord:
    """One refined pattern: its name, the full parameter vector and the derived row; ``esd``
    holds the standard uncertainties of the quantities this pattern refined ({layout name: esd},
    NaN for one the data did not determine; ``<phase>.volume`` too), for the per-pattern CIFs.

    ``calc``: when the series was refined with ``keep_calc``, one ``(y_calc, background)`` pair
    of arrays per bank at ``full`` (recomputed after a resume, never stored in the checkpoint)."""

    name: str
    full: list
    row: dict
    warnings: list = field(default_factory=list)
    esd: dict = field(default_factory=dict)
    calc: tuple | None = field(default=None, compare=False, repr=False)


class _Checkpoint:
    """Append-only JSON checkpoint, rewritten atomically after every pattern."""

    def __init__(self, out_dir, names, protocol, phase_names, derived=(), instruments=None):
        self.path = Path(out_dir) / "checkpoint.json"
        self.key = {"patterns": list(names), "protocol": protocol.digest, "phases": list(phase_names)}
        if derived:   # derived quantities given besides the protocol's change the rows
            self.key["derived"] = [list(d) for d in derived]
        if instruments:   # each bank's instrument constants (one bank: a list of one)
            self.key["instruments"] = json.loads(json.dumps(instruments))

    def load(self) -> dict:
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.path}: unreadable checkpoint ({exc}); delete it to start over") from None
        old_key = {k: v for k, v in self.key.items() if k != "instruments"}
        if doc.get("key") == old_key and "instruments" in self.key and len(self.key["instruments"]) == 1:
            # a one-bank checkpoint written before the instrument was part of the key
            import warnings

            warnings.warn(f"{self.path}: this checkpoint does not record the instrument it was refined with; "
                          "resuming on the assumption that it is the same", stacklevel=2)
            self.key = old_key
        if doc.get("key") != self.key:
            raise ValueError(f"{self.path}: checkpoint belongs to another series, protocol or instrument; "
                             "use a new --out folder or delete the checkpoint")
        return {r["name"]: SeriesRecord(r["name"], r["full"], r["row"], r.get("warnings", []), r.get("esd", {}))
                for r in doc["records"]}

    def append(self, rec: SeriesRecord) -> None:
        doc = {"key": self.key, "records": []}
        if self.path.exists():
            doc = json.loads(self.path.read_text())
        doc["records"].append({"name": rec.name, "full": rec.full, "row": _jsonable(rec.row),
                               "warnings": rec.warnings, "esd": _jsonable(rec.esd)})
        from layerscope._io import write_text

        write_text(self.path, json.dumps(doc))


def _jsonable(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, (np.floating, float)):
            out[k] = float(v)
        elif isinstance(v, (np.integer, int)) and not isinstance(v, bool):
            out[k] = int(v)
        else:
            out[k] = v
    return out
