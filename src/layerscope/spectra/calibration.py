"""Valence calibrations: a measured quantity (L3/L2 ratio, ΔE) -> oxidation state.

A :class:`ValenceCalibration` is a table of reference compounds of known formal valence and the
quantity measured on them. Between points it interpolates linearly; **outside the table it
returns NaN** (:meth:`ValenceCalibration.valence`) — an extrapolated valence is not a
measurement — and :meth:`ValenceCalibration.check` says why.

White-line ratios depend on how they were extracted (background, continuum step, windows), so a
calibration is only valid with the method that produced it. Two ways to get one:

* :data:`MN_L3L2_TAN2012` — the default table (see its ``source`` and ``status``), and
* :func:`calibration_from_references` — measure your own reference spectra with exactly the
  settings used for the unknowns (the documented alternative, and the recommended one).

Provenance of :data:`MN_L3L2_TAN2012`
-------------------------------------
The four points (MnO 2+, Mn3O4 8/3+, Mn2O3 3+, MnO2 4+) were entered for the calibration the
paper uses (its ref. 29, Tan, Verbeeck, Abakumov & Van Tendeloo, Ultramicroscopy 116, 24–33,
2012; Supp. Fig. 4d of the paper). The published table could not be opened while this module was
written (only the abstract was reachable), so ``status`` says ``"not checked against the
publication's table"``; each point carries that status in the outputs (``record.json``) and the
command line prints it. Replace the numbers by the table of the publication you use, with its
table/figure number in ``source``, or calibrate on your own references.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ValenceCalibration:
    """Piecewise-linear map from a measured quantity (a ratio, ΔE in eV) to a valence.

    Attributes
    ----------
    valences : tuple of float
        Oxidation states of the reference compounds (increasing).
    ratios : tuple of float
        The quantity measured on them (strictly monotonic in valence); for a ΔE calibration these
        are energies in eV.
    compounds : tuple of str
    source : str
        Publication and table/figure, or the reference files.
    status : str
        ``"checked"`` when every number was compared with the cited table, else what is missing.
    quantity : str
        What ``ratios`` holds (``"L3/L2"``, ``"dE(Mn L3 - O K pre-edge) eV"``).
    """

    valences: tuple
    ratios: tuple
    compounds: tuple = ()
    source: str = ""
    status: str = "user-given"
    quantity: str = "L3/L2"

    def __post_init__(self):
        v = np.asarray(self.valences, float)
        r = np.asarray(self.ratios, float)
        if v.shape != r.shape or len(v) < 2:
            raise ValueError("a calibration needs at least two (valence, ratio) points")
        if not (np.all(np.diff(v) > 0) and (np.all(np.diff(r) < 0) or np.all(np.diff(r) > 0))):
            raise ValueError("calibration valences must increase and ratios be strictly monotonic")

    @property
    def range(self) -> tuple:
        r = np.asarray(self.ratios, float)
        return float(r.min()), float(r.max())

    def valence(self, ratio):
        """Valence for a measured value: linear between points, NaN outside the table."""
        v = np.asarray(self.valences, float)
        r = np.asarray(self.ratios, float)
        x = np.asarray(ratio, float)
        order = np.argsort(r)
        out = np.interp(x, r[order], v[order])
        out = np.where((x < r.min()) | (x > r.max()) | ~np.isfinite(x), np.nan, out)
        return float(out) if np.ndim(out) == 0 else out

    def check(self, ratio) -> str:
        """'' if ``ratio`` is inside the table, else a flag naming the value and the range."""
        lo, hi = self.range
        if not np.isfinite(ratio):
            return f"{self.quantity} not measured"
        if ratio < lo or ratio > hi:
            return (f"{self.quantity} {ratio:.3f} outside the calibration range {lo:g}-{hi:g} "
                    f"(valence not extrapolated)")
        return ""

    def ratio(self, valence):
        """Value expected for a valence (linear between the calibration points)."""
        return np.interp(valence, np.asarray(self.valences, float), np.asarray(self.ratios, float))

    def as_dict(self) -> dict:
        return {"quantity": self.quantity, "valences": list(self.valences),
                "values": list(self.ratios), "compounds": list(self.compounds),
                "source": self.source, "status": self.status}


def calibration_from_references(valences, measured, *, compounds=(), source="",
                                quantity="L3/L2") -> ValenceCalibration:
    """A calibration from your own reference spectra (measured with the same settings).

    ``measured[k]`` is the quantity measured on the reference of valence ``valences[k]``; points
    are sorted by valence. Raises ValueError if the values are not monotonic in valence (the
    references then cannot define a calibration).
    """
    v = np.asarray(valences, float)
    m = np.asarray(measured, float)
    o = np.argsort(v)
    return ValenceCalibration(tuple(v[o]), tuple(m[o]),
                              tuple(np.asarray(compounds, object)[o]) if len(compounds) else (),
                              source or "own reference spectra", "measured", quantity)


#: Mn L3/L2 against valence — see the module's "Provenance" section before quoting valences.
MN_L3L2_TAN2012 = ValenceCalibration(
    valences=(2.0, 8.0 / 3.0, 3.0, 4.0),
    ratios=(3.95, 2.90, 2.60, 1.95),
    compounds=("MnO", "Mn3O4", "Mn2O3", "MnO2"),
    source=("Tan, Verbeeck, Abakumov & Van Tendeloo, Ultramicroscopy 116, 24-33 (2012), "
            "doi:10.1016/j.ultramic.2012.03.002; Mn L3/L2 of MnO, Mn3O4, Mn2O3, MnO2 (as used by the "
            "paper, its ref. 29, Supp. Fig. 4d)"),
    status="not checked against the publication's table (numbers entered from the published "
           "trend; see layerscope.spectra.calibration)",
)
