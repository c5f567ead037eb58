"""Files and figures of a :class:`~layerscope.stem.haadf.HaadfResult`.

:func:`write_haadf` writes what ``layerscope haadf`` writes (every table as CSV, ``summary.json``,
``strain.h5`` when GPA ran, the figures); :func:`plot_haadf` returns the figures as
:class:`matplotlib.figure.Figure` objects (object-oriented Matplotlib: no backend is chosen, so a
notebook shows them and a script saves them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from layerscope._io import atomic_path, save_figure, write_csv, write_text

__all__ = ["write_haadf", "plot_haadf", "write_strain"]


def write_strain(path: Path, res, px, source) -> Path:
    """GPA strain maps as HDF5 (``exx``, ``eyy``, ``exy``, ``rotation_rad``, displacements, g vectors,
    and ``valid``: where the maps are defined)."""
    import h5py

    with atomic_path(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        for name in ("exx", "eyy", "exy", "rotation_rad", "ux_px", "uy_px"):
            f.create_dataset(name, data=getattr(res, name), compression="gzip")
        if getattr(res, "valid", None) is not None:
            f.create_dataset("valid", data=np.asarray(res.valid, dtype=np.uint8), compression="gzip")
            f["valid"].attrs["meaning"] = ("1 where the geometric phase is defined (>= 2 sigma_r from the border, "
                                           "> sigma_r from pixels whose Bragg amplitudes are < half their reference "
                                           "median)")
        f["g_per_px"] = res.g_per_px
        f.attrs["reference_y0_y1_x0_x1"] = np.asarray(res.reference)
        f.attrs["pixel_size_nm"] = px if px else np.nan
        f.attrs["source"] = str(source)
        f.attrs["method"] = "geometric phase analysis, Hytch, Snoeck & Kilaas, Ultramicroscopy 74 (1998) 131"
    return Path(path)


def write_haadf(result, out, *, figures: bool = True) -> dict[str, Path]:
    """Write a HAADF result into the folder ``out`` (created): its tables as CSV, the strain maps
    as HDF5, ``summary.json`` and (``figures``) the PNG figures of :func:`plot_haadf`.

    Parameters
    ----------
    result : HaadfResult
        The result of :func:`~layerscope.stem.haadf.analyze_haadf`.
    out : str or Path
        The output folder.
    figures : bool
        Also write the figures.

    Returns
    -------
    dict of str to Path
        The written files by name.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, table in result.tables.items():
        written[name] = write_csv(out / f"{name}.csv", zip(*table.values()), list(table), fmt=None)
    if result.strain is not None:
        written["strain"] = write_strain(out / "strain.h5", result.strain, result.calibration["pixel_size_nm"],
                                         result.source)
    written["summary"] = write_text(out / "summary.json", json.dumps(result.summary, indent=2, default=float))
    if figures:
        for name, fig in plot_haadf(result).items():
            save_figure(fig, out / f"{name}.png", dpi=110 if result.analysis == "crystal" else 120, bbox_inches="tight")
            written[name] = out / f"{name}.png"
    return written


def plot_haadf(result) -> dict:
    """The figures of a HAADF result by name (``m_over_n``, ``variants``, ``strain``, ``columns``, ...).

    Parameters
    ----------
    result : HaadfResult
        The result of :func:`~layerscope.stem.haadf.analyze_haadf`.

    Returns
    -------
    dict of str to matplotlib.figure.Figure
        The figures (no pyplot, no backend chosen: save them with ``fig.savefig``).
    """
    fd = result._figure_data
    return {"crystal": _crystal, "layered-100": _layered, "zone-210": _domains, "lowmag": _lowmag,
            "shell": _shell}[result.analysis](result, fd)


def _fig(**kw):
    from matplotlib.figure import Figure

    return Figure(**kw)


def _strain_fig(strain, lim, prefix=""):
    fig = _fig(figsize=(11, 5))
    axes = fig.subplots(1, 2)
    import matplotlib

    cmap = matplotlib.colormaps["bwr"].with_extremes(bad="0.75")
    for ax, key, name in zip(axes, ("exx", "eyy"), ("εxx", "εyy")):
        # the border band of the Bragg filter and the pixels without lattice fringes: grey (NaN)
        im = ax.imshow(100 * strain.masked(key), cmap=cmap, vmin=-lim, vmax=lim)
        ax.set_title(f"{prefix}{name} (%)")
        ax.set_axis_off()
    fig.colorbar(im, ax=axes, label="strain (%); grey: phase undefined (image border, no fringes)")
    return fig


def _layered(result, fd) -> dict:
    from matplotlib.colors import ListedColormap

    image, cells, figs = result.image, fd["cells"], {}
    if cells is not None and len(cells):
        fig = _fig(figsize=(6, 6))
        ax = fig.subplots()
        ax.imshow(image, cmap="gray")
        sc = ax.scatter(cells.centre_x_px, cells.centre_y_px, c=cells.m_over_n, cmap="coolwarm",
                        vmin=0.8, vmax=1.2, s=30, marker="s")
        fig.colorbar(sc, ax=ax, label="m/n")
        ax.set_title("m/n per unit cell (cf. Fig. 4b)")
        ax.set_axis_off()
        figs["m_over_n"] = fig
        fig = _fig(figsize=(6, 6))
        ax = fig.subplots()
        ax.imshow(image, cmap="gray")
        cmap = ListedColormap(["tab:blue", "tab:pink", "tab:green"])
        ax.scatter(cells.centre_x_px, cells.centre_y_px, c=cells.variant, cmap=cmap, vmin=-0.5, vmax=2.5,
                   s=30, marker="s")
        ax.set_title("variants: I (blue), II (pink), O1 (green)")
        ax.set_axis_off()
        figs["variants"] = fig
    figs["strain"] = _strain_fig(result.strain, 20)
    return figs


def _crystal(result, fd) -> dict:
    res, image, figs = fd["analysis"], result.image, {}
    fit, sub = res.fit, res.sublattice
    fig = _fig(figsize=(7, 7))
    ax = fig.subplots()
    ax.imshow(image, cmap="gray")
    for s in np.unique(sub):
        m = sub == s
        ax.plot(fit.x_px[m], fit.y_px[m], ".", ms=3, label=f"sublattice {s}")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_axis_off()
    figs["columns"] = fig
    c = res.cells
    if len(c):
        fig = _fig(figsize=(15, 5))
        axes = fig.subplots(1, 3)
        for ax, e, name in zip(axes, (c.exx, c.eyy, c.exy), ("εxx", "εyy", "εxy")):
            ax.imshow(image, cmap="gray")
            lim = max(float(np.nanpercentile(np.abs(e), 98)), 1e-4) * 100
            sc = ax.scatter(c.centre_x_px, c.centre_y_px, c=100 * e, cmap="bwr", vmin=-lim, vmax=lim, s=12,
                            marker="s")
            fig.colorbar(sc, ax=ax, label=f"{name} (%)", shrink=0.7)
            ax.set_axis_off()
        figs["strain_positions"] = fig
        for s, d in res.displacements.items():
            if len(d["dx_px"]) == 0:
                continue
            fig = _fig(figsize=(7, 7))
            ax = fig.subplots()
            ax.imshow(image, cmap="gray")
            ax.quiver(d["ideal_x_px"], d["ideal_y_px"], d["dx_px"], -np.asarray(d["dy_px"]), color="yellow",
                      angles="xy", scale_units="xy", scale=0.1)
            ax.set_title(f"sublattice {s} displacement from its ideal site (×10)")
            ax.set_axis_off()
            figs[f"displacement_{s}"] = fig
    if result.strain is not None:
        figs["strain"] = _strain_fig(result.strain, 5, prefix="GPA ")
    return figs


def _domains(result, fd) -> dict:
    from matplotlib.colors import ListedColormap

    dm = fd["domains"]
    fig = _fig(figsize=(6, 6))
    ax = fig.subplots()
    ax.imshow(result.image, cmap="gray")
    ax.scatter(dm.x_px, dm.y_px, c=dm.domain, cmap=ListedColormap(["lightgray", "tab:green", "tab:blue", "tab:pink"]),
               vmin=-1.5, vmax=2.5, s=12, marker="s", alpha=0.6)
    ax.set_title("O3' domains: A (green), B (blue), C (pink), disordered (grey) — cf. Fig. 1d")
    ax.set_axis_off()
    return {"domains": fig}


def _lowmag(result, fd) -> dict:
    com, per = fd["com"], fd["per"]
    fig = _fig(figsize=(7, 5))
    ax = fig.subplots()
    ax.imshow(result.image, cmap="gray")
    ax.contour(fd["labels"] > 0, levels=[0.5], colors="c", linewidths=0.8)
    ax.contour(fd["defect_labels"] > 0, levels=[0.5], colors="orange", linewidths=0.8)
    for k in range(len(per)):
        ax.text(com[k, 1], com[k, 0], f"{k + 1}: {per[k]}", color="yellow", ha="center")
    ax.set_title("particles (cyan) and defects (orange): particle: count (cf. table S4)")
    ax.set_axis_off()
    return {"defects": fig}


def _shell(result, fd) -> dict:
    from matplotlib.colors import ListedColormap

    res = fd["shell"]
    fig = _fig(figsize=(8, 4))
    ax = fig.subplots()
    ax.imshow(result.image, cmap="gray")
    ax.imshow(res.phase_map.phase, cmap=ListedColormap(["black", "tab:orange", "gold"]), alpha=0.3, vmin=-0.5,
              vmax=2.5)
    ax.plot(res.station_x_px, res.station_y_px, "c.", ms=3)
    ax.set_title(f"layered (orange) / spinel (yellow); shell {res.mean_nm:.1f} nm mean (cf. Supp. Fig. 1)")
    ax.set_axis_off()
    return {"shell": fig}
