"""
Structural descriptors of a Li-rich layered oxide (eq. 1–3)
===========================================================

The paper describes the Li/TM ordering of the O3' (C2/m, Li\\ :sub:`2`\\ MnO\\ :sub:`3`-like) phase with
three descriptors computed from refined site occupancies:

* degree of ordering, eq. 1: DoO = occ(Li, 2b) / (occ(Li, 2b) + 2·occ(Li, 4g));
* degree of disorder, eq. 2: DoD, the fraction of transition-metal ions on Li-layer sites;
* the oxygen vacancy of the whole electrode, eq. 3, a phase-fraction-weighted sum.

``ls.descriptors`` computes them (and the inter- and intra-layer spacings) for preset phases,
CIF files or refined phases. Here the pristine preset (table S1 of the paper) is checked against
eq. 1 written out by hand.
"""

import layerscope as ls

d = ls.descriptors("lrm-pristine:O3p")["O3p"]
print(f"DoO (eq. 1)          = {d['DoO']:.4f}")
print(f"DoD (eq. 2)          = {d['DoD']:.5f}")
print(f"O vacancy per O3' O  = {float(d['O_vacancy']):.4f}")
print(f"d_inter, d_intra     = {d['d_inter']:.4f} Å, {d['d_intra']:.4f} Å")

# %%
# Eq. 1 by hand from table S1's occupancies: Li on 2b = 0.561, Li on 4g = 0.021.
doo_by_hand = 0.561 / (0.561 + 2 * 0.021)
print(f"DoO from ls.descriptors {d['DoO']:.6f}, by hand {doo_by_hand:.6f}")
assert abs(d["DoO"] - doo_by_hand) < 1e-12

# %%
# The pristine electrode has an O3' phase and a spinel (S) shell; both get their descriptors.
for name, values in ls.descriptors("lrm-pristine").items():
    print(name, {k: round(float(v), 4) for k, v in values.items() if k != "phase"})
