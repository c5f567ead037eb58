"""Time layerscope's .mpr reader + per-cycle summary against galvani on the same file.

Run: .venv/bin/python bench/bench_echem.py   (needs the shared data and galvani)
"""

import statistics
import time
from pathlib import Path

import numpy as np

from layerscope.echem import cycle_summary, read_cycler
from layerscope.echem.biologic import read_mpr_columns

PATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "cycler" / "biologic_gcpl_5cycles.mpr"


def median_time(fn, repeats=7):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    from galvani import BioLogic

    ours_read = median_time(lambda: read_mpr_columns(PATH))
    peer_read = median_time(lambda: BioLogic.MPRfile(str(PATH)).data)
    ours_all = median_time(lambda: cycle_summary(read_cycler(PATH)))

    def peer_all():
        d = BioLogic.MPRfile(str(PATH)).data
        hc, q = d["half cycle"], d["Q charge/discharge/mA.h"]
        return [np.abs(q[hc == h]).max() for h in np.unique(hc)]

    peer_all_t = median_time(peer_all)
    print(f"read .mpr columns: layerscope {1e3 * ours_read:.1f} ms, galvani {1e3 * peer_read:.1f} ms,"
          f" ratio {ours_read / peer_read:.2f}")
    print(f"read + per-cycle capacities: layerscope {1e3 * ours_all:.1f} ms, galvani + numpy "
          f"{1e3 * peer_all_t:.1f} ms, ratio {ours_all / peer_all_t:.2f}")


if __name__ == "__main__":
    main()
