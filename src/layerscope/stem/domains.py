"""O3' superstructure domains A, B, C along <210>_O3 and the loss of Li/TM order (Fig. 1d,e; Supp. Figs. 5, 16b).

Viewed along <210>_O3 (= [110], [-100], [1-10] of O3', C2/m) each TM row is
a sequence of columns 1.42 Å apart with the bright–bright–dark contrast of
the Li@TM6 honeycomb: two TM (4g) columns, then one Li-rich (2b) column.
Write the fitted column amplitudes of row ``k`` as ``A_k(j)`` (``j`` the
column index along the row); the order is the period-3 Fourier component

    Ψ_k(j) = < A_k(j') exp(-2πi j'/3) >_{|j'-j| ≤ window}.

Its phase says where the dark (2b) columns sit; its modulus, normalised as
``m = 2 |Ψ| / <A>``, is the relative amplitude of the intensity modulation
along the row (``A(j) ≈ <A> (1 + m cos(2πj/3 + φ))``): m ≈ 0.37 for the
fully ordered O3' of table S1 (column weights Σ occ Z**1.7 of 4g and 2b),
and 0 when Li and TM are mixed at random (the O3 after cycling, Supp. Fig.
16b). The three domains differ in how the pattern is stacked: from layer
``k`` to ``k+1`` the dark column moves by ``Δs`` columns along +u, read from
``arg(Ψ_{k+1} Ψ_k*) = -2π Δs / 3``:

* A ([110]_O3'): Δs = +1, B ([-100]_O3'): Δs = 0, C ([1-10]_O3'): Δs = −1,

for the frame in which ``u`` (image x, along the rows) = ``w × zone`` and
``w`` (image y) points along c*, as :func:`layerscope.simulate.haadf.project_phase`
projects table S1's O3'. A mirrored image frame swaps A and C.

Written here because no library measures superstructure order column by
column; the neighbour bookkeeping uses scipy.ndimage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from layerscope.stem.cells import layer_frame

__all__ = ["DOMAINS", "DOMAIN_SHIFT", "DomainMap", "classify_domains", "ordering_amplitude", "column_intensity"]

DOMAINS = ("A", "B", "C")
#: Shift of the dark (2b) column per layer, in columns along +u, per domain.
DOMAIN_SHIFT = {"A": 1, "B": 0, "C": -1}


@dataclass(frozen=True)
class DomainMap:
    """Per-cell domain labels along <210>_O3 and per-region summary.

    Cell arrays (one per pair of neighbouring TM rows ``k, k+1`` at column
    ``j``): ``row``, ``col``, ``x_px``, ``y_px`` (the cell centre), ``domain``
    (0 A, 1 B, 2 C, −1 disordered), ``modulation`` (local ``m`` of the two
    rows) and ``region`` (connected region, 0-based).
    Region arrays: ``region_domain``, ``region_cells``, ``region_x_px``,
    ``region_y_px``, ``region_modulation``.
    ``row_modulation``: ``m`` of each whole TM row; ``image_modulation``: the
    median of the local ``m`` over all columns (noise adds a positive bias of
    about ``σ_A / (<A> sqrt(2·window+1))``).
    """

    row: np.ndarray
    col: np.ndarray
    x_px: np.ndarray
    y_px: np.ndarray
    domain: np.ndarray
    modulation: np.ndarray
    region: np.ndarray
    region_domain: np.ndarray
    region_cells: np.ndarray
    region_x_px: np.ndarray
    region_y_px: np.ndarray
    region_modulation: np.ndarray
    row_modulation: np.ndarray
    image_modulation: float

    def __len__(self) -> int:
        return len(self.row)


def column_intensity(image: np.ndarray, positions_px: np.ndarray, *, sigma_px: float) -> np.ndarray:
    """Column intensities by a matched Gaussian filter, background removed.

    The image is convolved with a Gaussian of width ``sigma_px`` (about the
    column width) and sampled at each position; for columns further apart
    than ~4σ this is proportional to the integrated column intensity (the
    quantity Z-contrast scales with) and, unlike a free 2D-Gaussian
    amplitude, is not traded against the fitted width on noisy, faint or
    crowded columns. The background is the 5th percentile of the filtered image.
    """
    from layerscope.stem.columns import _check_image

    img = _check_image(image)
    sm = ndimage.gaussian_filter(img, sigma_px)
    pos = np.asarray(positions_px, float)
    val = ndimage.map_coordinates(sm, [pos[:, 1], pos[:, 0]], order=1, mode="nearest")
    return val - np.percentile(sm, 5)


def _refine_period(x: np.ndarray, p0: float, rel: float = 0.08) -> float:
    """Period of the 1D comb ``x`` near ``p0``: maximum of ``|<exp(2πi x/p)>|``.

    A median neighbour distance is biased by ~1 % when column spacings alternate
    (4g at y = 0.169, not 1/6); across 30+ columns that would shift the
    column index by a quarter column.
    """
    p = p0 * np.linspace(1 - rel, 1 + rel, 1601)
    x = x - x.mean()
    score = np.abs(np.exp(2j * np.pi * x[None, :] / p[:, None]).mean(axis=1))
    return float(p[np.argmax(score)])


def _grid(positions_px, amplitude, frame):
    """TM rows and column indices: (k, j) of each column and the amplitude grid."""
    pos = np.asarray(positions_px, float)
    u = pos @ frame.e1
    w = pos @ frame.e2
    d = _refine_period(u, frame.spacing_px)
    h = _refine_period(w, frame.layer_spacing_px)
    # circular means give the origins of the row and column grids
    ph_w = np.angle(np.mean(np.exp(2j * np.pi * w / h)))
    ph_u = np.angle(np.mean(np.exp(2j * np.pi * u / d)))
    k = np.rint((w - ph_w * h / (2 * np.pi)) / h).astype(int)
    j = np.rint((u - ph_u * d / (2 * np.pi)) / d).astype(int)
    k -= k.min()
    j -= j.min()
    A = np.full((k.max() + 1, j.max() + 1), np.nan)
    X = np.full(A.shape, np.nan)
    Y = np.full(A.shape, np.nan)
    A[k, j] = amplitude
    X[k, j] = pos[:, 0]
    Y[k, j] = pos[:, 1]
    return A, X, Y


def _window_fit(A, window, origin, need):
    """Least-squares ``a0 + a1 cos(2πj/3) + b1 sin(2πj/3)`` over a window of
    ``2·window+1`` columns, shifted by ``origin`` (scipy's convention), on
    every row position. Returns (Ψ, a0, residual variance), NaN where the
    columns present are too few or do not sample all three phases."""
    j = np.arange(A.shape[1])
    th = 2 * np.pi * j / 3
    c = np.cos(th)[None, :]
    s = np.sin(th)[None, :]
    valid = np.isfinite(A)
    a = np.where(valid, A, 0.0)
    v = valid.astype(float)
    L = 2 * window + 1

    def S(x):
        return ndimage.uniform_filter1d(x, L, axis=1, mode="constant", origin=origin) * L

    n, sc, ss = S(v), S(v * c), S(v * s)
    scc, sss, scs = S(v * c * c), S(v * s * s), S(v * c * s)
    sa, sac, sas, saa = S(a), S(a * c), S(a * s), S(a * a)
    M = np.stack([
        np.stack([n, sc, ss], -1), np.stack([sc, scc, scs], -1), np.stack([ss, scs, sss], -1),
    ], -2)
    rhs = np.stack([sa, sac, sas], -1)
    enough = valid & (np.rint(n) >= need)
    enough &= np.abs(np.linalg.det(M)) > 1e-6 * np.maximum(n, 1.0) ** 3
    M = np.where(enough[..., None, None], M, np.eye(3))
    rhs = np.where(enough[..., None], rhs, 0.0)
    coef = np.linalg.solve(M, rhs[..., None])[..., 0]
    rss = saa - np.sum(coef * rhs, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(enough, rss / np.maximum(n - 3, 1), np.nan)
    psi = np.where(enough, 0.5 * (coef[..., 1] - 1j * coef[..., 2]), np.nan)
    mean = np.where(enough, coef[..., 0], np.nan)
    return psi, mean, var


def _windowed_psi(A, window, min_columns=None, edge_preserving=True):
    """Ψ (complex) and <A> over ±window columns along each row (NaN = missing).

    Per window, ``A(j) = a0 + a1 cos(2πj/3) + b1 sin(2πj/3)`` is fitted by
    least squares to the columns present, and ``Ψ = (a1 - i b1)/2``, ``<A> = a0``.
    For a full window of a multiple of 3 columns this is the plain Fourier
    average ``<A exp(-2πij/3)>``; where the window is cut by the image edge
    or a column is missing, the plain average would leak ``<A>`` (≫ the
    modulation when the order is partial) into Ψ and turn its phase — the
    fit does not.

    ``edge_preserving``: as in a Kuwahara filter, the centred window and the
    two windows ending at the column are fitted, and the one with the
    smallest residual variance is kept, so that near a domain boundary
    (where the row's pattern jumps in phase) Ψ comes from one side only.
    """
    need = min_columns if min_columns is not None else max(window + 2, 5)
    best = _window_fit(A, window, 0, need)
    if not edge_preserving:
        return best[0], best[1]
    psi, mean, var = best
    for origin in (window, -window):
        p2, m2, v2 = _window_fit(A, window, origin, need)
        take = np.isfinite(v2) & ~(var <= v2)
        psi = np.where(take, p2, psi)
        mean = np.where(take, m2, mean)
        var = np.where(take, v2, var)
    return psi, mean


def ordering_amplitude(amplitude_row: np.ndarray) -> float:
    """``m = 2 |<A(j) exp(-2πij/3)>| / <A>`` of one row of column amplitudes (NaN = missing)."""
    A = np.asarray(amplitude_row, float)
    j = np.arange(len(A))
    ok = np.isfinite(A)
    if ok.sum() < 3:
        return np.nan
    psi = np.mean(A[ok] * np.exp(-2j * np.pi * j[ok] / 3))
    return float(2 * np.abs(psi) / np.mean(A[ok]))


def classify_domains(
    positions_px: np.ndarray,
    amplitude: np.ndarray,
    *,
    window: int = 4,
    min_modulation: float = 0.08,
    min_amplitude_fraction: float = 0.3,
) -> DomainMap:
    """Classify O3' domains A/B/C cell by cell and measure the Li/TM order.

    Parameters
    ----------
    positions_px : (N, 2) array
        Column positions of the TM rows (x, y); columns fainter than
        ``min_amplitude_fraction`` × the 90th-percentile amplitude (O,
        Li-layer columns, noise peaks) are dropped.
    amplitude : (N,) array
        Fitted column amplitudes (:class:`layerscope.stem.ColumnFit`).
    window : int
        Half-width, in columns, of the window along a row over which Ψ is
        averaged (the classification resolution is ~2·window+1 columns).
    min_modulation : float
        Cells whose local ``m`` (geometric mean of the two rows) is below this
        are labelled disordered (−1).
    """
    pos = np.asarray(positions_px, float)
    amp = np.asarray(amplitude, float)
    if len(pos) != len(amp):
        raise ValueError(f"{len(pos)} positions but {len(amp)} amplitudes")
    # relative to a bright column (90th percentile), not the median: at low
    # dose a narrow peak window also picks up as many faint O / Li-layer /
    # noise peaks as there are TM-row columns, which would pull a median down
    keep = amp > min_amplitude_fraction * np.percentile(amp, 90)
    pos, amp = pos[keep], amp[keep]
    fr = layer_frame(pos)
    A, X, Y = _grid(pos, amp, fr)
    psi, mean = _windowed_psi(A, window)
    m_loc = 2 * np.abs(psi) / mean
    z = psi[1:] * np.conj(psi[:-1])
    ok = np.isfinite(z)
    kk, jj = np.nonzero(ok)
    dz = z[kk, jj]
    shift = (-np.rint(3 * np.angle(dz) / (2 * np.pi)).astype(int)) % 3  # 0, 1, 2 ≡ -1
    shift_to_domain = {DOMAIN_SHIFT[n] % 3: i for i, n in enumerate(DOMAINS)}
    dom = np.array([shift_to_domain[s] for s in shift], int)
    mod = np.sqrt(m_loc[kk, jj] * m_loc[kk + 1, jj])
    dom = np.where(mod >= min_modulation, dom, -1)
    cx = 0.5 * (X[kk, jj] + X[kk + 1, jj])
    cy = 0.5 * (Y[kk, jj] + Y[kk + 1, jj])
    # regions: 4-connected cells of one label on the (k, j) grid
    lab_grid = np.full(z.shape, -2)
    lab_grid[kk, jj] = dom
    # A missing column leaves a hole of two cells; fill holes with the nearest
    # cell's label so that a line of holes does not cut a domain in two.
    missing = lab_grid == -2
    if missing.any() and not missing.all():
        _, (ik, ij) = ndimage.distance_transform_edt(missing, return_indices=True)
        lab_grid = lab_grid[ik, ij]
    region = np.full(len(kk), -1)
    r_dom, r_n, r_x, r_y, r_m = [], [], [], [], []
    for d in (-1, 0, 1, 2):
        lab, n = ndimage.label(lab_grid == d)
        for r in range(1, n + 1):
            sel = lab[kk, jj] == r
            region[sel] = len(r_dom)
            r_dom.append(d)
            r_n.append(int(sel.sum()))
            r_x.append(float(cx[sel].mean()))
            r_y.append(float(cy[sel].mean()))
            r_m.append(float(np.median(mod[sel])))
    row_m = np.array([ordering_amplitude(r) for r in A])
    # Image value: median of the local (windowed) m, so that rows crossing
    # domains of different phase are not averaged to a smaller modulation.
    image_m = float(np.nanmedian(m_loc)) if np.any(np.isfinite(m_loc)) else np.nan
    return DomainMap(
        row=kk, col=jj, x_px=cx, y_px=cy, domain=dom, modulation=mod, region=region,
        region_domain=np.asarray(r_dom, int), region_cells=np.asarray(r_n, int),
        region_x_px=np.asarray(r_x), region_y_px=np.asarray(r_y), region_modulation=np.asarray(r_m),
        row_modulation=row_m, image_modulation=image_m,
    )
