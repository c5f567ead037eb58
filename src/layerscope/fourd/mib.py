"""Merlin ``.mib`` header checks before rosettasciio reads the frames.

Every frame of a ``.mib`` starts with an ASCII header ``MQ1,<seq>,<header bytes>,<chips>,
<width>,<height>,<type>,...`` (type ``U01``/``U08``/``U16``/``U32`` for counts, ``R64`` for
RAW readout). The frame size follows from it; the acquisition's ``.hdr`` states the
number of frames (``Frames in Acquisition (Number)``). A file whose size is not a whole
number of frames, or holds fewer frames than its ``.hdr`` promises, is truncated: an
:class:`~layerscope.InputError` naming the file and the frames expected (rosettasciio
would read it as a smaller scan).

RAW (``R64``) frames are the chips' undecoded counter bit streams; decoding them needs
the readout's chip/bit ordering, which no open test file with a matching decoded frame
lets us check, so they are refused with a message rather than decoded by guesswork.
"""

from __future__ import annotations

import re
from pathlib import Path

from layerscope._errors import InputError

__all__ = ["check_mib"]

_BYTES = {"U01": 1 / 8, "U08": 1, "U16": 2, "U32": 4, "R64": None}


def check_mib(path) -> dict:
    """Parse the first frame header (and the .hdr) of a .mib; raise InputError if truncated or RAW."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(768).split(b"\0")[0].decode("ascii", "replace")
    parts = head.split(",")
    if len(parts) < 7 or parts[0] != "MQ1":
        raise InputError("a Merlin frame header 'MQ1,<seq>,<header bytes>,<chips>,<width>,<height>,<type>,...'",
                         path=path, where="byte 0")
    try:
        hbytes, width, height = int(parts[2]), int(parts[4]), int(parts[5])
    except ValueError:
        raise InputError(f"integer header size, width and height in the frame header, got {parts[2:6]}",
                         path=path, where="byte 0") from None
    dtype = parts[6].strip()
    if dtype not in _BYTES:
        raise InputError(f"a frame type U01/U08/U16/U32/R64, got {dtype!r}", path=path, where="byte 0")
    if dtype == "R64":
        raise InputError("frames in counting mode (U08/U16/U32): this file holds RAW (R64) readout frames, which "
                         "layerscope does not decode; save the acquisition in counting mode (or convert it with "
                         "the Merlin software)", path=path, where="frame 1 header")
    bits = {"U01": 1, "U08": 8, "U16": 16, "U32": 32}[dtype]
    frame = hbytes + width * height * bits // 8
    n_file = size / frame
    expected = None
    hdr = path.with_suffix(".hdr")
    if hdr.exists():
        txt = hdr.read_bytes().decode("ascii", "replace")
        mm = re.search(r"Frames in Acquisition \(Number\):\s*(\d+)", txt)
        if mm:
            expected = int(mm.group(1))
    if n_file != int(n_file):
        raise InputError(f"a whole number of {width}×{height} {dtype} frames of {frame} bytes"
                         + (f" ({expected} frames, as {hdr.name} states)" if expected else "")
                         + f"; the file is {size} bytes = {n_file:.3f} frames (truncated)", path=path)
    if expected is not None and int(n_file) < expected:
        raise InputError(f"{expected} frames, as {hdr.name} states ('Frames in Acquisition'); the file holds "
                         f"{int(n_file)} (truncated)", path=path)
    return {"raw": False, "frames": int(n_file), "expected": expected, "width": width, "height": height,
            "dtype": dtype, "scan_shape": None}
