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
2012; Supp. Fig. 4d of the paper). Each point is a :class:`CalibrationPoint` naming the
publication, the place in it and whether the number was compared with that place: **none was**
(``checked=False``; the table/figure holding them is not identified), so ``status`` says
``"not checked against the publication's table"``, the outputs (``record.json``) carry it and the
command line prints it. Replace the numbers by the table of the publication you use, with its
table/figure number, or calibrate on your own references.

Literature check (3 Dec 2026, :data:`LITERATURE_CHECK`)
--------------------------------------------------------
The stored public copies of the publications were searched for the numbers. Only the title page
(title, authors, abstract, first line of the introduction) of each could be read; no table and
no figure value was reachable:

* Zhang, Livi, Gaillot, Stone & Veblen, Am. Mineral. 95, 1741–1746 (2010) (studylib.net copy):
  the abstract says ΔE(Mn L3 − O K) vs. valence is "the most valence-sensitive method in the range
  of Mn3+ and Mn4+"; its reference compounds' ΔE and L3/L2 values were not readable.
* Tan et al., Ultramicroscopy 116, 24–33 (2012) (pure.skoltech.ru record): abstract only.
* Wang, Bentley & Evans, Micron 31, 355–362 (2000) (studylib.net copy): abstract and the start of
  the introduction only.
* Varela et al., PRB 79, 085117 (2009) and Riedl et al., PRB (2006): not found in the store.

Hence there is **no built-in ΔE(Mn L3 − O K) calibration** (:data:`MN_DE_CALIBRATION` is
``None``): ``valence_shift`` is NaN unless a table is given (``--shift-calibration`` or
``EelsOptions(shift_calibration=...)``), and ``delta_e_eV`` holds the measured ΔE. No number
from memory was entered for either method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CalibrationPoint:
    """One number of a calibration table and where it comes from.

    ``location`` is the table or figure of ``publication`` holding the number (or why it is not
    known); ``checked`` is True only when the number was compared with that table/figure.
    """

    compound: str
    valence: float
    value: float
    publication: str
    location: str
    checked: bool = False

    def as_dict(self) -> dict:
        return {"compound": self.compound, "valence": self.valence, "value": self.value,
                "publication": self.publication, "location": self.location,
                "checked": self.checked}


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
    points : tuple of CalibrationPoint
        The citation of each number (empty for a user-given or measured table); when given they
        must repeat ``valences``/``ratios``/``compounds`` exactly.
    """

    valences: tuple
    ratios: tuple
    compounds: tuple = ()
    source: str = ""
    status: str = "user-given"
    quantity: str = "L3/L2"
    points: tuple = ()

    def __post_init__(self):
        v = np.asarray(self.valences, float)
        r = np.asarray(self.ratios, float)
        if v.shape != r.shape or len(v) < 2:
            raise ValueError("a calibration needs at least two (valence, ratio) points")
        if not (np.all(np.diff(v) > 0) and (np.all(np.diff(r) < 0) or np.all(np.diff(r) > 0))):
            raise ValueError("calibration valences must increase and ratios be strictly monotonic")
        if self.points and ([(p.valence, p.value) for p in self.points] != list(zip(v, r))
                            or (self.compounds and tuple(p.compound for p in self.points)
                                != tuple(self.compounds))):
            raise ValueError("calibration points must repeat the table's valences, values and "
                             "compounds")

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

    def valence_esd(self, ratio, ratio_esd):
        """esd of :meth:`valence` from the esd of the measured value: ``|dv/dr| * esd``.

        The slope is that of the table segment holding ``ratio`` (NaN outside the table, where
        there is no valence either).
        """
        v = np.asarray(self.valences, float)
        r = np.asarray(self.ratios, float)
        order = np.argsort(r)
        r, v = r[order], v[order]
        x = np.asarray(ratio, float)
        k = np.clip(np.searchsorted(r, x, side="right") - 1, 0, len(r) - 2)
        slope = np.abs((v[k + 1] - v[k]) / (r[k + 1] - r[k]))
        out = slope * np.asarray(ratio_esd, float)
        out = np.where((x < r[0]) | (x > r[-1]) | ~np.isfinite(x), np.nan, out)
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
                "source": self.source, "status": self.status,
                "points": [p.as_dict() for p in self.points]}


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


_TAN2012 = ("Tan, Verbeeck, Abakumov & Van Tendeloo, Ultramicroscopy 116, 24-33 (2012), "
            "doi:10.1016/j.ultramic.2012.03.002")
_TAN2012_WHERE = ("table/figure not identified: only the abstract of the publication was readable "
                  "(3 Dec 2026); number not compared with the publication")

#: Mn L3/L2 against valence — see the module's "Provenance" section before quoting valences.
MN_L3L2_TAN2012 = ValenceCalibration(
    valences=(2.0, 8.0 / 3.0, 3.0, 4.0),
    ratios=(3.95, 2.90, 2.60, 1.95),
    compounds=("MnO", "Mn3O4", "Mn2O3", "MnO2"),
    source=(_TAN2012 + "; Mn L3/L2 of MnO, Mn3O4, Mn2O3, MnO2 (as used by the paper, its ref. 29, "
            "Supp. Fig. 4d)"),
    status="not checked against the publication's table (numbers entered from the published "
           "trend; see layerscope.spectra.calibration)",
    points=tuple(CalibrationPoint(c, v, r, _TAN2012, _TAN2012_WHERE, False) for c, v, r in
                 zip(("MnO", "Mn3O4", "Mn2O3", "MnO2"), (2.0, 8.0 / 3.0, 3.0, 4.0),
                     (3.95, 2.90, 2.60, 1.95))),
)

#: Built-in ΔE(Mn L3 − O-K pre-edge) calibration: none, because no published table could be read
#: (see :data:`LITERATURE_CHECK`); ``valence_shift`` needs a user-given table.
MN_DE_CALIBRATION = None

#: Why :data:`MN_DE_CALIBRATION` is None (written into record.json and printed).
MN_DE_STATUS = ("no built-in ΔE(Mn L3 − O-K pre-edge) calibration: the reference values of Zhang "
                "et al., Am. Mineral. 95, 1741-1746 (2010) could not be read from a stored copy "
                "(abstract only); give one with --shift-calibration")

#: What was searched for the calibration numbers and what could be read (no number was verified).
LITERATURE_CHECK = (
    {"publication": "Zhang, Livi, Gaillot, Stone & Veblen, Am. Mineral. 95, 1741-1746 (2010)",
     "copy": "https://studylib.net/doc/8345851/determination-of-manganese-valence-states-in--mn3---mn4-",
     "readable": "title, authors, abstract, first line of the introduction",
     "found": "dE(L3 - O K) vs. valence is the most valence-sensitive calibration-curve method for "
              "Mn3+-Mn4+ (abstract, qualitative)",
     "numbers_verified": ()},
    {"publication": _TAN2012,
     "copy": "https://pure.skoltech.ru/en/publications/oxidation-state-and-chemical-shift-"
             "investigation-in-transition-me-4",
     "readable": "abstract", "found": "white-line ratio and chemical-shift methods compared "
                                      "(abstract, qualitative)", "numbers_verified": ()},
    {"publication": "Wang, Bentley & Evans, Micron 31, 355-362 (2000)",
     "copy": "https://studylib.net/doc/8345853/valence-state-mapping-of-cobalt-and-manganese",
     "readable": "abstract, start of the introduction", "found": "no L3/L2 values",
     "numbers_verified": ()},
    {"publication": "Varela et al., Phys. Rev. B 79, 085117 (2009)", "copy": None,
     "readable": "not found in the store", "found": "", "numbers_verified": ()},
    {"publication": "Riedl et al., Phys. Rev. B (2006)", "copy": None,
     "readable": "not found in the store", "found": "", "numbers_verified": ()},
)
