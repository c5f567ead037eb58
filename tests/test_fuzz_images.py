"""Fuzzing the image and 4D-STEM readers (issue 15): `layerscope.stem.read_image` (.dm3, .tif,
.hspy, HyperSpy .hdf5) and `layerscope.fourd.read_scan` (.mib + .hdr, .blo, layerscope/NumPy-style
.h5, EMPAD .raw), with the contract of ``test_fuzz.py``: each mutant reads or raises
:class:`layerscope.InputError` within 10 s, allocating no more than the file's size allows.

A 4D-STEM scan is read lazily; the "reader" here also computes every pattern (what `layerscope
fourd` does), so a damaged data block must fail as an InputError too, not only a damaged header.
Seeds are real files from ``shared/data`` where a small one exists, else small generated ones.
Default ``CI_MUTANTS`` (200) mutants per format, 2 000 with ``-m fuzz``. Counts: ``tests/FUZZING.md``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.test_fuzz import SHARED, _n_mutants, fuzz_format

MERLIN = SHARED / "fourd" / "merlin"


def _tif(tmp: Path) -> bytes:
    import tifffile

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:64]
    img = (100 + 50 * np.cos(2 * np.pi * x / 8) * np.cos(2 * np.pi * y / 8) + rng.normal(0, 3, (64, 64)))
    p = tmp / "seed_img.tif"
    tifffile.imwrite(p, img.astype(np.float32), imagej=True, resolution=(1 / 0.02, 1 / 0.02),
                     metadata={"unit": "nm"})
    return p.read_bytes()


def _h5_scan(tmp: Path) -> bytes:
    from layerscope.fourd.io import write_scan

    rng = np.random.default_rng(1)
    p = tmp / "seed_scan.h5"
    write_scan(p, rng.poisson(3.0, (4, 4, 32, 32)).astype(np.uint16), pixel_inv_angstrom=0.03, step_nm=1.0)
    return p.read_bytes()


def _empad(tmp: Path) -> bytes:
    rng = np.random.default_rng(2)
    frames = rng.normal(10.0, 2.0, (4, 130, 128)).astype("<f4")   # a 2×2 scan of 128×(128+2) frames
    return frames.tobytes()


def _image(path):
    from layerscope.stem.io import read_image

    return read_image(path).data


def _scan(path):
    """read_scan and compute every pattern (a damaged data block must fail as an InputError too)."""
    from layerscope.fourd.io import read_scan

    return np.asarray(read_scan(path).data.compute(scheduler="synchronous"))


def _mib(path: Path):
    """The mutant as a .mib with the seed's .hdr beside it (the frame count check reads it)."""
    shutil.copyfile(MERLIN / "001_4x2_6bit.hdr", path.with_suffix(".hdr"))
    try:
        return _scan(path)
    finally:
        path.with_suffix(".hdr").unlink(missing_ok=True)


def _readers():
    return {
        # format: (suffix, seed path or a callable making the seed bytes, reader)
        "DM3 image (.dm3)": (".dm3", SHARED / "eels" / "TM_ADF_Image.dm3", _image),
        "TIFF image (ImageJ, float32)": (".tif", _tif, _image),
        "HyperSpy image (.hspy)": (".hspy", SHARED / "haadf" / "Cropped_PTO-SRO_Aligned.hspy", _image),
        "HyperSpy image (.hdf5, Atomap ADF)": (".hdf5", SHARED / "atomap-sto-adf" / "test_ADF_cropped.hdf5", _image),
        "Merlin .mib (+ .hdr)": (".mib", MERLIN / "001_4x2_6bit.mib", _mib),
        "NanoMegas .blo": (".blo", SHARED / "fourd" / "blockfile" / "test2.blo", _scan),
        "4D-STEM HDF5 (.h5, layerscope)": (".h5", _h5_scan, _scan),
        "EMPAD .raw": (".raw", _empad, _scan),
    }


def _seed(seed, tmp_path) -> bytes:
    if isinstance(seed, Path):
        if not seed.is_file():
            pytest.skip(f"{seed} is absent")
        return seed.read_bytes()
    return seed(tmp_path)


@pytest.mark.parametrize("fmt", list(_readers()))
def test_image_reader_survives_mutants(fmt, tmp_path, request):
    suffix, seed, reader = _readers()[fmt]
    failures = fuzz_format(fmt, reader, _seed(seed, tmp_path), suffix, _n_mutants(request), tmp_path)
    assert not failures, "\n".join(failures[:15])


@pytest.mark.fuzz
@pytest.mark.parametrize("fmt", list(_readers()))
def test_image_reader_survives_many_mutants(fmt, tmp_path, request):
    """The same with 2 000 mutants per format (``-m fuzz``)."""
    suffix, seed, reader = _readers()[fmt]
    failures = fuzz_format(fmt, reader, _seed(seed, tmp_path), suffix, _n_mutants(request), tmp_path)
    assert not failures, "\n".join(failures[:15])
