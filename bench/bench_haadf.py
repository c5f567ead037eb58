"""Column refinement: layerscope (batched JAX 2D Gaussians) beside Atomap, same image, one run.

Usage: .venv/bin/python bench/bench_haadf.py [--repeats 7] [--seeds 3] [--large] [--no-atomap]

What is timed
-------------
* layerscope: one ``refine_columns(image, start)`` call (neighbour search,
  patch extraction, all Levenberg–Marquardt sweeps, esds; results back in
  NumPy), after one warm-up call on the same image that compiles the kernel.
  The compile time is printed separately (JAX caches it per patch size for
  the life of the process, so a CLI run pays it once per image).
* Atomap: ``Sublattice(start, image)`` + ``find_nearest_neighbors()`` +
  ``refine_atom_positions_using_2d_gaussian(percent_to_nn=0.4)`` (its
  default rotated elliptical Gaussian, progress bar off). ``import atomap``
  is done once before timing, as ``import jax`` is for us.
* Both start from the same integer peak positions and are timed in this
  process, repeats interleaved (ours, Atomap, ours, ...) so that both see
  the same machine load; each time is the median of ``--repeats`` runs,
  and the 1-minute load average is printed before and after.

Cases
-----
1. Real SrTiO3 ADF image (../shared/data/atomap-sto-adf): the 117 A columns
   found at 0.15 nm separation; ratio and RMS difference of the positions.
2. Simulated O3 <100> images with known truth (``--seeds`` images): times
   on the first, and the RMS error of both refinements vs the truth pooled
   over all (precision, with its ±1σ sampling uncertainty).
3. ``--large``: a simulated 2048×2048 frame at 0.024 nm/px (49 nm field of
   view, ~20 000 TM columns; Atomap would take minutes) through the whole
   column pipeline on CPU (or the GPU when JAX sees one): FFT lattice + peak
   finding, refinement (compile and run), unit cells; and the position error
   vs the truth.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from layerscope.simulate.haadf import simulate_haadf, uniform_scene
from layerscope.stem import find_columns, read_image, refine_columns, unit_cells

REPO = Path(__file__).resolve().parents[1]
STO = REPO.parent / "shared" / "data" / "atomap-sto-adf" / "test_ADF_cropped.hdf5"


def _load():
    return os.getloadavg()[0]


def _median_time(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _atomap_module():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import atomap.api as am
        return am
    except ImportError:
        return None


def _atomap(am, image, start):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sub = am.Sublattice(start, image=image)
        sub.find_nearest_neighbors()
        sub.refine_atom_positions_using_2d_gaussian(percent_to_nn=0.4, show_progressbar=False)
    return np.stack([sub.x_position, sub.y_position], axis=1)


def _rms_vs(ref, pos):
    d, _ = cKDTree(ref).query(pos)
    return float(np.sqrt(np.mean(d**2) / 2))  # per axis


def compare(name, image, start, repeats, am):
    """Time both refinements on one image; returns (ours, atomap) positions."""
    t = time.perf_counter()
    refine_columns(image, start)  # warm-up: compiles for this patch size
    t_compile = time.perf_counter() - t
    # repeats interleaved (ours, atomap, ours, ...) so both see the same load
    times_ours, times_am = [], []
    fit = ref = None
    for _ in range(repeats):
        t, fit = _median_time(lambda: refine_columns(image, start), 1)
        times_ours.append(t)
        if am is not None:
            t, ref = _median_time(lambda: _atomap(am, image, start), 1)
            times_am.append(t)
    t_ours = statistics.median(times_ours)
    line = (f"{name}: {len(start)} columns | layerscope {t_ours * 1e3:.1f} ms "
            f"(first call incl. compile {t_compile:.1f} s)")
    if am is not None:
        t_am = statistics.median(times_am)
        line += (f" | atomap {t_am * 1e3:.1f} ms | speed-up ×{t_am / t_ours:.1f}"
                 f" | RMS(ours−atomap) {_rms_vs(ref, fit.positions_px):.3f} px/axis")
    else:
        line += " | atomap not installed"
    print(line, flush=True)
    return fit.positions_px, ref


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seeds", type=int, default=3, help="simulated images for the precision comparison")
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--large-pixel-nm", type=float, default=0.024)
    ap.add_argument("--no-atomap", action="store_true")
    args = ap.parse_args(argv)
    import jax

    am = None if args.no_atomap else _atomap_module()
    am_version = "absent"
    if am is not None:
        from importlib.metadata import version

        am_version = version("atomap")
    print(f"JAX {jax.__version__} backend: {jax.default_backend()} ({jax.devices()[0]}); "
          f"atomap {am_version}; load average (1 min) {_load():.2f}", flush=True)
    if STO.is_file():
        img = read_image(STO)
        compare("SrTiO3 ADF (real)", img.data, find_columns(img.data, separation_px=0.15 / img.pixel_size_nm),
                args.repeats, am)
    err_ours, err_am = [], []
    for seed in range(args.seeds):
        sim = simulate_haadf(uniform_scene((45.0, 45.0), "I"), seed=7 + seed)
        tm = sim.columns_px[sim.sublattice == 0]
        start = find_columns(sim.image)
        if seed == 0:
            ours, ref = compare("simulated O3 <100>", sim.image, start, args.repeats, am)
        else:
            ours = refine_columns(sim.image, start).positions_px
            ref = _atomap(am, sim.image, start) if am is not None else None
        px_pm = sim.pixel_size_nm * 1e3
        err_ours.append(cKDTree(tm).query(ours)[0] * px_pm)
        if ref is not None:
            err_am.append(cKDTree(tm).query(ref)[0] * px_pm)
    for label, errs in (("layerscope", err_ours), ("atomap", err_am)):
        if errs:
            d = np.concatenate(errs)
            rms = np.sqrt(np.mean(d**2) / 2)
            # sampling uncertainty of an RMS over 2n coordinates: rms / sqrt(4n)
            print(f"   {label:10s} RMS error vs truth {rms:.3f} ± {rms / np.sqrt(4 * len(d)):.3f} pm/axis "
                  f"({len(d)} columns, {len(errs)} images, 0.015 nm/px, 4e4 e/Å²)")
    if args.large:
        large(args.large_pixel_nm)
    print(f"load average (1 min) at the end {_load():.2f}")


def large(pixel_nm):
    import jax

    side = 2048 * pixel_nm * 10.0
    t = time.perf_counter()
    big = simulate_haadf(uniform_scene((side, side), "I"), pixel_size_nm=pixel_nm, shape=(2048, 2048), seed=8)
    t_sim = time.perf_counter() - t
    t = time.perf_counter()
    start = find_columns(big.image)  # FFT lattice → separation → peaks
    t_find = time.perf_counter() - t
    t = time.perf_counter()
    refine_columns(big.image, start)
    t_first = time.perf_counter() - t
    t_fit, fit = _median_time(lambda: refine_columns(big.image, start), 3)
    t = time.perf_counter()
    cells = unit_cells(fit.positions_px)
    t_cells = time.perf_counter() - t
    tm = big.columns_px[big.sublattice == 0]
    ny, nx = big.image.shape
    inner = (tm[:, 0] > 8) & (tm[:, 0] < nx - 9) & (tm[:, 1] > 8) & (tm[:, 1] < ny - 9)
    d, _ = cKDTree(fit.positions_px).query(tm[inner])
    print(f"2048×2048 simulated at {pixel_nm} nm/px ({2048 * pixel_nm:.1f} nm field, {inner.sum()} TM columns "
          f"inside): simulate {t_sim:.1f} s | FFT lattice + peaks {t_find:.2f} s ({len(start)} found, "
          f"{np.mean(d < 2):.2%} of truth within 2 px) | refine first call {t_first:.2f} s, then "
          f"{t_fit:.2f} s (median of 3) | unit cells {t_cells:.2f} s ({len(cells)} cells) | "
          f"RMS error {np.sqrt(np.mean(d[d < 2] ** 2) / 2) * pixel_nm * 1e3:.2f} pm/axis | "
          f"on {jax.default_backend()}", flush=True)


if __name__ == "__main__":
    main()
