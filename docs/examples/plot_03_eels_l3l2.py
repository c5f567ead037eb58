"""
Mn L3/L2 ratio and valence from an EELS spectrum
================================================

The white-line ratio of the Mn L\\ :sub:`2,3` edge falls as the Mn valence rises; layerscope integrates
the L3 and L2 lines over a double-step (Hartree–Slater-like) continuum after a power-law background and
converts the ratio to a valence with a published calibration (Tan et al. 2012 by default). A synthetic
edge with a known L3/L2 = 2.6 is analysed and the ratio compared with that truth.
"""

import matplotlib.pyplot as plt

import layerscope as ls

energy, counts, truth = ls.simulate.spectra.mn_l23_eels(l3_over_l2=2.6)
r = ls.analyze_eels((energy, counts))
print(r)
print(f"L3/L2: truth {truth['l3_over_l2']:.3f}, measured {r.l3_over_l2[0]:.3f} "
      f"({100 * (r.l3_over_l2[0] / truth['l3_over_l2'] - 1):+.2f} %)")
print(f"valence {r.valence[0]:.3f} (calibration: {r.options.calibration.valence(2.6):.3f} at L3/L2 = 2.6)")
assert abs(r.l3_over_l2[0] / truth["l3_over_l2"] - 1) < 0.02

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(energy, counts, "k", lw=0.8)
ax.set_xlabel("energy loss (eV)")
ax.set_ylabel("counts")
ax.set_title("simulated Mn L2,3 edge")
