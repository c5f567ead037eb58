"""The command line, ``layerscope COMMAND ...``: one module per command.

:mod:`layerscope.cli.main` builds the parser from the command modules (``phases``, ``pattern``,
``refine``, ``descriptors``, ``echem``, ``eels``, ``haadf``, ``zone_axis``, ``fourd``,
``fourd_calibrate``, ``fourd_strain``, ``run``, ``demo`` and the ``simulate_*`` ones). Each parses
its options, calls the Python API (``import layerscope as ls``) and writes; none holds an analysis.
This is the top layer: no science package imports it.
"""

from layerscope.cli.main import UserError, build_parser, main

__all__ = ["main", "build_parser", "UserError"]
