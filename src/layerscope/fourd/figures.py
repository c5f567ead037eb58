"""The phase and orientation maps of a 4D-STEM result as figures a reader can decode: the phase
map with a legend (one swatch per phase, grey "not indexed") and the orientation map with the
inverse-pole-figure colour key of each crystalline phase in it (:func:`layerscope.fourd.ipf.ipf_key`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["phase_colours", "phase_map_figure", "orientation_map_figure"]


def phase_colours(result) -> dict[int, tuple[float, float, float]]:
    """The RGB colour of every phase code of ``result`` (a :class:`~layerscope.fourd.api.FourDMaps`)
    as :func:`~layerscope.fourd.api.plot_fourd` paints it: code 0 black, code k ≥ 1 the k-th
    ``tab10`` colour, "not indexed" grey.

    Parameters
    ----------
    result : FourDMaps
        A 4D-STEM indexing result.

    Returns
    -------
    dict of int to (float, float, float)
        RGB in [0, 1] by phase code.
    """
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    colours = [(0.0, 0.0, 0.0)] + [tuple(float(c) for c in cmap(i)[:3]) for i in range(9)]
    codes = set(range(len(result.maps.phase_names))) | {int(c) for c in np.unique(result.maps.phase)}
    out = {code: colours[min(max(code, 0), 9)] for code in codes}
    out[result.not_indexed_code] = (0.5, 0.5, 0.5)
    return out


def _name(result, code):
    names = result.maps.phase_names
    return "not indexed" if code == result.not_indexed_code else names[code] if code < len(names) else str(code)


def phase_map_figure(result, rgb=None):
    """The phase map with a legend of the phases present (and their share of the positions).

    Parameters
    ----------
    result : FourDMaps
        A 4D-STEM indexing result.
    rgb : array (ny, nx, 3), optional
        The phase-map image (default: :func:`~layerscope.fourd.api.plot_fourd`'s).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from layerscope.fourd.api import plot_fourd

    rgb = plot_fourd(result)["phase_map"] if rgb is None else rgb
    phase = np.asarray(result.maps.phase)
    colours = phase_colours(result)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    ax.imshow(rgb, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("phase map", fontsize=9)
    codes = [int(c) for c in np.unique(phase)]
    handles = [Patch(facecolor=colours.get(c, (0.5, 0.5, 0.5)), edgecolor="0.3",
                     label=f"{_name(result, c)} ({100 * np.mean(phase == c):.1f} %)") for c in codes]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
              title="phase (share of positions)", title_fontsize=8)
    fig.tight_layout()
    return fig


def orientation_map_figure(result, rgb=None):
    """The orientation map (inverse-pole-figure colours of the beam direction) with the colour key
    of each crystalline phase in it.

    Parameters
    ----------
    result : FourDMaps
        A 4D-STEM indexing result.
    rgb : array (ny, nx, 3), optional
        The orientation-map image (default: :func:`~layerscope.fourd.api.plot_fourd`'s).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    from layerscope.fourd.api import plot_fourd
    from layerscope.fourd.ipf import ipf_key

    rgb = plot_fourd(result)["orientation_map"] if rgb is None else rgb
    phase = np.asarray(result.maps.phase)
    present = [c for c in sorted(result.symmetry) if np.any(phase == c)]
    fig = Figure(figsize=(4.2 + 2.2 * max(len(present), 1), 4.2))
    grid = fig.add_gridspec(1, 1 + max(len(present), 1), width_ratios=[2.0] + [1.0] * max(len(present), 1))
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(rgb, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("orientation map (beam direction; black: not crystalline)", fontsize=8)
    for i, code in enumerate(present):
        ipf_key(fig.add_subplot(grid[0, 1 + i]), result.symmetry[code], title=f"key: {_name(result, code)}")
    fig.tight_layout()
    return fig
