"""Outputs are readable like any other program's (issue 15): mode from the umask, not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

import numpy as np

from layerscope._io import atomic_path, write_csv, write_text
from layerscope.crystal.cif import write_cif
from layerscope.crystal.presets import preset


def test_atomic_outputs_take_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x\n")
        write_csv(tmp_path / "b.csv", [{"a": 1.0, "b": np.float64(2.0)}])
        with atomic_path(tmp_path / "c.bin") as tmp:
            tmp.write_bytes(b"\0")
        write_cif(preset("Al").phases[0], tmp_path / "Al.cif")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        assert modes == dict.fromkeys(modes, 0o644), modes
        os.umask(0o077)
        write_text(tmp_path / "private.txt", "x\n")
        assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
    finally:
        os.umask(old)
