"""Phase, orientation and twin maps of a whole scan, computed chunk by chunk on dask.

``index_scan`` maps :func:`layerscope.fourd.index.index_patterns` over blocks of
probe positions (each block holds whole patterns), so memory is bounded by the
block size; the local threaded scheduler is the default and a
``dask.distributed`` scheduler address runs the same graph on a cluster.

With ``checkpoint_dir`` every finished block is kept there (``block_<i>_<j>.npy``, written
atomically) under a key: the SHA-256 of the matcher's arrays and settings, the block layout and
what the caller says identifies the data (``checkpoint_key``: the scan file, its size and time,
the calibration). A run killed part way resumes with the blocks it had finished; blocks of
another key are removed first. Indexing a block is deterministic, so a resumed scan gives the
same maps as one uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numpy as np
from scipy.spatial.transform import Rotation

from layerscope.diffraction.electron import TwinLaw
from layerscope.fourd.index import FIELDS, Matcher, index_patterns, misorientation_deg, rotation_from_fields

__all__ = ["OrientationMaps", "index_scan", "twin_map", "ipf_colours", "write_maps"]


@dataclass(frozen=True)
class OrientationMaps:
    """Per probe position: phase code (into ``phase_names``), orientation U (crystal → lab),
    correlation, phase and orientation reliability (%), scattered fraction."""

    phase: np.ndarray
    phase_names: tuple[str, ...]
    rotation: np.ndarray
    correlation: np.ndarray
    phase_reliability: np.ndarray
    orientation_reliability: np.ndarray
    scattered_fraction: np.ndarray
    fields: np.ndarray

    @property
    def quaternion(self) -> np.ndarray:
        """(…, 4) scalar-last quaternions of the Bunge rotation g = Uᵀ (sample → crystal)."""
        u = self.rotation.reshape(-1, 3, 3)
        return Rotation.from_matrix(np.transpose(u, (0, 2, 1))).as_quat().reshape(*self.phase.shape, 4)

    @property
    def euler_deg(self) -> np.ndarray:
        """(…, 3) Bunge Euler angles (φ1, Φ, φ2) in degrees of g = Uᵀ."""
        u = self.rotation.reshape(-1, 3, 3)
        e = Rotation.from_matrix(np.transpose(u, (0, 2, 1))).as_euler("ZXZ", degrees=True) % 360
        return e.reshape(*self.phase.shape, 3)


def _block(block, matcher, checkpoint=None, block_info=None):
    ny, nx = block.shape[:2]
    path = None
    if checkpoint is not None and block_info:
        i, j = block_info[0]["chunk-location"][:2]
        path = checkpoint / f"block_{i}_{j}.npy"
        if path.is_file():
            try:
                kept = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                kept = None
            if kept is not None and kept.shape == (ny, nx, len(FIELDS)):
                return kept
    out = index_patterns(np.asarray(block).reshape(ny * nx, *block.shape[2:]), matcher)
    out = out.reshape(ny, nx, len(FIELDS))
    if path is not None:
        from layerscope._io import atomic_path

        with atomic_path(path, ".npy") as tmp:
            np.save(tmp, out, allow_pickle=False)
    return out


def matcher_digest(matcher: Matcher) -> str:
    """SHA-256 of everything in ``matcher`` that indexing reads (arrays by their bytes)."""
    import dataclasses
    import hashlib

    from scipy import sparse

    h = hashlib.sha256()

    def add(v):
        if isinstance(v, sparse.spmatrix) or sparse.issparse(v):
            c = v.tocsr()
            for a in (c.data, c.indices, c.indptr, np.asarray(c.shape)):
                add(a)
        elif isinstance(v, np.ndarray):
            a = np.ascontiguousarray(v)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            for f in dataclasses.fields(v):
                h.update(f.name.encode())
                add(getattr(v, f.name))
        elif isinstance(v, (list, tuple)):
            h.update(b"[")
            for x in v:
                add(x)
            h.update(b"]")
        elif isinstance(v, dict):
            for k in sorted(v, key=str):
                h.update(repr(k).encode())
                add(v[k])
        else:
            h.update(repr(v).encode())

    add(matcher)
    return h.hexdigest()


def _checkpoint_folder(folder, matcher, arr, key) -> "Path":
    import hashlib
    import json
    import shutil
    from pathlib import Path

    from layerscope._io import write_text

    folder = Path(folder)
    ident = {"matcher": matcher_digest(matcher), "shape": list(arr.shape),
             "chunks": [list(c) for c in arr.chunks[:2]], "data": key}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
    kf = folder / "key.json"
    try:
        same = json.loads(kf.read_text()).get("digest") == digest
    except (OSError, ValueError, AttributeError):
        same = False
    if not same:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        write_text(kf, json.dumps({"digest": digest, **ident}, indent=1, default=str))
    return folder


def index_scan(data, matcher: Matcher, *, scheduler: str | None = None, chunk_positions: int | None = None,
               num_workers: int | None = None, checkpoint_dir=None, checkpoint_key=None) -> OrientationMaps:
    """Index every pattern of a (scan y, scan x, ky, kx) NumPy or dask array.

    ``scheduler``: None (local threads), ``"synchronous"``, or a ``dask.distributed``
    scheduler address such as ``"tcp://10.0.0.1:8786"``. ``checkpoint_dir``: keep finished
    blocks there and reuse those of the same ``checkpoint_key`` (see the module docstring).
    """
    arr = data if isinstance(data, da.Array) else da.from_array(data, chunks=(16, 16, -1, -1))
    if arr.ndim != 4:
        raise ValueError(f"expected a 4-D scan (scan y, scan x, ky, kx), got shape {arr.shape}")
    if chunk_positions:
        arr = arr.rechunk((chunk_positions, chunk_positions, -1, -1))
    elif arr.chunks[2] != (arr.shape[2],) or arr.chunks[3] != (arr.shape[3],):
        arr = arr.rechunk((arr.chunksize[0], arr.chunksize[1], -1, -1))
    ck = None if checkpoint_dir is None else _checkpoint_folder(checkpoint_dir, matcher, arr, checkpoint_key)
    # meta given: dask does not call _block on an empty array to find the output type
    res = arr.map_blocks(_block, matcher, ck, dtype=np.float64, meta=np.empty((0, 0, 0)), drop_axis=(2, 3),
                         new_axis=2, chunks=(arr.chunks[0], arr.chunks[1], (len(FIELDS),)))
    if scheduler not in (None, "threads", "synchronous", "processes"):
        from dask.distributed import Client

        with Client(scheduler) as client:
            fields = client.compute(res).result()
    else:
        kw = {"num_workers": num_workers} if num_workers else {}
        fields = res.compute(scheduler=scheduler or "threads", **kw)
    return maps_from_fields(fields, matcher)


def maps_from_fields(fields: np.ndarray, matcher: Matcher) -> OrientationMaps:
    f = {name: fields[..., i] for i, name in enumerate(FIELDS)}
    rot = rotation_from_fields(matcher, f["template"], f["alpha_rad"], f["flip"])
    rot[f["template"] < 0] = np.eye(3)
    return OrientationMaps(f["phase"].astype(int), matcher.phase_names, rot, f["correlation"],
                           f["phase_reliability"], f["orientation_reliability"], f["scattered_fraction"], fields)


def twin_map(maps: OrientationMaps, phase_code: int, law: TwinLaw, symmetry: np.ndarray, *,
             parent: np.ndarray | None = None, tolerance_deg: float = 3.0) -> np.ndarray:
    """Label each position of a phase as parent (0), twin variant (1) or neither (−1; other phases −2).

    A position is a twin when its orientation is within ``tolerance_deg`` of
    ``parent · Tᵀ`` (T the twin law's rotation) and further from the parent.
    ``parent`` defaults to the orientation shared (within the tolerance) by the
    most positions of that phase. Misorientations honour the Laue-class symmetry.
    """
    sel = maps.phase == phase_code
    out = np.full(maps.phase.shape, -2)
    if not sel.any():
        return out
    u = maps.rotation[sel]
    if parent is None:
        sample = u[np.linspace(0, len(u) - 1, min(len(u), 200)).astype(int)]
        counts = [(misorientation_deg(u, s, symmetry) < tolerance_deg).sum() for s in sample]
        parent = sample[int(np.argmax(counts))]
    m_par = misorientation_deg(u, parent, symmetry)
    m_tw = misorientation_deg(u, parent @ law.matrix.T, symmetry)
    lab = np.full(len(u), -1)
    lab[(m_par <= tolerance_deg) & (m_par <= m_tw)] = 0
    lab[(m_tw <= tolerance_deg) & (m_tw < m_par)] = 1
    out[sel] = lab
    return out


def ipf_colours(maps: OrientationMaps, symmetries, *, direction=(0.0, 0.0, 1.0)) -> np.ndarray:
    """RGB (…, 3) inverse-pole-figure colours of the lab ``direction`` in each crystal.

    The crystal direction v = Uᵀ·d is coloured by :func:`layerscope.fourd.ipf.ipf_rgb` (its
    place in the fundamental sector of the phase's Laue class; the key:
    :func:`layerscope.fourd.ipf.ipf_key`). Non-crystalline positions are black.
    """
    from layerscope.fourd.ipf import ipf_rgb

    rgb = np.zeros((*maps.phase.shape, 3))
    d = np.asarray(direction, dtype=float)
    for code, sym in symmetries.items():
        sel = maps.phase == code
        if not sel.any():
            continue
        rgb[sel] = ipf_rgb(np.einsum("nji,j->ni", maps.rotation[sel], d), sym)
    return rgb


def write_maps(path, maps: OrientationMaps, *, extra: dict | None = None, attrs: dict | None = None):
    """maps.h5: phase, Euler angles (Bunge, deg), quaternions, correlation, reliabilities (atomic write)."""
    from pathlib import Path

    import h5py

    from layerscope._io import atomic_path

    path = Path(path)
    with atomic_path(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("phase", data=maps.phase)
        f["phase"].attrs["names"] = ",".join(maps.phase_names)
        f.create_dataset("euler_bunge_deg", data=maps.euler_deg)
        f.create_dataset("quaternion_xyzw", data=maps.quaternion)
        f.create_dataset("rotation_crystal_to_lab", data=maps.rotation)
        f.create_dataset("correlation", data=maps.correlation)
        f.create_dataset("phase_reliability_percent", data=maps.phase_reliability)
        f.create_dataset("orientation_reliability_percent", data=maps.orientation_reliability)
        f.create_dataset("scattered_fraction", data=maps.scattered_fraction)
        for k, v in (extra or {}).items():
            f.create_dataset(k, data=v)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return path
