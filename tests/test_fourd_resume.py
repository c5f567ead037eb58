"""`index_scan`'s block checkpoint (issue 15: a killed `layerscope fourd` resumes with the blocks it
had finished): blocks kept are not indexed again, a lost or damaged block is, the maps equal an
uninterrupted run's, and another matcher or scan layout starts over."""

from __future__ import annotations

import numpy as np

from layerscope.fourd import build_library, index_scan, maps as maps_mod, prepare_matcher
from layerscope.simulate.fourd import simulate_fourd


def test_block_checkpoint_resumes_and_is_keyed(tmp_path, monkeypatch):
    sim = simulate_fourd(scan_shape=(8, 8), core="O3p", seed=1)
    matcher = prepare_matcher(build_library(sim.phases, sim.geometry, spacing_deg=6.0))
    ref = index_scan(sim.data, matcher, chunk_positions=4, scheduler="synchronous")
    calls = []
    real = maps_mod.index_patterns

    def counting(patterns, m):
        calls.append(len(patterns))
        return real(patterns, m)

    monkeypatch.setattr(maps_mod, "index_patterns", counting)
    ck = tmp_path / "index_checkpoint"
    key = {"scan": "sim seed 1"}
    first = index_scan(sim.data, matcher, chunk_positions=4, scheduler="synchronous", checkpoint_dir=ck,
                       checkpoint_key=key)
    assert calls == [16] * 4 and len(list(ck.glob("block_*.npy"))) == 4
    np.testing.assert_array_equal(first.fields, ref.fields)
    # "killed" after three blocks: one block lost, and a damaged one (cannot be: writes are atomic, but
    # a block file that does not load is indexed again rather than trusted)
    (ck / "block_1_1.npy").unlink()
    (ck / "block_0_1.npy").write_bytes(b"\x93NUMPY garbage")
    calls.clear()
    again = index_scan(sim.data, matcher, chunk_positions=4, scheduler="synchronous", checkpoint_dir=ck,
                       checkpoint_key=key)
    assert calls == [16, 16]
    np.testing.assert_array_equal(again.fields, ref.fields)
    # all kept: nothing indexed
    calls.clear()
    index_scan(sim.data, matcher, chunk_positions=4, scheduler="synchronous", checkpoint_dir=ck, checkpoint_key=key)
    assert calls == []
    # another scan (key), another block layout: the old blocks are not used
    for kw in ({"checkpoint_key": {"scan": "another"}, "chunk_positions": 4},
               {"checkpoint_key": key, "chunk_positions": 8}):
        calls.clear()
        index_scan(sim.data, matcher, scheduler="synchronous", checkpoint_dir=ck, **kw)
        assert sum(calls) == 64
