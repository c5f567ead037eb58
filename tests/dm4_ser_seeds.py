"""Seed files for fuzzing the ``.dm4`` and FEI/TIA ``.ser`` readers (issue 15).

No ``.dm4`` or ``.ser`` file is in ``shared/data`` and rosettasciio writes neither format, so the seeds
are made here, by hand, from the formats' descriptions (the ones rosettasciio's and ncempy's readers
follow); the fuzz tests check that rosettasciio reads each seed back to the source's numbers before any
mutant is fed.

* ``dm3_to_dm4``: a real DM3 file re-encoded as DM4 — same tag tree and data bytes; DM4 differs in the
  width of its counts (file size, tag count, info-array entries: 8 bytes instead of 4) and in an 8-byte
  size before every tag's content.
* ``ser_image``: a TIA series of one 2-D image (SeriesVersion 0x0210: 4-byte offsets; DataTypeID 0x4122;
  TagTypeID 0x4152, time only): header, one dimension record, the data and tag offset arrays, then the
  element (X/Y calibration, data type, sizes, the pixels with X fastest, the bottom row first: rosettasciio
  flips Y when it reads a TIA image) followed by its tag.
"""

from __future__ import annotations

import struct

import numpy as np

#: bytes per element of DM's simple types (2 short, 3 long, 4 ushort, 5 ulong, 6 float, 7 double,
#: 8 bool, 9 char, 10 byte, 11 long long, 12 unsigned long long)
_DM_SIZE = {2: 2, 3: 4, 4: 2, 5: 4, 6: 4, 7: 8, 8: 1, 9: 1, 10: 1, 11: 8, 12: 8}


def _data_length(info: list[int]) -> int:
    """Bytes of a DM data tag's value from its info array."""
    if len(info) == 1:
        return _DM_SIZE[info[0]]
    if info[0] == 18:                      # string: [18, length]
        return info[1]
    if info[0] == 15:                      # struct: [15, name length, n, (name length, type) * n]
        return sum(_DM_SIZE[t] for t in info[4::2][: info[2]])
    if info[0] == 20:
        if info[1] == 15:                  # array of structs: [20, 15, 0, n, (0, type) * n, count]
            n = info[3]
            return sum(_DM_SIZE[t] for t in info[5:5 + 2 * n:2]) * info[-1]
        if info[1] == 18:                  # array of strings: [20, 18, length, count]
            return info[2] * info[3]
        if info[1] == 20:                  # array of arrays: [20, 20, type, length, count]
            return _DM_SIZE[info[2]] * info[3] * info[4]
        return _DM_SIZE[info[1]] * info[2]  # array of a simple type: [20, type, count]
    raise ValueError(f"unknown DM info array {info[:6]}")


def dm3_to_dm4(dm3: bytes) -> bytes:
    """Re-encode a DM3 file as DM4 (see the module docstring)."""
    version, _, little = struct.unpack(">III", dm3[:12])
    if version != 3:
        raise ValueError(f"not a DM3 file (version {version})")
    pos = 12

    def group() -> bytes:
        nonlocal pos
        sorted_, open_, ntags = struct.unpack(">BBI", dm3[pos:pos + 6])
        pos += 6
        out = struct.pack(">BBQ", sorted_, open_, ntags)
        for _ in range(ntags):
            out += entry()
        return out

    def entry() -> bytes:
        nonlocal pos
        kind, namelen = struct.unpack(">BH", dm3[pos:pos + 3])
        name = dm3[pos + 3:pos + 3 + namelen]
        pos += 3 + namelen
        head = struct.pack(">BH", kind, namelen) + name
        if kind == 20:
            body = group()
        elif kind == 21:
            if dm3[pos:pos + 4] != b"%%%%":
                raise ValueError(f"no %%%% delimiter at byte {pos}")
            ninfo = struct.unpack(">I", dm3[pos + 4:pos + 8])[0]
            info = list(struct.unpack(f">{ninfo}I", dm3[pos + 8:pos + 8 + 4 * ninfo]))
            pos += 8 + 4 * ninfo
            n = _data_length(info)
            body = b"%%%%" + struct.pack(f">Q{ninfo}Q", ninfo, *info) + dm3[pos:pos + n]
            pos += n
        else:
            raise ValueError(f"unknown DM tag kind {kind} at byte {pos}")
        return head + struct.pack(">Q", len(body)) + body

    root = group()
    tail = dm3[pos:]
    return struct.pack(">IQI", 4, 16 + len(root) + len(tail), little) + root + tail


def ser_image(img: np.ndarray, pixel_m: float) -> bytes:
    """A TIA ``.ser`` holding one 2-D float32 image (rows = Y, X fastest) with a pixel of ``pixel_m``."""
    img = np.ascontiguousarray(np.asarray(img)[::-1], "<f4")  # bottom row first
    ny, nx = img.shape
    units = b"meters"
    desc = b"Number"
    dim = struct.pack("<IddII", 1, 0.0, 1.0, 0, len(desc)) + desc + struct.pack("<I", len(units)) + units
    header_len = 30 + len(dim)
    offsets_at = header_len
    data_at = offsets_at + 8
    element = (struct.pack("<ddIddIHII", 0.0, pixel_m, 0, 0.0, pixel_m, 0, 7, nx, ny) + img.tobytes())
    tag_at = data_at + len(element)
    header = struct.pack("<HHHIIIIII", 0x4949, 0x0197, 0x0210, 0x4122, 0x4152, 1, 1, offsets_at, 1)
    tag = struct.pack("<HHI", 0x4152, 0, 0)
    return header + dim + struct.pack("<II", data_at, tag_at) + element + tag
