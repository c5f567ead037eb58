"""One CIF per refined operando pattern (GSAS-II's sequential habit): read back with gemmi and
pymatgen, values and esds to their printed precision, undetermined phases left out, esd
notation. The end-to-end check against a real run's timeseries.csv is in
tests/test_operando_series.py (the DESIGN.md series, --cif-per-pattern)."""

from __future__ import annotations

import math
import re
import warnings
from types import SimpleNamespace

import gemmi
import numpy as np
import pytest

from layerscope.crystal import preset
from layerscope.crystal.cif import format_esd
from layerscope.diffraction.instrument import gppd_like
from layerscope.diffraction.pattern import build_model, initial_params
from layerscope.operando.checkpoint import SeriesRecord, _Checkpoint
from layerscope.operando.pattern_cif import cif_stems, parameter_esds, write_pattern_cifs
from layerscope.operando.protocol import default_series_protocol
from layerscope.refine.parameters import make_layout


def parse_esd(text: str):
    """(value, esd) of a CIF number such as 2.8712(3) — written here independently of the writer:
    the esd counts units of the value's last digit."""
    m = re.fullmatch(r"([-+]?\d+)(?:\.(\d*))?(?:\((\d+)\))?", text)
    assert m, text
    dec = len(m.group(2) or "")
    v = float(m.group(1) + ("." + m.group(2) if m.group(2) else ""))
    return v, (int(m.group(3)) * 10.0 ** -dec if m.group(3) else None)


def printed_as(text: str, value: float, esd: float) -> bool:
    """Whether the CIF number ``text`` is ``value(esd)`` to its printed precision: both within half
    a unit of the last printed digit, and the esd printed with at most two significant digits."""
    m = re.fullmatch(r"[-+]?\d+(?:\.(\d*))?\((\d+)\)", text)
    if not m:
        return False
    half = 0.5 * 10.0 ** -len(m.group(1) or "")
    v, e = parse_esd(text)
    return abs(v - value) <= half * (1 + 1e-9) and abs(e - esd) <= half * (1 + 1e-9) and len(m.group(2)) <= 2


@pytest.mark.parametrize("v, e, want", [
    (2.87123456, 0.00031, "2.8712(3)"),      # leading esd digits 31 > 19: one digit
    (2.87123456, 0.00019, "2.87123(19)"),    # 19: two digits
    (0.9716, 0.0123, "0.972(12)"),
    (1.5, 0.0096, "1.50(1)"),                # 9.6 rounds up to 10 -> 1 in the next digit
    (0.5, 1.5, "0.5(15)"),
    (5.0, 0.0, None), (5.0, float("nan"), None), (5.0, None, None),
])
def test_cif_esd_notation(v, e, want):
    assert format_esd(v, e) == want
    if want:
        pv, pe = parse_esd(want)
        assert abs(pv - v) <= 0.5 * 10.0 ** -len(want.split("(")[0].split(".")[1])
        assert pe == pytest.approx(e, rel=0.5 if e > 0.005 else 0.2)


@pytest.fixture(scope="module")
def one_record():
    """A three-phase pouch-cell model (O3', spinel, Al) and one record whose O3' cell (a, b, c,
    β), occupancies, Biso and scale were 'refined' with a known random covariance."""
    phases = [p for p in preset("lrm-pouch").phases if p.name in ("O3p", "S", "Al")]
    model = build_model(phases, np.linspace(10000, 40000, 200), gppd_like(), n_background=3)
    layout = make_layout(model)
    full = np.array(layout.flatten(initial_params(model)), float)
    free = [j for j, n in enumerate(layout.names) if n.startswith("O3p.") and
            (n.endswith((".a", ".b", ".c", ".beta", ".scale")) or "occ[" in n or "biso[" in n)]
    rng = np.random.default_rng(3)
    a = rng.normal(size=(len(free), len(free))) * 2e-4
    cov = np.zeros((len(full), len(full)))
    cov[np.ix_(free, free)] = a @ a.T
    fr = SimpleNamespace(esd_full=np.sqrt(np.diag(cov)), cov_full=cov)
    esd = parameter_esds(fr, layout, model, full)
    row = {"pattern": "PATTERN_007.gsa", "rwp": 3.21, "gof": 1.2, "converged": True, "flag": "", "held": "",
           "note": "", "time_h": 0.25, "voltage_V": 3.9, "frac_O3p": 0.97, "frac_O3p_esd": 0.0123, "frac_S": 0.03,
           "frac_S_esd": 0.04, "determined_O3p": True, "determined_S": False, "signal_O3p": 300.0, "signal_S": 2.0,
           "undetermined": "S: fraction 0.03 ± 0.04 (esd > 0.5 of the value), Bragg signal 2.0 σ < 5 σ"}
    rec = SeriesRecord("PATTERN_007.gsa", [float(v) for v in full], row, [], esd)
    return model, layout, full, cov, rec


def test_pattern_cif_reads_back_with_gemmi_and_pymatgen(one_record, tmp_path):
    model, layout, full, cov, rec = one_record
    (path,) = write_pattern_cifs([rec], model, default_series_protocol(), tmp_path / "cif", windows=[(600.0, 2400.0)])
    assert path == tmp_path / "cif" / "PATTERN_007.cif"
    text = path.read_text()
    assert text.isascii()
    doc = gemmi.cif.read(str(path))
    names = [b.name for b in doc]
    # the undetermined spinel is left out, and the pattern block says why
    assert names == ["PATTERN_007", "PATTERN_007_O3p", "PATTERN_007_Al"]
    pat = doc[0]
    assert gemmi.cif.as_string(pat.find_value("_layerscope_pattern_name")) == "PATTERN_007.gsa"
    assert float(pat.find_value("_layerscope_pattern_start_s")) == 600.0
    assert float(pat.find_value("_layerscope_pattern_end_s")) == 2400.0
    assert float(pat.find_value("_pd_proc_ls_prof_wR_factor")) == pytest.approx(0.0321)
    om = pat.find("_layerscope_omitted_phase_", ["name", "reason"])
    assert [gemmi.cif.as_string(r[0]) for r in om] == ["S"]
    assert "Bragg signal 2.0 sigma < 5 sigma" in gemmi.cif.as_string(om[0][1])
    assert [gemmi.cif.as_string(v) for v in pat.find_loop("_pd_phase_block_id")] == ["PATTERN_007|O3p",
                                                                                     "PATTERN_007|Al"]
    blk = doc["PATTERN_007_O3p"]
    ss = gemmi.make_small_structure_from_block(blk)
    assert ss.spacegroup.hm == "C 1 2/m 1" and blk.find_value("_space_group_IT_number") == "12"
    # cell: value and esd as printed = the record's (esd to 2 significant digits at most)
    for k, c in enumerate(("a", "b", "c", "alpha", "beta", "gamma")):
        text = blk.find_value(f"_cell_length_{c}" if k < 3 else f"_cell_angle_{c}")
        j = layout.index(f"O3p.{c}")
        want_e = math.sqrt(cov[j, j])
        if want_e == 0:
            assert parse_esd(text)[1] is None           # fixed by symmetry: no esd
            assert parse_esd(text)[0] == pytest.approx(full[j], abs=1e-5)
        else:
            assert printed_as(text, full[j], want_e), (c, text, full[j], want_e)
    assert (ss.cell.a, ss.cell.beta) == pytest.approx((full[layout.index("O3p.a")], full[layout.index("O3p.beta")]),
                                                     abs=1e-3)
    # the volume's esd: √(gᵀCg) with the monoclinic V = a b c sin β differentiated by hand
    a, b, c, beta = (full[layout.index(f"O3p.{x}")] for x in ("a", "b", "c", "beta"))
    br = math.radians(beta)
    g = np.array([b * c * math.sin(br), a * c * math.sin(br), a * b * math.sin(br),
                  a * b * c * math.cos(br) * math.pi / 180])
    idx = [layout.index(f"O3p.{x}") for x in ("a", "b", "c", "beta")]
    assert printed_as(blk.find_value("_cell_volume"), a * b * c * math.sin(br),
                      math.sqrt(g @ cov[np.ix_(idx, idx)] @ g))
    # sites: occupancies and Biso with their esds; gemmi's U = B / 8π²
    loop = blk.find("_atom_site_", ["label", "type_symbol", "occupancy", "B_iso_or_equiv", "fract_y"])
    ph = next(s.phase for s in model.phases if s.phase.name == "O3p")
    seen = 0
    for r in loop:
        label, sym = r[0], r[1]
        site = label.rsplit("_", 1)[0] if label.rsplit("_", 1)[0] in {s.label for s in ph.sites} else label
        j = layout.index(f"O3p.occ[{site}:{sym}]")
        assert printed_as(r[2], full[j], math.sqrt(cov[j, j])), (label, r[2])
        jb = layout.index(f"O3p.biso[{site}]")
        assert printed_as(r[3], full[jb], math.sqrt(cov[jb, jb])), (label, r[3])
        assert parse_esd(r[4])[1] is None   # coordinates were not refined: no esd
        seen += 1
    assert seen == sum(len(s.species) for s in ph.sites) == len(ss.sites)
    assert ss.sites[0].u_iso == pytest.approx(parse_esd(loop[0][3])[0] / (8 * math.pi ** 2), rel=1e-6)
    assert blk.find_value("_layerscope_phase_fraction") == "0.970(12)"
    assert "weight fraction among the LRM phases" in blk.find_value("_layerscope_phase_fraction_basis")
    # Al was not refined at all: no esd anywhere in its block
    al = doc["PATTERN_007_Al"]
    assert "(" not in al.find_value("_cell_length_a") and gemmi.make_small_structure_from_block(al).sites
    # pymatgen reads both structures (the pattern block holds none)
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structures = CifParser(str(path)).parse_structures(primitive=False)
    assert sorted(s.composition.reduced_formula for s in structures)[0] == "Al" and len(structures) == 2


def test_record_esds_survive_the_checkpoint(one_record, tmp_path):
    """A resumed run writes its CIFs from the checkpoint's records: the same bytes."""
    model, layout, full, cov, rec = one_record
    proto = default_series_protocol()
    ck = _Checkpoint(tmp_path, [rec.name], proto, [s.phase.name for s in model.phases])
    ck.append(rec)
    back = ck.load()[rec.name]
    assert back.esd == rec.esd and back.esd
    a = write_pattern_cifs([rec], model, proto, tmp_path / "a")[0].read_bytes()
    b = write_pattern_cifs([back], model, proto, tmp_path / "b")[0].read_bytes()
    assert a == b
    assert cif_stems(["x.gsa", "y.gsa"]) == ["x", "y"] and cif_stems(["x.gsa", "x.xye"]) == ["x_gsa", "x_xye"]


def test_record_without_esds_says_so(one_record, tmp_path):
    """A checkpoint written before records kept their esds: values without esds, and the file and a
    warning say so (not silently exact)."""
    model, layout, full, cov, rec = one_record
    old = SeriesRecord(rec.name, rec.full, rec.row, [])
    with pytest.warns(UserWarning, match="holds no esds"):
        (path,) = write_pattern_cifs([old], model, default_series_protocol(), tmp_path)
    doc = gemmi.cif.read(str(path))
    assert "esds not available" in doc[0].find_value("_layerscope_esd_note")
    assert "(" not in doc["PATTERN_007_O3p"].find_value("_cell_length_a")


def test_study_key_cif_per_pattern(tmp_path):
    """A study's [[operando]] dataset takes cif_per_pattern = true (default false); not a bool: an error
    naming the key."""
    from layerscope.study import StudyError, read_study

    (tmp_path / "series").mkdir()
    (tmp_path / "cycler.csv").write_text("time_s,voltage_V\n")
    body = '[[operando]]\nname = "cell"\nseries = "series"\ncycler = "cycler.csv"\n'
    p = tmp_path / "study.toml"
    p.write_text(body)
    assert read_study(p).datasets[0].options["cif_per_pattern"] is False
    p.write_text(body + "cif_per_pattern = true\n")
    assert read_study(p).datasets[0].options["cif_per_pattern"] is True
    p.write_text(body + 'cif_per_pattern = "yes"\n')
    with pytest.raises(StudyError, match="cif_per_pattern"):
        read_study(p)
