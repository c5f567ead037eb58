"""<210>_O3 superstructure domains A/B/C (Fig. 1d,e; Supp. Fig. 5a-c) and loss of Li/TM order (Supp. Fig. 16b)."""

from __future__ import annotations

import numpy as np
import pytest

from layerscope.crystal import preset_phase
from layerscope.simulate.haadf import DOMAIN_NAMES, DOMAIN_ZONES, domain_scene, project_phase, simulate_haadf
from layerscope.stem import denoise, fft_lattice, find_columns
from layerscope.stem.domains import DOMAIN_SHIFT, classify_domains, column_intensity, ordering_amplitude

Z17 = {"Li": 3**1.7, "Mn": 25**1.7, "Co": 27**1.7, "Ni": 28**1.7}


def _analyse(sim):
    sp = fft_lattice(sim.image).spacing_px
    cols = find_columns(denoise(sim.image, "du"), separation_px=0.45 * sp)
    return classify_domains(cols, column_intensity(sim.image, cols, sigma_px=sp / 4))


def test_projection_gives_bright_bright_dark_and_domain_stacking():
    o3p = preset_phase("lrm-pristine:O3p")
    # table S1: 2b (Li 0.561, Ni 0.385, Mn 0.053, Co 0.001) vs 4g (Mn 0.783, Li 0.021, Co 0.194, Ni 0.001)
    w2b = 0.561 * Z17["Li"] + 0.385 * Z17["Ni"] + 0.053 * Z17["Mn"] + 0.001 * Z17["Co"]
    w4g = 0.783 * Z17["Mn"] + 0.021 * Z17["Li"] + 0.194 * Z17["Co"] + 0.001 * Z17["Ni"]
    for name in DOMAIN_NAMES:
        pc = project_phase(o3p, DOMAIN_ZONES[name], (0, 0, 1), (20.0, 12.0))
        tm = pc.sublattice == 0
        u, w = pc.positions_angstrom[tm].T
        wt = pc.weight[tm]
        # in-row column spacing a_hex/2 = 1.425 Å, layers c·sinβ = 4.744 Å apart
        assert pc.layer_spacing_angstrom == pytest.approx(5.028 * np.sin(np.radians(109.333)), abs=1e-3)
        rows = np.rint((w - 2.0) / pc.layer_spacing_angstrom).astype(int)
        r0 = (rows == 0) & (u > 0) & (u < 18)
        assert np.median(np.diff(np.sort(u[r0]))) == pytest.approx(8.55 / 6, abs=0.02)
        assert sorted(set(np.round(wt / wt.max(), 3))) == pytest.approx([w2b / w4g, 1.0], abs=2e-3)
        # dark (2b) columns move by DOMAIN_SHIFT columns along +u from one layer to the next
        dark0 = np.sort(u[(rows == 0) & (wt < 0.8 * wt.max())])
        dark1 = np.sort(u[(rows == 1) & (wt < 0.8 * wt.max())])
        step = np.min(np.abs(((dark1[:, None] - dark0[None, :] - DOMAIN_SHIFT[name] * 1.425) + 2.1375) % 4.275 - 2.1375))
        assert step < 0.1, name


def test_ordering_amplitude_of_a_pure_pattern():
    # A(j) = 1, 1, 0.5 repeated: m = 2|a - b| / (2a + b) = 0.4
    assert ordering_amplitude(np.tile([1.0, 1.0, 0.5], 10)) == pytest.approx(0.4, abs=1e-12)
    assert ordering_amplitude(np.ones(30)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("order, dose, seed", [(1.0, 4e4, 0), (0.5, 4e4, 1), (0.5, 1e4, 2)])
def test_domains_abc_classified_per_region(order, dose, seed):
    # fully ordered and half-ordered O3' (modulation m ≈ 0.35 and 0.17) at 4e4 and 1e4 e/Å²
    W = 64.0
    scene = domain_scene((W, W), order=order)
    sim = simulate_haadf(scene, seed=seed, dose_e_per_A2=dose)
    dm = _analyse(sim)
    px_A = sim.pixel_size_nm * 10
    u, w = dm.x_px * px_A, dm.y_px * px_A
    truth = scene.region_fn(u, w)
    # interior cells: the ±(window+1)-column, ±1-layer neighbourhood lies in one domain
    interior = np.ones(len(u), bool)
    for du in (-5 * 1.425, 0.0, 5 * 1.425):
        for dw in (-4.744, 0.0, 4.744):
            interior &= scene.region_fn(u + du, w + dw) == truth
    for v, name in enumerate(DOMAIN_NAMES):
        sel = interior & (truth == v)
        assert sel.sum() > 50
        assert np.mean(dm.domain[sel] == v) >= 0.95, name
        # all cells of the region, boundary and image-edge cells included
        assert np.mean(dm.domain[truth == v] == v) >= 0.9, name
    # the three large regions carry the right labels
    big = dm.region_cells > 50
    assert sorted(dm.region_domain[big]) == [0, 1, 2]
    for r in np.flatnonzero(big):
        t = scene.region_fn(np.array([dm.region_x_px[r] * px_A]), np.array([dm.region_y_px[r] * px_A]))[0]
        assert dm.region_domain[r] == t


def test_window_cut_by_the_edge_keeps_the_phase():
    # A row with a weak modulation on a large mean, the window cut by the row end or a
    # missing column: the least-squares Ψ keeps the true phase (a plain Fourier mean leaks <A>).
    from layerscope.stem.domains import _windowed_psi

    j = np.arange(20)
    phi = 2.0
    A = (100.0 * (1 + 0.1 * np.cos(2 * np.pi * j / 3 + phi)))[None, :]
    A[0, 9] = np.nan
    psi, mean = _windowed_psi(A, 4)
    ok = np.isfinite(psi[0])
    assert ok[0] and ok[-1] and ok.sum() == 19
    assert np.allclose(np.angle(psi[0, ok]), phi, atol=1e-9)
    assert np.allclose(2 * np.abs(psi[0, ok]) / mean[0, ok], 0.1, atol=1e-9)


def test_loss_of_order_measured_as_row_modulation():
    m = {}
    for order in (1.0, 0.5, 0.0):
        sim = simulate_haadf(domain_scene((40.0, 40.0), order=order), seed=3)
        dm = _analyse(sim)
        m[order] = dm.image_modulation
        if order == 0.0:
            # Supp. Fig. 16b: no bright-bright-dark pattern left; cells labelled disordered
            assert np.mean(dm.domain == -1) > 0.9
    # modulation ∝ order; ordered O3' shows a clear modulation, random mixing none
    assert m[1.0] > 0.2
    assert m[0.5] / m[1.0] == pytest.approx(0.5, abs=0.08)
    assert m[0.0] < 0.04


def test_domain_bad_input():
    with pytest.raises(ValueError, match="amplitudes"):
        classify_domains(np.zeros((10, 2)), np.ones(5))
    with pytest.raises(ValueError, match="order"):
        domain_scene(order=1.5)
