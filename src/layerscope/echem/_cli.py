"""``layerscope echem FILE [--convention cathode|anode|full] [--mass-mg M] [--nominal-mAh C] --out DIR``.

``--convention`` says which half cycle is reversible and how CE is defined
(:mod:`layerscope.echem.analysis`): ``cathode`` (default) and ``full``: charge then
discharge, CE = Q_dis/Q_ch; ``anode`` (anode half-cell vs Li): discharge
(lithiation) then charge, CE = Q_ch/Q_dis. What the reader had to assume or could not
count, and every cycle that lacks a half, is printed and written to ``DIR/notes.txt``.

Writes ``DIR/cycles.csv`` (one row per cycle; the columns ``cycle``,
``charge_mAh``, ``discharge_mAh``, ``ce``, ``avg_charge_V``,
``avg_discharge_V``, ``energy_mWh`` come first, further columns after them),
``DIR/steps.csv``, ``DIR/log.csv`` (the tidy cycler table), ``DIR/rate.csv``
when a nominal capacity is given, and the figures ``gcd.png``,
``cycling.png``, ``dqdv.png``, ``voltage_time.png`` (and ``rate.png``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from layerscope._io import save_figure, write_csv


def _write_table(path: Path, columns: dict) -> None:
    n = len(next(iter(columns.values())))
    write_csv(path, ([columns[k][i] for k in columns] for i in range(n)), list(columns))


def run_echem(args) -> int:
    from layerscope.echem import analysis, plots
    from layerscope.echem.io import read_cycler
    from layerscope.echem.tabular import write_csv

    from layerscope._io import write_text
    from layerscope.echem._table import with_convention

    convention = getattr(args, "convention", None) or "cathode"
    log = with_convention(read_cycler(args.file), convention)
    summary = analysis.cycle_summary(log, mass_mg=args.mass_mg, convention=convention)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cols = summary.columns()
    from layerscope.echem.cccv import cccv_split

    split = cccv_split(log)
    keep = np.isin(split.cycle, summary.cycle)
    cols["charge_cv_mAh"] = split.charge_cv_mAh[keep]
    cols["discharge_cv_mAh"] = split.discharge_cv_mAh[keep]
    if args.nominal_mAh:
        cols["c_rate_discharge"] = analysis.c_rate(summary.discharge_current_mA, args.nominal_mAh)
    _write_table(out / "cycles.csv", cols)
    st = analysis.step_table(log)
    step_cols = {"step": st.step, "cycle": st.cycle, "kind": st.kind, "current_mA": st.current_mA,
                 "duration_s": st.duration_s, "capacity_mAh": st.capacity_mAh,
                 "v_start_V": st.v_start_V, "v_end_V": st.v_end_V}
    if args.nominal_mAh:
        step_cols["c_rate"] = analysis.c_rate(st.current_mA, args.nominal_mAh)
    _write_table(out / "steps.csv", step_cols)
    write_csv(log, out / "log.csv")
    figs = {"gcd.png": plots.gcd_figure(log, summary),
            "cycling.png": plots.cycling_figure(summary),
            "dqdv.png": plots.dqdv_figure(log, summary),
            "dvdq.png": plots.dvdq_figure(log, summary),
            "voltage_time.png": plots.voltage_time_figure(log)}
    if args.nominal_mAh:
        rt = analysis.rate_table(summary, args.nominal_mAh)
        _write_table(out / "rate.csv", {"c_rate": rt.c_rate, "n_cycles": rt.n_cycles,
                                        "first_cycle": rt.first_cycle,
                                        "discharge_mAh": rt.discharge_mAh,
                                        "discharge_std_mAh": rt.discharge_std_mAh})
        figs["rate.png"] = plots.rate_figure(rt)
    gitt_len = getattr(args, "gitt_length_um", None)
    if gitt_len:
        from layerscope.echem.gitt import gitt

        g = gitt(log, length_cm=gitt_len * 1e-4)
        _write_table(out / "gitt.csv", {"t_start_s": g.t_start_s, "tau_s": g.tau_s,
                                        "current_mA": g.current_mA, "capacity_mAh": g.charge_mAh,
                                        "dE_s_V": g.dE_s_V, "dE_tau_V": g.dE_tau_V, "r2": g.r2,
                                        "D_cm2_s": g.D_cm2_s, "flag": g.flag})
        print(f"GITT: {len(g.tau_s)} pulses, {int(np.isfinite(g.D_cm2_s).sum())} with a diffusion "
              f"coefficient (Weppner-Huggins, L = {gitt_len} um); wrote {out / 'gitt.csv'}")
    for name, fig in figs.items():
        save_figure(fig, out / name, dpi=120)
    full = summary.full_cycles()
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
    for n in notes[1:]:
        print(f"note: {n}")
    ice = summary.initial_ce
    print(f"{args.file}: {len(log)} points, {len(summary.cycle)} cycles "
          f"({int(full.sum())} with charge and discharge); initial CE "
          f"({convention} convention) {ice:.4f}; wrote {out / 'cycles.csv'}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "echem", help="summarise a cycler file (BioLogic .mpr/.mpt, Neware .nda/.ndax, Arbin "
                      ".res, Maccor text, Neware/Arbin/Landt/Novonix CSV/XLSX) per cycle")
    p.add_argument("file", help="cycler file")
    p.add_argument("--convention", choices=("cathode", "anode", "full"), default="cathode",
                   help="cathode half-cell (default; charge first, CE = discharge/charge), "
                        "anode half-cell (discharge first, CE = charge/discharge) or full cell")
    p.add_argument("--mass-mg", type=float, default=None, dest="mass_mg",
                   help="active-material mass in mg (adds mAh/g and Wh/kg columns)")
    p.add_argument("--nominal-mAh", type=float, default=None, dest="nominal_mAh",
                   help="nominal capacity in mAh (adds C-rates and a rate table)")
    p.add_argument("--gitt-length-um", type=float, default=None, dest="gitt_length_um",
                   help="GITT: diffusion length L in um (film thickness, or r/3 for spheres); "
                        "writes gitt.csv with the Weppner-Huggins D of every pulse")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run_echem)
