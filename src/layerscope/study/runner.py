"""Run every analysis of a study, resumably, locally or on a Dask cluster.

Each dataset is one task writing into ``OUT/<kind>/<name>/``. A task that finishes writes
``record.json`` (atomically, last) holding a fingerprint of what it was computed from: the
analysis kind, its options, the SHA-256 of every input file and the layerscope version. On a
second run a task whose record carries the same fingerprint is not run again; a task that was
interrupted has no record and runs again (the operando refinement inside it continues from its
own per-pattern checkpoint). When all tasks are done, ``results.h5`` and ``report.html`` are
written from the records, so an interrupted and resumed study gives the same results as one
uninterrupted run.

Without ``scheduler`` the tasks run one after another in this process (nothing to start); with
``scheduler="tcp://host:8786"`` each task is submitted to that ``dask.distributed`` cluster,
whose workers must see the same file system.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from layerscope._io import write_text
from layerscope.study.schema import Dataset, Study

RECORD = "record.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_files(ds: Dataset) -> dict[str, Path]:
    """Every file a dataset's analysis reads (folders expanded), keyed by a readable name."""
    files = {}
    for k, v in ds.options.items():
        if isinstance(v, Path):
            if v.is_dir():
                for p in sorted(v.rglob("*")):
                    if p.is_file():
                        files[f"{k}/{p.relative_to(v)}"] = p
            else:
                files[k] = v
        elif isinstance(v, dict):
            for kk, vv in v.items():
                if isinstance(vv, Path):
                    files[f"{k}.{kk}"] = vv
        elif k == "phases":
            from layerscope.crystal.load import parse_phase_spec

            for s in v:
                src = parse_phase_spec(s)[1]
                if Path(src).is_file():
                    files[f"phase {Path(src).name}"] = Path(src)
    return files


def _jsonable(v):
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def provenance(ds: Dataset) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    pk = {}
    for name in ("layerscope", "numpy", "scipy", "jax", "gemmi", "xarray", "h5py", "dask", "scikit-image",
                 "matplotlib"):
        try:
            pk[name] = version(name)
        except PackageNotFoundError:
            pass
    hashes = {k: sha256_file(p) for k, p in input_files(ds).items()}
    return {"kind": ds.kind, "name": ds.name, "parameters": _jsonable(ds.options), "input_sha256": hashes,
            "packages": pk, "python": sys.version.split()[0]}


def fingerprint(prov: dict) -> str:
    key = {"kind": prov["kind"], "parameters": prov["parameters"], "inputs": prov["input_sha256"],
           "layerscope": prov["packages"].get("layerscope")}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, default=_json_default))


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def run_task(kind: str, name: str, options: dict, index: int, out_dir: str) -> dict:
    """Run one dataset's analysis into ``out_dir`` and write its record (also on Dask workers).

    No backend is chosen here: the figures are drawn on ``matplotlib.figure.Figure`` canvases, and
    matplotlib itself falls back to Agg where there is no display (a cluster worker)."""
    from layerscope.study.tasks import RUNNERS

    if _on_dask_worker():  # a worker process of a cluster: keep its compiled kernels like the CLI does
        from layerscope._jaxcache import enable_compilation_cache

        enable_compilation_cache()

    ds = Dataset(kind, name, options, index)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(ds)
    t0 = time.perf_counter()
    rec = RUNNERS[kind](options, out)
    rec = json.loads(json.dumps(rec, default=_json_default))  # plain types only
    rec.update({"kind": kind, "name": name, "state": options.get("state"), "provenance": prov,
                "fingerprint": fingerprint(prov), "seconds": round(time.perf_counter() - t0, 1)})
    _write_json(out / RECORD, rec)
    return rec


def _on_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def task_dir(out: Path, ds: Dataset) -> Path:
    return out / ds.kind / ds.name


def finished_record(out: Path, ds: Dataset) -> dict | None:
    """The record of a finished task whose inputs and options are unchanged, else None."""
    p = task_dir(out, ds) / RECORD
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text())
    except json.JSONDecodeError:
        return None
    return rec if rec.get("fingerprint") == fingerprint(provenance(ds)) else None


def run_study(study: Study, out_dir, *, scheduler: str | None = None, only: list[str] | None = None,
              log=print) -> dict:
    """Run every dataset of ``study`` (see the module docstring); returns {"records", "results", "report"}."""
    from layerscope.study.report import write_report
    from layerscope.study.results import write_results

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo, records = [], {}
    datasets = [d for d in study.datasets if not only or d.kind in only or d.id in only]
    for ds in datasets:
        rec = finished_record(out, ds)
        if rec is not None:
            records[ds.id] = rec
            log(f"[study] {ds.id}: done before, kept")
        else:
            todo.append(ds)
    n = len(datasets)
    t0 = time.perf_counter()
    if scheduler:
        from dask.distributed import Client, as_completed

        with Client(scheduler) as client:
            futs = {client.submit(run_task, d.kind, d.name, d.options, d.index, str(task_dir(out, d)),
                                  pure=False): d for d in todo}
            for k, fut in enumerate(as_completed(futs), start=len(records) + 1):
                d = futs[fut]
                records[d.id] = fut.result()
                log(f"[study] {k}/{n} {d.id} finished on the cluster ({records[d.id]['seconds']} s)")
    else:
        for k, d in enumerate(todo, start=len(records) + 1):
            log(f"[study] {k}/{n} {d.id} ... ({time.perf_counter() - t0:.0f} s elapsed)")
            records[d.id] = run_task(d.kind, d.name, d.options, d.index, str(task_dir(out, d)))
            log(f"[study] {k}/{n} {d.id} done in {records[d.id]['seconds']} s")
    ordered = [records[d.id] for d in datasets]
    results = write_results(study, ordered, out)
    report = write_report(study, ordered, out)
    n_val = sum(len(r.get("validation", [])) for r in ordered)
    n_ok = sum(v["ok"] for r in ordered for v in r.get("validation", []))
    log(f"[study] {len(ordered)} analyses; results {results}; report {report}"
        + (f"; {n_ok}/{n_val} checks against ground truth within tolerance" if n_val else ""))
    return {"records": ordered, "results": results, "report": report, "checks": (n_ok, n_val)}
