"""Architecture contract: the layers of DESIGN.md / issue 14, highest first,

    cli (cli, __main__, api, demo) → study → simulate →
    operando : stem : fourd : echem : spectra → refine → diffraction : descriptors → crystal
    → utilities (_errors, _io, _h5guard, _jaxcache, _tracecache, _device, plotting, data)

A module may import its own layer and the layers below it, never one above; and the packages
import no one another in a cycle. The import graph is grimp's (the engine of import-linter; every
``import`` counts, at module level or inside a function). The command line is the package
``layerscope/cli/`` (one module per command).
"""

from __future__ import annotations

import pytest

grimp = pytest.importorskip("grimp", reason="grimp (import-linter's graph) is a test extra")

#: highest first; siblings in one layer may import each other (cycles among them are caught below)
LAYERS = (
    ("cli", "__main__", "api", "demo"),
    ("study",),
    ("simulate",),
    ("operando", "stem", "fourd", "echem", "spectra"),
    ("refine",),
    ("diffraction", "descriptors"),
    ("crystal",),
    ("_errors", "_io", "_h5guard", "_jaxcache", "_tracecache", "_device", "_lock", "_toml", "plotting", "data"),
)

#: upward imports tolerated (none)
KNOWN_UPWARD: set = set()


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("layerscope")


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None                      # the root package: its lazy API names are resolved by importlib
    for i, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return i
    return -1


def upward_imports(graph) -> set[tuple[str, str]]:
    out = set()
    for m in graph.modules:
        lm = _layer_of(m)
        if lm is None:
            continue
        for i in graph.find_modules_directly_imported_by(m):
            li = _layer_of(i)
            if li is not None and li < lm:
                out.add((m, i))
    return out


def package_cycles(graph) -> list[set[str]]:
    """Strongly connected sets of top-level packages (Tarjan), size > 1."""
    top = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    deps: dict[str, set[str]] = {}
    for m in graph.modules:
        if m.count(".") == 0:
            continue
        for i in graph.find_modules_directly_imported_by(m):
            if i.count(".") and top(i) != top(m):
                deps.setdefault(top(m), set()).add(top(i))
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in deps.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return out


def test_every_package_has_a_layer(graph):
    unplaced = sorted({m.split(".")[1] for m in graph.modules if _layer_of(m) == -1})
    assert not unplaced, f"place these in LAYERS: {unplaced}"


def test_no_new_upward_import(graph):
    """Today's upward imports are exactly the known ones (a new one fails here)."""
    new = upward_imports(graph) - KNOWN_UPWARD
    assert not new, "imports from a lower layer into a higher one:\n" + "\n".join(f"  {a} -> {b}" for a, b in sorted(new))


def test_layers_are_respected(graph):
    bad = upward_imports(graph)
    assert not bad, "\n".join(f"{a} -> {b}" for a, b in sorted(bad))


def test_no_package_import_cycles(graph):
    assert package_cycles(graph) == []


def test_cycles_today_are_only_those_of_the_known_upward_imports(graph):
    cycles = package_cycles(graph)
    allowed = {"layerscope.simulate", "layerscope.stem", "layerscope.fourd", "layerscope.operando"}
    assert all(c <= allowed for c in cycles), cycles


def test_contract_catches_an_upward_import():
    """The check itself: a graph where crystal imports refine is caught, as is a cycle."""
    g = grimp.ImportGraph()
    for m in ("layerscope", "layerscope.crystal", "layerscope.crystal.phase", "layerscope.refine",
              "layerscope.refine.engine"):
        g.add_module(m)
    g.add_import(importer="layerscope.refine.engine", imported="layerscope.crystal.phase")
    assert upward_imports(g) == set() and package_cycles(g) == []
    g.add_import(importer="layerscope.crystal.phase", imported="layerscope.refine.engine")
    assert upward_imports(g) == {("layerscope.crystal.phase", "layerscope.refine.engine")}
    assert package_cycles(g) == [{"layerscope.crystal", "layerscope.refine"}]


def test_the_command_line_is_one_package_of_thin_command_modules(graph):
    """Every ``layerscope`` command comes from a module of ``layerscope.cli``, and no science package
    imports ``layerscope.cli``."""
    from layerscope.cli.main import _COMMAND_MODULES, build_parser

    assert all(m.startswith("layerscope.cli.") for m in _COMMAND_MODULES)
    stray = sorted(m for m in graph.modules if m.rsplit(".", 1)[-1].endswith("_cli"))
    assert not stray, stray
    below = {(a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
             if b.startswith("layerscope.cli") and (_layer_of(a) or 0) > 0}
    assert not below, below
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"phases", "pattern", "refine", "operando", "descriptors", "echem", "eels", "haadf", "zone-axis", "fourd",
            "fourd-calibrate", "fourd-strain", "run", "demo", "simulate"} <= set(sub.choices)
