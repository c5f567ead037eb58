"""``index_fourd``: a 4D-STEM scan (or a Bragg-peak list) in, phase/orientation/twin maps out.

:func:`index_fourd` reads the scan (a path or a :class:`~layerscope.fourd.io.Scan4D`), chooses the
detector calibration (a calibration file or object, a pixel size, the scan file's, or — warned
with :class:`~layerscope.fourd.calibrate.AssumedCalibrationWarning` and recorded — the paper's
detector), builds the template library of the phases and indexes every probe position
(:func:`~layerscope.fourd.maps.index_scan`). A py4DSTEM Bragg-peak list is indexed from its peaks
(:func:`~layerscope.fourd.peaks.index_peaks`). Nothing is written: :func:`write_fourd` writes what
``layerscope fourd`` writes (``maps.h5``, ``calibration.json`` or ``phase_fractions.csv``, images)
and :func:`plot_fourd` draws the maps.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layerscope._errors import InputError

__all__ = ["FourDMaps", "index_fourd", "write_fourd", "plot_fourd", "load_phase", "zone_axis_figure"]

#: units of the per-position maps (``to_xarray``)
MAP_UNITS = {"phase": "", "correlation": "1 (normalised cross-correlation)", "phase_reliability": "%",
             "orientation_reliability": "%", "scattered_fraction": "1", "euler_bunge_deg": "deg",
             "vbf": "counts", "peak_count": "1"}


def load_phase(spec):
    """One phase from a preset name (``lrm-pristine:O3p``), a CIF path or a :class:`Phase`."""
    from layerscope.crystal import load_phases

    if not isinstance(spec, (str, Path)):
        return spec
    phases = load_phases([str(spec)])
    if len(phases) != 1:
        raise ValueError(f"{spec!r} names {len(phases)} phases; give one (e.g. lrm-pristine:O3p)")
    return phases[0][0]


@dataclass(frozen=True, repr=False)
class FourDMaps:
    """Per probe position (scan y, scan x): phase, orientation, reliabilities; and how they were obtained.

    Attributes
    ----------
    maps : :class:`~layerscope.fourd.maps.OrientationMaps` (phase codes into ``phase_names``; code 0
        vacuum, 1 amorphous carbon, then the phases; ``not_indexed_code`` "not indexed")
    kind : ``"patterns"`` (a scan) or ``"peaks"`` (a Bragg-peak list)
    source : the scan file
    attrs : the provenance written to ``maps.h5`` (calibration, library spacing, kV, thresholds)
    extra : further maps by name: ``vbf`` (virtual bright field), ``twin_<phase>_<law>`` (0 parent,
        1 twin, −1 neither, −2 other phase) or ``peak_count``
    calibration : the detector :class:`~layerscope.fourd.calibrate.Calibration` used (None for peaks)
    symmetry : Laue-class rotations by phase code (for inverse-pole-figure colours)
    not_indexed_code : the phase code of positions that were not indexed
    """

    maps: object
    kind: str
    source: str
    attrs: dict
    extra: dict
    calibration: object
    symmetry: dict
    not_indexed_code: int
    n_templates: int
    flags: tuple = ()
    _thresholds: dict = field(default_factory=dict)

    @property
    def phase_names(self) -> tuple:
        return tuple(self.maps.phase_names)

    @property
    def phase(self) -> np.ndarray:
        return self.maps.phase

    def phase_fractions(self) -> list[dict]:
        """Per phase: fraction and number of positions, median phase reliability (%) and correlation."""
        maps, rows = self.maps, []
        for i, n in enumerate(maps.phase_names):
            sel = maps.phase == i
            rel = maps.phase_reliability[sel]
            rows.append({"phase": n, "fraction": float(sel.mean()), "positions": int(sel.sum()),
                         "median_phase_reliability_percent": float(np.median(rel)) if sel.any() and n != "not indexed"
                         else float("nan"),
                         "median_correlation": float(np.median(maps.correlation[sel])) if sel.any() else float("nan")})
        return rows

    def to_xarray(self):
        """The maps as an xarray Dataset over (``scan_y``, ``scan_x``), units and provenance in attrs."""
        import xarray as xr

        m, dims = self.maps, ("scan_y", "scan_x")
        data = {"phase": (dims, m.phase, {"names": ",".join(m.phase_names), "units": ""})}
        for k in ("correlation", "phase_reliability", "orientation_reliability", "scattered_fraction"):
            data[k] = (dims, getattr(m, k), {"units": MAP_UNITS[k]})
        data["euler_bunge_deg"] = ((*dims, "angle"), m.euler_deg, {"units": "deg", "convention": "Bunge ZXZ of g = U^T"})
        data["quaternion_xyzw"] = ((*dims, "component"), m.quaternion, {"units": "1"})
        for k, v in self.extra.items():
            data[k] = (dims, np.asarray(v), {"units": MAP_UNITS.get(k, "")} if k in MAP_UNITS else
                       {"meaning": "0 parent, 1 twin variant, -1 neither, -2 other phase"})
        attrs = {k: (str(v) if isinstance(v, (list, tuple, bool)) else v) for k, v in self.attrs.items()}
        attrs["phase_names"] = ",".join(m.phase_names)
        return xr.Dataset(data, coords={"angle": ["phi1", "Phi", "phi2"]}, attrs=attrs)

    def __repr__(self) -> str:
        fr = ", ".join(f"{r['phase']} {100 * r['fraction']:.1f} %" for r in self.phase_fractions() if r["positions"])
        lines = [f"FourDMaps({self.kind} of {self.source}: {self.phase.shape[0]}×{self.phase.shape[1]} positions, "
                 f"{self.n_templates} templates)", f"  phases: {fr}"]
        cal = self.attrs.get("calibration_source")
        if cal is not None:
            pix = self.attrs.get("pixel_inv_angstrom")
            lines.append(f"  calibration: {'' if pix is None else f'{pix:.5g} 1/Å/px from '}{cal}"
                         + (" (ASSUMED)" if self.attrs.get("calibration_assumed") else ""))
        for k, v in self.extra.items():
            if k.startswith("twin_") and np.any(v >= 0):
                lines.append(f"  {k}: twin fraction {np.mean(v[v >= 0] == 1):.3f}")
        lines += [f"  flag: {f}" for f in self.flags]
        return "\n".join(lines)


def _calibration_for(calibration, pixel_size, scan, shape, *, kv, convergence_mrad, source):
    """The calibration used for indexing: a calibration file/object, ``pixel_size``, the scan file's,
    or an assumed one (warned with AssumedCalibrationWarning and recorded)."""
    from layerscope.fourd import calibrate as cb
    from layerscope.fourd.detector import paper_detector

    if calibration is not None:
        if isinstance(calibration, cb.Calibration):
            cal, where = calibration, getattr(calibration, "source", "")
        else:
            cal, where = cb.Calibration.from_json(calibration), str(calibration)
        if cal.pixel_inv_angstrom is None:
            raise cb.InputError("a pixel_inv_angstrom (this calibration has none: calibrate with --standard)",
                                path=calibration if not isinstance(calibration, cb.Calibration) else None)
        if pixel_size:
            cal.pixel_inv_angstrom = float(pixel_size)
            cal.notes.append("pixel size overridden by --pixel-size")
        if not isinstance(calibration, cb.Calibration):
            cal.source = f"{where} ({cal.source})"
        return cal
    pix, why = pixel_size, "--pixel-size"
    if not pix and scan.pixel_inv_angstrom:
        pix, why = scan.pixel_inv_angstrom, "the scan file"
    if pix:
        # centre from the direct beam of the mean pattern (up to 256 positions)
        ny, nx = scan.data.shape[:2]
        step = max(1, int(np.sqrt(ny * nx / 256)))
        mean = np.asarray(scan.data[::step, ::step].mean(axis=(0, 1)).compute(), dtype=float)
        c = cb._initial_centre(mean)
        return cb.Calibration(float(pix), (float(c[0]), float(c[1])), source=why,
                              notes=[f"pixel size from {why}; centre from the mean pattern's direct beam; "
                                     "no ellipticity correction"])
    paper = paper_detector(kv=kv, convergence_mrad=convergence_mrad, pixels=shape[0])
    return cb.assumed(paper.pixel_inv_angstrom, shape,
                      why=f"no --calibration, --pixel-size or calibration in {source}; the paper's "
                          f"detector (124.5 mrad over {shape[0]} px at {kv:g} kV) is assumed")


def index_fourd(scan, *, phases, spacing_deg: float = 1.0, kv: float = 200.0, convergence_mrad: float = 1.5,
                precession_deg: float = 0.8, pixel_size: float | None = None, calibration=None,
                min_correlation: float = 0.25, min_signal: float = 20.0, min_peaks: int = 5, k_max: float = 1.7,
                scan_shape=None, chunk: int = 32, scheduler: str | None = None, checkpoint_dir=None,
                checkpoint_key=None) -> FourDMaps:
    """Phase, orientation and twin maps of a 4D-STEM scan by template matching.

    Parameters
    ----------
    scan : path (.npy, .h5/.hdf5/.emd, .hspy, .zspy, .mib, .zip, .blo, .raw, or a py4DSTEM Bragg-peak
        list .h5), a :class:`~layerscope.fourd.io.Scan4D` from :func:`~layerscope.fourd.io.read_scan`, or
        a (scan y, scan x, ky, kx) NumPy/dask array (then give ``pixel_size`` or ``calibration``)
    phases : list of str, path or Phase
        Phases to match: preset names (``"lrm-pristine:O3p"``), CIF paths or Phase objects.
    spacing_deg : float
        Template library spacing (degrees).
    kv : float
        Accelerating voltage (kV).
    convergence_mrad : float
        Probe convergence semi-angle (mrad; sets the disc radius).
    precession_deg : float
        Precession angle (degrees).
    pixel_size : float, optional
        Detector calibration (1/Å per pixel), when there is no calibration file.
    calibration : path or :class:`~layerscope.fourd.calibrate.Calibration`, optional
        ``calibration.json`` from ``layerscope fourd-calibrate`` or a calibration (pixel size,
        centre, ellipse, descan origins).
    min_correlation : float
        Positions whose best correlation is lower are "not indexed".
    min_signal : float
        Positions with fewer scattered counts (inside the matching annulus) are "not indexed".
    min_peaks, k_max : int, float
        Bragg-peak lists: fewest peaks (direct beam excluded) and the largest ``|q|`` (1/Å) used.
    scan_shape : (int, int), optional
        Scan (y, x) for 3-D frame stacks.
    chunk : int
        Probe positions per chunk side.
    scheduler : str, optional
        dask.distributed scheduler address (default: local threads).
    checkpoint_dir, checkpoint_key : path, dict, optional
        A folder where finished dask blocks are kept, and what identifies the scan (a JSON-able
        dict); a rerun with the same key resumes from the kept blocks.

    Returns
    -------
    FourDMaps
        Phase, orientation (Euler angles, degrees), twin and reliability maps over the scan, the
        calibration used and the flags; :meth:`FourDMaps.to_xarray` gives them as a Dataset.

    Examples
    --------
    >>> import layerscope as ls
    >>> m = ls.index_fourd("scan.h5", phases=["lrm-pristine:O3p", "lrm-pristine:S"])   # doctest: +SKIP
    >>> m.to_xarray()["phase_reliability"]                                             # doctest: +SKIP
    """
    from layerscope.fourd.io import Scan4D
    from layerscope.fourd.peaks import is_bragg_peak_file

    if isinstance(phases, (str, Path)):
        phases = [phases]
    if not phases:
        raise InputError("at least one phase to match")
    if not isinstance(scan, (Scan4D, str, Path)):  # an array (scan y, scan x, ky, kx): NumPy or dask
        import dask.array as da

        arr = scan if isinstance(scan, da.Array) else da.from_array(np.asarray(scan), chunks=(chunk, chunk, -1, -1))
        if arr.ndim != 4:
            raise InputError(f"a 4-D scan (scan y, scan x, ky, kx), got an array of shape {arr.shape}")
        scan = Scan4D(arr, "<array>")
    if not isinstance(scan, Scan4D):
        if Path(scan).suffix.lower() in (".h5", ".hdf5", ".emd") and is_bragg_peak_file(scan):
            return _index_peaks(scan, phases, spacing_deg=spacing_deg, kv=kv, precession_deg=precession_deg,
                                pixel_size=pixel_size, min_correlation=min_correlation, min_peaks=min_peaks,
                                k_max=k_max)
    return _index_patterns(scan, phases, spacing_deg=spacing_deg, kv=kv, convergence_mrad=convergence_mrad,
                           precession_deg=precession_deg, pixel_size=pixel_size, calibration=calibration,
                           min_correlation=min_correlation, min_signal=min_signal, scan_shape=scan_shape,
                           chunk=chunk, scheduler=scheduler, checkpoint_dir=checkpoint_dir,
                           checkpoint_key=checkpoint_key)


def _index_patterns(scan, phases, *, spacing_deg, kv, convergence_mrad, precession_deg, pixel_size, calibration,
                    min_correlation, min_signal, scan_shape, chunk, scheduler, checkpoint_dir=None,
                    checkpoint_key=None) -> FourDMaps:
    from layerscope.diffraction.electron import paper_twin_laws
    from layerscope.fourd import build_library, disc_mask, index_scan, paper_detector, prepare_matcher, read_scan
    from layerscope.fourd.calibrate import recentre
    from layerscope.fourd.detector import DetectorGeometry
    from layerscope.fourd.io import Scan4D
    from layerscope.fourd.maps import twin_map
    from layerscope.fourd.virtual import virtual_image

    source = scan.source if isinstance(scan, Scan4D) else str(scan)
    if not isinstance(scan, Scan4D):
        scan = read_scan(scan, chunk_positions=chunk, scan_shape=tuple(scan_shape) if scan_shape else None)
    ky, kx = scan.data.shape[2:]
    if min(ky, kx) < 32:
        raise InputError(f"diffraction patterns of at least 32×32 pixels to index; these are {ky}×{kx} (the "
                         "scan can still be read with layerscope.fourd.read_scan, e.g. for virtual images)",
                         path=source)
    cal = _calibration_for(calibration, pixel_size, scan, (ky, kx), kv=kv, convergence_mrad=convergence_mrad,
                           source=source)
    paper = paper_detector(kv=kv, convergence_mrad=convergence_mrad, pixels=ky)
    pix = cal.pixel_inv_angstrom
    geo = DetectorGeometry((ky, kx), pix, tuple(cal.center_px), paper.disc_radius_px * paper.pixel_inv_angstrom / pix,
                           cal.ellipticity, cal.ellipse_angle_deg % 180)
    data = scan.data
    if cal.origin_px is not None:
        where = calibration if isinstance(calibration, (str, Path)) else None
        data = recentre(data, np.asarray(cal.origin_px, float), cal.center_px, path=where)
    phases = [load_phase(p) for p in phases]
    lib = build_library(phases, geo, spacing_deg=spacing_deg, kv=kv, precession_deg=precession_deg)
    matcher = prepare_matcher(lib, min_correlation=min_correlation, min_signal_counts=min_signal)
    maps = index_scan(data, matcher, scheduler=scheduler, checkpoint_dir=checkpoint_dir, checkpoint_key=checkpoint_key)
    vbf = virtual_image(data, disc_mask((ky, kx), geo.centre_px, 2 * geo.disc_radius_px)).compute()
    extra = {"vbf": vbf}
    for code, ph in enumerate(phases, start=2):
        if ph.space_group.number in (12, 166):
            for name, law in paper_twin_laws(ph).items():
                extra[f"twin_{ph.name}_{name.strip('(){}')}"] = twin_map(maps, code, law, lib.symmetry[code - 2])
    attrs = {"source": source, "library_spacing_deg": spacing_deg, "kv": kv,
             "pixel_inv_angstrom": pix, "calibration_assumed": bool(cal.assumed),
             "calibration_source": str(cal.source), "ellipticity": cal.ellipticity,
             "ellipse_angle_deg": cal.ellipse_angle_deg, "center_px": list(cal.center_px),
             "min_correlation": matcher.min_correlation, "min_signal_counts": matcher.min_signal_counts}
    flags = (cal.notes[0],) if cal.assumed else ()
    return FourDMaps(maps, "patterns", source, attrs, extra, cal, dict(enumerate(lib.symmetry, start=2)),
                     matcher.not_indexed_code, len(lib), flags,
                     {"min_correlation": matcher.min_correlation, "min_signal_counts": matcher.min_signal_counts})


def _index_peaks(path, phases, *, spacing_deg, kv, precession_deg, pixel_size, min_correlation, min_peaks,
                 k_max) -> FourDMaps:
    """Phase/orientation maps of a Bragg-peak list (py4DSTEM PointListArray)."""
    from layerscope.fourd import build_library, prepare_matcher
    from layerscope.fourd.peaks import index_peaks, peak_geometry, read_bragg_peaks

    bp = read_bragg_peaks(path, pixel_inv_angstrom=pixel_size)
    geo = peak_geometry(k_max)
    phases = [load_phase(p) for p in phases]
    lib = build_library(phases, geo, spacing_deg=spacing_deg, kv=kv, precession_deg=precession_deg)
    matcher = prepare_matcher(lib, min_correlation=min_correlation, min_signal_counts=0.0)
    maps, npk = index_peaks(bp, matcher, min_peaks=min_peaks)
    attrs = {"source": bp.source, "library_spacing_deg": spacing_deg, "kv": kv, "k_max_inv_angstrom": k_max,
             "min_peaks": min_peaks, "min_correlation": matcher.min_correlation,
             "calibration_source": "peak list (qx, qy in 1/Å)" if bp.calibrated else "--pixel-size"}
    return FourDMaps(maps, "peaks", bp.source, attrs, {"peak_count": npk}, None,
                     dict(enumerate(lib.symmetry, start=2)), matcher.not_indexed_code, len(lib), (),
                     {"min_correlation": matcher.min_correlation, "min_peaks": min_peaks})


def plot_fourd(result) -> dict:
    """RGB images by name: ``phase_map`` (grey: not indexed), ``orientation_map`` (inverse-pole-figure
    colours of the beam direction) and, for scans, ``vbf`` (2-D, grey scale).

    Parameters
    ----------
    result : FourDMaps
        The result of :func:`index_fourd`.

    Returns
    -------
    dict of str to ndarray
        (ny, nx, 3) RGB images in [0, 1] (``vbf``: (ny, nx)).
    """
    from layerscope.fourd.figures import phase_colours
    from layerscope.fourd.maps import ipf_colours

    maps = result.maps
    colours = phase_colours(result)           # "not indexed": grey
    rgb = np.zeros((*np.shape(maps.phase), 3))
    for code, c in colours.items():
        rgb[maps.phase == code] = c
    out = {"phase_map": rgb, "orientation_map": ipf_colours(maps, result.symmetry)}
    if "vbf" in result.extra:
        out = {"vbf": result.extra["vbf"], **out}
    return out


def write_fourd(result, out) -> dict[str, Path]:
    """Write what ``layerscope fourd`` writes into the folder ``out``: ``maps.h5``, ``calibration.json``
    (scans) or ``phase_fractions.csv`` (peak lists), ``vbf.png``, ``phase_map.png`` (with its legend),
    ``orientation_map.png`` (with the inverse-pole-figure colour key of each phase).

    Parameters
    ----------
    result : FourDMaps
        The result of :func:`index_fourd`.
    out : str or Path
        The output folder (created if missing).

    Returns
    -------
    dict of str to Path
        The files written, by kind.
    """
    from layerscope._io import save_figure, save_image, write_csv
    from layerscope.fourd.maps import write_maps

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"maps": write_maps(out / "maps.h5", result.maps, extra=result.extra, attrs=result.attrs)}
    if result.calibration is not None:
        written["calibration"] = result.calibration.to_json(out / "calibration.json")
    if result.kind == "peaks":
        written["phase_fractions"] = write_csv(out / "phase_fractions.csv", result.phase_fractions())
    from layerscope.fourd.figures import orientation_map_figure, phase_map_figure

    for name, img in plot_fourd(result).items():
        if name == "phase_map":        # with its legend
            save_figure(phase_map_figure(result, img), out / f"{name}.png", dpi=110, bbox_inches="tight")
        elif name == "orientation_map":  # with the colour key of each phase
            save_figure(orientation_map_figure(result, img), out / f"{name}.png", dpi=110, bbox_inches="tight")
        else:
            save_image(out / f"{name}.png", img, cmap="gray")
        written[name] = out / f"{name}.png"
    return written


def zone_axis_figure(phase, uvw, *, twin: str | None = None, kv: float = 200.0, precession_deg: float = 0.8,
                     thickness_nm: float = 30.0, gmax: float = 1.2, labels: bool = False):
    """Kinematic zone-axis electron diffraction pattern of a phase as a Matplotlib figure.

    ``phase``: preset name, CIF path or Phase; ``uvw``: the zone axis; ``twin``: overlay a twin
    variant of Supp. Fig. 18 (``"(001)"`` or ``"{012}"``, in orange); ``gmax``: largest |g| shown
    (1/Å). Returns ``(figure, pattern)`` (:func:`layerscope.diffraction.electron.zone_axis_pattern`).
    """
    from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure list

    from layerscope.diffraction import electron as el

    phase = load_phase(phase)
    uvw = tuple(uvw)
    law = None
    if twin:
        laws = el.paper_twin_laws(phase)
        if twin not in laws:
            raise ValueError(f"unknown twin {twin!r}; choose one of {sorted(laws)}")
        law = laws[twin]
    pat = el.zone_axis_pattern(phase, uvw, twin=law, kv=kv, precession_deg=precession_deg,
                               thickness_nm=thickness_nm, g_max_inv_angstrom=gmax)
    fig = Figure(figsize=(5.5, 5.5))
    ax = fig.subplots()
    ax.set_facecolor("black")
    rel = pat.intensity / pat.intensity.max()
    for v, colour in ((0, "white"), (1, "orange")):
        s = pat.variant == v
        ax.scatter(pat.g_xy[s, 0], pat.g_xy[s, 1], s=300 * np.sqrt(rel[s]), c=colour, alpha=0.85, linewidths=0)
    ax.scatter([0], [0], s=300, c="white")
    if labels:
        for (x, y), h, r in zip(pat.g_xy[pat.variant == 0], pat.hkl[pat.variant == 0], rel[pat.variant == 0]):
            if r > 0.02:
                ax.annotate("".join(f"{int(round(i))}" if i >= 0 else f"-{-int(round(i))}" for i in h), (x, y),
                            color="cyan", fontsize=6, ha="center", va="bottom")
    lim = gmax * 1.05
    ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
    ax.set_xlabel("g_x (1/Å)"), ax.set_ylabel("g_y (1/Å)")
    title = f"{phase.name} [{' '.join(str(i) for i in uvw)}]  {kv:g} kV, precession {precession_deg:g}°"
    ax.set_title(title + (f"\n+ {law.name} (orange)" if law else ""), fontsize=9)
    return fig, pat


def _quiet_index(*args, **kw):
    """:func:`index_fourd` with the assumed-calibration warning kept for the caller to print."""
    from layerscope.fourd.calibrate import AssumedCalibrationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AssumedCalibrationWarning)
        return index_fourd(*args, **kw)
