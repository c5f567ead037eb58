"""Constant-wavelength refinement, one or several histograms sharing the phases, on the existing
Levenberg–Marquardt engine (:func:`layerscope.refine.engine.least_squares`).

Full parameter vector (names):

* per histogram i: ``hist{i}.scale``, ``hist{i}.zero``, ``hist{i}.shift``, ``hist{i}.transparency``,
  ``hist{i}.displace_x``, ``hist{i}.displace_y``, ``hist{i}.absorption`` (Debye–Scherrer cylinder
  μR), ``hist{i}.surf_rough_a``, ``hist{i}.surf_rough_b`` (Bragg–Brentano, Suortti), ``hist{i}.bkg[j]``;
* per histogram and phase p (GSAS-II's "HAP" terms): ``p@hist{i}.scale``, ``p@hist{i}.mustrain``,
  ``p@hist{i}.size``, ``p@hist{i}.hstrain[k]`` (D11, D22, D33, D12, D13, D23);
* per phase, shared by all histograms: ``p.a`` … ``p.gamma``, ``p.LABEL.x|y|z``, ``p.LABEL.biso``.

:func:`cw_free_set` frees groups by key: ``hist{i}.scale``, ``hist{i}.background``,
``hist{i}.zero``, ``hist{i}.shift``, ``hist{i}.transparency``, ``hist{i}.displace`` (X and Y),
``hist{i}.absorption``, ``hist{i}.surf_rough`` (A and B), ``p@hist{i}.md`` (March–Dollase ratio of a
model built with ``march_dollase=``),
``p@hist{i}.scale``, ``p@hist{i}.mustrain``, ``p@hist{i}.size``, ``p@hist{i}.hstrain`` (the
Laue-class combinations GSAS-II allows), ``p@hist{i}.stephens`` (Stephens S_HKL of a model built
with ``stephens=``), ``p@hist{i}.texture`` (the C(L,N) of a model built with
``sh_order``), ``p.cell`` (crystal-system columns), ``p.xyz`` (every
site along its Wyckoff position's allowed shifts), ``p.biso``. The Jacobian is exact, by the chain
rule: every peak depends on the parameters only through its position, widths and intensity, so one
compiled kernel (independent of which columns are free) gives each peak's window profile with its
three partial derivatives (forward mode, three tangents) and the derivatives of every peak's terms
in the full vector (``jax.jacfwd`` of the cheap per-reflection part); the columns are contracted on
the host and the windows summed onto the grid by a sparse matrix of fixed structure (scipy), as is
the pattern itself. The whole-pattern forward-mode Jacobian (``_fj``) is kept as the reference the
tests compare against. The engine sees the
concatenated histograms as one pattern (its ``model.tof_us`` is the concatenated grid, used only
for a shape check); :func:`histogram_stats` splits the residuals again.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.crystal.phase import space_group  # noqa: E402
from layerscope.diffraction import cw_pattern as cw  # noqa: E402
from layerscope.refine.engine import FitResult, FitStats, fit_stats, least_squares  # noqa: E402
from layerscope.refine.parameters import FreeSet, cell_columns, site_shift_basis  # noqa: E402

__all__ = ["CWJointEvaluator", "cw_free_set", "refine_cw", "histogram_stats"]

_CELL = ("a", "b", "c", "alpha", "beta", "gamma")
_HIST = ("scale", "zero", "shift", "transparency", "displace_x", "displace_y", "absorption", "surf_rough_a",
         "surf_rough_b")


def _hstrain_columns(spacegroup: str) -> np.ndarray:
    sg = space_group(spacegroup)
    system = sg.crystal_system_str()
    e = np.eye(6)
    if system == "cubic":
        return (e[0] + e[1] + e[2])[:, None]
    if system == "tetragonal":
        return np.stack([e[0] + e[1], e[2]], axis=1)
    if system == "hexagonal" or (system == "trigonal" and sg.ext != "R"):
        return np.stack([e[0] + e[1] + e[3], e[2]], axis=1)
    if system == "orthorhombic":
        return e[:, :3]
    return e


class JittedEvaluator:
    """The engine's evaluator interface for a subclass that sets ``_f`` (full vector → pattern) and
    ``_fj`` (full vector, tangent columns → pattern, Jacobian columns), both jitted."""

    def reset_cache(self):
        pass

    def calc(self, full):
        return np.asarray(self._f(jnp.asarray(full))), None

    def calc_jac(self, full, a):
        y, j = self._fj(jnp.asarray(full), jnp.asarray(a))
        return np.asarray(y), np.asarray(j)


def _window_csr(windows, n_points, n_blocks=4):
    """A function (n_blocks, peaks, window) values → the (n_points, n_blocks·peaks) CSR matrix that
    sums each peak's window onto the grid (structure fixed by the windows, only the values change)."""
    import scipy.sparse as sps

    idx_c, mask = windows
    npk = idx_c.shape[0]
    m4 = np.broadcast_to(mask, (n_blocks,) + mask.shape)
    rows = np.broadcast_to(idx_c, m4.shape)[m4]
    cols = (np.arange(n_blocks)[:, None, None] * npk + np.arange(npk)[None, :, None] + np.zeros_like(idx_c))[m4]
    order = np.lexsort((cols, rows))
    sel = np.flatnonzero(m4.ravel())[order]
    indices, indptr = cols[order].astype(np.int64), np.searchsorted(rows[order], np.arange(n_points + 1))

    def make(values):
        return sps.csr_matrix((np.asarray(values).ravel()[sel], indices, indptr), shape=(n_points, n_blocks * npk))

    return make


class CWJointEvaluator(JittedEvaluator):
    """``calc(full) -> (y_calc, None)``, ``calc_jac(full, A) -> (y_calc, J)`` over all histograms."""

    def __init__(self, models: list[cw.CWModel], params: list[dict]):
        if len(models) != len(params) or not models:
            raise ValueError("one parameter pytree per model, at least one model")
        names0 = models[0].phase_names
        for m in models[1:]:
            if m.phase_names != names0:
                raise ValueError(f"histograms must share the same phases, got {names0} and {m.phase_names}")
        self.models, self.base = models, params
        self.phase_names = names0
        self.sizes = [len(m.x) for m in models]
        self.model = SimpleNamespace(tof_us=np.concatenate([np.asarray(m.x) for m in models]))
        self.names, self.x0 = self._layout()

        def f(full):
            ps = self.unpack(full)
            return jnp.concatenate([cw._cw_pattern(m, p)["total"] for m, p in zip(models, ps)])

        self._f = jax.jit(f)
        # reference Jacobian (forward mode along every free column through the whole pattern); calc_jac
        # uses the chain rule below, which gives the same columns (tests/test_cw_jacobian.py)
        self._fj = jax.jit(lambda full, a: jax.vmap(lambda col: jax.jvp(f, (full,), (col,)), in_axes=1,
                                                    out_axes=(None, 1))(a))
        self._windows = [[cw.peak_windows(m, s) for s in m.phases] for m in models]
        self._csr = [[_window_csr(win, len(m.x)) for win in wins] for m, wins in zip(models, self._windows)]
        self._bkg = []
        for i, m in enumerate(models):
            x = np.asarray(m.x)
            u = -1.0 + 2.0 * (x - x[0]) / (x[-1] - x[0])
            self._bkg.append((np.polynomial.chebyshev.chebvander(u, m.n_background - 1),
                              np.array([self.names.index(f"hist{i}.bkg[{j}]") for j in range(m.n_background)])))

        def inputs(full):
            return [cw._peak_inputs(m, p) for m, p in zip(models, self.unpack(full))]

        def heavy(full):
            """Per histogram its background and per phase: every peak's intensity × (∂P/∂pos, ∂P/∂sig,
            ∂P/∂gam) and its profile P on its window (4, peaks, window), its intensity, and the
            derivatives of its (pos, sig, gam, intensity) in the full vector (4, peaks, n_full)."""
            dq = jax.jacfwd(inputs)(full)
            out = []
            for m, p, qm, dqm, wins in zip(models, self.unpack(full), inputs(full), dq, self._windows):
                hist = [cw.chebyshev_cw(jnp.asarray(m.x), p["hist"]["background"], m.x[0], m.x[-1])]
                for s, (pos, sig, gam, inten), dqp, win in zip(m.phases, qm, dqm, wins):
                    def prof(a, b, c, s=s, win=win, shl=p["hist"]["shl"], m=m):
                        return cw._window_profiles(m, s, a, b, c, shl, win)

                    one, zero = jnp.ones_like(pos), jnp.zeros_like(pos)
                    tang = (jnp.stack([one, zero, zero]), jnp.stack([zero, one, zero]), jnp.stack([zero, zero, one]))
                    pr, dpr = jax.vmap(lambda t0, t1, t2: jax.jvp(prof, (pos, sig, gam), (t0, t1, t2)),
                                       out_axes=(None, 0))(*tang)
                    hist.append((jnp.concatenate([inten[None, :, None] * dpr, pr[None]]), inten, jnp.stack(dqp)))
                out.append(hist)
            return out

        def prim(full):
            """Per histogram its background and per phase every peak's intensity × profile on its window."""
            out = []
            for m, p, qm, wins in zip(models, self.unpack(full), inputs(full), self._windows):
                hist = [cw.chebyshev_cw(jnp.asarray(m.x), p["hist"]["background"], m.x[0], m.x[-1])]
                for s, (pos, sig, gam, inten), win in zip(m.phases, qm, wins):
                    hist.append(cw._window_profiles(m, s, pos, sig, gam, p["hist"]["shl"], win) * inten[:, None])
                out.append(hist)
            return out

        self._heavy = jax.jit(heavy)
        self._prim = jax.jit(prim)
        self._sum = [[_window_csr(win, len(m.x), 1) for win in wins] for m, wins in zip(models, self._windows)]

    def components(self, full) -> list[dict]:
        """Per histogram: ``background``, one curve per phase and ``total`` (as ``cw_pattern``), from the
        compiled kernel of :meth:`calc`."""
        out = []
        for mi, hist in enumerate(self._prim(jnp.asarray(full))):
            d = {"background": np.array(hist[0])}
            total = d["background"].copy()
            for name, vals, csr in zip(self.models[mi].phase_names, hist[1:], self._sum[mi]):
                d[name] = csr(vals) @ np.ones(vals.shape[0])
                total = total + d[name]
            d["total"] = total
            out.append(d)
        return out

    def calc(self, full):
        """The pattern: the windows of :meth:`_prim` summed onto the grid by a fixed sparse matrix."""
        ys = []
        for mi, hist in enumerate(self._prim(jnp.asarray(full))):
            y = np.array(hist[0])
            for vals, csr in zip(hist[1:], self._sum[mi]):
                y = y + csr(vals) @ np.ones(vals.shape[0])
            ys.append(y)
        return np.concatenate(ys), None

    def calc_jac(self, full, a):
        """The pattern and its Jacobian columns ``a`` by the chain rule: each peak's window profile and
        its three partial derivatives (one forward pass with three tangents, independent of ``a``),
        contracted with the derivatives of the peaks' positions, widths and intensities along ``a``;
        the windows are summed onto the grid by a sparse matrix of fixed structure. Same columns as
        forward mode through the whole pattern (``_fj``) to rounding."""
        a = np.asarray(a, float)
        ys, js = [], []
        for mi, (m, hist) in enumerate(zip(self.models, self._heavy(jnp.asarray(full)))):
            basis, bidx = self._bkg[mi]
            y = np.array(hist[0])
            jac = basis @ a[bidx]
            for (w, inten, dq), csr in zip(hist[1:], self._csr[mi]):
                w, inten, dq = np.asarray(w), np.asarray(inten), np.asarray(dq)
                mat = csr(w)                                   # (points, 4·peaks)
                npk = inten.shape[0]
                y = y + mat[:, 3 * npk:] @ inten
                jac = jac + mat @ (dq @ a).reshape(4 * npk, -1)
            ys.append(y)
            js.append(jac)
        return np.concatenate(ys), np.concatenate(js)

    def _layout(self):
        names, vals = [], []
        for i, (m, p) in enumerate(zip(self.models, self.base)):
            h = p["hist"]
            for k in _HIST:
                names.append(f"hist{i}.{k}")
                vals.append(float(h.get(k, 0.0)))
            for j, b in enumerate(np.asarray(h["background"], float)):
                names.append(f"hist{i}.bkg[{j}]")
                vals.append(b)
            for ph in self.phase_names:
                pp = p["phases"][ph]
                for k, v in (("scale", pp["scale"]), ("mustrain", pp["mustrain"]), ("size", pp["size_um"])):
                    names.append(f"{ph}@hist{i}.{k}")
                    vals.append(float(v))
                for k, v in enumerate(np.asarray(pp.get("hstrain", np.zeros(6)), float)):
                    names.append(f"{ph}@hist{i}.hstrain[{k}]")
                    vals.append(v)
                setup = m.phases[m.phase_names.index(ph)]
                for nm, v in zip(setup.stephens, np.asarray(pp.get("stephens", np.zeros(0)), float)):
                    names.append(f"{ph}@hist{i}.{nm}")
                    vals.append(v)
                for (L, n), v in zip(setup.sh_terms, np.asarray(pp.get("sh", np.zeros(len(setup.sh_terms))), float)):
                    names.append(f"{ph}@hist{i}.C({L},{n})")
                    vals.append(v)
                if setup.md_axis is not None:
                    names.append(f"{ph}@hist{i}.md")
                    vals.append(float(pp.get("md", 1.0)))
        p0 = self.base[0]["phases"]
        for s in self.models[0].phases:
            ph = s.phase.name
            for c, v in zip(_CELL, np.asarray(p0[ph]["cell"], float)):
                names.append(f"{ph}.{c}")
                vals.append(v)
            for site, xyz in zip(s.phase.sites, np.asarray(p0[ph]["xyz"], float)):
                for c, v in zip("xyz", xyz):
                    names.append(f"{ph}.{site.label}.{c}")
                    vals.append(v)
            for site, b in zip(s.phase.sites, np.asarray(p0[ph]["biso"], float)):
                names.append(f"{ph}.{site.label}.biso")
                vals.append(b)
        return tuple(names), np.asarray(vals, dtype=float)

    def unpack(self, full) -> list[dict]:
        full = jnp.asarray(full)
        idx = {n: i for i, n in enumerate(self.names)}
        shared = {}
        for s in self.models[0].phases:
            ph = s.phase.name
            labels = [st.label for st in s.phase.sites]
            shared[ph] = {
                "cell": full[jnp.array([idx[f"{ph}.{c}"] for c in _CELL])],
                "xyz": full[jnp.array([[idx[f"{ph}.{lb}.{c}"] for c in "xyz"] for lb in labels])],
                "biso": full[jnp.array([idx[f"{ph}.{lb}.biso"] for lb in labels])]}
        out = []
        for i, (m, p) in enumerate(zip(self.models, self.base)):
            hist = dict(p["hist"])
            for k in _HIST:
                hist[k] = full[idx[f"hist{i}.{k}"]]
            hist["background"] = full[jnp.array([idx[f"hist{i}.bkg[{j}]"] for j in range(m.n_background)])]
            phases = {}
            for ph in self.phase_names:
                pp = dict(p["phases"][ph], **shared[ph])
                pp["scale"] = full[idx[f"{ph}@hist{i}.scale"]]
                pp["mustrain"] = full[idx[f"{ph}@hist{i}.mustrain"]]
                pp["size_um"] = full[idx[f"{ph}@hist{i}.size"]]
                pp["hstrain"] = full[jnp.array([idx[f"{ph}@hist{i}.hstrain[{k}]"] for k in range(6)])]
                st = m.phases[m.phase_names.index(ph)].stephens
                if st:
                    pp["stephens"] = full[jnp.array([idx[f"{ph}@hist{i}.{nm}"] for nm in st])]
                terms = m.phases[m.phase_names.index(ph)].sh_terms
                if terms:
                    pp["sh"] = full[jnp.array([idx[f"{ph}@hist{i}.C({L},{n})"] for L, n in terms])]
                if m.phases[m.phase_names.index(ph)].md_axis is not None:
                    pp["md"] = full[idx[f"{ph}@hist{i}.md"]]
                phases[ph] = pp
            out.append({"hist": hist, "phases": phases})
        return out



def cw_free_set(ev: CWJointEvaluator, free: list[str], x0=None) -> FreeSet:
    """Free columns for the keys listed in the module docstring."""
    names = ev.names
    idx = {n: i for i, n in enumerate(names)}
    n = len(names)
    cols, cnames = [], []

    def add(vec_idx, name, coef=None):
        c = np.zeros(n)
        c[vec_idx] = 1.0 if coef is None else coef
        cols.append(c)
        cnames.append(name)

    phases = {s.phase.name: s.phase for s in ev.models[0].phases}
    for key in free:
        if key.startswith("hist") and (key.endswith(".absorption") or ".surf_rough" in key):
            i = int(key[4:key.index(".")])
            bragg = i < len(ev.models) and ev.models[i].geometry.lower().startswith("bragg")
            if bragg == key.endswith(".absorption"):
                raise ValueError(f"{key!r}: histogram {i} is {ev.models[i].geometry if i < len(ev.models) else '?'}; "
                                 "cylinder absorption applies to Debye-Scherrer histograms, surface roughness to "
                                 "Bragg-Brentano ones")
        if key.endswith(".background") and key[:-11] + ".bkg[0]" in idx:
            j = 0
            while f"{key[:-11]}.bkg[{j}]" in idx:
                add(idx[f"{key[:-11]}.bkg[{j}]"], f"{key[:-11]}.bkg[{j}]")
                j += 1
        elif key.endswith(".displace") and key + "_x" in idx:
            add(idx[key + "_x"], key + "_x")
            add(idx[key + "_y"], key + "_y")
        elif key.endswith(".surf_rough") and key + "_a" in idx:
            add(idx[key + "_a"], key + "_a")
            add(idx[key + "_b"], key + "_b")
        elif key in idx:
            add(idx[key], key)
        elif key.endswith(".hstrain") and "@" in key:
            ph = key.split("@")[0]
            base = [idx[f"{key}[{k}]"] for k in range(6)]
            for j, col in enumerate(_hstrain_columns(phases[ph].spacegroup).T):
                add(base, f"{key}[{j}]", col)
        elif key.endswith(".stephens") and "@" in key:
            ph, hist = key[:-9].split("@")
            st = ev.models[int(hist[4:])].phases[ev.phase_names.index(ph)].stephens
            if not st:
                raise ValueError(f"{key!r}: that histogram's model has isotropic microstrain (build it with stephens=)")
            for nm in st:
                add(idx[f"{key[:-9]}.{nm}"], f"{key[:-9]}.{nm}")
        elif key.endswith(".texture") and "@" in key:
            sh = [nm for nm in names if nm.startswith(key[:-8] + ".C(")]
            if not sh:
                raise ValueError(f"{key!r}: that histogram's model has no spherical-harmonics terms (build it with "
                                 "sh_order=)")
            for nm in sh:
                add(idx[nm], nm)
        elif key.endswith(".cell") and key[:-5] in phases:
            ph = key[:-5]
            base = [idx[f"{ph}.{c}"] for c in _CELL]
            m, labels = cell_columns(phases[ph].spacegroup)
            for col, lb in zip(m.T, labels):
                add(base, f"{ph}.{lb}", col)
        elif key.endswith(".xyz") and key[:-4] in phases:
            ph = phases[key[:-4]]
            for site in ph.sites:
                b = site_shift_basis(ph.spacegroup, site.xyz)
                base = [idx[f"{ph.name}.{site.label}.{c}"] for c in "xyz"]
                for j in range(b.shape[1]):
                    add(base, f"{ph.name}.{site.label}.xyz[{j}]", b[:, j])
        elif key.endswith(".biso") and key[:-5] in phases:
            ph = phases[key[:-5]]
            for site in ph.sites:
                add(idx[f"{ph.name}.{site.label}.biso"], f"{ph.name}.{site.label}.biso")
        else:
            raise ValueError(f"unknown free parameter {key!r}")
    lower = np.full(n, -np.inf)
    upper = np.full(n, np.inf)
    for i, nm in enumerate(names):
        if nm.endswith(".scale") or nm.endswith(".mustrain"):
            lower[i] = 0.0
        elif nm.endswith(".size"):
            lower[i] = 1e-3
        elif nm.endswith(".md"):  # March–Dollase ratio: > 0 (GSAS-II puts no bound; 0.05-20 is far beyond use)
            lower[i], upper[i] = 0.05, 20.0
        elif nm.endswith(".absorption") or nm.endswith(".surf_rough_b"):
            lower[i] = 0.0
        elif nm.endswith(".surf_rough_a"):
            lower[i], upper[i] = 0.0, 1.0
    if not cols:
        a = np.zeros((n, 0))
    else:
        a = np.stack(cols, axis=1)
    return FreeSet(x0=ev.x0 if x0 is None else np.asarray(x0, float), A=a, names=tuple(cnames), lower=lower,
                   upper=upper, full_names=names)


def histogram_stats(ev: CWJointEvaluator, res: FitResult, ys, sigmas) -> list[FitStats]:
    """Rp/Rwp/Rexp/χ² of each histogram at the fit's result (P = the free parameters of the fit)."""
    out, k = [], 0
    for n, y, s in zip(ev.sizes, ys, sigmas):
        out.append(fit_stats(np.asarray(y), res.y_calc[k:k + n], np.asarray(s), res.free.n))
        k += n
    return out


def refine_cw(models, params, ys, sigmas, free: list[str], *, start=None, evaluator=None, **kw):
    """One LM stage over one or several CW histograms sharing their phases.

    ``models``/``params``/``ys``/``sigmas`` are lists (one entry per histogram; a single
    model may be given bare). ``start`` is a full vector from a previous stage (same
    evaluator layout). ``evaluator``: the evaluator a previous stage returned for the same models
    and params, reused so that its compiled kernels are not built again. Returns (FitResult,
    per-histogram FitStats, evaluator).
    """
    if isinstance(models, cw.CWModel):
        models, params, ys, sigmas = [models], [params], [ys], [sigmas]
    if evaluator is not None:
        if len(evaluator.models) != len(models) or any(a is not b for a, b in zip(evaluator.models, models)) \
                or any(a is not b for a, b in zip(evaluator.base, params)):
            raise ValueError("evaluator= was built for other models or params")
        ev = evaluator
    else:
        ev = CWJointEvaluator(list(models), list(params))
    fs = cw_free_set(ev, free, x0=start)
    res = least_squares(ev, fs, np.concatenate([np.asarray(y, float) for y in ys]),
                        np.concatenate([np.asarray(s, float) for s in sigmas]), **kw)
    return res, histogram_stats(ev, res, ys, sigmas), ev
