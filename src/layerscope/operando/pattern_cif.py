"""One CIF per refined pattern of an operando series (GSAS-II's sequential-table habit).

``write_series(..., cif_per_pattern=True)`` / ``layerscope operando --cif-per-pattern`` /
a study's ``cif_per_pattern = true`` write ``cif/<pattern stem>.cif`` for every time step: one
file per pattern holding several data blocks, as GSAS-II's project CIF export and pdCIF's
multi-block convention do — a pattern block (``data_<stem>``: the pattern's file, exposure
window start/end, mid-time, window-mean cycler values, Rwp, GoF, convergence, flags, held values,
the phases left out and why) and one block per refined phase (``data_<stem>_<phase>``: refined
cell, volume, space group (H-M, Hall, number, operations), atom sites with refined fractional
coordinates, occupancies and B_iso, the phase's fraction and scale). Every value this pattern
refined carries its esd in CIF notation (``2.8712(3)``); a value it did not refine (fixed by
symmetry or the protocol, held) is written without one. One file per pattern (not per phase)
keeps the phases of one time step together, which is what a sequential table's row is; every
phase block is a complete small structure that gemmi, pymatgen or VESTA read on its own.

Blocks are linked the pdCIF way: ``_pd_block_id`` in each, the pattern block lists its phase
blocks (``_pd_phase_block_id``) and each phase block names its pattern block
(``_pd_block_diffractogram_id``). pdCIF names are used where they exist
(``_pd_proc_ls_prof_wR_factor`` as a fraction, ``_refine_ls_goodness_of_fit_all``,
``_pd_phase_name``); items pdCIF has no name for are under ``_layerscope_`` (the exposure window,
the fraction: a weight fraction among the LRM phases or a C-atom fraction among the anode phases —
not pdCIF's specimen ``_pd_phase_mass_%`` — the scale, the determination).

A phase that the pattern did not determine (``determined_<phase>`` False:
:mod:`layerscope.refine.determined`) is **left out** of that pattern's file — its values are not
measurements, and a program reading the file's structures must not take them for one — and is
listed in the pattern block's ``_layerscope_omitted_phase_`` loop with the reason.

The files are written from the run's records (atomically) after the series is complete, so a run
resumed from its checkpoint writes each file once, from the same numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from layerscope.crystal import geometry

__all__ = ["parameter_esds", "write_pattern_cifs", "cif_stems"]

_CELL = ("a", "b", "c", "alpha", "beta", "gamma")


def _volume(cell) -> float:
    return float(geometry.volume(np.asarray(cell, dtype=float)))


def parameter_esds(fr, layout, model, full) -> dict:
    """{name: esd} of the phases' quantities that ``fr`` (a least-squares fit result) refined —
    NaN for one whose direction the data left undetermined — and ``<phase>.volume``, its esd
    propagated through the cell's covariance (√(gᵀ C g), g = ∂V/∂cell by central differences)."""
    esd, cov = fr.esd_full, fr.cov_full
    out = {}
    full = np.asarray(full, float)
    for setup in model.phases:
        p = setup.phase.name
        for j, n in enumerate(layout.names):
            if n.startswith(f"{p}.") and not esd[j] == 0:
                out[n] = float(esd[j])
        idx = [layout.index(f"{p}.{c}") for c in _CELL]
        cell_e = [out.get(f"{p}.{c}") for c in _CELL]
        if all(e is None for e in cell_e):
            continue
        if any(e is not None and not math.isfinite(e) for e in cell_e):
            out[f"{p}.volume"] = float("nan")
            continue
        cell = full[idx]
        g = np.zeros(6)
        for k in range(6):
            h = 1e-6 * max(abs(cell[k]), 1.0)
            up, dn = cell.copy(), cell.copy()
            up[k] += h
            dn[k] -= h
            g[k] = (_volume(up) - _volume(dn)) / (2 * h)
        out[f"{p}.volume"] = float(math.sqrt(max(g @ cov[np.ix_(idx, idx)] @ g, 0.0)))
    return out


def cif_stems(names) -> list[str]:
    """File stems of the patterns' CIFs: the pattern file's stem, or its whole name (dots as _)
    where two patterns share a stem."""
    stems = [Path(n).stem for n in names]
    return [s if stems.count(s) == 1 else Path(n).name.replace(".", "_") for s, n in zip(stems, names)]


def _text(v) -> str:
    """A CIF value: a number as such, text quoted (';' text field when it has quotes or lines)."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.10g}" if math.isfinite(v) else "?"
    s = _ascii(str(v))
    if not s:
        return "."
    if "\n" in s or ("'" in s and '"' in s):
        return "\n;\n" + s.replace("\n;", "\n ;") + "\n;"
    return f'"{s}"' if "'" in s else f"'{s}'"


_ASCII = {"σ": "sigma", "±": "+/-", "χ²": "chi2", "χ": "chi", "²": "^2", "³": "^3", "Å": "A", "µ": "u",
          "–": "-", "→": "->", "≤": "<=", "≥": ">=", "′": "'"}


def _ascii(s: str) -> str:
    """CIF 1.1 text is ASCII: the rows' symbols spelled out, anything else as '?'."""
    for k, v in _ASCII.items():
        s = s.replace(k, v)
    return s.encode("ascii", "replace").decode()


def _num(v, e=None, digits=6) -> str:
    from layerscope.crystal.cif import format_esd

    if v is None or not math.isfinite(float(v)):
        return "?"
    return format_esd(float(v), e) or f"{float(v):.{digits}g}"


def write_pattern_cifs(records, model, protocol, folder, *, windows=None) -> list[Path]:
    """Write ``<folder>/<stem>.cif`` for every record (a :class:`~layerscope.operando.checkpoint.SeriesRecord`
    of a series refined with ``model`` and ``protocol``); ``windows``: (start_s, end_s) of each
    pattern's exposure (None where unknown). Returns the written paths, in the records' order."""
    from layerscope._io import write_text
    from layerscope.crystal.cif import _cif_name, cif_block
    from layerscope.refine.parameters import make_layout
    from layerscope.refine.rietveld import refined_phases

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layout = make_layout(model)   # a series with several banks: bank 0's part of the vector
    windows = list(windows) if windows is not None else [(None, None)] * len(records)
    lrm, anode = tuple(protocol.lrm_phases), tuple(protocol.anode_phases)
    paths = []
    for rec, stem, (t0, t1) in zip(records, cif_stems([r.name for r in records]), windows):
        row, esd = rec.row, rec.esd
        phases = refined_phases(model, layout, np.asarray(rec.full, float)[:len(layout.names)])
        reasons = _reasons(row)
        omitted = [p.name for p in phases if row.get(f"determined_{p.name}") in (False, "False")]
        kept = [p for p in phases if p.name not in omitted]
        pid = _cif_name(stem)
        lines = [f"# layerscope operando: pattern {_ascii(rec.name)}, refined phases as data blocks; a phase this "
                 "pattern did not determine is left out (see _layerscope_omitted_phase_)",
                 f"data_{pid}", "_audit_creation_method 'layerscope (operando sequential refinement)'",
                 f"_pd_block_id {_text(f'{pid}|pattern')}",
                 f"_layerscope_pattern_name {_text(rec.name)}",
                 f"_layerscope_pattern_start_s {_num(t0, digits=10)}",
                 f"_layerscope_pattern_end_s {_num(t1, digits=10)}",
                 f"_layerscope_pattern_time_h {_num(row.get('time_h'), digits=10)}"]
        for k in ("voltage_V", "current_mA", "capacity_mAh"):
            if k in row:
                lines.append(f"_layerscope_pattern_{k} {_num(row[k], digits=8)}")
        lines += [f"_pd_proc_ls_prof_wR_factor {_num(float(row['rwp']) / 100, digits=6)}",
                  f"_refine_ls_goodness_of_fit_all {_num(row.get('gof'), digits=6)}",
                  f"_layerscope_converged {_text(bool(row.get('converged')))}",
                  f"_layerscope_flag {_text(row.get('flag', ''))}",
                  f"_layerscope_held {_text(row.get('held', ''))}",
                  f"_layerscope_note {_text(row.get('note', ''))}"]
        if not esd and any(k.endswith("_esd") and np.isfinite(v) for k, v in row.items()
                           if isinstance(v, (float, int)) and not isinstance(v, bool)):
            # a record from a checkpoint written before records kept their esds
            lines.append("_layerscope_esd_note 'esds not available for this pattern (its checkpoint record has "
                         "none); values written without them'")
            import warnings

            warnings.warn(f"{rec.name}: the checkpoint record holds no esds (written by an older layerscope); its CIF "
                          "has values without esds — refine into a new output folder to get them", stacklevel=2)
        if kept:
            lines += ["loop_", "_pd_phase_block_id"] + [_text(f"{pid}|{p.name}") for p in kept]
        if omitted:
            lines += ["loop_", "_layerscope_omitted_phase_name", "_layerscope_omitted_phase_reason"]
            lines += [f"{_text(p)} {_text(reasons.get(p, 'not determined'))}" for p in omitted]
        for ph in kept:
            p = ph.name
            items = [("_pd_block_id", _text(f"{pid}|{p}")), ("_pd_block_diffractogram_id", _text(f"{pid}|pattern")),
                     ("_layerscope_pattern_name", _text(rec.name)),
                     ("_layerscope_phase_scale", _num(rec.full[layout.index(f"{p}.scale")], esd.get(f"{p}.scale")))]
            if f"frac_{p}" in row:
                basis = (f"weight fraction among the LRM phases ({', '.join(lrm)})" if p in lrm else
                         f"C-atom fraction among the anode phases ({', '.join(anode)})" if p in anode else "fraction")
                items += [("_layerscope_phase_fraction", _num(row[f"frac_{p}"], row.get(f"frac_{p}_esd"))),
                          ("_layerscope_phase_fraction_basis", _text(basis))]
            if f"determined_{p}" in row:
                items += [("_layerscope_phase_determined", "yes"),
                          ("_layerscope_phase_signal_sigma", _num(row.get(f"signal_{p}"), digits=4))]
            mine = {n[len(p) + 1:]: e for n, e in esd.items() if n.startswith(f"{p}.")}
            details = (f"pattern {_ascii(rec.name)} of an operando series, refined sequentially by layerscope. "
                       "Values without an esd were not refined in this pattern.")
            lines += ["", *cif_block(ph, esd=mine, block=f"{stem}_{p}", items=items, details=details)]
        paths.append(write_text(folder / f"{stem}.cif", "\n".join(lines) + "\n"))
    return paths


def _reasons(row) -> dict:
    """{phase: why it is not determined} from the row's ``undetermined`` text ("P: why; Q: why")."""
    out = {}
    for part in str(row.get("undetermined", "") or "").split("; "):
        if ": " in part:
            p, why = part.split(": ", 1)
            out[p.strip()] = why
    return out
