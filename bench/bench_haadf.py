"""Column refinement: layerscope (batched JAX 2D Gaussians) beside Atomap, same image, one run.

Usage: .venv/bin/python bench/bench_haadf.py [--repeats 5] [--large]

1. Real SrTiO3 ADF image (../shared/data/atomap-sto-adf): the 117 A columns
   found at 0.15 nm separation are refined by Atomap's
   ``refine_atom_positions_using_2d_gaussian`` and by ``refine_columns``;
   median wall time of several repeats, the ratio, and the RMS difference.
2. Simulated image with known truth: both refinements' RMS error vs truth
   (precision), and the time ratio.
3. ``--large``: a simulated 2048×2048 image with ~20 000 columns (our code only;
   Atomap would take tens of minutes), on CPU or on the GPU when JAX sees one.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from layerscope.simulate.haadf import simulate_haadf, uniform_scene
from layerscope.stem import find_columns, read_image, refine_columns

REPO = Path(__file__).resolve().parents[1]
STO = REPO.parent / "shared" / "data" / "atomap-sto-adf" / "test_ADF_cropped.hdf5"


def _median_time(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _atomap(image, start):
    import atomap.api as am

    sub = am.Sublattice(start, image=image)
    sub.find_nearest_neighbors()
    sub.refine_atom_positions_using_2d_gaussian(percent_to_nn=0.4)
    return np.stack([sub.x_position, sub.y_position], axis=1)


def compare(name, image, start, repeats, truth=None, px_pm=None):
    refine_columns(image, start)  # JIT warm-up (compiled once per patch shape)
    t_ours, fit = _median_time(lambda: refine_columns(image, start), repeats)
    ours = fit.positions_px
    line = f"{name}: {len(start)} columns | layerscope {t_ours * 1e3:.1f} ms"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_am, ref = _median_time(lambda: _atomap(image, start), max(1, repeats // 2))
        d, _ = cKDTree(ref).query(ours)
        line += (f" | atomap {t_am * 1e3:.1f} ms | speed-up ×{t_am / t_ours:.1f}"
                 f" | RMS(ours−atomap) {np.sqrt(np.mean(d**2) / 2):.3f} px/axis")
    except ImportError:
        ref = None
        line += " | atomap not installed"
    print(line)
    if truth is not None:
        for label, pos in (("layerscope", ours), ("atomap", ref)):
            if pos is None:
                continue
            d, _ = cKDTree(truth).query(pos)
            print(f"   {label:10s} RMS error vs truth {np.sqrt(np.mean(d**2) / 2) * px_pm:.2f} pm/axis")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--large", action="store_true")
    args = ap.parse_args(argv)
    import jax

    print(f"JAX backend: {jax.default_backend()} ({jax.devices()[0]})")
    if STO.is_file():
        img = read_image(STO)
        compare("SrTiO3 ADF (real)", img.data, find_columns(img.data, separation_px=0.15 / img.pixel_size_nm),
                args.repeats)
    sim = simulate_haadf(uniform_scene((45.0, 45.0), "I"), seed=7)
    tm = sim.columns_px[sim.sublattice == 0]
    compare("simulated O3 <100>", sim.image, find_columns(sim.image), args.repeats, truth=tm,
            px_pm=sim.pixel_size_nm * 1e3)
    if args.large:
        side = 2048 * 0.15
        t = time.perf_counter()
        big = simulate_haadf(uniform_scene((side, side), "I"), shape=(2048, 2048), seed=8)
        t_sim = time.perf_counter() - t
        start = find_columns(big.image)
        refine_columns(big.image, start)
        t_fit, _ = _median_time(lambda: refine_columns(big.image, start), 1)
        print(f"2048×2048 simulated: simulate {t_sim:.1f} s, {len(start)} columns refined in {t_fit:.2f} s "
              f"on {jax.default_backend()}")


if __name__ == "__main__":
    main()
