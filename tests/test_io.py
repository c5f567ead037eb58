"""layerscope._io: atomic writes and the package's CSV writer."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from layerscope._io import atomic_path, write_csv, write_text


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_csv_from_dicts_and_sequences_round_trip(tmp_path):
    rows = [{"a": 1.234567891234, "b": np.float32(2.5), "c": "x"}, {"a": np.int64(3), "c": True}]
    p = write_csv(tmp_path / "t.csv", rows)
    assert _read(p) == [["a", "b", "c"], ["1.2345679", "2.5", "x"], ["3", "", "True"]]
    write_csv(p, [(0.1 + 0.2, 7)], ["v", "n"], fmt=None)
    assert _read(p) == [["v", "n"], [repr(0.1 + 0.2), "7"]]
    assert float(_read(p)[1][0]) == 0.1 + 0.2  # fmt=None is lossless
    write_csv(p, [], ["only"])
    assert _read(p) == [["only"]]


def test_csv_refuses_what_it_would_drop(tmp_path):
    with pytest.raises(ValueError, match=r"t\.csv: row 1 has values for \['z'\]"):
        write_csv(tmp_path / "t.csv", [{"a": 1}, {"a": 2, "z": 3}])
    with pytest.raises(ValueError, match=r"t\.csv: row 0 has 1 values for 2 columns"):
        write_csv(tmp_path / "t.csv", [(1,)], ["a", "b"])
    with pytest.raises(ValueError, match="need the column names"):
        write_csv(tmp_path / "t.csv", [(1, 2)])
    assert not (tmp_path / "t.csv").exists()
    p = write_csv(tmp_path / "t.csv", [{"a": 1, "z": 3}], ["a"], extra="ignore")
    assert _read(p) == [["a"], ["1"]]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = write_text(tmp_path / "f.txt", "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert p.read_text() == "old\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.txt"]
