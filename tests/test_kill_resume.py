"""kill -9 at random moments, then a rerun (issue 15): `layerscope run` (a small study),
`operando` (a short simulated series), `fourd` (a small scan, indexed on dask) and a batch of
`haadf` images.

For each command one uninterrupted run gives the reference; a second one must give the same results,
and the shorter of the two durations is T (the first may include compiling JAX kernels into the
cache). Then, from a seeded RNG, a delay in (0, T) is drawn for each kill: the command is started on
a second output folder and killed with SIGKILL (its whole process group) after that delay, again and
again on the same folder, so that every restart resumes from what the killed ones left. A run that
finishes before its delay is checked against the reference and the folder is emptied for the next
kills. After each kill every file visible in the folder must be a finished one: identical (as
numbers) to the reference's file of that name, or one of the checkpoint files the command resumes
from (complete and readable). Hidden ``.NAME.XXXXXXXX.part.EXT`` files are the temporary files of
writes in flight (never read as results); the next command on the folder removes them. Every restart
must start at once (the killed command's lock is never stale); a last run to the end must give the
reference's results and leave no temporary file.

Files are compared as numbers (CSV cells, JSON values, HDF5 datasets and attributes, NPY arrays
and PNG pixels: equal within 1e-9 relative), text and other files byte for byte. Excluded: the
``seconds`` field of the study's ``record.json`` (the wall time of the task); nothing else.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SEED = 15
N_KILLS = 10
RTOL = 1e-9
#: wall-time fields, different from run to run by nature
EXCLUDED_JSON_KEYS = {"seconds"}


# ------------------------------------------------------------------------------------ comparison

def _num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or abs(a - b) <= RTOL * max(abs(a), abs(b))
    return a == b


def _same_json(a, b, where="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))} differ"]
        return [d for k in a if k not in EXCLUDED_JSON_KEYS for d in _same_json(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _same_json(x, y, f"{where}[{i}]")]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return [] if _close(float(a), float(b)) else [f"{where}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def _same_csv(a: Path, b: Path) -> list[str]:
    ra, rb = (list(csv.reader(open(p, newline=""))) for p in (a, b))
    if len(ra) != len(rb):
        return [f"{len(ra)} vs {len(rb)} rows"]
    out = []
    for i, (x, y) in enumerate(zip(ra, rb)):
        if len(x) != len(y):
            out.append(f"row {i}: {len(x)} vs {len(y)} cells")
            continue
        for j, (u, v) in enumerate(zip(x, y)):
            nu, nv = _num(u), _num(v)
            if not (_close(nu, nv) if nu is not None and nv is not None else u == v):
                out.append(f"row {i} column {ra[0][j] if j < len(ra[0]) else j}: {u!r} vs {v!r}")
    return out[:5]


def _same_arrays(x, y, where) -> list[str]:
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
        return [f"{where}: shape {x.shape} vs {y.shape}"]
    if x.dtype.kind in "fc" or y.dtype.kind in "fc":
        ok = np.allclose(x, y, rtol=RTOL, atol=0.0, equal_nan=True)
    else:
        ok = np.array_equal(x, y)
    return [] if ok else [f"{where}: values differ"]


def _same_h5(a: Path, b: Path) -> list[str]:
    import h5py

    out = []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        na, nb = [], []
        fa.visit(na.append)
        fb.visit(nb.append)
        if sorted(na) != sorted(nb):
            return [f"objects {sorted(set(na) ^ set(nb))} differ"]
        for name in ["/"] + na:
            oa, ob = fa[name], fb[name]
            if sorted(oa.attrs) != sorted(ob.attrs):
                out.append(f"{name}: attributes differ")
                continue
            for k in oa.attrs:
                va, vb = oa.attrs[k], ob.attrs[k]
                if isinstance(va, (str, bytes)):
                    if k in ("provenance", "summary") and isinstance(va, str):
                        out += _same_json(json.loads(va), json.loads(vb), f"{name}@{k}")
                    elif va != vb:
                        out.append(f"{name}@{k}: {va!r} vs {vb!r}")
                elif not (isinstance(va, h5py.Reference) or np.asarray(va).dtype.kind in "OV"):
                    out += _same_arrays(va, vb, f"{name}@{k}")
            if isinstance(oa, h5py.Dataset) and oa.dtype.kind not in "OSUV":
                out += _same_arrays(oa[()], ob[()], name)
            elif isinstance(oa, h5py.Dataset):
                if not np.array_equal(np.asarray(oa[()]), np.asarray(ob[()])):
                    out.append(f"{name}: values differ")
    return out[:5]


def same_file(a: Path, b: Path) -> list[str]:
    """What differs between two output files of the same name ([] when they are the same)."""
    ext = a.suffix.lower()
    if ext == ".csv":
        return _same_csv(a, b)
    if ext == ".json":
        return _same_json(json.loads(a.read_text()), json.loads(b.read_text()))
    if ext in (".h5", ".hdf5", ".nc"):
        return _same_h5(a, b)
    if ext == ".npy":
        return _same_arrays(np.load(a), np.load(b), a.name)
    if ext == ".png":
        import matplotlib.image as mpimg

        return _same_arrays(mpimg.imread(a), mpimg.imread(b), a.name)
    return [] if a.read_bytes() == b.read_bytes() else ["bytes differ"]


def _visible(folder: Path) -> list[Path]:
    """Files a user or a script would take for results (not hidden, not inside a hidden folder)."""
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _partial(folder: Path) -> list[Path]:
    from layerscope._io import _PARTIAL

    return [p for p in folder.rglob("*") if p.is_file() and _PARTIAL.match(p.name)]


def assert_same_results(out: Path, ref: Path) -> None:
    got, want = ([p.relative_to(d) for p in _visible(d)] for d in (out, ref))
    assert got == want, f"files differ: {sorted(set(map(str, got)) ^ set(map(str, want)))}"
    bad = {str(r): d for r in want if (d := same_file(out / r, ref / r))}
    assert not bad, bad


def assert_only_finished_files(out: Path, ref: Path, checkpoints) -> None:
    """After a kill: every visible file is the reference's (as numbers) or a readable checkpoint."""
    bad = {}
    for p in _visible(out):
        rel = p.relative_to(out)
        if checkpoints(rel):
            try:
                if p.suffix == ".json":
                    json.loads(p.read_text())
                elif p.suffix == ".npy":
                    np.load(p)
            except ValueError as exc:
                bad[str(rel)] = f"unreadable checkpoint: {exc}"
            continue
        if not (ref / rel).is_file():
            bad[str(rel)] = "not among the reference's files"
            continue
        d = same_file(p, ref / rel)
        if d:
            bad[str(rel)] = d
    assert not bad, bad


# ----------------------------------------------------------------------------------- kill driver

def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "layerscope", *map(str, args)]


def _env(tmp: Path) -> dict:
    """The commands' environment: JAX's persistent compilation cache in a folder of this test (the
    command line's default; tests/conftest.py turns it off for everything else), so that the reference
    run compiles and each of the ~10 restarts loads the kernels instead of compiling them again."""
    return {**os.environ, "LAYERSCOPE_JAX_CACHE": str(tmp / "jax-cache")}


def _run(cmd, timeout=600, env=None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return time.perf_counter() - t0


def kill_and_resume(make_cmd, tmp: Path, *, seed: int, checkpoints=lambda rel: False, n_kills: int = N_KILLS):
    """The test of the module docstring for the command ``make_cmd(out)``; returns what it measured."""
    ref = tmp / "reference"
    env = _env(tmp)
    t_ref = _run(make_cmd(ref), env=env)
    out = tmp / "killed"
    # a second uninterrupted run: the same results (the command is deterministic), and the duration
    # the kill times are drawn over (the first may include compiling JAX kernels into the cache)
    t_warm = _run(make_cmd(out), env=env)
    assert_same_results(out, ref)
    shutil.rmtree(out)
    rng = np.random.default_rng(seed)
    delays, n_files, finished, t_max = [], [], 0, min(t_ref, t_warm)
    fresh = True  # the next run starts on an empty folder (its duration is a whole run's)
    while len(delays) < n_kills:
        delay = float(rng.uniform(0.0, t_max))
        proc = subprocess.Popen(make_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True, env=env)
        t0 = time.perf_counter()
        try:
            _, err = proc.communicate(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            delays.append(delay)
            fresh = False
            assert_only_finished_files(out, ref, checkpoints)
            n_files.append(len(_visible(out)) if out.is_dir() else 0)
            continue
        # finished before its kill: a whole (resumed) run; its results are the reference's
        assert proc.returncode == 0, err.decode()[-3000:]
        if fresh:  # a whole uninterrupted run (a resumed one is shorter: not a measure of the duration)
            t_max = min(t_max, time.perf_counter() - t0)
        finished += 1
        assert_same_results(out, ref)
        shutil.rmtree(out)
        fresh = True
    t_final = _run(make_cmd(out), env=env)
    assert_same_results(out, ref)
    assert _partial(out) == [], _partial(out)
    return {"t_ref_s": t_ref, "t_warm_s": t_warm, "kills": len(delays), "delays_s": delays,
            "files_after_kill": n_files, "finished_between": finished, "t_final_s": t_final,
            "n_ref_files": len(_visible(ref))}


def _report(name, res):
    print(f"\n{name}: reference {res['t_ref_s']:.1f} s, second run {res['t_warm_s']:.1f} s; {res['kills']} kills "
          f"at "
          f"{', '.join(f'{d:.1f}' for d in res['delays_s'])} s, leaving {res['files_after_kill']} of the "
          f"{res['n_ref_files']} result files; {res['finished_between']} runs ended before their kill; final resumed "
          f"run {res['t_final_s']:.1f} s")


# ------------------------------------------------------------------------------------ the four

def test_kill_resume_run_study(tmp_path):
    """`layerscope run` on a study of five quick analyses (two EELS line scans, sXAS, two cycler logs)."""
    from layerscope.simulate import study as sim
    from layerscope.simulate.cycler import lrm_half_cell

    data = tmp_path / "data"
    entries = [("eels", {"name": "pristine", "state": "pristine", **sim._eels(data, "pristine", [2.2, 2.3], 41)}),
               ("eels", {"name": "charged", "state": "charged-4.5V", **sim._eels(data, "charged", [2.3, 2.5], 42)}),
               ("xas", {"name": "o-k", "state": "all states", **sim._xas(data)}),
               ("cycler", {"name": "half-cell", "state": "formation", "role": "half-cell", "mass_mg": 10.0,
                           "nominal_mAh": 2.5,
                           **sim._cycler(data, "half-cell", lrm_half_cell("coated", mass_mg=10.0))})]
    study = sim.write_study_toml(data / "study.toml", {"title": "kill test", "material": "LRM"}, entries)
    res = kill_and_resume(lambda out: _cmd("run", study, "--out", out), tmp_path, seed=SEED)
    _report("run", res)
    assert res["kills"] >= N_KILLS


def test_kill_resume_operando(tmp_path):
    """`layerscope operando` on the first three 30-min patterns of the simulated first cycle."""
    from layerscope.simulate.operando import simulate_operando

    sim = simulate_operando(tmp_path / "sim", seed=1, n_points=500)
    series = sim["series"]
    rows = list(csv.DictReader(open(series / "series.csv")))
    with open(series / "series.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[:3])
    # with a CIF per pattern: a resumed run must neither lose nor duplicate them
    res = kill_and_resume(lambda out: _cmd("operando", series, "--cycler", sim["cycler"], "--out", out,
                                           "--cif-per-pattern"), tmp_path,
                          seed=SEED + 1, checkpoints=lambda rel: str(rel) == "checkpoint.json")
    _report("operando", res)
    assert res["kills"] >= N_KILLS


def test_kill_resume_fourd(tmp_path):
    """`layerscope fourd` on a 24×24 simulated scan in 6×6 blocks of 4×4 positions (dask threads); a
    coarse 4° library keeps the library and kernels short; still, about half of a run is Python start-up
    (importing every command's packages; `layerscope --help` alone takes ~3.5 s of CPU), so many kills
    land before any block is indexed. The block checkpoint itself is tested deterministically in
    ``test_fourd_resume.py``."""
    from layerscope.cli import main

    assert main(["simulate", "fourd", "--out", str(tmp_path / "sim"), "--scan", "24", "24", "--seed", "1"]) == 0
    scan = tmp_path / "sim" / "scan.h5"
    res = kill_and_resume(lambda out: _cmd("fourd", scan, "--phase", "lrm-pristine:O3p", "lrm-pristine:S",
                                           "--spacing", "4", "--chunk", "4", "--out", out), tmp_path,
                          seed=SEED + 2, checkpoints=lambda rel: rel.parts[0] == "index_checkpoint")
    _report("fourd", res)
    assert res["kills"] >= N_KILLS


def test_kill_resume_haadf_batch(tmp_path):
    """`layerscope haadf A B C --out DIR`: three simulated 160-px images of twin variants."""
    from layerscope.cli import main

    batch = []
    for seed in (1, 2, 3):
        d = tmp_path / f"sim{seed}"
        assert main(["simulate", "haadf", "--out", str(d), "--size", "160", "--seed", str(seed)]) == 0
        batch.append((d / "image.tif").rename(tmp_path / f"image{seed}.tif"))
    res = kill_and_resume(lambda out: _cmd("haadf", *batch, "--out", out), tmp_path, seed=SEED + 3)
    _report("haadf batch", res)
    assert res["kills"] >= N_KILLS
