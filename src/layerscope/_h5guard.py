"""A pre-check of the HDF5 global heap collections of a small file, before libhdf5 reads it.

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
from pathlib import Path

from layerscope._errors import InputError

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
