"""The dispatcher of ``layerscope ...`` (also ``python -m layerscope ...``).

Every command is one module of :mod:`layerscope.cli` with a ``register(subparsers)`` function (and
``register_simulate(subparsers)`` for ``layerscope simulate <kind>``); each is a thin layer: parse the
options, call the Python API, write. Argument parsing stays at the edge, out of the science
packages, and a command's package is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from layerscope import InputError, __version__

#: The command modules, in the order their commands appear in --help; ``simulate_*`` ones register
#: ``layerscope simulate <kind>``.
_COMMAND_MODULES = (
    "layerscope.cli.phases",
    "layerscope.cli.pattern",
    "layerscope.cli.refine",
    "layerscope.cli.operando",
    "layerscope.cli.simulate_operando",
    "layerscope.cli.descriptors",
    "layerscope.cli.echem",
    "layerscope.cli.simulate_cycler",
    "layerscope.cli.eels",
    "layerscope.cli.haadf",
    "layerscope.cli.simulate_haadf",
    "layerscope.cli.zone_axis",
    "layerscope.cli.fourd",
    "layerscope.cli.fourd_calibrate",
    "layerscope.cli.fourd_strain",
    "layerscope.cli.simulate_fourd",
    "layerscope.cli.run",
    "layerscope.cli.simulate_study",
    "layerscope.cli.demo",
)


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def _command_modules():
    for name in _COMMAND_MODULES:
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
