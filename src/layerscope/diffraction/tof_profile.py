"""Time-of-flight calibration and peak profile (GSAS-II / FullProf TOF conventions).

Calibration (GSAS-II ``Zero``, ``difC``, ``difA``, ``difB``; FullProf Zero, Dtt1, Dtt2, Dtt_1overd)::

    t_us = Zero + difC·d + difA·d² + difB/d

Profile: back-to-back exponentials (rise α, decay β) convolved with a pseudo-Voigt
(Von Dreele, Jorgensen & Windsor, J. Appl. Cryst. 15, 581 (1982); the pseudo-Voigt
of Thompson, Cox & Hastings, J. Appl. Cryst. 20, 79 (1987)) — GSAS's EPSVOIGT, GSAS-II
TOF peaks and FullProf Npr = 9/10. As functions of d (Å), GSAS-II's instrument terms::

    α(d)  = alpha / d                                          (µs⁻¹)
    β(d)  = beta-0 + beta-1 / d⁴ + beta-q / d²                 (µs⁻¹)
    σ²(d) = sig-0 + sig-1·d² + sig-2·d⁴ + sig-q·d              (µs²)
    γ(d)  = X·d + Y·d²                                          (µs, Lorentzian FWHM)

Sample broadening (GSAS-II isotropic model; size in µm, microstrain in 10⁻⁶, mixing
``mx`` = Lorentzian fraction, default 1)::

    Γ_size   = 1e-4 · difC · d² / size_um
    Γ_strain = 1e-6 · difC · d · mustrain
    γ  += mx_size·Γ_size + mx_strain·Γ_strain
    σ² += ((1-mx_size)·Γ_size)² / (8 ln 2) + ((1-mx_strain)·Γ_strain)² / (8 ln 2)

TCH pseudo-Voigt: total FWHM F from the Gaussian FWHM √(8 ln2 σ²) and γ, and
η = 1.36603 q − 0.47719 q² + 0.11116 q³ with q = γ/F; both components are taken
at the same FWHM F. With Δ = t − t_h, N = αβ / (2(α+β)), s² = F²/(8 ln 2)::

    G(Δ) = N [e^u erfc(y) + e^v erfc(z)]
        u = α(α s² + 2Δ)/2, y = (α s² + Δ)/√(2 s²), v = β(β s² − 2Δ)/2, z = (β s² − Δ)/√(2 s²)
    L(Δ) = −(2N/π) Im[ e^{p} E1(p) + e^{q} E1(q) ],  p = αΔ + iαF/2,  q = −βΔ + iβF/2
    profile(Δ) = (1 − η) G(Δ) + η L(Δ)              (unit area in µs)

``e^u erfc(y)`` is evaluated as ``exp(−Δ²/2s²)·erfcx(y)`` when y ≥ 0 (and as
``2e^u − exp(−Δ²/2s²)·erfcx(−y)`` when y < 0) so that it never overflows. Everything here is a pure JAX function of arrays (float64).

The refinement's Jacobian needs the profile's derivatives along per-peak directions; they are
written out by hand (:func:`tof_peak_rows_derivatives`, formulas in the block comment above it)
from the values the row kernel computes anyway — one pass for any number of directions — because
forward-mode autodiff of the row kernel cost more than the kernel itself per direction.
"""

from __future__ import annotations

import math

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.scipy.special import erfc  # noqa: E402

from layerscope.diffraction import expint as _ei  # noqa: E402
from layerscope.diffraction.expint import exp_e1  # noqa: E402

__all__ = [
    "tof_from_d", "alpha_tof", "beta_tof", "sigma2_tof", "gamma_tof", "sample_broadening",
    "tch_fwhm_eta", "b2b_gauss", "b2b_lorentz", "tof_peak", "EIGHT_LN2",
    "b2b_lorentz_rows", "tof_peak_rows", "tof_peak_rows_derivatives", "profile_subwindows",
    "rows_fit_subwindows",
]

EIGHT_LN2 = 8.0 * jnp.log(2.0)
_SQRT2 = jnp.sqrt(2.0)


def tof_from_d(d, zero, difc, difa=0.0, difb=0.0):
    """TOF (µs) of d (Å): Zero + difC·d + difA·d² + difB/d."""
    return zero + difc * d + difa * d**2 + difb / d


def alpha_tof(d, alpha):
    """Rise constant α(d) = alpha/d in µs⁻¹ (GSAS-II)."""
    return alpha / d


def beta_tof(d, beta0, beta1, betaq=0.0):
    """Decay constant β(d) = beta-0 + beta-1/d⁴ + beta-q/d² in µs⁻¹ (GSAS-II)."""
    return beta0 + beta1 / d**4 + betaq / d**2


def sigma2_tof(d, sig0, sig1, sig2, sigq=0.0):
    """Gaussian variance σ²(d) = sig-0 + sig-1·d² + sig-2·d⁴ + sig-q·d in µs² (GSAS-II)."""
    return sig0 + sig1 * d**2 + sig2 * d**4 + sigq * d


def gamma_tof(d, x, y, z=0.0):
    """Lorentzian FWHM γ(d) = Z + X·d + Y·d² in µs (GSAS-II)."""
    return z + x * d + y * d**2


def sample_broadening(d, difc, size_um, mustrain, mx_size=1.0, mx_strain=1.0):
    """Isotropic size/microstrain broadening (GSAS-II): returns (Δσ² µs², Δγ µs).

    ``size_um`` = ∞ and ``mustrain`` = 0 give no broadening.
    """
    g_size = 1e-4 * difc * d**2 / size_um
    g_strain = 1e-6 * difc * d * mustrain
    dgam = mx_size * g_size + mx_strain * g_strain
    dsig2 = (((1.0 - mx_size) * g_size) ** 2 + ((1.0 - mx_strain) * g_strain) ** 2) / EIGHT_LN2
    return dsig2, dgam


def tch_fwhm_eta(sig2, gam, xp=jnp):
    """Thompson–Cox–Hastings total FWHM (µs) and Lorentzian fraction η (``xp`` = numpy outside JAX)."""
    fg = xp.sqrt(float(EIGHT_LN2) * sig2)
    fl = gam
    f5 = (fg**5 + 2.69269 * fg**4 * fl + 2.42843 * fg**3 * fl**2 + 4.47163 * fg**2 * fl**3
          + 0.07842 * fg * fl**4 + fl**5)
    fwhm = f5 ** 0.2
    q = fl / fwhm
    eta = 1.36603 * q - 0.47719 * q**2 + 0.11116 * q**3
    return fwhm, xp.clip(eta, 0.0, 1.0)


_ERFCX_SPLIT = 8.0
# erfcx(t) ~ 1/(t√π) Σ_k (−1)^k (2k−1)!!/(2t²)^k for t ≥ 8: 13 terms reach 3e-15 (A&S 7.1.23)
_ERFCX_ASYM = [(-1) ** k * math.prod(range(1, 2 * k, 2)) / 2.0**k for k in range(13)]


@jax.custom_jvp
def _erfcx_pos(y):
    """Scaled complementary error function exp(y²)·erfc(y) for y ≥ 0, float64 accurate
    (< 3e-15 relative against ``scipy.special.erfcx``).

    exp(y²)·erfc(y) directly for y < 8 (no overflow there), the asymptotic series beyond.
    Its derivative is the analytic d erfcx/dy = 2y·erfcx(y) − 2/√π (a few operations instead of
    the tangent of every step of the series: smaller compiled Jacobians).
    """
    return _erfcx_pos_value(y)


@_erfcx_pos.defjvp
def _erfcx_pos_jvp(primals, tangents):
    (y,), (dy,) = primals, tangents
    v = _erfcx_pos_value(y)
    return v, (2.0 * y * v - 2.0 / math.sqrt(math.pi)) * dy


def _erfcx_pos_value(y):
    small = y < _ERFCX_SPLIT
    ys = jnp.where(small, y, 0.0)
    direct = jnp.exp(ys * ys) * erfc(ys)
    yl = jnp.where(small, _ERFCX_SPLIT, y)
    w = 1.0 / (yl * yl)
    acc = jnp.full_like(yl, _ERFCX_ASYM[-1])
    for c in _ERFCX_ASYM[-2::-1]:
        acc = acc * w + c
    return jnp.where(small, direct, acc / (yl * math.sqrt(math.pi)))


def _exp_erfc(a, y, gauss):
    """e^a · erfc(y) where a − y² = −Δ²/(2s²) and ``gauss`` = exp(−Δ²/(2s²)) (no overflow).

    y ≥ 0: e^{a−y²}·erfcx(y);  y < 0: 2e^a − e^{a−y²}·erfcx(−y)  (a < 0 there, no cancellation
    since erfc(−y) ≤ 1 < 2).
    """
    cx = gauss * _erfcx_pos(jnp.abs(y))
    return jnp.where(y >= 0, cx, 2.0 * jnp.exp(jnp.where(y >= 0, 0.0, a)) - cx)


def b2b_gauss(delta, alpha, beta, sig2):
    """Back-to-back exponentials ⊗ Gaussian (variance ``sig2``), unit area in Δ (µs)."""
    s = jnp.sqrt(2.0 * sig2)
    norm = alpha * beta / (2.0 * (alpha + beta))
    gauss = jnp.exp(-(delta * delta) / (2.0 * sig2))
    u = 0.5 * alpha * (alpha * sig2 + 2.0 * delta)
    y = (alpha * sig2 + delta) / s
    v = 0.5 * beta * (beta * sig2 - 2.0 * delta)
    z = (beta * sig2 - delta) / s
    return norm * (_exp_erfc(u, y, gauss) + _exp_erfc(v, z, gauss))


def b2b_lorentz(delta, alpha, beta, fwhm):
    """Back-to-back exponentials ⊗ Lorentzian (FWHM ``fwhm``), unit area in Δ (µs)."""
    norm = alpha * beta / (2.0 * (alpha + beta))
    p = alpha * delta + 1j * alpha * fwhm / 2.0
    q = -beta * delta + 1j * beta * fwhm / 2.0
    # two separate calls: stacking p and q into one array defeats XLA's fusion (2.7x slower)
    return -(2.0 * norm / jnp.pi) * (jnp.imag(exp_e1(p)) + jnp.imag(exp_e1(q)))


def tof_peak(delta, alpha, beta, sig2, gam, *, lorentz: bool = True):
    """The TOF profile at ``delta = t − t_h`` (µs), normalised to unit area.

    Parameters broadcast against ``delta``. ``lorentz=False`` skips the Lorentzian
    term (exactly right when γ = 0, since then η = 0).
    """
    gam = jnp.maximum(gam, 1e-8)
    fwhm, eta = tch_fwhm_eta(sig2, gam)
    s2 = fwhm**2 / EIGHT_LN2
    g = b2b_gauss(delta, alpha, beta, s2)
    if not lorentz:
        return g  # η ≈ 1e-8/F when γ = 0: the Lorentzian term is below float precision
    lor = b2b_lorentz(delta, alpha, beta, fwhm)
    return (1.0 - eta) * g + eta * lor


# ---------------------------------------------------------------------------------------------
# Many peaks at once, one peak per row of a window of the TOF grid (the pattern kernel)
#
# Along a row Δ increases, so x_p = αΔ increases and x_q = −βΔ decreases while the imaginary
# parts y_p = αF/2, y_q = βF/2 are constant: each region of :mod:`~layerscope.diffraction.expint`
# (series, continued fraction, asymptotic) is one interval of columns. The cheap asymptotic
# series is evaluated on the whole row; the power series and the continued fraction only on
# sub-windows of static widths that start at each row's first column of their region. The
# Gaussian part is evaluated only where it exceeds e^-41 ≈ 2e-18 of its scale N (outside, it is
# set to 0). The widths come from :func:`profile_subwindows` (the model's starting parameters,
# with a margin); a chunk of rows whose regions outgrow them is evaluated densely (every
# region at every point), so the result never depends on the widths, only the speed does.

_GAUSS_LN_TAIL = 41.0  # the b2b Gaussian part is < 2 e^-41 N beyond the interval below


def _gauss_interval(alpha, beta, s2, xp=jnp):
    """(lo, hi) in Δ outside which both terms of :func:`b2b_gauss` are < e^-41 · N:
    e^u ≤ e^-41 for Δ < −(41/α + αs²/2), e^{−Δ²/2s²} ≤ e^-41 for |Δ| > 9.06 s (erfcx ≤ 1)."""
    s = xp.sqrt(s2)
    core = math.sqrt(2.0 * _GAUSS_LN_TAIL) * s
    lo = -xp.maximum(_GAUSS_LN_TAIL / alpha + 0.5 * alpha * s2, core)
    hi = xp.maximum(_GAUSS_LN_TAIL / beta + 0.5 * beta * s2, core)
    return lo, hi


def _row_region_eval(x, rowargs, mask, width, fn, safe_x):
    """fn(x, *rowargs) on the ``width`` columns of each row from its first ``mask`` column, mapped
    back onto the full rows (values outside ``mask`` are meaningless); rowargs are (n, 1). ``fn``
    may return a tuple of arrays (each is mapped back)."""
    n, k = x.shape
    start = jnp.argmax(mask, axis=1)[:, None]
    cols = start + jnp.arange(width)[None, :]
    colc = jnp.minimum(cols, k - 1)
    inside = jnp.take_along_axis(mask, colc, axis=1) & (cols < k)
    xs = jnp.where(inside, jnp.take_along_axis(x, colc, axis=1), safe_x)
    # evaluated inside a loop so that XLA materialises the sub-window values: fused into the
    # gather below, the kernel would run once per output column instead of once per sub-window
    # column
    g = 2 if n % 2 == 0 else 1
    rows = [jnp.broadcast_to(a, (n, 1)).reshape(g, n // g, 1) for a in rowargs]
    vals = jax.lax.map(lambda t: fn(t[0], *t[1:]), (xs.reshape(g, n // g, width), *rows))
    back = jnp.clip(jnp.arange(k)[None, :] - start, 0, width - 1)
    return jax.tree_util.tree_map(lambda v: jnp.take_along_axis(v.reshape(n, width), back, axis=1), vals)


def _with_e1_jvp(region_fn):
    """``region_fn(x, y, *rest)`` = Im[e^z E1(z)], z = x + iy, with the analytic derivative
    d(e^z E1(z))/dz = e^z E1(z) − 1/z (A&S 5.1.26): ∂Im/∂x = Im f + y/|z|², ∂Im/∂y = Re f − x/|z|².
    The kernels' long Horner/continued-fraction chains are then not differentiated step by step,
    which keeps the forward-mode Jacobian small to compile and cheap to run. ``rest`` (sin y and
    cos y of the series) are functions of y and get no tangent of their own."""

    @jax.custom_jvp
    def fn(x, y, *rest):
        return region_fn(x, y, *rest)

    @fn.defjvp
    def fn_jvp(primals, tangents):
        x, y = primals[0], primals[1]
        dx, dy = tangents[0], tangents[1]
        re, im = region_fn(*primals, real_part=True)
        r2 = x * x + y * y
        return im, (im + y / r2) * dx + (re - x / r2) * dy

    return fn


_im_e1_series = _with_e1_jvp(_ei.im_exp_e1_series)
_im_e1_cf = _with_e1_jvp(_ei.im_exp_e1_cf)
_im_e1_asym = _with_e1_jvp(_ei.im_exp_e1_asym)


def _im_exp_e1_rows(x, y, widths):
    """Im[e^z E1(z)] on rows (z = x + iy, y constant per row, x monotonic along each row)."""
    series, cf = _ei.im_exp_e1_regions(x, y)
    far = ~(series | cf)
    out = _im_e1_asym(jnp.where(far, x, _ei.R_FAR), jnp.where(far, y, 0.0))
    yc = jnp.minimum(y, _ei.R_FAR)  # rows with y ≥ R_FAR have no series/cf points
    if widths is None:
        ser = _im_e1_series(jnp.where(series, x, -1.0), jnp.broadcast_to(yc, x.shape))
        cfv = _im_e1_cf(jnp.where(cf, x, _ei.R_FAR), jnp.broadcast_to(yc, x.shape))
    else:
        w_ser, w_cf = widths
        ser = _row_region_eval(x, (yc, jnp.sin(yc), jnp.cos(yc)), series, w_ser, _im_e1_series, -1.0)
        cfv = _row_region_eval(x, (yc,), cf, w_cf, _im_e1_cf, _ei.R_FAR)
    return jnp.where(series, ser, jnp.where(cf, cfv, out))


def _lorentz_im(delta, alpha, beta, fwhm, widths, gsas2=False):
    wp = None if widths is None else widths[0:2]
    wq = None if widths is None else widths[2:4]
    if gsas2:  # GSAS-II's EPSVOIGT: z = −αΔ + iαF/2 (the rise term mirrored), evaluated densely
        return (_im_exp_e1_rows(-alpha * delta, 0.5 * alpha * fwhm, None)
                + _im_exp_e1_rows(-beta * delta, 0.5 * beta * fwhm, wq))
    return (_im_exp_e1_rows(alpha * delta, 0.5 * alpha * fwhm, wp)
            + _im_exp_e1_rows(-beta * delta, 0.5 * beta * fwhm, wq))


def b2b_lorentz_rows(delta, alpha, beta, fwhm, widths=None):
    """:func:`b2b_lorentz` for rows of increasing ``delta`` (n_rows, K) with per-row ``alpha``,
    ``beta``, ``fwhm`` of shape (n_rows, 1): every region evaluated at every point when
    ``widths`` is None, else on sub-windows of the widths (p-series, p-cf, q-series, q-cf),
    which must hold every row's regions (see :func:`tof_peak_rows`)."""
    norm = alpha * beta / (2.0 * (alpha + beta))
    return -(2.0 * norm / jnp.pi) * _lorentz_im(delta, alpha, beta, fwhm, widths)


def _region_counts(delta, alpha, beta, s2, fwhm, lorentz, xp=jnp):
    """Columns per row in each sub-window region: (gauss, p-series, p-cf, q-series, q-cf)."""
    lo, hi = _gauss_interval(alpha, beta, s2, xp)
    out = [((delta > lo) & (delta < hi)).sum(axis=1)]
    if lorentz:
        for x, y in ((alpha * delta, 0.5 * alpha * fwhm), (-beta * delta, 0.5 * beta * fwhm)):
            out += [m.sum(axis=1) for m in _ei.im_exp_e1_regions(x, y, xp)]
    return out


def tof_peak_rows(delta, alpha, beta, sig2, gam, *, lorentz: bool = True, widths=None,
                  lorentz_convention: str = "exact", fallback: bool = True, with_fit: bool = False):
    """:func:`tof_peak` for rows of increasing ``delta`` (n_rows, K), one peak per row, with
    per-row ``alpha``, ``beta``, ``sig2``, ``gam`` of shape (n_rows, 1).

    The same formula at every point as :func:`tof_peak`; the Lorentzian part from the
    region-wise Im[e^z E1(z)] of :mod:`~layerscope.diffraction.expint` (< 2e-9 absolute, i.e.
    ~1e-9 of the peak maximum) and the Gaussian part set to 0 where it is below 2e-18 of its
    scale. ``widths`` (from :func:`profile_subwindows`: gauss, p-series, p-cf, q-series,
    q-cf) evaluates the Gaussian part and the expensive Lorentzian regions only on per-row
    sub-windows; rows whose regions do not fit are evaluated densely (the values do not
    depend on ``widths``).

    ``lorentz_convention="gsas2"`` reproduces GSAS-II's TOF profile (``EPSVOIGT`` calls the
    exponential integral with z = −αΔ + iαF/2 for the rise term where the convolution gives
    +αΔ + iαF/2): its Lorentzian part puts both exponential tails on the high-TOF side. Only for
    re-running a GSAS-II refinement step by step; ``"exact"`` is the true convolution.

    ``fallback=False`` leaves out the dense branch: only for callers that checked
    :func:`rows_fit_subwindows` at these arguments (the Jacobian kernel of the refinement).
    ``with_fit=True`` also returns whether the rows fit the sub-windows (the flag the dense
    fallback is chosen on; True without ``widths`` or ``fallback``).
    """
    if lorentz_convention not in ("exact", "gsas2"):
        raise ValueError(f"lorentz_convention must be 'exact' or 'gsas2', got {lorentz_convention!r}")
    gsas2 = lorentz_convention == "gsas2"
    gam = jnp.maximum(gam, 1e-8)
    fwhm, eta = tch_fwhm_eta(sig2, gam)
    s2 = fwhm**2 / EIGHT_LN2
    norm = alpha * beta / (2.0 * (alpha + beta))
    lo, hi = _gauss_interval(alpha, beta, s2)
    gmask = (delta > lo) & (delta < hi)

    def evaluate(w):
        if w is None:
            g = b2b_gauss(jnp.where(gmask, delta, 0.0), alpha, beta, s2)
        else:
            g = _row_region_eval(delta, (alpha, beta, s2), gmask, w[0], b2b_gauss, 0.0)
        g = jnp.where(gmask, g, 0.0)
        if not lorentz:
            return g
        lor = -(2.0 * norm / jnp.pi) * _lorentz_im(delta, alpha, beta, fwhm, None if w is None else w[1:], gsas2)
        return (1.0 - eta) * g + eta * lor

    if widths is None:
        return (evaluate(None), jnp.asarray(True)) if with_fit else evaluate(None)
    if not fallback:
        return (evaluate(tuple(widths)), jnp.asarray(True)) if with_fit else evaluate(tuple(widths))
    counts = _region_counts(delta, alpha, beta, s2, fwhm, lorentz)
    fits = jnp.all(jnp.stack([c.max() <= w for c, w in zip(counts, widths)]))
    out = jax.lax.cond(fits, lambda: evaluate(tuple(widths)), lambda: evaluate(None))
    return (out, fits) if with_fit else out


# ---------------------------------------------------------------------------------------------
# Derivatives of the row profiles along per-row directions (the refinement's Jacobian)
#
# Written by hand rather than by forward-mode autodiff of tof_peak_rows: one JVP of the row
# kernel cost more than the kernel itself, for every direction, while every partial derivative
# of the profile follows from values the kernel computes anyway:
#
#   Gaussian part  G = N (T₁ + T₂),  T₁ = e^u erfc(y), T₂ = e^v erfc(z)  (module docstring);
#     with d(e^a erfc(b)) = e^a erfc(b) da − (2/√π) e^{a−b²} db and a − b² = −Δ²/2s² for both:
#     ∂(T₁+T₂)/∂Δ = αT₁ − βT₂,
#     ∂/∂α = (αs² + Δ)T₁ − (2/√π)·g·r/2,  ∂/∂β = (βs² − Δ)T₂ − (2/√π)·g·r/2,
#     ∂/∂s² = (α²T₁ + β²T₂)/2 − (2/√π)·g·(α + β)/(2r),   g = e^{−Δ²/2s²},  r = √(2s²)
#   Lorentzian part  L = −(2N/π) Im[f(p) + f(q)],  f(z) = e^z E1(z),  f'(z) = f(z) − 1/z:
#     ∂ Im f(p) = Re f'(p)·Im dp + Im f'(p)·Re dp,  p = ±αΔ + iαF/2,  q = −βΔ + iβF/2
#   N = αβ/(2(α + β)); the TCH F and η are functions of the row's σ² and γ only (their per-row
#   derivatives by autodiff of tch_fwhm_eta: a few numbers per row).
#
# So each region is evaluated once, on the same points as in tof_peak_rows, and returns one
# complex array: f(z) (both parts are needed now), and T₁ + iT₂ for the Gaussian. One output
# per fused loop matters on the CPU: XLA does not fuse sibling outputs there, so a loop that
# returned Re and Im separately would run the series twice (1.5× measured), and the shared
# parts, fused into the k directions, would be recomputed once per direction.

def _gauss_terms(delta, alpha, beta, s2):
    """T₁ + iT₂ of :func:`b2b_gauss` (without N), and g = exp(−Δ²/2s²)."""
    s = jnp.sqrt(2.0 * s2)
    gauss = jnp.exp(-(delta * delta) / (2.0 * s2))
    u = 0.5 * alpha * (alpha * s2 + 2.0 * delta)
    y = (alpha * s2 + delta) / s
    v = 0.5 * beta * (beta * s2 - 2.0 * delta)
    z = (beta * s2 - delta) / s
    return jax.lax.complex(_exp_erfc(u, y, gauss), _exp_erfc(v, z, gauss)), gauss


def _exp_e1_region(fn):
    """A region kernel of :mod:`~layerscope.diffraction.expint` returning e^z E1(z) as one complex array."""
    def f(*args):
        return jax.lax.complex(*fn(*args, real_part=True))
    return f


_e1_series_c = _exp_e1_region(_ei.im_exp_e1_series)
_e1_cf_c = _exp_e1_region(_ei.im_exp_e1_cf)
_e1_asym_c = _exp_e1_region(_ei.im_exp_e1_asym)


def _by_halves(fn, *args):
    """fn(*args) on two halves of the rows (leading axis) inside a loop, so that XLA materialises
    its output once instead of fusing it into each of several consumers (an optimization
    barrier does not prevent that on the CPU, and a one-trip loop is removed)."""
    n = args[0].shape[0]
    g = 2 if n % 2 == 0 else 1
    split = tuple(jnp.broadcast_to(a, (n,) + a.shape[1:]).reshape((g, n // g) + a.shape[1:]) for a in args)
    vals = jax.lax.map(lambda t: fn(*t), split)
    return jax.tree_util.tree_map(lambda v: v.reshape((n,) + v.shape[2:]), vals)


def _exp_e1_rows(x, y, widths):
    """e^z E1(z) (complex) on rows, the regions and sub-windows of :func:`_im_exp_e1_rows`."""
    series, cf = _ei.im_exp_e1_regions(x, y)
    far = ~(series | cf)
    out = _by_halves(_e1_asym_c, jnp.where(far, x, _ei.R_FAR), jnp.where(far, y, 0.0))
    yc = jnp.minimum(y, _ei.R_FAR)
    if widths is None:
        ser = _by_halves(_e1_series_c, jnp.where(series, x, -1.0), yc)
        cfv = _by_halves(_e1_cf_c, jnp.where(cf, x, _ei.R_FAR), yc)
    else:
        w_ser, w_cf = widths
        ser = _row_region_eval(x, (yc, jnp.sin(yc), jnp.cos(yc)), series, w_ser, _e1_series_c, -1.0)
        cfv = _row_region_eval(x, (yc,), cf, w_cf, _e1_cf_c, _ei.R_FAR)
    return jnp.where(series, ser, jnp.where(cf, cfv, out))


def _tch_rows(sig2, gam):
    return tch_fwhm_eta(sig2, jnp.maximum(gam, 1e-8))


def tof_peak_rows_derivatives(delta, alpha, beta, sig2, gam, coef, *, lorentz: bool = True, widths=None,
                              lorentz_convention: str = "exact", fallback: bool = True):
    """Linear combinations of :func:`tof_peak_rows` and its partial derivatives, per row.

    ``coef`` (k, 6, n_rows, 1): returns (k, n_rows, K) with
    ``out[j] = coef[j, 0]·P + Σ_q coef[j, 1 + q]·∂P/∂x_q`` for the profile P of each row and its
    arguments x = (Δ, α, β, σ², γ): the directional derivative of every row's profile along its own
    per-row direction (plus a multiple of the profile), for k directions at once. Analytic (the
    block comment above), on the regions, sub-windows and dense fallback of :func:`tof_peak_rows`:
    the derivative of exactly what it computes, to rounding.
    """
    if lorentz_convention not in ("exact", "gsas2"):
        raise ValueError(f"lorentz_convention must be 'exact' or 'gsas2', got {lorentz_convention!r}")
    gsas2 = lorentz_convention == "gsas2"
    one, zero = jnp.ones_like(sig2), jnp.zeros_like(sig2)
    (fwhm, eta), (f_s, e_s) = jax.jvp(_tch_rows, (sig2, gam), (one, zero))
    _, (f_g, e_g) = jax.jvp(_tch_rows, (sig2, gam), (zero, one))
    s2 = fwhm**2 / EIGHT_LN2
    r = jnp.sqrt(2.0 * s2)
    norm = alpha * beta / (2.0 * (alpha + beta))
    n_a = beta * beta / (2.0 * (alpha + beta) ** 2)  # ∂N/∂α
    n_b = alpha * alpha / (2.0 * (alpha + beta) ** 2)
    lo, hi = _gauss_interval(alpha, beta, s2)
    gmask = (delta > lo) & (delta < hi)
    # σ² and γ move the profile through the TCH F and η only
    c0, cd, ca, cb = coef[:, 0], coef[:, 1], coef[:, 2], coef[:, 3]
    c_f = coef[:, 4] * f_s + coef[:, 5] * f_g
    c_e = coef[:, 4] * e_s + coef[:, 5] * e_g
    sp = -1.0 if gsas2 else 1.0
    lc = -2.0 / math.pi

    def partials(w, delta, alpha, beta, s2, r, fwhm, eta, norm, n_a, n_b, gmask):
        """P and ∂P along Δ, α, β, F, η, packed in pairs: three complex (n, K) arrays."""
        if w is None:
            t12, gauss = _by_halves(_gauss_terms, jnp.where(gmask, delta, 0.0), alpha, beta, s2)
        else:
            t12, gauss = _row_region_eval(delta, (alpha, beta, s2), gmask, w[0], _gauss_terms, 0.0)
        t1, t2 = jnp.where(gmask, jnp.real(t12), 0.0), jnp.where(gmask, jnp.imag(t12), 0.0)
        cg = jnp.where(gmask, (2.0 / math.sqrt(math.pi)) * gauss, 0.0)
        tot = t1 + t2
        g = norm * tot
        g_d = norm * (alpha * t1 - beta * t2)
        g_a = norm * ((alpha * s2 + delta) * t1 - 0.5 * r * cg) + n_a * tot
        g_b = norm * ((beta * s2 - delta) * t2 - 0.5 * r * cg) + n_b * tot
        g_f = norm * (0.5 * (alpha * alpha * t1 + beta * beta * t2) - cg * (alpha + beta) / (2.0 * r)) \
            * (2.0 * fwhm / EIGHT_LN2)  # ∂/∂s² · ds²/dF
        if not lorentz:
            return (jax.lax.complex(g, g_d), jax.lax.complex(g_a, g_b),
                    jax.lax.complex(g_f, jnp.zeros_like(g_f)))
        xp, yp = sp * alpha * delta, 0.5 * alpha * fwhm
        xq, yq = -beta * delta, 0.5 * beta * fwhm
        fp = _exp_e1_rows(xp, yp, None if (w is None or gsas2) else w[1:3])
        fq = _exp_e1_rows(xq, yq, None if w is None else w[3:5])
        # f'(z) = f(z) − 1/z = A + iB
        r2p, r2q = xp * xp + yp * yp, xq * xq + yq * yq
        ap, bp = jnp.real(fp) - xp / r2p, jnp.imag(fp) + yp / r2p
        aq, bq = jnp.real(fq) - xq / r2q, jnp.imag(fq) + yq / r2q
        im = jnp.imag(fp) + jnp.imag(fq)
        lor = lc * norm * im
        l_d = lc * norm * (sp * alpha * bp - beta * bq)
        l_a = lc * (norm * (0.5 * fwhm * ap + sp * delta * bp) + n_a * im)
        l_b = lc * (norm * (0.5 * fwhm * aq - delta * bq) + n_b * im)
        l_f = lc * norm * 0.5 * (alpha * ap + beta * aq)
        ge = 1.0 - eta
        return (jax.lax.complex(ge * g + eta * lor, ge * g_d + eta * l_d),
                jax.lax.complex(ge * g_a + eta * l_a, ge * g_b + eta * l_b),
                jax.lax.complex(ge * g_f + eta * l_f, lor - g))

    def evaluate(w):
        p1, p2, p3 = _by_halves(lambda *a: partials(w, *a), delta, alpha, beta, s2, r, fwhm, eta, norm, n_a, n_b,
                                gmask)
        return (c0 * jnp.real(p1) + cd * jnp.imag(p1) + ca * jnp.real(p2) + cb * jnp.imag(p2) + c_f * jnp.real(p3)
                + c_e * jnp.imag(p3))

    if widths is None:
        return evaluate(None)
    if not fallback:
        return evaluate(tuple(widths))
    counts = _region_counts(delta, alpha, beta, s2, fwhm, lorentz)
    fits = jnp.all(jnp.stack([c.max() <= w for c, w in zip(counts, widths)]))
    return jax.lax.cond(fits, lambda: evaluate(tuple(widths)), lambda: evaluate(None))


def rows_fit_subwindows(delta, alpha, beta, sig2, gam, *, lorentz: bool = True, widths=None):
    """True when every row's regions fit the sub-window ``widths`` (then :func:`tof_peak_rows`
    with ``fallback=False`` — no dense branch compiled — gives the same values and derivatives)."""
    if widths is None:
        return jnp.asarray(True)
    fwhm, _ = tch_fwhm_eta(sig2, jnp.maximum(gam, 1e-8))
    s2 = fwhm**2 / EIGHT_LN2
    counts = _region_counts(delta, alpha, beta, s2, fwhm, lorentz)
    return jnp.all(jnp.stack([c.max() <= w for c, w in zip(counts, widths)]))


def profile_subwindows(delta, alpha, beta, sig2, gam, *, lorentz: bool = True, margin: float = 1.25,
                       pad: int = 8):
    """Static sub-window widths (gauss, p-series, p-cf, q-series, q-cf; only the first without
    ``lorentz``) for :func:`tof_peak_rows`: the most columns any row needs in each region,
    times ``margin`` plus ``pad``, capped at the row length K. NumPy arrays as in
    :func:`tof_peak_rows` (per-row terms of shape (n_rows,) or (n_rows, 1)).

    The Lorentzian regions are counted at the imaginary parts where they are widest in x
    (y = 0 for the series, y = 0.454·R_FAR for the continued fraction), so changes of the peak
    widths alone never outgrow them; the Gaussian interval grows with the width, and the
    margin leaves room for the peaks to broaden during a refinement.
    """
    delta = np.asarray(delta, dtype=float)
    alpha, beta, sig2, gam = (np.asarray(a, dtype=float).reshape(-1, 1) for a in (alpha, beta, sig2, gam))
    k = delta.shape[1]
    fwhm, _ = tch_fwhm_eta(sig2, np.maximum(gam, 1e-8), np)
    s2 = fwhm**2 / float(EIGHT_LN2)
    counts = _region_counts(delta, alpha, beta, s2, fwhm, False, np)
    if lorentz:
        for x in (alpha * delta, -beta * delta):
            worst = [[m.sum(axis=1).max() for m in _ei.im_exp_e1_regions(x, np.full_like(alpha, y0), np)]
                     for y0 in (0.0, 0.454 * _ei.R_FAR)]
            counts += [max(worst[0][0], worst[1][0]), max(worst[0][1], worst[1][1])]
    out = []
    for n in counts:
        w = int(np.ceil(margin * float(np.max(n)))) + pad
        out.append(int(min(k, 8 * int(np.ceil(w / 8)))))
    return tuple(out)
