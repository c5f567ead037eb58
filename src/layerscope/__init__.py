"""layerscope: multiscale analysis of layered battery cathodes.

One crystal core (:mod:`layerscope.crystal`) feeds the time-of-flight neutron
powder model (:mod:`layerscope.diffraction`), refinement, electron-microscopy
and spectroscopy analyses. See ``DESIGN.md`` in the shared project folder for
the architecture.
"""

__version__ = "0.1.0"

from layerscope._errors import InputError  # noqa: E402

__all__ = ["__version__", "InputError"]
