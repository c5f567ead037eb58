"""The instrument of each bank of an operando series, and the ``--instprm BANK=FILE`` form.

A series with one pattern per time step takes one instrument (a GSAS-II ``.instprm`` path, a
loaded :class:`~layerscope.diffraction.instrument.TOFInstrument`, or by default the one
``.instprm`` in the series folder). A series with several banks per time step (rows of
``series.csv`` that share a counting window, each with a ``bank`` number) takes one per bank: a
dict ``{bank: path or instrument}`` (keys may be the bank numbers as text, as a study file's
TOML table gives them), a list in the order of the banks, or by default one
``*bank<N>*.instprm`` per bank in the series folder. A bank of the series without an
instrument, or an instrument for a bank the series does not list, is an
:class:`~layerscope._errors.InputError` naming ``series.csv`` and the bank.
"""

from __future__ import annotations

import re
from pathlib import Path

from layerscope._errors import InputError

__all__ = ["parse_instprm_args", "series_instruments"]


def parse_instprm_args(values, *, option: str = "--instprm"):
    """The values of a repeatable ``--instprm`` option: ``None`` (none given), one path (a plain
    ``FILE``, given once), or ``{bank: path}`` from ``BANK=FILE`` items (every item then needs
    the ``BANK=`` form; a bank given twice is an error)."""
    if values is None or isinstance(values, (str, Path)):
        return values
    values = list(values)
    if not values:
        return None
    tagged = [re.fullmatch(r"\s*(\d+)\s*=(.+)", str(v)) for v in values]
    if not any(tagged):
        if len(values) > 1:
            raise InputError(f"{option} given {len(values)} times without bank numbers: give one file, or one "
                             f"BANK=FILE per bank (e.g. {option} 1=bank1.instprm {option} 2=bank2.instprm)")
        return values[0]
    out: dict[int, str] = {}
    for v, m in zip(values, tagged):
        if not m:
            raise InputError(f"{option} {v!r}: with several banks every instrument needs its bank, "
                             f"as BANK=FILE (e.g. {option} 2=bank2.instprm)")
        b = int(m.group(1))
        if b in out:
            raise InputError(f"{option}: bank {b} is given twice ({out[b]} and {m.group(2)})")
        out[b] = m.group(2)
    return out


def _bank_keys(instrument: dict, manifest: Path) -> dict:
    out = {}
    for k, v in instrument.items():
        try:
            b = int(k)
        except (TypeError, ValueError):
            raise InputError(f"instrument key {k!r}: expected a bank number of the series", path=manifest) from None
        if b in out:
            raise InputError(f"bank {b} has two instruments", path=manifest)
        out[b] = v
    return out


def _load(inst):
    from layerscope.diffraction.instrument import read_instprm

    if isinstance(inst, (str, Path)):
        return read_instprm(inst), str(Path(inst).resolve())
    return inst, str(getattr(inst, "source", "") or "")


def series_instruments(instrument, series_dir, banks: list) -> tuple[dict, dict]:
    """``({bank: instrument}, {bank: its file or source})`` of a series.

    ``banks``: the bank numbers of a time step when it has several, else ``[]`` (one bank; the
    result's key is then ``None``). Errors name ``series.csv`` and the bank."""
    series_dir = Path(series_dir)
    manifest = series_dir / "series.csv"
    if not banks:
        if isinstance(instrument, dict):
            keys = sorted(_bank_keys(instrument, manifest))
            raise InputError(f"an instrument is given for bank(s) {keys}, but the series has one pattern per time "
                             "step (no banks to match): give one instrument file without a bank number",
                             path=manifest)
        if isinstance(instrument, (list, tuple)):
            if len(instrument) != 1:
                raise InputError(f"{len(instrument)} instruments for a series with one pattern per time step",
                                 path=manifest)
            instrument = instrument[0]
        if instrument is None:
            found = sorted(series_dir.glob("*.instprm"))
            if len(found) != 1:
                raise InputError(f"{series_dir}: give --instprm (found {len(found)} .instprm files in the series "
                                 "folder)")
            instrument = found[0]
        inst, src = _load(instrument)
        return {None: inst}, {None: src}
    if instrument is None:
        found = {}
        for b in banks:
            hits = [f for f in sorted(series_dir.glob("*.instprm"))
                    if re.search(rf"bank[_-]?{b}(?!\d)", f.stem, re.IGNORECASE)]
            if len(hits) != 1:
                raise InputError(f"the series has banks {banks}; give one instrument per bank (found {len(hits)} "
                                 f"file(s) *bank{b}*.instprm for bank {b} in {series_dir}; or --instprm "
                                 f"{b}=FILE)", path=manifest)
            found[b] = hits[0]
        instrument = found
    elif isinstance(instrument, (list, tuple)):
        if len(instrument) != len(banks):
            raise InputError(f"{len(instrument)} instrument(s) for banks {banks}: give one per bank", path=manifest)
        instrument = dict(zip(banks, instrument))
    elif not isinstance(instrument, dict):
        raise InputError(f"the series has banks {banks} per time step: give one instrument per bank (--instprm "
                         f"BANK=FILE for each, a dict bank → .instprm, or files *bank<N>*.instprm in the series "
                         f"folder), not one for all", path=manifest)
    instrument = _bank_keys(instrument, manifest)
    missing = [b for b in banks if b not in instrument]
    if missing:
        raise InputError(f"bank(s) {missing} of the series have no instrument (given for bank(s) "
                         f"{sorted(instrument)}; e.g. --instprm {missing[0]}=FILE)", path=manifest)
    extra = [b for b in instrument if b not in banks]
    if extra:
        raise InputError(f"an instrument is given for bank(s) {sorted(extra)}, which the series does not list "
                         f"(its banks: {banks})", path=manifest)
    loaded = {b: _load(instrument[b]) for b in banks}
    return {b: v[0] for b, v in loaded.items()}, {b: v[1] for b, v in loaded.items()}
