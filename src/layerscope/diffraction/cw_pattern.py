"""The constant-wavelength powder-pattern model (X-ray or neutron), in GSAS-II's terms.

For every reflection h of phase p (GSAS-II ``getPowderProfile``; formulas of positions, widths
and the profile P in :mod:`layerscope.diffraction.cw_profile`; GSAS-II's hydrostatic strain
``hstrain`` = (D11, D22, D33, D12, D13, D23) adds D11 h² + … + D23 kl to 1/d² of that histogram)::

    Icorr_h = S_p · S_hist · m_h · pol(2θ_h) / (V_p · 2 sin²θ_h cosθ_h)      (pol = 1 for neutrons)
    y(2θ)   = Σ_p Σ_h Icorr_h |F_h|² [P(2θ − pos_h) + I(L2)/I(L1)·P(2θ − pos₂_h)] + B(2θ)

|F|² in electrons² (X-ray: f = f0(s) + f′ + i f″, f0 = Σ a_i exp(−b_i s²) + c, s = 1/2d; the
International Tables coefficients gemmi carries, which are GSAS-II's) or barn (neutron: b in
10⁻¹² cm), P with unit area in centidegrees. B is a Chebyshev series in
u = −1 + 2(x − x_first)/(x_last − x_first) over the computed range (GSAS-II "chebyschev-1").

f′ and f″ default to gemmi's Cromer–Liberman values at the Kα1 energy; GSAS-II's own tables
differ (Pb at Cu Kα: f′ −4.078 in GSAS-II, −3.948 here), so ``anomalous`` takes per-element
values and the values used are kept in the model (``CWModel.scattering``). Neutron lengths default
to layerscope's table (``crystal.scattering``; GSAS-II's differ in the 4th digit for Pb and O)
and ``scattering_lengths`` overrides them.

Each peak is evaluated on GSAS-II's window (``cw_profile.gsas2_window``) chosen from the starting
parameters and then held fixed, as are the FCJ quadrature nodes; the kernel is a pure JAX
function of a parameter pytree, so the refinement gets its Jacobian by autodiff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax

jax.config.update("jax_enable_x64", True)

import gemmi  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope._errors import InputError  # noqa: E402
from layerscope.crystal import geometry  # noqa: E402
from layerscope.crystal.phase import Phase, symmetry_operations  # noqa: E402
from layerscope.crystal.scattering import b_coh_fm, element_of  # noqa: E402
from layerscope.diffraction import cw_profile as cp  # noqa: E402
from layerscope.diffraction import cw_sample as sm  # noqa: E402
from layerscope.diffraction import cw_texture as tx  # noqa: E402
from layerscope.diffraction.cw_instrument import CWInstrument  # noqa: E402
from layerscope.diffraction.reflections import reflections  # noqa: E402
from layerscope.diffraction.structure_factors import SiteTables, site_tables  # noqa: E402

__all__ = ["CWPhaseSetup", "CWModel", "build_cw_model", "cw_initial_params", "cw_pattern", "cw_reflection_table",
           "computed_range", "chebyshev_cw", "make_cw_pattern_function"]

_KEV_A = 12.398419843320026


@dataclass(frozen=True)
class CWPhaseSetup:
    phase: Phase
    hkl: np.ndarray
    multiplicity: np.ndarray
    tables: SiteTables
    #: X-ray: (n_spec, 4) a, (n_spec, 4) b, (n_spec,) c, f′, f″; neutron: b (fm) in fprime, zeros elsewhere
    fa: np.ndarray
    fb: np.ndarray
    fc: np.ndarray
    fprime: np.ndarray
    fdprime: np.ndarray
    #: static windows: per peak (Kα1 then Kα2) start index and length on the grid
    start: np.ndarray
    length: np.ndarray
    xq: np.ndarray
    wq: np.ndarray
    #: spherical-harmonics texture (cylindrical sample symmetry): GSAS-II Laue class and C(L,N) terms
    laue: str = ""
    sh_terms: tuple = ()
    #: Stephens generalized microstrain coefficient names (empty: isotropic microstrain)
    stephens: tuple = ()
    #: March–Dollase axis (reciprocal-lattice h, k, l; None: off), the equivalents of each
    #: reflection (n, k, 3) and their 0/1 mask (n, k) (:mod:`layerscope.diffraction.cw_sample`)
    md_axis: tuple | None = None
    md_eq: np.ndarray | None = None
    md_mask: np.ndarray | None = None


@dataclass(frozen=True)
class CWModel:
    x: np.ndarray
    instrument: CWInstrument
    phases: tuple[CWPhaseSetup, ...]
    n_background: int
    geometry: str
    gonio_radius: float
    window: int
    convention: str = "gsas2"
    scattering: dict = field(default_factory=dict)

    @property
    def phase_names(self) -> list[str]:
        return [s.phase.name for s in self.phases]


def computed_range(x, limits) -> slice:
    """GSAS-II's computed range: from the first point ≥ the lower limit to the first point ≥ the
    upper limit, inclusive."""
    x = np.asarray(x, dtype=float)
    lo, hi = limits
    i0 = int(np.searchsorted(x, lo, side="left"))
    i1 = int(np.searchsorted(x, hi, side="left"))
    return slice(i0, min(i1 + 1, len(x)))


def chebyshev_cw(x, coeffs, x_first, x_last):
    """Σ_n B_n T_n(u), u = −1 + 2(x − x_first)/(x_last − x_first) (GSAS-II chebyschev-1)."""
    u = -1.0 + 2.0 * (x - x_first) / (x_last - x_first)
    t_prev, t = jnp.ones_like(u), u
    out = coeffs[0] * t_prev
    for n in range(1, coeffs.shape[0]):
        out = out + coeffs[n] * t
        t_prev, t = t, 2.0 * u * t - t_prev
    return out


def _scattering_tables(phase: Phase, tables: SiteTables, inst: CWInstrument, anomalous, lengths):
    n = len(tables.spec_symbol)
    fa, fb, fc = np.zeros((n, 4)), np.zeros((n, 4)), np.zeros(n)
    fp, fpp = np.zeros(n), np.zeros(n)
    used = {}
    for i, sym in enumerate(tables.spec_symbol):
        el = element_of(sym)
        if inst.radiation == "xray":
            e = gemmi.Element(el)
            if e.atomic_number == 0 or e.it92 is None:
                raise InputError(f"no X-ray form factor for {sym!r}", where=f"phase {phase.name}")
            c = e.it92
            fa[i], fb[i], fc[i] = list(c.a), list(c.b), c.c
            if el in anomalous:
                fp[i], fpp[i] = anomalous[el]
                src = "given"
            else:
                fp[i], fpp[i] = gemmi.cromer_liberman(z=e.atomic_number, energy=1000.0 * _KEV_A / inst.lam1)
                src = "gemmi Cromer-Liberman"
            used[el] = {"fa": list(c.a), "fb": list(c.b), "fc": c.c, "fprime": fp[i], "fdoubleprime": fpp[i],
                        "anomalous_source": src}
        else:
            if el in lengths or sym in lengths:
                fp[i] = lengths.get(sym, lengths.get(el))
                src = "given"
            else:
                fp[i] = b_coh_fm(sym)
                src = "layerscope table"
            used[sym] = {"b_fm": fp[i], "source": src}
    return fa, fb, fc, fp, fpp, used


def build_cw_model(phases: list[Phase], two_theta, instrument: CWInstrument, *, limits=None, n_background: int = 6,
                   geometry: str | None = None, gonio_radius: float = 200.0, size_um=None, mustrain=None,
                   mx: float = 1.0, anomalous=None, scattering_lengths=None, convention: str = "gsas2",
                   start_params: dict | None = None, sh_order=None, stephens=None,
                   march_dollase=None) -> CWModel:
    """Reflections, scattering factors, peak windows and FCJ nodes for phases on a 2θ grid.

    ``two_theta`` is the measured grid (degrees); with ``limits`` = (lo, hi) the model covers
    GSAS-II's computed range (:func:`computed_range`), and reflections are generated down to
    d_min = λ/(2 sin(hi/2)). ``geometry`` defaults to Bragg–Brentano for X-rays and
    Debye–Scherrer for neutrons (GSAS-II's defaults). Windows/nodes follow the starting
    parameters (``start_params``, else :func:`cw_initial_params`). ``sh_order`` (an even int, or a
    dict by phase name) switches on spherical-harmonics preferred orientation of that order
    (:mod:`layerscope.diffraction.cw_texture`; coefficients ``params["phases"][name]["sh"]``).
    ``stephens`` (True, or a set/dict of phase names) replaces the isotropic microstrain by
    Stephens's generalized model (coefficients ``params["phases"][name]["stephens"]``).
    ``march_dollase`` (an axis (h, k, l) for every phase, or a dict by phase name) switches on
    GSAS-II's March–Dollase preferred orientation along that reciprocal-lattice axis (ratio
    ``params["phases"][name]["md"]``, 1 = none); a phase takes either it or ``sh_order``.
    Absorption (Debye–Scherrer: cylinder μR ``params["hist"]["absorption"]``) or surface
    roughness (Bragg–Brentano: Suortti ``surf_rough_a``, ``surf_rough_b``) apply to every model.
    """
    if convention not in ("gsas2", "exact"):
        raise ValueError(f"convention must be 'gsas2' or 'exact', got {convention!r}")
    x = np.asarray(two_theta, dtype=float)
    if limits is not None:
        x = x[computed_range(x, limits)]
    if x.ndim != 1 or len(x) < 10 or not np.all(np.diff(x) > 0):
        raise InputError("2θ grid must be strictly increasing with at least 10 points in the limits")
    inst = instrument
    if geometry is None:
        geometry = "Bragg-Brentano" if inst.radiation == "xray" else "Debye-Scherrer"
    hi = x[-1] if limits is None else limits[1]
    d_min = inst.lam1 / (2.0 * math.sin(math.radians(hi) / 2.0))
    anomalous = anomalous or {}
    scattering_lengths = scattering_lengths or {}
    model = CWModel(x=x, instrument=inst, phases=(), n_background=n_background, geometry=geometry,
                    gonio_radius=gonio_radius, window=1, convention=convention)
    setups, scat = [], {}
    for ph in phases:
        if any(s.uani is not None for s in ph.sites):
            raise InputError("anisotropic displacement parameters are not yet supported by the CW model",
                             where=f"phase {ph.name}")
        r = reflections(ph, d_min=d_min * (1 - 1e-12))
        t = site_tables(ph, r.hkl)
        fa, fb, fc, fp, fpp, used = _scattering_tables(ph, t, inst, anomalous, scattering_lengths)
        scat[ph.name] = used
        n = len(r)
        order = sh_order.get(ph.name, 0) if isinstance(sh_order, dict) else (sh_order or 0)
        laue = tx.laue_class(ph.spacegroup)
        terms = tuple(tx.sh_terms(laue, int(order))) if order else ()
        use_st = (ph.name in stephens) if isinstance(stephens, (set, dict, list, tuple)) else bool(stephens)
        st_names = tx.stephens_terms(laue) if use_st else ()
        axis = march_dollase.get(ph.name) if isinstance(march_dollase, dict) else march_dollase
        md = {}
        if axis is not None:
            ax = tuple(float(v) for v in axis)
            if len(ax) != 3 or not any(ax):
                raise ValueError(f"March–Dollase axis of {ph.name} must be three numbers (h, k, l), not all 0")
            if terms:
                raise ValueError(f"phase {ph.name}: choose March–Dollase or spherical harmonics, not both")
            rot, _ = symmetry_operations(ph.spacegroup)
            eq, mask = sm.equivalent_reflections(r.hkl, rot)
            md = {"md_axis": ax, "md_eq": eq, "md_mask": mask}
        setups.append(CWPhaseSetup(phase=ph, hkl=r.hkl, multiplicity=r.multiplicity, tables=t, fa=fa, fb=fb, fc=fc,
                                   fprime=fp, fdprime=fpp, start=np.zeros(2 * n, int), length=np.zeros(2 * n, int),
                                   xq=np.zeros((2 * n, 1)), wq=np.zeros((2 * n, 1)), laue=laue, sh_terms=terms,
                                   stephens=st_names, **md))
    model = CWModel(x=x, instrument=inst, phases=tuple(setups), n_background=n_background, geometry=geometry,
                    gonio_radius=gonio_radius, window=1, convention=convention, scattering=scat)
    params = start_params or cw_initial_params(model, size_um=size_um, mustrain=mustrain, mx=mx)
    new, kmax = [], 1
    terms = jax.jit(lambda p: _peak_terms(model, p))(params)
    for s, tab in zip(model.phases, terms):
        pos = np.concatenate([np.asarray(tab["pos"]), np.asarray(tab["pos2"])])
        sig = np.concatenate([np.asarray(tab["sig"])] * 2)
        gam = np.concatenate([np.asarray(tab["gam"])] * 2)
        shl = float(params["hist"]["shl"])
        ib, ie = cp.gsas2_window(x, pos, sig, gam, shl)
        ln = np.maximum(ie - ib, 0)
        if inst.lam2 is None:
            ln[len(ln) // 2:] = 0
        xq, wq = cp.fcj_nodes(pos, gam, max(shl, cp.SHL_MIN))
        kmax = max(kmax, int(ln.max()))
        new.append(CWPhaseSetup(**{**s.__dict__, "start": ib.astype(int), "length": ln.astype(int), "xq": xq,
                                   "wq": wq}))
    return CWModel(x=x, instrument=inst, phases=tuple(new), n_background=n_background, geometry=geometry,
                   gonio_radius=gonio_radius, window=kmax, convention=convention, scattering=scat)


def cw_initial_params(model: CWModel, *, scale=1.0, scales=None, background=None, size_um=None, mustrain=None,
                      mx=1.0) -> dict:
    """Parameter pytree from the instrument and phases (GSAS-II's defaults: size 1 µm,
    microstrain 1000, LGmix 1)."""
    i = model.instrument
    hist = {"scale": scale, "zero": i.zero, "u": i.u, "v": i.v, "w": i.w, "x": i.x, "y": i.y, "z": i.z,
            "shl": i.shl, "shift": 0.0, "transparency": 0.0, "displace_x": 0.0, "displace_y": 0.0,
            "absorption": 0.0, "surf_rough_a": 0.0, "surf_rough_b": 0.0,
            "background": np.zeros(model.n_background) if background is None else np.asarray(background, float)}
    phases = {}
    for s in model.phases:
        t, name = s.tables, s.phase.name
        phases[name] = {"scale": (scales or {}).get(name, 1.0), "cell": np.asarray(s.phase.cell, float),
                        "xyz": np.asarray(t.xyz), "biso": np.asarray(t.biso), "occ": np.asarray(t.occ),
                        "size_um": (size_um or {}).get(name, 1.0), "mustrain": (mustrain or {}).get(name, 1000.0),
                        "mx_size": mx, "mx_strain": mx, "hstrain": np.zeros(6), "sh": np.zeros(len(s.sh_terms)),
                        "md": 1.0,
                        "stephens": _stephens_start(s, (mustrain or {}).get(name, 1000.0))}
    return {"hist": hist, "phases": phases}


def _stephens_start(s: CWPhaseSetup, mustrain: float) -> np.ndarray:
    """Stephens coefficients equal to an isotropic microstrain where the Laue class allows it
    (Σ S_i m_i(h) = μ²/d⁴ for the metric's own quartic form), else GSAS-II's default 0.01 each."""
    if not s.stephens:
        return np.zeros(0)
    g = np.linalg.inv(np.asarray(s.phase.metric_tensor))  # G*
    quartic = {"S400": g[0, 0] ** 2, "S040": g[1, 1] ** 2, "S004": g[2, 2] ** 2,
               "S220": (2 * g[0, 0] * g[1, 1] + 4 * g[0, 1] ** 2) / 3.0,
               "S202": (2 * g[0, 0] * g[2, 2] + 4 * g[0, 2] ** 2) / 3.0,
               "S022": (2 * g[1, 1] * g[2, 2] + 4 * g[1, 2] ** 2) / 3.0}
    if s.laue in ("mmm",) or (s.laue == "-1" and np.allclose(g[np.triu_indices(3, 1)], 0)):
        return np.array([quartic.get(n, 0.0) for n in s.stephens]) * mustrain**2
    if s.laue in ("m3", "m3m"):
        return np.array([g[0, 0] ** 2, 2.0 * g[0, 0] ** 2 / 3.0]) * mustrain**2
    if s.laue in ("4/m", "4/mmm"):
        return np.array([g[0, 0] ** 2, g[2, 2] ** 2, 2.0 * g[0, 0] ** 2 / 3.0,
                         2.0 * g[0, 0] * g[2, 2] / 3.0]) * mustrain**2
    if s.laue in ("6/m", "6/mmm", "3m1") and len(s.stephens) == 3:
        # (g00 (h² + k² + hk) + g22 l²)², g01 = g00/2 on hexagonal axes
        return np.array([g[0, 0] ** 2, g[2, 2] ** 2, 2.0 * g[0, 0] * g[2, 2] / 3.0]) * mustrain**2
    if s.laue == "2/m" and s.stephens[6:] == ("S301", "S103", "S121"):
        # b unique: (g00 h² + g11 k² + g22 l² + 2 g02 hl)² on GSAS-II's monomials
        g00, g11, g22, g02 = g[0, 0], g[1, 1], g[2, 2], g[0, 2]
        return np.array([g00**2, g11**2, g22**2, 2 * g00 * g11 / 3, (2 * g00 * g22 + 4 * g02**2) / 3,
                         2 * g11 * g22 / 3, 2 * g00 * g02, 2 * g22 * g02, g11 * g02]) * mustrain**2
    return np.full(len(s.stephens), 0.01)


def _structure_factor_sq(s: CWPhaseSetup, pp, inv_d2, radiation):
    t = s.tables
    s2 = inv_d2 / 4.0
    if radiation == "xray":
        f0 = jnp.sum(s.fa[None] * jnp.exp(-s.fb[None] * s2[:, None, None]), axis=-1) + s.fc[None]  # (n, spec)
        f = f0 + s.fprime[None] + 1j * s.fdprime[None]
    else:
        f = jnp.broadcast_to((s.fprime / 10.0)[None].astype(complex), (inv_d2.shape[0], len(s.fprime)))
    n_sites = t.xyz.shape[0]
    fsite = jax.ops.segment_sum((pp["occ"][None] * f).T, t.spec_site, num_segments=n_sites).T  # (n, sites)
    arg = 2.0 * jnp.pi * (jnp.einsum("ngj,sj->nsg", t.hr, pp["xyz"]) + t.ht[:, None, :])
    geo = jnp.sum(jnp.exp(1j * arg), axis=2)
    dw = jnp.exp(-pp["biso"][None, :] * inv_d2[:, None] / 4.0)
    fh = jnp.sum(fsite * geo * dw * t.site_weight[None, :], axis=1)
    return jnp.real(fh * jnp.conj(fh)), f0 if radiation == "xray" else None


def _peak_terms(model: CWModel, params: dict):
    inst, hp = model.instrument, params["hist"]
    out = []
    for s in model.phases:
        pp = params["phases"][s.phase.name]
        hkl = jnp.asarray(s.hkl, dtype=float)
        cell = jnp.asarray(pp["cell"])
        inv_d2, vol = geometry.inv_d2(cell, hkl, xp=jnp), geometry.volume(cell, xp=jnp)
        if "hstrain" in pp:  # GSAS-II HStrain: D11 h² + D22 k² + D33 l² + D12 hk + D13 hl + D23 kl added to 1/d²
            h, k, l = hkl[:, 0], hkl[:, 1], hkl[:, 2]
            dd = jnp.asarray(pp["hstrain"])
            inv_d2 = inv_d2 + dd[0] * h * h + dd[1] * k * k + dd[2] * l * l + dd[3] * h * k + dd[4] * h * l \
                + dd[5] * k * l
        d = 1.0 / jnp.sqrt(inv_d2)
        pos = cp.two_theta_position(d, inst.lam1, hp["zero"], geometry=model.geometry, shift=hp["shift"],
                                    transparency=hp["transparency"], displace_x=hp["displace_x"],
                                    displace_y=hp["displace_y"], gonio_radius=model.gonio_radius)
        mustrain = pp["mustrain"]
        if s.stephens:
            ssum = jnp.asarray(tx.stephens_monomials(s.hkl, s.laue)) @ jnp.asarray(pp["stephens"])
            mustrain = d**2 * jnp.sqrt(jnp.where(ssum > 0, ssum, 1.0)) * (ssum > 0)
        sig, gam = cp.cw_sig_gam(pos, inst.lam1, hp["u"], hp["v"], hp["w"], hp["x"], hp["y"], hp["z"],
                                 pp["size_um"], mustrain, pp["mx_size"], pp["mx_strain"])
        fcsq, f0 = _structure_factor_sq(s, pp, inv_d2, inst.radiation)
        pol = cp.polarization(pos, inst.polariz, inst.azimuth) if inst.radiation == "xray" else 1.0
        icorr = pp["scale"] * hp["scale"] * s.multiplicity * pol * cp.lorentz_factor(pos) / vol
        po = 1.0
        if s.sh_terms:
            po = tx.sh_po_correction(s.sh_terms, jnp.asarray(pp["sh"]), hkl, jnp.asarray(pp["cell"]), s.laue,
                                     pos / 2.0, model.geometry)
        if s.md_axis is not None:
            po = po * sm.march_dollase(pp.get("md", 1.0), s.md_axis, s.md_eq, s.md_mask, jnp.asarray(pp["cell"]))
        icorr = icorr * po
        if model.geometry.lower().startswith("bragg"):
            icorr = icorr * sm.surface_roughness(hp.get("surf_rough_a", 0.0), hp.get("surf_rough_b", 0.0), pos)
        else:
            icorr = icorr * sm.cylinder_absorption(hp.get("absorption", 0.0), pos)
        pos2 = cp.ka2_position(pos, inst.lam1, inst.lam2) if inst.lam2 is not None else pos
        out.append({"d": d, "pos": pos, "pos2": pos2, "sig": sig, "gam": gam, "fcsq": fcsq, "icorr": icorr, "f0": f0,
                    "po": po * jnp.ones_like(pos)})
    return out


def make_cw_pattern_function(model: CWModel):
    """A jitted ``params -> cw_pattern(model, params)`` (compiled once per model)."""
    return jax.jit(lambda p: _cw_pattern(model, p))


def cw_pattern(model: CWModel, params: dict) -> dict:
    """Calculated pattern on ``model.x``: ``total``, ``background`` and one array per phase."""
    return {k: np.asarray(v) for k, v in make_cw_pattern_function(model)(params).items()}


def _cw_pattern(model: CWModel, params: dict) -> dict:
    x = jnp.asarray(model.x)
    inst, hp = model.instrument, params["hist"]
    n = x.shape[0]
    bg = chebyshev_cw(x, jnp.asarray(hp["background"]), model.x[0], model.x[-1])
    out = {"background": bg}
    total = bg
    ratio = inst.ratio if inst.lam2 is not None else 0.0
    for s, tab in zip(model.phases, _peak_terms(model, params)):
        pos = jnp.concatenate([tab["pos"], tab["pos2"]])
        sig = jnp.concatenate([tab["sig"], tab["sig"]])
        gam = jnp.concatenate([tab["gam"], tab["gam"]])
        area = tab["icorr"] * tab["fcsq"]
        inten = jnp.concatenate([area, ratio * area])
        idx = s.start[:, None] + np.arange(model.window)[None, :]
        mask = (np.arange(model.window)[None, :] < s.length[:, None]) & (idx < n)
        idx_c = np.clip(idx, 0, n - 1)
        dx = x[idx_c] - pos[:, None]
        prof = cp.fcj_profile(dx, pos, sig, gam, jnp.asarray(hp["shl"]) * jnp.ones_like(pos), jnp.asarray(s.xq),
                              jnp.asarray(s.wq), convention=model.convention)
        vals = jnp.where(mask, prof * inten[:, None], 0.0)
        y = jax.ops.segment_sum(vals.ravel(), idx_c.ravel(), num_segments=n)
        out[s.phase.name] = y
        total = total + y
    out["total"] = total
    return out


def cw_reflection_table(model: CWModel, params: dict) -> dict[str, dict[str, np.ndarray]]:
    """Per phase: hkl, mult, d, pos, sig, gam, Fcsq, Icorr, pos_Ka2 and (X-ray) f0 per species."""
    res = {}
    terms = jax.jit(lambda p: _peak_terms(model, p))(params)
    for s, tab in zip(model.phases, terms):
        row = {"hkl": s.hkl, "mult": s.multiplicity, "d": np.asarray(tab["d"]), "pos": np.asarray(tab["pos"]),
               "sig": np.asarray(tab["sig"]), "gam": np.asarray(tab["gam"]), "Fcsq": np.asarray(tab["fcsq"]),
               "Icorr": np.asarray(tab["icorr"]), "POcorr": np.asarray(tab["po"])}
        if model.instrument.lam2 is not None:
            row["pos_Ka2"] = np.asarray(tab["pos2"])
        if tab["f0"] is not None:
            f0 = np.asarray(tab["f0"])
            for j, sym in enumerate(s.tables.spec_symbol):
                row[f"f0_{element_of(sym)}"] = f0[:, j]
        res[s.phase.name] = row
    return res
