"""``write_echem``: a cycler log in, the files of ``layerscope echem`` out (cycles, steps, tidy log,
rate table, GITT, figures, notes).

The analysis itself is :func:`layerscope.echem.analysis.cycle_summary` (also ``ls.cycle_summary``);
this writes what the command line writes and returns what it wrote and computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerscope._io import save_figure, write_csv

__all__ = ["write_echem"]


def _write_table(path: Path, columns: dict) -> None:
    n = len(next(iter(columns.values())))
    write_csv(path, ([columns[k][i] for k in columns] for i in range(n)), list(columns))


def write_echem(file, out, *, mass_mg: float | None = None, nominal_mAh: float | None = None,
                convention: str = "cathode", gitt_length_um: float | None = None) -> dict:
    """Summarise a cycler file per cycle and write ``cycles.csv``, ``steps.csv``, ``log.csv``,
    ``rate.csv`` (with ``nominal_mAh``), ``gitt.csv`` (with ``gitt_length_um``, µm), ``notes.txt``
    and the figures into ``out``.

    ``file``: a cycler file (any supported format); ``mass_mg``: active mass (mg; adds mAh/g and
    Wh/kg); ``convention``: ``cathode``, ``anode`` or ``full`` (which half cycle is reversible).
    Returns ``{"log", "summary", "cycles" (the cycles.csv columns), "notes", "gitt", "files"}``.
    """
    from layerscope._io import write_text
    from layerscope.echem import analysis, plots
    from layerscope.echem._table import with_convention
    from layerscope.echem.cccv import cccv_split
    from layerscope.echem.io import read_cycler
    from layerscope.echem.tabular import write_csv as write_log

    convention = convention or "cathode"
    log = with_convention(read_cycler(file), convention)
    summary = analysis.cycle_summary(log, mass_mg=mass_mg, convention=convention)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cols = summary.columns()
    split = cccv_split(log)
    keep = np.isin(split.cycle, summary.cycle)
    cols["charge_cv_mAh"] = split.charge_cv_mAh[keep]
    cols["discharge_cv_mAh"] = split.discharge_cv_mAh[keep]
    if nominal_mAh:
        cols["c_rate_discharge"] = analysis.c_rate(summary.discharge_current_mA, nominal_mAh)
    files = ["cycles.csv", "steps.csv", "log.csv"]
    _write_table(out / "cycles.csv", cols)
    st = analysis.step_table(log)
    step_cols = {"step": st.step, "cycle": st.cycle, "kind": st.kind, "current_mA": st.current_mA,
                 "duration_s": st.duration_s, "capacity_mAh": st.capacity_mAh,
                 "v_start_V": st.v_start_V, "v_end_V": st.v_end_V}
    if nominal_mAh:
        step_cols["c_rate"] = analysis.c_rate(st.current_mA, nominal_mAh)
    _write_table(out / "steps.csv", step_cols)
    write_log(log, out / "log.csv")
    figs = {"gcd.png": plots.gcd_figure(log, summary),
            "cycling.png": plots.cycling_figure(summary),
            "dqdv.png": plots.dqdv_figure(log, summary),
            "dvdq.png": plots.dvdq_figure(log, summary),
            "voltage_time.png": plots.voltage_time_figure(log)}
    if nominal_mAh:
        rt = analysis.rate_table(summary, nominal_mAh)
        _write_table(out / "rate.csv", {"c_rate": rt.c_rate, "n_cycles": rt.n_cycles,
                                        "first_cycle": rt.first_cycle,
                                        "discharge_mAh": rt.discharge_mAh,
                                        "discharge_std_mAh": rt.discharge_std_mAh})
        files.append("rate.csv")
        figs["rate.png"] = plots.rate_figure(rt)
    g = None
    if gitt_length_um:
        from layerscope.echem.gitt import gitt

        g = gitt(log, length_cm=gitt_length_um * 1e-4)
        _write_table(out / "gitt.csv", {"t_start_s": g.t_start_s, "tau_s": g.tau_s,
                                        "current_mA": g.current_mA, "capacity_mAh": g.charge_mAh,
                                        "dE_s_V": g.dE_s_V, "dE_tau_V": g.dE_tau_V, "r2": g.r2,
                                        "D_cm2_s": g.D_cm2_s, "flag": g.flag})
        files.append("gitt.csv")
    for name, fig in figs.items():
        save_figure(fig, out / name, dpi=120)
    notes = [f"format: {log.meta.get('format', '?')}; convention: {convention}"]
    notes += list(log.meta.get("notes", [])) + list(summary.notes)
    chk = log.meta.get("step_check")
    if chk is not None:
        q = np.abs(chk.q_file_mAh)
        rel = np.where(q > 1e-3 * q.max(initial=0.0), chk.rel_mismatch, 0.0)
        k = int(rel.argmax()) if len(rel) else 0
        notes.append(f"capacity vs current x time: {len(q)} steps agree within 1 % plus the "
                     f"sampling allowance; largest difference of a step carrying charge "
                     f"{100 * rel[k]:.3g} % (step {k + 1}, data row {chk.first_row[k] + 1})")
    write_text(out / "notes.txt", "\n".join(notes) + "\n")
    files += [*figs, "notes.txt"]
    return {"log": log, "summary": summary, "cycles": cols, "notes": notes, "gitt": g,
            "files": {Path(f).stem: out / f for f in files}}
