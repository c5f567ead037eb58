"""
O-K soft X-ray absorption: the pre-edge integral
================================================

The O-K pre-edge (525–535 eV) probes empty O 2p – TM 3d hybrid states; its integrated intensity
after edge-step normalisation tracks oxygen redox between states of charge. Normalisation removes a
straight line fitted below the edge and divides by the mean post-edge step. A simulated spectrum whose
normalised form is known exactly (Gaussian peaks plus a unit error-function step) checks the integral.
"""

import matplotlib.pyplot as plt
from scipy.integrate import trapezoid

from layerscope.simulate.spectra import o_k_xas
from layerscope.spectra.xas import integrated_intensity, normalize

e, mu, truth = o_k_xas()
mu_norm = normalize(e, mu)
measured = integrated_intensity(e, mu_norm, (525.0, 535.0))
window = (e >= 525.0) & (e <= 535.0)
expected = trapezoid(truth["normalised"][window], e[window])
print(f"pre-edge integral 525–535 eV: {measured:.4f} eV (truth {expected:.4f} eV, "
      f"{100 * (measured / expected - 1):+.2f} %)")
assert abs(measured / expected - 1) < 0.02

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(e, mu_norm, label="normalised")
ax.plot(e, truth["normalised"], "--", label="truth")
ax.axvspan(525, 535, alpha=0.15)
ax.set_xlabel("photon energy (eV)")
ax.legend()
