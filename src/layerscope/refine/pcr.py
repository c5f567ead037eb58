"""FullProf ``.pcr`` input for TOF neutron patterns (Job = −1, Npr = 9).

Reads the single-pattern ("COMM") layout of a FullProf control file — the lines are
identified by their order, as FullProf itself reads them, with ``!`` comment lines skipped
(FullProf manual, "Description of the input control file CODFIL.PCR"):

* ``Job Npr Nph Nba Nex Nsc Nor ...`` — Job = −1 (TOF neutrons), Npr = 9 (back-to-back
  exponentials ⊗ pseudo-Voigt), Nph phases, Nba background type (0: 6-term polynomial,
  N ≥ 2: N points), Nex excluded regions;
* ``Ipr Ppl ...`` (ignored), ``Bkpos Wdt Iabscor``, ``NCY Eps ... Thmin Step Thmax``;
* background points (Nba ≥ 2), excluded regions, the number of refined parameters;
* ``Zero Code Dtt1 Code Dtt2 Code Dtt_1overD Code 2ThetaBank``;
* for Nba = 0 the six polynomial coefficients and their codes;
* per phase: name; ``Nat ...``; the space-group symbol; two lines per atom
  (``Atom Typ X Y Z Biso Occ In Fin N_t Spc`` and the codes of X Y Z Biso Occ); then, each
  followed by a line of codes: ``Scale Extinc Bov Str1 Str2 Str3 Strain-Model``,
  ``Sig-2 Sig-1 Sig-0 Sig-Q Iso-GStrain Iso-GSize Ani-LSize Size-Model``,
  ``Gam-2 Gam-1 Gam-0 Iso-LorStrain Iso-LorSize``, ``a b c alpha beta gamma``,
  ``Pref1 Pref2 alph0 beta0 alph1 beta1 alphQ betaQ`` and, when Iabscor ≠ 0,
  ``ABS1 ABS2``.

Translation to layerscope (GSAS-II parameter meanings, :mod:`layerscope.diffraction.tof_profile`):

* calibration: t = Zero + Dtt1·d + Dtt2·d² + Dtt_1overD/d (identical);
* σ² = (Sig-2 + Iso-GSize)·d⁴ + (Sig-1 + Iso-GStrain)·d² + Sig-0 + Sig-Q·d (µs²) and
  γ = (Gam-2 + Iso-LorSize)·d² + (Gam-1 + Iso-LorStrain)·d + Gam-0 (µs), i.e. GSAS-II's
  sig-2, sig-1, sig-0, sig-q and Y, X, Z;
* α = alph0 + alph1/d, β = beta0 + beta1/d⁴ + betaQ/d²: GSAS-II's alpha (= alph1), beta-0,
  beta-1, beta-q; a non-zero alph0 or alphQ has no counterpart and is refused;
* FullProf's Occ is in units of the general multiplicity (a fully occupied site of
  multiplicity m in a group of order M has Occ = m/M): chemical occupancy = Occ·M/m;
  atoms at the same position form one mixed site;
* scattering lengths: FullProf's b in 10⁻¹² cm gives |F|² 100× smaller than in fm², and its
  TOF intensity is S·m·|F|²·d⁴·sin θ, so our scale is S·sin θ·V²/100 (a starting value:
  the CLI solves the scales and background linearly first);
* the polynomial background Σ B_m (T/Bkpos − 1)^m (m = 0..5) is the same degree-5
  polynomial as a 6-term Chebyshev series over the fitted range: converted exactly;
* absorption: A(λ) = exp(−ABS1·λ) with λ = 2 d sin θ (ABS2 must be 0);
* codes: 0 fixed; ±(10·p + m) refines parameter number p with multiplier ±m. Parameters
  that share p move together (δx_i / m_i equal) — linear ties; coordinates and cells are
  refined along their symmetry-allowed directions.

The per-phase profile lines must agree between phases (the model has one instrument).
Hand-written: no Python library reads FullProf control files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layerscope.crystal.phase import Phase, Site, symmetry_operations, unique_positions
from layerscope.diffraction.background import chebyshev_basis
from layerscope.diffraction.instrument import TOFInstrument
from layerscope.refine.parameters import Constraint
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
    background_poly: tuple[float, ...]
    bkpos_us: float
    absorption: float
    strategy: Strategy
    free_names: tuple[str, ...] = field(default_factory=tuple)

    def background(self, t_range) -> np.ndarray:
        """Chebyshev coefficients over ``t_range`` of the pcr's polynomial background."""
        t = np.linspace(t_range[0], t_range[1], 64)
        x = t / self.bkpos_us - 1.0
        yb = sum(c * x**m for m, c in enumerate(self.background_poly))
        basis = chebyshev_basis(t, self.n_background, t_range)
        return np.linalg.lstsq(basis.T, yb, rcond=None)[0]


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


class _Lines:
    """Non-comment lines with their numbers, consumed in order."""

    def __init__(self, path: Path):
        self.path = path
        raw = path.read_text(errors="replace").splitlines()
        self.comments = [s for s in raw if s.startswith("!")]
        self.items = [(i + 1, s.rstrip()) for i, s in enumerate(raw) if s.strip() and not s.lstrip().startswith("!")]
        self.pos = 0

    def next(self, what: str) -> tuple[int, str]:
        if self.pos >= len(self.items):
            raise ValueError(f"{self.path}: file ends where {what} was expected (truncated .pcr?)")
        item = self.items[self.pos]
        self.pos += 1
        return item

    def numbers(self, what: str, n: int, *, strip_after: str | None = None) -> list[float]:
        no, s = self.next(what)
        if strip_after and strip_after in s:
            s = s.split(strip_after)[0]
        toks = s.split()
        try:
            vals = [float(t) for t in toks[:n]]
        except ValueError:
            raise ValueError(f"{self.path}, line {no}: expected {n} numbers ({what}), got {s.strip()[:70]!r}") from None
        if len(vals) < n:
            raise ValueError(f"{self.path}, line {no}: expected {n} numbers ({what}), got {len(vals)}")
        return vals


def _element(typ: str) -> str:
    m = re.match(r"[A-Za-z]+", typ)
    if not m:
        raise ValueError(f"atom type {typ!r} has no element symbol")
    sym = m.group(0)
    return sym[0].upper() + sym[1:2].lower()


def read_pcr(path, *, data=None) -> PcrJob:
    """Read a FullProf TOF ``.pcr`` (Job −1, Npr 9) into phases, instrument and a strategy.

    Parameters
    ----------
    path : the ``.pcr`` file
    data : the pattern file; default: the ``DAT-file:`` named in the pcr's header comment,
        else the pcr's name with ``.dat``, next to the pcr
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: .pcr file not found")
    L = _Lines(path)
    if not L.items:
        raise ValueError(f"{path}: empty .pcr file")
    _, title = L.next("the title line")
    title = title[4:].strip() if title.startswith("COMM") else title.strip()
    no, _ = L.items[L.pos]
    job = L.numbers("Job Npr Nph Nba Nex Nsc Nor ...", 7)
    jobt, npr, nph, nba, nex, nsc = (int(v) for v in job[:6])
    if jobt != -1:
        raise ValueError(f"{path}, line {no}: Job = {jobt}; only TOF neutron patterns (Job = -1) are supported")
    if npr != 9:
        raise ValueError(f"{path}, line {no}: Npr = {npr}; only the TOF back-to-back exponential ⊗ pseudo-Voigt "
                         "(Npr = 9) is supported (Npr = 10 has a thermal-neutron crossover this model lacks)")
    if nph < 1:
        raise ValueError(f"{path}, line {no}: Nph = {nph}; at least one phase is needed")
    if nsc != 0:
        raise ValueError(f"{path}, line {no}: additional scattering factors (Nsc = {nsc}) are not supported")
    if nba not in (0,) and nba < 2:
        raise ValueError(f"{path}, line {no}: background type Nba = {nba} is not supported (0: polynomial, "
                         "N ≥ 2: N points)")
    L.numbers("Ipr Ppl Ioc ...", 3)
    bkpos, _wdt, iabs = L.numbers("Bkpos Wdt Iabscor", 3)
    ncy = L.numbers("NCY Eps R_at R_an R_pr R_gl Thmin Step Thmax", 9)
    tmin, tmax = ncy[6], ncy[8]
    if not 0 < tmin < tmax:
        raise ValueError(f"{path}: Thmin/Thmax ({tmin}, {tmax}) are not a TOF range in µs")
    bkg_points = [L.numbers("background point T Bck code", 3) for _ in range(nba)] if nba >= 2 else []
    excluded = tuple(tuple(L.numbers("excluded region low high", 2)) for _ in range(nex))
    L.numbers("number of refined parameters", 1)
    cal = L.numbers("Zero Code Dtt1 Code Dtt2 Code Dtt_1overD Code 2ThetaBank", 9)
    zero, c_zero, dtt1, c_dtt1, dtt2, c_dtt2, dtt1d, c_dtt1d, two_theta = cal
    poly, c_poly = (), ()
    if nba == 0:
        poly = tuple(L.numbers("6 background coefficients", 6))
        c_poly = tuple(L.numbers("6 background codes", 6))
    sin_t = float(np.sin(np.radians(two_theta / 2)))

    coded: list[tuple[str, float, float]] = []     # (our name or group, code, multiplier factor)
    phases, scales, profiles = [], {}, []
    absorption = 0.0
    for k in range(nph):
        _, pname = L.next(f"the name of phase {k + 1}")
        pname = re.sub(r"\s+", "_", pname.strip())
        nat = int(L.numbers(f"Nat ... of phase {pname}", 1)[0])
        no, sg = L.next(f"the space group of phase {pname}")
        sg = sg.split("<")[0].strip()
        atoms = []
        for _ in range(nat):
            no, s = L.next(f"an atom line of phase {pname}")
            toks = s.split()
            try:
                label, typ = toks[0], toks[1]
                x, y, z, biso, occ = (float(v) for v in toks[2:7])
            except (IndexError, ValueError):
                raise ValueError(f"{path}, line {no}: expected 'Atom Typ X Y Z Biso Occ ...', got {s.strip()[:70]!r}") \
                    from None
            codes = L.numbers(f"the codes of atom {label}", 5)
            atoms.append((label, _element(typ), (x, y, z), biso, occ, codes))
        sc = L.numbers(f"Scale ... of phase {pname}", 1)
        c_sc = L.numbers(f"the Scale codes of phase {pname}", 1)
        sig = L.numbers(f"Sig-2 Sig-1 Sig-0 Sig-Q Iso-GStrain Iso-GSize of phase {pname}", 6)
        c_sig = L.numbers(f"the Sigma codes of phase {pname}", 4)
        gam = L.numbers(f"Gam-2 Gam-1 Gam-0 Iso-LorStrain Iso-LorSize of phase {pname}", 5)
        c_gam = L.numbers(f"the Gamma codes of phase {pname}", 3)
        cell = L.numbers(f"a b c alpha beta gamma of phase {pname}", 6)
        c_cell = L.numbers(f"the cell codes of phase {pname}", 6)
        ab = L.numbers(f"Pref1 Pref2 alph0 beta0 alph1 beta1 alphQ betaQ of phase {pname}", 8)
        c_ab = L.numbers(f"the alpha/beta codes of phase {pname}", 8)
        if iabs:
            abs12 = L.numbers(f"ABS1 ABS2 of phase {pname}", 2)
            c_abs = L.numbers(f"the absorption codes of phase {pname}", 2)
            if abs12[1] != 0:
                raise ValueError(f"{path}: phase {pname}: ABS2 = {abs12[1]} ≠ 0 is not supported (A = exp(−ABS1·λ))")
            absorption = abs12[0]
            if c_abs[0]:
                coded.append(("absorption", c_abs[0], 1.0))
        if ab[2] != 0 or ab[6] != 0:
            raise ValueError(f"{path}: phase {pname}: alph0 = {ab[2]}, alphQ = {ab[6]}; only α = alph1/d "
                             "(GSAS-II's alpha) is supported")
        prof = dict(sig2=sig[0] + sig[5], sig1=sig[1] + sig[4], sig0=sig[2], sigq=sig[3],
                    y=gam[0] + gam[4], x=gam[1] + gam[3], z=gam[2], beta0=ab[3], alpha=ab[4], beta1=ab[5],
                    betaq=ab[7])
        if profiles and any(abs(prof[key] - profiles[0][key]) > 1e-9 * max(1.0, abs(prof[key])) for key in prof):
            raise ValueError(f"{path}: phase {pname} has profile parameters different from phase "
                             f"{phases[0].name}; one instrument profile per pattern is supported")
        profiles.append(prof)
        if k == 0:
            for key, code in zip(("sig2", "sig1", "sig0", "sigq"), c_sig):
                if code:
                    coded.append((f"inst.{key}", code, 1.0))
            for key, code in zip(("y", "x", "z"), c_gam):
                if code:
                    coded.append((f"inst.{key}", code, 1.0))
            for key, code in zip((None, None, None, "beta0", "alpha", "beta1", None, "betaq"), c_ab):
                if code and key:
                    coded.append((f"inst.{key}", code, 1.0))
        phase, sc_ours = _phase(path, pname, sg, cell, atoms, coded, sc[0], sin_t)
        if c_sc[0]:
            coded.append((f"{pname}.scale", c_sc[0], sc_ours / sc[0] if sc[0] else 1.0))
        if any(c_cell):
            coded.append((f"{pname}.cell", 1.0, 0.0))
        phases.append(phase)
        scales[pname] = sc_ours

    inst = TOFInstrument(difc=dtt1, difa=dtt2, difb=dtt1d, zero=zero, two_theta=two_theta, source=str(path),
                         **profiles[0])
    for name, code in (("inst.zero", c_zero), ("inst.difc", c_dtt1), ("inst.difa", c_dtt2), ("inst.difb", c_dtt1d)):
        if code:
            coded.append((name, code, 1.0))
    n_bkg = 6
    if nba >= 2:
        # N background points: a Chebyshev series of up to 6 terms through them
        pts = np.array(bkg_points)
        n_bkg = int(min(6, len(pts)))
        basis = chebyshev_basis(pts[:, 0], n_bkg, (tmin, tmax))
        coef = np.linalg.lstsq(basis.T, pts[:, 1], rcond=None)[0]
        t = np.linspace(tmin, tmax, 64)
        x = np.asarray(t) / bkpos - 1.0
        poly = tuple(np.polynomial.polynomial.polyfit(x, coef @ chebyshev_basis(t, n_bkg, (tmin, tmax)), n_bkg - 1))
        poly = poly + (0.0,) * (6 - len(poly))
        refine_bkg = any(p[2] for p in bkg_points)
    else:
        refine_bkg = any(c_poly)
    free = ["background"] if refine_bkg else []
    ties: dict[int, list[tuple[str, float]]] = {}
    for name, code, factor in coded:
        if name not in free:
            free.append(name)
        if name.endswith(".cell") or ".xyz[" in name:
            continue  # moved along their symmetry-allowed directions, not tied by number
        p, m = pcr_code(code)
        ties.setdefault(p, []).append((name, m * factor))  # FullProf units -> ours (Occ m/M, scale)
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
    return PcrJob(str(path), title, data_file, tuple(phases), scales, inst, (tmin, tmax), excluded, n_bkg, poly,
                  bkpos, absorption, strategy, tuple(free))


def _phase(path, pname, sg, cell, atoms, coded, scale_fp, sin_t):
    try:
        rot, trans = symmetry_operations(sg)
    except Exception as exc:  # gemmi raises on unknown symbols
        raise ValueError(f"{path}: phase {pname}: space group {sg!r} not recognised ({exc})") from None
    n_general = len(rot)
    groups: dict = {}
    for label, elem, xyz, biso, occ, codes in atoms:
        key = tuple(np.round(np.mod(xyz, 1.0), 5))
        groups.setdefault(key, []).append((label, elem, xyz, biso, occ, codes))
    sites = []
    for members in groups.values():
        label, _, xyz, biso, _, codes = members[0]
        mult = len(unique_positions(np.asarray(xyz, dtype=float), rot, trans))
        species = []
        for lab, elem, _, _, occ, c in members:
            chem = occ * n_general / mult
            if chem > 1 + 1e-4:
                raise ValueError(f"{path}: phase {pname}, atom {lab}: Occ {occ} is more than full for a site of "
                                 f"multiplicity {mult} in a group of order {n_general} (FullProf units m/M)")
            species.append((elem, min(chem, 1.0)))
        total = sum(o for _, o in species)
        if 1.0 < total <= 1.0 + 2e-3:  # Occ values rounded to 5 decimals in m/M units
            species = [(e, o / total) for e, o in species]
        names_seen = {}
        for lab, elem, _, _, occ, c in members:
            names_seen[elem] = names_seen.get(elem, 0) + 1
            key = f"{label}:{elem}" if names_seen[elem] == 1 else f"{label}:{elem}#{names_seen[elem]}"
            if c[4]:
                coded.append((f"{pname}.occ[{key}]", c[4], n_general / mult))
        if any(c[0] or c[1] or c[2] for *_, c in members):
            coded.append((f"{pname}.xyz[{label}]", 1.0, 0.0))
        if codes[3]:
            coded.append((f"{pname}.biso[{label}]", codes[3], 1.0))
        sites.append(Site(label, tuple(float(v) for v in xyz), tuple(species), float(biso), f"{mult}"))
    phase = Phase(pname, sg, tuple(cell), tuple(sites))
    return phase, float(scale_fp * sin_t * phase.volume**2 / 100.0)


def _data_file(path: Path, comments, data) -> Path:
    if data is not None:
        return Path(data)
    for c in comments:
        m = re.search(r"DAT-file:\s*([^\s,]+)", c)
        if m:
            return path.parent / m.group(1)
    return path.with_suffix(".dat")
