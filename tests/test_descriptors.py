"""Eq. 1-3 of the paper and the Fig. 2c layer spacings on the presets (tables S1, S3)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layerscope.cli import main
from layerscope.crystal import preset_phase
from layerscope.descriptors import dod, doo, find_o3p_sites, o_vacancy, o_vacancy_phase, phase_descriptors


def test_table_s1_doo_dod():
    d = phase_descriptors(preset_phase("lrm-pristine:O3p"))
    # DoO = 0.561/(0.561 + 2·0.021) = 93.0 %; DoD = 2·0.002/(2·0.002 + 2·0.978 + 0.439) = 0.17 %
    assert d["DoO"] == pytest.approx(0.561 / (0.561 + 2 * 0.021), rel=1e-12)
    assert round(100 * d["DoO"], 1) == 93.0
    assert d["DoD"] == pytest.approx(2 * 0.002 / (2 * 0.002 + 2 * 0.978 + 0.439), rel=1e-12)
    assert round(100 * d["DoD"], 2) == 0.17
    assert round(d["d_inter"], 3) == 4.744


def test_table_s3_o3_spacings():
    d = phase_descriptors(preset_phase("lrm-100-cycles:O3"))
    assert round(d["d_inter"], 3) == 4.846 and round(d["d_intra"], 3) == 2.460
    assert "DoO" not in d
    assert d["O_vacancy"] == pytest.approx(0.003, abs=1e-12)  # O 6c occupancy 0.997


def test_paper_example_doo_50_percent():
    # "4g site: TM0.75Li0.25 - Li0.5TM0.5" → DoO = 0.5/(0.5 + 2·0.25) = 50 %
    assert doo(0.5, 0.25).value == pytest.approx(0.5)


def test_esd_propagation_matches_analytic():
    cov = np.diag([0.005**2, 0.002**2])
    r = doo(0.561, 0.021, cov)
    l2b, l4g = 0.561, 0.021
    den = (l2b + 2 * l4g) ** 2
    expect = np.sqrt((2 * l4g / den * 0.005) ** 2 + (2 * l2b / den * 0.002) ** 2)
    assert r.esd == pytest.approx(expect, rel=1e-10)
    assert np.isnan(doo(0.5, 0.25).esd)
    r = dod(0.002, 0.978, 0.439, np.eye(3) * 1e-6)
    assert r.esd > 0
    ov = o_vacancy(0.02, 0.6, 0.03, 0.4, np.zeros((4, 4)))
    assert ov.value == pytest.approx(0.02 * 0.6 + 0.03 * 0.4) and ov.esd == 0


def test_o_vacancy_weights_sites_by_multiplicity():
    # table S1: O 8j 0.997 and 4i 1.0 → 1 − (8·0.997 + 4·1)/12
    assert o_vacancy_phase(preset_phase("lrm-pristine:O3p")) == pytest.approx(1 - (8 * 0.997 + 4) / 12)


def test_sites_found_without_wyckoff_letters():
    from dataclasses import replace

    ph = preset_phase("lrm-pristine:O3p")
    bare = replace(ph, sites=tuple(replace(s, wyckoff=None) for s in ph.sites))
    sites = find_o3p_sites(bare)
    assert sites["2b"].label == "M2b" and sites["4g"].label == "TM4g" and sites["4h"].label == "Li4h"
    with pytest.raises(ValueError, match="not O3'"):
        find_o3p_sites(preset_phase("lrm-100-cycles:O3"))


def test_descriptors_cli(capsys):
    assert main(["descriptors", "lrm-pristine:O3p", "--percent"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert round(d["DoO"], 1) == 93.0 and round(d["DoD"], 2) == 0.17 and round(d["d_inter"], 3) == 4.744
