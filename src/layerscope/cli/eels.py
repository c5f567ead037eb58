"""``layerscope eels FILE --out DIR``: Mn L3/L2, valence (three methods) and O-K of EELS spectra.

Energy calibration: ``--low-loss FILE`` (zero-loss peak per pixel, DualEELS; ``--low-loss-offset
auto|DY,DX`` pairs the pixels of a separately acquired, displaced low-loss image), ``--align-edge
O-K|Mn-L3`` (with ``--align-energy`` for another target), ``--calibrate-edges O-K=530,Mn-L3=641`` (offset and dispersion from two
features), ``--shift-eV X`` (added last). Writes
``DIR/eels.csv`` (``index, position_nm, l3_over_l2, valence, o_pre_edge_ratio, shift_eV, flag,
valence_shift, valence_mlls, delta_e_eV, l3_eV, o_pre_edge_eV, snr, l3_over_l2_stat_err, valence_esd,
t_over_lambda, energy_gain, energy_offset_eV``; NaN with a flag where a value
cannot be determined), ``DIR/record.json`` (calibration, windows, methods, warnings) and
``DIR/eels.png`` (windows, background and continuum steps over the edges). ``--deconvolve
fourier-ratio`` removes plural scattering from the L2,3 edges with each pixel's low-loss.
"""

from __future__ import annotations

import numpy as np

from layerscope._errors import InputError


def _table(path, quantity):
    from layerscope.spectra.calibration import ValenceCalibration
    try:
        arr = np.loadtxt(path, delimiter=",", comments="#", ndmin=2,
                         skiprows=1 if not open(path).read(1).strip().lstrip("-").replace(".", "")[:1].isdigit() else 0)
    except (OSError, ValueError) as exc:
        raise InputError(f"expected CSV columns valence,{quantity} ({exc})", path=path) from None
    try:
        o = np.argsort(arr[:, 0])
        return ValenceCalibration(tuple(arr[o, 0]), tuple(arr[o, 1]), source=str(path),
                                  status="user-given", quantity=quantity)
    except (ValueError, IndexError) as exc:
        raise InputError(f"not a valence calibration: {exc}", path=path) from None


def _own_calibration(refs: dict, g):
    """L3/L2 of the --reference spectra, measured with the same settings, as the calibration."""
    from layerscope.spectra.analysis import EelsOptions, analyse_eels
    from layerscope.spectra.calibration import calibration_from_references
    if len(refs) < 2:
        raise InputError("--calibration references needs at least two --reference VALENCE=FILE")
    opts = EelsOptions(background=g("background", "power-law"), step=g("step", "linear"),
                       step_width_eV=float(g("step_width", 1.0)))
    vals, ratios = [], []
    for v, (e, y) in sorted(refs.items()):
        r = analyse_eels(e, y, options=opts)
        if not np.isfinite(r.l3_over_l2[0]):
            raise InputError(f"reference of valence {v:g}: no L3/L2 ({r.flags[0]})")
        vals.append(v)
        ratios.append(float(r.l3_over_l2[0]))
    try:
        return calibration_from_references(vals, ratios, source="--reference spectra, measured "
                                           "with the settings of this run")
    except ValueError as exc:
        raise InputError(f"--calibration references: L3/L2 {ratios} of valences {vals}: {exc}") from None


def _offset(text):
    if text is None or text == "auto":
        return text
    try:
        dy, dx = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--low-loss-offset expects 'auto' or DY,DX (integers), got {text!r}") from None
    return dy, dx


def run_eels(args) -> int:
    from layerscope.spectra.analysis import EelsOptions
    from layerscope.spectra.calibration import MN_L3L2_TAN2012
    from layerscope.spectra.io import read_spectrum

    g = lambda k, d=None: getattr(args, k, d)  # noqa: E731  (the study passes a partial Namespace)
    spec = read_spectrum(args.file)
    refs = {}
    for item in g("reference") or []:
        v, _, f = item.partition("=")
        try:
            rs = read_spectrum(f)
            refs[float(v)] = (rs.energy_eV, np.atleast_2d(rs.counts).sum(axis=0))
        except ValueError as exc:
            raise InputError(f"--reference expects VALENCE=FILE, got {item!r} ({exc})") from None
    opts = EelsOptions(
        background=g("background", "power-law"), step=g("step", "linear"),
        step_width_eV=float(g("step_width", 1.0)),
        mn_background_eV=tuple(g("mn_bg")) if g("mn_bg") else None,
        o_background_eV=tuple(g("o_bg")) if g("o_bg") else None,
        snr_min=float(g("snr_min", 5.0)), max_rel_err=float(g("max_rel_err", 0.10)),
        calibration=(_own_calibration(refs, g) if g("calibration") == "references" else
                     _table(g("calibration"), "L3/L2") if g("calibration") else MN_L3L2_TAN2012),
        shift_calibration=_table(g("shift_calibration"), "dE(Mn L3 - O K pre-edge) eV")
        if g("shift_calibration") else None,
        references=refs, other_elements=tuple(g("elements") or ()),
        deconvolve=g("deconvolve", "none") or "none")
    from layerscope.spectra.api import analyze_eels

    ana = analyze_eels(spec, low_loss=read_spectrum(g("low_loss")) if g("low_loss") else None,
                       align_edge=g("align_edge"), align_energy_eV=g("align_energy"),
                       shift_eV=float(g("shift_eV", 0.0) or 0.0), pca=g("pca"), options=opts,
                       low_loss_offset=_offset(g("low_loss_offset")),
                       calibrate_edges=g("calibrate_edges"))
    res, record = ana.result, ana.record
    ana.write(args.out)
    v = res.valence[np.isfinite(res.valence)]
    gain = record["calibration"].get("energy_gain", 1.0)
    print(f"{args.file}: {len(res.flags)} spectra, shift {record['calibration']['shift_eV_median']:+.2f} eV "
          f"(median)" + (f", energy gain {gain:.5f}" if gain != 1.0 else "") + f"; L3/L2 valence in {len(v)}"
          + (f", {v.min():.2f}-{v.max():.2f} (median {np.median(v):.2f}, median esd "
             f"{np.nanmedian(res.valence_esd):.2f})" if len(v) else "")
          + f"; {record['n_flagged']} flagged; wrote {args.out}/eels.csv, record.json")
    if (wm := record.get("valence_weighted_mean")) is not None:
        print(f"  L3/L2 valence, weighted mean of {wm['n']}: {wm['mean']:.2f} ± {wm['esd']:.2f} "
              f"(chi²/dof {wm['chi2_per_dof']:.2f} of the spectra about it; {wm['n_beyond_2_esd']} "
              f"beyond 2 esd)")
    for w in record["warnings"]:
        print(f"  note: {w}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eels", help="Mn L3/L2, Mn valence (L3/L2, ΔE, MLLS) and O-K pre-edge of "
                                           "EELS spectra (.dm3/.dm4/.msa/.hspy/.zspy/.emd/.csv)")
    p.add_argument("file", help="spectrum, line scan or spectrum image (energy axis found by its unit)")
    p.add_argument("--out", required=True, help="output folder")
    c = p.add_argument_group("energy calibration (applied in this order)")
    c.add_argument("--low-loss", help="low-loss spectrum/SI of the same pixels: zero-loss peak to 0 eV")
    c.add_argument("--low-loss-offset", metavar="auto|DY,DX",
                   help="pair core-loss pixel (y, x) with low-loss pixel (y+DY, x+DX); 'auto': the "
                        "offset estimated from the two thickness maps (a separately acquired low-loss "
                        "image of a drifting specimen); default: same index")
    c.add_argument("--align-edge", choices=["O-K", "Mn-L3", "Co-L3", "Ni-L3"],
                   help="move the O-K pre-edge peak to 530 eV or the Mn L3 half-rise to 640 eV "
                        "(on the summed spectra)")
    c.add_argument("--align-energy", type=float, help="target energy (eV) for --align-edge")
    c.add_argument("--calibrate-edges", metavar="FEATURE=eV,FEATURE=eV",
                   help="two-point calibration of offset AND dispersion after the zero-loss step, e.g. "
                        "'O-K=530.0,Mn-L3=641.0': the O-K pre-edge maximum and an L3 white-line maximum "
                        "(O-K, Mn-L3, Co-L3, Ni-L3) of the summed spectra are moved to the energies you "
                        "give; the gain and offset go to record.json and eels.csv (energy_gain, "
                        "energy_offset_eV); not with --align-edge")
    c.add_argument("--shift-eV", type=float, default=0.0, help="shift added to the energy axis (eV)")
    m = p.add_argument_group("methods")
    m.add_argument("--background", choices=["power-law", "none"], default="power-law",
                   help="'none' for spectra already background-subtracted")
    m.add_argument("--step", choices=["linear", "flat"], default="linear",
                   help="continuum height under the double-arctangent steps: straight line or "
                        "constant (Pearson) fitted beyond L2")
    m.add_argument("--step-width", type=float, default=1.0,
                   help="arctangent width of the continuum steps (eV)")
    m.add_argument("--mn-bg", nargs=2, type=float, default=None, metavar=("LO", "HI"),
                   help="fixed background window below Mn L3 (eV; default: 42-10 eV below the L3 maximum)")
    m.add_argument("--o-bg", nargs=2, type=float, default=None, metavar=("LO", "HI"),
                   help="fixed background window below O K (eV; default: 40-8 eV below the pre-edge peak)")
    m.add_argument("--snr-min", type=float, default=5.0,
                   help="minimum signal-to-noise of the white lines; below: 'no edge', NaN")
    m.add_argument("--max-rel-err", type=float, default=0.10,
                   help="largest relative statistical error of an L3/L2 ratio that is reported (the "
                        "noise propagated through background, continuum and integrals; above: NaN, "
                        "'too uncertain')")
    m.add_argument("--calibration", help="CSV valence,L3/L2 of your own references, or 'references' to "
                                         "measure the --reference spectra with this run's settings "
                                         "(replaces the built-in table)")
    m.add_argument("--shift-calibration", help="CSV valence,dE_eV: ΔE(Mn L3 − O-K pre-edge) per "
                                               "valence, enables valence_shift (there is no built-in "
                                               "table: Zhang et al. 2010's values could not be "
                                               "verified)")
    m.add_argument("--reference", action="append", metavar="VALENCE=FILE",
                   help="reference spectrum of known Mn valence for MLLS (repeat)")
    m.add_argument("--elements", nargs="+", choices=["Co", "Ni"], default=(),
                   help="also give the L3/L2 ratio of these L2,3 edges (columns co_l3_over_l2, ...)")
    m.add_argument("--deconvolve", choices=["none", "fourier-ratio"], default="none",
                   help="remove plural scattering from the L2,3 edges by Fourier-ratio deconvolution "
                        "with each pixel's low-loss (needs --low-loss; t/λ is written either way)")
    m.add_argument("--pca", type=int, default=None, metavar="K",
                   help="denoise a line scan/SI with K principal components first")
    p.set_defaults(func=run_eels)
