"""The TOF neutron powder-pattern model: the sum over phases of Bragg peaks plus background.

For every reflection h of phase p (Rietveld 1969; GSAS-II TOF conventions)::

    I_h  = S_p · m_h · |F_h|² · d_h⁴ / V_p² · A(d_h)          (TOF Lorentz factor ∝ d⁴)
    y(t) = Σ_p Σ_h I_h · P(t − t_h; α, β, σ², γ) + B(t)

with P the unit-area TOF profile of :mod:`layerscope.diffraction.tof_profile`,
t_h the calibrated TOF of d_h, B a Chebyshev background and
A(d) = exp(−μ·2 d sin θ) a simple wavelength-linear absorption term (μ = 0 by default), or with
``absorption_form="cylinder"`` GSAS-II's Debye–Scherrer cylinder at μR = μ·λ (``"cylinder-hewat"``:
Hewat's form, FullProf's).
With the 1/V² in the model S_p is proportional to the phase's volume fraction;
:mod:`layerscope.diffraction.fractions` turns scales into weight/molar fractions.

Implementation: every peak is evaluated on a fixed-length window of K points of the
TOF grid around its position (K chosen from the widest peak so that tails down to
~1e-4 of the maximum are kept) and scattered into the pattern. The kernel is a pure
JAX function of a parameter pytree, so the refinement engine gets exact Jacobians by
autodiff and the same function can be ``vmap``-ed over patterns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope._device import to_device  # noqa: E402
from layerscope.crystal import geometry  # noqa: E402
from layerscope.crystal.phase import Phase  # noqa: E402
from layerscope.diffraction import tof_profile as tp  # noqa: E402
from layerscope.diffraction.background import chebyshev_background  # noqa: E402
from layerscope.diffraction.cw_sample import (  # noqa: E402
    tof_cylinder_absorption, tof_extinction, tof_hewat_absorption)
from layerscope.diffraction.instrument import TOFInstrument  # noqa: E402
from layerscope.diffraction.reflections import reflections  # noqa: E402
from layerscope.diffraction.structure_factors import (  # noqa: E402
    SiteTables, aniso_arguments, site_tables, structure_factor_kernel,
)
from layerscope.diffraction.pattern_windows import (  # noqa: E402,F401  (re-exported)
    peak_profiles, peak_windows, phase_patterns, profile_derivative_patterns, profiles_fit, scatter_rows)

__all__ = ["PhaseSetup", "PatternModel", "build_model", "initial_params", "make_pattern_function",
           "compute_pattern", "PatternResult", "INSTRUMENT_KEYS", "reflection_table", "split_model", "join_model",
           "peak_windows", "peak_profiles", "phase_patterns", "profile_derivative_patterns", "profiles_fit",
           "scatter_rows"]

#: meanings of the ``absorption`` parameter (``PatternModel.absorption_form``)
ABSORPTION_FORMS = ("exponential", "cylinder", "cylinder-hewat")
INSTRUMENT_KEYS = ("zero", "difc", "difa", "difb", "alpha", "beta0", "beta1", "betaq",
                   "sig0", "sig1", "sig2", "sigq", "x", "y", "z")


@dataclass(frozen=True)
class PhaseSetup:
    """Static (non-refined) description of one phase in a pattern model."""

    phase: Phase
    hkl: np.ndarray
    multiplicity: np.ndarray
    tables: SiteTables
    window: int
    left: int
    #: FullProf's TOF extinction parameter (fixed): I × (1 + ext·|F|²·λ²/V²)^(−1/2), |F| in 10⁻¹² cm
    #: (``cw_sample.tof_extinction``)
    extinction: float = 0.0


@dataclass(frozen=True)
class PatternModel:
    """Everything about a pattern model that is fixed during a refinement."""

    tof_us: np.ndarray
    phases: tuple[PhaseSetup, ...]
    n_background: int
    lorentz: bool
    two_theta: float
    t_range: tuple[float, float]
    instrument: TOFInstrument
    #: sub-window widths of the profile kernel (Gaussian part and the expensive Lorentzian
    #: regions, see ``tof_profile.tof_peak_rows``); None evaluates everything at every point
    profile_widths: tuple[int, ...] | None = None
    #: "exact" or "gsas2" (GSAS-II's mirrored rise term, ``tof_profile.tof_peak_rows``)
    lorentz_convention: str = "exact"
    #: neutron scattering-length table: "sears1992" or "gsas2" (``crystal.scattering``)
    scattering: str = "sears1992"
    #: the ``absorption`` parameter's form: "exponential" exp(−μ λ), or "cylinder" GSAS-II's
    #: Debye–Scherrer cylinder with μR = absorption·λ (``cw_sample.tof_cylinder_absorption``), or
    #: "cylinder-hewat" FullProf's (Hewat's) cylinder at the same μR (``cw_sample.tof_hewat_absorption``)
    absorption_form: str = "exponential"

    @property
    def phase_names(self) -> list[str]:
        return [s.phase.name for s in self.phases]


@dataclass(frozen=True)
class PatternResult:
    tof_us: np.ndarray
    total: np.ndarray
    background: np.ndarray
    phases: dict[str, np.ndarray] = field(default_factory=dict)


def _cell_inv_d2(cell, hkl):
    """(1/d² of ``hkl``, cell volume) of a traced cell (:mod:`layerscope.crystal.geometry`)."""
    return geometry.inv_d2(cell, hkl, xp=jnp), geometry.volume(cell, xp=jnp)


def build_model(phases: list[Phase], tof_us, instrument: TOFInstrument, *, n_background: int = 6,
                lorentz: bool | None = None, size_um=None, mustrain=None, mx=1.0,
                tail_fraction: float = 1e-4, window_margin: float = 1.3, d_min: float | None = None,
                lorentz_convention: str = "exact", scattering: str = "sears1992",
                absorption_form: str = "exponential", extinction: dict | None = None) -> PatternModel:
    """Prepare reflection lists and windows for a set of phases on a TOF grid.

    ``lorentz=None`` switches the Lorentzian term on when the instrument has X/Y/Z > 0 or any
    phase has Lorentzian size/strain broadening (``size_um``/``mustrain`` dicts by phase name,
    mixing ``mx``); refinements that free microstrain should pass ``lorentz=True``.
    ``d_min`` leaves out reflections below it (GSAS-II: low TOF limit / difC); by default
    reflections down to 3 % below the first TOF point are kept for their tails.
    ``lorentz_convention="gsas2"`` evaluates GSAS-II's TOF Lorentzian (see ``tof_peak_rows``).
    ``scattering`` names the neutron scattering-length table (``"sears1992"`` or ``"gsas2"``).
    ``absorption_form`` chooses what the ``absorption`` parameter means (``PatternModel``);
    ``extinction`` gives FullProf's fixed TOF extinction parameter by phase name (``cw_sample.tof_extinction``).
    """
    if absorption_form not in ABSORPTION_FORMS:
        raise ValueError(f"absorption_form must be one of {', '.join(ABSORPTION_FORMS)}, got {absorption_form!r}")
    if lorentz_convention not in ("exact", "gsas2"):
        raise ValueError(f"lorentz_convention must be 'exact' or 'gsas2', got {lorentz_convention!r}")
    tof = np.asarray(tof_us, dtype=float)
    if tof.ndim != 1 or len(tof) < 10 or not np.all(np.diff(tof) > 0):
        raise ValueError("tof_us must be a strictly increasing 1-D grid of at least 10 points")
    size_um = size_um or {}
    mustrain = mustrain or {}
    inst = instrument
    lor_inst = inst.x > 0 or inst.y > 0 or inst.z > 0
    lor_sample = mx > 0 and (any(np.isfinite(v) for v in size_um.values()) or any(v > 0 for v in mustrain.values()))
    if lorentz is None:
        lorentz = bool(lor_inst or lor_sample)
    d_lo = inst.d_from_tof(max(tof[0] * 0.97, 1.0))
    d_hi = inst.d_from_tof(tof[-1] * 1.03)
    if d_min is not None:
        d_lo = max(float(d_lo), float(d_min))
    dt = np.gradient(tof)
    setups = []
    rows = []
    for ph in phases:
        refl = reflections(ph, float(d_lo), float(d_hi))
        if len(refl) == 0:
            raise ValueError(f"phase {ph.name!r} has no reflections between d = {d_lo:.3f} and {d_hi:.3f} Å")
        d = refl.d_angstrom
        s_um = size_um.get(ph.name, np.inf)
        mu = mustrain.get(ph.name, 0.0)
        window, left = _window(d, tof, dt, inst, s_um, mu, mx, lorentz, tail_fraction, window_margin)
        setups.append(PhaseSetup(ph, refl.hkl.astype(float), refl.multiplicity.astype(float),
                                 site_tables(ph, refl.hkl, scattering=scattering), window, left,
                                 float((extinction or {}).get(ph.name, 0.0))))
        rows.append((d, left, _shape_np(d, inst, s_um, mu, mx)))
    widths = _profile_widths(tof, rows, max(s.window for s in setups), lorentz)
    return PatternModel(tof, tuple(setups), int(n_background), bool(lorentz), inst.two_theta,
                        (float(tof[0]), float(tof[-1])), inst, widths, lorentz_convention, scattering,
                        absorption_form)


def _profile_widths(tof, rows, k, lorentz):
    """Sub-window widths of the profile kernel for the starting peak positions and shapes, on the
    same (n_reflections, K) layout as :func:`_pattern`."""
    left = np.concatenate([np.full(len(r[0]), r[1]) for r in rows])
    th, alpha, beta, sig2, gam = (np.concatenate([r[2][i] for r in rows]) for i in range(5))
    start = np.clip(np.searchsorted(tof, th) - left, 0, len(tof) - k)
    delta = tof[start[:, None] + np.arange(k)[None, :]] - th[:, None]
    return tp.profile_subwindows(delta, alpha, beta, sig2, gam, lorentz=lorentz)


def _shape_np(d, inst, size_um, mustrain, mx):
    """Position (µs) and profile terms α, β, σ², γ of reflections at d (NumPy, set-up only)."""
    th = inst.zero + inst.difc * d + inst.difa * d**2 + inst.difb / d
    alpha = inst.alpha / d
    beta = inst.beta0 + inst.beta1 / d**4 + inst.betaq / d**2
    sig2 = np.maximum(inst.sig0 + inst.sig1 * d**2 + inst.sig2 * d**4 + inst.sigq * d, 1e-6)
    gam = inst.z + inst.x * d + inst.y * d**2
    g_size = 1e-4 * inst.difc * d**2 / size_um
    g_strain = 1e-6 * inst.difc * d * mustrain
    gam = gam + mx * (g_size + g_strain)
    sig2 = sig2 + ((1 - mx) ** 2 * (g_size**2 + g_strain**2)) / (8 * np.log(2))
    return th, alpha, beta, sig2, gam


def _window(d, tof, dt, inst, size_um, mustrain, mx, lorentz, tail, margin):
    th, alpha, beta, sig2, gam = _shape_np(d, inst, size_um, mustrain, mx)
    fwhm = np.sqrt(8 * np.log(2) * sig2) + gam
    ln_tail = -np.log(tail)
    left_us = 3.0 * fwhm + ln_tail / alpha
    right_us = 3.0 * fwhm + ln_tail / np.maximum(beta, 1e-6)
    if lorentz:
        # Lorentzian tails fall as 1/Δ²: keep ±25 FWHM (≤ ~1 % of the Lorentzian area lost)
        left_us = np.maximum(left_us, 25 * fwhm)
        right_us = np.maximum(right_us, 25 * fwhm)
    bw = np.interp(th, tof, dt)
    n_left = np.ceil(margin * left_us / bw)
    n_right = np.ceil(margin * right_us / bw)
    k = int(min(len(tof), max(16, int(np.max(n_left + n_right)))))
    k = int(min(len(tof), 16 * int(np.ceil(k / 16))))
    left = int(min(k - 1, np.max(n_left)))
    return k, left


def initial_params(model: PatternModel, *, scales=None, background=None, size_um=None, mustrain=None,
                   mx=1.0, absorption=0.0) -> dict:
    """Parameter pytree with the phases' own values and the model instrument."""
    scales = scales or {}
    size_um = size_um or {}
    mustrain = mustrain or {}
    inst = model.instrument
    bkg = np.zeros(model.n_background) if background is None else np.asarray(background, dtype=float)
    if bkg.shape != (model.n_background,):
        raise ValueError(f"background needs {model.n_background} coefficients, got {bkg.shape}")
    phases = []
    for s in model.phases:
        t = s.tables
        phases.append({
            "scale": to_device(float(scales.get(s.phase.name, 1.0))),
            "cell": to_device(s.phase.cell, dtype=float),
            "xyz": to_device(t.xyz),
            "occ": to_device(t.occ),
            "biso": to_device(t.biso),
            **({"uani": to_device(t.uani)} if len(t.aniso_site) else {}),
            "inv_size": to_device(1.0 / float(size_um.get(s.phase.name, np.inf))),
            "mustrain": to_device(float(mustrain.get(s.phase.name, 0.0))),
            "mx": to_device(float(mx)),
        })
    return {
        "instrument": {k: to_device(float(getattr(inst, k))) for k in INSTRUMENT_KEYS},
        "background": to_device(bkg),
        "absorption": to_device(float(absorption)),
        "phases": phases,
    }


def _phase_peaks(setup: PhaseSetup, pp: dict, ip: dict, absorption, sin_theta, form="exponential", tth=90.0):
    """Per-reflection intensity, position and profile terms of one phase."""
    hkl = jnp.asarray(setup.hkl)
    inv_d2, vol = _cell_inv_d2(pp["cell"], hkl)
    d = 1.0 / jnp.sqrt(inv_d2)
    t = setup.tables
    f = structure_factor_kernel(t.hr, t.ht, inv_d2, t.site_weight, t.spec_site, t.spec_b,
                                pp["xyz"], pp["biso"], pp["occ"], **aniso_arguments(t, pp))
    f2 = jnp.real(f) ** 2 + jnp.imag(f) ** 2
    if form == "cylinder":
        trans = tof_cylinder_absorption(absorption, d, tth)
    elif form == "cylinder-hewat":
        trans = tof_hewat_absorption(absorption, d, tth)
    else:
        trans = jnp.exp(-absorption * 2.0 * d * sin_theta)
    inten = pp["scale"] * setup.multiplicity * f2 * d**4 / vol**2 * trans
    if setup.extinction:  # FullProf's TOF extinction (``tof_extinction``); f2 in fm², FullProf's in (10 fm)²
        inten = inten * tof_extinction(setup.extinction, f2 / 100.0, 2.0 * d * sin_theta, vol)
    return inten, f2, d, _peak_shape_terms(d, pp, ip)


def _peak_shape_terms(d, pp, ip):
    th = tp.tof_from_d(d, ip["zero"], ip["difc"], ip["difa"], ip["difb"])
    alpha = tp.alpha_tof(d, ip["alpha"])
    beta = tp.beta_tof(d, ip["beta0"], ip["beta1"], ip["betaq"])
    sig2 = tp.sigma2_tof(d, ip["sig0"], ip["sig1"], ip["sig2"], ip["sigq"])
    gam = tp.gamma_tof(d, ip["x"], ip["y"], ip["z"])
    g_size = 1e-4 * ip["difc"] * d**2 * pp["inv_size"]
    g_strain = 1e-6 * ip["difc"] * d * pp["mustrain"]
    mx = pp["mx"]
    gam = gam + mx * (g_size + g_strain)
    sig2 = sig2 + (1.0 - mx) ** 2 * (g_size**2 + g_strain**2) / tp.EIGHT_LN2
    return th, alpha, beta, jnp.maximum(sig2, 1e-6), gam


def _all_peaks(model: PatternModel, params: dict):
    ip = params["instrument"]
    sin_theta = float(np.sin(np.radians(model.two_theta / 2)))
    out = []
    for s, pp in zip(model.phases, params["phases"]):
        inten, f2, d, (th, alpha, beta, sig2, gam) = _phase_peaks(s, pp, ip, params["absorption"], sin_theta,
                                                                  model.absorption_form, model.two_theta)
        out.append((inten, f2, d, th, alpha, beta, sig2, gam))
    return tuple(jnp.concatenate(cols) for cols in zip(*out))


def reflection_table(model: PatternModel, params: dict, *, profiles: bool = False,
                     fallback: bool = True) -> dict[str, np.ndarray]:
    """Every reflection of the model with its phase, hkl, multiplicity, d (Å), |F|² (fm²),
    integrated intensity I_h, TOF position and profile terms (α, β µs⁻¹; σ² µs²; γ µs).

    The same numbers the pattern kernel uses: for Bragg R factors, intensity partitioning
    (F_obs) and tick marks. ``profiles=True`` adds the kernel's own window of each reflection
    (``window_index``, (n_refl, K) grid indices) and its unit-area profile there (``profile``),
    from the same compiled kernel as the pattern's. ``fallback=False`` compiles that kernel without
    its dense branch (2 s less to compile): only where the profiles fit the model's sub-windows
    (:func:`profiles_fit`, ``Evaluator.profiles_fit``).
    """
    if not model.phases:
        raise ValueError("the model has no phases")
    spec, leaves = split_model(model)
    peaks, idx, prof = _table_jit(spec, leaves, params, bool(profiles), bool(fallback) or not profiles)
    inten, f2, d, th, alpha, beta, sig2, gam = (np.asarray(a) for a in peaks)
    out = {
        "phase": np.concatenate([np.full(len(s.hkl), i) for i, s in enumerate(model.phases)]),
        "hkl": np.concatenate([s.hkl for s in model.phases]).astype(int),
        "multiplicity": np.concatenate([s.multiplicity for s in model.phases]),
        "d_angstrom": d, "f2": f2, "intensity": inten, "tof_us": th,
        "alpha": alpha, "beta": beta, "sig2": sig2, "gamma": gam,
    }
    if profiles:
        out["window_index"] = np.asarray(idx)
        out["profile"] = np.asarray(prof)
    return out


def _pattern(model: PatternModel, params: dict):
    """All phases' peaks are evaluated in one (n_reflections, K) block: the profile (and its
    complex-E1 Lorentzian part) is traced and compiled once, whatever the number of phases."""
    tof = jnp.asarray(model.tof_us)
    n = tof.shape[0]
    n_phase = len(model.phases)
    bkg = chebyshev_background(tof, params["background"], model.t_range)
    if n_phase == 0:
        return bkg, jnp.zeros((0, n)), bkg
    inten, _, _, th, alpha, beta, sig2, gam = _all_peaks(model, params)
    idx, delta = peak_windows(model, th)
    prof = peak_profiles(model, delta, alpha, beta, sig2, gam)
    phases = scatter_rows(model, idx, inten[:, None] * prof)
    return phases.sum(axis=0) + bkg, phases, bkg


# ---------------------------------------------------------------------------------------------
# One compiled kernel per model *shape*: the model's float arrays (TOF grid, hkl, symmetry
# tables, ...) are passed to the jitted functions as arguments and everything else (windows,
# sub-window widths, integer index tables, flags) forms a hashable static spec. Two models with
# the same spec — the stages of a refinement, a repeated refinement of the same data, the
# patterns of a series on one grid — reuse one compiled function instead of tracing and
# compiling the (large) profile kernel again. The Phase and instrument objects are not part of
# the spec (the kernel reads its numbers from the tables and the parameter pytree): inside a
# traced function ``setup.phase`` and ``model.instrument`` are None.

_DROPPED = (Phase, TOFInstrument)


class _Static:
    """A static field value compared by content (NumPy arrays by dtype, shape and bytes)."""

    __slots__ = ("value", "_key", "_hash")

    def __init__(self, value):
        self.value = value
        self._key = _content_key(value)
        self._hash = hash(self._key)

    def __eq__(self, other):
        return isinstance(other, _Static) and self._hash == other._hash and self._key == other._key

    def __hash__(self):
        return self._hash

    def __trace_digest__(self):  # content, for layerscope._tracecache
        return self._key


def _content_key(v):
    if isinstance(v, np.ndarray):
        return ("nd", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (tuple, list)):
        return (type(v).__name__,) + tuple(_content_key(x) for x in v)
    if isinstance(v, dict):
        return ("dict",) + tuple((k, _content_key(x)) for k, x in sorted(v.items()))
    hash(v)
    return (type(v).__name__, v)


class ModelSpec:
    """Hashable static part of a :class:`PatternModel` (see :func:`split_model`)."""

    __slots__ = ("tree", "_hash")

    def __init__(self, tree):
        self.tree = tree
        self._hash = hash(tree)

    def __eq__(self, other):
        return isinstance(other, ModelSpec) and self._hash == other._hash and self.tree == other.tree

    def __hash__(self):
        return self._hash

    def __trace_digest__(self):  # content, for layerscope._tracecache
        return self.tree


def _split(obj, leaves):
    if is_dataclass(obj) and not isinstance(obj, type):
        if isinstance(obj, _DROPPED):
            return ("drop",)
        return ("dc", type(obj), tuple((f.name, _split(getattr(obj, f.name), leaves)) for f in fields(obj)))
    if isinstance(obj, tuple) and any(is_dataclass(x) for x in obj):
        return ("tuple", tuple(_split(x, leaves) for x in obj))
    if isinstance(obj, np.ndarray) and np.issubdtype(obj.dtype, np.floating):
        leaves.append(obj)
        return ("leaf", len(leaves) - 1)
    return ("static", _Static(obj))


def _join(node, leaves):
    kind = node[0]
    if kind == "dc":
        obj = object.__new__(node[1])
        for name, sub in node[2]:
            object.__setattr__(obj, name, _join(sub, leaves))
        return obj
    if kind == "tuple":
        return tuple(_join(x, leaves) for x in node[1])
    if kind == "leaf":
        return leaves[node[1]]
    if kind == "drop":
        return None
    return node[1].value


def split_model(model: PatternModel):
    """(static spec, float-array leaves) of a model, for jitted functions that take the model as
    ``(spec, leaves)`` with the spec static (:func:`join_model` rebuilds it inside the trace)."""
    leaves: list = []
    spec = ModelSpec(_split(model, leaves))
    return spec, tuple(to_device(a) for a in leaves)


def join_model(spec: ModelSpec, leaves) -> PatternModel:
    """The model of :func:`split_model` with its float arrays replaced by ``leaves`` (e.g. tracers)."""
    return _join(spec.tree, leaves)


def _pattern_split(spec, leaves, params):
    return _pattern(join_model(spec, leaves), params)


def _table_split(spec, leaves, params, profiles, fallback):
    model = join_model(spec, leaves)
    peaks = _all_peaks(model, params)
    if not profiles:
        return peaks, None, None
    _, _, _, th, alpha, beta, sig2, gam = peaks
    idx, delta = peak_windows(model, th)
    return peaks, idx, peak_profiles(model, delta, alpha, beta, sig2, gam, fallback=fallback)


_pattern_jit = jax.jit(_pattern_split, static_argnums=0)
_table_jit = jax.jit(_table_split, static_argnums=(0, 3, 4))


def make_pattern_function(model: PatternModel):
    """A jitted ``f(params) -> (total, per_phase, background)`` for this model (compiled once per
    model shape, shared by models with the same static spec)."""
    spec, leaves = split_model(model)

    def f(params):
        return _pattern_jit(spec, leaves, params)

    return f


def compute_pattern(model: PatternModel, params: dict | None = None, **kw) -> PatternResult:
    """Evaluate the model once (NumPy outputs)."""
    params = initial_params(model, **kw) if params is None else params
    total, phases, bkg = make_pattern_function(model)(params)
    return PatternResult(model.tof_us, np.asarray(total), np.asarray(bkg),
                         {s.phase.name: np.asarray(p) for s, p in zip(model.phases, phases)})
