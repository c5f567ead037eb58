"""4D-STEM template matching throughput: layerscope vs pyxem on the same simulated scan.

Both index the same patterns (a simulated pristine LRM particle, 200 kV, 1.5 mrad,
128×128 px) against libraries of the same phase(s) at the same beam-direction
spacing; patterns/s is the median of several repeats (library building excluded).

    .venv/bin/python bench/bench_fourd.py [--scan 32] [--spacing 1] [--repeats 3]

Prints layerscope's rate for the O3'+spinel library (issue target: >= 333 patterns/s
on 2 CPU cores at 1°) and, for the spinel library that pyxem also builds, both rates
and their ratio (target >= 5x).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np

from layerscope.fourd import build_library, index_patterns, prepare_matcher
from layerscope.simulate.fourd import simulate_fourd


def _median_rate(fn, n, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / float(np.median(times))


def _pyxem_rate(sim, patterns, spacing, repeats):
    import hyperspy.api as hs  # noqa: F401  (registers pyxem signals)
    from diffsims.generators.simulation_generator import SimulationGenerator
    from orix.crystal_map import Phase as OrixPhase
    from orix.sampling import get_sample_reduced_fundamental
    from pyxem.signals import Diffraction2D

    from layerscope.crystal import write_cif

    spinel = sim.phases[1]
    with tempfile.TemporaryDirectory() as d:
        ophase = OrixPhase.from_cif(str(write_cif(spinel, os.path.join(d, "S.cif"))))
    grid = get_sample_reduced_fundamental(resolution=spacing, point_group=ophase.point_group)
    gen = SimulationGenerator(accelerating_voltage=sim.kv, precession_angle=0.8)
    lib = gen.calculate_diffraction2d(ophase, rotation=grid, reciprocal_radius=sim.geometry.g_max_inv_angstrom,
                                      max_excitation_error=0.05, with_direct_beam=False)
    s = Diffraction2D(patterns.reshape(1, -1, *patterns.shape[1:]))
    for ax in s.axes_manager.signal_axes:
        ax.scale, ax.units = sim.geometry.pixel_inv_angstrom, "1/Å"
    s.calibration.center = None
    n_r = int(sim.geometry.shape[0] / 2)

    def run():
        polar = s.get_azimuthal_integral2d(npt=n_r, npt_azim=360, inplace=False)
        polar.get_orientation(lib, n_best=1)

    return _median_rate(run, len(patterns), repeats), grid.size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scan", type=int, default=32)
    ap.add_argument("--spacing", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    sim = simulate_fourd(scan_shape=(args.scan, args.scan), core="O3p", seed=0)
    patterns = sim.data.reshape(-1, *sim.geometry.shape)
    print(f"scan {sim.data.shape}, {os.cpu_count()} CPU cores")

    t = time.perf_counter()
    lib = build_library(sim.phases, sim.geometry, spacing_deg=args.spacing)
    m = prepare_matcher(lib)
    print(f"layerscope library O3p+S at {args.spacing}°: {len(lib)} templates, built in "
          f"{time.perf_counter() - t:.1f} s")
    rate = _median_rate(lambda: index_patterns(patterns, m), len(patterns), args.repeats)
    print(f"layerscope O3p+S: {rate:.0f} patterns/s (target >= 333 on 2 cores)")

    lib_s = build_library(sim.phases[1:], sim.geometry, spacing_deg=args.spacing)
    m_s = prepare_matcher(lib_s)
    rate_s = _median_rate(lambda: index_patterns(patterns, m_s), len(patterns), args.repeats)
    print(f"layerscope S only: {len(lib_s)} templates, {rate_s:.0f} patterns/s")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peer, n_peer = _pyxem_rate(sim, patterns, args.spacing, args.repeats)
    except Exception as exc:  # the peer is optional; say why it did not run
        print(f"pyxem: not run ({type(exc).__name__}: {exc})")
        return 0
    print(f"pyxem S only: {n_peer} templates, {peer:.1f} patterns/s")
    print(f"ratio layerscope / pyxem = {rate_s / peer:.1f}x (target >= 5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
