"""Sequential (operando) Rietveld refinement with checkpoint/resume.

A series of patterns measured on one instrument is refined pattern by pattern, each seeded
from the previous result (or in reverse order). One pattern model and one compiled
pattern/Jacobian function serve the whole series, so the per-pattern cost is only the
least-squares cycles.

The pieces, each in its module: the protocol (:mod:`layerscope.operando.protocol`), the stages
of one pattern (:mod:`layerscope.operando.stages`), the reported quantities with esds and the
per-phase determination (:mod:`layerscope.operando.observables`), the guards between patterns —
active phases, holds, predictor, trust region, windows, plausibility checks, cell scan —
(:mod:`layerscope.operando.guards`), the bridging of held stretches
(:mod:`layerscope.operando.bridge`) and the checkpoint (:mod:`layerscope.operando.checkpoint`).

A phase that crosses ``min_fraction`` within a pattern is refined once more with its cell free.
A result that fails the checks is refined again from a grid scan of the major LRM cells within
the trust region (the peaks moved out of the least-squares basin: sparse series, no trend yet);
if that passes the checks the row's ``flag`` starts with "recovered by a cell scan:" and the row
counts as converged. Otherwise it is refined from the previous pattern's values (with the
affected cells fixed, or else with only the first stage free) and the row is flagged (``flag``
column, ``converged`` False) — never reported silently.

Every row says which rule ended each stage (``stages``: shift/esd, or GSAS-II's relative χ²
change below ``chi2_tol`` over an undamped cycle, …).
"""

from __future__ import annotations

import numpy as np

from layerscope.diffraction.pattern import build_model, initial_params
from layerscope.operando.bridge import _bridge_holds
from layerscope.operando.checkpoint import SeriesRecord, _Checkpoint
from layerscope.operando.guards import (
    RECOVERED, _cell_scan, _flagged, _hours, _implausible, _predict_cells, _time_of, _trust_bounds, _window_bounds,
    active_phases, held_note,
)
from layerscope.operando.observables import (ObservableSet, _determined, _evaluate_observables, _lrm_fractions,
                                              lrm_observables, observables_recipe)
from layerscope.operando.protocol import SeriesProtocol, default_series_protocol
from layerscope.operando.stages import (
    _split_scales, _tie_start, bank_columns, conservation_totals, convergence_columns, refine_one, stop_rules,
)
from layerscope.operando.derived import add_derived
from layerscope.operando.pattern_cif import parameter_esds
from layerscope.refine.banks import BankEvaluator, solve_bank_linear
from layerscope.refine.engine import Evaluator
from layerscope.refine.parameters import free_set, make_layout
from layerscope.refine.strategy import Stage, Strategy, stage_bounds

__all__ = ["refine_series"]


def refine_series(patterns, phases, instrument, *, protocol: SeriesProtocol | None = None, out_dir=None,
                  n_background: int | None = None, reverse: bool = False, progress=None, times=None,
                  start_fractions: dict | None = None, bridge_progress=None, bank_labels=None, derived=None,
                  keep_calc: bool = False):
    """Refine a series of patterns (time steps) sequentially.

    NumPy's BLAS/LAPACK runs single-threaded meanwhile: its matrices here are small (N × ~30
    Jacobians, 30 × 30 normal matrices, the N × 12 background design), and a threaded BLAS
    spent ~10× the CPU time of one thread on them on a shared 2-core machine (a reduced QR of
    4000 × 12: 15 ms of CPU, 48 ms wall, against 1.3 ms single-threaded).

    Parameters
    ----------
    patterns : list of (name, tof_us, y, sigma); the first is the reference pattern
        (refined with the protocol's ``[reference]`` stages), every pattern shares its TOF grid.
        Several banks per time step: tof_us, y and sigma are lists with one array per bank
        (the same banks, in the same order, at every time step); the banks of a time step are
        refined together (:mod:`layerscope.refine.banks`: shared structures, cells, occupancies
        and phase scales; each bank its own instrument, background, absorption and histogram
        scale), and each row gains ``rwp_bank<label>`` per bank besides the joint ``rwp``
    phases : starting phases (e.g. ``preset("lrm-pouch").phases``)
    instrument : :class:`~layerscope.diffraction.instrument.TOFInstrument` (one per bank, a
        list, for several banks)
    bank_labels : the banks' labels in the ``rwp_bank<label>`` columns (default 1, 2, …)
    derived : {name: formula} of derived quantities reported with esds besides the protocol's
        ``[[series.derived]]`` (:mod:`layerscope.operando.derived`)

    keep_calc : give each record its calculated pattern and background per bank
        (``SeriesRecord.calc``, a profile pass at its refined vector; the contents of
        ``operando.h5`` and the fit figures)

    Every row also has GSAS-II's sequential-table convergence columns: ``converged``,
    ``max_shift_esd`` and ``chi2_change`` of the final stage's last cycle, and ``stages``.
    out_dir : folder for ``checkpoint.json`` (resume) — None keeps everything in memory
    n_background : Chebyshev background terms (None: the protocol's ``series.n_background``,
        else 6)
    reverse : refine the series patterns from the last to the first (the reference first)
    progress : callable(i, n, record) after each pattern
    bridge_progress : callable(record, note) after each pattern of a bridged hold stretch
        (``bridge_holds``); note is "" or why the forward result was kept
    times : optional per-pattern dict merged into each row (e.g. aligned cycler values)
    start_fractions : weight fractions of phases within their group to start from (e.g. the
        model's ``{"O3p": 0.9716, "S": 0.0284}``): the linear start's total is split by them

    Returns the list of :class:`SeriesRecord` in the order of ``patterns``.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _refine_series(patterns, phases, instrument, protocol, out_dir, n_background, reverse, progress,
                              times, start_fractions, bridge_progress, bank_labels, derived, keep_calc)


def _check_banks(patterns, instrument, bank_labels):
    """(per-bank patterns [(name, [tof], [y], [σ])], instruments, labels); one bank when the
    patterns hold single arrays."""
    banked = isinstance(patterns[0][1], (list, tuple))
    per_bank = [(n, list(t), list(y), list(s)) if banked else (n, [t], [y], [s]) for n, t, y, s in patterns]
    nb = len(per_bank[0][1])
    insts = list(instrument) if isinstance(instrument, (list, tuple)) else [instrument]
    if len(insts) != nb:
        raise ValueError(f"{nb} bank(s) per time step but {len(insts)} instrument(s): give one per bank")
    labels = list(bank_labels) if bank_labels is not None else list(range(1, nb + 1))
    if len(labels) != nb:
        raise ValueError(f"{nb} bank(s) per time step but {len(labels)} bank label(s)")
    tofs = per_bank[0][1]
    for name, ts, ys, ss in per_bank:
        if not (len(ts) == len(ys) == len(ss) == nb):
            raise ValueError(f"{name}: {len(ts)} bank(s), the reference pattern has {nb}; every time step needs "
                             "the same banks")
        for b, (t, y, s) in enumerate(zip(ts, ys, ss)):
            what = f"{name}" + (f" (bank {labels[b]})" if nb > 1 else "")
            if t.shape != tofs[b].shape or not np.allclose(t, tofs[b], rtol=1e-9):
                raise ValueError(f"{what}: TOF grid differs from the reference pattern's; a series must share one "
                                 "grid (per bank)")
            if not (np.all(np.isfinite(y)) and np.all(np.isfinite(s)) and np.all(s > 0)):
                raise ValueError(f"{what}: intensities must be finite with σ > 0")
    return per_bank, insts, labels


def _refine_series(patterns, phases, instrument, protocol, out_dir, n_background, reverse, progress, times,
                   start_fractions, bridge_progress, bank_labels=None, derived=None, keep_calc=False):
    protocol = protocol or default_series_protocol()
    if n_background is None:
        n_background = 6 if protocol.n_background is None else protocol.n_background
    if not patterns:
        raise ValueError("the series has no patterns")
    per_bank, insts, labels = _check_banks(patterns, instrument, bank_labels)
    banks = len(insts)
    tof, instrument = per_bank[0][1][0], insts[0]
    if banks > 1:
        models = [build_model(list(phases), t, inst, n_background=n_background)
                  for t, inst in zip(per_bank[0][1], insts)]
        ev = BankEvaluator(models, labels)
        model, layout = models[0], ev.layout
        # the loop and the checks see one concatenated pattern per time step
        patterns = [(n, np.concatenate(t), np.concatenate(y), np.concatenate(s)) for n, t, y, s in per_bank]
    else:
        model = build_model(list(phases), tof, instrument, n_background=n_background)
        layout = make_layout(model)
        ev = Evaluator(model, layout)
    for wname, _ in protocol.window:
        if wname not in layout.names:
            raise ValueError(f"{protocol.source}: [[series.window]] param {wname!r} is not a quantity of this model "
                             f"(e.g. {', '.join(n for n in layout.names if n.endswith('.a'))})")
    # one compiled Jacobian per series stage, whichever phases are active
    union = [f for st in protocol.series.stages for f in st.free]
    x_init = ev.flatten([initial_params(m) for m in ev.models]) if banks > 1 else layout.flatten(initial_params(model))
    ev.share_kernels(free_set(layout, np.array(x_init), list(dict.fromkeys(union))).jacobian_columns)
    phase_names = [p.name for p in phases]
    # start: the reference's own structures, linear scales + background
    from layerscope.refine.rietveld import linear_start

    extra = tuple((derived or {}).items())
    # the banks' instruments are part of the checkpoint's key (a rerun with another instrument file
    # stops with an error instead of mixing results)
    ckpt = _Checkpoint(out_dir, [p[0] for p in patterns], protocol, phase_names, extra,
                       instruments=[dict(lab=lab, **i.as_dict()) for lab, i in zip(labels, insts)] if banks > 1
                       else [instrument.as_dict()]) if out_dir else None
    done = ckpt.load() if ckpt else {}
    order = [0] + (list(range(len(patterns) - 1, 0, -1)) if reverse else list(range(1, len(patterns))))
    bounds_ref = stage_bounds(layout, protocol.reference)
    bounds_ser = stage_bounds(layout, protocol.series)
    obs = lrm_observables(layout, model, protocol)
    obs = add_derived(obs, protocol.derived + extra, layout, f"{protocol.source} / derived quantities")
    obs = ObservableSet(obs, observables_recipe(layout, model, protocol, protocol.derived + extra))
    records: dict[int, SeriesRecord] = {}
    full = None
    totals = None
    history: list = []
    prev_gof, seed_prev, prev_row = np.inf, None, None
    active = None
    after_active: dict[int, frozenset] = {}
    t_prev = None
    ref_full = None
    for k, i in enumerate(order):
        name, _, y, s = patterns[i]
        if name in done:
            records[i] = done[name]
            full = np.array(done[name].full)
            seed_prev, prev_row = np.array(full), done[name].row
            if not _flagged(done[name].row.get("flag", "")):
                prev_gof = float(done[name].row["gof"])
            active = active_phases(_lrm_fractions(full, layout, model, protocol), None if i == 0 else active,
                                   protocol)
            after_active[i] = active
            if i == 0:
                totals = conservation_totals(full, layout, model, protocol)
                ref_full = np.array(full)
            else:
                history.append((_time_of(times, i, k), np.array(full), active))
            t_prev = _hours(times, i)
            if progress:
                progress(k, len(order), records[i])
            continue
        if full is None:
            # the phases' unit-scale patterns from the compiled Evaluator (linear_start would
            # build and compile the model once more)
            ones = {p.name: 1.0 for p in phases}
            if banks > 1:
                unit = ev.calc(ev.flatten([initial_params(m, scales=ones) for m in ev.models]))[1][:, ev.slices[0]]
                y0, s0 = y[ev.slices[0]], s[ev.slices[0]]
            else:
                unit = ev.calc(np.array(layout.flatten(initial_params(model, scales=ones))))[1]
                y0, s0 = y, s
            scales, bkg = linear_start(phases, tof, y0, s0, instrument, n_background=n_background, phase_patterns=unit)
            if start_fractions:
                scales = _split_scales(scales, start_fractions, phases)
            params = initial_params(model, scales=scales, background=bkg)
            if banks > 1:
                # the further banks' histogram scales and backgrounds by linear least squares
                # against the shared phase scales of bank 0's start
                full = solve_bank_linear(ev, ev.flatten([params] + [initial_params(m, scales=scales)
                                                                    for m in ev.models[1:]]), y, s)
            else:
                full = np.array(layout.flatten(params))
            full = _tie_start(full, protocol.series, layout)
        t_now = _hours(times, i)
        lim = protocol.cell_limit(None if t_now is None or t_prev is None else t_now - t_prev)
        if i != 0 and len(history) >= 2:
            full = _predict_cells(full, history, _time_of(times, i, k), layout, model, protocol, lim)
        strategy = protocol.reference if i == 0 else protocol.series
        held = held_note(_lrm_fractions(full, layout, model, protocol), protocol) if i != 0 else ""
        bounds = bounds_ref if i == 0 else _window_bounds(
            _trust_bounds(bounds_ser, seed_prev, layout, model, protocol, lim), ref_full, layout, protocol)
        full, fr, log = refine_one(ev, layout, model, full, y, s, strategy, protocol, bounds,
                                   None if i == 0 else totals, active=None if i == 0 else active)
        if i != 0:
            grown = active_phases(_lrm_fractions(full, layout, model, protocol), active, protocol) - active
            if grown:
                # a phase crossed min_fraction in this pattern: its cell was still fixed at a
                # stale value, which biases its fraction (O3 at its onset) — refine once more
                # from this result with its cell and structure free
                active = active | grown
                full, fr, log2 = refine_one(ev, layout, model, full, y, s, strategy, protocol, bounds, totals,
                                            active=active)
                log = log + log2
        flag = "" if i == 0 else _implausible(full, fr, prev_gof, seed_prev, layout, model, protocol, prev_row, lim)
        if flag:
            # 1) the peaks may have moved out of the least-squares basin (patterns far apart, no
            #    trend yet for the predictor): grid-scan the active LRM cells within the trust
            #    region (linear scales + background solved at each step) and refine again from
            #    the best cells; accepted when the result passes the checks
            scanned = _cell_scan(ev, layout, model, seed_prev, y, s, protocol, active, lim)
            full_s, fr_s, log_s = refine_one(ev, layout, model, scanned, y, s, strategy, protocol, bounds, totals,
                                             active=active)
            flag_s = _implausible(full_s, fr_s, prev_gof, seed_prev, layout, model, protocol, prev_row, lim)
            log = log + log_s
            if not flag_s:
                full, fr = full_s, fr_s
                flag = f"{RECOVERED}{flag}"
        if flag and not flag.startswith(RECOVERED):
            # 2) retry from the previous pattern's values; a cell that ran to its per-pattern limit
            # (a small phase locking onto a neighbour's peaks) or belongs to a phase whose
            # fraction collapsed stays at its previous value, else only the first stage refines
            jumped = [p for p in protocol.lrm_phases if f"{p} cell moved" in flag or f"{p} fraction collapsed" in flag]
            if jumped:
                stages = tuple(Stage(st.name, st.free, st.fix + tuple(f"{p}.cell" for p in jumped), st.start,
                                     st.max_cycles) for st in strategy.stages)
            else:
                stages = strategy.stages[:1]
            retry = Strategy(stages, strategy.constraints, strategy.max_cycles, strategy.tol,
                             strategy.scale_model, strategy.bounds)
            full2, fr2, log2 = refine_one(ev, layout, model, np.array(seed_prev), y, s, retry, protocol,
                                          bounds, totals, active=active)
            flag2 = _implausible(full2, fr2, prev_gof, seed_prev, layout, model, protocol, prev_row, lim)
            full, fr, log = full2, fr2, log + log2
            how = f"{', '.join(jumped)} cell(s) fixed" if jumped else f"'{retry.stages[0].name}' only"
            flag = f"{flag}; cell scan did not help; refined again with {how}" + (f" (still: {flag2})" if flag2 else "")
        if not _flagged(flag):
            prev_gof = fr.stats.gof   # the GoF baseline: the last pattern that passed the checks
        seed_prev, t_prev = np.array(full), t_now
        active = active_phases(_lrm_fractions(full, layout, model, protocol), None if i == 0 else active, protocol)
        after_active[i] = active
        row = {"pattern": name, "rwp": fr.stats.rwp, "gof": fr.stats.gof,
               "converged": bool(fr.converged and not _flagged(flag)), "flag": flag, "held": held}
        row.update(_evaluate_observables(obs, full, fr.cov_full))
        row.update(convergence_columns(fr))
        row.update(bank_columns(ev, full, y, s, fr.free.n))
        row.update(_determined(ev, full, y, s, row, model, protocol))
        row["stages"] = stop_rules(log)
        if times is not None:
            row.update(times[i])
        prev_row = row
        warns = [f"[{n}] {w}" for n, f in log for w in f.warnings]
        if i == 0:
            totals = conservation_totals(full, layout, model, protocol)
            ref_full = np.array(full)
        else:
            history.append((_time_of(times, i, k), np.array(full), active))
        rec = SeriesRecord(name, [float(v) for v in full], row, warns, parameter_esds(fr, layout, model, full))
        records[i] = rec
        if ckpt:
            ckpt.append(rec)
        if progress:
            progress(k, len(order), rec)
    if protocol.bridge_holds and protocol.hold:
        _bridge_holds(records, patterns, ev, layout, model, protocol, bounds_ser, ref_full, totals, times,
                      after_active, obs, ckpt, done, bridge_progress)
    out = [records[i] for i in range(len(patterns))]
    if keep_calc:
        out = [_with_calc(ev, rec) for rec in out]
    return out, model, layout


def _with_calc(ev, rec: SeriesRecord) -> SeriesRecord:
    """``rec`` with its calculated pattern and background per bank (a profile pass from a reset
    cache: the same numbers whether the record was refined now or read from the checkpoint)."""
    import dataclasses

    ev.reset_cache()
    total, _, bkg = ev.calc(np.asarray(rec.full, dtype=float))
    cuts = getattr(ev, "slices", [slice(None)])
    return dataclasses.replace(rec, calc=tuple((np.array(total[c]), np.array(bkg[c])) for c in cuts))
