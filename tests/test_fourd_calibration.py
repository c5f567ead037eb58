"""4D-STEM on real detectors (issue 21): calibration, honest "not indexed", readers, peak lists, strain."""

import json
import shutil
import warnings
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from layerscope._errors import InputError
from layerscope.fourd import read_scan
from layerscope.fourd import calibrate as cb
from layerscope.simulate.fourd import simulate_calibration_scan, simulate_ring_pattern, simulate_strain_scan

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fourd"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared 4D-STEM data absent")


def test_ring_pattern_calibrates_pixel_size_and_ellipse():
    """Synthetic Au rings, 4 % ellipticity: pixel size and ellipticity within 0.5 % (we get ~0.05 %)."""
    img = simulate_ring_pattern(pixel_inv_angstrom=0.012, ellipticity=1.04, ellipse_angle_deg=25.0,
                                centre=(131.3, 124.6), seed=0)
    cal = cb.calibrate_pattern(img, cb.gold(), kv=300)
    assert abs(cal.pixel_inv_angstrom / 0.012 - 1) < 0.005
    assert abs(cal.ellipticity / 1.04 - 1) < 0.005
    assert abs((cal.ellipse_angle_deg - 25.0 + 90) % 180 - 90) < 1.0
    assert np.hypot(cal.center_px[0] - 131.3, cal.center_px[1] - 124.6) < 0.5
    assert [1, 1, 1] in cal.ring_hkl and [2, 0, 0] in cal.ring_hkl
    # a circular pattern gives ellipticity 1 (within 0.5 %) and the same pixel size
    circ = cb.calibrate_pattern(simulate_ring_pattern(ellipticity=1.0, seed=1), cb.gold())
    assert abs(circ.ellipticity - 1) < 0.005 and abs(circ.pixel_inv_angstrom / 0.012 - 1) < 0.005


def test_scan_calibration_origin_rotation_pixel_ellipse():
    """Synthetic scan with descan, a 17° scan rotation, 3.5 % ellipticity: origin per position within 0.5 px,
    rotation within 0.2°, pixel size and ellipticity within 0.5 %."""
    data, truth = simulate_calibration_scan(scan_shape=(14, 14), seed=3)
    cal = cb.calibrate_scan(data, cb.gold(), kv=200)
    beam = truth["origin_px"] + truth["deflection_px"]          # where the direct beam really is
    assert np.abs(np.asarray(cal.origin_px) - beam).max() < 0.5
    assert abs((cal.scan_rotation_deg - truth["scan_rotation_deg"] + 180) % 360 - 180) < 0.2
    assert not cal.scan_flip and not cal.scan_rotation_ambiguous_180
    assert abs(cal.pixel_inv_angstrom / truth["pixel_inv_angstrom"] - 1) < 0.005
    assert abs(cal.ellipticity / truth["ellipticity"] - 1) < 0.005
    # the descan plane reproduces a plane through the true beam positions
    plane, _, _ = cb.fit_plane(beam)
    assert np.abs(cb.fit_plane(np.asarray(cal.origin_px))[0] - plane).max() < 0.5
    # a transposed scan (x and y of the detector swapped) is detected as flipped
    rot, flip, _, _ = cb.scan_rotation(beam[..., ::-1], truth["potential"])
    assert flip


def test_calibration_cli_json_and_assumed_calibration(tmp_path, capsys):
    from layerscope.cli import main
    from layerscope.cli import fourd as _cli

    np.save(tmp_path / "ring.npy", simulate_ring_pattern(seed=2))
    assert main(["fourd-calibrate", str(tmp_path / "ring.npy"), "--standard", "Au", "--kv", "300",
                 "--out", str(tmp_path / "cal")]) == 0
    d = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert abs(d["pixel_inv_angstrom"] / 0.012 - 1) < 0.005 and abs(d["ellipticity"] / 1.04 - 1) < 0.005
    assert {"ellipse_angle_deg", "center_px", "scan_rotation_deg"} <= set(d) and d["assumed"] is False
    cal = cb.Calibration.from_json(tmp_path / "cal" / "calibration.json")
    assert cal.ellipticity == pytest.approx(d["ellipticity"])
    # a single pattern without a standard: exit 2 with the reason
    assert main(["fourd-calibrate", str(tmp_path / "ring.npy"), "--out", str(tmp_path / "c2")]) == 2
    assert "--standard" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"center_px": [1, 2]}')
    with pytest.raises(InputError, match="bad.json"):
        cb.Calibration.from_json(tmp_path / "bad.json")
    # no calibration anywhere: stated loudly and recorded as assumed
    np.save(tmp_path / "scan.npy", np.ones((2, 2, 64, 64), np.float32))
    scan = read_scan(tmp_path / "scan.npy")
    args = Namespace(calibration=None, pixel_size=None, kv=200.0, convergence=1.5, scan=str(tmp_path / "scan.npy"))
    c = _cli._calibration_for(args, scan, (64, 64))
    assert c.assumed and "ASSUMED" in capsys.readouterr().err
    with pytest.warns(cb.AssumedCalibrationWarning):
        cb.assumed(0.02, (64, 64), why="test")
    args.pixel_size = 0.02
    c = _cli._calibration_for(args, scan, (64, 64))
    assert not c.assumed and c.pixel_inv_angstrom == 0.02


def test_calibrated_geometry_undoes_ellipse():
    """The matcher's polar resampling with the fitted ellipse turns Au rings into circles."""
    from layerscope.fourd.detector import DetectorGeometry
    from layerscope.fourd.index import _polar_matrix

    img = simulate_ring_pattern(seed=None)
    cal = cb.calibrate_pattern(img, cb.gold())
    r = np.arange(20, 90, 0.5)
    for ell, ang in ((1.0, 0.0), (cal.ellipticity, cal.ellipse_angle_deg)):
        geo = DetectorGeometry(img.shape, cal.pixel_inv_angstrom, cal.center_px, 2.0, ell, ang)
        pol = (_polar_matrix(geo, r, 90) @ img.ravel()).reshape(len(r), 90)
        sel = (r > 30) & (r < 38)  # the 111 ring
        peak_r = r[sel][np.argmax(pol[sel], axis=0)]
        spread = np.ptp(peak_r)
        if ell == 1.0:
            assert spread >= 1.0    # uncorrected: the ring wobbles by ~±2 %
        else:
            assert spread <= 0.5


@needs_data
def test_merlin_noise_frames_are_not_indexed():
    """Nine near-empty frames of a real Merlin quad detector (hot pixels, ~3 counts/pixel): correlation
    ~0.1 with Al templates, so all are "not indexed", never Al."""
    from layerscope.crystal import load_phases
    from layerscope.fourd import build_library, index_scan, prepare_matcher
    from layerscope.fourd.detector import paper_detector

    path = DATA / "merlin" / "Quad_9_Frame_CounterDepth_12_Rows_256.mib"
    al = DATA.parent / "gsas2-reference" / "cif" / "Al.cif"
    if not al.exists():
        pytest.skip("Al.cif absent")
    scan = read_scan(path)
    assert scan.data.shape == (3, 3, 512, 512)
    geo = paper_detector(pixels=512)
    m = prepare_matcher(build_library([load_phases([str(al)])[0][0]], geo, spacing_deg=8.0))
    maps = index_scan(scan.data, m)
    assert maps.phase_names[m.not_indexed_code] == "not indexed"
    assert np.all(maps.phase == m.not_indexed_code), maps.phase
    assert np.all(maps.correlation < 0.2) and np.all(np.isnan(maps.phase_reliability))


@needs_data
def test_real_detector_readers(tmp_path):
    mer = DATA / "merlin"
    a = read_scan(mer / "001_4x2_6bit.mib").data.compute()
    z = read_scan(mer / "Merlin_navigation4x2_ROI.zip").data.compute()
    assert a.shape == (2, 4, 256, 256) and np.array_equal(a, z)
    # truncated: half the file, its .hdr promising 8 frames
    raw = (mer / "001_4x2_6bit.mib").read_bytes()
    (tmp_path / "half.mib").write_bytes(raw[: len(raw) // 2])
    shutil.copy(mer / "001_4x2_6bit.hdr", tmp_path / "half.hdr")
    with pytest.raises(InputError, match=r"half\.mib.*8 frames.*holds 4"):
        read_scan(tmp_path / "half.mib")
    (tmp_path / "cut.mib").write_bytes(raw[: len(raw) // 2 + 100])
    with pytest.raises(InputError, match=r"cut\.mib.*truncated"):
        read_scan(tmp_path / "cut.mib")
    with pytest.raises(InputError, match="RAW"):
        read_scan(mer / "Quad_9_Frame_CounterDepth_1_Rows_256RAW.mib")
    # Arina: bitshuffle/LZ4 frames linked from the data file; scan shape from the STEM metadata
    ar = read_scan(DATA / "arina" / "test_00_master.h5")
    assert ar.data.shape == (4, 4, 192, 192) and int(ar.data.sum().compute()) == 0
    # .blo with 5×5 patterns reads; indexing refuses it with a message
    b = read_scan(DATA / "blockfile" / "test2.blo").data.compute()
    assert b.shape == (2, 3, 5, 5)
    from layerscope.cli import main
    assert main(["fourd", str(DATA / "blockfile" / "test2.blo"), "--phase", "lrm-pristine:S",
                 "--out", str(tmp_path / "o")]) == 2


def test_empad_raw_and_missing_filter_message(tmp_path):
    frames = np.random.default_rng(0).random((6, 130, 128), dtype=np.float32)
    frames.tofile(tmp_path / "scan_x3_y2.raw")
    s = read_scan(tmp_path / "scan_x3_y2.raw", scan_shape=(2, 3))
    assert s.data.shape == (2, 3, 128, 128)
    assert np.array_equal(s.data.compute()[1, 2], frames[5, :128])
    (tmp_path / "bad.raw").write_bytes(b"\0" * 1000)
    with pytest.raises(InputError, match="bad.raw.*EMPAD"):
        read_scan(tmp_path / "bad.raw")


def test_strain_field_recovered():
    """Synthetic lattice under a ~1 % strain field: εxx, εyy, εxy within 0.1 % strain RMS."""
    from layerscope.fourd.strain import strain_map

    data, truth = simulate_strain_scan(seed=1)
    sm = strain_map(data, reference=truth["reference"], probe_radius_px=3.0)
    for k in ("exx", "eyy", "exy"):
        err = getattr(sm, k) - truth[k]
        assert np.sqrt(np.mean(err ** 2)) < 1e-3, k
    assert np.sqrt(np.mean((sm.rotation_deg - truth["rotation_deg"]) ** 2)) < 0.06
    assert np.all(sm.n_indexed >= 10)
    # with a scan rotation the tensor is rotated: trace (dilatation) is invariant
    sr = strain_map(data, reference=truth["reference"], probe_radius_px=3.0, scan_rotation_deg=30.0)
    assert np.allclose(sr.exx + sr.eyy, sm.exx + sm.eyy, atol=1e-9) and sr.frame == "scan"


@needs_data
def test_bragg_peak_list_reads():
    from layerscope.fourd.peaks import is_bragg_peak_file, read_bragg_peaks

    path = DATA / "py4dstem-lco-lmo" / "braggdisks_cali.h5"
    assert is_bragg_peak_file(path) and not is_bragg_peak_file(DATA / "arina" / "test_00_master.h5")
    bp = read_bragg_peaks(path)
    assert bp.shape == (80, 58) and bp.calibrated
    n = bp.counts()
    assert n.max() <= 70 and (n == 0).sum() == 741   # 741 positions hold only the direct beam


@needs_data
@pytest.mark.slow
def test_lco_lmo_peak_list_phase_map(tmp_path, capsys):
    """py4DSTEM's LiCoO2 + LiMn2O4 Bragg-peak scan: two phases + "not indexed" (< 5 peaks) at 300 kV,
    k_max 1.7 1/Å. Measured: LCO 55.7 %, LiMn2O4 13.9 %, not indexed 30.3 % (2° library, full orientation
    space). py4DSTEM 0.14.18 (run by hand in a numpy<2 venv: it cannot run beside numpy 2), CrystalPhase.
    quantify_phase on its own orientation maps: with automatic (full fundamental zone) plans, 1° steps,
    LCO 57.6 %, LiMn2O4 10.8 %, no match 31.6 %; 76.5 % agreement where both index (our LCO: 85 % LCO
    there; our LiMn2O4: only 19 % LiMn2O4 there, 55 % LCO; our not indexed: 90 % no match). With its test's
    fibre-restricted plans it puts 67 % in LiMn2O4 and 2.5 % in LCO. The spot checks below side with the
    LCO-majority split."""
    from layerscope.cli import main

    d = DATA / "py4dstem-lco-lmo"
    assert main(["fourd", str(d / "braggdisks_cali.h5"), "--phase", str(d / "LCO.cif"), str(d / "LiMn2O4.cif"),
                 "--kv", "300", "--k-max", "1.7", "--spacing", "2", "--precession", "0",
                 "--out", str(tmp_path)]) == 0
    import csv
    rows = {r["phase"]: float(r["fraction"]) for r in csv.DictReader(open(tmp_path / "phase_fractions.csv"))}
    assert rows["LCO"] > 0.4 and rows["LiMn2O4"] > 0.05 and 0.2 < rows["not indexed"] < 0.4
    assert rows["vacuum"] == 0 and rows["aC"] == 0
    # independent evidence: spinel 220 (d = 2.915 Å, |q| = 0.343 1/Å) has no LCO counterpart (nearest LCO
    # reflections 0.21 and 0.40 1/Å); it shows up far more often where the map says LiMn2O4
    import h5py

    from layerscope.fourd.peaks import read_bragg_peaks
    with h5py.File(tmp_path / "maps.h5") as f:
        phase = f["phase"][()]
        names = f["phase"].attrs["names"].split(",")
    bp = read_bragg_peaks(d / "braggdisks_cali.h5")
    s220 = np.vectorize(lambda p: bool(np.any(np.abs(np.hypot(p[:, 0], p[:, 1]) - 0.343) < 0.008)))(bp.peaks)
    lco, lmo = phase == names.index("LCO"), phase == names.index("LiMn2O4")
    assert s220[lmo].mean() > 2 * s220[lco].mean()
    # the commonest pattern, two 0.404 1/Å spots summing to a 0.686 one at ~63°, is LCO (101)/(01-1)/(110) or
    # spinel [112] (3-1-1)/(1-31)/(4-40); spinel [112] also has (11-1) at 0.21 1/Å perpendicular to (4-40),
    # its strongest reflection (|F|² 1.7x that of 311). Where we say LiMn2O4 that spot is there far more often.
    sig = np.zeros(phase.shape, int)
    for idx in np.ndindex(phase.shape):
        q = bp.peaks[idx][:, :2]
        n = np.hypot(*q.T)
        big, mid = q[np.abs(n - 0.686) < 0.015], q[np.abs(n - 0.404) < 0.015]
        if len(big) and any(np.linalg.norm(a + b - big[0]) < 0.03 for a in mid for b in mid):
            u = big[0] / np.linalg.norm(big[0])
            small = q[np.abs(n - 0.21) < 0.012]
            sig[idx] = 2 if any(abs(s @ [-u[1], u[0]]) / np.linalg.norm(s) > 0.95 for s in small) else 1
    f111 = [np.mean(sig[m & (sig > 0)] == 2) for m in (lco, lmo)]
    assert (sig[lco] > 0).sum() > 100 and (sig[lmo] > 0).sum() > 50
    assert f111[1] > 2.5 * f111[0], f111     # measured: 68/651 = 10 % (LCO) vs 68/165 = 41 % (LiMn2O4)


def test_recentre_moves_every_beam_to_the_centre():
    """Descan correction: patterns shifted by their measured origins have the beam at the calibrated centre."""
    import dask.array as da

    data, truth = simulate_calibration_scan(scan_shape=(6, 6), shape=(96, 96), centre=(47.3, 48.6), seed=4)
    origins = cb.beam_origins(data)
    shifted = cb.recentre(da.from_array(data, chunks=(4, 4, -1, -1)), origins, (48.0, 48.0)).compute()
    after = cb.beam_origins(shifted)
    assert np.abs(after - 48.0).max() < 0.1
    with pytest.raises(InputError, match="per-position origins"):
        cb.recentre(data, origins[:3], (48.0, 48.0))


@needs_data
def test_disks_and_strain_on_a_real_spot_pattern():
    """NanoMegas .blo of one crystal (6 positions): the same lattice is found everywhere and the strain between
    positions stays within ±0.3 % (its real precision; the synthetic test bounds the accuracy)."""
    from layerscope.fourd.strain import strain_map

    d = read_scan(DATA / "blockfile" / "test1.blo").data.compute().astype(float)
    ref = np.zeros(d.shape[:2], bool)
    ref[0] = True
    sm = strain_map(d, reference=ref, probe_radius_px=2.0, origins=cb.beam_origins(d), threshold=0.15)
    assert np.all(sm.n_indexed >= 8)
    g = np.sort(np.hypot(*sm.reference_lattice))
    # |g1|, |g2| (px): the first-order spots by eye are (4, -19), (31.7, 5.9); the least-squares lattice through
    # all disks out to |q| ~ 60 px is ~4 % larger (the outer spots of this pattern sit further out: a radial
    # distortion of the projector, or a slightly tilted zone), so the check is loose
    assert np.allclose(g, [19.4, 31.2], rtol=0.06)
    for e in (sm.exx, sm.eyy, sm.exy):
        assert np.all(np.abs(e) < 3e-3)


def test_strain_cli(tmp_path, capsys):
    import h5py

    from layerscope.cli import main

    data, truth = simulate_strain_scan(seed=2, scan_shape=(6, 6))
    np.save(tmp_path / "s.npy", data)
    assert main(["fourd-strain", str(tmp_path / "s.npy"), "--reference", "0", "2", "0", "6", "--probe-radius", "3",
                 "--out", str(tmp_path / "o")]) == 0
    with h5py.File(tmp_path / "o" / "strain.h5") as f:
        assert np.sqrt(np.mean((f["exx"][()] - truth["exx"]) ** 2)) < 1e-3 and f.attrs["frame"] == "detector"
    assert (tmp_path / "o" / "strain.png").stat().st_size > 1000
    assert main(["fourd-strain", str(tmp_path / "s.npy"), "--reference", "0", "9", "0", "6", "--probe-radius", "3",
                 "--out", str(tmp_path / "o")]) == 2


@pytest.mark.slow
def test_missing_bitshuffle_filter_is_named(tmp_path):
    """Without hdf5plugin a bitshuffle/LZ4 Dectris file fails with a message naming the filter and the fix
    (slow: a fresh interpreter imports layerscope, ~15 s on a loaded 2-core machine)."""
    import subprocess
    import sys

    import h5py
    hdf5plugin = pytest.importorskip("hdf5plugin")
    with h5py.File(tmp_path / "x_master.h5", "w") as f:
        f.create_dataset("entry/data/data_000001", data=np.ones((4, 16, 16), np.uint32),
                         chunks=(1, 16, 16), **hdf5plugin.Bitshuffle(cname="lz4"))
    code = ("import sys; sys.modules['hdf5plugin'] = None\n"
            "from layerscope.fourd import read_scan\n"
            f"try:\n    read_scan({str(tmp_path / 'x_master.h5')!r})\n"
            "except ValueError as e:\n    print(e)\n")
    src = Path(__file__).resolve().parents[1] / "src"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(src)})
    assert "32008" in out.stdout and "hdf5plugin" in out.stdout and "x_master.h5" in out.stdout, out.stdout + out.stderr
    assert read_scan(tmp_path / "x_master.h5").data.shape == (2, 2, 16, 16)
