"""The output lock after a kill -9 (issue 15): never stale, and the next command clears the half-written
temporary files the killed one left."""

from __future__ import annotations

import subprocess
import sys

import pytest

from layerscope._io import atomic_path
from layerscope._lock import OutputInUse, output_lock

HOLD = ("import sys, time\nfrom layerscope._lock import output_lock\nfrom layerscope._io import atomic_path\n"
        "with output_lock(sys.argv[1], 'run'):\n"
        "    with atomic_path(sys.argv[1] + '/table.csv') as tmp:\n"
        "        tmp.write_text('half a tab')\n"
        "        print('held', flush=True)\n"
        "        time.sleep(120)\n")


def test_lock_of_a_killed_command_is_released_and_its_partial_files_removed(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"held"
        with pytest.raises(OutputInUse, match="in use by another layerscope command"):
            with output_lock(tmp_path, "run"):
                pass
    finally:
        p.kill()  # SIGKILL: no cleanup runs in the holder
        p.wait()
    left = [q.name for q in tmp_path.iterdir() if q.name.endswith(".part.tmp")]
    assert len(left) == 1 and left[0].startswith(".table.csv.")  # the killed writer's temporary file
    assert not (tmp_path / "table.csv").exists()  # never visible under its final name
    sub = tmp_path / "sub"
    sub.mkdir()
    with atomic_path(sub / "x.png", ".png") as tmp:  # a finished write leaves nothing behind
        tmp.write_bytes(b"png")
    (sub / ".fig.png.ab_12xyz.part.png").write_bytes(b"")   # as a killed save_figure leaves it
    (tmp_path / ".my_notes.txt").write_text("a user's hidden file")
    (tmp_path / "data.part").write_text("not ours")
    with output_lock(tmp_path, "run"):  # the dead holder's lock is free; its leftovers go
        pass
    names = sorted(str(q.relative_to(tmp_path)) for q in tmp_path.rglob("*"))
    assert names == [".layerscope.lock", ".my_notes.txt", "data.part", "sub", "sub/x.png"], names
