"""Outputs of an operando refinement: timeseries.csv, operando.h5 (xarray), figures, index.html.

``operando.h5`` (NetCDF4/HDF5, written through xarray + h5netcdf):

* one bank per time step: one Dataset — every column of ``timeseries.csv`` over ``pattern`` (with
  units), and over (``pattern``, ``tof``) the observed ``y_obs``/``sigma_obs`` and, from the
  refinement, ``y_calc``, ``background`` and ``diff`` (y_obs − y_calc);
* several banks per time step: the columns (with ``rwp_bank<N>``) at the root, attrs ``banks``,
  ``bank_groups`` and ``instrument_bank<N>``, and one group ``bank<N>`` per bank holding the same
  pattern variables over its own ``tof`` grid (lengths differ between banks), the bank's ``rwp``
  and the instrument file used for it (attr ``instrument``). ``xr.open_dataset(path,
  group="bank2")``, ``xr.open_datatree(path)`` or ``h5py.File(path)["bank2/y_calc"]`` read a bank.
"""

from __future__ import annotations

import csv
import html
from importlib.metadata import version
from pathlib import Path

import numpy as np

from layerscope._io import atomic_path, save_figure, write_text

__all__ = ["TIMESERIES_BASE", "write_timeseries", "series_dataset", "bank_dataset", "write_dataset",
           "plot_operando", "write_html", "drawn_as_measurement"]

TIMESERIES_BASE = ["pattern", "time_h", "voltage_V", "current_mA", "capacity_mAh", "rwp", "gof",
                   "converged", "flag", "held", "note", "undetermined"]

_UNITS = {"time_h": "h", "voltage_V": "V", "current_mA": "mA", "capacity_mAh": "mAh", "rwp": "%",
          "gof": "1", "d_inter": "Å", "d_intra": "Å", "frac": "1 (weight fraction of LRM phases; anode: C-atom fraction)",
          "DoO": "1 (fraction, eq. 1)", "DoD": "1 (fraction, eq. 2)", "O_vacancy": "1 (eq. 3)",
          "signal": "sigma (sqrt of the chi2 rise without the phase, background refitted)"}


def _columns(rows):
    obs = []
    for r in rows:
        for k in r:
            if k not in TIMESERIES_BASE and not k.endswith("_esd") and k not in obs:
                obs.append(k)
    cols = list(TIMESERIES_BASE)
    for k in obs:
        cols += [k, f"{k}_esd"] if any(f"{k}_esd" in r for r in rows) else [k]
    return cols


def write_timeseries(rows: list[dict], path) -> Path:
    """One row per pattern; every observable followed by its ``_esd`` column."""
    path = Path(path)
    cols = _columns(rows)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in r.items()})
    return path


def _unit(name: str) -> str:
    for k, u in _UNITS.items():
        if name == k or name.startswith(k):
            return u
    if name.endswith(("_a", "_b", "_c")):
        return "Å"
    if name.endswith("_beta"):
        return "deg"
    return ""


def series_dataset(rows: list[dict], patterns, *, provenance: dict | None = None, calc=None,
                   units: dict | None = None):
    """xarray Dataset (dims ``pattern``, ``tof``) of a refined series: every column of
    ``timeseries.csv`` with units in attrs, the observed patterns (``y_obs``, ``sigma_obs``) and,
    given ``calc`` (one ``(y_calc, background)`` per pattern), ``y_calc``, ``background`` and
    ``diff`` = y_obs − y_calc; provenance in attrs. ``patterns`` None: the columns only (the root
    of a several-bank file, whose patterns are in :func:`bank_dataset` groups). ``units``:
    {column: unit} given by the user (derived quantities), used as given for the column and its
    ``_esd`` instead of the built-in table."""
    import xarray as xr

    cols = [c for c in _columns(rows) if c != "pattern"]
    data = {}
    for c in cols:
        raw = [r.get(c) for r in rows]
        if any(isinstance(v, str) for v in raw):
            data[c] = (("pattern",), np.array(["" if v is None else str(v) for v in raw], dtype=object))
        elif raw and all(isinstance(v, (bool, np.bool_)) for v in raw if v is not None):
            data[c] = (("pattern",), np.array([bool(v) for v in raw]))
        else:
            vals = np.array([np.nan if v is None else float(v) for v in raw])
            base = c.removesuffix("_esd")
            data[c] = (("pattern",), vals, {"units": (units or {}).get(base, _unit(base))})
    coords = {"pattern": [r["pattern"] for r in rows]}
    if patterns is not None:
        data.update(_pattern_vars(patterns, calc))
        coords["tof"] = ("tof", patterns[0][1], {"units": "µs"})
    ds = xr.Dataset(data, coords=coords)
    attrs = {"title": "layerscope operando sequential refinement", "layerscope_version": version("layerscope")}
    for k, v in (provenance or {}).items():
        attrs[k] = str(v)
    ds.attrs.update(attrs)
    return ds


def _pattern_vars(patterns, calc) -> dict:
    unit = {"units": "counts/µs"}
    out = {"y_obs": (("pattern", "tof"), np.stack([p[2] for p in patterns]), unit),
           "sigma_obs": (("pattern", "tof"), np.stack([p[3] for p in patterns]), unit)}
    if calc is not None:
        yc = np.stack([np.asarray(c[0], dtype=float) for c in calc])
        out["y_calc"] = (("pattern", "tof"), yc, {**unit, "long_name": "calculated pattern at the refined values"})
        out["background"] = (("pattern", "tof"), np.stack([np.asarray(c[1], dtype=float) for c in calc]), unit)
        out["diff"] = (("pattern", "tof"), out["y_obs"][1] - yc, {**unit, "long_name": "y_obs - y_calc"})
    return out


def bank_dataset(rows: list[dict], patterns, calc, *, bank, instrument: str = ""):
    """One bank of a several-bank series (the group ``bank<N>`` of ``operando.h5``): dims
    ``pattern`` (the time steps, as the root's) and ``tof`` (this bank's own grid); ``y_obs``,
    ``sigma_obs``, ``y_calc``, ``background``, ``diff`` and the bank's ``rwp`` per time step;
    attrs ``bank`` and ``instrument`` (the file used for it)."""
    import xarray as xr

    data = _pattern_vars(patterns, calc)
    rwp = np.array([float(r.get(f"rwp_bank{bank}", np.nan)) for r in rows])
    data["rwp"] = (("pattern",), rwp, {"units": "%"})
    ds = xr.Dataset(data, coords={"pattern": [r["pattern"] for r in rows],
                                  "tof": ("tof", np.asarray(patterns[0][1]), {"units": "µs"}),
                                  "file": ("pattern", np.array([p[0] for p in patterns], dtype=object))})
    ds.attrs.update({"bank": int(bank), "instrument": str(instrument)})
    return ds


def write_dataset(rows: list[dict], patterns, path, *, provenance: dict | None = None, calc=None,
                  banks: dict | None = None, units: dict | None = None) -> Path:
    """:func:`series_dataset` as HDF5/NetCDF4 (atomic write).

    One bank: one Dataset, the patterns over ``tof`` beside the columns (as before; ``y_calc``,
    ``background`` and ``diff`` when ``calc`` is given). Several banks (``banks``: {bank:
    :func:`bank_dataset`}): the columns at the root (attrs ``banks``, ``bank_groups``) and one
    NetCDF4 group ``bank<N>`` per bank — ``xr.open_dataset(path, group="bank2")``,
    ``xr.open_datatree(path)`` or ``h5py.File(path)["bank2/y_calc"]`` read them."""
    import xarray as xr

    path = Path(path)
    if banks:
        root = series_dataset(rows, None, provenance=provenance, units=units)
        root.attrs["banks"] = ", ".join(str(b) for b in banks)
        root.attrs["bank_groups"] = ", ".join(f"bank{b}" for b in banks)
        tree = xr.DataTree.from_dict({"/": root, **{f"bank{b}": ds for b, ds in banks.items()}})
        with atomic_path(path, ".h5") as tmp:
            tree.to_netcdf(tmp, engine="h5netcdf")
        return path
    ds = series_dataset(rows, patterns, provenance=provenance, calc=calc, units=units)
    with atomic_path(path, ".h5") as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path


def drawn_as_measurement(rows, key) -> np.ndarray:
    """Which rows' ``key`` the figures draw as measurements (filled markers on the line): the
    value was refined in that pattern (finite esd) and does not depend on a phase the pattern
    did not determine (:func:`layerscope.operando.observables.undetermined_keys`)."""
    from layerscope.operando.observables import undetermined_keys

    e = np.array([r.get(f"{key}_esd", np.nan) for r in rows], dtype=float)
    v = np.array([r.get(key, np.nan) for r in rows], dtype=float)
    ok = np.isfinite(e) & np.isfinite(v)
    return ok & np.array([key not in undetermined_keys(r) for r in rows], dtype=bool)


def plot_operando(rows, patterns, instrument, out_dir, *, truth=None, banks=None) -> dict[str, Path]:
    """Figures like the paper's Fig. 2a (contour + voltage), 2b (fractions), 2c (spacings), 2d (descriptors).

    ``banks``: several banks per time step, ``[(bank, patterns, instrument)]``: Fig. 2a gets one
    contour panel per bank, each titled with its bank."""
    from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure list

    out = Path(out_dir)
    t = np.array([r["time_h"] for r in rows])
    files = {}

    def save(fig, name):
        p = save_figure(fig, out / name, dpi=120)
        files[name] = p

    def series(ax, key, label, color, scale=1.0):
        v = np.array([r.get(key, np.nan) for r in rows], dtype=float) * scale
        e = np.array([r.get(f"{key}_esd", np.nan) for r in rows], dtype=float) * scale
        measured = drawn_as_measurement(rows, key)
        # a value this pattern did not refine (held, or fixed below min_fraction: NaN esd) or
        # did not determine (layerscope.refine.determined) is drawn as an open marker off the
        # line, so that neither reads as a measurement nor enters the trend
        ax.errorbar(t, np.where(measured, v, np.nan), yerr=np.where(measured, e, 0.0), fmt="o-", ms=3, lw=1,
                    color=color, label=label, capsize=2)
        refined = np.isfinite(e)
        held = ~measured & ~refined & np.isfinite(v)
        undet = ~measured & refined & np.isfinite(v)
        if np.any(held):
            ax.plot(t[held], v[held], "o", ms=4, mfc="none", color=color, lw=0,
                    label=f"{label}: not refined (held/fixed)")
        if np.any(undet):
            ax.plot(t[undet], v[undet], "s", ms=4, mfc="none", color=color, lw=0,
                    label=f"{label}: not determined")
        if truth is not None and key in truth:
            ax.plot(truth["time_h"], np.asarray(truth[key]) * scale, "--", color=color, lw=1, alpha=0.7,
                    label=f"{label} (truth)")

    # 2a: contour of the patterns against time beside the voltage curve (one panel per bank)
    panels = banks if banks else [(None, patterns, instrument)]
    fig = Figure(figsize=(4 + 6 * len(panels), 5))
    axes = fig.subplots(1, len(panels) + 1, gridspec_kw={"width_ratios": [3] * len(panels) + [1]}, sharey=True)
    for ax0, (label, pats, inst) in zip(axes, panels):
        tof = pats[0][1]
        d = inst.d_from_tof(tof)
        z = np.stack([p[2] for p in pats])
        zz = np.log10(np.clip(z, np.percentile(z, 1), None))
        ax0.pcolormesh(d, t, zz, shading="nearest", cmap="viridis")
        ax0.set_xlabel("d (Å)")
        ax0.set_title("operando TOF patterns (log intensity)" + ("" if label is None else f", bank {label}"),
                      fontsize=10)
    axes[0].set_ylabel("time (h)")
    ax1 = axes[-1]
    ax1.plot([r["voltage_V"] for r in rows], t, "k.-")
    ax1.set_xlabel("voltage (V)")
    fig.tight_layout()
    save(fig, "fig2a_contour.png")
    # 2b: phase fractions
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for key, lab, col in (("frac_O3p", "O3'", "#6a3d9a"), ("frac_O3", "O3", "#e6ab02"), ("frac_S", "spinel", "#1f78b4")):
        series(ax, key, lab, col, 100)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("phase fraction (wt %)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, "fig2b_fractions.png")
    # 2c: layer spacings
    fig = Figure(figsize=(7, 6))
    a1, a2 = fig.subplots(2, 1, sharex=True)
    for key, lab, col in (("d_inter_O3p", "O3'", "#6a3d9a"), ("d_inter_O3", "O3", "#e6ab02")):
        series(a1, key, lab, col)
    for key, lab, col in (("d_intra_O3p", "O3'", "#6a3d9a"), ("d_intra_O3", "O3", "#e6ab02")):
        series(a2, key, lab, col)
    a1.set_ylabel("d_inter-layer (Å)")
    a2.set_ylabel("d_intra-layer (Å)")
    a2.set_xlabel("time (h)")
    a1.legend(fontsize=7)
    fig.tight_layout()
    save(fig, "fig2c_spacings.png")
    # 2d: descriptors
    fig = Figure(figsize=(7, 6))
    a1, a2 = fig.subplots(2, 1, sharex=True)
    series(a1, "DoO", "DoO (Li@TM6)", "#d62728", 100)
    series(a2, "DoD", "DoD (LiO2)", "#2ca02c", 100)
    series(a2, "O_vacancy", "O vacancy", "#ff7f0e", 100)
    a1.set_ylabel("DoO (%)")
    a2.set_ylabel("%")
    a2.set_xlabel("time (h)")
    a1.legend(fontsize=7)
    a2.legend(fontsize=7)
    fig.tight_layout()
    save(fig, "fig2d_descriptors.png")
    return files


def write_html(out_dir, rows, figures: dict, *, title: str, notes: str = "") -> Path:
    """A short self-contained page: the figures (embedded) and a summary table."""
    import base64

    out = Path(out_dir)
    imgs = []
    for name, p in figures.items():
        b64 = base64.b64encode(Path(p).read_bytes()).decode()
        imgs.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{b64}">'
                    f"<figcaption>{html.escape(name)}</figcaption></figure>")
    banks = [k for k in (rows[0] if rows else {}) if k.startswith("rwp_bank")]   # several banks: each one's Rwp
    keys = ["time_h", "voltage_V", "rwp", *banks, "frac_O3p", "frac_O3", "frac_S", "d_inter_O3p", "d_intra_O3p",
            "DoO", "DoD", "O_vacancy", "flag", "undetermined", "note"]
    head = "".join(f"<th>{k}</th>" for k in keys)
    body = []
    from layerscope.operando.observables import undetermined_keys

    for r in rows:
        cells = []
        nd = undetermined_keys(r)
        for k in keys:
            v = r.get(k, "")
            if isinstance(v, float) and k in nd:
                cells.append(f'<td class="nd" title="not determined in this pattern">({v:.4g})</td>')
            else:
                cells.append(f"<td>{v:.4g}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}img{{max-width:100%}}
table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px}}
td.nd{{color:#999;font-style:italic}}</style></head>
<body><h1>{html.escape(title)}</h1><p>{html.escape(notes)}</p>{''.join(imgs)}
<h2>Time series</h2><table><tr>{head}</tr>{''.join(body)}</table></body></html>"""
    return write_text(out / "index.html", page)
