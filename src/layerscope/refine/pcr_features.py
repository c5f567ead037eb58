"""FullProf TOF features that the ``.pcr`` reader recognises but layerscope does not reproduce.

A job that uses any of them stops with one :class:`~layerscope.InputError` that names the file and,
for every such feature in the job, its line and what FullProf does there — so a user sees at once
everything that stands between the job and a faithful refinement, instead of one feature per run.

What FullProf does is quoted from FullProf 8.40's own run listings (``.out``) of its TOF examples
(cecoal, arg_si_ic, Ceo2_PEARL; as vendored with their FullProf 8.40 re-runs in enhantica/edi,
commit cfed024, ``knowledge/fitting/fullprof/``). Why each is refused rather than approximated:

* ``Npr = 13`` — FullProf's "T.O.F Profile Function #3: Ikeda-Carpenter function convoluted with
  pseudo-Voigt: Omega(DT) = (1+delta(t)*R) <*> TCH-Pseudo-Voigt" (arg_si_ic.out); the moderator
  function of S. Ikeda & J. M. Carpenter, Nucl. Instrum. Methods A 239 (1985) 536 with FullProf's
  α = 1/(alph0 + λ·alph1), β = 1/beta0, R = exp(−81.799/(κλ²)). The profile itself is implemented and
  reproduces FullProf's calculated Si 111 peak to 3e-5 (:mod:`layerscope.diffraction.tof_ikeda_carpenter`),
  but the refinement engine evaluates only the back-to-back exponentials ⊗ pseudo-Voigt (Npr = 9).
* ``Iwg = 1`` — "Maximum Likelihood weighting scheme ( w=1/(calculated variance) )" (cecoal.out):
  weights from a variance calculated from the model, whose form for data given with their own σ
  (cecoal's POLARIS intensities are normalised, "multiplied by 10000") is not stated, and cecoal's
  data, which would show it, are not public. layerscope weights by 1/σ² of the data (FullProf's Iwg = 0).
* a refinement code on ``Extinc`` — FullProf's "T.O.F. Extinction parameter" (cecoal.out,
  arg_si_ic.sum). A fixed Extinc is read: FullProf's reflection-list CORR column of arg_si_ic gives
  E = (1 + Extinc·|F|²·λ²/V²)^(−1/2) (:func:`layerscope.diffraction.cw_sample.tof_extinction`); the
  refinement engine has no extinction parameter to refine.
* ``Iabscor = 1`` (flat plate), or ``2`` (cylinder) with a non-zero ABSCOR2 — FullProf's "Absorption
  correction type" 1/2 for TOF. Its cylinder with ABSCOR2 = 0 is Hewat's form at μR = ABSCOR1·λ:
  that reproduces the CORR column of FullProf 8.40's reflection lists (cecoal, arg_si_ic) to their 6
  digits and is read (:mod:`layerscope.refine.pcr`); the flat plate and ABSCOR2's role are not
  documented within reach.

Searched (2026-12): the docs, pages and code corpora for the FullProf manual's TOF sections and for
an open implementation (CrysFML/CFML, cryspy, easydiffraction, Mantid): only the Npr = 13 profile is
documented (Mantid's IkedaCarpenterPV restates FullProf's); the ML weighting is not, and the
extinction and cylinder-absorption formulas were read off FullProf's own reflection lists. The data
of these three jobs are not public, so none of them can be refined against its .sum here
(``tests/data/fullprof-tof/README.md``).
"""

from __future__ import annotations

__all__ = ["Unsupported", "NPR13", "IWG", "EXTINC", "ABSORPTION"]

NPR13 = ("Npr = {npr} is not supported: FullProf's TOF profile function #3, the Ikeda-Carpenter moderator "
         "function convolved with a TCH pseudo-Voigt, (1 + δ(t)·R) ⊗ TCH-pV, parameters alph0 beta0 alph1 kappa "
         "(layerscope.diffraction.tof_ikeda_carpenter computes it, but the refinement engine evaluates only the "
         "back-to-back exponentials ⊗ pseudo-Voigt of Npr = 9)")
IWG = ("Iwg (weighting scheme) = {iwg} is not supported: FullProf's {what}; layerscope weights every point "
       "by 1/σ² of the data (Iwg = 0)")
IWG_WHAT = {1: "maximum-likelihood weights w = 1/(calculated variance), a variance from the model, not the data's σ",
            2: "unit weights"}
EXTINC = ("Extinc = {ext:g} refined (code {code:g}) is not supported: FullProf's TOF extinction of phase {phase}, "
          "(1 + Extinc·|F|²·λ²/V²)^(−1/2), is applied with Extinc fixed only (set its code to 0)")
ABSORPTION = ("Iabscor = {iabs} with ABSCOR1 = {a1:g}, ABSCOR2 = {a2:g} (line {abs_no}) is not supported: "
              "FullProf's {geometry} absorption for TOF with these terms has no documented formula here; only "
              "A = exp(−ABSCOR1·λ) (Iabscor = 3) and Hewat's cylinder at μR = ABSCOR1·λ (Iabscor = 2), both with "
              "ABSCOR2 = 0, have a counterpart")
GEOMETRY = {1: "flat-plate", 2: "cylinder"}


class Unsupported:
    """Collects (line, message) of unsupported features while the reader carries on, then raises one
    InputError naming the first line in its prefix and every other one in its message."""

    def __init__(self, lines):
        self.lines = lines
        self.items: list[tuple[int | None, str]] = []

    def add(self, no: int | None, message: str) -> None:
        if (no, message) not in self.items:
            self.items.append((no, message))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        (no0, msg0), *rest = sorted(self.items, key=lambda item: item[0] or 0)
        detail = msg0 + "".join(f"; line {no}: {msg}" for no, msg in rest)
        if rest:
            detail += f" [{len(self.items)} unsupported FullProf features in this job]"
        raise self.lines.error(detail, no0)
