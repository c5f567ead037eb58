"""FullProf ``.pcr`` input for TOF neutron patterns (Job = −1, Npr = 9).

Reads the single-pattern ("COMM") layout of a FullProf control file — the lines are identified
by their order, as FullProf itself reads them, with ``!`` comment lines skipped (FullProf manual,
"Description of the input control file CODFIL.PCR"). Where FullProf writes a ``!`` header above a
line, its names are used to read the values, so the older and newer layouts both read: the
7- or 9-value calibration line (with or without ``Dtt_1overD``), the ``Sig-2 Sig-1 Sig-0 Xt Yt
Z1 Z0`` or ``Sigma-2 … Sigma-Q Iso-GStrain Iso-GSize Ani-LSize`` line, the 6- or 8-value
``Pref1 Pref2 alph0 beta0 alph1 beta1 [alphQ betaQ]`` line, the 10- or 15-value ``Nat …`` line
with its optional ``More = 1`` line (``Jvi Jdi Hel Sol Mom Ter Brind …``), and the absorption
parameters on one line (``ABS1 code ABS2 code``) or on a value line and a code line.

Translation to layerscope (GSAS-II parameter meanings, :mod:`layerscope.diffraction.tof_profile`):

* calibration: t = Zero + Dtt1·d + Dtt2·d² + Dtt_1overD/d (identical);
* σ² = (Sig-2 + Iso-GSize)·d⁴ + (Sig-1 + Iso-GStrain)·d² + Sig-0 + Sig-Q·d (µs²) and
  γ = (Gam-2 + Iso-LorSize)·d² + (Gam-1 + Iso-LorStrain)·d + Gam-0 (µs), i.e. GSAS-II's
  sig-2, sig-1, sig-0, sig-q and Y, X, Z;
* α = alph0 + alph1/d, β = beta0 + beta1/d⁴ + betaQ/d²: GSAS-II's alpha (= alph1), beta-0,
  beta-1, beta-q; a non-zero alph0 or alphQ has no counterpart and is refused;
* FullProf's Occ is in units of the general multiplicity (a fully occupied site of
  multiplicity m in a group of order M has Occ = m/M): chemical occupancy = Occ·M/m. FullProf
  accepts any common factor (its scale absorbs it; users often write Occ ∝ m); when a site would
  be more than full, all occupancies are divided by the fullest site's value, with a note.
  Atoms at the same position form one mixed site;
* space groups with two origin choices are read in origin choice 2 (−1 at the origin), as
  FullProf builds them, with a note;
* scattering lengths: FullProf's b in 10⁻¹² cm gives |F|² 100× smaller than in fm², and its
  TOF intensity is S·m·|F|²·d⁴·sin θ, so our scale is S·sin θ·V²/100 (a starting value:
  the scales are solved linearly before the refinement);
* background (:mod:`layerscope.refine.pcr_background`): Nba = 0 and −3 polynomials, the
  Nba = −4 cosine Fourier series and the Nba = −5 Chebyshev series exactly (Chebyshev series constrained to FullProf's free
  directions), Nba ≥ 2 interpolated points approximately (with a note); others refused;
* absorption (ABSCOR2 = 0): Iabscor = 3 as A(λ) = exp(−ABSCOR1·λ), λ = 2 d sin θ; Iabscor = 2 as
  Hewat's cylinder at μR = ABSCOR1·λ (:func:`~layerscope.diffraction.cw_sample.hewat_cylinder_absorption`,
  FullProf's: it reproduces the CORR column of FullProf's reflection lists); each with a note;
* extinction: a fixed Extinc as FullProf's (1 + Extinc·|F|²·λ²/V²)^(−1/2), with a note
  (:func:`~layerscope.diffraction.cw_sample.tof_extinction`, from FullProf's reflection-list CORR);
* codes: 0 fixed; ±(10·p + m) refines parameter number p with multiplier ±m. Parameters
  that share p move together (δx_i / m_i equal) — linear ties; coordinates and cells are
  refined along their symmetry-allowed directions.

Recognised but not reproduced (Npr = 13 in the engine, Iwg ≠ 0, a refined Extinc, Iabscor = 1,
ABSCOR2 ≠ 0) are refused together in one InputError (:mod:`layerscope.refine.pcr_features`).

Refused with an :class:`~layerscope.InputError` naming the keyword, its value and its line (no
exact counterpart here): Npr ≠ 9 (10: thermal/epithermal crossover), Nba
1/−1/−2…, Nsc, Nor, Res, Ste, Nre, Cry; per phase Dis, Ang, Jbt, Irf, Isy, Str, Furth,
Nvk, a phase Npr ≠ 9, Jvi/Jdi/Hel/Sol/Mom/Ter/Brind, atoms with N_t ≠ 0, Bov, Str1–3,
Strain-/Size-Model, Ani-LSize, Xt/Yt/Z1/Z0, Pref1/Pref2, alph0/alphQ; multi-pattern (NPATT) files. The per-phase profile lines must agree between phases (the model has one
instrument). Hand-written: no Python library reads FullProf control files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layerscope.crystal.phase import Phase, Site, symmetry_operations, unique_positions
from layerscope._errors import InputError, reader
from layerscope.diffraction.instrument import TOFInstrument
from layerscope.refine.parameters import Constraint
from layerscope.refine.pcr_background import FullProfBackground
from layerscope.refine.pcr_lines import _Lines
from layerscope.refine.pcr_features import (ABSORPTION, EXTINC, GEOMETRY, IWG, IWG_WHAT, NPR13,
                                            Unsupported)
from layerscope.refine.strategy import Stage, Strategy

__all__ = ["PcrJob", "read_pcr", "pcr_code"]


@dataclass(frozen=True)
class PcrJob:
    """A FullProf TOF job translated into layerscope's phases, instrument and strategy."""

    source: str
    title: str
    data_file: Path
    phases: tuple[Phase, ...]
    scales: dict
    instrument: TOFInstrument
    tof_range_us: tuple[float, float]
    excluded_us: tuple[tuple[float, float], ...]
    n_background: int
    bkg: FullProfBackground
    bkpos_us: float
    absorption: float
    strategy: Strategy
    free_names: tuple[str, ...] = field(default_factory=tuple)
    #: our phase scale per unit of FullProf's Scale (S·sin θ·V²/100, over the Occ normalisation²)
    scale_per_fullprof: dict = field(default_factory=dict)
    #: what ``absorption`` means: "exponential" (Iabscor = 3) or "cylinder-hewat" (Iabscor = 2)
    absorption_form: str = "exponential"
    #: FullProf's fixed TOF extinction parameter by phase (``cw_sample.tof_extinction``)
    extinction: dict = field(default_factory=dict)
    #: assumptions made in the translation (printed as warnings by the CLI)
    notes: tuple[str, ...] = ()

    def background(self, t_range) -> np.ndarray:
        """Chebyshev coefficients over ``t_range`` of the pcr's background as given."""
        return self.bkg.chebyshev(t_range)[1]

    def background_model(self, t_range, t_eval=None) -> tuple[int, np.ndarray, tuple[Constraint, ...], list[str]]:
        """(number of Chebyshev terms, starting coefficients, constraints, notes) that reproduce the
        pcr's background over ``t_range`` with only the coefficients FullProf refines free."""
        m, c0, notes = self.bkg.chebyshev(t_range, t_eval)
        return m.shape[0], c0, self.bkg.constraints(m), notes


def pcr_code(code: float) -> tuple[int, float]:
    """(parameter number p, multiplier m) of a FullProf code ±(10 p + m); (0, 0) when fixed."""
    c = float(code)
    if abs(c) < 1e-9:
        return 0, 0.0
    p = int(abs(c) // 10)
    m = abs(c) - 10 * p
    if p == 0:
        raise ValueError(f"refinement code {code}: expected ±(10·p + m) with p ≥ 1")
    return p, (m if m != 0 else 1.0) * np.sign(c)


def _element(typ: str) -> str:
    m = re.match(r"[A-Za-z]+", typ)
    if not m:
        raise ValueError(f"atom type {typ!r} has no element symbol")
    sym = m.group(0)
    return sym[0].upper() + sym[1:2].lower()


def _refuse(L, no, flags: dict, what: str):
    """InputError naming the first keyword of ``flags`` (name -> value) that is not 0."""
    for key, val in flags.items():
        if val is not None and val != 0:
            raise L.error(f"{key} = {val:g} is not supported ({what})", no)


@reader
def read_pcr(path, *, data=None) -> PcrJob:
    """Read a FullProf TOF ``.pcr`` (Job −1, Npr 9) into phases, instrument and a strategy.

    Parameters
    ----------
    path : the ``.pcr`` file
    data : the pattern file; default: the ``DAT-file:`` named in the pcr's header comment,
        else the pcr's name with ``.dat``, next to the pcr

    Raises
    ------
    InputError : naming the keyword, its value and its line where the job uses a FullProf feature
        that layerscope does not reproduce exactly
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: .pcr file not found")
    L = _Lines(path)
    if not L.items:
        raise InputError("empty .pcr file", path=path)
    _, title = L.next("the title line")
    for no_m, s_m, _ in L.items[:3]:
        if s_m.strip().upper().startswith(("NPATT", "W_PAT")):
            raise L.error("NPATT: multi-pattern .pcr files are not supported; write a single-pattern (COMM) job",
                          no_m)
    title = title[4:].strip() if title.startswith("COMM") else title.strip()
    jl, no = L.named("Job Npr Nph Nba Nex Nsc Nor ...", ("Job", "Npr", "Nph", "Nba", "Nex", "Nsc", "Nor"))
    jobt, npr, nph, nba, nex, nsc = (int(jl[k]) for k in ("Job", "Npr", "Nph", "Nba", "Nex", "Nsc"))
    if jobt != -1:
        raise L.error(f"Job = {jobt}; only TOF neutron patterns (Job = -1) are supported", no)
    todo = Unsupported(L)  # features read through, refused together at the end
    if npr == 13:
        todo.add(no, NPR13.format(npr=npr))
    elif npr != 9:
        raise L.error(f"Npr = {npr} is not supported: only the TOF back-to-back exponentials ⊗ pseudo-Voigt "
                      "(Npr = 9) is (10: thermal/epithermal crossover, 13: Ikeda-Carpenter have no "
                      "counterpart here)", no)
    if nph < 1:
        raise L.error(f"Nph = {nph}; at least one phase is needed", no)
    nor = int(jl.get("Nor", 0))
    if nor not in (0, 1):
        raise L.error(f"Nor = {nor} (preferred-orientation function) is not supported", no)
    iwg = int(jl.get("Iwg", 0))
    if iwg:
        todo.add(no, IWG.format(iwg=iwg, what=IWG_WHAT.get(iwg, "weighting scheme")))
    _refuse(L, no, {"Nsc (additional scattering factors)": nsc,
                    "Res (instrumental resolution file .irf, e.g. Res = 5: a look-up table of σ², γ, α, β per d "
                    "spacing; write its analytical parameters into the pcr instead)": jl.get("Res"),
                    "Ste (data thinning)": jl.get("Ste"), "Nre (parameter limits)": jl.get("Nre"),
                    "Cry (integrated intensities)": jl.get("Cry")}, "FullProf TOF job options")
    if not (nba in (0, -3, -4, -5) or nba >= 2):
        raise L.error(f"background type Nba = {nba} is not supported (supported: 0 and -3 polynomials, "
                      "-4 cosine Fourier series, -5 Chebyshev series, N >= 2 interpolated points; 1 (.bac file), "
                      "-1 (Debye-like), -2 (Fourier filtering) ... have no exact counterpart)", no)
    L.numbers("Ipr Ppl Ioc ...", 3)
    bk, no_bk = L.named("Bkpos Wdt Iabscor", ("Bkpos", "Wdt", "Iabscor"))
    bkpos, iabs = bk["Bkpos"], int(bk["Iabscor"])
    ncy = L.numbers("NCY Eps R_at R_an R_pr R_gl Thmin Step Thmax", 9)
    tmin, tmax = ncy[6], ncy[8]
    if not 0 < tmin < tmax:
        raise L.error(f"Thmin/Thmax ({tmin}, {tmax}) are not a TOF range in µs", L.last_no)
    bkg_points = [L.numbers("background point T Bck code", 3) for _ in range(nba)] if nba >= 2 else []
    excluded = tuple(tuple(L.numbers("excluded region low high", 2)) for _ in range(nex))
    L.numbers("number of refined parameters", 1)
    cal, no = L.named("Zero Code Dtt1 Code Dtt2 Code Dtt_1overD Code 2ThetaBank",
                      ("Zero", "c0", "Dtt1", "c1", "Dtt2", "c2", "Dtt_1overD", "c3", "2ThetaBank"),
                      ("Zero", "c0", "Dtt1", "c1", "Dtt2", "c2", "2ThetaBank"))
    vals = list(cal.values())
    if len(vals) >= 9:
        zero, c_zero, dtt1, c_dtt1, dtt2, c_dtt2, dtt1d, c_dtt1d, two_theta = vals[:9]
    else:
        zero, c_zero, dtt1, c_dtt1, dtt2, c_dtt2, two_theta = vals[:7]
        dtt1d, c_dtt1d = 0.0, 0.0
    bkg = _read_background(L, nba, bkg_points, bkpos, tmax, tmin)
    sin_t = float(np.sin(np.radians(two_theta / 2)))

    coded: list[tuple[str, float, float]] = []     # (our name or group, code, multiplier factor)
    phases, scales, profiles, scale_per_fp, extinction = [], {}, [], {}, {}
    absorption = 0.0
    notes = []
    for k in range(nph):
        _, pname = L.next(f"the name of phase {k + 1}")
        pname = re.sub(r"\s+", "_", pname.strip())
        nl, no = L.named(f"Nat ... of phase {pname}", ("Nat", "Dis", "Ang", "Jbt", "Isy", "Str", "Furth"))
        nat = int(nl["Nat"])
        _refuse(L, no, {"Dis (distance restraints)": nl.get("Dis"), "Ang (angle restraints)": nl.get("Ang"),
                        "Jbt (phase type: magnetic, Le Bail, rigid body ...)": nl.get("Jbt"),
                        "Irf (reflections or symmetry from file)": nl.get("Irf"),
                        "Isy (explicit symmetry operators)": nl.get("Isy"),
                        "Str (strain/size model lines)": nl.get("Str"),
                        "Furth (user parameters)": nl.get("Furth"), "Nvk (propagation vectors)": nl.get("Nvk")},
                f"phase {pname}")
        if "Npr" in nl and int(nl["Npr"]) == 13 == npr:
            pass  # the pattern's Npr = 13, refused above
        elif "Npr" in nl and int(nl["Npr"]) != 9:
            raise L.error(f"phase {pname}: Npr = {int(nl['Npr'])} is not supported (only Npr = 9)", no)
        if nl.get("More"):
            ml, no = L.named(f"Jvi Jdi Hel Sol Mom Ter ... of phase {pname}",
                             ("Jvi", "Jdi", "Hel", "Sol", "Mom", "Ter", "Brind"))
            _refuse(L, no, {key: ml.get(key) for key in ("Jvi", "Jdi", "Hel", "Sol", "Mom", "Ter", "Nsp_Ref",
                                                            "Ph_Shift", "N_Domains")}, f"phase {pname}")
            if abs(ml.get("Brind", 1.0) - 1.0) > 1e-9:
                raise L.error(f"phase {pname}: Brind = {ml['Brind']:g} (Brindley correction) is not supported", no)
        no, sg = L.next(f"the space group of phase {pname}")
        sg = sg.split("<")[0].strip()
        atoms = []
        for _ in range(nat):
            no, s = L.next(f"an atom line of phase {pname}")
            toks = s.split("#")[0].split()
            try:
                label, typ = toks[0], toks[1]
                x, y, z, biso, occ = (float(v) for v in toks[2:7])
                n_t = int(float(toks[9])) if len(toks) > 9 else 0
            except (IndexError, ValueError, OverflowError):
                raise L.error(f"expected 'Atom Typ X Y Z Biso Occ ...', got {s.strip()[:70]!r}", no) from None
            L._finite((x, y, z, biso, occ), f"X Y Z Biso Occ of atom {label}", no)
            if n_t != 0:
                raise L.error(f"atom {label}: N_t = {n_t} (anisotropic or special form factor) is not supported", no)
            codes = L.numbers(f"the codes of atom {label}", 5)
            atoms.append((label, _element(typ), (x, y, z), biso, occ, codes))
        sc, no = L.named(f"Scale Extinc Bov Str1 Str2 Str3 Strain-Model of phase {pname}",
                         ("Scale", "Extinc", "Bov", "Str1", "Str2", "Str3", "Strain-Model"), ("Scale",))
        c_sc = L.numbers(f"the Scale codes of phase {pname}", 1, at_most=7)
        if len(c_sc) > 1 and c_sc[1]:
            todo.add(no, EXTINC.format(ext=sc.get("Extinc", 0.0), phase=pname, code=c_sc[1]))
        elif sc.get("Extinc", 0.0):
            extinction[pname] = float(sc["Extinc"])
            notes.append(f"phase {pname}: Extinc = {sc['Extinc']:g} read as FullProf's TOF extinction "
                         "(1 + Extinc·|F|²·λ²/V²)^(−1/2), fixed")
        _refuse(L, no, {k2: v for k2, v in sc.items() if k2 not in ("Scale", "Extinc")},
                f"phase {pname}: no overall B or strain model here")
        if any(c_sc[2:]):
            raise L.error(f"phase {pname}: refinement codes on Bov/Str are not supported", L.last_no)
        sig, no = L.named(f"Sig-2 Sig-1 Sig-0 ... of phase {pname}",
                          ("Sigma-2", "Sigma-1", "Sigma-0", "Sigma-Q", "Iso-GStrain", "Iso-GSize"))
        sv = list(sig.values())
        extra = dict(list(sig.items())[4:]) if len(sv) > 4 else {}
        old_style = any(k2 in sig for k2 in ("Xt", "Yt", "Z1", "Z0"))
        if old_style:
            _refuse(L, no, {k2: sig.get(k2) for k2 in ("Xt", "Yt", "Z1", "Z0", "Size-Model")}, f"phase {pname}")
            g_strain = g_size = 0.0
        else:
            _refuse(L, no, {"Ani-LSize": extra.get("Ani-LSize"), "Size-Model": extra.get("Size-Model")},
                    f"phase {pname}")
            g_strain, g_size = (sv[4] if len(sv) > 4 else 0.0), (sv[5] if len(sv) > 5 else 0.0)
        c_sig = L.numbers(f"the Sigma codes of phase {pname}", 3, at_most=7)
        if any(c_sig[4:]):
            raise L.error(f"phase {pname}: refinement codes on the sample Gaussian terms are not supported "
                          "(refine Sig-2/Sig-1/Sig-0/Sig-Q)", L.last_no)
        if old_style and len(c_sig) > 3 and c_sig[3]:
            raise L.error(f"phase {pname}: a refinement code on Xt is not supported", L.last_no)
        gam = L.numbers(f"Gam-2 Gam-1 Gam-0 LStr LSiz of phase {pname}", 3, at_most=5)
        gam = gam + [0.0] * (5 - len(gam))
        c_gam = L.numbers(f"the Gamma codes of phase {pname}", 3, at_most=5)
        if any(c_gam[3:]):
            raise L.error(f"phase {pname}: refinement codes on LStr/LSiz are not supported", L.last_no)
        cell = L.numbers(f"a b c alpha beta gamma of phase {pname}", 6)
        c_cell = L.numbers(f"the cell codes of phase {pname}", 6)
        ab, no = L.named(f"Pref1 Pref2 alph0 beta0 alph1 beta1 [alphQ betaQ] of phase {pname}",
                         ("Pref1", "Pref2", "alph0", "beta0", "alph1", "beta1", "alphQ", "betaQ"),
                         ("Pref1", "Pref2", "alph0", "beta0", "alph1", "beta1"))
        abv = list(ab.values()) + [0.0] * (8 - len(ab))
        c_ab = L.numbers(f"the alpha/beta codes of phase {pname}", 6, at_most=8)
        c_ab = c_ab + [0.0] * (8 - len(c_ab))
        # no preferred orientation: G1 = 0 for Nor = 0 (Rietveld-Toraya), G1 = 1 for Nor = 1 (March)
        _refuse(L, no, {f"Pref1 (Nor = {nor})": abv[0] - nor, "Pref2": abv[1], "Pref1 code": c_ab[0],
                        "Pref2 code": c_ab[1]}, f"phase {pname}: preferred orientation")
        if abv[2] != 0 or abv[6] != 0 or c_ab[2] or c_ab[6]:
            raise L.error(f"phase {pname}: alph0 = {abv[2]:g}, alphQ = {abv[6]:g}; only α = alph1/d (GSAS-II's "
                          "alpha) is supported", no)
        item = L.peek()
        if item is not None and ("ABS" in item[1].upper() or "absorption" in item[2].lower()):
            absn = L.numbers(f"ABSCOR1 ... of phase {pname}", 2, at_most=4)
            if len(absn) >= 4:       # "ABS1 code ABS2 code  ABS: ABSCOR1 ABSCOR2" on one line
                abs12, c_abs = [absn[0], absn[2]], [absn[1], absn[3]]
            else:
                abs12, c_abs = absn, L.numbers(f"the absorption codes of phase {pname}", 1, at_most=2)
            abs_no = L.last_no
        elif iabs:
            abs12 = L.numbers(f"ABS1 ABS2 of phase {pname}", 2)
            abs_no = L.last_no
            c_abs = L.numbers(f"the absorption codes of phase {pname}", 1, at_most=2)
        else:
            abs12, c_abs, abs_no = [0.0, 0.0], [0.0], None
        if abs12[0] or abs12[1] or any(c_abs):
            if iabs == 1 or (iabs == 2 and (abs12[1] != 0 or (len(c_abs) > 1 and c_abs[1]))):
                todo.add(no_bk, ABSORPTION.format(iabs=iabs, a1=abs12[0], a2=abs12[1], abs_no=abs_no,
                                                  geometry=GEOMETRY[iabs]))
            elif iabs not in (2, 3):
                raise L.error(f"Iabscor = {iabs} with ABSCOR1 = {abs12[0]:g}, ABSCOR2 = {abs12[1]:g} (line "
                              f"{abs_no}) is not supported: only the exponential A = exp(−ABSCOR1·λ) "
                              "(Iabscor = 3, ABSCOR2 = 0) and Hewat's cylinder (Iabscor = 2, ABSCOR2 = 0) are", no_bk)
            elif abs12[1] != 0 or (len(c_abs) > 1 and c_abs[1]):
                raise L.error(f"phase {pname}: ABSCOR2 = {abs12[1]:g} is not supported (A = exp(−ABSCOR1·λ))",
                              abs_no)
            absorption = abs12[0]
            if c_abs[0]:
                coded.append(("absorption", c_abs[0], 1.0))
        prof = dict(sig2=sv[0] + g_size, sig1=sv[1] + g_strain, sig0=sv[2], sigq=0.0 if old_style else
                    (sv[3] if len(sv) > 3 else 0.0), y=gam[0] + gam[4], x=gam[1] + gam[3], z=gam[2],
                    beta0=abv[3], alpha=abv[4], beta1=abv[5], betaq=abv[7])
        if profiles and any(abs(prof[key] - profiles[0][key]) > 1e-9 * max(1.0, abs(prof[key])) for key in prof):
            raise L.error(f"phase {pname} has profile parameters different from phase {phases[0].name}; one "
                          "instrument profile per pattern is supported")
        profiles.append(prof)
        if k == 0:
            for key, code in zip(("sig2", "sig1", "sig0", "sigq"), c_sig[:3] + ([0.0] if old_style else c_sig[3:4])):
                if code:
                    coded.append((f"inst.{key}", code, 1.0))
            for key, code in zip(("y", "x", "z"), c_gam):
                if code:
                    coded.append((f"inst.{key}", code, 1.0))
            for key, code in zip((None, None, None, "beta0", "alpha", "beta1", None, "betaq"), c_ab):
                if code and key:
                    coded.append((f"inst.{key}", code, 1.0))
        phase, sc_ours, note = _phase(path, pname, sg, cell, atoms, coded, sc["Scale"], sin_t)
        if note:
            notes.append(note)
        if c_sc[0]:
            coded.append((f"{pname}.scale", c_sc[0], sc_ours / sc["Scale"] if sc["Scale"] else 1.0))
        if any(c_cell):
            coded.append((f"{pname}.cell", 1.0, 0.0))
        phases.append(phase)
        scales[pname] = sc_ours
        scale_per_fp[pname] = sc_ours / sc["Scale"] if sc["Scale"] else float("nan")
    todo.raise_if_any()
    absorption_form = {2: "cylinder-hewat"}.get(iabs, "exponential")
    if absorption and iabs == 2:
        notes.append(f"absorption Iabscor = 2 read as FullProf's (Hewat's) cylinder at μR = {absorption:g}·λ, "
                     "λ = 2 d sin θ")
    elif absorption:
        notes.append(f"absorption Iabscor = 3 read as A = exp(−{absorption:g}·λ), λ = 2 d sin θ")
    if bkg.kind == "chebyshev":
        notes.append(f"Nba = -5: background Σ B_n T_n(x), x = 2(T − {tmin:g})/({tmax:g} − {tmin:g}) − 1 (TOF-min "
                     "and TOF-max of the NCY line)")
    if bkg.kind == "cosine":
        notes.append(f"Nba = -4: background Σ B_j cos(j π T / T_max) with T_max = {tmax:g} µs (the TOF-max "
                     "of the NCY line)")

    inst = TOFInstrument(difc=dtt1, difa=dtt2, difb=dtt1d, zero=zero, two_theta=two_theta, source=str(path),
                         **profiles[0])
    for name, code in (("inst.zero", c_zero), ("inst.difc", c_dtt1), ("inst.difa", c_dtt2), ("inst.difb", c_dtt1d)):
        if code:
            coded.append((name, code, 1.0))
    free = ["background"] if bkg.refined else []
    ties: dict[int, list[tuple[str, float]]] = {}
    for name, code, factor in coded:
        if name not in free:
            free.append(name)
        if name.endswith(".cell") or ".xyz[" in name:
            continue  # moved along their symmetry-allowed directions, not tied by number
        p, m = pcr_code(code)
        ties.setdefault(p, []).append((name, m * factor))  # FullProf units -> ours (Occ m/M, scale)
    shared = {pcr_code(c)[0] for j, c in enumerate(bkg.codes) if c} & set(ties)
    if shared:
        raise L.error(f"background coefficients share refinement code number(s) {sorted(shared)} with other "
                      "parameters; such ties are not supported")
    constraints = []
    for p, members in ties.items():
        (n0, m0) = members[0]
        for n1, m1 in members[1:]:
            constraints.append(Constraint({n0: 1.0 / m0, n1: -1.0 / m1}))
    ncyc = max(int(ncy[0]), 1)
    stages = (Stage("scales + background", tuple([f for f in free if f == "background" or f.endswith(".scale")])),
              Stage("all coded parameters (pcr)", tuple(free)))
    strategy = Strategy(tuple(st for st in stages if st.free), tuple(constraints), max_cycles=max(ncyc, 10),
                        scale_model="phase")
    data_file = _data_file(path, L.comments, data)
    m0, _, _ = bkg.chebyshev((tmin, tmax))
    return PcrJob(str(path), title, data_file, tuple(phases), scales, inst, (tmin, tmax), excluded, m0.shape[0],
                  bkg, bkpos, absorption, strategy, tuple(free), notes=tuple(notes), scale_per_fullprof=scale_per_fp,
                  absorption_form=absorption_form, extinction=extinction)


def _read_background(L: _Lines, nba: int, bkg_points, bkpos: float, tmax: float,
                     tmin: float = 0.0) -> FullProfBackground:
    if nba >= 2:
        pts = np.array(bkg_points, dtype=float)
        order = np.argsort(pts[:, 0])
        pts = pts[order]
        return FullProfBackground("points", tuple(pts[:, 1]), tuple(pts[:, 2]), t_points=tuple(pts[:, 0]))
    n_lines = {0: 1, -3: 2, -4: 2, -5: 1}[nba]
    vals, codes = [], []
    for i in range({-4: 3, -5: 4}.get(nba, n_lines)):
        if i >= n_lines:  # optional further lines (18-term cosine, up to 24 Chebyshev terms)
            item = L.peek()
            toks = item[1].split() if item else []
            try:
                if len(toks) < 6:
                    break
                [float(t) for t in toks[:6]]
            except ValueError:
                break
        vals += L.numbers("6 background coefficients", 6)
        codes += L.numbers("6 background codes", 6)
    kind = {-4: "cosine", -5: "chebyshev"}.get(nba, "polynomial")
    return FullProfBackground(kind, tuple(vals), tuple(codes), bkpos=bkpos, t_max=tmax, t_min=tmin)


def _phase(path, pname, sg, cell, atoms, coded, scale_fp, sin_t):
    import gemmi

    origin_note = None
    if ":" not in sg:
        try:
            alt = gemmi.find_spacegroup_by_name(sg + ":2")
        except Exception:  # noqa: BLE001 - gemmi raises on unknown symbols; reported below
            alt = None
        if alt is not None:
            # FullProf builds a centrosymmetric group with the -1 at the origin (origin choice 2)
            sg = sg + ":2"
            origin_note = f"phase {pname}: space group {sg[:-2]!r} read in origin choice 2 (-1 at the origin), as FullProf does"
    try:
        rot, trans = symmetry_operations(sg)
    except Exception as exc:  # gemmi raises on unknown symbols
        raise InputError(f"phase {pname}: space group {sg!r} not recognised ({exc})", path=path) from None
    n_general = len(rot)
    groups: dict = {}
    for label, elem, xyz, biso, occ, codes in atoms:
        key = tuple(np.round(np.mod(xyz, 1.0), 5))
        groups.setdefault(key, []).append((label, elem, xyz, biso, occ, codes))
    mults = {key: len(unique_positions(np.asarray(members[0][2], dtype=float), rot, trans))
             for key, members in groups.items()}
    fullest = max(sum(m[4] for m in members) * n_general / mults[key] for key, members in groups.items())
    k_occ, note = 1.0, None
    if fullest > 1.0 + 2e-3:
        # Occ not in units of m/M (FullProf accepts any common factor; its scale absorbs it)
        k_occ = 1.0 / fullest
        note = (f"phase {pname}: Occ values are not in FullProf's m/M units (a site would be {fullest:.4g}× "
                f"full); all occupancies divided by {fullest:.4g} so that the fullest site is full")
    sites = []
    for key_pos, members in groups.items():
        label, _, xyz, biso, _, codes = members[0]
        mult = mults[key_pos]
        species = []
        for lab, elem, _, _, occ, c in members:
            chem = occ * n_general / mult * k_occ
            if chem > 1 + 2e-3:
                raise InputError(f"phase {pname}, atom {lab}: Occ {occ} is more than full for a site of "
                                 f"multiplicity {mult} in a group of order {n_general} (FullProf units m/M)",
                                 path=path)
            species.append((elem, min(chem, 1.0)))
        total = sum(o for _, o in species)
        if 1.0 < total <= 1.0 + 2e-3:  # Occ values rounded to 5 decimals in m/M units
            species = [(e, o / total) for e, o in species]
        names_seen = {}
        for lab, elem, _, _, occ, c in members:
            names_seen[elem] = names_seen.get(elem, 0) + 1
            key = f"{label}:{elem}" if names_seen[elem] == 1 else f"{label}:{elem}#{names_seen[elem]}"
            if c[4]:
                coded.append((f"{pname}.occ[{key}]", c[4], n_general / mult * k_occ))
        if any(c[0] or c[1] or c[2] for *_, c in members):
            coded.append((f"{pname}.xyz[{label}]", 1.0, 0.0))
        if codes[3]:
            coded.append((f"{pname}.biso[{label}]", codes[3], 1.0))
        sites.append(Site(label, tuple(float(v) for v in xyz), tuple(species), float(biso), f"{mult}"))
    phase = Phase(pname, sg, tuple(cell), tuple(sites))
    note = "; ".join(n for n in (origin_note, note) if n) or None
    return phase, float(scale_fp * sin_t * phase.volume**2 / 100.0 / k_occ**2), note


def _data_file(path: Path, comments, data) -> Path:
    if data is not None:
        return Path(data)
    for c in comments:
        m = re.search(r"DAT-file:\s*([^\s,]+)", c)
        if m:
            return path.parent / m.group(1)
    return path.with_suffix(".dat")

