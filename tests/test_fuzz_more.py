"""Fuzzing the other readers (issue 15): FullProf .pcr, study TOML, operando series manifests and
series-protocol (model) TOML, cycler files of every kind, EELS/XAS spectra.

Same contract as ``test_fuzz.py`` (whose harness this reuses): each mutant either reads or raises
:class:`layerscope.InputError`, within 10 s, allocating no more than the file's size allows.
Default ``CI_MUTANTS`` (200) mutants per format, 2 000 with ``-m fuzz``. Counts: ``tests/FUZZING.md``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.test_fuzz import SHARED, _n_mutants, fuzz_format

CYC = SHARED / "cycler"
EELS = SHARED / "eels"


def _pcr(tmp: Path) -> bytes:
    from tests.test_refine_pcr import PCR

    return PCR.encode()


def _study(tmp: Path) -> bytes:
    return f'''[study]
title = "fuzz seed"
material = "LRM"

[[cycler]]
name = "half"
file = "{CYC / 'neware_test.ndax'}"
mass_mg = 10.0
role = "half-cell"

[[eels]]
name = "core"
spectrum = "{EELS / 'Mn_edge.msa'}"
mn_background_eV = [600.0, 632.0]

[[neutron]]
name = "nac"
pattern = "{SHARED / 'powgen-nac' / 'PG3_22048.gsa'}"
instprm = "{SHARED / 'powgen-nac' / 'POWGEN_2665.instprm'}"
phases = ["{SHARED / 'powgen-nac' / 'NAC.cif'}"]
tmin = 11000.0
tmax = 100000.0
n_background = 6

[[kinematic]]
name = "twins"
phases = ["lrm-pristine:O3p"]
kv = 200.0
'''.encode()


def _manifest(tmp: Path) -> bytes:
    rows = ["file,start_s,end_s,bank"] + [f"p{i:03d}.gsa,{600 * i},{600 * (i + 1)},1" for i in range(20)]
    return ("\n".join(rows) + "\n").encode()


def _read_manifest(path: Path):
    """The mutant as ``series.csv`` of a folder holding the 20 pattern files it names."""
    from layerscope.operando.series import read_manifest

    d = path.parent / "series"
    d.mkdir(exist_ok=True)
    for i in range(20):
        (d / f"p{i:03d}.gsa").touch()
    shutil.copyfile(path, d / "series.csv")
    return read_manifest(d)


def _protocol(tmp: Path) -> bytes:
    from importlib import resources

    return resources.files("layerscope.data").joinpath("operando_lrm.toml").read_bytes()


_SIM = {}


def _sim_file(name: str):
    def make(tmp: Path) -> bytes:
        if not _SIM:
            from layerscope.echem.tabular import write_csv
            from layerscope.simulate.cycler import lrm_half_cell
            from tests.test_echem_units import _write_variants

            d = tmp / "sim"
            d.mkdir(exist_ok=True)
            from layerscope.echem._table import COLUMNS, CyclerLog

            full = lrm_half_cell("coated", rates_C=(1.0,), dt_s=1800.0)
            # the first 300 rows (a few steps): small seeds keep 200 mutants within seconds
            log = CyclerLog(*(getattr(full, c)[:300] for c in COLUMNS), full.source, dict(full.meta))
            write_csv(log, d / "log.csv")
            names = _write_variants(log, d) + ["log.csv"]
            _SIM.update({n: (d / n).read_bytes() for n in names})
        return _SIM[name]
    return make


def _head(path: Path, n_lines: int):
    """The first ``n_lines`` lines of a text file (a smaller seed, same structure)."""
    def make(tmp: Path) -> bytes:
        if not path.is_file():
            pytest.skip(f"{path} is absent")
        return b"".join(path.read_bytes().splitlines(keepends=True)[:n_lines])
    return make


def _readers():
    from layerscope.echem.io import read_cycler
    from layerscope.refine.pcr import read_pcr
    from layerscope.operando.protocol import read_series_protocol
    from layerscope.spectra.io import read_spectrum
    from layerscope.study.schema import read_study

    return {
        "FullProf .pcr (TOF)": (".pcr", _pcr, read_pcr),
        "study TOML": (".toml", _study, read_study),
        "operando series.csv manifest": (".csv", _manifest, _read_manifest),
        "series protocol / model TOML": (".toml", _protocol, read_series_protocol),
        "BioLogic .mpr": (".mpr", CYC / "biologic_gcpl_5cycles.mpr", read_cycler),
        "BioLogic .mpt (EC-Lab text)": (".mpt", _sim_file("eclab.mpt"), read_cycler),
        "Neware .nda (v7)": (".nda", CYC / "neware_TestFile.nda", read_cycler),
        "Neware .nda (v8)": (".nda", CYC / "new_nda_file.nda", read_cycler),
        "Neware .ndax": (".ndax", CYC / "neware_test.ndax", read_cycler),
        "Arbin .res": (".res", CYC / "arbin_example.res", read_cycler),
        "Maccor text export (.txt, header + 300 rows)": (".txt", _head(CYC / "maccor_cellpy_001.txt", 4 + 300),
                                                         read_cycler),
        "Maccor channel file (.052)": (".052", CYC / "maccor_beep_000151.052", read_cycler),
        "Maccor channel file (simulated .001)": (".001", _sim_file("sim_000001.001"), read_cycler),
        "layerscope cycler CSV": (".csv", _sim_file("log.csv"), read_cycler),
        "Arbin CSV export": (".csv", _sim_file("arbin.csv"), read_cycler),
        "Neware CSV export": (".csv", _sim_file("neware.csv"), read_cycler),
        "Novonix CSV export": (".csv", _sim_file("novonix.csv"), read_cycler),
        "Landt .xlsx export": (".xlsx", _sim_file("landt.xlsx"), read_cycler),
        "EMSA .msa (EELS)": (".msa", EELS / "exspy_lowloss_spectrum.msa", read_spectrum),
        "DM3 spectrum image (EELS)": (".dm3", EELS / "ZLP_EELS_Spectrum_Image.dm3", read_spectrum),
        "spectrum .csv (XAS)": (".csv", None, read_spectrum),
    }


def _seed(fmt, tmp_path):
    suffix, seed, reader = _readers()[fmt]
    if seed is None:
        import numpy as np

        e = np.arange(520.0, 560.0, 0.1)
        mu = 0.1 + 1 / (1 + np.exp(-(e - 531) / 0.5)) + 0.8 * np.exp(-((e - 529.5) / 0.6) ** 2)
        return suffix, ("energy_eV,mu\n" + "\n".join(f"{a:.2f},{b:.6f}" for a, b in zip(e, mu))).encode(), reader
    if isinstance(seed, Path):
        if not seed.is_file():
            pytest.skip(f"{seed} is absent")
        return suffix, seed.read_bytes(), reader
    return suffix, seed(tmp_path), reader


#: whole real binary files that take over 20 s for 200 mutants on a loaded 2-core machine (measured:
#: Arbin .res 316 s, Neware .nda v7 222 s, BioLogic .mpr 106 s, with allocation tracing on every
#: mutant): their 200-mutant run is marked ``extended`` (run by hand); no smaller real seed could be cut
_SLOW = {"Arbin .res", "Neware .nda (v7)", "BioLogic .mpr"}


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=pytest.mark.extended) if f in _SLOW else f for f in _readers()])
def test_reader_survives_mutants(fmt, tmp_path, request):
    suffix, seed_bytes, reader = _seed(fmt, tmp_path)
    failures = fuzz_format(fmt, reader, seed_bytes, suffix, _n_mutants(request), tmp_path)
    assert not failures, "\n".join(failures[:15])


@pytest.mark.fuzz
@pytest.mark.parametrize("fmt", list(_readers()))
def test_reader_survives_many_mutants(fmt, tmp_path, request):
    """The same with 2 000 mutants per format (``-m fuzz``)."""
    suffix, seed_bytes, reader = _seed(fmt, tmp_path)
    failures = fuzz_format(fmt, reader, seed_bytes, suffix, _n_mutants(request), tmp_path)
    assert len(failures) == 0, "\n".join(failures[:15])


def test_cycler_table_values_beyond_float_range_are_input_errors(tmp_path):
    """2 000-mutant Arbin CSV run, seeds 863 and 1487: a 12-400-digit number in the current or time column
    made I·Δt overflow (a RuntimeWarning, an error under the test configuration, and an inf in the
    counter-restart test); now an InputError naming the columns and the row, with no warning."""
    import warnings

    from layerscope import InputError
    from layerscope.echem import read_cycler
    from tests.fuzzing import mutate

    seed = _sim_file("arbin.csv")(tmp_path)
    for s in (863, 1487):
        p = tmp_path / f"mutant_{s}.csv"
        p.write_bytes(mutate(seed, s)[1])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(InputError, match="data row"):
                read_cycler(p)
