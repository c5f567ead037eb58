"""4D-STEM: simulated scans with truth -> phase, orientation and twin maps; readers; virtual detectors."""

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage

from layerscope.diffraction.electron import paper_twin_laws
from layerscope.fourd import (
    annular_mask, build_library, centre_of_mass, disc_mask, index_scan, misorientation_deg, prepare_matcher,
    read_scan, virtual_image, write_scan,
)
from layerscope.fourd.maps import twin_map
from layerscope.simulate.fourd import simulate_fourd


def _interior(mask):
    """Positions whose 3×3 neighbourhood has the same truth label (away from boundaries)."""
    out = np.ones(mask.shape, bool)
    for v in np.unique(mask):
        m = mask == v
        out &= ~m | ndimage.binary_erosion(m, np.ones((3, 3)), border_value=1)
    return out


@pytest.fixture(scope="module")
def pristine():
    sim = simulate_fourd(scan_shape=(24, 24), core="O3p", seed=1)
    lib = build_library(sim.phases, sim.geometry, spacing_deg=5.0)
    return sim, prepare_matcher(lib)


def test_phase_and_orientation_maps_recover_truth(pristine):
    """Done-means: phase right at >= 98 % away from boundaries, orientation within 1° at >= 95 %."""
    sim, matcher = pristine
    maps = index_scan(sim.data, matcher, chunk_positions=12)
    inner = _interior(sim.phase)
    assert np.mean(maps.phase[inner] == sim.phase[inner]) >= 0.98
    assert {"O3p", "S", "aC", "vacuum"} <= {maps.phase_names[c] for c in np.unique(maps.phase)}
    for code in (2, 3):
        sel = (sim.phase == code) & (maps.phase == code)
        assert sel.sum() > 20
        mis = misorientation_deg(maps.rotation[sel], sim.rotation[sel], matcher.library.symmetry[code - 2])
        assert np.mean(mis < 1.0) >= 0.95
    # A, B and C domains of Fig. 1e are told apart (they differ only by superlattice reflections)
    core = (sim.phase == 2) & (maps.phase == 2)
    doms = sim.domain[core]
    assert len(np.unique(doms)) >= 2
    # reliabilities are percentages; crystalline phases are reliably told apart from each other
    assert np.all((maps.phase_reliability >= 0) & (maps.phase_reliability <= 100))
    assert np.median(maps.phase_reliability[inner & (sim.phase >= 2)]) > 5
    e = maps.euler_deg
    q = maps.quaternion
    assert e.shape == (24, 24, 3) and q.shape == (24, 24, 4)
    assert np.allclose(np.linalg.norm(q, axis=-1), 1)


def test_twin_domains_recovered():
    """Fig. 3c: O3 along <100> with (001) twin lamellae -> twin map >= 95 % per pixel."""
    sim = simulate_fourd(scan_shape=(24, 24), core="O3", twins=True, seed=2)
    lib = build_library(sim.phases, sim.geometry, spacing_deg=5.0)
    m = prepare_matcher(lib)
    maps = index_scan(sim.data, m)
    law = paper_twin_laws(sim.phases[0])["(001)"]
    tw = twin_map(maps, 2, law, lib.symmetry[0])
    core = sim.twin >= 0
    assert 0.2 < np.mean(sim.twin[core] == 1) < 0.8
    # the parent may be either variant: the labelling is defined up to exchange
    acc = max(np.mean(tw[core] == sim.twin[core]), np.mean(tw[core] == 1 - sim.twin[core]))
    assert acc >= 0.95


def test_larger_than_memory_scan_is_processed_chunk_by_chunk(tmp_path, pristine):
    """A memory-mapped .npy scan (64 MB) is indexed with peak allocations bounded by the chunk size
    (4×4 positions per chunk: a working set of a few MB, far below the scan)."""
    sim, matcher = pristine
    path = tmp_path / "scan.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(32, 32, 128, 128))
    for i in range(32):
        big[i] = sim.data[i % 24, np.arange(32) % 24]
    big.flush()
    del big
    file_mb = path.stat().st_size / 2**20
    scan = read_scan(path, chunk_positions=4)
    tracemalloc.start()
    vbf = virtual_image(scan.data, disc_mask((128, 128), (64, 64), 4)).compute(num_workers=1)
    _, peak_vbf = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    maps = index_scan(scan.data, matcher, num_workers=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert file_mb > 60
    # dask's own bookkeeping is ~12 MB whatever the scan size; the patterns add one chunk at a time
    assert peak_vbf / 2**20 < file_mb / 4, f"virtual BF peak {peak_vbf / 2**20:.1f} MB for {file_mb:.0f} MB"
    assert peak / 2**20 < file_mb / 2, f"indexing peak {peak / 2**20:.1f} MB for a {file_mb:.0f} MB scan"
    assert maps.phase.shape == (32, 32) and vbf.shape == (32, 32)
    assert np.mean(maps.phase[:24, :24][_interior(sim.phase)] == sim.phase[_interior(sim.phase)]) >= 0.98


def test_virtual_detectors():
    pats = np.zeros((2, 3, 32, 32), np.float32)
    yy, xx = np.indices((32, 32))
    pats[..., :, :] = ((yy - 16) ** 2 + (xx - 16) ** 2 <= 4).astype(np.float32)
    pats[1, 2] = ((yy - 18) ** 2 + (xx - 13) ** 2 <= 4).astype(np.float32)
    pats[0, 1, 5, 5] = 7.0
    bf = virtual_image(pats, disc_mask((32, 32), (16, 16), 2.5))
    assert bf[0, 0] == 13  # 13 pixels of a radius-2 disc
    adf = virtual_image(pats, annular_mask((32, 32), (16, 16), 8, 20))
    assert adf[0, 1] == 7 and adf[0, 0] == 0
    com = centre_of_mass(pats, centre=(16, 16))
    assert np.allclose(com[1, 2], (2.0, -3.0)) and np.allclose(com[0, 0], 0)
    import dask.array as da
    assert np.allclose(virtual_image(da.from_array(pats), disc_mask((32, 32), (16, 16), 2.5)).compute(), bf)
    with pytest.raises(ValueError, match="mask shape"):
        virtual_image(pats, np.ones((8, 8)))


def test_readers_roundtrip_and_errors(tmp_path):
    data = np.random.default_rng(0).poisson(5, (4, 5, 16, 16)).astype(np.uint16)
    np.save(tmp_path / "a.npy", data)
    assert np.array_equal(read_scan(tmp_path / "a.npy").data.compute(), data)
    write_scan(tmp_path / "a.h5", data, pixel_inv_angstrom=0.04, step_nm=2.0)
    s = read_scan(tmp_path / "a.h5")
    assert np.array_equal(s.data.compute(), data) and s.pixel_inv_angstrom == 0.04 and s.step_nm == 2.0
    # Dectris-style 3-D frame stack with the scan shape given
    import h5py
    with h5py.File(tmp_path / "master.h5", "w") as f:
        f.create_dataset("entry/data/data_000001", data=data.reshape(20, 16, 16))
    assert np.array_equal(read_scan(tmp_path / "master.h5", scan_shape=(4, 5)).data.compute(), data)
    with pytest.raises(ValueError, match="square scan"):
        read_scan(tmp_path / "master.h5")
    # hspy through rosettasciio
    hs = pytest.importorskip("hyperspy.api")
    hs.signals.Signal2D(data).save(tmp_path / "a.hspy")
    assert np.array_equal(read_scan(tmp_path / "a.hspy").data.compute(), data)
    # bad input
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        read_scan(tmp_path / "missing.npy")
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:100])
    with pytest.raises(ValueError, match="trunc.npy"):
        read_scan(tmp_path / "trunc.npy")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.h5"):
        read_scan(tmp_path / "empty.h5")
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="4-D"):
        read_scan(tmp_path / "flat.npy")
    with pytest.raises(ValueError, match="unknown 4D-STEM format"):
        read_scan(tmp_path / "a.npy").__class__ and read_scan(_touch(tmp_path / "x.tif"))


def _touch(p):
    p.write_bytes(b"II*\x00")
    return p


def test_index_rejects_nan(pristine):
    from layerscope.fourd import index_patterns
    _, matcher = pristine
    bad = np.full((1, 128, 128), np.nan, np.float32)
    with pytest.raises(ValueError, match="NaN"):
        index_patterns(bad, matcher)


def test_cli_zone_axis_and_fourd(tmp_path, capsys):
    from layerscope.cli import main

    assert main(["zone-axis", "lrm-pristine:S", "1", "1", "2", "--out", str(tmp_path / "s112.png")]) == 0
    assert (tmp_path / "s112.png").stat().st_size > 1000
    assert main(["zone-axis", "lrm-100-cycles:O3", "1", "0", "0", "--twin", "{012}",
                 "--out", str(tmp_path / "tw.png")]) == 0
    assert main(["zone-axis", "lrm-pristine:S", "0", "0", "0", "--out", str(tmp_path / "x.png")]) == 2
    assert main(["simulate", "fourd", "--out", str(tmp_path / "sim"), "--scan", "12", "12"]) == 0
    assert main(["fourd", str(tmp_path / "sim" / "scan.h5"), "--phase", "lrm-pristine:O3p", "lrm-pristine:S",
                 "--spacing", "8", "--out", str(tmp_path / "out")]) == 0
    import h5py
    with h5py.File(tmp_path / "out" / "maps.h5") as f, h5py.File(tmp_path / "sim" / "scan.h5") as t:
        ph = f["phase"][()]
        assert np.mean(ph == t["truth_phase"][()]) > 0.9
        assert f["euler_bunge_deg"].shape == (12, 12, 3) and f["quaternion_xyzw"].shape == (12, 12, 4)
    for name in ("vbf.png", "phase_map.png", "orientation_map.png"):
        assert (tmp_path / "out" / name).stat().st_size > 100
    # the calibration used is recorded; a calibration.json (with per-position origins) is used as given
    import json
    used = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert used["assumed"] is False and used["source"] == "the scan file"
    used.update(origin_px=np.full((12, 12, 2), 64.0).tolist(), source="test")
    (tmp_path / "cal.json").write_text(json.dumps(used))
    assert main(["fourd", str(tmp_path / "sim" / "scan.h5"), "--phase", "lrm-pristine:O3p", "lrm-pristine:S",
                 "--spacing", "8", "--calibration", str(tmp_path / "cal.json"), "--out", str(tmp_path / "out2")]) == 0
    with h5py.File(tmp_path / "out2" / "maps.h5") as f, h5py.File(tmp_path / "sim" / "scan.h5") as t:
        assert np.mean(f["phase"][()] == t["truth_phase"][()]) > 0.9
        assert f.attrs["calibration_assumed"] == 0 and "cal.json" in f.attrs["calibration_source"]
    assert main(["fourd", str(tmp_path / "nope.h5"), "--phase", "lrm-pristine:S", "--out", str(tmp_path)]) == 2
    assert "nope.h5" in capsys.readouterr().err


@pytest.mark.slow
def test_256x256_scan_on_disk_with_bounded_memory(tmp_path):
    """Done-means: a 256×256-position scan of 128×128 uint16 patterns (2.1 GB on disk) gives its
    virtual images with traced memory below 64 MB."""
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(256, 256, 128, 128))
    big[:, :, 64, 64] = np.arange(256, dtype=np.uint16)[:, None]
    big.flush()
    del big
    scan = read_scan(path, chunk_positions=16)
    tracemalloc.start()
    vbf = virtual_image(scan.data, disc_mask((128, 128), (64, 64), 3)).compute(num_workers=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.array_equal(vbf[:, 7], np.arange(256))
    assert peak < 64 * 2**20


def test_kernels_run_on_jax_default_device(pristine):
    """The matching kernels' arrays live on JAX's default device (a GPU when JAX has one), and
    indexing pinned to the CPU gives the same fields as on the default device."""
    import jax

    from layerscope.fourd import index_patterns

    sim, matcher = pristine
    assert matcher._device["desc"].devices() == {jax.devices()[0]}
    pats = sim.data[10:14].reshape(-1, 128, 128)
    on_default = index_patterns(pats, matcher)
    with jax.default_device(jax.devices("cpu")[0]):
        cpu_matcher = prepare_matcher(matcher.library)
        on_cpu = index_patterns(pats, cpu_matcher)
    assert np.array_equal(on_default[:, 0], on_cpu[:, 0]) and np.array_equal(on_default[:, 1], on_cpu[:, 1])
    assert np.allclose(on_default[:, 2:], on_cpu[:, 2:], atol=1e-3)
