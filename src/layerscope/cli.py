"""Command-line interface: ``layerscope ...`` (also ``python -m layerscope ...``).

Each science package contributes its subcommands through a private ``_cli``
module with a ``register(subparsers)`` function (and optionally
``register_simulate(subparsers)`` for ``layerscope simulate <kind>``). This
keeps argument parsing at the edge, out of the science modules, and lets the
packages grow their commands without touching one shared file.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from layerscope import InputError, __version__

#: Modules that may contribute subcommands, in the order they appear in --help.
_COMMAND_MODULES = (
    "layerscope.crystal._cli",
    "layerscope.diffraction._cli",
    "layerscope.refine._cli",
    "layerscope.operando._cli",
    "layerscope.simulate._cli_operando",
    "layerscope.descriptors_cli",
    "layerscope.echem._cli",
    "layerscope.simulate._cli",
    "layerscope.spectra._cli",
    "layerscope.stem._cli",
    "layerscope.simulate._cli_haadf",
    "layerscope.fourd._cli",
    "layerscope.simulate._cli_fourd",
    "layerscope.study._cli",
    "layerscope.demo",
)


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def _command_modules():
    for name in _COMMAND_MODULES:
        parent = name.rsplit(".", 1)[0]
        # Only skip packages that do not exist yet; an import error inside an
        # existing module is a bug and must surface.
        if importlib.util.find_spec(parent) is None:
            continue
        if importlib.util.find_spec(name) is None:
            continue
        yield importlib.import_module(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerscope",
        description="Multiscale analysis of layered battery cathodes.",
    )
    parser.add_argument("--version", action="version", version=f"layerscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sim = sub.add_parser("simulate", help="simulate an experiment with known ground truth")
    sim_sub = sim.add_subparsers(dest="simulate_kind", metavar="KIND")
    sim.set_defaults(func=lambda args: sim.print_help() or 2)
    for mod in _command_modules():
        if hasattr(mod, "register"):
            mod.register(sub)
        if hasattr(mod, "register_simulate"):
            mod.register_simulate(sim_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if argv is None and len(sys.argv) <= 1 else 2
    from layerscope._jaxcache import enable_compilation_cache

    enable_compilation_cache()
    # the command line only writes figures to files: it chooses the non-interactive backend (the
    # library never does); a backend the user asked for (MPLBACKEND) is kept
    import os

    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        rc = args.func(args)
    except (InputError, UserError, FileNotFoundError, ValueError) as exc:
        # bad input (layerscope.InputError and the ValueErrors of argument checks): one clear line,
        # no traceback, exit status 2 (as argparse uses for bad arguments)
        print(f"layerscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
