"""
Kinematic zone-axis electron diffraction and twin overlay
=========================================================

The monoclinic O3' phase (C2/m) shows superstructure spots from the honeycomb Li/TM ordering, and a
(001) twin adds spots of its own. ``zone_axis_figure`` computes the kinematic pattern (intensities from
the structure factors, damped by each spot's excitation error for a precessed beam) and overlays the
twin variant in orange, as in Supp. Fig. 18 of the paper. The parent's zero-order Laue-zone spots of a
zone [uvw] obey the zone law h·u + k·v + l·w = 0, checked here for every parent spot drawn.
"""

import numpy as np

from layerscope.fourd.api import zone_axis_figure

fig, pattern = zone_axis_figure("lrm-pristine:O3p", (1, 0, 0), twin="(001)", kv=200.0)
parent = pattern.variant == 0
hkl = pattern.hkl[parent]
print(f"{parent.sum()} parent and {(~parent).sum()} twin spots in the [100] zone")
print(f"zone law, largest |h·u + k·v + l·w| over the parent spots: {np.max(np.abs(hkl @ [1, 0, 0])):.0f}")
assert np.all(hkl @ np.array([1, 0, 0]) == 0)
strongest = np.argsort(pattern.intensity[parent])[::-1][:5]
for i in strongest:
    print(f"  hkl {hkl[i].astype(int)}  d = {pattern.d_angstrom[parent][i]:.3f} Å  I = {pattern.intensity[parent][i]:.3g}")
fig
