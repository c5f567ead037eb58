"""Seeded mutations of real input files, for the reader fuzz tests (``test_fuzz.py``).

Each mutant is one of: truncation at a random offset, flipped bytes, deleted / duplicated /
swapped lines, a number replaced by a huge one, NaN or inf, the text re-encoded (UTF-16,
latin-1 with accents), or every integer of a header line set to an absurd count. The same seed
gives the same mutant, so a failure names a reproducible case.
"""

from __future__ import annotations

import re

import numpy as np

_NUMBER = re.compile(rb"[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?")

KINDS = ("truncate", "flip", "delete_line", "duplicate_line", "swap_lines", "huge_number", "nan", "inf",
         "utf16", "accents", "absurd_counts", "empty_lines", "negative")


def mutate(data: bytes, seed: int) -> tuple[str, bytes]:
    """(kind, mutated bytes) for ``seed``."""
    rng = np.random.default_rng(seed)
    kind = KINDS[seed % len(KINDS)]
    if not data:
        return kind, b"\x00"
    lines = data.split(b"\n")
    head = max(1, min(len(lines), 40))
    if kind == "truncate":
        return kind, data[: int(rng.integers(0, len(data)))]
    if kind == "flip":
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, len(b)))
            b[i] = int(rng.integers(0, 256))
        return kind, bytes(b)
    if kind == "delete_line":
        i = int(rng.integers(0, len(lines)))
        return kind, b"\n".join(lines[:i] + lines[i + 1:])
    if kind == "duplicate_line":
        i = int(rng.integers(0, len(lines)))
        return kind, b"\n".join(lines[: i + 1] + lines[i:])
    if kind == "swap_lines":
        i, j = (int(v) for v in rng.integers(0, len(lines), 2))
        lines[i], lines[j] = lines[j], lines[i]
        return kind, b"\n".join(lines)
    if kind in ("huge_number", "nan", "inf", "negative"):
        nums = list(_NUMBER.finditer(data))
        if not nums:
            return kind, data + b" 1e999"
        m = nums[int(rng.integers(0, len(nums)))]
        new = {"huge_number": b"9" * int(rng.integers(12, 400)), "nan": b"nan", "inf": b"-inf",
               "negative": b"-" + m.group().lstrip(b"+-")}[kind]
        return kind, data[: m.start()] + new + data[m.end():]
    if kind == "utf16":
        return kind, data.decode("latin-1").encode("utf-16")
    if kind == "accents":
        i = int(rng.integers(0, head))
        lines[i] = lines[i] + " µ° Å".encode("latin-1")
        return kind, b"\n".join(lines)
    if kind == "absurd_counts":
        i = int(rng.integers(0, head))
        lines[i] = re.sub(rb"(?<![.\d])\d{1,6}(?![.\d])", b"2147483647", lines[i])
        return kind, b"\n".join(lines)
    if kind == "empty_lines":
        i = int(rng.integers(0, len(lines)))
        return kind, b"\n".join(lines[:i] + [b"", b"   ", b""] + lines[i:])
    raise AssertionError(kind)
