"""Bench: an operando series refined as one batched problem (``refine_batched``) beside the same
patterns refined one by one (``least_squares``), on JAX's default device, in one run.

The workload is issue 4's: ``--n`` (100) patterns of the simulated graphite || LRM pouch cell
(8 phases, GPPD-like bank, 4000 TOF points, Poisson noise at table S2's counting statistics),
at times spread over the parts of the first cycle where O3', O3 and the spinel are all present
(so every LRM cell is determined), each started from its truth moved as a good predictor would
leave it (LRM cells ±0.02 %, scales ±5 %, flat background; the spinel, 3-5 % of the cathode with lines near the Al foil's, has neighbouring minima ~1e-3 Å away that a wider start can fall into). Free: the series stage of the
default protocol without its constraints — 12 background terms, the histogram scale, the
scales of the LRM and anode phases and the LRM cells.

Printed: the device, the patterns/s of both paths (warm: one untimed warm-up run of each first,
which compiles; the batched warm-up uses the same chunk sizes), their ratio, and the agreement
of the two (max |Δq| / esd over every parameter of every pattern, which must be ≪ 1).

On the CPU ``refine_batched`` runs its kernels as one compiled loop over the patterns
(``lax.map``), so the ratio there is about 1 and the point is the agreement; on a GPU it vmaps a
chunk of ``--batch-size`` patterns at once — issue 4's target is ≥ 100 patterns/s for 100
patterns. (No GPU was lent to the session that wrote this; run it where one is.)

Run: .venv/bin/python bench/bench_batched.py [--n 100] [--batch-size 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

FREE = ["background", "hscale", "O3p.scale", "S.scale", "O3.scale", "graphite.scale", "LiC12.scale",
        "LiC6.scale", "O3p.cell", "O3.cell", "S.cell"]


def make_series(n: int, seed: int = 0):
    """(evaluator, layout, truths (n, F), Y, S, starts (n, F)) of ``n`` simulated patterns."""
    from layerscope.diffraction.instrument import GPPD_TOF_RANGE_US, gppd_like
    from layerscope.diffraction.pattern import build_model, initial_params
    from layerscope.refine import Evaluator, make_layout
    from layerscope.simulate.operando import (REFERENCE_REXP_PERCENT, Protocol, _with_structures,
                                              all_phases_at)

    proto = Protocol()
    # O3' >= ~15 %, O3 >= ~5 %: mid-charge and the discharge
    t_h = np.concatenate([np.linspace(4.0, 7.0, n // 2), np.linspace(12.0, 16.5, n - n // 2)])
    tof = np.geomspace(*GPPD_TOF_RANGE_US, 4000)
    bin_us = tof * (np.log(tof[-1] / tof[0]) / (len(tof) - 1))
    phases, _ = all_phases_at(float(t_h[0]), proto)
    model = build_model(phases, tof, gppd_like(), n_background=12)
    layout = make_layout(model)
    ev = Evaluator(model, layout)
    rng = np.random.default_rng(seed)
    truths, ys, ss, starts = [], [], [], []
    k_norm = bkg = None
    lrm_cells = [layout.index(f"{p}.{c}") for p in ("O3p", "O3", "S") for c in ("a", "b", "c")]
    scales = [layout.index(f"{p}.scale") for p in ("O3p", "O3", "S", "graphite", "LiC12", "LiC6")]
    for t in t_h:
        ph, sc = all_phases_at(float(t), proto)
        params = _with_structures(initial_params(model, scales=sc), model, ph)
        x = np.array(layout.flatten(params))
        bragg = ev.calc(x)[0] * bin_us
        if k_norm is None:
            # counts per 30-min pattern: Rexp ≈ 0.51 % with a background twice the mean Bragg signal
            mean = 1.0 / (2 * (REFERENCE_REXP_PERCENT / 100) ** 2 * 3.0)
            k_norm = mean / bragg.mean()
            bkg = 2.0 * mean * np.ones_like(tof)
        counts = rng.poisson(bragg * k_norm + bkg).astype(float)
        # the model on the same (counts per µs) scale: the histogram scale absorbs k_norm / bin
        y = counts / bin_us
        s = np.sqrt(np.maximum(counts, 1.0)) / bin_us
        truth = x.copy()
        truth[layout.index("hscale")] *= k_norm
        start = truth.copy()
        start[lrm_cells] *= 1.0 + rng.uniform(-2e-4, 2e-4, len(lrm_cells))
        start[scales] *= 1.0 + rng.uniform(-0.05, 0.05, len(scales))
        start[layout.index("bkg.0"):layout.index("bkg.0") + 12] = 0.0
        start[layout.index("bkg.0")] = float(np.median(y))
        truths.append(truth)
        ys.append(y)
        ss.append(s)
        starts.append(start)
    return ev, layout, np.array(truths), np.array(ys), np.array(ss), np.array(starts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="patterns (default 100)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each path (medians)")
    args = ap.parse_args(argv)
    from layerscope.refine import free_set, least_squares
    from layerscope.refine.batched import device_summary, refine_batched

    t0 = time.perf_counter()
    ev, layout, truths, ys, ss, starts = make_series(args.n)
    print(f"{args.n} simulated pouch-cell patterns, {ys.shape[1]} points, built in {time.perf_counter() - t0:.1f} s; "
          f"device {device_summary()}")
    fs = [free_set(layout, st, FREE) for st in starts]

    def one_by_one():
        return [least_squares(ev, fs[i], ys[i], ss[i]) for i in range(args.n)]

    def batched():
        return refine_batched(ev, layout, fs, ys, ss, starts, batch_size=args.batch_size)

    for name, fn in (("one by one", one_by_one), ("batched", batched)):
        t = time.perf_counter()
        fn()
        print(f"{name}: warm-up (compiles) {time.perf_counter() - t:.1f} s")
    t_one, t_bat = [], []
    res_one = res_bat = None
    for _ in range(args.repeats):
        t = time.perf_counter()
        res_one = one_by_one()
        t_one.append(time.perf_counter() - t)
        t = time.perf_counter()
        res_bat = batched()
        t_bat.append(time.perf_counter() - t)
    worst = max(float(np.max(np.abs(res_bat[i].q - res_one[i].q) / res_one[i].esd_q)) for i in range(args.n))
    n_conv = (sum(r.converged for r in res_one), int(np.sum(res_bat.converged)))
    m1, mb = statistics.median(t_one), statistics.median(t_bat)
    print(f"one by one: median {m1:.2f} s = {args.n / m1:.1f} patterns/s ({', '.join(f'{v:.2f}' for v in t_one)}); "
          f"converged {n_conv[0]}/{args.n}")
    print(f"batched:    median {mb:.2f} s = {args.n / mb:.1f} patterns/s ({', '.join(f'{v:.2f}' for v in t_bat)}); "
          f"converged {n_conv[1]}/{args.n}, batch size {args.batch_size}")
    print(f"ratio (one by one / batched): {m1 / mb:.2f}x; agreement: max |dq|/esd {worst:.1e}")
    for p in ("O3p", "O3", "S"):
        j = layout.index(f"{p}.a")
        err = (res_bat.full[:, j] - truths[:, j]) / res_bat.esd_full[:, j]
        print(f"batched vs truth, {p}.a: error / esd rms {np.sqrt(np.mean(err ** 2)):.2f}, max {np.abs(err).max():.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
