"""Checks of an HDF5 file before libhdf5 reads it in layerscope's process (issue 15 fuzzing).

:func:`check_hdf5` (what every HDF5 reader calls) runs both checks below: the global heap scan of
:func:`check_global_heaps`, then a walk of the file in a child process (see the comment above
:func:`check_hdf5`), so that a damaged file that would crash or hang libhdf5 is an InputError.

The global heap scan:

A damaged global heap (where HDF5 keeps variable-length strings, e.g. HyperSpy's attributes) can
make libhdf5 spin for minutes inside one attribute read, in C code that no Python signal interrupts
(fuzzing, issue 15: one character changed in a ``.hspy`` spectrum). No library exposes a check of
the heap layout, so this walks it by hand, following the HDF5 file format specification
("Global Heap", version 1): ``GCOL``, version 1, 3 reserved bytes, the collection size (8 bytes,
≥ 4096), then objects: index (2), reference count (2), reserved (4), size (8), data padded to 8
bytes; index 0 is the free space ending the collection. libhdf5 numbers the objects from 1, so an
index above collection size / 16 (the most objects it can hold) marks a damaged heap. An object that runs past its collection
or a collection that runs past the file is refused with an :class:`InputError`.
"""

from __future__ import annotations

import mmap
import threading
from pathlib import Path

#: files larger than this are not scanned (a scan reads the whole file)
MAX_SCAN_BYTES = 512 * 2**20


def check_global_heaps(path) -> None:
    """Raise InputError when an HDF5 global heap collection of ``path`` is inconsistent."""
    p = Path(path)
    size = p.stat().st_size
    if size == 0 or size > MAX_SCAN_BYTES:
        return
    with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
        start = m.find(b"GCOL")
        while start >= 0:
            if start + 16 <= size and m[start + 4] == 1 and m[start + 5:start + 8] == b"\0\0\0":
                _check_collection(m, start, size, p)
            start = m.find(b"GCOL", start + 4)


def _check_collection(m, start: int, size: int, p: Path) -> None:
    from layerscope._errors import InputError

    coll = int.from_bytes(m[start + 8:start + 16], "little")
    if coll < 4096:
        return  # not a collection header (HDF5 collections are at least 4 kB): bytes that happen to read GCOL
    where = f"HDF5 global heap collection at byte {start}"
    if start + coll > size:
        raise InputError(f"the collection claims {coll} bytes, past the end of the {size}-byte file; "
                         "expected a complete HDF5 file", path=p, where=where)
    pos, end = start + 16, start + coll
    while pos + 16 <= end:
        index = int.from_bytes(m[pos:pos + 2], "little")
        nbytes = int.from_bytes(m[pos + 8:pos + 16], "little")
        if index > coll // 16:  # libhdf5 numbers objects from 1, at most one per 16 bytes of collection
            raise InputError(f"heap object index {index} at byte {pos} exceeds the {coll // 16} objects a "
                             f"{coll}-byte collection can hold; expected an intact HDF5 heap", path=p, where=where)
        if index == 0:          # the free space: the rest of the collection
            if pos + nbytes > end + 16:
                raise InputError(f"free space of {nbytes} bytes at byte {pos} runs past the collection "
                                 f"(ends at byte {end}); expected an intact HDF5 heap", path=p, where=where)
            return
        pos += 16 + -(-nbytes // 8) * 8
        if pos > end:
            raise InputError(f"heap object {index} of {nbytes} bytes runs past the collection (ends at byte "
                             f"{end}); expected an intact HDF5 heap", path=p, where=where)


# --------------------------------------------------------------------------------------------------
# A damaged HDF5 file can crash libhdf5 itself (a segmentation fault in an attribute read or a group
# iteration: fuzzing, issue 15), which no Python code can catch: it kills the user's process. So before
# layerscope opens an HDF5 file in its own process, a child process walks what a reader may touch —
# every group's links, every object's attributes, every dataset's layout and chunk index, and the
# data bytes up to a budget — and reports back. A crash of the child (a negative exit code) becomes an
# InputError, a walk over ``CHILD_TIMEOUT_S`` too; any Python-level error in the child is ignored
# (the reader in this process raises its own, clear, error). The child is one long-lived worker
# (``python -c``, h5py only: ~0.3 s to start, paid once per process), restarted after a crash; a
# crash is retried once in a fresh worker so that a worker hurt by an earlier file cannot blame a
# sound one. Files already walked are remembered by (path, size, mtime).

#: seconds a walk may take before the file is refused (a libhdf5 loop on a damaged file)
CHILD_TIMEOUT_S = 60.0
#: dataset bytes the child reads in full per file; beyond it, a dataset's chunk index is walked and
#: its first and last chunks are read
CHILD_READ_BYTES = 64 * 2**20

_CHECKED: dict = {}
_LOCK = threading.Lock()
_WORKER = None


def check_hdf5(path) -> None:
    """Raise InputError when ``path`` is an HDF5 file that would hang or crash libhdf5.

    Runs :func:`check_global_heaps`, then the child-process walk (cached by path, size, mtime). Set
    the environment variable ``LAYERSCOPE_HDF5_CHILD=0`` to skip the walk (trusted files, speed)."""
    import os

    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key in _CHECKED:
        return
    check_global_heaps(p)
    if os.environ.get("LAYERSCOPE_HDF5_CHILD", "1") != "0":
        with _LOCK:
            _walk_in_child(p)
    _CHECKED[key] = True


def _walk_in_child(p: Path) -> None:
    import os

    from layerscope._errors import InputError

    global _WORKER
    for _attempt in (1, 2):
        if _WORKER is None or _WORKER.owner != os.getpid() or _WORKER.proc.poll() is not None:
            _WORKER = _Worker()  # (a forked process must not share its parent's worker and pipes)
        outcome = _WORKER.walk(p)
        if outcome == "ok":
            return
        _WORKER.close()
        _WORKER = None
        if outcome == "timeout":
            raise InputError(f"the HDF5 file is damaged: libhdf5 did not finish reading its structure in "
                             f"{CHILD_TIMEOUT_S:.0f} s; expected an intact HDF5 file", path=p)
    raise InputError("the HDF5 file is damaged: libhdf5 crashed reading it (in a child process); "
                     f"expected an intact HDF5 file ({outcome})", path=p)


class _Worker:
    """The child process: one JSON request per line on stdin, one line back per file walked."""

    def __init__(self):
        import atexit
        import os
        import queue
        import subprocess
        import sys
        import threading

        code = ("import sys; sys.path[:] = [p for p in sys.path if p]; import importlib.util as u; "
                f"s = u.spec_from_file_location('_layerscope_h5walk', {str(Path(__file__))!r}); "
                "m = u.module_from_spec(s); s.loader.exec_module(m); m._serve()")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.owner = os.getpid()
        self.lines: queue.Queue = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()
        atexit.register(self.close)

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # the child ended

    def walk(self, p: Path) -> str:
        """"ok", "timeout", or how the child ended."""
        import json
        import queue

        try:
            self.proc.stdin.write(json.dumps({"path": str(p), "budget": CHILD_READ_BYTES}) + "\n")
            self.proc.stdin.flush()
            line = self.lines.get(timeout=CHILD_TIMEOUT_S)
        except queue.Empty:
            return "timeout"
        except OSError:  # BrokenPipeError: the child is gone
            line = None
        if line is not None:
            return "ok"
        rc = self.proc.wait()
        return f"the child ended with signal {-rc}" if rc < 0 else f"the child exited with code {rc}"

    def close(self):
        """End the child (EOF on its stdin; killed if it does not exit at once) and close the pipes."""
        import os
        import subprocess

        if self.owner != os.getpid():
            return
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.pump.join(timeout=2)
        if not self.pump.is_alive():
            self.proc.stdout.close()


def _serve() -> None:  # pragma: no cover - runs in the child process
    import json
    import sys

    try:
        import hdf5plugin  # noqa: F401  (the filters layerscope's readers register too)
    except ImportError:
        pass
    for line in sys.stdin:
        req = json.loads(line)
        try:
            n = _walk(req["path"], int(req["budget"]))
        except Exception as exc:  # noqa: BLE001 - a Python-level error is the in-process reader's to report
            n = f"{type(exc).__name__}"
        sys.stdout.write(json.dumps({"walked": n}) + "\n")
        sys.stdout.flush()


def _walk(path: str, budget: int) -> int:  # pragma: no cover - runs in the child process
    """Touch what a reader may touch; every error is swallowed (only a crash or a hang matters)."""
    import h5py

    seen: set = set()
    left = [budget]

    def attrs(obj):
        try:
            names = list(obj.attrs.keys())
        except Exception:  # noqa: BLE001
            return
        for k in names:
            try:
                obj.attrs[k]
            except Exception:  # noqa: BLE001
                pass

    def dataset(ds):
        try:
            shape, chunks, n = ds.shape, ds.chunks, ds.nbytes if ds.shape is not None else 0
            ds.dtype, ds.compression, ds.fillvalue
        except Exception:  # noqa: BLE001
            return
        try:
            if n <= left[0]:
                left[0] -= n
                ds[()]
                return
            if chunks is not None:
                ds.id.chunk_iter(lambda info: None)  # the whole chunk index
                first = tuple(slice(0, c) for c in chunks)
                last = tuple(slice(max(0, s - 1) // c * c, s) for s, c in zip(shape, chunks))
                ds[first], ds[last]
            elif shape:
                ds[(0,) * len(shape)], ds[tuple(s - 1 for s in shape)]
        except Exception:  # noqa: BLE001
            pass

    def visit(obj, depth):
        try:
            key = (obj.file.filename, obj.id.__hash__())
        except Exception:  # noqa: BLE001
            return
        if key in seen or depth > 64 or len(seen) > 200_000:
            return
        seen.add(key)
        attrs(obj)
        if isinstance(obj, h5py.Dataset):
            dataset(obj)
        elif isinstance(obj, h5py.Group):
            try:
                names = list(obj.keys())
            except Exception:  # noqa: BLE001
                return
            for name in names:
                try:
                    obj.get(name, getlink=True)
                    child = obj[name]  # soft and external links are followed, as a reader would
                except Exception:  # noqa: BLE001
                    continue
                visit(child, depth + 1)

    with h5py.File(path, "r") as f:
        visit(f, 0)
    return len(seen)
