"""Valence calibrations: white-line ratio -> oxidation state.

The default Mn calibration holds L3/L2 ratios of Mn reference oxides of
known valence, after Tan, Verbeeck, Abakumov & Van Tendeloo, "Oxidation
state and chemical shift investigation in transition metal oxides by EELS",
Ultramicroscopy 116, 24–33 (2012) — the calibration the paper uses (its
ref. 29 and Supp. Fig. 4d).

.. warning::
   The numbers in :data:`MN_L3L2_TAN2012` were entered from the published
   calibration trend (MnO, Mn3O4, Mn2O3, MnO2) without the paper's table at
   hand; check them against Tan et al. (2012) before quoting absolute
   valences, or pass your own :class:`ValenceCalibration` measured with the
   same background and step settings as your data. White-line ratios depend
   on the continuum model, so a calibration is only valid with the method
   that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ValenceCalibration:
    """Piecewise-linear map from a white-line ratio to a valence.

    Attributes
    ----------
    valences : tuple of float
        Oxidation states of the reference compounds (increasing).
    ratios : tuple of float
        Their L3/L2 ratios (strictly monotonic in valence).
    compounds : tuple of str
    source : str
    """

    valences: tuple
    ratios: tuple
    compounds: tuple = ()
    source: str = ""

    def __post_init__(self):
        v = np.asarray(self.valences, float)
        r = np.asarray(self.ratios, float)
        if v.shape != r.shape or len(v) < 2:
            raise ValueError("a calibration needs at least two (valence, ratio) points")
        if not (np.all(np.diff(v) > 0) and (np.all(np.diff(r) < 0) or np.all(np.diff(r) > 0))):
            raise ValueError("calibration valences must increase and ratios be strictly monotonic")

    def valence(self, ratio):
        """Valence for a ratio: linear between points, along the end segments beyond."""
        v = np.asarray(self.valences, float)
        r = np.asarray(self.ratios, float)
        x = np.asarray(ratio, float)
        order = np.argsort(r)
        rs, vs = r[order], v[order]
        out = np.interp(x, rs, vs)
        out = np.where(x < rs[0], vs[0] + (x - rs[0]) * (vs[1] - vs[0]) / (rs[1] - rs[0]), out)
        out = np.where(x > rs[-1], vs[-1] + (x - rs[-1]) * (vs[-1] - vs[-2]) / (rs[-1] - rs[-2]),
                       out)
        return float(out) if np.ndim(out) == 0 else out

    def ratio(self, valence):
        """Ratio expected for a valence (linear between the calibration points)."""
        return np.interp(valence, np.asarray(self.valences, float), np.asarray(self.ratios, float))


#: Mn L3/L2 against valence, after Tan et al. (2012) — see the module warning.
MN_L3L2_TAN2012 = ValenceCalibration(
    valences=(2.0, 8.0 / 3.0, 3.0, 4.0),
    ratios=(3.95, 2.90, 2.60, 1.95),
    compounds=("MnO", "Mn3O4", "Mn2O3", "MnO2"),
    source="Tan et al., Ultramicroscopy 116, 24 (2012) (values to be verified, see module docs)",
)
