"""Cell geometry, once: metric tensors, d-spacings, volume, reciprocal lengths, orthogonalisation.

A cell is (a, b, c, α, β, γ) in Å and degrees. Every function takes ``xp`` — ``numpy`` (the
default) or ``jax.numpy`` — so that the same formula serves the readers and reports (NumPy) and
the refinement kernels (JAX, traced and differentiated through the cell); the cell may then be a
traced array. The formulas are the textbook ones (Giacovazzo et al., *Fundamentals of
Crystallography*, 3rd ed., ch. 2):

    G = [[a², ab cos γ, ac cos β], [ab cos γ, b², bc cos α], [ac cos β, bc cos α, c²]],
    G* = G⁻¹,   1/d²(h) = hᵀ G* h,   V = abc √(1 − cos²α − cos²β − cos²γ + 2 cos α cos β cos γ),

and the orthogonalisation matrix with a along x and b in the xy plane (the PDB/gemmi
convention). ``tests/test_geometry.py`` checks each against gemmi's ``UnitCell`` in all seven
crystal systems.
"""

from __future__ import annotations

import numpy as np

__all__ = ["metric_tensor", "reciprocal_metric", "inv_d2", "d_spacing", "volume", "reciprocal_lengths",
           "orthogonalisation_matrix", "cell_from_metric"]


def _parts(cell, xp):
    a, b, c = cell[0], cell[1], cell[2]
    ca, cb, cg = (xp.cos(xp.deg2rad(cell[i])) for i in (3, 4, 5))
    return a, b, c, ca, cb, cg


def metric_tensor(cell, xp=np):
    """Direct metric tensor G_ij = a_i·a_j (Å²) of a cell.

    Parameters
    ----------
    cell : sequence of 6 floats or array
        (a, b, c) in Å and (α, β, γ) in degrees.
    xp : module
        ``numpy`` or ``jax.numpy``.

    Returns
    -------
    array (3, 3)
        G in Å².

    Examples
    --------
    >>> float(metric_tensor((2.0, 2.0, 3.0, 90, 90, 90))[2, 2])
    9.0
    """
    a, b, c, ca, cb, cg = _parts(cell, xp)
    return xp.array([[a * a, a * b * cg, a * c * cb],
                     [a * b * cg, b * b, b * c * ca],
                     [a * c * cb, b * c * ca, c * c]])


def reciprocal_metric(cell, xp=np):
    """Reciprocal metric tensor G* = G⁻¹ (Å⁻²): G*_ij = a*_i·a*_j.

    Parameters
    ----------
    cell : sequence of 6 floats or array
        (a, b, c) in Å and (α, β, γ) in degrees.
    xp : module
        ``numpy`` or ``jax.numpy``.

    Returns
    -------
    array (3, 3)
        G* in Å⁻².
    """
    return xp.linalg.inv(metric_tensor(cell, xp))


def inv_d2(cell, hkl, xp=np):
    """1/d² = hᵀ G* h (Å⁻²) of reflections ``hkl`` (..., 3); fractional indices allowed.

    Parameters
    ----------
    cell : sequence of 6 floats or array
        (a, b, c) in Å and (α, β, γ) in degrees.
    hkl : array (..., 3)
        Miller indices.
    xp : module
        ``numpy`` or ``jax.numpy``.

    Returns
    -------
    array (...)
        1/d² in Å⁻².
    """
    h = xp.asarray(hkl, dtype=float)
    return xp.einsum("...i,ij,...j->...", h, reciprocal_metric(cell, xp), h)


def d_spacing(cell, hkl, xp=np):
    """Interplanar spacing d (Å) of reflections ``hkl`` (..., 3); fractional indices allowed.

    Parameters
    ----------
    cell : sequence of 6 floats or array
        (a, b, c) in Å and (α, β, γ) in degrees.
    hkl : array (..., 3)
        Miller indices.
    xp : module
        ``numpy`` or ``jax.numpy``.

    Returns
    -------
    array (...)
        d in Å.

    Examples
    --------
    >>> float(d_spacing((4.05, 4.05, 4.05, 90, 90, 90), (1, 1, 1)))  # doctest: +ELLIPSIS
    2.338...
    """
    return 1.0 / xp.sqrt(inv_d2(cell, hkl, xp))


def volume(cell, xp=np):
    """Cell volume V (Å³) = abc √(1 − cos²α − cos²β − cos²γ + 2 cos α cos β cos γ).

    Parameters
    ----------
    cell : sequence of 6 floats or array
        (a, b, c) in Å and (α, β, γ) in degrees.
    xp : module
        ``numpy`` or ``jax.numpy``.

    Returns
    -------
    float or array
        V in Å³ (0 for angles that close no cell).
    """
    a, b, c, ca, cb, cg = _parts(cell, xp)
    return a * b * c * xp.sqrt(xp.maximum(1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg, 0.0))


def reciprocal_lengths(cell, xp=np):
    """Reciprocal cell lengths (a*, b*, c*) in Å⁻¹ (√ of the diagonal of G*).

    Parameters
    ----------
    cell : sequence of 6 floats or array
        (a, b, c) in Å and (α, β, γ) in degrees.
    xp : module
        ``numpy`` or ``jax.numpy``.

    Returns
    -------
    array (3,)
        a*, b*, c* in Å⁻¹.
    """
    return xp.sqrt(xp.diag(reciprocal_metric(cell, xp)))


def orthogonalisation_matrix(cell, xp=np):
    """Matrix O with Cartesian r = O x (Å) for fractional x: a along x, b in the xy plane.

    Parameters
    ----------
    cell : sequence of 6 floats or array
        (a, b, c) in Å and (α, β, γ) in degrees.
    xp : module
        ``numpy`` or ``jax.numpy``.

    Returns
    -------
    array (3, 3)
        O in Å (columns: the cell vectors in Cartesian coordinates; Oᵀ O = G).
    """
    a, b, c, ca, cb, cg = _parts(cell, xp)
    sg = xp.sin(xp.deg2rad(cell[5]))
    v = volume(cell, xp) / (a * b * c)
    z = 0.0 * a
    return xp.array([[a, b * cg, c * cb],
                     [z, b * sg, c * (ca - cb * cg) / sg],
                     [z, z, c * v / sg]])


def cell_from_metric(g) -> tuple[float, ...]:
    """(a, b, c, α, β, γ) in Å and degrees from a direct metric tensor G (Å²).

    Parameters
    ----------
    g : array (3, 3)
        Direct metric tensor (Å²).

    Returns
    -------
    tuple of 6 floats
        a, b, c (Å) and α, β, γ (degrees).
    """
    g = np.asarray(g, dtype=float)
    a, b, c = np.sqrt(np.diag(g))
    al = np.degrees(np.arccos(g[1, 2] / (b * c)))
    be = np.degrees(np.arccos(g[0, 2] / (a * c)))
    ga = np.degrees(np.arccos(g[0, 1] / (a * b)))
    return tuple(float(v) for v in (a, b, c, al, be, ga))
