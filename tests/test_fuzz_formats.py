"""Fuzzing the readers that ``test_fuzz.py`` / ``test_fuzz_more.py`` / ``test_fuzz_images.py`` did not
cover (issue 15): GSAS-I ``.prm`` and GSAS-II CW ``.instprm`` instrument files, CW 2θ columns (``.xy``,
``.csv``), PANalytical ``.xrdml``, a HyperSpy ``.hspy`` spectrum, an NCEM ``.emd`` image, ``.npy``
images and scans.

Same contract (the harness of ``test_fuzz.py``): each mutant reads or raises
:class:`layerscope.InputError` within 10 s, allocating no more than the file's size allows.
Seeds are real files from ``shared/data`` where one exists, else small generated valid files.
Default ``CI_MUTANTS`` (200) mutants per format, 2 000 with ``-m fuzz``. Counts: ``tests/FUZZING.md``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tests.test_fuzz import SHARED, _n_mutants, fuzz_format

PBSO4 = SHARED / "gsas2-pbso4"


def _cw_instprm(tmp: Path) -> bytes:
    """GSAS-II CW .instprm written by layerscope from the real INST_XRY.PRM (Cu Kα1/Kα2)."""
    from layerscope.diffraction.cw_instrument import read_gsas_prm, write_cw_instprm

    p = tmp / "seed_cw.instprm"
    write_cw_instprm(read_gsas_prm(PBSO4 / "INST_XRY.PRM"), p)
    return p.read_bytes()


def _tth(n=400):
    x = np.linspace(10.0, 120.0, n)
    y = 100 + 500 * np.exp(-((x - 40) / 0.1) ** 2) + 300 * np.exp(-((x - 65) / 0.12) ** 2)
    return x, y


def _xy(tmp: Path) -> bytes:
    x, y = _tth()
    return ("# 2theta counts\n" + "\n".join(f"{a:.4f} {b:.3f}" for a, b in zip(x, y)) + "\n").encode()


def _csv(tmp: Path) -> bytes:
    x, y = _tth()
    return ("2theta,counts,sigma\n" + "\n".join(f"{a:.4f},{b:.3f},{np.sqrt(b):.3f}" for a, b in zip(x, y))
            + "\n").encode()


def _xrdml(tmp: Path) -> bytes:
    """A small PANalytical xrdml (schema 1.5 layout: usedWavelength, scan/dataPoints, counts)."""
    x, y = _tth(300)
    counts = " ".join(str(int(v)) for v in y)
    return f'''<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.5" status="Completed">
  <xrdMeasurement measurementType="Scan" status="Completed">
    <usedWavelength intended="K-Alpha 1">
      <kAlpha1 unit="Angstrom">1.5405980</kAlpha1>
      <kAlpha2 unit="Angstrom">1.5444260</kAlpha2>
      <kBeta unit="Angstrom">1.3922500</kBeta>
      <ratioKAlpha2KAlpha1>0.5000</ratioKAlpha2KAlpha1>
    </usedWavelength>
    <incidentBeamPath><xRayTube><anodeMaterial>Cu</anodeMaterial></xRayTube></incidentBeamPath>
    <scan appendNumber="0" mode="Continuous" scanAxis="Gonio" status="Completed">
      <dataPoints>
        <positions axis="2Theta" unit="deg">
          <startPosition>{x[0]:.4f}</startPosition>
          <endPosition>{x[-1]:.4f}</endPosition>
        </positions>
        <positions axis="Omega" unit="deg">
          <startPosition>5.0</startPosition>
          <endPosition>60.0</endPosition>
        </positions>
        <commonCountingTime unit="seconds">1.00</commonCountingTime>
        <counts unit="counts">{counts}</counts>
      </dataPoints>
    </scan>
  </xrdMeasurement>
</xrdMeasurements>
'''.encode()


def _hspy_spectrum(tmp: Path) -> bytes:
    """A 1-D EELS spectrum written by rosettasciio's hspy writer (calibrated eV axis)."""
    from rsciio.hspy import file_writer

    e = np.arange(500.0, 700.0, 0.5)
    y = 1e5 * (e / 500.0) ** -3 + 2e3 * (e > 530) + 3e3 * np.exp(-((e - 531) / 1.5) ** 2)
    sig = {"data": y.astype(np.float32),
           "axes": [{"name": "Energy loss", "units": "eV", "size": e.size, "scale": 0.5, "offset": 500.0,
                     "navigate": False}],
           "metadata": {"Signal": {"signal_type": "EELS"}, "General": {"title": "fuzz seed"}},
           "original_metadata": {}, "attributes": {"_lazy": False}, "tmp_parameters": {},
           "learning_results": {}, "models": {}, "package_info": {"name": "layerscope fuzz seed", "version": "0"}}
    p = tmp / "seed_spec.hspy"
    file_writer(str(p), sig)
    return p.read_bytes()


def _emd_image(tmp: Path) -> bytes:
    """A 64×64 float32 image with a 0.02 nm pixel, written by rosettasciio's EMD (NCEM) writer."""
    from rsciio.emd import file_writer

    ax = {"size": 64, "scale": 0.02, "offset": 0.0, "units": "nm", "navigate": False}
    sig = {"data": _IMG, "axes": [dict(ax, name="y"), dict(ax, name="x")],
           "metadata": {"General": {"title": "fuzz seed"}, "Signal": {"signal_type": ""}},
           "original_metadata": {}, "attributes": {"_lazy": False}, "tmp_parameters": {},
           "learning_results": {}, "models": {}, "package_info": {"name": "layerscope fuzz seed", "version": "0"}}
    p = tmp / "seed_img.emd"
    file_writer(str(p), sig)
    return p.read_bytes()


def _dm4(name: str):
    """A real DM3 file of shared/data re-encoded as DM4 (``tests/dm4_ser_seeds.py``)."""
    def make(tmp: Path) -> bytes:
        from tests.dm4_ser_seeds import dm3_to_dm4

        return dm3_to_dm4((SHARED / "eels" / name).read_bytes())
    return make


def _ser(tmp: Path) -> bytes:
    """A TIA .ser of one 64×64 float32 image, 0.02 nm pixel (``tests/dm4_ser_seeds.py``)."""
    from tests.dm4_ser_seeds import ser_image

    return ser_image(_IMG, 2e-11)


def _npy(arr):
    def make(tmp: Path) -> bytes:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return buf.getvalue()
    return make


_rng = np.random.default_rng(3)
_IMG = (100 + 50 * np.cos(np.arange(64)[None, :] / 1.3) * np.cos(np.arange(64)[:, None] / 1.3)
        + _rng.normal(0, 3, (64, 64))).astype(np.float32)
_SCAN = _rng.poisson(3.0, (4, 4, 32, 32)).astype(np.uint16)


def _image(path):
    from layerscope.stem.io import read_image

    return read_image(path).data


def _scan(path):
    """read_scan and compute every pattern (a damaged data block must fail as an InputError too)."""
    from layerscope.fourd.io import read_scan

    return np.asarray(read_scan(path).data.compute(scheduler="synchronous"))


def _readers():
    from layerscope.diffraction.cw_instrument import read_cw_instprm, read_cw_instrument, read_gsas_prm
    from layerscope.diffraction.cw_readers import read_cw_columns, read_cw_powder, read_xrdml
    from layerscope.spectra.io import read_spectrum

    return {
        # format: (suffix, seed path or a callable making the seed bytes, reader)
        "GSAS-I .prm (X-ray, INST_XRY.PRM)": (".prm", PBSO4 / "INST_XRY.PRM", read_gsas_prm),
        "GSAS-I .prm (neutron, inst_d1a.prm)": (".prm", PBSO4 / "inst_d1a.prm", read_cw_instrument),
        "GSAS-II .instprm (CW)": (".instprm", _cw_instprm, read_cw_instprm),
        "2θ columns .xy (CW)": (".xy", _xy, read_cw_columns),
        "powder .csv (CW, 2θ,y,σ)": (".csv", _csv, read_cw_powder),
        "PANalytical .xrdml": (".xrdml", _xrdml, read_xrdml),
        "HyperSpy spectrum (.hspy)": (".hspy", _hspy_spectrum, read_spectrum),
        "NumPy image (.npy)": (".npy", _npy(_IMG), _image),
        "EMD image (.emd, NCEM)": (".emd", _emd_image, _image),
        "NumPy 4D-STEM scan (.npy)": (".npy", _npy(_SCAN), _scan),
        "DM4 image (.dm4, TM_ADF_Image.dm3 re-encoded)": (".dm4", _dm4("TM_ADF_Image.dm3"), _image),
        "DM4 spectrum image (.dm4, ZLP_EELS_Spectrum_Image.dm3 re-encoded)":
            (".dm4", _dm4("ZLP_EELS_Spectrum_Image.dm3"), read_spectrum),
        "TIA image (.ser)": (".ser", _ser, _image),
    }


def _seed(seed, tmp_path) -> bytes:
    if isinstance(seed, Path):
        if not seed.is_file():
            pytest.skip(f"{seed} is absent")
        return seed.read_bytes()
    if not PBSO4.is_dir() and seed is _cw_instprm:
        pytest.skip(f"{PBSO4} is absent")
    if getattr(seed, "__name__", "") == "make" and not (SHARED / "eels").is_dir():
        pytest.skip(f"{SHARED / 'eels'} is absent")
    return seed(tmp_path)


@pytest.mark.parametrize("fmt", list(_readers()))
def test_reader_survives_mutants(fmt, tmp_path, request):
    suffix, seed, reader = _readers()[fmt]
    failures = fuzz_format(fmt, reader, _seed(seed, tmp_path), suffix, _n_mutants(request), tmp_path)
    assert not failures, "\n".join(failures[:15])


@pytest.mark.fuzz
@pytest.mark.parametrize("fmt", list(_readers()))
def test_reader_survives_many_mutants(fmt, tmp_path, request):
    """The same with 2 000 mutants per format (``-m fuzz``)."""
    suffix, seed, reader = _readers()[fmt]
    failures = fuzz_format(fmt, reader, _seed(seed, tmp_path), suffix, _n_mutants(request), tmp_path)
    assert not failures, "\n".join(failures[:15])


#: byte-flip mutants that crash libhdf5 itself (a segmentation fault in h5py's group iteration / attribute
#: read; h5py 3.16, HDF5 2.0): .hspy spectrum seed 222, .emd image seed 586. layerscope walks an HDF5 file
#: in a child process first (``_h5guard.check_hdf5``), so these must end in an InputError, not a dead process.
_CRASH_SEEDS = {"HyperSpy spectrum (.hspy)": 222, "EMD image (.emd, NCEM)": 586}

_RUN_CRASHES = """
import sys
from layerscope import InputError
from layerscope.spectra.io import read_spectrum
from layerscope.stem.io import read_image
for path in sys.argv[1:]:
    try:
        (read_spectrum if path.endswith(".hspy") else read_image)(path)
        print("read", path)
    except InputError as exc:
        print("InputError", exc)
"""


def test_libhdf5_crash_mutants_are_input_errors(tmp_path):
    """The two mutants that crash libhdf5 give an InputError naming the crash, in a process that lives on
    (run in a subprocess: were the guard broken, the crash would kill it, not pytest)."""
    import os
    import subprocess
    import sys

    from tests.fuzzing import mutate

    paths = []
    for fmt, seed in _CRASH_SEEDS.items():
        suffix, make, _ = _readers()[fmt]
        p = tmp_path / f"mutant_{seed}{suffix}"
        p.write_bytes(mutate(make(tmp_path), seed)[1])
        paths.append(str(p))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    guarded = subprocess.run([sys.executable, "-c", _RUN_CRASHES, *paths], capture_output=True, text=True,
                             env=env, timeout=120)
    assert guarded.returncode == 0, guarded.stderr[-2000:]
    lines = guarded.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("InputError") for line in lines), guarded.stdout
    # the child's walk of these files, run bare in a process of its own, dies (while this libhdf5 has the
    # bug): the InputError then must say so
    walk = ("import importlib.util as u, sys; s = u.spec_from_file_location('w', sys.argv[1]); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); m._walk(sys.argv[2], 2**26)")
    import layerscope._h5guard as guard

    for path, line in zip(paths, lines):
        bare = subprocess.run([sys.executable, "-c", walk, guard.__file__, path], capture_output=True, timeout=120)
        if bare.returncode < 0:
            assert "libhdf5 crashed" in line and path in line, line


def test_dm4_and_ser_seeds_read_back(tmp_path):
    """The hand-made seeds are valid files: rosettasciio reads each back to its source's numbers (the DM4s
    to their DM3's data, axes and tags, the .ser to the array and pixel it was written from)."""
    from rsciio.digitalmicrograph import file_reader as read_dm

    from layerscope.stem.io import read_image

    if not (SHARED / "eels").is_dir():
        pytest.skip(f"{SHARED / 'eels'} is absent")
    for name in ("TM_ADF_Image.dm3", "ZLP_EELS_Spectrum_Image.dm3"):
        p = tmp_path / name.replace(".dm3", ".dm4")
        p.write_bytes(_dm4(name)(tmp_path))
        a, b = read_dm(str(SHARED / "eels" / name))[0], read_dm(str(p))[0]
        assert np.array_equal(a["data"], b["data"]) and a["axes"] == b["axes"]
        ta, tb = a["original_metadata"], b["original_metadata"]
        ta["ImageList"]["TagGroup0"]["ImageData"]["Data"].pop("offset")  # where the pixels start: moved
        tb["ImageList"]["TagGroup0"]["ImageData"]["Data"].pop("offset")
        assert ta == tb
    p = tmp_path / "seed.ser"
    p.write_bytes(_ser(tmp_path))
    img = read_image(p)
    assert np.array_equal(img.data, _IMG) and img.pixel_size_nm == pytest.approx(0.02, rel=1e-12)
