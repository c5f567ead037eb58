"""GPA (Hÿtch et al. 1998) against an analytic strain field and an unstrained lattice."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from layerscope.simulate.haadf import simulate_haadf, uniform_scene
from layerscope.stem.gpa import gpa

L_A = 90.0  # field of view, Å (600 px at 0.15 Å/px)
AMP = 0.01 * L_A / (2 * np.pi)  # εxx amplitude 1 %, εyy 0.5 %
K = 2 * np.pi / L_A


def _displacement(u, w):
    return AMP * np.sin(K * u), 0.5 * AMP * np.sin(K * w)


def _run(field):
    sim = simulate_haadf(uniform_scene((L_A, L_A), "I", displacement_fn=field), seed=2,
                         dose_e_per_A2=1.6e5)
    res = gpa(sim.image)
    ny, nx = sim.image.shape
    yy, xx = np.mgrid[0:ny, 0:nx] * sim.pixel_size_nm * 10
    exx = AMP * K * np.cos(K * xx) if field else 0 * xx
    eyy = 0.5 * AMP * K * np.cos(K * yy) if field else 0 * xx
    # GPA's strain map is the true map seen through the Bragg mask: a Gaussian
    # of σ_r = 1/(2π σ_g) in real space; strain is relative to the reference.
    sigma_g = 0.15 * np.min(np.hypot(*res.g_per_px.T))
    s = 1 / (2 * np.pi * sigma_g)
    y0, y1, x0, x1 = res.reference
    out = []
    for truth in (exx, eyy):
        t = gaussian_filter(truth, s, mode="nearest")
        out.append(t - t[y0:y1, x0:x1].mean())
    m = int(3 * s)  # "away from edges"
    sl = (slice(m, -m), slice(m, -m))
    return res, out[0][sl], out[1][sl], sl


def test_gpa_unstrained_lattice_is_zero():
    res, _, _, sl = _run(None)
    for e in (res.exx, res.eyy, res.exy):
        assert abs(np.mean(e[sl])) < 5e-4  # 0 ± 0.05 %
        assert np.sqrt(np.mean(e[sl] ** 2)) < 1e-3


def test_gpa_recovers_known_strain_field():
    res, exx, eyy, sl = _run(_displacement)
    assert np.sqrt(np.mean((res.exx[sl] - exx) ** 2)) < 1e-3  # within 0.1 % RMS
    assert np.sqrt(np.mean((res.eyy[sl] - eyy) ** 2)) < 1e-3
    assert np.ptp(res.exx[sl]) > 0.012  # the 2 % peak-to-peak field is really there
    assert np.sqrt(np.mean(res.exy[sl] ** 2)) < 1e-3


def test_gpa_rejects_collinear_g():
    img = simulate_haadf(uniform_scene((30.0, 30.0)), seed=1).image
    with pytest.raises(ValueError, match="collinear"):
        gpa(img, np.array([[0.03, 0.0], [0.06, 0.0]]))


def test_gpa_masks_the_border_where_the_phase_is_undefined():
    """A lattice whose period does not divide the image: the Bragg filter mixes the tapered
    border and the FFT wrap-around (strain errors of several %); ``valid`` excludes that band
    (2σ_r) and the band around a region without fringes, and keeps the interior, where the
    unstrained lattice reads 0 ± 0.5 %."""
    ny = nx = 256
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    a = 7.3
    img = (np.cos(2 * np.pi * xx / a) + np.cos(2 * np.pi * (0.5 * xx + np.sqrt(3) / 2 * yy) / a)
           + 0.05 * np.random.default_rng(0).normal(size=(ny, nx)))
    img[150:200, 40:90] = 0.05 * np.random.default_rng(1).normal(size=(50, 50))  # a hole: no fringes
    res = gpa(img)
    e = np.abs(np.stack([res.exx, res.eyy, res.exy]))
    assert e.max() > 0.01                                   # the border really is wrong
    assert np.nanmax(np.abs(res.masked("exx"))) < 5e-3      # what is shown is right (a tenth of the border's)
    assert np.nanmax(np.abs(res.masked("eyy"))) < 5e-3
    assert not res.valid[:8].any() and not res.valid[:, -8:].any()
    assert not res.valid[165:185, 55:75].any()              # the hole's centre is masked
    assert 0.3 < res.valid.mean() < 0.9
