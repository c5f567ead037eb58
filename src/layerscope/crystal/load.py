"""Turn command-line phase specifications into phases with scales.

A specification is one of

* a preset name: ``lrm-pristine`` (every phase of the model, scaled by the model's
  reported fractions when it has them), ``Al``, or ``lrm-pristine:O3p``;
* a CIF path: ``NAC.cif`` (phase name = file stem);
* either of those with a name and/or scale: ``NAME=PATH:SCALE``, ``PATH:SCALE``,
  ``NAME=PRESET``.
"""

from __future__ import annotations

from pathlib import Path

from layerscope.crystal.cif import read_cif
from layerscope.crystal.phase import Phase
from layerscope.crystal.presets import list_presets, preset

__all__ = ["load_phases", "parse_phase_spec"]


def parse_phase_spec(spec: str) -> tuple[str | None, str, float | None]:
    """Split ``NAME=SOURCE:SCALE`` into (name, source, scale); name and scale optional."""
    name = None
    if "=" in spec:
        name, spec = spec.split("=", 1)
    scale = None
    head, sep, tail = spec.rpartition(":")
    if sep:
        try:
            scale = float(tail)
            spec = head
        except ValueError:
            pass
    if scale is not None and not (scale >= 0):
        raise ValueError(f"phase {spec!r}: scale must be >= 0, got {scale}")
    return name, spec, scale


def load_phases(specs) -> list[tuple[Phase, float]]:
    """Phases and scales (default 1, or a preset model's reported fractions) from specifications."""
    out: list[tuple[Phase, float]] = []
    for spec in specs:
        name, source, scale = parse_phase_spec(spec)
        base = source.split(":", 1)[0]
        if base in list_presets():
            model = preset(base)
            phases = list(model.phases)
            if ":" in source:
                sub = source.split(":", 1)[1]
                phases = [model.phase(sub)]
            for p in phases:
                s = scale if scale is not None else model.fractions.get(p.name, 1.0)
                out.append((p.with_name(name) if name and len(phases) == 1 else p, s))
            continue
        path = Path(source)
        if path.suffix.lower() == ".cif" or path.exists():
            phase = read_cif(path, name=name or path.stem)
            out.append((phase, 1.0 if scale is None else scale))
            continue
        raise ValueError(f"phase {spec!r} is neither a preset ({', '.join(list_presets())}) nor a CIF file")
    names = [p.name for p, _ in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"phase names must be unique, repeated: {sorted(dupes)} (use NAME=SOURCE)")
    return out
