"""A first constant-wavelength refinement path: the CW pattern model on the existing
Levenberg–Marquardt engine (:func:`layerscope.refine.engine.least_squares`).

The full parameter vector is ``hist.scale, hist.zero, hist.bkg[0..n-1]`` then, per phase,
``<phase>.scale, <phase>.a, <phase>.b, <phase>.c, <phase>.alpha, <phase>.beta, <phase>.gamma``.
:func:`cw_free_set` frees a chosen subset (cell lengths tied by the crystal system are freed
together: one column for a = b = c in cubic, a = b in tetragonal/hexagonal/trigonal-hexagonal
axes). The Jacobian is exact: forward-mode autodiff of the jitted CW pattern along the free
columns. The engine sees an evaluator with ``calc``/``calc_jac``/``reset_cache`` and the grid
as ``model.tof_us`` (its name for the x grid, whatever the unit).
"""

from __future__ import annotations

from types import SimpleNamespace

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from layerscope.diffraction import cw_pattern as cw  # noqa: E402
from layerscope.refine.engine import FitResult, least_squares  # noqa: E402
from layerscope.refine.parameters import FreeSet  # noqa: E402

__all__ = ["CWEvaluator", "cw_full_names", "cw_full_vector", "cw_free_set", "refine_cw"]

_CELL = ("a", "b", "c", "alpha", "beta", "gamma")


def cw_full_names(model: cw.CWModel) -> tuple[str, ...]:
    names = ["hist.scale", "hist.zero"] + [f"hist.bkg[{i}]" for i in range(model.n_background)]
    for p in model.phase_names:
        names += [f"{p}.scale"] + [f"{p}.{c}" for c in _CELL]
    return tuple(names)


def cw_full_vector(model: cw.CWModel, params: dict) -> np.ndarray:
    h = params["hist"]
    v = [h["scale"], h["zero"]] + list(np.asarray(h["background"], float))
    for p in model.phase_names:
        pp = params["phases"][p]
        v += [pp["scale"]] + list(np.asarray(pp["cell"], float))
    return np.asarray(v, dtype=float)


def _unpack(model: cw.CWModel, base: dict, full):
    nb = model.n_background
    hist = dict(base["hist"], scale=full[0], zero=full[1], background=full[2:2 + nb])
    phases = {}
    k = 2 + nb
    for p in model.phase_names:
        phases[p] = dict(base["phases"][p], scale=full[k], cell=full[k + 1:k + 7])
        k += 7
    return {"hist": hist, "phases": phases}


class CWEvaluator:
    """``calc(full) -> (y_calc, None)``, ``calc_jac(full, A) -> (y_calc, J)`` for the LM engine."""

    def __init__(self, model: cw.CWModel, params: dict):
        self.cw_model = model
        self.base = params
        self.model = SimpleNamespace(tof_us=np.asarray(model.x))
        f = lambda full: cw._cw_pattern(model, _unpack(model, params, full))["total"]  # noqa: E731
        self._f = jax.jit(f)
        self._fj = jax.jit(lambda full, a: jax.vmap(lambda col: jax.jvp(f, (full,), (col,)), in_axes=1,
                                                    out_axes=(None, 1))(a))

    def reset_cache(self):
        pass

    def calc(self, full):
        return np.asarray(self._f(jnp.asarray(full))), None

    def calc_jac(self, full, a):
        y, j = self._fj(jnp.asarray(full), jnp.asarray(a))
        return np.asarray(y), np.asarray(j)

    def params(self, full) -> dict:
        return _unpack(self.cw_model, self.base, jnp.asarray(full))


def _cell_groups(phase) -> list[tuple[str, list[int]]]:
    sg = phase.space_group if not callable(phase.space_group) else phase.space_group()
    system = sg.crystal_system_str()
    if system == "cubic":
        return [("a", [0, 1, 2])]
    if system in ("tetragonal", "hexagonal") or (system == "trigonal" and sg.ext != "R"):
        return [("a", [0, 1]), ("c", [2])]
    if system == "orthorhombic":
        return [("a", [0]), ("b", [1]), ("c", [2])]
    if system == "monoclinic":
        return [("a", [0]), ("b", [1]), ("c", [2]), ("beta", [4])]
    return [(c, [i]) for i, c in enumerate(_CELL)]


def cw_free_set(model: cw.CWModel, x0: np.ndarray, free: list[str]) -> FreeSet:
    """Free columns: "hist.scale", "hist.zero", "hist.background", "<phase>.scale", "<phase>.cell"."""
    names = cw_full_names(model)
    n = len(names)
    cols, cnames = [], []

    def unit(idx):
        c = np.zeros(n)
        c[idx] = 1.0
        return c

    for key in free:
        if key == "hist.background":
            for i in range(model.n_background):
                cols.append(unit(names.index(f"hist.bkg[{i}]")))
                cnames.append(f"hist.bkg[{i}]")
        elif key in ("hist.scale", "hist.zero") or key.endswith(".scale"):
            cols.append(unit(names.index(key)))
            cnames.append(key)
        elif key.endswith(".cell"):
            p = key[:-5]
            s = model.phases[model.phase_names.index(p)]
            base = names.index(f"{p}.a")
            for label, idx in _cell_groups(s.phase):
                cols.append(unit([base + i for i in idx]))
                cnames.append(f"{p}.{label}")
        else:
            raise ValueError(f"unknown free parameter {key!r}; expected hist.scale, hist.zero, hist.background, "
                             "<phase>.scale or <phase>.cell")
    lower = np.full(n, -np.inf)
    upper = np.full(n, np.inf)
    for i, nm in enumerate(names):
        if nm.endswith(".scale"):
            lower[i] = 0.0
    return FreeSet(x0=np.asarray(x0, float), A=np.stack(cols, axis=1), names=tuple(cnames), lower=lower,
                   upper=upper, full_names=names)


def refine_cw(model: cw.CWModel, params: dict, y, sigma, free: list[str], **kw) -> tuple[FitResult, dict]:
    """One LM stage on the CW model; returns the engine's result and the refined parameter pytree."""
    ev = CWEvaluator(model, params)
    fs = cw_free_set(model, cw_full_vector(model, params), free)
    res = least_squares(ev, fs, y, sigma, **kw)
    new = jax.tree_util.tree_map(lambda v: np.asarray(v), ev.params(res.full))
    return res, new
