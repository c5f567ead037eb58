"""``analyze_eels``: EELS spectra (a path or a loaded :class:`Spectrum`) → an :class:`EelsAnalysis`.

The Python entry point behind ``layerscope eels`` (``layerscope.cli.eels.run_eels`` parses the options,
calls this and writes the files) and ``layerscope.analyze_eels(...)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from layerscope._errors import InputError
from layerscope.spectra.analysis import EelsOptions, EelsResult

__all__ = ["EelsAnalysis", "analyze_eels"]

#: units of the per-spectrum columns of ``eels.csv``
UNITS = {"position_nm": "nm", "shift_eV": "eV", "delta_e_eV": "eV", "l3_eV": "eV", "o_pre_edge_eV": "eV",
         "l3_over_l2": "1", "valence": "1", "valence_shift": "1", "valence_mlls": "1", "o_pre_edge_ratio": "1",
         "snr": "1", "l3_over_l2_stat_err": "1", "valence_esd": "1", "t_over_lambda": "1",
         "energy_gain": "1", "energy_offset_eV": "eV"}


@dataclass(frozen=True)
class EelsAnalysis:
    """Per-spectrum results (``result``), the record written to ``record.json`` and the spectra's place."""

    result: EelsResult
    record: dict
    position_nm: np.ndarray | None = None
    nav_shape: tuple = ()
    source: str = ""
    options: EelsOptions = field(default_factory=EelsOptions, repr=False)

    def __getattr__(self, name):   # l3_over_l2, valence, flags, ... of the result
        if name.startswith("_") or name in ("result", "record"):
            raise AttributeError(name)
        return getattr(self.result, name)

    def rows(self) -> list[dict]:
        """One dict per spectrum (the rows of ``eels.csv``)."""
        from layerscope.spectra.pipeline import result_rows

        return result_rows(self.result, self.position_nm)

    def to_xarray(self):
        """The per-spectrum table as an xarray Dataset over ``spectrum`` (units in attrs)."""
        import xarray as xr

        rows = self.rows()
        keys = [k for k in rows[0] if k != "index"]
        data = {k: ("spectrum", np.array([r[k] for r in rows], dtype=str if k == "flag" else float),
                    {"units": UNITS[k]} if k in UNITS else {}) for k in keys}
        return xr.Dataset(data, coords={"spectrum": np.arange(len(rows))},
                          attrs={"source": self.source, "nav_shape": list(self.nav_shape)})

    def write(self, out) -> None:
        """``eels.csv``, ``record.json`` and ``eels.png`` in folder ``out`` (as ``layerscope eels``)."""
        from layerscope.spectra.pipeline import write_eels_outputs

        write_eels_outputs(out, self.result, self.record, position_nm=self.position_nm, nav_shape=self.nav_shape)

    def __repr__(self) -> str:
        v = self.result.valence[np.isfinite(self.result.valence)]
        r = self.result.l3_over_l2[np.isfinite(self.result.l3_over_l2)]
        n = len(self.result.flags)
        out = [f"EelsAnalysis of {self.source or 'spectra'}: {n} spectra"
               + (f" (navigation {tuple(self.nav_shape)})" if self.nav_shape else "")
               + f", shift {self.record['calibration']['shift_eV_median']:+.2f} eV (median)",
               f"  L3/L2 in {len(r)}" + (f": median {np.median(r):.3f}" if len(r) else "")
               + f"; Mn valence in {len(v)}" + (f": {v.min():.2f}-{v.max():.2f} (median {np.median(v):.2f})"
                                                if len(v) else "")]
        flagged = [f for f in self.result.flags if f]
        out += [f"  flag: {f}" for f in flagged[:5]]
        if len(flagged) > 5:
            out.append(f"  ... {len(flagged) - 5} more flags")
        return "\n".join(out)


def _read(x, what):
    from layerscope.spectra.io import Spectrum, read_spectrum

    if x is None or isinstance(x, Spectrum):
        return x
    if isinstance(x, (str, os.PathLike)):
        return read_spectrum(x)
    if isinstance(x, tuple) and len(x) == 2:
        e, c = (np.asarray(v, float) for v in x)
        if e.ndim != 1 or c.shape[-1] != len(e):
            raise InputError(f"{what}: (energy_eV, counts) needs counts with the energy axis last "
                             f"({len(e)} channels), got {c.shape}")
        return Spectrum(e, c, source="<arrays>")
    raise TypeError(f"{what}: expected a path, a Spectrum (layerscope.read_spectrum) or (energy_eV, counts), "
                    f"got {type(x).__name__}")


def analyze_eels(spectrum, *, low_loss=None, align_edge: str | None = None, align_energy_eV: float | None = None,
                 shift_eV: float = 0.0, pca: int | None = None, options: EelsOptions | None = None,
                 low_loss_offset=None, calibrate_edges=None,
                 **option_values) -> EelsAnalysis:
    """Mn L3/L2 (with valence by three methods) and the O-K pre-edge of every spectrum.

    Parameters
    ----------
    spectrum : path, :class:`~layerscope.spectra.io.Spectrum` (single, line scan or spectrum image), or
        a tuple (energy_eV, counts) with the energy axis last
    low_loss : path or Spectrum, optional
        Low-loss spectra of the same pixels: each zero-loss peak is moved to 0 eV.
    align_edge : str, optional
        "O-K", "Mn-L3", "Co-L3" or "Ni-L3": move that edge to its reference energy, on the summed
        spectra.
    align_energy_eV : float, optional
        Another target energy (eV) for ``align_edge``.
    shift_eV : float
        Added to the energy axis last (eV).
    pca : int, optional
        Denoise a line scan / spectrum image with this many principal components first.
    low_loss_offset : None, "auto" or (int, int), optional
        Pairing of core-loss and low-loss pixels: None (same index), "auto" (the navigation
        offset estimated from the thickness maps) or (dy, dx) in pixels.
    calibrate_edges : str or dict, optional
        Two-point calibration of offset and dispersion, e.g. ``"O-K=530.0,Mn-L3=641.0"`` or
        ``{"O-K": 530.0, "Mn-L3": 641.0}``: the O-K pre-edge maximum / the L3 white-line maximum of
        the summed spectra are moved to these energies (after the zero-loss step;
        :mod:`layerscope.spectra.energy_scale`). Not with ``align_edge``.
    options : :class:`~layerscope.spectra.analysis.EelsOptions`, optional
        The analysis options (edge windows in eV, background, step, SNR threshold).
    **option_values
        The fields of ``options`` as keywords (``background="none"``, ``step="flat"``,
        ``snr_min=5``, ...).

    Returns
    -------
    EelsAnalysis
        ``l3_over_l2``, ``valence``, ``o_pre_edge_ratio``, ``shift_eV`` (eV), ``flags`` (one per
        spectrum; NaN with a flag where a value cannot be determined), ``record``,
        ``to_xarray()``, ``write(out)``.
    """
    from layerscope.spectra.pipeline import eels_pipeline

    if options is not None and option_values:
        raise TypeError("give either options=EelsOptions(...) or its fields as keywords, not both")
    opts = options or EelsOptions(**option_values)
    spec = _read(spectrum, "spectrum")
    ll = _read(low_loss, "low_loss")
    if ll is not None:
        from layerscope.spectra.calibrate import zlp_shifts
        try:
            zlp_shifts(ll.energy_eV, ll.counts)
        except ValueError as exc:
            raise InputError(f"expected a zero-loss peak in the low-loss data: {exc}", path=ll.source) from None
    if calibrate_edges is not None:
        from layerscope.spectra.energy_scale import parse_reference_features
        try:
            parse_reference_features(calibrate_edges)
        except ValueError as exc:
            raise InputError(f"calibrate_edges (--calibrate-edges FEATURE=eV,FEATURE=eV): {exc}") from None
    if align_edge:
        from layerscope.spectra.calibrate import edge_shifts
        try:
            edge_shifts(spec.energy_eV, spec.counts, align_edge, target_eV=align_energy_eV,
                        background=opts.background != "none")
        except ValueError as exc:
            if "does not cover" in str(exc) or "not found" in str(exc) or "no " in str(exc):
                raise InputError(f"align edge {align_edge}: {exc}", path=spec.source) from None
            raise
    res, record = eels_pipeline(spec.energy_eV, spec.counts,
                                low_loss=None if ll is None else ll.counts,
                                low_loss_energy_eV=None if ll is None else ll.energy_eV,
                                align_edge=align_edge, align_energy_eV=align_energy_eV,
                                shift_eV=float(shift_eV or 0.0), options=opts, pca=pca, source=str(spec.source),
                                acquisition=spec.meta.get("acquisition"),
                                low_loss_acquisition=None if ll is None else ll.meta.get("acquisition"),
                                nav_shape=tuple(spec.nav_shape), low_loss_offset=low_loss_offset,
                                calibrate_edges=calibrate_edges)
    if not np.isfinite(res.l3_over_l2).any() and not np.isfinite(res.o_pre_edge_ratio).any():
        raise InputError(f"neither a Mn L2,3 nor an O-K edge analysed in any spectrum "
                         f"({spec.energy_eV.min():.0f}-{spec.energy_eV.max():.0f} eV); first: "
                         f"{res.flags[0]}", path=spec.source)
    return EelsAnalysis(res, record, spec.position_nm, tuple(spec.nav_shape), str(spec.source), opts)
