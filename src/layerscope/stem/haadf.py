"""``analyze_haadf``: one HAADF/ABF-STEM image in, a :class:`HaadfResult` out (no file is written).

The analyses (chosen as ``layerscope haadf`` chooses them):

* any crystal (default): lattice, sublattices, per-cell metrics, displacements, vacancies
  (:func:`layerscope.stem.analysis.analyse_crystal`); when the lattice is recognised as a
  layered oxide along <100>_O3 (:func:`~layerscope.stem.analysis.recognise_layered`), or with
  ``zone="100"``, the layered analysis instead (m/n, twin variants, boundaries, pores);
* ``zone="210"``: O3' domains A/B/C and the Li/TM order modulation;
* ``mode="lowmag"``: particles and their pore/trench defects (table S4);
* ``mode="shell"``: layered/spinel map and the surface spinel shell thickness.

Every table of the result is what the command line writes as CSV (same columns, same order):
:func:`layerscope.stem.haadf_output.write_haadf` writes them, ``summary.json``, ``strain.h5``
and the figures (:func:`~layerscope.stem.haadf_output.plot_haadf`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layerscope._errors import InputError

__all__ = ["HaadfResult", "analyze_haadf"]

#: units of table columns, from the column name's suffix (the rest are dimensionless or labels)
_SUFFIX_UNITS = {"_px": "px", "_nm": "nm", "_nm2": "nm^2", "_deg": "deg", "_rad": "rad"}


def _column_units(name: str) -> str:
    for suffix, unit in sorted(_SUFFIX_UNITS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return unit
    return ""


@dataclass(frozen=True, repr=False)
class HaadfResult:
    """What :func:`analyze_haadf` found in one image.

    Attributes
    ----------
    analysis : ``"crystal"``, ``"layered-100"``, ``"zone-210"``, ``"lowmag"`` or ``"shell"``
    source : the image file (or ``"<array>"``)
    calibration : ``{"pixel_size_nm": float or None, "units": "nm" | "px"}`` as used (from the file,
        the caller, or a known lattice spacing/cell; ``None``: results in pixels, ``_nm`` columns NaN)
    columns : the columns table (``x_px``, ``y_px``, ``x_nm``, ... one entry per column), or None
    lattice : lattice parameters (any-crystal analysis: from the FFT and from the positions, and
        their agreement), or None
    metrics : the other tables by name (``cells``, ``boundaries``, ``defects``, ``lattice_cells``,
        ``displacements``, ``vacancies``, ``domains``, ``domain_cells``, ``particles``, ``shell``)
    flags : what was assumed or could not be determined (also printed as warnings)
    summary : the headline numbers and notes (``summary.json``)
    strain : the GPA result (:class:`~layerscope.stem.gpa.GPAResult`) or None
    image : the analysed image (inverted for dark-atom contrast)
    """

    analysis: str
    source: str
    calibration: dict
    columns: dict | None
    lattice: dict | None
    metrics: dict
    flags: tuple
    summary: dict
    strain: object = None
    image: np.ndarray | None = None
    warnings: tuple = ()
    _figure_data: dict = field(default_factory=dict)

    @property
    def tables(self) -> dict:
        """Every table by its CSV name (``columns`` first)."""
        return ({"columns": self.columns} if self.columns is not None else {}) | dict(self.metrics)

    def to_dataframe(self, table: str = "columns"):
        """One table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame({k: np.asarray(v) for k, v in self._table(table).items()})

    def to_xarray(self, table: str = "columns"):
        """One table as an xarray Dataset over its rows (dimension ``table``), units in attrs."""
        import xarray as xr

        t = self._table(table)
        data = {}
        for k, v in t.items():
            arr = np.asarray(v)
            data[k] = ((table,), arr, {"units": _column_units(k)} if _column_units(k) else {})
        return xr.Dataset(data, attrs={"source": self.source, "analysis": self.analysis,
                                       "pixel_size_nm": self.calibration.get("pixel_size_nm") or np.nan})

    def _table(self, name):
        tabs = self.tables
        if name not in tabs:
            raise KeyError(f"no table {name!r}; this {self.analysis} analysis has {sorted(tabs)}")
        return tabs[name]

    def __repr__(self) -> str:
        s = self.summary
        px = self.calibration.get("pixel_size_nm")
        lines = [f"HaadfResult({self.analysis} analysis of {self.source}; "
                 + (f"{px:.5g} nm/px)" if px else "uncalibrated: pixel units)")]
        counts = ", ".join(f"{len(next(iter(t.values()), []))} {k}" for k, t in self.tables.items() if t)
        if counts:
            lines.append(f"  tables: {counts}")
        if s.get("intensity_classes"):
            lines.append("  intensity classes per sublattice: "
                         + ", ".join(f"{k}: {v['n_classes']}" for k, v in s["intensity_classes"].items()))
        for key in ("variant_fractions", "domain_fractions", "phase_fractions", "boundaries"):
            if s.get(key):
                lines.append(f"  {key}: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                                     for k, v in s[key].items()))
        if self.lattice:
            ag = self.lattice.get("agreement", {})
            lp = self.lattice.get("positions", {})
            unit = "nm" if px else "px"
            lines.append(f"  lattice (positions): a {lp.get(f'a_{unit}', float('nan')):.4g} {unit}, "
                         f"b {lp.get(f'b_{unit}', float('nan')):.4g} {unit}, {lp.get('angle_deg', float('nan')):.2f}°"
                         + (f"; vs FFT {100 * ag['a_rel']:+.2f} % / {100 * ag['b_rel']:+.2f} %" if ag else ""))
        if "order_modulation" in s:
            lines.append(f"  order modulation {s['order_modulation']:.3f}")
        if "shell_thickness_nm" in s:
            lines.append(f"  spinel shell {s['shell_thickness_nm']['mean']:.2f} nm mean")
        if "defects_per_particle" in s:
            lines.append(f"  defects per particle {s['defects_per_particle']}")
        for f in self.flags:
            lines.append(f"  flag: {f}")
        return "\n".join(lines)


def _warn(notes: list, msg: str) -> None:
    notes.append(msg)
    warnings.warn(msg, stacklevel=4)


def _as_image(image, pixel_size_nm):
    from layerscope.stem.io import STEMImage, as_image, read_image

    if isinstance(image, (str, Path)):
        return read_image(image, pixel_size_nm=pixel_size_nm)
    img = as_image(image, pixel_size_nm)
    if pixel_size_nm is not None and img.pixel_size_nm != pixel_size_nm:
        img = STEMImage(img.data, float(pixel_size_nm), img.source)
    return img


def _invert(img):
    from layerscope.stem.io import STEMImage

    return STEMImage(img.data.max() - img.data, img.pixel_size_nm, img.source, img.units_assumed)


def _load_for_columns(img, contrast, spacing_nm, cell):
    """Apply the contrast convention; notes record every assumption."""
    from layerscope.stem.analysis import detect_contrast

    notes: list[str] = []
    if img.units_assumed:
        _warn(notes, f"{img.source}: the calibration has no unit; nm assumed (HyperSpy's convention)")
    if not img.pixel_size_nm and spacing_nm is None and not cell:
        _warn(notes, f"{img.source}: no pixel calibration in the file; results are in pixels (_nm columns "
                     "NaN). Give --pixel-size-nm, --spacing-nm or --cell")
    contrast = contrast or "bright-atoms"
    if contrast == "auto":
        from layerscope.stem.columns import fft_lattice

        period = fft_lattice(img.data).spacing_px  # raises when there is no lattice to analyse
        contrast, sk = detect_contrast(img.data, period_px=period)
        notes.append(f"contrast detected: {contrast} (band-passed skewness {sk:+.2f})")
    if contrast == "dark-atoms":
        img = _invert(img)
        notes.append("image inverted (dark atoms, ABF/BF) so that columns are intensity maxima")
    return img, notes


def analyze_haadf(image, *, mode: str = "atomic", zone: str | None = None, pixel_size_nm: float | None = None,
                  denoise: str = "du", separation_nm: float | None = None, second_sublattice: bool = False,
                  contrast: str = "auto", spacing_nm: float | None = None, cell=None, max_sublattices: int = 4,
                  intensity_classes=None) -> HaadfResult:
    """Analyse one atomic-resolution (or low-magnification) STEM image.

    Parameters
    ----------
    image : path, :class:`~layerscope.stem.io.STEMImage` or 2-D array
        The image (a path is read with :func:`~layerscope.stem.io.read_image`).
    mode : str
        ``"atomic"`` (columns), ``"lowmag"`` (particles and defects) or ``"shell"`` (spinel shell).
    zone : None (any crystal; the layered <100> analysis when the lattice is recognised as one),
        ``"100"`` or ``"210"`` (layered oxide along <100>_O3 or <210>_O3)
    pixel_size_nm : float, optional
        Pixel size (nm per pixel), overriding the file's calibration.
    denoise : str
        ``"du"``, ``"wiener"``, ``"gaussian"``, ``"nlm"`` or ``"none"``.
    separation_nm : float, optional
        Minimum column separation (nm; default from the image's FFT).
    second_sublattice : bool
        Layered <100> analysis: also fit columns at midpoints of the first sublattice.
    contrast : ``"auto"`` (from the skewness of the band-passed image), ``"bright-atoms"`` (HAADF/ADF)
        or ``"dark-atoms"`` (ABF/BF: the image is inverted)
    spacing_nm, cell : calibrate the any-crystal analysis from the shortest lattice vector of
        sublattice 0 (nm) or the projected cell ``(A, B[, GAMMA_DEG])`` (nm, nm, degrees)
    max_sublattices : int
        Most sublattices (sites of the averaged cell) to fit.
    intensity_classes : None, ``"auto"`` or int
        Gaussian-mixture classes of column intensities (None: no classification).

    Returns
    -------
    HaadfResult
        Tables, lattice, summary and flags; write them with
        :func:`~layerscope.stem.haadf_output.write_haadf`.

    Examples
    --------
    >>> import layerscope as ls
    >>> r = ls.analyze_haadf("image.tif", zone="100")      # doctest: +SKIP
    >>> r.to_dataframe("cells").m_over_n.median()           # doctest: +SKIP
    """
    from layerscope.stem import haadf_modes as modes

    if mode not in ("atomic", "lowmag", "shell"):
        raise InputError(f"mode 'atomic', 'lowmag' or 'shell', got {mode!r}")
    if zone not in (None, "100", "210"):
        raise InputError(f"zone None, '100' or '210', got {zone!r}")
    if mode == "atomic" and zone and (spacing_nm is not None or cell):
        raise InputError("--spacing-nm/--cell calibrate the any-crystal analysis; with --zone give --pixel-size-nm")
    img = _as_image(image, pixel_size_nm)
    if mode == "lowmag" or mode == "shell" or zone == "210":
        if contrast == "dark-atoms":  # ABF/BF: atoms as maxima (auto only for columns)
            img = _invert(img)
        if mode == "lowmag":
            return modes.lowmag(img)
        if mode == "shell":
            return modes.shell(img)
        return modes.zone210(img, denoise_method=denoise, separation_nm=separation_nm)
    img, notes = _load_for_columns(img, contrast, spacing_nm, cell)
    opts = {"denoise_method": denoise, "separation_nm": separation_nm, "second_sublattice": second_sublattice}
    if zone == "100":
        return modes.layered100(img, notes, **opts)
    return modes.crystal(img, notes, layered_opts=opts, max_sublattices=max_sublattices, spacing_nm=spacing_nm,
                         cell=cell, n_classes=intensity_classes)
