"""Fuzzing the readers: seeded mutations of real files (issue 15).

For every format, mutants of a real file (``fuzzing.mutate``: truncation, byte flips, deleted /
duplicated / swapped lines, huge numbers, NaN/inf, other encodings, absurd header counts) are fed
to the reader. Each must either return data or raise :class:`layerscope.InputError` — never another
exception — within 10 s, and allocate no more than a bound set by the file's size (a header field
must not drive an allocation the file cannot fill). The default (CI) run tries ``CI_MUTANTS`` (200)
mutants per format, as issue 15 asks; ``pytest -m fuzz`` tries 2 000 (``LAYERSCOPE_FUZZ_N`` overrides both; the 200-mutant
tables of ``tests/FUZZING.md`` are ``LAYERSCOPE_FUZZ_N=200``). Counts: ``tests/FUZZING.md``.
"""

from __future__ import annotations

import os
import signal
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from layerscope import InputError
from tests.fuzzing import mutate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

_STRATEGY = b"""[refine]
max_cycles = 10
revert_worse = true
[conventions]
lorentz = "gsas2"
[[stage]]
name = "scales"
free = ["background", "NAC.scale"]
[[stage]]
name = "cells"
free = ["NAC.cell"]
start = { "NAC.mustrain" = 1000.0 }
[[constraint]]
terms = { "NAC.occ[Ca1:Ca]" = 1.0 }
[bounds]
"NAC.mustrain" = [0.0, 5000.0]
"""


def _fullprof_dat(tmp: Path) -> bytes:
    x = np.linspace(10000, 20000, 300)
    lines = ["10000.0 33.4463 20000.0 ! TOF start step end, layerscope fuzz seed"]
    y = 100 + 50 * np.exp(-((x - 15000) / 80) ** 2)
    lines += [" ".join(f"{v:.3f}" for v in y[i:i + 10]) for i in range(0, len(y), 10)]
    return ("\n".join(lines) + "\n").encode()


def _xye(tmp: Path) -> bytes:
    x = np.linspace(10, 120, 400)
    y = 100 + 50 * np.exp(-((x - 40) / 0.1) ** 2)
    return ("# 2theta y sigma\n" + "\n".join(f"{a:.4f} {b:.3f} {np.sqrt(b):.3f}" for a, b in zip(x, y))).encode()


def _shrunk_gsas(path: Path, n: int):
    """The first ``n`` points of a one-bank GSAS file (its header kept, NCHAN/NREC set to match), so
    that 200 mutants read in seconds."""
    def make(tmp: Path) -> bytes:
        lines = path.read_bytes().split(b"\n")
        i = next(k for k, ln in enumerate(lines) if ln.startswith(b"BANK"))
        bank = lines[i].split()
        per_line = 1 if bank[-1] in (b"FXYE", b"FXY") else (10 if bank[-1] == b"STD" or len(bank) < 9 else 5)
        nlines = -(-n // per_line)
        bank[2] = str(n).encode()
        bank[3] = str(nlines).encode()
        return b"\n".join(lines[:i] + [b" ".join(bank)] + lines[i + 1:i + 1 + nlines]) + b"\n"
    return make


def _readers():
    from layerscope.crystal.cif import read_cif
    from layerscope.diffraction.instrument import read_instprm
    from layerscope.diffraction.readers import read_powder
    from layerscope.refine.strategy import read_strategy

    return {
        # format: (suffix, seed bytes or a callable making them, reader)
        "GSAS FXYE (.gsa, POWGEN)": (".gsa", _shrunk_gsas(SHARED / "powgen-nac" / "PG3_22048.gsa", 400),
                                     read_powder),
        "GSAS STD (.XRA)": (".gsa", _shrunk_gsas(SHARED / "gsas2-pbso4" / "PBSO4.XRA", 400), read_powder),
        "GSAS STD with NCTR (.CWN)": (".gsa", _shrunk_gsas(SHARED / "gsas2-pbso4" / "PBSO4.CWN", 400), read_powder),
        "FullProf .dat": (".dat", _fullprof_dat, read_powder),
        "x-y-sigma .xye": (".xye", _xye, read_powder),
        "GSAS-II .instprm (TOF)": (".instprm", SHARED / "powgen-nac" / "POWGEN_2665.instprm", read_instprm),
        "CIF (NAC, Uani)": (".cif", SHARED / "powgen-nac" / "NAC.cif", read_cif),
        "CIF (PbSO4)": (".cif", SHARED / "gsas2-pbso4" / "PbSO4-Wyckoff.cif", read_cif),
        "strategy TOML": (".toml", _STRATEGY, read_strategy),
    }


#: mutants per format in the default (CI) run: the ≥ 200 issue 15 asks for. Every unmarked fuzz test
#: together took 639 s of wall time at load 9-12 on the shared 2-core machine (about 210 s of CPU,
#: 3 December 2026); the CI time is paid for elsewhere. Seeds 0-199 are a subset of the 2 000-mutant runs
#: recorded in tests/FUZZING.md.
CI_MUTANTS = 200


def _n_mutants(request) -> int:
    if os.environ.get("LAYERSCOPE_FUZZ_N"):
        return int(os.environ["LAYERSCOPE_FUZZ_N"])
    return 2000 if request.node.get_closest_marker("fuzz") else CI_MUTANTS


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def fuzz_reader(reader, seed_bytes: bytes, suffix: str, n: int, tmp: Path, *, timeout_s: int = 10,
                skip=frozenset()):
    """Feed ``n`` mutants to ``reader``; returns (counts by outcome, list of failures).

    ``skip``: seeds not fed (a known crash of a C library that would kill the test process; each one
    is listed in ``tests/FUZZING.md``), counted as "skipped"."""
    counts = {"valid": 0, "InputError": 0, "skipped": 0}
    failures = []
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for seed in range(n):
            if seed in skip:
                counts["skipped"] += 1
                continue
            kind, data = mutate(seed_bytes, seed)
            path = tmp / f"mutant_{seed}{suffix}"
            path.write_bytes(data)
            limit = 64 * 2**20 + 200 * len(data)
            tracemalloc.start()
            signal.alarm(timeout_s)
            try:
                reader(path)
                counts["valid"] += 1
            except InputError:
                counts["InputError"] += 1
            except _Hang:
                failures.append((seed, kind, f"hang > {timeout_s} s"))
            except Exception as exc:  # noqa: BLE001 - any other type is the finding
                failures.append((seed, kind, f"{type(exc).__name__}: {exc}"[:300]))
            finally:
                signal.alarm(0)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            if peak > limit:
                failures.append((seed, kind, f"allocated {peak / 2**20:.0f} MiB for a {len(data)}-byte file"))
            path.unlink()
    finally:
        signal.signal(signal.SIGALRM, old)
    return counts, failures


def fuzz_format(fmt, reader, seed_bytes: bytes, suffix: str, n: int, tmp: Path, *, skip=frozenset()) -> list[str]:
    """Read the unmutated seed (it must read), feed ``n`` mutants to ``reader``; the failures as text."""
    p = tmp / f"seed{suffix}"
    p.write_bytes(seed_bytes)
    reader(p)
    counts, failures = fuzz_reader(reader, seed_bytes, suffix, n, tmp, skip=skip)
    print(f"{fmt}: {n} mutants, {counts['valid']} valid, {counts['InputError']} InputError, "
          f"{len(failures)} failures" + (f", {counts['skipped']} skipped (known C-library crash)"
                                         if counts["skipped"] else ""))
    return [f"seed {s} ({k}): {m}" for s, k, m in failures]


def _seed_bytes(seed, tmp_path) -> bytes:
    if isinstance(seed, Path):
        if not seed.is_file():
            pytest.skip(f"{seed} is absent")
        return seed.read_bytes()
    if callable(seed):
        if not SHARED.is_dir():
            pytest.skip(f"{SHARED} is absent")
        return seed(tmp_path)
    return seed


@pytest.mark.parametrize("fmt", list(_readers()))
def test_reader_survives_mutants(fmt, tmp_path, request):
    suffix, seed, reader = _readers()[fmt]
    failures = fuzz_format(fmt, reader, _seed_bytes(seed, tmp_path), suffix, _n_mutants(request), tmp_path)
    assert not failures, "\n".join(failures[:15])


@pytest.mark.fuzz
@pytest.mark.parametrize("fmt", list(_readers()))
def test_reader_survives_many_mutants(fmt, tmp_path, request):
    """The same with 2 000 mutants per format (``-m fuzz``)."""
    suffix, seed, reader = _readers()[fmt]
    failures = fuzz_format(fmt, reader, _seed_bytes(seed, tmp_path), suffix, _n_mutants(request), tmp_path)
    assert len(failures) == 0, "\n".join(failures[:15])
