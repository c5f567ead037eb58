"""Inverse-pole-figure colours of crystal directions, and their colour key.

A crystal direction v (unit, crystal Cartesian frame: x ∥ a, z ∥ c*, gemmi's convention) is
brought into the fundamental sector of the phase's Laue class — of its symmetry-equivalent
images (±R v) the one closest to a fixed reference direction r — and coloured by its place
there: hue from the azimuth about r, saturation from the angle to r divided by the sector's
largest angle (so one colour means one direction for every scan of that Laue class), value 1.
A generic key, written here because it works for any Laue class (cubic keys' standard-triangle
corners do not exist for the layered oxides' 2/m and -3m classes); :func:`ipf_key` draws it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["ipf_rgb", "ipf_key"]

#: the reference direction of the sectors (a general direction: on no symmetry element)
_REF = np.array([0.8716, 0.3712, 0.3202]) / np.linalg.norm([0.8716, 0.3712, 0.3202])


def _frame():
    e1 = np.cross(_REF, [0, 0, 1.0])
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(_REF, e1)


def _fundamental(v, sym):
    """The symmetry image of each direction v (n, 3) closest to the reference direction."""
    laue = np.concatenate([sym, -sym])
    imgs = np.einsum("sij,nj->nsi", laue, v)
    return imgs[np.arange(len(v)), np.argmax(imgs @ _REF, axis=1)]


def _sphere(n=20000):
    """n nearly uniform unit vectors (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


@lru_cache(maxsize=32)
def _sector_radius(sym_bytes: bytes) -> float:
    sym = np.frombuffer(sym_bytes).reshape(-1, 3, 3)
    w = _fundamental(_sphere(), sym)
    return float(np.arccos(np.clip(w @ _REF, -1, 1)).max())


def _polar(w):
    e1, e2 = _frame()
    return np.arctan2(w @ e2, w @ e1), np.arccos(np.clip(w @ _REF, -1, 1))


def ipf_rgb(v, sym) -> np.ndarray:
    """RGB (n, 3) in [0, 1] of crystal directions ``v`` (n, 3) for the Laue rotations ``sym`` (m, 3, 3).

    Parameters
    ----------
    v : array (n, 3)
        Directions in the crystal Cartesian frame (need not be normalised).
    sym : array (m, 3, 3)
        The proper rotations of the phase's Laue class (crystal Cartesian frame).

    Returns
    -------
    array (n, 3)
        RGB colours.
    """
    from matplotlib.colors import hsv_to_rgb

    v = np.asarray(v, float)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    sym = np.ascontiguousarray(sym, dtype=float)
    az, ang = _polar(_fundamental(v, sym))
    sat = np.clip(ang / max(_sector_radius(sym.tobytes()), 1e-6), 0.15, 1)
    return hsv_to_rgb(np.stack([(az / (2 * np.pi)) % 1, sat, np.ones_like(az)], -1))


def ipf_key(ax, sym, *, title: str = "") -> None:
    """Draw the colour key of :func:`ipf_rgb` for one Laue class on the Matplotlib axes ``ax``.

    The fundamental sector is shown in polar form about the reference direction (azimuth →
    hue, angle → saturation, as the map colours it), with the images of the crystal
    Cartesian axes x (∥ a), y and z (∥ c*) marked.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    sym : array (m, 3, 3)
        The proper rotations of the phase's Laue class.
    title : str
        Title of the key (e.g. the phase).

    Returns
    -------
    None
    """
    sym = np.ascontiguousarray(sym, dtype=float)
    pts = _sphere(8000)
    w = _fundamental(pts, sym)
    az, ang = _polar(w)
    ax.scatter(np.degrees(ang) * np.cos(az), np.degrees(ang) * np.sin(az), c=ipf_rgb(pts, sym), s=6,
               marker="s", linewidths=0, rasterized=True)
    marks: dict = {}  # symmetry-equivalent axes fall on one point: one mark, their names joined
    for name, axis in (("x (a)", [1.0, 0, 0]), ("y", [0, 1.0, 0]), ("z (c*)", [0, 0, 1.0])):
        a_, g_ = _polar(_fundamental(np.array([axis]), sym))
        xy = (round(float(np.degrees(g_[0]) * np.cos(a_[0])), 6), round(float(np.degrees(g_[0]) * np.sin(a_[0])), 6))
        marks.setdefault(xy, []).append(name)
    for (x, y), names in marks.items():
        ax.plot(x, y, "k+", ms=7)
        ax.annotate(" ≡ ".join(names), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "beam direction in the crystal", fontsize=8)
    ax.set_xlabel("hue: azimuth; saturation: angle\nfrom the sector centre", fontsize=7)
