"""Several TOF banks of one sample refined together: one full vector, one Jacobian.

The banks of one measurement (detector banks at different 2θ, each with its own TOF grid and
calibration) see the same sample: its phases' structures — cells, coordinates, occupancies,
displacements, broadening — and their scales (the phase fractions) are shared, while each bank
keeps its own instrument constants, background, absorption and histogram scale (GSAS-II's
per-histogram ``Scale``; the banks' incident spectra and solid angles differ).

Full vector: the layout of bank 0 (:func:`~layerscope.refine.parameters.make_layout`, its names
unchanged: ``NAC.a``, ``NAC.scale``, ``hscale``, ``bkg.0``, ``inst.difc`` …), then for every
further bank b its own entries ``bank{b}.inst.*``, ``bank{b}.bkg.*``, ``bank{b}.absorption``,
``bank{b}.hscale``. The layout object is a :class:`~layerscope.refine.parameters.Layout` with
those names, so :func:`~layerscope.refine.parameters.free_set` and the strategies work on it;
:func:`expand_bank_keys` adds each bank's own entries to a stage's free keys.

:class:`BankEvaluator` composes one :class:`~layerscope.refine.engine.Evaluator` per bank (each
with its compiled kernels, linear shortcuts and Jacobian buckets) and gathers each bank's vector
from the full one: the pattern is the banks' patterns one after the other, and the Jacobian of a
column is each bank's Jacobian of the column's gathered rows (exact: the gather is linear). It
offers what :func:`~layerscope.refine.engine.least_squares`,
:func:`~layerscope.refine.engine.linear_scan` and :mod:`layerscope.refine.determined` use.

Written here because :class:`~layerscope.refine.joint.JointEvaluator` (TOF and CW histograms)
shares only cells, coordinates and Biso and prefixes every other entry per histogram; a series of
time steps needs the single-bank names to stay what they are and the occupancies and fractions
shared.
"""

from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace

import numpy as np

from layerscope.refine.engine import Evaluator, FitStats, fit_stats
from layerscope.refine.parameters import Layout, make_layout

__all__ = ["BankEvaluator", "is_per_bank", "bank_count", "expand_bank_keys", "bank_stats", "solve_bank_linear"]

_BANK = re.compile(r"bank(\d+)\.hscale$")


def is_per_bank(name: str) -> bool:
    """Whether a single-bank layout entry belongs to each bank (instrument, background,
    absorption, histogram scale) rather than to the sample."""
    return name.startswith(("inst.", "bkg.")) or name in ("absorption", "hscale")


def bank_count(layout: Layout) -> int:
    """Number of banks of a (bank) layout: 1 for a plain single-pattern layout."""
    return 1 + sum(1 for n in layout.names if _BANK.fullmatch(n))


def expand_bank_keys(keys, layout: Layout) -> list[str]:
    """A stage's free keys with each further bank's own entries added: ``background`` →
    ``bank{b}.bkg.*``, ``inst.X`` → ``bank{b}.inst.X``, ``absorption`` → ``bank{b}.absorption``;
    a stage that frees ``hscale`` or any ``PHASE.scale`` also frees ``bank{b}.hscale`` (bank 0's
    histogram scale and the shared phase scales set the sample; each further bank's scale is
    its own). Keys of a single-bank layout come back unchanged."""
    n = bank_count(layout)
    out = list(keys)
    if n == 1:
        return out
    extra = []
    scales = any(k == "hscale" or k.endswith(".scale") for k in keys)
    for b in range(1, n):
        for k in keys:
            if k in ("background", "bkg"):
                extra.append(f"bank{b}.bkg.*")
            elif k.startswith("inst.") or k == "absorption":
                extra.append(f"bank{b}.{k}")
        if scales:
            extra.append(f"bank{b}.hscale")
    return out + [k for k in dict.fromkeys(extra) if k not in out]


class BankEvaluator:
    """``calc``/``calc_jac``/``linear_jacobian`` of several banks sharing the sample.

    ``models``: one :class:`~layerscope.diffraction.pattern.PatternModel` per bank (the same
    phases in the same order, each on its own TOF grid and instrument); ``labels``: the banks'
    names in outputs (default 1, 2, …).
    """

    def __init__(self, models, labels=None):
        models = list(models)
        if not models:
            raise ValueError("at least one bank")
        self.models = models
        self.labels = list(labels) if labels is not None else list(range(1, len(models) + 1))
        self.layouts = [make_layout(m) for m in models]
        l0 = self.layouts[0]
        shared0 = [n for n in l0.names if not is_per_bank(n)]
        for b, lay in enumerate(self.layouts[1:], 1):
            if [n for n in lay.names if not is_per_bank(n)] != shared0:
                raise ValueError(f"bank {b}: its model must hold the same phases, sites and species as bank 0's "
                                 f"({', '.join(l0.phase_names)})")
        names = list(l0.names) + [f"bank{b}.{n}" for b, lay in enumerate(self.layouts[1:], 1)
                                  for n in lay.names if is_per_bank(n)]
        self.layout = dataclasses.replace(l0, names=tuple(names))
        idx = {n: i for i, n in enumerate(names)}
        self.gathers = [np.array([idx[f"bank{b}.{n}" if b and is_per_bank(n) else n] for n in lay.names])
                        for b, lay in enumerate(self.layouts)]
        self.evaluators = [Evaluator(m, lay) for m, lay in zip(models, self.layouts)]
        self.sizes = [len(m.tof_us) for m in models]
        ends = np.cumsum(self.sizes)
        self.slices = [slice(int(e - s), int(e)) for s, e in zip(self.sizes, ends)]
        self.model = SimpleNamespace(tof_us=np.concatenate([np.asarray(m.tof_us) for m in models]),
                                     phases=models[0].phases, phase_names=models[0].phase_names)
        self._i_scale = self.gathers[0][self.evaluators[0]._i_scale]
        self._i_bkg = np.concatenate([g[e._i_bkg] for g, e in zip(self.gathers, self.evaluators)]).astype(int)
        self._i_h = np.array([g[e._i_h] for g, e in zip(self.gathers, self.evaluators)], dtype=int).ravel()

    def flatten(self, params: list) -> np.ndarray:
        """The full vector from one parameter pytree per bank (the shared entries from bank 0's)."""
        v = np.zeros(len(self.layout.names))
        for b in range(len(self.models) - 1, -1, -1):
            v[self.gathers[b]] = self.layouts[b].flatten(params[b])
        return v

    def local(self, full, b: int) -> np.ndarray:
        """Bank ``b``'s own single-bank vector."""
        return np.asarray(full, dtype=float)[self.gathers[b]]

    def split(self, y) -> list:
        """A concatenated pattern cut into the banks' patterns."""
        return [np.asarray(y)[s] for s in self.slices]

    def share_kernels(self, a) -> None:
        for g, ev in zip(self.gathers, self.evaluators):
            ev.share_kernels(np.asarray(a)[g])

    def reset_cache(self):
        for ev in self.evaluators:
            ev.reset_cache()

    def calc(self, full):
        out = [ev.calc(self.local(full, b)) for b, ev in enumerate(self.evaluators)]
        return (np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out], axis=1),
                np.concatenate([o[2] for o in out]))

    def profiles_fit(self, full) -> bool:
        return all(ev.profiles_fit(self.local(full, b)) for b, ev in enumerate(self.evaluators))

    def calc_jac(self, full, a):
        a = np.asarray(a, dtype=float)
        ys, js = [], []
        for b, (g, ev) in enumerate(zip(self.gathers, self.evaluators)):
            y, j = ev.calc_jac(self.local(full, b), a[g])
            ys.append(y)
            js.append(j)
        return np.concatenate(ys), np.concatenate(js, axis=0)

    def linear_jacobian(self, full):
        n = int(self.model.tof_us.shape[0])
        ys, cols = [], {}
        for b, (g, ev) in enumerate(zip(self.gathers, self.evaluators)):
            y, cb = ev.linear_jacobian(self.local(full, b))
            ys.append(y)
            for j, col in cb.items():
                c = cols.setdefault(int(g[j]), np.zeros(n))
                c[self.slices[b]] += col
        return np.concatenate(ys), cols


def bank_stats(ev: BankEvaluator, full, y, sigma, n_params: int) -> list[FitStats]:
    """Each bank's Rwp, GoF … at ``full`` (``n_params``: the refinement's free parameters)."""
    yc = ev.calc(full)[0]
    return [fit_stats(np.asarray(y)[s], yc[s], np.asarray(sigma)[s], n_params) for s in ev.slices]


def solve_bank_linear(ev: BankEvaluator, full, y, sigma, banks=None) -> np.ndarray:
    """``full`` with each further bank's histogram scale and background solved by weighted linear
    least squares against its pattern (the shared phase scales and structures as they are): the
    start of a joint refinement whose bank 0 was started on its own."""
    full = np.array(full, dtype=float)
    for b in (range(1, len(ev.evaluators)) if banks is None else banks):
        e, g, sl = ev.evaluators[b], ev.gathers[b], ev.slices[b]
        loc = full[g]
        bragg = e.calc(loc)[1].sum(axis=0)
        w = 1.0 / np.asarray(sigma, dtype=float)[sl]
        cols = [bragg] + list(e._basis)
        a = np.stack(cols, axis=1) * w[:, None]
        norm = np.linalg.norm(a, axis=0)
        norm[norm == 0] = 1.0
        coef = np.linalg.lstsq(a / norm, np.asarray(y, dtype=float)[sl] * w, rcond=None)[0] / norm
        k = coef[0] if coef[0] > 0 else 1.0
        full[g[e._i_h]] = loc[e._i_h] * k
        full[g[e._i_bkg]] = coef[1:]
    return full
