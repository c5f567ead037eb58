"""
Cycle summary of a simulated Li-rich half-cell
==============================================

``ls.cycle_summary`` turns a cycler record into one row per cycle: charge and discharge capacity,
Coulombic efficiency, average voltages and energies. The simulator ``lrm_half_cell`` models a coated
Li-rich cathode vs Li: a first cycle through the ~4.5 V oxygen-redox plateau with a first-cycle
Coulombic efficiency of 91 %, then a rate test. The efficiency the analysis measures from the simulated
voltage and current is compared with the model's own.
"""

import matplotlib.pyplot as plt
import numpy as np

import layerscope as ls

log = ls.simulate.cycler.lrm_half_cell("coated", mass_mg=10.0)
s = ls.cycle_summary(log, mass_mg=10.0)
print(s)
ds = s.to_xarray()
print(ds[["charge_mAh", "discharge_mAh", "ce"]].to_dataframe().round(4))
truth = log.meta["truth"]
ce_true = np.asarray(truth["ce"], float)
print("CE measured:", np.round(s.ce, 4))
print("CE truth:   ", np.round(ce_true, 4))
print(f"largest |measured - truth| = {np.nanmax(abs(np.asarray(s.ce) - ce_true)):.2e}")
assert np.nanmax(abs(np.asarray(s.ce) - ce_true)) < 0.005

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(ds["cycle"], ds["discharge_mAh"], "o-")
ax.set_xlabel("cycle")
ax.set_ylabel("discharge capacity (mAh)")
