"""The phases of an operando refinement (``--model``): a preset name or a TOML model file.

DESIGN.md ("Data conventions"): a model is either a preset name (``lrm-pouch``) or a TOML file
listing the phases, so that users bring their own cell components::

    # cell.toml
    [phases]
    O3p = "cif/my_cathode.cif"        # a CIF path, relative to this file
    S = "lrm-pouch:S"                 # a phase of a preset model
    O3 = "lrm-pouch:O3"
    Al = "Al"                         # a single-phase preset
    Cu = "Cu"
    graphite = "graphite"
    LiC12 = "LiC12"
    LiC6 = "LiC6"

    [fractions]                       # optional: starting weight fractions within a group
    O3p = 0.9716
    S = 0.0284

The key is the phase's name in every output (and in the strategy's parameter names); the
value is a preset phase (``Al``, ``model:phase``) or a CIF file. A relative CIF path is resolved
against the folder of the model file, not the working directory. ``[fractions]`` splits the
reference's starting scales among the named phases (the preset ``lrm-pouch`` carries table S2's
O3' 97.16 % / spinel 2.84 %); without it every phase starts from the linear fit of its scale.
Errors name the file, the key and what was expected (:class:`~layerscope.InputError`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from layerscope._errors import InputError

__all__ = ["SeriesModel", "load_series_model"]


@dataclass(frozen=True)
class SeriesModel:
    """The phases of a series refinement, starting fractions and where they came from."""

    phases: list
    fractions: dict = field(default_factory=dict)
    source: str = ""
    #: phase name -> its source (preset phase name or the resolved CIF path)
    origins: dict = field(default_factory=dict)


def load_series_model(spec) -> SeriesModel:
    """A preset name or the path of a TOML model file (see the module docstring)."""
    from layerscope.crystal.presets import list_presets, preset

    spec = str(spec)
    if spec in list_presets():
        m = preset(spec)
        return SeriesModel(list(m.phases), dict(m.fractions), f"preset {spec}",
                           {p.name: f"{spec}:{p.name}" for p in m.phases})
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"--model {spec!r}: not a preset ({', '.join(list_presets())}) and no such file "
                         "(a TOML model file with a [phases] table is expected)")
    return _read_toml_model(path)


def _read_toml_model(path: Path) -> SeriesModel:
    from layerscope.crystal.cif import read_cif
    from layerscope.crystal.presets import list_presets, preset_phase

    try:
        doc = tomllib.loads(path.read_text())
    except UnicodeDecodeError:
        raise InputError("not a text file (a TOML model file with a [phases] table is expected)", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc}); a model file has a [phases] table of "
                         "name = \"preset or CIF path\"", path=path) from None
    unknown = sorted(set(doc) - {"phases", "fractions", "description"})
    if unknown:
        raise InputError(f"unknown table(s) {unknown}: a model file has [phases] and optional [fractions]",
                         path=path)
    table = doc.get("phases")
    if not isinstance(table, dict) or not table:
        raise InputError("expected a [phases] table of name = \"preset or CIF path\" (e.g. O3p = \"cif/O3p.cif\", "
                         "Al = \"Al\")", path=path, where="[phases]")
    phases, origins = [], {}
    for name, source in table.items():
        where = f"[phases] {name}"
        if not isinstance(source, str) or not source.strip():
            raise InputError(f"expected a preset name or a CIF path (a string), got {source!r}", path=path,
                             where=where)
        source = source.strip()
        if source in list_presets() or (":" in source and source.split(":", 1)[0] in list_presets()):
            try:
                ph = preset_phase(source)
            except KeyError as exc:
                raise InputError(f"{exc.args[0]}", path=path, where=where) from None
            phases.append(ph.with_name(name))
            origins[name] = source
            continue
        cif = Path(source).expanduser()
        if not cif.is_absolute():
            cif = path.parent / cif
        if not cif.is_file():
            raise InputError(f"{source!r} is neither a preset phase ({', '.join(list_presets())}, or "
                             f"model:phase) nor a CIF file (looked for {cif}, relative paths are taken from "
                             "the model file's folder)", path=path, where=where)
        try:
            phases.append(read_cif(cif, name=name))
        except InputError:
            raise
        except (ValueError, KeyError) as exc:
            raise InputError(f"cannot read CIF {cif}: {exc}", path=path, where=where) from None
        origins[name] = str(cif.resolve())
    fractions = {}
    for name, v in (doc.get("fractions") or {}).items():
        if name not in table:
            raise InputError(f"phase {name!r} is not in [phases] ({', '.join(table)})", path=path,
                             where=f"[fractions] {name}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise InputError(f"expected a weight fraction in [0, 1], got {v!r}", path=path,
                             where=f"[fractions] {name}")
        fractions[name] = float(v)
    return SeriesModel(phases, fractions, str(path.resolve()), origins)
