"""CIF read and write for :class:`~layerscope.crystal.phase.Phase` (through gemmi).

Mixed-occupancy sites are written the way FullProf and GSAS-II users expect: one
``_atom_site`` row per species, all rows of a site sharing its coordinates and
Biso, labelled ``SITE_Element``. Reading groups rows that sit on the same position
back into one site, so a write/read round trip keeps every site, species,
occupancy and Biso.

Anisotropic sites: the ``_atom_site_aniso_U_ij`` loop (or ``_B_ij`` = 8π²U_ij, or
``_beta_ij`` = 2π² a*_i a*_j U_ij) is read here from gemmi's CIF block (gemmi's small-structure
reader takes only the U form), and written back as U_ij with ``_atom_site_adp_type Uani``
and B_eq in ``_atom_site_B_iso_or_equiv``. Files without anisotropic sites are written as
before, with no aniso loop.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import gemmi
import numpy as np

from layerscope.crystal.phase import U_COMPONENTS, Phase, Site, reciprocal_lengths
from layerscope.crystal.scattering import normalise_species
from layerscope._errors import reader as _input_reader  # noqa: E402

__all__ = ["read_cif", "write_cif", "cif_block", "format_esd"]

_EIGHT_PI2 = 8.0 * math.pi**2


@_input_reader
def read_cif(path: str | os.PathLike, *, name: str | None = None, block: str | None = None) -> Phase:
    """Read one crystal structure from a CIF file.

    Parameters
    ----------
    path : CIF file
    name : phase name (default: the data block name)
    block : data block to read (default: the first block with atom sites)

    Raises
    ------
    ValueError
        naming the file and the missing or bad item: no symmetry, no cell, no atom sites,
        an occupancy outside [0, 1] ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CIF file not found")
    try:
        doc = gemmi.cif.read(str(path))
    except Exception as exc:  # gemmi raises RuntimeError/ValueError with its own text
        raise ValueError(f"{path}: not a readable CIF file ({exc})") from None
    blocks = [b for b in doc if b.find_value("_cell_length_a") is not None or b.find_loop("_atom_site_label")]
    if block is not None:
        blocks = [b for b in doc if b.name == block]
        if not blocks:
            raise ValueError(f"{path}: no data block {block!r} (blocks: {[b.name for b in doc]})")
    if not blocks:
        raise ValueError(f"{path}: no data block with a cell (_cell_length_a) and atom sites (_atom_site_label)")
    b = blocks[0]
    for item in ("_cell_length_a", "_cell_length_b", "_cell_length_c",
                 "_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma"):
        if b.find_value(item) is None:
            raise ValueError(f"{path}: block {b.name!r} lacks {item}")
    if not b.find_loop("_atom_site_fract_x"):
        raise ValueError(f"{path}: block {b.name!r} has no _atom_site_fract_x/y/z loop (expected atom sites)")
    st = gemmi.make_small_structure_from_block(b)
    sg = st.spacegroup
    if sg is None:
        raise ValueError(
            f"{path}: block {b.name!r} has no symmetry: expected _space_group_name_H-M_alt, "
            "_symmetry_space_group_name_H-M, _space_group_IT_number or a _space_group_symop_operation_xyz loop")
    occ_col = list(b.find_values("_atom_site_occupancy")) or None
    cell = (st.cell.a, st.cell.b, st.cell.c, st.cell.alpha, st.cell.beta, st.cell.gamma)
    if not (all(math.isfinite(v) and 0.5 <= v <= 1e4 for v in cell[:3])
            and all(math.isfinite(v) and 0 < v < 180 for v in cell[3:])
            and math.isfinite(st.cell.volume) and st.cell.volume > 0):
        raise ValueError(f"{path}: block {b.name!r}: cell {cell} is not a unit cell (expected lengths of "
                         "0.5-10 000 Å and angles between 0 and 180° that span a volume)")
    aniso = _read_aniso(b, cell, path)
    rows = []
    for i, s in enumerate(st.sites):
        occ = s.occ
        if occ_col is not None and occ_col[i] in ("?", "."):
            occ = 1.0
        if not np.isfinite(occ) or occ < 0 or occ > 1 + 1e-6:
            raise ValueError(f"{path}: _atom_site_occupancy of {s.label!r} must lie in [0, 1], got {occ}")
        symbol = s.type_symbol or s.element.name
        try:
            symbol = normalise_species(symbol)
        except ValueError as exc:
            try:
                symbol = normalise_species(s.element.name)
            except ValueError:
                raise ValueError(f"{path}: site {s.label!r}: {exc} (from _atom_site_type_symbol or the "
                                 "label; expected an element such as 'Mn', 'O2-', '7Li')") from None
        u = s.u_iso
        if not np.isfinite(u) or u < 0:
            raise ValueError(f"{path}: displacement parameter of {s.label!r} must be >= 0, got U = {u}")
        rows.append((s.label, tuple(float(v) for v in (s.fract.x, s.fract.y, s.fract.z)), symbol, float(occ),
                     _EIGHT_PI2 * u, aniso.get(s.label)))
    wyck = dict(zip(b.find_values("_atom_site_label"), b.find_values("_atom_site_Wyckoff_symbol"))) \
        if b.find_values("_atom_site_Wyckoff_symbol") else {}
    sites = _group_rows(rows, wyck, path)
    _check_overlaps(sites, st.cell, sg, path)
    hm = sg.xhm()
    return Phase(name or b.name, hm, cell, tuple(sites))


#: two atoms closer than this (Å) cannot both be there: an error, or a warning for a split position
MIN_SEPARATION_ANGSTROM = 0.5


def _check_overlaps(sites, cell, sg, path, min_distance: float = MIN_SEPARATION_ANGSTROM) -> None:
    """Sites at different positions closer than ``min_distance`` Å (symmetry images included).

    Species that share one site (a mixed site) have the same coordinates and are one site here,
    so they are never an overlap. Two different positions that close are a split (disordered)
    position when their occupancies add up to at most 1 — kept, with a warning — and otherwise
    two atoms on top of each other: an error naming both sites and the distance. A site close to
    its own symmetry image (slightly off a special position) is judged the same way.
    """
    import warnings

    ops = list(sg.operations())
    orth = np.array(cell.orth.mat.tolist())
    occ = [sum(o for _, o in si.species) for si in sites]
    images = [np.array([op.apply_to_xyz(list(si.xyz)) for op in ops]) for si in sites]
    for i, si in enumerate(sites):
        for j in range(i, len(sites)):
            d = images[j] - np.asarray(si.xyz)
            d -= np.round(d)
            dist = np.linalg.norm(d @ orth.T, axis=1)
            dist = dist[dist > 1e-3]  # the same position (a mixed site, a special position) is no overlap
            if dist.size == 0 or dist.min() >= min_distance:
                continue
            total = occ[i] + occ[j]
            what = (f"site {si.label!r} is {dist.min():.3f} Å from a symmetry image of itself" if i == j else
                    f"sites {si.label!r} and {sites[j].label!r} are {dist.min():.3f} Å apart")
            if total > 1 + 1e-4:
                raise ValueError(f"{path}: {what} (closer than {min_distance} Å) with occupancies adding up to "
                                 f"{total:.4g} > 1: two atoms cannot be that close. Species sharing one site need "
                                 "the same coordinates; a split (disordered) position needs occupancies adding "
                                 "up to at most 1")
            warnings.warn(f"{path}: {what} (closer than {min_distance} Å); occupancies add up to {total:.4g} <= 1, "
                          "read as a split (disordered) position", UserWarning, stacklevel=3)


def _read_aniso(b, cell, path) -> dict[str, tuple[float, ...]]:
    """U_ij (Å², CIF order U11 U22 U33 U12 U13 U23) by atom label from the aniso loop."""
    kinds = {"U": np.ones(6), "B": np.full(6, 1.0 / _EIGHT_PI2)}
    ast = reciprocal_lengths(cell)
    ij = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
    kinds["beta"] = np.array([1.0 / (2 * math.pi**2 * ast[i] * ast[j]) for i, j in ij])
    out: dict[str, tuple[float, ...]] = {}
    for kind, factor in kinds.items():
        tags = [f"_atom_site_aniso_{kind}_{c[1:]}" for c in U_COMPONENTS]
        if b.find_value(tags[0]) is None and not b.find_loop(tags[0]):
            continue
        table = b.find("_atom_site_aniso_", ["label"] + [t[len("_atom_site_aniso_"):] for t in tags])
        if table.width() != 7 or len(table) == 0:
            raise ValueError(f"{path}: {tags[0]} needs _atom_site_aniso_label and all six of {', '.join(tags)}")
        for row in table:
            label = gemmi.cif.as_string(row[0])
            if any(row.str(k) in ("?", ".") for k in range(1, 7)):
                continue
            try:
                vals = np.array([gemmi.cif.as_number(row[k]) for k in range(1, 7)])
            except Exception:
                vals = np.full(6, np.nan)
            if not np.all(np.isfinite(vals)):
                raise ValueError(f"{path}: _atom_site_aniso_{kind}_ij of {label!r} are not six numbers: "
                                 f"{[row.str(k) for k in range(1, 7)]}")
            out[label] = tuple(float(v) for v in vals * factor)
    return out


def _group_rows(rows, wyck, path) -> list[Site]:
    groups: list[list] = []
    for row in rows:
        for g in groups:
            d = np.asarray(row[1]) - np.asarray(g[0][1])
            if np.all(np.abs(d - np.round(d)) < 1e-4):
                g.append(row)
                break
        else:
            groups.append([row])
    sites = []
    used = set()
    for g in groups:
        labels = [r[0] for r in g]
        prefixes = {lab.rsplit("_", 1)[0] for lab in labels if "_" in lab}
        label = prefixes.pop() if len(g) > 1 and len(prefixes) == 1 and all("_" in x for x in labels) else labels[0]
        if label in used:
            label = "+".join(labels)
        used.add(label)
        biso = float(np.mean([r[4] for r in g]))
        anis = [r[5] for r in g]
        if any(a is not None for a in anis) and any(a is None for a in anis):
            raise ValueError(f"{path}: atoms {labels} share one position but only some have "
                             "_atom_site_aniso_ rows (give all of them anisotropic U or none)")
        uani = tuple(np.mean(anis, axis=0)) if anis[0] is not None else None
        species = []
        for r in g:
            species.append((r[2], r[3]))
        total = sum(o for _, o in species)
        if total > 1 + 1e-4:
            raise ValueError(f"{path}: atoms {labels} share one position but their occupancies sum to {total:.4f} > 1")
        w = wyck.get(labels[0])
        try:
            sites.append(Site(label, g[0][1], tuple(species), biso, w if w not in ("?", ".") else None, uani))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return sites


def write_cif(phase: Phase, path: str | os.PathLike, *, details: str | None = None, esd=None) -> Path:
    """Write a phase as CIF (atomically: a temporary file renamed into place).

    ``details`` (free text: how the structure was refined, the conventions used) goes into
    ``_refine_special_details``; ``esd`` (optional) gives standard uncertainties in CIF
    notation, e.g. ``2.8712(3)`` (see :func:`cif_block`)."""
    from layerscope._io import write_text

    return write_text(Path(path), "\n".join(cif_block(phase, details=details, esd=esd)) + "\n")


def cif_block(phase: Phase, *, details: str | None = None, esd=None, block: str | None = None,
              items=()) -> list[str]:
    """The lines of one CIF data block holding ``phase``.

    ``esd``: {name: standard uncertainty} in the refinement's parameter names without the phase
    prefix — ``a`` … ``gamma``, ``volume``, ``x[LABEL]``/``y[…]``/``z[…]``, ``occ[LABEL:El]``,
    ``biso[LABEL]`` (B, Å²); a quantity with no finite positive esd there is written without one
    (not refined). ``block``: the data block's name (default the phase's); ``items``: further
    (CIF name, value text) pairs written after ``_pd_phase_name``."""
    esd = dict(esd or {})
    a, b, c, al, be, ga = phase.cell

    def num(key, v, digits):
        return format_esd(v, esd.get(key)) or f"{v:.{digits}f}"

    sg = phase.space_group
    lines = [
        f"data_{_cif_name(block or phase.name)}",
        "_audit_creation_method 'layerscope'",
        f"_pd_phase_name '{phase.name}'",
        *(f"{k} {v}" for k, v in items),
        *(f"_cell_length_{n} {num(n, v, 6)}" for n, v in zip("abc", (a, b, c))),
        *(f"_cell_angle_{n} {num(n, v, 5)}" for n, v in zip(("alpha", "beta", "gamma"), (al, be, ga))),
        f"_cell_volume {num('volume', phase.volume, 4)}",
        f"_cell_formula_units_Z {phase.formula_units}",
        *([] if not details else ["_refine_special_details", ";", *details.replace(";", ",").splitlines(), ";"]),
        # H-M without the ':setting' suffix (other programs reject it) + the Hall symbol and the
        # operations, which fix the origin choice / axes unambiguously (e.g. Fd-3m origin 2)
        f"_space_group_name_H-M_alt '{sg.hm}'",
        f"_space_group_name_Hall '{sg.hall.strip()}'",
        f"_space_group_IT_number {sg.number}",
        "loop_", "_space_group_symop_operation_xyz",
    ]
    lines += [f"'{op.triplet()}'" for op in sg.operations()]
    lines += ["loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y",
              "_atom_site_fract_z", "_atom_site_occupancy", "_atom_site_adp_type", "_atom_site_B_iso_or_equiv",
              "_atom_site_Wyckoff_symbol"]
    for s in phase.sites:
        occs = _printable_occupancies(s.species, [esd.get(f"occ[{s.label}:{sym}]") for sym, _ in s.species])
        x, y, z = (num(f"{ax}[{s.label}]", v, 8) for ax, v in zip("xyz", s.xyz))
        biso = num(f"biso[{s.label}]", s.biso, 6)
        for sym, occ in occs:
            label = f"{s.label}_{sym}" if len(s.species) > 1 else s.label
            adp = "Uani" if s.uani is not None else "Biso"
            lines.append(f"{label} {sym} {x} {y} {z} {occ} {adp} {biso} {s.wyckoff or '?'}")
    if any(s.uani is not None for s in phase.sites):
        lines += ["loop_", "_atom_site_aniso_label"] + [f"_atom_site_aniso_U_{c[1:]}" for c in U_COMPONENTS]
        for s in phase.sites:
            if s.uani is None:
                continue
            for sym, _ in s.species:
                label = f"{s.label}_{sym}" if len(s.species) > 1 else s.label
                lines.append(label + " " + " ".join(f"{v:.8f}" for v in s.uani))
    return lines


def format_esd(value: float, esd) -> str | None:
    """``value`` with its standard uncertainty in CIF notation (``2.8712(3)``: the esd in units of
    the last digit), the esd rounded to two significant digits when they are 19 or less, else
    to one (the IUCr's rule); None when ``esd`` is missing, not finite or not positive."""
    if esd is None or not (math.isfinite(esd) and esd > 0) or not math.isfinite(value):
        return None
    exp = math.floor(math.log10(esd))
    last = exp - 1 if round(esd / 10 ** (exp - 1)) <= 19 else exp   # the power of ten of the last digit
    q = round(esd / 10**last)
    if q >= 10 ** (2 if last < exp else 1):   # 9.6 → 10 in one digit: two digits of the next power
        last, q = last + 1, round(esd / 10 ** (last + 1))
    if last < 0:
        return f"{value:.{-last}f}({q})"
    return f"{round(value / 10**last) * 10**last:.0f}({q * 10**last})"


def _cif_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "phase"


def _printable_occupancies(species, esds=None):
    """Occupancies as strings whose sum never exceeds 1 after rounding (2/3 + 1/6 + 1/6 would
    otherwise print as 1.00000001, which other readers reject): 8 decimals, or to the precision
    of the esd where one is given (CIF notation)."""
    esds = list(esds or [None] * len(species))
    dec, vals = [], []
    for (_, o), e in zip(species, esds):
        txt = format_esd(o, e)
        d = 8 if txt is None else (len(txt.split("(")[0].split(".")[1]) if "." in txt.split("(")[0] else 0)
        dec.append(d)
        vals.append(round(o, d))
    excess = round(sum(vals) - 1.0, max(dec))
    if excess > 0:
        i = max(range(len(vals)), key=vals.__getitem__)
        vals[i] = round(vals[i] - math.ceil(excess * 10 ** dec[i] - 1e-9) / 10 ** dec[i], dec[i])
    out = []
    for (sym, _), v, d, e in zip(species, vals, dec, esds):
        txt = format_esd(v, e)
        out.append((sym, txt if txt is not None else f"{v:.{d}f}"))
    return out
