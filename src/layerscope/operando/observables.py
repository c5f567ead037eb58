"""The reported quantities of an operando pattern, with esds from the covariance.

Every quantity is a JAX-differentiable function of the full parameter vector
(:func:`lrm_observables`): phase fractions, cells, layer spacings, the O3' descriptors (DoO,
DoD) and the O-vacancy content. Their values and gradients are compiled together once per
series; esds are ``√(gᵀ C g)``.

Weight fractions are Hill–Howard's W_p = S_p ρ_p / Σ S_i ρ_i with ρ = cell mass / volume of
the *refined* occupancies and cell of each pattern (the cathode loses Li on charge).

Per phase, whether the pattern determined it (``determined_<p>``, ``signal_<p>``,
``undetermined``: the esd of its fraction above ``max_relative_esd`` of the value, or its Bragg
signal below ``min_signal`` σ — see :mod:`layerscope.refine.determined`), and which reported
values an undetermined phase decides (:func:`undetermined_keys`): the figures do not draw them
as measurements.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope._device import to_device  # noqa: E402
from layerscope._tracecache import persistent_jit  # noqa: E402
from layerscope.crystal import geometry  # noqa: E402
from layerscope.crystal.settings import O3_TO_O3P  # noqa: E402
from layerscope.operando.protocol import SeriesProtocol  # noqa: E402

__all__ = ["lrm_observables", "density_functions", "undetermined_keys"]


def _d(cell, hkl):
    """Mean d-spacing (Å) of the reflections ``hkl`` (n, 3) of a cell
    (:func:`~layerscope.crystal.geometry.d_spacing`)."""
    return geometry.d_spacing(cell, jnp.asarray(hkl, dtype=float), jnp).mean()


_INTRA_O3 = np.array([[1, 0, 0], [0, 1, 0], [1, -1, 0]], dtype=float)


def _mass_terms(phase, p, idx):
    """(indices, weights) with cell mass = Σ weight · v[index] over the occupancy parameters."""
    from layerscope.crystal.scattering import atomic_weight

    ii, ww = [], []
    for m, site in zip(phase.site_multiplicities(), phase.sites):
        for sym, _ in site.species:
            ii.append(idx[f"{p}.occ[{site.label}:{sym}]"])
            ww.append(float(m) * atomic_weight(sym))
    return np.array(ii, dtype=int), np.array(ww)


def density_functions(layout, model, names, xp=jnp) -> dict:
    """ρ_p(v) = cell mass / cell volume of each named phase at the parameter vector ``v``: the
    Hill–Howard weight fraction W_p = S_p ρ_p / Σ S_i ρ_i needs the *current* composition and
    cell (Li leaves the cathode on charge, the cells swell and shrink), not the starting ones."""
    idx = {n: i for i, n in enumerate(layout.names)}
    phases = {s.phase.name: s.phase for s in model.phases}
    out = {}
    for p in names:
        ii, ww = _mass_terms(phases[p], p, idx)
        i0 = idx[f"{p}.a"]
        out[p] = (lambda v, ii=ii, ww=ww, i0=i0: (v[ii] * ww).sum() / geometry.volume(v[i0:i0 + 6], xp))
    return out


def _lrm_fractions(full, layout, model, protocol):
    phases = {s.phase.name: s.phase for s in model.phases}
    lrm = [p for p in protocol.lrm_phases if p in phases]
    rho = density_functions(layout, model, lrm, xp=np)
    full = np.asarray(full, dtype=float)
    w = {p: full[layout.index(f"{p}.scale")] * rho[p](full) for p in lrm}
    tot = sum(w.values()) or 1.0
    return {p: v / tot for p, v in w.items()}


def lrm_observables(layout, model, protocol: SeriesProtocol) -> dict:
    """Functions of the full vector for every reported quantity (JAX-differentiable)."""
    names = list(layout.names)
    idx = {n: i for i, n in enumerate(names)}
    phases = {s.phase.name: s.phase for s in model.phases}
    lrm = [p for p in protocol.lrm_phases if p in phases]
    anode = [p for p in protocol.anode_phases if p in phases]
    rho = density_functions(layout, model, lrm)
    obs = {}

    def scale(v, p):
        return v[idx["hscale"]] * v[idx[f"{p}.scale"]]

    def cell(v, p):
        i0 = idx[f"{p}.a"]
        return v[i0:i0 + 6]

    for p in lrm:
        def frac(v, p=p):
            w = {q: scale(v, q) * rho[q](v) for q in lrm}
            return w[p] / sum(w.values())
        obs[f"frac_{p}"] = frac
    n_c = {p: sum(o * m for m, s in zip(phases[p].site_multiplicities(), phases[p].sites)
                  for sym, o in s.species if sym == "C") for p in anode}
    for p in anode:
        def cfrac(v, p=p):
            n = {q: scale(v, q) * n_c[q] / phases[q].volume for q in anode}
            return n[p] / sum(n.values())
        obs[f"frac_{p}"] = cfrac
    for p in lrm:
        sg = phases[p].space_group.number
        if sg == 12:
            for k, j in (("a", 0), ("b", 1), ("c", 2), ("beta", 4)):
                obs[f"{p}_{k}"] = (lambda v, p=p, j=j: cell(v, p)[j])
            obs[f"d_inter_{p}"] = lambda v, p=p: _d(cell(v, p), [[0, 0, 1]])
            obs[f"d_intra_{p}"] = lambda v, p=p: _d(cell(v, p), _INTRA_O3 @ O3_TO_O3P)
        elif sg == 166:
            obs[f"{p}_a"] = lambda v, p=p: cell(v, p)[0]
            obs[f"{p}_c"] = lambda v, p=p: cell(v, p)[2]
            obs[f"d_inter_{p}"] = lambda v, p=p: _d(cell(v, p), [[0, 0, 3]])
            obs[f"d_intra_{p}"] = lambda v, p=p: _d(cell(v, p), _INTRA_O3)
        else:
            obs[f"{p}_a"] = lambda v, p=p: cell(v, p)[0]
    o3p = next((p for p in lrm if phases[p].space_group.number == 12), None)
    if o3p is not None:
        from layerscope.descriptors import find_o3p_sites

        sites = find_o3p_sites(phases[o3p])

        def occ(v, site, which):
            tot = 0.0
            for sym, _ in site.species:
                el = sym.lstrip("0123456789")
                if (which == "Li") == (el == "Li") and el != "O":
                    tot = tot + v[idx[f"{o3p}.occ[{site.label}:{sym}]"]]
            return tot

        obs["DoO"] = lambda v: occ(v, sites["2b"], "Li") / (occ(v, sites["2b"], "Li") + 2 * occ(v, sites["4g"], "Li"))

        def dod(v):
            t4h, t4g, t2b = (occ(v, sites[k], "TM") for k in ("4h", "4g", "2b"))
            return 2 * t4h / (2 * t4h + 2 * t4g + t2b)
        obs["DoD"] = dod

        def o_vac(phase_name):
            ph = phases[phase_name]
            terms = [(m, s) for m, s in zip(ph.site_multiplicities(), ph.sites) if any(x == "O" for x, _ in s.species)]
            den = sum(m for m, _ in terms)

            def f(v):
                return 1.0 - sum(m * v[idx[f"{phase_name}.occ[{s.label}:O]"]] for m, s in terms) / den
            return f

        vac = {p: o_vac(p) for p in lrm if phases[p].space_group.number in (12, 166)}

        def o_vacancy(v):
            return sum(vac[p](v) * obs[f"frac_{p}"](v) for p in vac)
        obs["O_vacancy"] = o_vacancy
    return obs


class ObservableSet(dict):
    """The observables of a series (name -> function of the full vector) with the ``recipe`` they
    were built from: the layout's names, the phases, the protocol's phase lists and the derived
    quantities (see :func:`observables_recipe`). The recipe keys the traced function on disk
    (:mod:`layerscope._tracecache`)."""

    def __init__(self, obs, recipe):
        super().__init__(obs)
        self.recipe = recipe


def observables_recipe(layout, model, protocol: SeriesProtocol, derived=()) -> tuple:
    """Everything :func:`lrm_observables` and ``add_derived`` read: layout names, the model's
    phases (cells, sites, species, space groups), the protocol's LRM and anode phase lists and
    the derived quantities' definitions."""
    return ("lrm_observables", type(layout).__name__, tuple(layout.names), tuple(s.phase for s in model.phases),
            tuple(protocol.lrm_phases), tuple(protocol.anode_phases), tuple(derived))


#: compiled (values, Jacobian) of the observables of recent series: {id(obs): (obs, function)}
_OBS_FUNCTIONS: dict = {}


def _observable_function(obs):
    """One compiled function of the full vector giving every observable's value and gradient
    (reverse mode, all observables at once). Evaluated op by op, the gradients of the ~20
    observables cost about a second per pattern (and ~20 s of small compilations at the first
    pattern); compiled together they cost milliseconds after one compilation per series. With a
    recipe (:class:`ObservableSet`) the traced function is kept on disk where the command line
    switched the compilation cache on."""
    hit = _OBS_FUNCTIONS.get(id(obs))
    if hit is not None and hit[0] is obs:
        return hit[1]
    names = list(obs)

    def values(v):
        return jnp.stack([jnp.asarray(obs[n](v), dtype=v.dtype) for n in names])

    def values_and_jacobian(v):
        # reverse mode as jax.jacrev, but `values` is traced once (jacrev and a separate value
        # call trace it twice: ~0.3 s of a fresh process's first pattern)
        out, pullback = jax.vjp(values, v)
        (jac,) = jax.vmap(pullback)(jnp.eye(out.shape[0], dtype=out.dtype))
        return out, jac

    recipe = getattr(obs, "recipe", None)
    if recipe is not None:
        fn = persistent_jit(values_and_jacobian, name="operando_observables", recipe=(recipe, tuple(names)))
    else:
        fn = jax.jit(values_and_jacobian)
    while len(_OBS_FUNCTIONS) >= 8:
        _OBS_FUNCTIONS.pop(next(iter(_OBS_FUNCTIONS)))
    _OBS_FUNCTIONS[id(obs)] = (obs, fn)
    return fn


def _evaluate_observables(obs, full, cov):
    """Value and esd of every observable; the esd is NaN where this pattern's refinement did not
    determine the quantity: it depends only on parameters that were not refined (held O3'
    exchange, a phase's cell fixed below min_fraction, the reference's unrefined occupancies —
    an esd of 0 would read as exact), or on a parameter the normal matrix left undetermined."""
    vals, jac = _observable_function(obs)(to_device(full, dtype=float))
    vals, jac = np.asarray(vals, dtype=float), np.asarray(jac, dtype=float)
    out = {}
    var = None if cov is None else np.diag(np.asarray(cov, dtype=float))
    c = None if cov is None else np.nan_to_num(cov)
    for k, name in enumerate(obs):
        esd = float("nan")
        if cov is not None:
            g = jac[k]
            dep = g != 0
            undetermined = np.any(dep & ~np.isfinite(var))
            not_refined = np.any(dep) and np.all(var[dep] == 0)
            if not (undetermined or not_refined):
                esd = float(np.sqrt(max(g @ c @ g, 0.0)))
        out[name] = float(vals[k])
        out[f"{name}_esd"] = esd
    return out


def _determined(ev, full, y, sigma, row, model, protocol):
    """``signal_<p>``, ``determined_<p>`` and ``undetermined`` of every phase with a fraction
    column (:mod:`layerscope.refine.determined`)."""
    from layerscope.refine.determined import determination, phase_signals

    present = {s.phase.name for s in model.phases}
    names = [p for p in (*protocol.lrm_phases, *protocol.anode_phases) if p in present and f"frac_{p}" in row]
    sig = phase_signals(ev, full, y, sigma, names)
    return determination(row, sig, max_relative_esd=protocol.max_relative_esd, min_signal=protocol.min_signal)


def undetermined_keys(row: dict, *, descriptor_phase: str = "O3p", lrm=("O3p", "O3", "S")) -> set[str]:
    """The row's reported values that depend on a phase this pattern did not determine: its
    fraction, cell and layer spacings; the O3' descriptors (DoO, DoD) with the O3' phase; the
    O-vacancy content when no LRM phase is determined."""
    bad = {k.removeprefix("determined_") for k, v in row.items()
           if k.startswith("determined_") and v in (False, "False")}
    keys = set()
    for p in bad:
        keys |= {f"frac_{p}", f"d_inter_{p}", f"d_intra_{p}"}
        keys |= {f"{p}_{x}" for x in ("a", "b", "c", "beta")}
    if descriptor_phase in bad:
        keys |= {"DoO", "DoD"}
    present = [p for p in lrm if f"determined_{p}" in row]
    if present and all(p in bad for p in present):
        keys.add("O_vacancy")
    return keys
