"""A report a person reads (issue 14): headline numbers with esds and units and no 1e-20
residues or raw JSON, paths relative to the output folder, no axis offsets on any figure, a
legend on phase maps and an inverse-pole-figure colour key on orientation maps."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure


def test_value_esd_notation():
    from layerscope.study.report import _fmt, _value_esd

    assert _value_esd(0.9718502257, 0.0012) == "0.9719(12)"
    assert _value_esd(2.856714, 0.00004) == "2.85671(4)"
    assert _value_esd(4.7445, 0.00031) == "4.7445(3)"
    assert _value_esd(0.0281, 0.0099) == "0.028(10)"             # 0.0099 rounds up to the next decade
    assert _value_esd(-7.8758e-20, 0.0012) == "0.0000(12)"
    assert _value_esd(123.4, 5.6) == "123.4 ± 5.6"
    assert _value_esd(0.5, float("nan")) == "0.5"
    assert _fmt(-7.0416e-21) == "0" and _fmt(4.1599e-06) == "4.1599e-06"


def test_headline_numbers_are_read_not_decoded(tmp_path):
    from layerscope.study.report import write_report

    out = tmp_path / "results"
    out.mkdir()
    records = [
        {"kind": "neutron", "name": "pristine", "state": "pristine", "provenance": {"parameters": {}},
         "summary": {"rwp": 0.40869, "chi2": 8.6081, "converged": True, "table": "S1",
                     "weight_fractions": {"O3p": 0.9718502257125768, "S": 0.0281497742874232},
                     "weight_fractions_esd": {"O3p": 0.00121, "S": 0.00121},
                     "descriptors": {"O3p": {"phase": "O3p", "DoO": 0.93035, "d_inter": 4.7444736}},
                     "warnings": ["S.biso[TM16d] reached its bound and was held there"]}},
        {"kind": "operando", "name": "first-cycle", "state": "", "provenance": {"parameters": {}},
         "summary": {"frac_O3_first": -7.8758e-20, "frac_O3_first_esd": 0.0021, "frac_LiC6_last": -2.0329e-22,
                     "rwp_median": 0.506}},
        {"kind": "haadf", "name": "twins", "state": "charged", "provenance": {"parameters": {}},
         "summary": {"image": str(tmp_path / "data" / "haadf" / "image.tif"), "pixel_size_nm": 0.015,
                     "shell_thickness_nm": {"mean": 3.6825, "min": 2.5949999999999998}}},
    ]
    study = SimpleNamespace(title="t", description="", material="LRM", path=Path("study.toml"))
    page = write_report(study, records, out).read_text(encoding="utf-8")
    head = page[page.index('id="summaries"'):page.index('id="checks"')]
    text = re.sub(r"<[^>]+>", " ", head)
    assert "0.9719(12)" in text and "0.0281(12)" in text               # value(esd)
    assert "0.41 %" in text or "0.40869 %" in text                     # Rwp with its unit
    assert "4.7445 Å" in text                                          # d_inter in Å
    assert "0.000(2)" in text and "e-20" not in text and "e-22" not in text
    assert "0.015 nm" in text and "3.6825 nm" in text
    assert "../data/haadf/image.tif" in text and str(tmp_path) not in page
    assert "{" not in text and '"' not in text.split(">", 1)[1], text   # no raw JSON


def test_no_axis_offset_on_saved_figures(tmp_path):
    from layerscope._io import save_figure

    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(np.arange(10), 99.5 + 1e-7 * np.arange(10))               # a constant up to rounding
    ax2.plot(np.arange(10), 2.8567 + 4e-5 * np.arange(10))             # a lattice parameter that moves
    save_figure(fig, tmp_path / "f.png")
    for ax in (ax1, ax2):
        assert ax.yaxis.get_offset_text().get_text() == ""
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert all("+" not in t and "e" not in t for t in labels), labels
    lo, hi = ax1.get_ylim()
    assert hi - lo == pytest.approx(2e-3 * 99.5, rel=1e-6)             # the flat line reads as 99.5


def _fourd_result():
    from scipy.spatial.transform import Rotation

    from layerscope.fourd.api import FourDMaps
    from layerscope.fourd.maps import OrientationMaps

    ny, nx = 12, 16
    phase = np.zeros((ny, nx), int)
    phase[2:10, 3:8] = 2
    phase[2:10, 8:13] = 3
    phase[0, 0] = 4                                                    # "not indexed"
    rot = np.broadcast_to(np.eye(3), (ny, nx, 3, 3)).copy()
    rng = np.random.default_rng(0)
    rot[phase >= 2] = Rotation.random(int(np.sum(phase >= 2)), random_state=rng).as_matrix()
    z = np.zeros((ny, nx))
    maps = OrientationMaps(phase, ("vacuum", "aC", "O3p", "S"), rot, z, z, z, z, np.zeros((ny, nx, 1)))
    two_over_m = np.array([np.eye(3), np.diag([-1.0, 1.0, -1.0])])     # 2/m, b ∥ y
    cubic = Rotation.create_group("O").as_matrix()                     # m-3m proper rotations
    return FourDMaps(maps, "patterns", "<test>", {}, {"vbf": z}, None, {2: two_over_m, 3: cubic}, 4, 100)


def test_fourd_figures_carry_a_legend_and_a_colour_key(tmp_path):
    from layerscope.fourd.api import write_fourd
    from layerscope.fourd.figures import orientation_map_figure, phase_map_figure

    res = _fourd_result()
    leg = phase_map_figure(res).axes[0].get_legend()
    labels = [t.get_text() for t in leg.get_texts()]
    assert [lab.split(" (")[0] for lab in labels] == ["vacuum", "O3p", "S", "not indexed"], labels
    fig = orientation_map_figure(res)
    assert [a.get_title() for a in fig.axes[1:]] == ["key: O3p", "key: S"]
    written = write_fourd(res, tmp_path)
    for k in ("phase_map", "orientation_map"):                         # figures, not bare pixel images
        assert written[k].stat().st_size > 5000


def test_ipf_colours_are_those_of_the_direction_not_of_its_symmetry_image():
    from scipy.spatial.transform import Rotation

    from layerscope.fourd.ipf import ipf_rgb

    cubic = Rotation.create_group("O").as_matrix()
    v = np.random.default_rng(1).normal(size=(50, 3))
    c0 = ipf_rgb(v, cubic)
    for r in cubic[::5]:
        np.testing.assert_allclose(ipf_rgb(v @ r.T, cubic), c0, atol=1e-12)   # equivalent: same colour
        np.testing.assert_allclose(ipf_rgb(-v, cubic), c0, atol=1e-12)        # Friedel
    # distinct directions of the sector get distinct colours (a key that can be read back)
    assert len({tuple(np.round(c, 3)) for c in c0}) > 45
