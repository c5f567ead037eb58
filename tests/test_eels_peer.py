"""EELS against exSpy/HyperSpy (GPL, test-only) on the measured spectra of shared/data/eels.

* zero-loss peak per pixel of the NMC ZLP spectrum image: exSpy's
  ``estimate_zero_loss_peak_centre`` (channel precision) vs :func:`zlp_shifts` (sub-channel);
* HyperSpy's own DM reader and axes: :func:`analyse_signal` on the signal in memory gives the same
  valences, on the same navigation layout, as ``layerscope eels`` reading the file itself;
* power-law background: exSpy's ``remove_background`` (least-squares fit of the counts) vs our
  log-log fit, compared through the background-subtracted Mn L3 integral of the exspy spectrum.
"""

from pathlib import Path

import numpy as np
from scipy.integrate import trapezoid
import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eels"
pytestmark = [pytest.mark.peer, pytest.mark.skipif(not DATA.is_dir(), reason="shared/data/eels absent"),
              pytest.mark.filterwarnings("ignore")]


@pytest.fixture(scope="module")
def hs():
    pytest.importorskip("exspy")
    return pytest.importorskip("hyperspy.api")


def test_zero_loss_peaks_match_exspy(hs):
    from layerscope.spectra import from_signal, zlp_shifts

    z = hs.load(DATA / "ZLP_EELS_Spectrum_Image.dm3", signal_type="EELS")
    theirs = z.estimate_zero_loss_peak_centre().data.ravel()
    spec = from_signal(z)
    ours = -zlp_shifts(spec.energy_eV, spec.counts).shift_eV
    step = z.axes_manager.signal_axes[0].scale
    assert spec.nav_shape == z.data.shape[:-1]
    # exSpy gives the maximum channel, we interpolate between channels: within half a channel
    np.testing.assert_array_less(np.abs(ours - theirs), 0.5 * step + 1e-6)
    assert np.ptp(ours) < 0.6                                          # drift over the scan


def test_signal_in_memory_matches_file_reader(hs, tmp_path):
    from layerscope.spectra import analyse_signal, eels_pipeline, read_spectrum

    c = hs.load(DATA / "TM+O_EELS_Spectrum_Image.dm3", signal_type="EELS")
    z = hs.load(DATA / "ZLP_EELS_Spectrum_Image.dm3", signal_type="EELS")
    maps = analyse_signal(c, low_loss=z)
    assert maps["valence"].shape == c.data.shape[:-1] == (2, 21)
    spec, low = read_spectrum(DATA / "TM+O_EELS_Spectrum_Image.dm3"), \
        read_spectrum(DATA / "ZLP_EELS_Spectrum_Image.dm3")
    res, _ = eels_pipeline(spec.energy_eV, spec.counts, low_loss=low.counts,
                           low_loss_energy_eV=low.energy_eV)
    np.testing.assert_allclose(maps["valence"].ravel(), res.valence, rtol=1e-9, equal_nan=True)


def test_power_law_background_matches_exspy(hs):
    from layerscope.spectra import subtract_background

    s = hs.load(DATA / "exspy_coreloss_spectrum.msa", signal_type="EELS")
    e = s.axes_manager.signal_axes[0].axis
    theirs = s.remove_background(signal_range=(606.0, 638.0), background_type="PowerLaw",
                                 fast=False, show_progressbar=False).data
    ours, _ = subtract_background(e, s.data.astype(float), (606.0, 638.0))
    m = (e >= 644.0) & (e <= 653.0)
    assert trapezoid(ours[m], e[m]) == pytest.approx(trapezoid(theirs[m], e[m]), rel=0.01)
