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
What is checked: the four reference compounds and their formal valences (MnO 2+, Mn3O4 8/3+,
Mn2O3 3+, MnO2 4+ — stoichiometry), and that the paper cites Tan, Verbeeck, Abakumov & Van
Tendeloo, Ultramicroscopy 116, 24–33 (2012) (its ref. 29, for Supp. Fig. 4d) for its L3/L2
valence scale. What is **not** checked: the four L3/L2 values 3.95, 2.90, 2.60, 1.95. They were
entered with the first version of this module (layerscope commit be07efc, "Tan et al. 2012
trend, values flagged for verification") without a table or figure number, and no stored copy of
the publication shows its numbers (see below), so no number could be compared with it. Each point
is a :class:`CalibrationPoint` that says so (``checked=False``); ``status`` says ``"not checked
against the publication's table"``; the outputs (``record.json``) carry both and the command line
prints the status. White-line ratios also depend on how they are extracted (background, step,
windows): even a verified published table only applies to a spectrum measured the same way. For a
valence that can be defended, calibrate on your own reference spectra
(:func:`calibration_from_references`, ``--calibration references``) or give a table with its
source (``--calibration FILE``).

Literature check (3 Dec 2026, :data:`LITERATURE_CHECK`)
--------------------------------------------------------
The stored public copies of the publications, public code and issue threads were searched for
the numbers (two passes: "Tan 2012 Ultramicroscopy Mn L3/L2", "Mn L3/L2 white line ratio
valence calibration MnO Mn3O4 Mn2O3 MnO2", Riedl 2006, Varela 2009, Wang 2000, Zhang 2010,
ΔE(L3 − O K) cryptomelane/pyrolusite, exact-string searches of code). Only the title page
(title, authors, abstract, first line of the introduction) of each publication could be read; no
table and no figure value was reachable:

* Zhang, Livi, Gaillot, Stone & Veblen, Am. Mineral. 95, 1741–1746 (2010) (studylib.net copy):
  the abstract says ΔE(Mn L3 − O K) vs. valence is "the most valence-sensitive method in the range
  of Mn3+ and Mn4+"; its reference compounds' ΔE and L3/L2 values were not readable.
* Tan et al., Ultramicroscopy 116, 24–33 (2012) (pure.skoltech.ru record): abstract only.
* Wang, Bentley & Evans, Micron 31, 355–362 (2000) (studylib.net copy): abstract and the start of
  the introduction only.
* Rask, Miner & Buseck, Ultramicroscopy 21, 321–326 (1987) (asu.elsevierpure.com record) and
  Mansot et al., Microsc. Microanal. Microstruct. 5, 79–90 (1994) (edpsciences abstract):
  abstracts only, no values.
* Public code quoting a Mn L3/L2 table: none found (chenlabUIUC/OrientedPhaseDomain computes
  Pearson-method Mn L3/L2 ratios of cathode particles but holds no valence table;
  HailiJia/MultimodalEELS-XAS, the source of the NMC data, holds none either).
* Varela et al., PRB 79, 085117 (2009), Riedl et al., Ultramicroscopy 106, 284 (2006) and Kurata
  & Colliex, PRB 48, 2102 (1993): not found in the store.

A second search (3 Dec 2026, later session; pages, docs and code corpora: "Mn L3/L2 white line
ratio MnO Mn2O3 MnO2 values", Wang/Bentley/Evans 2000 body text, Schmid & Mader 2006, Varela
2009, Tan 2012 tables, exact strings "Mn L3/L2 ratio" and "white line ratio" in code) found no
number either: the same title pages and abstracts; an abstract of Sparrow et al. (Chem. Phys.
Lett. 108, 547, 1984; "L3/L2 white-line intensity ratios in the EELS of 3d transition-metal
oxides") states only the trend (maximum at d5, e.g. MnO; minimum at d0, e.g. KMnO4), which the
table follows; globalsino.com's EELS-of-Mn page and xpsfitting.com's Mn page hold no EELS L3/L2
values. The table therefore stays unverified.

Compatibility with the extraction method (measured, NMC spectrum image of ``shared/data/eels``,
Mn expected near 4+): without deconvolution the thick pixels (t/λ ≈ 1) give L3/L2 1.9-2.6
(median 2.2, valence 3.5-3.9 with this table); after Fourier-ratio deconvolution with each pixel's
low-loss (:mod:`layerscope.spectra.plural`, checked against exSpy) they give 1.65-1.93 (median
1.78), *below* the table's MnO2 value 1.95, i.e. outside the table (NaN + flag). Plural scattering
raises the ratio of this method (its post-edge continuum window lies on the plasmon replicas), so
a table can only be used with spectra of the same thickness regime and extraction as its own
references: one more reason to calibrate on your own reference spectra.

Hence there is **no built-in ΔE(Mn L3 − O K) calibration** (:data:`MN_DE_CALIBRATION` is
``None``): ``valence_shift`` is NaN unless a table is given (``--shift-calibration`` or
``EelsOptions(shift_calibration=...)``), and ``delta_e_eV`` holds the measured ΔE. No ΔE number
was entered, and the L3/L2 numbers were neither changed nor confirmed by this check.
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
_TAN2012_WHERE = ("table/figure not identified: entered without a table/figure number (layerscope "
                  "commit be07efc); only the abstract of the publication was readable (3 Dec "
                  "2026); number not compared with the publication")

#: Mn L3/L2 against valence — see the module's "Provenance" section before quoting valences.
MN_L3L2_TAN2012 = ValenceCalibration(
    valences=(2.0, 8.0 / 3.0, 3.0, 4.0),
    ratios=(3.95, 2.90, 2.60, 1.95),
    compounds=("MnO", "Mn3O4", "Mn2O3", "MnO2"),
    source=(_TAN2012 + "; Mn L3/L2 of MnO, Mn3O4, Mn2O3, MnO2 (as used by the paper, its ref. 29, "
            "Supp. Fig. 4d)"),
    status="not checked against the publication's table (the compounds and their formal valences "
           "are; the four L3/L2 values were entered without a table/figure number and no copy of "
           "the publication's tables could be read; see layerscope.spectra.calibration)",
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
    {"publication": "Rask, Miner & Buseck, Ultramicroscopy 21, 321-326 (1987)",
     "copy": "https://asu.elsevierpure.com/en/publications/determination-of-manganese-oxidation-"
             "states-in-solids-by-electron", "readable": "abstract", "found": "no L3/L2 values",
     "numbers_verified": ()},
    {"publication": "Mansot, Leone, Euzen & Palvadeau, Microsc. Microanal. Microstruct. 5, 79-90 "
                    "(1994)", "copy": "https://mmm.edpsciences.org/articles/mmm/abs/1994/02/"
                                      "mmm_1994__5_2_79_0/mmm_1994__5_2_79_0.html",
     "readable": "abstract", "found": "edge shifts more precise than L3/L2 (qualitative)",
     "numbers_verified": ()},
    {"publication": "public code (GitHub store): chenlabUIUC/OrientedPhaseDomain, "
                    "HailiJia/MultimodalEELS-XAS, exact-string searches", "copy": None,
     "readable": "yes", "found": "no Mn L3/L2 calibration table", "numbers_verified": ()},
    {"publication": "Sparrow, Williams, Rao & Thomas, Chem. Phys. Lett. 108, 547 (1984)",
     "copy": "https://network.rawdatalibrary.net/publication/l3-l2-white-line-intensity-ratios-in-the-"
             "electron-energy-loss-spectra-of-3d-transition-metal-oxides-103bc9",
     "readable": "abstract", "found": "L3/L2 maximal at d5 (MnO), minimal at d0 (KMnO4) (qualitative)",
     "numbers_verified": ()},
    {"publication": "second search (pages/docs/code): Schmid & Mader (Micron 2006), Varela 2009, Tan "
                    "2012 tables, Wang 2000 body; globalsino.com EELS of Mn; exact strings 'Mn L3/L2 "
                    "ratio', 'white line ratio'", "copy": None, "readable": "abstracts/title pages only",
     "found": "no Mn L3/L2 numbers", "numbers_verified": ()},
    {"publication": "Varela et al., Phys. Rev. B 79, 085117 (2009)", "copy": None,
     "readable": "not found in the store", "found": "", "numbers_verified": ()},
    {"publication": "Riedl, Gemming & Wetzig, Ultramicroscopy 106, 284-291 (2006)", "copy": None,
     "readable": "not found in the store", "found": "", "numbers_verified": ()},
    {"publication": "Kurata & Colliex, Phys. Rev. B 48, 2102-2108 (1993)", "copy": None,
     "readable": "not found in the store", "found": "", "numbers_verified": ()},
)
