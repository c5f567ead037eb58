"""The study file: one TOML document naming every dataset and the options of each analysis.

A study file has an optional ``[study]`` table (``title``, ``material``, ``description``) and
one array of tables per kind of analysis, each entry with a unique ``name``::

    [study]
    title = "LRM cathode, first cycle and 100 cycles"

    [[operando]]
    name = "first-cycle"
    series = "operando/series"      # folder with series.csv and the patterns
    cycler = "operando/cycler.csv"

    [[neutron]]
    name = "pristine"
    pattern = "npd/pristine.gsa"
    instprm = "npd/bank.instprm"
    phases = ["lrm-pristine"]
    table = "S1"

    [[haadf]]
    name = "charged-twins"
    image = "haadf/charged.tif"
    mode = "atomic"

Relative paths are taken from the study file's folder. :func:`read_study` checks the whole
file before any work starts: an unknown section or key (with the closest valid key
suggested), a value of the wrong type, a missing required key and a dataset that does not
exist on disk each raise :class:`StudyError` naming the key, e.g.
``study.toml: haadf[1] ("charged") key 'image': file not found: haadf/charged.tif``.

The schema below is the single source of truth for the keys; ``layerscope run --keys``
prints it.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layerscope._errors import InputError, reader
from layerscope._io import safe_name


class StudyError(InputError):
    """A problem with the study file, found before any analysis runs."""


@dataclass(frozen=True)
class Key:
    # str, float, int, bool, file, dir, path, list[str], list[float], table[file], table[float],
    # file|table[file] (one file, or a table of bank number = file), enum
    type: str
    required: bool = False
    default: Any = None
    choices: tuple = ()
    length: int | None = None  # for list[float]
    help: str = ""


_COMMON = {
    "name": Key("str", required=True, help="unique name of the dataset within its kind"),
    "state": Key("str", help="electrochemical state (pristine, charged-4.5V, discharged-2.5V, 100-cycles, ...)"),
    "truth": Key("file", help="ground truth of a simulated dataset (JSON written by `layerscope simulate study`)"),
    "description": Key("str"),
}

#: kind -> {key: Key}
SCHEMA: dict[str, dict[str, Key]] = {
    "operando": {
        "series": Key("dir", required=True, help="folder with series.csv and the pattern files"),
        "cycler": Key("file", required=True, help="cycler log of the operando cell"),
        "model": Key("str", default="lrm-pouch", help="preset model of the cell or a file of phase specs"),
        "strategy": Key("file", help="series protocol TOML (default: the built-in LRM protocol)"),
        "instprm": Key("file|table[file]",
                       help="GSAS-II .instprm (default: the one .instprm in the series folder); a series with "
                            "several banks per time step: a table of bank = \"file\", e.g. "
                            "{1 = \"bank1.instprm\", 2 = \"bank2.instprm\"} (default: one *bank<N>*.instprm "
                            "per bank in the series folder)"),
        "tof_range": Key("list[float]", length=2, help="TOF range to fit, µs"),
        "truth_series": Key("file", help="truth.csv of a simulated series (drawn dashed, compared in the report)"),
        "cif_per_pattern": Key("bool", default=False, help="also write one CIF per refined pattern (cif/ in the "
                                                          "dataset's output folder)"),
    },
    "neutron": {
        "pattern": Key("file", required=True, help="ex-situ powder pattern (.gsa/.fxye/.dat/.xye)"),
        "instprm": Key("file", required=True, help="GSAS-II .instprm instrument file"),
        "phases": Key("list[str]", required=True, help="phases: presets, CIF files or NAME=SOURCE:SCALE"),
        "strategy": Key("file", help="TOML with [[stage]] tables (default: the built-in staged strategy)"),
        "tmin": Key("float", help="lowest TOF to fit, µs"),
        "tmax": Key("float", help="highest TOF to fit, µs"),
        "n_background": Key("int", default=6, help="Chebyshev background terms"),
        "conventions": Key("enum", choices=("gsas2", "fullprof", "layerscope"),
                           help="refinement conventions (default: the instrument file's code's; "
                                "layerscope: those of layerscope's own simulators)"),
        "table": Key("str", help="paper table the refined structure goes to (S1, S2, S3)"),
    },
    "haadf": {
        "image": Key("file", required=True, help="image (.dm3/.dm4/.emd/.tif/.npy ...)"),
        "mode": Key("enum", default="atomic", choices=("atomic", "domains", "lowmag", "shell"),
                    help="atomic: <100> columns, m/n, variants, GPA; domains: <210> A/B/C; lowmag: "
                         "particles and defects; shell: spinel shell thickness"),
        "pixel_size_nm": Key("float", help="override the file's calibration"),
        "denoise": Key("enum", default="du", choices=("du", "wiener", "gaussian", "nlm", "none")),
    },
    "fourd": {
        "scan": Key("file", required=True, help="4D-STEM scan (.h5/.hspy/.zspy/.mib/.blo/.npy)"),
        "phases": Key("list[str]", required=True, help="phases of the template library"),
        "spacing_deg": Key("float", default=1.0, help="template library spacing"),
        "kv": Key("float", default=200.0),
        "convergence_mrad": Key("float", default=1.5),
        "precession_deg": Key("float", default=0.8),
        "pixel_inv_angstrom": Key("float", help="detector calibration (default: from the file)"),
    },
    "eels": {
        "spectrum": Key("file", required=True, help="EELS spectrum or line scan (.dm3/.dm4/.msa/.csv)"),
        "mn_background_eV": Key("list[float]", length=2, default=[600.0, 632.0]),
        "o_background_eV": Key("list[float]", length=2, default=[490.0, 522.0]),
        "low_loss": Key("file", help="low-loss spectrum/SI of the same pixels: each zero-loss peak moved to "
                                     "0 eV, t/λ written (as eels --low-loss)"),
        "low_loss_offset": Key("str", help="'auto' or 'DY,DX': pair core-loss pixel (y, x) with low-loss "
                                           "pixel (y+DY, x+DX) (a separately acquired low-loss image)"),
        "deconvolve": Key("enum", default="none", choices=("none", "fourier-ratio"),
                          help="remove plural scattering from the L2,3 edges (needs low_loss)"),
        "calibrate_edges": Key("table[float]", help='two-point calibration of offset and dispersion, '
                                                   'e.g. {"O-K" = 530.0, "Mn-L3" = 641.0} (features O-K, '
                                                   'Mn-L3, Co-L3, Ni-L3; after the zero-loss step)'),
        "align_edge": Key("enum", choices=("O-K", "Mn-L3", "Co-L3", "Ni-L3"),
                          help="move that edge feature to its reference energy (not with calibrate_edges)"),
        "align_energy_eV": Key("float", help="target energy of align_edge"),
        "shift_eV": Key("float", default=0.0, help="shift added to the energy axis last"),
    },
    "xas": {
        "spectra": Key("table[file]", required=True, help="state = file of an O-K sXAS spectrum (energy, mu)"),
        "window_eV": Key("list[float]", length=2, default=[525.0, 535.0], help="integration window"),
    },
    "cycler": {
        "file": Key("file", required=True, help="cycler file (BioLogic, Neware, Arbin, CSV/XLSX)"),
        "mass_mg": Key("float", help="active-material mass (adds mAh/g)"),
        "nominal_mAh": Key("float", help="nominal capacity (adds C-rates)"),
        "role": Key("enum", default="cycling", choices=("half-cell", "cycling", "formation", "operando")),
    },
    "kinematic": {
        "phases": Key("list[str]", required=True, help="phases whose zone-axis patterns (and twins) are simulated"),
        "kv": Key("float", default=200.0),
        "precession_deg": Key("float", default=0.8),
    },
}
for _kind in SCHEMA:
    SCHEMA[_kind] = {**_COMMON, **SCHEMA[_kind]}

STUDY_KEYS = {"title": Key("str"), "material": Key("str"), "description": Key("str")}


@dataclass
class Dataset:
    """One dataset of the study with its validated, defaulted options."""

    kind: str
    name: str
    options: dict
    index: int  # position in the study file's array of this kind

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}"

    def label(self, source: str) -> str:
        return f"{source}: {self.kind}[{self.index}] ({self.name!r})"


@dataclass
class Study:
    path: Path
    title: str
    material: str
    description: str
    datasets: list[Dataset] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Dataset]:
        return [d for d in self.datasets if d.kind == kind]


def _suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check(value, spec: Key, where: str, base: Path):
    t = spec.type
    if t == "str":
        if not isinstance(value, str):
            raise StudyError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if t == "enum":
        if value not in spec.choices:
            raise StudyError(f"{where}: expected one of {', '.join(map(repr, spec.choices))}, got {value!r}")
        return value
    if t == "bool":
        if not isinstance(value, bool):
            raise StudyError(f"{where}: expected true or false, got {value!r}")
        return value
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise StudyError(f"{where}: expected an integer, got {value!r}")
        return value
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StudyError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise StudyError(f"{where}: expected a finite number, got {value!r}")
        try:
            return float(value)
        except OverflowError:
            raise StudyError(f"{where}: expected a finite number, got an integer of "
                             f"{len(str(value))} digits") from None
    if t == "list[str]":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise StudyError(f"{where}: expected a non-empty list of strings, got {value!r}")
        return value
    if t == "list[float]":
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not ok or (spec.length and len(value) != spec.length):
            n = f"{spec.length} numbers" if spec.length else "a list of numbers"
            raise StudyError(f"{where}: expected {n}, got {value!r}")
        return [float(v) for v in value]
    if t in ("file", "dir"):
        if not isinstance(value, str):
            raise StudyError(f"{where}: expected a path (string), got {value!r}")
        try:
            p = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
            p.exists()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte
            raise StudyError(f"{where}: not a usable path ({type(exc).__name__}: {exc})"[:300]) from None
        if t == "file" and not p.is_file():
            raise StudyError(f"{where}: file not found: {value} (looked for {p})")
        if t == "dir" and not p.is_dir():
            raise StudyError(f"{where}: folder not found: {value} (looked for {p})")
        return p
    if t == "table[float]":
        if not isinstance(value, dict) or not value:
            raise StudyError(f"{where}: expected a table of NAME = number, got {value!r}")
        return {k: _check(v, Key("float"), f"{where}.{k}", base) for k, v in value.items()}
    if t == "table[file]":
        if not isinstance(value, dict) or not value:
            raise StudyError(f"{where}: expected a table of NAME = \"file\", got {value!r}")
        return {k: _check(v, Key("file"), f"{where}.{k}", base) for k, v in value.items()}
    if t == "file|table[file]":
        if not isinstance(value, dict):
            return _check(value, Key("file"), where, base)
        bad = [k for k in value if not str(k).strip().isdigit()]
        if bad:
            raise StudyError(f"{where}: expected a table of BANK = \"file\" with bank numbers as keys, got key "
                             f"{bad[0]!r}")
        return {int(k): v for k, v in _check(value, Key("table[file]"), where, base).items()}
    raise AssertionError(t)  # pragma: no cover


def _eels_ok(opts: dict, tag: str) -> None:
    """The eels keys that depend on each other, checked before any work."""
    if opts.get("calibrate_edges") is not None:
        from layerscope.spectra.energy_scale import parse_reference_features
        try:
            parse_reference_features(opts["calibrate_edges"])
        except ValueError as exc:
            raise StudyError(f"{tag} key 'calibrate_edges': {exc}") from None
        if opts.get("align_edge"):
            raise StudyError(f"{tag}: give either 'calibrate_edges' or 'align_edge', not both")
    if opts.get("deconvolve") not in (None, "none") and opts.get("low_loss") is None:
        raise StudyError(f"{tag} key 'deconvolve': Fourier-ratio deconvolution needs 'low_loss'")
    off = opts.get("low_loss_offset")
    if off is not None:
        if opts.get("low_loss") is None:
            raise StudyError(f"{tag} key 'low_loss_offset': needs 'low_loss'")
        parts = off.split(",")
        if off != "auto" and not (len(parts) == 2 and all(p.strip().lstrip("-").isdigit() for p in parts)):
            raise StudyError(f"{tag} key 'low_loss_offset': expected 'auto' or 'DY,DX' (integers), got {off!r}")


def _phase_specs_ok(specs, where: str, base: Path) -> list[str]:
    """Preset names or CIF files: resolve relative CIF paths, reject unknown presets now."""
    from layerscope.crystal.load import parse_phase_spec
    from layerscope.crystal.presets import list_presets

    out = []
    for s in specs:
        try:
            name, source, scale = parse_phase_spec(s)
        except ValueError as exc:
            raise StudyError(f"{where}: {exc}") from None
        if source.split(":", 1)[0] in list_presets():
            out.append(s)
            continue
        p = base / source
        try:
            found = p.is_file()
        except (OSError, ValueError):  # a name too long, a NUL byte
            found = False
        if not found:
            raise StudyError(f"{where}: {s!r} is neither a preset ({', '.join(list_presets())}) nor a file "
                             f"(looked for {p})")
        spec = str(p.resolve()) + (f":{scale:g}" if scale is not None else "")
        out.append(f"{name}={spec}" if name else spec)
    return out


def parse_study(doc: dict, path: Path) -> Study:
    """Validate a parsed study document (see the module docstring)."""
    base = path.parent
    src = path.name
    unknown = [k for k in doc if k != "study" and k not in SCHEMA]
    if unknown:
        k = unknown[0]
        raise StudyError(f"{src}: unknown section {k!r}{_suggest(k, ['study', *SCHEMA])}; "
                         f"known: study, {', '.join(SCHEMA)}")
    head = doc.get("study", {})
    if not isinstance(head, dict):
        raise StudyError(f"{src}: 'study' must be a table ([study])")
    for k, v in head.items():
        if k not in STUDY_KEYS:
            raise StudyError(f"{src}: [study] unknown key {k!r}{_suggest(k, STUDY_KEYS)}")
        _check(v, STUDY_KEYS[k], f"{src}: [study] key {k!r}", base)
    datasets = []
    for kind, schema in SCHEMA.items():
        entries = doc.get(kind, [])
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise StudyError(f"{src}: '{kind}' must be an array of tables ([[{kind}]])")
        names = set()
        for i, entry in enumerate(entries):
            tag = f"{src}: {kind}[{i}]" + (f" ({entry['name']!r})" if isinstance(entry.get("name"), str) else "")
            for k in entry:
                if k not in schema:
                    raise StudyError(f"{tag}: unknown key {k!r}{_suggest(k, schema)}; "
                                     f"valid keys: {', '.join(schema)}")
            for k, spec in schema.items():
                if spec.required and k not in entry:
                    raise StudyError(f"{tag}: missing required key {k!r} ({spec.help or spec.type})")
            opts = {}
            for k, spec in schema.items():
                if k in entry:
                    opts[k] = _check(entry[k], spec, f"{tag} key {k!r}", base)
                else:
                    opts[k] = spec.default
            if kind == "eels":
                _eels_ok(opts, tag)
            if "phases" in opts and opts["phases"]:
                opts["phases"] = _phase_specs_ok(opts["phases"], f"{tag} key 'phases'", base)
            if opts["name"] in names:
                raise StudyError(f"{tag}: duplicate name {opts['name']!r} among the [[{kind}]] entries")
            if safe_name(opts["name"]) != opts["name"]:  # '/', '\\', NUL, control characters, a leading '.'
                raise StudyError(f"{tag} key 'name': {opts['name']!r} cannot be used as a folder name "
                                 f"(no '/', '\\', control characters or leading '.')")
            names.add(opts["name"])
            datasets.append(Dataset(kind, opts["name"], opts, i))
    if not datasets:
        raise StudyError(f"{src}: no datasets; add at least one of {', '.join(f'[[{k}]]' for k in SCHEMA)}")
    return Study(path=path, title=head.get("title", path.stem), material=head.get("material", ""),
                 description=head.get("description", ""), datasets=datasets)


@reader
def read_study(path) -> Study:
    """Read and validate a study TOML file; raises :class:`StudyError` before any work."""
    path = Path(path).resolve()
    if not path.is_file():
        raise StudyError(f"{path}: study file not found")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path.name}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise StudyError(f"{path.name}: not a text (TOML) file") from None
    from layerscope._toml import check_ints

    check_ints(doc, path)
    return parse_study(doc, path)


def describe_schema() -> str:
    """The keys of every kind, as text (``layerscope run --keys``)."""
    lines = ["[study]: " + ", ".join(STUDY_KEYS)]
    for kind, schema in SCHEMA.items():
        lines.append(f"\n[[{kind}]]")
        for k, s in schema.items():
            extra = " (required)" if s.required else (f" = {s.default!r}" if s.default is not None else "")
            ch = f" one of {'/'.join(s.choices)}" if s.choices else ""
            lines.append(f"  {k}: {s.type}{ch}{extra}  {s.help}".rstrip())
    return "\n".join(lines)
