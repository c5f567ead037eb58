"""
4D-STEM strain mapping from Bragg-disk positions
================================================

In nanobeam electron diffraction the Bragg disks move as the lattice deforms: with a real-space
deformation gradient F, the reciprocal lattice becomes G = F⁻ᵀ G₀. Detecting the disks (template
cross-correlation), fitting the two lattice vectors at every probe position and comparing them with a
reference region gives the strain components εxx, εyy, εxy and the lattice rotation. A simulated scan
under a known smooth strain field of about 1 % checks the maps.
"""

import numpy as np

from layerscope.fourd import calibrate as cb
from layerscope.fourd.strain import strain_map
from layerscope.simulate.fourd import simulate_strain_scan

data, truth = simulate_strain_scan(scan_shape=(10, 12), amplitude=0.01)
data = np.asarray(data, np.float32)
sm = strain_map(data, reference=truth["reference"], probe_radius_px=3.0, origins=cb.beam_origins(data))
for k in ("exx", "eyy", "exy"):
    est = np.asarray(getattr(sm, k))
    err = np.nanmax(np.abs(est - truth[k]))
    print(f"{k}: truth range {truth[k].min():+.4f} … {truth[k].max():+.4f}; largest error {err:.1e}")
    assert err < 2e-3
