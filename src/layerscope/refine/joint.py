"""Joint refinement of several histograms of any kind — time-of-flight banks and constant-wavelength
X-ray or neutron patterns — against one set of structures, on the existing Levenberg–Marquardt engine
(:func:`layerscope.refine.engine.least_squares`).

Full vector (names):

* shared by every histogram, per phase p: ``p.a`` … ``p.gamma``, ``p.LABEL.x|y|z``, ``p.LABEL.biso``;
* a TOF histogram i: every other entry of its own layout (:func:`layerscope.refine.parameters.make_layout`)
  prefixed ``hist{i}.`` — ``hist{i}.inst.zero``, ``hist{i}.bkg.0``, ``hist{i}.hscale``,
  ``hist{i}.absorption``, ``hist{i}.p.scale``, ``hist{i}.p.mustrain``, ``hist{i}.p.occ[...]`` …;
* the CW histograms: their own names (:mod:`layerscope.refine.cw`: ``hist{i}.scale``, ``hist{i}.bkg[j]``,
  ``p@hist{i}.mustrain`` …) with i the histogram's place in the joint list.

:func:`joint_free_set` keys: ``p.cell``, ``p.xyz``, ``p.biso`` (symmetry columns, as the single-
histogram refinements), ``hist{i}.background``, and any full name above (``hist0.hscale``,
``hist1.inst.zero``, ``hist2.scale``, ``p@hist2.mustrain``…); for a CW histogram also the group keys of
:func:`layerscope.refine.cw.cw_free_set` (``p@hist{i}.stephens``, ``…texture``, ``…hstrain``,
``hist{i}.displace``). Each histogram is computed by its own kernel (``diffraction.pattern._pattern``,
``cw_pattern._cw_pattern``) from the shared entries gathered into its own vector, so the Jacobian is
exact (forward-mode autodiff through the gather). The TOF site occupancies and anisotropic U stay per
histogram here (free them per histogram, or keep them fixed).
"""

from __future__ import annotations

from types import SimpleNamespace

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.diffraction import cw_pattern as cwp  # noqa: E402
from layerscope.diffraction import pattern as tofp  # noqa: E402
from layerscope.diffraction.cw_pattern import CWModel  # noqa: E402
from layerscope.refine.cw import CWJointEvaluator, JittedEvaluator, cw_free_set  # noqa: E402
from layerscope.refine.engine import FitStats, fit_stats, least_squares  # noqa: E402
from layerscope.refine.parameters import FreeSet, cell_columns, make_layout, site_shift_basis  # noqa: E402

__all__ = ["JointEvaluator", "joint_free_set", "refine_joint", "joint_histogram_stats"]

_CELL = ("a", "b", "c", "alpha", "beta", "gamma")


def _tof_shared_name(name: str, phases: set) -> str | None:
    """The shared joint name of a TOF layout entry, or None when it stays per histogram."""
    p, _, rest = name.partition(".")
    if p not in phases:
        return None
    if rest in _CELL:
        return name
    for ax in ("x", "y", "z", "biso"):
        if rest.startswith(ax + "[") and rest.endswith("]"):
            return f"{p}.{rest[len(ax) + 1:-1]}.{ax}"
    return None


class JointEvaluator(JittedEvaluator):
    """``calc(full)``/``calc_jac(full, A)`` over TOF and CW histograms sharing the phases' structures.

    ``histograms``: a list of (model, params) with model a TOF ``PatternModel`` (params the pytree of
    :func:`layerscope.diffraction.pattern.initial_params`) or a ``CWModel`` (params of
    :func:`layerscope.diffraction.cw_pattern.cw_initial_params`). The shared structure starts from
    the first histogram that holds the phase.
    """

    def __init__(self, histograms):
        if not histograms:
            raise ValueError("at least one histogram")
        self.kinds = ["cw" if isinstance(m, CWModel) else "tof" for m, _ in histograms]
        self.models = [m for m, _ in histograms]
        phase_sets = [tuple(m.phase_names) for m in self.models]
        if len(set(phase_sets)) != 1:
            raise ValueError(f"every histogram must hold the same phases, got {sorted(set(phase_sets))}")
        self.phase_names = list(phase_sets[0])
        self.sizes = [len(m.tof_us) if k == "tof" else len(m.x) for m, k in zip(self.models, self.kinds)]
        self.model = SimpleNamespace(tof_us=np.concatenate([np.asarray(m.tof_us if k == "tof" else m.x)
                                                            for m, k in zip(self.models, self.kinds)]))
        names, vals, index = [], [], {}

        def put(name, value):
            if name not in index:
                index[name] = len(names)
                names.append(name)
                vals.append(float(value))
            return index[name]

        pset = set(self.phase_names)
        # CW histograms: one CWJointEvaluator over them (its names use hist{k}, k = place among CW)
        cw_pos = [i for i, k in enumerate(self.kinds) if k == "cw"]
        self.cw_ev = CWJointEvaluator([self.models[i] for i in cw_pos], [histograms[i][1] for i in cw_pos]) \
            if cw_pos else None
        self._cw_gather = None
        if self.cw_ev is not None:
            rename = {f"hist{k}": f"hist{i}" for k, i in enumerate(cw_pos)}
            g = []
            for nm, v in zip(self.cw_ev.names, self.cw_ev.x0):
                head, sep, tail = nm.partition("@")
                if sep:  # p@histK.name
                    hk, _, rest = tail.partition(".")
                    jn = f"{head}@{rename[hk]}.{rest}"
                elif nm.startswith("hist"):
                    hk, _, rest = nm.partition(".")
                    jn = f"{rename[hk]}.{rest}"
                else:
                    jn = nm
                g.append(put(jn, v))
            self._cw_gather = np.asarray(g)
        # TOF histograms: their layouts, structure entries tied to the shared names
        self._tof = []
        for i, k in enumerate(self.kinds):
            if k != "tof":
                continue
            m, p = histograms[i]
            lay = make_layout(m)
            v0 = lay.flatten(p)
            g = []
            for nm, v in zip(lay.names, v0):
                shared = _tof_shared_name(nm, pset)
                g.append(put(shared if shared else f"hist{i}.{nm}", v))
            self._tof.append((i, m, lay, np.asarray(g)))
        self.names, self.x0 = tuple(names), np.asarray(vals, dtype=float)
        self._index = index

        order = list(range(len(self.models)))

        def f(full):
            out = {}
            if self.cw_ev is not None:
                ps = self.cw_ev.unpack(full[self._cw_gather])
                for i, pp in zip(cw_pos, ps):
                    out[i] = cwp._cw_pattern(self.models[i], pp)["total"]
            for i, m, lay, g in self._tof:
                out[i] = tofp._pattern(m, lay.unflatten(full[g]))[0]
            return jnp.concatenate([out[i] for i in order])

        # reference kernels over the whole joint vector (tests); calc/calc_jac use the per-kind kernels below
        self._f = jax.jit(f)
        self._fj = jax.jit(lambda full, a: jax.vmap(lambda col: jax.jvp(f, (full,), (col,)), in_axes=1,
                                                    out_axes=(None, 1))(a))
        self._cw_pos = cw_pos
        self._tof_f, self._tof_fj = [], []
        for _, m, lay, _ in self._tof:
            def ft(v, m=m, lay=lay):
                return tofp._pattern(m, lay.unflatten(v))[0]

            self._tof_f.append(jax.jit(ft))
            self._tof_fj.append(jax.jit(lambda v, a, ft=ft: jax.vmap(lambda col: jax.jvp(ft, (v,), (col,)), in_axes=1,
                                                                      out_axes=(None, 1))(a)))

    def _assemble(self, full, a=None):
        """Each histogram from its own kernel: the CW ones by the CW evaluator (chain-rule Jacobian)
        on the gathered CW vector, each TOF bank by forward mode on its own gathered vector; the
        gather is a selection, so a column of the joint vector is the same selection of ``a``."""
        full = np.asarray(full, float)
        ys, js = {}, {}
        if self.cw_ev is not None:
            g = self._cw_gather
            if a is None:
                y = self.cw_ev.calc(full[g])[0]
            else:
                y, j = self.cw_ev.calc_jac(full[g], np.asarray(a)[g])
            k = 0
            for i, n in zip(self._cw_pos, self.cw_ev.sizes):
                ys[i] = y[k:k + n]
                if a is not None:
                    js[i] = j[k:k + n]
                k += n
        for (i, _, _, g), ft, fjt in zip(self._tof, self._tof_f, self._tof_fj):
            v = jnp.asarray(full[g])
            if a is None:
                ys[i] = np.asarray(ft(v))
            else:
                y, j = fjt(v, jnp.asarray(np.asarray(a)[g]))
                ys[i], js[i] = np.asarray(y), np.asarray(j)
        order = range(len(self.models))
        y = np.concatenate([ys[i] for i in order])
        return (y, None) if a is None else (y, np.concatenate([js[i] for i in order]))

    def calc(self, full):
        return self._assemble(full)

    def calc_jac(self, full, a):
        return self._assemble(full, a)

    def index(self, name: str) -> int:
        return self._index[name]



def joint_free_set(ev: JointEvaluator, free: list[str], x0=None) -> FreeSet:
    """Free columns of the joint vector for the keys in the module docstring; bounds as the
    single-histogram refinements (scales, microstrain, absorption >= 0)."""
    n = len(ev.names)
    cols, cnames = [], []
    idx = ev._index
    phases = {s.phase.name: s.phase for s in ev.models[0].phases}

    def add(vec_idx, name, coef=None):
        c = np.zeros(n)
        c[vec_idx] = 1.0 if coef is None else coef
        cols.append(c)
        cnames.append(name)

    cw_pos = [i for i, k in enumerate(ev.kinds) if k == "cw"]
    for key in free:
        hist = key.split("@")[-1].split(".")[0]
        i = int(hist[4:]) if hist.startswith("hist") and hist[4:].isdigit() else None
        if i is not None and i >= len(ev.kinds):
            raise ValueError(f"{key!r}: there are {len(ev.kinds)} histograms, hist0..hist{len(ev.kinds) - 1}")
        if key in idx:
            add(idx[key], key)
        elif key.endswith(".cell") and key[:-5] in phases:
            ph = key[:-5]
            m, labels = cell_columns(phases[ph].spacegroup)
            for col, lb in zip(m.T, labels):
                add([idx[f"{ph}.{c}"] for c in _CELL], f"{ph}.{lb}", col)
        elif key.endswith(".xyz") and key[:-4] in phases:
            ph = phases[key[:-4]]
            for site in ph.sites:
                b = site_shift_basis(ph.spacegroup, site.xyz)
                for j in range(b.shape[1]):
                    add([idx[f"{ph.name}.{site.label}.{c}"] for c in "xyz"], f"{ph.name}.{site.label}.xyz[{j}]",
                        b[:, j])
        elif key.endswith(".biso") and key[:-5] in phases:
            for site in phases[key[:-5]].sites:
                add(idx[f"{key[:-5]}.{site.label}.biso"], f"{key[:-5]}.{site.label}.biso")
        elif i is not None and ev.kinds[i] == "tof" and key == f"hist{i}.background":
            j = 0
            while f"hist{i}.bkg.{j}" in idx:
                add(idx[f"hist{i}.bkg.{j}"], f"hist{i}.bkg.{j}")
                j += 1
        elif i is not None and ev.kinds[i] == "cw":
            k = cw_pos.index(i)
            local = key.replace(f"hist{i}", f"hist{k}")
            fs = cw_free_set(ev.cw_ev, [local])
            for col, nm in zip(fs.A.T, fs.names):
                c = np.zeros(n)
                c[ev._cw_gather] = col  # a CW column lives on the CW vector, gathered 1:1 into the joint one
                cols.append(c)
                cnames.append(nm.replace(f"hist{k}", f"hist{i}"))
        else:
            raise ValueError(f"unknown free parameter {key!r}")
    lower, upper = np.full(n, -np.inf), np.full(n, np.inf)
    for j, nm in enumerate(ev.names):
        if nm.endswith((".scale", ".mustrain", ".hscale", ".absorption", ".inv_size", ".surf_rough_b")):
            lower[j] = 0.0
        elif nm.endswith(".size"):
            lower[j] = 1e-3
        elif nm.endswith(".md"):
            lower[j], upper[j] = 0.05, 20.0
        elif nm.endswith(".surf_rough_a"):
            lower[j], upper[j] = 0.0, 1.0
    a = np.stack(cols, axis=1) if cols else np.zeros((n, 0))
    return FreeSet(x0=ev.x0 if x0 is None else np.asarray(x0, float), A=a, names=tuple(cnames), lower=lower,
                   upper=upper, full_names=ev.names)


def joint_histogram_stats(ev: JointEvaluator, res, ys, sigmas) -> list[FitStats]:
    out, k = [], 0
    for n, y, s in zip(ev.sizes, ys, sigmas):
        out.append(fit_stats(np.asarray(y), res.y_calc[k:k + n], np.asarray(s), res.free.n))
        k += n
    return out


def refine_joint(histograms, ys, sigmas, free: list[str], *, start=None, **kw):
    """One LM stage over TOF and/or CW histograms sharing the structures; returns (FitResult,
    per-histogram FitStats, evaluator)."""
    ev = JointEvaluator(histograms)
    fs = joint_free_set(ev, free, x0=start)
    res = least_squares(ev, fs, np.concatenate([np.asarray(y, float) for y in ys]),
                        np.concatenate([np.asarray(s, float) for s in sigmas]), **kw)
    return res, joint_histogram_stats(ev, res, ys, sigmas), ev
