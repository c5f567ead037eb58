"""``refine_series``: an operando series folder and its cycler log in, a :class:`SeriesResult` out.

The series is refined pattern by pattern (:func:`layerscope.operando.sequential.refine_series`:
the reference pattern with the protocol's ``[reference]`` stages, then every pattern from its
neighbour's result), each pattern aligned in time with the cycler log
(:func:`~layerscope.operando.align.align_to_cycler`). :class:`SeriesResult` holds one row per
pattern — every refined quantity, its esd, the flags — and gives them as an xarray Dataset over
``pattern`` with units (:meth:`SeriesResult.to_xarray`); :func:`write_series` writes what
``layerscope operando`` writes (``timeseries.csv``, ``operando.h5``, the Fig. 2 figures,
``index.html``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SeriesResult", "refine_series", "write_series", "stderr_progress"]


@dataclass(frozen=True, repr=False)
class SeriesResult:
    """A refined operando series.

    Attributes
    ----------
    rows : one dict per pattern: ``pattern``, ``time_h``, ``voltage_V``, ..., ``rwp``, ``converged``,
        ``flag``, ``held``, ``note``, ``undetermined``, and every observable with its ``_esd``
    records : the :class:`~layerscope.operando.checkpoint.SeriesRecord` of each pattern (full parameters)
    patterns : ``(name, tof_us, y, sigma)`` of each pattern as refined (of the first bank when a
        time step has several)
    instrument : the :class:`~layerscope.diffraction.instrument.TOFInstrument` (of the first bank)
    bank_patterns, instruments, instrument_files : several banks per time step: each bank's
        patterns, instrument and the file it came from (empty for one bank); each record's
        ``calc`` holds its calculated pattern and background per bank (:meth:`banks`)
    model, layout : the pattern model and its parameter layout
    protocol : the series protocol (:class:`~layerscope.operando.protocol.SeriesProtocol`)
    provenance : series folder, cycler log, model, strategy (and its SHA-256), instrument, criteria
    """

    rows: list
    records: list
    patterns: list
    instrument: object
    model: object
    layout: object
    protocol: object
    series_model: object
    provenance: dict = field(default_factory=dict)
    #: the series folder as given, and the cycler alignment's notes (pattern file, note)
    source: str = ""
    notes: tuple = ()
    #: several banks per time step: {bank: [(name, tof_us, y, sigma) per time step]} and
    #: {bank: instrument}; empty for one bank
    bank_patterns: dict = field(default_factory=dict)
    instruments: dict = field(default_factory=dict)
    #: (start_s, end_s) of each time step's exposure (the manifest's)
    windows: tuple = ()
    #: {derived quantity: unit} ("unspecified" where none was given)
    units: dict = field(default_factory=dict)
    #: several banks: {bank: the instrument file (or source) used for it}
    instrument_files: dict = field(default_factory=dict)

    def calculated(self, bank=None):
        """``[(y_calc, background)]`` per time step of ``bank`` (default the first), or None when
        the records carry no calculated patterns."""
        k = 0 if bank is None else list(self.bank_patterns).index(bank)
        if not self.records or any(r.calc is None for r in self.records):
            return None
        return [r.calc[k] for r in self.records]

    def banks(self) -> list:
        """``[(bank, patterns, calc, instrument)]``: every bank's observed patterns, calculated
        patterns (:meth:`calculated`) and instrument; one entry with bank None for one bank."""
        if not self.bank_patterns:
            return [(None, self.patterns, self.calculated(), self.instrument)]
        return [(b, pats, self.calculated(b), self.instruments[b]) for b, pats in self.bank_patterns.items()]

    def bank_datasets(self) -> dict:
        """Several banks: {bank: its xarray Dataset} (:func:`~layerscope.operando.outputs.bank_dataset`,
        the groups ``bank<N>`` of ``operando.h5``); {} for one bank."""
        from layerscope.operando.outputs import bank_dataset

        return {b: bank_dataset(self.rows, pats, calc, bank=b, instrument=self.instrument_files.get(b, ""))
                for b, pats, calc, _ in self.banks()} if self.bank_patterns else {}

    def to_datatree(self):
        """The content of ``operando.h5`` as an xarray DataTree: the columns at the root and, for
        several banks, one child ``bank<N>`` per bank with its patterns."""
        import xarray as xr

        return xr.DataTree.from_dict({"/": self.to_xarray(), **{f"bank{b}": ds for b, ds in
                                                              self.bank_datasets().items()}})

    @property
    def n_flagged(self) -> int:
        return sum(1 for r in self.rows if not r["converged"])

    @property
    def n_undetermined(self) -> int:
        return sum(1 for r in self.rows if r.get("undetermined"))

    def to_xarray(self):
        """An xarray Dataset over ``pattern`` (and ``tof`` for the observed and calculated patterns
        of a one-bank series): every refined quantity and its ``_esd`` with units,
        ``converged``/``flag``/``held``/``undetermined`` per pattern, provenance in attrs (the
        root of ``operando.h5``; several banks: their patterns are in :meth:`bank_datasets`)."""
        from layerscope.operando.outputs import series_dataset

        if self.bank_patterns:
            return series_dataset(self.rows, None, provenance=self.provenance, units=self.units)
        return series_dataset(self.rows, self.patterns, provenance=self.provenance, calc=self.calculated(),
                              units=self.units)

    def write_cifs(self, folder) -> list:
        """One CIF per refined pattern in ``folder`` (``<pattern stem>.cif``: a pattern block and one
        block per determined phase, values with esds; :mod:`layerscope.operando.pattern_cif`)."""
        from layerscope.operando.pattern_cif import write_pattern_cifs

        return write_pattern_cifs(self.records, self.model, self.protocol, folder, windows=self.windows or None)

    def to_dataframe(self):
        """One row per pattern (the columns of ``timeseries.csv``) as a pandas DataFrame."""
        import pandas as pd

        from layerscope.operando.outputs import _columns

        cols = _columns(self.rows)
        return pd.DataFrame([{k: r.get(k) for k in cols} for r in self.rows], columns=cols).set_index("pattern")

    def fit(self, column: str, against: str = "time_h", degree: int = 1, *, scale_by_gof: bool = False):
        """Weighted polynomial trend of ``column`` against ``against`` (``time_h``,
        ``capacity_mAh`` …) over the rows that measured it (:func:`layerscope.operando.trends.fit_trend`:
        held, flagged and undetermined values left out). Returns a
        :class:`~layerscope.operando.trends.TrendFit`."""
        from layerscope.operando.trends import fit_trend

        return fit_trend(self.rows, column, against, degree, scale_by_gof=scale_by_gof)

    def __repr__(self) -> str:
        rows = self.rows
        rwp = np.array([r["rwp"] for r in rows], float)
        t = [r.get("time_h", np.nan) for r in rows]
        lines = [f"SeriesResult({len(rows)} patterns, t = {np.nanmin(t):.2f}–{np.nanmax(t):.2f} h, "
                 f"Rwp {np.nanmin(rwp):.2f}–{np.nanmax(rwp):.2f} %; {self.n_flagged} flagged, "
                 f"{self.n_undetermined} with a phase not determined)"]
        for k in rows[0]:
            if k.startswith("frac_") and not k.endswith("_esd"):
                first, last = rows[0][k], rows[-1][k]
                e0, e1 = rows[0].get(f"{k}_esd", np.nan), rows[-1].get(f"{k}_esd", np.nan)
                lines.append(f"  {k}: {first:.4f}({_esd(e0)}) → {last:.4f}({_esd(e1)})")
        for r in rows:
            if r.get("flag"):
                lines.append(f"  flag {r['pattern']}: {r['flag']}")
        return "\n".join(lines)


def _esd(e) -> str:
    return "—" if not np.isfinite(e) else f"{e:.2g}"


def refine_series(series, *, cycler, instrument=None, model="lrm-pouch", strategy=None, reverse: bool = False,
                  tof_range=None, checkpoint_dir=None, progress=None, bridge_progress=None,
                  derived=None) -> SeriesResult:
    """Sequential Rietveld refinement of an operando TOF series.

    Parameters
    ----------
    series : str or Path
        Folder holding the pattern files and ``series.csv`` (file, start_s, end_s[, bank]; times in s).
        Rows with the same counting window are the banks of one time step, refined together (one
        output row per time step, with ``rwp_bank<N>`` per bank).
    cycler : str, Path or CyclerLog
        Cycler log (path, any supported format) or an :class:`~layerscope.echem.io.CyclerLog`.
    instrument : str, Path or Instrument, optional
        GSAS-II ``.instprm`` path or a loaded instrument (default: the one ``.instprm`` in the
        series folder). Several banks: a dict bank → path or instrument (keys the bank numbers of
        ``series.csv``, as int or text), or a list in the order of the banks (default: one
        ``*bank<N>*.instprm`` per bank in the series folder); a bank without an instrument, or an
        instrument for a bank the series does not list, is an InputError
        (:mod:`layerscope.operando.instruments`). The file used for each bank is recorded
        (``provenance["instrument_bank<N>"]``, ``instrument_files``).
    model : str or Path, optional
        Preset model name (default ``lrm-pouch``) or a TOML model file.
    strategy : str or Path, optional
        Series protocol TOML (default: the built-in ``operando_lrm.toml``).
    reverse : bool, optional
        Refine the series from the last pattern back.
    tof_range : tuple of float, optional
        (min, max) time of flight (µs) to refine; default the whole pattern.
    checkpoint_dir : str or Path, optional
        Folder for ``checkpoint.json`` (a second call resumes); None keeps it in memory.
    progress : callable, optional
        ``progress(k, n, record)`` after each pattern.
    bridge_progress : callable, optional
        ``bridge_progress(record, note)`` after each pattern of a bridged hold stretch.
    derived : dict, optional
        ``{name: formula}`` of derived quantities (GSAS-II's pseudo-variables), reported with esds
        propagated through each pattern's covariance, besides the strategy's ``[[series.derived]]``
        (:mod:`layerscope.operando.derived`), e.g. ``{"O3p_ab": "O3p_a * O3p_b"}``; with a unit,
        ``{"O3p_ab": {"expr": "O3p_a * O3p_b", "unit": "Å^2"}}`` (without one it is recorded as
        "unspecified" and a note says so: a unit is never inferred from the formula).

    Returns
    -------
    SeriesResult
        Per-pattern rows and records (every refined quantity with its esd, flags, units),
        the patterns, instrument, model, protocol and provenance; ``to_xarray()`` gives a
        Dataset over ``pattern``.

    Examples
    --------
    >>> import layerscope as ls
    >>> res = ls.refine_series("sim/series", cycler="sim/cycler.csv")     # doctest: +SKIP
    >>> res.to_xarray()["frac_O3p"]                                       # doctest: +SKIP
    """
    from layerscope.echem.io import read_cycler
    from layerscope.operando.align import align_to_cycler
    from layerscope.operando.derived import derived_units, split_derived
    from layerscope.operando.instruments import series_instruments
    from layerscope.operando.model import load_series_model
    from layerscope.operando.series import group_time_steps, read_manifest, read_series_patterns
    from layerscope.operando.protocol import default_series_protocol, read_series_protocol
    from layerscope.operando.sequential import refine_series as _sequential

    derived, user_units = split_derived(derived)
    series_dir = Path(series)
    entries = read_manifest(series_dir)
    steps = group_time_steps(entries, series_dir / "series.csv")
    banks = [e.bank for e in steps[0]] if len(steps[0]) > 1 else []
    insts, inst_files = series_instruments(instrument, series_dir, banks)
    inst = next(iter(insts.values()))
    smodel = load_series_model(model)
    phases, fractions = list(smodel.phases), dict(smodel.fractions)
    log = read_cycler(cycler) if isinstance(cycler, (str, Path)) else cycler
    step_entries = [st[0] for st in steps]
    times = align_to_cycler(step_entries, log)
    rng = tuple(tof_range) if tof_range else None
    bank_patterns = {}
    if banks:
        per = [read_series_patterns(st, rng) for st in steps]
        bank_patterns = {b: [pp[k] for pp in per] for k, b in enumerate(banks)}
        patterns = [(pp[0][0], [p[1] for p in pp], [p[2] for p in pp], [p[3] for p in pp]) for pp in per]
    else:
        patterns = read_series_patterns(entries, rng)
    protocol = read_series_protocol(strategy) if strategy else default_series_protocol()
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    records, model_obj, layout = _sequential(patterns, phases, list(insts.values()) if banks else inst,
                                             protocol=protocol, out_dir=checkpoint_dir, reverse=reverse,
                                             progress=progress, times=times, start_fractions=fractions,
                                             bridge_progress=bridge_progress, bank_labels=banks or None,
                                             derived=derived, keep_calc=True)
    provenance = {"series": series_dir.resolve(),
                  "cycler": Path(cycler).resolve() if isinstance(cycler, (str, Path)) else getattr(log, "source", ""),
                  "model": smodel.source, "strategy": protocol.source, "strategy_sha256": protocol.digest,
                  "instrument": "; ".join(f"bank {b}: {f}" for b, f in inst_files.items()) if banks
                  else inst_files[None],
                  "determined_if": f"fraction esd <= {protocol.max_relative_esd:g} of the value "
                                   f"and Bragg signal >= {protocol.min_signal:g} sigma",
                  "convergence": f"shift/esd < {protocol.series.tol:g}"
                                 + (f" or relative chi2 change < {protocol.chi2_tol:g}" if protocol.chi2_tol else "")}
    formulas = list(protocol.derived) + list((derived or {}).items())
    units, note = derived_units([n for n, _ in formulas], {**dict(protocol.derived_units), **user_units})
    notes = tuple((e.file.name, tm["note"]) for e, tm in zip(step_entries, times) if tm.get("note"))
    if formulas:
        provenance["derived"] = "; ".join(f"{n} = {e} [{units[n]}]" for n, e in formulas)
    if note:
        notes += (("derived quantities", note),)
    if banks:
        provenance["banks"] = ", ".join(map(str, banks))
        for b, f in inst_files.items():
            provenance[f"instrument_bank{b}"] = f
        patterns = bank_patterns[banks[0]]
    return SeriesResult([r.row for r in records], records, patterns, inst, model_obj, layout, protocol, smodel,
                        provenance, str(series_dir), notes, bank_patterns, insts if banks else {},
                        windows=tuple((e.start_s, e.end_s) for e in step_entries), units=units,
                        instrument_files=inst_files if banks else {})


def write_series(result: SeriesResult, out, *, truth=None, cif_per_pattern: bool = False) -> dict:
    """Write ``timeseries.csv``, ``operando.h5``, the Fig. 2 figures and ``index.html`` into ``out``
    (and ``cif/<pattern stem>.cif`` per pattern with ``cif_per_pattern``).

    Parameters
    ----------
    result : SeriesResult
        What :func:`refine_series` returned.
    out : str or Path
        Output folder (created if missing); files are written atomically.
    truth : str, Path or dict, optional
        A simulated series' ``truth.csv`` (path) or its columns (dict of arrays), drawn as
        dashed lines in the figures.
    cif_per_pattern : bool, optional
        Also write one CIF per refined pattern into ``out/cif`` (:meth:`SeriesResult.write_cifs`).

    Returns
    -------
    dict
        The written paths: ``timeseries``, ``dataset``, ``figures`` (dict of name → path) and ``html``
        (and ``cifs``, a list, with ``cif_per_pattern``).
    """
    from layerscope.operando.fit_figures import plot_fits
    from layerscope.operando.outputs import plot_operando, write_dataset, write_html, write_timeseries

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, protocol, smodel = result.rows, result.protocol, result.series_model
    ts = write_timeseries(rows, out / "timeseries.csv")
    h5 = write_dataset(rows, result.patterns, out / "operando.h5", provenance=result.provenance,
                       calc=result.calculated(), banks=result.bank_datasets() or None, units=result.units)
    truth_cols = None
    if truth is not None and not isinstance(truth, dict):
        import csv

        with open(truth) as fh:
            trows = list(csv.DictReader(fh))
        truth_cols = {k: np.array([float(r[k]) for r in trows]) for k in trows[0]}
    elif truth is not None:
        truth_cols = truth
    banks = result.banks()
    figs = plot_operando(rows, result.patterns, result.instrument, out, truth=truth_cols,
                         banks=[(b, p, i) for b, p, _, i in banks] if result.bank_patterns else None)
    if all(c is not None for _, _, c, _ in banks):
        figs.update(plot_fits(rows, banks, out))
    page = write_html(out, rows, figs, title="layerscope operando refinement",
                      notes=f"{len(rows)} patterns from {result.source}; "
                            + (f"banks {result.provenance.get('banks', '')} refined together (instruments: "
                               f"{result.provenance.get('instrument', '')}); " if result.bank_patterns else "")
                            + f"model {smodel.source}; strategy "
                            f"{protocol.source}; a phase is determined when its fraction's esd is at most "
                            f"{protocol.max_relative_esd:g} of the value and its Bragg signal at least "
                            f"{protocol.min_signal:g} sigma (values that depend on an undetermined phase are "
                            "drawn as open squares off the line, and shown in brackets below)")
    files = {"timeseries": ts, "dataset": h5, "figures": figs, "html": page}
    if cif_per_pattern:
        files["cifs"] = result.write_cifs(out / "cif")
    return files


def stderr_progress():
    """``(progress, bridge_progress)`` callbacks for :func:`refine_series` that report each pattern
    (and each bridged hold) on stderr, as ``layerscope operando`` does."""
    t0 = time.perf_counter()

    def progress(k, n, rec):
        r = rec.row
        bar = "#" * int(30 * (k + 1) / n)
        state = "ok" if r["converged"] else ("FLAGGED" if r.get("flag") else "not converged")
        nd = [k.removeprefix("determined_") for k, v in r.items() if k.startswith("determined_") and not v]
        if nd:
            state += f"; not determined: {', '.join(nd)}"
        print(f"\r[{bar:<30}] {k + 1}/{n} {rec.name} t={r.get('time_h', float('nan')):.2f} h "
              f"Rwp {r['rwp']:.2f} % {state} ({time.perf_counter() - t0:.0f} s)", end="\n", file=sys.stderr)

    def bridged(rec, note):
        what = f"forward result kept ({note})" if note else f"Rwp {rec.row['rwp']:.2f} %"
        print(f"bridged hold: {rec.name} t={rec.row.get('time_h', float('nan')):.2f} h, held values interpolated "
              f"in time; {what} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    return progress, bridged
